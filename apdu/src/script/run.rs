//! The runner: sends each command line to its channel, checks the response, records the
//! transcript, and stops at the first problem.

use super::bytes::{REDACTED, Value, Vars};
use super::error::{ErrorKind, RunFailure, ScriptError};
use super::pattern::Expectation;
use super::transcript::{Entry, Event, Transcript};
use super::{Channels, Line, Mode, Script, Send, Step};
use crate::command::Command;
use crate::error::{ApduError, Result};
use crate::response::Response;
use crate::transport::{Session, Transport, exchange};
use std::collections::BTreeMap;
use std::time::Instant;

impl Script {
    /// Runs the script on `channels` (channel name → transport) and gives its transcript.
    ///
    /// Every channel the script uses must be in `channels`, or nothing is sent. Each channel's
    /// session is opened at its first command and held until the next `reset` (of any
    /// channel) or the end. The run stops at the first unmet expectation, transport error or
    /// failed reset; the [`RunFailure`] names the line and carries the transcript so far.
    pub fn run(&self, channels: &mut Channels<'_>, mode: Mode) -> Result<Transcript, RunFailure> {
        let mut runner = Runner {
            mode,
            vars: Vars::new(),
            transcript: Transcript::default(),
        };
        match runner.run(&self.lines, channels) {
            Ok(()) => Ok(runner.transcript),
            Err(error) => Err(RunFailure {
                error: Box::new(error),
                transcript: runner.transcript,
            }),
        }
    }
}

impl Mode {
    /// Sends `command` and reads the response.
    fn exchange(self, session: &mut dyn Session, command: &[u8]) -> Result<Response> {
        match self {
            Self::Exchange => exchange(session, &Command::parse(command)?),
            Self::Raw => Response::parse(&session.transmit(command)?),
        }
    }
}

/// The state of one run.
struct Runner {
    mode: Mode,
    vars: Vars,
    transcript: Transcript,
}

impl Runner {
    fn run(&mut self, lines: &[Line], channels: &mut Channels<'_>) -> Result<(), ScriptError> {
        let missing = lines.iter().find_map(|line| {
            let channel = line.step.channel()?;
            (!channels.contains_key(channel)).then(|| ScriptError {
                line: line.number,
                kind: ErrorKind::NoChannel(channel.to_string()),
            })
        });
        if let Some(error) = missing {
            return Err(error);
        }
        for chunk in lines.split_inclusive(|line| matches!(line.step, Step::Reset { .. })) {
            match chunk.split_last() {
                Some((
                    Line {
                        number,
                        step: Step::Reset { channel },
                    },
                    body,
                )) => {
                    self.body(body, channels)?;
                    self.reset(*number, channel, channels)?;
                }
                _ => self.body(chunk, channels)?,
            }
        }
        Ok(())
    }

    /// Runs lines that hold no `reset`, each channel in one session.
    fn body(&mut self, lines: &[Line], channels: &mut Channels<'_>) -> Result<(), ScriptError> {
        let mut slots: BTreeMap<&str, Slot<'_>> = channels
            .iter_mut()
            .map(|(name, transport)| {
                let transport: &mut dyn Transport = &mut **transport;
                (*name, Slot::Idle(transport))
            })
            .collect();
        for line in lines {
            let error = |kind| ScriptError {
                line: line.number,
                kind,
            };
            match &line.step {
                Step::Let(statement) => {
                    let value = statement
                        .eval(&self.vars)
                        .map_err(|name| error(ErrorKind::Undefined(name)))?;
                    self.vars.insert(statement.name.clone(), value);
                }
                Step::Send(send) => {
                    let slot = slots
                        .get_mut(send.channel.as_str())
                        .ok_or_else(|| error(ErrorKind::NoChannel(send.channel.clone())))?;
                    self.send(line.number, send, slot)?;
                }
                Step::Reset { .. } => {}
            }
        }
        Ok(())
    }

    /// Sends one command line and checks the response.
    fn send(&mut self, line: usize, send: &Send, slot: &mut Slot<'_>) -> Result<(), ScriptError> {
        let error = |kind| ScriptError { line, kind };
        let command = send
            .command(&self.vars)
            .map_err(|name| error(ErrorKind::Undefined(name)))?;
        let shown = command.redacted();
        let failed = |source| {
            error(ErrorKind::Exchange {
                channel: send.channel.clone(),
                command: shown.clone(),
                source: redact(source, &command),
            })
        };
        let session = slot.session().map_err(failed)?;
        let started = Instant::now();
        let response = self
            .mode
            .exchange(session, command.bytes())
            .map_err(failed)?;
        let elapsed = started.elapsed();

        let hide_data = send.secret
            || send
                .expect
                .iter()
                .flat_map(Expectation::vars)
                .any(|name| self.vars.get(name).is_some_and(Value::has_secret));
        let data = Value::new(&response.data, hide_data);
        self.transcript.entries.push(Entry {
            line,
            channel: send.channel.clone(),
            event: Event::Exchange {
                command: shown.clone(),
                data: data.redacted(),
                sw: response.sw,
            },
            elapsed,
        });

        let Some(expect) = &send.expect else {
            return Ok(());
        };
        let captures = expect
            .check(&response.data, response.sw, &self.vars)
            .map_err(|name| error(ErrorKind::Undefined(name)))?
            .ok_or_else(|| {
                error(ErrorKind::Unmet {
                    channel: send.channel.clone(),
                    command: shown,
                    expected: expect.to_string(),
                    data: data.redacted(),
                    sw: response.sw,
                })
            })?;
        for (name, range) in captures {
            self.vars.insert(name.to_string(), data.slice(range));
        }
        Ok(())
    }

    /// Resets the card of `channel`.
    fn reset(
        &mut self,
        line: usize,
        channel: &str,
        channels: &mut Channels<'_>,
    ) -> Result<(), ScriptError> {
        let error = |kind| ScriptError { line, kind };
        let transport = channels
            .get_mut(channel)
            .ok_or_else(|| error(ErrorKind::NoChannel(channel.to_string())))?;
        let started = Instant::now();
        let atr = transport.reset().map_err(|source| {
            error(ErrorKind::Reset {
                channel: channel.to_string(),
                source,
            })
        })?;
        self.transcript.entries.push(Entry {
            line,
            channel: channel.to_string(),
            event: Event::Reset { atr },
            elapsed: started.elapsed(),
        });
        Ok(())
    }
}

/// A channel's transport, and its session once the first command needs it.
enum Slot<'s> {
    /// No session yet.
    Idle(&'s mut dyn Transport),
    /// The session.
    Open(Box<dyn Session + 's>),
    /// Opening the session failed.
    Broken,
}

impl<'s> Slot<'s> {
    /// The session, opened on first use.
    fn session(&mut self) -> Result<&mut (dyn Session + 's)> {
        *self = match std::mem::replace(self, Self::Broken) {
            Self::Idle(transport) => Self::Open(transport.session()?),
            slot => slot,
        };
        match self {
            Self::Open(session) => Ok(session.as_mut()),
            Self::Idle(_) | Self::Broken => Err(ApduError::Transport(
                "the session could not be opened".into(),
            )),
        }
    }
}

/// Drops the command bytes an error quotes (a mock's unexpected command) when the command
/// holds secret bytes.
fn redact(error: ApduError, command: &Value) -> ApduError {
    match error {
        ApduError::UnexpectedCommand { .. } if command.has_secret() => {
            ApduError::UnexpectedCommand {
                expected: REDACTED.into(),
                got: REDACTED.into(),
            }
        }
        other => other,
    }
}
