//! Issuance: serial numbers, batches (the issuing journal), the registry of user cards, PSAMs
//! and terminals, and the card-key acts an issuing station and a load host need.
//!
//! A serial is 20 decimal digits, 10 bytes BCD: the first four digits of the region code, the
//! school code, a kind digit (`0` user card, `9` PSAM) and a five-digit number counted per
//! school and kind. Its rightmost 8 bytes are the card's diversification factor; with the
//! region and school factors above it they give every card key. Serials are allocated when
//! a batch is created, in roster order, in the transaction that records the batch: without
//! gaps or repeats, and once given to a holder never given to another.
//!
//! A card's record moves `allocated` → `personalising` (each attempt counted and audited) →
//! `issued`. The KMS makes a card's key cryptograms only while its record is
//! `personalising`, so a station cannot re-make an issued card's keys on a blank card; it
//! answers MAC1 for loads and verifies TACs only for issued cards. The cryptograms come from
//! the HSM: the station sees the card's challenge and the command, never a key.

use crate::audit::AuditRecord;
use crate::error::{KmsError, Result};
use crate::kms::Kms;
use crate::model::{
    CARD_TRANSPORT_TEMPLATE, Purpose, RegionCode, SchoolCode, Scope, Template, algorithm_named,
};
use crate::provider::{WrappedKey, WriteKey};
use crate::store::{Object, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row, Transaction};
use std::collections::BTreeMap;
use std::fmt;
use ykt_apdu::pboc::Date;
pub use ykt_crypto::{Load, Purchase};
use ykt_hsm_sim::{KeyAlgorithm, KeyUsage, TacCheck};
use ykt_psam::PurchaseRecord;

/// The highest per-school number of a serial (five digits).
pub const MAX_SERIAL_NUMBER: u32 = 99_999;

/// The highest per-region number of a terminal ID (six digits).
const MAX_TERMINAL_NUMBER: u32 = 999_999;

/// The most cards one batch may hold.
pub const MAX_BATCH: usize = 10_000;

/// What the KMS signs in a card's certificate file: this prefix, the card's serial (10 bytes)
/// and the card data the issuer wrote (public information and holder files).
pub const CARD_CERTIFICATE_DOMAIN: &[u8] = b"ykt-card-certificate-v1";

/// The template of a card's master key (MF 39/00), the one key the vendor's transport key
/// may protect the write of.
pub const CARD_MASTER_TEMPLATE: &str = "external-auth";

/// One attempt at personalising a card, as [`Kms::start_personalisation`] hands it out: the
/// card-key acts answer only the card's current attempt, so a station whose attempt was
/// taken over gets nothing more for its card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The card.
    pub serial: Serial,
    /// The attempt's number, from 1.
    pub number: u64,
}

/// User card or PSAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// A holder's CPU card.
    Card,
    /// A terminal's PSAM.
    Psam,
}

impl DeviceKind {
    /// The name as stored (`card`, `psam`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Psam => "psam",
        }
    }

    const fn digit(self) -> u8 {
        match self {
            Self::Card => 0,
            Self::Psam => 9,
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "card" => Ok(Self::Card),
            "psam" => Ok(Self::Psam),
            _ => Err(KmsError::Corrupt("unknown device kind in the store")),
        }
    }
}

/// A card or PSAM serial: 20 decimal digits, 10 bytes BCD; serialised as its digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Serial([u8; 10]);

impl From<Serial> for String {
    fn from(serial: Serial) -> Self {
        serial.to_string()
    }
}

impl TryFrom<String> for Serial {
    type Error = KmsError;

    fn try_from(text: String) -> Result<Self> {
        Self::parse(&text)
    }
}

impl Serial {
    /// The serial of number `number` of `kind` at `school` of `region`.
    pub fn new(region: &RegionCode, school: &SchoolCode, kind: DeviceKind, number: u32) -> Self {
        let digits = format!(
            "{}{}{}{number:05}",
            &region.as_str()[..4],
            school.as_str(),
            kind.digit()
        );
        Self::parse(&digits).expect("20 digits")
    }

    /// Parses 20 decimal digits.
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() != 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(KmsError::InvalidInput {
                field: "serial",
                reason: "must be 20 decimal digits".into(),
            });
        }
        let mut bytes = [0u8; 10];
        for (out, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
            *out = ((pair[0] - b'0') << 4) | (pair[1] - b'0');
        }
        Ok(Self(bytes))
    }

    /// The 10 BCD bytes (public information file, PSAM serial file).
    pub fn bytes(&self) -> [u8; 10] {
        self.0
    }

    /// The school code in the serial (its digits 5 to 14).
    pub fn school(&self) -> String {
        self.to_string()[4..14].to_owned()
    }

    /// The card's diversification factor: the rightmost 8 bytes.
    pub fn factor(&self) -> [u8; 8] {
        self.0[2..].try_into().expect("8 bytes")
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// One holder of a card batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCard {
    /// School code.
    pub school: String,
    /// `student`, `staff` or `temporary`.
    pub card_type: String,
    /// Holder's name.
    pub holder_name: String,
    /// Student or staff number, unique per school and card type.
    pub holder_number: String,
    /// Resident ID number.
    pub id_number: String,
    /// Last valid day, `YYYYMMDD`.
    pub expiry: String,
}

/// What a batch is personalised with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchProfile {
    /// Profile name and version (`ykt-user-sm4@1`).
    pub name: String,
    /// SM3 digest of the profile text (hex): the batch resumes only with the same profile.
    pub digest: String,
    /// The card algorithm.
    #[serde(with = "algorithm_by_name")]
    pub algorithm: KeyAlgorithm,
    /// The master templates whose keys the cards get; each card records their current
    /// versions at batch creation.
    pub templates: Vec<String>,
    /// First valid day of the cards, `YYYYMMDD`.
    pub valid_from: String,
}

