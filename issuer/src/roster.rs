//! Rosters: the list of card holders a card centre uploads before a batch is issued.
//!
//! A roster is a CSV file (UTF-8, RFC 4180 quoting, an optional byte-order mark) or an XLSX
//! workbook (its first worksheet). The first non-empty row is the header; the columns are
//! found by their header, in any order, in English or in Chinese (case and surrounding spaces
//! do not matter):
//!
//! | column | also | content |
//! | --- | --- | --- |
//! | `name` | `姓名` | the holder's name, 1 to 30 bytes of UTF-8 (it fills a 30-byte card field) |
//! | `number` | `学号`, `工号`, `学工号` | the student or staff number, 1 to 16 ASCII letters or digits |
//! | `id_number` | `身份证号` | the 18-character resident ID number (GB 11643-1999), check character verified |
//! | `card_type` | `卡类型` | `student`, `staff` or `temporary` (`学生`, `教职工`/`教师`/`职工`, `临时`) |
//! | `school` | `学校代码`, `学校标识码` | the school's 10-digit identification code |
//! | `expiry` | `有效期` | optional: `YYYY-MM-DD` or `YYYYMMDD` (or a spreadsheet date), or empty |
//!
//! All but `expiry` are required. A roster is checked whole before any card is touched: every
//! faulty cell of every row is reported as a [`RowError`] with its spreadsheet row number (the
//! header is row 1), and nothing is returned unless every row is valid. Rows whose cells are all
//! blank are skipped. Within one roster a (school, number) pair and a (school, ID number, card
//! type) triple may each appear only once. A roster holds at most [`MAX_ROWS`] card holders and
//! its file at most [`MAX_FILE_BYTES`] bytes.

use std::collections::HashMap;
use std::fmt;
use std::io::{Cursor, Read};
use std::path::Path;
use std::str::FromStr;

use calamine::{DataRef, Reader, SheetType, Xlsx};
use serde::{Deserialize, Serialize};

use ykt_apdu::pboc::Date;

use crate::error::{IssueError, Result, RowError};

/// The most card holders (non-empty rows below the header) one roster may list.
pub const MAX_ROWS: usize = 100_000;

/// The largest roster file accepted, in bytes (32 MiB).
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;

/// The most bytes the parts of an XLSX workbook may unpack to, all parts together.
const MAX_UNPACKED_BYTES: u64 = 256 * 1024 * 1024;

/// The most parts an XLSX package may hold.
const MAX_PACKAGE_PARTS: usize = 10_000;

/// The most distinct strings an XLSX workbook may declare in its shared-string table.
const MAX_SHARED_STRINGS: u64 = 1_000_000;

/// The most non-empty cells a header row may hold.
const MAX_HEADER_CELLS: usize = 256;

/// Cells longer than this are not kept: no valid value comes near it.
const MAX_CELL_BYTES: usize = 1024;

/// The longest a name may be, in bytes of UTF-8: the size of the card's name field.
const MAX_NAME_BYTES: usize = 30;

/// The longest a student or staff number may be.
const MAX_NUMBER_LEN: usize = 16;

/// What a card is issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CardType {
    /// A student's card (`student`, `学生`), card type code 01.
    Student,
    /// A member of staff's card (`staff`, `教职工`, `教师`, `职工`), card type code 02.
    Staff,
    /// A temporary card (`temporary`, `临时`), card type code 03.
    Temporary,
}

impl CardType {
    /// Every card type, in code order.
    pub const ALL: [CardType; 3] = [CardType::Student, CardType::Staff, CardType::Temporary];

    /// The card type code written to the card: 01 student, 02 staff, 03 temporary.
    pub fn code(self) -> u8 {
        match self {
            CardType::Student => 0x01,
            CardType::Staff => 0x02,
            CardType::Temporary => 0x03,
        }
    }

    /// The English name: `student`, `staff` or `temporary`.
    pub fn name(self) -> &'static str {
        match self {
            CardType::Student => "student",
            CardType::Staff => "staff",
            CardType::Temporary => "temporary",
        }
    }
}

impl fmt::Display for CardType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A card type name that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCardTypeError(String);

impl fmt::Display for ParseCardTypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown card type \"{}\"; expected student, staff or temporary \
             (学生, 教职工, 教师, 职工, 临时)",
            shown(&self.0)
        )
    }
}

impl std::error::Error for ParseCardTypeError {}

impl FromStr for CardType {
    type Err = ParseCardTypeError;

