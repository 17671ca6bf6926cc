//! The API's internal CA on SQLite and PostgreSQL: client certificates checked by the OpenSSL
//! command line (chain, role and scope, key pair), revocation through the CRL, refusals, and
//! the PKCS#12 bundle of an enrolment read back by `openssl pkcs12`.

mod support;

use std::process::Command;
use support::{Fixture, creds};
use ykt_kms::KmsError;
use ykt_kms::ca::ClientRole;
use ykt_kms::pkcs12;

on_both_stores!(
    internal_ca_enrols_and_revokes_clients,
    enrolment_bundles_as_pkcs12
);

fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

async fn internal_ca_enrols_and_revokes_clients(f: Fixture) {
    let kms = &f.kms;
    let officer = &creds(&["alice"])[0];
    kms.add_region(officer, "330106", "Xihu").await.unwrap();
    kms.add_school(officer, "2133010601", "330106", "school")
        .await
        .unwrap();
    // The CA needs the quorum; a second one is refused.
    assert!(kms.init_ca(&creds(&["alice"])).await.is_err());
    let ca = kms
        .init_ca(&creds(&["alice", "bob", "carol"]))
        .await
        .unwrap();
    assert!(matches!(
        kms.init_ca(&creds(&["alice", "bob", "carol"])).await,
        Err(KmsError::AlreadyExists { .. })
    ));
    let dir = f.dir.path();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let ca_file = write("ca.pem", &ca);

    let platform = kms
        .enroll_client(officer, "platform-1", ClientRole::Platform, &[])
        .await
        .unwrap();
    let station = kms
        .enroll_client(
            officer,
            "station-1",
            ClientRole::Issuer,
            &["2133010601".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(platform.ca_pem, ca);
    for (enrolment, role, uri) in [
        (&platform, "platform", "urn:ykt:client:platform-1:platform"),
        (
            &station,
            "issuer",
            "urn:ykt:client:station-1:issuer:2133010601",
        ),
    ] {
        let name = &enrolment.client.name;
        let cert = write(&format!("{name}.pem"), &enrolment.certificate_pem);
        let key = write(&format!("{name}.key"), &enrolment.key_pem);
        let (ok, text) = openssl(&[
            "verify",
            "-CAfile",
            &ca_file,
            "-purpose",
            "sslclient",
            &cert,
        ]);
        assert!(ok, "{text}");
        let (_, text) = openssl(&[
            "x509",
            "-in",
            &cert,
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
        ]);
        assert!(text.contains(&format!("OU = {role}")), "{text}");
        assert!(text.contains(&format!("URI:{uri}")), "{text}");
        // The key handed out is the certificate's.
        let (_, from_cert) = openssl(&["x509", "-in", &cert, "-noout", "-pubkey"]);
        let (ok, from_key) = openssl(&["pkey", "-in", &key, "-pubout"]);
        assert!(ok && from_cert == from_key, "{from_cert} {from_key}");
        // The registered fingerprint is the certificate's SHA-256.
        let (_, text) = openssl(&["x509", "-in", &cert, "-noout", "-fingerprint", "-sha256"]);
        let fingerprint: String = text.split('=').nth(1).unwrap().trim().replace(':', "");
        assert_eq!(fingerprint, enrolment.client.fingerprint);
        let found = kms
            .client_by_fingerprint(&fingerprint)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&found.name, name);
    }

    // Refusals change nothing.
    for (name, role, schools) in [
        ("station-2", ClientRole::Issuer, vec![]),
        (
            "platform-2",
            ClientRole::Platform,
            vec!["2133010601".to_owned()],
        ),
        (
            "station-3",
            ClientRole::Issuer,
            vec!["2133010699".to_owned()],
        ),
        ("platform-1", ClientRole::Platform, vec![]),
        ("bad name!", ClientRole::Auditor, vec![]),
    ] {
        assert!(
            kms.enroll_client(officer, name, role, &schools)
                .await
                .is_err(),
            "{name}"
        );
    }
    assert_eq!(kms.clients().await.unwrap().len(), 2);

    // Revoked: the CRL lists it, OpenSSL refuses it, the other still verifies.
    kms.revoke_client(officer, "station-1", "station retired")
        .await
        .unwrap();
    assert!(
        kms.revoke_client(officer, "station-1", "again")
            .await
            .is_err()
    );
    let crl = write("crl.pem", &kms.revocation_list_pem().await.unwrap());
    let station_cert = dir.join("station-1.pem").to_str().unwrap().to_owned();
    let platform_cert = dir.join("platform-1.pem").to_str().unwrap().to_owned();
    let (ok, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca_file,
        "-CRLfile",
        &crl,
        &station_cert,
    ]);
    assert!(!ok && text.contains("revoked"), "{text}");
    let (ok, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca_file,
        "-CRLfile",
        &crl,
        &platform_cert,
    ]);
    assert!(ok, "{text}");
    let statuses: Vec<(String, String)> = kms
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("platform-1".to_owned(), "active".to_owned()),
            ("station-1".to_owned(), "revoked".to_owned())
        ]
    );
    let entries = kms.audit_entries(0).await.unwrap();
    for act in ["ca.init", "client.enroll", "client.revoke"] {
        assert!(entries.iter().any(|e| e.act == act), "{act}");
    }
    assert!(kms.verify_audit().await.unwrap().is_intact());
}