/// A key algorithm by its name (`sm4`, `3des`, ...), as batch profiles travel.
mod algorithm_by_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use ykt_hsm_sim::KeyAlgorithm;

    pub fn serialize<S: Serializer>(algorithm: &KeyAlgorithm, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(algorithm.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<KeyAlgorithm, D::Error> {
        let name = String::deserialize(d)?;
        crate::model::algorithm_named(&name).map_err(serde::de::Error::custom)
    }
}

/// A run of PSAMs for one school's terminals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPsams {
    /// School code.
    pub school: String,
    /// Terminal vendor.
    pub vendor: String,
    /// How many.
    pub count: usize,
    /// Last valid day of the PSAMs, `YYYYMMDD`.
    pub expiry: String,
}

/// A batch, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchInfo {
    /// Batch ID (`B000001`).
    pub id: String,
    /// What it issues.
    pub kind: DeviceKind,
    /// Profile name and version.
    pub profile: String,
    /// SM3 digest of the profile text (hex).
    pub profile_digest: String,
    /// Card algorithm name.
    pub algorithm: String,
    /// Number of cards.
    pub total: u64,
    /// Number issued so far.
    pub issued: u64,
    /// `open` or `done`.
    pub status: String,
    /// Who created it.
    pub created_by: String,
    /// When (Unix ms).
    pub created_at: i64,
}

/// Where a card's personalisation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CardStatus {
    /// Serial allocated to the holder; no card touched yet.
    Allocated,
    /// A card is being personalised (possibly interrupted).
    Personalising,
    /// Personalised and verified.
    Issued,
}

impl CardStatus {
    /// The name as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Self::Allocated => "allocated",
            Self::Personalising => "personalising",
            Self::Issued => "issued",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "allocated" => Ok(Self::Allocated),
            "personalising" => Ok(Self::Personalising),
            "issued" => Ok(Self::Issued),
            _ => Err(KmsError::Corrupt("unknown card status in the store")),
        }
    }
}

/// A user card's or PSAM's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRecord {
    /// The serial (20 digits).
    pub serial: Serial,
    /// User card or PSAM.
    pub kind: DeviceKind,
    /// Region code.
    pub region: String,
    /// School code.
    pub school: String,
    /// Batch ID.
    pub batch: String,
    /// Position in the batch, from 1.
    pub item: u64,
    /// Card type (user cards).
    pub card_type: Option<String>,
    /// Holder's name (user cards).
    pub holder_name: Option<String>,
    /// Student or staff number (user cards).
    pub holder_number: Option<String>,
    /// Resident ID number (user cards).
    pub id_number: Option<String>,
    /// Terminal ID, 12 digits (PSAMs).
    pub terminal_id: Option<String>,
    /// Card algorithm name.
    pub algorithm: String,
    /// Version of each master template's key on the card.
    pub key_versions: BTreeMap<String, u8>,
    /// First valid day, `YYYYMMDD`.
    pub valid_from: String,
    /// Last valid day, `YYYYMMDD`.
    pub expiry: String,
    /// Where its personalisation stands.
    pub status: CardStatus,
    /// Personalisation attempts so far.
    pub attempts: u64,
    /// APDUs of the attempt that issued it.
    pub apdus: Option<u64>,
    /// Who runs (or ran) the current attempt.
    pub station: Option<String>,
    /// Whether the KMS ever made the write of the card master key over the transport key
    /// (the card may hold the card master key since).
    pub card_master_sent: bool,
}

impl CardRecord {
    /// The card's algorithm.
    pub fn key_algorithm(&self) -> Result<KeyAlgorithm> {
        algorithm_named(&self.algorithm)
    }

    /// The version of `template`'s key on the card.
    pub fn key_version(&self, template: &str) -> Result<u8> {
        self.key_versions
            .get(template)
            .copied()
            .ok_or_else(|| KmsError::InvalidInput {
                field: "card key",
                reason: format!("the card has no `{template}` key"),
            })
    }

    /// The current attempt at personalising the card.
    pub fn attempt(&self) -> Attempt {
        Attempt {
            serial: self.serial,
            number: self.attempts,
        }
    }

    /// The 6-byte terminal ID of a PSAM.
    pub fn terminal_id_bytes(&self) -> Option<[u8; 6]> {
        let digits = self.terminal_id.as_deref()?;
        hex::decode(digits).ok()?.try_into().ok()
    }

    /// Diversification factors from a master to this card's keys (region, school, card).
    pub fn factors(&self) -> Result<[[u8; 8]; 3]> {
        Ok([
            RegionCode::new(&self.region)?.factor(),
            SchoolCode::new(&self.school)?.factor(),
            self.serial.factor(),
        ])
    }
}

/// A key of a card as a cryptogram act names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKey<'a> {
    /// The card vendor's transport key (`card-transport-ALG`), the blank card's 39/00.
    Transport,
    /// The card's own key of a master template, diversified down to the card.
    Card(&'a str),
    /// A school-level key of a master template (diversified by region and school): the
    /// purchase key a PSAM holds.
    School(&'a str),
}

/// A WRITE KEY (84 D4) the station needs for a card.
#[derive(Debug, Clone, Copy)]
pub struct CardKeyWrite<'a> {
    /// The key to write.
    pub key: CardKey<'a>,
    /// The card's key that protects the write (its DF master key 39/00).
    pub under: CardKey<'a>,
    /// The card's GET CHALLENGE answer.
    pub challenge: &'a [u8],
    /// P1 of the command.
    pub p1: u8,
    /// P2 of the command.
    pub p2: u8,
    /// The key record's header before the key bytes.
    pub record_header: &'a [u8],
}

/// A purchase record to verify at clearing.
#[derive(Debug, Clone, Copy)]
pub struct PurchaseCheck<'a> {
    /// The card's diversification factor (the rightmost 8 bytes of its serial).
    pub factor: [u8; 8],
    /// The purchase as recorded.
    pub purchase: &'a Purchase,
    /// The card's TAC.
    pub tac: [u8; 4],
}

