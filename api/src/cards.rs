//! Card operations for remote issuing stations and load hosts: the card registry, the
//! personalisation attempts and the HSM cryptograms of the issuer, for the schools in the
//! caller's scope. A station on another machine runs `ykt issue --kms https://…` through
//! these with [`crate::remote`]; the KMS applies the same rules as in process (attempts,
//! take-overs, the transport key's single write).
//!
//! Role `issuer` (its schools only) for the registry and personalisation; roles `issuer`
//! (its schools) and `platform` (every school) for loads. Byte strings are hex. The audit
//! records of these acts name `client:NAME/OPERATOR`: the authenticated client and the
//! operator it names.
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | GET | `/v1/schools/{code}` | → `{code, region, name}` |
//! | GET | `/v1/schools/{code}/holders/{number}/{card_type}` | → `{card: CardRecord?}` |
//! | POST | `/v1/batches` | [`CardBatchRequest`] → `BatchInfo` |
//! | POST | `/v1/psam-batches` | [`PsamBatchRequest`] → `BatchInfo` |
//! | GET | `/v1/batches/{id}` | → `BatchInfo` |
//! | GET | `/v1/batches/{id}/cards` | → `[CardRecord]` |
//! | GET | `/v1/cards/{serial}` | → `CardRecord` |
//! | POST | `/v1/cards/{serial}/personalisation` | [`StartRequest`] → `CardRecord` |
//! | POST | `/v1/cards/{serial}/issued` | [`FinishRequest`] → `CardRecord` |
//! | POST | `/v1/cards/{serial}/external-auth` | [`ExternalAuthRequest`] → `{cryptogram}` |
//! | POST | `/v1/cards/{serial}/write-key` | [`WriteKeyRequest`] → `{command}` |
//! | POST | `/v1/cards/{serial}/certificate` | [`CertificateRequest`] → [`CardSignature`] |
//! | POST | `/v1/cards/{serial}/certificate/verify` | [`CertificateCheck`] → `{valid}` |
//! | POST | `/v1/loads/authorize` | [`LoadAuthorizeRequest`] → `{mac2}` |
//! | POST | `/v1/loads/verify-tac` | [`LoadTacRequest`] → `{valid}` |

use crate::server::{AppState, Audited, Caller, JsonBody, Refusal, refused};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ykt_kms::issuance::{
    Attempt, BatchInfo, BatchProfile, CardKey, CardKeyWrite, CardRecord, Load, NewCard, NewPsams,
    Serial,
};

/// Hex byte strings in JSON.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises bytes as upper-case hex.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(bytes))
    }

    /// Deserialises hex into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(&text).map_err(|_| serde::de::Error::custom("not a hex string"))
    }
}

/// Fixed-length hex byte strings in JSON.
pub mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises bytes as upper-case hex.
    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(bytes))
    }

    /// Deserialises hex of exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(&text)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom(format!("not {N} bytes of hex")))
    }
}

/// A card key as requests name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum WireCardKey {
    /// The card vendor's transport key.
    Transport,
    /// The card's own key of a master template.
    Card {
        /// The master template.
        template: String,
    },
    /// A school-level key of a master template (a PSAM's purchase key).
    School {
        /// The master template.
        template: String,
    },
}

impl WireCardKey {
    /// The key as the KMS names it.
    pub fn as_card_key(&self) -> CardKey<'_> {
        match self {
            Self::Transport => CardKey::Transport,
            Self::Card { template } => CardKey::Card(template),
            Self::School { template } => CardKey::School(template),
        }
    }
}

impl From<CardKey<'_>> for WireCardKey {
    fn from(key: CardKey<'_>) -> Self {
        match key {
            CardKey::Transport => Self::Transport,
            CardKey::Card(template) => Self::Card {
                template: template.into(),
            },
            CardKey::School(template) => Self::School {
                template: template.into(),
            },
        }
    }
}

