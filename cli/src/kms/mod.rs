//! `ykt kms`: the bureau's KMS itself: initialise it once, describe it, serve its API.

mod info;
mod init;
mod serve;

use crate::context::{Context, GroupCommand};
use crate::error::Result;
use crate::output::Report;
use clap::Subcommand;

/// The KMS commands.
#[derive(Subcommand)]
pub enum KmsCommand {
    /// Initialise the KMS in the data directory: the HSM (LMK from the officers' components,
    /// or lab mode), the bureau, its quorum, the first officers and the KMS signing key.
    Init(init::InitArgs),
    /// The facts fixed at initialisation: bureau, quorum, HSM, LMK check value, signing key.
    Info(info::InfoArgs),
    /// Serve the KMS API over HTTPS with mutual TLS until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
}

impl GroupCommand for KmsCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::Init(args) => args.run(context),
            Self::Info(args) => args.run(context),
            Self::Serve(args) => args.run(context),
        }
    }
}
