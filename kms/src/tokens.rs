//! Signed authorization tokens: JWT claims (RFC 7519) in the JWS compact serialisation
//! (RFC 7515), signed by the KMS with a token signing key (`api-token-p256`, `api-token-sm2`; [`crate::signing::TOKEN_SIGNING_TEMPLATE`]), so that a station or service can
//! show a relying party what it may do, for which schools and cards, and until when.
//!
//! A token is `base64url(header) "." base64url(claims) "." base64url(signature)`, base64url
//! without padding. Two algorithms:
//!
//! - `ES256` (RFC 7518 §3.4) with `api-token-p256`: ECDSA P-256 with SHA-256 over the ASCII
//!   signing input `base64url(header) "." base64url(claims)`; the signature is `r ‖ s`,
//!   64 bytes.
//! - `SM2SM3` with `api-token-sm2`: SM2 with SM3 (GB/T 32918.2) over the same signing input
//!   with the distinguishing ID `1234567812345678` ([`TOKEN_SM2_ID`], the GM/T 0009 default);
//!   the signature is `r ‖ s`, 64 bytes. No JOSE name is registered for SM2: `SM2SM3` is this
//!   KMS's own identifier, the `alg` its SM2 keys carry in their JWKs (`GET /v1/keys`).
//!
//! The header is exactly `{"alg": ..., "typ": "JWT", "kid": "<key ID>:v<version>"}`: the kid
//! names the key version that signed, so a token stays verifiable across a rotation, until
//! its key is destroyed. The claims ([`TokenClaims`]) are `iss` (`ykt-kms:<bureau code>`),
//! `sub`, `aud` (optional), `permissions` (a closed set, [`Permission`]), `schools`, `cards`
//! (optional, a serial range of one school), `iat`, `nbf`, `exp` (Unix seconds) and `jti`
//! (128 random bits from the HSM, hex).
//!
//! Verification ([`Kms::verify_token`]) is strict: three parts of unpadded base64url; a
//! header of exactly the members above, whose `alg` is the one of the kid's key (`none`, or
//! any other, is refused); a valid signature; then claims with no unknown member and only
//! known permissions; then the issuer and the time window, with [`CLOCK_LEEWAY_SECONDS`] of
//! leeway either side. Minting is an audited act (`api.token.mint`, object `token:<jti>`);
//! the token itself is never recorded.

use crate::audit::AuditRecord;
use crate::error::{KmsError, Result};
use crate::issuance::Serial;
use crate::kms::Kms;
use crate::model::{KeyAlgorithm, Purpose, SchoolCode, Scope};
use crate::signing::{DEFAULT_SM2_ID, Signed, TOKEN_SIGNING_TEMPLATE};
use crate::store::now_ms;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use ykt_crypto::Signature;

/// A token's lifetime when the request names none: 10 minutes.
pub const DEFAULT_TOKEN_LIFETIME: u64 = 600;

/// The longest lifetime a token may be given: 1 hour.
pub const MAX_TOKEN_LIFETIME: u64 = 3600;

/// How far the verifier's clock may be off: a token is accepted from `nbf` minus this until
/// `exp` plus this (exclusive).
pub const CLOCK_LEEWAY_SECONDS: i64 = 30;

/// The SM2 distinguishing ID of `SM2SM3` tokens.
pub const TOKEN_SM2_ID: &[u8] = DEFAULT_SM2_ID;

/// The most schools one token may name.
pub const MAX_TOKEN_SCHOOLS: usize = 100;

/// The longest token the verifier reads.
pub const MAX_TOKEN_LENGTH: usize = 16 * 1024;

/// What an issuer claim begins with, before the bureau code.
const ISSUER_PREFIX: &str = "ykt-kms:";

/// The `typ` of every token header.
const TOKEN_TYPE: &str = "JWT";

/// What a token allows its subject to do: a closed set, any other name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// Create and personalise card batches (`issue-batch`).
    IssueBatch,
    /// Register terminals and their PSAMs (`register-terminal`).
    RegisterTerminal,
    /// Report settlement data of purchases (`report-settlement`).
    ReportSettlement,
}

/// The signature algorithm of a token, which decides the key that signs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenAlgorithm {
    /// `ES256` with `api-token-p256`.
    #[default]
    Es256,
    /// `SM2SM3` with `api-token-sm2`.
    Sm2,
}

impl TokenAlgorithm {
    const ALL: [Self; 2] = [Self::Es256, Self::Sm2];