/// `POST /v1/batches`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardBatchRequest {
    /// The operator at the station.
    pub operator: String,
    /// What the cards are personalised with.
    pub profile: BatchProfile,
    /// The holders, in order.
    pub cards: Vec<NewCard>,
}

/// `POST /v1/psam-batches`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsamBatchRequest {
    /// The operator at the station.
    pub operator: String,
    /// What the PSAMs are personalised with.
    pub profile: BatchProfile,
    /// The run of PSAMs.
    pub psams: NewPsams,
}

/// `POST /v1/cards/{serial}/personalisation`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The operator at the station.
    pub operator: String,
    /// Take the card over from another station.
    #[serde(default)]
    pub take_over: bool,
}

/// `POST /v1/cards/{serial}/issued`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishRequest {
    /// The operator at the station.
    pub operator: String,
    /// The attempt's number.
    pub attempt: u64,
    /// APDUs the attempt took.
    pub apdus: u64,
}

/// `POST /v1/cards/{serial}/external-auth`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalAuthRequest {
    /// The attempt's number.
    pub attempt: u64,
    /// The key to authenticate with.
    pub key: WireCardKey,
    /// The card's challenge.
    #[serde(with = "hex_bytes")]
    pub challenge: Vec<u8>,
}

/// `POST /v1/cards/{serial}/write-key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteKeyRequest {
    /// The attempt's number.
    pub attempt: u64,
    /// The key to write.
    pub key: WireCardKey,
    /// The card's key that protects the write.
    pub under: WireCardKey,
    /// The card's challenge.
    #[serde(with = "hex_bytes")]
    pub challenge: Vec<u8>,
    /// P1.
    pub p1: u8,
    /// P2.
    pub p2: u8,
    /// The key record's header.
    #[serde(with = "hex_bytes")]
    pub record_header: Vec<u8>,
}

/// `POST /v1/cards/{serial}/certificate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateRequest {
    /// The attempt's number.
    pub attempt: u64,
    /// The card data to sign.
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
}

/// The answer of `POST /v1/cards/{serial}/certificate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CardSignature {
    /// The KMS signing key's algorithm (`sm2`, `p256`).
    pub algorithm: String,
    /// Its version.
    pub version: u8,
    /// The signature `r ‖ s`.
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

/// `POST /v1/cards/{serial}/certificate/verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateCheck {
    /// The card data.
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
    /// The signing key's version.
    pub version: u8,
    /// The signature `r ‖ s`.
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

/// A load as MAC1, MAC2 and the TAC cover it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireLoad {
    /// Card random from INITIALIZE FOR LOAD.
    #[serde(with = "hex_array")]
    pub card_random: [u8; 4],
    /// Online transaction serial before the load.
    pub online_seq: u16,
    /// Balance before the load, in fen.
    pub old_balance: u32,
    /// Amount in fen.
    pub amount: u32,
    /// Transaction type (02 EP, 01 ED).
    pub transaction_type: u8,
    /// Terminal ID.
    #[serde(with = "hex_array")]
    pub terminal_id: [u8; 6],
    /// Host date, YYYYMMDD BCD.
    #[serde(with = "hex_array")]
    pub date: [u8; 4],
    /// Host time, hhmmss BCD.
    #[serde(with = "hex_array")]
    pub time: [u8; 3],
}

impl From<&Load> for WireLoad {
    fn from(load: &Load) -> Self {
        Self {
            card_random: load.card_random,
            online_seq: load.online_seq,
            old_balance: load.old_balance,
            amount: load.amount,
            transaction_type: load.transaction_type,
            terminal_id: load.terminal_id,
            date: load.date,
            time: load.time,
        }
    }
}

impl From<&WireLoad> for Load {
    fn from(load: &WireLoad) -> Self {
        Self {
            card_random: load.card_random,
            online_seq: load.online_seq,
            old_balance: load.old_balance,
            amount: load.amount,
            transaction_type: load.transaction_type,
            terminal_id: load.terminal_id,
            date: load.date,
            time: load.time,
        }
    }
}

