//! `ykt-api`: the signed authorization API of the KMS, for platform services and remote
//! issuing stations, over HTTPS with mutual TLS.
//!
//! [`server`] accepts TLS 1.3 connections whose client certificate the KMS's internal CA
//! issued ([`ykt_kms::ca`]), not revoked and registered by fingerprint with a role and a
//! scope, and passes every call through the rate limit, the audit and idempotency keys;
//! [`tls`] holds the TLS set-up with the server's key in the HSM; [`sign`] the signing
//! endpoints; [`tokens`] the authorization tokens; [`clearing`] the TAC verification of
//! purchase records; [`cards`] the card operations of remote issuing stations. [`client`] is
//! the Rust client, and [`remote`] makes it the station's KMS
//! ([`ykt_kms::station::CardAuthority`]). The OpenAPI 3.1 description is `api/openapi.json`.

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
