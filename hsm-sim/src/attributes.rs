//! Key attributes, fixed when a key is created and bound to its blob (in the spirit of the
//! ANSI X9.143 / TR-31 key block header): what the key is for, its algorithm, the operations it
//! may take part in, whether it may leave the HSM, and its version byte.
//!
//! The canonical encoding is five bytes, `usage algorithm modes exportability version`, each
//! code listed on its type. It is the associated data of the blob's AEAD, so changing any
//! attribute of a blob makes it unopenable.

use crate::error::{HsmError, Result};
use std::fmt;
use std::ops::BitOr;
use ykt_crypto::{Profile, SymmetricAlgorithm};

/// What a key is for: the e-purse key templates (`pboc-spec.md` §4), key encryption and
/// signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyUsage {
    /// Purchase (MPK → DPK, card key type 3E). Code 01.
    Purchase,
    /// Load (MLK → DLK, 3F). Code 02.
    Load,
    /// Transaction certificate (MTK → DTK, 34). Code 03.
    Tac,
    /// Unload (3D). Code 04.
    Unload,
    /// Overdraft limit update (3C). Code 05.
    Overdraft,
    /// Application maintenance / line protection (36). Code 06.
    Maintenance,
    /// PIN unblock (37). Code 07.
    PinUnblock,
    /// PIN reload (38). Code 08.
    PinReload,
    /// External authentication (39). Code 09.
    ExternalAuth,
    /// Application (DF) master key (39/00): the key under which keys are written. Code 0A.
    AppMaster,
    /// Key encryption (KEK, transport key). Code 10.
    KeyEncryption,
    /// Digital signature (SM2, P-256). Code 20.
    Signature,
}

impl KeyUsage {
    const ALL: [Self; 12] = [
        Self::Purchase,
        Self::Load,
        Self::Tac,
        Self::Unload,
        Self::Overdraft,
        Self::Maintenance,
        Self::PinUnblock,
        Self::PinReload,
        Self::ExternalAuth,
        Self::AppMaster,
        Self::KeyEncryption,
        Self::Signature,
    ];

    /// The canonical code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Purchase => 0x01,
            Self::Load => 0x02,
            Self::Tac => 0x03,
            Self::Unload => 0x04,
            Self::Overdraft => 0x05,
            Self::Maintenance => 0x06,
            Self::PinUnblock => 0x07,
            Self::PinReload => 0x08,
            Self::ExternalAuth => 0x09,
            Self::AppMaster => 0x0A,
            Self::KeyEncryption => 0x10,
            Self::Signature => 0x20,
        }
    }

    /// The usage with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.code() == code)
    }

    /// Lower-case name (`purchase`, `pin_unblock`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::Load => "load",
            Self::Tac => "tac",
            Self::Unload => "unload",
            Self::Overdraft => "overdraft",
            Self::Maintenance => "maintenance",
            Self::PinUnblock => "pin_unblock",
            Self::PinReload => "pin_reload",
            Self::ExternalAuth => "external_auth",
            Self::AppMaster => "app_master",
            Self::KeyEncryption => "key_encryption",
            Self::Signature => "signature",
        }
    }

    /// The FMCOS key type a card key of this usage is written with (`pboc-spec.md` §2.1), for
    /// the e-purse usages.
    pub const fn card_key_type(self) -> Option<u8> {
        match self {
            Self::Purchase => Some(0x3E),
            Self::Load => Some(0x3F),
            Self::Tac => Some(0x34),
            Self::Unload => Some(0x3D),
            Self::Overdraft => Some(0x3C),
            Self::Maintenance => Some(0x36),
            Self::PinUnblock => Some(0x37),
            Self::PinReload => Some(0x38),
            Self::ExternalAuth | Self::AppMaster => Some(0x39),
            Self::KeyEncryption | Self::Signature => None,
        }
    }

    /// True for the e-purse templates (everything but key encryption and signature).
    pub const fn is_epurse(self) -> bool {
        self.card_key_type().is_some()
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// SM4, 16-byte key. Code 01.
    Sm4,
    /// Two-key 3DES, 16-byte key. Code 02.
    TripleDes,
    /// AES-128. Code 03.
    Aes128,
    /// AES-256. Code 04.
    Aes256,
    /// SM2 private key (32-byte scalar). Code 10.
    Sm2,
    /// ECDSA P-256 private key (32-byte scalar). Code 11.
    P256,
}