    /// The header's `alg`: `ES256`, or `SM2SM3` (no registered JOSE name exists for SM2).
    pub const fn jose_name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Sm2 => "SM2SM3",
        }
    }

    /// The ID of the token signing key that signs tokens of this algorithm.
    pub fn key_id(self) -> String {
        let algorithm = match self {
            Self::Es256 => KeyAlgorithm::P256,
            Self::Sm2 => KeyAlgorithm::Sm2,
        };
        TOKEN_SIGNING_TEMPLATE.key_id(algorithm, &Scope::Bureau)
    }

    /// The algorithm whose tokens `key_id` signs, if any.
    fn of_key(key_id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.key_id() == key_id)
    }
}

/// A range of card serials of one school and kind, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardRange {
    /// The first serial.
    pub from: Serial,
    /// The last serial.
    pub to: Serial,
}

/// Digits of a serial before its number: region (4), school (10) and kind (1).
const SERIAL_PREFIX_DIGITS: usize = 15;

impl CardRange {
    /// The region's first four digits within the serials.
    fn region_prefix(&self) -> String {
        self.from.to_string()[..4].to_owned()
    }

    /// Whether `from ≤ to` and both have the same school and kind.
    fn is_ordered_within_one_school(&self) -> bool {
        let (from, to) = (self.from.to_string(), self.to.to_string());
        self.from <= self.to && from[..SERIAL_PREFIX_DIGITS] == to[..SERIAL_PREFIX_DIGITS]
    }
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenClaims {
    /// `iss`: `ykt-kms:<bureau code>`.
    #[serde(rename = "iss")]
    pub issuer: String,
    /// `sub`: who may act (a station or service name).
    #[serde(rename = "sub")]
    pub subject: String,
    /// `aud`: the relying party the token is meant for, if named.
    #[serde(rename = "aud", default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// What the subject may do, sorted.
    pub permissions: Vec<Permission>,
    /// The schools it may do it for, sorted.
    pub schools: Vec<String>,
    /// The cards it may do it for, if limited to a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cards: Option<CardRange>,
    /// `iat`: when minted (Unix seconds).
    #[serde(rename = "iat")]
    pub issued_at: i64,
    /// `nbf`: valid from (Unix seconds).
    #[serde(rename = "nbf")]
    pub not_before: i64,
    /// `exp`: valid until, exclusive (Unix seconds).
    #[serde(rename = "exp")]
    pub expires_at: i64,
    /// `jti`: 128 random bits, lower-case hex.
    #[serde(rename = "jti")]
    pub token_id: String,
}

impl TokenClaims {
    /// Whether the claims are of a shape the KMS mints: some permission, and a validity
    /// window of 1 second to [`MAX_TOKEN_LIFETIME`] starting at or after `iat`.
    fn is_mintable_shape(&self) -> bool {
        let lifetime = self.expires_at.saturating_sub(self.not_before);
        !self.permissions.is_empty()
            && self.issued_at <= self.not_before
            && (1..=MAX_TOKEN_LIFETIME as i64).contains(&lifetime)
    }
}

/// A token's JOSE header.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

fn default_lifetime() -> u64 {
    DEFAULT_TOKEN_LIFETIME
}

/// What a token is asked for (the body of `POST /v1/tokens`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Who may act: a station or service name (1 to 32 of `a-z`, `0-9`, `-`, `_`).
    pub subject: String,
    /// The relying party, if named (same characters).
    #[serde(default)]
    pub audience: Option<String>,
    /// What the subject may do: at least one.
    pub permissions: Vec<Permission>,
    /// The schools (1 to [`MAX_TOKEN_SCHOOLS`]), each known to the KMS and in the caller's
    /// scope.
    pub schools: Vec<String>,
    /// The cards, if limited to a range: serials of one of `schools`.
    #[serde(default)]
    pub cards: Option<CardRange>,
    /// Seconds from now until the token expires: 1 to [`MAX_TOKEN_LIFETIME`], default
    /// [`DEFAULT_TOKEN_LIFETIME`].
    #[serde(default = "default_lifetime")]
    pub lifetime_seconds: u64,
    /// The signature algorithm (default ES256).
    #[serde(default)]
    pub algorithm: TokenAlgorithm,
}

/// The schools a minting caller may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintScope<'a> {
    /// Any school of the bureau.
    Bureau,
    /// These schools only (an issuing station's, or any caller registered with schools).
    Schools(&'a [String]),
}

