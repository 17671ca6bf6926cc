//! `ykt lab kcv`: the key check value custodians compare instead of the key.

use super::KeyArgs;
use crate::error::Result;
use crate::output::{Output, Record, Report};
use clap::{Args, ValueEnum};
use ykt_crypto::{Kcv, KcvMethod};

/// Arguments of `ykt lab kcv`.
#[derive(Args)]
pub struct KcvArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Method; by default encrypt-zeros for 3des/des and cmac for sm4.
    #[arg(long, value_enum)]
    method: Option<Method>,
}

/// The KCV methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    /// Encrypt one zero block, keep 3 bytes.
    EncryptZeros,
    /// CMAC over one zero block, keep 5 bytes.
    Cmac,
}

impl KcvArgs {
    /// Computes `{kcv, method}`.
    pub fn run(self) -> Result<Report> {
        let key = self.key.key()?;
        let kcv = match self.method {
            None => Kcv::of(&key),
            Some(Method::EncryptZeros) => Kcv::compute(&key, KcvMethod::EncryptZeros),
            Some(Method::Cmac) => Kcv::compute(&key, KcvMethod::Cmac),
        };
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("kcv", kcv.value())
                .with("method", kcv.method().name()),
        )))
    }
}
