//! Commands, status codes, and the encoding of request and response bodies (see the grammar
//! in the [module documentation](super)).

use super::codec::{Reader, Writer};
use crate::attributes::KeyAttributes;
use crate::blob::KeyBlob;
use crate::engine::KeyCheck;
use crate::error::HsmError;
use crate::keyblock::KeyBlock;
use thiserror::Error;
use ykt_crypto::{CryptoError, Kcv, KcvMethod, Load, Purchase, Signature};

/// The protocol version byte, first in every body.
pub const VERSION: u8 = 1;
/// The largest frame body accepted, in bytes (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;
/// The most records in one batch TAC verification.
pub const MAX_BATCH: usize = 10_000;
/// Length of the client nonce, server challenge and both proofs of the handshake.
pub const AUTH_LEN: usize = 32;
/// Length of the digest field of the digest-signing commands (SM3 or SHA-256).
pub const DIGEST_LEN: usize = 32;

/// Command codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Command {
    /// Opens the handshake: client name and nonce. Code 01.
    Hello = 0x01,
    /// Completes the handshake: the client's proof. Code 02.
    Auth = 0x02,
    /// Random bytes. Code 10.
    Random = 0x10,
    /// Generate a key. Code 11.
    GenerateKey = 0x11,
    /// Check value of a symmetric key. Code 12.
    Kcv = 0x12,
    /// PBOC derivation kept as a blob. Code 13.
    Derive = 0x13,
    /// Export a key under a KEK as a key block. Code 14.
    ExportKey = 0x14,
    /// Import a key block under a KEK. Code 15.
    ImportKey = 0x15,
    /// Destroy a key in the HSM. Code 16.
    DestroyKey = 0x16,
    /// Load: verify MAC1, make MAC2. Code 20.
    LoadMac2 = 0x20,
    /// Verify one purchase TAC. Code 21.
    VerifyTac = 0x21,
    /// Verify a batch of purchase TACs. Code 22.
    VerifyTacs = 0x22,
    /// Verify one load TAC. Code 23.
    VerifyLoadTac = 0x23,
    /// WRITE KEY (84 D4) command for a card. Code 30.
    WriteKey = 0x30,
    /// EXTERNAL AUTHENTICATE cryptogram. Code 31.
    ExternalAuth = 0x31,
    /// SM2 signature with a signer ID. Code 40.
    SignSm2 = 0x40,
    /// ECDSA P-256 signature. Code 41.
    SignP256 = 0x41,
    /// Public key of an SM2 or P-256 key. Code 42.
    PublicKey = 0x42,
    /// SM2 signature over a digest `e = SM3(ZA || M)` computed by the caller. Code 43.
    SignSm2Digest = 0x43,
    /// ECDSA P-256 signature over a SHA-256 digest computed by the caller. Code 44.
    SignP256Digest = 0x44,
}

impl Command {
    const ALL: [Self; 20] = [
        Self::Hello,
        Self::Auth,
        Self::Random,
        Self::GenerateKey,
        Self::Kcv,
        Self::Derive,
        Self::ExportKey,
        Self::ImportKey,
        Self::DestroyKey,
        Self::LoadMac2,
        Self::VerifyTac,
        Self::VerifyTacs,
        Self::VerifyLoadTac,
        Self::WriteKey,
        Self::ExternalAuth,
        Self::SignSm2,
        Self::SignP256,
        Self::PublicKey,
        Self::SignSm2Digest,
        Self::SignP256Digest,
    ];

    /// The command with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c as u8 == code)
    }
}

/// Response status codes: `Ok`, one per [`HsmError`] kind (a MAC, TAC or cryptogram that
/// does not verify has its own), and one per protocol failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Success; the command's fields follow. Code 00.
    Ok = 0x00,
    /// [`HsmError::InvalidAttributes`]. Code 10.
    InvalidAttributes = 0x10,
    /// [`HsmError::Forbidden`]. Code 11.
    Forbidden = 0x11,
    /// [`HsmError::MalformedBlob`]. Code 12.
    MalformedBlob = 0x12,
    /// [`HsmError::BlobRejected`]. Code 13.
    BlobRejected = 0x13,
    /// [`HsmError::LmkUnseal`]. Code 14.
    LmkUnseal = 0x14,
    /// [`HsmError::MalformedLmkFile`]. Code 15.
    MalformedLmkFile = 0x15,
    /// [`HsmError::Io`]. Code 16.
    Io = 0x16,
    /// [`HsmError::ComponentCount`]. Code 17.
    ComponentCount = 0x17,
    /// [`HsmError::ComponentLength`]. Code 18.
    ComponentLength = 0x18,
    /// [`HsmError::ComponentKcvMismatch`]. Code 19.
    ComponentKcvMismatch = 0x19,
    /// [`HsmError::SecretLength`]. Code 1A.
    SecretLength = 0x1A,
    /// [`HsmError::FactorCount`]. Code 1B.
    FactorCount = 0x1B,
    /// [`HsmError::KeyRecord`]. Code 1C.
    KeyRecord = 0x1C,
    /// [`HsmError::Crypto`] other than a failed verification. Code 1D.
    Crypto = 0x1D,
    /// [`HsmError::Crypto`] with [`CryptoError::Mismatch`]: a MAC1 or TAC does not verify.
    /// Code 1E.
    VerificationFailed = 0x1E,
    /// [`HsmError::Share`]. Code 1F.
    Share = 0x1F,
    /// [`HsmError::MalformedKeyBlock`]. Code 20.
    MalformedKeyBlock = 0x20,
    /// [`HsmError::KeyBlockRejected`]. Code 21.
    KeyBlockRejected = 0x21,
    /// [`HsmError::Destroyed`]: the key was destroyed in this HSM. Code 22.
    Destroyed = 0x22,
    /// [`HsmError::DestroyedLog`]. Code 23.
    DestroyedLog = 0x23,
    /// [`HsmError::SharedSecretLength`]. Code 24.
    SharedSecretLength = 0x24,
    /// [`HsmError::CustodyParameters`]. Code 25.
    CustodyParameters = 0x25,
    /// The body does not follow the grammar (short header, field past the end, trailing
    /// bytes, bad fixed-field value). Code 80.
    MalformedFrame = 0x80,
    /// The command code is not known. Code 81.
    UnknownCommand = 0x81,
    /// The length header exceeds [`MAX_FRAME`]; the connection is closed. Code 82.
    FrameTooLarge = 0x82,
    /// The command needs an authenticated connection, or the handshake failed. Code 83.
    Unauthenticated = 0x83,
    /// The connection exceeded its request rate or request count. Code 84.
    RateLimited = 0x84,
    /// The version byte is not [`VERSION`]. Code 85.
    UnsupportedVersion = 0x85,
    /// A batch has more than [`MAX_BATCH`] records. Code 86.
    BatchTooLarge = 0x86,
}

