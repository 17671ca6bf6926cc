//! PBOC e-purse data layouts that both sides of the card interface read and write, and the
//! calendar dates and times they carry (`YYYYMMDD` and `hhmmss` in BCD, on the clock of the
//! bureau: China Standard Time, UTC+8).

/// One record of a card's transaction log (cyclic EF 0018, `pboc-spec.md` §1), 23 bytes:
/// `serial2 overdraft3 amount4 type1 terminal6 date4 time3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecord {
    /// Online (load) or offline (purchase) serial, before the transaction.
    pub serial: u16,
    /// Overdraft limit (3 bytes on the card).
    pub overdraft_limit: u32,
    /// Amount in fen.
    pub amount: u32,
    /// Transaction type (01/02 load, 05/06 purchase, 09 compound purchase).
    pub transaction_type: u8,
    /// Terminal ID.
    pub terminal_id: [u8; 6],
    /// Date YYYYMMDD, BCD.
    pub date: [u8; 4],
    /// Time hhmmss, BCD.
    pub time: [u8; 3],
}

impl LogRecord {
    /// Length of an encoded record.
    pub const LEN: usize = 23;

    /// Parses a 23-byte record; `None` for any other length.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        let take = |range: std::ops::Range<usize>| &bytes[range];
        Some(Self {
            serial: u16::from_be_bytes([bytes[0], bytes[1]]),
            overdraft_limit: u32::from_be_bytes([0, bytes[2], bytes[3], bytes[4]]),
            amount: u32::from_be_bytes(take(5..9).try_into().ok()?),
            transaction_type: bytes[9],
            terminal_id: take(10..16).try_into().ok()?,
            date: take(16..20).try_into().ok()?,
            time: take(20..23).try_into().ok()?,
        })
    }

    /// The 23-byte encoding; the overdraft limit keeps its low 3 bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut r = [0u8; Self::LEN];
        r[..2].copy_from_slice(&self.serial.to_be_bytes());
        r[2..5].copy_from_slice(&self.overdraft_limit.to_be_bytes()[1..]);
        r[5..9].copy_from_slice(&self.amount.to_be_bytes());
        r[9] = self.transaction_type;
        r[10..16].copy_from_slice(&self.terminal_id);
        r[16..20].copy_from_slice(&self.date);
        r[20..].copy_from_slice(&self.time);
        r
    }
}

