//! The API over real TLS on 127.0.0.1, with curl (OpenSSL) as the client: a registered
//! client is served; no certificate, a certificate of another CA, TLS 1.2 and a revoked
//! client are refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use ykt_api::Server;
use ykt_hsm_sim::{CeremonySecret, KeyComponent};
use ykt_kms::ca::ClientRole;
use ykt_kms::provider::LocalHsm;
use ykt_kms::{Credential, InitRequest, Kms, NewOfficer, Store};

const OFFICERS: [(&str, &str); 3] = [
    ("alice", "alice-passphrase-1"),
    ("bob", "bob-passphrase-22"),
    ("carol", "carol-passphrase-3"),
];

fn creds(n: usize) -> Vec<Credential> {
    OFFICERS[..n]
        .iter()
        .map(|(name, password)| Credential::new(name, password))
        .collect()
}

async fn kms(dir: &Path) -> Kms {
    let (secret, _) = CeremonySecret::from_components(&[
        KeyComponent::new(&[0x5A; 32]),
        KeyComponent::new(&[0xC3; 32]),
    ])
    .unwrap();
    let hsm = Arc::new(LocalHsm::create(&dir.join("hsm"), &secret).unwrap());
    let url = format!("sqlite://{}?mode=rwc", dir.join("kms.db").display());
    let kms = Kms::new(Store::open(&url).await.unwrap(), hsm.clone());
    kms.initialize(&InitRequest {
        bureau_code: "330100".into(),
        bureau_name: "Hangzhou Education Bureau".into(),
        quorum: 2,
        officers: OFFICERS
            .iter()
            .map(|(name, password)| NewOfficer {
                credential: Credential::new(name, password),
                display_name: name.to_uppercase(),
            })
            .collect(),
        lmk_kcv: Some(hsm.lmk_kcv().to_string()),
    })
    .await
    .unwrap();
    kms
}

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
