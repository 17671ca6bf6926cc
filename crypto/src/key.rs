//! Symmetric key types that know their algorithm and length.

use crate::error::{CryptoError, Result};
use std::fmt;
use zeroize::Zeroizing;

/// The symmetric block ciphers ykt uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymmetricAlgorithm {
    /// Single DES (FIPS 46-3), 8-byte key, 8-byte block. Session keys of the PBOC e-purse.
    Des,
    /// Two-key triple DES EDE (ISO/IEC 18033-3, keying option 2), 16-byte key, 8-byte block.
    TripleDes,
    /// SM4 (GB/T 32907-2016), 16-byte key, 16-byte block.
    Sm4,
    /// AES-128 (FIPS 197), 16-byte key, 16-byte block.
    Aes128,
    /// AES-256 (FIPS 197), 32-byte key, 16-byte block.
    Aes256,
}

impl SymmetricAlgorithm {
    /// Key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Self::Des => 8,
            Self::TripleDes | Self::Sm4 | Self::Aes128 => 16,
            Self::Aes256 => 32,
        }
    }

    /// Block length in bytes.
    pub const fn block_len(self) -> usize {
        match self {
            Self::Des | Self::TripleDes => 8,
            Self::Sm4 | Self::Aes128 | Self::Aes256 => 16,
        }
    }

    /// Short lower-case name (`des`, `3des`, `sm4`, `aes128`, `aes256`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Des => "des",
            Self::TripleDes => "3des",
            Self::Sm4 => "sm4",
            Self::Aes128 => "aes128",
            Self::Aes256 => "aes256",
        }
    }
}

impl fmt::Display for SymmetricAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A clear symmetric key with its algorithm. The bytes are wiped on drop and never shown by
/// `Debug`.
#[derive(Clone)]
pub struct SymmetricKey {
    algorithm: SymmetricAlgorithm,
    bytes: Zeroizing<[u8; 32]>,
}

impl SymmetricKey {
    /// Takes a key of `algorithm`; the length must match the algorithm exactly.
    pub fn new(algorithm: SymmetricAlgorithm, key: &[u8]) -> Result<Self> {
        if key.len() != algorithm.key_len() {
            return Err(CryptoError::KeyLength {
                algorithm: algorithm.name(),
                expected: algorithm.key_len(),
                actual: key.len(),
            });
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes[..key.len()].copy_from_slice(key);
        Ok(Self { algorithm, bytes })
    }

    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate(algorithm: SymmetricAlgorithm) -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        crate::random::fill(&mut bytes[..algorithm.key_len()])?;
        Ok(Self { algorithm, bytes })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> SymmetricAlgorithm {
        self.algorithm
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.algorithm.key_len()
    }

    /// Always false: no algorithm has an empty key.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The clear key bytes. Hazmat: only HSM code, card simulators and the lab calculator may
    /// look at them.
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SymmetricKey")
            .field("algorithm", &self.algorithm)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_checked_against_the_algorithm() {
        assert!(SymmetricKey::new(SymmetricAlgorithm::TripleDes, &[0; 16]).is_ok());
        assert_eq!(
            SymmetricKey::new(SymmetricAlgorithm::Sm4, &[0; 8]).unwrap_err(),
            CryptoError::KeyLength {
                algorithm: "sm4",
                expected: 16,
                actual: 8
            }
        );
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = SymmetricKey::new(SymmetricAlgorithm::Des, &[0xA5; 8]).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.to_lowercase().contains("a5") && !shown.contains("165"));
    }
}
