//! E-purse cryptographic profiles: which cipher diversifies, derives session keys and folds the
//! TAC key.
//!
//! - [`Profile::PbocDes`]: the PBOC/FMCOS method with DES (8-byte) or two-key 3DES (16-byte)
//!   keys (`pboc-spec.md` §5.1, §5.2, §5.4).
//! - [`Profile::YktSm4V1`]: the *ykt SM4 profile v1* (see `ARCHITECTURE.md`): no public text
//!   defines the SM4 variant of the PBOC e-purse, so ykt fixes one. A vendor variant is added as
//!   another variant of this type.

use crate::block::BlockCipher;
use crate::error::{CryptoError, Result};
use crate::key::{SymmetricAlgorithm, SymmetricKey};

/// An e-purse cryptographic profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// PBOC with DES/3DES keys; algorithm ID 00 (3DES) or 01 (DES).
    PbocDes,
    /// ykt SM4 profile v1; algorithm ID 04.
    YktSm4V1,
}

impl Profile {
    /// The profile that uses keys of `algorithm`.
    pub fn for_algorithm(algorithm: SymmetricAlgorithm) -> Result<Self> {
        match algorithm {
            SymmetricAlgorithm::Des | SymmetricAlgorithm::TripleDes => Ok(Self::PbocDes),
            SymmetricAlgorithm::Sm4 => Ok(Self::YktSm4V1),
            other => Err(CryptoError::WrongAlgorithm {
                algorithm: other.name(),
                operation: "the e-purse",
            }),
        }
    }

    /// Refuses a key whose algorithm does not belong to this profile.
    pub fn check_key(self, key: &SymmetricKey) -> Result<()> {
        if Self::for_algorithm(key.algorithm())? == self {
            Ok(())
        } else {
            Err(CryptoError::WrongAlgorithm {
                algorithm: key.algorithm().name(),
                operation: self.name(),
            })
        }
    }

    /// Human-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::PbocDes => "the PBOC DES/3DES profile",
            Self::YktSm4V1 => "the ykt SM4 profile v1",
        }
    }

    /// The algorithm ID byte a card returns in INITIALIZE FOR LOAD/PURCHASE for `key`
    /// (00 = 3DES, 01 = DES, 04 = SM4).
    pub fn algorithm_id(self, key: &SymmetricKey) -> Result<u8> {
        self.check_key(key)?;
        Ok(match key.algorithm() {
            SymmetricAlgorithm::Des => 0x01,
            SymmetricAlgorithm::Sm4 => 0x04,
            _ => 0x00,
        })
    }

    /// One level of key diversification by the 8-byte factor `F` (§5.1):
    /// PBOC: `DK = E(K, F) || E(K, ~F)` (E = DES or 3DES EDE, giving a 16-byte 3DES key);
    /// SM4 v1: `DK = SM4(K, F || ~F)`.
    pub fn diversify(self, key: &SymmetricKey, factor: &[u8; 8]) -> Result<SymmetricKey> {
        self.check_key(key)?;
        Ok(Diversifier::prepared(self, key).derive(factor))
    }

    /// Multi-level diversification: `factors` top level first (region, school, ..., card ASN).
    pub fn diversify_path(self, key: &SymmetricKey, factors: &[[u8; 8]]) -> Result<SymmetricKey> {
        self.check_key(key)?;
        let mut current = key.clone();
        for factor in factors {
            current = Diversifier::prepared(self, &current).derive(factor);
        }
        Ok(current)
    }

    /// A transaction session key from the 8-byte input (§5.2):
    /// PBOC: `E(K, input)` as a single-DES key; SM4 v1: `SM4(K, input || 80 00..00)`.
    pub fn session_key(self, key: &SymmetricKey, input: &[u8; 8]) -> Result<SymmetricKey> {
        self.check_key(key)?;
        let cipher = BlockCipher::new(key);
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(input);
        Ok(match self {
            Self::PbocDes => {
                cipher.encrypt_block(&mut block[..8])?;
                SymmetricKey::new(SymmetricAlgorithm::Des, &block[..8])?
            }
            Self::YktSm4V1 => {
                block[8] = 0x80;
                cipher.encrypt_block(&mut block)?;
                SymmetricKey::new(SymmetricAlgorithm::Sm4, &block)?
            }
        })
    }

    /// The key that computes TACs from the card's DTK (§5.4): PBOC folds a 16-byte DTK to
    /// `DTK_L XOR DTK_R` (an 8-byte DTK is used as is); SM4 v1 uses the DTK directly.
    pub fn tac_key(self, dtk: &SymmetricKey) -> Result<SymmetricKey> {
        self.check_key(dtk)?;
        match dtk.algorithm() {
            SymmetricAlgorithm::TripleDes => {
                let bytes = dtk.expose_secret();
                let mut folded = zeroize::Zeroizing::new([0u8; 8]);
                for (i, out) in folded.iter_mut().enumerate() {
                    *out = bytes[i] ^ bytes[i + 8];
                }
                SymmetricKey::new(SymmetricAlgorithm::Des, &folded[..])
            }
            _ => Ok(dtk.clone()),
        }
    }
}

