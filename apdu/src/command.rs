//! Command APDUs (ISO/IEC 7816-3 clause 12.1, 7816-4 clause 5.1): the four cases, short and
//! extended length fields.

use crate::error::{ApduError, Result};
use std::fmt;

/// A command APDU.
///
/// `le` is Ne, the number of response bytes expected: `None` when the command has no Le field,
/// `Some(256)` for a short `Le = 00` and `Some(65536)` for an extended `Le = 0000`.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// Class byte.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (empty for cases 1 and 2).
    pub data: Vec<u8>,
    /// Ne, the expected response length, if the command has an Le field.
    pub le: Option<u32>,
    /// Whether the length fields are (or must be) in the extended form.
    pub extended: bool,
}

/// The four command cases of ISO/IEC 7816-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// No data, no Le.
    One,
    /// No data, Le.
    Two,
    /// Data, no Le.
    Three,
    /// Data and Le.
    Four,
}

impl Command {
    /// A case-1 command.
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Self {
            cla,
            ins,
            p1,
            p2,
            data: Vec::new(),
            le: None,
            extended: false,
        }
    }

    /// With command data.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    /// With Ne (1..=65536).
    pub fn with_le(mut self, ne: u32) -> Self {
        self.le = Some(ne);
        self
    }

    /// The command's case.
    pub fn case(&self) -> Case {
        match (self.data.is_empty(), self.le.is_some()) {
            (true, false) => Case::One,
            (true, true) => Case::Two,
            (false, false) => Case::Three,
            (false, true) => Case::Four,
        }
    }

    /// The header `CLA INS P1 P2`.
    pub fn header(&self) -> [u8; 4] {
        [self.cla, self.ins, self.p1, self.p2]
    }

    /// Parses a command APDU.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let (header, body) = match bytes {
            [cla, ins, p1, p2, body @ ..] => ([*cla, *ins, *p1, *p2], body),
            _ => {
                return Err(ApduError::MalformedCommand(
                    "shorter than the 4-byte header",
                ));
            }
        };
        let [cla, ins, p1, p2] = header;
        let mut command = Self::new(cla, ins, p1, p2);
        match body {
            [] => {}
            [le] => command.le = Some(short_ne(*le)),
            [0, rest @ ..] if rest.len() >= 2 => {
                command.extended = true;
                let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let rest = &rest[2..];
                if rest.is_empty() {
                    // Case 2 extended: 00 Le1 Le2.
                    command.le = Some(extended_ne(n));
                } else if n == 0 {
                    return Err(ApduError::MalformedCommand("extended Lc of zero"));
                } else if rest.len() == n {
                    command.data = rest.to_vec();
                } else if rest.len() == n + 2 {
                    command.data = rest[..n].to_vec();
                    command.le = Some(extended_ne(
                        u16::from_be_bytes([rest[n], rest[n + 1]]).into(),
                    ));
                } else {
                    return Err(ApduError::MalformedCommand(
                        "extended Lc does not match the data",
                    ));
                }
            }
            [0, ..] => return Err(ApduError::MalformedCommand("truncated extended length")),
            [lc, rest @ ..] => {
                let n = *lc as usize;
                if rest.len() == n {
                    command.data = rest.to_vec();
                } else if rest.len() == n + 1 {
                    command.data = rest[..n].to_vec();
                    command.le = Some(short_ne(rest[n]));
                } else {
                    return Err(ApduError::MalformedCommand("Lc does not match the data"));
                }
            }
        }
        Ok(command)
    }

    /// Encodes the command: short length fields when they fit and `extended` is not set.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        if self.data.len() > 65535 {
            return Err(ApduError::Encoding("more than 65535 data bytes"));
        }
        if let Some(ne) = self.le
            && !(1..=65536).contains(&ne)
        {
            return Err(ApduError::Encoding("Ne must be 1..=65536"));
        }
        let extended = self.extended || self.data.len() > 255 || self.le.is_some_and(|ne| ne > 256);
        let mut out = Vec::with_capacity(self.data.len() + 9);
        out.extend_from_slice(&self.header());
        if !self.data.is_empty() {
            if extended {
                out.push(0);
                out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
            } else {
                out.push(self.data.len() as u8);
            }
            out.extend_from_slice(&self.data);
        }
        if let Some(ne) = self.le {
            if extended {
                if self.data.is_empty() {
                    out.push(0);
                }
                out.extend_from_slice(&((ne % 65536) as u16).to_be_bytes());
            } else {
                out.push((ne % 256) as u8);
            }
        }
        Ok(out)
    }
}

