//! The parser: physical lines to logical lines (comments, blank lines, `\` continuations),
//! logical lines to statements. It reads any text without panicking, in time linear in its
//! length, and stops at the first problem.

use super::bytes::{Part, Template};
use super::error::{ErrorKind, ScriptError};
use super::pattern::{Expectation, Item, SwPattern};
use super::{DEFAULT_CHANNEL, Let, Line, Send, Step};
use std::collections::{HashMap, HashSet};

/// The longest capture: an extended Ne.
const MAX_CAPTURE: usize = 65536;

/// The most bytes a `let` or a command line may be able to build (1 MiB). An APDU never
/// needs more than 65544, but a rest capture (`$R:..`) counts as 65536 bytes however short the
/// response turns out, so the bound leaves room for a few of them. Bounding values at parse
/// time keeps a short script such as `let A = $A $A` repeated from asking for gigabytes when
/// it runs or is exported; what is too long for an APDU still fails when it is sent.
const MAX_VALUE: usize = 1 << 20;

/// Parses a whole script; lines after `exit` or `quit` are not read.
pub(super) fn parse(text: &str) -> Result<Vec<Line>, ScriptError> {
    let mut parser = Parser::default();
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, physical) in text.lines().enumerate() {
        let content = physical
            .split_once('#')
            .map_or(physical, |(before, _)| before)
            .trim();
        if content.is_empty() {
            continue;
        }
        let (number, mut logical) = pending.take().unwrap_or((index + 1, String::new()));
        if let Some(head) = content.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            pending = Some((number, logical));
            continue;
        }
        logical.push_str(content);
        let error = |kind| ScriptError { line: number, kind };
        match parser.statement(&logical).map_err(error)? {
            Some(step) => lines.push(Line { number, step }),
            None => return Ok(lines),
        }
    }
    match pending {
        Some((line, _)) => Err(ScriptError {
            line,
            kind: ErrorKind::Continuation,
        }),
        None => Ok(lines),
    }
}

/// What the parser knows between lines.
#[derive(Default)]
struct Parser {
    /// The variables defined so far, by `let` or by a capture on an earlier line, with the
    /// most bytes each can hold.
    defined: HashMap<String, usize>,
}

impl Parser {
    /// Parses one logical line: `None` for `exit` or `quit`.
    fn statement(&mut self, text: &str) -> Result<Option<Step>, ErrorKind> {
        let mut c = Cursor(text);
        if c.keyword("exit") || c.keyword("quit") {
            c.end()?;
            return Ok(None);
        }
        if c.keyword("let") {
            return self.let_statement(c).map(Some);
        }
        let channel = if c.eat('@') {
            let name = c.name().ok_or(ErrorKind::ChannelName)?;
            c.skip_ws();
            name
        } else {
            DEFAULT_CHANNEL
        };
        let channel = channel.to_string();
        if c.keyword("reset") {
            c.end()?;
            return Ok(Some(Step::Reset { channel }));
        }
        let secret = c.keyword("secret");
        let apdu = self.template(&mut c)?;
        let expect = if c.eat_str("=>") {
            Some(self.expectation(&mut c)?)
        } else {
            None
        };
        c.end()?;
        if let Some(expect) = &expect {
            for (name, len) in expect.captures() {
                self.defined
                    .insert(name.to_string(), len.unwrap_or(MAX_CAPTURE));
            }
        }
        Ok(Some(Step::Send(Send {
            channel,
            secret,
            apdu,
            expect,
        })))
    }

    /// `let [secret] NAME = BYTES`, after `let`.
    fn let_statement(&mut self, mut c: Cursor<'_>) -> Result<Step, ErrorKind> {
        let secret = c.keyword("secret");
        let name = c.name().ok_or(ErrorKind::Let)?.to_string();
        c.skip_ws();
        if !c.eat('=') {
            return Err(ErrorKind::Let);
        }
        let value = self.template(&mut c)?;
        c.end()?;
        let bound = self.bound(&value);
        self.defined.insert(name.clone(), bound);
        Ok(Step::Let(Let {
            name,
            secret,
            value,
        }))
    }

    /// Hex bytes and `$NAME`s up to `=>` or the end; at least one.
    fn template(&self, c: &mut Cursor<'_>) -> Result<Template, ErrorKind> {
        let mut template = Template::default();
        loop {
            c.skip_ws();
            match c.peek() {
                None => break,
                Some('=') if c.0.starts_with("=>") => break,
                Some('$') => {
                    let name = self.reference(c)?;
                    if c.peek() == Some(':') {
                        return Err(ErrorKind::CaptureOutsidePattern);
                    }
                    template.push_var(name);
                }
                Some(_) => template.push_byte(c.hex_byte()?),
            }
        }
        if template.is_empty() {
            return Err(ErrorKind::NoBytes);
        }
        if self.bound(&template) > MAX_VALUE {
            return Err(ErrorKind::TooLong);
        }
        Ok(template)
    }

    /// The most bytes `template` can evaluate to.
    fn bound(&self, template: &Template) -> usize {
        template
            .parts()
            .map(|part| match part {
                Part::Bytes(bytes) => bytes.len(),
                Part::Var(name) => self.defined.get(name).copied().unwrap_or(0),
            })
            .fold(0, usize::saturating_add)
    }

