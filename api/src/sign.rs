//! The signing endpoints:
//!
//! - `GET /v1/keys`, `GET /v1/keys/{id}`: the API signing keys (`api-signing-*`, which sign
//!   for platform services) and the token signing keys (`api-token-*`, which sign only the
//!   tokens of `/v1/tokens`), each version's public key as PEM (SubjectPublicKeyInfo) and JWK,
//!   and what the caller may do with each. P-256 keys are `{"kty":"EC","crv":"P-256","alg":"ES256"}`; SM2 keys use the same
//!   shape with `"crv":"SM2"` and `"alg":"SM2SM3"` (no registered JOSE names exist for them).
//! - `GET /.well-known/jwks.json`: the P-256 keys' versions as a JWK set (ES256 token
//!   verification for relying parties).
//! - `POST /v1/keys/{id}/sign` (role `platform`): `{"messages": [base64, ...], "id": text?,
//!   "encoding": "der"|"raw"?}`, 1 to 1,000 messages — or `"digests"` instead of
//!   `"messages"`: pre-hashed, SHA-256 of the message for P-256, e = SM3(Z_A ‖ message) for
//!   SM2 (32 bytes each, base64; `id` is then in e already); answers the key version and one
//!   signature per message, each `ykt:vN:` + base64 (DER or `r ‖ s`). `id` is the SM2
//!   distinguishing ID (default `1234567812345678`).
//! - `POST /v1/keys/{id}/verify`: `{"message": base64, "signature": "ykt:vN:...", "id"?,
//!   "encoding"?}` (or `"digest"` for `"message"`) → `{"valid": bool}`.

use crate::server::{AppState, Audited, Caller, JsonBody, Refusal, refused};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ykt_crypto::Signature;
use ykt_kms::signing::{DEFAULT_SM2_ID, Signed};

/// SubjectPublicKeyInfo DER before the 65-byte point: id-ecPublicKey with the curve's OID.
const P256_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
const SM2_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a811ccf5501822d034200";

fn bad(message: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, "invalid", message)
}

/// A version's public key as PEM and JWK.
fn public_key(key_id: &str, algorithm: &str, version: u8, point_hex: &str) -> Option<Value> {
    let point = hex::decode(point_hex).ok()?;
    if point.len() != 65 || point[0] != 0x04 {
        return None;
    }
    let (prefix, crv, alg) = match algorithm {
        "sm2" => (SM2_SPKI_PREFIX, "SM2", "SM2SM3"),
        _ => (P256_SPKI_PREFIX, "P-256", "ES256"),
    };
    let spki = [hex::decode(prefix).ok()?, point.clone()].concat();
    Some(json!({
        "version": version,
        "pem": pem::encode(&pem::Pem::new("PUBLIC KEY", spki)),
        "jwk": {
            "kty": "EC",
            "crv": crv,
            "alg": alg,
            "use": "sig",
            "kid": format!("{key_id}:v{version}"),
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        },
    }))
}

/// The API signing keys with their public keys.
async fn api_keys(state: &AppState) -> Result<Vec<ykt_kms::keys::KeyInfo>, Refusal> {
    let keys = state.kms.keys().await.map_err(refused)?;
    Ok(keys
        .into_iter()
        .filter(|k| k.id.starts_with("api-signing-") || k.id.starts_with("api-token-"))
        .collect())
}

/// The public keys of a key's versions that are not destroyed.
fn versions(key: &ykt_kms::keys::KeyInfo) -> Vec<Value> {
    key.versions
        .iter()
        .filter(|v| v.state != "destroyed")
        .filter_map(|v| public_key(&key.id, &key.algorithm, v.version, &v.check_value))
        .collect()
}

/// `GET /.well-known/jwks.json`: the P-256 API signing keys as a JWK set (RFC 7517).
pub async fn jwks(State(state): State<AppState>) -> Result<Json<Value>, Refusal> {
    let jwks: Vec<Value> = api_keys(&state)
        .await?
        .iter()
        .filter(|k| k.algorithm == "p256")
        .flat_map(versions)
        .map(|v| v["jwk"].clone())
        .collect();
    Ok(Json(json!({ "keys": jwks })))
}

/// A key as listed: its algorithm, state, versions, and what `caller` may do with it.
fn listed(key: &ykt_kms::keys::KeyInfo, caller: &Caller) -> Value {
    let operations: &[&str] = if key.id.starts_with("api-token-") {
        &["tokens"]
    } else if caller.role == "platform" {
        &["sign", "verify"]
    } else {
        &["verify"]
    };
    json!({
        "id": key.id,
        "algorithm": key.algorithm,
        "state": key.state,
        "current_version": key.current_version,
        "operations": operations,
        "versions": versions(key),
    })
}