impl Status {
    const ALL: [Self; 30] = [
        Self::Ok,
        Self::InvalidAttributes,
        Self::Forbidden,
        Self::MalformedBlob,
        Self::BlobRejected,
        Self::LmkUnseal,
        Self::MalformedLmkFile,
        Self::Io,
        Self::ComponentCount,
        Self::ComponentLength,
        Self::ComponentKcvMismatch,
        Self::SecretLength,
        Self::FactorCount,
        Self::KeyRecord,
        Self::Crypto,
        Self::VerificationFailed,
        Self::Share,
        Self::MalformedKeyBlock,
        Self::KeyBlockRejected,
        Self::Destroyed,
        Self::DestroyedLog,
        Self::SharedSecretLength,
        Self::CustodyParameters,
        Self::MalformedFrame,
        Self::UnknownCommand,
        Self::FrameTooLarge,
        Self::Unauthenticated,
        Self::RateLimited,
        Self::UnsupportedVersion,
        Self::BatchTooLarge,
    ];

    /// The status with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u8 == code)
    }

    /// The status that reports `error`.
    pub fn of_hsm_error(error: &HsmError) -> Self {
        match error {
            HsmError::InvalidAttributes(_) => Self::InvalidAttributes,
            HsmError::Forbidden { .. } => Self::Forbidden,
            HsmError::MalformedBlob(_) => Self::MalformedBlob,
            HsmError::BlobRejected => Self::BlobRejected,
            HsmError::LmkUnseal => Self::LmkUnseal,
            HsmError::MalformedLmkFile(_) => Self::MalformedLmkFile,
            HsmError::Io(_) => Self::Io,
            HsmError::ComponentCount { .. } => Self::ComponentCount,
            HsmError::ComponentLength { .. } => Self::ComponentLength,
            HsmError::ComponentKcvMismatch { .. } => Self::ComponentKcvMismatch,
            HsmError::SecretLength(_) => Self::SecretLength,
            HsmError::FactorCount { .. } => Self::FactorCount,
            HsmError::KeyRecord(_) => Self::KeyRecord,
            HsmError::Crypto(CryptoError::Mismatch(_)) => Self::VerificationFailed,
            HsmError::Crypto(_) => Self::Crypto,
            HsmError::Share(_) => Self::Share,
            HsmError::MalformedKeyBlock(_) => Self::MalformedKeyBlock,
            HsmError::KeyBlockRejected => Self::KeyBlockRejected,
            HsmError::Destroyed => Self::Destroyed,
            HsmError::DestroyedLog(_) => Self::DestroyedLog,
            HsmError::SharedSecretLength { .. } => Self::SharedSecretLength,
            HsmError::CustodyParameters { .. } => Self::CustodyParameters,
        }
    }
}

/// A request or response that breaks the protocol, or a connection-level refusal.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The body does not follow the grammar.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// Unknown command code.
    #[error("unknown command {0:#04x}")]
    UnknownCommand(u8),
    /// Unsupported version byte.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// A frame length header beyond [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME}")]
    FrameTooLarge(u32),
    /// A batch beyond [`MAX_BATCH`] records.
    #[error("batch of {0} records exceeds the limit of {MAX_BATCH}")]
    BatchTooLarge(u32),
    /// Not authenticated, or the handshake failed.
    #[error("not authenticated")]
    Unauthenticated,
    /// Request rate or count exceeded.
    #[error("request limit reached")]
    RateLimited,
}

impl ProtocolError {
    /// The status that reports this error.
    pub fn status(&self) -> Status {
        match self {
            Self::Malformed(_) => Status::MalformedFrame,
            Self::UnknownCommand(_) => Status::UnknownCommand,
            Self::UnsupportedVersion(_) => Status::UnsupportedVersion,
            Self::FrameTooLarge(_) => Status::FrameTooLarge,
            Self::BatchTooLarge(_) => Status::BatchTooLarge,
            Self::Unauthenticated => Status::Unauthenticated,
            Self::RateLimited => Status::RateLimited,
        }
    }
}

/// A request body that could not be decoded, with the request ID when the header was read
/// (0 otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("request {id}: {error}")]
pub struct DecodeError {
    /// The request ID, 0 if the header was too short to carry one.
    pub id: u32,
    /// What is wrong.
    pub error: ProtocolError,
}

/// One record of a batch TAC verification, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TacRecord {
    /// Factors from the TAC master to the card's DTK, top level first.
    pub factors: Vec<[u8; 8]>,
    /// The purchase as recorded by the terminal.
    pub purchase: Purchase,
    /// The TAC the card returned.
    pub tac: Vec<u8>,
}