/// A minted token and its claims.
#[derive(Clone, Serialize)]
pub struct MintedToken {
    /// The JWS compact serialisation: a bearer credential, never logged or recorded.
    pub token: String,
    /// Its claims.
    pub claims: TokenClaims,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

/// Why a token is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenRejection {
    /// Not three parts of unpadded base64url, a header or claims not exactly of the
    /// expected members (an unknown permission, an unknown member), a kid not
    /// `<key ID>:v<version>`, or claims of a shape the KMS never mints.
    Malformed,
    /// The header's `alg` is not the one of the kid's key (`none` included).
    WrongAlgorithm,
    /// The kid names no token key, no version of it, a destroyed one, or a key whose
    /// lifecycle state refuses verification (suspended, compromised).
    UnknownKey,
    /// The signature is not the key version's over the signing input.
    BadSignature,
    /// Signed by this KMS's key but issued for another bureau.
    WrongIssuer,
    /// `nbf` is still ahead, beyond the leeway.
    NotYetValid,
    /// `exp` has passed, beyond the leeway.
    Expired,
}

/// The outcome of verifying a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenVerdict {
    /// Valid now: its claims.
    Valid(TokenClaims),
    /// Not valid, and why.
    Invalid(TokenRejection),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> KmsError {
    KmsError::InvalidInput {
        field,
        reason: reason.into(),
    }
}

/// A station, service or relying-party name: the rule of client names.
fn check_party(field: &'static str, name: &str) -> Result<()> {
    crate::officers::check_name(name)
        .map_err(|_| invalid(field, "1 to 32 characters of a-z, 0-9, `-` and `_`"))
}

/// The parts of a compact JWS, decoded.
struct CompactJws<'a> {
    signing_input: &'a str,
    header: Vec<u8>,
    claims: Vec<u8>,
    signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    /// Splits and decodes `token`: exactly three parts of unpadded base64url.
    fn parse(token: &'a str) -> Option<Self> {
        if token.len() > MAX_TOKEN_LENGTH {
            return None;
        }
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (header, claims) = signing_input.split_once('.')?;
        if claims.contains('.') {
            return None;
        }
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
        Some(Self {
            signing_input,
            header: decode(header)?,
            claims: decode(claims)?,
            signature: decode(signature)?,
        })
    }
}

/// `<key ID>:v<version>`, the version in canonical decimal.
fn parse_kid(kid: &str) -> Option<(&str, u8)> {
    let (key_id, version) = kid.rsplit_once(":v")?;
    let number: u8 = version.parse().ok()?;
    (number.to_string() == version).then_some((key_id, number))
}

fn base64url_json(value: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("token JSON serialises"))
}

impl Kms {
    /// The issuer claim of this KMS's tokens: `ykt-kms:<bureau code>`.
    async fn token_issuer(&self) -> Result<String> {
        Ok(format!("{ISSUER_PREFIX}{}", self.info().await?.bureau_code))
    }

    /// Checks a request against the caller's scope and the KMS's schools: its permissions
    /// and schools, sorted and without repeats.
    async fn check_token_request(
        &self,
        scope: MintScope<'_>,
        request: &TokenRequest,
    ) -> Result<(Vec<Permission>, Vec<String>)> {
        check_party("subject", &request.subject)?;
        if let Some(audience) = &request.audience {
            check_party("audience", audience)?;
        }
        if !(1..=MAX_TOKEN_LIFETIME).contains(&request.lifetime_seconds) {
            return Err(invalid(
                "lifetime",
                format!("1 to {MAX_TOKEN_LIFETIME} seconds"),
            ));
        }
        let permissions: BTreeSet<Permission> = request.permissions.iter().copied().collect();
        if permissions.is_empty() {
            return Err(invalid("permissions", "at least one"));
        }
        let codes: BTreeSet<&str> = request.schools.iter().map(String::as_str).collect();
        if codes.is_empty() || codes.len() > MAX_TOKEN_SCHOOLS {
            return Err(invalid(
                "schools",
                format!("1 to {MAX_TOKEN_SCHOOLS} schools"),
            ));
        }
        let mut regions = BTreeMap::new();
        for code in codes {
            SchoolCode::new(code)?;
            if let MintScope::Schools(allowed) = scope
                && !allowed.iter().any(|s| s == code)
            {
                return Err(KmsError::NotAuthorised(format!(
                    "school {code} is outside the caller's scope"
                )));
            }
            let (school, _) = self.school(code).await.map_err(|error| match error {
                KmsError::NotFound { .. } => {
                    invalid("schools", format!("school {code} is not known to the KMS"))
                }
                other => other,
            })?;
            regions.insert(school.code, school.region);
        }
        if let Some(cards) = &request.cards {
            if !cards.is_ordered_within_one_school() {
                return Err(invalid(
                    "cards",
                    "from ≤ to, both of the same school and kind",
                ));
            }
            let in_schools = regions
                .get(&cards.from.school())
                .is_some_and(|region| region[..4] == cards.region_prefix());
            if !in_schools {
                return Err(invalid(
                    "cards",
                    "the serials are not of one of the token's schools",
                ));
            }
        }
        Ok((
            permissions.into_iter().collect(),
            regions.into_keys().collect(),
        ))
    }

