//! `ykt-api`: the signed authorization API of the KMS, for platform services and remote
//! issuing stations, over HTTPS with mutual TLS.
//!
//! [`server`] accepts TLS 1.3 connections whose client certificate the KMS's internal CA
//! issued ([`ykt_kms::ca`]), not revoked and registered by fingerprint with a role and a
//! scope; [`tls`] holds the TLS set-up with the server's key in the HSM; [`sign`] the
//! signing endpoints; [`clearing`] the TAC verification of purchase records.

pub mod cards;
pub mod clearing;
pub mod client;
pub mod error;
pub mod remote;
pub mod server;
pub mod sign;
pub mod tls;
pub mod tokens;

pub use error::{ApiError, Result};
pub use server::Server;
