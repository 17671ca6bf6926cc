//! FMCOS/PBOC secure messaging (线路保护 / 线路加密), `pboc-spec.md` §5.5: line-protection MAC
//! with the card's challenge as IV, data encryption, protected commands (WRITE KEY 84D4,
//! UPDATE BINARY 04D6, ...), and the external-authentication cryptogram.
//!
//! The key decides the algorithms: DES (CBC-MAC, DES-ECB), two-key 3DES (retail MAC, 3DES-ECB)
//! or SM4 (SM4 CBC-MAC, SM4-ECB, ykt SM4 profile v1).

use crate::block::{BlockCipher, MAX_BLOCK_LEN};
use crate::error::{CryptoError, Result};
use crate::key::SymmetricKey;
use crate::mac::PbocMac;

/// The IV of a line-protection MAC: the challenge (4 or 8 bytes from GET CHALLENGE, or 16 for
/// an SM4 card) followed by zeros up to the block length.
fn challenge_iv(block_len: usize, challenge: &[u8]) -> Result<[u8; MAX_BLOCK_LEN]> {
    if !matches!(challenge.len(), 4 | 8) && challenge.len() != block_len {
        return Err(CryptoError::FieldLength {
            field: "challenge",
            expected: "4 or 8 bytes (16 for SM4)",
            actual: challenge.len(),
        });
    }
    let mut iv = [0u8; MAX_BLOCK_LEN];
    iv[..challenge.len()].copy_from_slice(challenge);
    Ok(iv)
}

/// The line-protection MAC (leftmost 4 bytes) of `data` with the challenge IV.
pub fn line_mac(key: &SymmetricKey, challenge: &[u8], data: &[u8]) -> Result<[u8; 4]> {
    let mac = PbocMac::new(key)?;
    let iv = challenge_iv(mac.block_len(), challenge)?;
    Ok(mac.compute_with_iv(&iv[..mac.block_len()], data)?.first4())
}

/// Encrypts a secure-messaging payload: `Ld || data`, padded with `80 00..` only when not
/// block-aligned, then ECB.
pub fn encrypt_data(key: &SymmetricKey, data: &[u8]) -> Result<Vec<u8>> {
    let ld = u8::try_from(data.len()).map_err(|_| CryptoError::FieldLength {
        field: "plaintext",
        expected: "at most 255 bytes",
        actual: data.len(),
    })?;
    let cipher = checked_cipher(key)?;
    let n = cipher.block_len();
    let mut block = Vec::with_capacity(data.len() + 1 + n);
    block.push(ld);
    block.extend_from_slice(data);
    if block.len() % n != 0 {
        block.push(0x80);
        block.resize(block.len().div_ceil(n) * n, 0);
    }
    cipher.encrypt_ecb(&mut block)?;
    Ok(block)
}

/// Decrypts a payload made by [`encrypt_data`] and returns the plaintext `data`. Anything
/// but `Ld || data || (80 00.. only if unaligned)` is an error.
pub fn decrypt_data(key: &SymmetricKey, cryptogram: &[u8]) -> Result<Vec<u8>> {
    let cipher = checked_cipher(key)?;
    let n = cipher.block_len();
    if cryptogram.is_empty() || !cryptogram.len().is_multiple_of(n) {
        return Err(CryptoError::MalformedPlaintext);
    }
    let mut block = cryptogram.to_vec();
    cipher.decrypt_ecb(&mut block)?;
    let ld = block[0] as usize;
    let end = 1 + ld;
    let well_formed = if end == block.len() {
        true
    } else {
        end < block.len()
            && block.len() - end <= n
            && block[end] == 0x80
            && block[end + 1..].iter().all(|&b| b == 0)
            && !end.is_multiple_of(n)
    };
    if !well_formed {
        return Err(CryptoError::MalformedPlaintext);
    }
    Ok(block[1..end].to_vec())
}

fn checked_cipher(key: &SymmetricKey) -> Result<BlockCipher> {
    PbocMac::new(key)?; // the same DES / 3DES / SM4 restriction as the MAC
    Ok(BlockCipher::new(key))
}

