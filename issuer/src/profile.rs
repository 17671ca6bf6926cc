//! Personalisation profiles: the file layout, key set and access rights a card gets, as data.
//!
//! A profile is a TOML file (schema `format = 1`) naming the card kind (user card or PSAM),
//! the algorithm, the MF's master key (which replaces the vendor's transport key) and files,
//! and the application DF: its FID, AID, rights, key file, keys (each from a KMS master
//! template, with rights, protection bits and error counters), PIN and files. Files whose
//! content the station writes name it (`public-info`, `holder-info`, `certificate`,
//! `psam-serial`, `terminal-id`, `psam-info`; layouts in [`crate::card_data`]). Loading
//! checks everything a card would otherwise refuse half-way: unknown fields, malformed hex,
//! rights, duplicate FIDs or key slots, templates and key types that do not match, content
//! sizes. Built-in profiles: `ykt-user-3des`, `ykt-user-sm4` (the ykt SM4 profile v1),
//! `ykt-psam-3des` and `ykt-psam-sm4`.

use crate::card_data;
use crate::error::{IssueError, Result};
use serde::{Deserialize, Serialize};
use sm3::{Digest, Sm3};
use std::collections::BTreeSet;
use std::path::Path;
use ykt_kms::issuance::CARD_MASTER_TEMPLATE;
use ykt_kms::model::{KeyAlgorithm, MASTER_TEMPLATES};

/// The profile schema this version reads.
pub const FORMAT: u32 = 1;

/// The built-in profiles, by name.
const BUILTIN: [(&str, &str); 4] = [
    (
        "ykt-user-3des",
        include_str!("../profiles/ykt-user-3des.toml"),
    ),
    (
        "ykt-user-sm4",
        include_str!("../profiles/ykt-user-sm4.toml"),
    ),
    (
        "ykt-psam-3des",
        include_str!("../profiles/ykt-psam-3des.toml"),
    ),
    (
        "ykt-psam-sm4",
        include_str!("../profiles/ykt-psam-sm4.toml"),
    ),
];

/// What a profile personalises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileKind {
    /// A holder's CPU card with the e-purse application.
    UserCard,
    /// A terminal's PSAM.
    Psam,
}

/// The card algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// Two-key 3DES, PBOC.
    #[serde(rename = "3des")]
    TripleDes,
    /// SM4, the ykt SM4 profile v1.
    #[serde(rename = "sm4")]
    Sm4,
}

impl Algorithm {
    /// The name as profiles and reports write it (`3des`, `sm4`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::TripleDes => "3des",
            Self::Sm4 => "sm4",
        }
    }

    /// The algorithm ID byte of key records and INITIALIZE answers (00 3DES, 04 SM4).
    pub const fn id(self) -> u8 {
        match self {
            Self::TripleDes => 0x00,
            Self::Sm4 => 0x04,
        }
    }

    /// The KMS algorithm.
    pub const fn key_algorithm(self) -> KeyAlgorithm {
        match self {
            Self::TripleDes => KeyAlgorithm::TripleDes,
            Self::Sm4 => KeyAlgorithm::Sm4,
        }
    }

    /// The challenge length for external authentication (8 bytes: one DES block; SM4 pads).
    pub const fn challenge_len(self) -> u8 {
        8
    }
}

/// How writes to a key or file must be protected: the high bits of its type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    /// Plain commands.
    #[default]
    Plain,
    /// Line protection: a MAC (0x80).
    Mac,
    /// MAC and encryption (0xC0).
    MacEncrypted,
}

impl Protection {
    /// The bits in the type byte.
    pub const fn bits(self) -> u8 {
        match self {
            Self::Plain => 0x00,
            Self::Mac => 0x80,
            Self::MacEncrypted => 0xC0,
        }
    }
}

/// Which level of the key tree a card key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyLevel {
    /// Diversified down to the card (region, school, card).
    #[default]
    Card,
    /// Diversified down to the school (a PSAM's purchase key).
    School,
}

