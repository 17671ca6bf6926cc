//! Anti-tearing for financial commands. A command that changes balance, counters, log and
//! transaction proof first persists a journal listing every write with its final value, then
//! makes each write as its own write point, then removes the journal. Whoever finds a journal
//! (the next power-on) makes all its writes again: they set absolute values, so repeating them
//! is harmless. A power loss therefore leaves either the old state (journal not yet written)
//! or the new one (journal finished at power-on), never a mix.

use crate::card::{Card, Fault};
use crate::fs::{Body, Content, DataFile, Ef};
use crate::persist::{Image, hex_list};
use crate::purse::Prove;
use serde::{Deserialize, Serialize};

/// The writes of one financial command, persisted before the first of them is made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Journal {
    /// In order.
    pub writes: Vec<Write>,
}

/// One write with its final value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "write", rename_all = "snake_case")]
pub(crate) enum Write {
    /// A purse's balance and counters.
    Purse {
        /// Path of the purse's DF.
        df: Vec<u16>,
        /// The purse (0001 ED, 0002 EP).
        fid: u16,
        /// New balance.
        balance: u32,
        /// New online serial.
        online_seq: u16,
        /// New offline serial.
        offline_seq: u16,
    },
    /// All records of a record file (the log, a compound-application file).
    Records {
        /// Path of the file's DF.
        df: Vec<u16>,
        /// The file.
        fid: u16,
        /// Its records afterwards.
        #[serde(with = "hex_list")]
        records: Vec<Vec<u8>>,
    },
    /// The proof GET TRANSACTION PROVE returns.
    Prove {
        /// MAC and TAC of the transaction.
        prove: Prove,
    },
}

impl Write {
    /// Makes the write (again). The journal is built from the same image, so its targets
    /// exist; a target that does not is left alone.
    fn apply(&self, image: &mut Image) {
        match self {
            Self::Purse {
                df,
                fid,
                balance,
                online_seq,
                offline_seq,
            } => {
                if let Some(Ef {
                    body: Body::Purse(purse),
                    ..
                }) = image.mf.descend_mut(df).and_then(|d| d.ef_mut(*fid))
                {
                    purse.balance = *balance;
                    purse.online_seq = *online_seq;
                    purse.offline_seq = *offline_seq;
                }
            }
            Self::Records { df, fid, records } => {
                if let Some(Ef {
                    body: Body::Data(DataFile { content, .. }),
                    ..
                }) = image.mf.descend_mut(df).and_then(|d| d.ef_mut(*fid))
                    && let Content::Fixed { records: old, .. }
                    | Content::Variable { records: old, .. }
                    | Content::Cyclic { records: old, .. } = content
                {
                    old.clone_from(records);
                }
            }
            Self::Prove { prove } => image.last_transaction = Some(prove.clone()),
        }
    }
}

/// Finishes an interrupted command: makes every write of the image's journal and removes it.
/// Returns whether there was one.
pub(crate) fn finish(image: &mut Image) -> bool {
    let Some(journal) = image.journal.take() else {
        return false;
    };
    for write in &journal.writes {
        write.apply(image);
    }
    true
}

impl Card {
    /// Commits `writes`: one write point for the journal, one per write, one to remove the
    /// journal.
    pub(crate) fn commit(&mut self, writes: Vec<Write>) -> Result<(), Fault> {
        let journal = Journal {
            writes: writes.clone(),
        };
        self.write(|image| {
            image.journal = Some(journal);
            Ok(())
        })?;
        for write in &writes {
            self.write(|image| {
                write.apply(image);
                Ok(())
            })?;
        }
        self.write(|image| {
            image.journal = None;
            Ok(())
        })
    }
}
