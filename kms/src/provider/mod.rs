//! The HSM seam: every cryptographic act of the KMS goes through the [`Hsm`] trait, so the
//! same key tree, ceremonies and API run on the in-process simulator ([`local`]), on a
//! simulator reached over the host protocol ([`remote`]) or on a PKCS#11 token ([`pkcs11`]).
//!
//! Keys cross the seam only as [`WrappedKey`]s: the provider's own sealed form (an LMK blob
//! for the simulator, a MAC-bound token object reference for PKCS#11) with the attributes
//! bound to it. A provider that cannot do an operation answers
//! [`KmsError::Unsupported`](crate::KmsError::Unsupported); it never falls back to doing the
//! operation with a clear key outside the HSM.

pub mod closed;
pub mod local;
pub mod pkcs11;
pub mod remote;

use crate::error::Result;
use std::fmt;
use ykt_crypto::{Kcv, KcvMethod, Load, Signature};
use ykt_hsm_sim::shamir::Share;
use ykt_hsm_sim::{FormedKcvs, KeyAttributes, KeyComponent, TacCheck};

pub use closed::Closed;
pub use local::LocalHsm;
pub use pkcs11::Pkcs11Hsm;
pub use remote::RemoteHsm;

/// A key as the KMS stores it: the provider's wrapped bytes and the attributes bound to
/// them. Safe to store and log the length of; the bytes open only inside the HSM that made
/// them.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    attributes: KeyAttributes,
    bytes: Vec<u8>,
}

impl WrappedKey {
    /// A wrapped key of `bytes` with `attributes`. The provider checks the binding of the two
    /// when it uses the key.
    pub fn new(attributes: KeyAttributes, bytes: Vec<u8>) -> Self {
        Self { attributes, bytes }
    }

    /// The attributes fixed when the key was made.
    pub fn attributes(&self) -> &KeyAttributes {
        &self.attributes
    }

    /// The provider's wrapped form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("attributes", &self.attributes)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// What proves a generated key to its custodians.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// Check value of a symmetric key (default method of its algorithm).
    Kcv(Kcv),
    /// Uncompressed SEC 1 public key of an SM2 or P-256 key.
    PublicKey([u8; 65]),
}

impl From<ykt_hsm_sim::KeyCheck> for KeyCheck {
    fn from(check: ykt_hsm_sim::KeyCheck) -> Self {
        match check {
            ykt_hsm_sim::KeyCheck::Kcv(kcv) => Self::Kcv(kcv),
            ykt_hsm_sim::KeyCheck::PublicKey(point) => Self::PublicKey(point),
        }
    }
}

/// A key made by the HSM and what proves it.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The key, wrapped.
    pub key: WrappedKey,
    /// Its check value or public key.
    pub check: KeyCheck,
}

/// A key's custody backup: the key sealed in a key block under a one-time custody KEK, and
/// that KEK split into Shamir shares for the custodians. A new split makes older shares
/// useless, since the block they open is replaced.
pub struct Custody {
    /// The key block (TR-31 version D style text), safe to store.
    pub block: String,
    /// One share per custodian, in index order: clear secrets for the officers only.
    pub shares: Vec<Share>,
    /// Check value of the custody KEK, shown beside each share.
    pub kek_kcv: Kcv,
}

impl fmt::Debug for Custody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custody")
            .field("shares", &self.shares.len())
            .field("kek_kcv", &self.kek_kcv.to_string())
            .finish()
    }
}

/// A WRITE KEY (84 D4) request over wrapped keys; see
/// [`ykt_hsm_sim::WriteKeyRequest`] for the meaning of each field.
#[derive(Debug, Clone, Copy)]
pub struct WriteKey<'a> {
    /// Master of the key to write.
    pub key: &'a WrappedKey,
    /// Factors from that master to the key written.
    pub key_factors: &'a [[u8; 8]],
    /// Master of the card's current key that protects the write.
    pub under: &'a WrappedKey,
    /// Factors from that master to the card's current key.
    pub under_factors: &'a [[u8; 8]],
    /// The card's GET CHALLENGE answer.
    pub challenge: &'a [u8],
    /// P1 of the command.
    pub p1: u8,
    /// P2 of the command (key ID).
    pub p2: u8,
    /// Key record header before the key bytes.
    pub record_header: &'a [u8],
}

/// What to sign, and how.
#[derive(Debug, Clone, Copy)]
pub enum SignInput<'a> {
    /// SM2 with SM3 over `ZA(id) || message` (GB/T 32918.2).
    Sm2 {
        /// The signer's distinguishing ID.
        id: &'a [u8],
        /// The message.
        message: &'a [u8],
    },
    /// ECDSA P-256 with SHA-256 over `message`.
    P256 {
        /// The message.
        message: &'a [u8],
    },
    /// SM2 over a digest the caller computed: `e = SM3(ZA || M)` with ZA from the signer's ID
    /// and the key's public key (GB/T 32918.2 steps A1–A2, as
    /// [`Sm2PublicKey::digest`](ykt_crypto::sm2::Sm2PublicKey::digest) computes it). The
    /// signature verifies as an [`SignInput::Sm2`] one over `M` by that ID.
    Sm2Digest {
        /// `e = SM3(ZA || M)`.
        e: &'a [u8; 32],
    },
    /// ECDSA P-256 over a SHA-256 digest the caller computed. The signature verifies as a
    /// [`SignInput::P256`] one over the message that was hashed.
    P256Digest {
        /// SHA-256 of the message.
        digest: &'a [u8; 32],
    },
}

