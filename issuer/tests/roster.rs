//! Rosters: CSV and XLSX files of card holders, checked whole, every faulty cell reported.

use std::path::{Path, PathBuf};

use ykt_issuer::roster::{
    CardType, MAX_FILE_BYTES, MAX_ROWS, RosterRow, parse_csv, parse_xlsx, read_roster,
};
use ykt_issuer::{IssueError, RowError};

/// The 18-character resident ID number of 17 digits: the digits and their check character,
/// by the ISO 7064 MOD 11-2 rule of GB 11643-1999.
fn id(first17: &str) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    assert_eq!(first17.len(), 17);
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(digit, weight)| u32::from(digit - b'0') * weight)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    format!("{first17}{}", char::from(check))
}

/// The same ID number with another, wrong, check character.
fn wrong_check(id: &str) -> String {
    let (digits, check) = id.split_at(17);
    let wrong = if check == "0" { "1" } else { "0" };
    format!("{digits}{wrong}")
}

fn roster_errors(result: ykt_issuer::Result<Vec<RosterRow>>) -> Vec<RowError> {
    match result {
        Err(IssueError::Roster(errors)) => errors,
        Err(other) => panic!("expected roster errors, got {other}"),
        Ok(rows) => panic!("expected roster errors, got {} rows", rows.len()),
    }
}

/// The one error of a roster refused for one reason.
fn single_error(result: ykt_issuer::Result<Vec<RosterRow>>) -> RowError {
    let mut errors = roster_errors(result);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.remove(0)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

const SCHOOL: &str = "4111012345";

fn holder(row: usize, name: &str, number: &str, id_number: &str, card_type: CardType) -> RosterRow {
    RosterRow {
        row,
        name: name.to_owned(),
        number: number.to_owned(),
        id_number: id_number.to_owned(),
        card_type,
        school: SCHOOL.to_owned(),
        expiry: None,
    }
}

#[test]
fn the_published_example_id_number_is_valid_and_the_rule_agrees() {
    assert_eq!(id("11010519491231002"), "11010519491231002X");
    let csv = format!(
        "name,number,id_number,card_type,school\n\
         A,1,11010519491231002X,staff,{SCHOOL}\n\
         B,2,11010519491231002x,student,{SCHOOL}\n"
    );
    let rows = parse_csv(csv.as_bytes()).unwrap();
    // A lower-case check character is written upper case.
    assert_eq!(rows[0].id_number, "11010519491231002X");
    assert_eq!(rows[1].id_number, "11010519491231002X");
}

#[test]
fn a_good_csv_with_english_headers_and_quoted_fields() {
    let a = id("11010520050101123");
    let b = id("44030419900307051");
    let c = id("31011520120229004");
    let csv = format!(
        "  Name ,NUMBER,id_number,Card_Type,school,expiry\n\
         \"Smith, John\",S001,{a},student,{SCHOOL},2027-08-31\n\
         \"O\"\"Brien\",\"S002\",{b},Staff,\"{SCHOOL}\",20280229\n\
         \"  张三  \",s003,{c},temporary,{SCHOOL},\n"
    );
    let rows = parse_csv(csv.as_bytes()).unwrap();
    assert_eq!(
        rows,
        vec![
            RosterRow {
                expiry: Some("20270831".to_owned()),
                ..holder(2, "Smith, John", "S001", &a, CardType::Student)
            },
            RosterRow {
                expiry: Some("20280229".to_owned()),
                ..holder(3, "O\"Brien", "S002", &b, CardType::Staff)
            },
            holder(4, "张三", "s003", &c, CardType::Temporary),
        ]
    );
}

#[test]
fn a_good_csv_with_chinese_headers_a_bom_and_crlf_lines() {
    let a = id("11010520050101123");
    let b = id("44030419900307051");
    let c = id("31011520120229004");
    let d = id("11010519800101999");
    let csv = format!(
        "\u{feff}学工号,姓名,卡类型,身份证号,学校标识码,有效期\r\n\
         20230001,张三,学生,{a},{SCHOOL},2027-08-31\r\n\
         T0001,李四,教职工,{b},{SCHOOL},\r\n\
         T0002,王五,职工,{c},{SCHOOL},\r\n\
         L0001,赵六,临时,{d},{SCHOOL},20251231\r\n"
    );
    let rows = parse_csv(csv.as_bytes()).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0],
        RosterRow {
            expiry: Some("20270831".to_owned()),
            ..holder(2, "张三", "20230001", &a, CardType::Student)
        }
    );
    assert_eq!(rows[1].card_type, CardType::Staff);
    assert_eq!(rows[2].card_type, CardType::Staff);
    assert_eq!(rows[3].card_type, CardType::Temporary);
    assert_eq!(rows[3].expiry.as_deref(), Some("20251231"));

    // The other Chinese headers, and an optional column left out.
    let csv = format!("姓名,学号,身份证号,卡类型,学校代码\n张三,1,{a},教师,{SCHOOL}\n");
    let rows = parse_csv(csv.as_bytes()).unwrap();
    assert_eq!(rows, vec![holder(2, "张三", "1", &a, CardType::Staff)]);
    let csv = format!("姓名,工号,身份证号,卡类型,学校代码\n张三,1,{a},staff,{SCHOOL}\n");
    assert_eq!(parse_csv(csv.as_bytes()).unwrap()[0].number, "1");
}

