//! MACs: the PBOC/FMCOS CBC-MAC family, CMAC, and constant-time comparison.

use crate::block::{BlockCipher, MAX_BLOCK_LEN};
use crate::des::Des;
use crate::error::{CryptoError, Result};
use crate::key::SymmetricKey;
use subtle::ConstantTimeEq;

/// ISO/IEC 9797-1 padding method 2 as PBOC uses it: append `80`, then `00` up to a multiple of
/// `block_len`. A whole block of padding is added when the data is already aligned.
pub fn pad_80(data: &[u8], block_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + block_len);
    out.extend_from_slice(data);
    out.push(0x80);
    while out.len() % block_len != 0 {
        out.push(0);
    }
    out
}

/// A MAC value: one cipher block (8 or 16 bytes). PBOC transmits the leftmost four bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MacBlock {
    bytes: [u8; MAX_BLOCK_LEN],
    len: usize,
}

impl MacBlock {
    /// The whole block.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The leftmost four bytes, as sent in APDUs (MAC1, MAC2, TAC, line-protection MAC).
    pub fn first4(&self) -> [u8; 4] {
        [self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]]
    }
}

impl std::fmt::Debug for MacBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MacBlock(")?;
        self.as_bytes()
            .iter()
            .try_for_each(|b| write!(f, "{b:02X}"))?;
        write!(f, ")")
    }
}

/// A key prepared for the PBOC/FMCOS MAC (`pboc-spec.md` §5.3, JR/T 0025 "MAC calculation"):
///
/// - 8-byte DES key: DES CBC-MAC;
/// - 16-byte 3DES key: ISO/IEC 9797-1 MAC algorithm 3 (the "retail MAC": single-DES CBC under
///   K1, then `E_K1(D_K2(last))`), *not* full 3DES-CBC;
/// - SM4 key: SM4 CBC-MAC (ykt SM4 profile v1).
///
/// Data is always padded with `80 00..`; the IV is the zero block or, for secure messaging, the
/// card's challenge padded with zeros.
// The key schedules stay inline: a MAC key lives briefly on the stack, and boxing the larger
// 3DES schedule would cost an allocation per TAC in the clearing hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum PbocMac {
    /// DES CBC-MAC.
    Des(Des),
    /// ISO/IEC 9797-1 algorithm 3 with a two-key 3DES key.
    Retail(crate::des::TripleDes),
    /// SM4 CBC-MAC.
    Sm4(crate::sm4::Sm4),
}

impl PbocMac {
    /// Prepares `key`; only DES, 3DES and SM4 keys are accepted.
    pub fn new(key: &SymmetricKey) -> Result<Self> {
        match BlockCipher::new(key) {
            BlockCipher::Des(c) => Ok(Self::Des(c)),
            BlockCipher::TripleDes(c) => Ok(Self::Retail(c)),
            BlockCipher::Sm4(c) => Ok(Self::Sm4(c)),
            BlockCipher::Aes128(_) | BlockCipher::Aes256(_) => Err(CryptoError::WrongAlgorithm {
                algorithm: key.algorithm().name(),
                operation: "the PBOC MAC",
            }),
        }
    }

    /// Block length (8 for DES and 3DES, 16 for SM4): also the IV length.
    pub fn block_len(&self) -> usize {
        match self {
            Self::Des(_) | Self::Retail(_) => 8,
            Self::Sm4(_) => 16,
        }
    }

    /// The MAC of `data` with the zero IV.
    pub fn compute(&self, data: &[u8]) -> MacBlock {
        self.compute_with_iv(&[0u8; MAX_BLOCK_LEN][..self.block_len()], data)
            .expect("zero IV has the block length")
    }

    /// The MAC of `data` chained from `iv`, which must be one block long.
    pub fn compute_with_iv(&self, iv: &[u8], data: &[u8]) -> Result<MacBlock> {
        let n = self.block_len();
        if iv.len() != n {
            return Err(CryptoError::FieldLength {
                field: "IV",
                expected: if n == 8 { "8 bytes" } else { "16 bytes" },
                actual: iv.len(),
            });
        }
        let mut state = [0u8; MAX_BLOCK_LEN];
        state[..n].copy_from_slice(iv);
        let mut chunks = data.chunks_exact(n);
        for chunk in &mut chunks {
            state[..n].iter_mut().zip(chunk).for_each(|(s, d)| *s ^= d);
            self.chain(&mut state);
        }
        let rest = chunks.remainder();
        state[..rest.len()]
            .iter_mut()
            .zip(rest)
            .for_each(|(s, d)| *s ^= d);
        state[rest.len()] ^= 0x80;
        self.chain(&mut state);
        if let Self::Retail(tdes) = self {
            let (k1, k2) = tdes.halves();
            let last: &mut [u8; 8] = (&mut state[..8]).try_into().expect("8 bytes");
            k2.decrypt_block(last);
            k1.encrypt_block(last);
        }
        Ok(MacBlock {
            bytes: state,
            len: n,
        })
    }

    #[inline(always)]
    fn chain(&self, state: &mut [u8; MAX_BLOCK_LEN]) {
        match self {
            Self::Des(c) => c.encrypt_block((&mut state[..8]).try_into().expect("8 bytes")),
            Self::Retail(c) => c
                .halves()
                .0
                .encrypt_block((&mut state[..8]).try_into().expect("8 bytes")),
            Self::Sm4(c) => c.encrypt_block(state),
        }
    }
}