    /// Reads an English name (any case) or a Chinese one; surrounding spaces are ignored.
    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        let text = text.trim();
        let english = CardType::ALL
            .into_iter()
            .find(|card_type| card_type.name().eq_ignore_ascii_case(text));
        if let Some(card_type) = english {
            return Ok(card_type);
        }
        match text {
            "学生" => Ok(CardType::Student),
            "教职工" | "教师" | "职工" => Ok(CardType::Staff),
            "临时" => Ok(CardType::Temporary),
            _ => Err(ParseCardTypeError(text.to_owned())),
        }
    }
}

/// One valid card holder of a roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterRow {
    /// The row number in the roster file (the header is row 1).
    pub row: usize,
    /// The holder's name, trimmed: 1 to 30 bytes of UTF-8, no control characters.
    pub name: String,
    /// The student or staff number: 1 to 16 ASCII letters or digits.
    pub number: String,
    /// The 18-character resident ID number, its check character upper case.
    pub id_number: String,
    /// What the card is for.
    pub card_type: CardType,
    /// The school's 10-digit identification code.
    pub school: String,
    /// The card's expiry date as `YYYYMMDD`, when the roster gives one.
    pub expiry: Option<String>,
}

/// Reads a roster file, `.csv` or `.xlsx` by its extension (in any case), and checks it whole.
///
/// A file of another type, one too large, or one whose rows do not all check is refused with
/// [`IssueError::Roster`]; a file that cannot be read with [`IssueError::Io`].
pub fn read_roster(path: &Path) -> Result<Vec<RosterRow>> {
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    let parse: fn(&[u8]) -> Result<Vec<RosterRow>> = match extension.as_deref() {
        Some("csv") => parse_csv,
        Some("xlsx") => parse_xlsx,
        Some("xls") => {
            return Err(file_error(
                "unsupported file type .xls (the old Excel format); save the roster as .xlsx \
                 or as CSV UTF-8",
            ));
        }
        other => {
            let found = other.map_or_else(|| "no extension".to_owned(), |e| format!(".{e}"));
            return Err(file_error(format!(
                "unsupported file type ({}); a roster is a .csv or an .xlsx file",
                shown(&found)
            )));
        }
    };
    let io_error = |source| IssueError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let limit = MAX_FILE_BYTES as u64;
    if file.metadata().map_err(io_error)?.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    parse(&bytes)
}

/// Parses and checks a CSV roster: UTF-8 (with or without a byte-order mark), comma-separated,
/// RFC 4180 quoting.
pub fn parse_csv(text: &[u8]) -> Result<Vec<RosterRow>> {
    if text.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    if text.starts_with(&[0xFF, 0xFE]) || text.starts_with(&[0xFE, 0xFF]) {
        return Err(file_error(
            "the file is UTF-16 text; save the roster as CSV UTF-8",
        ));
    }
    let body = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut record = csv::ByteRecord::new();
    let mut roster = Collector::default();
    // The reader skips blank lines; counting them keeps the row numbers a spreadsheet shows.
    let mut next_row = 1usize;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                return Err(IssueError::Roster(vec![RowError {
                    row: next_row,
                    column: None,
                    reason: format!("unreadable CSV: {error}"),
                }]));
            }
        }
        let start = record.position().map_or(0, csv::Position::byte);
        let row = next_row.saturating_add(blank_lines(body, start));
        next_row = row.saturating_add(1);

        let mut cells = RowCells::default();
        for (index, field) in record.iter().enumerate() {
            let column = u32::try_from(index).unwrap_or(u32::MAX);
            let Ok(text) = std::str::from_utf8(field) else {
                return Err(IssueError::Roster(vec![RowError {
                    row,
                    column: roster.column_name(column),
                    reason: "the file is not UTF-8 text (a CSV saved as GBK?); save the \
                             roster as CSV UTF-8"
                        .to_owned(),
                }]));
            };
            roster.add_cell(&mut cells, column, Cell::text(text));
        }
        roster.row(row, cells)?;
    }
    roster.finish()
}

/// How many blank lines the CSV reader skipped when it read a record from `start` on: the line
/// ends (CR LF, LF or CR) there before the record's first field. The LF of a CR LF whose CR
/// ended the record before is no line of its own.
fn blank_lines(body: &[u8], start: u64) -> usize {
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(body.len());
    let mut blank = 0usize;
    for (at, &byte) in body.iter().enumerate().skip(start) {
        match byte {
            b'\r' => blank += 1,
            b'\n' if at == 0 || body[at - 1] != b'\r' => blank += 1,
            b'\n' => {}
            _ => break,
        }
    }
    blank
}