#[test]
fn blank_rows_are_skipped_and_rows_keep_the_numbers_a_spreadsheet_shows() {
    let a = id("11010520050101123");
    let b = id("44030419900307051");
    // Row 3 is an empty line, row 4 only commas and spaces; row 5 is a quoted name over two
    // lines (one row), so the bad school on row 6 is on the file's seventh line.
    let csv = format!(
        "name,number,id_number,card_type,school\n\
         A,1,{a},student,{SCHOOL}\n\
         \n\
         , ,,\t,\n\
         \"Line\nbreak\",2,{b},student,{SCHOOL}\n\
         C,3,{b},staff,123\n\
         D,4,{b},temporary,{SCHOOL}\n"
    );
    let errors = roster_errors(parse_csv(csv.as_bytes()));
    assert_eq!(
        errors,
        vec![
            RowError {
                row: 5,
                column: Some("name".to_owned()),
                reason: "contains the control character U+000A".to_owned(),
            },
            RowError {
                row: 6,
                column: Some("school".to_owned()),
                reason: "\"123\" is not a 10-digit school identification code".to_owned(),
            },
        ]
    );

    let csv = format!(
        "\n\nname,number,id_number,card_type,school\n\n\
         A,1,{a},student,{SCHOOL}\n,,,,\n"
    );
    let rows = parse_csv(csv.as_bytes()).unwrap();
    assert_eq!(rows, vec![holder(5, "A", "1", &a, CardType::Student)]);

    // The same with CR LF and lone CR line ends.
    let csv = format!(
        "name,number,id_number,card_type,school\r\n\r\n\r\
         A,1,{a},student,{SCHOOL}\r\n\r\nB,2,{b},staff,{SCHOOL}\r\n"
    );
    let rows: Vec<usize> = parse_csv(csv.as_bytes())
        .unwrap()
        .iter()
        .map(|row| row.row)
        .collect();
    assert_eq!(rows, [4, 6]);
}

/// A roster of one good row (2) and one row (3) whose `column` holds `value`.
fn one_bad_cell(column: &str, value: &str) -> Vec<u8> {
    let good = id("11010520050101123");
    let other = id("44030419900307051");
    let mut fields = [
        ("name", "李四".to_owned()),
        ("number", "S2".to_owned()),
        ("id_number", other),
        ("card_type", "staff".to_owned()),
        ("school", SCHOOL.to_owned()),
        ("expiry", "2030-01-01".to_owned()),
    ];
    for field in &mut fields {
        if field.0 == column {
            field.1 = value.to_owned();
        }
    }
    let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let header: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    let bad: Vec<String> = fields.iter().map(|(_, value)| quote(value)).collect();
    format!(
        "{}\n张三,S1,{good},student,{SCHOOL},2030-01-01\n{}\n",
        header.join(","),
        bad.join(",")
    )
    .into_bytes()
}

