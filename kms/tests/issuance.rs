//! The issuance registry on SQLite and PostgreSQL: serials without gaps or repeats, batches,
//! the card status rules that gate the card-key acts, terminal registration, and the HSM's
//! cryptograms checked against ykt-crypto computing them from the known clear keys.

mod support;

use sqlx::Row;
use support::{Fixture, creds};
use ykt_crypto::secure_messaging::{external_auth_cryptogram, write_key_command};
use ykt_crypto::{Profile, SymmetricAlgorithm, SymmetricKey};
use ykt_hsm_sim::{KeyAlgorithm, KeyComponent};
use ykt_kms::KmsError;
use ykt_kms::ceremony::OfficerComponent;
use ykt_kms::issuance::{
    BatchProfile, CardKey, CardKeyWrite, CardStatus, DeviceKind, NewCard, NewPsams, Serial,
};
use ykt_kms::model::{CARD_TRANSPORT_TEMPLATE, RegionCode, SchoolCode, Scope, Template};

const REGION: &str = "330106";
const SCHOOLS: [&str; 2] = ["2133010601", "2133010602"];

on_both_stores!(issuance_registry);

/// Imports `template` in 3DES from two components; returns the clear key they form.
async fn import(f: &Fixture, template: Template, seed: u8) -> SymmetricKey {
    let parts: Vec<[u8; 16]> = (0..2u8)
        .map(|n| std::array::from_fn(|i| seed.wrapping_mul(37) ^ (n * 101) ^ (i as u8 * 13)))
        .collect();
    let key: Vec<u8> = (0..16).map(|i| parts[0][i] ^ parts[1][i]).collect();
    let components: Vec<OfficerComponent> = ["alice", "bob"]
        .iter()
        .zip(&parts)
        .map(|(officer, part)| OfficerComponent {
            officer: (*officer).into(),
            component: KeyComponent::new(part),
        })
        .collect();
    f.kms
        .import_key(
            &creds(&["alice", "bob", "carol"]),
            template,
            KeyAlgorithm::TripleDes,
            Scope::Bureau,
            &components,
            None,
        )
        .await
        .unwrap();
    SymmetricKey::new(SymmetricAlgorithm::TripleDes, &key).unwrap()
}

