//! Client authentication: a shared secret per client name and a mutual challenge–response.
//!
//! ```text
//! server proof = HMAC-SHA256(secret, "ykt-host-v1 server" || nonce_c || challenge_s || name)
//! client proof = HMAC-SHA256(secret, "ykt-host-v1 client" || challenge_s || nonce_c || name)
//! ```
//!
//! Both nonces are 32 random bytes, fresh per connection. Proofs are checked in constant time
//! (`aws_lc_rs::hmac::verify`). An unknown name is answered like a known one, with a proof
//! under a random key, so names cannot be probed.

use super::protocol::AUTH_LEN;
use aws_lc_rs::hmac;
use std::collections::HashMap;
use std::fmt;

const SERVER_LABEL: &[u8] = b"ykt-host-v1 server";
const CLIENT_LABEL: &[u8] = b"ykt-host-v1 client";

/// The clients a server accepts: one shared secret per client name.
#[derive(Default)]
pub struct ClientRegistry {
    keys: HashMap<String, hmac::Key>,
}

impl ClientRegistry {
    /// An empty registry (no client can authenticate).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) client `name` with `secret`.
    pub fn add(&mut self, name: &str, secret: &[u8]) -> &mut Self {
        self.keys.insert(name.to_owned(), key(secret));
        self
    }

    pub(crate) fn get(&self, name: &str) -> Option<&hmac::Key> {
        self.keys.get(name)
    }
}

impl fmt::Debug for ClientRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

/// The HMAC key of a shared secret.
pub(crate) fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

/// What the server's proof covers: its label, the client's nonce, the server challenge, the
/// client name.
fn server_message(nonce: &[u8], challenge: &[u8], name: &str) -> Vec<u8> {
    [SERVER_LABEL, nonce, challenge, name.as_bytes()].concat()
}

/// What the client's proof covers: its label, the server challenge, the client's nonce, the
/// client name (the order differs from the server's, so one proof never stands for the other).
fn client_message(nonce: &[u8], challenge: &[u8], name: &str) -> Vec<u8> {
    [CLIENT_LABEL, challenge, nonce, name.as_bytes()].concat()
}

/// The server's proof for `name`'s nonce and the server challenge.
pub(crate) fn server_proof(
    key: &hmac::Key,
    nonce: &[u8; AUTH_LEN],
    challenge: &[u8; AUTH_LEN],
    name: &str,
) -> [u8; AUTH_LEN] {
    tag(key, &server_message(nonce, challenge, name))
}

/// The client's proof.
pub(crate) fn client_proof(
    key: &hmac::Key,
    nonce: &[u8; AUTH_LEN],
    challenge: &[u8; AUTH_LEN],
    name: &str,
) -> [u8; AUTH_LEN] {
    tag(key, &client_message(nonce, challenge, name))
}

/// Checks the server's proof in constant time.
pub(crate) fn verify_server_proof(
    key: &hmac::Key,
    nonce: &[u8; AUTH_LEN],
    challenge: &[u8; AUTH_LEN],
    name: &str,
    proof: &[u8],
) -> bool {
    hmac::verify(key, &server_message(nonce, challenge, name), proof).is_ok()
}

/// Checks the client's proof in constant time.
pub(crate) fn verify_client_proof(
    key: &hmac::Key,
    nonce: &[u8; AUTH_LEN],
    challenge: &[u8; AUTH_LEN],
    name: &str,
    proof: &[u8],
) -> bool {
    hmac::verify(key, &client_message(nonce, challenge, name), proof).is_ok()
}

fn tag(key: &hmac::Key, message: &[u8]) -> [u8; AUTH_LEN] {
    let mut out = [0; AUTH_LEN];
    out.copy_from_slice(hmac::sign(key, message).as_ref());
    out
}