/// A purchase record's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TacVerdict {
    /// The TAC is the card's.
    Valid,
    /// The TAC is not the card's: forged or corrupted.
    Invalid,
    /// No issued card has this factor.
    UnknownCard,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> KmsError {
    KmsError::InvalidInput {
        field,
        reason: reason.into(),
    }
}

fn check_date(field: &'static str, text: &str) -> Result<()> {
    match Date::parse(text) {
        Some(date) if date.to_string() == text => Ok(()),
        _ => Err(invalid(field, "must be a date YYYYMMDD")),
    }
}

/// The card types a user card may have.
pub const CARD_TYPES: [&str; 3] = ["student", "staff", "temporary"];

/// Checks a holder's fields as the card files will carry them: a known card type, a name of
/// 1 to 30 bytes without control characters, a student or staff number of 1 to 16 ASCII
/// letters and digits, an 18-character resident ID number, an expiry not before `valid_from`.
fn check_holder(card: &NewCard, valid_from: &str) -> Result<()> {
    if !CARD_TYPES.contains(&card.card_type.as_str()) {
        return Err(invalid(
            "card type",
            format!("`{}` is not a card type", card.card_type),
        ));
    }
    let name_ok = (1..=30).contains(&card.holder_name.len())
        && !card.holder_name.chars().any(char::is_control);
    if !name_ok {
        return Err(invalid(
            "holder name",
            "1 to 30 bytes, no control characters",
        ));
    }
    let number_ok = (1..=16).contains(&card.holder_number.len())
        && card
            .holder_number
            .bytes()
            .all(|b| b.is_ascii_alphanumeric());
    if !number_ok {
        return Err(invalid("holder number", "1 to 16 ASCII letters and digits"));
    }
    let id = card.id_number.as_bytes();
    let id_ok = id.len() == 18
        && id[..17].iter().all(u8::is_ascii_digit)
        && (id[17].is_ascii_digit() || id[17] == b'X');
    if !id_ok {
        return Err(invalid("ID number", "17 digits and a check digit or X"));
    }
    check_not_before(&card.expiry, valid_from)
}

/// Refuses an expiry (`YYYYMMDD`) before the first valid day.
fn check_not_before(expiry: &str, valid_from: &str) -> Result<()> {
    check_date("expiry", expiry)?;
    if expiry < valid_from {
        return Err(invalid(
            "expiry",
            format!("{expiry} is before the first valid day {valid_from}"),
        ));
    }
    Ok(())
}

const CARD_COLUMNS: &str = "serial, kind, cards.school_code AS school_code, \
    schools.region_code AS region_code, batch_id, item, card_type, holder_name, holder_number, \
    id_number, terminal_id, algorithm, key_versions, valid_from, expiry, status, attempts, apdus, \
    station, card_master_sent";

const CARD_FROM: &str = "cards JOIN schools ON schools.code = cards.school_code";

fn card_of(row: &sqlx::any::AnyRow) -> Result<CardRecord> {
    let key_versions: String = row.try_get("key_versions")?;
    let item: i64 = row.try_get("item")?;
    let attempts: i64 = row.try_get("attempts")?;
    let apdus: Option<i64> = row.try_get("apdus")?;
    let card_master_sent: i64 = row.try_get("card_master_sent")?;
    Ok(CardRecord {
        serial: Serial::parse(&row.try_get::<String, _>("serial")?)
            .map_err(|_| KmsError::Corrupt("malformed serial in the store"))?,
        kind: DeviceKind::parse(&row.try_get::<String, _>("kind")?)?,
        region: row.try_get("region_code")?,
        school: row.try_get("school_code")?,
        batch: row.try_get("batch_id")?,
        item: item as u64,
        card_type: row.try_get("card_type")?,
        holder_name: row.try_get("holder_name")?,
        holder_number: row.try_get("holder_number")?,
        id_number: row.try_get("id_number")?,
        terminal_id: row.try_get("terminal_id")?,
        algorithm: row.try_get("algorithm")?,
        key_versions: serde_json::from_str(&key_versions)
            .map_err(|_| KmsError::Corrupt("malformed key versions in the store"))?,
        valid_from: row.try_get("valid_from")?,
        expiry: row.try_get("expiry")?,
        status: CardStatus::parse(&row.try_get::<String, _>("status")?)?,
        attempts: attempts as u64,
        apdus: apdus.map(|n| n as u64),
        station: row.try_get("station")?,
        card_master_sent: card_master_sent != 0,
    })
}

