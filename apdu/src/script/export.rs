//! Export to plain `scriptor` text.

use super::bytes::Vars;
use super::error::{ErrorKind, ScriptError};
use super::pattern::Expectation;
use super::{Script, Step};

/// The first line of an export. (It must not hold the word that ends `scriptor`.)
const HEADER: &str =
    "# Exported from a ykt script: variables substituted, expectations kept as comments.\n";

impl Script {
    /// The lines of `channel` as a plain `scriptor` script that sends the same bytes.
    ///
    /// `let` values are substituted; commands are written as spaced hex; `reset` stays;
    /// each expectation becomes a `# => ...` comment on the line after its command (left
    /// out if it contains the word `exit`, which ends `scriptor` even in a comment); lines
    /// of other channels are left out.
    ///
    /// An export is always fit for replay, so it refuses what it cannot write exactly: a
    /// command that needs a captured value (or a variable made from one) gives
    /// [`ErrorKind::RunTimeValue`], one that needs secret bytes (a `secret` variable, or a
    /// `secret` line longer than its header) gives [`ErrorKind::SecretNeeded`].
    pub fn export(&self, channel: &str) -> Result<String, ScriptError> {
        let mut vars = Vars::new();
        let mut out = String::from(HEADER);
        for line in &self.lines {
            let error = |kind| ScriptError {
                line: line.number,
                kind,
            };
            match &line.step {
                Step::Let(statement) => match statement.eval(&vars) {
                    Ok(value) => {
                        vars.insert(statement.name.clone(), value);
                    }
                    Err(_) => {
                        vars.remove(&statement.name);
                    }
                },
                Step::Reset { channel: reset } if reset == channel => out.push_str("reset\n"),
                Step::Reset { .. } => {}
                Step::Send(send) => {
                    if send.channel == channel {
                        let command = send
                            .command(&vars)
                            .map_err(|name| error(ErrorKind::RunTimeValue(name)))?;
                        if command.has_secret() {
                            return Err(error(ErrorKind::SecretNeeded));
                        }
                        let hex: Vec<String> =
                            command.bytes().iter().map(|b| format!("{b:02X}")).collect();
                        out += &hex.join(" ");
                        out.push('\n');
                        if let Some(expect) = &send.expect
                            && !expect.to_string().to_ascii_lowercase().contains("exit")
                        {
                            out += &format!("# => {expect}\n");
                        }
                    }
                    for (name, _) in send.expect.iter().flat_map(Expectation::captures) {
                        vars.remove(name);
                    }
                }
            }
        }
        Ok(out)
    }
}
