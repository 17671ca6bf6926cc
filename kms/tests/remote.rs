//! The KMS on a simulator reached over the host protocol (127.0.0.1): the same answers as the
//! in-process provider, refusals for what must not cross the link, and a whole KMS running on
//! it. TACs are computed independently with `ykt-crypto` from a known master; signatures over
//! digests computed by the caller are also checked with gmssl and Python `cryptography`
//! (`test-vectors/oracle/oracle.py`).

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use support::{OFFICERS, QUORUM, TempDir, creds, new_hsm, python_batch};
use ykt_crypto::p256::{P256PublicKey, sha256};
use ykt_crypto::sm2::{DEFAULT_ID, Sm2PublicKey};
use ykt_crypto::{Kcv, KcvMethod, Profile, Purchase, SymmetricAlgorithm, SymmetricKey};
use ykt_hsm_sim::host::{ClientRegistry, HostError, HostServer, Status};
use ykt_hsm_sim::{
    Exportability, HsmError, KeyAlgorithm, KeyAttributes, KeyComponent, KeyUsage, Modes, TacCheck,
};
use ykt_kms::model::{MASTER_TEMPLATES, SchoolCode, Scope, TRANSPORT_TEMPLATE};
use ykt_kms::provider::remote::RemoteConfig;
use ykt_kms::provider::{Closed, Hsm, LocalHsm, RemoteHsm, SignInput};
use ykt_kms::{Credential, InitRequest, Kms, KmsError, NewOfficer, Store};
use zeroize::Zeroizing;

const SECRET: &[u8] = b"kms-1 host secret, 32 bytes long";

fn serve(local: &LocalHsm) -> (HostServer, RemoteHsm) {
    let mut clients = ClientRegistry::new();
    clients.add("kms-1", SECRET);
    let server = HostServer::bind("127.0.0.1:0", local.engine().clone(), clients).unwrap();
    let remote = RemoteHsm::connect(RemoteConfig {
        address: server.local_addr().to_string(),
        client: "kms-1".into(),
        secret: Zeroizing::new(SECRET.to_vec()),
    })
    .unwrap();
    (server, remote)
}

fn purchase(n: u8) -> Purchase {
    Purchase {
        card_random: [n, 2, 3, 4],
        offline_seq: u16::from(n),
        amount: 100 * u32::from(n),
        transaction_type: 0x06,
        terminal_id: [0x33, 0x01, 0x06, 0, 0, n],
        terminal_seq: 1000 + u32::from(n),
        date: [0x20, 0x26, 0x12, 0x01],
        time: [0x12, 0x00, n],
    }
}