/// A parent key prepared for repeated one-level diversification (for example a school key
/// deriving many card keys).
#[derive(Clone)]
pub struct Diversifier {
    profile: Profile,
    cipher: BlockCipher,
}

impl Diversifier {
    /// Prepares `key` for diversification under `profile`.
    pub fn new(profile: Profile, key: &SymmetricKey) -> Result<Self> {
        profile.check_key(key)?;
        Ok(Self::prepared(profile, key))
    }

    fn prepared(profile: Profile, key: &SymmetricKey) -> Self {
        Self {
            profile,
            cipher: BlockCipher::new(key),
        }
    }

    /// The child key for `factor`.
    pub fn derive(&self, factor: &[u8; 8]) -> SymmetricKey {
        let mut block = zeroize::Zeroizing::new([0u8; 16]);
        block[..8].copy_from_slice(factor);
        for i in 0..8 {
            block[8 + i] = !factor[i];
        }
        let algorithm = match self.profile {
            Profile::PbocDes => {
                let (left, right) = block.split_at_mut(8);
                self.cipher.encrypt_block(left).expect("8-byte block");
                self.cipher.encrypt_block(right).expect("8-byte block");
                SymmetricAlgorithm::TripleDes
            }
            Profile::YktSm4V1 => {
                self.cipher
                    .encrypt_block(&mut block[..])
                    .expect("16-byte block");
                SymmetricAlgorithm::Sm4
            }
        };
        SymmetricKey::new(algorithm, &block[..]).expect("16 bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_refuses_foreign_keys() {
        let sm4 = SymmetricKey::new(SymmetricAlgorithm::Sm4, &[1; 16]).unwrap();
        assert!(Profile::PbocDes.diversify(&sm4, &[0; 8]).is_err());
        let aes = SymmetricKey::new(SymmetricAlgorithm::Aes128, &[1; 16]).unwrap();
        assert!(Profile::for_algorithm(aes.algorithm()).is_err());
    }

    #[test]
    fn algorithm_ids() {
        let k = |a, n| SymmetricKey::new(a, &vec![1; n]).unwrap();
        assert_eq!(
            Profile::PbocDes.algorithm_id(&k(SymmetricAlgorithm::TripleDes, 16)),
            Ok(0)
        );
        assert_eq!(
            Profile::PbocDes.algorithm_id(&k(SymmetricAlgorithm::Des, 8)),
            Ok(1)
        );
        assert_eq!(
            Profile::YktSm4V1.algorithm_id(&k(SymmetricAlgorithm::Sm4, 16)),
            Ok(4)
        );
    }

    #[test]
    fn tac_key_folds_only_3des() {
        let dtk = SymmetricKey::new(
            SymmetricAlgorithm::TripleDes,
            &hex::decode("00112233445566778899AABBCCDDEEFF").unwrap(),
        )
        .unwrap();
        let folded = Profile::PbocDes.tac_key(&dtk).unwrap();
        assert_eq!(
            folded.expose_secret(),
            hex::decode("8888888888888888").unwrap()
        );
    }
}
