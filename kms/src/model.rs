//! The KMS's vocabulary: region and school codes (and the diversification factors they give),
//! key scopes, lifecycle states and the key templates of the e-purse application.

use crate::error::{KmsError, Result};
use std::fmt;
use std::str::FromStr;
use ykt_hsm_sim::{Exportability, KeyAttributes, KeyUsage, Modes};

pub use ykt_hsm_sim::KeyAlgorithm;

/// Packs a decimal code into an 8-byte diversification factor: BCD, left-padded with zeros to
/// 16 digits (`330106` → `00 00 00 00 00 33 01 06`).
fn bcd_factor(code: &str) -> [u8; 8] {
    let padded = format!("{code:0>16}");
    let mut factor = [0u8; 8];
    for (out, pair) in factor.iter_mut().zip(padded.as_bytes().chunks(2)) {
        *out = ((pair[0] - b'0') << 4) | (pair[1] - b'0');
    }
    factor
}

fn check_digits(code: &str, len: usize, what: &'static str) -> Result<()> {
    if code.len() == len && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(KmsError::InvalidInput {
            field: what,
            reason: format!("must be {len} decimal digits"),
        })
    }
}

/// A region (county or district) code: the 6-digit administrative division code of
/// GB/T 2260, for example `330106`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionCode(String);

