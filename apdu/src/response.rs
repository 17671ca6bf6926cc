//! Response APDUs: data followed by SW1 SW2.

use crate::error::{ApduError, Result};
use crate::sw::Sw;
use std::fmt;

/// A response APDU.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// Response data.
    pub data: Vec<u8>,
    /// Status word.
    pub sw: Sw,
}

impl Response {
    /// A response with data and a status word.
    pub fn new(data: impl Into<Vec<u8>>, sw: Sw) -> Self {
        Self {
            data: data.into(),
            sw,
        }
    }

    /// A bare status word.
    pub fn status(sw: Sw) -> Self {
        Self {
            data: Vec::new(),
            sw,
        }
    }

    /// Parses `data || SW1 || SW2`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        match bytes {
            [data @ .., sw1, sw2] => Ok(Self {
                data: data.to_vec(),
                sw: Sw::from_u16(u16::from_be_bytes([*sw1, *sw2])),
            }),
            _ => Err(ApduError::MalformedResponse(bytes.len())),
        }
    }

    /// `data || SW1 || SW2`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_bytes());
        out
    }
}

impl fmt::Debug for Response {
    /// Upper-case hex of data, a space, and the status word.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.data.iter().try_for_each(|b| write!(f, "{b:02X}"))?;
        write!(f, " {}", self.sw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_encode() {
        let r = Response::parse(&[0xFA, 0x00, 0x06, 0x6D, 0x90, 0x00]).unwrap();
        assert_eq!(r, Response::new([0xFA, 0x00, 0x06, 0x6D], Sw::Ok));
        assert_eq!(r.to_bytes(), [0xFA, 0x00, 0x06, 0x6D, 0x90, 0x00]);
        assert_eq!(format!("{r:?}"), "FA00066D 9000");
        assert_eq!(
            Response::parse(&[0x69]),
            Err(ApduError::MalformedResponse(1))
        );
    }
}
