//! The transaction log: 23-byte records (`pboc-spec.md` §1) appended, newest first, to the
//! cyclic file that the purse's log SFI names.

use crate::fs::{Body, Content, DataFile, Df, Ef};
use ykt_apdu::{LogRecord, Sw};

/// Length of a log record.
pub(crate) const RECORD_LEN: u8 = LogRecord::LEN as u8;

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
