//! `ykt officer`: the security officers whose quorum every dual-control act needs.

use crate::context::{Context, GroupCommand, Need, Officers};
use crate::error::Result;
use crate::output::{Output, Record, Report};
use crate::time::format_ms;
use clap::{Args, Subcommand};
use ykt_kms::{Credential, NewOfficer};

/// The officer commands.
#[derive(Subcommand)]
pub enum OfficerCommand {
    /// Register an officer; a quorum of officers approves. The new officer sets a password.
    Add(AddArgs),
    /// Every registered officer and their status.
    List(ListArgs),
    /// Disable an officer (their credentials stop counting); a quorum of other officers
    /// approves.
    Disable(DisableArgs),
}

impl GroupCommand for OfficerCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::Add(args) => args.run(context),
            Self::List(args) => args.run(context),
            Self::Disable(args) => args.run(context),
        }
    }
}

/// Arguments of `ykt officer add`.
#[derive(Args)]
pub struct AddArgs {
    /// The new officer's login name (a-z, 0-9, `-`, `_`).
    name: String,
    /// The new officer's full name.
    #[arg(long, value_name = "TEXT")]
    display_name: String,
    #[command(flatten)]
    approvals: Officers,
}

impl AddArgs {
    /// Registers the officer.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let approvals = context.credentials(&self.approvals.names)?;
        let password = context.new_password(&self.name)?;
        let officer = NewOfficer {
            credential: Credential::new(&self.name, &password),
            display_name: self.display_name.clone(),
        };
        context.block_on(kms.add_officer(&approvals, officer))?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("officer", self.name)
                .with("display_name", self.display_name)
                .with("status", "active"),
        )))
    }
}

/// Arguments of `ykt officer list` (none of its own).
#[derive(Args)]
pub struct ListArgs {}

impl ListArgs {
    /// Lists the officers.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let officers = context.block_on(kms.officers())?;
        Ok(Report::ok(Output::List(
            officers
                .into_iter()
                .map(|o| {
                    Record::new()
                        .with("name", o.name)
                        .with("display_name", o.display_name)
                        .with("status", o.status)
                        .with("created_at", format_ms(o.created_at))
                        .with("status_at", format_ms(o.status_at))
                        .with("status_reason", o.status_reason)
                })
                .collect(),
        )))
    }
}

/// Arguments of `ykt officer disable`.
#[derive(Args)]
pub struct DisableArgs {
    /// The officer to disable.
    name: String,
    /// Why.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    #[command(flatten)]
    approvals: Officers,
}

impl DisableArgs {
    /// Disables the officer.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let approvals = context.credentials(&self.approvals.names)?;
        context.block_on(kms.disable_officer(&approvals, &self.name, &self.reason))?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("officer", self.name)
                .with("status", "disabled")
                .with("reason", self.reason),
        )))
    }
}