#[test]
fn every_kind_of_bad_cell_is_reported_at_its_row_and_column() {
    let birth_feb_30 = id("11010520050230123");
    let birth_1799 = id("11010517991231123");
    let good = id("44030419900307051");
    let cases: Vec<(&str, String, &str)> = vec![
        ("name", String::new(), "required"),
        ("name", "   ".to_owned(), "required"),
        ("name", "欧阳".repeat(5) + "娜娜", "36 bytes"),
        ("name", "a".repeat(31), "31 bytes"),
        ("name", "Tab\there".to_owned(), "control character U+0009"),
        ("name", "Bell\u{7}".to_owned(), "control character U+0007"),
        ("number", String::new(), "required"),
        ("number", "A".repeat(17), "1 to 16 ASCII letters or digits"),
        (
            "number",
            "S-1".to_owned(),
            "1 to 16 ASCII letters or digits",
        ),
        (
            "number",
            "学001".to_owned(),
            "1 to 16 ASCII letters or digits",
        ),
        ("id_number", String::new(), "required"),
        ("id_number", good[..17].to_owned(), "17 characters"),
        ("id_number", format!("{good}0"), "19 characters"),
        (
            "id_number",
            format!("A{}", &good[1..]),
            "first 17 characters",
        ),
        ("id_number", format!("{}Y", &good[..17]), "18th character"),
        ("id_number", format!("{}１", &good[..17]), "digit or X"),
        ("id_number", wrong_check(&good), "check character"),
        ("id_number", birth_feb_30, "date of birth"),
        ("id_number", birth_1799, "date of birth"),
        ("card_type", String::new(), "required"),
        (
            "card_type",
            "teacher".to_owned(),
            "unknown card type \"teacher\"",
        ),
        ("card_type", "学生卡".to_owned(), "unknown card type"),
        ("school", String::new(), "required"),
        ("school", "411101234".to_owned(), "10-digit"),
        ("school", "41110123456".to_owned(), "10-digit"),
        ("school", "411101234X".to_owned(), "10-digit"),
        ("expiry", "2027/08/31".to_owned(), "YYYY-MM-DD or YYYYMMDD"),
        ("expiry", "31-08-2027".to_owned(), "YYYY-MM-DD or YYYYMMDD"),
        ("expiry", "tomorrow".to_owned(), "YYYY-MM-DD or YYYYMMDD"),
        ("expiry", "2027-8-31".to_owned(), "YYYY-MM-DD or YYYYMMDD"),
        ("expiry", "20270230".to_owned(), "not a real date"),
        ("expiry", "2027-13-01".to_owned(), "not a real date"),
        ("expiry", "2100-02-29".to_owned(), "not a real date"),
        ("expiry", "2027-04-31".to_owned(), "not a real date"),
        ("expiry", "2027-00-10".to_owned(), "not a real date"),
    ];
    for (column, value, reason) in cases {
        let errors = roster_errors(parse_csv(&one_bad_cell(column, &value)));
        assert_eq!(errors.len(), 1, "{column} = {value:?}: {errors:#?}");
        let error = &errors[0];
        assert_eq!(error.row, 3, "{column} = {value:?}");
        assert_eq!(
            error.column.as_deref(),
            Some(column),
            "{column} = {value:?}"
        );
        assert!(
            error.reason.contains(reason),
            "{column} = {value:?}: {:?} lacks {reason:?}",
            error.reason
        );
    }
    // The reasons never repeat an ID number.
    let error = &roster_errors(parse_csv(&one_bad_cell("id_number", &wrong_check(&good))))[0];
    assert!(!error.reason.contains(&good[..17]), "{}", error.reason);
    // Leap days exist in leap years (2000 is one, 2100 is not).
    for expiry in ["2028-02-29", "20000229", "2030-12-31"] {
        assert!(
            parse_csv(&one_bad_cell("expiry", expiry)).is_ok(),
            "{expiry}"
        );
    }
    assert!(
        parse_csv(&one_bad_cell("expiry", "")).unwrap()[1]
            .expiry
            .is_none()
    );
    assert!(
        parse_csv(&one_bad_cell("name", &"欧阳".repeat(5))).is_ok(),
        "30 bytes fit"
    );
}

