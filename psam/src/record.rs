//! The purchase record a terminal uploads for clearing, in a fixed binary layout.

use crate::card::{array, be16, be32};
use crate::error::{Result, TerminalError};
use std::fmt;

/// Version byte that opens every [`PurchaseRecord`] in binary form.
pub const PURCHASE_RECORD_VERSION: u8 = 0x01;

/// Length of a [`PurchaseRecord`] in binary form.
pub const PURCHASE_RECORD_LEN: usize = 43;

/// One completed purchase, everything the back office needs to verify its TAC (with the TAC
/// key diversified by the ASN) and to settle it.
///
/// Binary form ([`PurchaseRecord::to_bytes`], [`PurchaseRecord::parse`]), 43 bytes, numbers
/// big-endian:
///
/// | Offset | Length | Field |
/// |---|---|---|
/// | 0 | 1 | layout version, [`PURCHASE_RECORD_VERSION`] (01) |
/// | 1 | 8 | ASN (diversification factor) |
/// | 9 | 2 | card offline serial, before the purchase |
/// | 11 | 4 | amount in fen |
/// | 15 | 1 | transaction type (05 ED, 06 EP, 09 compound) |
/// | 16 | 6 | terminal ID |
/// | 22 | 4 | terminal (PSAM) serial |
/// | 26 | 4 | date YYYYMMDD, BCD |
/// | 30 | 3 | time hhmmss, BCD |
/// | 33 | 4 | TAC |
/// | 37 | 1 | purchase key version |
/// | 38 | 1 | algorithm ID (00 3DES, 01 DES, 04 SM4) |
/// | 39 | 4 | balance before the purchase, in fen |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PurchaseRecord {
    /// The card's ASN (rightmost 8 bytes), the diversification factor of its keys.
    pub asn: [u8; 8],
    /// The card's offline serial before the purchase.
    pub offline_seq: u16,
    /// Amount in fen.
    pub amount: u32,
    /// Transaction type: 05 ED, 06 EP, 09 compound purchase.
    pub transaction_type: u8,
    /// Terminal ID (PSAM EF 0016).
    pub terminal_id: [u8; 6],
    /// Terminal serial, from the PSAM.
    pub terminal_seq: u32,
    /// Terminal date YYYYMMDD, BCD.
    pub date: [u8; 4],
    /// Terminal time hhmmss, BCD.
    pub time: [u8; 3],
    /// The card's transaction authentication code.
    pub tac: [u8; 4],
    /// Version of the card's purchase key (selects the PSAM key and the master key).
    pub key_version: u8,
    /// Algorithm ID the card reported.
    pub algorithm_id: u8,
    /// Balance before the purchase, in fen.
    pub balance_before: u32,
}

/// A field value for JSON or table output: numbers stay numbers, byte strings are upper-case
/// hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// A number (amounts, balances, serials, the transaction type as a number).
    Number(u32),
    /// Bytes as upper-case hex.
    Hex(String),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Hex(s) => f.write_str(s),
        }
    }
}

fn hex_field(bytes: &[u8]) -> FieldValue {
    FieldValue::Hex(hex::encode_upper(bytes))
}

impl PurchaseRecord {
    /// Balance after the purchase, in fen.
    pub fn balance_after(&self) -> u32 {
        self.balance_before.saturating_sub(self.amount)
    }

    /// The binary form (see the table on [`PurchaseRecord`]).
    pub fn to_bytes(&self) -> [u8; PURCHASE_RECORD_LEN] {
        let mut out = [0u8; PURCHASE_RECORD_LEN];
        out[0] = PURCHASE_RECORD_VERSION;
        out[1..9].copy_from_slice(&self.asn);
        out[9..11].copy_from_slice(&self.offline_seq.to_be_bytes());
        out[11..15].copy_from_slice(&self.amount.to_be_bytes());
        out[15] = self.transaction_type;
        out[16..22].copy_from_slice(&self.terminal_id);
        out[22..26].copy_from_slice(&self.terminal_seq.to_be_bytes());
        out[26..30].copy_from_slice(&self.date);
        out[30..33].copy_from_slice(&self.time);
        out[33..37].copy_from_slice(&self.tac);
        out[37] = self.key_version;
        out[38] = self.algorithm_id;
        out[39..].copy_from_slice(&self.balance_before.to_be_bytes());
        out
    }

