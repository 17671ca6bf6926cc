//! `ykt lab secure-message`: a protected command as a terminal sends it (FMCOS line
//! protection, optionally with encrypted data, e.g. WRITE KEY 84 D4).

use super::KeyArgs;
use crate::error::{CliError, Result};
use crate::hex_arg::Hex;
use crate::output::{Output, Record, Report};
use clap::Args;
use ykt_crypto::CryptoError;
use ykt_crypto::secure_messaging::protect_command;

/// Arguments of `ykt lab secure-message`.
#[derive(Args)]
pub struct SecureMessageArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The card's challenge from GET CHALLENGE: 4 or 8 bytes (16 for sm4).
    #[arg(long, value_name = "HEX")]
    challenge: Hex,
    /// CLA INS P1 P2, 4 bytes (e.g. 84D40100); the secure-messaging bit of CLA is set.
    #[arg(long, value_name = "HEX")]
    header: Hex,
    /// The plain command data.
    #[arg(long, value_name = "HEX")]
    data: Hex,
    /// Encrypt the data (Ld || data, padded with 80 00.. when not block-aligned, ECB).
    #[arg(long)]
    encrypt: bool,
}

impl SecureMessageArgs {
    /// Computes `{apdu}`: header, Lc, the (encrypted) data and the 4-byte MAC.
    pub fn run(self) -> Result<Report> {
        let key = self.key.key()?;
        let header = self.header.array::<4>("--header")?;
        let apdu = protect_command(
            &key,
            self.challenge.bytes(),
            header,
            self.data.bytes(),
            self.encrypt,
        )
        .map_err(|err| match err {
            CryptoError::FieldLength {
                field: "challenge", ..
            } => CliError::rejected("--challenge")(err),
            other => CliError::rejected("--data")(other),
        })?;
        Ok(Report::ok(Output::Record(Record::new().with("apdu", apdu))))
    }
}
