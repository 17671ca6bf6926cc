//! Signed authorization tokens: minted and verified by the KMS in ES256 and SM2SM3, checked
//! against independent implementations (Python `cryptography` for ES256, gmssl for SM2 with
//! SM3), and refused when forged, tampered, out of their time window, of another algorithm
//! or key, or outside the closed sets of claims; minting is audited once per token.

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::{Fixture, acts, creds, python_batch};
use ykt_kms::issuance::{DeviceKind, Serial};
use ykt_kms::model::{KeyAlgorithm, KeyState, RegionCode, SchoolCode, Scope};
use ykt_kms::signing::{API_SIGNING_TEMPLATE, DEFAULT_SM2_ID, Signed, TOKEN_SIGNING_TEMPLATE};
use ykt_kms::tokens::{
    CLOCK_LEEWAY_SECONDS, CardRange, MintScope, MintedToken, Permission, TokenAlgorithm,
    TokenRejection, TokenRequest, TokenVerdict,
};
use ykt_kms::{Kms, KmsError};

const REGION: &str = "330106";
const SCHOOL: &str = "2133010601";
const OTHER_SCHOOL: &str = "2133010602";
const UNKNOWN_SCHOOL: &str = "2133010699";
const CALLER: &str = "client:platform-1";

/// Signatures of `messages` by version 1 of `key_id`, made by the HSM directly from the
/// stored wrapped key, as only a holder of the HSM and the store could (the API signs with
/// no token key).
async fn hsm_signatures(
    kms: &Kms,
    key_id: &str,
    messages: &[Vec<u8>],
) -> Vec<ykt_crypto::Signature> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT attributes, wrapped FROM key_versions WHERE key_id = $1 AND version = 1",
    )
    .bind(key_id)
    .fetch_one(kms.store().pool())
    .await
    .unwrap();
    let attributes: Vec<u8> = row.try_get("attributes").unwrap();
    let wrapped: Vec<u8> = row.try_get("wrapped").unwrap();
    let key = ykt_kms::WrappedKey::new(
        ykt_hsm_sim::KeyAttributes::from_bytes(&attributes).unwrap(),
        wrapped,
    );
    messages
        .iter()
        .map(|message| {
            kms.hsm()
                .sign(&key, ykt_kms::provider::SignInput::P256 { message })
                .unwrap()
        })
        .collect()
}

/// The fixture's KMS with both API signing keys and two schools of one region.
async fn token_kms(fixture: &Fixture) -> &Kms {
    let kms = &fixture.kms;
    for algorithm in [KeyAlgorithm::P256, KeyAlgorithm::Sm2] {
        for template in [TOKEN_SIGNING_TEMPLATE, API_SIGNING_TEMPLATE] {
            kms.generate_key(
                &creds(&["alice", "bob", "carol"]),
                template,
                algorithm,
                Scope::Bureau,
                None,
            )
            .await
            .unwrap();
        }
    }
    let officer = &creds(&["alice"])[0];
    kms.add_region(officer, REGION, "Xihu").await.unwrap();
    for school in [SCHOOL, OTHER_SCHOOL] {
        kms.add_school(officer, school, REGION, "Xihu school")
            .await
            .unwrap();
    }
    kms
}

/// Card (or PSAM) number `number` of `school` in `region`.
fn serial(region: &str, school: &str, kind: DeviceKind, number: u32) -> Serial {
    Serial::new(
        &RegionCode::new(region).unwrap(),
        &SchoolCode::new(school).unwrap(),
        kind,
        number,
    )
}

/// Cards 1 to 500 of `SCHOOL`.
fn school_cards() -> CardRange {
    CardRange {
        from: serial(REGION, SCHOOL, DeviceKind::Card, 1),
        to: serial(REGION, SCHOOL, DeviceKind::Card, 500),
    }
}

/// A station's request for issuing cards 1 to 500 of `SCHOOL`.
fn request(algorithm: TokenAlgorithm) -> TokenRequest {
    TokenRequest {
        subject: "station-7".into(),
        audience: Some("ykt-platform".into()),
        permissions: vec![Permission::RegisterTerminal, Permission::IssueBatch],
        schools: vec![SCHOOL.into()],
        cards: Some(school_cards()),
        lifetime_seconds: 600,
        algorithm,
    }
}

