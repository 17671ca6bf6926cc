//! Finding the reader behind a `--reader` name.
//!
//! This build has no PC/SC transport, so no name resolves yet; once `ykt-apdu`'s `pcsc`
//! feature is wired in, the names are those PC/SC lists.

use crate::error::{CliError, Result};
use ykt_apdu::Transport;

/// Opens the reader called `name`.
pub fn open(name: &str) -> Result<Box<dyn Transport>> {
    Err(CliError::NoReader {
        name: name.to_string(),
        reason: "PC/SC support is not built in",
    })
}