impl RegionCode {
    /// Checks and wraps a region code.
    pub fn new(code: &str) -> Result<Self> {
        check_digits(code, 6, "region code")?;
        Ok(Self(code.to_owned()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The region's diversification factor (the code in BCD, zero-padded to 8 bytes).
    pub fn factor(&self) -> [u8; 8] {
        bcd_factor(&self.0)
    }
}

/// A school code: the 10-digit school identification code of the Ministry of Education
/// (学校标识码), for example `2133010601`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchoolCode(String);

impl SchoolCode {
    /// Checks and wraps a school code.
    pub fn new(code: &str) -> Result<Self> {
        check_digits(code, 10, "school code")?;
        Ok(Self(code.to_owned()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The school's diversification factor (the code in BCD, zero-padded to 8 bytes).
    pub fn factor(&self) -> [u8; 8] {
        bcd_factor(&self.0)
    }
}

macro_rules! code_display {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
code_display!(RegionCode, SchoolCode);

/// Where in the key tree a key sits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The bureau itself: master keys and the KMS's own keys.
    Bureau,
    /// One school: its transport key.
    School(SchoolCode),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bureau => f.write_str("bureau"),
            Self::School(code) => write!(f, "school:{code}"),
        }
    }
}

impl FromStr for Scope {
    type Err = KmsError;

    fn from_str(text: &str) -> Result<Self> {
        match text.split_once(':') {
            None if text == "bureau" => Ok(Self::Bureau),
            Some(("school", code)) => Ok(Self::School(SchoolCode::new(code)?)),
            _ => Err(KmsError::InvalidInput {
                field: "scope",
                reason: "must be `bureau` or `school:CODE`".into(),
            }),
        }
    }
}

/// The lifecycle state of a key (after NIST SP 800-57 and AWS Payment Cryptography).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Made but not yet in use.
    PreActive,
    /// In use.
    Active,
    /// Temporarily out of use; resumable.
    Suspended,
    /// Retired: only verifications of past transactions (TACs) are allowed.
    Deactivated,
    /// Known or suspected to be disclosed: refused for everything.
    Compromised,
    /// Gone from the store and the HSM.
    Destroyed,
}

impl KeyState {
    const ALL: [Self; 6] = [
        Self::PreActive,
        Self::Active,
        Self::Suspended,
        Self::Deactivated,
        Self::Compromised,
        Self::Destroyed,
    ];

    /// Name as stored and shown.
    pub const fn name(self) -> &'static str {
        match self {
            Self::PreActive => "pre-active",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deactivated => "deactivated",
            Self::Compromised => "compromised",
            Self::Destroyed => "destroyed",
        }
    }

    /// Whether a key in this state may move to `next`.
    pub fn may_become(self, next: Self) -> bool {
        use KeyState::*;
        matches!(
            (self, next),
            (PreActive, Active)
                | (Active, Suspended)
                | (Suspended, Active)
                | (PreActive | Active | Suspended, Deactivated)
                | (PreActive | Active | Suspended | Deactivated, Compromised)
                | (PreActive | Deactivated | Compromised, Destroyed)
        )
    }

    /// Whether a key in this state may be used for `purpose`.
    pub fn allows(self, purpose: Purpose) -> bool {
        match self {
            Self::Active => true,
            Self::Deactivated => purpose == Purpose::Verify,
            _ => false,
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyState {
    type Err = KmsError;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or(KmsError::Corrupt("unknown key state in the store"))
    }
}

/// What a key is about to be used for; the lifecycle state decides whether it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Derive card keys, write keys to cards, answer MAC1 with MAC2, export.
    Use,
    /// Sign.
    Sign,
    /// Verify past transactions (TACs).
    Verify,
}

/// A key template: the usage, algorithm and attributes a kind of key is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// Template name (`purchase`, `tac`, `transport`, `kms-signing`, ...).
    pub name: &'static str,
    /// The usage bound to the key.
    pub usage: KeyUsage,
    /// Modes of use bound to the key.
    pub modes: Modes,
    /// Exportability bound to the key.
    pub exportability: Exportability,
    /// Whether the template makes e-purse master keys (diversified down the tree).
    pub master: bool,
}

/// The e-purse master-key templates, in the order the ceremonies make them.
pub const MASTER_TEMPLATES: [Template; 10] = [
    master("purchase", KeyUsage::Purchase),
    master("load", KeyUsage::Load),
    master("tac", KeyUsage::Tac),
    master("unload", KeyUsage::Unload),
    master("overdraft", KeyUsage::Overdraft),
    master("maintenance", KeyUsage::Maintenance),
    master("pin-unblock", KeyUsage::PinUnblock),
    master("pin-reload", KeyUsage::PinReload),
    master("external-auth", KeyUsage::ExternalAuth),
    master("app-master", KeyUsage::AppMaster),
];

const fn master(name: &'static str, usage: KeyUsage) -> Template {
    Template {
        name,
        usage,
        modes: Modes::DERIVE,
        exportability: Exportability::DerivedOnly,
        master: true,
    }
}

/// A school's transport key: protects the school key package.
pub const TRANSPORT_TEMPLATE: Template = Template {
    name: "transport",
    usage: KeyUsage::KeyEncryption,
    modes: Modes::ENCRYPT,
    exportability: Exportability::None,
    master: false,
};

/// A card vendor's transport key: the key 39/00 of blank cards, imported from the vendor's
/// components, used only to authenticate to a blank card and protect its first key write.
pub const CARD_TRANSPORT_TEMPLATE: Template = Template {
    name: "card-transport",
    usage: KeyUsage::ExternalAuth,
    modes: Modes::ENCRYPT,
    exportability: Exportability::None,
    master: false,
};

/// The KMS's own signing key: audit checkpoints and school packages.
pub const KMS_SIGNING_TEMPLATE: Template = Template {
    name: "kms-signing",
    usage: KeyUsage::Signature,
    modes: Modes::SIGN,
    exportability: Exportability::None,
    master: false,
};

impl Template {
    /// The template with this name.
    pub fn named(name: &str) -> Result<Self> {
        MASTER_TEMPLATES
            .iter()
            .chain([
                &TRANSPORT_TEMPLATE,
                &CARD_TRANSPORT_TEMPLATE,
                &KMS_SIGNING_TEMPLATE,
                &crate::signing::API_SIGNING_TEMPLATE,
                &crate::signing::TOKEN_SIGNING_TEMPLATE,
            ])
            .find(|t| t.name == name)
            .copied()
            .ok_or_else(|| KmsError::InvalidInput {
                field: "template",
                reason: format!("unknown template `{name}`"),
            })
    }

    /// The attributes of version `version` of a key of this template in `algorithm`.
    pub fn attributes(&self, algorithm: KeyAlgorithm, version: u8) -> Result<KeyAttributes> {
        Ok(KeyAttributes::new(
            self.usage,
            algorithm,
            self.modes,
            self.exportability,
            version,
        )?)
    }

    /// The key ID a template gets at a scope: `purchase-sm4`, `transport-sm4-2133010601`.
    pub fn key_id(&self, algorithm: KeyAlgorithm, scope: &Scope) -> String {
        match scope {
            Scope::Bureau => format!("{}-{}", self.name, algorithm.name()),
            Scope::School(code) => format!("{}-{}-{code}", self.name, algorithm.name()),
        }
    }
}

/// Parses an algorithm name (`sm4`, `3des`, `aes128`, `aes256`, `sm2`, `p256`).
pub fn algorithm_named(name: &str) -> Result<KeyAlgorithm> {
    [
        KeyAlgorithm::Sm4,
        KeyAlgorithm::TripleDes,
        KeyAlgorithm::Aes128,
        KeyAlgorithm::Aes256,
        KeyAlgorithm::Sm2,
        KeyAlgorithm::P256,
    ]
    .into_iter()
    .find(|a| a.name() == name)
    .ok_or_else(|| KmsError::InvalidInput {
        field: "algorithm",
        reason: format!("unknown algorithm `{name}`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_pack_into_bcd_factors() {
        assert_eq!(
            RegionCode::new("330106").unwrap().factor(),
            [0, 0, 0, 0, 0, 0x33, 0x01, 0x06]
        );
        assert_eq!(
            SchoolCode::new("2133010601").unwrap().factor(),
            [0, 0, 0, 0x21, 0x33, 0x01, 0x06, 0x01]
        );
        for bad in ["33010", "3301066", "33O106", ""] {
            assert!(RegionCode::new(bad).is_err(), "{bad}");
        }
        assert!(SchoolCode::new("213301060").is_err());
    }

    #[test]
    fn lifecycle_transitions_follow_the_state_machine() {
        use KeyState::*;
        assert!(Active.may_become(Suspended));
        assert!(Suspended.may_become(Active));
        assert!(
            !Active.may_become(Destroyed),
            "destroy needs deactivation first"
        );
        assert!(!Destroyed.may_become(Active));
        assert!(!Compromised.may_become(Active));
        assert!(Deactivated.allows(Purpose::Verify));
        assert!(!Deactivated.allows(Purpose::Use));
        assert!(!Suspended.allows(Purpose::Use));
        assert!(!Compromised.allows(Purpose::Verify));
        for state in KeyState::ALL {
            assert_eq!(state.name().parse::<KeyState>().unwrap(), state);
        }
    }

    #[test]
    fn templates_make_consistent_attributes() {
        for template in MASTER_TEMPLATES {
            for algorithm in [KeyAlgorithm::Sm4, KeyAlgorithm::TripleDes] {
                template.attributes(algorithm, 1).unwrap();
            }
            assert!(template.attributes(KeyAlgorithm::Sm2, 1).is_err());
        }
        KMS_SIGNING_TEMPLATE
            .attributes(KeyAlgorithm::Sm2, 1)
            .unwrap();
        assert_eq!(
            "school:2133010601".parse::<Scope>().unwrap(),
            Scope::School(SchoolCode::new("2133010601").unwrap())
        );
        assert!("region:1".parse::<Scope>().is_err());
    }
}
