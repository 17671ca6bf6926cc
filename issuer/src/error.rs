//! The one error type of the issuing station.

use std::path::PathBuf;
use ykt_apdu::Sw;

/// One invalid roster row: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Row number as a spreadsheet shows it (the header is row 1).
    pub row: usize,
    /// The column at fault, by its header name, when one is.
    pub column: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(column) => write!(f, "row {}, {column}: {}", self.row, self.reason),
            None => write!(f, "row {}: {}", self.row, self.reason),
        }
    }
}

/// Why an issuing act failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The KMS refused or failed.
    #[error(transparent)]
    Kms(#[from] ykt_kms::KmsError),
    /// The card link failed (no card, reader gone, malformed response).
    #[error("card link: {0}")]
    Apdu(#[from] ykt_apdu::ApduError),
    /// The card answered a step with an unexpected status word.
    #[error("the card answered {sw} to {step}")]
    Card {
        /// The step.
        step: &'static str,
        /// What the card answered.
        sw: Sw,
    },
    /// The card is not in a state this station can personalise from (a card of another
    /// profile, a card whose keys are unknown, a blocked transport key).
    #[error("the card cannot be personalised: {0}")]
    UnusableCard(String),
    /// Post-issuance verification found the card different from what was written.
    #[error("post-issuance verification failed: {0}")]
    Verification(String),
    /// A roster with invalid rows: nothing was issued.
    #[error("the roster has {} invalid row(s): {}", .0.len(), listed(.0))]
    Roster(Vec<RowError>),
    /// A personalisation profile that does not check.
    #[error("profile, {field}: {reason}")]
    Profile {
        /// The field at fault (`keys[2].version`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A terminal transaction failed on the card or the PSAM.
    #[error("terminal: {0}")]
    Terminal(#[from] ykt_psam::TerminalError),
    /// The virtual card stack failed.
    #[error("virtual card: {0}")]
    VirtualCard(#[from] ykt_card_sim::SimError),
}

/// The first rows of a list of row errors, for a one-line message.
fn listed(errors: &[RowError]) -> String {
    const SHOWN: usize = 20;
    let mut text = errors
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > SHOWN {
        text.push_str(&format!("; and {} more", errors.len() - SHOWN));
    }
    text
}

/// Result with [`IssueError`].
pub type Result<T, E = IssueError> = std::result::Result<T, E>;
