//! Finding the reader behind a `--reader` name.
//!
//! With PC/SC support (feature `pcsc`), a name is a PC/SC reader: the one of exactly that
//! name, or else the one reader whose name contains it, ignoring case
//! (`ykt_apdu::pcsc::find_reader`), such as vpcd's "Virtual PCD 00 00" where `ykt card serve`
//! puts a virtual card. Without it no name resolves.

use crate::error::{CliError, Result};
use ykt_apdu::Transport;

/// Opens the reader called `name`: connects to its card in shared mode, each script session
/// being a PC/SC transaction.
#[cfg(feature = "pcsc")]
pub fn open(name: &str) -> Result<Box<dyn Transport>> {
    match ykt_apdu::pcsc::PcscTransport::connect(name) {
        Ok(transport) => Ok(Box::new(transport)),
        Err(source) => Err(CliError::Reader {
            name: name.to_string(),
            source,
        }),
    }
}

/// Refuses every name: this build has no PC/SC support.
#[cfg(not(feature = "pcsc"))]
pub fn open(_name: &str) -> Result<Box<dyn Transport>> {
    Err(CliError::NoPcsc)
}
