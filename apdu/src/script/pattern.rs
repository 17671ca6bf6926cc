//! Expectations: the part of a command line after `=>`, a response-data pattern with
//! wildcards and captures and one or more status-word patterns, and how a response is
//! matched against them.

use super::bytes::{Value, Vars};
use crate::sw::Sw;
use std::fmt;
use std::ops::Range;

/// One item of a response-data pattern.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Item {
    /// `6F`: this byte.
    Byte(u8),
    /// `??`: any one byte.
    Any,
    /// `..`: any number of bytes, none included.
    Rest,
    /// `$NAME`: the bytes the variable holds.
    Var(String),
    /// `$NAME:4` (`len` 4) or `$NAME:..` (`len` `None`): captures bytes into a variable.
    Capture {
        /// The variable.
        name: String,
        /// How many bytes, or `None` for any number.
        len: Option<usize>,
    },
}

/// A status-word pattern: four nibbles, each a hex digit or `X` (any).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct SwPattern {
    value: u16,
    mask: u16,
}

impl SwPattern {
    /// The pattern of four nibbles, `None` for an `X`.
    pub(super) fn new(nibbles: [Option<u8>; 4]) -> Self {
        nibbles
            .iter()
            .fold(Self { value: 0, mask: 0 }, |acc, nibble| Self {
                value: acc.value << 4 | u16::from(nibble.unwrap_or(0)),
                mask: acc.mask << 4 | if nibble.is_some() { 0xF } else { 0 },
            })
    }

    fn matches(self, sw: Sw) -> bool {
        sw.to_u16() & self.mask == self.value
    }
}

impl fmt::Display for SwPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (0..4).rev().try_for_each(|i| {
            if self.mask >> (4 * i) & 0xF == 0 {
                f.write_str("X")
            } else {
                write!(f, "{:X}", self.value >> (4 * i) & 0xF)
            }
        })
    }
}

/// What a command line expects of its response.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Expectation {
    /// The data pattern; `None` when the response data is not checked.
    pub(super) data: Option<Vec<Item>>,
    /// The status words accepted (at least one).
    pub(super) sw: Vec<SwPattern>,
}

/// A captured variable: its name and the range of the response data it took.
pub(super) type Capture<'a> = (&'a str, Range<usize>);

impl Expectation {
    /// The variables the data pattern compares against (not those it captures).
    pub(super) fn vars(&self) -> impl Iterator<Item = &str> {
        self.data.iter().flatten().filter_map(|item| match item {
            Item::Var(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The variables the data pattern captures, with their fixed lengths (`None` for `..`).
    pub(super) fn captures(&self) -> impl Iterator<Item = (&str, Option<usize>)> {
        self.data.iter().flatten().filter_map(|item| match item {
            Item::Capture { name, len } => Some((name.as_str(), *len)),
            _ => None,
        })
    }

    /// Matches a response: `Ok(None)` if it does not meet the expectation, otherwise the
    /// captures; the error names a variable of the pattern that `vars` does not hold.
    pub(super) fn check(
        &self,
        data: &[u8],
        sw: Sw,
        vars: &Vars,
    ) -> Result<Option<Vec<Capture<'_>>>, String> {
        if !self.sw.iter().any(|pattern| pattern.matches(sw)) {
            return Ok(None);
        }
        let Some(items) = &self.data else {
            return Ok(Some(Vec::new()));
        };
        let units = items
            .iter()
            .map(|item| {
                Ok(match item {
                    Item::Byte(byte) => Unit::Exact(std::slice::from_ref(byte)),
                    Item::Any => Unit::Any(1),
                    Item::Var(name) => Unit::Exact(vars.get(name).map(Value::bytes).ok_or(name)?),
                    Item::Capture { len: Some(n), .. } => Unit::Any(*n),
                    Item::Rest | Item::Capture { len: None, .. } => Unit::Star,
                })
            })
            .collect::<Result<Vec<_>, &String>>()
            .map_err(Clone::clone)?;
        Ok(glob(&units, data).map(|spans| {
            items
                .iter()
                .zip(spans)
                .filter_map(|(item, span)| match item {
                    Item::Capture { name, .. } => Some((name.as_str(), span)),
                    _ => None,
                })
                .collect()
        }))
    }
}

impl fmt::Display for Expectation {
    /// The canonical form, e.g. `[6F ?? 84 .. $FCI:..] 9000|61XX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(items) = &self.data {
            f.write_str("[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                match item {
                    Item::Byte(byte) => write!(f, "{byte:02X}")?,
                    Item::Any => f.write_str("??")?,
                    Item::Rest => f.write_str("..")?,
                    Item::Var(name) => write!(f, "${name}")?,
                    Item::Capture { name, len: Some(n) } => write!(f, "${name}:{n}")?,
                    Item::Capture { name, len: None } => write!(f, "${name}:..")?,
                }
            }
            f.write_str("] ")?;
        }
        for (i, sw) in self.sw.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(f, "{sw}")?;
        }
        Ok(())
    }
}