/// A decoded request: the command and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Handshake opening.
    Hello {
        /// The client's registered name.
        name: String,
        /// A fresh client nonce.
        nonce: [u8; AUTH_LEN],
    },
    /// Handshake completion.
    Auth {
        /// The client's proof.
        proof: [u8; AUTH_LEN],
    },
    /// [`Hsm::random`](crate::Hsm::random) of `len` bytes.
    Random {
        /// Number of bytes.
        len: u16,
    },
    /// [`Hsm::generate_key`](crate::Hsm::generate_key).
    GenerateKey {
        /// Attributes of the new key.
        attributes: KeyAttributes,
    },
    /// [`Hsm::kcv`](crate::Hsm::kcv).
    Kcv {
        /// The key.
        key: KeyBlob,
        /// The check-value method.
        method: KcvMethod,
    },
    /// [`Hsm::derive_key`](crate::Hsm::derive_key).
    Derive {
        /// The master.
        master: KeyBlob,
        /// Diversification factors.
        factors: Vec<[u8; 8]>,
        /// Attributes of the derived key.
        attributes: KeyAttributes,
    },
    /// [`Hsm::export_key`](crate::Hsm::export_key).
    ExportKey {
        /// The key to export.
        key: KeyBlob,
        /// The key-encryption key.
        kek: KeyBlob,
    },
    /// [`Hsm::import_key`](crate::Hsm::import_key).
    ImportKey {
        /// The key block.
        block: KeyBlock,
        /// The key-encryption key.
        kek: KeyBlob,
    },
    /// [`Hsm::destroy_key`](crate::Hsm::destroy_key).
    DestroyKey {
        /// The key to destroy.
        key: KeyBlob,
    },
    /// [`Hsm::load_mac2`](crate::Hsm::load_mac2).
    LoadMac2 {
        /// The load master.
        master: KeyBlob,
        /// Diversification factors.
        factors: Vec<[u8; 8]>,
        /// The load.
        load: Load,
        /// The card's MAC1.
        mac1: Vec<u8>,
    },
    /// [`Hsm::verify_purchase_tac`](crate::Hsm::verify_purchase_tac).
    VerifyTac {
        /// The TAC master.
        master: KeyBlob,
        /// The record.
        record: TacRecord,
    },
    /// [`Hsm::verify_purchase_tacs`](crate::Hsm::verify_purchase_tacs).
    VerifyTacs {
        /// The TAC master.
        master: KeyBlob,
        /// The records.
        records: Vec<TacRecord>,
    },
    /// [`Hsm::verify_load_tac`](crate::Hsm::verify_load_tac).
    VerifyLoadTac {
        /// The TAC master.
        master: KeyBlob,
        /// Diversification factors.
        factors: Vec<[u8; 8]>,
        /// The load.
        load: Load,
        /// The TAC the card returned.
        tac: Vec<u8>,
    },
    /// [`Hsm::write_key_command`](crate::Hsm::write_key_command).
    WriteKey {
        /// Master of the key written.
        key: KeyBlob,
        /// Factors to the key written.
        key_factors: Vec<[u8; 8]>,
        /// Master of the card's protecting key.
        under: KeyBlob,
        /// Factors to the protecting key.
        under_factors: Vec<[u8; 8]>,
        /// The card's challenge.
        challenge: Vec<u8>,
        /// P1.
        p1: u8,
        /// P2.
        p2: u8,
        /// Key-record header.
        record_header: Vec<u8>,
    },
    /// [`Hsm::external_auth_cryptogram`](crate::Hsm::external_auth_cryptogram).
    ExternalAuth {
        /// The master.
        master: KeyBlob,
        /// Diversification factors.
        factors: Vec<[u8; 8]>,
        /// The card's challenge.
        challenge: Vec<u8>,
    },
    /// [`Hsm::sign_sm2`](crate::Hsm::sign_sm2).
    SignSm2 {
        /// The SM2 key.
        key: KeyBlob,
        /// Signer ID.
        id: Vec<u8>,
        /// Message.
        message: Vec<u8>,
    },
    /// [`Hsm::sign_p256`](crate::Hsm::sign_p256).
    SignP256 {
        /// The P-256 key.
        key: KeyBlob,
        /// Message.
        message: Vec<u8>,
    },
    /// [`Hsm::public_key`](crate::Hsm::public_key).
    PublicKey {
        /// The SM2 or P-256 key.
        key: KeyBlob,
    },
    /// [`Hsm::sign_sm2_digest`](crate::Hsm::sign_sm2_digest).
    SignSm2Digest {
        /// The SM2 key.
        key: KeyBlob,
        /// `e = SM3(ZA || M)`, computed by the caller.
        e: [u8; DIGEST_LEN],
    },
    /// [`Hsm::sign_p256_digest`](crate::Hsm::sign_p256_digest).
    SignP256Digest {
        /// The P-256 key.
        key: KeyBlob,
        /// SHA-256 of the message, computed by the caller.
        digest: [u8; DIGEST_LEN],
    },
}

/// A check value as it crosses the wire: method and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckValue {
    /// The method that made it.
    pub method: KcvMethod,
    /// The check value bytes.
    pub value: Vec<u8>,
}

impl From<&Kcv> for CheckValue {
    fn from(kcv: &Kcv) -> Self {
        Self {
            method: kcv.method(),
            value: kcv.value().to_vec(),
        }
    }
}

/// What proves a generated key, as it crosses the wire (see [`KeyCheck`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteKeyCheck {
    /// Check value of a symmetric key.
    Kcv(CheckValue),
    /// Uncompressed public key of an asymmetric key.
    PublicKey([u8; 65]),
}

impl From<&KeyCheck> for RemoteKeyCheck {
    fn from(check: &KeyCheck) -> Self {
        match check {
            KeyCheck::Kcv(kcv) => Self::Kcv(kcv.into()),
            KeyCheck::PublicKey(key) => Self::PublicKey(*key),
        }
    }
}

/// The fields of a successful response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Handshake: the server's challenge and its proof of the shared secret.
    Hello {
        /// Server challenge.
        challenge: [u8; AUTH_LEN],
        /// Server proof.
        proof: [u8; AUTH_LEN],
    },
    /// No fields (authentication accepted, TAC verified, key destroyed).
    Empty,
    /// Bytes: random, WRITE KEY command, external-auth cryptogram.
    Bytes(Vec<u8>),
    /// A generated key.
    Generated {
        /// Its blob.
        blob: KeyBlob,
        /// Its check value or public key.
        check: RemoteKeyCheck,
    },
    /// A check value.
    Kcv(CheckValue),
    /// A derived key and its check value.
    Derived {
        /// Its blob.
        blob: KeyBlob,
        /// Its check value.
        kcv: CheckValue,
    },
    /// MAC2.
    Mac2([u8; 4]),
    /// One verdict per batch record.
    Verdicts(Vec<bool>),
    /// A signature.
    Signature(Signature),
    /// An uncompressed public key.
    PublicKey([u8; 65]),
    /// An exported key block.
    KeyBlock(KeyBlock),
    /// An imported key's blob.
    Blob(KeyBlob),
}