async fn mint(kms: &Kms, request: &TokenRequest) -> MintedToken {
    kms.mint_token(CALLER, MintScope::Bureau, request)
        .await
        .unwrap()
}

/// The decoded header, claims and signature of a compact JWS.
fn parts(token: &str) -> (Value, Value, Vec<u8>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).unwrap();
    (
        serde_json::from_slice(&decode(parts[0])).unwrap(),
        serde_json::from_slice(&decode(parts[1])).unwrap(),
        decode(parts[2]),
    )
}

fn encode_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// `header.claims` of a JWS with the given members.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", encode_json(header), encode_json(claims))
}

fn header(alg: &str, kid: &str) -> Value {
    json!({ "alg": alg, "typ": "JWT", "kid": kid })
}

/// `token` with its signing input replaced, the signature kept.
fn with_signing_input(token: &str, input: &str) -> String {
    let (_, signature) = token.rsplit_once('.').unwrap();
    format!("{input}.{signature}")
}

async fn rejection(kms: &Kms, token: &str, now: i64) -> TokenRejection {
    match kms.verify_token(token, now).await.unwrap() {
        TokenVerdict::Invalid(reason) => reason,
        TokenVerdict::Valid(claims) => panic!("accepted {token}: {claims:?}"),
    }
}

/// The uncompressed public key (hex) of version `version` of `key_id`, as listed.
async fn public_key(kms: &Kms, key_id: &str, version: u8) -> String {
    let key = kms.key(key_id).await.unwrap();
    let found = key.versions.iter().find(|v| v.version == version).unwrap();
    assert_eq!(found.check_method, "public-key");
    found.check_value.clone()
}

// ----------------------------------------------------------------------------------------------
// The Python oracle

/// Verifies and forges tokens with Python `cryptography` (ES256) and gmssl (SM2 with SM3):
/// a JSON array of requests on stdin, one JSON answer per request on stdout.
const ORACLE: &str = r#"
import base64, json, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from gmssl import func, sm2

