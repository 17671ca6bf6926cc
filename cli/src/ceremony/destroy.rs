//! Destroying a key (`ykt ceremony destroy`, also `ykt key destroy`): every version destroyed
//! in the HSM, its wrapped form and custody backup erased from the store; the key's record
//! and history remain. Only a pre-active, deactivated or compromised key can be destroyed.

use crate::context::{Context, Need, Officers};
use crate::error::Result;
use crate::output::{Output, Record, Report};
use clap::Args;

/// Arguments of `ykt ceremony destroy` and `ykt key destroy`.
#[derive(Args)]
pub struct DestroyArgs {
    /// The key (ID or alias).
    key: String,
    /// Why.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    #[command(flatten)]
    officers: Officers,
}

impl DestroyArgs {
    /// Destroys the key.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Hsm(&self.officers.names))?;
        let approvals = context.credentials(&self.officers.names)?;
        let id = context.block_on(kms.resolve(&self.key))?;
        context.block_on(kms.destroy_key(&approvals, &self.key, &self.reason))?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("key_id", id)
                .with("state", "destroyed")
                .with("reason", self.reason),
        )))
    }
}
