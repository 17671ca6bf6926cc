//! [`PcscTransport`]: a card in a PC/SC reader, and reader discovery.

use crate::error::{ApduError, Result};
use crate::transport::{Session, Transport};
use pcsc::{Card, Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

/// Lists the readers pcscd knows, in its order (empty when none is connected).
pub fn list_readers() -> Result<Vec<String>> {
    readers(&establish()?)
}

/// Resolves `selector` to a reader name: the reader of exactly that name, or else the one
/// reader whose name contains `selector` ignoring case.
///
/// Errors name the problem: "no reader matches …" (with the readers there are), "… matches
/// several readers: …", or "pcscd is not running".
pub fn find_reader(selector: &str) -> Result<String> {
    select(&list_readers()?, selector)
}

/// Waits until a card is present in the reader `selector` designates (see [`find_reader`]) and
/// returns the reader's full name. Blocks in `SCardGetStatusChange`, so it returns as soon as
/// pcscd has seen the card (and powered it: a mute card does not count).
pub fn wait_for_card(selector: &str, timeout: Duration) -> Result<String> {
    wait_for(selector, true, timeout)
}

/// Waits until the reader `selector` designates is empty, and returns the reader's full name.
pub fn wait_for_removal(selector: &str, timeout: Duration) -> Result<String> {
    wait_for(selector, false, timeout)
}

/// A card in a PC/SC reader.
///
/// Connected in shared mode with T=0 or T=1, whichever the card offers; each
/// [`session`](Transport::session) is a PC/SC transaction. When the card was reset by another
/// program, or removed and replaced, the next session or command fails once with
/// [`ApduError::CardReset`] after reconnecting (see the [module documentation](super)).
pub struct PcscTransport {
    context: Context,
    reader: String,
    reader_c: CString,
    card: Card,
    buffer: Vec<u8>,
}

impl PcscTransport {
    /// Connects to the card in the reader `selector` designates (see [`find_reader`]).
    ///
    /// Fails with "no card in reader …" when the reader is empty.
    pub fn connect(selector: &str) -> Result<Self> {
        let context = establish()?;
        let reader = select(&readers(&context)?, selector)?;
        let reader_c = c_name(&reader)?;
        let card = connect(&context, &reader_c, &reader)?;
        Ok(Self {
            context,
            reader,
            reader_c,
            card,
            buffer: vec![0; pcsc::MAX_BUFFER_SIZE_EXTENDED],
        })
    }

    /// The card's current ATR.
    pub fn atr(&self) -> Result<Vec<u8>> {
        let status = self
            .card
            .status2_owned()
            .map_err(|e| error(Some(&self.reader), e))?;
        Ok(status.atr().to_vec())
    }
}

impl Transport for PcscTransport {
    fn name(&self) -> &str {
        &self.reader
    }

    /// Resets the card (`SCardReconnect` with `SCARD_RESET_CARD`) and returns its new ATR. A
    /// card that was replaced meanwhile is connected and reset in the same way.
    fn reset(&mut self) -> Result<Vec<u8>> {
        let reset = |card: &mut Card| {
            card.reconnect(ShareMode::Shared, Protocols::ANY, Disposition::ResetCard)
        };
        match reset(&mut self.card) {
            Ok(()) => {}
            Err(pcsc::Error::RemovedCard) => {
                replace(&mut self.card, &self.context, &self.reader_c, &self.reader)?;
                reset(&mut self.card).map_err(|e| error(Some(&self.reader), e))?;
            }
            Err(e) => return Err(error(Some(&self.reader), e)),
        }
        self.atr()
    }

    fn session(&mut self) -> Result<Box<dyn Session + '_>> {
        let Self {
            context,
            reader,
            reader_c,
            card,
            buffer,
        } = self;
        match card.transaction2() {
            Ok(transaction) => Ok(Box::new(PcscSession {
                transaction,
                reader,
                buffer,
            })),
            Err((card, pcsc::Error::ResetCard)) => {
                card.reconnect(ShareMode::Shared, Protocols::ANY, Disposition::LeaveCard)
                    .map_err(|e| error(Some(reader), e))?;
                Err(ApduError::CardReset)
            }
            Err((card, pcsc::Error::RemovedCard)) => {
                // Fails with "no card in reader" while the reader is empty; once a card is
                // back, this connects to it and reports the loss of the old card's state.
                replace(card, context, reader_c, reader)?;
                Err(ApduError::CardReset)
            }
            Err((_, e)) => Err(error(Some(reader), e)),
        }
    }
}

/// A PC/SC transaction: the card is ours until this is dropped.
struct PcscSession<'a> {
    transaction: pcsc::Transaction<'a>,
    reader: &'a str,
    buffer: &'a mut [u8],
}

impl Session for PcscSession<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        match self.transaction.transmit(command, self.buffer) {
            Ok(response) => Ok(response.to_vec()),
            Err(pcsc::Error::ResetCard) => {
                self.transaction
                    .reconnect(ShareMode::Shared, Protocols::ANY, Disposition::LeaveCard)
                    .map_err(|e| error(Some(self.reader), e))?;
                Err(ApduError::CardReset)
            }
            Err(e) => Err(error(Some(self.reader), e)),
        }
    }
}

fn establish() -> Result<Context> {
    Context::establish(Scope::User).map_err(|e| error(None, e))
}

fn readers(context: &Context) -> Result<Vec<String>> {
    match context.list_readers_owned() {
        Ok(names) => Ok(names
            .into_iter()
            .map(|name| name.to_string_lossy().into_owned())
            .collect()),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(error(None, e)),
    }
}