/// A pattern item reduced to what matching needs.
enum Unit<'a> {
    /// Exactly these bytes.
    Exact(&'a [u8]),
    /// Any `n` bytes.
    Any(usize),
    /// Any number of bytes.
    Star,
}

/// Matches `data` against `units` as a whole and gives the span each unit took.
///
/// The classic wildcard algorithm: stars first take nothing; when the units after the last
/// star passed fail to match, that star takes one more byte and matching resumes after it.
/// Between two stars every unit has a fixed length, so the leftmost place where such a run
/// matches is as good as any later one, and only the last star ever needs to grow: time is
/// at most the product of the two lengths, with no recursion.
fn glob(units: &[Unit<'_>], data: &[u8]) -> Option<Vec<Range<usize>>> {
    let mut spans = vec![0..0; units.len()];
    let (mut i, mut pos) = (0, 0);
    let mut last_star = None;
    loop {
        let end = match units.get(i) {
            None if pos == data.len() => return Some(spans),
            None => None,
            Some(Unit::Star) => {
                last_star = Some(i);
                Some(pos)
            }
            Some(Unit::Exact(bytes)) => data[pos..].starts_with(bytes).then(|| pos + bytes.len()),
            Some(Unit::Any(n)) => pos.checked_add(*n).filter(|&end| end <= data.len()),
        };
        match end {
            Some(end) => {
                spans[i] = pos..end;
                (i, pos) = (i + 1, end);
            }
            None => {
                let star = last_star?;
                let end = spans[star].end + 1;
                if end > data.len() {
                    return None;
                }
                spans[star].end = end;
                (i, pos) = (star + 1, end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw(text: &str) -> SwPattern {
        let nibbles: Vec<Option<u8>> = text
            .chars()
            .map(|c| c.to_digit(16).map(|d| d as u8))
            .collect();
        SwPattern::new(nibbles.try_into().unwrap())
    }

    fn expect(items: Vec<Item>) -> Expectation {
        Expectation {
            data: Some(items),
            sw: vec![sw("9000")],
        }
    }

    fn spans(e: &Expectation, data: &[u8]) -> Option<Vec<(String, Range<usize>)>> {
        let vars = Vars::from([("AID".to_string(), Value::new(&[0xA0, 0x01], false))]);
        e.check(data, Sw::Ok, &vars)
            .unwrap()
            .map(|c| c.into_iter().map(|(n, r)| (n.to_string(), r)).collect())
    }

    fn capture(name: &str, len: Option<usize>) -> Item {
        Item::Capture {
            name: name.into(),
            len,
        }
    }

    #[test]
    fn status_word_patterns_match_nibble_by_nibble() {
        assert!(sw("9000").matches(Sw::Ok));
        assert!(!sw("9000").matches(Sw::MoreData(0x10)));
        assert!(sw("61XX").matches(Sw::MoreData(0x10)));
        assert!(sw("63CX").matches(Sw::TriesLeft(2)));
        assert!(!sw("63CX").matches(Sw::Unknown(0x6302)));
        assert!(sw("XXXX").matches(Sw::Unknown(0x1234)));
        assert_eq!(sw("63CX").to_string(), "63CX");
        assert_eq!(sw("XX00").to_string(), "XX00");
    }

    #[test]
    fn the_status_word_is_checked_first_and_data_only_when_asked() {
        let e = Expectation {
            data: None,
            sw: vec![sw("9000"), sw("61XX")],
        };
        let vars = Vars::new();
        assert!(e.check(&[1, 2, 3], Sw::Ok, &vars).unwrap().is_some());
        assert!(e.check(&[], Sw::MoreData(4), &vars).unwrap().is_some());
        assert!(e.check(&[], Sw::FileNotFound, &vars).unwrap().is_none());
        assert_eq!(e.to_string(), "9000|61XX");
        let empty = expect(vec![]);
        assert!(spans(&empty, &[]).is_some());
        assert!(spans(&empty, &[0]).is_none());
        assert_eq!(empty.to_string(), "[] 9000");
    }

    #[test]
    fn wildcards_and_literals() {
        let e = expect(vec![
            Item::Byte(0x6F),
            Item::Any,
            Item::Byte(0x84),
            Item::Rest,
        ]);
        assert_eq!(e.to_string(), "[6F ?? 84 ..] 9000");
        assert!(spans(&e, &[0x6F, 0x10, 0x84]).is_some());
        assert!(spans(&e, &[0x6F, 0x10, 0x84, 1, 2, 3]).is_some());
        assert!(spans(&e, &[0x6F, 0x84]).is_none());
        assert!(spans(&e, &[0x6F, 0x10, 0x85]).is_none());
        let e = expect(vec![Item::Rest, Item::Byte(0x90), Item::Rest]);
        assert!(spans(&e, &[1, 2, 0x90]).is_some());
        assert!(spans(&e, &[1, 2, 3]).is_none());
        let e = expect(vec![Item::Rest, Item::Rest]);
        assert!(spans(&e, &[]).is_some() && spans(&e, &[1, 2]).is_some());
    }

    #[test]
    fn variables_are_compared_and_an_unknown_one_is_named() {
        let e = expect(vec![Item::Rest, Item::Var("AID".into()), Item::Rest]);
        assert!(spans(&e, &[0x84, 0x02, 0xA0, 0x01, 0xA5]).is_some());
        assert!(spans(&e, &[0x84, 0x02, 0xA0, 0x02]).is_none());
        assert_eq!(e.vars().collect::<Vec<_>>(), ["AID"]);
        let e = expect(vec![Item::Var("NOPE".into())]);
        assert_eq!(
            e.check(&[], Sw::Ok, &Vars::new()).err().as_deref(),
            Some("NOPE")
        );
    }

    #[test]
    fn captures_take_fixed_or_leftover_lengths() {
        let e = expect(vec![capture("CHALLENGE", Some(4))]);
        assert_eq!(e.to_string(), "[$CHALLENGE:4] 9000");
        assert_eq!(
            spans(&e, &[1, 2, 3, 4]),
            Some(vec![("CHALLENGE".into(), 0..4)])
        );
        assert!(spans(&e, &[1, 2, 3]).is_none());
        assert!(spans(&e, &[1, 2, 3, 4, 5]).is_none());

        // The first star takes as little as it can, the last as much as is left.
        let e = expect(vec![
            Item::Byte(0x84),
            capture("A", None),
            Item::Byte(0xA5),
            capture("B", None),
        ]);
        assert_eq!(e.to_string(), "[84 $A:.. A5 $B:..] 9000");
        assert_eq!(
            e.captures().map(|(name, _)| name).collect::<Vec<_>>(),
            ["A", "B"]
        );
        assert_eq!(
            spans(&e, &[0x84, 1, 2, 0xA5, 3, 0xA5, 4]),
            Some(vec![("A".into(), 1..3), ("B".into(), 4..7)])
        );
        let e = expect(vec![capture("A", None), Item::Byte(0)]);
        assert_eq!(spans(&e, &[0]), Some(vec![("A".into(), 0..0)]));
    }

    #[test]
    fn matching_backtracks_only_the_last_star_and_stays_fast() {
        // `.. 00 01 .. 00 02` against a long run of 00 bytes ending in 00 01 00 02.
        let mut data = vec![0u8; 20_000];
        data.extend_from_slice(&[0, 1, 0, 2]);
        let e = expect(vec![
            Item::Rest,
            Item::Byte(0),
            Item::Byte(1),
            Item::Rest,
            Item::Byte(0),
            Item::Byte(2),
        ]);
        assert!(spans(&e, &data).is_some());
        data.push(3);
        assert!(spans(&e, &data).is_none());
        let huge = expect(vec![capture("X", Some(usize::MAX))]);
        assert!(spans(&huge, &data).is_none());
    }
}