fn short_ne(le: u8) -> u32 {
    if le == 0 { 256 } else { le.into() }
}

fn extended_ne(le: usize) -> u32 {
    if le == 0 { 65536 } else { le as u32 }
}

impl fmt::Debug for Command {
    /// Upper-case hex of the encoding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_bytes() {
            Ok(bytes) => bytes.iter().try_for_each(|b| write!(f, "{b:02X}")),
            Err(e) => write!(f, "<{e}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(hex: &str) -> Command {
        let bytes = hex::decode(hex).unwrap();
        let command = Command::parse(&bytes).unwrap();
        assert_eq!(command.to_bytes().unwrap(), bytes, "{hex}");
        command
    }

    #[test]
    fn the_four_short_cases() {
        assert_eq!(round_trip("0084000008").case(), Case::Two);
        assert_eq!(round_trip("800E000000").le, Some(256));
        let c = round_trip("00A40000023F01");
        assert_eq!(
            (c.case(), c.data.as_slice()),
            (Case::Three, &[0x3F, 0x01][..])
        );
        let c = round_trip("805001020B0000000001001122334455" /* no Le */);
        assert_eq!(c.case(), Case::Three);
        let c = round_trip("805401000F0000000020161216134600D45737C508");
        assert_eq!((c.case(), c.le), (Case::Four, Some(8)));
        assert_eq!(round_trip("80DC0000").case(), Case::One);
    }

    #[test]
    fn extended_cases() {
        let c = round_trip("00B00000000100");
        assert_eq!((c.case(), c.le, c.extended), (Case::Two, Some(256), true));
        assert_eq!(round_trip("00B00000000000").le, Some(65536));
        let data = "AB".repeat(300);
        let c = round_trip(&format!("00D60000{:06X}{data}", 300));
        assert_eq!((c.case(), c.data.len()), (Case::Three, 300));
        let c = round_trip(&format!("00D60000{:06X}{data}0010", 300));
        assert_eq!((c.case(), c.le), (Case::Four, Some(16)));
    }

    #[test]
    fn malformed_commands_are_refused() {
        for bad in [
            "",
            "00A400",
            "00A40000023F",
            "00A40000023F0100AA",
            "00D60000000003AABB",
            "00D600000000",
        ] {
            assert!(Command::parse(&hex::decode(bad).unwrap()).is_err(), "{bad}");
        }
        assert_eq!(Command::parse(&[0, 0xB0, 0, 0, 0]).unwrap().le, Some(256));
        assert!(Command::new(0, 0xB0, 0, 0).with_le(0).to_bytes().is_err());
        assert!(
            Command::new(0, 0xB0, 0, 0)
                .with_le(65537)
                .to_bytes()
                .is_err()
        );
    }

    #[test]
    fn builder_chooses_the_length_form() {
        let c = Command::new(0x00, 0xB0, 0, 0).with_le(256);
        assert_eq!(c.to_bytes().unwrap(), [0, 0xB0, 0, 0, 0]);
        let c = Command::new(0x00, 0xB0, 0, 0).with_le(257);
        assert_eq!(c.to_bytes().unwrap(), [0, 0xB0, 0, 0, 0, 0x01, 0x01]);
        assert_eq!(
            format!("{:?}", Command::new(0x80, 0x5C, 0, 2).with_le(4)),
            "805C000204"
        );
    }
}