/// `POST /v1/loads/authorize`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadAuthorizeRequest {
    /// The operator at the load terminal.
    pub operator: String,
    /// The card's diversification factor (ASN).
    #[serde(with = "hex_array")]
    pub factor: [u8; 8],
    /// The load key's version, as INITIALIZE FOR LOAD reported.
    pub key_version: u8,
    /// The load.
    pub load: WireLoad,
    /// The card's MAC1.
    #[serde(with = "hex_bytes")]
    pub mac1: Vec<u8>,
}

/// `POST /v1/loads/verify-tac`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadTacRequest {
    /// The card's diversification factor (ASN).
    #[serde(with = "hex_array")]
    pub factor: [u8; 8],
    /// The load.
    pub load: WireLoad,
    /// The card's TAC.
    #[serde(with = "hex_bytes")]
    pub tac: Vec<u8>,
}

/// The answer of `GET /v1/schools/{code}/holders/{number}/{card_type}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HolderCard {
    /// The holder's card of that type, if any.
    pub card: Option<CardRecord>,
}

/// The answer of `POST /v1/cards/{serial}/external-auth`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cryptogram {
    /// The EXTERNAL AUTHENTICATE data.
    #[serde(with = "hex_bytes")]
    pub cryptogram: Vec<u8>,
}

/// The answer of `POST /v1/cards/{serial}/write-key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteCommand {
    /// The whole 84 D4 command.
    #[serde(with = "hex_bytes")]
    pub command: Vec<u8>,
}

/// The answer of `POST /v1/loads/authorize`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Mac2 {
    /// MAC2 for CREDIT FOR LOAD.
    #[serde(with = "hex_array")]
    pub mac2: [u8; 4],
}

/// A `{"valid": bool}` answer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Validity {
    /// Whether the check passed.
    pub valid: bool,
}

/// The answer of a check: valid, not valid (a MAC, TAC or signature that does not verify),
/// or the refusal of a check that could not be made.
fn validity(outcome: ykt_kms::Result<()>) -> Result<Json<Validity>, Refusal> {
    match outcome {
        Ok(()) => Ok(Json(Validity { valid: true })),
        Err(error) if error.is_mismatch() => Ok(Json(Validity { valid: false })),
        Err(error) => Err(refused(error)),
    }
}

fn forbidden(message: String) -> Refusal {
    Refusal::new(StatusCode::FORBIDDEN, "forbidden", message)
}

impl Caller {
    /// Refuses unless this caller is an issuing station.
    fn issues_cards(&self) -> Result<(), Refusal> {
        if self.role == "issuer" {
            Ok(())
        } else {
            Err(forbidden(format!(
                "a {} client may not issue cards",
                self.role
            )))
        }
    }

    /// Refuses unless this caller issues cards for `school`.
    fn issues_for(&self, school: &str) -> Result<(), Refusal> {
        self.issues_cards()?;
        self.in_scope(school)
    }

    /// Refuses unless this caller may authorise loads on cards of `school`.
    fn loads_for(&self, school: &str) -> Result<(), Refusal> {
        match self.role.as_str() {
            "platform" => Ok(()),
            "issuer" => self.in_scope(school),
            role => Err(forbidden(format!(
                "a {role} client may not authorise loads"
            ))),
        }
    }

    fn in_scope(&self, school: &str) -> Result<(), Refusal> {
        if self.schools.iter().any(|s| s == school) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "school {school} is outside the scope of client {}",
                self.name
            )))
        }
    }

    /// The actor of an act done for `operator` at this client: `client:NAME/OPERATOR`.
    fn acting(&self, operator: &str) -> Result<String, Refusal> {
        let valid = (1..=64).contains(&operator.chars().count())
            && !operator
                .chars()
                .any(|c| c.is_control() || c == ',' || c == '/');
        if valid {
            Ok(format!("client:{}/{operator}", self.name))
        } else {
            Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                "operator is 1 to 64 characters without control characters, `,` or `/`",
            ))
        }
    }
}

