//! `ykt lab purchase`: the cryptograms of a purchase (INITIALIZE FOR PURCHASE + DEBIT FOR
//! PURCHASE): session key, MAC1, MAC2 and TAC.

use super::{TransactionArgs, cryptograms};
use crate::error::{CliError, Result};
use crate::hex_arg::Hex;
use crate::output::Report;
use clap::Args;
use ykt_crypto::Purchase;

/// Arguments of `ykt lab purchase`.
#[derive(Args)]
pub struct PurchaseArgs {
    /// The card's purchase key (DPK), in hex.
    #[arg(long, value_name = "HEX")]
    dpk: Hex,
    #[command(flatten)]
    common: TransactionArgs,
    /// Card offline transaction serial before the purchase, 2 bytes.
    #[arg(long, value_name = "HEX")]
    offline_seq: Hex,
    /// Terminal (PSAM) transaction serial, 4 bytes.
    #[arg(long, value_name = "HEX")]
    terminal_seq: Hex,
}

impl PurchaseArgs {
    /// Computes `{session_key, mac1, mac2, tac}`.
    pub fn run(self) -> Result<Report> {
        let t = self.common.parse()?;
        let dpk = self.dpk.key(t.algorithm, "--dpk")?;
        let purchase = Purchase {
            card_random: t.card_random,
            offline_seq: u16::from_be_bytes(self.offline_seq.array("--offline-seq")?),
            amount: t.amount,
            transaction_type: t.transaction_type,
            terminal_id: t.terminal_id,
            terminal_seq: u32::from_be_bytes(self.terminal_seq.array("--terminal-seq")?),
            date: t.date,
            time: t.time,
        };
        let session_key = purchase
            .session_key(t.profile, &dpk)
            .map_err(CliError::rejected("--dpk"))?;
        let tac = purchase
            .tac(t.profile, &t.dtk)
            .map_err(CliError::rejected("--dtk"))?;
        Ok(cryptograms(
            &session_key,
            purchase.mac1(&session_key)?,
            purchase.mac2(&session_key)?,
            tac,
        ))
    }
}