/// Builds a protected command: `CLA|04 INS P1 P2 Lc payload MAC4`, where the payload is `data`
/// (line protection) or [`encrypt_data`] of it (`encrypt`), `Lc` counts the MAC, and the MAC
/// covers header, `Lc` and payload with the challenge IV.
pub fn protect_command(
    key: &SymmetricKey,
    challenge: &[u8],
    header: [u8; 4],
    data: &[u8],
    encrypt: bool,
) -> Result<Vec<u8>> {
    let payload = if encrypt {
        encrypt_data(key, data)?
    } else {
        data.to_vec()
    };
    let lc = u8::try_from(payload.len() + 4).map_err(|_| CryptoError::FieldLength {
        field: "protected command data",
        expected: "at most 251 bytes after encryption",
        actual: payload.len(),
    })?;
    let mut apdu = Vec::with_capacity(payload.len() + 9);
    apdu.push(header[0] | 0x04);
    apdu.extend_from_slice(&header[1..]);
    apdu.push(lc);
    apdu.extend_from_slice(&payload);
    let mac = line_mac(key, challenge, &apdu)?;
    apdu.extend_from_slice(&mac);
    Ok(apdu)
}

/// The WRITE KEY (84 D4) command that adds (`p1` = 01) or modifies (`p1` = key type) key `p2`
/// with `key_record` (type, rights, version/state, algorithm/error counter, key), encrypted and
/// MACed under `key` (the DF master key on FMCOS, the application master key on a PSAM).
pub fn write_key_command(
    key: &SymmetricKey,
    challenge: &[u8],
    p1: u8,
    p2: u8,
    key_record: &[u8],
) -> Result<Vec<u8>> {
    protect_command(key, challenge, [0x84, 0xD4, p1, p2], key_record, true)
}

/// The EXTERNAL AUTHENTICATE cryptogram: `E(K, challenge || 00..)` over one block (a 4-byte
/// challenge is padded with zeros; SM4 cards get the whole 16-byte block).
pub fn external_auth_cryptogram(key: &SymmetricKey, challenge: &[u8]) -> Result<Vec<u8>> {
    let cipher = checked_cipher(key)?;
    let n = cipher.block_len();
    let mut block = challenge_iv(n, challenge)?[..n].to_vec();
    cipher.encrypt_block(&mut block)?;
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::SymmetricAlgorithm;

    fn key(alg: SymmetricAlgorithm, byte: u8) -> SymmetricKey {
        SymmetricKey::new(alg, &vec![byte; alg.key_len()]).unwrap()
    }

    #[test]
    fn encryption_pads_only_unaligned_data_and_round_trips() {
        let k = key(SymmetricAlgorithm::TripleDes, 0x3C);
        assert_eq!(encrypt_data(&k, &[0; 7]).unwrap().len(), 8);
        assert_eq!(encrypt_data(&k, &[0; 8]).unwrap().len(), 16);
        let s = key(SymmetricAlgorithm::Sm4, 0x5A);
        assert_eq!(encrypt_data(&s, &[0; 15]).unwrap().len(), 16);
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            for k in [&k, &s] {
                assert_eq!(
                    decrypt_data(k, &encrypt_data(k, &data).unwrap()).unwrap(),
                    data
                );
            }
        }
    }

    #[test]
    fn malformed_cryptograms_are_refused() {
        let k = key(SymmetricAlgorithm::TripleDes, 0x11);
        assert_eq!(
            decrypt_data(&k, &[0; 7]),
            Err(CryptoError::MalformedPlaintext)
        );
        let mut bad = vec![0x20u8, 1, 2, 3, 4, 5, 6, 7]; // Ld longer than the block
        BlockCipher::new(&k).encrypt_ecb(&mut bad).unwrap();
        assert_eq!(decrypt_data(&k, &bad), Err(CryptoError::MalformedPlaintext));
    }

    #[test]
    fn challenge_lengths_are_checked() {
        let k = key(SymmetricAlgorithm::TripleDes, 0x22);
        assert!(line_mac(&k, &[0; 3], b"x").is_err());
        assert!(line_mac(&k, &[0; 8], b"x").is_ok());
        assert!(external_auth_cryptogram(&k, &[0; 16]).is_err());
        let s = key(SymmetricAlgorithm::Sm4, 0x22);
        assert!(line_mac(&s, &[0; 16], b"x").is_ok());
    }

    #[test]
    fn protected_command_sets_the_sm_bit_and_counts_the_mac() {
        let k = key(SymmetricAlgorithm::TripleDes, 0x33);
        let apdu =
            protect_command(&k, &[1, 2, 3, 4], [0x00, 0xD6, 0x95, 0x00], &[9; 5], false).unwrap();
        assert_eq!(&apdu[..5], &[0x04, 0xD6, 0x95, 0x00, 9]);
        assert_eq!(apdu.len(), 5 + 5 + 4);
        assert!(protect_command(&k, &[1, 2, 3, 4], [0x04, 0xD6, 0, 0], &[0; 252], false).is_err());
    }
}
