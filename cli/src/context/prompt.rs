//! Hidden prompts on the terminal, for the secrets officers type: nothing typed is echoed.
//!
//! Prompts are only made when standard input is a terminal; otherwise (a script, a pipe, a
//! service) the command fails with a usage error asking for a ceremony file instead, rather
//! than waiting for input that never comes.

use crate::error::{CliError, Result};
use std::io::IsTerminal;
use ykt_kms::officers::MIN_PASSWORD_LEN;
use zeroize::Zeroizing;

/// Asks for `what` with `prompt` on the terminal, without echo; without a terminal, the
/// error names `file_option`, the option that gives `what` from a ceremony file instead.
pub fn hidden(prompt: &str, what: &str, file_option: &str) -> Result<Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "{what} must be typed at a terminal, or given in a ceremony file with {file_option} FILE"
        )));
    }
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|source| CliError::Prompt {
            what: what.to_owned(),
            source,
        })
}

/// Asks a new officer for a password twice, until both match and it is long enough (three
/// tries).
pub fn new_password(name: &str) -> Result<Zeroizing<String>> {
    let what = format!("the new password of {name}");
    for _ in 0..3 {
        let first = hidden(
            &format!("New password of {name} (at least {MIN_PASSWORD_LEN} characters): "),
            &what,
            "--components-from",
        )?;
        if first.chars().count() < MIN_PASSWORD_LEN {
            eprintln!("ykt: too short; at least {MIN_PASSWORD_LEN} characters");
            continue;
        }
        let second = hidden(
            &format!("New password of {name} again: "),
            &what,
            "--components-from",
        )?;
        if *first == *second {
            return Ok(first);
        }
        eprintln!("ykt: the two entries differ");
    }
    Err(CliError::Usage(format!(
        "{what} was not entered the same way twice"
    )))
}
