//! The token endpoints ([`ykt_kms::tokens`]: JWS compact serialisation, `ES256` or `SM2SM3`):
//!
//! - `POST /v1/tokens` (role `platform`): `{"subject", "audience"?, "permissions": [...],
//!   "schools": [...], "cards"?: {"from", "to"}, "lifetime_seconds"?, "algorithm"?:
//!   "es256"|"sm2"}` → `{"token", "claims"}`. A caller registered with schools may name only
//!   those. One audit record per token.
//! - `POST /v1/tokens/verify` (any role): `{"token"}` → `{"valid": true, "claims": {...}}` or
//!   `{"valid": false, "reason": "expired"}` (reasons of [`TokenRejection`]), always HTTP 200.
//!
//! A body that is not the expected JSON is refused like every body ([`JsonBody`]), a role
//! that may not mint or a school outside the caller's scope with 403 `forbidden`.
//!
//! [`TokenRejection`]: ykt_kms::tokens::TokenRejection

use crate::server::{AppState, Audited, Caller, JsonBody, Refusal, refused};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use ykt_kms::tokens::{MintScope, MintedToken, TokenRequest, TokenVerdict};

/// The body of a verification request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyTokenRequest {
    token: String,
}

/// The schools `caller` may put in a token: the whole bureau for a platform client
/// registered without schools, else exactly its schools.
fn scope_of(caller: &Caller) -> MintScope<'_> {
    if caller.role == "platform" && caller.schools.is_empty() {
        MintScope::Bureau
    } else {
        MintScope::Schools(&caller.schools)
    }
}

/// `POST /v1/tokens`.
pub async fn mint(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<TokenRequest>,
) -> Result<(Audited, Json<MintedToken>), Refusal> {
    if caller.role != "platform" {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("a {} client may not mint tokens", caller.role),
        ));
    }
    let minted = state
        .kms
        .mint_token(
            &format!("client:{}", caller.name),
            scope_of(&caller),
            &request,
        )
        .await
        .map_err(refused)?;
    Ok((Audited, Json(minted)))
}

/// `POST /v1/tokens/verify`.
pub async fn verify(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<VerifyTokenRequest>,
) -> Result<Json<Value>, Refusal> {
    let now = ykt_kms::store::now_ms() / 1000;
    let verdict = state
        .kms
        .verify_token(&request.token, now)
        .await
        .map_err(refused)?;
    Ok(Json(match verdict {
        TokenVerdict::Valid(claims) => json!({ "valid": true, "claims": claims }),
        TokenVerdict::Invalid(reason) => json!({ "valid": false, "reason": reason }),
    }))
}
