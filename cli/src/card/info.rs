//! `ykt card info`: what a virtual card in a state file is.
//!
//! The state is read into memory and asked by APDUs, as a terminal would ask the card: the
//! file is never written. A user card whose purse application (`--aid`) exists shows its
//! application serial number (EF 0015) and e-purse balance; a PSAM shows its terminal ID (MF
//! EF 0016); what a card does not have yet is `null`.

use super::{Alg, Kind};
use crate::error::{CliError, Result};
use crate::hex_arg::Hex;
use crate::output::{Output, Record, Report};
use clap::Args;
use std::path::PathBuf;
use ykt_apdu::{CardHandler, Command, Response, Sw};
use ykt_card_sim::{Card, ChipKind};

/// Arguments of `ykt card info`.
#[derive(Args)]
pub struct InfoArgs {
    /// The card's state file.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// The purse application of a user card.
    #[arg(long, value_name = "HEX", default_value = "A00000000386980701")]
    aid: Hex,
}

impl InfoArgs {
    /// Describes the card: kind, algorithm, ATR, and the card number and balance or the
    /// terminal ID.
    pub fn run(self) -> Result<Report> {
        let state = std::fs::read(&self.state).map_err(|source| CliError::Read {
            path: self.state.display().to_string(),
            source,
        })?;
        let mut card = Card::from_state(&state)?;
        let chip = card.chip();
        let atr = card.power_on();
        let (asn, balance, terminal_id) = match chip.kind {
            ChipKind::UserCard => {
                let select = Command::new(0x00, 0xA4, 0x04, 0x00).with_data(self.aid.bytes());
                if ask(&mut card, &select).is_some() {
                    let asn = ask(&mut card, &Command::new(0x00, 0xB0, 0x95, 0x00))
                        .and_then(|file| file.get(10..20).map(<[u8]>::to_vec));
                    let balance = ask(&mut card, &Command::new(0x80, 0x5C, 0x00, 0x02).with_le(4))
                        .and_then(|data| <[u8; 4]>::try_from(data).ok())
                        .map(|bytes| u64::from(u32::from_be_bytes(bytes)));
                    (asn, balance, None)
                } else {
                    (None, None, None)
                }
            }
            ChipKind::Psam => (
                None,
                None,
                ask(&mut card, &Command::new(0x00, 0xB0, 0x96, 0x00).with_le(6)),
            ),
        };
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("kind", Kind::of(chip.kind).name())
                .with("algorithm", Alg::of(chip.algorithm).name())
                .with("atr", atr)
                .with("asn", asn)
                .with("ep_balance", balance)
                .with("terminal_id", terminal_id),
        )))
    }
}

/// The response data of `command`, if the card answers 9000.
fn ask(card: &mut Card, command: &Command) -> Option<Vec<u8>> {
    let response = Response::parse(&card.handle(&command.to_bytes().ok()?)).ok()?;
    (response.sw == Sw::Ok).then_some(response.data)
}
