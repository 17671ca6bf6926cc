//! The one error type of `ykt-card-sim`: what can go wrong outside the card's own status words
//! (storing and loading the persistent state).

use std::path::PathBuf;
use thiserror::Error;

/// What can go wrong creating, loading or storing a virtual card.
///
/// Card commands never fail with this type: they answer with a status word. Messages never
/// carry key bytes.
#[derive(Debug, Error)]
pub enum SimError {
    /// The state file could not be read, written or renamed into place.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state is not a valid card image (bad JSON, missing or mistyped field, bad hex).
    #[error("malformed card state: {0}")]
    Format(#[from] serde_json::Error),
    /// The state was written by an incompatible version of the format.
    #[error("card state format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// A manufacturing parameter is invalid (transport key of the wrong length).
    #[error("invalid card parameter: {0}")]
    Parameter(&'static str),
}

/// Result with [`SimError`].
pub type Result<T, E = SimError> = std::result::Result<T, E>;
