//! `ykt script check`: parse a script without sending anything.

use crate::error::Result;
use crate::output::{Output, Record, Report};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `ykt script check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The script file.
    file: PathBuf,
}

impl CheckArgs {
    /// Parses the script and lists `{channel, commands}` for each channel it uses.
    pub fn run(self) -> Result<Report> {
        let script = super::load(&self.file)?;
        let rows = script
            .commands_per_channel()
            .into_iter()
            .map(|(channel, commands)| {
                Record::new()
                    .with("channel", channel)
                    .with("commands", commands as u64)
            })
            .collect();
        Ok(Report::ok(Output::List(rows)))
    }
}