/// One key of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// KMS master template (`purchase`, `app-master`, ...).
    pub template: String,
    /// FMCOS key type (hex: `3E`), without protection bits. Absent for a PSAM application
    /// key, which is written with [`KeySpec::psam_usage`].
    #[serde(default, with = "opt_hex_byte")]
    pub key_type: Option<u8>,
    /// Key ID (P2 of WRITE KEY).
    #[serde(default)]
    pub id: u8,
    /// Usage right (hex `F0`).
    #[serde(default = "always", with = "hex_byte")]
    pub usage_right: u8,
    /// Change right (hex).
    #[serde(default = "always", with = "hex_byte")]
    pub change_right: u8,
    /// Protection bits of the key's type byte.
    #[serde(default)]
    pub protection: Protection,
    /// Security state after a successful external authentication (type 39).
    #[serde(default, with = "opt_hex_byte")]
    pub next_state: Option<u8>,
    /// Error counter (hex `33`: three tries) for 36-39.
    #[serde(default, with = "opt_hex_byte")]
    pub error_counter: Option<u8>,
    /// Key tree level.
    #[serde(default)]
    pub level: KeyLevel,
    /// PSAM application key usage byte (`level << 5 | type`, hex `22`).
    #[serde(default, with = "opt_hex_byte")]
    pub psam_usage: Option<u8>,
}

fn always() -> u8 {
    0xF0
}

/// The PIN of the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinSpec {
    /// Key ID.
    #[serde(default)]
    pub id: u8,
    /// The initial PIN handed to holders in the card letter (digits).
    pub initial: String,
    /// Usage right (hex).
    #[serde(default = "always", with = "hex_byte")]
    pub usage_right: u8,
    /// Security state after a correct PIN.
    #[serde(with = "hex_byte")]
    pub next_state: u8,
    /// Error counter (hex).
    #[serde(with = "hex_byte")]
    pub error_counter: u8,
}

/// A file's structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Structure {
    /// Transparent file.
    Binary,
    /// Cyclic record file (the transaction log).
    Cyclic,
    /// Electronic passbook (ED).
    Ed,
    /// Electronic purse (EP).
    Ep,
}

/// What the station writes into a binary file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Content {
    /// User card public information (0015).
    PublicInfo,
    /// User card holder information (0016).
    HolderInfo,
    /// KMS signature over the card's data.
    Certificate,
    /// PSAM serial (MF 0015).
    PsamSerial,
    /// PSAM terminal ID (MF 0016).
    TerminalId,
    /// PSAM information (MF 0017).
    PsamInfo,
}

impl Content {
    /// The content's size in bytes.
    pub const fn size(self) -> usize {
        match self {
            Self::PublicInfo => card_data::PUBLIC_INFO_LEN,
            Self::HolderInfo => card_data::HOLDER_INFO_LEN,
            Self::Certificate => card_data::CERTIFICATE_LEN,
            Self::PsamSerial => card_data::PSAM_SERIAL_LEN,
            Self::TerminalId => 6,
            Self::PsamInfo => card_data::PSAM_INFO_LEN,
        }
    }

    const fn for_kind(self) -> ProfileKind {
        match self {
            Self::PublicInfo | Self::HolderInfo | Self::Certificate => ProfileKind::UserCard,
            Self::PsamSerial | Self::TerminalId | Self::PsamInfo => ProfileKind::Psam,
        }
    }
}

