//! `ykt card`: virtual cards (`ykt_card_sim`) kept in state files: serve one to PC/SC
//! programs through vsmartcard's vpcd, or describe one.
//!
//! A state file holds a whole virtual FMCOS user card or PSAM, clear keys included, as a chip's
//! EEPROM does (see `ykt_card_sim`): it is a simulator for issuing stations, terminals and
//! third-party tools to be tested against, never a key store.

mod feed;
mod info;
mod link;
mod serve;

use crate::error::Result;
use crate::output::Report;
use clap::{Subcommand, ValueEnum};
use ykt_card_sim::{CardAlgorithm, ChipKind};

/// The virtual-card commands.
#[derive(Subcommand)]
pub enum CardCommand {
    /// Put a virtual card into a vpcd reader, so that PC/SC programs see it, until Ctrl-C or
    /// SIGTERM; creates a factory card when the state file does not exist.
    Serve(serve::ServeArgs),
    /// Describe a virtual card: what it is and, once issued, its card number and balance.
    Info(info::InfoArgs),
    /// Feed blank cards into a vpcd reader, a fresh one at every reset, for an issuing
    /// station, until Ctrl-C or SIGTERM.
    Feed(feed::FeedArgs),
}

impl CardCommand {
    /// Runs the command.
    pub fn run(self) -> Result<Report> {
        match self {
            Self::Serve(args) => args.run(),
            Self::Info(args) => args.run(),
            Self::Feed(args) => args.run(),
        }
    }
}

/// `--kind`: which application a virtual chip runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A user card: files, keys, PIN, e-purse and passbook.
    User,
    /// A terminal PSAM.
    Psam,
}

impl Kind {
    /// The simulator's chip kind.
    fn chip_kind(self) -> ChipKind {
        match self {
            Self::User => ChipKind::UserCard,
            Self::Psam => ChipKind::Psam,
        }
    }

    /// The kind of a simulated chip.
    fn of(kind: ChipKind) -> Self {
        match kind {
            ChipKind::UserCard => Self::User,
            ChipKind::Psam => Self::Psam,
        }
    }

    /// The name `--kind` takes and the output shows.
    fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Psam => "psam",
        }
    }
}

/// `--alg`: the block cipher family of a virtual chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Alg {
    /// DES and two-key 3DES: the PBOC profile.
    #[value(name = "3des")]
    TripleDes,
    /// SM4: the ykt SM4 profile v1.
    Sm4,
}

impl Alg {
    /// The simulator's algorithm.
    fn card_algorithm(self) -> CardAlgorithm {
        match self {
            Self::TripleDes => CardAlgorithm::TripleDes,
            Self::Sm4 => CardAlgorithm::Sm4,
        }
    }

    /// The family of a simulated chip.
    fn of(algorithm: CardAlgorithm) -> Self {
        match algorithm {
            CardAlgorithm::TripleDes => Self::TripleDes,
            CardAlgorithm::Sm4 => Self::Sm4,
        }
    }

    /// The name `--alg` takes and the output shows.
    fn name(self) -> &'static str {
        match self {
            Self::TripleDes => "3des",
            Self::Sm4 => "sm4",
        }
    }
}