#[test]
fn all_bad_rows_and_all_their_bad_cells_are_listed() {
    let a = id("11010520050101123");
    let b = id("44030419900307051");
    let csv = format!(
        "name,number,id_number,card_type,school,expiry\n\
         ,S1,{a},student,{SCHOOL},\n\
         B,S2,{b},staff,{SCHOOL},\n\
         C,S 3,{},pupil,41110,2027-02-30\n\
         D,S4,{b},temporary,{SCHOOL},soon\n",
        wrong_check(&a)
    );
    let found: Vec<(usize, Option<String>)> = roster_errors(parse_csv(csv.as_bytes()))
        .into_iter()
        .map(|error| (error.row, error.column))
        .collect();
    let at = |row, column: &str| (row, Some(column.to_owned()));
    assert_eq!(
        found,
        vec![
            at(2, "name"),
            at(4, "number"),
            at(4, "id_number"),
            at(4, "card_type"),
            at(4, "school"),
            at(4, "expiry"),
            at(5, "expiry"),
        ]
    );
}

#[test]
fn a_number_or_a_person_twice_in_a_school_is_refused_naming_the_first_row() {
    let a = id("11010520050101123");
    let b = id("44030419900307051");
    let c = id("31011520120229004");
    let other_school = "4111099999";
    let csv = format!(
        "name,number,id_number,card_type,school\n\
         A,S1,{a},student,{SCHOOL}\n\
         A,S1,{b},student,{other_school}\n\
         A,S2,{a},staff,{SCHOOL}\n\
         B,s1,{c},student,{SCHOOL}\n\
         C,S3,{a},student,{SCHOOL}\n"
    );
    let errors = roster_errors(parse_csv(csv.as_bytes()));
    // The same number in another school and the same person with a card of another type are
    // fine; the number again (in any case) and the same person's second student card are not.
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].row, 5);
    assert_eq!(errors[0].column.as_deref(), Some("number"));
    assert!(errors[0].reason.contains("row 2"), "{}", errors[0].reason);
    assert_eq!(errors[1].row, 6);
    assert_eq!(errors[1].column.as_deref(), Some("id_number"));
    assert!(errors[1].reason.contains("row 2"), "{}", errors[1].reason);
    assert!(!errors[1].reason.contains(&a), "{}", errors[1].reason);
}

#[test]
fn header_faults() {
    let a = id("11010520050101123");
    // Missing columns: one error each at the header row, naming the column.
    let errors = roster_errors(parse_csv(b"name,card_type,school\nA,student,4111012345\n"));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    for (error, column) in errors.iter().zip(["number", "id_number"]) {
        assert_eq!(error.row, 1);
        assert_eq!(error.column, None);
        assert!(error.reason.contains(column), "{}", error.reason);
    }

    // An unknown column is named; the rows are still checked.
    let csv = format!(
        "name,number,id_number,card_type,school,Phone\n\
         A,1,{a},student,{SCHOOL},555\n\
         B,2,{a},pupil,{SCHOOL},556\n"
    );
    let errors = roster_errors(parse_csv(csv.as_bytes()));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(
        (errors[0].row, errors[0].column.as_deref()),
        (1, Some("Phone"))
    );
    assert!(
        errors[0].reason.contains("unknown column"),
        "{}",
        errors[0].reason
    );
    assert_eq!(
        (errors[1].row, errors[1].column.as_deref()),
        (3, Some("card_type"))
    );

    // The same column twice, under two of its names.
    let csv = format!("name,number,id_number,card_type,school,姓名\nA,1,{a},student,{SCHOOL},A\n");
    let error = single_error(parse_csv(csv.as_bytes()));
    assert_eq!((error.row, error.column.as_deref()), (1, Some("姓名")));
    assert!(error.reason.contains("second"), "{}", error.reason);

    // A value under no header.
    let csv = format!(
        "name,number,id_number,card_type,school\n\
         A,1,{a},student,{SCHOOL},,surplus\n"
    );
    let error = single_error(parse_csv(csv.as_bytes()));
    assert_eq!((error.row, error.column.as_deref()), (2, None));
    assert!(error.reason.contains("column G"), "{}", error.reason);

    // The header sits on the first non-empty row, wherever that is.
    let csv = format!("\n,,\nname,number,id_number,card_type\nA,1,{a},student\n");
    let error = single_error(parse_csv(csv.as_bytes()));
    assert_eq!(error.row, 3);
    assert!(error.reason.contains("school"), "{}", error.reason);
}