/// The DER contents of every PEM block in `text` with `tag` (OpenSSL's output puts bag
/// attributes between them).
fn pem_blocks(text: &str, tag: &str) -> Vec<Vec<u8>> {
    let start = text.find("-----BEGIN").unwrap_or(text.len());
    pem::parse_many(&text[start..])
        .unwrap()
        .into_iter()
        .filter(|block| block.tag() == tag)
        .map(pem::Pem::into_contents)
        .collect()
}

async fn enrolment_bundles_as_pkcs12(f: Fixture) {
    let kms = &f.kms;
    let officer = &creds(&["alice"])[0];
    kms.init_ca(&creds(&["alice", "bob", "carol"]))
        .await
        .unwrap();
    let enrolment = kms
        .enroll_client(officer, "platform-1", ClientRole::Platform, &[])
        .await
        .unwrap();
    let dir = f.dir.path();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let password = pkcs12::new_password().unwrap();
    assert_eq!(password.len(), pkcs12::PASSWORD_LENGTH);
    assert!(
        password
            .bytes()
            .all(|c| pkcs12::PASSWORD_ALPHABET.contains(&c))
    );
    assert_ne!(*password, *pkcs12::new_password().unwrap());
    std::fs::write(path("p12.pass"), format!("{}\n", password.as_str())).unwrap();
    std::fs::write(path("wrong.pass"), "not-the-password\n").unwrap();
    std::fs::write(path("platform-1.p12"), enrolment.pkcs12(&password).unwrap()).unwrap();
    std::fs::write(path("platform-1.pem"), &enrolment.certificate_pem).unwrap();
    let pass = format!("file:{}", path("p12.pass"));
    let bundle = path("platform-1.p12");

    // The profile: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC for the certificates and
    // the key, an HMAC-SHA256 MAC, every derivation at the documented count.
    let (ok, text) = openssl(&[
        "pkcs12", "-in", &bundle, "-passin", &pass, "-info", "-noout",
    ]);
    assert!(ok, "{text}");
    let iterations = pkcs12::ITERATIONS.get();
    assert!(
        text.contains(&format!(
            "MAC: sha256, Iteration {iterations}\nMAC length: 32, salt length: 16"
        )),
        "{text}"
    );
    let scheme = format!("PBES2, PBKDF2, AES-256-CBC, Iteration {iterations}, PRF hmacWithSHA256");
    assert!(
        text.contains(&format!("PKCS7 Encrypted data: {scheme}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Shrouded Keybag: {scheme}")),
        "{text}"
    );

    // The certificates: the client's, named after it and paired with the key by the SHA-256
    // of the certificate, and the CA's.
    let (ok, text) = openssl(&[
        "pkcs12", "-in", &bundle, "-passin", &pass, "-nokeys", "-clcerts",
    ]);
    assert!(ok, "{text}");
    let client_certificate = pem::parse(&enrolment.certificate_pem).unwrap();
    assert_eq!(
        pem_blocks(&text, "CERTIFICATE"),
        [client_certificate.contents().to_vec()]
    );
    assert!(text.contains("friendlyName: platform-1"), "{text}");
    let local_key_id = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("localKeyID: "))
        .unwrap()
        .replace(' ', "");
    assert_eq!(local_key_id, enrolment.client.fingerprint);
    let (ok, text) = openssl(&[
        "pkcs12", "-in", &bundle, "-passin", &pass, "-nokeys", "-cacerts",
    ]);
    assert!(ok, "{text}");
    assert_eq!(
        pem_blocks(&text, "CERTIFICATE"),
        [pem::parse(&enrolment.ca_pem).unwrap().into_contents()]
    );

    // The key: the certificate's, under the same name and local key ID.
    let (ok, text) = openssl(&[
        "pkcs12", "-in", &bundle, "-passin", &pass, "-nocerts", "-nodes",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("friendlyName: platform-1"), "{text}");
    let key = pem_blocks(&text, "PRIVATE KEY");
    assert_eq!(key.len(), 1, "{text}");
    std::fs::write(
        path("extracted.key"),
        pem::encode(&pem::Pem::new("PRIVATE KEY", key[0].clone())),
    )
    .unwrap();
    let (_, from_cert) = openssl(&["x509", "-in", &path("platform-1.pem"), "-noout", "-pubkey"]);
    let (ok, from_key) = openssl(&["pkey", "-in", &path("extracted.key"), "-pubout"]);
    assert!(ok && from_cert == from_key, "{from_cert} {from_key}");
    std::fs::remove_file(path("extracted.key")).unwrap();

    // A wrong password is refused; so is making a bundle under an empty one.
    let wrong = format!("file:{}", path("wrong.pass"));
    let (ok, text) = openssl(&[
        "pkcs12", "-in", &bundle, "-passin", &wrong, "-info", "-noout",
    ]);
    assert!(!ok && text.contains("invalid password"), "{text}");
    assert!(matches!(
        enrolment.pkcs12(""),
        Err(KmsError::InvalidInput { .. })
    ));
    assert!(pkcs12::check_password("a\0b").is_err());
}