fn select(readers: &[String], selector: &str) -> Result<String> {
    if let Some(exact) = readers.iter().find(|reader| *reader == selector) {
        return Ok(exact.clone());
    }
    let needle = selector.to_lowercase();
    let matching: Vec<&String> = readers
        .iter()
        .filter(|reader| reader.to_lowercase().contains(&needle))
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] if readers.is_empty() => Err(ApduError::Transport(format!(
            "no reader matches {selector:?}: pcscd has no readers"
        ))),
        [] => Err(ApduError::Transport(format!(
            "no reader matches {selector:?} (readers: {})",
            quoted(readers.iter())
        ))),
        several => Err(ApduError::Transport(format!(
            "{selector:?} matches several readers: {}",
            quoted(several.iter().copied())
        ))),
    }
}

fn quoted<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn c_name(reader: &str) -> Result<CString> {
    CString::new(reader)
        .map_err(|_| ApduError::Transport(format!("reader name {reader:?} contains a NUL byte")))
}

fn connect(context: &Context, reader_c: &CStr, reader: &str) -> Result<Card> {
    context
        .connect(reader_c, ShareMode::Shared, Protocols::ANY)
        .map_err(|e| error(Some(reader), e))
}

/// Connects to the card now in the reader in place of `card`, whose card was removed.
fn replace(card: &mut Card, context: &Context, reader_c: &CStr, reader: &str) -> Result<()> {
    let old = std::mem::replace(card, connect(context, reader_c, reader)?);
    // Dropping a `Card` disconnects with a reset, which would reset the new card under the new
    // handle; if leaving the card fails, that reset is the lesser evil.
    drop(old.disconnect(Disposition::LeaveCard));
    Ok(())
}

fn wait_for(selector: &str, present: bool, timeout: Duration) -> Result<String> {
    let context = establish()?;
    let reader = select(&readers(&context)?, selector)?;
    let mut states = [ReaderState::new(c_name(&reader)?, State::UNAWARE)];
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match context.get_status_change(remaining, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => {
                let what = if present {
                    "no card in reader"
                } else {
                    "a card is still in reader"
                };
                return Err(ApduError::Transport(format!(
                    "{what} {reader:?} after {:.1} s",
                    timeout.as_secs_f64()
                )));
            }
            Err(e) => return Err(error(Some(&reader), e)),
        }
        let state = states[0].event_state();
        if state.intersects(State::UNKNOWN | State::UNAVAILABLE) {
            return Err(error(Some(&reader), pcsc::Error::ReaderUnavailable));
        }
        let card_there = state.contains(State::PRESENT) && !state.contains(State::MUTE);
        if card_there == present {
            return Ok(reader);
        }
        states[0].sync_current_state();
    }
}

/// Maps a PC/SC error to a message that says what to do, naming the reader when there is one.
fn error(reader: Option<&str>, e: pcsc::Error) -> ApduError {
    use pcsc::Error as E;
    let reader = reader.map_or_else(|| "?".to_owned(), |r| format!("{r:?}"));
    ApduError::Transport(match e {
        E::NoService | E::ServiceStopped => {
            "pcscd is not running (start it with `pcscd -f` or its system service)".to_owned()
        }
        E::NoReadersAvailable => "pcscd has no readers".to_owned(),
        E::NoSmartcard => format!("no card in reader {reader}"),
        E::RemovedCard => format!("the card was removed from reader {reader}"),
        E::UnknownReader | E::ReaderUnavailable => format!("reader {reader} is not available"),
        E::SharingViolation => {
            format!("reader {reader} is in exclusive use by another program")
        }
        E::UnresponsiveCard => format!("the card in reader {reader} does not answer (mute)"),
        E::UnpoweredCard => format!("the card in reader {reader} is not powered"),
        E::Timeout => format!("reader {reader}: timed out"),
        other => format!("reader {reader}: {other} ({other:?})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn readers_are_selected_by_exact_name_or_unique_substring() {
        let readers = names(&[
            "Virtual PCD 00 00",
            "Virtual PCD 00 01",
            "ACS ACR122U 00 00",
        ]);
        assert_eq!(
            select(&readers, "Virtual PCD 00 01").unwrap(),
            "Virtual PCD 00 01"
        );
        assert_eq!(select(&readers, "acr122").unwrap(), "ACS ACR122U 00 00");
        assert_eq!(
            select(&readers, "Virtual"),
            Err(ApduError::Transport(
                "\"Virtual\" matches several readers: \"Virtual PCD 00 00\", \"Virtual PCD 00 01\""
                    .into()
            ))
        );
        assert_eq!(
            select(&readers, "Omnikey"),
            Err(ApduError::Transport(
                "no reader matches \"Omnikey\" (readers: \"Virtual PCD 00 00\", \
                 \"Virtual PCD 00 01\", \"ACS ACR122U 00 00\")"
                    .into()
            ))
        );
        assert_eq!(
            select(&[], "x"),
            Err(ApduError::Transport(
                "no reader matches \"x\": pcscd has no readers".into()
            ))
        );
    }

    #[test]
    fn an_exact_name_wins_over_longer_names_containing_it() {
        let readers = names(&["Reader", "Reader 2"]);
        assert_eq!(select(&readers, "Reader").unwrap(), "Reader");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            error(None, pcsc::Error::NoService).to_string(),
            "transport: pcscd is not running (start it with `pcscd -f` or its system service)"
        );
        assert_eq!(
            error(Some("R 00"), pcsc::Error::NoSmartcard).to_string(),
            "transport: no card in reader \"R 00\""
        );
    }
}