#[test]
fn empty_rosters_are_refused() {
    for text in [&b""[..], b"\xEF\xBB\xBF", b"\n\n,,,\n"] {
        let error = single_error(parse_csv(text));
        assert_eq!(error.row, 0);
        assert!(error.reason.contains("no header"), "{}", error.reason);
    }
    let error = single_error(parse_csv(b"name,number,id_number,card_type,school\n,,,,\n"));
    assert!(error.reason.contains("no card holders"), "{}", error.reason);
}

#[test]
fn text_that_is_not_utf8_is_refused_at_its_row() {
    let a = id("11010520050101123");
    // "张三" in GBK.
    let mut csv =
        format!("name,number,id_number,card_type,school\nA,1,{a},student,{SCHOOL}\n").into_bytes();
    csv.extend_from_slice(b"\xD5\xC5\xC8\xFD,2,");
    csv.extend_from_slice(format!("{a},staff,{SCHOOL}\n").as_bytes());
    let error = single_error(parse_csv(&csv));
    assert_eq!((error.row, error.column.as_deref()), (3, Some("name")));
    assert!(error.reason.contains("UTF-8"), "{}", error.reason);

    let error = single_error(parse_csv(b"\xD0\xD5\xC3\xFB,number\n"));
    assert_eq!((error.row, error.column.as_deref()), (1, None));

    let utf16: Vec<u8> = "\u{feff}name,number\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let error = single_error(parse_csv(&utf16));
    assert_eq!(error.row, 0);
    assert!(error.reason.contains("UTF-16"), "{}", error.reason);
}

#[test]
fn limits_on_rows_and_file_size() {
    let a = id("11010520050101123");
    let mut csv = String::from("name,number,id_number,card_type,school\n");
    for n in 0..=MAX_ROWS {
        csv.push_str(&format!("N,{n},{a},student,{SCHOOL}\n"));
    }
    let error = single_error(parse_csv(csv.as_bytes()));
    assert_eq!(error.row, MAX_ROWS + 2);
    assert!(
        error.reason.contains("more than 100000"),
        "{}",
        error.reason
    );

    let big = vec![b'a'; MAX_FILE_BYTES + 1];
    for result in [parse_csv(&big), parse_xlsx(&big)] {
        let error = single_error(result);
        assert_eq!(error.row, 0);
        assert!(error.reason.contains("32 MiB"), "{}", error.reason);
    }
}

#[test]
fn card_types_by_name_code_and_serde() {
    for (text, card_type) in [
        ("student", CardType::Student),
        (" Student ", CardType::Student),
        ("学生", CardType::Student),
        ("STAFF", CardType::Staff),
        ("教职工", CardType::Staff),
        ("教师", CardType::Staff),
        ("职工", CardType::Staff),
        ("temporary", CardType::Temporary),
        ("临时", CardType::Temporary),
    ] {
        assert_eq!(text.parse::<CardType>(), Ok(card_type), "{text}");
    }
    assert!("teacher".parse::<CardType>().is_err());
    assert!("".parse::<CardType>().is_err());
    let codes: Vec<u8> = CardType::ALL.iter().map(|t| t.code()).collect();
    assert_eq!(codes, [0x01, 0x02, 0x03]);
    for card_type in CardType::ALL {
        let json = serde_json::to_string(&card_type).unwrap();
        assert_eq!(json, format!("\"{card_type}\""));
        assert_eq!(serde_json::from_str::<CardType>(&json).unwrap(), card_type);
        assert_eq!(card_type.to_string().parse::<CardType>(), Ok(card_type));
    }
    assert_eq!(CardType::Temporary.to_string(), "temporary");

    let row = holder(2, "张三", "1", "11010519491231002X", CardType::Staff);
    let json = serde_json::to_value(&row).unwrap();
    assert_eq!(json["card_type"], "staff");
    assert_eq!(serde_json::from_value::<RosterRow>(json).unwrap(), row);
}