fn malformed(what: &'static str) -> ProtocolError {
    ProtocolError::Malformed(what)
}

fn method_code(method: KcvMethod) -> u8 {
    match method {
        KcvMethod::EncryptZeros => 1,
        KcvMethod::Cmac => 2,
    }
}

fn read_method(r: &mut Reader<'_>) -> Result<KcvMethod, ProtocolError> {
    match r.u8()? {
        1 => Ok(KcvMethod::EncryptZeros),
        2 => Ok(KcvMethod::Cmac),
        _ => Err(malformed("unknown check-value method")),
    }
}

fn read_blob(r: &mut Reader<'_>) -> Result<Result<KeyBlob, HsmError>, ProtocolError> {
    Ok(KeyBlob::from_bytes(r.var()?.to_vec()))
}

/// A key block field: a `var` holding the block's text. Text that is not a key block (not
/// ASCII, wrong length, unknown header code) is an [`HsmError::MalformedKeyBlock`].
fn read_key_block(r: &mut Reader<'_>) -> Result<Result<KeyBlock, HsmError>, ProtocolError> {
    Ok(std::str::from_utf8(r.var()?)
        .map_err(|_| HsmError::MalformedKeyBlock("a key block is ASCII text"))
        .and_then(KeyBlock::parse))
}

