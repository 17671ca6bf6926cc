//! `ykt ceremony resplit`: a key's custody split anew among new custodians; every live
//! version gets a new backup, so the old shares open nothing.

use super::{key_record_versions, prepare_shares_dir, write_shares};
use crate::context::{Context, Need, Officers};
use crate::error::Result;
use crate::output::{Output, Report};
use clap::Args;
use std::path::PathBuf;
use ykt_kms::ceremony::CustodySpec;

/// Arguments of `ykt ceremony resplit`.
#[derive(Args)]
pub struct ResplitArgs {
    /// The key (ID or alias).
    key: String,
    /// Shares needed to recover the key.
    #[arg(long, value_name = "M")]
    threshold: u8,
    /// A new custodian, who gets one share of each live version (repeat).
    #[arg(long = "custodian", value_name = "NAME", required = true)]
    custodians: Vec<String>,
    /// The directory for the share files (created with mode 0700).
    #[arg(long, value_name = "DIR")]
    shares_out: PathBuf,
    #[command(flatten)]
    officers: Officers,
}

impl ResplitArgs {
    /// Re-splits the custody and writes the new share files.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Hsm(&self.officers.names))?;
        let info = context.block_on(kms.key(&self.key))?;
        let versions: Vec<u8> = info
            .versions
            .iter()
            .filter(|v| v.state != "destroyed")
            .map(|v| v.version)
            .collect();
        let planned: Vec<(String, String, u8)> = versions
            .iter()
            .flat_map(|v| {
                self.custodians
                    .iter()
                    .map(|o| (o.clone(), info.id.clone(), *v))
            })
            .collect();
        prepare_shares_dir(&self.shares_out, &planned)?;
        let approvals = context.credentials(&self.officers.names)?;
        let spec = CustodySpec {
            threshold: self.threshold,
            custodians: self.custodians,
        };
        let shares = context.block_on(kms.resplit_custody(&approvals, &self.key, &spec))?;
        let files = write_shares(&self.shares_out, &shares)?;
        Ok(Report::ok(Output::Record(key_record_versions(
            &info.id,
            &versions,
            spec.threshold,
            files,
        ))))
    }
}
