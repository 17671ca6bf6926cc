//! The KMS API as a bureau runs it: `ykt ca init`, `ykt client enroll`, `ykt kms serve` on
//! the demo's data directory, and the demo's purchase records cleared over mutual TLS with
//! curl; a forged record is invalid, a revoked client refused.

use crate::support::{ykt, ykt_json};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn purchase_records_are_cleared_over_mutual_tls() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("api-{}", std::process::id()));
    drop(std::fs::remove_dir_all(&dir));
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    ykt_json(&["demo", "--data-dir", data_arg]);
    let ceremony = dir.join("officers.toml");
    std::fs::write(
        &ceremony,
        "[[officer]]\nname = \"zhang\"\npassword = \"zhang-lab-passphrase\"\n\n\
         [[officer]]\nname = \"li\"\npassword = \"li-lab-passphrase\"\n",
    )
    .unwrap();
    let ceremony_arg = ceremony.to_str().unwrap();
    let ca = dir.join("ca.pem");
    ykt_json(&[
        "ca",
        "init",
        "--data-dir",
        data_arg,
        "--components-from",
        ceremony_arg,
        "--out",
        ca.to_str().unwrap(),
    ]);
    let clients = dir.join("clients");
    for (name, role) in [("platform-1", "platform"), ("audit-1", "auditor")] {
        ykt_json(&[
            "client",
            "enroll",
            name,
            "--role",
            role,
            "--out",
            clients.to_str().unwrap(),
            "--officer",
            "zhang",
            "--data-dir",
            data_arg,
            "--components-from",
            ceremony_arg,
        ]);
    }
    // Each enrolment also wrote its PKCS#12 bundle and, no password file given, a fresh
    // passphrase beside it, both mode 0600; with `--p12-password-file` the bundle is under that
    // file's first line and no passphrase file is written. OpenSSL reads each bundle: the
    // OpenSSL 3 profile, the certificate of NAME.pem, a key of the certificate's public key.
    let password_file = dir.join("p12-password.txt");
    std::fs::write(&password_file, "a chosen bundle password\nsecond line\n").unwrap();
    let enrolled = ykt_json(&[
        "client",
        "enroll",
        "audit-2",
        "--role",
        "auditor",
        "--out",
        clients.to_str().unwrap(),
        "--p12-password-file",
        password_file.to_str().unwrap(),
        "--officer",
        "zhang",
        "--data-dir",
        data_arg,
        "--components-from",
        ceremony_arg,
    ]);
    let bundle_of = |name: &str| clients.join(format!("{name}.p12"));
    assert_eq!(
        enrolled["pkcs12"].as_str(),
        bundle_of("audit-2").to_str(),
        "{enrolled}"
    );
    assert_eq!(
        enrolled["pkcs12_password"].as_str(),
        password_file.to_str(),
        "{enrolled}"
    );
    assert!(!clients.join("audit-2.p12.pass").exists());
    let chosen = dir.join("p12-password-first-line.txt");
    std::fs::write(&chosen, "a chosen bundle password\n").unwrap();
    for (name, pass) in [
        ("platform-1", clients.join("platform-1.p12.pass")),
        ("audit-1", clients.join("audit-1.p12.pass")),
        ("audit-2", chosen),
    ] {
        let bundle = bundle_of(name);
        let bundle = bundle.to_str().unwrap();
        assert_eq!(file_mode(bundle), 0o600, "{bundle}");
        if name != "audit-2" {
            assert_eq!(file_mode(pass.to_str().unwrap()), 0o600);
            let passphrase = std::fs::read_to_string(&pass).unwrap();
            assert_eq!(passphrase.trim_end().len(), 24, "{name}");
        }
        let passin = format!("file:{}", pass.display());
        let (ok, text) = openssl(&[
            "pkcs12", "-in", bundle, "-passin", &passin, "-info", "-noout",
        ]);
        assert!(ok, "{text}");
        let iterations = ykt_kms::pkcs12::ITERATIONS;
        assert!(
            text.contains(&format!("MAC: sha256, Iteration {iterations}")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration {iterations}, \
                 PRF hmacWithSHA256"
            )),
            "{text}"
        );
        let extracted = dir.join(format!("{name}-from-p12.pem"));
        let extracted = extracted.to_str().unwrap();
        let (ok, text) = openssl(&[
            "pkcs12", "-in", bundle, "-passin", &passin, "-nodes", "-out", extracted,
        ]);
        assert!(ok, "{text}");
        let cert = clients.join(format!("{name}.pem"));
        let cert = cert.to_str().unwrap();
        let fingerprint =
            |file: &str| openssl(&["x509", "-in", file, "-noout", "-fingerprint", "-sha256"]);
        assert_eq!(fingerprint(extracted), fingerprint(cert));
        let (_, from_cert) = openssl(&["x509", "-in", cert, "-noout", "-pubkey"]);
        let (ok, from_key) = openssl(&["pkey", "-in", extracted, "-pubout"]);
        assert!(ok && from_cert == from_key, "{from_cert} {from_key}");
        std::fs::remove_file(extracted).unwrap();
        let (ok, text) = openssl(&[
            "pkcs12",
            "-in",
            bundle,
            "-passin",
            "pass:wrong",
            "-info",
            "-noout",
        ]);
        assert!(!ok && text.contains("invalid password"), "{text}");
    }

    let port = 20_000 + std::process::id() % 20_000;
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_ykt"))
        .args([
            "--json",
            "kms",
            "serve",
            "--data-dir",
            data_arg,
            "--listen",
            &listen,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("https://{listen}/v1/tac/verify");
    let post = |client: &str, body: &str| -> (u16, String) {
        let body_file = dir.join("body.json");
        std::fs::write(&body_file, body).unwrap();
        let cert = clients.join(format!("{client}.pem"));
        let key = clients.join(format!("{client}.key"));
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
            .args(["--cacert", ca.to_str().unwrap()])
            .args([
                "--cert",
                cert.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ])
            .args(["-H", "content-type: application/json"])
            .arg("--data-binary")
            .arg(format!("@{}", body_file.display()))
            .arg(&url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (status.parse().unwrap_or(0), body.to_owned())
    };
    let records: Vec<String> = std::fs::read_to_string(data.join("records/purchases.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(records.len(), 20);
    let body = serde_json::json!({ "records": records }).to_string();
    // The server takes a moment to start.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, answer) = loop {
        let (status, answer) = post("platform-1", &body);
        if status != 0 || Instant::now() > deadline {
            break (status, answer);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["valid"], 20, "{answer}");
    // The PKCS#12 bundle logs in as well as the PEM pair.
    let passphrase = std::fs::read_to_string(clients.join("platform-1.p12.pass")).unwrap();
    let bundle = format!(
        "{}:{}",
        clients.join("platform-1.p12").display(),
        passphrase.trim_end()
    );
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", ca.to_str().unwrap()])
        .args(["--cert-type", "P12", "--cert", &bundle])
        .arg(format!("https://{listen}/v1/whoami"))
        .output()
        .unwrap();
    let whoami: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(whoami["name"], "platform-1", "{whoami}");

    let mut forged: Vec<u8> = hex::decode(&records[3]).unwrap();
    forged[14] ^= 0x01;
    let body =
        serde_json::json!({ "records": [records[0], hex::encode_upper(forged)] }).to_string();
    let (status, answer) = post("platform-1", &body);
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["verdicts"], serde_json::json!(["valid", "invalid"]));
    // An auditor may not clear; a malformed record is refused.
    assert_eq!(post("audit-1", &body).0, 403);
    let (status, answer) = post("platform-1", "{\"records\": [\"0102\"]}");
    assert_eq!(status, 400, "{answer}");
    // Revoked: refused from the next connection on.
    let run = ykt(&[
        "client",
        "revoke",
        "platform-1",
        "--reason",
        "test",
        "--officer",
        "li",
        "--data-dir",
        data_arg,
        "--components-from",
        ceremony_arg,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(post("platform-1", &body).0, 0);

    drop(
        Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status(),
    );
    let status = server.wait().unwrap();
    assert!(status.success(), "ykt kms serve ended with {status}");
    let audit = ykt_json(&["audit", "verify", "--data-dir", data_arg]);
    assert_eq!(audit["intact"], true);
    let export = ykt(&["audit", "export", "--data-dir", data_arg]).stdout;
    assert!(export.contains("\"act\":\"api.tac-verify\""));
    drop(std::fs::remove_dir_all(&dir));
}

/// Runs `openssl ARGS...`: whether it succeeded, and what it printed on both streams.
fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl").args(args).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// The permission bits of a file.
fn file_mode(path: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
