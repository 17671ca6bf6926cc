//! The HSM engine: every command opens the blobs it is given under the LMK, checks the
//! attributes bound to them, and returns only blobs, check values, MACs, cryptograms,
//! signatures, public keys, key blocks and custody shares: never a clear key.
//!
//! # Destroyed keys
//!
//! [`Hsm::destroy_key`] records a blob as destroyed; from then on every command that opens it
//! (or a byte-identical copy) fails with [`HsmError::Destroyed`]. A blob is identified by its
//! nonce and AES-GCM tag (28 bytes already in the blob, no hashing); the set of destroyed
//! identities sits behind a read-write lock, so the check costs one shared lock and one set
//! lookup per opened blob (once per batch for a batch TAC verification). A command that the
//! blob's attributes refuse anyway may report that refusal instead: attribute checks come
//! before the blob is opened.
//!
//! [`Hsm::new`] keeps the set in memory only. [`Hsm::with_destroyed_log`] also keeps it in an
//! append-only file, one record per line: the 28 identity bytes as 56 upper-case hex digits
//! and a line feed. A record is appended and synced to disk before [`Hsm::destroy_key`]
//! returns; a final line cut short (by a crash during an append that never returned) is
//! dropped when the file is opened, any other malformed line refuses the file.

use crate::attributes::{Exportability, KeyAlgorithm, KeyAttributes, KeyUsage, Modes};
use crate::blob::{BlobId, ID_LEN, KeyBlob, OpenBuffer, open_buffer};
use crate::component::{FormedKcvs, KeyComponent, combine};
use crate::error::{HsmError, Result};
use crate::keyblock::{KeyBlock, hex_pair, hex_value};
use crate::lmk::Lmk;
use crate::policy::{
    card_key_mode, check_card_key, check_derivation, check_factors, check_signing, forbidden,
    profile_of, require_mode, require_usage,
};
use crate::shamir::{self, ShamirError, Share};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use ykt_crypto::mac::verify;
use ykt_crypto::p256::P256PrivateKey;
use ykt_crypto::sm2::Sm2PrivateKey;
use ykt_crypto::{
    CryptoError, Diversifier, Kcv, KcvMethod, Load, Profile, Purchase, Signature,
    SymmetricAlgorithm, SymmetricKey, secure_messaging,
};
use zeroize::Zeroizing;

/// What proves a generated key to its custodians: the check value of a symmetric key, the
/// public key of an asymmetric one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// Check value with the default method of the algorithm.
    Kcv(Kcv),
    /// Uncompressed SEC 1 public key (`04 || x || y`).
    PublicKey([u8; 65]),
}

/// A generated key: its blob and what proves it.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The key sealed under the LMK.
    pub blob: KeyBlob,
    /// Its check value or public key.
    pub check: KeyCheck,
}

/// One purchase record of a batch TAC verification.
#[derive(Debug, Clone, Copy)]
pub struct TacCheck<'a> {
    /// Diversification factors from the TAC master to the card's DTK, top level first.
    pub factors: &'a [[u8; 8]],
    /// The purchase as recorded by the terminal.
    pub purchase: &'a Purchase,
    /// The TAC the card returned.
    pub tac: &'a [u8],
}

/// A WRITE KEY (84 D4) request: which key to write to the card, under which of the card's
/// keys, and the card's challenge.
#[derive(Debug, Clone, Copy)]
pub struct WriteKeyRequest<'a> {
    /// Master of the key to write (for example the purchase master).
    pub key: &'a KeyBlob,
    /// Factors from that master to the key written (empty: the key itself, a PSAM master).
    pub key_factors: &'a [[u8; 8]],
    /// Master of the card's current key that protects the write (the DF master key 39/00,
    /// or a PSAM's application master key).
    pub under: &'a KeyBlob,
    /// Factors from that master to the card's current key (empty: the key itself).
    pub under_factors: &'a [[u8; 8]],
    /// The card's GET CHALLENGE answer.
    pub challenge: &'a [u8],
    /// P1: 01 to add, the key type to modify (00 for a PSAM application key).
    pub p1: u8,
    /// P2: key ID.
    pub p2: u8,
    /// The key record before the key bytes: `type use change version algID` (group A) or
    /// the layout of the key's group; the HSM appends the key.
    pub record_header: &'a [u8],
}

/// The longest key-record header accepted by WRITE KEY.
const MAX_RECORD_HEADER: usize = 16;

/// The most shares a custody split makes.
pub const MAX_CUSTODIANS: u8 = 16;

