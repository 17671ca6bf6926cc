//! PBOC e-purse data layouts that both sides of the card interface read and write.

/// One record of a card's transaction log (cyclic EF 0018, `pboc-spec.md` §1), 23 bytes:
/// `serial2 overdraft3 amount4 type1 terminal6 date4 time3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecord {
    /// Online (load) or offline (purchase) serial, before the transaction.
    pub serial: u16,
    /// Overdraft limit (3 bytes on the card).
    pub overdraft_limit: u32,
    /// Amount in fen.
    pub amount: u32,
    /// Transaction type (01/02 load, 05/06 purchase, 09 compound purchase).
    pub transaction_type: u8,
    /// Terminal ID.
    pub terminal_id: [u8; 6],
    /// Date YYYYMMDD, BCD.
    pub date: [u8; 4],
    /// Time hhmmss, BCD.
    pub time: [u8; 3],
}

impl LogRecord {
    /// Length of an encoded record.
    pub const LEN: usize = 23;

    /// Parses a 23-byte record; `None` for any other length.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        let take = |range: std::ops::Range<usize>| &bytes[range];
        Some(Self {
            serial: u16::from_be_bytes([bytes[0], bytes[1]]),
            overdraft_limit: u32::from_be_bytes([0, bytes[2], bytes[3], bytes[4]]),
            amount: u32::from_be_bytes(take(5..9).try_into().ok()?),
            transaction_type: bytes[9],
            terminal_id: take(10..16).try_into().ok()?,
            date: take(16..20).try_into().ok()?,
            time: take(20..23).try_into().ok()?,
        })
    }

    /// The 23-byte encoding; the overdraft limit keeps its low 3 bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut r = [0u8; Self::LEN];
        r[..2].copy_from_slice(&self.serial.to_be_bytes());
        r[2..5].copy_from_slice(&self.overdraft_limit.to_be_bytes()[1..]);
        r[5..9].copy_from_slice(&self.amount.to_be_bytes());
        r[9] = self.transaction_type;
        r[10..16].copy_from_slice(&self.terminal_id);
        r[16..20].copy_from_slice(&self.date);
        r[20..].copy_from_slice(&self.time);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_published_read_back() {
        // A published FMCOS read-back (B-robur): 0001 000000 00000010 02 666666666666 20240411 212121
        let bytes = hex::decode("0001000000000000100266666666666620240411212121").unwrap();
        let record = LogRecord::parse(&bytes).unwrap();
        assert_eq!(
            record,
            LogRecord {
                serial: 1,
                overdraft_limit: 0,
                amount: 0x10,
                transaction_type: 2,
                terminal_id: [0x66; 6],
                date: [0x20, 0x24, 0x04, 0x11],
                time: [0x21, 0x21, 0x21],
            }
        );
        assert_eq!(record.to_bytes().as_slice(), bytes);
        assert!(LogRecord::parse(&bytes[..22]).is_none());
    }
}
