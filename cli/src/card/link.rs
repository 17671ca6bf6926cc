//! The link between a virtual card and vpcd, when PC/SC support is built in: the card is a TCP
//! client of vpcd (connected means inserted), served until SIGINT or SIGTERM, or until vpcd
//! closes the connection (pcscd stopped).
//!
//! Without the `pcsc` feature, [`Link::connect`] fails with [`CliError::NoPcsc`] and there is
//! never a link to serve.

use crate::error::{CliError, Result};
use ykt_apdu::CardHandler;

/// A connection to vpcd.
#[cfg(feature = "pcsc")]
pub struct Link {
    vpcd: ykt_apdu::pcsc::VpcdLink,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(feature = "pcsc")]
impl Link {
    /// Connects to vpcd at `addr` (`HOST:PORT`) and arms SIGINT and SIGTERM to end
    /// [`Link::serve`].
    pub fn connect(addr: &str) -> Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = std::sync::Arc::default();
        for signal in [SIGINT, SIGTERM] {
            signal_hook::flag::register(signal, std::sync::Arc::clone(&stop))
                .map_err(CliError::Signals)?;
        }
        let vpcd = ykt_apdu::pcsc::VpcdLink::connect(addr).map_err(failed)?;
        Ok(Self { vpcd, stop })
    }

    /// Serves `card` until a signal arrives (the card is removed from the reader then) or
    /// vpcd closes the connection.
    pub fn serve(self, card: &mut dyn CardHandler) -> Result<()> {
        self.vpcd.serve(card, &self.stop).map_err(failed)
    }
}

/// A failure of the link.
#[cfg(feature = "pcsc")]
fn failed(source: ykt_apdu::ApduError) -> CliError {
    CliError::Pcsc {
        context: "cannot serve the card".to_string(),
        source,
    }
}

/// No link: this build has no PC/SC support.
#[cfg(not(feature = "pcsc"))]
pub enum Link {}

#[cfg(not(feature = "pcsc"))]
impl Link {
    /// Fails: this build has no PC/SC support.
    pub fn connect(_addr: &str) -> Result<Self> {
        Err(CliError::NoPcsc)
    }

    /// Never called: there is no link.
    pub fn serve(self, _card: &mut dyn CardHandler) -> Result<()> {
        match self {}
    }
}