def b64d(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

def b64e(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def split(token):
    header, claims, signature = token.split(".")
    return (header + "." + claims).encode(), json.loads(b64d(header)), json.loads(b64d(claims)), b64d(signature)

def gmssl_key(private_hex, point_hex):
    # CryptSM2 takes the public key through str.lstrip("04"), which also strips leading 0 and
    # 4 digits of x: set the 128 digits of x || y directly. Its verify_with_sm3 and
    # sign_with_sm3 compute ZA with the fixed ID 1234567812345678 (ENTL 0x0080).
    key = sm2.CryptSM2(private_key=private_hex, public_key="")
    key.public_key = point_hex
    return key

def es256_verify(request):
    message, header, claims, signature = split(request["token"])
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(request["public"]))
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        valid = len(signature) == 64
    except InvalidSignature:
        valid = False
    return {"valid": valid, "header": header, "claims": claims}

def sm2_verify(request):
    message, header, claims, signature = split(request["token"])
    point = request["public"].lower()
    assert point.startswith("04") and len(point) == 130
    key = gmssl_key(None, point[2:])
    valid = len(signature) == 64 and bool(key.verify_with_sm3(signature.hex(), message))
    return {"valid": valid, "header": header, "claims": claims}

def input_of(request):
    header = b64e(json.dumps(request["header"]).encode())
    claims = b64e(json.dumps(request["claims"]).encode())
    return header + "." + claims

def es256_sign(request):
    key = ec.generate_private_key(ec.SECP256R1())
    message = input_of(request)
    der = key.sign(message.encode(), ec.ECDSA(hashes.SHA256()))
    key.public_key().verify(der, message.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return {"token": message + "." + b64e(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}

def sm2_sign(request):
    n = int(sm2.default_ecc_table["n"], 16)
    d = "%064x" % (int(func.random_hex(64), 16) % (n - 2) + 1)
    key = gmssl_key(d, "")
    key.public_key = key._kg(int(d, 16), key.ecc_table["g"])
    message = input_of(request)
    signature = key.sign_with_sm3(message.encode())
    assert key.verify_with_sm3(signature, message.encode())
    return {"token": message + "." + b64e(bytes.fromhex(signature))}

OPS = {"es256-verify": es256_verify, "sm2-verify": sm2_verify, "es256-sign": es256_sign, "sm2-sign": sm2_sign}
print(json.dumps([OPS[request["op"]](request) for request in json.load(sys.stdin)]))
"#;

/// Sends `requests` to the oracle; one answer per request, in order.
fn oracle(requests: &[Value]) -> Vec<Value> {
    python_batch(&["-c".as_ref(), ORACLE.as_ref()], requests)
}

// ----------------------------------------------------------------------------------------------
// Scenarios

async fn tokens_round_trip_in_both_algorithms(fixture: Fixture) {
    let kms = token_kms(&fixture).await;
    for (algorithm, alg, kid) in [
        (TokenAlgorithm::Es256, "ES256", "api-token-p256:v1"),
        (TokenAlgorithm::Sm2, "SM2SM3", "api-token-sm2:v1"),
    ] {
        let minted = mint(kms, &request(algorithm)).await;
        let (header, claims, signature) = parts(&minted.token);
        assert_eq!(header, json!({ "alg": alg, "typ": "JWT", "kid": kid }));
        assert_eq!(signature.len(), 64);
        assert_eq!(claims, serde_json::to_value(&minted.claims).unwrap());
        assert_eq!(claims["iss"], "ykt-kms:330100");
        assert_eq!(claims["sub"], "station-7");
        assert_eq!(claims["aud"], "ykt-platform");
        assert_eq!(
            claims["permissions"],
            json!(["issue-batch", "register-terminal"])
        );
        assert_eq!(claims["schools"], json!([SCHOOL]));
        assert_eq!(
            claims["cards"],
            json!({ "from": "33012133010601000001", "to": "33012133010601000500" })
        );
        let c = &minted.claims;
        assert_eq!(
            (c.not_before, c.expires_at - c.issued_at),
            (c.issued_at, 600)
        );
        assert_eq!(c.token_id.len(), 32);
        assert!(c.token_id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            kms.verify_token(&minted.token, c.issued_at).await.unwrap(),
            TokenVerdict::Valid(minted.claims.clone())
        );
        let again = mint(kms, &request(algorithm)).await;
        assert_ne!(again.claims.token_id, minted.claims.token_id);
    }
}

async fn es256_tokens_verify_with_python_cryptography(fixture: Fixture) {
    let kms = token_kms(&fixture).await;
    let public = public_key(kms, "api-token-p256", 1).await;
    let minted = [
        mint(kms, &request(TokenAlgorithm::Es256)).await,
        mint(kms, &request(TokenAlgorithm::Es256)).await,
    ];
    // The second token's signature on the first one's header and claims: a control that
    // the oracle really checks.
    let spliced = with_signing_input(
        &minted[1].token,
        minted[0].token.rsplit_once('.').unwrap().0,
    );
    let requests: Vec<Value> = [&minted[0].token, &minted[1].token, &spliced]
        .iter()
        .map(|token| json!({ "op": "es256-verify", "token": token, "public": public }))
        .collect();
    let answers = oracle(&requests);
    for (answer, minted) in answers.iter().zip(&minted) {
        assert_eq!(answer["valid"], true, "{answer}");
        assert_eq!(answer["header"]["alg"], "ES256");
        assert_eq!(
            answer["claims"],
            serde_json::to_value(&minted.claims).unwrap()
        );
    }
    assert_eq!(answers[2]["valid"], false);
}

async fn sm2_tokens_verify_with_gmssl(fixture: Fixture) {
    let kms = token_kms(&fixture).await;
    let public = public_key(kms, "api-token-sm2", 1).await;
    let minted = [
        mint(kms, &request(TokenAlgorithm::Sm2)).await,
        mint(kms, &request(TokenAlgorithm::Sm2)).await,
    ];
    let spliced = with_signing_input(
        &minted[1].token,
        minted[0].token.rsplit_once('.').unwrap().0,
    );
    let requests: Vec<Value> = [&minted[0].token, &minted[1].token, &spliced]
        .iter()
        .map(|token| json!({ "op": "sm2-verify", "token": token, "public": public }))
        .collect();
    let answers = oracle(&requests);
    for (answer, minted) in answers.iter().zip(&minted) {
        assert_eq!(answer["valid"], true, "{answer}");
        assert_eq!(answer["header"]["alg"], "SM2SM3");
        assert_eq!(
            answer["claims"],
            serde_json::to_value(&minted.claims).unwrap()
        );
    }
    assert_eq!(answers[2]["valid"], false);
}

async fn tokens_signed_by_another_key_are_refused(fixture: Fixture) {
    let kms = token_kms(&fixture).await;
    let es256 = mint(kms, &request(TokenAlgorithm::Es256)).await;
    let sm2 = mint(kms, &request(TokenAlgorithm::Sm2)).await;
    let now = es256.claims.issued_at;
    let claims = |minted: &MintedToken| serde_json::to_value(&minted.claims).unwrap();
    let forged = oracle(&[
        json!({
            "op": "es256-sign",
            "header": header("ES256", "api-token-p256:v1"),
            "claims": claims(&es256),
        }),
        json!({
            "op": "sm2-sign",
            "header": header("SM2SM3", "api-token-sm2:v1"),
            "claims": claims(&sm2),
        }),
    ]);
    for answer in &forged {
        let token = answer["token"].as_str().unwrap();
        assert_eq!(
            rejection(kms, token, now).await,
            TokenRejection::BadSignature,
            "{token}"
        );
    }
}

async fn the_validity_window_is_checked_at_the_given_time(fixture: Fixture) {
    let kms = token_kms(&fixture).await;
    for algorithm in [TokenAlgorithm::Es256, TokenAlgorithm::Sm2] {
        let minted = mint(
            kms,
            &TokenRequest {
                lifetime_seconds: 60,
                ..request(algorithm)
            },
        )
        .await;
        let (nbf, exp) = (minted.claims.not_before, minted.claims.expires_at);
        assert_eq!(exp - nbf, 60);
        let leeway = CLOCK_LEEWAY_SECONDS;
        for now in [nbf - leeway, nbf, exp - 1, exp, exp + leeway - 1] {
            assert!(
                matches!(
                    kms.verify_token(&minted.token, now).await.unwrap(),
                    TokenVerdict::Valid(_)
                ),
                "at {now} of {nbf}..{exp}"
            );
        }
        for (now, reason) in [
            (nbf - leeway - 1, TokenRejection::NotYetValid),
            (nbf - 86_400, TokenRejection::NotYetValid),
            (exp + leeway, TokenRejection::Expired),
            (exp + 86_400, TokenRejection::Expired),
        ] {
            assert_eq!(rejection(kms, &minted.token, now).await, reason, "at {now}");
        }
    }
}

async fn tampered_and_malformed_tokens_are_refused(fixture: Fixture) {
    let kms = token_kms(&fixture).await;
    let minted = mint(kms, &request(TokenAlgorithm::Es256)).await;
    let other = mint(kms, &request(TokenAlgorithm::Es256)).await;
    let now = minted.claims.issued_at;
    let token = minted.token.as_str();
    let (header, claims, signature) = parts(token);
    let mut widened = claims.clone();
    widened["schools"] = json!([SCHOOL, OTHER_SCHOOL]);
    let mut flipped = signature.clone();
    flipped[10] ^= 0x01;
    let signature_part = |bytes: &[u8]| {
        format!(
            "{}.{}",
            token.rsplit_once('.').unwrap().0,
            URL_SAFE_NO_PAD.encode(bytes)
        )
    };
    let bad_signatures = [
        with_signing_input(token, &signing_input(&header, &widened)),
        signature_part(&flipped),
        signature_part(&signature[..63]),
        signature_part(&[0; 64]),
        with_signing_input(&other.token, token.rsplit_once('.').unwrap().0),
    ];
    for forged in &bad_signatures {
        assert_eq!(
            rejection(kms, forged, now).await,
            TokenRejection::BadSignature,
            "{forged}"
        );
    }
    let mut extra_header = header.clone();
    extra_header["crit"] = json!(["exp"]);
    let mut no_type = header.clone();
    no_type.as_object_mut().unwrap().remove("typ");
    let malformed = [
        String::new(),
        "a.b".to_owned(),
        format!("{token}.x"),
        format!("{token}="),
        token.replacen('.', ".+", 1),
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(b"not json"),
            token.split_once('.').unwrap().1
        ),
        with_signing_input(token, &signing_input(&extra_header, &claims)),
        with_signing_input(token, &signing_input(&no_type, &claims)),
        with_signing_input(
            token,
            &signing_input(&self::header("ES256", "api-token-p256:v01"), &claims),
        ),
        with_signing_input(
            token,
            &signing_input(&self::header("ES256", "api-token-p256"), &claims),
        ),
        format!("{token}{}", "A".repeat(20_000)),
    ];
    for broken in &malformed {
        assert_eq!(
            rejection(kms, broken, now).await,
            TokenRejection::Malformed,
            "{broken:.200}"
        );
    }
    // The genuine token is still valid after all that.
    assert!(matches!(
        kms.verify_token(token, now).await.unwrap(),
        TokenVerdict::Valid(_)
    ));
}

async fn alg_none_and_mismatched_alg_are_refused(fixture: Fixture) {
    let kms = token_kms(&fixture).await;
    let es256 = mint(kms, &request(TokenAlgorithm::Es256)).await;
    let sm2 = mint(kms, &request(TokenAlgorithm::Sm2)).await;
    let now = es256.claims.issued_at;
    let (_, claims, _) = parts(&es256.token);
    let unsigned = format!(
        "{}.",
        signing_input(&header("none", "api-token-p256:v1"), &claims)
    );
    let relabelled = |token: &str, alg: &str, kid: &str| {
        let (_, claims, _) = parts(token);
        with_signing_input(token, &signing_input(&header(alg, kid), &claims))
    };
    for forged in [
        unsigned,
        relabelled(&es256.token, "none", "api-token-p256:v1"),
        relabelled(&es256.token, "es256", "api-token-p256:v1"),
        relabelled(&es256.token, "HS256", "api-token-p256:v1"),
        relabelled(&es256.token, "SM2SM3", "api-token-p256:v1"),
        relabelled(&es256.token, "ES384", "api-token-p256:v1"),
        relabelled(&sm2.token, "ES256", "api-token-sm2:v1"),
        relabelled(&sm2.token, "none", "api-token-sm2:v1"),
    ] {
        assert_eq!(
            rejection(kms, &forged, now).await,
            TokenRejection::WrongAlgorithm,
            "{forged}"
        );
    }
}

async fn unknown_kids_and_destroyed_keys_are_refused(fixture: Fixture) {
    let kms = token_kms(&fixture).await;
    let quorum = creds(&["alice", "bob", "carol"]);
    let first = mint(kms, &request(TokenAlgorithm::Es256)).await;
    let now = first.claims.issued_at;
    let (_, claims, _) = parts(&first.token);
    let kms_key = kms.signing_key_id().await.unwrap();
    for (alg, kid) in [
        ("ES256", "api-token-p384:v1".to_owned()),
        ("ES256", "api-token-p256:v2".to_owned()),
        ("ES256", "api-token-p256:v0".to_owned()),
        ("ES256", "api-token-p256:v255".to_owned()),
        ("SM2SM3", format!("{kms_key}:v1")),
        ("ES256", "tls-ca-p256:v1".to_owned()),
    ] {
        let forged = with_signing_input(&first.token, &signing_input(&header(alg, &kid), &claims));
        assert_eq!(
            rejection(kms, &forged, now).await,
            TokenRejection::UnknownKey,
            "{kid}"
        );
    }
    // What the platform's own signing key signs is never a token: under its own kid the key
    // is unknown to tokens, under a token key's kid the signature is not that key's.
    for (kid, expected) in [
        ("api-signing-p256:v1", TokenRejection::UnknownKey),
        ("api-token-p256:v1", TokenRejection::BadSignature),
    ] {
        let input = signing_input(&header("ES256", kid), &claims);
        let (_, signatures) = kms
            .api_sign(
                CALLER,
                "api-signing-p256",
                DEFAULT_SM2_ID,
                &[Signed::Message(input.as_bytes())],
            )
            .await
            .unwrap();
        let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signatures[0].to_raw()));
        assert_eq!(rejection(kms, &forged, now).await, expected, "{kid}");
    }

    // A rotation: new tokens name version 2, tokens of version 1 stay valid.
    kms.rotate_key(&quorum, "api-token-p256").await.unwrap();
    let second = mint(kms, &request(TokenAlgorithm::Es256)).await;
    assert_eq!(parts(&second.token).0["kid"], "api-token-p256:v2");
    for minted in [&first, &second] {
        assert_eq!(
            kms.verify_token(&minted.token, now).await.unwrap(),
            TokenVerdict::Valid(minted.claims.clone())
        );
    }
    // Version 2's signature does not pass for version 1.
    let (second_header, second_claims, _) = parts(&second.token);
    let mut as_v1 = second_header.clone();
    as_v1["kid"] = json!("api-token-p256:v1");
    let relabelled = with_signing_input(&second.token, &signing_input(&as_v1, &second_claims));
    assert_eq!(
        rejection(kms, &relabelled, now).await,
        TokenRejection::BadSignature
    );

    // Deactivated: no more tokens, the minted ones still verify; destroyed: none verifies.
    kms.transition(&quorum, "api-token-p256", KeyState::Deactivated, "retired")
        .await
        .unwrap();
    assert!(matches!(
        kms.mint_token(CALLER, MintScope::Bureau, &request(TokenAlgorithm::Es256))
            .await,
        Err(KmsError::KeyState { .. })
    ));
    assert!(matches!(
        kms.verify_token(&first.token, now).await.unwrap(),
        TokenVerdict::Valid(_)
    ));
    kms.destroy_key(&quorum, "api-token-p256", "end of service")
        .await
        .unwrap();
    for minted in [&first, &second] {
        assert_eq!(
            rejection(kms, &minted.token, now).await,
            TokenRejection::UnknownKey
        );
    }
    // The SM2 key is untouched.
    let sm2 = mint(kms, &request(TokenAlgorithm::Sm2)).await;
    assert!(matches!(
        kms.verify_token(&sm2.token, now).await.unwrap(),
        TokenVerdict::Valid(_)
    ));
}

