//! Byte strings that may hold secret bytes: the hex templates of command lines and `let`
//! statements, the values variables hold, and [`Redacted`], the only form in which a
//! transcript, an error or an export ever shows them.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

/// What a secret byte is shown as.
const REDACTED_BYTE: &str = "**";

/// What replaces a message that would quote secret bytes.
pub(super) const REDACTED: &str = "<redacted>";

/// A byte string as it may be shown: every secret byte is `None`, written `**`.
///
/// `Display` and `Debug` give upper-case hex without separators, e.g. `0020000003******`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redacted(Vec<Option<u8>>);

impl Redacted {
    /// `bytes` with the bytes in `secret` redacted (a range past the end is cut to it).
    pub fn masked(bytes: &[u8], secret: std::ops::Range<usize>) -> Self {
        Self(
            bytes
                .iter()
                .enumerate()
                .map(|(i, b)| (!secret.contains(&i)).then_some(*b))
                .collect(),
        )
    }

    /// The bytes, `None` where a byte was secret.
    pub fn bytes(&self) -> &[Option<u8>] {
        &self.0
    }

    /// Whether any byte was redacted.
    pub fn is_redacted(&self) -> bool {
        self.0.iter().any(Option::is_none)
    }

    /// The number of bytes, redacted ones included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| match byte {
            Some(byte) => write!(f, "{byte:02X}"),
            None => f.write_str(REDACTED_BYTE),
        })
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Bytes with a secrecy flag for each. No `Debug`: the bytes may be key material.
#[derive(Clone, Default)]
pub(super) struct Value {
    bytes: Vec<u8>,
    secret: Vec<bool>,
}

impl Value {
    /// Bytes that are all public, or all secret.
    pub(super) fn new(bytes: &[u8], secret: bool) -> Self {
        Self {
            bytes: bytes.to_vec(),
            secret: vec![secret; bytes.len()],
        }
    }

    /// The bytes themselves, for the card.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether any byte is secret.
    pub(super) fn has_secret(&self) -> bool {
        self.secret.contains(&true)
    }

    /// Marks every byte from `start` on as secret.
    pub(super) fn hide_from(&mut self, start: usize) {
        self.secret.iter_mut().skip(start).for_each(|s| *s = true);
    }

    /// The bytes of `range`, with their secrecy.
    pub(super) fn slice(&self, range: Range<usize>) -> Self {
        Self {
            bytes: self.bytes[range.clone()].to_vec(),
            secret: self.secret[range].to_vec(),
        }
    }

    /// The bytes as they may be shown.
    pub(super) fn redacted(&self) -> Redacted {
        Redacted(
            self.bytes
                .iter()
                .zip(&self.secret)
                .map(|(&byte, &secret)| (!secret).then_some(byte))
                .collect(),
        )
    }

    fn append(&mut self, other: &Self) {
        self.bytes.extend_from_slice(&other.bytes);
        self.secret.extend_from_slice(&other.secret);
    }
}

/// The variables defined so far, by name.
pub(super) type Vars = HashMap<String, Value>;

/// One piece of a hex template.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Part {
    /// Literal bytes.
    Bytes(Vec<u8>),
    /// The value of a variable.
    Var(String),
}

/// The bytes of a command line or a `let`: literal hex and `$NAME` references.
#[derive(Clone, Default, PartialEq, Eq)]
pub(super) struct Template(Vec<Part>);

impl Template {
    /// Appends a literal byte.
    pub(super) fn push_byte(&mut self, byte: u8) {
        match self.0.last_mut() {
            Some(Part::Bytes(bytes)) => bytes.push(byte),
            _ => self.0.push(Part::Bytes(vec![byte])),
        }
    }

    /// Appends a variable reference.
    pub(super) fn push_var(&mut self, name: &str) {
        self.0.push(Part::Var(name.to_string()));
    }

    /// The parts, in order.
    pub(super) fn parts(&self) -> impl Iterator<Item = &Part> {
        self.0.iter()
    }

    /// Whether the template has no parts.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes, literal ones public and variables' ones as secret as the variable's; the
    /// error names the first variable `vars` does not hold.
    pub(super) fn eval(&self, vars: &Vars) -> Result<Value, String> {
        let mut value = Value::default();
        for part in &self.0 {
            match part {
                Part::Bytes(bytes) => value.append(&Value::new(bytes, false)),
                Part::Var(name) => value.append(vars.get(name).ok_or_else(|| name.clone())?),
            }
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_bytes_are_shown_as_stars() {
        let mut value = Value::new(&[0x00, 0x20, 0x00, 0x00, 0x02, 0x12, 0x34], false);
        assert_eq!(value.redacted().to_string(), "00200000021234");
        assert!(!value.has_secret());
        value.hide_from(5);
        let shown = value.redacted();
        assert_eq!(
            format!("{shown} {shown:?}"),
            "0020000002**** 0020000002****"
        );
        assert!(shown.is_redacted() && value.has_secret());
        assert_eq!((shown.len(), shown.is_empty()), (7, false));
        assert_eq!(shown.bytes()[4..], [Some(2), None, None]);
        assert_eq!(value.slice(3..6).redacted().to_string(), "0002**");
        assert_eq!(value.bytes()[5..], [0x12, 0x34]);
    }

    #[test]
    fn templates_join_literals_and_variables() {
        let mut template = Template::default();
        assert!(template.is_empty());
        template.push_byte(0x80);
        template.push_byte(0x82);
        template.push_var("KEY");
        template.push_byte(0x00);
        assert_eq!(template.eval(&Vars::new()).err().as_deref(), Some("KEY"));
        let vars = Vars::from([("KEY".to_string(), Value::new(&[0xAA, 0xBB], true))]);
        assert_eq!(
            template.eval(&vars).unwrap().redacted().to_string(),
            "8082****00"
        );
    }
}
