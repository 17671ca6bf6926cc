//! `ykt`: the command line of the ykt school smart-card security core.
//!
//! - `ykt lab ...`: a calculator for field engineers debugging terminals and cards: key check
//!   values, diversification, PBOC MACs, e-purse load and purchase cryptograms, secure
//!   messaging, SM2/SM3 and the built-in self-test. Keys given to it are lab/test keys.
//! - `ykt bench ...`: throughput measurements against the performance goals.
//! - `ykt script ...`: APDU scripts (scriptor-compatible, with expectations, variables and
//!   secrets): check them, run them on card readers.
//! - `ykt card ...`: virtual FMCOS cards and PSAMs in state files: serve one in a vpcd reader
//!   (with the `pcsc` feature), describe one.
//!
//! Every command prints a table, or one line of JSON with `--json`. Errors are one line on
//! standard error; exit status 2 means the command line or a value on it was wrong, 1 that the
//! command failed or found a negative result (a signature that does not verify, a failed
//! self-test).

mod bench;
mod card;
mod error;
mod hex_arg;
mod lab;
mod output;
mod script;

use clap::{Parser, Subcommand};
use error::{CliError, Result};
use output::Report;
use std::process::ExitCode;

/// Security core of the ykt school smart-card system.
#[derive(Parser)]
#[command(name = "ykt", version, about)]
struct Cli {
    /// Print JSON (snake_case keys, byte strings as upper-case hex) instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// The command groups.
#[derive(Subcommand)]
enum Command {
    /// Lab calculator: KCV, diversification, MACs, e-purse cryptograms, secure messaging,
    /// SM2/SM3, self-test.
    #[command(subcommand)]
    Lab(Box<lab::LabCommand>),
    /// Performance measurements.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// APDU scripts: check them, run them on card readers.
    #[command(subcommand)]
    Script(script::ScriptCommand),
    /// Virtual cards in state files: serve one in a vpcd reader, describe one.
    #[command(subcommand)]
    Card(card::CardCommand),
}

impl Command {
    fn run(self) -> Result<Report> {
        match self {
            Self::Lab(command) => command.run(),
            Self::Bench(command) => command.run(),
            Self::Script(command) => command.run(),
            Self::Card(command) => command.run(),
        }
    }
}

fn main() -> ExitCode {
    use clap::error::ErrorKind;
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            err.exit()
        }
        Err(err) => return fail(&CliError::usage(&err)),
    };
    match cli.command.run().and_then(|report| report.print(cli.json)) {
        Ok(status) => status,
        Err(err) => fail(&err),
    }
}

/// Reports `err` as one line on standard error.
fn fail(err: &CliError) -> ExitCode {
    let message = err
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("ykt: error: {message}");
    err.exit_code()
}