    /// Parses the binary form: exactly [`PURCHASE_RECORD_LEN`] bytes opening with
    /// [`PURCHASE_RECORD_VERSION`].
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != PURCHASE_RECORD_LEN {
            return Err(TerminalError::MalformedRecord("not 43 bytes"));
        }
        if bytes[0] != PURCHASE_RECORD_VERSION {
            return Err(TerminalError::MalformedRecord("unknown layout version"));
        }
        Ok(Self {
            asn: array(&bytes[1..]),
            offline_seq: be16(bytes, 9),
            amount: be32(bytes, 11),
            transaction_type: bytes[15],
            terminal_id: array(&bytes[16..]),
            terminal_seq: be32(bytes, 22),
            date: array(&bytes[26..]),
            time: array(&bytes[30..]),
            tac: array(&bytes[33..]),
            key_version: bytes[37],
            algorithm_id: bytes[38],
            balance_before: be32(bytes, 39),
        })
    }

    /// The binary form as upper-case hex (86 characters).
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.to_bytes())
    }

    /// Parses [`PurchaseRecord::to_hex`] output (either case).
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes = hex::decode(text).map_err(|_| TerminalError::MalformedRecord("not hex"))?;
        Self::parse(&bytes)
    }

    /// Every field with its snake_case name, in binary-layout order, for JSON objects and
    /// tables (see [`FieldValue`]).
    pub fn fields(&self) -> [(&'static str, FieldValue); 12] {
        use FieldValue::Number;
        [
            ("asn", hex_field(&self.asn)),
            ("offline_seq", Number(self.offline_seq.into())),
            ("amount", Number(self.amount)),
            ("transaction_type", hex_field(&[self.transaction_type])),
            ("terminal_id", hex_field(&self.terminal_id)),
            ("terminal_seq", Number(self.terminal_seq)),
            ("date", hex_field(&self.date)),
            ("time", hex_field(&self.time)),
            ("tac", hex_field(&self.tac)),
            ("key_version", hex_field(&[self.key_version])),
            ("algorithm_id", hex_field(&[self.algorithm_id])),
            ("balance_before", Number(self.balance_before)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PurchaseRecord {
        PurchaseRecord {
            asn: [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18],
            offline_seq: 0x0102,
            amount: 1234,
            transaction_type: 0x06,
            terminal_id: [1, 2, 3, 4, 5, 6],
            terminal_seq: 0x0A0B0C0D,
            date: [0x20, 0x26, 0x05, 0x01],
            time: [0x10, 0x20, 0x30],
            tac: [0xDE, 0xAD, 0xBE, 0xEF],
            key_version: 0x01,
            algorithm_id: 0x04,
            balance_before: 10_000,
        }
    }

    #[test]
    fn binary_layout_is_fixed() {
        assert_eq!(
            sample().to_hex(),
            "01A1B2C3D4E5F607180102000004D2060102030405060A0B0C0D20260501102030DEADBEEF010400002710"
        );
        assert_eq!(PurchaseRecord::parse(&sample().to_bytes()), Ok(sample()));
        assert_eq!(
            PurchaseRecord::from_hex(&sample().to_hex().to_lowercase()),
            Ok(sample())
        );
        assert_eq!(sample().balance_after(), 10_000 - 1234);
    }

    #[test]
    fn malformed_records_are_errors() {
        let bytes = sample().to_bytes();
        for bad in [&bytes[..42], &[bytes.as_slice(), &[0]].concat()] {
            assert_eq!(
                PurchaseRecord::parse(bad),
                Err(TerminalError::MalformedRecord("not 43 bytes"))
            );
        }
        let mut other = bytes;
        other[0] = 0x02;
        assert!(PurchaseRecord::parse(&other).is_err());
        assert!(PurchaseRecord::from_hex("zz").is_err());
    }

    #[test]
    fn fields_name_every_value() {
        let fields = sample().fields();
        assert_eq!(
            fields[0],
            ("asn", FieldValue::Hex("A1B2C3D4E5F60718".into()))
        );
        assert_eq!(fields[2], ("amount", FieldValue::Number(1234)));
        assert_eq!(fields[8].1.to_string(), "DEADBEEF");
        assert_eq!(fields[11].1.to_string(), "10000");
    }
}
