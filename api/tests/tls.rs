//! The API over real TLS on 127.0.0.1, with curl (OpenSSL) as the client: a registered
//! client is served; no certificate, a certificate of another CA, TLS 1.2 and a revoked
//! client are refused.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use support::{creds, kms};
use ykt_api::Server;
use ykt_kms::ca::ClientRole;

/// `curl` to `url` with `args`: exit status and body.
fn curl(url: &str, args: &[&str]) -> (i32, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_serves_registered_clients_only() {
    let dir = std::env::temp_dir().join(format!("ykt-api-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kms = kms(&dir).await;
    let ca = kms.init_ca(&creds(2)).await.unwrap();
    let ca_file = write(&dir, "ca.pem", &ca);
    let mut files = Vec::new();
    for name in ["platform-1", "platform-2"] {
        let enrolment = kms
            .enroll_client(&creds(1)[0], name, ClientRole::Platform, &[])
            .await
            .unwrap();
        files.push((
            write(&dir, &format!("{name}.pem"), &enrolment.certificate_pem),
            write(&dir, &format!("{name}.key"), &enrolment.key_pem),
        ));
    }
    let kms = Arc::new(kms);
    let server = Server::bind(
        kms.clone(),
        "127.0.0.1:0".parse().unwrap(),
        vec!["127.0.0.1".into(), "localhost".into()],
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    let url = format!("https://127.0.0.1:{port}/v1/whoami");
    let client = |n: usize| {
        vec![
            "--cacert".to_owned(),
            arg(&ca_file).to_owned(),
            "--cert".to_owned(),
            arg(&files[n].0).to_owned(),
            "--key".to_owned(),
            arg(&files[n].1).to_owned(),
        ]
    };
    let run = |url: String, args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&url, &args)
        })
    };

    let (code, body) = run(url.clone(), client(0)).await.unwrap();
    assert_eq!(code, 0, "{body}");
    let caller: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(caller["name"], "platform-1");
    assert_eq!(caller["role"], "platform");

    // No client certificate: the handshake fails.
    let (code, body) = run(url.clone(), vec!["--cacert".into(), arg(&ca_file).into()])
        .await
        .unwrap();
    assert_ne!(code, 0, "{body}");
    // A certificate of another CA.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=platform-1/OU=platform",
        ])
        .args([
            "-keyout",
            arg(&other.join("k.pem")),
            "-out",
            arg(&other.join("c.pem")),
        ])
        .output()
        .unwrap();
    assert!(status.status.success());
    let (code, body) = run(
        url.clone(),
        vec![
            "--cacert".into(),
            arg(&ca_file).into(),
            "--cert".into(),
            arg(&other.join("c.pem")).into(),
            "--key".into(),
            arg(&other.join("k.pem")).into(),
        ],
    )
    .await
    .unwrap();
    assert_ne!(code, 0, "{body}");
    // TLS 1.2 is refused.
    let mut old = client(0);
    old.extend(["--tls-max".into(), "1.2".into()]);
    let (code, body) = run(url.clone(), old).await.unwrap();
    assert_ne!(code, 0, "{body}");
    // A revoked client is refused at once; the other is still served.
    kms.revoke_client(&creds(1)[0], "platform-2", "retired")
        .await
        .unwrap();
    let (code, body) = run(url.clone(), client(1)).await.unwrap();
    assert_ne!(code, 0, "{body}");
    let (code, body) = run(url.clone(), client(0)).await.unwrap();
    assert_eq!(code, 0, "{body}");

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    let entries = kms.audit_entries(0).await.unwrap();
    assert!(entries.iter().any(|e| e.act == "ca.server-certificate"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `bytes` to a file in `dir`.
fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_made_through_the_api_verify_with_openssl() {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use ykt_kms::model::{KeyAlgorithm, Scope};
    let pem_body = |pem: &str| -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(body).unwrap()
    };
    use ykt_kms::signing::API_SIGNING_TEMPLATE;

    let dir = std::env::temp_dir().join(format!("ykt-api-sign-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kms = kms(&dir).await;
    for algorithm in [KeyAlgorithm::Sm2, KeyAlgorithm::P256] {
        kms.generate_key(
            &creds(2),
            API_SIGNING_TEMPLATE,
            algorithm,
            Scope::Bureau,
            None,
        )
        .await
        .unwrap();
    }
    let ca = kms.init_ca(&creds(2)).await.unwrap();
    let ca_file = write(&dir, "ca.pem", &ca);
    let mut clients = Vec::new();
    for (name, role) in [
        ("platform-1", ClientRole::Platform),
        ("audit-1", ClientRole::Auditor),
    ] {
        let enrolment = kms
            .enroll_client(&creds(1)[0], name, role, &[])
            .await
            .unwrap();
        clients.push(vec![
            "--cacert".to_owned(),
            arg(&ca_file).to_owned(),
            "--cert".to_owned(),
            arg(&write(
                &dir,
                &format!("{name}.pem"),
                &enrolment.certificate_pem,
            ))
            .to_owned(),
            "--key".to_owned(),
            arg(&write(&dir, &format!("{name}.key"), &enrolment.key_pem)).to_owned(),
        ]);
    }
    let kms = Arc::new(kms);
    let server = Server::bind(
        kms.clone(),
        "127.0.0.1:0".parse().unwrap(),
        vec!["127.0.0.1".into()],
    )
    .await
    .unwrap();
    let base = format!("https://127.0.0.1:{}", server.local_addr().unwrap().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    let call = |path: &str, client: &Vec<String>, body: Option<String>| {
        let url = format!("{base}{path}");
        let mut args = client.clone();
        args.extend(["-w".into(), "\n%{http_code}".into()]);
        if let Some(body) = body {
            let file = write(&dir, "body.json", &body);
            args.extend([
                "-H".into(),
                "content-type: application/json".into(),
                "--data-binary".into(),
                format!("@{}", arg(&file)),
            ]);
        }
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, out) = curl(&url, &args);
            assert_eq!(code, 0, "{out}");
            let (body, status) = out.rsplit_once('\n').unwrap();
            (status.parse::<u16>().unwrap(), body.to_owned())
        })
    };

    let (status, body) = call("/v1/keys", &clients[0], None).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let keys: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys = keys["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    // The JWK set holds the P-256 key, its coordinates those of the PEM public key.
    let (status, body) = call("/.well-known/jwks.json", &clients[1], None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let jwks: serde_json::Value = serde_json::from_str(&body).unwrap();
    let jwks = jwks["keys"].as_array().unwrap();
    assert_eq!(jwks.len(), 1);
    assert_eq!(jwks[0]["kid"], "api-signing-p256:v1");
    let p256 = keys.iter().find(|k| k["id"] == "api-signing-p256").unwrap();
    assert_eq!(p256["versions"][0]["jwk"], jwks[0]);
    let spki = pem_body(p256["versions"][0]["pem"].as_str().unwrap());
    let xy = [
        URL_SAFE_NO_PAD
            .decode(jwks[0]["x"].as_str().unwrap())
            .unwrap(),
        URL_SAFE_NO_PAD
            .decode(jwks[0]["y"].as_str().unwrap())
            .unwrap(),
    ]
    .concat();
    assert_eq!(&spki[spki.len() - 64..], &xy[..]);
    let messages: Vec<Vec<u8>> = vec![
        b"settlement 2026-12-01".to_vec(),
        vec![0u8; 0],
        vec![0xA5; 300],
    ];
    for key in &keys {
        let id = key["id"].as_str().unwrap();
        let pem = key["versions"][0]["pem"].as_str().unwrap();
        let public = write_bytes(&dir, &format!("{id}.pub"), pem.as_bytes());
        let request = serde_json::json!({
            "messages": messages.iter().map(|m| STANDARD.encode(m)).collect::<Vec<_>>(),
        });
        let (status, body) = call(
            &format!("/v1/keys/{id}/sign"),
            &clients[0],
            Some(request.to_string()),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let signatures = answer["signatures"].as_array().unwrap();
        assert_eq!(signatures.len(), messages.len());
        for (message, signature) in messages.iter().zip(signatures) {
            let signature = signature.as_str().unwrap();
            let der = STANDARD
                .decode(signature.strip_prefix("ykt:v1:").unwrap())
                .unwrap();
            let sig_file = write_bytes(&dir, "sig.der", &der);
            let msg_file = write_bytes(&dir, "msg.bin", message);
            let output = if id.ends_with("sm2") {
                Command::new("openssl")
                    .args([
                        "pkeyutl", "-verify", "-pubin", "-inkey", &public, "-sigfile", &sig_file,
                    ])
                    .args([
                        "-rawin",
                        "-digest",
                        "sm3",
                        "-pkeyopt",
                        "distid:1234567812345678",
                    ])
                    .args(["-in", &msg_file])
                    .output()
                    .unwrap()
            } else {
                Command::new("openssl")
                    .args([
                        "dgst",
                        "-sha256",
                        "-verify",
                        &public,
                        "-signature",
                        &sig_file,
                        &msg_file,
                    ])
                    .output()
                    .unwrap()
            };
            assert!(
                output.status.success(),
                "{id}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            // The API's own verification agrees, and refuses another message.
            for (checked, expected) in [(message.clone(), true), (b"other".to_vec(), false)] {
                let request = serde_json::json!({
                    "message": STANDARD.encode(&checked),
                    "signature": signature,
                });
                let (status, body) = call(
                    &format!("/v1/keys/{id}/verify"),
                    &clients[1],
                    Some(request.to_string()),
                )
                .await
                .unwrap();
                assert_eq!(status, 200, "{body}");
                assert_eq!(
                    serde_json::from_str::<serde_json::Value>(&body).unwrap()["valid"],
                    expected
                );
            }
        }
    }

    // Refusals, each with its status: an auditor signing, too many messages, a body over the
    // limit, malformed JSON, a key the API does not sign with.
    let sign = "/v1/keys/api-signing-p256/sign";
    let one = serde_json::json!({ "messages": ["AA=="] }).to_string();
    let many = serde_json::json!({ "messages": vec!["AA=="; 1001] }).to_string();
    let huge = serde_json::json!({ "messages": [STANDARD.encode(vec![0u8; 1 << 20])] }).to_string();
    for (path, client, body, expected) in [
        (sign, 1, one.clone(), 403),
        (sign, 0, many, 400),
        (sign, 0, huge, 413),
        (sign, 0, "{\"messages\": [".to_owned(), 400),
        (
            sign,
            0,
            "{\"messages\": [\"AA==\"], \"colour\": 1}".to_owned(),
            422,
        ),
        ("/v1/keys/kms-signing-sm2/sign", 0, one.clone(), 403),
        ("/v1/keys/api-signing-nope/sign", 0, one, 404),
    ] {
        let (status, body) = call(path, &clients[client], Some(body)).await.unwrap();
        assert_eq!(status, expected, "{path}: {body}");
    }
    let audited = kms
        .audit_entries(0)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.act == "api.sign")
        .count();
    assert_eq!(audited, 2, "one audit record per signing call");
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