    /// Mints a token for `caller` (as audited, e.g. `client:NAME`) whose schools must be
    /// inside `scope`: checks the request, signs in the HSM with the current version of the
    /// algorithm's token signing key and records one audit record (`api.token.mint`, object
    /// `token:<jti>`: subject, audience, permissions, schools, cards, expiry, key and
    /// version; never the token).
    pub async fn mint_token(
        &self,
        caller: &str,
        scope: MintScope<'_>,
        request: &TokenRequest,
    ) -> Result<MintedToken> {
        let (permissions, schools) = self.check_token_request(scope, request).await?;
        let key_id = request.algorithm.key_id();
        let (version, key) = self.cached_wrapped(&key_id, None, Purpose::Sign).await?;
        let mut token_id = [0u8; 16];
        self.hsm().random(&mut token_id)?;
        let now = now_ms() / 1000;
        let claims = TokenClaims {
            issuer: self.token_issuer().await?,
            subject: request.subject.clone(),
            audience: request.audience.clone(),
            permissions,
            schools,
            cards: request.cards,
            issued_at: now,
            not_before: now,
            expires_at: now + request.lifetime_seconds as i64,
            token_id: hex::encode(token_id),
        };
        let header = Header {
            alg: request.algorithm.jose_name().to_owned(),
            typ: TOKEN_TYPE.to_owned(),
            kid: format!("{key_id}:v{version}"),
        };
        let signing_input = format!("{}.{}", base64url_json(&header), base64url_json(&claims));
        let signature = self.api_signature(
            &key,
            TOKEN_SM2_ID,
            Signed::Message(signing_input.as_bytes()),
        )?;
        let token = format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_raw())
        );
        self.record_api_act(AuditRecord {
            actors: vec![caller.to_owned()],
            act: "api.token.mint".into(),
            object: format!("token:{}", claims.token_id),
            result: "ok".into(),
            detail: json!({
                "subject": claims.subject,
                "audience": claims.audience,
                "permissions": claims.permissions,
                "schools": claims.schools,
                "cards": claims.cards,
                "exp": claims.expires_at,
                "key": key_id,
                "version": version,
            }),
        })
        .await?;
        Ok(MintedToken { token, claims })
    }

    /// Verifies `token` at `now` (Unix seconds): its claims when valid, else why not. Errors
    /// only when the KMS cannot answer (the store or the HSM failed).
    pub async fn verify_token(&self, token: &str, now: i64) -> Result<TokenVerdict> {
        Ok(match self.check_token(token, now).await? {
            Ok(claims) => TokenVerdict::Valid(claims),
            Err(reason) => TokenVerdict::Invalid(reason),
        })
    }

    async fn check_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<std::result::Result<TokenClaims, TokenRejection>> {
        use TokenRejection::*;
        let Some(jws) = CompactJws::parse(token) else {
            return Ok(Err(Malformed));
        };
        let Ok(header) = serde_json::from_slice::<Header>(&jws.header) else {
            return Ok(Err(Malformed));
        };
        let Some((key_id, version)) = parse_kid(&header.kid).filter(|_| header.typ == TOKEN_TYPE)
        else {
            return Ok(Err(Malformed));
        };
        let Some(algorithm) = TokenAlgorithm::of_key(key_id) else {
            return Ok(Err(UnknownKey));
        };
        if header.alg != algorithm.jose_name() {
            return Ok(Err(WrongAlgorithm));
        }
        let key = match self
            .cached_wrapped(key_id, Some(version), Purpose::Verify)
            .await
        {
            Ok((_, key)) => key,
            Err(KmsError::NotFound { .. } | KmsError::KeyState { .. }) => {
                return Ok(Err(UnknownKey));
            }
            Err(error) => return Err(error),
        };
        let Ok(signature) = Signature::from_raw(&jws.signature) else {
            return Ok(Err(BadSignature));
        };
        if !self.api_signature_valid(
            &key,
            TOKEN_SM2_ID,
            Signed::Message(jws.signing_input.as_bytes()),
            &signature,
        )? {
            return Ok(Err(BadSignature));
        }
        let Some(claims) = serde_json::from_slice::<TokenClaims>(&jws.claims)
            .ok()
            .filter(TokenClaims::is_mintable_shape)
        else {
            return Ok(Err(Malformed));
        };
        if claims.issuer != self.token_issuer().await? {
            return Ok(Err(WrongIssuer));
        }
        if now < claims.not_before - CLOCK_LEEWAY_SECONDS {
            return Ok(Err(NotYetValid));
        }
        if now >= claims.expires_at + CLOCK_LEEWAY_SECONDS {
            return Ok(Err(Expired));
        }
        Ok(Ok(claims))
    }
}
