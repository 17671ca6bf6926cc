//! The API's internal CA on SQLite and PostgreSQL: client certificates checked by the OpenSSL
//! command line (chain, role and scope, key pair), revocation through the CRL, refusals.

mod support;

use std::process::Command;
use support::{Fixture, creds};
use ykt_kms::KmsError;
use ykt_kms::ca::ClientRole;

on_both_stores!(internal_ca_enrols_and_revokes_clients);

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
