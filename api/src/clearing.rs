//! `POST /v1/tac/verify` (role `platform`): clearing. The body is `{"records": [hex, ...]}`,
//! 1 to 10,000 purchase records in the terminals' 43-byte layout (`ykt_psam::PurchaseRecord`,
//! as hex); the answer is one verdict per record, in order (`valid`, `invalid`,
//! `unknown-card`), and their counts. One audit record per call, with the counts.

use crate::server::{AppState, Audited, Caller, JsonBody, Refusal};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use ykt_kms::audit::AuditRecord;
use ykt_kms::issuance::TacVerdict;
use ykt_psam::PurchaseRecord;

/// The most records one clearing call may carry.
pub const MAX_RECORDS: usize = 10_000;

/// The body of a clearing request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearingRequest {
    records: Vec<String>,
}

/// `POST /v1/tac/verify`.
pub async fn verify(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<ClearingRequest>,
) -> Result<(Audited, Json<Value>), Refusal> {
    let bad = |message: String| Refusal::new(StatusCode::BAD_REQUEST, "invalid", message);
    if caller.role != "platform" {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("a {} client may not clear", caller.role),
        ));
    }
    if request.records.is_empty() || request.records.len() > MAX_RECORDS {
        return Err(bad(format!("1 to {MAX_RECORDS} records per call")));
    }
    let records = request
        .records
        .iter()
        .enumerate()
        .map(|(n, text)| {
            PurchaseRecord::from_hex(text).map_err(|error| bad(format!("record {n}: {error}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let internal = |_| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the KMS could not complete the request",
        )
    };
    let verdicts = state
        .kms
        .verify_purchase_records(&records)
        .await
        .map_err(internal)?;
    let count = |verdict| verdicts.iter().filter(|v| **v == verdict).count();
    let (valid, invalid, unknown) = (
        count(TacVerdict::Valid),
        count(TacVerdict::Invalid),
        count(TacVerdict::UnknownCard),
    );
    state
        .kms
        .record_api_act(AuditRecord {
            actors: vec![format!("client:{}", caller.name)],
            act: "api.tac-verify".into(),
            object: "clearing".into(),
            result: "ok".into(),
            detail: json!({ "records": records.len(), "valid": valid, "invalid": invalid, "unknown": unknown }),
        })
        .await
        .map_err(internal)?;
    Ok((
        Audited,
        Json(json!({
            "verdicts": verdicts,
            "valid": valid,
            "invalid": invalid,
            "unknown_card": unknown,
        })),
    ))
}
