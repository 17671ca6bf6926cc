//! The host command protocol: the HSM's commands over TCP, for a KMS on another machine.
//!
//! # Frames
//!
//! Every message is a frame: `u32` big-endian body length, then the body, at most
//! [`MAX_FRAME`] (1 MiB). Integers are big-endian. `var` is a `u16` length then that many
//! bytes; `blob` is a `var` holding a [`KeyBlob`](crate::KeyBlob); `factors` is a `u8` count
//! then 8 bytes per factor; `attrs` is the 5-byte [`KeyAttributes`](crate::KeyAttributes)
//! encoding; `method` is 01 (encrypt-zeros) or 02 (CMAC); `block` is a `var` holding the 144
//! ASCII characters of a [`KeyBlock`](crate::keyblock::KeyBlock) (text that is not one is
//! refused with status 20).
//!
//! | body     | layout                                                    |
//! |----------|-----------------------------------------------------------|
//! | request  | version (01) ‖ command ‖ request id `u32` ‖ fields        |
//! | response | version (01) ‖ status ‖ request id `u32` ‖ fields         |
//! | refusal  | version (01) ‖ status ≠ 00 ‖ request id `u32` ‖ message `var` (UTF-8) |
//!
//! `purchase` (28 bytes) = card random 4 ‖ offline seq `u16` ‖ amount `u32` ‖ type 1 ‖
//! terminal ID 6 ‖ terminal seq `u32` ‖ date 4 ‖ time 3.
//! `load` (28 bytes) = card random 4 ‖ online seq `u16` ‖ old balance `u32` ‖ amount `u32` ‖
//! type 1 ‖ terminal ID 6 ‖ date 4 ‖ time 3.
//! `record` = factors ‖ purchase ‖ TAC `var`.
//!
//! | code | command        | request fields                                          | response fields (status 00)            |
//! |------|----------------|---------------------------------------------------------|----------------------------------------|
//! | 01   | HELLO          | name `var` (UTF-8) ‖ client nonce 32                    | server challenge 32 ‖ server proof 32  |
//! | 02   | AUTH           | client proof 32                                         | —                                      |
//! | 10   | RANDOM         | length `u16`                                            | bytes `var`                            |
//! | 11   | GENERATE KEY   | attrs                                                   | blob ‖ 01 method ‖ KCV `var`, or 02 ‖ public key 65 |
//! | 12   | KCV            | blob ‖ method                                           | method ‖ KCV `var`                     |
//! | 13   | DERIVE         | blob ‖ factors ‖ attrs                                  | blob ‖ method ‖ KCV `var`              |
//! | 14   | EXPORT KEY     | blob ‖ KEK blob                                         | block                                  |
//! | 15   | IMPORT KEY     | block ‖ KEK blob                                        | blob                                   |
//! | 16   | DESTROY KEY    | blob                                                    | —                                      |
//! | 20   | LOAD MAC2      | blob ‖ factors ‖ load ‖ MAC1 `var`                      | MAC2 4                                 |
//! | 21   | VERIFY TAC     | blob ‖ record                                           | — (a bad TAC is status 1E)             |
//! | 22   | VERIFY TACS    | blob ‖ count `u32` (≤ [`MAX_BATCH`]) ‖ count × record   | count `u32` ‖ count × verdict (00/01)  |
//! | 23   | VERIFY LOAD TAC| blob ‖ factors ‖ load ‖ TAC `var`                       | — (a bad TAC is status 1E)             |
//! | 30   | WRITE KEY      | blob ‖ factors ‖ under blob ‖ factors ‖ challenge `var` ‖ P1 ‖ P2 ‖ header `var` | APDU `var`   |
//! | 31   | EXTERNAL AUTH  | blob ‖ factors ‖ challenge `var`                        | cryptogram `var`                       |
//! | 40   | SIGN SM2       | blob ‖ ID `var` ‖ message `var`                         | r 32 ‖ s 32                            |
//! | 41   | SIGN P-256     | blob ‖ message `var`                                    | r 32 ‖ s 32                            |
//! | 42   | PUBLIC KEY     | blob                                                    | public key 65 (`04 ‖ x ‖ y`)           |
//! | 43   | SIGN SM2 DIGEST| blob ‖ e `var` (32 bytes: `SM3(ZA ‖ M)` by the caller)   | r 32 ‖ s 32                            |
//! | 44   | SIGN P-256 DIGEST | blob ‖ digest `var` (32 bytes: SHA-256 of the message) | r 32 ‖ s 32                          |
//!
//! A digest field of 43 and 44 that does not hold 32 bytes keeps the grammar and is refused with
//! status 1D, its message naming the field and the length given.
//!
//! Status codes ([`Status`]): 00 ok; 10–25 one per [`HsmError`](crate::HsmError) kind (1E: a
//! MAC1 or TAC that does not verify; 22: a key destroyed in the HSM); 80 malformed frame, 81 unknown command, 82 frame too
//! large, 83 unauthenticated, 84 rate limited, 85 unsupported version, 86 batch too large.
//!
//! # Connection rules
//!
//! - A connection starts with HELLO then AUTH ([`auth`]: HMAC-SHA256 challenge–response on a
//!   secret shared per client name, proving both sides). Any other command before that is
//!   refused with 83 and the connection stays open; a failed AUTH, or HELLO/AUTH out of turn,
//!   is refused with 83 and the connection is closed.
//! - A body that breaks the grammar (80, 81, 85, 86) is refused and the connection stays
//!   usable: the frame boundary is intact. A length header above [`MAX_FRAME`] is refused
//!   with 82 (request id 0) and the connection is closed; so is a frame cut short by the end
//!   of stream or by the idle timeout (without response).
//! - Per connection, a token bucket bounds the request rate (84, connection kept) and a
//!   count bounds the requests (84, connection closed); see [`Limits`].
//! - A refused request changes nothing in the HSM.
//!
//! The link itself is not encrypted: blobs, key blocks, MACs and cryptograms are safe to carry
//! in clear, clear key components and Shamir shares are not, so forming keys from components or
//! shares and custody splits and recoveries are not offered here; export and import carry a
//! key only inside a key block under a KEK.
//! Mutual TLS comes with the API work; until then run the server on a trusted segment.

pub mod auth;
pub mod client;
mod codec;
pub mod protocol;
pub mod server;

pub use auth::ClientRegistry;
pub use client::HostClient;
pub use protocol::{
    CheckValue, Command, DIGEST_LEN, MAX_BATCH, MAX_FRAME, ProtocolError, RemoteKeyCheck, Request,
    Response, Status, TacRecord, decode_request,
};
pub use server::{HostServer, Limits};

use thiserror::Error;

/// What a [`HostClient`] call can fail with.
#[derive(Debug, Error)]
pub enum HostError {
    /// The connection failed or was closed.
    #[error("host connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server refused the request with this status.
    #[error("refused ({status:?}): {message}")]
    Refused {
        /// The status code.
        status: Status,
        /// The server's message.
        message: String,
    },
    /// A request could not be encoded, or the response broke the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The server did not prove knowledge of the client's secret.
    #[error("the server failed to prove the shared secret")]
    ServerProof,
    /// A local HSM-side failure (the random source).
    #[error(transparent)]
    Hsm(#[from] crate::HsmError),
}

impl HostError {
    /// The status of a refusal, if the server refused.
    pub fn status(&self) -> Option<Status> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}