fn batch_of(row: &sqlx::any::AnyRow) -> Result<BatchInfo> {
    let total: i64 = row.try_get("total")?;
    let issued: i64 = row.try_get("issued")?;
    Ok(BatchInfo {
        id: row.try_get("id")?,
        kind: DeviceKind::parse(&row.try_get::<String, _>("kind")?)?,
        profile: row.try_get("profile")?,
        profile_digest: row.try_get("profile_digest")?,
        algorithm: row.try_get("algorithm")?,
        total: total as u64,
        issued: issued as u64,
        status: row.try_get("status")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

const BATCH_SELECT: &str = "SELECT id, kind, profile, profile_digest, algorithm, total, status, \
    created_by, created_at, (SELECT COUNT(*) FROM cards WHERE cards.batch_id = issue_batches.id \
    AND cards.status = 'issued') AS issued FROM issue_batches";

/// Takes `count` numbers from the counter of `scope`/`kind` (creating it at 1), refusing to
/// pass `max`; returns the first.
async fn take_numbers(
    tx: &mut Transaction<'static, Any>,
    scope: &str,
    kind: &str,
    count: u32,
    max: u32,
) -> Result<u32> {
    sqlx::query(
        "INSERT INTO serial_counters (scope, kind, next) VALUES ($1, $2, 1) \
         ON CONFLICT (scope, kind) DO NOTHING",
    )
    .bind(scope)
    .bind(kind)
    .execute(&mut **tx)
    .await?;
    let next: i64 = sqlx::query(
        "UPDATE serial_counters SET next = next + $1 WHERE scope = $2 AND kind = $3 \
         RETURNING next",
    )
    .bind(i64::from(count))
    .bind(scope)
    .bind(kind)
    .fetch_one(&mut **tx)
    .await?
    .try_get("next")?;
    let first = next - i64::from(count);
    if next - 1 > i64::from(max) {
        return Err(invalid(
            "serial",
            format!("{scope} has no {count} more {kind} numbers (the last is {max})"),
        ));
    }
    Ok(first as u32)
}

/// The highest batch number.
const MAX_BATCH_NUMBER: u32 = 999_999;

/// One card record as a batch creates it.
struct CardRow<'a> {
    serial: &'a Serial,
    kind: DeviceKind,
    school: &'a str,
    batch: &'a str,
    item: i64,
    holder: Option<&'a NewCard>,
    terminal_id: Option<&'a str>,
    algorithm: &'a str,
    key_versions: &'a str,
    valid_from: &'a str,
    expiry: &'a str,
    now: i64,
}

async fn insert_card(tx: &mut Transaction<'static, Any>, row: &CardRow<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO cards (serial, factor, kind, school_code, batch_id, item, card_type, \
         holder_name, holder_number, id_number, terminal_id, algorithm, key_versions, \
         valid_from, expiry, status, attempts, created_at, status_at) VALUES ($1, $2, $3, $4, \
         $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'allocated', 0, $16, $16)",
    )
    .bind(row.serial.to_string())
    .bind(hex::encode_upper(row.serial.factor()))
    .bind(row.kind.name())
    .bind(row.school)
    .bind(row.batch)
    .bind(row.item)
    .bind(row.holder.map(|h| h.card_type.clone()))
    .bind(row.holder.map(|h| h.holder_name.clone()))
    .bind(row.holder.map(|h| h.holder_number.clone()))
    .bind(row.holder.map(|h| h.id_number.clone()))
    .bind(row.terminal_id)
    .bind(row.algorithm)
    .bind(row.key_versions)
    .bind(row.valid_from)
    .bind(row.expiry)
    .bind(row.now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn new_batch_id(tx: &mut Transaction<'static, Any>) -> Result<String> {
    let number = take_numbers(tx, "bureau", "batch", 1, MAX_BATCH_NUMBER).await?;
    Ok(format!("B{number:06}"))
}

impl Kms {
    /// The current version of each of `templates`' keys in `algorithm`, checked usable.
    async fn current_versions(
        &self,
        algorithm: KeyAlgorithm,
        templates: &[String],
    ) -> Result<BTreeMap<String, u8>> {
        let mut versions = BTreeMap::new();
        for name in templates {
            let template = Template::named(name)?;
            if !template.master {
                return Err(invalid(
                    "profile",
                    format!("`{name}` is not a master template"),
                ));
            }
            let id = template.key_id(algorithm, &Scope::Bureau);
            let (version, _) = self.wrapped(&id, None, Purpose::Use).await?;
            versions.insert(name.clone(), version);
        }
        Ok(versions)
    }

    async fn insert_batch(
        &self,
        tx: &mut Transaction<'static, Any>,
        kind: DeviceKind,
        profile: &BatchProfile,
        total: usize,
        actor: &str,
    ) -> Result<String> {
        let id = new_batch_id(tx).await?;
        sqlx::query(
            "INSERT INTO issue_batches (id, kind, profile, profile_digest, algorithm, total, \
             status, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8)",
        )
        .bind(&id)
        .bind(kind.name())
        .bind(&profile.name)
        .bind(&profile.digest)
        .bind(profile.algorithm.name())
        .bind(total as i64)
        .bind(actor)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
        Ok(id)
    }

    /// Ends a batch's creation: its audit record, the commit; returns the batch.
    async fn commit_batch(
        &self,
        tx: Transaction<'static, Any>,
        actor: &str,
        id: &str,
        detail: serde_json::Value,
    ) -> Result<BatchInfo> {
        self.commit_audited(
            tx,
            AuditRecord {
                actors: vec![actor.to_owned()],
                act: "issue.batch.create".into(),
                object: format!("batch:{id}"),
                result: "ok".into(),
                detail,
            },
        )
        .await?;
        self.batch(id).await
    }

    fn check_batch(&self, profile: &BatchProfile, total: usize) -> Result<()> {
        check_date("valid from", &profile.valid_from)?;
        if total == 0 || total > MAX_BATCH {
            return Err(invalid(
                "batch",
                format!("must hold 1 to {MAX_BATCH} cards"),
            ));
        }
        if !matches!(
            profile.algorithm,
            KeyAlgorithm::Sm4 | KeyAlgorithm::TripleDes
        ) {
            return Err(invalid("algorithm", "cards are SM4 or 3DES"));
        }
        Ok(())
    }

    /// Creates a batch of user cards: allocates every holder's serial, in order, and records
    /// every card `allocated`, in one audited transaction. A holder who already has a card of
    /// that type at that school is refused (no double issue); nothing is recorded then.
    pub async fn create_card_batch(
        &self,
        actor: &str,
        profile: &BatchProfile,
        cards: &[NewCard],
    ) -> Result<BatchInfo> {
        self.check_batch(profile, cards.len())?;
        for card in cards {
            check_holder(card, &profile.valid_from)?;
        }
        let versions = self
            .current_versions(profile.algorithm, &profile.templates)
            .await?;
        let versions_text = serde_json::to_string(&versions).expect("a map serialises");
        let mut by_school: BTreeMap<&str, Vec<&NewCard>> = BTreeMap::new();
        for card in cards {
            by_school.entry(&card.school).or_default().push(card);
        }
        let mut tx = self.store().begin().await?;
        let id = self
            .insert_batch(&mut tx, DeviceKind::Card, profile, cards.len(), actor)
            .await?;
        let mut schools = BTreeMap::new();
        for (code, holders) in &by_school {
            let school = SchoolCode::new(code)?;
            Object::School.require_present(&mut tx, code).await?;
            let region: String = sqlx::query("SELECT region_code FROM schools WHERE code = $1")
                .bind(*code)
                .fetch_one(&mut *tx)
                .await?
                .try_get("region_code")?;
            let first = take_numbers(
                &mut tx,
                code,
                DeviceKind::Card.name(),
                holders.len() as u32,
                MAX_SERIAL_NUMBER,
            )
            .await?;
            schools.insert(*code, (RegionCode::new(&region)?, school, first));
        }
        let now = now_ms();
        let mut taken: BTreeMap<&str, u32> = BTreeMap::new();
        let mut serials = Vec::with_capacity(cards.len());
        for (item, card) in cards.iter().enumerate() {
            let (region, school, first) = &schools[card.school.as_str()];
            let offset = taken.entry(&card.school).or_default();
            let serial = Serial::new(region, school, DeviceKind::Card, first + *offset);
            *offset += 1;
            let duplicate = sqlx::query(
                "SELECT serial FROM cards WHERE school_code = $1 AND holder_number = $2 \
                 AND card_type = $3",
            )
            .bind(&card.school)
            .bind(&card.holder_number)
            .bind(&card.card_type)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = duplicate {
                let existing: String = row.try_get("serial")?;
                return Err(KmsError::AlreadyExists {
                    kind: "card for holder",
                    id: format!(
                        "{} {} at {} (serial {existing})",
                        card.card_type, card.holder_number, card.school
                    ),
                });
            }
            insert_card(
                &mut tx,
                &CardRow {
                    serial: &serial,
                    kind: DeviceKind::Card,
                    school: &card.school,
                    batch: &id,
                    item: item as i64 + 1,
                    holder: Some(card),
                    terminal_id: None,
                    algorithm: profile.algorithm.name(),
                    key_versions: &versions_text,
                    valid_from: &profile.valid_from,
                    expiry: &card.expiry,
                    now,
                },
            )
            .await?;
            serials.push(serial);
        }
        self.commit_batch(
            tx,
            actor,
            &id,
            json!({
                "kind": "card",
                "profile": profile.name,
                "profile_digest": profile.digest,
                "cards": cards.len(),
                "schools": by_school.keys().collect::<Vec<_>>(),
                "key_versions": versions,
                "first_serial": serials.first().map(ToString::to_string),
                "last_serial": serials.last().map(ToString::to_string),
            }),
        )
        .await
    }

    /// Creates a batch of PSAMs for a school's terminals: allocates each PSAM's serial and
    /// registers a terminal (its terminal ID, 12 digits: the region code and a six-digit
    /// number per region) for each, in one audited transaction.
    pub async fn create_psam_batch(
        &self,
        actor: &str,
        profile: &BatchProfile,
        psams: &NewPsams,
    ) -> Result<BatchInfo> {
        self.check_batch(profile, psams.count)?;
        check_not_before(&psams.expiry, &profile.valid_from)?;
        crate::officers::check_name(&psams.vendor)
            .map_err(|_| invalid("vendor", "must be a short name"))?;
        let versions = self
            .current_versions(profile.algorithm, &profile.templates)
            .await?;
        let versions_text = serde_json::to_string(&versions).expect("a map serialises");
        let (school, _) = self.school(&psams.school).await?;
        let region = RegionCode::new(&school.region)?;
        let code = SchoolCode::new(&school.code)?;
        let count = psams.count as u32;
        let mut tx = self.store().begin().await?;
        let id = self
            .insert_batch(&mut tx, DeviceKind::Psam, profile, psams.count, actor)
            .await?;
        let first = take_numbers(
            &mut tx,
            code.as_str(),
            DeviceKind::Psam.name(),
            count,
            MAX_SERIAL_NUMBER,
        )
        .await?;
        let first_terminal = take_numbers(
            &mut tx,
            region.as_str(),
            "terminal",
            count,
            MAX_TERMINAL_NUMBER,
        )
        .await?;
        let now = now_ms();
        let mut terminals = Vec::with_capacity(psams.count);
        for n in 0..count {
            let serial = Serial::new(&region, &code, DeviceKind::Psam, first + n);
            let terminal_id = format!("{region}{:06}", first_terminal + n);
            sqlx::query(
                "INSERT INTO terminals (terminal_id, region_code, school_code, vendor, \
                 registered_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&terminal_id)
            .bind(region.as_str())
            .bind(code.as_str())
            .bind(&psams.vendor)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            insert_card(
                &mut tx,
                &CardRow {
                    serial: &serial,
                    kind: DeviceKind::Psam,
                    school: code.as_str(),
                    batch: &id,
                    item: i64::from(n) + 1,
                    holder: None,
                    terminal_id: Some(&terminal_id),
                    algorithm: profile.algorithm.name(),
                    key_versions: &versions_text,
                    valid_from: &profile.valid_from,
                    expiry: &psams.expiry,
                    now,
                },
            )
            .await?;
            terminals.push(terminal_id);
        }
        self.commit_batch(
            tx,
            actor,
            &id,
            json!({
                "kind": "psam",
                "profile": profile.name,
                "profile_digest": profile.digest,
                "school": code.as_str(),
                "vendor": psams.vendor,
                "psams": psams.count,
                "key_versions": versions,
                "terminals": terminals,
            }),
        )
        .await
    }

    /// A batch.
    pub async fn batch(&self, id: &str) -> Result<BatchInfo> {
        let row = sqlx::query(&format!("{BATCH_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.store().pool())
            .await?
            .ok_or_else(|| KmsError::NotFound {
                kind: "batch",
                id: id.to_owned(),
            })?;
        batch_of(&row)
    }

    /// Every batch, oldest first.
    pub async fn batches(&self) -> Result<Vec<BatchInfo>> {
        sqlx::query(&format!("{BATCH_SELECT} ORDER BY id"))
            .fetch_all(self.store().pool())
            .await?
            .iter()
            .map(batch_of)
            .collect()
    }

    /// The cards of a batch, in batch order.
    pub async fn batch_cards(&self, id: &str) -> Result<Vec<CardRecord>> {
        self.batch(id).await?;
        sqlx::query(&format!(
            "SELECT {CARD_COLUMNS} FROM {CARD_FROM} WHERE batch_id = $1 ORDER BY item"
        ))
        .bind(id)
        .fetch_all(self.store().pool())
        .await?
        .iter()
        .map(card_of)
        .collect()
    }

    /// A card's or PSAM's record.
    pub async fn card(&self, serial: &Serial) -> Result<CardRecord> {
        self.card_where("serial", &serial.to_string()).await
    }

    /// The record of the card whose diversification factor is `factor`.
    pub async fn card_by_factor(&self, factor: &[u8; 8]) -> Result<CardRecord> {
        self.card_where("factor", &hex::encode_upper(factor)).await
    }

    async fn card_where(&self, column: &'static str, value: &str) -> Result<CardRecord> {
        let row = sqlx::query(&format!(
            "SELECT {CARD_COLUMNS} FROM {CARD_FROM} WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(self.store().pool())
        .await?
        .ok_or_else(|| KmsError::NotFound {
            kind: "card",
            id: value.to_owned(),
        })?;
        card_of(&row)
    }

    /// The card a holder has of a card type at a school, if any.
    pub async fn holder_card(
        &self,
        school: &str,
        holder_number: &str,
        card_type: &str,
    ) -> Result<Option<CardRecord>> {
        sqlx::query(&format!(
            "SELECT {CARD_COLUMNS} FROM {CARD_FROM} WHERE cards.school_code = $1 \
             AND holder_number = $2 AND card_type = $3"
        ))
        .bind(school)
        .bind(holder_number)
        .bind(card_type)
        .fetch_optional(self.store().pool())
        .await?
        .as_ref()
        .map(card_of)
        .transpose()
    }

    /// Starts (or restarts) a card's personalisation as `actor`: its record becomes
    /// `personalising` and the attempt is counted and audited; the attempt returned is the
    /// only one the card-key acts answer from then on. An issued card is refused, and so is a
    /// card another station is personalising unless `take_over` (the other station's attempt
    /// then gets nothing more; the take-over is audited).
    pub async fn start_personalisation(
        &self,
        actor: &str,
        serial: &Serial,
        take_over: bool,
    ) -> Result<CardRecord> {
        let card = self.card(serial).await?;
        let object = format!("{}:{serial}", card.kind.name());
        let other = card
            .station
            .as_deref()
            .filter(|station| card.status == CardStatus::Personalising && *station != actor);
        if let Some(station) = other
            && !take_over
        {
            let reason = format!("{station} is personalising it (take it over to go on)");
            self.audit_refusal(vec![actor.to_owned()], "card.personalise", &object, &reason)
                .await?;
            return Err(KmsError::NotAuthorised(format!("card {serial}: {reason}")));
        }
        let mut tx = self.store().begin().await?;
        let changed = sqlx::query(
            "UPDATE cards SET status = 'personalising', attempts = attempts + 1, station = $1, \
             status_at = $2 WHERE serial = $3 AND status <> 'issued' AND attempts = $4",
        )
        .bind(actor)
        .bind(now_ms())
        .bind(serial.to_string())
        .bind(card.attempts as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(invalid(
                "card",
                format!("{serial} is issued, or another attempt started meanwhile"),
            ));
        }
        self.commit_audited(
            tx,
            AuditRecord {
                actors: vec![actor.to_owned()],
                act: "card.personalise".into(),
                object,
                result: "ok".into(),
                detail: json!({
                    "batch": card.batch,
                    "item": card.item,
                    "attempt": card.attempts + 1,
                    "from": card.status.name(),
                    "taken_over_from": other,
                }),
            },
        )
        .await?;
        self.card(serial).await
    }

    /// Records a card as issued once the station verified it, ending `attempt`; closes its
    /// batch when it was the last. Audited with the APDU count of the attempt.
    pub async fn finish_personalisation(
        &self,
        actor: &str,
        attempt: &Attempt,
        apdus: u64,
    ) -> Result<CardRecord> {
        let card = self.personalising(attempt).await?;
        let serial = attempt.serial;
        let mut tx = self.store().begin().await?;
        let now = now_ms();
        // The batch row first: finishing stations queue here, so exactly one sees the last.
        sqlx::query("UPDATE issue_batches SET status = status WHERE id = $1")
            .bind(&card.batch)
            .execute(&mut *tx)
            .await?;
        let changed = sqlx::query(
            "UPDATE cards SET status = 'issued', apdus = $1, status_at = $2 WHERE serial = $3 \
             AND status = 'personalising' AND attempts = $4",
        )
        .bind(apdus as i64)
        .bind(now)
        .bind(serial.to_string())
        .bind(attempt.number as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(invalid(
                "card",
                format!("{serial}: attempt {} is no longer current", attempt.number),
            ));
        }
        let left: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM cards WHERE batch_id = $1 AND status <> 'issued'",
        )
        .bind(&card.batch)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if left == 0 {
            sqlx::query("UPDATE issue_batches SET status = 'done', closed_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&card.batch)
                .execute(&mut *tx)
                .await?;
        }
        self.commit_audited(
            tx,
            AuditRecord {
                actors: vec![actor.to_owned()],
                act: "card.issue".into(),
                object: format!("{}:{serial}", card.kind.name()),
                result: "ok".into(),
                detail: json!({
                    "batch": card.batch,
                    "item": card.item,
                    "attempts": card.attempts,
                    "apdus": apdus,
                    "key_versions": card.key_versions,
                    "batch_done": left == 0,
                }),
            },
        )
        .await?;
        self.card(&serial).await
    }

    /// The card of `attempt`, refused unless the attempt is its current one.
    async fn personalising(&self, attempt: &Attempt) -> Result<CardRecord> {
        let card = self.card(&attempt.serial).await?;
        if card.status != CardStatus::Personalising || card.attempts != attempt.number {
            return Err(invalid(
                "card",
                format!(
                    "{} is {} (attempt {}), not in attempt {}",
                    attempt.serial,
                    card.status.name(),
                    card.attempts,
                    attempt.number
                ),
            ));
        }
        Ok(card)
    }

    /// The wrapped master and the factors down to `key` of `card`.
    async fn card_key(
        &self,
        card: &CardRecord,
        key: CardKey<'_>,
        purpose: Purpose,
    ) -> Result<(WrappedKey, Vec<[u8; 8]>)> {
        let algorithm = card.key_algorithm()?;
        let factors = card.factors()?;
        let (template, version, factors) = match key {
            CardKey::Transport => (CARD_TRANSPORT_TEMPLATE, None, Vec::new()),
            CardKey::Card(name) => (
                Template::named(name)?,
                Some(card.key_version(name)?),
                factors.to_vec(),
            ),
            CardKey::School(name) => {
                let template = Template::named(name)?;
                if card.kind != DeviceKind::Psam || template.usage != KeyUsage::Purchase {
                    return Err(invalid(
                        "card key",
                        "only a PSAM gets a school-level key, and only the purchase key",
                    ));
                }
                (
                    template,
                    Some(card.key_version(name)?),
                    factors[..2].to_vec(),
                )
            }
        };
        if key != CardKey::Transport && !template.master {
            return Err(invalid(
                "card key",
                format!("`{}` is not a card key template", template.name),
            ));
        }
        let id = template.key_id(algorithm, &Scope::Bureau);
        let (_, wrapped) = self.wrapped(&id, version, purpose).await?;
        Ok((wrapped, factors))
    }

    /// The EXTERNAL AUTHENTICATE cryptogram for the challenge of a card in `attempt`, under
    /// its `key` (the transport key of a blank card, or one of its own type-39 keys: the HSM
    /// refuses other usages).
    pub async fn card_external_auth(
        &self,
        attempt: &Attempt,
        key: CardKey<'_>,
        challenge: &[u8],
    ) -> Result<Vec<u8>> {
        let card = self.personalising(attempt).await?;
        let (master, factors) = self.card_key(&card, key, Purpose::Use).await?;
        self.hsm()
            .external_auth_cryptogram(&master, &factors, challenge)
    }

    /// The whole WRITE KEY command (`84 D4 P1 P2 Lc ENC(record) ‖ MAC`) for a card in
    /// `attempt`. The vendor's transport key, which people outside the KMS have held, protects
    /// one write only: the card master key over itself (P1 P2 = 39 00); every other key is
    /// written under one of the card's own keys.
    pub async fn card_write_key(
        &self,
        attempt: &Attempt,
        write: &CardKeyWrite<'_>,
    ) -> Result<Vec<u8>> {
        let card = self.personalising(attempt).await?;
        let under_transport = write.under == CardKey::Transport;
        if under_transport
            && (write.key != CardKey::Card(CARD_MASTER_TEMPLATE)
                || (write.p1, write.p2) != (0x39, 0))
        {
            return Err(invalid(
                "card key",
                "the transport key protects only the card master key's write over it (39 00)",
            ));
        }
        if write.key == CardKey::Transport {
            return Err(invalid("card key", "the transport key is never written"));
        }
        let (key, key_factors) = self.card_key(&card, write.key, Purpose::Use).await?;
        let (under, under_factors) = self.card_key(&card, write.under, Purpose::Use).await?;
        if under_transport && !card.card_master_sent {
            let mut tx = self.store().begin().await?;
            sqlx::query("UPDATE cards SET card_master_sent = 1 WHERE serial = $1")
                .bind(card.serial.to_string())
                .execute(&mut *tx)
                .await?;
            self.commit_audited(
                tx,
                AuditRecord {
                    actors: vec![card.station.clone().unwrap_or_default()],
                    act: "card.master-key".into(),
                    object: format!("{}:{}", card.kind.name(), card.serial),
                    result: "ok".into(),
                    detail: json!({ "attempt": attempt.number }),
                },
            )
            .await?;
        }
        self.hsm().write_key_command(&WriteKey {
            key: &key,
            key_factors: &key_factors,
            under: &under,
            under_factors: &under_factors,
            challenge: write.challenge,
            p1: write.p1,
            p2: write.p2,
            record_header: write.record_header,
        })
    }

    /// Signs the data of a card in `attempt` for its certificate file: the KMS signing key
    /// over [`CARD_CERTIFICATE_DOMAIN`] ‖ serial ‖ `data`. Returns the signing key's
    /// algorithm, version and the signature `r ‖ s`.
    pub async fn sign_card_data(
        &self,
        attempt: &Attempt,
        data: &[u8],
    ) -> Result<(KeyAlgorithm, u8, Vec<u8>)> {
        self.personalising(attempt).await?;
        let (_, version, key) = self.signing_key().await?;
        let message = card_certificate_message(&attempt.serial, data);
        let signature = self.sign_with(&key, &message)?;
        Ok((key.attributes().algorithm(), version, signature))
    }

    /// Verifies a card certificate's signature by version `version` of the KMS signing key.
    pub async fn verify_card_data(
        &self,
        serial: &Serial,
        data: &[u8],
        version: u8,
        signature: &[u8],
    ) -> Result<()> {
        let id = self.signing_key_id().await?;
        self.verify_kms_signature(
            &id,
            version,
            &card_certificate_message(serial, data),
            signature,
        )
        .await
    }

    /// An issued card for a money act.
    async fn issued(&self, factor: &[u8; 8]) -> Result<CardRecord> {
        let card = self.card_by_factor(factor).await?;
        if card.status != CardStatus::Issued || card.kind != DeviceKind::Card {
            return Err(invalid(
                "card",
                format!("{} is not an issued user card", card.serial),
            ));
        }
        Ok(card)
    }

    /// Online load: checks the card's MAC1 under its load key (version `key_version`, as
    /// INITIALIZE FOR LOAD reported) and returns MAC2. Audited, accepted or refused (an
    /// unknown or not issued card too).
    pub async fn authorize_load(
        &self,
        actor: &str,
        factor: &[u8; 8],
        key_version: u8,
        load: &Load,
        mac1: &[u8],
    ) -> Result<[u8; 4]> {
        let card = self.card_by_factor(factor).await;
        let object = match &card {
            Ok(card) => format!("card:{}", card.serial),
            Err(_) => format!("factor:{}", hex::encode_upper(factor)),
        };
        let outcome = async {
            let card = card?;
            if card.status != CardStatus::Issued || card.kind != DeviceKind::Card {
                return Err(invalid(
                    "card",
                    format!("{} is not an issued user card", card.serial),
                ));
            }
            let terminal = hex::encode_upper(load.terminal_id);
            let registered = sqlx::query("SELECT 1 FROM terminals WHERE terminal_id = $1")
                .bind(&terminal)
                .fetch_optional(self.store().pool())
                .await?
                .is_some();
            if !registered {
                return Err(invalid(
                    "terminal",
                    format!("{terminal} is not a registered terminal"),
                ));
            }
            if card.key_version("load")? != key_version {
                return Err(invalid(
                    "load key version",
                    format!("the card reported {key_version:02X}"),
                ));
            }
            let (master, factors) = self
                .card_key(&card, CardKey::Card("load"), Purpose::Use)
                .await?;
            self.hsm().load_mac2(&master, &factors, load, mac1)
        }
        .await;
        let tx = self.store().begin().await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors: vec![actor.to_owned()],
                act: "card.load".into(),
                object,
                result: match &outcome {
                    Ok(_) => "ok".into(),
                    Err(error) => format!("refused: {error}"),
                },
                detail: json!({
                    "amount": load.amount,
                    "type": load.transaction_type,
                    "terminal": hex::encode_upper(load.terminal_id),
                    "online_seq": load.online_seq,
                    "old_balance": load.old_balance,
                }),
            },
        )
        .await?;
        outcome
    }

    /// Verifies the TAC of a load.
    pub async fn verify_load_tac(&self, factor: &[u8; 8], load: &Load, tac: &[u8]) -> Result<()> {
        let card = self.issued(factor).await?;
        let (master, factors) = self
            .card_key(&card, CardKey::Card("tac"), Purpose::Verify)
            .await?;
        self.hsm().verify_load_tac(&master, &factors, load, tac)
    }

    /// Clears terminals' purchase records (`ykt_psam::PurchaseRecord`): the verdict on each
    /// record's TAC, in order.
    pub async fn verify_purchase_records(
        &self,
        records: &[PurchaseRecord],
    ) -> Result<Vec<TacVerdict>> {
        let purchases: Vec<Purchase> = records.iter().map(purchase_of).collect();
        let checks: Vec<PurchaseCheck<'_>> = records
            .iter()
            .zip(&purchases)
            .map(|(record, purchase)| PurchaseCheck {
                factor: record.asn,
                purchase,
                tac: record.tac,
            })
            .collect();
        self.verify_purchase_tacs(&checks).await
    }

    /// Verifies the TACs of purchase records at clearing: one verdict per record, in order.
    pub async fn verify_purchase_tacs(
        &self,
        records: &[PurchaseCheck<'_>],
    ) -> Result<Vec<TacVerdict>> {
        let mut verdicts = vec![TacVerdict::UnknownCard; records.len()];
        // Records grouped by the TAC master (algorithm and version) of their card.
        let mut groups: TacGroups = BTreeMap::new();
        let mut cards: BTreeMap<[u8; 8], Option<CardRecord>> = BTreeMap::new();
        for (index, record) in records.iter().enumerate() {
            let card = match cards.get(&record.factor) {
                Some(card) => card.clone(),
                None => {
                    let card = match self.issued(&record.factor).await {
                        Ok(card) => Some(card),
                        Err(KmsError::NotFound { .. } | KmsError::InvalidInput { .. }) => None,
                        Err(other) => return Err(other),
                    };
                    cards.insert(record.factor, card.clone());
                    card
                }
            };
            let Some(card) = card else {
                continue;
            };
            let Ok(version) = card.key_version("tac") else {
                // A card without a TAC key cannot have made a TAC.
                verdicts[index] = TacVerdict::Invalid;
                continue;
            };
            let key = (card.algorithm.clone(), version);
            groups
                .entry(key)
                .or_default()
                .push((index, card.factors()?));
        }
        for ((algorithm, version), members) in groups {
            let id = Template::named("tac")?.key_id(algorithm_named(&algorithm)?, &Scope::Bureau);
            let (_, master) = self.wrapped(&id, Some(version), Purpose::Verify).await?;
            let checks: Vec<TacCheck<'_>> = members
                .iter()
                .map(|(index, factors)| TacCheck {
                    factors,
                    purchase: records[*index].purchase,
                    tac: &records[*index].tac,
                })
                .collect();
            for ((index, _), ok) in members
                .iter()
                .zip(self.hsm().verify_purchase_tacs(&master, &checks)?)
            {
                verdicts[*index] = if ok {
                    TacVerdict::Valid
                } else {
                    TacVerdict::Invalid
                };
            }
        }
        Ok(verdicts)
    }
}

/// The purchase a terminal's record describes, as the TAC covers it (the card's random does
/// not enter the TAC and is not in the record).
fn purchase_of(record: &PurchaseRecord) -> Purchase {
    Purchase {
        card_random: [0; 4],
        offline_seq: record.offline_seq,
        amount: record.amount,
        transaction_type: record.transaction_type,
        terminal_id: record.terminal_id,
        terminal_seq: record.terminal_seq,
        date: record.date,
        time: record.time,
    }
}

/// Purchase records grouped by the TAC master of their cards (algorithm, version): each
/// record's index and its card's factors.
type TacGroups = BTreeMap<(String, u8), Vec<(usize, [[u8; 8]; 3])>>;

/// The message a card certificate signs.
pub fn card_certificate_message(serial: &Serial, data: &[u8]) -> Vec<u8> {
    [CARD_CERTIFICATE_DOMAIN, &serial.bytes(), data].concat()
}