/// CMAC (NIST SP 800-38B, RFC 4493) over any supported block cipher; the full tag is returned.
/// ykt uses it with AES and SM4 (KCVs, AES-CMAC).
pub fn cmac(key: &SymmetricKey, data: &[u8]) -> Vec<u8> {
    let cipher = BlockCipher::new(key);
    let n = cipher.block_len();
    let rb: u8 = if n == 16 { 0x87 } else { 0x1B };
    let double = |block: &[u8]| -> Vec<u8> {
        let mut out: Vec<u8> = block
            .iter()
            .enumerate()
            .map(|(i, b)| (b << 1) | block.get(i + 1).map_or(0, |next| next >> 7))
            .collect();
        if block[0] & 0x80 != 0 {
            out[n - 1] ^= rb;
        }
        out
    };
    let mut l = vec![0u8; n];
    cipher.encrypt_block(&mut l).expect("one block");
    let k1 = double(&l);
    let k2 = double(&k1);

    let full_last = !data.is_empty() && data.len().is_multiple_of(n);
    let head_len = if full_last {
        data.len() - n
    } else {
        data.len() - data.len() % n
    };
    let mut last = vec![0u8; n];
    let tail = &data[head_len..];
    last[..tail.len()].copy_from_slice(tail);
    let subkey = if full_last {
        &k1
    } else {
        last[tail.len()] = 0x80;
        &k2
    };
    last.iter_mut().zip(subkey).for_each(|(b, k)| *b ^= k);

    let mut state = vec![0u8; n];
    for chunk in data[..head_len]
        .chunks_exact(n)
        .chain(std::iter::once(&last[..]))
    {
        state.iter_mut().zip(chunk).for_each(|(s, d)| *s ^= d);
        cipher.encrypt_block(&mut state).expect("one block");
    }
    state
}

/// Compares a received MAC (or TAC, or cryptogram) with the expected one in constant time.
/// `what` names the value in the error.
pub fn verify(expected: &[u8], received: &[u8], what: &'static str) -> Result<()> {
    if expected.len() == received.len() && bool::from(expected.ct_eq(received)) {
        Ok(())
    } else {
        Err(CryptoError::Mismatch(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::SymmetricAlgorithm;
    use aes::cipher::KeyInit;
    use cmac::Mac;

    fn key(alg: SymmetricAlgorithm, hex: &str) -> SymmetricKey {
        SymmetricKey::new(alg, &hex::decode(hex).unwrap()).unwrap()
    }

    #[test]
    fn padding_always_adds_at_least_one_byte() {
        assert_eq!(pad_80(&[1, 2, 3], 8), [1, 2, 3, 0x80, 0, 0, 0, 0]);
        assert_eq!(pad_80(&[0; 8], 8).len(), 16);
        assert_eq!(pad_80(&[], 16), [[0x80].as_slice(), &[0; 15]].concat());
    }

    #[test]
    fn rfc4493_aes_cmac_examples() {
        let k = key(
            SymmetricAlgorithm::Aes128,
            "2B7E151628AED2A6ABF7158809CF4F3C",
        );
        let msg = hex::decode(
            "6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E5130C81C46A35CE411",
        )
        .unwrap();
        assert_eq!(
            hex::encode_upper(cmac(&k, &[])),
            "BB1D6929E95937287FA37D129B756746"
        );
        assert_eq!(
            hex::encode_upper(cmac(&k, &msg[..16])),
            "070A16B46B4D4144F79BDD9DD04A287C"
        );
        assert_eq!(
            hex::encode_upper(cmac(&k, &msg)),
            "DFA66747DE9AE63030CA32611497C827"
        );
    }

    #[test]
    fn cmac_agrees_with_the_cmac_crate() {
        let raw = hex::decode("000102030405060708090A0B0C0D0E0F").unwrap();
        let k = SymmetricKey::new(SymmetricAlgorithm::Aes128, &raw).unwrap();
        for len in 0..70 {
            let data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
            let mut reference = <cmac::Cmac<aes::Aes128> as KeyInit>::new_from_slice(&raw).unwrap();
            reference.update(&data);
            assert_eq!(
                cmac(&k, &data),
                reference.finalize().into_bytes().as_slice(),
                "len {len}"
            );
        }
    }

    #[test]
    fn mac_refuses_aes_and_bad_iv() {
        assert!(PbocMac::new(&key(SymmetricAlgorithm::Aes128, &"00".repeat(16))).is_err());
        let mac = PbocMac::new(&key(SymmetricAlgorithm::Des, "0011223344556677")).unwrap();
        assert!(mac.compute_with_iv(&[0; 4], b"x").is_err());
    }

    #[test]
    fn verify_is_exact() {
        assert!(verify(&[1, 2, 3, 4], &[1, 2, 3, 4], "MAC").is_ok());
        assert_eq!(
            verify(&[1, 2, 3, 4], &[1, 2, 3, 5], "MAC"),
            Err(CryptoError::Mismatch("MAC"))
        );
        assert!(verify(&[1, 2, 3, 4], &[1, 2, 3], "MAC").is_err());
    }
}
