//! `ykt lab load`: the cryptograms of a load (INITIALIZE FOR LOAD + CREDIT FOR LOAD): session
//! key, MAC1, MAC2 and TAC.

use super::{TransactionArgs, cryptograms};
use crate::error::{CliError, Result};
use crate::hex_arg::Hex;
use crate::output::Report;
use clap::Args;
use ykt_crypto::{CryptoError, Load};

/// Arguments of `ykt lab load`.
#[derive(Args)]
pub struct LoadArgs {
    /// The card's load key (DLK), in hex.
    #[arg(long, value_name = "HEX")]
    dlk: Hex,
    #[command(flatten)]
    common: TransactionArgs,
    /// Card online transaction serial before the load, 2 bytes.
    #[arg(long, value_name = "HEX")]
    online_seq: Hex,
    /// Balance before the load in fen, 4 bytes big-endian.
    #[arg(long, value_name = "HEX")]
    old_balance: Hex,
}

impl LoadArgs {
    /// Computes `{session_key, mac1, mac2, tac}`.
    pub fn run(self) -> Result<Report> {
        let t = self.common.parse()?;
        let dlk = self.dlk.key(t.algorithm, "--dlk")?;
        let load = Load {
            card_random: t.card_random,
            online_seq: u16::from_be_bytes(self.online_seq.array("--online-seq")?),
            old_balance: u32::from_be_bytes(self.old_balance.array("--old-balance")?),
            amount: t.amount,
            transaction_type: t.transaction_type,
            terminal_id: t.terminal_id,
            date: t.date,
            time: t.time,
        };
        let session_key = load
            .session_key(t.profile, &dlk)
            .map_err(CliError::rejected("--dlk"))?;
        let tac = load.tac(t.profile, &t.dtk).map_err(|err| match err {
            CryptoError::OutOfRange(_) => CliError::rejected("--amount")(err),
            other => CliError::rejected("--dtk")(other),
        })?;
        Ok(cryptograms(
            &session_key,
            load.mac1(&session_key)?,
            load.mac2(&session_key)?,
            tac,
        ))
    }
}
