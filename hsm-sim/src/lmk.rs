//! The local master key (LMK) and how it is kept on disk.
//!
//! # Forming
//!
//! The LMK is a 32-byte AES-256 key. It is formed at first start from a *ceremony secret*:
//! the XOR of 2 or 3 components entered by different officers (each shown its check value,
//! and the combined check value shown too), or the 32 bytes recombined from Shamir shares by
//! [`crate::shamir`]. [`Lmk::generate`] makes a random LMK instead, known to nobody; it is then
//! only recoverable through its sealed file.
//!
//! # Sealing
//!
//! The LMK is written to disk only sealed ([`Lmk::seal_to`]), in a 98-byte file:
//!
//! ```text
//! "YKTLMK" || 01 || salt(32) || nonce(12) || AES-256-GCM(seal key, LMK)(32) || tag(16)
//! seal key = HKDF-SHA256(salt, IKM = ceremony secret, info = "ykt-hsm-sim lmk seal v1")
//! AAD      = "YKTLMK" || 01 || salt
//! ```
//!
//! The salt is fresh for every sealing, so every file has its own seal key and the random
//! nonce never repeats under one key. HKDF (not a password hash) is enough because the ceremony
//! secret has full entropy: components and Shamir secrets are random 32-byte values, never
//! passwords. At every start the officers bring their components (or shares) again and
//! [`Lmk::unseal_from`] opens the file; a wrong secret is refused rather than forming a
//! different LMK under which no blob would open. Custody can be changed without re-encrypting
//! a single blob: seal the same LMK to a new file under a new ceremony secret.
//!
//! # Threat model
//!
//! - Protected: a copy of the data directory, a backup or a stolen disk. Without a quorum of
//!   officers the file and every key blob are opaque, and the file's integrity is checked.
//! - When the LMK was formed from the same ceremony secret that seals it, the file adds no
//!   secrecy beyond the components themselves: it verifies them and allows later custody
//!   changes.
//! - Not protected: an attacker who can read the memory of the running process (root on the
//!   host, a core dump, swap). The LMK is then in clear in RAM; it is wiped when dropped but
//!   not locked in memory. A software HSM offers no tamper response; this is the line where a
//!   hardware HSM takes over.
//! - Not protected: a quorum of officers colluding, by construction.

use crate::component::{FormedKcvs, KeyComponent, combine};
use crate::error::{HsmError, Result};
use crate::shamir::{self, ShamirError, Share};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use std::fmt;
use std::io::Write;
use std::path::Path;
use ykt_crypto::{Kcv, SymmetricAlgorithm, SymmetricKey};
use zeroize::Zeroizing;

const MAGIC: &[u8; 6] = b"YKTLMK";
const FILE_VERSION: u8 = 1;
const SALT_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + 1 + SALT_LEN;
const TAG_LEN: usize = 16;
const FILE_LEN: usize = HEADER_LEN + NONCE_LEN + 32 + TAG_LEN;
const SEAL_INFO: &[u8] = b"ykt-hsm-sim lmk seal v1";

/// A 32-byte secret that a quorum of officers brings to a ceremony: the XOR of their
/// components or a Shamir-recombined secret. Wiped on drop, never shown by `Debug`.
pub struct CeremonySecret {
    key: SymmetricKey,
}

impl CeremonySecret {
    /// XORs 2 or 3 components of 32 bytes, each checked against its officer's expected check
    /// value (AES-256 CMAC, 5 bytes); returns the secret and the check values to show.
    pub fn from_components(components: &[KeyComponent]) -> Result<(Self, FormedKcvs)> {
        let (key, kcvs) = combine(SymmetricAlgorithm::Aes256, components)?;
        Ok((Self { key }, kcvs))
    }

    /// A new random secret, split into `count` Shamir shares any `threshold` of which recombine
    /// it (2 ≤ threshold ≤ count ≤ 16): the LMK under M-of-N custody, no officer ever holding
    /// the whole secret. Returns the secret and the shares, one per officer.
    pub fn split_new(threshold: u8, count: u8) -> Result<(Self, Vec<Share>)> {
        if threshold < 2 || threshold > count || count > crate::engine::MAX_CUSTODIANS {
            return Err(HsmError::CustodyParameters { threshold, count });
        }
        let key = SymmetricKey::generate(SymmetricAlgorithm::Aes256)?;
        let shares = shamir::split(key.expose_secret(), threshold, count, &mut |out| {
            ykt_crypto::random::fill(out).map_err(|_| ShamirError::Random)
        })?;
        Ok((Self { key }, shares))
    }