#[test]
fn the_remote_provider_answers_as_the_local_one() {
    let dir = TempDir::new("remote");
    let local = new_hsm(dir.path());
    let (_server, remote) = serve(&local);
    assert!(
        RemoteHsm::connect(RemoteConfig {
            address: _server.local_addr().to_string(),
            client: "kms-1".into(),
            secret: Zeroizing::new(b"a wrong secret".to_vec()),
        })
        .is_err()
    );

    // A TAC master of known value, formed locally (components never cross the link).
    let clear = SymmetricKey::new(SymmetricAlgorithm::Sm4, &[0x42; 16]).unwrap();
    let tac_attributes = KeyAttributes::new(
        KeyUsage::Tac,
        KeyAlgorithm::Sm4,
        Modes::DERIVE,
        Exportability::None,
        1,
    )
    .unwrap();
    let components = [KeyComponent::new(&[0x42; 16]), KeyComponent::new(&[0; 16])];
    assert!(matches!(
        remote.form_key(tac_attributes, &components),
        Err(KmsError::Unsupported { .. })
    ));
    let (master, kcvs) = local.form_key(tac_attributes, &components).unwrap();
    assert_eq!(kcvs.combined, Kcv::of(&clear));
    assert_eq!(
        remote.kcv(&master, KcvMethod::Cmac).unwrap(),
        local.kcv(&master, KcvMethod::Cmac).unwrap()
    );
    assert!(matches!(
        remote.custody_split(&master, 2, 3),
        Err(KmsError::Unsupported { .. })
    ));

    // Batch TAC verification: independent TACs verify, a flipped one does not.
    let school = [
        [0, 0, 0, 0, 0, 0x33, 0x01, 0x06],
        [0, 0, 0, 0x21, 0x33, 0x01, 0x06, 0x01],
    ];
    let cards: Vec<[[u8; 8]; 3]> = (0..20u8)
        .map(|n| [school[0], school[1], [0, 0, 0, 0, 0, 0, 0, n]])
        .collect();
    let purchases: Vec<Purchase> = (0..20u8).map(purchase).collect();
    let mut tacs: Vec<[u8; 4]> = cards
        .iter()
        .zip(&purchases)
        .map(|(factors, p)| {
            let dtk = Profile::YktSm4V1.diversify_path(&clear, factors).unwrap();
            p.tac(Profile::YktSm4V1, &dtk).unwrap()
        })
        .collect();
    tacs[7][0] ^= 0x80;
    let records: Vec<TacCheck<'_>> = cards
        .iter()
        .zip(&purchases)
        .zip(&tacs)
        .map(|((factors, purchase), tac)| TacCheck {
            factors,
            purchase,
            tac,
        })
        .collect();
    let verdicts = remote.verify_purchase_tacs(&master, &records).unwrap();
    assert_eq!(
        verdicts,
        local.verify_purchase_tacs(&master, &records).unwrap()
    );
    assert_eq!(verdicts.iter().filter(|v| !**v).count(), 1);
    assert!(!verdicts[7]);

    // Derivation and signing.
    let school_attributes = KeyAttributes::new(
        KeyUsage::Tac,
        KeyAlgorithm::Sm4,
        Modes::MAC,
        Exportability::None,
        1,
    )
    .unwrap();
    let (_, remote_kcv) = remote
        .derive_key(&master, &school, school_attributes)
        .unwrap();
    let school_key = Profile::YktSm4V1.diversify_path(&clear, &school).unwrap();
    assert_eq!(remote_kcv, Kcv::of(&school_key));
    let signer = remote
        .generate_key(
            KeyAttributes::new(
                KeyUsage::Signature,
                KeyAlgorithm::Sm2,
                Modes::SIGN,
                Exportability::None,
                1,
            )
            .unwrap(),
        )
        .unwrap();
    let signature = remote
        .sign(
            &signer.key,
            SignInput::Sm2 {
                id: b"ykt-kms",
                message: b"checkpoint",
            },
        )
        .unwrap();
    let public = remote.public_key(&signer.key).unwrap();
    assert_eq!(public, local.public_key(&signer.key).unwrap());
    ykt_crypto::sm2::Sm2PublicKey::from_sec1(&public)
        .unwrap()
        .verify(b"ykt-kms", b"checkpoint", &signature)
        .unwrap();

    // Destroyed over the link: refused by both.
    remote.destroy_key(&master).unwrap();
    assert!(remote.verify_purchase_tacs(&master, &records).is_err());
    assert!(local.kcv(&master, KcvMethod::Cmac).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_kms_runs_on_a_remote_hsm() {
    let dir = TempDir::new("remote-kms");
    let local = new_hsm(dir.path());
    let (_server, remote) = serve(&local);
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("kms.db").display());
    let kms = Kms::new(Store::open(&url).await.unwrap(), Arc::new(remote));
    kms.initialize(&InitRequest {
        bureau_code: "330100".into(),
        bureau_name: "Hangzhou Education Bureau".into(),
        quorum: QUORUM,
        officers: OFFICERS
            .iter()
            .map(|(name, password)| NewOfficer {
                credential: Credential::new(name, password),
                display_name: (*name).into(),
            })
            .collect(),
        lmk_kcv: None,
    })
    .await
    .unwrap();
    assert_eq!(kms.info().await.unwrap().hsm, "remote");
    let three = creds(&["alice", "bob", "carol"]);
    for template in MASTER_TEMPLATES {
        kms.generate_key(&three, template, KeyAlgorithm::Sm4, Scope::Bureau, None)
            .await
            .unwrap();
    }
    kms.add_region(&three[0], "330106", "Xihu District")
        .await
        .unwrap();
    kms.add_school(
        &three[1],
        "2133010601",
        "330106",
        "Xihu No. 1 Primary School",
    )
    .await
    .unwrap();
    kms.generate_key(
        &three,
        TRANSPORT_TEMPLATE,
        KeyAlgorithm::Aes128,
        Scope::School(SchoolCode::new("2133010601").unwrap()),
        None,
    )
    .await
    .unwrap();
    let package = kms
        .export_school_package(
            &three,
            "2133010601",
            KeyAlgorithm::Sm4,
            KeyAlgorithm::Aes128,
        )
        .await
        .unwrap();
    assert_eq!(package.keys.len(), MASTER_TEMPLATES.len());
    kms.verify_school_package(&package).await.unwrap();
    // Custody needs the clear KEK shares, which stay at the HSM.
    let custody = ykt_kms::ceremony::CustodySpec {
        threshold: 2,
        custodians: vec!["alice".into(), "bob".into()],
    };
    assert!(matches!(
        kms.generate_key(
            &three,
            MASTER_TEMPLATES[0],
            KeyAlgorithm::TripleDes,
            Scope::Bureau,
            Some(&custody)
        )
        .await,
        Err(KmsError::Unsupported { .. })
    ));
    let report = kms.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert!(report.checkpoints >= 12);
}

/// Sends `requests` to `test-vectors/oracle/oracle.py` as one batch; one answer per request.
fn oracle(requests: &[Value]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("test-vectors/oracle/oracle.py");
    python_batch(&[script.as_os_str()], requests)
}

/// A refusal by the key's attributes, from the in-process engine or over the link.
fn forbidden<T: std::fmt::Debug>(result: ykt_kms::Result<T>) {
    assert!(
        matches!(
            &result,
            Err(KmsError::Hsm(HsmError::Forbidden { .. }))
                | Err(KmsError::Host(HostError::Refused {
                    status: Status::Forbidden,
                    ..
                }))
        ),
        "{result:?}"
    );
}

#[test]
fn digest_signatures_verify_as_message_signatures() {
    let dir = TempDir::new("remote-digest");
    let local = new_hsm(dir.path());
    let (_server, remote) = serve(&local);
    let signing = |algorithm| {
        KeyAttributes::new(
            KeyUsage::Signature,
            algorithm,
            Modes::SIGN,
            Exportability::None,
            1,
        )
        .unwrap()
    };
    let id = b"platform-clearing@ykt";
    let message = b"clearing batch 2026-05-01 #17";
    // Each oracle request with the verdict it must give.
    let mut checks: Vec<(Value, bool)> = Vec::new();
    let providers: [(&str, &dyn Hsm); 2] = [("in-process", &*local), ("remote", &remote)];
    for (name, hsm) in providers {
        // SM2: the caller computes e = SM3(ZA || M) for the ID; the signature verifies over
        // the message by that ID, and by no other.
        let sm2 = hsm.generate_key(signing(KeyAlgorithm::Sm2)).unwrap().key;
        let point = hsm.public_key(&sm2).unwrap();
        let public = Sm2PublicKey::from_sec1(&point).unwrap();
        let e = public.digest(id, message).unwrap();
        let signature = hsm.sign(&sm2, SignInput::Sm2Digest { e: &e }).unwrap();
        public.verify(id, message, &signature).unwrap();
        assert!(
            public.verify(DEFAULT_ID, message, &signature).is_err(),
            "{name}"
        );
        assert!(
            public.verify(id, b"clearing batch", &signature).is_err(),
            "{name}"
        );
        let sm2_check = |signer: &[u8], signed: &[u8]| {
            json!({"op": "sm2_verify", "pub": hex::encode(point), "id": hex::encode(signer),
                   "msg": hex::encode(signed), "sig": hex::encode(signature.to_raw())})
        };
        checks.push((sm2_check(id, message), true));
        checks.push((sm2_check(DEFAULT_ID, message), false));
        checks.push((sm2_check(id, b"clearing batch"), false));

        // P-256: the caller computes SHA-256(M); the signature verifies over M.
        let p256 = hsm.generate_key(signing(KeyAlgorithm::P256)).unwrap().key;
        let point = hsm.public_key(&p256).unwrap();
        let public = P256PublicKey::from_sec1(&point).unwrap();
        let digest = sha256(message);
        let signature = hsm
            .sign(&p256, SignInput::P256Digest { digest: &digest })
            .unwrap();
        public.verify(message, &signature).unwrap();
        assert!(
            public.verify(b"clearing batch", &signature).is_err(),
            "{name}"
        );
        let p256_check = |signed: &[u8; 32]| {
            json!({"op": "p256_verify", "pub": hex::encode(point), "digest": hex::encode(signed),
                   "sig": hex::encode(signature.to_raw())})
        };
        checks.push((p256_check(&digest), true));
        checks.push((p256_check(&sha256(b"clearing batch")), false));
        checks.push((
            json!({"op": "p256_verify", "pub": hex::encode(point), "msg": hex::encode(message),
                   "sig": hex::encode(signature.to_raw())}),
            true,
        ));

        // The same key checks as the message forms: only the key's own algorithm signs.
        forbidden(hsm.sign(&p256, SignInput::Sm2Digest { e: &e }));
        forbidden(hsm.sign(&sm2, SignInput::P256Digest { digest: &digest }));
    }
    let requests: Vec<Value> = checks.iter().map(|(request, _)| request.clone()).collect();
    for ((request, expected), answer) in checks.iter().zip(oracle(&requests)) {
        assert_eq!(answer["ok"], json!(expected), "{request} -> {answer}");
    }

    // No HSM: refused.
    let key = local.generate_key(signing(KeyAlgorithm::P256)).unwrap().key;
    for input in [
        SignInput::P256Digest { digest: &[7; 32] },
        SignInput::Sm2Digest { e: &[7; 32] },
    ] {
        assert!(matches!(
            Closed.sign(&key, input),
            Err(KmsError::Unsupported { .. })
        ));
    }
}
