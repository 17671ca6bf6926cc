//! The card's side of FMCOS secure messaging (`pboc-spec.md` §5.5): checking the MAC of a
//! protected command (CLA with bit 0x04) against the last challenge, decrypting its payload,
//! and MACing the data of a protected read. The algorithms are `ykt_crypto::secure_messaging`'s;
//! MACs are compared in constant time.

use ykt_apdu::{Command, Sw};
use ykt_crypto::SymmetricKey;
use ykt_crypto::mac::verify;
use ykt_crypto::secure_messaging::{decrypt_data, line_mac};

/// The payload of a protected command (data without its trailing MAC) and whether the MAC,
/// computed over `CLA INS P1 P2 Lc payload` with the challenge as IV, is right. 6987 when the
/// data is too short to carry a MAC.
pub(crate) fn check_mac<'c>(
    key: &SymmetricKey,
    challenge: &[u8],
    c: &'c Command,
) -> Result<(&'c [u8], bool), Sw> {
    let Some(split) = c.data.len().checked_sub(4) else {
        return Err(Sw::SmObjectMissing);
    };
    let (payload, mac) = c.data.split_at(split);
    let mut input = Vec::with_capacity(c.data.len() + 1);
    input.extend_from_slice(&c.header());
    input.push(c.data.len() as u8);
    input.extend_from_slice(payload);
    let expected = line_mac(key, challenge, &input).map_err(|_| Sw::SmObjectIncorrect)?;
    Ok((
        payload,
        verify(&expected, mac, "line-protection MAC").is_ok(),
    ))
}

/// Decrypts an encrypted payload (`Ld || data || pad`): 6A80 when it is not well formed.
pub(crate) fn decrypt(key: &SymmetricKey, payload: &[u8]) -> Result<Vec<u8>, Sw> {
    decrypt_data(key, payload).map_err(|_| Sw::WrongData)
}

/// Checks a protected command and returns its plain data: 6988 for a wrong MAC, then the
/// payload decrypted when `encrypted`.
pub(crate) fn open(
    key: &SymmetricKey,
    challenge: &[u8],
    c: &Command,
    encrypted: bool,
) -> Result<Vec<u8>, Sw> {
    let (payload, mac_ok) = check_mac(key, challenge, c)?;
    if !mac_ok {
        return Err(Sw::SmObjectIncorrect);
    }
    if encrypted {
        decrypt(key, payload)
    } else {
        Ok(payload.to_vec())
    }
}

/// The MAC a protected read appends to its data (same key and challenge as the command's).
pub(crate) fn response_mac(
    key: &SymmetricKey,
    challenge: &[u8],
    data: &[u8],
) -> Result<[u8; 4], Sw> {
    line_mac(key, challenge, data).map_err(|_| Sw::SmObjectIncorrect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ykt_crypto::SymmetricAlgorithm;
    use ykt_crypto::secure_messaging::protect_command;

    #[test]
    fn opens_what_the_terminal_side_protects() {
        let key = SymmetricKey::new(SymmetricAlgorithm::TripleDes, &[0x36; 16]).unwrap();
        let challenge = [1, 2, 3, 4];
        for encrypt in [false, true] {
            let apdu = protect_command(&key, &challenge, [0x00, 0xD6, 0x95, 0], b"hello", encrypt)
                .unwrap();
            let c = Command::parse(&apdu).unwrap();
            assert_eq!(open(&key, &challenge, &c, encrypt).unwrap(), b"hello");
            assert_eq!(
                open(&key, &[9, 9, 9, 9], &c, encrypt).unwrap_err(),
                Sw::SmObjectIncorrect
            );
        }
        let short = Command::new(4, 0xD6, 0, 0).with_data([1, 2, 3]);
        assert_eq!(
            open(&key, &challenge, &short, false).unwrap_err(),
            Sw::SmObjectMissing
        );
    }
}
