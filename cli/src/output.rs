//! What commands print: one record (an object of named fields) or a list of records, written
//! as a single line of JSON with `--json` and as an aligned table otherwise.
//!
//! Field names are snake_case; byte strings are upper-case hex in both forms. The table labels
//! are the field names with `_per_` shown as `/` and `_` as a space (`ops_per_s` → `ops/s`).

use crate::error::Result;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::io::Write;
use std::process::ExitCode;

/// One field value. No `Debug`: values may be keys the calculator was asked to show, and are
/// written nowhere but the requested output.
pub enum Value {
    /// A byte string, shown as upper-case hex.
    Hex(Vec<u8>),
    /// Text.
    Text(String),
    /// A whole number (table: with thousands separators).
    Count(u64),
    /// A real number (table: two decimals).
    Decimal(f64),
    /// A yes/no answer (table: `yes` / `no`).
    Flag(bool),
    /// No value (JSON `null`, table `-`).
    Missing,
    /// Several values (JSON array; table: the values joined by `, `, `-` when empty).
    List(Vec<Value>),
    /// Several records with the same fields (JSON array of objects; in the table of a record,
    /// a table of their own after the record's fields).
    Records(Vec<Record>),
}

impl<const N: usize> From<[u8; N]> for Value {
    fn from(bytes: [u8; N]) -> Self {
        Self::Hex(bytes.to_vec())
    }
}

impl From<&[u8]> for Value {
    fn from(bytes: &[u8]) -> Self {
        Self::Hex(bytes.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Hex(bytes)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Self::Text(text.to_string())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Self::Count(n)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Self::Decimal(x)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Self::Flag(flag)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Missing, Into::into)
    }
}

impl Value {
    /// A list of values.
    pub fn list<T: Into<Value>>(values: impl IntoIterator<Item = T>) -> Self {
        Self::List(values.into_iter().map(Into::into).collect())
    }

    fn cell(&self) -> String {
        match self {
            Self::Hex(bytes) => hex::encode_upper(bytes),
            Self::Text(text) => text.clone(),
            Self::Count(n) => thousands(*n),
            Self::Decimal(x) => format!("{x:.2}"),
            Self::Flag(flag) => if *flag { "yes" } else { "no" }.to_string(),
            Self::Missing => "-".to_string(),
            Self::List(values) if values.is_empty() => "-".to_string(),
            Self::List(values) => values
                .iter()
                .map(Value::cell)
                .collect::<Vec<_>>()
                .join(", "),
            Self::Records(records) => format!("{} rows", records.len()),
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(self, Self::Count(_) | Self::Decimal(_))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Hex(bytes) => serializer.serialize_str(&hex::encode_upper(bytes)),
            Self::Text(text) => serializer.serialize_str(text),
            Self::Count(n) => serializer.serialize_u64(*n),
            Self::Decimal(x) if x.is_finite() => serializer.serialize_f64(*x),
            Self::Flag(flag) => serializer.serialize_bool(*flag),
            Self::Decimal(_) | Self::Missing => serializer.serialize_none(),
            Self::List(values) => serializer.collect_seq(values),
            Self::Records(records) => serializer.collect_seq(records),
        }
    }
}

/// `n` with a comma every three digits.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The table label of a field name.
fn label(name: &str) -> String {
    name.replace("_per_", "/").replace('_', " ")
}