/// The serial `text` after checking the caller issues for its school (which the serial
/// carries: no store lookup).
fn issuing_serial(caller: &Caller, text: &str) -> Result<Serial, Refusal> {
    let serial = Serial::parse(text).map_err(refused)?;
    caller.issues_for(&serial.school())?;
    Ok(serial)
}

/// `GET /v1/schools/{code}`.
pub async fn school(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
) -> Result<Json<Value>, Refusal> {
    caller.issues_for(&code)?;
    let (school, _) = state.kms.school(&code).await.map_err(refused)?;
    Ok(Json(
        json!({ "code": school.code, "region": school.region, "name": school.name }),
    ))
}

/// `GET /v1/schools/{code}/holders/{number}/{card_type}`.
pub async fn holder_card(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((school, number, card_type)): Path<(String, String, String)>,
) -> Result<Json<HolderCard>, Refusal> {
    caller.issues_for(&school)?;
    let card = state
        .kms
        .holder_card(&school, &number, &card_type)
        .await
        .map_err(refused)?;
    Ok(Json(HolderCard { card }))
}

/// `POST /v1/batches`.
pub async fn create_card_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<CardBatchRequest>,
) -> Result<(Audited, Json<BatchInfo>), Refusal> {
    let actor = caller.acting(&request.operator)?;
    if request.cards.is_empty() {
        caller.issues_cards()?;
    }
    for card in &request.cards {
        caller.issues_for(&card.school)?;
    }
    let batch = state
        .kms
        .create_card_batch(&actor, &request.profile, &request.cards)
        .await
        .map_err(refused)?;
    Ok((Audited, Json(batch)))
}

/// `POST /v1/psam-batches`.
pub async fn create_psam_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<PsamBatchRequest>,
) -> Result<(Audited, Json<BatchInfo>), Refusal> {
    let actor = caller.acting(&request.operator)?;
    caller.issues_for(&request.psams.school)?;
    let batch = state
        .kms
        .create_psam_batch(&actor, &request.profile, &request.psams)
        .await
        .map_err(refused)?;
    Ok((Audited, Json(batch)))
}

/// The cards of batch `id`, all in the caller's scope.
async fn scoped_batch_cards(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Vec<CardRecord>, Refusal> {
    let cards = state.kms.batch_cards(id).await.map_err(refused)?;
    if cards.is_empty() {
        caller.issues_cards()?;
    }
    for card in &cards {
        caller.issues_for(&card.school)?;
    }
    Ok(cards)
}

/// `GET /v1/batches/{id}`.
pub async fn batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<BatchInfo>, Refusal> {
    let info = state.kms.batch(&id).await.map_err(refused)?;
    scoped_batch_cards(&state, &caller, &id).await?;
    Ok(Json(info))
}

/// `GET /v1/batches/{id}/cards`.
pub async fn batch_cards(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Vec<CardRecord>>, Refusal> {
    state.kms.batch(&id).await.map_err(refused)?;
    Ok(Json(scoped_batch_cards(&state, &caller, &id).await?))
}

/// `GET /v1/cards/{serial}`.
pub async fn card(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
) -> Result<Json<CardRecord>, Refusal> {
    let serial = issuing_serial(&caller, &serial)?;
    Ok(Json(state.kms.card(&serial).await.map_err(refused)?))
}

/// `POST /v1/cards/{serial}/personalisation`.
pub async fn start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
    JsonBody(request): JsonBody<StartRequest>,
) -> Result<(Audited, Json<CardRecord>), Refusal> {
    let actor = caller.acting(&request.operator)?;
    let serial = issuing_serial(&caller, &serial)?;
    let record = state
        .kms
        .start_personalisation(&actor, &serial, request.take_over)
        .await
        .map_err(refused)?;
    Ok((Audited, Json(record)))
}

/// `POST /v1/cards/{serial}/issued`.
pub async fn finish(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
    JsonBody(request): JsonBody<FinishRequest>,
) -> Result<(Audited, Json<CardRecord>), Refusal> {
    let actor = caller.acting(&request.operator)?;
    let serial = issuing_serial(&caller, &serial)?;
    let record = state
        .kms
        .finish_personalisation(
            &actor,
            &Attempt {
                serial,
                number: request.attempt,
            },
            request.apdus,
        )
        .await
        .map_err(refused)?;
    Ok((Audited, Json(record)))
}

/// `POST /v1/cards/{serial}/external-auth`.
pub async fn external_auth(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
    JsonBody(request): JsonBody<ExternalAuthRequest>,
) -> Result<Json<Cryptogram>, Refusal> {
    let serial = issuing_serial(&caller, &serial)?;
    let cryptogram = state
        .kms
        .card_external_auth(
            &Attempt {
                serial,
                number: request.attempt,
            },
            request.key.as_card_key(),
            &request.challenge,
        )
        .await
        .map_err(refused)?;
    Ok(Json(Cryptogram { cryptogram }))
}

/// `POST /v1/cards/{serial}/write-key`.
pub async fn write_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
    JsonBody(request): JsonBody<WriteKeyRequest>,
) -> Result<Json<WriteCommand>, Refusal> {
    let serial = issuing_serial(&caller, &serial)?;
    let command = state
        .kms
        .card_write_key(
            &Attempt {
                serial,
                number: request.attempt,
            },
            &CardKeyWrite {
                key: request.key.as_card_key(),
                under: request.under.as_card_key(),
                challenge: &request.challenge,
                p1: request.p1,
                p2: request.p2,
                record_header: &request.record_header,
            },
        )
        .await
        .map_err(refused)?;
    Ok(Json(WriteCommand { command }))
}

