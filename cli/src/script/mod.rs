//! `ykt script`: APDU scripts (the format is described in `ykt_apdu::script`): check one, or
//! run one on card readers.

mod check;
pub mod reader;
mod run;

use crate::error::{CliError, Result};
use crate::output::Report;
use clap::Subcommand;
use std::path::Path;
use ykt_apdu::script::Script;

/// The script commands.
#[derive(Subcommand)]
pub enum ScriptCommand {
    /// Parse a script and count its commands per channel; nothing is sent.
    Check(check::CheckArgs),
    /// Run a script on card readers and print its transcript.
    Run(run::RunArgs),
}

impl ScriptCommand {
    /// Runs the command.
    pub fn run(self) -> Result<Report> {
        match self {
            Self::Check(args) => args.run(),
            Self::Run(args) => args.run(),
        }
    }
}

/// Reads and parses the script at `path`.
fn load(path: &Path) -> Result<Script> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Script::parse(&text).map_err(|error| CliError::ScriptSyntax {
        file: path.display().to_string(),
        error: Box::new(error),
    })
}
