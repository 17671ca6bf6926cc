//! Status words (ISO/IEC 7816-4 clause 5.6 and the FMCOS/PBOC codes of `pboc-spec.md` §3).

use std::fmt;

/// A status word. Codes ykt acts on have their own variant; any other is `Unknown`, so every
/// `u16` round-trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sw {
    /// 9000: success.
    Ok,
    /// 61xx: xx more bytes available (GET RESPONSE); 00 means 256.
    MoreData(u8),
    /// 6281: returned data may be corrupted.
    DataMayBeCorrupted,
    /// 6283: selected file invalidated / key checksum error.
    FileInvalidated,
    /// 63Cx: verification failed, x tries left.
    TriesLeft(u8),
    /// 6581: memory failure (EEPROM write failed).
    MemoryFailure,
    /// 6700: wrong length.
    WrongLength,
    /// 6900: CLA does not match the line-protection requirement.
    ClaMismatchesProtection,
    /// 6901: invalid state.
    InvalidState,
    /// 6981: command incompatible with the file structure.
    IncompatibleFileStructure,
    /// 6982: security status not satisfied.
    SecurityStatusNotSatisfied,
    /// 6983: key or PIN blocked.
    Blocked,
    /// 6984: random number invalid (no or used challenge).
    InvalidRandom,
    /// 6985: conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// 6986: no current EF.
    NoCurrentEf,
    /// 6987: secure-messaging data object missing.
    SmObjectMissing,
    /// 6988: secure-messaging data object incorrect.
    SmObjectIncorrect,
    /// 6A80: incorrect data field.
    WrongData,
    /// 6A81: function not supported / card locked.
    FunctionNotSupported,
    /// 6A82: file not found.
    FileNotFound,
    /// 6A83: record not found.
    RecordNotFound,
    /// 6A84: not enough memory space.
    NotEnoughSpace,
    /// 6A86: incorrect P1 P2.
    WrongP1P2,
    /// 6A88: referenced key or data not found.
    ReferenceNotFound,
    /// 6A89: the file or key already exists.
    AlreadyExists,
    /// 6B00: wrong offset.
    WrongOffset,
    /// 6Cxx: wrong Le; xx is the right one (00 means 256).
    WrongLe(u8),
    /// 6D00: INS not supported.
    InsNotSupported,
    /// 6E00: CLA not supported.
    ClaNotSupported,
    /// 6F00: no precise diagnosis.
    NoPreciseDiagnosis,
    /// 9302: MAC invalid.
    MacInvalid,
    /// 9303: application permanently locked.
    ApplicationLocked,
    /// 9401: insufficient balance.
    InsufficientBalance,
    /// 9402: transaction counter at its maximum.
    CounterAtMaximum,
    /// 9403: key index not supported.
    KeyIndexNotSupported,
    /// 9406: required MAC not available.
    MacNotAvailable,
    /// Any other status word.
    Unknown(u16),
}