/// `POST /v1/cards/{serial}/certificate`.
pub async fn certificate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
    JsonBody(request): JsonBody<CertificateRequest>,
) -> Result<Json<CardSignature>, Refusal> {
    let serial = issuing_serial(&caller, &serial)?;
    let (algorithm, version, signature) = state
        .kms
        .sign_card_data(
            &Attempt {
                serial,
                number: request.attempt,
            },
            &request.data,
        )
        .await
        .map_err(refused)?;
    Ok(Json(CardSignature {
        algorithm: algorithm.name().into(),
        version,
        signature,
    }))
}

/// `POST /v1/cards/{serial}/certificate/verify`.
pub async fn verify_certificate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
    JsonBody(request): JsonBody<CertificateCheck>,
) -> Result<Json<Validity>, Refusal> {
    let serial = issuing_serial(&caller, &serial)?;
    let outcome = state
        .kms
        .verify_card_data(&serial, &request.data, request.version, &request.signature)
        .await;
    validity(outcome)
}

/// The card of `factor` after checking the caller may authorise loads on it.
async fn loading_card(state: &AppState, caller: &Caller, factor: &[u8; 8]) -> Result<(), Refusal> {
    let card = state.kms.card_by_factor(factor).await.map_err(refused)?;
    caller.loads_for(&card.school)
}

/// `POST /v1/loads/authorize`.
pub async fn authorize_load(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<LoadAuthorizeRequest>,
) -> Result<(Audited, Json<Mac2>), Refusal> {
    let actor = caller.acting(&request.operator)?;
    loading_card(&state, &caller, &request.factor).await?;
    let mac2 = state
        .kms
        .authorize_load(
            &actor,
            &request.factor,
            request.key_version,
            &Load::from(&request.load),
            &request.mac1,
        )
        .await
        .map_err(refused)?;
    Ok((Audited, Json(Mac2 { mac2 })))
}

/// `POST /v1/loads/verify-tac`.
pub async fn verify_load_tac(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<LoadTacRequest>,
) -> Result<Json<Validity>, Refusal> {
    loading_card(&state, &caller, &request.factor).await?;
    let outcome = state
        .kms
        .verify_load_tac(&request.factor, &Load::from(&request.load), &request.tac)
        .await;
    validity(outcome)
}
