//! What every call goes through, over real TLS on 127.0.0.1 with the Rust client: the audit
//! record of each call (reads and refusals included, never a body), idempotency keys (the
//! first answer replayed, another request under the same key refused, nothing done twice),
//! the per-client rate limit, the scope of an issuing station's schools, bodies that are too
//! large or not the expected JSON, and an expired token.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::sync::Arc;
use support::{Served, creds, enroll, identity, kms_with_ca, test_dir};
use ykt_api::ApiError;
use ykt_api::client::KmsClient;
use ykt_api::server::{RateLimit, Renewal};
use ykt_kms::Kms;
use ykt_kms::audit::AuditEntry;
use ykt_kms::ca::ClientRole;
use ykt_kms::model::{KeyAlgorithm, Scope};
use ykt_kms::signing::{API_SIGNING_TEMPLATE, TOKEN_SIGNING_TEMPLATE};

const SCHOOL: &str = "2133010601";
const OTHER_SCHOOL: &str = "2133010602";
const SIGN: &str = "/v1/keys/api-signing-p256/sign";

/// The refusal of a call: its status and code.
fn refusal<T: std::fmt::Debug>(outcome: Result<T, ApiError>) -> (u16, String) {
    match outcome {
        Err(ApiError::Refused { status, code, .. }) => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn audit(kms: &Kms) -> Vec<AuditEntry> {
    kms.audit_entries(0).await.unwrap()
}

fn count(entries: &[AuditEntry], act: &str, result: &str) -> usize {
    entries
        .iter()
        .filter(|e| e.act == act && e.result == result)
        .count()
}

/// A KMS with its CA, the P-256 API signing key, the token keys and two schools.
async fn api_kms(name: &str) -> Arc<Kms> {
    let kms = kms_with_ca(&test_dir(name)).await;
    for (template, algorithm) in [
        (API_SIGNING_TEMPLATE, KeyAlgorithm::P256),
        (TOKEN_SIGNING_TEMPLATE, KeyAlgorithm::P256),
    ] {
        kms.generate_key(&creds(2), template, algorithm, Scope::Bureau, None)
            .await
            .unwrap();
    }
    let officer = &creds(1)[0];
    kms.add_region(officer, "330106", "Xihu").await.unwrap();
    for school in [SCHOOL, OTHER_SCHOOL] {
        kms.add_school(officer, school, "330106", "School")
            .await
            .unwrap();
    }
    Arc::new(kms)
}

async fn client(
    served: &Served,
    kms: &Kms,
    name: &str,
    role: ClientRole,
    schools: &[&str],
) -> KmsClient {
    let schools: Vec<String> = schools.iter().map(|s| (*s).to_owned()).collect();
    let enrolment = enroll(kms, name, role, &schools).await;
    KmsClient::new(&served.base(), &identity(&enrolment)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_the_first_answer_and_refuse_another_request() {
    const MINT: &str = "/v1/tokens";
    let kms = api_kms("idempotency").await;
    let served = Served::start(kms.clone()).await;
    let platform = client(&served, &kms, "platform-1", ClientRole::Platform, &[]).await;
    let body = json!({
        "subject": "station-1", "permissions": ["issue-batch"], "schools": [SCHOOL],
    });
    let first: Value = platform
        .post_with_key(MINT, &body, "order-0001")
        .await
        .unwrap();
    // Every token has its own random ID: an equal answer is the first one replayed.
    let again: Value = platform
        .post_with_key(MINT, &body, "order-0001")
        .await
        .unwrap();
    assert_eq!(first, again);
    let other = json!({
        "subject": "station-2", "permissions": ["issue-batch"], "schools": [SCHOOL],
    });
    assert_eq!(
        refusal(
            platform
                .post_with_key::<_, Value>(MINT, &other, "order-0001")
                .await
        ),
        (422, "idempotency-key-reused".into())
    );
    // A key is the client's own: another client may use the same text.
    let second = client(&served, &kms, "platform-2", ClientRole::Platform, &[]).await;
    let theirs: Value = second
        .post_with_key(MINT, &body, "order-0001")
        .await
        .unwrap();
    assert_ne!(theirs["token"], first["token"]);
    let fresh: Value = platform.post(MINT, &body).await.unwrap();
    assert_ne!(fresh["token"], first["token"]);
    // A malformed key is refused.
    assert_eq!(
        refusal(
            platform
                .post_with_key::<_, Value>(MINT, &body, "short")
                .await
        ),
        (400, "invalid".into())
    );
    // Signatures change nothing: the header is not needed there, and each call signs.
    let message = json!({ "messages": [STANDARD.encode("pay 12.50 to canteen 3")] });
    let one: Value = platform
        .post_with_key(SIGN, &message, "sign-0001")
        .await
        .unwrap();
    let two: Value = platform
        .post_with_key(SIGN, &message, "sign-0001")
        .await
        .unwrap();
    assert_ne!(one["signatures"], two["signatures"]);

    let entries = audit(&kms).await;
    assert_eq!(
        count(&entries, "api.token.mint", "ok"),
        3,
        "minted once per distinct call"
    );
    let replays = entries
        .iter()
        .filter(|e| e.act == "api.call" && e.detail.contains("\"replayed\":true"))
        .count();
    assert_eq!(replays, 1);
    assert_eq!(
        count(&entries, "api.call", "refused: idempotency-key-reused"),
        1
    );
    let token = first["token"].as_str().unwrap();
    assert!(
        entries
            .iter()
            .all(|e| !e.detail.contains(token) && !e.detail.contains("canteen"))
    );
    assert!(kms.verify_audit().await.unwrap().is_intact());
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_audited_and_bad_bodies_are_refused_in_the_error_format() {
    let kms = api_kms("audited").await;
    let served = Served::start(kms.clone()).await;
    let platform = client(&served, &kms, "platform-1", ClientRole::Platform, &[]).await;
    let auditor = client(&served, &kms, "audit-1", ClientRole::Auditor, &[]).await;
    let keys: Value = auditor.get("/v1/keys").await.unwrap();
    let listed = keys["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{keys}");
    let key: Value = auditor.get("/v1/keys/api-signing-p256").await.unwrap();
    assert_eq!(key["operations"], json!(["verify"]));
    assert_eq!(key["versions"][0]["jwk"]["kid"], "api-signing-p256:v1");
    let jwks: Value = auditor.get("/.well-known/jwks.json").await.unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "signing and token keys"
    );
    assert_eq!(
        refusal(auditor.get::<Value>("/v1/keys/api-signing-nope").await),
        (404, "not-found".into())
    );
    let document: Value = auditor.get("/v1/openapi.json").await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    // The wrong shape, and a body over 1 MiB.
    assert_eq!(
        refusal(
            platform
                .post::<_, Value>(SIGN, &json!({ "messages": "x" }))
                .await
        ),
        (422, "invalid".into())
    );
    let huge = json!({ "messages": ["A".repeat(1 << 21)] });
    assert_eq!(
        refusal(platform.post::<_, Value>(SIGN, &huge).await),
        (413, "too-large".into())
    );
    assert_eq!(
        refusal(
            auditor
                .post::<_, Value>(SIGN, &json!({ "messages": ["AA=="] }))
                .await
        ),
        (403, "forbidden".into())
    );

    let entries = audit(&kms).await;
    let calls: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e.act == "api.call")
        .map(|e| (e.object.as_str(), e.result.as_str()))
        .collect();
    for expected in [
        ("GET /v1/keys", "ok"),
        ("GET /v1/keys/api-signing-p256", "ok"),
        ("GET /.well-known/jwks.json", "ok"),
        ("GET /v1/keys/api-signing-nope", "refused: not-found"),
        ("GET /v1/openapi.json", "ok"),
        ("POST /v1/keys/api-signing-p256/sign", "refused: invalid"),
        ("POST /v1/keys/api-signing-p256/sign", "refused: too-large"),
        ("POST /v1/keys/api-signing-p256/sign", "refused: forbidden"),
    ] {
        assert!(calls.contains(&expected), "{expected:?} not in {calls:?}");
    }
    assert!(
        entries
            .iter()
            .filter(|e| e.act == "api.call")
            .all(|e| e.actors.starts_with("client:"))
    );
    assert_eq!(count(&entries, "api.sign", "ok"), 0, "nothing was signed");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_has_its_own_rate_limit() {
    let kms = api_kms("rate").await;
    let limit = RateLimit {
        per_second: 0.5,
        burst: 3.0,
    };
    let served = Served::start_with(kms.clone(), limit).await;
    let busy = client(&served, &kms, "platform-1", ClientRole::Platform, &[]).await;
    let quiet = client(&served, &kms, "platform-2", ClientRole::Platform, &[]).await;
    for _ in 0..3 {
        let _: Value = busy.get("/v1/whoami").await.unwrap();
    }
    assert_eq!(
        refusal(busy.get::<Value>("/v1/whoami").await),
        (429, "rate-limited".into())
    );
    let caller: Value = quiet.get("/v1/whoami").await.unwrap();
    assert_eq!(caller["name"], "platform-2");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuing_station_acts_only_for_the_schools_of_its_certificate() {
    let kms = api_kms("scope").await;
    let served = Served::start(kms.clone()).await;
    let station = client(&served, &kms, "station-1", ClientRole::Issuer, &[SCHOOL]).await;
    let platform = client(&served, &kms, "platform-1", ClientRole::Platform, &[]).await;
    let school: Value = station.get(&format!("/v1/schools/{SCHOOL}")).await.unwrap();
    assert_eq!(school["code"], SCHOOL);
    for path in [
        format!("/v1/schools/{OTHER_SCHOOL}"),
        format!("/v1/schools/{OTHER_SCHOOL}/holders/K00001/student"),
    ] {
        assert_eq!(
            refusal(station.get::<Value>(&path).await),
            (403, "forbidden".into()),
            "{path}"
        );
    }
    // A platform client is no issuing station.
    assert_eq!(
        refusal(
            platform
                .get::<Value>(&format!("/v1/schools/{SCHOOL}"))
                .await
        )
        .0,
        403
    );
    // A batch with one holder of another school is refused whole, and nothing is recorded.
    let card = |school: &str, number: &str| {
        json!({
            "school": school, "card_type": "student", "holder_name": "Li Lei",
            "holder_number": number, "id_number": "330106201501010012", "expiry": "20300831",
        })
    };
    let batch = json!({
        "operator": "operator:wang",
        "profile": {
            "name": "ykt-user-sm4@1", "digest": "00", "algorithm": "sm4",
            "templates": ["purchase"], "valid_from": "20260901",
        },
        "cards": [card(SCHOOL, "K00001"), card(OTHER_SCHOOL, "K00002")],
    });
    let (status, code) = refusal(station.post::<_, Value>("/v1/batches", &batch).await);
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert!(kms.batches().await.unwrap().is_empty());
    // An operator name that could pass for another actor is refused.
    let mut forged = batch.clone();
    forged["operator"] = json!("wang,client:platform-1");
    forged["cards"] = json!([card(SCHOOL, "K00001")]);
    assert_eq!(
        refusal(station.post::<_, Value>("/v1/batches", &forged).await),
        (400, "invalid".into())
    );
    assert!(kms.batches().await.unwrap().is_empty());
    let entries = audit(&kms).await;
    assert!(count(&entries, "api.call", "refused: forbidden") >= 4);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_with_its_reason() {
    let kms = api_kms("expiry").await;
    let served = Served::start(kms.clone()).await;
    let platform = client(&served, &kms, "platform-1", ClientRole::Platform, &[]).await;
    let station = client(&served, &kms, "station-1", ClientRole::Issuer, &[SCHOOL]).await;
    let request = json!({
        "subject": "station-1", "permissions": ["issue-batch"], "schools": [SCHOOL],
        "lifetime_seconds": 1,
    });
    let minted: Value = platform.post("/v1/tokens", &request).await.unwrap();
    let token = json!({ "token": minted["token"] });
    let verdict: Value = station.post("/v1/tokens/verify", &token).await.unwrap();
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert_eq!(verdict["claims"]["schools"], json!([SCHOOL]));
    // A station may not mint; nor may anyone name a school the KMS does not know.
    assert_eq!(
        refusal(station.post::<_, Value>("/v1/tokens", &request).await),
        (403, "forbidden".into())
    );
    let mut unknown = request.clone();
    unknown["schools"] = json!(["2133010699"]);
    assert_eq!(
        refusal(platform.post::<_, Value>("/v1/tokens", &unknown).await),
        (400, "invalid".into())
    );
    // Past its end and the clock leeway.
    let leeway = ykt_kms::tokens::CLOCK_LEEWAY_SECONDS as u64;
    tokio::time::sleep(std::time::Duration::from_secs(leeway + 2)).await;
    let verdict: Value = station.post("/v1/tokens/verify", &token).await.unwrap();
    assert_eq!(verdict, json!({ "valid": false, "reason": "expired" }));
    let entries = audit(&kms).await;
    assert_eq!(count(&entries, "api.token.mint", "ok"), 1);
    served.stop().await;
}

/// The serial of the certificate the server at `address` presents, read by OpenSSL.
fn server_certificate_serial(address: std::net::SocketAddr, dir: &std::path::Path) -> String {
    use std::process::{Command, Stdio};
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &address.to_string(), "-tls1_3"])
        .args(["-CAfile", dir.join("ca.pem").to_str().unwrap()])
        .args(["-cert", dir.join("client.pem").to_str().unwrap()])
        .args(["-key", dir.join("client.key").to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a server certificate");
    let end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    x509.stdin
        .take()
        .unwrap()
        .write_all(text[begin..end].as_bytes())
        .unwrap();
    let serial = x509.wait_with_output().unwrap();
    assert!(serial.status.success());
    String::from_utf8(serial.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_certificate_rotates_while_connections_go_on() {
    let kms = api_kms("rotation").await;
    let dir = test_dir("rotation-files");
    let enrolment = enroll(&kms, "platform-1", ClientRole::Platform, &[]).await;
    std::fs::write(dir.join("ca.pem"), &enrolment.ca_pem).unwrap();
    std::fs::write(dir.join("client.pem"), &enrolment.certificate_pem).unwrap();
    std::fs::write(dir.join("client.key"), enrolment.key_pem.as_bytes()).unwrap();
    // Renewed at every check: any credential has less than its whole life left.
    let renewal = Renewal {
        every: std::time::Duration::from_millis(300),
        within_ms: ykt_kms::ca::SERVER_VALIDITY_MS + 1,
    };
    let served = Served::serve(support::bind(kms.clone()).await.with_renewal(renewal)).await;
    let client = KmsClient::new(&served.base(), &identity(&enrolment)).unwrap();
    let _: Value = client.get("/v1/whoami").await.unwrap();
    let address = served.address;
    let first = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || server_certificate_serial(address, &dir)
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    // The kept-alive connection goes on; a new handshake gets the renewed certificate.
    let _: Value = client.get("/v1/whoami").await.unwrap();
    let second = tokio::task::spawn_blocking(move || server_certificate_serial(address, &dir))
        .await
        .unwrap();
    assert_ne!(first, second);
    let entries = audit(&kms).await;
    assert!(count(&entries, "ca.server-certificate", "ok") >= 3);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_hashed_digest_is_signed_as_its_message_would_be() {
    use std::process::Command;
    let kms = api_kms("digest").await;
    let served = Served::start(kms.clone()).await;
    let platform = client(&served, &kms, "platform-1", ClientRole::Platform, &[]).await;
    let message = b"settlement report 2026-12-01, school 2133010601";
    let digest = ykt_crypto::p256::sha256(message);
    let signed: Value = platform
        .post(SIGN, &json!({ "digests": [STANDARD.encode(digest)] }))
        .await
        .unwrap();
    let signature = signed["signatures"][0].as_str().unwrap();
    let der = STANDARD
        .decode(signature.strip_prefix("ykt:v1:").unwrap())
        .unwrap();
    // OpenSSL checks it as a signature over the message itself.
    let dir = test_dir("digest-files");
    let key: Value = platform.get("/v1/keys/api-signing-p256").await.unwrap();
    std::fs::write(
        dir.join("key.pem"),
        key["versions"][0]["pem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("message"), message).unwrap();
    std::fs::write(dir.join("signature.der"), &der).unwrap();
    let openssl = |file: &str| {
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(dir.join("key.pem"))
            .arg("-signature")
            .arg(dir.join("signature.der"))
            .arg(dir.join(file))
            .output()
            .unwrap()
    };
    let verified = openssl("message");
    assert!(verified.status.success(), "{verified:?}");
    std::fs::write(dir.join("other"), b"settlement report 2026-12-02").unwrap();
    assert!(!openssl("other").status.success());
    // The API verifies it by digest and by message; messages and digests do not mix.
    for body in [
        json!({ "digest": STANDARD.encode(digest), "signature": signature }),
        json!({ "message": STANDARD.encode(message), "signature": signature }),
    ] {
        let verdict: Value = platform
            .post("/v1/keys/api-signing-p256/verify", &body)
            .await
            .unwrap();
        assert_eq!(verdict["valid"], true, "{body}");
    }
    let both = json!({ "messages": ["AA=="], "digests": [STANDARD.encode(digest)] });
    assert_eq!(refusal(platform.post::<_, Value>(SIGN, &both).await).0, 400);
    let short = json!({ "digests": [STANDARD.encode([0u8; 31])] });
    assert_eq!(
        refusal(platform.post::<_, Value>(SIGN, &short).await).0,
        400
    );
    let entries = audit(&kms).await;
    let signed = entries.iter().find(|e| e.act == "api.sign").unwrap();
    assert!(signed.detail.contains("\"digests\":1"), "{}", signed.detail);
    served.stop().await;
}
