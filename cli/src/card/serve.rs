//! `ykt card serve`: a virtual card in a vpcd reader.
//!
//! The card is opened from its state file, or manufactured there as a fresh factory chip (an
//! MF whose key file holds only the transport key), and attached to vpcd: pcscd then shows it
//! in the reader of that vpcd port ("Virtual PCD 00 00" for port 35963, "Virtual PCD 00 01" for
//! 35964 in Debian's configuration) and any PC/SC program (`ykt script run`, `scriptor`, an
//! issuing station) can use it. The card persists every change of its state to the file
//! itself, atomically, so stopping it at any moment loses nothing that it had answered. It
//! runs until SIGINT (Ctrl-C) or SIGTERM, which remove it from the reader, or until vpcd
//! closes the connection, then prints what it served.

use super::link::Link;
use super::{Alg, Kind};
use crate::error::{CliError, Result};
use crate::hex_arg::Hex;
use crate::output::{Output, Record, Report};
use clap::Args;
use std::path::PathBuf;
use ykt_apdu::CardHandler;
use ykt_card_sim::{Card, Chip, RandomSource, SimError};

/// Where Debian's vpcd listens for the card of its first reader, "Virtual PCD 00 00".
pub const DEFAULT_VPCD: &str = "127.0.0.1:35963";

/// The transport key of a factory chip unless `--transport-key` says otherwise.
const FACTORY_TRANSPORT_KEY: [u8; 16] = [0xFF; 16];

/// Arguments of `ykt card serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The card's state file: the card in it, or a new factory card created there.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// What a new card is [default: user]; for an existing one, what it must be.
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// The algorithm family of a new card [default: 3des]; for an existing one, what it must
    /// be.
    #[arg(long, value_enum)]
    alg: Option<Alg>,
    /// vpcd's address for the card of one reader (35963: "Virtual PCD 00 00", 35964:
    /// "Virtual PCD 00 01").
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_VPCD)]
    vpcd: String,
    /// The transport key of a new card (external authentication key 39/00 of its MF): 16
    /// bytes, or 8 on a 3des card [default: 16 bytes FF].
    #[arg(long, value_name = "HEX")]
    transport_key: Option<Hex>,
    /// Draw challenges and transaction randoms from a reproducible stream seeded with SEED
    /// instead of the operating system's generator: for tests that precompute cryptograms,
    /// never for a card that matters.
    #[arg(long, value_name = "SEED")]
    fixed_random: Option<u64>,
}

impl ServeArgs {
    /// Serves the card until it is stopped, then reports what it served.
    pub fn run(self) -> Result<Report> {
        let link = Link::connect(&self.vpcd)?;
        let (mut card, created) = self.card()?;
        if let Some(seed) = self.fixed_random {
            card.set_random(RandomSource::seeded(seed));
        }
        let chip = card.chip();
        eprintln!(
            "ykt: serving the {} card {} at vpcd {}; stop with Ctrl-C",
            Kind::of(chip.kind).name(),
            self.state.display(),
            self.vpcd
        );
        let mut served = Counted {
            card,
            power_ons: 0,
            commands: 0,
        };
        link.serve(&mut served)?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("state", self.state.display().to_string())
                .with("kind", Kind::of(chip.kind).name())
                .with("algorithm", Alg::of(chip.algorithm).name())
                .with("created", created)
                .with("vpcd", self.vpcd)
                .with("power_ons", served.power_ons)
                .with("commands", served.commands),
        )))
    }

    /// The card in the state file, checked against `--kind` and `--alg`, or a new factory
    /// card there when the file does not exist; and whether it was created.
    fn card(&self) -> Result<(Card, bool)> {
        if !self.state.exists() {
            let chip = Chip {
                kind: self.kind.unwrap_or(Kind::User).chip_kind(),
                algorithm: self.alg.unwrap_or(Alg::TripleDes).card_algorithm(),
            };
            let key = self
                .transport_key
                .as_ref()
                .map_or(&FACTORY_TRANSPORT_KEY[..], Hex::bytes);
            let card = Card::manufacture_at(&self.state, chip, key).map_err(|e| match e {
                SimError::Parameter(reason) => CliError::Input {
                    arg: "--transport-key",
                    reason: reason.to_string(),
                },
                other => other.into(),
            })?;
            return Ok((card, true));
        }
        if self.transport_key.is_some() {
            return Err(self.mismatch(
                "--transport-key",
                "is for a new card, and the state file holds one already",
            ));
        }
        let card = Card::open(&self.state)?;
        let chip = card.chip();
        if let Some(kind) = self.kind.filter(|kind| kind.chip_kind() != chip.kind) {
            return Err(self.mismatch(
                "--kind",
                &format!(
                    "{}, but the card is a {} card",
                    kind.name(),
                    Kind::of(chip.kind).name()
                ),
            ));
        }
        if let Some(alg) = self
            .alg
            .filter(|alg| alg.card_algorithm() != chip.algorithm)
        {
            return Err(self.mismatch(
                "--alg",
                &format!(
                    "{}, but the card is a {} card",
                    alg.name(),
                    Alg::of(chip.algorithm).name()
                ),
            ));
        }
        Ok((card, false))
    }

    /// An option that does not fit the card in the state file.
    fn mismatch(&self, arg: &'static str, reason: &str) -> CliError {
        CliError::Input {
            arg,
            reason: format!("{reason} ({})", self.state.display()),
        }
    }
}

/// The served card, counting what it is asked.
struct Counted {
    card: Card,
    power_ons: u64,
    commands: u64,
}

impl CardHandler for Counted {
    fn power_on(&mut self) -> Vec<u8> {
        self.power_ons += 1;
        self.card.power_on()
    }

    fn handle(&mut self, command: &[u8]) -> Vec<u8> {
        self.commands += 1;
        self.card.handle(command)
    }
}
