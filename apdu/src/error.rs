//! The one error type of `ykt-apdu`.

use thiserror::Error;

/// What can go wrong parsing APDUs and TLV or talking to a card.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ApduError {
    /// A command APDU is not one of the four ISO 7816-3 cases.
    #[error("malformed command APDU: {0}")]
    MalformedCommand(&'static str),
    /// A response is shorter than its two status bytes.
    #[error("malformed response APDU: {0} bytes, need at least 2")]
    MalformedResponse(usize),
    /// A command cannot be encoded (data over 65535 bytes, Ne over 65536).
    #[error("cannot encode command: {0}")]
    Encoding(&'static str),
    /// BER-TLV data is malformed.
    #[error("malformed BER-TLV at offset {offset}: {reason}")]
    MalformedTlv {
        /// Byte offset of the problem.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The transport failed (reader gone, card removed, I/O error).
    #[error("transport: {0}")]
    Transport(String),
    /// The card was reset or replaced since the last exchange.
    #[error("the card was reset")]
    CardReset,
    /// The card kept answering 61xx or 6Cxx beyond any reasonable bound.
    #[error("the card does not finish its response ({0} GET RESPONSE/re-send rounds)")]
    ResponseLoop(usize),
    /// A mock transport received a command it did not expect.
    #[error("unexpected command {got}, expected {expected}")]
    UnexpectedCommand {
        /// The command expected next (hex), or "nothing".
        expected: String,
        /// The command received (hex).
        got: String,
    },
}

/// Result with [`ApduError`].
pub type Result<T, E = ApduError> = std::result::Result<T, E>;
