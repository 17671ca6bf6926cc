//! The one error type of `ykt-psam`.

use crate::purchase::TornPurchase;
use crate::record::PurchaseRecord;
use thiserror::Error;
use ykt_apdu::{ApduError, Sw};

/// What can go wrong in a terminal transaction.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TerminalError {
    /// A command got a status word the protocol does not expect at that point.
    #[error("{command}: unexpected status {sw}")]
    Status {
        /// The command, e.g. "DEBIT FOR PURCHASE".
        command: &'static str,
        /// The status word.
        sw: Sw,
    },
    /// A command succeeded but its response data does not have the length the protocol fixes.
    #[error("{command}: malformed response of {len} bytes, expected {expected}")]
    MalformedResponse {
        /// The command.
        command: &'static str,
        /// Bytes received.
        len: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The transport failed or a response was not even an APDU (no status word).
    #[error("transport: {0}")]
    Transport(#[from] ApduError),
    /// The purse holds less than the amount (9401).
    #[error("insufficient balance")]
    InsufficientBalance,
    /// The card refused the MAC it was given (9302): the PSAM's MAC1 in DEBIT FOR PURCHASE or
    /// the host's MAC2 in CREDIT FOR LOAD. Nothing was debited or credited.
    #[error("{command}: the card rejected the MAC")]
    MacRejectedByCard {
        /// The command.
        command: &'static str,
    },
    /// The card debited and answered a TAC, but the PSAM did not confirm the card's MAC2:
    /// `sw` is 9302 when the MAC2 is wrong (a card that does not hold the purchase key),
    /// another status word, or `None` when the PSAM did not answer. The record still goes to
    /// clearing, where the TAC decides.
    #[error("the PSAM did not confirm the card's MAC2 ({})", sw.map_or_else(|| "no answer".to_string(), |sw| sw.to_string()))]
    Mac2Rejected {
        /// The purchase as the card recorded it.
        record: Box<PurchaseRecord>,
        /// The PSAM's status word, if it answered.
        sw: Option<Sw>,
    },
    /// DEBIT FOR PURCHASE got no answer: the card may or may not have debited. Reset the card,
    /// select the application and call [`crate::recover_purchase`] with this state.
    #[error("purchase torn: DEBIT FOR PURCHASE got no answer ({})", .0.cause())]
    PurchaseTorn(Box<TornPurchase>),
    /// A wrong PIN (63Cx): this many tries are left.
    #[error("wrong PIN, {0} tries left")]
    PinRejected(u8),
    /// The request cannot be sent as it is (an amount, purse and transaction type that do not
    /// go together, too many diversification factors).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// Bytes or hex given to [`PurchaseRecord::parse`] are not a record.
    #[error("malformed purchase record: {0}")]
    MalformedRecord(&'static str),
    /// The load host refused the load or failed (MAC1 wrong, account closed, host offline).
    #[error("load host: {0}")]
    Host(String),
}

impl TerminalError {
    /// The error for `sw` answered to `command` when success was expected: 9401 is
    /// [`TerminalError::InsufficientBalance`], anything else [`TerminalError::Status`].
    pub(crate) fn status(command: &'static str, sw: Sw) -> Self {
        match sw {
            Sw::InsufficientBalance => Self::InsufficientBalance,
            sw => Self::Status { command, sw },
        }
    }
}

/// Result with [`TerminalError`].
pub type Result<T, E = TerminalError> = std::result::Result<T, E>;