async fn count(f: &Fixture, table: &str) -> i64 {
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(f.kms.store().pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

fn holder(school: &str, number: &str) -> NewCard {
    NewCard {
        school: school.into(),
        card_type: "student".into(),
        holder_name: "王小明".into(),
        holder_number: number.into(),
        id_number: "11010519491231002X".into(),
        expiry: "20320831".into(),
    }
}

fn profile(templates: &[&str]) -> BatchProfile {
    BatchProfile {
        name: "test@1".into(),
        digest: "00".repeat(32),
        algorithm: KeyAlgorithm::TripleDes,
        templates: templates.iter().map(|t| (*t).to_owned()).collect(),
        valid_from: "20260901".into(),
    }
}

fn refused<T: std::fmt::Debug>(result: Result<T, KmsError>) -> KmsError {
    result.expect_err("refused")
}

async fn issuance_registry(f: Fixture) {
    let kms = &f.kms;
    let officer = &creds(&["alice"])[0];
    kms.add_region(officer, REGION, "Xihu District")
        .await
        .unwrap();
    for school in SCHOOLS {
        kms.add_school(officer, school, REGION, "school")
            .await
            .unwrap();
    }
    let transport = import(&f, CARD_TRANSPORT_TEMPLATE, 1).await;
    let app_master = import(&f, Template::named("app-master").unwrap(), 2).await;
    let external = import(&f, Template::named("external-auth").unwrap(), 3).await;
    let templates = ["app-master", "external-auth"];

    // Serials: per school and kind, consecutive from 1, in roster order.
    let batch = kms
        .create_card_batch(
            "operator:t",
            &profile(&templates),
            &[
                holder(SCHOOLS[0], "A1"),
                holder(SCHOOLS[1], "B1"),
                holder(SCHOOLS[0], "A2"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        (batch.total, batch.issued, batch.status.as_str()),
        (3, 0, "open")
    );
    let cards = kms.batch_cards(&batch.id).await.unwrap();
    let serials: Vec<String> = cards.iter().map(|c| c.serial.to_string()).collect();
    assert_eq!(
        serials,
        [
            "33012133010601000001",
            "33012133010602000001",
            "33012133010601000002"
        ]
    );
    assert!(cards.iter().all(|c| c.status == CardStatus::Allocated));
    assert_eq!(cards[0].key_versions["app-master"], 1);

    // A holder who has a card, an unknown school, a missing master: refused, nothing kept.
    let before = (count(&f, "cards").await, count(&f, "issue_batches").await);
    assert!(matches!(
        refused(
            kms.create_card_batch(
                "operator:t",
                &profile(&templates),
                &[holder(SCHOOLS[0], "A3"), holder(SCHOOLS[0], "A1")]
            )
            .await
        ),
        KmsError::AlreadyExists { .. }
    ));
    assert!(matches!(
        refused(
            kms.create_card_batch(
                "operator:t",
                &profile(&templates),
                &[holder("2133010699", "C1")]
            )
            .await
        ),
        KmsError::NotFound { .. }
    ));
    assert!(
        kms.create_card_batch(
            "operator:t",
            &profile(&["purchase"]),
            &[holder(SCHOOLS[0], "A4")]
        )
        .await
        .is_err()
    );
    let bad_holders = [
        ("expiry", "20320231"),
        ("expiry", "20260831"),
        ("card_type", "pupil"),
        ("name", ""),
        ("name", "一二三四五六七八九十甲"),
        ("number", "A-5"),
        ("id", "1101051949123100"),
    ];
    for (field, value) in bad_holders {
        let mut bad = holder(SCHOOLS[0], "A5");
        match field {
            "expiry" => bad.expiry = value.into(),
            "card_type" => bad.card_type = value.into(),
            "name" => bad.holder_name = value.into(),
            "number" => bad.holder_number = value.into(),
            _ => bad.id_number = value.into(),
        }
        assert!(
            matches!(
                refused(
                    kms.create_card_batch("operator:t", &profile(&templates), &[bad])
                        .await
                ),
                KmsError::InvalidInput { .. }
            ),
            "{field} {value}"
        );
    }
    assert_eq!(
        (count(&f, "cards").await, count(&f, "issue_batches").await),
        before
    );
    // The next batch continues the school's numbers: no gap was left by the refusals.
    let next = kms
        .create_card_batch(
            "operator:t",
            &profile(&templates),
            &[holder(SCHOOLS[0], "A6")],
        )
        .await
        .unwrap();
    let next_card = kms.batch_cards(&next.id).await.unwrap().remove(0);
    assert_eq!(next_card.serial.to_string(), "33012133010601000003");

    // Card-key acts only while the card is being personalised.
    let card = &cards[0];
    let challenge = [0x11u8, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
    assert!(
        kms.card_external_auth(&card.attempt(), CardKey::Transport, &challenge)
            .await
            .is_err()
    );
    let started = kms
        .start_personalisation("operator:t", &card.serial, false)
        .await
        .unwrap();
    assert_eq!(
        (started.status, started.attempts),
        (CardStatus::Personalising, 1)
    );
    // Another station may not restart it unless it takes over, which ends this attempt.
    assert!(matches!(
        refused(
            kms.start_personalisation("operator:u", &card.serial, false)
                .await
        ),
        KmsError::NotAuthorised(_)
    ));
    let taken = kms
        .start_personalisation("operator:u", &card.serial, true)
        .await
        .unwrap();
    assert_eq!(taken.attempts, 2);
    assert!(
        kms.card_external_auth(&started.attempt(), CardKey::Transport, &challenge)
            .await
            .is_err(),
        "the attempt taken over gets nothing more"
    );
    let attempt = taken.attempt();

    // The HSM's cryptograms are what ykt-crypto computes from the clear keys.
    let profile3des = Profile::for_algorithm(SymmetricAlgorithm::TripleDes).unwrap();
    let factors = [
        RegionCode::new(REGION).unwrap().factor(),
        SchoolCode::new(SCHOOLS[0]).unwrap().factor(),
        card.serial.factor(),
    ];
    assert_eq!(
        kms.card_external_auth(&attempt, CardKey::Transport, &challenge)
            .await
            .unwrap(),
        external_auth_cryptogram(&transport, &challenge).unwrap()
    );
    let card_app_master = profile3des.diversify_path(&app_master, &factors).unwrap();
    assert_eq!(
        kms.card_external_auth(&attempt, CardKey::Card("app-master"), &challenge)
            .await
            .unwrap(),
        external_auth_cryptogram(&card_app_master, &challenge).unwrap()
    );
    let card_external = profile3des.diversify_path(&external, &factors).unwrap();
    let header = [0xF9, 0xF0, 0x01, 0x01, 0x55];
    let apdu = kms
        .card_write_key(
            &attempt,
            &CardKeyWrite {
                key: CardKey::Card("app-master"),
                under: CardKey::Card("external-auth"),
                challenge: &challenge[..4],
                p1: 0x01,
                p2: 0x00,
                record_header: &header,
            },
        )
        .await
        .unwrap();
    let record = [&header[..], card_app_master.expose_secret()].concat();
    assert_eq!(
        apdu,
        write_key_command(&card_external, &challenge[..4], 0x01, 0x00, &record).unwrap()
    );
    // The transport key protects the card master key's write over it, nothing else.
    let write = |key, p1, p2| CardKeyWrite {
        key,
        under: CardKey::Transport,
        challenge: &challenge[..4],
        p1,
        p2,
        record_header: &header,
    };
    assert!(
        kms.card_write_key(&attempt, &write(CardKey::Card("app-master"), 0x01, 0x00))
            .await
            .is_err()
    );
    assert!(
        kms.card_write_key(&attempt, &write(CardKey::Card("external-auth"), 0x01, 0x01))
            .await
            .is_err()
    );
    let record = [&header[..], card_external.expose_secret()].concat();
    assert_eq!(
        kms.card_write_key(&attempt, &write(CardKey::Card("external-auth"), 0x39, 0x00))
            .await
            .unwrap(),
        write_key_command(&transport, &challenge[..4], 0x39, 0x00, &record).unwrap()
    );
    assert!(kms.card(&card.serial).await.unwrap().card_master_sent);
    // A school-level key is a PSAM's, and only the purchase key.
    assert!(
        kms.card_external_auth(&attempt, CardKey::School("app-master"), &challenge)
            .await
            .is_err()
    );
    // A card key that is not on the card.
    assert!(
        kms.card_external_auth(&attempt, CardKey::Card("purchase"), &challenge)
            .await
            .is_err()
    );

    // Issued: no more cryptograms, no second personalisation; the batch closes at its last.
    assert!(
        kms.finish_personalisation("operator:u", &started.attempt(), 40)
            .await
            .is_err()
    );
    let issued = kms
        .finish_personalisation("operator:u", &attempt, 40)
        .await
        .unwrap();
    assert_eq!(
        (issued.status, issued.apdus),
        (CardStatus::Issued, Some(40))
    );
    assert!(
        kms.card_external_auth(&attempt, CardKey::Transport, &challenge)
            .await
            .is_err()
    );
    assert!(
        kms.start_personalisation("operator:u", &card.serial, true)
            .await
            .is_err()
    );
    for other in &cards[1..] {
        let started = kms
            .start_personalisation("operator:t", &other.serial, false)
            .await
            .unwrap();
        kms.finish_personalisation("operator:t", &started.attempt(), 41)
            .await
            .unwrap();
    }
    let done = kms.batch(&batch.id).await.unwrap();
    assert_eq!((done.issued, done.status.as_str()), (3, "done"));
    assert_eq!(
        kms.card_by_factor(&card.serial.factor())
            .await
            .unwrap()
            .serial,
        card.serial
    );

    // Money acts: a card not issued, or unknown, is refused.
    let load = ykt_kms::issuance::Load {
        card_random: [1, 2, 3, 4],
        online_seq: 0,
        old_balance: 0,
        amount: 100,
        transaction_type: 0x02,
        terminal_id: [0x33, 0x01, 0x06, 0, 0, 1],
        date: [0x20, 0x26, 0x09, 0x01],
        time: [0x12, 0, 0],
    };
    assert!(
        kms.authorize_load("t", &next_card.serial.factor(), 1, &load, &[0; 4])
            .await
            .is_err()
    );
    assert!(matches!(
        refused(kms.authorize_load("t", &[0x99; 8], 1, &load, &[0; 4]).await),
        KmsError::NotFound { .. }
    ));

    // PSAMs: serials of their own kind, terminal IDs per region from 1, across batches.
    let mut terminals = Vec::new();
    for count in [2, 1] {
        let psams = kms
            .create_psam_batch(
                "operator:t",
                &profile(&templates),
                &NewPsams {
                    school: SCHOOLS[1].into(),
                    vendor: "acme".into(),
                    count,
                    expiry: "20360831".into(),
                },
            )
            .await
            .unwrap();
        for psam in kms.batch_cards(&psams.id).await.unwrap() {
            assert_eq!(psam.kind, DeviceKind::Psam);
            terminals.push((psam.serial.to_string(), psam.terminal_id.unwrap()));
        }
    }
    assert_eq!(
        terminals,
        [
            ("33012133010602900001".into(), "330106000001".into()),
            ("33012133010602900002".into(), "330106000002".into()),
            ("33012133010602900003".into(), "330106000003".into()),
        ]
    );
    assert_eq!(count(&f, "terminals").await, 3);
    assert!(Serial::parse("3301213301060200000").is_err());

    // Every act is in the chain, which verifies.
    let entries = kms.audit_entries(0).await.unwrap();
    for act in [
        "issue.batch.create",
        "card.personalise",
        "card.issue",
        "card.load",
    ] {
        assert!(entries.iter().any(|e| e.act == act), "{act}");
    }
    assert!(kms.verify_audit().await.unwrap().is_intact());
}