async fn claims_outside_the_closed_set_are_refused(fixture: Fixture) {
    let kms = token_kms(&fixture).await;
    // Requests: only the known permissions and members.
    let body = json!({
        "subject": "station-7",
        "permissions": ["issue-batch"],
        "schools": [SCHOOL],
    });
    let parsed: TokenRequest = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(parsed.lifetime_seconds, 600);
    assert_eq!(parsed.algorithm, TokenAlgorithm::Es256);
    let mut unknown_permission = body.clone();
    unknown_permission["permissions"] = json!(["issue-batch", "fly"]);
    let mut unknown_member = body.clone();
    unknown_member["admin"] = json!(true);
    let mut unknown_algorithm = body.clone();
    unknown_algorithm["algorithm"] = json!("none");
    let mut bad_serial = body.clone();
    bad_serial["cards"] = json!({ "from": "3301", "to": "33012133010601000500" });
    for bad in [
        unknown_permission,
        unknown_member,
        unknown_algorithm,
        bad_serial,
    ] {
        assert!(
            serde_json::from_value::<TokenRequest>(bad.clone()).is_err(),
            "{bad}"
        );
    }

    // Tokens: signing inputs signed by the same key through the raw signing call, so that
    // only the claims decide.
    let minted = mint(kms, &request(TokenAlgorithm::Es256)).await;
    let now = minted.claims.issued_at;
    let (header, claims, _) = parts(&minted.token);
    let variant = |change: &dyn Fn(&mut Value)| {
        let mut changed = claims.clone();
        change(&mut changed);
        signing_input(&header, &changed)
    };
    let cases = [
        (variant(&|_| {}), None),
        (
            variant(&|c| c["permissions"] = json!(["issue-batch", "fly"])),
            Some(TokenRejection::Malformed),
        ),
        (
            variant(&|c| c["admin"] = json!(true)),
            Some(TokenRejection::Malformed),
        ),
        (
            variant(&|c| c["permissions"] = json!([])),
            Some(TokenRejection::Malformed),
        ),
        (
            variant(&|c| c["exp"] = json!(now + 7200)),
            Some(TokenRejection::Malformed),
        ),
        (
            variant(&|c| c["exp"] = json!(now)),
            Some(TokenRejection::Malformed),
        ),
        (
            variant(&|c| c["iss"] = json!("ykt-kms:999999")),
            Some(TokenRejection::WrongIssuer),
        ),
    ];
    let messages: Vec<Vec<u8>> = cases
        .iter()
        .map(|(input, _)| input.clone().into_bytes())
        .collect();
    let signatures = hsm_signatures(kms, "api-token-p256", &messages).await;
    for ((input, expected), signature) in cases.iter().zip(&signatures) {
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_raw()));
        let verdict = kms.verify_token(&token, now).await.unwrap();
        match expected {
            // The unchanged claims: proof that the crafted tokens are otherwise sound.
            None => assert_eq!(verdict, TokenVerdict::Valid(minted.claims.clone())),
            Some(reason) => assert_eq!(verdict, TokenVerdict::Invalid(*reason), "{input}"),
        }
    }
}

