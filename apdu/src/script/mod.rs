//! APDU scripts: a superset of pcsc-tools `scriptor` with expectations, variables, captures,
//! channels and secret redaction; a runner and transcripts.
//!
//! # The format
//!
//! A script is text, one statement per line. Every `scriptor` script is a script and means
//! the same:
//!
//! - `#` starts a comment, which runs to the end of the line (`scriptor` only knows comment
//!   lines); blank lines are ignored;
//! - a line ending in `\` continues on the next one (comment and blank lines in between are
//!   skipped, as `scriptor` does); errors give the number of the first line;
//! - `reset` resets the card; `exit` or `quit` ends the script, nothing after it is read;
//! - any other line is a command APDU in hex, upper or lower case, with or without spaces
//!   between bytes (`00 A4 04 00` is `00A40400`). A byte's two digits are never split by a
//!   space (`scriptor` would read a lone digit as a byte; here it is an error). A line without
//!   `=>` expects nothing: whatever the card answers, the script goes on.
//!
//! Keywords (`reset`, `exit`, `quit`, `let`, `secret`) are matched in any case; variable and
//! channel names are case-sensitive.
//!
//! ```text
//! statement   = "reset" | "exit" | "quit"
//!             | "@" CHANNEL "reset"
//!             | "let" ["secret"] NAME "=" bytes
//!             | ["@" CHANNEL] ["secret"] bytes ["=>" expectation]
//! bytes       = (HEX HEX | "$" NAME | "${" NAME "}") ...        one or more
//! expectation = ["[" item ... "]"] sw ("|" sw)...
//! item        = HEX HEX        this byte
//!             | "??"           any one byte
//!             | ".."           any number of bytes, none included
//!             | "$" NAME       the bytes the variable holds
//!             | "$" NAME ":" N capture N bytes (1 to 65536) into NAME
//!             | "$" NAME ":.." capture any number of bytes into NAME
//! sw          = NIBBLE NIBBLE [" "] NIBBLE NIBBLE,   NIBBLE = HEX | "X" (any)
//! NAME, CHANNEL = a letter or "_", then letters, digits and "_"
//! ```
//!
//! ## Expectations
//!
//! After `=>` comes an optional pattern for the response data and one or more status-word
//! patterns separated by `|`; the response must match the data pattern as a whole and one of
//! the status words. Without `[...]` the data is not checked; `[]` wants no data.
//!
//! ```text
//! 00A4040009A00000000386980701 => 9000
//! 00A4040009A00000000386980701 => 9000|61XX       # 61XX: 61 then any byte
//! 0020000003123456 => 63CX                          # any tries-left count
//! 00A4040009A00000000386980701 => [6F ?? 84 ..] 9000
//! 00B0950000 => [] 6A82
//! ```
//!
//! ## Variables and captures
//!
//! `let` defines a variable; `$NAME` (or `${NAME}` when hex follows at once: `$KEY00` is a
//! variable `KEY00`) stands for its bytes in a later command, `let` or pattern. A capture in
//! a pattern defines (or redefines) a variable from the response data, once the whole
//! expectation is met; it can be used from the next line on. A variable used before it is
//! defined is an error of the line that uses it, found when parsing.
//!
//! ```text
//! let AID = A00000000386980701
//! 00A4040009 $AID => [6F ?? 84 09 $AID ..] 9000
//! 0084000004 => [$CHALLENGE:4] 9000
//! @psam 80FA000008 $CHALLENGE 00000000 => 9000
//! 00B0950000 => [$ISSUER:8 $CARD:..] 9000
//! ```
//!
//! ## Channels
//!
//! A line starting with `@NAME` goes to that channel, any other to `card`
//! ([`DEFAULT_CHANNEL`]); `@psam reset` resets the PSAM. The runner is given one transport per
//! channel ([`Channels`]).
//!
//! ## Secrets
//!
//! `let secret NAME = ...` makes every byte of the variable secret, and the bytes of
//! anything made from it (another `let`, a command). A `secret` command line makes its bytes
//! after the four header bytes secret, and its response data and the captures from it. A
//! response whose pattern compares against a variable with secret bytes is secret too. Secret
//! bytes are shown as `**` each in transcripts ([`Transcript`]), in errors ([`ScriptError`],
//! [`Redacted`]) and never written by an export: an export that would need them is refused
//! ([`ErrorKind::SecretNeeded`]).
//!
//! ```text
//! let secret PIN = 123456
//! 0020000003 $PIN => 9000                # shown as 0020000003******
//! secret 80D4000008 0011223344556677     # shown as 80D40000******************
//! ```
//!
//! # Running
//!
//! [`Script::run`] sends each command to its channel and stops at the first unmet
//! expectation with a [`ScriptError`] naming the line, command, expectation and response. In
//! [`Mode::Exchange`] (the default) commands go through [`exchange`](crate::exchange): they
//! must be well-formed APDUs, and 61xx and 6Cxx answers are completed, so expectations see the
//! whole response. [`Mode::Raw`] sends the bytes as they are and shows the card's first
//! answer, as `scriptor` does: use it to replay an export exactly, or to send malformed
//! APDUs on purpose.
//!
//! The [`Transcript`] records every reset and exchange (line, channel, command, response
//! data, status word, elapsed time); its `Display` is a text form in the style of
//! `scriptor`'s output. Its fields are public, for other forms (the `ykt` command writes JSON).
//!
//! ```
//! use std::collections::BTreeMap;
//! use ykt_apdu::script::{Channels, Mode, Script};
//! use ykt_apdu::{MockTransport, Transport};
//!
//! let script = Script::parse("0084000004 => [$CHALLENGE:4] 9000\n").unwrap();
//! let mut card = MockTransport::new(
//!     [0x3B, 0x00],
//!     [(vec![0x00, 0x84, 0x00, 0x00, 0x04], vec![1, 2, 3, 4, 0x90, 0x00])],
//! );
//! let mut channels: Channels<'_> = BTreeMap::from([("card", &mut card as &mut dyn Transport)]);
//! let transcript = script.run(&mut channels, Mode::Exchange).unwrap();
//! assert_eq!(transcript.to_string().lines().nth(2), Some("< 01020304 9000"));
//! ```
//!
//! # Export
//!
//! [`Script::export`] writes one channel's lines as a plain `scriptor` script: variables
//! substituted, expectations kept as comments, meant for [`Mode::Raw`] or `scriptor` itself.
//! An export is always exact, so it refuses a script whose commands need secret bytes or
//! values captured at run time, rather than write a redacted script that cannot be replayed.

