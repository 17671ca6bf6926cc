//! `ykt-hsm-sim`: the HSM ykt's KMS talks to when no hardware is present. Keys never leave it
//! in clear: outside, they exist only as blobs sealed under the local master key (LMK).
//!
//! The LMK is formed from 2 or 3 officers' components (or a Shamir-recombined secret) and is
//! kept on disk only sealed under a key derived from the ceremony secret ([`lmk`]). Every key
//! carries attributes fixed at creation — usage, algorithm, modes of use, exportability,
//! version ([`attributes`]) — bound to its AES-256-GCM blob as associated data ([`blob`]), so a
//! blob cannot be re-labelled. The [`Hsm`] engine runs the commands of the e-purse back office
//! (key generation, forming from components, PBOC derivation, load MAC1/MAC2, TAC
//! verification, WRITE KEY and external-authentication cryptograms, SM2 and P-256 signatures,
//! check values, random, export and import under a KEK, custody backups split into Shamir
//! shares, destruction) and refuses any key whose attributes forbid the operation, and any
//! key destroyed in it.

pub mod attributes;
pub mod blob;
pub mod component;
pub mod engine;
pub mod error;
pub mod host;
pub mod keyblock;
pub mod lmk;
pub mod policy;
pub mod shamir;

pub use attributes::{Exportability, KeyAlgorithm, KeyAttributes, KeyUsage, Modes};
pub use blob::KeyBlob;
pub use component::{FormedKcvs, KeyComponent};
pub use engine::{Custody, GeneratedKey, Hsm, KeyCheck, TacCheck, WriteKeyRequest};
pub use error::{HsmError, Result};
pub use lmk::{CeremonySecret, Lmk};
