//! The transaction log: 23-byte records (`pboc-spec.md` §1) appended, newest first, to the
//! cyclic file that the purse's log SFI names.

use crate::fs::{Body, Content, DataFile, Df, Ef};
use ykt_apdu::Sw;

/// Length of a log record.
pub(crate) const RECORD_LEN: u8 = 23;

/// One transaction as the log records it.
pub(crate) struct LogEntry {
    /// Online (load) or offline (purchase) serial before the transaction.
    pub serial: u16,
    /// Overdraft limit (3 bytes).
    pub overdraft_limit: u32,
    /// Amount.
    pub amount: u32,
    /// Transaction type (01/02 load, 05/06 purchase, 09 compound).
    pub transaction_type: u8,
    /// Terminal ID.
    pub terminal_id: [u8; 6],
    /// Date YYYYMMDD (BCD).
    pub date: [u8; 4],
    /// Time hhmmss (BCD).
    pub time: [u8; 3],
}

impl LogEntry {
    /// `serial2 overdraft3 amount4 type1 terminal6 date4 time3`.
    pub fn to_bytes(&self) -> [u8; RECORD_LEN as usize] {
        let mut r = [0u8; RECORD_LEN as usize];
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

/// The FID of the log file with short identifier `sfi` in `df`: 6A82 when absent, 6981 when
/// it is not a cyclic file of 23-byte records.
pub(crate) fn log_file(df: &Df, sfi: u8) -> Result<u16, Sw> {
    match df.ef_by_sfi(sfi).ok_or(Sw::FileNotFound)? {
        Ef {
            fid,
            body:
                Body::Data(DataFile {
                    content:
                        Content::Cyclic {
                            len: RECORD_LEN, ..
                        },
                    ..
                }),
        } => Ok(*fid),
        _ => Err(Sw::IncompatibleFileStructure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout_matches_the_published_read_back() {
        // B-robur: 0001 000000 00000010 02 666666666666 20240411 212121
        let entry = LogEntry {
            serial: 1,
            overdraft_limit: 0,
            amount: 0x10,
            transaction_type: 2,
            terminal_id: [0x66; 6],
            date: [0x20, 0x24, 0x04, 0x11],
            time: [0x21, 0x21, 0x21],
        };
        assert_eq!(
            hex::encode_upper(entry.to_bytes()),
            "00010000000000001002666666666666202404112121 21".replace(' ', "")
        );
    }
}
