//! The signing endpoints:
//!
//! - `GET /v1/keys`: the API signing keys, each version's public key as PEM (SubjectPublicKeyInfo)
//!   and JWK. P-256 keys are `{"kty":"EC","crv":"P-256","alg":"ES256"}`; SM2 keys use the same
//!   shape with `"crv":"SM2"` and `"alg":"SM2SM3"` (no registered JOSE names exist for them).
//! - `GET /.well-known/jwks.json`: the P-256 keys' versions as a JWK set.
//! - `POST /v1/keys/{id}/sign` (role `platform`): `{"messages": [base64, ...], "id": text?,
//!   "encoding": "der"|"raw"?}`, 1 to 1,000 messages; answers the key version and one
//!   signature per message, each `ykt:vN:` + base64 (DER or `r ‖ s`). `id` is the SM2
//!   distinguishing ID (default `1234567812345678`).
//! - `POST /v1/keys/{id}/verify`: `{"message": base64, "signature": "ykt:vN:...", "id"?,
//!   "encoding"?}` → `{"valid": bool}`.

use crate::server::{AppState, Caller, Refusal};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ykt_crypto::Signature;
use ykt_kms::KmsError;
use ykt_kms::signing::DEFAULT_SM2_ID;

/// SubjectPublicKeyInfo DER before the 65-byte point: id-ecPublicKey with the curve's OID.
const P256_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
const SM2_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a811ccf5501822d034200";

fn refused(error: KmsError) -> Refusal {
    match error {
        KmsError::NotFound { .. } => {
            Refusal::new(StatusCode::NOT_FOUND, "not-found", error.to_string())
        }
        KmsError::NotAuthorised(_) => {
            Refusal::new(StatusCode::FORBIDDEN, "forbidden", error.to_string())
        }
        KmsError::InvalidInput { .. } => {
            Refusal::new(StatusCode::BAD_REQUEST, "invalid", error.to_string())
        }
        KmsError::KeyState { .. } => {
            Refusal::new(StatusCode::CONFLICT, "key-state", error.to_string())
        }
        _ => Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the KMS could not complete the request",
        ),
    }
}

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
        .filter(|k| k.id.starts_with("api-signing-"))
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

/// `GET /v1/keys`.
pub async fn keys(State(state): State<AppState>) -> Result<Json<Value>, Refusal> {
    let listed: Vec<Value> = api_keys(&state)
        .await?
        .iter()
        .map(|k| {
            json!({
                "id": k.id,
                "algorithm": k.algorithm,
                "state": k.state,
                "current_version": k.current_version,
                "versions": versions(k),
            })
        })
        .collect();
    Ok(Json(json!({ "keys": listed })))
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
    messages: Vec<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    encoding: Encoding,
}

/// The body of a verification request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    message: String,
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
    Json(request): Json<SignRequest>,
) -> Result<Json<Value>, Refusal> {
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
    let id = distinguishing_id(request.id.as_deref())?;
    let (version, signatures) = state
        .kms
        .api_sign(&format!("client:{}", caller.name), &key_id, &id, &messages)
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
    Ok(Json(
        json!({ "key": key_id, "version": version, "signatures": encoded }),
    ))
}

/// `POST /v1/keys/{id}/verify`.
pub async fn verify(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    Json(request): Json<VerifyRequest>,
) -> Result<Json<Value>, Refusal> {
    let message = decode(&request.message, "the message")?;
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
        .api_verify(&key_id, version, &id, &message, &signature)
        .await
        .map_err(refused)?;
    Ok(Json(json!({ "valid": valid })))
}