/// One elementary file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// FID (hex `0015`).
    #[serde(with = "hex_u16")]
    pub fid: u16,
    /// Structure.
    pub structure: Structure,
    /// Size of a binary file.
    #[serde(default)]
    pub size: Option<u16>,
    /// Records of a cyclic file.
    #[serde(default)]
    pub records: Option<u8>,
    /// Record length of a cyclic file.
    #[serde(default)]
    pub record_len: Option<u8>,
    /// Read right (hex); for ED/EP the usage right.
    #[serde(default = "always", with = "hex_byte")]
    pub read_right: u8,
    /// Write right (hex).
    #[serde(default = "always", with = "hex_byte")]
    pub write_right: u8,
    /// FMCOS access byte (hex, `FF`: no line protection of reads and writes).
    #[serde(default = "unprotected", with = "hex_byte")]
    pub access: u8,
    /// Protection bits of the file's type byte.
    #[serde(default)]
    pub protection: Protection,
    /// SFI of the log an ED/EP writes (hex `18`).
    #[serde(default, with = "opt_hex_byte")]
    pub log_sfi: Option<u8>,
    /// What the station writes into it.
    #[serde(default)]
    pub content: Option<Content>,
}

fn unprotected() -> u8 {
    0xFF
}

/// The MF part of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfSpec {
    /// The card master key written over the transport key 39/00.
    pub master: KeySpec,
    /// Files created in the MF (PSAM serial, terminal ID, PSAM information).
    #[serde(default)]
    pub files: Vec<FileSpec>,
}

/// The key file of the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFileSpec {
    /// Space for records.
    pub size: u16,
    /// Right to add keys (hex; `01`: the MF authenticated to state 1).
    #[serde(with = "hex_byte")]
    pub add_right: u8,
}

/// The application DF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationSpec {
    /// FID (hex `3F01`).
    #[serde(with = "hex_u16")]
    pub fid: u16,
    /// AID, the DF name (hex, 5 to 16 bytes).
    #[serde(with = "hex_vec")]
    pub aid: Vec<u8>,
    /// Space of the DF.
    pub size: u16,
    /// Right to create files (hex).
    #[serde(with = "hex_byte")]
    pub create_right: u8,
    /// Right to erase the DF (hex).
    #[serde(with = "hex_byte")]
    pub erase_right: u8,
    /// SFI whose binary file SELECT returns in the FCI (hex `15`).
    #[serde(default, with = "opt_hex_byte")]
    pub fci_sfi: Option<u8>,
    /// Key file.
    pub key_file: KeyFileSpec,
    /// Keys, in the order written; the first is the DF master key 39/00.
    pub keys: Vec<KeySpec>,
    /// The PIN.
    #[serde(default)]
    pub pin: Option<PinSpec>,
    /// Files, in the order created.
    #[serde(default)]
    pub files: Vec<FileSpec>,
}

/// How long user cards are valid, by card type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validity {
    /// Student cards, years.
    pub student_years: u16,
    /// Staff cards, years.
    pub staff_years: u16,
    /// Temporary cards, days.
    pub temporary_days: u16,
    /// PSAMs, years.
    pub psam_years: u16,
}

impl Default for Validity {
    fn default() -> Self {
        Self {
            student_years: 6,
            staff_years: 10,
            temporary_days: 90,
            psam_years: 10,
        }
    }
}

/// A checked personalisation profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Schema version of the file ([`FORMAT`]).
    pub format: u32,
    /// Profile name (`ykt-user-sm4`).
    pub name: String,
    /// Profile version; it goes into the card's public information.
    pub version: u8,
    /// What it personalises.
    pub kind: ProfileKind,
    /// Card algorithm.
    pub algorithm: Algorithm,
    /// Validity periods.
    #[serde(default)]
    pub validity: Validity,
    /// The MF.
    pub mf: MfSpec,
    /// The application DF.
    pub application: ApplicationSpec,
}

