//! Key blobs: a key sealed under the LMK with its attributes bound in.
//!
//! ```text
//! 01 || attributes(5) || nonce(12) || AES-256-GCM(LMK, secret) || tag(16)
//! AAD = 01 || attributes
//! ```
//!
//! The secret is the key (16 or 32 bytes) or the private scalar (32 bytes); its length follows
//! from the algorithm attribute, so the blob length is checked before any decryption. The
//! attributes travel in clear (the KMS may read them) but are authenticated: a blob whose usage,
//! mode, exportability or version was changed, or whose any byte was corrupted, does not open.
//! Nonces are random (96 bits): one LMK may seal about 2^32 blobs before the collision bound
//! calls for a new LMK. They are drawn from the operating system's CSPRNG in batches
//! ([`NoncePool`]), each byte handed out once, so a seal costs no system call.

use crate::attributes::KeyAttributes;
use crate::error::{HsmError, Result};
use crate::lmk::Lmk;
use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use zeroize::Zeroizing;

const HEADER_LEN: usize = 1 + KeyAttributes::ENCODED_LEN;
const TAG_LEN: usize = 16;
/// The largest secret a blob carries (AES-256 key, SM2 or P-256 scalar).
const MAX_SECRET_LEN: usize = 32;

/// Length of a blob's identity: its nonce and its tag.
pub(crate) const ID_LEN: usize = NONCE_LEN + TAG_LEN;

/// What identifies one sealed blob: its random nonce and its AES-GCM tag, both already in the
/// blob, so identifying it costs a copy and no hash.
pub(crate) type BlobId = [u8; ID_LEN];

/// Random bytes from the operating system, fetched a batch at a time and handed out as nonces,
/// each byte once. Nonces need to be unique and unpredictable, not secret. A process that
/// forks must not seal in the child (the pool would repeat there); ykt's processes only spawn
/// other programs.
struct NoncePool {
    bytes: [u8; NONCE_POOL_LEN],
    next: usize,
}

/// Nonces fetched per system call.
const NONCE_POOL_LEN: usize = NONCE_LEN * 341;

static NONCES: Mutex<NoncePool> = Mutex::new(NoncePool {
    bytes: [0; NONCE_POOL_LEN],
    next: NONCE_POOL_LEN,
});

/// A fresh random nonce.
fn fresh_nonce() -> Result<[u8; NONCE_LEN]> {
    let mut pool = NONCES.lock().unwrap_or_else(PoisonError::into_inner);
    if pool.next == NONCE_POOL_LEN {
        ykt_crypto::random::fill(&mut pool.bytes)?;
        pool.next = 0;
    }
    let mut nonce = [0u8; NONCE_LEN];
    let start = pool.next;
    nonce.copy_from_slice(&pool.bytes[start..start + NONCE_LEN]);
    pool.next += NONCE_LEN;
    Ok(nonce)
}

/// A buffer for an opened secret and its tag, wiped on drop.
pub(crate) type OpenBuffer = Zeroizing<[u8; MAX_SECRET_LEN + TAG_LEN]>;

/// A zeroed [`OpenBuffer`].
pub(crate) fn open_buffer() -> OpenBuffer {
    Zeroizing::new([0; MAX_SECRET_LEN + TAG_LEN])
}

/// A key sealed under the LMK, with its attributes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBlob {
    bytes: Vec<u8>,
    attributes: KeyAttributes,
}

impl KeyBlob {
    /// The blob format version byte.
    pub const FORMAT_VERSION: u8 = 1;