/// A key's custody backup ([`Hsm::custody_split`]): the key in a custody key block under a
/// one-time AES-256 custody KEK, and that KEK split into Shamir shares, one per custodian.
///
/// `Debug` shows the block header, the share indexes and threshold and the KEK's check
/// value, never a share value.
#[derive(Clone)]
pub struct Custody {
    /// The key with its attributes, sealed under the custody KEK.
    pub block: KeyBlock,
    /// The custody KEK's shares, indexes 1 to the count; as secret as the key.
    pub shares: Vec<Share>,
    /// The custody KEK's check value (AES CMAC), to be shown beside each share.
    pub kek_kcv: Kcv,
}

impl fmt::Debug for Custody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custody")
            .field("block", &self.block)
            .field(
                "share_indexes",
                &self.shares.iter().map(Share::index).collect::<Vec<_>>(),
            )
            .field("threshold", &self.shares.first().map(Share::threshold))
            .field("kek_kcv", &self.kek_kcv.to_string())
            .finish()
    }
}

/// The append-only file of destroyed blob identities.
struct DestroyedLog {
    file: File,
    /// Length of the valid records, to cut a failed append back to.
    len: u64,
}

/// Length of one log record: the identity in hex and a line feed.
const LOG_RECORD_LEN: usize = 2 * ID_LEN + 1;

impl DestroyedLog {
    /// Opens (or creates, mode 0600) the log at `path` and reads its records.
    fn open(path: &Path) -> io::Result<(Self, HashSet<BlobId>)> {
        let created = !path.exists();
        let mut options = std::fs::OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        if created {
            sync_parent(path)?;
        }
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut destroyed = HashSet::new();
        for (number, line) in text[..complete]
            .split_inclusive(|b| *b == b'\n')
            .enumerate()
        {
            let id = parse_record(line).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("line {} is not a destroyed-key record", number + 1),
                )
            })?;
            destroyed.insert(id);
        }
        let len = complete as u64;
        if complete < text.len() {
            file.set_len(len)?;
            file.sync_all()?;
        }
        Ok((Self { file, len }, destroyed))
    }

    /// Appends the record of `id` and syncs it to disk; a failed append is cut off again.
    fn append(&mut self, id: &BlobId) -> io::Result<()> {
        let mut record = [0u8; LOG_RECORD_LEN];
        for (pair, byte) in record.chunks_exact_mut(2).zip(id) {
            pair.copy_from_slice(&hex_pair(*byte));
        }
        record[LOG_RECORD_LEN - 1] = b'\n';
        let written = self
            .file
            .write_all(&record)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += LOG_RECORD_LEN as u64;
                Ok(())
            }
            Err(error) => {
                // Best effort: a record cut short would otherwise spoil the next one.
                drop(self.file.set_len(self.len));
                Err(error)
            }
        }
    }
}

