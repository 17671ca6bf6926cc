//! Key check values: what custodians compare instead of the key.

use crate::block::BlockCipher;
use crate::key::{SymmetricAlgorithm, SymmetricKey};
use crate::mac::cmac;
use std::fmt;

/// How a key check value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KcvMethod {
    /// Encrypt one block of zeros and keep the leftmost 3 bytes (6 hex digits): the classic
    /// DES/3DES check value (ANSI X9.24-1 "ANSI_X9_24" method).
    EncryptZeros,
    /// CMAC over one block of zeros, leftmost 5 bytes (ANSI X9.24-1:2017 for AES; ykt uses the
    /// same for SM4).
    Cmac,
}

impl KcvMethod {
    /// The method ykt uses by default for `algorithm`: zeros-encryption for DES and 3DES, CMAC
    /// for AES and SM4.
    pub fn default_for(algorithm: SymmetricAlgorithm) -> Self {
        match algorithm {
            SymmetricAlgorithm::Des | SymmetricAlgorithm::TripleDes => Self::EncryptZeros,
            SymmetricAlgorithm::Sm4 | SymmetricAlgorithm::Aes128 | SymmetricAlgorithm::Aes256 => {
                Self::Cmac
            }
        }
    }

    /// Name as shown next to the value (`encrypt-zeros`, `cmac`).
    pub fn name(self) -> &'static str {
        match self {
            Self::EncryptZeros => "encrypt-zeros",
            Self::Cmac => "cmac",
        }
    }
}

/// A key check value together with the method that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kcv {
    method: KcvMethod,
    value: Vec<u8>,
}

impl Kcv {
    /// Computes the check value of `key` with `method`.
    pub fn compute(key: &SymmetricKey, method: KcvMethod) -> Self {
        let zeros = vec![0u8; key.algorithm().block_len()];
        let value = match method {
            KcvMethod::EncryptZeros => {
                let mut block = zeros;
                BlockCipher::new(key)
                    .encrypt_block(&mut block)
                    .expect("one block");
                block.truncate(3);
                block
            }
            KcvMethod::Cmac => {
                let mut tag = cmac(key, &zeros);
                tag.truncate(5);
                tag
            }
        };
        Self { method, value }
    }

    /// The check value with the default method for the key's algorithm.
    pub fn of(key: &SymmetricKey) -> Self {
        Self::compute(key, KcvMethod::default_for(key.algorithm()))
    }

    /// A check value received from elsewhere (a remote HSM, a token, a component form):
    /// `value` must have the length of `method` (3 bytes for encrypt-zeros, 5 for CMAC).
    pub fn from_value(method: KcvMethod, value: &[u8]) -> crate::Result<Self> {
        let (len, expected) = match method {
            KcvMethod::EncryptZeros => (3, "3 bytes for encrypt-zeros"),
            KcvMethod::Cmac => (5, "5 bytes for cmac"),
        };
        if value.len() != len {
            return Err(crate::CryptoError::FieldLength {
                field: "check value",
                expected,
                actual: value.len(),
            });
        }
        Ok(Self {
            method,
            value: value.to_vec(),
        })
    }

    /// The method used.
    pub fn method(&self) -> KcvMethod {
        self.method
    }

    /// The check value bytes (3 or 5).
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

impl fmt::Display for Kcv {
    /// Upper-case hex, as custodians read it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_check_values_keep_their_method_and_length() {
        let sm4 = SymmetricKey::new(SymmetricAlgorithm::Sm4, &[0x11; 16]).unwrap();
        let kcv = Kcv::of(&sm4);
        assert_eq!(Kcv::from_value(kcv.method(), kcv.value()).unwrap(), kcv);
        assert!(Kcv::from_value(KcvMethod::EncryptZeros, kcv.value()).is_err());
        assert!(Kcv::from_value(KcvMethod::Cmac, &[0; 3]).is_err());
    }

    #[test]
    fn lengths_follow_the_method() {
        let des = SymmetricKey::new(SymmetricAlgorithm::TripleDes, &[0x11; 16]).unwrap();
        assert_eq!(Kcv::of(&des).value().len(), 3);
        let sm4 = SymmetricKey::new(SymmetricAlgorithm::Sm4, &[0x11; 16]).unwrap();
        assert_eq!(Kcv::of(&sm4).value().len(), 5);
        assert_eq!(Kcv::compute(&sm4, KcvMethod::EncryptZeros).value().len(), 3);
    }

    #[test]
    fn aes_cmac_kcv_is_the_rfc4493_tag_prefix() {
        // RFC 4493 key; CMAC over 16 zero bytes cross-checked with the cmac crate.
        use aes::cipher::KeyInit;
        use cmac::Mac;
        let raw = hex::decode("2B7E151628AED2A6ABF7158809CF4F3C").unwrap();
        let key = SymmetricKey::new(SymmetricAlgorithm::Aes128, &raw).unwrap();
        let mut reference = <cmac::Cmac<aes::Aes128> as KeyInit>::new_from_slice(&raw).unwrap();
        reference.update(&[0u8; 16]);
        assert_eq!(
            Kcv::of(&key).value(),
            &reference.finalize().into_bytes()[..5]
        );
    }
}
