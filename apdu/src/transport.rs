//! Transports: how command APDUs reach a card, and the T=0 response handling (61xx GET
//! RESPONSE, 6Cxx re-send) done once above all of them.
//!
//! A [`Transport`] is a reader slot. Exchanges happen inside a [`Session`], which holds the card
//! exclusively (a PC/SC transaction) until it is dropped, so that a multi-command operation (a
//! purchase, a key write) is never interleaved with another program's commands.

use crate::command::Command;
use crate::error::{ApduError, Result};
use crate::response::Response;
use crate::sw::Sw;
use std::collections::VecDeque;

/// A card behind a reader, in the same process or elsewhere.
pub trait Transport {
    /// A name for logs and transcripts (the reader name).
    fn name(&self) -> &str;

    /// Resets the card and returns its ATR.
    fn reset(&mut self) -> Result<Vec<u8>>;

    /// Starts an exclusive session with the card.
    fn session(&mut self) -> Result<Box<dyn Session + '_>>;
}

/// Exclusive access to a card: raw APDU exchanges.
pub trait Session {
    /// Sends one command APDU and returns the raw response (data, SW1, SW2).
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>>;
}

/// The most 61xx/6Cxx rounds one command may take before the card is deemed broken.
const MAX_RESPONSE_ROUNDS: usize = 64;

/// Sends `command` and completes the response: on `61xx` it fetches the rest with GET RESPONSE
/// (`00 C0 00 00 xx`) and concatenates; on `6Cxx` it re-sends the command with `Le = xx`.
pub fn exchange(session: &mut dyn Session, command: &Command) -> Result<Response> {
    let mut current = command.clone();
    let mut data = Vec::new();
    for _ in 0..MAX_RESPONSE_ROUNDS {
        let response = Response::parse(&session.transmit(&current.to_bytes()?)?)?;
        data.extend_from_slice(&response.data);
        match response.sw {
            Sw::MoreData(n) => {
                current = Command::new(command.cla & 0x03, 0xC0, 0, 0).with_le(ne(n));
            }
            Sw::WrongLe(n) => {
                current = current.clone().with_le(ne(n));
            }
            sw => return Ok(Response { data, sw }),
        }
    }
    Err(ApduError::ResponseLoop(MAX_RESPONSE_ROUNDS))
}

fn ne(n: u8) -> u32 {
    if n == 0 { 256 } else { u32::from(n) }
}

/// A card that lives in this process: anything that answers raw APDUs.
pub trait CardHandler {
    /// Power on (or reset) and return the ATR.
    fn power_on(&mut self) -> Vec<u8>;

    /// Answers one raw command APDU with a raw response. Must answer anything, malformed
    /// input included (with an error status word).
    fn handle(&mut self, command: &[u8]) -> Vec<u8>;
}

/// A transport to a [`CardHandler`] in the same process.
pub struct MemoryTransport<H> {
    name: String,
    card: H,
}

impl<H: CardHandler> MemoryTransport<H> {
    /// Wraps `card` under the reader name `name`.
    pub fn new(name: impl Into<String>, card: H) -> Self {
        Self {
            name: name.into(),
            card,
        }
    }

    /// The card.
    pub fn card(&self) -> &H {
        &self.card
    }

    /// The card, mutably.
    pub fn card_mut(&mut self) -> &mut H {
        &mut self.card
    }

    /// Gives the card back.
    pub fn into_card(self) -> H {
        self.card
    }
}

impl<H: CardHandler> Transport for MemoryTransport<H> {
    fn name(&self) -> &str {
        &self.name
    }

    fn reset(&mut self) -> Result<Vec<u8>> {
        Ok(self.card.power_on())
    }

    fn session(&mut self) -> Result<Box<dyn Session + '_>> {
        Ok(Box::new(MemorySession(&mut self.card)))
    }
}

struct MemorySession<'a, H>(&'a mut H);

impl<H: CardHandler> Session for MemorySession<'_, H> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        Ok(self.0.handle(command))
    }
}