/// Parses and checks an XLSX roster: the first worksheet of the workbook.
pub fn parse_xlsx(bytes: &[u8]) -> Result<Vec<RosterRow>> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    check_package(bytes)?;
    let mut workbook = Xlsx::new(Cursor::new(bytes))
        .map_err(|error| file_error(format!("not a readable XLSX workbook: {error}")))?;
    let is_1904 = workbook.has_1904_epoch();
    let sheet = workbook
        .sheets_metadata()
        .iter()
        .find(|sheet| sheet.typ == SheetType::WorkSheet)
        .map(|sheet| sheet.name.clone())
        .ok_or_else(|| file_error("the workbook has no worksheet"))?;
    let unreadable = |error: calamine::XlsxError| {
        file_error(format!(
            "unreadable worksheet \"{}\": {error}",
            shown(&sheet)
        ))
    };
    let mut reader = workbook
        .worksheet_cells_reader(&sheet)
        .map_err(unreadable)?;

    let mut roster = Collector::default();
    // The row being read (0-based, as the worksheet numbers them) and its cells.
    let mut current: Option<(u32, RowCells)> = None;
    while let Some(cell) = reader.next_cell().map_err(unreadable)? {
        let (row, column) = cell.get_position();
        let value = Cell::from_xlsx(cell.get_value(), is_1904);
        let cells = match &mut current {
            Some((current_row, cells)) if *current_row == row => cells,
            Some((current_row, _)) if *current_row > row => {
                return Err(file_error(format!(
                    "the worksheet lists row {} after row {}; open the roster in a \
                     spreadsheet and save it again",
                    spreadsheet_row(row),
                    spreadsheet_row(*current_row)
                )));
            }
            _ => {
                if let Some((done, cells)) = current.take() {
                    roster.row(spreadsheet_row(done), cells)?;
                }
                &mut current.insert((row, RowCells::default())).1
            }
        };
        roster.add_cell(cells, column, value);
    }
    if let Some((row, cells)) = current {
        roster.row(spreadsheet_row(row), cells)?;
    }
    roster.finish()
}

/// Checks the ZIP package of an XLSX workbook before it is opened: how many parts it has, how
/// much they unpack to, and how many shared strings it declares, so that a small file cannot
/// make the reader allocate without bound.
fn check_package(bytes: &[u8]) -> Result<()> {
    let not_xlsx = |error: zip::result::ZipError| {
        file_error(format!("not an XLSX workbook (not a ZIP package): {error}"))
    };
    let mut package = zip::ZipArchive::new(Cursor::new(bytes)).map_err(not_xlsx)?;
    if package.len() > MAX_PACKAGE_PARTS {
        return Err(file_error(format!(
            "the workbook has {} parts; at most {MAX_PACKAGE_PARTS} are read",
            package.len()
        )));
    }
    let mut unpacked = 0u64;
    let mut shared_strings = Vec::new();
    for index in 0..package.len() {
        let part = package.by_index_raw(index).map_err(not_xlsx)?;
        unpacked = unpacked.saturating_add(part.size());
        let name = part.name().map_err(not_xlsx)?.replace('\\', "/");
        let name = name.to_ascii_lowercase();
        if name.ends_with("sharedstrings.xml") {
            shared_strings.push(index);
        }
    }
    if unpacked > MAX_UNPACKED_BYTES {
        return Err(file_error(format!(
            "the workbook unpacks to {unpacked} bytes; at most {MAX_UNPACKED_BYTES} are read"
        )));
    }
    for index in shared_strings {
        let mut xml = Vec::new();
        // The reader stops at the part's declared size, which is bounded above.
        package
            .by_index(index)
            .and_then(|mut part| part.read_to_end(&mut xml).map_err(Into::into))
            .map_err(|error| file_error(format!("unreadable workbook part: {error}")))?;
        check_shared_string_counts(&xml)?;
    }
    Ok(())
}

/// Refuses a shared-string table that declares more strings than a roster can hold, or a
/// count that is not a plain decimal number. (The count is looked for wherever it may be: a
/// stray match in a string's text is not followed by `=`.)
fn check_shared_string_counts(xml: &[u8]) -> Result<()> {
    const KEY: &[u8] = b"uniqueCount";
    let refused = || file_error("the workbook's shared-string table declares an unusable count");
    let mut rest = xml;
    while let Some(found) = find(rest, KEY) {
        rest = &rest[found + KEY.len()..];
        let Some(value) = rest.trim_ascii_start().strip_prefix(b"=") else {
            continue;
        };
        let value = value.trim_ascii_start();
        let Some((&quote, value)) = value.split_first() else {
            return Err(refused());
        };
        let end = value.iter().position(|&b| b == quote);
        let (Some(end), b'"' | b'\'') = (end, quote) else {
            return Err(refused());
        };
        let digits = &value[..end];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(refused());
        }
        let count = digits.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        if count.is_none_or(|count| count > MAX_SHARED_STRINGS) {
            return Err(file_error(format!(
                "the workbook declares more than {MAX_SHARED_STRINGS} distinct strings"
            )));
        }
    }
    Ok(())
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The columns of a roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Name,
    Number,
    IdNumber,
    CardType,
    School,
    Expiry,
}