mod bytes;
mod error;
mod export;
mod parse;
mod pattern;
mod run;
mod transcript;

#[cfg(test)]
mod tests;

pub use bytes::Redacted;
pub use error::{ErrorKind, RunFailure, ScriptError};
pub use transcript::{Entry, Event, Transcript};

use crate::transport::Transport;
use bytes::{Template, Value, Vars};
use pattern::Expectation;
use std::collections::BTreeMap;
use std::fmt;

/// The channel of lines without `@NAME`.
pub const DEFAULT_CHANNEL: &str = "card";

/// The transports a run uses, by channel name.
pub type Channels<'a> = BTreeMap<&'a str, &'a mut dyn Transport>;

/// How commands are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Through [`exchange`](crate::exchange): the command must parse as an APDU, and 61xx
    /// (GET RESPONSE) and 6Cxx (re-send with the right Le) are handled.
    #[default]
    Exchange,
    /// The bytes as they are, one transmit each, as `scriptor` does.
    Raw,
}

/// A parsed script.
///
/// `Debug` shows only the number of statements: the script may hold secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Script {
    lines: Vec<Line>,
}

impl Script {
    /// Parses a script; the error names the first line with a problem. Never panics.
    pub fn parse(text: &str) -> Result<Self, ScriptError> {
        parse::parse(text).map(|lines| Self { lines })
    }

    /// The channels the script uses, each with the number of commands sent to it (a channel
    /// that is only reset has 0).
    pub fn commands_per_channel(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for line in &self.lines {
            if let Some(channel) = line.step.channel() {
                *counts.entry(channel).or_insert(0) +=
                    usize::from(matches!(line.step, Step::Send(_)));
            }
        }
        counts
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Script({} statements)", self.lines.len())
    }
}

/// One statement and the line it starts on.
#[derive(Clone, PartialEq, Eq)]
struct Line {
    number: usize,
    step: Step,
}

/// A statement.
#[derive(Clone, PartialEq, Eq)]
enum Step {
    /// `let [secret] NAME = ...`.
    Let(Let),
    /// A command line.
    Send(Send),
    /// `[@CHANNEL] reset`.
    Reset {
        /// The channel.
        channel: String,
    },
}

impl Step {
    /// The channel the statement talks to, if it talks to one.
    fn channel(&self) -> Option<&str> {
        match self {
            Self::Let(_) => None,
            Self::Send(Send { channel, .. }) | Self::Reset { channel } => Some(channel),
        }
    }
}

/// `let [secret] NAME = BYTES`.
#[derive(Clone, PartialEq, Eq)]
struct Let {
    name: String,
    secret: bool,
    value: Template,
}

impl Let {
    /// The value; the error names a variable `vars` does not hold.
    fn eval(&self, vars: &Vars) -> Result<Value, String> {
        let mut value = self.value.eval(vars)?;
        if self.secret {
            value.hide_from(0);
        }
        Ok(value)
    }
}

/// A command line.
#[derive(Clone, PartialEq, Eq)]
struct Send {
    channel: String,
    secret: bool,
    apdu: Template,
    expect: Option<Expectation>,
}

/// CLA INS P1 P2: what a `secret` line shows.
const HEADER_LEN: usize = 4;

impl Send {
    /// The command bytes; the error names a variable `vars` does not hold.
    fn command(&self, vars: &Vars) -> Result<Value, String> {
        let mut value = self.apdu.eval(vars)?;
        if self.secret {
            value.hide_from(HEADER_LEN);
        }
        Ok(value)
    }
}