impl KeyAlgorithm {
    const ALL: [Self; 6] = [
        Self::Sm4,
        Self::TripleDes,
        Self::Aes128,
        Self::Aes256,
        Self::Sm2,
        Self::P256,
    ];

    /// The canonical code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Sm4 => 0x01,
            Self::TripleDes => 0x02,
            Self::Aes128 => 0x03,
            Self::Aes256 => 0x04,
            Self::Sm2 => 0x10,
            Self::P256 => 0x11,
        }
    }

    /// The algorithm with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.code() == code)
    }

    /// Lower-case name (`sm4`, `3des`, `aes128`, `aes256`, `sm2`, `p256`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sm4 => "sm4",
            Self::TripleDes => "3des",
            Self::Aes128 => "aes128",
            Self::Aes256 => "aes256",
            Self::Sm2 => "sm2",
            Self::P256 => "p256",
        }
    }

    /// Length of the secret material in bytes (key or private scalar).
    pub const fn secret_len(self) -> usize {
        match self {
            Self::Sm4 | Self::TripleDes | Self::Aes128 => 16,
            Self::Aes256 | Self::Sm2 | Self::P256 => 32,
        }
    }

    /// The block cipher of a symmetric algorithm; `None` for SM2 and P-256.
    pub const fn symmetric(self) -> Option<SymmetricAlgorithm> {
        match self {
            Self::Sm4 => Some(SymmetricAlgorithm::Sm4),
            Self::TripleDes => Some(SymmetricAlgorithm::TripleDes),
            Self::Aes128 => Some(SymmetricAlgorithm::Aes128),
            Self::Aes256 => Some(SymmetricAlgorithm::Aes256),
            Self::Sm2 | Self::P256 => None,
        }
    }

    /// The e-purse profile of this algorithm (PBOC for 3DES, ykt SM4 v1 for SM4).
    pub const fn profile(self) -> Option<Profile> {
        match self {
            Self::TripleDes => Some(Profile::PbocDes),
            Self::Sm4 => Some(Profile::YktSm4V1),
            _ => None,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The operations a key may take part in, as a set. Combine with `|`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Modes(u8);

impl Modes {
    /// The empty set: what an operation that needs no mode asks for (a key itself always has
    /// at least one mode).
    pub const NONE: Self = Self(0);
    /// Diversify child keys from this key (PBOC derivation).
    pub const DERIVE: Self = Self(0x01);
    /// Compute and verify MACs, MAC1/MAC2 and TACs with this key itself.
    pub const MAC: Self = Self(0x02);
    /// Encrypt with this key itself: wrap keys (WRITE KEY), external-auth cryptograms.
    pub const ENCRYPT: Self = Self(0x04);
    /// Sign (asymmetric keys).
    pub const SIGN: Self = Self(0x08);

    const KNOWN: u8 = 0x0F;
    const NAMES: [(Self, &'static str); 4] = [
        (Self::DERIVE, "derive"),
        (Self::MAC, "mac"),
        (Self::ENCRYPT, "encrypt"),
        (Self::SIGN, "sign"),
    ];

    /// The canonical bit mask.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set with these bits; unknown bits are refused.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::KNOWN == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// True if every mode of `other` is in this set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Modes {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for Modes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(
                Self::NAMES
                    .iter()
                    .filter(|(m, _)| self.contains(*m))
                    .map(|(_, n)| n),
            )
            .finish()
    }
}

/// Whether a key, or keys diversified from it, may leave the HSM, and how. Ordered from the
/// most to the least restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exportability {
    /// Neither the key nor anything derived from it ever leaves the HSM. Code 00.
    None,
    /// Keys diversified from it may leave the HSM: written to cards under a card key (WRITE
    /// KEY) or, once derived into blobs of their own, exported under a key-encryption key (a
    /// school's level keys in its key package); the key itself never leaves. The usual
    /// master-key setting. Code 01.
    DerivedOnly,
    /// The key itself may also be written or exported under a key-encryption key (for example
    /// a purchase master key written to PSAMs). Code 02.
    UnderKek,
}