    /// Parses a blob (format version, attributes, length); its authenticity is checked only
    /// when the HSM opens it.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        match bytes.first() {
            None => return Err(HsmError::MalformedBlob("empty")),
            Some(&Self::FORMAT_VERSION) => {}
            Some(_) => return Err(HsmError::MalformedBlob("unknown format version")),
        }
        let attributes = KeyAttributes::from_bytes(
            bytes
                .get(1..HEADER_LEN)
                .ok_or(HsmError::MalformedBlob("truncated"))?,
        )?;
        if bytes.len() != Self::len_for(&attributes) {
            return Err(HsmError::MalformedBlob("wrong length for its algorithm"));
        }
        Ok(Self { bytes, attributes })
    }

    fn len_for(attributes: &KeyAttributes) -> usize {
        HEADER_LEN + NONCE_LEN + attributes.algorithm().secret_len() + TAG_LEN
    }

    /// The blob bytes, to store or send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The attributes bound to the key.
    pub fn attributes(&self) -> &KeyAttributes {
        &self.attributes
    }

    /// The blob's identity: nonce and tag. Two blobs sealed by the HSM share it only if they
    /// are byte-identical (a nonce repeats with probability about 2^-96 per pair); a blob
    /// edited anywhere else no longer opens.
    pub(crate) fn id(&self) -> BlobId {
        let mut id = [0; ID_LEN];
        let (nonce, tag) = id.split_at_mut(NONCE_LEN);
        nonce.copy_from_slice(&self.bytes[HEADER_LEN..HEADER_LEN + NONCE_LEN]);
        tag.copy_from_slice(&self.bytes[self.bytes.len() - TAG_LEN..]);
        id
    }

    /// Seals `secret` (of the algorithm's length) with `attributes` under the LMK.
    pub(crate) fn seal(lmk: &Lmk, attributes: KeyAttributes, secret: &[u8]) -> Result<Self> {
        debug_assert_eq!(secret.len(), attributes.algorithm().secret_len());
        let mut bytes = Vec::with_capacity(Self::len_for(&attributes));
        bytes.push(Self::FORMAT_VERSION);
        bytes.extend_from_slice(&attributes.to_bytes());
        let nonce = fresh_nonce()?;
        bytes.extend_from_slice(&nonce);
        let mut body = open_buffer();
        let body = &mut body[..secret.len()];
        body.copy_from_slice(secret);
        let tag = lmk
            .aead()
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&bytes[..HEADER_LEN]),
                body,
            )
            .map_err(|_| HsmError::BlobRejected)?;
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(tag.as_ref());
        Ok(Self { bytes, attributes })
    }

    /// Opens the blob into `buffer` and returns the clear secret in it.
    pub(crate) fn open<'a>(&self, lmk: &Lmk, buffer: &'a mut OpenBuffer) -> Result<&'a [u8]> {
        let (header, rest) = self.bytes.split_at(HEADER_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| HsmError::BlobRejected)?;
        let body = &mut buffer[..sealed.len()];
        body.copy_from_slice(sealed);
        let clear = lmk
            .aead()
            .open_in_place(nonce, Aad::from(header), body)
            .map_err(|_| HsmError::BlobRejected)?;
        Ok(clear)
    }
}

impl fmt::Debug for KeyBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBlob")
            .field("attributes", &self.attributes)
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{Exportability, KeyAlgorithm, KeyUsage, Modes};

    fn attributes(version: u8) -> KeyAttributes {
        KeyAttributes::new(
            KeyUsage::Tac,
            KeyAlgorithm::Sm4,
            Modes::DERIVE,
            Exportability::DerivedOnly,
            version,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let lmk = Lmk::generate().unwrap();
        let blob = KeyBlob::seal(&lmk, attributes(1), &[7; 16]).unwrap();
        let reparsed = KeyBlob::from_bytes(blob.as_bytes().to_vec()).unwrap();
        let mut buffer = open_buffer();
        assert_eq!(reparsed.open(&lmk, &mut buffer).unwrap(), &[7; 16]);
        for i in HEADER_LEN..blob.as_bytes().len() {
            let mut bytes = blob.as_bytes().to_vec();
            bytes[i] ^= 0x80;
            let bad = KeyBlob::from_bytes(bytes).unwrap();
            assert!(matches!(
                bad.open(&lmk, &mut buffer),
                Err(HsmError::BlobRejected)
            ));
        }
        let other = Lmk::generate().unwrap();
        assert!(matches!(
            blob.open(&other, &mut buffer),
            Err(HsmError::BlobRejected)
        ));
    }

    #[test]
    fn malformed_blobs_are_refused_before_decryption() {
        let lmk = Lmk::generate().unwrap();
        let blob = KeyBlob::seal(&lmk, attributes(1), &[7; 16]).unwrap();
        let bytes = blob.as_bytes();
        assert!(KeyBlob::from_bytes(Vec::new()).is_err());
        assert!(KeyBlob::from_bytes(bytes[..bytes.len() - 1].to_vec()).is_err());
        let mut version = bytes.to_vec();
        version[0] = 2;
        assert!(KeyBlob::from_bytes(version).is_err());
    }
}