/// `GET /v1/keys`: the API signing keys and what the caller may do with each.
pub async fn keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, Refusal> {
    let listed: Vec<Value> = api_keys(&state)
        .await?
        .iter()
        .map(|k| listed(k, &caller))
        .collect();
    Ok(Json(json!({ "keys": listed })))
}

/// `GET /v1/keys/{id}`: one API signing key with every version's public key.
pub async fn key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key_id): Path<String>,
) -> Result<Json<Value>, Refusal> {
    api_keys(&state)
        .await?
        .iter()
        .find(|k| k.id == key_id)
        .map(|k| Json(listed(k, &caller)))
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("no API signing key `{key_id}`"),
            )
        })
}

/// How signatures are encoded.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// ASN.1 DER `SEQUENCE { r, s }`.
    #[default]
    Der,
    /// `r ‖ s`, 64 bytes.
    Raw,
}

/// The body of a signing request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    #[serde(default)]
    messages: Vec<String>,
    #[serde(default)]
    digests: Vec<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    encoding: Encoding,
}

/// The body of a verification request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    signature: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    encoding: Encoding,
}

fn decode(text: &str, what: &str) -> Result<Vec<u8>, Refusal> {
    STANDARD
        .decode(text)
        .map_err(|_| bad(format!("{what} is not base64")))
}

fn digest_of(text: &str, what: &str) -> Result<[u8; 32], Refusal> {
    decode(text, what)?
        .try_into()
        .map_err(|_| bad(format!("{what} is 32 bytes")))
}

fn distinguishing_id(id: Option<&str>) -> Result<Vec<u8>, Refusal> {
    match id {
        None => Ok(DEFAULT_SM2_ID.to_vec()),
        Some(id) if (1..=64).contains(&id.len()) => Ok(id.as_bytes().to_vec()),
        Some(_) => Err(bad("id is 1 to 64 bytes")),
    }
}

/// `POST /v1/keys/{id}/sign`.
pub async fn sign(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key_id): Path<String>,
    JsonBody(request): JsonBody<SignRequest>,
) -> Result<(Audited, Json<Value>), Refusal> {
    if caller.role != "platform" {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("a {} client may not sign", caller.role),
        ));
    }
    let messages = request
        .messages
        .iter()
        .map(|m| decode(m, "a message"))
        .collect::<Result<Vec<_>, _>>()?;
    let digests = request
        .digests
        .iter()
        .map(|d| digest_of(d, "a digest"))
        .collect::<Result<Vec<_>, _>>()?;
    let items: Vec<Signed<'_>> = match (messages.is_empty(), digests.is_empty()) {
        (false, true) => messages.iter().map(|m| Signed::Message(m)).collect(),
        (true, false) => digests.iter().map(Signed::Digest).collect(),
        _ => return Err(bad("give messages or digests, not both")),
    };
    let id = distinguishing_id(request.id.as_deref())?;
    let (version, signatures) = state
        .kms
        .api_sign(&format!("client:{}", caller.name), &key_id, &id, &items)
        .await
        .map_err(refused)?;
    let encoded: Vec<String> = signatures
        .iter()
        .map(|signature| {
            let bytes = match request.encoding {
                Encoding::Der => signature.to_der(),
                Encoding::Raw => signature.to_raw().to_vec(),
            };
            format!("ykt:v{version}:{}", STANDARD.encode(bytes))
        })
        .collect();
    Ok((
        Audited,
        Json(json!({ "key": key_id, "version": version, "signatures": encoded })),
    ))
}

/// `POST /v1/keys/{id}/verify`.
pub async fn verify(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    JsonBody(request): JsonBody<VerifyRequest>,
) -> Result<Json<Value>, Refusal> {
    let message = request
        .message
        .as_deref()
        .map(|m| decode(m, "the message"))
        .transpose()?;
    let digest = request
        .digest
        .as_deref()
        .map(|d| digest_of(d, "the digest"))
        .transpose()?;
    let signed = match (&message, &digest) {
        (Some(message), None) => Signed::Message(message),
        (None, Some(digest)) => Signed::Digest(digest),
        _ => return Err(bad("give a message or a digest")),
    };
    let (version, signature) = request
        .signature
        .strip_prefix("ykt:v")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(version, encoded)| Some((version.parse::<u8>().ok()?, encoded)))
        .ok_or_else(|| bad("a signature is ykt:vN:BASE64"))?;
    let bytes = decode(signature, "the signature")?;
    let signature = match request.encoding {
        Encoding::Der => Signature::from_der(&bytes),
        Encoding::Raw => Signature::from_raw(&bytes),
    }
    .map_err(|_| bad("the signature is malformed"))?;
    let id = distinguishing_id(request.id.as_deref())?;
    let valid = state
        .kms
        .api_verify(&key_id, version, &id, signed, &signature)
        .await
        .map_err(refused)?;
    Ok(Json(json!({ "valid": valid })))
}