/// The kind of HSM behind a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// The simulator in this process.
    InProcess,
    /// A simulator reached over the host protocol.
    Remote,
    /// A PKCS#11 token.
    Pkcs11,
    /// None: a KMS opened for store-only acts.
    Closed,
}

impl ProviderKind {
    /// Lower-case name (`in-process`, `remote`, `pkcs11`, `closed`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Remote => "remote",
            Self::Pkcs11 => "pkcs11",
            Self::Closed => "closed",
        }
    }
}

/// The HSM operations the KMS needs. Implementations are `Send + Sync` and take `&self`;
/// blocking calls (a network round trip, a token call) are short and bounded.
///
/// Every method refuses keys whose attributes forbid the operation, exactly as the
/// simulator's engine does; the doc of each method names the engine command it mirrors.
pub trait Hsm: Send + Sync {
    /// The kind of HSM.
    fn kind(&self) -> ProviderKind;

    /// Generates a key ([`ykt_hsm_sim::Hsm::generate_key`]).
    fn generate_key(&self, attributes: KeyAttributes) -> Result<GeneratedKey>;

    /// Forms a symmetric key from 2 or 3 clear components, each checked against its expected
    /// KCV ([`ykt_hsm_sim::Hsm::form_key`]).
    fn form_key(
        &self,
        attributes: KeyAttributes,
        components: &[KeyComponent],
    ) -> Result<(WrappedKey, FormedKcvs)>;

    /// Makes the custody backup of a key for `count` custodians, any `threshold` of whom can
    /// recover it ([`ykt_hsm_sim::Hsm::custody_split`]).
    fn custody_split(&self, key: &WrappedKey, threshold: u8, count: u8) -> Result<Custody>;

    /// Recovers a key from its custody block and a quorum of shares
    /// ([`ykt_hsm_sim::Hsm::custody_recover`]).
    fn custody_recover(&self, block: &str, shares: &[Share]) -> Result<WrappedKey>;

    /// The check value of a symmetric key with `method` ([`ykt_hsm_sim::Hsm::kcv`]).
    fn kcv(&self, key: &WrappedKey, method: KcvMethod) -> Result<Kcv>;

    /// Diversifies `master` by 1 to 3 factors into a new wrapped key
    /// ([`ykt_hsm_sim::Hsm::derive_key`]).
    fn derive_key(
        &self,
        master: &WrappedKey,
        factors: &[[u8; 8]],
        attributes: KeyAttributes,
    ) -> Result<(WrappedKey, Kcv)>;

    /// Online load: checks MAC1 and returns MAC2 ([`ykt_hsm_sim::Hsm::load_mac2`]).
    fn load_mac2(
        &self,
        dlk_master: &WrappedKey,
        factors: &[[u8; 8]],
        load: &Load,
        mac1: &[u8],
    ) -> Result<[u8; 4]>;

    /// Verifies a load's TAC ([`ykt_hsm_sim::Hsm::verify_load_tac`]).
    fn verify_load_tac(
        &self,
        dtk_master: &WrappedKey,
        factors: &[[u8; 8]],
        load: &Load,
        tac: &[u8],
    ) -> Result<()>;

    /// Verifies the TACs of a batch of purchase records under one TAC master; one verdict
    /// per record ([`ykt_hsm_sim::Hsm::verify_purchase_tacs`]).
    fn verify_purchase_tacs(
        &self,
        dtk_master: &WrappedKey,
        records: &[TacCheck<'_>],
    ) -> Result<Vec<bool>>;

    /// The WRITE KEY command for a card ([`ykt_hsm_sim::Hsm::write_key_command`]).
    fn write_key_command(&self, request: &WriteKey<'_>) -> Result<Vec<u8>>;

    /// The EXTERNAL AUTHENTICATE cryptogram for a card's challenge
    /// ([`ykt_hsm_sim::Hsm::external_auth_cryptogram`]).
    fn external_auth_cryptogram(
        &self,
        master: &WrappedKey,
        factors: &[[u8; 8]],
        challenge: &[u8],
    ) -> Result<Vec<u8>>;

    /// Exports a key under a KEK as key block text ([`ykt_hsm_sim::Hsm::export_key`]).
    fn export_key(&self, key: &WrappedKey, kek: &WrappedKey) -> Result<String>;

    /// Imports key block text under a KEK ([`ykt_hsm_sim::Hsm::import_key`]).
    fn import_key(&self, block: &str, kek: &WrappedKey) -> Result<WrappedKey>;

    /// Signs with an SM2 or P-256 key, a message or a digest the caller computed
    /// ([`ykt_hsm_sim::Hsm::sign_sm2`], [`ykt_hsm_sim::Hsm::sign_sm2_digest`],
    /// [`ykt_hsm_sim::Hsm::sign_p256`], [`ykt_hsm_sim::Hsm::sign_p256_digest`]).
    fn sign(&self, key: &WrappedKey, input: SignInput<'_>) -> Result<Signature>;

    /// The uncompressed public key of an SM2 or P-256 key.
    fn public_key(&self, key: &WrappedKey) -> Result<[u8; 65]>;

    /// Fills `out` with random bytes from the HSM.
    fn random(&self, out: &mut [u8]) -> Result<()>;

    /// Destroys a key in the HSM: the wrapped form is refused from then on
    /// ([`ykt_hsm_sim::Hsm::destroy_key`]; a token object is deleted).
    fn destroy_key(&self, key: &WrappedKey) -> Result<()>;
}