    /// `$NAME` or `${NAME}` of a defined variable, at the `$`.
    fn reference<'a>(&self, c: &mut Cursor<'a>) -> Result<&'a str, ErrorKind> {
        let name = c.variable()?;
        if self.defined.contains_key(name) {
            Ok(name)
        } else {
            Err(ErrorKind::Undefined(name.to_string()))
        }
    }

    /// `[PATTERN] SW|SW...`, after `=>`.
    fn expectation(&self, c: &mut Cursor<'_>) -> Result<Expectation, ErrorKind> {
        c.skip_ws();
        let data = if c.eat('[') {
            Some(self.pattern(c)?)
        } else {
            None
        };
        let mut sw = vec![c.sw_pattern()?];
        loop {
            c.skip_ws();
            if !c.eat('|') {
                return Ok(Expectation { data, sw });
            }
            sw.push(c.sw_pattern()?);
        }
    }

    /// The items of a data pattern up to its `]`, after the `[`.
    fn pattern(&self, c: &mut Cursor<'_>) -> Result<Vec<Item>, ErrorKind> {
        let mut items = Vec::new();
        let mut captured = HashSet::new();
        loop {
            c.skip_ws();
            let item = match c.peek() {
                None => return Err(ErrorKind::UnclosedPattern),
                Some(']') => {
                    c.eat(']');
                    return Ok(items);
                }
                Some(wildcard @ ('?' | '.')) => {
                    c.eat(wildcard);
                    if !c.eat(wildcard) || c.peek() == Some(wildcard) {
                        return Err(ErrorKind::Wildcard);
                    }
                    if wildcard == '?' {
                        Item::Any
                    } else {
                        Item::Rest
                    }
                }
                Some('$') if c.capture_follows() => {
                    let name = c.variable()?.to_string();
                    c.eat(':');
                    let len = if c.eat_str("..") {
                        None
                    } else {
                        Some(c.capture_length()?)
                    };
                    if !captured.insert(name.clone()) {
                        return Err(ErrorKind::DuplicateCapture(name));
                    }
                    Item::Capture { name, len }
                }
                Some('$') => Item::Var(self.reference(c)?.to_string()),
                Some(_) => Item::Byte(c.hex_byte()?),
            };
            items.push(item);
        }
    }
}

/// The unread rest of a logical line.
struct Cursor<'a>(&'a str);

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.0.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.0 = &self.0[c.len_utf8()..];
        Some(c)
    }

    fn skip_ws(&mut self) {
        self.0 = self.0.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        self.eat_str(c.encode_utf8(&mut [0; 4]))
    }

    fn eat_str(&mut self, s: &str) -> bool {
        match self.0.strip_prefix(s) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    /// Nothing but whitespace is left.
    fn end(&mut self) -> Result<(), ErrorKind> {
        self.skip_ws();
        self.peek().map_or(Ok(()), |c| Err(ErrorKind::Character(c)))
    }

    /// `word` in any case, as a whole word; skips the whitespace after it.
    fn keyword(&mut self, word: &str) -> bool {
        let matched = self
            .0
            .get(..word.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(word))
            && !self.0[word.len()..].starts_with(is_name_char);
        if matched {
            self.0 = self.0[word.len()..].trim_start();
        }
        matched
    }

    /// A name: a letter or `_`, then letters, digits and `_`.
    fn name(&mut self) -> Option<&'a str> {
        if !self
            .0
            .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        {
            return None;
        }
        let len = self.0.find(|c| !is_name_char(c)).unwrap_or(self.0.len());
        let (name, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(name)
    }

    /// `$NAME` or `${NAME}`, at the `$`.
    fn variable(&mut self) -> Result<&'a str, ErrorKind> {
        self.eat('$');
        let braced = self.eat('{');
        let name = self.name().ok_or(ErrorKind::VariableName)?;
        if braced && !self.eat('}') {
            return Err(ErrorKind::VariableName);
        }
        Ok(name)
    }

    /// Whether the `$NAME` here is followed by `:` (a capture).
    fn capture_follows(&self) -> bool {
        let mut ahead = Cursor(self.0);
        ahead.variable().is_ok() && ahead.peek() == Some(':')
    }

    /// Two hex digits.
    fn hex_byte(&mut self) -> Result<u8, ErrorKind> {
        let high = self.hex_digit()?.ok_or(ErrorKind::OddDigits)?;
        let low = self.hex_digit()?.ok_or(ErrorKind::OddDigits)?;
        Ok(high << 4 | low)
    }

    /// A hex digit; `None` at the end or at whitespace.
    fn hex_digit(&mut self) -> Result<Option<u8>, ErrorKind> {
        match self.peek() {
            None => Ok(None),
            Some(c) if c.is_whitespace() => Ok(None),
            Some(c) => {
                let digit = c.to_digit(16).ok_or(ErrorKind::Character(c))?;
                self.bump();
                Ok(Some(digit as u8))
            }
        }
    }

    /// A capture length: a decimal number from 1 to [`MAX_CAPTURE`].
    fn capture_length(&mut self) -> Result<usize, ErrorKind> {
        let len = self
            .0
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(self.0.len());
        let (digits, rest) = self.0.split_at(len);
        self.0 = rest;
        digits
            .parse()
            .ok()
            .filter(|n| (1..=MAX_CAPTURE).contains(n))
            .ok_or(ErrorKind::CaptureLength)
    }

    /// A status-word pattern: two pairs of nibbles (hex or `X`), a space allowed between them.
    fn sw_pattern(&mut self) -> Result<SwPattern, ErrorKind> {
        self.skip_ws();
        let mut nibbles = [None; 4];
        for (i, nibble) in nibbles.iter_mut().enumerate() {
            if i == 2 && self.0.starts_with(' ') {
                self.skip_ws();
            }
            *nibble = match self.bump() {
                Some('X' | 'x') => None,
                Some(c) => Some(c.to_digit(16).ok_or(ErrorKind::StatusWord)? as u8),
                None => return Err(ErrorKind::StatusWord),
            };
        }
        if self.0.starts_with(is_name_char) {
            return Err(ErrorKind::StatusWord);
        }
        Ok(SwPattern::new(nibbles))
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}