impl Column {
    const ALL: [Column; 6] = [
        Column::Name,
        Column::Number,
        Column::IdNumber,
        Column::CardType,
        Column::School,
        Column::Expiry,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The header names that mean this column, English first.
    fn headers(self) -> &'static [&'static str] {
        match self {
            Column::Name => &["name", "姓名"],
            Column::Number => &["number", "学号", "工号", "学工号"],
            Column::IdNumber => &["id_number", "身份证号"],
            Column::CardType => &["card_type", "卡类型"],
            Column::School => &["school", "学校代码", "学校标识码"],
            Column::Expiry => &["expiry", "有效期"],
        }
    }

    fn required(self) -> bool {
        self != Column::Expiry
    }

    fn from_header(header: &str) -> Option<Column> {
        let header = header.trim().to_lowercase();
        Column::ALL
            .into_iter()
            .find(|column| column.headers().contains(&header.as_str()))
    }

    fn describe(self) -> String {
        let headers = self.headers();
        format!("{} ({})", headers[0], headers[1..].join(", "))
    }
}

/// The date of a spreadsheet serial date number (its time of day ignored), for dates from
/// 1900 to 9999.
///
/// In the 1900 date system day 1 is 1900-01-01 and day 60 the 1900-02-29 that never was; in
/// the 1904 date system day 0 is 1904-01-01.
fn date_of_serial(serial: f64, is_1904: bool) -> Option<Date> {
    // 9999-12-31 is day 2958465 of the 1900 system.
    if !serial.is_finite() || !(0.0..2_958_466.0).contains(&serial) {
        return None;
    }
    // Finite and in range: the cast is exact.
    let day = serial.floor() as i64;
    // From 1970-01-01 back to 1904-01-01, to 1899-12-31 and to 1899-12-30.
    let unix_days = if is_1904 {
        day - 24_107
    } else if day == 0 || day == 60 {
        return None;
    } else if day < 60 {
        day - 25_568
    } else {
        day - 25_569
    };
    let (year, month, day) = Date::from_unix_days(unix_days).ymd();
    Date::new(year, month, day)
}

/// One cell as read from the file.
#[derive(Debug, Clone, PartialEq, Default)]
enum Cell {
    #[default]
    Empty,
    Text(String),
    /// A spreadsheet number.
    Number(f64),
    /// A spreadsheet date.
    Date(Date),
    /// A spreadsheet date and time in ISO 8601 form.
    IsoDate(String),
    /// A cell no column accepts, and why.
    Unusable(String),
}

impl Cell {
    fn text(text: &str) -> Cell {
        if text.len() > MAX_CELL_BYTES {
            Cell::Unusable(format!(
                "{} bytes long, far longer than any value",
                text.len()
            ))
        } else if text.trim().is_empty() {
            Cell::Empty
        } else {
            Cell::Text(text.to_owned())
        }
    }

    fn from_xlsx(value: &DataRef<'_>, is_1904: bool) -> Cell {
        match value {
            DataRef::Empty => Cell::Empty,
            DataRef::String(text) => Cell::text(text),
            DataRef::SharedString(text) => Cell::text(text),
            DataRef::Int(number) => Cell::Number(*number as f64),
            DataRef::Float(number) => Cell::Number(*number),
            DataRef::Bool(value) => Cell::Text(if *value { "TRUE" } else { "FALSE" }.to_owned()),
            DataRef::DateTime(date) if date.is_duration() => {
                Cell::Unusable("a duration, not a value of this column".to_owned())
            }
            DataRef::DateTime(date) => match date_of_serial(date.as_f64(), is_1904) {
                Some(date) => Cell::Date(date),
                None => Cell::Unusable(format!(
                    "a spreadsheet date out of range (serial number {})",
                    date.as_f64()
                )),
            },
            DataRef::DateTimeIso(text) => {
                if text.len() > MAX_CELL_BYTES {
                    Cell::Unusable("an overlong date".to_owned())
                } else {
                    Cell::IsoDate(text.clone())
                }
            }
            DataRef::DurationIso(_) => {
                Cell::Unusable("a duration, not a value of this column".to_owned())
            }
            DataRef::Error(error) => {
                Cell::Unusable(format!("the cell holds the spreadsheet error {error}"))
            }
        }
    }