    /// Recombines a secret made by [`CeremonySecret::split_new`] from at least its threshold
    /// of shares.
    pub fn from_shares(shares: &[Share]) -> Result<Self> {
        Self::from_bytes(&shamir::combine(shares)?)
    }

    /// Takes the 32 bytes recombined from Shamir shares.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 32 {
            return Err(HsmError::SecretLength(bytes.len()));
        }
        Ok(Self {
            key: SymmetricKey::new(SymmetricAlgorithm::Aes256, bytes)?,
        })
    }

    /// The check value of the secret (AES-256 CMAC, 5 bytes).
    pub fn kcv(&self) -> Kcv {
        Kcv::of(&self.key)
    }

    fn seal_key(&self, salt: &[u8]) -> Result<LessSafeKey> {
        let prk = Salt::new(HKDF_SHA256, salt).extract(self.key.expose_secret());
        let mut okm = Zeroizing::new([0u8; 32]);
        prk.expand(&[SEAL_INFO], HKDF_SHA256)
            .and_then(|okm_| okm_.fill(&mut okm[..]))
            .map_err(|_| HsmError::LmkUnseal)?;
        aead_key(&okm[..])
    }
}

impl fmt::Debug for CeremonySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CeremonySecret")
            .field("kcv", &self.kcv().to_string())
            .finish()
    }
}

fn aead_key(bytes: &[u8]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| HsmError::SecretLength(bytes.len()))
}

/// The local master key: every key blob is sealed under it. Wiped on drop, never shown by
/// `Debug` (only its check value).
pub struct Lmk {
    key: SymmetricKey,
    aead: LessSafeKey,
}

impl Lmk {
    /// A fresh random LMK.
    pub fn generate() -> Result<Self> {
        Self::from_key(SymmetricKey::generate(SymmetricAlgorithm::Aes256)?)
    }

    /// The LMK formed from a ceremony secret (components or Shamir): the secret itself.
    pub fn form(secret: &CeremonySecret) -> Result<Self> {
        Self::from_key(secret.key.clone())
    }

    fn from_key(key: SymmetricKey) -> Result<Self> {
        let aead = aead_key(key.expose_secret())?;
        Ok(Self { key, aead })
    }

    /// The LMK's check value (AES-256 CMAC, 5 bytes), as the ceremony record shows it.
    pub fn kcv(&self) -> Kcv {
        Kcv::of(&self.key)
    }

    /// The AEAD key that seals blobs.
    pub(crate) fn aead(&self) -> &LessSafeKey {
        &self.aead
    }