fn profile_error(field: impl Into<String>, reason: impl Into<String>) -> IssueError {
    IssueError::Profile {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A loaded profile and the digest of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedProfile {
    /// The profile.
    pub profile: Profile,
    /// SM3 of the profile text, upper-case hex: batches record it.
    pub digest: String,
}

impl LoadedProfile {
    /// `name@version`, as batches record it.
    pub fn label(&self) -> String {
        format!("{}@{}", self.profile.name, self.profile.version)
    }
}

impl Profile {
    /// Parses and checks profile text.
    pub fn parse(text: &str) -> Result<LoadedProfile> {
        let profile: Self = toml::from_str(text).map_err(|error| {
            let field = error
                .span()
                .map(|span| format!("at byte {}", span.start))
                .unwrap_or_else(|| "file".into());
            profile_error(field, error.message())
        })?;
        profile.check()?;
        Ok(LoadedProfile {
            profile,
            digest: hex::encode_upper(Sm3::digest(text.as_bytes())),
        })
    }

    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<LoadedProfile> {
        let text = std::fs::read_to_string(path).map_err(|source| IssueError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<LoadedProfile> {
        let text = Self::builtin_text(name).ok_or_else(|| {
            profile_error(
                "name",
                format!(
                    "no built-in profile `{name}` (there are {})",
                    Self::builtin_names().join(", ")
                ),
            )
        })?;
        Self::parse(text)
    }

    /// The text of a built-in profile.
    pub fn builtin_text(name: &str) -> Option<&'static str> {
        BUILTIN
            .iter()
            .find(|(builtin, _)| *builtin == name)
            .map(|(_, text)| *text)
    }

    /// The names of the built-in profiles.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(name, _)| *name).collect()
    }

    /// A built-in profile by name, or else a profile file at that path.
    pub fn named_or_file(name_or_path: &str) -> Result<LoadedProfile> {
        if BUILTIN.iter().any(|(name, _)| *name == name_or_path) {
            Self::builtin(name_or_path)
        } else {
            Self::load(Path::new(name_or_path))
        }
    }

    /// The default built-in profile of a kind and algorithm.
    pub fn default_for(kind: ProfileKind, algorithm: Algorithm) -> LoadedProfile {
        let name = match (kind, algorithm) {
            (ProfileKind::UserCard, Algorithm::TripleDes) => "ykt-user-3des",
            (ProfileKind::UserCard, Algorithm::Sm4) => "ykt-user-sm4",
            (ProfileKind::Psam, Algorithm::TripleDes) => "ykt-psam-3des",
            (ProfileKind::Psam, Algorithm::Sm4) => "ykt-psam-sm4",
        };
        Self::builtin(name).expect("built-in profiles check")
    }

    /// Every key the card gets, MF master first.
    pub fn all_keys(&self) -> impl Iterator<Item = &KeySpec> {
        std::iter::once(&self.mf.master).chain(&self.application.keys)
    }

    /// The master templates whose keys the card gets.
    pub fn templates(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.all_keys().map(|k| k.template.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    }

    /// The file holding `content`, in the MF or the application.
    pub fn file_with(&self, content: Content) -> Option<&FileSpec> {
        self.mf
            .files
            .iter()
            .chain(&self.application.files)
            .find(|f| f.content == Some(content))
    }

    fn check(&self) -> Result<()> {
        if self.format != FORMAT {
            return Err(profile_error(
                "format",
                format!("this station reads format {FORMAT}"),
            ));
        }
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 32
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(profile_error(
                "name",
                "1 to 32 lower-case letters, digits and hyphens",
            ));
        }
        if self.version == 0 {
            return Err(profile_error("version", "starts at 1"));
        }
        let app = &self.application;
        if !(5..=16).contains(&app.aid.len()) {
            return Err(profile_error("application.aid", "must be 5 to 16 bytes"));
        }
        if matches!(app.fid, 0x3F00 | 0x0000 | 0xFFFF) {
            return Err(profile_error("application.fid", "reserved FID"));
        }
        check_key(&self.mf.master, "mf.master", self.kind)?;
        if self.mf.master.key_type != Some(0x39) || self.mf.master.id != 0 {
            return Err(profile_error(
                "mf.master",
                "the card master key is key 39/00",
            ));
        }
        if self.mf.master.template != CARD_MASTER_TEMPLATE {
            return Err(profile_error(
                "mf.master.template",
                format!("the card master key is of the `{CARD_MASTER_TEMPLATE}` template"),
            ));
        }
        let mut slots = BTreeSet::new();
        for (n, key) in app.keys.iter().enumerate() {
            let field = format!("application.keys[{n}]");
            check_key(key, &field, self.kind)?;
            let slot = (key.key_type, key.id, key.psam_usage);
            if !slots.insert(slot) {
                return Err(profile_error(field, "the same key slot twice"));
            }
        }
        match app.keys.first() {
            Some(first) if first.key_type == Some(0x39) && first.id == 0 => {}
            _ => {
                return Err(profile_error(
                    "application.keys[0]",
                    "the first key is the DF master key 39/00",
                ));
            }
        }
        if let Some(pin) = &app.pin {
            let ok = (2..=12).contains(&pin.initial.len())
                && pin.initial.bytes().all(|b| b.is_ascii_digit());
            if !ok || pin.initial.len() % 2 != 0 {
                return Err(profile_error(
                    "application.pin.initial",
                    "an even number (2 to 12) of digits",
                ));
            }
            if self.kind == ProfileKind::Psam {
                return Err(profile_error("application.pin", "a PSAM has no PIN"));
            }
            check_counter(pin.error_counter, "application.pin.error_counter")?;
        }
        let mut fids = BTreeSet::from([app.fid]);
        let mf_files = self.mf.files.iter().map(|f| ("mf.files", f));
        let app_files = app.files.iter().map(|f| ("application.files", f));
        let mut contents = BTreeSet::new();
        for (n, (place, file)) in mf_files.chain(app_files).enumerate() {
            let field = format!("{place}[{n}]");
            if !fids.insert(file.fid) || matches!(file.fid, 0x3F00 | 0x0000 | 0xFFFF) {
                return Err(profile_error(field, "FID used twice or reserved"));
            }
            check_file(file, &field)?;
            if let Some(content) = file.content {
                if content.for_kind() != self.kind {
                    return Err(profile_error(field, "content of the other card kind"));
                }
                if !contents.insert(content) {
                    return Err(profile_error(field, "the same content twice"));
                }
            }
        }
        let needed: &[Content] = match self.kind {
            ProfileKind::UserCard => &[
                Content::PublicInfo,
                Content::HolderInfo,
                Content::Certificate,
            ],
            ProfileKind::Psam => &[Content::PsamSerial, Content::TerminalId, Content::PsamInfo],
        };
        for content in needed {
            if !contents.contains(content) {
                return Err(profile_error(
                    "files",
                    format!("no file holds the {content:?} content"),
                ));
            }
        }
        if self.kind == ProfileKind::UserCard {
            if !self.mf.files.is_empty() {
                return Err(profile_error("mf.files", "a user card keeps its MF empty"));
            }
            if !app.files.iter().any(|f| f.structure == Structure::Ep) {
                return Err(profile_error("application.files", "no electronic purse"));
            }
            for template in ["purchase", "load", "tac"] {
                if !app.keys.iter().any(|k| k.template == template) {
                    return Err(profile_error(
                        "application.keys",
                        format!("no `{template}` key"),
                    ));
                }
            }
        } else if !app
            .keys
            .iter()
            .any(|k| k.template == "purchase" && k.level == KeyLevel::School)
        {
            return Err(profile_error(
                "application.keys",
                "a PSAM needs a school-level purchase key",
            ));
        }
        Ok(())
    }
}

/// The FMCOS key type of a master template's card keys (`pboc-spec.md` §2.1).
fn card_key_type(template: &str) -> Option<u8> {
    Some(match template {
        "purchase" => 0x3E,
        "load" => 0x3F,
        "tac" => 0x34,
        "unload" => 0x3D,
        "overdraft" => 0x3C,
        "maintenance" => 0x36,
        "pin-unblock" => 0x37,
        "pin-reload" => 0x38,
        "external-auth" | "app-master" => 0x39,
        _ => return None,
    })
}

fn check_key(key: &KeySpec, field: &str, kind: ProfileKind) -> Result<()> {
    if !MASTER_TEMPLATES.iter().any(|t| t.name == key.template) {
        return Err(profile_error(
            format!("{field}.template"),
            format!("`{}` is not a master template", key.template),
        ));
    }
    let expected = card_key_type(&key.template).expect("master templates have card key types");
    match (key.key_type, key.psam_usage) {
        (Some(t), None) if t == expected => {}
        (Some(_), None) => {
            return Err(profile_error(
                format!("{field}.key_type"),
                format!(
                    "a `{}` key is written with type {expected:02X}",
                    key.template
                ),
            ));
        }
        (None, Some(usage)) => {
            if kind != ProfileKind::Psam || key.template != "purchase" {
                return Err(profile_error(
                    format!("{field}.psam_usage"),
                    "only a PSAM's purchase keys are application keys",
                ));
            }
            let levels = usage >> 5;
            let expected_levels = match key.level {
                KeyLevel::School => 1,
                KeyLevel::Card => 0,
            };
            if usage & 0x1F != 2 || levels != expected_levels {
                return Err(profile_error(
                    format!("{field}.psam_usage"),
                    "a school-level purchase key has usage 22 (type 2, one level: the card)",
                ));
            }
        }
        _ => {
            return Err(profile_error(field, "give either key_type or psam_usage"));
        }
    }
    if key.level == KeyLevel::School && key.psam_usage.is_none() {
        return Err(profile_error(
            format!("{field}.level"),
            "only PSAM application keys come from the school level",
        ));
    }
    let counts = matches!(key.key_type, Some(0x36..=0x39));
    if counts != key.error_counter.is_some() {
        return Err(profile_error(
            format!("{field}.error_counter"),
            "keys 36-39 have an error counter, others none",
        ));
    }
    if let Some(counter) = key.error_counter {
        check_counter(counter, &format!("{field}.error_counter"))?;
    }
    if (key.key_type == Some(0x39)) != key.next_state.is_some() {
        return Err(profile_error(
            format!("{field}.next_state"),
            "type 39 keys have a next state, others none",
        ));
    }
    check_right(key.usage_right, &format!("{field}.usage_right"))?;
    check_right(key.change_right, &format!("{field}.change_right"))?;
    Ok(())
}

/// An error counter: tries allowed (high nibble) and left (low), equal and non-zero.
fn check_counter(counter: u8, field: &str) -> Result<()> {
    if counter >> 4 == 0 || counter & 0x0F != counter >> 4 {
        return Err(profile_error(
            field,
            "high and low nibble equal and non-zero (`33`)",
        ));
    }
    Ok(())
}

fn check_right(right: u8, field: &str) -> Result<()> {
    let (x, y) = (right >> 4, right & 0x0F);
    if x != 0 && y > x && right != 0xEF {
        return Err(profile_error(
            field,
            "a right XY needs Y <= X (or EF: never)",
        ));
    }
    Ok(())
}

fn check_file(file: &FileSpec, field: &str) -> Result<()> {
    check_right(file.read_right, &format!("{field}.read_right"))?;
    check_right(file.write_right, &format!("{field}.write_right"))?;
    let shape_ok = match file.structure {
        Structure::Binary => file.size.is_some_and(|s| s > 0) && file.records.is_none(),
        Structure::Cyclic => {
            file.size.is_none()
                && file.records.is_some_and(|n| n > 0)
                && file.record_len.is_some_and(|n| n > 0)
        }
        Structure::Ed | Structure::Ep => {
            file.size.is_none() && file.records.is_none() && file.log_sfi.is_some()
        }
    };
    if !shape_ok {
        return Err(profile_error(
            field,
            "binary files have a size, cyclic files records and record_len, ED/EP a log_sfi",
        ));
    }
    match (file.structure, file.fid) {
        (Structure::Ed, 0x0001) | (Structure::Ep, 0x0002) => {}
        (Structure::Ed | Structure::Ep, _) => {
            return Err(profile_error(
                format!("{field}.fid"),
                "the ED is 0001 and the EP 0002",
            ));
        }
        _ => {}
    }
    if let Some(content) = file.content {
        if file.structure != Structure::Binary {
            return Err(profile_error(
                format!("{field}.content"),
                "only binary files take content",
            ));
        }
        if usize::from(file.size.unwrap_or(0)) != content.size() {
            return Err(profile_error(
                format!("{field}.size"),
                format!("{content:?} is {} bytes", content.size()),
            ));
        }
        if file.protection != Protection::Plain {
            return Err(profile_error(
                format!("{field}.protection"),
                "the station writes content under the security state, not with MACs",
            ));
        }
    }
    Ok(())
}

mod hex_byte {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u8, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{value:02X}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
        let text = String::deserialize(d)?;
        match hex::decode(&text).as_deref() {
            Ok([byte]) => Ok(*byte),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not one hex byte"
            ))),
        }
    }
}