    fn is_blank(&self) -> bool {
        matches!(self, Cell::Empty)
    }

    /// The cell as text, trimmed; `None` when blank.
    fn as_text(&self) -> std::result::Result<Option<String>, String> {
        match self {
            Cell::Empty => Ok(None),
            Cell::Text(text) => Ok(Some(text.trim().to_owned())),
            Cell::Number(number) => Ok(Some(number_text(*number))),
            Cell::Date(_) | Cell::IsoDate(_) => {
                Err("a date, not a value of this column; format the column as text".to_owned())
            }
            Cell::Unusable(reason) => Err(reason.clone()),
        }
    }

    /// The cell as text, trimmed, which must not be blank.
    fn required_text(&self) -> std::result::Result<String, String> {
        self.as_text()?
            .ok_or_else(|| "required, but the cell is empty".to_owned())
    }

    fn is_number(&self) -> bool {
        matches!(self, Cell::Number(_))
    }
}

/// A spreadsheet number as the digits a person typed: whole numbers without a fraction.
fn number_text(number: f64) -> String {
    if number.is_finite() && number.fract() == 0.0 && number.abs() < 9_007_199_254_740_992.0 {
        // Whole and within the exactly representable range: the cast is exact.
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

const NUMBER_HINT: &str = " (a spreadsheet number loses leading zeros: format the column as text)";

fn check_name(cell: &Cell) -> std::result::Result<String, String> {
    let name = cell.required_text()?;
    if let Some(control) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "contains the control character U+{:04X}",
            u32::from(control)
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{} bytes in UTF-8; the card's name field holds at most {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    Ok(name)
}

fn check_number(cell: &Cell) -> std::result::Result<String, String> {
    let number = cell.required_text()?;
    if number.len() > MAX_NUMBER_LEN || !number.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "\"{}\" is not 1 to {MAX_NUMBER_LEN} ASCII letters or digits",
            shown(&number)
        ));
    }
    Ok(number)
}

/// The weights of the 17 digits of a resident ID number (ISO 7064 MOD 11-2).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The check character (`0`-`9` or `X`) of the first 17 digits (ASCII) of a resident ID
/// number (GB 11643-1999).
pub fn id_check_character(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(&digit, weight)| u32::from(digit.wrapping_sub(b'0')) * weight)
        .sum();
    b"10X98765432"[(sum % 11) as usize]
}

fn check_id_number(cell: &Cell) -> std::result::Result<String, String> {
    if cell.is_number() {
        return Err(
            "stored as a number, which a spreadsheet cannot keep to 18 digits; format the \
             column as text and enter the ID number again"
                .to_owned(),
        );
    }
    // The number itself is never repeated in a reason: a roster's errors are shown and logged.
    let id = cell.required_text()?.to_ascii_uppercase();
    if !id.is_ascii() {
        return Err("a resident ID number is 17 digits and a digit or X".to_owned());
    }
    if id.len() != 18 {
        return Err(format!(
            "{} characters; a resident ID number has 18",
            id.chars().count()
        ));
    }
    let (digits, check) = id.as_bytes().split_at(17);
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err("the first 17 characters of a resident ID number are digits".to_owned());
    }
    let check = check[0];
    if !check.is_ascii_digit() && check != b'X' {
        return Err("the 18th character of a resident ID number is a digit or X".to_owned());
    }
    let birth = std::str::from_utf8(&digits[6..14])
        .ok()
        .and_then(Date::parse);
    if birth.is_none_or(|birth| birth.ymd().0 < 1800) {
        return Err("characters 7 to 14 are not a real date of birth".to_owned());
    }
    let expected = id_check_character(digits);
    if check != expected {
        return Err(format!(
            "the check character is {}, but the other digits give {}: a digit is wrong",
            char::from(check),
            char::from(expected)
        ));
    }
    Ok(id)
}

fn check_card_type(cell: &Cell) -> std::result::Result<CardType, String> {
    cell.required_text()?
        .parse()
        .map_err(|error: ParseCardTypeError| error.to_string())
}

fn check_school(cell: &Cell) -> std::result::Result<String, String> {
    let school = cell.required_text()?;
    if school.len() != 10 || !school.bytes().all(|b| b.is_ascii_digit()) {
        let hint = if cell.is_number() { NUMBER_HINT } else { "" };
        return Err(format!(
            "\"{}\" is not a 10-digit school identification code{hint}",
            shown(&school)
        ));
    }
    Ok(school)
}

