//! Times as the KMS keeps them (Unix milliseconds, UTC) and as people read and type them
//! (RFC 3339).

use crate::error::{CliError, Result};
use ykt_apdu::pboc::Date;

/// `ms` (Unix milliseconds) as RFC 3339 UTC with milliseconds: `2025-03-01T08:30:00.000Z`.
pub fn format_ms(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = Date::from_unix_days(days).ymd();
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// A number of exactly `len` decimal digits.
fn digits(text: &str, len: usize) -> Option<i64> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Parses `--since`: Unix milliseconds, an RFC 3339 date (`2025-03-01`, midnight UTC) or
/// date-time with offset (`2025-03-01T08:30:00Z`, `2025-03-01T16:30:00.5+08:00`).
pub fn parse_since(text: &str) -> Result<i64> {
    let invalid = || CliError::Input {
        arg: "--since",
        reason: "must be Unix milliseconds or an RFC 3339 date or date-time".into(),
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| invalid());
    }
    let date = text.get(..10).ok_or_else(invalid)?;
    let (year, month, day) = match date.split('-').collect::<Vec<_>>()[..] {
        [y, m, d] => (digits(y, 4), digits(m, 2), digits(d, 2)),
        _ => return Err(invalid()),
    };
    let (Some(year), Some(month), Some(day)) = (year, month, day) else {
        return Err(invalid());
    };
    let date = Date::new(year as u16, month as u8, day as u8).ok_or_else(invalid)?;
    let midnight = date.unix_days() * 86_400_000;
    let rest = &text[10..];
    if rest.is_empty() {
        return Ok(midnight);
    }
    let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(invalid)?;
    let clock = rest.get(..8).ok_or_else(invalid)?;
    let (hour, minute, second) = match clock.split(':').collect::<Vec<_>>()[..] {
        [h, m, s] => (digits(h, 2), digits(m, 2), digits(s, 2)),
        _ => return Err(invalid()),
    };
    let (Some(hour), Some(minute), Some(second)) = (hour, minute, second) else {
        return Err(invalid());
    };
    if hour > 23 || minute > 59 || second > 59 {
        return Err(invalid());
    }
    let mut rest = &rest[8..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return Err(invalid());
        }
        let first3 = format!("{:0<3}", &fraction[..len.min(3)]);
        millis = first3.parse::<i64>().map_err(|_| invalid())?;
        rest = &fraction[len..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(invalid()),
            };
            let (h, m) = match rest[1..].split(':').collect::<Vec<_>>()[..] {
                [h, m] => (digits(h, 2), digits(m, 2)),
                _ => return Err(invalid()),
            };
            let (Some(h), Some(m)) = (h, m) else {
                return Err(invalid());
            };
            if h > 23 || m > 59 {
                return Err(invalid());
            }
            sign * (h * 60 + m) * 60_000
        }
    };
    Ok(midnight + ((hour * 60 + minute) * 60 + second) * 1000 + millis - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_and_parse_both_ways() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(parse_since("2000-02-29").unwrap(), 951_782_400_000);
        assert_eq!(
            parse_since("2000-02-29T08:00:00.5+08:00").unwrap(),
            951_782_400_500
        );
        assert_eq!(parse_since("1709280000000").unwrap(), 1_709_280_000_000);
        for ms in [1_709_280_000_000, 4_102_444_799_999, 86_399_999] {
            assert_eq!(parse_since(&format_ms(ms)).unwrap(), ms);
        }
    }

    #[test]
    fn malformed_times_are_refused() {
        for bad in [
            "",
            "2001-02-29",
            "2024-13-01",
            "2024-01-01T25:00:00Z",
            "2024-01-01T10:00:00",
            "yesterday",
            "2024-1-01",
            "2024-01-01T10:00:00.Z",
            "2024-01-01T10:00:00+8",
        ] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
