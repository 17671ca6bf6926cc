//! The virtual card vendor: blank cards and PSAMs as a card factory delivers them, with the
//! vendor's transport key as key 39/00 of the MF.
//!
//! A real vendor sends the transport key of a delivery to the bureau as two components on
//! separate forms, which officers import in a ceremony; the cards arrive with the key inside.
//! The virtual vendor does the same with fixed lab components, published here, so that a
//! KMS on embedded defaults can import them and personalise virtual cards. They are lab
//! values: no real card carries them.

use crate::card::{Card, CardAlgorithm, Chip};
use crate::error::Result;
use std::path::Path;
use zeroize::Zeroizing;

/// The two transport-key components of the virtual vendor for chips of `algorithm`
/// (16 bytes each; the key is their XOR).
pub fn transport_components(algorithm: CardAlgorithm) -> [Zeroizing<Vec<u8>>; 2] {
    let (a, b): (&str, &str) = match algorithm {
        CardAlgorithm::TripleDes => (
            "5B2C7A1E9D04F3688E61C2B7A4193D50",
            "0E9F46D2B83A71C53D8C0B6F2E95A714",
        ),
        CardAlgorithm::Sm4 => (
            "C3A17E5590D24B6F1A8E3C07B9D56E21",
            "7F3B0C9AE1564D82B7206FA3C8194E5D",
        ),
    };
    [a, b].map(|hex_text| Zeroizing::new(hex::decode(hex_text).expect("fixed hex")))
}

fn transport_key(algorithm: CardAlgorithm) -> Zeroizing<Vec<u8>> {
    let [a, b] = transport_components(algorithm);
    Zeroizing::new(a.iter().zip(b.iter()).map(|(x, y)| x ^ y).collect())
}

impl Card {
    /// A blank card or PSAM of the virtual vendor, in memory.
    pub fn blank(chip: Chip) -> Result<Self> {
        Self::manufacture(chip, &transport_key(chip.algorithm))
    }

    /// A blank card or PSAM of the virtual vendor, backed by the state file `path`.
    pub fn blank_at(path: &Path, chip: Chip) -> Result<Self> {
        Self::manufacture_at(path, chip, &transport_key(chip.algorithm))
    }
}

/// A card feeder: a reader slot that takes a fresh blank card of the virtual vendor at every
/// power-on or reset, as the hopper of a card printer feeds an issuing station. With a
/// directory, every card fed is kept there (`000001.card`, `000002.card`, ...); without
/// one, cards live in memory until the next is fed.
pub struct CardFeeder {
    chip: Chip,
    dir: Option<std::path::PathBuf>,
    current: Option<Card>,
    fed: u64,
}

impl CardFeeder {
    /// A feeder of blank chips `chip`, keeping them in `dir` when given.
    pub fn new(chip: Chip, dir: Option<&Path>) -> Self {
        Self {
            chip,
            dir: dir.map(Path::to_path_buf),
            current: None,
            fed: 0,
        }
    }

    /// How many cards were fed so far.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    fn next(&mut self) -> Result<Card> {
        self.fed += 1;
        match &self.dir {
            Some(dir) => Card::blank_at(&dir.join(format!("{:06}.card", self.fed)), self.chip),
            None => Card::blank(self.chip),
        }
    }
}

impl ykt_apdu::CardHandler for CardFeeder {
    /// Feeds the next blank card and powers it on; a card that cannot be made answers no ATR.
    fn power_on(&mut self) -> Vec<u8> {
        match self.next() {
            Ok(mut card) => {
                let atr = card.power_on();
                self.current = Some(card);
                atr
            }
            Err(_) => {
                self.current = None;
                Vec::new()
            }
        }
    }

    /// The current card's answer; with no card, "no precise diagnosis" (6F00).
    fn handle(&mut self, command: &[u8]) -> Vec<u8> {
        match &mut self.current {
            Some(card) => card.handle(command),
            None => vec![0x6F, 0x00],
        }
    }
}
