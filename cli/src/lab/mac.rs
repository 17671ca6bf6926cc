//! `ykt lab mac`: the PBOC/FMCOS MAC (DES CBC-MAC, 3DES retail MAC or SM4 CBC-MAC), leftmost
//! four bytes.

use super::KeyArgs;
use crate::error::{CliError, Result};
use crate::hex_arg::Hex;
use crate::output::{Output, Record, Report};
use clap::Args;
use ykt_crypto::secure_messaging::line_mac;

/// Arguments of `ykt lab mac`.
#[derive(Args)]
pub struct MacArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// IV: one block (8 bytes, 16 for sm4), or a 4- or 8-byte card challenge that is padded
    /// with zeros as in secure messaging. Zero by default.
    #[arg(long, value_name = "HEX")]
    iv: Option<Hex>,
    /// The data; padding with 80 00.. is added.
    #[arg(long, value_name = "HEX")]
    data: Hex,
}

impl MacArgs {
    /// Computes `{mac}`.
    pub fn run(self) -> Result<Report> {
        let key = self.key.key()?;
        let zero_iv = vec![0u8; key.algorithm().block_len()];
        let iv = self.iv.as_ref().map_or(&zero_iv[..], Hex::bytes);
        let mac = line_mac(&key, iv, self.data.bytes()).map_err(CliError::rejected("--iv"))?;
        Ok(Report::ok(Output::Record(Record::new().with("mac", mac))))
    }
}
