//! Transcripts: what a run did, exchange by exchange, with secret bytes already redacted.

use super::bytes::Redacted;
use crate::sw::Sw;
use std::fmt;
use std::time::Duration;

/// The resets and exchanges of a run, in order. It holds no secret byte: commands and
/// response data are stored [`Redacted`].
///
/// `Display` gives the text form, in the style of `scriptor`'s output, one block per entry:
///
/// ```text
/// # line 1 @card 2.310 ms
/// > RESET
/// < 3B6D000080318065B0870127BD
/// # line 2 @card 0.412 ms
/// > 00A4040009A00000000386980701
/// < 6F108408A000000003869807 9000
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    /// The entries, in the order they happened.
    pub entries: Vec<Entry>,
}

/// One reset or exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The script line.
    pub line: usize,
    /// The channel.
    pub channel: String,
    /// What happened.
    pub event: Event,
    /// How long it took (for an exchange, GET RESPONSE and re-send rounds included).
    pub elapsed: Duration,
}

/// What happened at one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The card was reset and answered this ATR.
    Reset {
        /// The answer to reset.
        atr: Vec<u8>,
    },
    /// A command and the card's response.
    Exchange {
        /// The command APDU as the script gave it.
        command: Redacted,
        /// The response data (complete, in exchange mode).
        data: Redacted,
        /// The status word.
        sw: Sw,
    },
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for entry in &self.entries {
            let ms = entry.elapsed.as_secs_f64() * 1e3;
            writeln!(f, "# line {} @{} {ms:.3} ms", entry.line, entry.channel)?;
            match &entry.event {
                Event::Reset { atr } => {
                    f.write_str("> RESET\n< ")?;
                    atr.iter().try_for_each(|b| write!(f, "{b:02X}"))?;
                    f.write_str("\n")?;
                }
                Event::Exchange { command, data, sw } => {
                    writeln!(f, "> {command}")?;
                    if data.is_empty() {
                        writeln!(f, "< {sw}")?;
                    } else {
                        writeln!(f, "< {data} {sw}")?;
                    }
                }
            }
        }
        Ok(())
    }
}
