//! `ykt`: the command line of the ykt school smart-card security core.
//!
//! - `ykt lab ...`: a calculator for field engineers debugging terminals and cards: key check
//!   values, diversification, PBOC MACs, e-purse load and purchase cryptograms, secure
//!   messaging, SM2/SM3 and the built-in self-test. Keys given to it are lab/test keys.
//! - `ykt bench ...`: throughput measurements against the performance goals.
//! - `ykt script ...`: APDU scripts (scriptor-compatible, with expectations, variables and
//!   secrets): check them, run them on card readers.
//! - `ykt card ...`: virtual FMCOS cards and PSAMs in state files: serve one in a vpcd reader
//!   (with the `pcsc` feature), describe one, feed blank ones to an issuing station.
//! - `ykt kms init|info`: the bureau's KMS (`ykt_kms`) in a data directory: its HSM, bureau,
//!   quorum, first officers and signing key.
//! - `ykt officer add|list|disable`: the security officers.
//! - `ykt region add|list`, `ykt school add|list`: the key tree below the bureau.
//! - `ykt ceremony generate|import|resplit|recover|export-school|destroy`: key ceremonies
//!   under the officers' quorum; custody shares go to one file per custodian, never to the
//!   output.
//! - `ykt key list|show|rotate|suspend|resume|retire|compromised|destroy|alias|kcv`: keys and
//!   their lifecycle.
//! - `ykt audit verify|export|checkpoint`: the hash-chained, signed audit log.
//! - `ykt hsm serve`: the local HSM served to remote KMS hosts over the host protocol.
//! - `ykt ca init|show|crl`, `ykt client enroll|revoke|list`: the internal CA of the KMS API
//!   and its clients' certificates.
//! - `ykt demo`: the whole story on embedded defaults in a fresh data directory.
//! - `ykt profile list|export|check`: personalisation profiles.
//! - `ykt issue batch|psam|resume|list|show`: the issuing station (rosters, PSAMs, the
//!   journal), on virtual cards or a PC/SC reader.
//! - `ykt terminal balance|log|load|purchase|clear`: a terminal against issued cards, with the
//!   KMS as its online host and clearing house.
//!
//! The KMS commands take `--data-dir` and `--config` (`YKT_*` variables apply), and secrets
//! (passwords, components, shares) from a ceremony file (`--components-from`) or hidden
//! prompts, never from the command line.
//!
//! Logs go to standard error: ykt's own at the level of `YKT_LOG` (`error`, `warn` by
//! default, `info` for every audited act, `debug`, `trace`), its libraries' errors only.
//!
//! Every command prints a table, or one line of JSON with `--json`. Errors are one line on
//! standard error; exit status 2 means the command line or a value on it was wrong, 1 that the
//! command failed or found a negative result (a signature that does not verify, a failed
//! self-test).

mod api_client;
mod audit;
mod bench;
mod card;
mod ceremony;
mod client;
mod context;
mod demo;
mod error;
mod hex_arg;
mod hsm;
mod issue;
mod key;
mod kms;
mod lab;
mod officer;
mod output;
mod profile;
mod script;
mod terminal;
mod time;
mod tree;

use clap::{Parser, Subcommand};
use context::Group;
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
    /// The whole story on embedded defaults: KMS, key ceremonies, PSAMs, a batch of student
    /// cards, loads, purchases, clearing and the audit chain, in a fresh data directory.
    Demo(demo::DemoArgs),
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
    /// The bureau KMS: initialise it, describe it.
    Kms(Group<kms::KmsCommand>),
    /// Security officers: register, list, disable.
    Officer(Group<officer::OfficerCommand>),
    /// Regions of the key tree: add, list.
    Region(Group<tree::RegionCommand>),
    /// Schools of the key tree: add, list.
    School(Group<tree::SchoolCommand>),
    /// Key ceremonies: generate, import, re-split and recover custody, export a school's
    /// package, destroy.
    Ceremony(Group<ceremony::CeremonyCommand>),
    /// Keys and their lifecycle: list, show, rotate, suspend, resume, retire, report
    /// compromised, destroy, alias, check value.
    Key(Group<key::KeyCommand>),
    /// The audit log: verify, export, checkpoint.
    Audit(Group<audit::AuditCommand>),
    /// The HSM simulator: serve it over the host protocol.
    Hsm(Group<hsm::HsmCommand>),
    /// The internal CA of the KMS API: create it, its certificate, its revocation list.
    Ca(Group<client::CaCommand>),
    /// API clients: enrol (certificate and key), revoke, list.
    Client(Group<client::ClientCommand>),
    /// Personalisation profiles: list, export, check.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// The issuing station: user cards from rosters, PSAMs, resume, the journal.
    Issue(Group<issue::IssueCommand>),
    /// A terminal: balance, log, online load, purchase through a PSAM, clearing.
    Terminal(Group<terminal::TerminalCommand>),
}

impl Command {
    fn run(self) -> Result<Report> {
        match self {
            Self::Demo(args) => args.run(),
            Self::Lab(command) => command.run(),
            Self::Bench(command) => command.run(),
            Self::Script(command) => command.run(),
            Self::Card(command) => command.run(),
            Self::Kms(group) => group.run(),
            Self::Officer(group) => group.run(),
            Self::Region(group) => group.run(),
            Self::School(group) => group.run(),
            Self::Ceremony(group) => group.run(),
            Self::Key(group) => group.run(),
            Self::Audit(group) => group.run(),
            Self::Hsm(group) => group.run(),
            Self::Ca(group) => group.run(),
            Self::Client(group) => group.run(),
            Self::Profile(command) => command.run(),
            Self::Issue(group) => group.run(),
            Self::Terminal(group) => group.run(),
        }
    }
}

/// Sends logs to standard error: ykt's crates at `YKT_LOG` (default `warn`), others' errors.
fn init_logs() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = std::env::var("YKT_LOG")
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::WARN);
    let filter = Targets::new()
        .with_target("ykt", level)
        .with_default(LevelFilter::ERROR);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .try_init();
}

fn main() -> ExitCode {
    use clap::error::ErrorKind;
    init_logs();
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
