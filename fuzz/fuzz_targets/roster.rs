//! Roster files, read as CSV and as XLSX: a typed error or rows that hold to the roster's
//! rules, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ykt_issuer::IssueError;
use ykt_issuer::roster::{RosterRow, parse_csv, parse_xlsx};

fn check(result: ykt_issuer::Result<Vec<RosterRow>>) {
    match result {
        Ok(rows) => {
            assert!(!rows.is_empty());
            assert!(rows.windows(2).all(|pair| pair[0].row < pair[1].row));
            for row in rows {
                assert!(row.row >= 2);
                assert!((1..=30).contains(&row.name.len()));
                assert!(!row.name.chars().any(char::is_control));
                assert!((1..=16).contains(&row.number.len()));
                assert!(row.number.bytes().all(|b| b.is_ascii_alphanumeric()));
                assert_eq!(row.id_number.len(), 18);
                assert!(row.id_number[..17].bytes().all(|b| b.is_ascii_digit()));
                assert_eq!(row.school.len(), 10);
                assert!(row.school.bytes().all(|b| b.is_ascii_digit()));
                if let Some(expiry) = &row.expiry {
                    assert_eq!(expiry.len(), 8);
                    assert!(expiry.bytes().all(|b| b.is_ascii_digit()));
                }
            }
        }
        Err(IssueError::Roster(errors)) => assert!(!errors.is_empty()),
        Err(other) => panic!("a roster parser failed with {other}"),
    }
}

fuzz_target!(|data: &[u8]| {
    check(parse_csv(data));
    check(parse_xlsx(data));
});