/// A digest field: a `var` that must hold [`DIGEST_LEN`] bytes. Another length keeps the
/// grammar and is an [`HsmError::Crypto`] with [`CryptoError::FieldLength`] naming `field`.
fn read_digest(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<Result<[u8; DIGEST_LEN], HsmError>, ProtocolError> {
    let bytes = r.var()?;
    Ok(bytes.try_into().map_err(|_| {
        HsmError::Crypto(CryptoError::FieldLength {
            field,
            expected: "32 bytes",
            actual: bytes.len(),
        })
    }))
}

fn read_factors(r: &mut Reader<'_>) -> Result<Vec<[u8; 8]>, ProtocolError> {
    let count = r.u8()?;
    (0..count).map(|_| r.array()).collect()
}

fn write_factors(w: &mut Writer, factors: &[[u8; 8]]) -> Result<(), ProtocolError> {
    let count = u8::try_from(factors.len()).map_err(|_| malformed("more than 255 factors"))?;
    w.u8(count);
    factors.iter().for_each(|f| {
        w.fixed(f);
    });
    Ok(())
}

fn read_purchase(r: &mut Reader<'_>) -> Result<Purchase, ProtocolError> {
    Ok(Purchase {
        card_random: r.array()?,
        offline_seq: r.u16()?,
        amount: r.u32()?,
        transaction_type: r.u8()?,
        terminal_id: r.array()?,
        terminal_seq: r.u32()?,
        date: r.array()?,
        time: r.array()?,
    })
}

fn write_purchase(w: &mut Writer, p: &Purchase) {
    w.fixed(&p.card_random)
        .u16(p.offline_seq)
        .u32(p.amount)
        .u8(p.transaction_type)
        .fixed(&p.terminal_id)
        .u32(p.terminal_seq)
        .fixed(&p.date)
        .fixed(&p.time);
}

fn read_load(r: &mut Reader<'_>) -> Result<Load, ProtocolError> {
    Ok(Load {
        card_random: r.array()?,
        online_seq: r.u16()?,
        old_balance: r.u32()?,
        amount: r.u32()?,
        transaction_type: r.u8()?,
        terminal_id: r.array()?,
        date: r.array()?,
        time: r.array()?,
    })
}

fn write_load(w: &mut Writer, l: &Load) {
    w.fixed(&l.card_random)
        .u16(l.online_seq)
        .u32(l.old_balance)
        .u32(l.amount)
        .u8(l.transaction_type)
        .fixed(&l.terminal_id)
        .fixed(&l.date)
        .fixed(&l.time);
}

fn read_record(r: &mut Reader<'_>) -> Result<TacRecord, ProtocolError> {
    Ok(TacRecord {
        factors: read_factors(r)?,
        purchase: read_purchase(r)?,
        tac: r.var()?.to_vec(),
    })
}

fn write_record(w: &mut Writer, record: &TacRecord) -> Result<(), ProtocolError> {
    write_factors(w, &record.factors)?;
    write_purchase(w, &record.purchase);
    w.var(&record.tac)?;
    Ok(())
}

fn read_attributes(r: &mut Reader<'_>) -> Result<Result<KeyAttributes, HsmError>, ProtocolError> {
    Ok(KeyAttributes::from_bytes(
        r.take(KeyAttributes::ENCODED_LEN)?,
    ))
}

/// A request decoded as far as the grammar goes: a blob or attribute field that parses but
/// is not a valid blob or attribute set is an [`HsmError`], reported with its own status.
pub type Decoded = Result<Request, HsmError>;

/// Decodes a request body. Never panics, whatever the input; a grammar failure carries the
/// request ID when the header was complete.
pub fn decode_request(body: &[u8]) -> Result<(u32, Decoded), DecodeError> {
    let mut r = Reader::new(body);
    let header = (r.u8(), r.u8(), r.u32());
    let (version, code, id) = match header {
        (Ok(v), Ok(c), Ok(id)) => (v, c, id),
        _ => {
            return Err(DecodeError {
                id: 0,
                error: malformed("header shorter than 6 bytes"),
            });
        }
    };
    let fail = |error| DecodeError { id, error };
    if version != VERSION {
        return Err(fail(ProtocolError::UnsupportedVersion(version)));
    }
    let command = Command::from_code(code).ok_or(fail(ProtocolError::UnknownCommand(code)))?;
    let request = decode_fields(command, &mut r).map_err(fail)?;
    r.finish().map_err(fail)?;
    Ok((id, request))
}

fn decode_fields(command: Command, r: &mut Reader<'_>) -> Result<Decoded, ProtocolError> {
    Ok(Ok(match command {
        Command::Hello => Request::Hello {
            name: String::from_utf8(r.var()?.to_vec())
                .map_err(|_| malformed("client name is not UTF-8"))?,
            nonce: r.array()?,
        },
        Command::Auth => Request::Auth { proof: r.array()? },
        Command::Random => Request::Random { len: r.u16()? },
        Command::GenerateKey => Request::GenerateKey {
            attributes: match read_attributes(r)? {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            },
        },
        Command::Kcv => {
            let key = read_blob(r)?;
            let method = read_method(r)?;
            match key {
                Ok(key) => Request::Kcv { key, method },
                Err(e) => return Ok(Err(e)),
            }
        }
        Command::Derive => {
            let master = read_blob(r)?;
            let factors = read_factors(r)?;
            let attributes = read_attributes(r)?;
            match (master, attributes) {
                (Ok(master), Ok(attributes)) => Request::Derive {
                    master,
                    factors,
                    attributes,
                },
                (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
            }
        }
        Command::ExportKey => {
            let key = read_blob(r)?;
            let kek = read_blob(r)?;
            match (key, kek) {
                (Ok(key), Ok(kek)) => Request::ExportKey { key, kek },
                (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
            }
        }
        Command::ImportKey => {
            let block = read_key_block(r)?;
            let kek = read_blob(r)?;
            match (block, kek) {
                (Ok(block), Ok(kek)) => Request::ImportKey { block, kek },
                (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
            }
        }
        Command::DestroyKey => match read_blob(r)? {
            Ok(key) => Request::DestroyKey { key },
            Err(e) => return Ok(Err(e)),
        },
        Command::LoadMac2 => {
            let master = read_blob(r)?;
            let factors = read_factors(r)?;
            let load = read_load(r)?;
            let mac1 = r.var()?.to_vec();
            match master {
                Ok(master) => Request::LoadMac2 {
                    master,
                    factors,
                    load,
                    mac1,
                },
                Err(e) => return Ok(Err(e)),
            }
        }
        Command::VerifyTac => {
            let master = read_blob(r)?;
            let record = read_record(r)?;
            match master {
                Ok(master) => Request::VerifyTac { master, record },
                Err(e) => return Ok(Err(e)),
            }
        }
        Command::VerifyTacs => {
            let master = read_blob(r)?;
            let count = r.u32()?;
            if count as usize > MAX_BATCH {
                return Err(ProtocolError::BatchTooLarge(count));
            }
            let records = (0..count)
                .map(|_| read_record(r))
                .collect::<Result<_, _>>()?;
            match master {
                Ok(master) => Request::VerifyTacs { master, records },
                Err(e) => return Ok(Err(e)),
            }
        }
        Command::VerifyLoadTac => {
            let master = read_blob(r)?;
            let factors = read_factors(r)?;
            let load = read_load(r)?;
            let tac = r.var()?.to_vec();
            match master {
                Ok(master) => Request::VerifyLoadTac {
                    master,
                    factors,
                    load,
                    tac,
                },
                Err(e) => return Ok(Err(e)),
            }
        }
        Command::WriteKey => {
            let key = read_blob(r)?;
            let key_factors = read_factors(r)?;
            let under = read_blob(r)?;
            let under_factors = read_factors(r)?;
            let challenge = r.var()?.to_vec();
            let p1 = r.u8()?;
            let p2 = r.u8()?;
            let record_header = r.var()?.to_vec();
            match (key, under) {
                (Ok(key), Ok(under)) => Request::WriteKey {
                    key,
                    key_factors,
                    under,
                    under_factors,
                    challenge,
                    p1,
                    p2,
                    record_header,
                },
                (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
            }
        }
        Command::ExternalAuth => {
            let master = read_blob(r)?;
            let factors = read_factors(r)?;
            let challenge = r.var()?.to_vec();
            match master {
                Ok(master) => Request::ExternalAuth {
                    master,
                    factors,
                    challenge,
                },
                Err(e) => return Ok(Err(e)),
            }
        }
        Command::SignSm2 => {
            let key = read_blob(r)?;
            let id = r.var()?.to_vec();
            let message = r.var()?.to_vec();
            match key {
                Ok(key) => Request::SignSm2 { key, id, message },
                Err(e) => return Ok(Err(e)),
            }
        }
        Command::SignP256 => {
            let key = read_blob(r)?;
            let message = r.var()?.to_vec();
            match key {
                Ok(key) => Request::SignP256 { key, message },
                Err(e) => return Ok(Err(e)),
            }
        }
        Command::PublicKey => match read_blob(r)? {
            Ok(key) => Request::PublicKey { key },
            Err(e) => return Ok(Err(e)),
        },
        Command::SignSm2Digest => {
            let key = read_blob(r)?;
            let e = read_digest(r, "SM2 digest e")?;
            match (key, e) {
                (Ok(key), Ok(e)) => Request::SignSm2Digest { key, e },
                (Err(error), _) | (_, Err(error)) => return Ok(Err(error)),
            }
        }
        Command::SignP256Digest => {
            let key = read_blob(r)?;
            let digest = read_digest(r, "SHA-256 digest")?;
            match (key, digest) {
                (Ok(key), Ok(digest)) => Request::SignP256Digest { key, digest },
                (Err(error), _) | (_, Err(error)) => return Ok(Err(error)),
            }
        }
    }))
}

impl Request {
    /// The command code of this request.
    pub fn command(&self) -> Command {
        match self {
            Self::Hello { .. } => Command::Hello,
            Self::Auth { .. } => Command::Auth,
            Self::Random { .. } => Command::Random,
            Self::GenerateKey { .. } => Command::GenerateKey,
            Self::Kcv { .. } => Command::Kcv,
            Self::Derive { .. } => Command::Derive,
            Self::ExportKey { .. } => Command::ExportKey,
            Self::ImportKey { .. } => Command::ImportKey,
            Self::DestroyKey { .. } => Command::DestroyKey,
            Self::LoadMac2 { .. } => Command::LoadMac2,
            Self::VerifyTac { .. } => Command::VerifyTac,
            Self::VerifyTacs { .. } => Command::VerifyTacs,
            Self::VerifyLoadTac { .. } => Command::VerifyLoadTac,
            Self::WriteKey { .. } => Command::WriteKey,
            Self::ExternalAuth { .. } => Command::ExternalAuth,
            Self::SignSm2 { .. } => Command::SignSm2,
            Self::SignP256 { .. } => Command::SignP256,
            Self::PublicKey { .. } => Command::PublicKey,
            Self::SignSm2Digest { .. } => Command::SignSm2Digest,
            Self::SignP256Digest { .. } => Command::SignP256Digest,
        }
    }

    /// Encodes the request body with request ID `id`.
    pub fn encode(&self, id: u32) -> Result<Vec<u8>, ProtocolError> {
        let mut w = Writer::default();
        w.u8(VERSION).u8(self.command() as u8).u32(id);
        match self {
            Self::Hello { name, nonce } => {
                w.var(name.as_bytes())?.fixed(nonce);
            }
            Self::Auth { proof } => {
                w.fixed(proof);
            }
            Self::Random { len } => {
                w.u16(*len);
            }
            Self::GenerateKey { attributes } => {
                w.fixed(&attributes.to_bytes());
            }
            Self::Kcv { key, method } => {
                w.var(key.as_bytes())?.u8(method_code(*method));
            }
            Self::Derive {
                master,
                factors,
                attributes,
            } => {
                w.var(master.as_bytes())?;
                write_factors(&mut w, factors)?;
                w.fixed(&attributes.to_bytes());
            }
            Self::ExportKey { key, kek } => {
                w.var(key.as_bytes())?.var(kek.as_bytes())?;
            }
            Self::ImportKey { block, kek } => {
                w.var(block.as_str().as_bytes())?.var(kek.as_bytes())?;
            }
            Self::DestroyKey { key } => {
                w.var(key.as_bytes())?;
            }
            Self::LoadMac2 {
                master,
                factors,
                load,
                mac1,
            } => {
                w.var(master.as_bytes())?;
                write_factors(&mut w, factors)?;
                write_load(&mut w, load);
                w.var(mac1)?;
            }
            Self::VerifyTac { master, record } => {
                w.var(master.as_bytes())?;
                write_record(&mut w, record)?;
            }
            Self::VerifyTacs { master, records } => {
                w.var(master.as_bytes())?;
                let count = u32::try_from(records.len())
                    .ok()
                    .filter(|&n| n as usize <= MAX_BATCH)
                    .ok_or(ProtocolError::BatchTooLarge(
                        u32::try_from(records.len()).unwrap_or(u32::MAX),
                    ))?;
                w.u32(count);
                for record in records {
                    write_record(&mut w, record)?;
                }
            }
            Self::VerifyLoadTac {
                master,
                factors,
                load,
                tac,
            } => {
                w.var(master.as_bytes())?;
                write_factors(&mut w, factors)?;
                write_load(&mut w, load);
                w.var(tac)?;
            }
            Self::WriteKey {
                key,
                key_factors,
                under,
                under_factors,
                challenge,
                p1,
                p2,
                record_header,
            } => {
                w.var(key.as_bytes())?;
                write_factors(&mut w, key_factors)?;
                w.var(under.as_bytes())?;
                write_factors(&mut w, under_factors)?;
                w.var(challenge)?.u8(*p1).u8(*p2).var(record_header)?;
            }
            Self::ExternalAuth {
                master,
                factors,
                challenge,
            } => {
                w.var(master.as_bytes())?;
                write_factors(&mut w, factors)?;
                w.var(challenge)?;
            }
            Self::SignSm2 { key, id, message } => {
                w.var(key.as_bytes())?.var(id)?.var(message)?;
            }
            Self::SignP256 { key, message } => {
                w.var(key.as_bytes())?.var(message)?;
            }
            Self::PublicKey { key } => {
                w.var(key.as_bytes())?;
            }
            Self::SignSm2Digest { key, e: digest } | Self::SignP256Digest { key, digest } => {
                w.var(key.as_bytes())?.var(digest)?;
            }
        }
        if w.bytes.len() > MAX_FRAME {
            return Err(ProtocolError::FrameTooLarge(
                u32::try_from(w.bytes.len()).unwrap_or(u32::MAX),
            ));
        }
        Ok(w.bytes)
    }
}

fn write_check_value(w: &mut Writer, kcv: &CheckValue) -> Result<(), ProtocolError> {
    w.u8(method_code(kcv.method)).var(&kcv.value)?;
    Ok(())
}

fn read_check_value(r: &mut Reader<'_>) -> Result<CheckValue, ProtocolError> {
    Ok(CheckValue {
        method: read_method(r)?,
        value: r.var()?.to_vec(),
    })
}

fn read_response_blob(r: &mut Reader<'_>) -> Result<KeyBlob, ProtocolError> {
    read_blob(r)?.map_err(|_| malformed("invalid key blob in response"))
}

/// Encodes a success response body.
pub fn encode_response(id: u32, response: &Response) -> Result<Vec<u8>, ProtocolError> {
    let mut w = Writer::default();
    w.u8(VERSION).u8(Status::Ok as u8).u32(id);
    match response {
        Response::Hello { challenge, proof } => {
            w.fixed(challenge).fixed(proof);
        }
        Response::Empty => {}
        Response::Bytes(bytes) => {
            w.var(bytes)?;
        }
        Response::Generated { blob, check } => {
            w.var(blob.as_bytes())?;
            match check {
                RemoteKeyCheck::Kcv(kcv) => {
                    w.u8(1);
                    write_check_value(&mut w, kcv)?;
                }
                RemoteKeyCheck::PublicKey(key) => {
                    w.u8(2).fixed(key);
                }
            }
        }
        Response::Kcv(kcv) => write_check_value(&mut w, kcv)?,
        Response::Derived { blob, kcv } => {
            w.var(blob.as_bytes())?;
            write_check_value(&mut w, kcv)?;
        }
        Response::Mac2(mac) => {
            w.fixed(mac);
        }
        Response::Verdicts(verdicts) => {
            w.u32(u32::try_from(verdicts.len()).map_err(|_| malformed("too many verdicts"))?);
            verdicts.iter().for_each(|&v| {
                w.u8(u8::from(v));
            });
        }
        Response::Signature(signature) => {
            w.fixed(&signature.to_raw());
        }
        Response::PublicKey(key) => {
            w.fixed(key);
        }
        Response::KeyBlock(block) => {
            w.var(block.as_str().as_bytes())?;
        }
        Response::Blob(blob) => {
            w.var(blob.as_bytes())?;
        }
    }
    Ok(w.bytes)
}

/// Encodes an error response body: the status and a UTF-8 message (the error's text, which
/// never carries key material).
pub fn encode_error(id: u32, status: Status, message: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(VERSION).u8(status as u8).u32(id);
    let text = &message[..message.floor_char_boundary(usize::from(u16::MAX))];
    w.u16(text.len() as u16).fixed(text.as_bytes());
    w.bytes
}

/// A decoded response: its request ID and either its fields or the refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedResponse {
    /// The request ID echoed.
    pub id: u32,
    /// The fields, or the status and message of a refusal.
    pub result: Result<Response, (Status, String)>,
}

/// Decodes a response body to `command`. Never panics.
pub fn decode_response(command: Command, body: &[u8]) -> Result<DecodedResponse, ProtocolError> {
    let mut r = Reader::new(body);
    let version = r.u8()?;
    if version != VERSION {
        return Err(ProtocolError::UnsupportedVersion(version));
    }
    let status = Status::from_code(r.u8()?).ok_or(malformed("unknown status code"))?;
    let id = r.u32()?;
    if status != Status::Ok {
        let message = String::from_utf8_lossy(r.var()?).into_owned();
        r.finish()?;
        return Ok(DecodedResponse {
            id,
            result: Err((status, message)),
        });
    }
    let response = match command {
        Command::Hello => Response::Hello {
            challenge: r.array()?,
            proof: r.array()?,
        },
        Command::Auth | Command::VerifyTac | Command::VerifyLoadTac | Command::DestroyKey => {
            Response::Empty
        }
        Command::Random | Command::WriteKey | Command::ExternalAuth => {
            Response::Bytes(r.var()?.to_vec())
        }
        Command::GenerateKey => {
            let blob = read_response_blob(&mut r)?;
            let check = match r.u8()? {
                1 => RemoteKeyCheck::Kcv(read_check_value(&mut r)?),
                2 => RemoteKeyCheck::PublicKey(r.array()?),
                _ => return Err(malformed("unknown key check kind")),
            };
            Response::Generated { blob, check }
        }
        Command::Kcv => Response::Kcv(read_check_value(&mut r)?),
        Command::Derive => Response::Derived {
            blob: read_response_blob(&mut r)?,
            kcv: read_check_value(&mut r)?,
        },
        Command::LoadMac2 => Response::Mac2(r.array()?),
        Command::VerifyTacs => {
            let count = r.u32()?;
            if count as usize > MAX_BATCH {
                return Err(ProtocolError::BatchTooLarge(count));
            }
            Response::Verdicts(
                (0..count)
                    .map(|_| match r.u8()? {
                        0 => Ok(false),
                        1 => Ok(true),
                        _ => Err(malformed("verdict is neither 0 nor 1")),
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        Command::SignSm2 | Command::SignP256 | Command::SignSm2Digest | Command::SignP256Digest => {
            Response::Signature(Signature::new(r.array()?, r.array()?))
        }
        Command::PublicKey => Response::PublicKey(r.array()?),
        Command::ExportKey => Response::KeyBlock(
            read_key_block(&mut r)?.map_err(|_| malformed("invalid key block in response"))?,
        ),
        Command::ImportKey => Response::Blob(read_response_blob(&mut r)?),
    };
    r.finish()?;
    Ok(DecodedResponse {
        id,
        result: Ok(response),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{Exportability, KeyAlgorithm, KeyUsage, Modes};

    /// A small deterministic generator (xorshift), enough to fuzz the decoder.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn decoding_random_bytes_never_panics() {
        let mut state = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let len = (next(&mut state) % 96) as usize;
            let mut body: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
            // Half of the inputs get a valid version and command, to reach the field parsers.
            if body.len() >= 2 && next(&mut state).is_multiple_of(2) {
                body[0] = VERSION;
                let commands = Command::ALL;
                body[1] = commands[(next(&mut state) % commands.len() as u64) as usize] as u8;
            }
            let _ = decode_request(&body);
            for command in Command::ALL {
                let _ = decode_response(command, &body);
            }
        }
    }

    #[test]
    fn requests_round_trip_and_truncations_are_malformed() {
        let attributes = KeyAttributes::new(
            KeyUsage::Tac,
            KeyAlgorithm::Sm4,
            Modes::DERIVE,
            Exportability::None,
            1,
        )
        .unwrap();
        let request = Request::GenerateKey { attributes };
        let body = request.encode(77).unwrap();
        let (id, decoded) = decode_request(&body).unwrap();
        assert_eq!((id, decoded.unwrap()), (77, request));
        for cut in 0..body.len() {
            let error = decode_request(&body[..cut]).unwrap_err();
            assert_eq!(error.error.status(), Status::MalformedFrame);
        }
    }

    #[test]
    fn key_management_requests_round_trip_and_refuse_bad_fields() {
        let hsm = crate::Hsm::new(crate::Lmk::generate().unwrap());
        let kek = hsm
            .generate_key(
                KeyAttributes::new(
                    KeyUsage::KeyEncryption,
                    KeyAlgorithm::Aes256,
                    Modes::ENCRYPT,
                    Exportability::None,
                    1,
                )
                .unwrap(),
            )
            .unwrap()
            .blob;
        let key = hsm
            .generate_key(
                KeyAttributes::new(
                    KeyUsage::Purchase,
                    KeyAlgorithm::Sm4,
                    Modes::DERIVE,
                    Exportability::UnderKek,
                    1,
                )
                .unwrap(),
            )
            .unwrap()
            .blob;
        let block = hsm.export_key(&key, &kek).unwrap();
        let load = Load {
            card_random: [1, 2, 3, 4],
            online_seq: 5,
            old_balance: 6,
            amount: 7,
            transaction_type: 2,
            terminal_id: [8; 6],
            date: [9; 4],
            time: [10; 3],
        };
        let requests = [
            Request::ExportKey {
                key: key.clone(),
                kek: kek.clone(),
            },
            Request::ImportKey {
                block: block.clone(),
                kek: kek.clone(),
            },
            Request::DestroyKey { key: key.clone() },
            Request::VerifyLoadTac {
                master: key.clone(),
                factors: vec![[1; 8], [2; 8]],
                load,
                tac: vec![0xAB; 4],
            },
        ];
        for request in requests {
            let body = request.encode(3).unwrap();
            let (id, decoded) = decode_request(&body).unwrap();
            assert_eq!((id, decoded.unwrap()), (3, request));
            for cut in 6..body.len() {
                let error = decode_request(&body[..cut]).unwrap_err();
                assert_eq!(error.error.status(), Status::MalformedFrame);
                assert_eq!(error.id, 3);
            }
            let mut trailing = body.clone();
            trailing.push(0);
            assert_eq!(
                decode_request(&trailing).unwrap_err().error.status(),
                Status::MalformedFrame
            );
        }
        // A key block field holding text that is no key block, or bytes that are no text:
        // the grammar holds, the field is refused with the key block's own status.
        for text in [
            &b"D0144"[..],
            &[0xFF; 144][..],
            &block.as_str().as_bytes()[1..],
        ] {
            let mut w = Writer::default();
            w.u8(VERSION).u8(Command::ImportKey as u8).u32(4);
            w.var(text).unwrap().var(kek.as_bytes()).unwrap();
            let (id, decoded) = decode_request(&w.bytes).unwrap();
            assert_eq!(id, 4);
            let error = decoded.unwrap_err();
            assert!(matches!(error, HsmError::MalformedKeyBlock(_)), "{error:?}");
            assert_eq!(Status::of_hsm_error(&error), Status::MalformedKeyBlock);
        }
        // Responses: a block and a blob round trip; a response block that is no block is a
        // protocol failure.
        for (command, response) in [
            (Command::ExportKey, Response::KeyBlock(block.clone())),
            (Command::ImportKey, Response::Blob(key.clone())),
            (Command::DestroyKey, Response::Empty),
            (Command::VerifyLoadTac, Response::Empty),
        ] {
            let body = encode_response(9, &response).unwrap();
            assert_eq!(
                decode_response(command, &body).unwrap(),
                DecodedResponse {
                    id: 9,
                    result: Ok(response)
                }
            );
        }
        let mut w = Writer::default();
        w.u8(VERSION).u8(Status::Ok as u8).u32(9);
        w.var(b"not a key block").unwrap();
        assert!(decode_response(Command::ExportKey, &w.bytes).is_err());
    }

    #[test]
    fn digest_requests_round_trip_and_refuse_other_lengths() {
        let hsm = crate::Hsm::new(crate::Lmk::generate().unwrap());
        let key = hsm
            .generate_key(
                KeyAttributes::new(
                    KeyUsage::Signature,
                    KeyAlgorithm::Sm2,
                    Modes::SIGN,
                    Exportability::None,
                    1,
                )
                .unwrap(),
            )
            .unwrap()
            .blob;
        for request in [
            Request::SignSm2Digest {
                key: key.clone(),
                e: [0xE5; DIGEST_LEN],
            },
            Request::SignP256Digest {
                key: key.clone(),
                digest: [0xD1; DIGEST_LEN],
            },
        ] {
            let body = request.encode(5).unwrap();
            let (id, decoded) = decode_request(&body).unwrap();
            assert_eq!((id, decoded.unwrap()), (5, request.clone()));
            for cut in 6..body.len() {
                let error = decode_request(&body[..cut]).unwrap_err();
                assert_eq!(error.error.status(), Status::MalformedFrame);
            }
            for len in [0, 20, 31, 33, 64] {
                let mut w = Writer::default();
                w.u8(VERSION).u8(request.command() as u8).u32(6);
                w.var(key.as_bytes()).unwrap().var(&vec![0; len]).unwrap();
                let (id, decoded) = decode_request(&w.bytes).unwrap();
                assert_eq!(id, 6);
                let error = decoded.unwrap_err();
                assert!(
                    matches!(
                        error,
                        HsmError::Crypto(CryptoError::FieldLength { actual, .. }) if actual == len
                    ),
                    "{error:?}"
                );
                assert_eq!(Status::of_hsm_error(&error), Status::Crypto);
            }
            let signature = Response::Signature(Signature::new([1; 32], [2; 32]));
            let body = encode_response(7, &signature).unwrap();
            assert_eq!(
                decode_response(request.command(), &body).unwrap().result,
                Ok(signature)
            );
        }
        assert_eq!(Command::from_code(0x43), Some(Command::SignSm2Digest));
        assert_eq!(Command::from_code(0x44), Some(Command::SignP256Digest));
    }

    #[test]
    fn new_error_variants_have_their_own_status() {
        for (error, status) in [
            (HsmError::Destroyed, Status::Destroyed),
            (
                HsmError::DestroyedLog(std::io::ErrorKind::InvalidData.into()),
                Status::DestroyedLog,
            ),
            (
                HsmError::SharedSecretLength {
                    expected: 16,
                    actual: 32,
                },
                Status::SharedSecretLength,
            ),
            (
                HsmError::CustodyParameters {
                    threshold: 1,
                    count: 3,
                },
                Status::CustodyParameters,
            ),
        ] {
            assert_eq!(Status::of_hsm_error(&error), status);
            assert_eq!(Status::from_code(status as u8), Some(status));
        }
        assert_eq!(Status::Destroyed as u8, 0x22);
    }

    #[test]
    fn status_codes_are_distinct_and_round_trip() {
        for status in Status::ALL {
            assert_eq!(Status::from_code(status as u8), Some(status));
        }
        let mut codes: Vec<u8> = Status::ALL.iter().map(|s| *s as u8).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Status::ALL.len());
    }
}
