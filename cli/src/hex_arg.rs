//! The hex argument type every byte-string option of `ykt` uses.
//!
//! Upper and lower case are accepted and whitespace is ignored (`--data "84 D4 01 00"`); an odd
//! number of digits or a non-hex character is an error. Lengths are checked where the value is
//! used, against what the field needs. The bytes are wiped on drop and `Debug` shows only the
//! length, since options such as `--key` carry key material.

use crate::error::{CliError, Result};
use std::fmt;
use std::str::FromStr;
use ykt_crypto::{SymmetricAlgorithm, SymmetricKey};
use zeroize::Zeroizing;

/// A byte string given in hex on the command line.
#[derive(Clone)]
pub struct Hex(Zeroizing<Vec<u8>>);

impl FromStr for Hex {
    type Err = CliError;

    fn from_str(text: &str) -> Result<Self> {
        let digits: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
        hex::decode(digits.as_bytes())
            .map(|bytes| Self(Zeroizing::new(bytes)))
            .map_err(|err| {
                CliError::Hex(match err {
                    hex::FromHexError::OddLength => "odd number of hex digits",
                    _ => "not a hex string",
                })
            })
    }
}

impl Hex {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as an array of exactly `N`; `arg` names the option in the error.
    pub fn array<const N: usize>(&self, arg: &'static str) -> Result<[u8; N]> {
        self.bytes().try_into().map_err(|_| CliError::Input {
            arg,
            reason: format!("must be {N} bytes, got {}", self.bytes().len()),
        })
    }

    /// The bytes as a key of `algorithm`; `arg` names the option in the error.
    pub fn key(&self, algorithm: SymmetricAlgorithm, arg: &'static str) -> Result<SymmetricKey> {
        SymmetricKey::new(algorithm, self.bytes()).map_err(CliError::rejected(arg))
    }
}

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hex(<{} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<u8>> {
        text.parse::<Hex>().map(|hex| hex.bytes().to_vec())
    }

    #[test]
    fn case_and_whitespace_do_not_matter() {
        assert_eq!(parse("84d4 01\t00").unwrap(), [0x84, 0xD4, 0x01, 0x00]);
        assert_eq!(parse("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn odd_length_and_foreign_characters_are_errors() {
        assert_eq!(
            parse("ABC").unwrap_err().to_string(),
            "odd number of hex digits"
        );
        assert_eq!(parse("0G").unwrap_err().to_string(), "not a hex string");
    }

    #[test]
    fn lengths_are_checked_and_debug_hides_the_bytes() {
        let hex: Hex = "A5A5A5".parse().unwrap();
        assert_eq!(hex.array::<3>("--x").unwrap(), [0xA5; 3]);
        assert_eq!(
            hex.array::<4>("--x").unwrap_err().to_string(),
            "--x: must be 4 bytes, got 3"
        );
        assert_eq!(format!("{hex:?}"), "Hex(<3 bytes>)");
        assert!(hex.key(SymmetricAlgorithm::Des, "--key").is_err());
    }
}
