//! `ykt lab sm3`: the SM3 digest of a message.

use crate::error::Result;
use crate::hex_arg::Hex;
use crate::output::{Output, Record, Report};
use clap::Args;
use ykt_crypto::sm2::sm3;

/// Arguments of `ykt lab sm3`.
#[derive(Args)]
pub struct Sm3Args {
    /// The message, in hex.
    #[arg(long, value_name = "HEX")]
    msg: Hex,
}

impl Sm3Args {
    /// Computes `{digest}`.
    pub fn run(self) -> Result<Report> {
        Ok(Report::ok(Output::Record(
            Record::new().with("digest", sm3(self.msg.bytes())),
        )))
    }
}