impl Exportability {
    /// The widest exportability a key derived from a key of this exportability may have:
    /// nothing for [`Self::None`], export under a KEK otherwise.
    pub const fn derived_ceiling(self) -> Self {
        match self {
            Self::None => Self::None,
            Self::DerivedOnly | Self::UnderKek => Self::UnderKek,
        }
    }

    /// The canonical code.
    pub const fn code(self) -> u8 {
        match self {
            Self::None => 0x00,
            Self::DerivedOnly => 0x01,
            Self::UnderKek => 0x02,
        }
    }

    /// The exportability with this code.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0x00 => Some(Self::None),
            0x01 => Some(Self::DerivedOnly),
            0x02 => Some(Self::UnderKek),
            _ => None,
        }
    }
}

/// The attributes of one key, checked for consistency when made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyAttributes {
    usage: KeyUsage,
    algorithm: KeyAlgorithm,
    modes: Modes,
    exportability: Exportability,
    version: u8,
}

impl KeyAttributes {
    /// Length of the canonical encoding.
    pub const ENCODED_LEN: usize = 5;

    /// Checks and builds a set of attributes:
    /// - e-purse usages: SM4 or 3DES, modes among derive, MAC and encrypt;
    /// - key encryption: SM4, 3DES or AES, modes among derive and encrypt;
    /// - signature: SM2 or P-256, mode sign only, never exportable;
    /// - at least one mode.
    pub fn new(
        usage: KeyUsage,
        algorithm: KeyAlgorithm,
        modes: Modes,
        exportability: Exportability,
        version: u8,
    ) -> Result<Self> {
        let (algorithms, allowed): (&[KeyAlgorithm], Modes) = match usage {
            KeyUsage::KeyEncryption => (
                &[
                    KeyAlgorithm::Sm4,
                    KeyAlgorithm::TripleDes,
                    KeyAlgorithm::Aes128,
                    KeyAlgorithm::Aes256,
                ],
                Modes::DERIVE | Modes::ENCRYPT,
            ),
            KeyUsage::Signature => (&[KeyAlgorithm::Sm2, KeyAlgorithm::P256], Modes::SIGN),
            _ => (
                &[KeyAlgorithm::Sm4, KeyAlgorithm::TripleDes],
                Modes::DERIVE | Modes::MAC | Modes::ENCRYPT,
            ),
        };
        if !algorithms.contains(&algorithm) {
            return Err(HsmError::InvalidAttributes(
                "algorithm not allowed for this usage",
            ));
        }
        if modes.bits() == 0 {
            return Err(HsmError::InvalidAttributes("no mode of use"));
        }
        if !allowed.contains(modes) {
            return Err(HsmError::InvalidAttributes(
                "mode of use not allowed for this usage",
            ));
        }
        if usage == KeyUsage::Signature && exportability != Exportability::None {
            return Err(HsmError::InvalidAttributes(
                "signature keys are never exportable",
            ));
        }
        Ok(Self {
            usage,
            algorithm,
            modes,
            exportability,
            version,
        })
    }