async fn schools_must_be_known_and_in_scope(fixture: Fixture) {
    let kms = token_kms(&fixture).await;
    let base = request(TokenAlgorithm::Sm2);
    let with = |change: &dyn Fn(&mut TokenRequest)| {
        let mut changed = base.clone();
        change(&mut changed);
        changed
    };
    let invalid = [
        with(&|r| r.schools = vec![UNKNOWN_SCHOOL.into()]),
        with(&|r| r.schools = vec!["21330106".into()]),
        with(&|r| r.schools = vec![]),
        with(&|r| r.permissions = vec![]),
        with(&|r| r.subject = "Station 7".into()),
        with(&|r| r.subject = String::new()),
        with(&|r| r.audience = Some("https://platform".into())),
        with(&|r| r.lifetime_seconds = 0),
        with(&|r| r.lifetime_seconds = 3601),
        with(&|r| {
            r.cards = Some(CardRange {
                from: school_cards().to,
                to: school_cards().from,
            })
        }),
        with(&|r| {
            r.cards = Some(CardRange {
                from: school_cards().from,
                to: serial(REGION, OTHER_SCHOOL, DeviceKind::Card, 1),
            })
        }),
        with(&|r| {
            r.cards = Some(CardRange {
                from: school_cards().from,
                to: serial(REGION, SCHOOL, DeviceKind::Psam, 1),
            })
        }),
        with(&|r| {
            r.cards = Some(CardRange {
                from: serial(REGION, OTHER_SCHOOL, DeviceKind::Card, 1),
                to: serial(REGION, OTHER_SCHOOL, DeviceKind::Card, 9),
            })
        }),
        with(&|r| {
            r.cards = Some(CardRange {
                from: serial("330200", SCHOOL, DeviceKind::Card, 1),
                to: serial("330200", SCHOOL, DeviceKind::Card, 9),
            })
        }),
    ];
    for request in &invalid {
        let refused = kms.mint_token(CALLER, MintScope::Bureau, request).await;
        assert!(
            matches!(refused, Err(KmsError::InvalidInput { .. })),
            "{request:?}: {refused:?}"
        );
    }

    // A scoped caller: its schools only, whatever the others are.
    let scope = [SCHOOL.to_owned()];
    for schools in [
        vec![OTHER_SCHOOL.to_owned()],
        vec![SCHOOL.to_owned(), OTHER_SCHOOL.to_owned()],
        vec![UNKNOWN_SCHOOL.to_owned()],
    ] {
        let refused = kms
            .mint_token(
                CALLER,
                MintScope::Schools(&scope),
                &with(&|r| r.schools = schools.clone()),
            )
            .await;
        assert!(
            matches!(refused, Err(KmsError::NotAuthorised(_))),
            "{schools:?}: {refused:?}"
        );
    }
    assert_eq!(acts(kms, "api.token.mint").await, 0);
    let scoped = kms
        .mint_token(CALLER, MintScope::Schools(&scope), &base)
        .await
        .unwrap();
    assert_eq!(scoped.claims.schools, vec![SCHOOL]);

    // Repeats are dropped and the sets sorted; the longest and shortest lifetimes are allowed.
    let normalised = mint(
        kms,
        &with(&|r| {
            r.schools = vec![OTHER_SCHOOL.into(), SCHOOL.into(), OTHER_SCHOOL.into()];
            r.permissions = vec![
                Permission::ReportSettlement,
                Permission::IssueBatch,
                Permission::IssueBatch,
            ];
            r.lifetime_seconds = 3600;
        }),
    )
    .await;
    assert_eq!(normalised.claims.schools, vec![SCHOOL, OTHER_SCHOOL]);
    assert_eq!(
        normalised.claims.permissions,
        vec![Permission::IssueBatch, Permission::ReportSettlement]
    );
    let short = mint(kms, &with(&|r| r.lifetime_seconds = 1)).await;
    assert_eq!(short.claims.expires_at - short.claims.issued_at, 1);
    assert_eq!(acts(kms, "api.token.mint").await, 3);
}

