//! `ykt profile`: the personalisation profiles of the issuing station (`ykt_issuer::profile`):
//! list the built-in ones, print one, check a profile file before a batch uses it.

use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report};
use clap::{Args, Subcommand};
use ykt_issuer::profile::{LoadedProfile, Profile};

/// The profile commands.
#[derive(Subcommand)]
pub enum ProfileCommand {
    /// The built-in profiles.
    List,
    /// Write a built-in profile's TOML text to a file (a starting point for a bureau's own).
    Export(ExportArgs),
    /// Check a profile file (or built-in name): every field, as the station would use it.
    Check(CheckArgs),
}

/// Arguments of `ykt profile export`.
#[derive(Args)]
pub struct ExportArgs {
    /// A built-in profile name.
    name: String,
    /// The file to write (not replaced when it exists).
    #[arg(long, value_name = "FILE")]
    out: std::path::PathBuf,
}

/// Arguments of `ykt profile check`.
#[derive(Args)]
pub struct CheckArgs {
    /// A profile file, or a built-in profile name.
    file: String,
}

/// What a profile is, in one record.
pub fn describe(loaded: &LoadedProfile) -> Record {
    let profile = &loaded.profile;
    Record::new()
        .with("profile", loaded.label())
        .with(
            "kind",
            match profile.kind {
                ykt_issuer::profile::ProfileKind::UserCard => "user-card",
                ykt_issuer::profile::ProfileKind::Psam => "psam",
            },
        )
        .with("algorithm", profile.algorithm.name())
        .with("aid", profile.application.aid.clone())
        .with("keys", profile.all_keys().count() as u64)
        .with(
            "files",
            (profile.mf.files.len() + profile.application.files.len()) as u64,
        )
        .with("digest", loaded.digest.clone())
}

impl ProfileCommand {
    /// Runs the command.
    pub fn run(self) -> Result<Report> {
        match self {
            Self::List => Ok(Report::ok(Output::List(
                Profile::builtin_names()
                    .into_iter()
                    .map(|name| Profile::builtin(name).map(|p| describe(&p)))
                    .collect::<ykt_issuer::Result<_>>()?,
            ))),
            Self::Export(args) => {
                let profile = Profile::builtin(&args.name)?;
                let text = Profile::builtin_text(&args.name).unwrap_or_default();
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&args.out)
                    .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()))
                    .map_err(|source| CliError::Write {
                        path: args.out.display().to_string(),
                        source,
                    })?;
                Ok(Report::ok(Output::Record(
                    describe(&profile).with("file", args.out.display().to_string()),
                )))
            }
            Self::Check(args) => Ok(Report::ok(Output::Record(
                describe(&Profile::named_or_file(&args.file)?).with("check", "ok"),
            ))),
        }
    }
}