    /// What the key is for.
    pub fn usage(&self) -> KeyUsage {
        self.usage
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The operations allowed.
    pub fn modes(&self) -> Modes {
        self.modes
    }

    /// Whether the key or its derivatives may leave the HSM.
    pub fn exportability(&self) -> Exportability {
        self.exportability
    }

    /// The key version byte (the card key version of the e-purse templates).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The canonical encoding: `usage algorithm modes exportability version`.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        [
            self.usage.code(),
            self.algorithm.code(),
            self.modes.bits(),
            self.exportability.code(),
            self.version,
        ]
    }

    /// Parses and re-checks a canonical encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let [usage, algorithm, modes, exportability, version] = bytes else {
            return Err(HsmError::MalformedBlob("attributes must be 5 bytes"));
        };
        Self::new(
            KeyUsage::from_code(*usage).ok_or(HsmError::MalformedBlob("unknown usage"))?,
            KeyAlgorithm::from_code(*algorithm)
                .ok_or(HsmError::MalformedBlob("unknown algorithm"))?,
            Modes::from_bits(*modes).ok_or(HsmError::MalformedBlob("unknown mode of use"))?,
            Exportability::from_code(*exportability)
                .ok_or(HsmError::MalformedBlob("unknown exportability"))?,
            *version,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_for_every_usage() {
        for usage in KeyUsage::ALL {
            let (algorithm, modes) = match usage {
                KeyUsage::Signature => (KeyAlgorithm::Sm2, Modes::SIGN),
                KeyUsage::KeyEncryption => (KeyAlgorithm::Aes256, Modes::ENCRYPT),
                _ => (KeyAlgorithm::Sm4, Modes::DERIVE | Modes::MAC),
            };
            let a = KeyAttributes::new(usage, algorithm, modes, Exportability::None, 7).unwrap();
            assert_eq!(KeyAttributes::from_bytes(&a.to_bytes()).unwrap(), a);
            assert_eq!(KeyUsage::from_code(usage.code()), Some(usage));
        }
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(KeyAlgorithm::from_code(algorithm.code()), Some(algorithm));
        }
    }

    #[test]
    fn inconsistent_attributes_are_refused() {
        let bad = [
            (KeyUsage::Purchase, KeyAlgorithm::Sm2, Modes::SIGN),
            (KeyUsage::Purchase, KeyAlgorithm::Aes128, Modes::MAC),
            (KeyUsage::Tac, KeyAlgorithm::Sm4, Modes::SIGN),
            (KeyUsage::Signature, KeyAlgorithm::P256, Modes::DERIVE),
            (KeyUsage::KeyEncryption, KeyAlgorithm::Aes256, Modes::MAC),
            (KeyUsage::Load, KeyAlgorithm::TripleDes, Modes::NONE),
        ];
        for (usage, algorithm, modes) in bad {
            assert!(
                KeyAttributes::new(usage, algorithm, modes, Exportability::None, 1).is_err(),
                "{usage} {algorithm} {modes:?}"
            );
        }
        assert!(
            KeyAttributes::new(
                KeyUsage::Signature,
                KeyAlgorithm::Sm2,
                Modes::SIGN,
                Exportability::UnderKek,
                1
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_codes_are_refused() {
        assert!(KeyAttributes::from_bytes(&[0x01, 0x01, 0x01, 0x00]).is_err());
        assert!(KeyAttributes::from_bytes(&[0x7F, 0x01, 0x01, 0x00, 1]).is_err());
        assert!(KeyAttributes::from_bytes(&[0x01, 0x7F, 0x01, 0x00, 1]).is_err());
        assert!(KeyAttributes::from_bytes(&[0x01, 0x01, 0x81, 0x00, 1]).is_err());
        assert!(KeyAttributes::from_bytes(&[0x01, 0x01, 0x01, 0x09, 1]).is_err());
        assert!(KeyAttributes::from_bytes(&[0x01, 0x01, 0x01, 0x00, 1]).is_ok());
    }

    #[test]
    fn modes_show_their_names() {
        assert_eq!(
            format!("{:?}", Modes::DERIVE | Modes::ENCRYPT),
            r#"{"derive", "encrypt"}"#
        );
    }
}
