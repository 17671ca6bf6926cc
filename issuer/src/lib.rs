//! `ykt-issuer`: the issuing station of a card centre.
//!
//! It personalises holders' CPU cards and terminals' PSAMs through the KMS without ever
//! handling a clear key: the card's own challenge goes to the KMS, whose HSM answers the
//! external-authentication cryptograms and the WRITE KEY (84 D4) commands, and the station
//! sends them on. What a card gets — file layout, keys, rights — is data: a checked TOML
//! [`profile`] (built-in ones for 3DES and the ykt SM4 profile v1). Rosters ([`roster`], CSV
//! or XLSX) are checked row by row before any card is touched; the KMS then allocates every
//! holder's serial in one journal entry, and the station works through the [`batch`], card
//! by card ([`personalise`]: personalisation, then verification, then the KMS records the
//! card issued). A batch interrupted anywhere is finished by running it again: no card is
//! issued twice, no serial goes to another holder. [`host`] is the terminals' back office
//! for online loads; [`lab`] sets up a whole bureau on embedded defaults for
//! `ykt demo`, the benchmarks and the tests; [`card_data`] holds the layouts of the files the
//! station writes.

pub mod batch;
pub mod card_data;
pub mod error;
pub mod host;
pub mod lab;
pub mod personalise;
pub mod profile;
pub mod roster;

pub use error::{IssueError, Result, RowError};