fn check_expiry(cell: &Cell) -> std::result::Result<Option<String>, String> {
    let text = match cell {
        Cell::Empty => return Ok(None),
        Cell::Date(date) => return Ok(Some(date.to_string())),
        Cell::IsoDate(text) => {
            let date = text.split('T').next().unwrap_or_default();
            return Date::parse(date)
                .map(|date| Some(date.to_string()))
                .ok_or_else(|| format!("\"{}\" is not a real date", shown(text)));
        }
        other => match other.as_text()? {
            Some(text) => text,
            None => return Ok(None),
        },
    };
    let well_formed = match text.len() {
        8 => text.bytes().all(|b| b.is_ascii_digit()),
        10 => text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        }),
        _ => false,
    };
    if !well_formed {
        return Err(format!(
            "\"{}\" is not a date written YYYY-MM-DD or YYYYMMDD",
            shown(&text)
        ));
    }
    Date::parse(&text)
        .map(|date| Some(date.to_string()))
        .ok_or_else(|| format!("\"{}\" is not a real date", shown(&text)))
}

/// The header row: which file column holds which roster column.
#[derive(Debug)]
struct Header {
    /// File column → roster column; `None` for a column the header row was refused for.
    slots: HashMap<u32, Option<Column>>,
    /// Each roster column's header as the file writes it.
    names: [Option<String>; 6],
}

/// The non-blank cells of one row of the file, as much of them as a check needs.
#[derive(Debug, Default)]
struct RowCells {
    /// File column and cell: every cell of the header row, the roster columns' cells of a
    /// data row.
    cells: Vec<(u32, Cell)>,
    /// The leftmost column of a data row with a value under no header.
    stray: Option<u32>,
    /// A header row with more cells than a header has.
    too_wide: bool,
}

/// Checks rows one by one and remembers what the roster as a whole needs.
#[derive(Debug, Default)]
struct Collector {
    header: Option<Header>,
    rows: Vec<RosterRow>,
    errors: Vec<RowError>,
    holders: usize,
    by_number: HashMap<(String, String), usize>,
    by_identity: HashMap<(String, String, CardType), usize>,
}

impl Collector {
    /// The header name of a file column, once the header is known.
    fn column_name(&self, column: u32) -> Option<String> {
        let header = self.header.as_ref()?;
        let roster_column = (*header.slots.get(&column)?)?;
        header.names[roster_column.index()].clone()
    }

    /// Adds a cell to its row, keeping no more than the row's check needs: blank cells and
    /// cells under a refused header are dropped, a later cell at the same place replaces an
    /// earlier one.
    fn add_cell(&self, row: &mut RowCells, column: u32, cell: Cell) {
        if cell.is_blank() || row.too_wide {
            return;
        }
        match self.header.as_ref().map(|header| header.slots.get(&column)) {
            None | Some(Some(Some(_))) => {
                if let Some(place) = row.cells.iter_mut().find(|(c, _)| *c == column) {
                    place.1 = cell;
                } else if row.cells.len() < MAX_HEADER_CELLS {
                    row.cells.push((column, cell));
                } else {
                    row.too_wide = true;
                }
            }
            Some(Some(None)) => {}
            Some(None) => row.stray = Some(row.stray.map_or(column, |s| s.min(column))),
        }
    }

    /// Takes one row of the file: the header while there is none, a card holder after it.
    fn row(&mut self, row: usize, cells: RowCells) -> Result<()> {
        if cells.cells.is_empty() && cells.stray.is_none() && !cells.too_wide {
            return Ok(());
        }
        if self.header.is_none() {
            return self.read_header(row, cells);
        }
        self.holders += 1;
        if self.holders > MAX_ROWS {
            return Err(IssueError::Roster(vec![RowError {
                row,
                column: None,
                reason: format!(
                    "the roster lists more than {MAX_ROWS} card holders; split it into \
                     several files"
                ),
            }]));
        }
        self.holder(row, cells);
        Ok(())
    }

