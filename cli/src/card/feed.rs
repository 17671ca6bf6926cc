//! `ykt card feed`: a card feeder in a vpcd reader. Every power-on or reset of the reader's
//! card brings a fresh blank card of the virtual vendor (`ykt_card_sim::vendor`), the way the
//! hopper of a card printer feeds an issuing station; with `--dir` each card fed stays in a
//! state file there. An issuing station takes them one by one with
//! `ykt issue batch --reader NAME --no-prompt`. Runs until SIGINT or SIGTERM.

use super::link::Link;
use super::{Alg, Kind};
use crate::error::Result;
use crate::output::{Output, Record, Report};
use clap::Args;
use std::path::PathBuf;
use ykt_card_sim::Chip;
use ykt_card_sim::vendor::CardFeeder;

/// Arguments of `ykt card feed`.
#[derive(Args)]
pub struct FeedArgs {
    /// What the blank cards are.
    #[arg(long, value_enum, default_value = "user")]
    kind: Kind,
    /// Their algorithm family.
    #[arg(long, value_enum, default_value = "sm4")]
    alg: Alg,
    /// Keep every card fed in a state file in DIR (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// vpcd's address for the card of one reader.
    #[arg(long, value_name = "HOST:PORT", default_value = super::serve::DEFAULT_VPCD)]
    vpcd: String,
}

impl FeedArgs {
    /// Feeds cards until stopped, then reports how many.
    pub fn run(self) -> Result<Report> {
        if let Some(dir) = &self.dir {
            std::fs::create_dir_all(dir).map_err(|source| crate::error::CliError::Write {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let link = Link::connect(&self.vpcd)?;
        let chip = Chip {
            algorithm: self.alg.card_algorithm(),
            kind: self.kind.chip_kind(),
        };
        let mut feeder = CardFeeder::new(chip, self.dir.as_deref());
        eprintln!(
            "ykt: feeding blank {} {} cards at vpcd {}; stop with Ctrl-C",
            self.alg.name(),
            self.kind.name(),
            self.vpcd
        );
        link.serve(&mut feeder)?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("kind", self.kind.name())
                .with("algorithm", self.alg.name())
                .with("vpcd", self.vpcd)
                .with("cards_fed", feeder.fed()),
        )))
    }
}