async fn minting_writes_one_audit_record_and_the_chain_verifies(fixture: Fixture) {
    let kms = token_kms(&fixture).await;
    let before = kms.audit_entries(0).await.unwrap().len();
    let minted = mint(kms, &request(TokenAlgorithm::Sm2)).await;
    let entries = kms.audit_entries(0).await.unwrap();
    assert_eq!(entries.len(), before + 1);
    let record = entries.last().unwrap();
    assert_eq!(record.act, "api.token.mint");
    assert_eq!(record.actors, CALLER);
    assert_eq!(record.object, format!("token:{}", minted.claims.token_id));
    assert_eq!(record.result, "ok");
    let detail: Value = serde_json::from_str(&record.detail).unwrap();
    assert_eq!(
        detail,
        json!({
            "subject": "station-7",
            "audience": "ykt-platform",
            "permissions": ["issue-batch", "register-terminal"],
            "schools": [SCHOOL],
            "cards": { "from": "33012133010601000001", "to": "33012133010601000500" },
            "exp": minted.claims.expires_at,
            "key": "api-token-sm2",
            "version": 1,
        })
    );
    let signature = minted.token.rsplit_once('.').unwrap().1;
    for entry in &entries {
        assert!(!entry.detail.contains(signature) && !entry.detail.contains(&minted.token));
    }
    assert!(!format!("{minted:?}").contains(signature));

    // Verifying records nothing; the chain verifies, signed up to the mint.
    kms.verify_token(&minted.token, minted.claims.issued_at)
        .await
        .unwrap();
    assert_eq!(kms.audit_entries(0).await.unwrap().len(), before + 1);
    let report = kms.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, (before + 1) as u64);
    assert_eq!(report.unsigned, 0);
}

on_both_stores!(
    tokens_round_trip_in_both_algorithms,
    es256_tokens_verify_with_python_cryptography,
    sm2_tokens_verify_with_gmssl,
    tokens_signed_by_another_key_are_refused,
    the_validity_window_is_checked_at_the_given_time,
    tampered_and_malformed_tokens_are_refused,
    alg_none_and_mismatched_alg_are_refused,
    unknown_kids_and_destroyed_keys_are_refused,
    claims_outside_the_closed_set_are_refused,
    schools_must_be_known_and_in_scope,
    minting_writes_one_audit_record_and_the_chain_verifies,
);
