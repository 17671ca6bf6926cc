//! `ykt ceremony recover`: a key version recovered from its custody backup into this HSM
//! with the custodians' shares (from the ceremony file or typed at hidden prompts); the
//! recovered key must have the stored check value.

use crate::context::{Context, Need, Officers};
use crate::error::Result;
use crate::output::{Output, Record, Report};
use clap::Args;

/// Arguments of `ykt ceremony recover`.
#[derive(Args)]
pub struct RecoverArgs {
    /// The key (ID or alias).
    key: String,
    /// The version to recover.
    #[arg(long, value_name = "V")]
    version: u8,
    #[command(flatten)]
    officers: Officers,
}

impl RecoverArgs {
    /// Recovers the version and shows its check value.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Hsm(&self.officers.names))?;
        let approvals = context.credentials(&self.officers.names)?;
        let present: Vec<String> = approvals.iter().map(|c| c.name.clone()).collect();
        let what = format!("{} version {}", self.key, self.version);
        let shares = context.shares(&present, &what)?;
        let count = shares.len() as u64;
        let check =
            context.block_on(kms.recover_custody(&approvals, &self.key, self.version, &shares))?;
        let id = context.block_on(kms.resolve(&self.key))?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("key_id", id)
                .with("version", u64::from(self.version))
                .with("check", check)
                .with("shares", count),
        )))
    }
}
