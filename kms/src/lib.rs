//! `ykt-kms`: the bureau's key-management system.
//!
//! The KMS holds the key tree of an education bureau (bureau → region → school, card keys
//! derived on demand), runs key ceremonies under M-of-N custody and dual control, keeps every
//! key only as an HSM-wrapped blob in its store, and writes every state change to an
//! SM3-chained audit log with SM2-signed checkpoints. Every cryptographic act goes through the
//! [`provider::Hsm`] trait: the in-process simulator, a remote simulator over the host
//! protocol, or a PKCS#11 token.

pub mod audit;
pub mod ca;
pub mod ceremony;
pub mod ceremony_file;
pub mod config;
pub mod error;
pub mod idempotency;
pub mod issuance;
pub mod key_cache;
pub mod keys;
pub mod kms;
pub mod model;
pub mod officers;
pub mod pkcs12;
pub mod provider;
pub mod signing;
pub mod station;
pub mod store;
pub mod tokens;
pub mod tree;

pub use error::{KmsError, Result};
pub use kms::{InitRequest, Kms, KmsInfo};
pub use officers::{Credential, NewOfficer};
pub use provider::{Hsm, WrappedKey};
pub use store::Store;