    /// The sealed file contents (see the module documentation) under `unlock`.
    pub fn seal(&self, unlock: &CeremonySecret) -> Result<Vec<u8>> {
        let mut file = Vec::with_capacity(FILE_LEN);
        file.extend_from_slice(MAGIC);
        file.push(FILE_VERSION);
        file.extend_from_slice(&ykt_crypto::random::bytes::<SALT_LEN>()?);
        let nonce = ykt_crypto::random::bytes::<NONCE_LEN>()?;
        let mut body = Zeroizing::new([0u8; 32]);
        body.copy_from_slice(self.key.expose_secret());
        let tag = unlock
            .seal_key(&file[MAGIC.len() + 1..])?
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&file[..]),
                &mut body[..],
            )
            .map_err(|_| HsmError::LmkUnseal)?;
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&body[..]);
        file.extend_from_slice(tag.as_ref());
        Ok(file)
    }

    /// Opens sealed file contents with `unlock`.
    pub fn unseal(file: &[u8], unlock: &CeremonySecret) -> Result<Self> {
        if file.len() != FILE_LEN {
            return Err(HsmError::MalformedLmkFile("wrong length"));
        }
        if &file[..MAGIC.len()] != MAGIC {
            return Err(HsmError::MalformedLmkFile("not an LMK file"));
        }
        if file[MAGIC.len()] != FILE_VERSION {
            return Err(HsmError::MalformedLmkFile("unknown version"));
        }
        let (header, rest) = file.split_at(HEADER_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| HsmError::LmkUnseal)?;
        let mut body = Zeroizing::new([0u8; 32 + TAG_LEN]);
        body.copy_from_slice(sealed);
        let clear = unlock
            .seal_key(&header[MAGIC.len() + 1..])?
            .open_in_place(nonce, Aad::from(header), &mut body[..])
            .map_err(|_| HsmError::LmkUnseal)?;
        Self::from_key(SymmetricKey::new(SymmetricAlgorithm::Aes256, clear)?)
    }

    /// Writes the sealed LMK to `path` (mode 0600 on Unix), replacing any previous file
    /// atomically.
    pub fn seal_to(&self, path: &Path, unlock: &CeremonySecret) -> Result<()> {
        let file = self.seal(unlock)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = Path::new(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(tmp)?;
        out.write_all(&file)?;
        out.sync_all()?;
        std::fs::rename(tmp, path)?;
        Ok(())
    }

    /// Reads and unseals the LMK file at `path`.
    pub fn unseal_from(path: &Path, unlock: &CeremonySecret) -> Result<Self> {
        Self::unseal(&std::fs::read(path)?, unlock)
    }
}

impl fmt::Debug for Lmk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lmk")
            .field("kcv", &self.kcv().to_string())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> CeremonySecret {
        CeremonySecret::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_secret_under_custody_opens_from_any_threshold_of_its_shares() {
        let (secret, shares) = CeremonySecret::split_new(3, 5).unwrap();
        let lmk = Lmk::form(&secret).unwrap();
        let file = lmk.seal(&secret).unwrap();
        for subset in [[0, 1, 2], [0, 2, 4], [4, 3, 1]] {
            let chosen: Vec<Share> = subset.iter().map(|&i| shares[i].clone()).collect();
            let again = CeremonySecret::from_shares(&chosen).unwrap();
            assert_eq!(again.kcv(), secret.kcv());
            assert_eq!(Lmk::unseal(&file, &again).unwrap().kcv(), lmk.kcv());
        }
        assert!(CeremonySecret::from_shares(&shares[..2]).is_err());
        assert!(matches!(
            CeremonySecret::split_new(1, 3),
            Err(HsmError::CustodyParameters { .. })
        ));
        assert!(CeremonySecret::split_new(3, 17).is_err());
    }

    #[test]
    fn seal_round_trips_and_refuses_a_wrong_secret() {
        let lmk = Lmk::generate().unwrap();
        let file = lmk.seal(&secret(1)).unwrap();
        assert_eq!(file.len(), FILE_LEN);
        assert_eq!(Lmk::unseal(&file, &secret(1)).unwrap().kcv(), lmk.kcv());
        assert!(matches!(
            Lmk::unseal(&file, &secret(2)),
            Err(HsmError::LmkUnseal)
        ));
    }

    #[test]
    fn every_byte_of_the_file_is_authenticated() {
        let lmk = Lmk::generate().unwrap();
        let file = lmk.seal(&secret(3)).unwrap();
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(Lmk::unseal(&bad, &secret(3)).is_err(), "byte {i}");
        }
        assert!(matches!(
            Lmk::unseal(&file[1..], &secret(3)),
            Err(HsmError::MalformedLmkFile(_))
        ));
    }

    #[test]
    fn each_sealing_uses_a_fresh_salt() {
        let lmk = Lmk::generate().unwrap();
        assert_ne!(lmk.seal(&secret(4)).unwrap(), lmk.seal(&secret(4)).unwrap());
    }

    #[test]
    fn shamir_secret_must_be_32_bytes() {
        assert!(matches!(
            CeremonySecret::from_bytes(&[0; 31]),
            Err(HsmError::SecretLength(31))
        ));
    }

    #[test]
    fn debug_shows_only_check_values() {
        let shown = format!("{:?} {:?}", secret(0xA5), Lmk::form(&secret(0xA5)).unwrap());
        assert!(!shown.contains("165") && !shown.to_lowercase().contains("a5a5"));
    }
}
