//! The one error type of the `ykt` command and the exit code each kind of error gives.
//!
//! Messages are single lines and never carry argument values other than file and reader names,
//! so a mistyped key is not echoed to the terminal or a log.

use std::error::Error as _;
use std::process::ExitCode;
use thiserror::Error;
use ykt_apdu::script::ScriptError;
use ykt_crypto::CryptoError;

/// Everything that can make `ykt` fail.
#[derive(Debug, Error)]
pub enum CliError {
    /// The command line could not be parsed (unknown subcommand or option, missing argument,
    /// value not in the allowed list, ...).
    #[error("{0}")]
    Usage(String),
    /// An argument is not hex.
    #[error("{0}")]
    Hex(&'static str),
    /// An argument has the wrong length or form.
    #[error("{arg}: {reason}")]
    Input {
        /// The option, e.g. `--terminal`.
        arg: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The cryptographic core refused an argument (wrong key length, invalid point, ...).
    #[error("{arg}: {source}")]
    Rejected {
        /// The option whose value was refused.
        arg: &'static str,
        /// Why.
        source: CryptoError,
    },
    /// A cryptographic operation failed for a reason other than its input.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// `openssl speed` could not be run or its output not understood.
    #[error("openssl speed: {0}")]
    Openssl(String),
    /// A file named on the command line could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file named on the command line could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An APDU script does not parse.
    #[error("{file}:{}: {}", .error.line, .error.kind)]
    ScriptSyntax {
        /// The script file.
        file: String,
        /// The line and the problem (boxed: the error type stays small).
        error: Box<ScriptError>,
    },
    /// An APDU script run stopped at a line (unmet expectation, card or reader failure).
    #[error("{file}:{}: {}", .error.line, .error.kind)]
    ScriptRun {
        /// The script file.
        file: String,
        /// The line and the problem, secret bytes redacted (boxed: the error type stays
        /// small).
        error: Box<ScriptError>,
    },
    /// A command needs PC/SC (a `--reader`, `ykt card serve`) and this build has none.
    #[cfg(not(feature = "pcsc"))]
    #[error("PC/SC support is not built in; build with --features pcsc")]
    NoPcsc,
    /// A `--reader` that cannot be used: no reader of that name, no card in it, pcscd not
    /// running.
    #[cfg(feature = "pcsc")]
    #[error("reader {name:?}: {source}")]
    Reader {
        /// The name given.
        name: String,
        /// Why it cannot be used.
        source: ykt_apdu::ApduError,
    },
    /// A PC/SC operation failed: serving a card over vpcd, waiting for a card, a reader in
    /// use.
    #[cfg(feature = "pcsc")]
    #[error("{context}: {source}")]
    Pcsc {
        /// What failed, e.g. `cannot serve the card`.
        context: String,
        /// Why.
        source: ykt_apdu::ApduError,
    },
    /// The handlers that end `ykt card serve` and `ykt hsm serve` on SIGINT and SIGTERM could
    /// not be installed.
    #[error("cannot handle SIGINT and SIGTERM: {0}")]
    Signals(std::io::Error),
    /// A virtual card's state file could not be created, read or stored, or does not hold a
    /// card.
    #[error(transparent)]
    Card(#[from] ykt_card_sim::SimError),
    /// A terminal transaction with a card and a PSAM failed.
    #[error(transparent)]
    Terminal(#[from] ykt_psam::TerminalError),
    /// The KMS refused or failed: bad input, an unknown or existing object, officers not
    /// authorised, a lifecycle rule, the HSM or the store.
    #[error(transparent)]
    Kms(#[from] ykt_kms::KmsError),
    /// The link to a card or PSAM failed.
    #[error("card link: {0}")]
    Link(#[from] ykt_apdu::ApduError),
    /// The API server could not start or serve.
    #[error(transparent)]
    Api(#[from] ykt_api::ApiError),
    /// A batch stopped at a card; running it again resumes there.
    #[error("batch {batch} stopped: {error}; `ykt issue resume {batch}` goes on from there")]
    Batch {
        /// The batch.
        batch: String,
        /// Why it stopped.
        error: ykt_issuer::IssueError,
    },
    /// The issuing station refused or failed.
    #[error(transparent)]
    Issue(#[from] ykt_issuer::IssueError),
    /// A ceremony was committed but some of its share files could not be written: the
    /// custodians of those shares must re-split the key's custody.
    #[error(
        "the ceremony is done, but shares could not be written: {}; written: {}; re-split the custody",
        failed.join(", "),
        if written.is_empty() { "none".to_owned() } else { written.join(", ") }
    )]
    SharesNotWritten {
        /// The share files written.
        written: Vec<String>,
        /// The share files not written, with why.
        failed: Vec<String>,
    },
    /// A benchmark could not set up or run what it measures.
    #[error("benchmark: {0}")]
    Bench(String),
    /// A KMS command was given a data directory that holds no KMS.
    #[error("no KMS in {0} (run `ykt kms init`, or give --data-dir)")]
    NoKms(String),
    /// A secret had to be asked at a hidden prompt and could not be read.
    #[error("cannot read {what} at the terminal: {source}")]
    Prompt {
        /// What was asked (`the password of alice`, ...).
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime the KMS runs on could not be started.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// `ykt hsm serve` could not listen or serve.
    #[error("cannot serve the HSM on {address}: {source}")]
    Serve {
        /// The address given.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The result could not be written to standard output.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// `Result` with [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    /// A one-line description of a command-line parse error, naming the option but never
    /// repeating the value given for it.
    pub fn usage(err: &clap::Error) -> Self {
        use clap::error::{ContextKind, ContextValue, ErrorKind};
        if err.kind() == ErrorKind::ValueValidation
            && let (Some(ContextValue::String(arg)), Some(reason)) =
                (err.get(ContextKind::InvalidArg), err.source())
        {
            return Self::Usage(format!("invalid value for {arg}: {reason}"));
        }
        let rendered = err.to_string();
        let lines: Vec<&str> = rendered
            .lines()
            .map(str::trim)
            .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
            .filter(|line| !line.is_empty())
            .collect();
        let message = lines.join(" ");
        Self::Usage(
            message
                .strip_prefix("error: ")
                .unwrap_or(&message)
                .to_string(),
        )
    }

    /// Wraps a refusal by the cryptographic core with the option that caused it.
    pub fn rejected(arg: &'static str) -> impl FnOnce(CryptoError) -> Self {
        move |source| Self::Rejected { arg, source }
    }

    /// 2 for anything wrong with the command line or its values, 1 for failures at run time.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_)
            | Self::Hex(_)
            | Self::Input { .. }
            | Self::Rejected { .. }
            | Self::Read { .. }
            | Self::ScriptSyntax { .. } => ExitCode::from(2),
            #[cfg(not(feature = "pcsc"))]
            Self::NoPcsc => ExitCode::from(2),
            #[cfg(feature = "pcsc")]
            Self::Reader { .. } => ExitCode::from(2),
            #[cfg(feature = "pcsc")]
            Self::Pcsc { .. } => ExitCode::FAILURE,
            Self::Kms(err) => kms_exit_code(err),
            Self::Issue(ykt_issuer::IssueError::Kms(err)) => kms_exit_code(err),
            Self::Issue(
                ykt_issuer::IssueError::Roster(_)
                | ykt_issuer::IssueError::Profile { .. }
                | ykt_issuer::IssueError::Io { .. },
            ) => ExitCode::from(2),
            Self::Issue(_) | Self::Batch { .. } | Self::Api(_) => ExitCode::FAILURE,
            Self::NoKms(_) => ExitCode::from(2),
            Self::Bench(_) | Self::SharesNotWritten { .. } => ExitCode::FAILURE,
            Self::Crypto(_)
            | Self::Openssl(_)
            | Self::Write { .. }
            | Self::ScriptRun { .. }
            | Self::Card(_)
            | Self::Link(_)
            | Self::Terminal(_)
            | Self::Signals(_)
            | Self::Prompt { .. }
            | Self::Serve { .. }
            | Self::Runtime(_)
            | Self::Output(_) => ExitCode::FAILURE,
        }
    }
}

/// 2 when the KMS refused what it was given (bad input, an unknown or existing object,
/// officers not authorised), 1 when an act failed or a rule forbade it.
fn kms_exit_code(err: &ykt_kms::KmsError) -> ExitCode {
    use ykt_kms::KmsError;
    match err {
        KmsError::InvalidInput { .. }
        | KmsError::NotFound { .. }
        | KmsError::AlreadyExists { .. }
        | KmsError::NotAuthorised(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}