/// A scripted card for tests: answers a fixed list of (command, response) pairs in order and
/// fails on anything else.
pub struct MockTransport {
    atr: Vec<u8>,
    expected: VecDeque<(Vec<u8>, Vec<u8>)>,
}

impl MockTransport {
    /// A mock with this ATR and the exchanges it expects, in order.
    pub fn new(
        atr: impl Into<Vec<u8>>,
        exchanges: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Self {
        Self {
            atr: atr.into(),
            expected: exchanges.into_iter().collect(),
        }
    }

    /// Exchanges not yet consumed.
    pub fn remaining(&self) -> usize {
        self.expected.len()
    }
}

impl Transport for MockTransport {
    fn name(&self) -> &str {
        "mock"
    }

    fn reset(&mut self) -> Result<Vec<u8>> {
        Ok(self.atr.clone())
    }

    fn session(&mut self) -> Result<Box<dyn Session + '_>> {
        Ok(Box::new(MockSession(&mut self.expected)))
    }
}

struct MockSession<'a>(&'a mut VecDeque<(Vec<u8>, Vec<u8>)>);

impl Session for MockSession<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02X}")).collect::<String>();
        match self.0.front() {
            Some((expected, _)) if expected == command => {
                Ok(self.0.pop_front().expect("checked").1)
            }
            next => Err(ApduError::UnexpectedCommand {
                expected: next.map_or_else(|| "nothing".into(), |(c, _)| hex(c)),
                got: hex(command),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn get_response_collects_61xx_chunks() {
        let mut mock = MockTransport::new(
            h("3B00"),
            [
                (h("00A404000E315041592E5359532E4444463031"), h("6110")),
                (h("00C0000010"), h("6F0E840E315041592E5359532E4444466108")),
                (h("00C0000008"), h("46303100000000009000")),
            ],
        );
        let mut session = mock.session().unwrap();
        let select = Command::new(0, 0xA4, 4, 0).with_data(b"1PAY.SYS.DDF01".to_vec());
        let response = exchange(session.as_mut(), &select).unwrap();
        assert_eq!(response.sw, Sw::Ok);
        assert_eq!(response.data.len(), 16 + 8);
        drop(session);
        assert_eq!(mock.remaining(), 0);
    }

    #[test]
    fn wrong_le_is_resent_once_with_the_right_one() {
        let mut mock = MockTransport::new(
            h("3B00"),
            [
                (h("0084000008"), h("6C04")),
                (
                    h("0084000004"),
                    h("1122334490 00".replace(' ', "").as_str()),
                ),
            ],
        );
        let response = exchange(
            mock.session().unwrap().as_mut(),
            &Command::new(0, 0x84, 0, 0).with_le(8),
        )
        .unwrap();
        assert_eq!(response, Response::new(h("11223344"), Sw::Ok));
    }

    #[test]
    fn unexpected_commands_and_endless_loops_are_errors() {
        let mut mock = MockTransport::new(h("3B00"), [(h("0084000008"), h("6C08"))]);
        let err = exchange(
            mock.session().unwrap().as_mut(),
            &Command::new(0, 0xB0, 0, 0).with_le(1),
        );
        assert!(matches!(err, Err(ApduError::UnexpectedCommand { .. })));

        struct Stubborn;
        impl CardHandler for Stubborn {
            fn power_on(&mut self) -> Vec<u8> {
                vec![0x3B, 0x00]
            }
            fn handle(&mut self, _: &[u8]) -> Vec<u8> {
                vec![0x61, 0x01]
            }
        }
        let mut card = MemoryTransport::new("stubborn", Stubborn);
        assert_eq!(card.reset().unwrap(), [0x3B, 0x00]);
        let err = exchange(
            card.session().unwrap().as_mut(),
            &Command::new(0, 0xB0, 0, 0).with_le(1),
        );
        assert_eq!(err, Err(ApduError::ResponseLoop(MAX_RESPONSE_ROUNDS)));
    }
}