    fn read_header(&mut self, row: usize, mut cells: RowCells) -> Result<()> {
        if cells.too_wide {
            return Err(IssueError::Roster(vec![RowError {
                row,
                column: None,
                reason: format!(
                    "the header row has more than {MAX_HEADER_CELLS} cells; a roster header \
                     has at most 6"
                ),
            }]));
        }
        cells.cells.sort_by_key(|(column, _)| *column);
        let mut slots = HashMap::new();
        let mut names: [Option<String>; 6] = Default::default();
        let mut places: [Option<u32>; 6] = [None; 6];
        let mut errors = Vec::new();
        let mut fatal = false;
        for (column, cell) in cells.cells {
            let text = match &cell {
                Cell::Text(text) => text.trim().to_owned(),
                Cell::Number(number) => number_text(*number),
                Cell::Date(date) => date.to_string(),
                Cell::IsoDate(text) => text.clone(),
                Cell::Unusable(_) | Cell::Empty => String::new(),
            };
            let name = shown(&text);
            match Column::from_header(&text) {
                Some(roster_column) => {
                    if let Some(first) = places[roster_column.index()] {
                        errors.push(RowError {
                            row,
                            column: Some(name),
                            reason: format!(
                                "a second {} column (the first is column {})",
                                roster_column.describe(),
                                column_letters(first)
                            ),
                        });
                        fatal = true;
                        slots.insert(column, None);
                    } else {
                        places[roster_column.index()] = Some(column);
                        names[roster_column.index()] = Some(name);
                        slots.insert(column, Some(roster_column));
                    }
                }
                None => {
                    errors.push(RowError {
                        row,
                        column: Some(name),
                        reason: format!(
                            "unknown column (column {}); a roster's columns are name, number, \
                             id_number, card_type, school and expiry, or their Chinese names",
                            column_letters(column)
                        ),
                    });
                    slots.insert(column, None);
                }
            }
        }
        for roster_column in Column::ALL {
            if roster_column.required() && places[roster_column.index()].is_none() {
                errors.push(RowError {
                    row,
                    column: None,
                    reason: format!("the header has no {} column", roster_column.describe()),
                });
                fatal = true;
            }
        }
        if fatal {
            return Err(IssueError::Roster(errors));
        }
        self.errors.extend(errors);
        self.header = Some(Header { slots, names });
        Ok(())
    }

    fn holder(&mut self, row: usize, cells: RowCells) {
        let Some(header) = &self.header else {
            return;
        };
        let mut values: [Cell; 6] = Default::default();
        for (column, cell) in cells.cells {
            if let Some(Some(roster_column)) = header.slots.get(&column) {
                values[roster_column.index()] = cell;
            }
        }
        let mut errors = Vec::new();
        if let Some(column) = cells.stray {
            errors.push(RowError {
                row,
                column: None,
                reason: format!(
                    "a value in column {}, which has no header",
                    column_letters(column)
                ),
            });
        }
        let mut fail = |roster_column: Column, reason: String| {
            errors.push(RowError {
                row,
                column: header.names[roster_column.index()].clone(),
                reason,
            });
        };
        let value = |roster_column: Column| &values[roster_column.index()];
        let name = check_name(value(Column::Name)).map_err(|r| fail(Column::Name, r));
        let number = check_number(value(Column::Number)).map_err(|r| fail(Column::Number, r));
        let id_number =
            check_id_number(value(Column::IdNumber)).map_err(|r| fail(Column::IdNumber, r));
        let card_type =
            check_card_type(value(Column::CardType)).map_err(|r| fail(Column::CardType, r));
        let school = check_school(value(Column::School)).map_err(|r| fail(Column::School, r));
        let expiry = check_expiry(value(Column::Expiry)).map_err(|r| fail(Column::Expiry, r));

        if let (Ok(school), Ok(number)) = (&school, &number) {
            let key = (school.clone(), number.to_ascii_uppercase());
            if let Some(&first) = self.by_number.get(&key) {
                fail(
                    Column::Number,
                    format!("school {school} already has number {number}, in row {first}"),
                );
            } else {
                self.by_number.insert(key, row);
            }
        }
        if let (Ok(school), Ok(id_number), Ok(card_type)) = (&school, &id_number, &card_type) {
            let key = (school.clone(), id_number.clone(), *card_type);
            if let Some(&first) = self.by_identity.get(&key) {
                fail(
                    Column::IdNumber,
                    format!(
                        "this person already has a {card_type} card of school {school}, in \
                         row {first}"
                    ),
                );
            } else {
                self.by_identity.insert(key, row);
            }
        }
        if let (Ok(name), Ok(number), Ok(id_number), Ok(card_type), Ok(school), Ok(expiry)) =
            (name, number, id_number, card_type, school, expiry)
            && errors.is_empty()
        {
            self.rows.push(RosterRow {
                row,
                name,
                number,
                id_number,
                card_type,
                school,
                expiry,
            });
        }
        self.errors.extend(errors);
    }