/// Named fields in the order they are printed.
#[derive(Default)]
pub struct Record {
    fields: Vec<(&'static str, Value)>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field.
    pub fn with(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.fields.push((name, value.into()));
        self
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (name, value) in &self.fields {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The result of a command.
pub enum Output {
    /// One record: a JSON object, a two-column table of labels and values.
    Record(Record),
    /// Several records with the same fields: a JSON array, a table with one row each.
    List(Vec<Record>),
    /// Lines of JSON text, one object each, printed as they are with or without `--json`
    /// (exports meant for other programs).
    JsonLines(Vec<String>),
}

impl Serialize for Output {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Record(record) => record.serialize(serializer),
            Self::List(records) => {
                let mut seq = serializer.serialize_seq(Some(records.len()))?;
                records
                    .iter()
                    .try_for_each(|record| seq.serialize_element(record))?;
                seq.end()
            }
            Self::JsonLines(lines) => serializer.collect_seq(
                lines
                    .iter()
                    .map(|line| serde_json::from_str::<serde_json::Value>(line).ok()),
            ),
        }
    }
}

impl Output {
    /// The readable form: aligned columns, numbers right-aligned; a list has a header row.
    pub fn table(&self) -> String {
        match self {
            Self::Record(record) => {
                let mut out = render(
                    record
                        .fields
                        .iter()
                        .filter(|(_, value)| !matches!(value, Value::Records(_)))
                        .map(|(name, value)| {
                            vec![Cell::text(label(name)), Cell::text(value.cell())]
                        })
                        .collect(),
                    false,
                );
                for (name, value) in &record.fields {
                    if let Value::Records(records) = value {
                        out += &format!("\n{}:\n", label(name));
                        out += &if records.is_empty() {
                            "(none)\n".to_string()
                        } else {
                            list_table(records)
                        };
                    }
                }
                out
            }
            Self::List(records) => list_table(records),
            Self::JsonLines(lines) => lines.iter().map(|line| format!("{line}\n")).collect(),
        }
    }

    /// The text printed: the table, or one line of JSON with `json`; JSON lines as they are.
    fn text(&self, json: bool) -> serde_json::Result<String> {
        match self {
            Self::JsonLines(_) => Ok(self.table()),
            _ if json => Ok(serde_json::to_string(self)? + "\n"),
            _ => Ok(self.table()),
        }
    }
}

/// A table of records with a header row.
fn list_table(records: &[Record]) -> String {
    let header = records.first().map(|first| {
        first
            .fields
            .iter()
            .map(|(name, _)| Cell::text(label(name)))
            .collect()
    });
    let rows = records
        .iter()
        .map(|record| record.fields.iter().map(|(_, v)| Cell::value(v)).collect());
    render(header.into_iter().chain(rows).collect(), true)
}

/// One table cell.
struct Cell {
    text: String,
    numeric: bool,
}

impl Cell {
    fn text(text: String) -> Self {
        Self {
            text,
            numeric: false,
        }
    }

    fn value(value: &Value) -> Self {
        Self {
            text: value.cell(),
            numeric: value.is_numeric(),
        }
    }
}

/// Aligns `rows` in columns two spaces apart, right-aligning the columns that hold numbers;
/// with `header`, a rule follows the first row.
fn render(rows: Vec<Vec<Cell>>, header: bool) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    let mut numeric = vec![false; columns];
    for row in &rows {
        for (j, cell) in row.iter().enumerate() {
            widths[j] = widths[j].max(cell.text.chars().count());
            numeric[j] |= cell.numeric;
        }
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(j, cell)| {
                let (text, width) = (&cell.text, widths[j]);
                if numeric[j] {
                    format!("{text:>width$}")
                } else {
                    format!("{text:<width$}")
                }
            })
            .collect();
        out += cells.join("  ").trim_end();
        out.push('\n');
        if header && i == 0 {
            out += &widths
                .iter()
                .map(|&w| "-".repeat(w))
                .collect::<Vec<_>>()
                .join("  ");
            out.push('\n');
        }
    }
    out
}

/// An output and whether the command succeeded (a signature that does not verify, a failed
/// self-test: printed normally, exit status 1).
pub struct Report {
    output: Output,
    success: bool,
}

impl Report {
    /// A successful result.
    pub fn ok(output: Output) -> Self {
        Self {
            output,
            success: true,
        }
    }

    /// A result that is a success only if `success`.
    pub fn with_status(output: Output, success: bool) -> Self {
        Self { output, success }
    }

    /// Writes the output to standard output (JSON if `json`) and gives the exit status.
    pub fn print(&self, json: bool) -> Result<ExitCode> {
        let text = self.output.text(json).map_err(std::io::Error::from)?;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
        Ok(if self.success {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_field_order_and_encodes_bytes_as_upper_hex() {
        let record = Record::new()
            .with("mac", [0xab, 0x01])
            .with("valid", true)
            .with("failure", None::<String>);
        assert_eq!(
            serde_json::to_string(&Output::Record(record)).unwrap(),
            r#"{"mac":"AB01","valid":true,"failure":null}"#
        );
    }

    #[test]
    fn tables_align_columns_and_label_fields() {
        let rows = vec![
            Record::new()
                .with("item", "a")
                .with("ops_per_s", 1_234_567u64),
            Record::new().with("item", "longer").with("ops_per_s", 5u64),
        ];
        assert_eq!(
            Output::List(rows).table(),
            "item        ops/s\n------  ---------\na       1,234,567\nlonger          5\n"
        );
        let record = Record::new()
            .with("session_key", [0x11; 2])
            .with("tac", None::<u64>);
        assert_eq!(
            Output::Record(record).table(),
            "session key  1111\ntac          -\n"
        );
    }
}
