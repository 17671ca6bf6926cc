//! A prepared block cipher for any [`SymmetricKey`], and ECB over whole blocks.

use crate::des::{Des, TripleDes};
use crate::error::{CryptoError, Result};
use crate::key::{SymmetricAlgorithm, SymmetricKey};
use crate::sm4::Sm4;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

/// Largest block length of the supported ciphers.
pub const MAX_BLOCK_LEN: usize = 16;

/// A key schedule ready to encrypt or decrypt single blocks.
#[derive(Clone)]
pub enum BlockCipher {
    /// Single DES.
    Des(Des),
    /// Two-key triple DES EDE.
    TripleDes(TripleDes),
    /// SM4.
    Sm4(Sm4),
    /// AES-128.
    Aes128(aes::Aes128),
    /// AES-256.
    Aes256(aes::Aes256),
}

impl BlockCipher {
    /// Expands `key` for its own algorithm.
    pub fn new(key: &SymmetricKey) -> Self {
        let bytes = key.expose_secret();
        match key.algorithm() {
            SymmetricAlgorithm::Des => Self::Des(Des::new(bytes.try_into().expect("checked"))),
            SymmetricAlgorithm::TripleDes => {
                Self::TripleDes(TripleDes::new(bytes.try_into().expect("checked")))
            }
            SymmetricAlgorithm::Sm4 => Self::Sm4(Sm4::new(bytes.try_into().expect("checked"))),
            SymmetricAlgorithm::Aes128 => {
                Self::Aes128(aes::Aes128::new(&Array::try_from(bytes).expect("checked")))
            }
            SymmetricAlgorithm::Aes256 => {
                Self::Aes256(aes::Aes256::new(&Array::try_from(bytes).expect("checked")))
            }
        }
    }

    /// Block length in bytes (8 or 16).
    pub fn block_len(&self) -> usize {
        match self {
            Self::Des(_) | Self::TripleDes(_) => 8,
            Self::Sm4(_) | Self::Aes128(_) | Self::Aes256(_) => 16,
        }
    }

    fn check(&self, block: &[u8]) -> Result<()> {
        if block.len() == self.block_len() {
            Ok(())
        } else {
            Err(CryptoError::FieldLength {
                field: "block",
                expected: if self.block_len() == 8 {
                    "8 bytes"
                } else {
                    "16 bytes"
                },
                actual: block.len(),
            })
        }
    }

    /// Encrypts one block in place; `block` must be exactly one block long.
    pub fn encrypt_block(&self, block: &mut [u8]) -> Result<()> {
        self.check(block)?;
        match self {
            Self::Des(c) => c.encrypt_block(block.try_into().expect("checked")),
            Self::TripleDes(c) => c.encrypt_block(block.try_into().expect("checked")),
            Self::Sm4(c) => c.encrypt_block(block.try_into().expect("checked")),
            Self::Aes128(c) => c.encrypt_block(block.try_into().expect("checked")),
            Self::Aes256(c) => c.encrypt_block(block.try_into().expect("checked")),
        }
        Ok(())
    }

    /// Decrypts one block in place; `block` must be exactly one block long.
    pub fn decrypt_block(&self, block: &mut [u8]) -> Result<()> {
        self.check(block)?;
        match self {
            Self::Des(c) => c.decrypt_block(block.try_into().expect("checked")),
            Self::TripleDes(c) => c.decrypt_block(block.try_into().expect("checked")),
            Self::Sm4(c) => c.decrypt_block(block.try_into().expect("checked")),
            Self::Aes128(c) => c.decrypt_block(block.try_into().expect("checked")),
            Self::Aes256(c) => c.decrypt_block(block.try_into().expect("checked")),
        }
        Ok(())
    }

    /// ECB encryption of whole blocks in place.
    pub fn encrypt_ecb(&self, data: &mut [u8]) -> Result<()> {
        self.check_whole_blocks(data)?;
        data.chunks_exact_mut(self.block_len())
            .try_for_each(|block| self.encrypt_block(block))
    }

    /// ECB decryption of whole blocks in place.
    pub fn decrypt_ecb(&self, data: &mut [u8]) -> Result<()> {
        self.check_whole_blocks(data)?;
        data.chunks_exact_mut(self.block_len())
            .try_for_each(|block| self.decrypt_block(block))
    }

    fn check_whole_blocks(&self, data: &[u8]) -> Result<()> {
        if data.len().is_multiple_of(self.block_len()) {
            Ok(())
        } else {
            Err(CryptoError::FieldLength {
                field: "ECB data",
                expected: if self.block_len() == 8 {
                    "a multiple of 8 bytes"
                } else {
                    "a multiple of 16 bytes"
                },
                actual: data.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_fips197_appendix_c() {
        let key = SymmetricKey::new(
            SymmetricAlgorithm::Aes128,
            &hex::decode("000102030405060708090A0B0C0D0E0F").unwrap(),
        )
        .unwrap();
        let mut block = hex::decode("00112233445566778899AABBCCDDEEFF").unwrap();
        let cipher = BlockCipher::new(&key);
        cipher.encrypt_block(&mut block).unwrap();
        assert_eq!(
            hex::encode_upper(&block),
            "69C4E0D86A7B0430D8CDB78070B4C55A"
        );
        cipher.decrypt_block(&mut block).unwrap();
        assert_eq!(
            hex::encode_upper(&block),
            "00112233445566778899AABBCCDDEEFF"
        );
    }

    #[test]
    fn wrong_block_length_is_an_error() {
        let key = SymmetricKey::new(SymmetricAlgorithm::Sm4, &[1; 16]).unwrap();
        let mut short = [0u8; 8];
        assert!(BlockCipher::new(&key).encrypt_block(&mut short).is_err());
        assert!(BlockCipher::new(&key).encrypt_ecb(&mut [0u8; 20]).is_err());
    }
}