    fn finish(self) -> Result<Vec<RosterRow>> {
        if !self.errors.is_empty() {
            return Err(IssueError::Roster(self.errors));
        }
        if self.header.is_none() {
            return Err(file_error("the roster is empty: it has no header row"));
        }
        if self.rows.is_empty() {
            return Err(file_error("the roster lists no card holders"));
        }
        Ok(self.rows)
    }
}

/// A spreadsheet's row number for a 0-based row index.
fn spreadsheet_row(index: u32) -> usize {
    usize::try_from(index)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
}

/// A spreadsheet's column letters for a 0-based column index: A, B, ..., Z, AA, ...
fn column_letters(index: u32) -> String {
    let mut letters = Vec::new();
    let mut n = u64::from(index) + 1;
    while n > 0 {
        let rem = ((n - 1) % 26) as u8;
        letters.push(char::from(b'A' + rem));
        n = (n - 1) / 26;
    }
    letters.iter().rev().collect()
}

/// A value as it may be quoted in a reason: at most 40 characters.
fn shown(text: &str) -> String {
    const MAX: usize = 40;
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// A roster refused as a whole (row 0: no row in particular).
fn file_error(reason: impl Into<String>) -> IssueError {
    IssueError::Roster(vec![RowError {
        row: 0,
        column: None,
        reason: reason.into(),
    }])
}

fn too_large() -> IssueError {
    file_error(format!(
        "the file is larger than {} MiB; split the roster into several files",
        MAX_FILE_BYTES / (1024 * 1024)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(date: Option<Date>) -> Option<(u16, u8, u8)> {
        date.map(Date::ymd)
    }

    #[test]
    fn spreadsheet_serial_dates() {
        // The 1900 date system, with its 1900-02-29 that never was.
        assert_eq!(ymd(date_of_serial(1.0, false)), Some((1900, 1, 1)));
        assert_eq!(ymd(date_of_serial(59.0, false)), Some((1900, 2, 28)));
        assert_eq!(date_of_serial(60.0, false), None);
        assert_eq!(ymd(date_of_serial(61.0, false)), Some((1900, 3, 1)));
        assert_eq!(ymd(date_of_serial(25_569.0, false)), Some((1970, 1, 1)));
        assert_eq!(ymd(date_of_serial(46_630.75, false)), Some((2027, 8, 31)));
        assert_eq!(ymd(date_of_serial(47_178.0, false)), Some((2029, 3, 1)));
        assert_eq!(
            ymd(date_of_serial(2_958_465.0, false)),
            Some((9999, 12, 31))
        );
        // The 1904 date system.
        assert_eq!(ymd(date_of_serial(0.0, true)), Some((1904, 1, 1)));
        assert_eq!(ymd(date_of_serial(45_168.0, true)), Some((2027, 8, 31)));
        for serial in [0.0, -1.0, 2_958_466.0, f64::NAN, f64::INFINITY, 1e300] {
            assert_eq!(date_of_serial(serial, false), None, "{serial}");
        }
    }

    #[test]
    fn shared_string_counts() {
        let sst =
            |count: &str| format!("<sst count=\"1\" uniqueCount={count}><si><t>a</t></si></sst>");
        for ok in ["\"1\"", "'1000000'", "\"0\"", "\"0001\""] {
            assert!(
                check_shared_string_counts(sst(ok).as_bytes()).is_ok(),
                "{ok}"
            );
        }
        for refused in [
            "\"1000001\"",
            "\"18446744073709551615\"",
            "\"99999999999999999999999\"",
            "\"+5\"",
            "\"\"",
            "\"1e9\"",
            "\"5",
            "5",
        ] {
            assert!(
                check_shared_string_counts(sst(refused).as_bytes()).is_err(),
                "{refused}"
            );
        }
        // Spaces around `=`, and the word in a string's text.
        assert!(check_shared_string_counts(b"<sst uniqueCount = \"2000000\">").is_err());
        assert!(check_shared_string_counts(b"<si><t>uniqueCount</t></si>").is_ok());
    }

    #[test]
    fn column_letters_as_a_spreadsheet_writes_them() {
        let letters: Vec<String> = [0, 25, 26, 27, 51, 52, 701, 702, 16_383]
            .into_iter()
            .map(column_letters)
            .collect();
        assert_eq!(
            letters,
            ["A", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA", "XFD"]
        );
        assert_eq!(column_letters(u32::MAX), "MWLQKWV");
    }

    #[test]
    fn quoted_values_are_shortened() {
        assert_eq!(shown("short"), "short");
        assert_eq!(shown(&"长".repeat(50)), format!("{}…", "长".repeat(40)));
    }
}
