//! `ykt-card-sim`: a virtual FMCOS-style CPU card operating system and PSAM.
//!
//! It exists so that the issuer, the terminal side and third-party PC/SC tools can be driven
//! and tested against something that behaves like a real FMCOS user card or PSAM, without a
//! card: a pure `handle(command) -> response` machine ([`ykt_apdu::CardHandler`]) with an
//! MF/DF/EF file system (binary, fixed, variable and cyclic record files, ED/EP purses, key
//! files), the FMCOS issuance commands (CREATE FILE, ERASE DF, WRITE KEY plain and under
//! secure messaging), access rights and security states, line protection and encryption,
//! PIN management, the PBOC e-purse and passbook (load, purchase, compound purchase, balance,
//! transaction log, transaction proof) and the PSAM purchase commands, in 3DES (PBOC) and SM4
//! (ykt SM4 profile v1). The cryptography is `ykt-crypto`'s; the protocol facts are those of
//! `pboc-spec.md`.
//!
//! The card's state persists in a versioned JSON file replaced atomically; financial commands
//! are journalled so that a power loss at any write point leaves the old or the new state.
//! Tests use a deterministic random source and power-loss injection.
//!
//! ```
//! use ykt_apdu::CardHandler;
//! use ykt_card_sim::{Card, CardAlgorithm, Chip, ChipKind, RandomSource};
//!
//! let chip = Chip { algorithm: CardAlgorithm::TripleDes, kind: ChipKind::UserCard };
//! let mut card = Card::manufacture(chip, &[0xFF; 8]).unwrap();
//! card.set_random(RandomSource::seeded(1));
//! assert!(!card.power_on().is_empty());
//! assert_eq!(card.handle(&[0x00, 0x84, 0x00, 0x00, 0x04]).len(), 4 + 2);
//! ```

mod auth;
mod card;
mod error;
mod files;
mod fs;
mod journal;
mod keys;
mod log;
mod persist;
mod psam;
mod purse;
mod random;
mod security;
mod sm;
pub mod vendor;

pub use card::{Card, CardAlgorithm, Chip, ChipKind};
pub use error::{Result, SimError};
pub use persist::FORMAT_VERSION;
pub use random::RandomSource;