/// A calendar date (proleptic Gregorian), as cards carry it: `YYYYMMDD` in BCD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// The date, when it exists (years 1000 to 9999).
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let leap =
            year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        ((1000..=9999).contains(&year) && (1..=days_in_month).contains(&day)).then_some(Self {
            year,
            month,
            day,
        })
    }

    /// Year, month (1-12) and day (1-31).
    pub fn ymd(self) -> (u16, u8, u8) {
        (self.year, self.month, self.day)
    }

    /// The date `days` days after 1970-01-01 (negative: before).
    pub fn from_unix_days(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year: year as u16,
            month: month as u8,
            day: day as u8,
        }
    }

    /// Days since 1970-01-01.
    pub fn unix_days(self) -> i64 {
        let (month, day) = (i64::from(self.month), i64::from(self.day));
        let year = i64::from(self.year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let yoe = year - era * 400;
        let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date in China Standard Time of a Unix time in milliseconds.
    pub fn of_unix_ms(ms: i64) -> Self {
        Self::from_unix_days((ms + CHINA_STANDARD_TIME_MS).div_euclid(86_400_000))
    }

    /// Parses `YYYYMMDD` or `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Self> {
        let digits: String = match text.len() {
            8 => text.to_owned(),
            10 if text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-' => {
                [&text[..4], &text[5..7], &text[8..]].concat()
            }
            _ => return None,
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Self::new(
            digits[..4].parse().ok()?,
            digits[4..6].parse().ok()?,
            digits[6..].parse().ok()?,
        )
    }

    /// The date `years` years later; 29 February becomes 28 February in a common year.
    pub fn add_years(self, years: u16) -> Option<Self> {
        let year = self.year.checked_add(years)?;
        Self::new(year, self.month, self.day).or_else(|| Self::new(year, self.month, 28))
    }

    /// The date `days` days later (or earlier).
    pub fn add_days(self, days: i64) -> Self {
        Self::from_unix_days(self.unix_days() + days)
    }

    /// The 4-byte BCD form `YYYYMMDD`.
    pub fn bcd(self) -> [u8; 4] {
        let [a, b] = bcd2(self.year);
        [a, b, bcd1(self.month), bcd1(self.day)]
    }

    /// Parses the 4-byte BCD form.
    pub fn from_bcd(bcd: [u8; 4]) -> Option<Self> {
        let text: String = bcd.iter().map(|b| format!("{b:02X}")).collect();
        Self::parse(&text)
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

fn bcd1(value: u8) -> u8 {
    ((value / 10) << 4) | (value % 10)
}

fn bcd2(value: u16) -> [u8; 2] {
    [bcd1((value / 100) as u8), bcd1((value % 100) as u8)]
}

/// China Standard Time's offset from UTC (eight hours), in milliseconds.
pub const CHINA_STANDARD_TIME_MS: i64 = 8 * 3_600_000;

/// The date and time in China Standard Time of a Unix time in milliseconds, as cards carry
/// them: `YYYYMMDD` and `hhmmss`, BCD.
pub fn bcd_date_time(ms: i64) -> ([u8; 4], [u8; 3]) {
    let seconds = (ms + CHINA_STANDARD_TIME_MS).rem_euclid(86_400_000) / 1000;
    let time = [
        bcd1((seconds / 3600) as u8),
        bcd1((seconds / 60 % 60) as u8),
        bcd1((seconds % 60) as u8),
    ];
    (Date::of_unix_ms(ms).bcd(), time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_published_read_back() {
        // A published FMCOS read-back (B-robur): 0001 000000 00000010 02 666666666666 20240411 212121
        let bytes = hex::decode("0001000000000000100266666666666620240411212121").unwrap();
        let record = LogRecord::parse(&bytes).unwrap();
        assert_eq!(
            record,
            LogRecord {
                serial: 1,
                overdraft_limit: 0,
                amount: 0x10,
                transaction_type: 2,
                terminal_id: [0x66; 6],
                date: [0x20, 0x24, 0x04, 0x11],
                time: [0x21, 0x21, 0x21],
            }
        );
        assert_eq!(record.to_bytes().as_slice(), bytes);
        assert!(LogRecord::parse(&bytes[..22]).is_none());
    }

    #[test]
    fn dates_convert_both_ways() {
        let leap = Date::new(2000, 2, 29).unwrap();
        assert_eq!(leap.unix_days(), 11_016);
        assert_eq!(Date::from_unix_days(11_016), leap);
        assert_eq!(Date::from_unix_days(0).to_string(), "19700101");
        assert_eq!(leap.bcd(), [0x20, 0x00, 0x02, 0x29]);
        assert_eq!(Date::from_bcd(leap.bcd()), Some(leap));
        assert_eq!(Date::parse("2000-02-29"), Some(leap));
        assert_eq!(leap.add_years(1), Date::new(2001, 2, 28));
        assert_eq!(leap.add_days(1), Date::new(2000, 3, 1).unwrap());
        for bad in [
            "20010229",
            "2024-13-01",
            "2024011",
            "2024O101",
            "0999-01-01",
        ] {
            assert!(Date::parse(bad).is_none(), "{bad}");
        }
        for days in [-1, 0, 59, 10_957, 20_000, 2_932_896] {
            assert_eq!(Date::from_unix_days(days).unix_days(), days);
        }
        // 2024-04-11T21:21:21Z is 05:21:21 on the 12th in Beijing.
        assert_eq!(
            bcd_date_time(1_712_870_481_000),
            ([0x20, 0x24, 0x04, 0x12], [0x05, 0x21, 0x21])
        );
        assert_eq!(
            Date::of_unix_ms(1_712_870_481_000),
            Date::new(2024, 4, 12).unwrap()
        );
    }
}