#[test]
fn xlsx_roster_with_number_and_date_cells() {
    let rows = read_roster(&fixture("roster.xlsx")).unwrap();
    assert_eq!(
        rows,
        vec![
            RosterRow {
                // A student number stored as a spreadsheet number, an expiry as a date cell.
                expiry: Some("20270831".to_owned()),
                ..holder(
                    2,
                    "张三",
                    "20230001",
                    &id("11010520050101123"),
                    CardType::Student
                )
            },
            RosterRow {
                expiry: Some("20280229".to_owned()),
                ..holder(3, "李四", "T0001", "11010519491231002X", CardType::Staff)
            },
            // Row 4 holds only a blank.
            holder(
                5,
                "Wang Wu",
                "X0001",
                &id("44030419900307051"),
                CardType::Temporary
            ),
        ]
    );
    assert!(rows[2].id_number.ends_with('X'));
    let bytes = std::fs::read(fixture("roster.xlsx")).unwrap();
    assert_eq!(parse_xlsx(&bytes).unwrap(), rows);
}

#[test]
fn xlsx_dates_of_the_1904_date_system() {
    let rows = read_roster(&fixture("roster-1904.xlsx")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].expiry.as_deref(), Some("20270831"));
}

#[test]
fn xlsx_cells_only_a_spreadsheet_can_get_wrong() {
    let errors = roster_errors(read_roster(&fixture("roster-errors.xlsx")));
    let found: Vec<(usize, &str, &str)> = errors
        .iter()
        .map(|e| (e.row, e.column.as_deref().unwrap_or(""), e.reason.as_str()))
        .collect();
    assert_eq!(found.len(), 5, "{errors:#?}");
    assert_eq!((found[0].0, found[0].1), (2, "身份证号"));
    assert!(found[0].2.contains("stored as a number"), "{}", found[0].2);
    assert_eq!((found[1].0, found[1].1), (3, "姓名"));
    assert!(found[1].2.contains("a date"), "{}", found[1].2);
    assert_eq!((found[2].0, found[2].1), (3, "学校代码"));
    assert!(found[2].2.contains("leading zeros"), "{}", found[2].2);
    assert_eq!((found[3].0, found[3].1), (4, "卡类型"));
    assert!(found[3].2.contains("#N/A"), "{}", found[3].2);
    assert_eq!((found[4].0, found[4].1), (4, "有效期"));
    assert!(found[4].2.contains("not a real date"), "{}", found[4].2);
}

#[test]
fn xlsx_packages_that_would_exhaust_memory_or_are_no_workbook_are_refused() {
    let error = single_error(read_roster(&fixture("roster-strings.xlsx")));
    assert_eq!(error.row, 0);
    assert!(
        error.reason.contains("distinct strings"),
        "{}",
        error.reason
    );

    for bytes in [&b""[..], b"PK\x03\x04", b"name,number\n"] {
        let error = single_error(parse_xlsx(bytes));
        assert_eq!(error.row, 0);
        assert!(
            error.reason.contains("not an XLSX workbook"),
            "{}",
            error.reason
        );
    }
    // A CSV roster is not read as a workbook, nor a workbook as CSV text.
    let bytes = std::fs::read(fixture("roster.xlsx")).unwrap();
    assert!(parse_csv(&bytes).is_err());
}

#[test]
fn files_by_extension() {
    let a = id("11010520050101123");
    let dir = std::env::temp_dir().join(format!("ykt-roster-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = format!("name,number,id_number,card_type,school\nA,1,{a},student,{SCHOOL}\n");
    let upper = dir.join("ROSTER.CSV");
    std::fs::write(&upper, &csv).unwrap();
    assert_eq!(read_roster(&upper).unwrap().len(), 1);

    let xlsx = dir.join("Roster.XLSX");
    std::fs::copy(fixture("roster.xlsx"), &xlsx).unwrap();
    assert_eq!(read_roster(&xlsx).unwrap().len(), 3);

    for name in ["roster.txt", "roster.xls", "roster"] {
        let path = dir.join(name);
        std::fs::write(&path, &csv).unwrap();
        let error = single_error(read_roster(&path));
        assert_eq!(error.row, 0);
        assert!(
            error.reason.contains("unsupported file type"),
            "{}",
            error.reason
        );
    }

    let missing = dir.join("missing.csv");
    match read_roster(&missing) {
        Err(IssueError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
