//! The errors of parsing, running and exporting a script: every one names a line, and none
//! shows a secret byte.

use super::bytes::Redacted;
use super::transcript::Transcript;
use crate::error::ApduError;
use crate::sw::Sw;
use thiserror::Error;

/// A problem with a script, at a line (1-based, the first line of a continued line).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {kind}")]
pub struct ScriptError {
    /// The line.
    pub line: usize,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// What is wrong with a script. Messages quote at most one character of the script, so a
/// mistyped secret is never echoed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ErrorKind {
    /// A character that has no place there.
    #[error("unexpected character {0:?}")]
    Character(char),
    /// A hex digit without its partner (bytes are two digits, never split by a space).
    #[error("a byte needs two hex digits")]
    OddDigits,
    /// `$` not followed by a name.
    #[error("expected a variable name after `$`")]
    VariableName,
    /// `@` not followed by a name.
    #[error("expected a channel name after `@`")]
    ChannelName,
    /// A variable used before any `let` or capture defines it.
    #[error("undefined variable ${0}")]
    Undefined(String),
    /// A `let` statement of the wrong form.
    #[error("expected `let [secret] NAME = BYTES`")]
    Let,
    /// A command line or a `let` with no bytes.
    #[error("expected hex bytes or $variables")]
    NoBytes,
    /// A lone `?` or `.`, or three dots.
    #[error("wildcards are `??` (any one byte) and `..` (any number of bytes)")]
    Wildcard,
    /// A `[` with no `]`.
    #[error("`[` without `]`")]
    UnclosedPattern,
    /// A capture length that is not 1 to 65536.
    #[error("a capture takes 1 to 65536 bytes (`$NAME:4`) or any number (`$NAME:..`)")]
    CaptureLength,
    /// A capture in a command or `let`, where no response exists yet.
    #[error("a capture ($NAME:LENGTH) belongs in a response pattern `[...]`")]
    CaptureOutsidePattern,
    /// One pattern capturing a variable twice.
    #[error("${0} is captured twice")]
    DuplicateCapture(String),
    /// `=>` without a valid status-word pattern.
    #[error("expected a status word such as 9000 or 61XX after `=>`")]
    StatusWord,
    /// The text ends with a `\` continuation.
    #[error("the script ends inside a continued line")]
    Continuation,
    /// A `let` or command line that could build more than 1 MiB.
    #[error("the value can grow longer than 1 MiB")]
    TooLong,
    /// A line for a channel the runner was given no transport for.
    #[error("no transport for channel @{0}")]
    NoChannel(String),
    /// A response that does not meet the line's expectation.
    #[error("@{channel} {command}: expected {expected}, got {}", show_response(.data, *.sw))]
    Unmet {
        /// The channel.
        channel: String,
        /// The command sent.
        command: Redacted,
        /// The expectation, as the canonical text of the pattern.
        expected: String,
        /// The response data.
        data: Redacted,
        /// The status word.
        sw: Sw,
    },
    /// The command could not be sent or the card's answer not read.
    #[error("@{channel} {command}: {source}")]
    Exchange {
        /// The channel.
        channel: String,
        /// The command.
        command: Redacted,
        /// Why; carries no command byte when the command holds secret bytes.
        source: ApduError,
    },
    /// The card could not be reset.
    #[error("@{channel} reset: {source}")]
    Reset {
        /// The channel.
        channel: String,
        /// Why.
        source: ApduError,
    },
    /// An export needs a value only a run knows (a capture, or a variable made from one).
    #[error("${0} is known only when the script runs, so no export can hold it")]
    RunTimeValue(String),
    /// An export needs secret bytes.
    #[error("the command needs secret bytes, which an export never holds")]
    SecretNeeded,
}

/// `data SW`, or just `SW` without data.
fn show_response(data: &Redacted, sw: Sw) -> String {
    if data.is_empty() {
        sw.to_string()
    } else {
        format!("{data} {sw}")
    }
}

/// A run that stopped at an error, with the transcript of what it did until then.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{error}")]
pub struct RunFailure {
    /// Why the run stopped (boxed: a failure is rare, and a run's result stays small).
    pub error: Box<ScriptError>,
    /// The exchanges made, the failing one included when the card answered it.
    pub transcript: Transcript,
}