/// Syncs the directory holding `path`, so that a newly created file survives a crash.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// One log line (with its line feed) back to an identity.
fn parse_record(line: &[u8]) -> Option<BlobId> {
    if line.len() != LOG_RECORD_LEN {
        return None;
    }
    let mut id = [0u8; ID_LEN];
    for (byte, pair) in id.iter_mut().zip(line.chunks_exact(2)) {
        *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(id)
}

/// The in-process HSM. Commands take `&self`; the engine is `Send + Sync` and can be shared
/// between threads behind an `Arc`.
pub struct Hsm {
    lmk: Lmk,
    /// Identities of the destroyed blobs ([`KeyBlob::id`]).
    destroyed: RwLock<HashSet<BlobId>>,
    /// Where they are persisted, if anywhere. Held while a destruction is recorded.
    log: Mutex<Option<DestroyedLog>>,
    /// Master and signing keys kept open, by their whole blob ([`Hsm::kept_open`]).
    opened: RwLock<HashMap<Vec<u8>, Arc<OpenedKey>>>,
}

/// A key kept open: a master (derive mode) used for every card of a region or school, or a
/// signing key, whose building from its scalar costs a scalar multiplication (the public
/// key), as much as a signature.
enum OpenedKey {
    Master(SymmetricKey),
    Sm2(Sm2PrivateKey),
    P256(P256PrivateKey),
}

/// What a signing command signs: a message, or the digest the caller computed from it.
#[derive(Clone, Copy)]
enum ToSign<'a> {
    /// SM2 over `SM3(ZA(id) || message)`.
    Sm2Message { id: &'a [u8], message: &'a [u8] },
    /// SM2 over a given `e = SM3(ZA || M)`.
    Sm2Digest(&'a [u8; 32]),
    /// ECDSA P-256 over `SHA-256(message)`.
    P256Message(&'a [u8]),
    /// ECDSA P-256 over a given SHA-256 digest.
    P256Digest(&'a [u8; 32]),
}

impl ToSign<'_> {
    /// The algorithm of the key that signs it.
    fn algorithm(self) -> KeyAlgorithm {
        match self {
            Self::Sm2Message { .. } | Self::Sm2Digest(_) => KeyAlgorithm::Sm2,
            Self::P256Message(_) | Self::P256Digest(_) => KeyAlgorithm::P256,
        }
    }
}

/// The most keys kept open; the set is emptied (and the keys wiped) when it is full.
const MAX_OPENED: usize = 256;

impl fmt::Debug for Hsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hsm")
            .field("lmk", &self.lmk)
            .field("destroyed", &read(&self.destroyed).len())
            .field("destroyed_log", &lock(&self.log).is_some())
            .finish()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The symmetric key recombined from `shares`, which must have the algorithm's key length.
fn key_from_shares(algorithm: SymmetricAlgorithm, shares: &[Share]) -> Result<SymmetricKey> {
    let secret = shamir::combine(shares)?;
    if secret.len() != algorithm.key_len() {
        return Err(HsmError::SharedSecretLength {
            expected: algorithm.key_len(),
            actual: secret.len(),
        });
    }
    Ok(SymmetricKey::new(algorithm, &secret)?)
}

/// Checks that `kek` may protect key blocks: key-encryption usage, encrypt mode, AES or
/// SM4.
fn require_kek(kek: &KeyBlob, operation: &'static str) -> Result<()> {
    let attributes = kek.attributes();
    require_usage(attributes, &[KeyUsage::KeyEncryption], operation)?;
    require_mode(attributes, Modes::ENCRYPT, operation)?;
    match attributes.algorithm() {
        KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256 | KeyAlgorithm::Sm4 => Ok(()),
        _ => Err(forbidden(operation, "the KEK must be AES or SM4")),
    }
}

impl Hsm {
    /// An engine working under `lmk`; it remembers destroyed keys in memory only.
    pub fn new(lmk: Lmk) -> Self {
        Self {
            lmk,
            destroyed: RwLock::new(HashSet::new()),
            log: Mutex::new(None),
            opened: RwLock::new(HashMap::new()),
        }
    }

    /// An engine working under `lmk` that remembers destroyed keys across restarts in the
    /// append-only file at `path`, created (mode 0600 on Unix) if absent; see the
    /// [module documentation](self) for its records. Fails with [`HsmError::DestroyedLog`] if
    /// the file cannot be opened or holds a malformed record.
    pub fn with_destroyed_log(lmk: Lmk, path: &Path) -> Result<Self> {
        let (log, destroyed) = DestroyedLog::open(path).map_err(HsmError::DestroyedLog)?;
        Ok(Self {
            lmk,
            destroyed: RwLock::new(destroyed),
            log: Mutex::new(Some(log)),
            opened: RwLock::new(HashMap::new()),
        })
    }

    /// Destroys `blob` in this HSM: once it has authenticated under the LMK (a foreign or
    /// corrupted blob is refused and nothing is recorded), it is recorded as destroyed, and
    /// appended and synced to the log if there is one, before this returns. Every later
    /// command given the blob or a byte-identical copy fails with [`HsmError::Destroyed`].
    /// Destroying a destroyed blob again succeeds and records nothing new.
    pub fn destroy_key(&self, blob: &KeyBlob) -> Result<()> {
        let mut buffer = open_buffer();
        blob.open(&self.lmk, &mut buffer)?;
        drop(buffer);
        let id = blob.id();
        let mut log = lock(&self.log);
        if read(&self.destroyed).contains(&id) {
            return Ok(());
        }
        if let Some(log) = log.as_mut() {
            log.append(&id).map_err(HsmError::DestroyedLog)?;
        }
        self.destroyed
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
        self.opened
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(blob.as_bytes());
        Ok(())
    }

    /// The LMK's check value.
    pub fn lmk_kcv(&self) -> Kcv {
        self.lmk.kcv()
    }

    /// Generates a key with `attributes` (SM4, 3DES, AES, SM2 or P-256).
    pub fn generate_key(&self, attributes: KeyAttributes) -> Result<GeneratedKey> {
        let (blob, check) = match (attributes.algorithm(), attributes.algorithm().symmetric()) {
            (_, Some(algorithm)) => {
                let key = SymmetricKey::generate(algorithm)?;
                (
                    self.seal_symmetric(attributes, &key)?,
                    KeyCheck::Kcv(Kcv::of(&key)),
                )
            }
            (KeyAlgorithm::Sm2, None) => {
                let key = Sm2PrivateKey::generate()?;
                let blob = KeyBlob::seal(&self.lmk, attributes, &key.to_bytes()[..])?;
                (
                    blob,
                    KeyCheck::PublicKey(key.public_key().to_uncompressed()),
                )
            }
            (_, None) => {
                let key = P256PrivateKey::generate()?;
                let blob = KeyBlob::seal(&self.lmk, attributes, &key.to_bytes()[..])?;
                (
                    blob,
                    KeyCheck::PublicKey(key.public_key().to_uncompressed()),
                )
            }
        };
        Ok(GeneratedKey { blob, check })
    }

    /// Forms a symmetric key with `attributes` from 2 or 3 clear components (XOR), each
    /// checked against its expected check value; returns the blob and the check values.
    pub fn form_key(
        &self,
        attributes: KeyAttributes,
        components: &[KeyComponent],
    ) -> Result<(KeyBlob, FormedKcvs)> {
        let algorithm = attributes
            .algorithm()
            .symmetric()
            .ok_or(forbidden("forming from components", "asymmetric algorithm"))?;
        let (key, kcvs) = combine(algorithm, components)?;
        Ok((self.seal_symmetric(attributes, &key)?, kcvs))
    }

    /// Forms a symmetric key with `attributes` from Shamir shares ([`shamir::combine`]: at
    /// least the threshold, all of one split; extra shares must agree). The recombined secret
    /// must have the algorithm's key length ([`HsmError::SharedSecretLength`]). Returns the
    /// blob and the key's check value (default method of the algorithm), which the officers
    /// compare with the one recorded at the split: a wrong share among exactly the threshold
    /// gives another key, seen only there.
    pub fn form_key_from_shares(
        &self,
        attributes: KeyAttributes,
        shares: &[Share],
    ) -> Result<(KeyBlob, Kcv)> {
        let algorithm = attributes
            .algorithm()
            .symmetric()
            .ok_or(forbidden("forming from shares", "asymmetric algorithm"))?;
        let key = key_from_shares(algorithm, shares)?;
        Ok((self.seal_symmetric(attributes, &key)?, Kcv::of(&key)))
    }

    /// Makes the custody backup of `key` for `count` custodians, any `threshold` of whom can
    /// recover it (`2 <= threshold <= count <= 16`, else [`HsmError::CustodyParameters`]).
    ///
    /// A fresh AES-256 custody KEK is generated inside the HSM; the key, whatever its
    /// exportability (custody is how non-exportable masters are backed up) and SM2 or P-256
    /// keys included, is sealed under it in a custody key block ([`crate::keyblock`], version
    /// ID `2`) with its attributes in the header; the KEK is split into `count` shares and
    /// forgotten. Only [`Hsm::custody_recover`] opens such a block; [`Hsm::import_key`]
    /// refuses it.
    pub fn custody_split(&self, key: &KeyBlob, threshold: u8, count: u8) -> Result<Custody> {
        if threshold < 2 || threshold > count || count > MAX_CUSTODIANS {
            return Err(HsmError::CustodyParameters { threshold, count });
        }
        let mut buffer = open_buffer();
        let secret = self.open_blob(key, &mut buffer)?;
        let kek = SymmetricKey::generate(SymmetricAlgorithm::Aes256)?;
        let block = KeyBlock::seal_custody(&kek, key.attributes(), secret)?;
        let shares = shamir::split(kek.expose_secret(), threshold, count, &mut |out| {
            ykt_crypto::random::fill(out).map_err(|_| ShamirError::Random)
        })?;
        Ok(Custody {
            block,
            shares,
            kek_kcv: Kcv::of(&kek),
        })
    }

    /// Recovers a key from its custody block and at least the threshold of its shares: the
    /// custody KEK is recombined, the block verified and opened under it, and the key sealed
    /// under the LMK with the attributes of the block's header. Too few shares are a
    /// [`HsmError::Share`] error; wrong shares, or shares of another split, give another KEK
    /// and the block's MAC fails ([`HsmError::KeyBlockRejected`]). An export block is
    /// refused.
    pub fn custody_recover(&self, block: &KeyBlock, shares: &[Share]) -> Result<KeyBlob> {
        let kek = key_from_shares(SymmetricAlgorithm::Aes256, shares)?;
        let (attributes, secret) = block.open_custody(&kek)?;
        // The MAC proves the block came from a custody split; a scalar is still checked
        // before it is sealed.
        match attributes.algorithm() {
            KeyAlgorithm::Sm2 => {
                Sm2PrivateKey::from_bytes(&secret)?;
            }
            KeyAlgorithm::P256 => {
                P256PrivateKey::from_bytes(&secret)?;
            }
            _ => {}
        }
        KeyBlob::seal(&self.lmk, attributes, &secret)
    }

    /// The check value of a symmetric key with `method`.
    pub fn kcv(&self, blob: &KeyBlob, method: KcvMethod) -> Result<Kcv> {
        Ok(Kcv::compute(
            &self.open_symmetric(blob, "a check value")?,
            method,
        ))
    }

    /// Diversifies `master` by 1 to 3 factors (top level first) under its e-purse profile and
    /// keeps the result as a new blob with `attributes`: the same usage and algorithm as the
    /// master, and an exportability no wider than the master allows ([`Exportability::derived_ceiling`]). Returns the blob and the
    /// derived key's check value.
    pub fn derive_key(
        &self,
        master: &KeyBlob,
        factors: &[[u8; 8]],
        attributes: KeyAttributes,
    ) -> Result<(KeyBlob, Kcv)> {
        const OP: &str = "derivation";
        let profile = check_derivation(master.attributes(), factors, &attributes)?;
        let key = profile.diversify_path(&self.open_symmetric(master, OP)?, factors)?;
        Ok((self.seal_symmetric(attributes, &key)?, Kcv::of(&key)))
    }

    /// Online load: checks the card's MAC1 and returns MAC2. The card's DLK is the load master
    /// `dlk_master` diversified by `factors` (0 to 3; with none, the key itself is the DLK
    /// and needs the mac mode).
    pub fn load_mac2(
        &self,
        dlk_master: &KeyBlob,
        factors: &[[u8; 8]],
        load: &Load,
        mac1: &[u8],
    ) -> Result<[u8; 4]> {
        let (profile, dlk) = self.card_key(
            dlk_master,
            &[KeyUsage::Load],
            factors,
            Modes::MAC,
            "load MAC1/MAC2",
        )?;
        let session = load.session_key(profile, &dlk)?;
        verify(&load.mac1(&session)?, mac1, "MAC1")?;
        Ok(load.mac2(&session)?)
    }

    /// Verifies the TAC of one purchase record; the card's DTK is the TAC master diversified
    /// by `factors`. A TAC that does not verify is `Crypto(Mismatch("TAC"))`.
    pub fn verify_purchase_tac(
        &self,
        dtk_master: &KeyBlob,
        factors: &[[u8; 8]],
        purchase: &Purchase,
        tac: &[u8],
    ) -> Result<()> {
        let (profile, dtk) = self.dtk(dtk_master, factors)?;
        Ok(purchase.verify_tac(profile, &dtk, tac)?)
    }

    /// Verifies the TAC of one load record, as [`Hsm::verify_purchase_tac`] does for a
    /// purchase. A TAC that does not verify is `Crypto(Mismatch("TAC"))`.
    pub fn verify_load_tac(
        &self,
        dtk_master: &KeyBlob,
        factors: &[[u8; 8]],
        load: &Load,
        tac: &[u8],
    ) -> Result<()> {
        let (profile, dtk) = self.dtk(dtk_master, factors)?;
        Ok(load.verify_tac(profile, &dtk, tac)?)
    }

    /// The card's DTK: the TAC master diversified by 0 to 3 factors (with none, the key itself
    /// is the DTK and needs the mac mode).
    fn dtk(&self, dtk_master: &KeyBlob, factors: &[[u8; 8]]) -> Result<(Profile, SymmetricKey)> {
        self.card_key(
            dtk_master,
            &[KeyUsage::Tac],
            factors,
            Modes::MAC,
            "TAC verification",
        )
    }

    /// Verifies the TACs of a batch of purchase records under one TAC master, opened once;
    /// consecutive records of the same school reuse its key. Returns one verdict per record;
    /// attribute and factor-count refusals fail the whole batch before any record is checked.
    pub fn verify_purchase_tacs(
        &self,
        dtk_master: &KeyBlob,
        records: &[TacCheck<'_>],
    ) -> Result<Vec<bool>> {
        const OP: &str = "TAC verification";
        let attributes = dtk_master.attributes();
        require_usage(attributes, &[KeyUsage::Tac], OP)?;
        let profile = profile_of(attributes, OP)?;
        for record in records {
            check_factors(record.factors, 0)?;
            require_mode(attributes, card_key_mode(record.factors, Modes::MAC), OP)?;
        }
        let master = self.open_symmetric(dtk_master, OP)?;
        let mut parent: Option<(&[[u8; 8]], Diversifier)> = None;
        let mut verdicts = Vec::with_capacity(records.len());
        for record in records {
            let dtk = match record.factors.split_last() {
                None => master.clone(),
                Some((leaf, upper)) => match &parent {
                    Some((factors, diversifier)) if *factors == upper => diversifier.derive(leaf),
                    _ => {
                        let key = profile.diversify_path(&master, upper)?;
                        let diversifier = Diversifier::new(profile, &key)?;
                        let dtk = diversifier.derive(leaf);
                        parent = Some((upper, diversifier));
                        dtk
                    }
                },
            };
            verdicts.push(
                match record.purchase.verify_tac(profile, &dtk, record.tac) {
                    Ok(()) => true,
                    Err(CryptoError::Mismatch(_)) => false,
                    Err(other) => return Err(other.into()),
                },
            );
        }
        Ok(verdicts)
    }

    /// The WRITE KEY (84 D4) command for a card: the key to write is derived from its master
    /// by the card's factors, appended to `record_header`, encrypted and MACed under the
    /// card's current key (itself derived from its master) with the card's challenge.
    ///
    /// The key written must be exportable (its derivatives at least; the key itself when no
    /// factors are given), an e-purse key whose card key type matches the record's type byte
    /// (except for a PSAM application key, P1 P2 = 00 00, whose record has its own layout),
    /// and of the same algorithm as the protecting key; the protecting key must be an
    /// application master or key-encryption key.
    pub fn write_key_command(&self, request: &WriteKeyRequest<'_>) -> Result<Vec<u8>> {
        const OP: &str = "WRITE KEY";
        let target = request.key.attributes();
        let needed = if request.key_factors.is_empty() {
            Exportability::UnderKek
        } else {
            Exportability::DerivedOnly
        };
        if target.exportability() < needed {
            return Err(forbidden(OP, "the key is not exportable"));
        }
        if target.algorithm() != request.under.attributes().algorithm() {
            return Err(forbidden(
                OP,
                "the key and the card key protecting it differ in algorithm",
            ));
        }
        let key_type = target
            .usage()
            .card_key_type()
            .ok_or(forbidden(OP, "the key's usage does not allow it"))?;
        match request.record_header.first() {
            None => return Err(HsmError::KeyRecord("empty header")),
            Some(_) if request.record_header.len() > MAX_RECORD_HEADER => {
                return Err(HsmError::KeyRecord("header longer than 16 bytes"));
            }
            Some(&t) if (request.p1, request.p2) != (0, 0) && t & 0x3F != key_type => {
                return Err(forbidden(
                    OP,
                    "the record's key type does not match the key's usage",
                ));
            }
            Some(_) => {}
        }
        let (_, key) = self.card_key(
            request.key,
            &[target.usage()],
            request.key_factors,
            Modes::NONE,
            OP,
        )?;
        // On FMCOS the DF master key is the DF's key 39/00, an external-authentication key:
        // the card master, an application master or the vendor's transport key.
        let (_, under) = self.card_key(
            request.under,
            &[
                KeyUsage::AppMaster,
                KeyUsage::ExternalAuth,
                KeyUsage::KeyEncryption,
            ],
            request.under_factors,
            Modes::ENCRYPT,
            OP,
        )?;
        let mut record = Zeroizing::new(Vec::with_capacity(MAX_RECORD_HEADER + 16));
        record.extend_from_slice(request.record_header);
        record.extend_from_slice(key.expose_secret());
        Ok(secure_messaging::write_key_command(
            &under,
            request.challenge,
            request.p1,
            request.p2,
            &record,
        )?)
    }

    /// The EXTERNAL AUTHENTICATE cryptogram for a card's challenge under its external-auth
    /// (or application master) key, derived from `master` by `factors`.
    pub fn external_auth_cryptogram(
        &self,
        master: &KeyBlob,
        factors: &[[u8; 8]],
        challenge: &[u8],
    ) -> Result<Vec<u8>> {
        let (_, key) = self.card_key(
            master,
            &[KeyUsage::ExternalAuth, KeyUsage::AppMaster],
            factors,
            Modes::ENCRYPT,
            "external authentication",
        )?;
        Ok(secure_messaging::external_auth_cryptogram(&key, challenge)?)
    }

    /// Exports `key` under `kek` as a key block ([`crate::keyblock`]) carrying its attributes
    /// in the header.
    ///
    /// The key must be exportable under a KEK ([`Exportability::UnderKek`]) and no longer
    /// than the KEK (an AES-256 key under a 128-bit KEK is refused); the KEK must be a
    /// key-encryption key with the encrypt mode, AES or SM4, and not the key itself.
    pub fn export_key(&self, key: &KeyBlob, kek: &KeyBlob) -> Result<KeyBlock> {
        const OP: &str = "key export";
        let attributes = key.attributes();
        if attributes.exportability() != Exportability::UnderKek {
            return Err(forbidden(OP, "the key is not exportable under a KEK"));
        }
        if key.as_bytes() == kek.as_bytes() {
            return Err(forbidden(OP, "a key cannot be exported under itself"));
        }
        require_kek(kek, OP)?;
        if attributes.algorithm().secret_len() > kek.attributes().algorithm().secret_len() {
            return Err(forbidden(OP, "the KEK is weaker than the key"));
        }
        let clear = self.open_symmetric(key, OP)?;
        let kek = self.open_symmetric(kek, OP)?;
        KeyBlock::seal(&kek, attributes, &clear)
    }

    /// Imports a key block under `kek` and seals the key under the LMK with the attributes of
    /// the block's header, once its MAC has verified. A block made under another KEK, or
    /// edited in any way, is [`HsmError::KeyBlockRejected`]; the KEK must be a key-encryption
    /// key with the encrypt mode. A custody block is refused ([`HsmError::Forbidden`]),
    /// whatever the KEK: only [`Hsm::custody_recover`] opens it.
    pub fn import_key(&self, block: &KeyBlock, kek: &KeyBlob) -> Result<KeyBlob> {
        const OP: &str = "key import";
        require_kek(kek, OP)?;
        let kek = self.open_symmetric(kek, OP)?;
        let (attributes, key) = block.open(&kek)?;
        self.seal_symmetric(attributes, &key)
    }

    /// Signs `message` with an SM2 key as signer `id` (GB/T 32918.2, ZA from `id`).
    pub fn sign_sm2(&self, blob: &KeyBlob, id: &[u8], message: &[u8]) -> Result<Signature> {
        self.sign(blob, ToSign::Sm2Message { id, message })
    }

    /// Signs with an SM2 key the digest `e = SM3(ZA || M)` that the caller computed (GB/T
    /// 32918.2 steps A1–A2, for example with [`Sm2PublicKey::digest`]); the HSM does steps
    /// A3–A7. The key is checked as by [`Hsm::sign_sm2`].
    ///
    /// [`Sm2PublicKey::digest`]: ykt_crypto::sm2::Sm2PublicKey::digest
    pub fn sign_sm2_digest(&self, blob: &KeyBlob, e: &[u8; 32]) -> Result<Signature> {
        self.sign(blob, ToSign::Sm2Digest(e))
    }

    /// Signs `message` with a P-256 key (ECDSA with SHA-256).
    pub fn sign_p256(&self, blob: &KeyBlob, message: &[u8]) -> Result<Signature> {
        self.sign(blob, ToSign::P256Message(message))
    }

    /// Signs with a P-256 key the SHA-256 digest of a message that the caller computed
    /// (ECDSA without the hashing step); the signature verifies as one over the message. The
    /// key is checked as by [`Hsm::sign_p256`].
    pub fn sign_p256_digest(&self, blob: &KeyBlob, digest: &[u8; 32]) -> Result<Signature> {
        self.sign(blob, ToSign::P256Digest(digest))
    }

    /// The one signing path: the signing checks of the key for the input's algorithm, then
    /// the kept-open key signs.
    fn sign(&self, blob: &KeyBlob, input: ToSign<'_>) -> Result<Signature> {
        check_signing(blob.attributes(), input.algorithm())?;
        Ok(match (&*self.kept_open(blob)?, input) {
            (OpenedKey::Sm2(key), ToSign::Sm2Message { id, message }) => key.sign(id, message)?,
            (OpenedKey::Sm2(key), ToSign::Sm2Digest(e)) => key.sign_digest(e)?,
            (OpenedKey::P256(key), ToSign::P256Message(message)) => key.sign(message)?,
            (OpenedKey::P256(key), ToSign::P256Digest(digest)) => key.sign_digest(digest)?,
            _ => return Err(forbidden("signing", "the key is of another algorithm")),
        })
    }

    /// The uncompressed public key (`04 || x || y`) of an SM2 or P-256 key.
    pub fn public_key(&self, blob: &KeyBlob) -> Result<[u8; 65]> {
        const OP: &str = "public key export";
        let mut buffer = open_buffer();
        match blob.attributes().algorithm() {
            KeyAlgorithm::Sm2 => {
                let secret = self.open_blob(blob, &mut buffer)?;
                Ok(Sm2PrivateKey::from_bytes(secret)?
                    .public_key()
                    .to_uncompressed())
            }
            KeyAlgorithm::P256 => {
                let secret = self.open_blob(blob, &mut buffer)?;
                Ok(P256PrivateKey::from_bytes(secret)?
                    .public_key()
                    .to_uncompressed())
            }
            _ => Err(forbidden(OP, "a symmetric key has no public key")),
        }
    }

    /// Fills `out` with random bytes from the operating system's CSPRNG.
    pub fn random(&self, out: &mut [u8]) -> Result<()> {
        Ok(ykt_crypto::random::fill(out)?)
    }

    fn seal_symmetric(&self, attributes: KeyAttributes, key: &SymmetricKey) -> Result<KeyBlob> {
        if attributes.algorithm().symmetric() != Some(key.algorithm()) {
            return Err(HsmError::InvalidAttributes(
                "algorithm attribute differs from the key",
            ));
        }
        KeyBlob::seal(&self.lmk, attributes, key.expose_secret())
    }

    /// Opens a symmetric key; masters (derive mode) are kept open ([`Hsm::kept_open`]).
    fn open_symmetric(&self, blob: &KeyBlob, operation: &'static str) -> Result<SymmetricKey> {
        let algorithm: SymmetricAlgorithm = blob
            .attributes()
            .algorithm()
            .symmetric()
            .ok_or(forbidden(operation, "the key is asymmetric"))?;
        if blob.attributes().modes().contains(Modes::DERIVE) {
            return match &*self.kept_open(blob)? {
                OpenedKey::Master(key) => Ok(key.clone()),
                _ => Err(forbidden(operation, "the key is asymmetric")),
            };
        }
        let mut buffer = open_buffer();
        let secret = self.open_blob(blob, &mut buffer)?;
        Ok(SymmetricKey::new(algorithm, secret)?)
    }

    /// The opened form of a master or signing key blob, kept for its next use.
    ///
    /// Kept keys are found by the whole blob: a blob reaches the set only after it
    /// authenticated under the LMK, and a byte-identical blob is the same key with the same
    /// attributes. A destroyed blob is refused before the set is looked at. Callers check the
    /// attributes first.
    fn kept_open(&self, blob: &KeyBlob) -> Result<Arc<OpenedKey>> {
        if let Some(opened) = read(&self.opened).get(blob.as_bytes()) {
            if read(&self.destroyed).contains(&blob.id()) {
                return Err(HsmError::Destroyed);
            }
            return Ok(Arc::clone(opened));
        }
        let mut buffer = open_buffer();
        let secret = self.open_blob(blob, &mut buffer)?;
        let opened = Arc::new(match blob.attributes().algorithm() {
            KeyAlgorithm::Sm2 => OpenedKey::Sm2(Sm2PrivateKey::from_bytes(secret)?),
            KeyAlgorithm::P256 => OpenedKey::P256(P256PrivateKey::from_bytes(secret)?),
            algorithm => OpenedKey::Master(SymmetricKey::new(
                algorithm
                    .symmetric()
                    .ok_or(HsmError::MalformedBlob("unknown algorithm"))?,
                secret,
            )?),
        });
        let mut kept = self.opened.write().unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= MAX_OPENED {
            kept.clear();
        }
        kept.insert(blob.as_bytes().to_vec(), Arc::clone(&opened));
        Ok(opened)
    }

    /// Opens `blob` under the LMK into `buffer`, unless it was destroyed: the one place where
    /// commands open blobs.
    fn open_blob<'a>(&self, blob: &KeyBlob, buffer: &'a mut OpenBuffer) -> Result<&'a [u8]> {
        if read(&self.destroyed).contains(&blob.id()) {
            return Err(HsmError::Destroyed);
        }
        blob.open(&self.lmk, buffer)
    }

    /// Opens a card key: checks the usage, the factor count and the mode (derive to go
    /// through factors, `direct` to use the key itself), then diversifies.
    fn card_key(
        &self,
        blob: &KeyBlob,
        usages: &[KeyUsage],
        factors: &[[u8; 8]],
        direct: Modes,
        operation: &'static str,
    ) -> Result<(Profile, SymmetricKey)> {
        let profile = check_card_key(blob.attributes(), usages, factors, direct, operation)?;
        let master = self.open_symmetric(blob, operation)?;
        if factors.is_empty() {
            Ok((profile, master))
        } else {
            Ok((profile, profile.diversify_path(&master, factors)?))
        }
    }
}