impl Sw {
    /// The two status bytes as a number.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Ok => 0x9000,
            Self::MoreData(n) => 0x6100 | u16::from(n),
            Self::DataMayBeCorrupted => 0x6281,
            Self::FileInvalidated => 0x6283,
            Self::TriesLeft(n) => 0x63C0 | u16::from(n & 0x0F),
            Self::MemoryFailure => 0x6581,
            Self::WrongLength => 0x6700,
            Self::ClaMismatchesProtection => 0x6900,
            Self::InvalidState => 0x6901,
            Self::IncompatibleFileStructure => 0x6981,
            Self::SecurityStatusNotSatisfied => 0x6982,
            Self::Blocked => 0x6983,
            Self::InvalidRandom => 0x6984,
            Self::ConditionsNotSatisfied => 0x6985,
            Self::NoCurrentEf => 0x6986,
            Self::SmObjectMissing => 0x6987,
            Self::SmObjectIncorrect => 0x6988,
            Self::WrongData => 0x6A80,
            Self::FunctionNotSupported => 0x6A81,
            Self::FileNotFound => 0x6A82,
            Self::RecordNotFound => 0x6A83,
            Self::NotEnoughSpace => 0x6A84,
            Self::WrongP1P2 => 0x6A86,
            Self::ReferenceNotFound => 0x6A88,
            Self::AlreadyExists => 0x6A89,
            Self::WrongOffset => 0x6B00,
            Self::WrongLe(n) => 0x6C00 | u16::from(n),
            Self::InsNotSupported => 0x6D00,
            Self::ClaNotSupported => 0x6E00,
            Self::NoPreciseDiagnosis => 0x6F00,
            Self::MacInvalid => 0x9302,
            Self::ApplicationLocked => 0x9303,
            Self::InsufficientBalance => 0x9401,
            Self::CounterAtMaximum => 0x9402,
            Self::KeyIndexNotSupported => 0x9403,
            Self::MacNotAvailable => 0x9406,
            Self::Unknown(sw) => sw,
        }
    }

    /// The status word for two status bytes.
    pub fn from_u16(sw: u16) -> Self {
        let low = (sw & 0xFF) as u8;
        match sw {
            0x9000 => Self::Ok,
            0x6100..=0x61FF => Self::MoreData(low),
            0x6281 => Self::DataMayBeCorrupted,
            0x6283 => Self::FileInvalidated,
            0x63C0..=0x63CF => Self::TriesLeft(low & 0x0F),
            0x6581 => Self::MemoryFailure,
            0x6700 => Self::WrongLength,
            0x6900 => Self::ClaMismatchesProtection,
            0x6901 => Self::InvalidState,
            0x6981 => Self::IncompatibleFileStructure,
            0x6982 => Self::SecurityStatusNotSatisfied,
            0x6983 => Self::Blocked,
            0x6984 => Self::InvalidRandom,
            0x6985 => Self::ConditionsNotSatisfied,
            0x6986 => Self::NoCurrentEf,
            0x6987 => Self::SmObjectMissing,
            0x6988 => Self::SmObjectIncorrect,
            0x6A80 => Self::WrongData,
            0x6A81 => Self::FunctionNotSupported,
            0x6A82 => Self::FileNotFound,
            0x6A83 => Self::RecordNotFound,
            0x6A84 => Self::NotEnoughSpace,
            0x6A86 => Self::WrongP1P2,
            0x6A88 => Self::ReferenceNotFound,
            0x6A89 => Self::AlreadyExists,
            0x6B00 => Self::WrongOffset,
            0x6C00..=0x6CFF => Self::WrongLe(low),
            0x6D00 => Self::InsNotSupported,
            0x6E00 => Self::ClaNotSupported,
            0x6F00 => Self::NoPreciseDiagnosis,
            0x9302 => Self::MacInvalid,
            0x9303 => Self::ApplicationLocked,
            0x9401 => Self::InsufficientBalance,
            0x9402 => Self::CounterAtMaximum,
            0x9403 => Self::KeyIndexNotSupported,
            0x9406 => Self::MacNotAvailable,
            other => Self::Unknown(other),
        }
    }

    /// SW1 and SW2.
    pub fn to_bytes(self) -> [u8; 2] {
        self.to_u16().to_be_bytes()
    }

    /// Whether the command succeeded (9000, or 61xx: success with more data).
    pub fn is_success(self) -> bool {
        matches!(self, Self::Ok | Self::MoreData(_))
    }
}

impl fmt::Display for Sw {
    /// Four upper-case hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.to_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_word_round_trips() {
        for sw in 0..=u16::MAX {
            assert_eq!(Sw::from_u16(sw).to_u16(), sw, "{sw:04X}");
        }
        assert_eq!(Sw::from_u16(0x63C2), Sw::TriesLeft(2));
        assert_eq!(Sw::from_u16(0x9401), Sw::InsufficientBalance);
        assert_eq!(Sw::from_u16(0x6A99), Sw::Unknown(0x6A99));
        assert_eq!(Sw::WrongLe(0x10).to_string(), "6C10");
    }
}