mod opt_hex_byte {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<u8>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(&format!("{v:02X}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
        super::hex_byte::deserialize(d).map(Some)
    }
}

mod hex_u16 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u16, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{value:04X}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        let text = String::deserialize(d)?;
        match hex::decode(&text).as_deref() {
            Ok([a, b]) => Ok(u16::from_be_bytes([*a, *b])),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not a 4-digit hex FID"
            ))),
        }
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        hex::decode(&compact).map_err(|_| serde::de::Error::custom(format!("`{text}` is not hex")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_check() {
        for name in Profile::builtin_names() {
            let loaded = Profile::builtin(name).unwrap();
            assert_eq!(loaded.profile.name, name);
            assert_eq!(loaded.digest.len(), 64);
        }
        let user = Profile::builtin("ykt-user-sm4").unwrap().profile;
        assert_eq!(user.all_keys().count(), 10, "ten keys on a user card");
        assert_eq!(user.templates().len(), 10);
    }

    fn with(name: &str, from: &str, to: &str) -> String {
        let text = BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
        assert!(text.contains(from), "{from}");
        text.replacen(from, to, 1)
    }

    #[test]
    fn bad_profiles_name_the_field() {
        let cases = [
            ("format = 1", "format = 2", "format"),
            (
                "template = \"purchase\"",
                "template = \"purchse\"",
                "template",
            ),
            ("key_type = \"3E\"", "key_type = \"3F\"", "key_type"),
            ("fid = \"0016\"", "fid = \"0015\"", "files"),
            ("size = 30", "size = 31", "size"),
            (
                "error_counter = \"33\"",
                "error_counter = \"35\"",
                "error_counter",
            ),
            ("aid = \"A00000000386980701\"", "aid = \"A000\"", "aid"),
            ("aid = \"A00000000386980701\"", "aid = \"ZZ\"", "byte"),
            ("name = \"ykt-user-sm4\"", "name = \"Ykt User\"", "name"),
            ("version = 1", "version = 1\ncolour = \"red\"", "byte"),
        ];
        for (from, to, field) in cases {
            let text = with("ykt-user-sm4", from, to);
            match Profile::parse(&text) {
                Err(IssueError::Profile { field: got, .. }) => {
                    assert!(got.contains(field), "{to}: {got}")
                }
                other => panic!("{to}: {other:?}"),
            }
        }
        let psam = with("ykt-psam-sm4", "level = \"school\"", "level = \"card\"");
        assert!(Profile::parse(&psam).is_err());
    }
}
