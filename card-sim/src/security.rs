//! Access rights and security states (`pboc-spec.md` §2.1).
//!
//! A rights byte `XY` is satisfied when the current DF's security state `S` has `Y <= S <= X`;
//! `F0` always holds, `EF` never; `0Y` asks the MF's state to be at least `Y`. A state is
//! raised by EXTERNAL AUTHENTICATE or VERIFY PIN to the key's "next state" and is volatile.

/// The volatile security states: the MF's and the current DF's.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SecurityState {
    mf: u8,
    df: u8,
}

impl SecurityState {
    /// Whether `right` is satisfied; `at_mf` when the current DF is the MF.
    pub fn allows(&self, right: u8, at_mf: bool) -> bool {
        let (x, y) = (right >> 4, right & 0x0F);
        if x == 0 {
            return self.mf >= y;
        }
        let s = if at_mf { self.mf } else { self.df };
        y <= s && s <= x
    }

    /// Sets the current DF's state (the MF's too when the MF is current).
    pub fn set(&mut self, state: u8, at_mf: bool) {
        self.df = state & 0x0F;
        if at_mf {
            self.mf = self.df;
        }
    }

    /// Entering another DF clears the DF state (the MF's is kept).
    pub fn enter_df(&mut self, at_mf: bool) {
        self.df = if at_mf { self.mf } else { 0 };
    }
}

/// How writes to a file or key must be protected, from the high bits of its type byte: 0x80
/// line-protection MAC, 0x40 (alone or with 0x80) MAC and encryption (the choice of
/// `pboc-spec.md` §2.1, where the vendor manuals disagree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protection {
    /// Plain commands (CLA 00/80).
    Plain,
    /// CLA 04/84 with a MAC over the plain data.
    Mac,
    /// CLA 04/84 with the data encrypted and MACed.
    MacEncrypted,
}

impl Protection {
    /// The protection a type byte asks for.
    pub fn of_type(type_byte: u8) -> Self {
        match type_byte & 0xC0 {
            0x00 => Self::Plain,
            0x80 => Self::Mac,
            _ => Self::MacEncrypted,
        }
    }

    /// Whether a command with `cla` has the secure-messaging bit this protection requires.
    pub fn matches_cla(self, cla: u8) -> bool {
        (cla & 0x04 != 0) == (self != Self::Plain)
    }
}

/// The FMCOS EF access byte: b8 plain reads allowed, b4b3 the read line-protection key ID,
/// b2b1 the write key ID (11 → 00, 10 → 01, 01 → 02, 00 → 03).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AccessByte(pub u8);

impl AccessByte {
    /// Whether plain (unprotected) reads are allowed.
    pub fn plain_reads(self) -> bool {
        self.0 & 0x80 != 0
    }

    /// The ID of the line-protection key (type 36) for protected reads.
    pub fn read_key_id(self) -> u8 {
        3 - ((self.0 >> 2) & 0x03)
    }

    /// The ID of the line-protection key for protected writes.
    pub fn write_key_id(self) -> u8 {
        3 - (self.0 & 0x03)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xy_rule() {
        let mut s = SecurityState::default();
        assert!(s.allows(0xF0, false));
        assert!(!s.allows(0xEF, false));
        assert!(!s.allows(0xF1, false));
        s.set(1, false);
        assert!(s.allows(0xF1, false) && s.allows(0x11, false) && !s.allows(0xF2, false));
        assert!(!s.allows(0x01, false), "0Y looks at the MF state");
        s.set(2, true);
        assert!(s.allows(0x01, false) && s.allows(0x02, true));
        s.set(0x0F, true);
        assert!(!s.allows(0xEF, true), "EF is never satisfied");
        s.enter_df(false);
        assert!(s.allows(0x0F, false) && !s.allows(0xF1, false));
    }

    #[test]
    fn access_byte_key_ids_and_protection_bits() {
        assert_eq!(AccessByte(0xFF).write_key_id(), 0);
        assert_eq!(AccessByte(0xFE).write_key_id(), 1);
        assert_eq!(AccessByte(0xF0).read_key_id(), 3);
        assert!(!AccessByte(0x7F).plain_reads());
        assert_eq!(Protection::of_type(0xA8), Protection::Mac);
        assert_eq!(Protection::of_type(0xE8), Protection::MacEncrypted);
        assert_eq!(Protection::of_type(0x68), Protection::MacEncrypted);
        assert!(Protection::Mac.matches_cla(0x04) && !Protection::Plain.matches_cla(0x04));
    }
}
