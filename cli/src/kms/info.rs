//! `ykt kms info`: what was fixed at initialisation. Reads the store only.

use crate::context::{Context, Need};
use crate::error::Result;
use crate::output::{Output, Record, Report};
use crate::time::format_ms;
use clap::Args;

/// Arguments of `ykt kms info` (none of its own).
#[derive(Args)]
pub struct InfoArgs {}

impl InfoArgs {
    /// Describes the KMS.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let info = context.block_on(kms.info())?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("data_dir", context.data_dir().display().to_string())
                .with("bureau_code", info.bureau_code)
                .with("bureau_name", info.bureau_name)
                .with("quorum", u64::from(info.quorum))
                .with("hsm", info.hsm)
                .with("lmk_kcv", info.lmk_kcv)
                .with("initialised_at", format_ms(info.initialised_at))
                .with("signing_public_key", info.signing_public_key),
        )))
    }
}
