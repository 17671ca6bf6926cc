//! `ykt script run`: run a script on card readers, one per channel, and print the
//! transcript.
//!
//! The transcript is printed as a table (or JSON with `--json`), one row per reset or
//! exchange: `line`, `channel`, `command` (`reset` for a reset), `response` (the data, or the
//! ATR), `sw`, `elapsed_us`. Secret bytes show as `**`. `--transcript FILE` also writes it to
//! a file, as JSON if the name ends in `.json` and as text otherwise, even when the run fails.

use super::reader;
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report};
use clap::Args;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use ykt_apdu::Transport;
use ykt_apdu::script::{Channels, DEFAULT_CHANNEL, Entry, Event, Mode, Transcript};

/// Arguments of `ykt script run`.
#[derive(Args)]
pub struct RunArgs {
    /// The script file.
    file: PathBuf,
    /// The reader of a channel: `NAME` for the card, `CHANNEL=NAME` for another (e.g.
    /// `psam=NAME`); once for each channel the script uses. A reader name with `=` in it
    /// needs the `CHANNEL=` prefix.
    #[arg(long = "reader", value_name = "[CHANNEL=]NAME", required = true)]
    readers: Vec<ReaderArg>,
    /// Also write the transcript to FILE: JSON if its name ends in `.json`, text otherwise.
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
    /// Send every command as it is, one transmit each, as scriptor does (no GET RESPONSE on
    /// 61xx, no re-send on 6Cxx, malformed APDUs allowed).
    #[arg(long)]
    raw: bool,
}

/// A `--reader` value: a channel and a reader name.
#[derive(Clone)]
struct ReaderArg {
    channel: String,
    name: String,
}

impl FromStr for ReaderArg {
    type Err = Infallible;

    fn from_str(text: &str) -> Result<Self, Infallible> {
        let (channel, name) = match text.split_once('=') {
            Some((channel, name)) if is_channel_name(channel) => (channel, name),
            _ => (DEFAULT_CHANNEL, text),
        };
        Ok(Self {
            channel: channel.to_string(),
            name: name.to_string(),
        })
    }
}

/// Whether `text` is a channel name as scripts write it after `@`.
fn is_channel_name(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl RunArgs {
    /// Runs the script and lists its transcript.
    pub fn run(self) -> Result<Report> {
        let script = super::load(&self.file)?;
        let mut readers = BTreeMap::new();
        for reader in &self.readers {
            if readers
                .insert(reader.channel.as_str(), reader.name.as_str())
                .is_some()
            {
                return Err(CliError::Input {
                    arg: "--reader",
                    reason: format!("channel @{} given twice", reader.channel),
                });
            }
        }
        let names = script
            .commands_per_channel()
            .into_keys()
            .map(|channel| match readers.get(channel) {
                Some(name) => Ok((channel, *name)),
                None => Err(CliError::Input {
                    arg: "--reader",
                    reason: format!(
                        "the script uses channel @{channel}: give --reader {channel}=NAME"
                    ),
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut transports = names
            .into_iter()
            .map(|(channel, name)| Ok((channel, reader::open(name)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut channels: Channels<'_> = transports
            .iter_mut()
            .map(|(channel, transport)| (*channel, transport.as_mut() as &mut dyn Transport))
            .collect();
        let mode = if self.raw { Mode::Raw } else { Mode::Exchange };
        let (transcript, failure) = match script.run(&mut channels, mode) {
            Ok(transcript) => (transcript, None),
            Err(failure) => (failure.transcript, Some(failure.error)),
        };
        if let Some(path) = &self.transcript {
            write_transcript(path, &transcript)?;
        }
        match failure {
            Some(error) => Err(CliError::ScriptRun {
                file: self.file.display().to_string(),
                error,
            }),
            None => Ok(Report::ok(table(&transcript))),
        }
    }
}

/// The transcript as rows.
fn table(transcript: &Transcript) -> Output {
    Output::List(transcript.entries.iter().map(row).collect())
}

/// One reset or exchange.
fn row(entry: &Entry) -> Record {
    let record = Record::new()
        .with("line", entry.line as u64)
        .with("channel", entry.channel.as_str());
    let record = match &entry.event {
        Event::Reset { atr } => record
            .with("command", "reset")
            .with("response", atr.clone())
            .with("sw", None::<String>),
        Event::Exchange { command, data, sw } => record
            .with("command", command.to_string())
            .with("response", data.to_string())
            .with("sw", sw.to_string()),
    };
    record.with(
        "elapsed_us",
        u64::try_from(entry.elapsed.as_micros()).unwrap_or(u64::MAX),
    )
}

/// Writes the transcript to `path`: JSON for a `.json` name, text otherwise.
fn write_transcript(path: &Path, transcript: &Transcript) -> Result<()> {
    let text = if path.extension().is_some_and(|ext| ext == "json") {
        serde_json::to_string(&table(transcript)).map_err(std::io::Error::from)? + "\n"
    } else {
        transcript.to_string()
    };
    std::fs::write(path, text).map_err(|source| CliError::Write {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use ykt_apdu::MockTransport;
    use ykt_apdu::script::Script;

    fn transcript() -> Transcript {
        let script = Script::parse(
            "let secret PIN = 123456\nreset\n0020000003 $PIN => 9000\n0084000004 => 9000",
        )
        .unwrap();
        let mut card = MockTransport::new(
            [0x3B, 0x00],
            [
                (hex::decode("0020000003123456").unwrap(), vec![0x90, 0x00]),
                (
                    hex::decode("0084000004").unwrap(),
                    vec![1, 2, 3, 4, 0x90, 0x00],
                ),
            ],
        );
        let mut channels: Channels<'_> =
            BTreeMap::from([("card", &mut card as &mut dyn Transport)]);
        script.run(&mut channels, Mode::Exchange).unwrap()
    }

    #[test]
    fn transcripts_are_rows_with_secret_bytes_redacted() {
        let mut rows = serde_json::to_value(table(&transcript())).unwrap();
        for row in rows.as_array_mut().unwrap() {
            assert!(row["elapsed_us"].is_u64());
            row.as_object_mut().unwrap().remove("elapsed_us");
        }
        assert_eq!(
            rows,
            json!([
                {"line": 2, "channel": "card", "command": "reset", "response": "3B00", "sw": null},
                {"line": 3, "channel": "card", "command": "0020000003******", "response": "", "sw": "9000"},
                {"line": 4, "channel": "card", "command": "0084000004", "response": "01020304", "sw": "9000"},
            ])
        );
    }

    #[test]
    fn transcript_files_are_json_or_text_by_name() {
        let transcript = transcript();
        let dir = std::env::temp_dir().join(format!("ykt-transcript-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (json_path, text_path) = (dir.join("run.json"), dir.join("run.txt"));
        write_transcript(&json_path, &transcript).unwrap();
        write_transcript(&text_path, &transcript).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        assert_eq!(json.as_array().map(Vec::len), Some(3));
        let text = std::fs::read_to_string(&text_path).unwrap();
        assert_eq!(text, transcript.to_string());
        assert!(text.contains("> 0020000003******\n< 9000\n") && !text.contains("123456"));
        let error =
            write_transcript(&dir.join("missing").join("run.txt"), &transcript).unwrap_err();
        assert!(error.to_string().starts_with("cannot write "), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
