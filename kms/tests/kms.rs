//! The KMS end to end on both stores (SQLite, and PostgreSQL when `YKT_TEST_POSTGRES_URL` is
//! set): ceremonies, quorum and lifecycle refusals, blob tampering, audit tampering, bad
//! input, and a search of the data directory and the logs for every secret. Key check values
//! are recomputed independently with `ykt-crypto` from the known clear components.

mod support;

use sqlx::Row;
use support::{Db, Fixture, creds};
use ykt_crypto::{Kcv, Profile, SymmetricAlgorithm, SymmetricKey};
use ykt_hsm_sim::{KeyAlgorithm, KeyComponent};
use ykt_kms::KmsError;
use ykt_kms::ceremony::{CustodySpec, OfficerComponent};
use ykt_kms::model::{
    KeyState, MASTER_TEMPLATES, Purpose, RegionCode, SchoolCode, Scope, TRANSPORT_TEMPLATE,
    Template,
};

const REGION: &str = "330106";
const SCHOOL: &str = "2133010601";
const ALL: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

on_both_stores!(
    ceremony_from_components_to_school_package,
    quorum_is_enforced_by_the_kms,
    lifecycle_refusals,
    relabelled_or_corrupted_blobs_are_refused,
    audit_tampering_is_detected,
    bad_input_changes_nothing,
    rotation_keeps_cards_on_old_versions_working,
    custody_resplit_and_recovery,
);

fn component(byte: u8) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = byte.wrapping_mul(31).wrapping_add(i as u8 * 7);
    }
    bytes
}

/// Three officers' 3DES components with their printed check values, and the clear key they
/// form, computed here.
fn components() -> (Vec<OfficerComponent>, SymmetricKey) {
    let parts = [component(1), component(2), component(3)];
    let mut key = [0u8; 16];
    for part in &parts {
        for (k, p) in key.iter_mut().zip(part) {
            *k ^= p;
        }
    }
    let officers = ["alice", "bob", "carol"]
        .iter()
        .zip(&parts)
        .map(|(officer, part)| {
            let kcv = Kcv::of(&SymmetricKey::new(SymmetricAlgorithm::TripleDes, part).unwrap());
            OfficerComponent {
                officer: (*officer).into(),
                component: KeyComponent::new(part).with_expected_kcv(kcv.value()),
            }
        })
        .collect();
    (
        officers,
        SymmetricKey::new(SymmetricAlgorithm::TripleDes, &key).unwrap(),
    )
}

fn custody(threshold: u8, names: &[&str]) -> CustodySpec {
    CustodySpec {
        threshold,
        custodians: names.iter().map(|n| (*n).to_owned()).collect(),
    }
}

async fn count(f: &Fixture, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(f.kms.store().pool())
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap()
}

async fn school_tree(f: &Fixture) {
    f.kms
        .add_region(&creds(&["alice"])[0], REGION, "Xihu District")
        .await
        .unwrap();
    f.kms
        .add_school(
            &creds(&["bob"])[0],
            SCHOOL,
            REGION,
            "Xihu No. 1 Primary School",
        )
        .await
        .unwrap();
}

async fn generate(f: &Fixture, template: Template, algorithm: KeyAlgorithm) -> String {
    f.kms
        .generate_key(
            &creds(&["alice", "bob", "carol"]),
            template,
            algorithm,
            Scope::Bureau,
            Some(&custody(3, &ALL)),
        )
        .await
        .unwrap()
        .key_id
}

/// Every byte string of the secrets, raw and as hex in both cases.
fn needles(secrets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    secrets
        .iter()
        .flat_map(|s| {
            [
                s.clone(),
                hex::encode(s).into_bytes(),
                hex::encode_upper(s).into_bytes(),
            ]
        })
        .collect()
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

async fn ceremony_from_components_to_school_package(f: Fixture) {
    let (parts, master) = components();
    let expected = Kcv::of(&master).to_string();
    let purchase = MASTER_TEMPLATES[0];
    let report = f
        .kms
        .import_key(
            &creds(&["alice", "bob", "carol"]),
            purchase,
            KeyAlgorithm::TripleDes,
            Scope::Bureau,
            &parts,
            Some(&expected),
        )
        .await
        .unwrap();
    assert_eq!(report.key_id, "purchase-3des");
    assert_eq!(report.kcv, expected);
    for (officer, part) in report.component_kcvs.iter().zip(&parts) {
        assert_eq!(officer.0, part.officer);
    }
    let mut generated = Vec::new();
    for template in &MASTER_TEMPLATES[1..] {
        let report = f
            .kms
            .generate_key(
                &creds(&["carol", "dave", "erin"]),
                *template,
                KeyAlgorithm::TripleDes,
                Scope::Bureau,
                Some(&custody(3, &ALL)),
            )
            .await
            .unwrap();
        assert_eq!(report.shares.len(), 5);
        let holders: std::collections::BTreeSet<_> =
            report.shares.iter().map(|s| s.officer.clone()).collect();
        assert_eq!(holders.len(), 5, "one share per officer");
        generated.push(report);
    }
    // Each generated key, opened from its stored custody block with three officers' shares
    // outside the HSM: its check value is the one the ceremony reported.
    let mut generated_keys = Vec::new();
    for report in &generated {
        let block: String = sqlx::query("SELECT custody_block FROM key_versions WHERE key_id = $1")
            .bind(&report.key_id)
            .fetch_one(f.kms.store().pool())
            .await
            .unwrap()
            .try_get("custody_block")
            .unwrap();
        let shares: Vec<_> = report.shares[1..4]
            .iter()
            .map(|s| ykt_hsm_sim::shamir::Share::parse(&s.text).unwrap())
            .collect();
        let kek = ykt_hsm_sim::shamir::combine(&shares).unwrap();
        let kek = SymmetricKey::new(SymmetricAlgorithm::Aes256, &kek).unwrap();
        assert_eq!(Kcv::of(&kek).to_string(), report.shares[0].kek_kcv);
        let block = ykt_hsm_sim::keyblock::KeyBlock::parse(&block).unwrap();
        let (_, secret) = block.open_custody(&kek).unwrap();
        let key = SymmetricKey::new(SymmetricAlgorithm::TripleDes, &secret).unwrap();
        assert_eq!(Kcv::of(&key).to_string(), report.check);
        generated_keys.push(secret.to_vec());
    }
    school_tree(&f).await;
    let school_scope = Scope::School(SchoolCode::new(SCHOOL).unwrap());
    let transport = f
        .kms
        .generate_key(
            &creds(&["alice", "dave", "erin"]),
            TRANSPORT_TEMPLATE,
            KeyAlgorithm::Sm4,
            school_scope,
            None,
        )
        .await
        .unwrap();
    let package = f
        .kms
        .export_school_package(
            &creds(&["alice", "bob", "dave"]),
            SCHOOL,
            KeyAlgorithm::TripleDes,
            KeyAlgorithm::Sm4,
        )
        .await
        .unwrap();
    assert_eq!(package.keys.len(), MASTER_TEMPLATES.len());
    assert_eq!(package.school, SCHOOL);
    assert_eq!(package.region, REGION);
    // The school's purchase key, diversified here from the known master.
    let factors = [
        RegionCode::new(REGION).unwrap().factor(),
        SchoolCode::new(SCHOOL).unwrap().factor(),
    ];
    let school_key = Profile::PbocDes.diversify_path(&master, &factors).unwrap();
    let packaged = package
        .keys
        .iter()
        .find(|k| k.template == "purchase")
        .unwrap();
    assert_eq!(packaged.kcv, Kcv::of(&school_key).to_string());
    f.kms.verify_school_package(&package).await.unwrap();
    let mut forged = package.clone();
    forged.keys[0].kcv = "000000".into();
    assert!(f.kms.verify_school_package(&forged).await.is_err());
    // Each block opens under the school's transport key, with the package's check value.
    let (_, transport_key) = f
        .kms
        .wrapped(&transport.key_id, None, Purpose::Use)
        .await
        .unwrap();
    for key in &package.keys {
        let imported = ykt_kms::Hsm::import_key(&*f.hsm, &key.block, &transport_key).unwrap();
        let kcv = ykt_kms::Hsm::kcv(&*f.hsm, &imported, ykt_crypto::KcvMethod::EncryptZeros);
        assert_eq!(kcv.unwrap().to_string(), key.kcv);
    }
    let audit = f.kms.verify_audit().await.unwrap();
    assert!(audit.is_intact(), "{audit:?}");
    assert!(audit.checkpoints >= 3);
    let acts: Vec<String> = f
        .kms
        .audit_entries(0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.act)
        .collect();
    for act in ["kms.init", "key.create", "region.add", "school.add"] {
        assert!(acts.iter().any(|a| a == act), "{act} missing from {acts:?}");
    }
    assert_eq!(acts.last().unwrap(), "ceremony.export-school");

    // No clear key (imported, generated, derived), component or custody KEK anywhere in the
    // data directory: database, write-ahead log, HSM state.
    if f.db == Db::Sqlite {
        f.kms.store().checkpoint_wal().await.unwrap();
        let mut secrets = vec![
            master.expose_secret().to_vec(),
            school_key.expose_secret().to_vec(),
        ];
        secrets.extend([component(1), component(2), component(3)].map(|c| c.to_vec()));
        secrets.extend(generated_keys);
        let needles = needles(&secrets);
        let logs = support::logs();
        assert!(
            logs.windows(7).any(|w| w == b"audited"),
            "the ceremony was not logged"
        );
        let files = files_under(f.dir.path()).into_iter().map(|file| {
            let bytes = std::fs::read(&file).unwrap();
            (file.display().to_string(), bytes)
        });
        for (file, bytes) in files.chain([("the logs".to_owned(), logs)]) {
            for needle in &needles {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == &needle[..]),
                    "a secret is in {file}"
                );
            }
        }
    }
}

async fn quorum_is_enforced_by_the_kms(f: Fixture) {
    let tac = generate(&f, MASTER_TEMPLATES[2], KeyAlgorithm::Sm4).await;
    school_tree(&f).await;
    let before = count(&f, "SELECT COUNT(*) FROM keys").await;
    let not_authorised = |r: Result<(), KmsError>| {
        assert!(matches!(r, Err(KmsError::NotAuthorised(_))), "{r:?}");
    };
    // Two officers are not the quorum of three, for any dual-control act.
    let two = creds(&["alice", "bob"]);
    let (parts, _) = components();
    not_authorised(
        f.kms
            .import_key(
                &two,
                MASTER_TEMPLATES[0],
                KeyAlgorithm::TripleDes,
                Scope::Bureau,
                &parts[..2],
                None,
            )
            .await
            .map(|_| ()),
    );
    not_authorised(
        f.kms
            .generate_key(
                &two,
                MASTER_TEMPLATES[0],
                KeyAlgorithm::Sm4,
                Scope::Bureau,
                None,
            )
            .await
            .map(|_| ()),
    );
    not_authorised(
        f.kms
            .export_school_package(&two, SCHOOL, KeyAlgorithm::Sm4, KeyAlgorithm::Sm4)
            .await
            .map(|_| ()),
    );
    not_authorised(f.kms.destroy_key(&two, &tac, "test").await);
    not_authorised(
        f.kms
            .resplit_custody(&two, &tac, &custody(2, &["alice", "bob"]))
            .await
            .map(|_| ()),
    );
    // One officer presented three times is one officer.
    let thrice = creds(&["alice", "alice", "alice"]);
    not_authorised(f.kms.destroy_key(&thrice, &tac, "test").await);
    // A wrong password does not count.
    let mut wrong = creds(&["alice", "bob", "carol"]);
    wrong[2] = ykt_kms::Credential::new("carol", "not-carols-password");
    not_authorised(f.kms.destroy_key(&wrong, &tac, "test").await);
    // An unknown name does not count.
    let mut stranger = creds(&["alice", "bob"]);
    stranger.push(ykt_kms::Credential::new("mallory", "mallory-passphrase"));
    not_authorised(f.kms.destroy_key(&stranger, &tac, "test").await);
    // A disabled officer does not count, and cannot approve their own disabling.
    not_authorised(
        f.kms
            .disable_officer(&creds(&["carol", "dave", "erin"]), "carol", "left")
            .await,
    );
    f.kms
        .disable_officer(
            &creds(&["alice", "bob", "dave"]),
            "carol",
            "left the bureau",
        )
        .await
        .unwrap();
    not_authorised(
        f.kms
            .transition(
                &creds(&["alice", "bob", "carol"]),
                &tac,
                KeyState::Deactivated,
                "test",
            )
            .await,
    );
    // A custody split never gives an officer two shares of a key.
    let twice = CustodySpec {
        threshold: 2,
        custodians: vec!["alice".into(), "bob".into(), "alice".into()],
    };
    let refused = f
        .kms
        .generate_key(
            &creds(&["alice", "bob", "dave"]),
            MASTER_TEMPLATES[0],
            KeyAlgorithm::Sm4,
            Scope::Bureau,
            Some(&twice),
        )
        .await;
    assert!(
        matches!(refused, Err(KmsError::InvalidInput { .. })),
        "{refused:?}"
    );
    // ... and the store itself refuses a second share row for the same officer.
    let dup = sqlx::query(
        "INSERT INTO custodians (key_id, officer, share_index, assigned_at) VALUES ($1, 'alice', 99, 0)",
    )
    .bind(&tac)
    .execute(f.kms.store().pool())
    .await;
    assert!(dup.is_err());
    assert_eq!(count(&f, "SELECT COUNT(*) FROM keys").await, before);
    let refusals = count(
        &f,
        "SELECT COUNT(*) FROM audit_log WHERE result LIKE 'refused%'",
    )
    .await;
    assert!(refusals >= 9, "{refusals} refusals audited");
    assert!(f.kms.verify_audit().await.unwrap().is_intact());
}

async fn lifecycle_refusals(f: Fixture) {
    school_tree(&f).await;
    for template in MASTER_TEMPLATES {
        generate(&f, template, KeyAlgorithm::Sm4).await;
    }
    let scope = Scope::School(SchoolCode::new(SCHOOL).unwrap());
    f.kms
        .generate_key(
            &creds(&["alice", "bob", "carol"]),
            TRANSPORT_TEMPLATE,
            KeyAlgorithm::Sm4,
            scope,
            None,
        )
        .await
        .unwrap();
    let three = creds(&["alice", "bob", "carol"]);
    // A pre-active key is backed up but unusable until the quorum activates it.
    let staged = f
        .kms
        .generate_key_in(
            &three,
            TRANSPORT_TEMPLATE,
            KeyAlgorithm::Aes256,
            Scope::School(SchoolCode::new(SCHOOL).unwrap()),
            None,
            KeyState::PreActive,
        )
        .await
        .unwrap();
    assert!(
        f.kms
            .wrapped(&staged.key_id, None, Purpose::Use)
            .await
            .is_err()
    );
    assert!(
        f.kms
            .transition(&creds(&["dave"]), &staged.key_id, KeyState::Active, "go")
            .await
            .is_err()
    );
    f.kms
        .transition(&three, &staged.key_id, KeyState::Active, "school ready")
        .await
        .unwrap();
    f.kms
        .wrapped(&staged.key_id, None, Purpose::Use)
        .await
        .unwrap();
    assert!(
        f.kms
            .generate_key_in(
                &three,
                TRANSPORT_TEMPLATE,
                KeyAlgorithm::Sm4,
                Scope::Bureau,
                None,
                KeyState::Suspended,
            )
            .await
            .is_err()
    );
    // Suspending is protective: one officer may. A suspended key cannot be used.
    f.kms
        .transition(
            &creds(&["dave"]),
            "tac-sm4",
            KeyState::Suspended,
            "terminal vendor incident",
        )
        .await
        .unwrap();
    let refused = f
        .kms
        .export_school_package(&three, SCHOOL, KeyAlgorithm::Sm4, KeyAlgorithm::Sm4)
        .await;
    assert!(
        matches!(refused, Err(KmsError::KeyState { .. })),
        "{refused:?}"
    );
    assert!(f.kms.wrapped("tac-sm4", None, Purpose::Use).await.is_err());
    assert!(
        f.kms
            .wrapped("tac-sm4", None, Purpose::Verify)
            .await
            .is_err()
    );
    // Resuming needs the quorum.
    assert!(
        f.kms
            .transition(&creds(&["dave"]), "tac-sm4", KeyState::Active, "resolved")
            .await
            .is_err()
    );
    f.kms
        .transition(&three, "tac-sm4", KeyState::Active, "resolved")
        .await
        .unwrap();
    f.kms
        .export_school_package(&three, SCHOOL, KeyAlgorithm::Sm4, KeyAlgorithm::Sm4)
        .await
        .unwrap();
    // An active key cannot be destroyed; a deactivated one verifies old TACs only.
    assert!(matches!(
        f.kms.destroy_key(&three, "tac-sm4", "end of life").await,
        Err(KmsError::KeyState { .. })
    ));
    f.kms
        .transition(
            &three,
            "tac-sm4",
            KeyState::Deactivated,
            "replaced by the 2027 keys",
        )
        .await
        .unwrap();
    assert!(f.kms.wrapped("tac-sm4", None, Purpose::Use).await.is_err());
    let (_, old_blob) = f
        .kms
        .wrapped("tac-sm4", None, Purpose::Verify)
        .await
        .unwrap();
    assert!(f.kms.kcv("tac-sm4", None, None).await.unwrap().1.unwrap());
    assert!(
        f.kms
            .transition(&three, "tac-sm4", KeyState::Active, "undo")
            .await
            .is_err(),
        "deactivation is final"
    );
    // Destroyed: gone from the store and refused by the HSM, history kept.
    f.kms
        .destroy_key(&three, "tac-sm4", "end of life")
        .await
        .unwrap();
    let wrapped = count(
        &f,
        "SELECT COUNT(*) FROM key_versions WHERE key_id = 'tac-sm4' AND (wrapped IS NOT NULL OR custody_block IS NOT NULL)",
    )
    .await;
    assert_eq!(wrapped, 0);
    assert!(
        f.kms
            .wrapped("tac-sm4", None, Purpose::Verify)
            .await
            .is_err()
    );
    let in_hsm = ykt_kms::Hsm::kcv(&*f.hsm, &old_blob, ykt_crypto::KcvMethod::Cmac);
    assert!(in_hsm.is_err(), "the HSM still opens a destroyed key");
    let info = f.kms.key("tac-sm4").await.unwrap();
    assert_eq!(info.state, "destroyed");
    let states: Vec<_> = info.transitions.iter().map(|t| t.to.as_str()).collect();
    assert_eq!(
        states,
        ["active", "suspended", "active", "deactivated", "destroyed"]
    );
    assert!(
        info.transitions
            .iter()
            .all(|t| !t.reason.is_empty() && !t.actors.is_empty())
    );
    assert!(f.kms.verify_audit().await.unwrap().is_intact());
}

async fn relabelled_or_corrupted_blobs_are_refused(f: Fixture) {
    let id = generate(&f, MASTER_TEMPLATES[0], KeyAlgorithm::Sm4).await;
    assert!(f.kms.kcv(&id, None, None).await.unwrap().1.unwrap());
    let row = sqlx::query("SELECT attributes, wrapped FROM key_versions WHERE key_id = $1")
        .bind(&id)
        .fetch_one(f.kms.store().pool())
        .await
        .unwrap();
    let attributes: Vec<u8> = row.try_get("attributes").unwrap();
    let wrapped: Vec<u8> = row.try_get("wrapped").unwrap();
    // Re-labelled: the stored attributes say TAC instead of purchase.
    let tac = MASTER_TEMPLATES[2]
        .attributes(KeyAlgorithm::Sm4, 1)
        .unwrap();
    let set = |column: &'static str, value: Vec<u8>| {
        let pool = f.kms.store().pool().clone();
        let id = id.clone();
        async move {
            sqlx::query(&format!(
                "UPDATE key_versions SET {column} = $1 WHERE key_id = $2"
            ))
            .bind(value)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    set("attributes", tac.to_bytes().to_vec()).await;
    assert!(f.kms.kcv(&id, None, None).await.is_err());
    set("attributes", attributes).await;
    // Corrupted: one bit of the sealed bytes, anywhere.
    for position in [0, wrapped.len() / 2, wrapped.len() - 1] {
        let mut corrupted = wrapped.clone();
        corrupted[position] ^= 0x01;
        set("wrapped", corrupted).await;
        assert!(
            f.kms.kcv(&id, None, None).await.is_err(),
            "bit at {position}"
        );
    }
    set("wrapped", wrapped).await;
    assert!(f.kms.kcv(&id, None, None).await.unwrap().1.unwrap());
}

/// Runs `tamper` on the audit log, checks that verification reports `seq` first, then
/// restores the log from `saved`.
async fn tampered(f: &Fixture, tamper: &str, seq: u64) {
    let pool = f.kms.store().pool();
    sqlx::query(tamper).execute(pool).await.unwrap();
    let report = f.kms.verify_audit().await.unwrap();
    let fault = report.fault.expect("tampering not detected");
    assert_eq!(fault.seq, seq, "{tamper}: {fault:?}");
}

/// Replaces the whole audit log with `entries`, as a forger with write access would.
async fn write_log(f: &Fixture, entries: &[ykt_kms::audit::AuditEntry]) {
    let mut tx = f.kms.store().begin().await.unwrap();
    sqlx::query("DELETE FROM audit_log")
        .execute(&mut *tx)
        .await
        .unwrap();
    for e in entries {
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actors, act, object, result, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(e.seq as i64)
        .bind(e.at)
        .bind(&e.actors)
        .bind(&e.act)
        .bind(&e.object)
        .bind(&e.result)
        .bind(&e.detail)
        .bind(hex::decode(&e.prev_hash).unwrap())
        .bind(hex::decode(&e.hash).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Puts the saved log back and checks that it verifies again.
async fn restore(f: &Fixture, saved: &[ykt_kms::audit::AuditEntry]) {
    write_log(f, saved).await;
    assert!(f.kms.verify_audit().await.unwrap().is_intact());
}

async fn audit_tampering_is_detected(f: Fixture) {
    school_tree(&f).await;
    generate(&f, MASTER_TEMPLATES[0], KeyAlgorithm::Sm4).await;
    generate(&f, MASTER_TEMPLATES[1], KeyAlgorithm::Sm4).await;
    let saved = f.kms.audit_entries(0).await.unwrap();
    let last = saved.len() as u64;
    assert!(last >= 10);
    let report = f.kms.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, last);
    assert_eq!(report.last_checkpoint, last, "every act is signed");
    // A store-only act is chained at once and signed with the next act that has the HSM.
    let store_only = ykt_kms::Kms::store_only(f.kms.store().clone());
    store_only
        .add_region(&creds(&["erin"])[0], "330108", "Binjiang District")
        .await
        .unwrap();
    let report = f.kms.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.records, report.last_checkpoint), (last + 1, last));
    f.kms
        .set_alias(&creds(&["erin"])[0], "alias/purchase-live", "purchase-sm4")
        .await
        .unwrap();
    let report = f.kms.verify_audit().await.unwrap();
    assert_eq!(
        (report.records, report.last_checkpoint),
        (last + 2, last + 2)
    );
    let saved = f.kms.audit_entries(0).await.unwrap();
    let last = saved.len() as u64;
    // Edit one field of record 7.
    tampered(
        &f,
        "UPDATE audit_log SET result = 'ok' || '' || ' ' WHERE seq = 7",
        7,
    )
    .await;
    restore(&f, &saved).await;
    tampered(
        &f,
        "UPDATE audit_log SET actors = 'mallory' WHERE seq = 4",
        4,
    )
    .await;
    restore(&f, &saved).await;
    // Delete record 5.
    tampered(&f, "DELETE FROM audit_log WHERE seq = 5", 5).await;
    restore(&f, &saved).await;
    // Reorder: records 3 and 4 swap their sequence numbers.
    sqlx::query("UPDATE audit_log SET seq = -1 WHERE seq = 3")
        .execute(f.kms.store().pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET seq = 3 WHERE seq = 4")
        .execute(f.kms.store().pool())
        .await
        .unwrap();
    tampered(&f, "UPDATE audit_log SET seq = 4 WHERE seq = -1", 3).await;
    restore(&f, &saved).await;
    // Cut off the last record.
    tampered(
        &f,
        &format!("DELETE FROM audit_log WHERE seq = {last}"),
        last,
    )
    .await;
    restore(&f, &saved).await;
    // Remove one checkpoint, then all: the next checkpoint names the one before it.
    let pool = f.kms.store().pool().clone();
    let checkpoints = sqlx::query("SELECT seq FROM audit_checkpoints ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(checkpoints.len() >= 3);
    let middle: i64 = checkpoints[1].try_get("seq").unwrap();
    let first: i64 = checkpoints[0].try_get("seq").unwrap();
    let saved_checkpoints =
        sqlx::query("SELECT seq, hash, key_id, key_version, signature, at FROM audit_checkpoints")
            .fetch_all(&pool)
            .await
            .unwrap();
    tampered(
        &f,
        &format!("DELETE FROM audit_checkpoints WHERE seq = {middle}"),
        first as u64 + 1,
    )
    .await;
    tampered(&f, "DELETE FROM audit_checkpoints", 1).await;
    for row in &saved_checkpoints {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, key_id, key_version, signature, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(row.try_get::<i64, _>("seq").unwrap())
        .bind(row.try_get::<Vec<u8>, _>("hash").unwrap())
        .bind(row.try_get::<String, _>("key_id").unwrap())
        .bind(row.try_get::<i64, _>("key_version").unwrap())
        .bind(row.try_get::<Vec<u8>, _>("signature").unwrap())
        .bind(row.try_get::<i64, _>("at").unwrap())
        .execute(&pool)
        .await
        .unwrap();
    }
    assert!(f.kms.verify_audit().await.unwrap().is_intact());
    // A record edited after the last checkpoint is never signed by the next one.
    let store_only = ykt_kms::Kms::store_only(f.kms.store().clone());
    store_only
        .add_region(&creds(&["erin"])[0], "330109", "Xiaoshan District")
        .await
        .unwrap();
    let unsigned = f.kms.audit_entries(0).await.unwrap().len() as u64;
    sqlx::query(&format!(
        "UPDATE audit_log SET actors = 'mallory' WHERE seq = {unsigned}"
    ))
    .execute(&pool)
    .await
    .unwrap();
    assert!(matches!(
        f.kms.checkpoint().await,
        Err(KmsError::Corrupt(_))
    ));
    let report = f.kms.verify_audit().await.unwrap();
    assert_eq!(report.fault.map(|f| f.seq), Some(unsigned));
    let saved = f.kms.audit_entries(0).await.unwrap();
    let mut repaired = saved.clone();
    repaired.pop();
    write_log(&f, &repaired).await;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(unsigned as i64 - 1)
        .bind(hex::decode(&repaired.last().unwrap().hash).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    let saved = repaired;
    assert!(f.kms.verify_audit().await.unwrap().is_intact());
    // The anchor officers note outside the KMS.
    let before = f.kms.verify_audit().await.unwrap();
    let anchor_hash: [u8; 32] = hex::decode(before.last_checkpoint_hash.unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let anchor = (before.last_checkpoint, anchor_hash);
    assert!(
        f.kms
            .verify_audit_anchored(Some(anchor))
            .await
            .unwrap()
            .is_intact()
    );
    // Rewrite record 6 and re-chain every hash after it and the head: only the signed
    // checkpoints can tell, and they do.
    let mut forged = saved.clone();
    forged[5].result = "ok".into();
    forged[5].actors = "mallory".into();
    let mut prev = hex::decode(&forged[4].hash).unwrap();
    for entry in &mut forged[5..] {
        entry.prev_hash = hex::encode_upper(&prev);
        let hash = ykt_kms::audit::record_hash(&prev, entry);
        entry.hash = hex::encode_upper(hash);
        prev = hash.to_vec();
    }
    write_log(&f, &forged).await;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(prev)
        .execute(f.kms.store().pool())
        .await
        .unwrap();
    let report = f.kms.verify_audit().await.unwrap();
    let fault = report.fault.expect("a re-chained rewrite was not detected");
    assert!(fault.seq <= 6, "{fault:?}");
    assert!(fault.reason.contains("rewritten"), "{fault:?}");
    // A forger who can also make the KMS sign removes every checkpoint and lets the next
    // act sign the rewritten chain: it then verifies, except against the anchor.
    sqlx::query("DELETE FROM audit_checkpoints")
        .execute(&pool)
        .await
        .unwrap();
    f.kms
        .set_alias(&creds(&["erin"])[0], "alias/after-forgery", "purchase-sm4")
        .await
        .unwrap();
    assert!(f.kms.verify_audit().await.unwrap().is_intact());
    let anchored = f.kms.verify_audit_anchored(Some(anchor)).await.unwrap();
    let fault = anchored
        .fault
        .expect("the anchor did not catch the rewrite");
    assert!(fault.reason.contains("anchor"), "{fault:?}");
}

async fn bad_input_changes_nothing(f: Fixture) {
    let three = creds(&["alice", "bob", "carol"]);
    let keys = count(&f, "SELECT COUNT(*) FROM keys").await;
    let (mut parts, _) = components();
    // A component whose printed check value is wrong.
    parts[1].component = KeyComponent::new(&component(2)).with_expected_kcv(&[0, 0, 0]);
    let refused = f
        .kms
        .import_key(
            &three,
            MASTER_TEMPLATES[0],
            KeyAlgorithm::TripleDes,
            Scope::Bureau,
            &parts,
            None,
        )
        .await;
    assert!(matches!(refused, Err(KmsError::Hsm(_))), "{refused:?}");
    // The right components, but the expected key check value is wrong.
    let (parts, _) = components();
    let refused = f
        .kms
        .import_key(
            &three,
            MASTER_TEMPLATES[0],
            KeyAlgorithm::TripleDes,
            Scope::Bureau,
            &parts,
            Some("123456"),
        )
        .await;
    assert!(
        matches!(refused, Err(KmsError::InvalidInput { .. })),
        "{refused:?}"
    );
    // One component only; four components.
    for n in [1, 4] {
        let mut many: Vec<OfficerComponent> = parts.iter().cycle().take(n).cloned().collect();
        for (i, p) in many.iter_mut().enumerate() {
            p.officer = ALL[i].into();
        }
        let approvals = creds(&ALL[..n.max(3)]);
        let refused = f
            .kms
            .import_key(
                &approvals,
                MASTER_TEMPLATES[0],
                KeyAlgorithm::TripleDes,
                Scope::Bureau,
                &many,
                None,
            )
            .await;
        assert!(refused.is_err(), "{n} components accepted");
    }
    // A component from an officer who did not present credentials.
    let mut foreign = parts.clone();
    foreign[2].officer = "dave".into();
    assert!(
        f.kms
            .import_key(
                &three,
                MASTER_TEMPLATES[0],
                KeyAlgorithm::TripleDes,
                Scope::Bureau,
                &foreign,
                None
            )
            .await
            .is_err()
    );
    assert_eq!(count(&f, "SELECT COUNT(*) FROM keys").await, keys);
    // Custody recovery with too few shares leaves the stored key as it was.
    let report = f
        .kms
        .generate_key(
            &three,
            MASTER_TEMPLATES[1],
            KeyAlgorithm::Sm4,
            Scope::Bureau,
            Some(&custody(3, &ALL)),
        )
        .await
        .unwrap();
    let before = sqlx::query("SELECT wrapped FROM key_versions WHERE key_id = $1")
        .bind(&report.key_id)
        .fetch_one(f.kms.store().pool())
        .await
        .unwrap()
        .try_get::<Vec<u8>, _>("wrapped")
        .unwrap();
    let shares: Vec<_> = report
        .shares
        .iter()
        .take(2)
        .map(|s| ykt_hsm_sim::shamir::Share::parse(&s.text).unwrap())
        .collect();
    assert!(
        f.kms
            .recover_custody(&three, &report.key_id, 1, &shares)
            .await
            .is_err()
    );
    let after = sqlx::query("SELECT wrapped FROM key_versions WHERE key_id = $1")
        .bind(&report.key_id)
        .fetch_one(f.kms.store().pool())
        .await
        .unwrap()
        .try_get::<Vec<u8>, _>("wrapped")
        .unwrap();
    assert_eq!(before, after);
    // Malformed codes and names.
    let alice = &creds(&["alice"])[0];
    assert!(f.kms.add_region(alice, "33010", "x").await.is_err());
    assert!(f.kms.add_region(alice, "330106", " ").await.is_err());
    assert!(
        f.kms
            .add_school(alice, SCHOOL, "330106", "no such region")
            .await
            .is_err()
    );
    assert!(Template::named("purchase; DROP TABLE keys").is_err());
    // A key for a school that is not in the tree.
    let nowhere = Scope::School(SchoolCode::new("9999999999").unwrap());
    let refused = f
        .kms
        .generate_key(&three, TRANSPORT_TEMPLATE, KeyAlgorithm::Sm4, nowhere, None)
        .await;
    assert!(
        matches!(refused, Err(KmsError::NotFound { kind: "school", .. })),
        "{refused:?}"
    );
    assert_eq!(count(&f, "SELECT COUNT(*) FROM keys").await, keys + 1);
    assert!(f.kms.verify_audit().await.unwrap().is_intact());
}

async fn rotation_keeps_cards_on_old_versions_working(f: Fixture) {
    let three = creds(&["alice", "bob", "carol"]);
    let id = generate(&f, MASTER_TEMPLATES[0], KeyAlgorithm::Sm4).await;
    let (_, v1) = f.kms.wrapped(&id, None, Purpose::Use).await.unwrap();
    let rotated = f.kms.rotate_key(&three, &id).await.unwrap();
    assert_eq!(rotated.version, 2);
    assert_eq!(rotated.shares.len(), 5);
    let (current, v2) = f.kms.wrapped(&id, None, Purpose::Use).await.unwrap();
    assert_eq!(current, 2);
    assert_eq!(v2.attributes().version(), 2);
    assert_ne!(v1, v2);
    // Cards personalised with version 1 keep working until it is retired.
    let (_, still) = f.kms.wrapped(&id, Some(1), Purpose::Use).await.unwrap();
    assert_eq!(still, v1);
    assert!(
        f.kms
            .retire_version(&three, &id, 2, "current")
            .await
            .is_err()
    );
    f.kms
        .retire_version(&three, &id, 1, "all cards re-personalised")
        .await
        .unwrap();
    assert!(f.kms.wrapped(&id, Some(1), Purpose::Use).await.is_err());
    f.kms.wrapped(&id, Some(1), Purpose::Verify).await.unwrap();
    let info = f.kms.key(&id).await.unwrap();
    assert_eq!((info.current_version, info.min_version), (2, 2));
    // A retired version between active ones stays refused.
    f.kms.rotate_key(&three, &id).await.unwrap();
    f.kms.rotate_key(&three, &id).await.unwrap();
    f.kms
        .retire_version(&three, &id, 3, "batch recalled")
        .await
        .unwrap();
    assert!(f.kms.wrapped(&id, Some(3), Purpose::Use).await.is_err());
    f.kms.wrapped(&id, Some(2), Purpose::Use).await.unwrap();
    f.kms.wrapped(&id, Some(3), Purpose::Verify).await.unwrap();
    // Aliases follow the key.
    f.kms
        .set_alias(&creds(&["dave"])[0], "alias/purchase-current", &id)
        .await
        .unwrap();
    assert_eq!(f.kms.key("alias/purchase-current").await.unwrap().id, id);
    // Aliases have their own namespace: none can take a key ID's name.
    for shadow in [
        "purchase-sm4",
        "transport-sm4-2133010601",
        "alias/",
        "alias/a b",
    ] {
        assert!(
            f.kms
                .set_alias(&creds(&["dave"])[0], shadow, &id)
                .await
                .is_err(),
            "{shadow}"
        );
    }
    assert!(f.kms.key("alias/nothing").await.is_err());
    assert!(f.kms.verify_audit().await.unwrap().is_intact());
}

async fn custody_resplit_and_recovery(f: Fixture) {
    let three = creds(&["alice", "bob", "carol"]);
    let report = f
        .kms
        .generate_key(
            &three,
            MASTER_TEMPLATES[0],
            KeyAlgorithm::Sm4,
            Scope::Bureau,
            Some(&custody(2, &["alice", "bob", "carol"])),
        )
        .await
        .unwrap();
    let id = report.key_id.clone();
    let parse = |shares: &[ykt_kms::ceremony::IssuedShare]| -> Vec<ykt_hsm_sim::shamir::Share> {
        shares
            .iter()
            .map(|s| ykt_hsm_sim::shamir::Share::parse(&s.text).unwrap())
            .collect()
    };
    let old = parse(&report.shares);
    // Any two custodians' shares recover the key, with the stored check value.
    let kcv = f
        .kms
        .recover_custody(&three, &id, 1, &old[1..])
        .await
        .unwrap();
    assert_eq!(kcv, report.check);
    // A re-split needs two current custodians among the approvals.
    let outsiders = creds(&["carol", "dave", "erin"]);
    assert!(matches!(
        f.kms
            .resplit_custody(
                &outsiders,
                &id,
                &custody(3, &["bob", "carol", "dave", "erin"])
            )
            .await,
        Err(KmsError::NotAuthorised(_))
    ));
    let new = f
        .kms
        .resplit_custody(&three, &id, &custody(3, &["bob", "carol", "dave", "erin"]))
        .await
        .unwrap();
    assert_eq!(new.len(), 4);
    let info = f.kms.key(&id).await.unwrap();
    assert_eq!(info.custody, Some((3, 4)));
    assert_eq!(
        info.custodians
            .iter()
            .map(|(o, _)| o.as_str())
            .collect::<Vec<_>>(),
        ["bob", "carol", "dave", "erin"]
    );
    // The old shares open nothing any more; three of the new ones do, brought by custodians.
    let custodians = creds(&["bob", "carol", "dave"]);
    assert!(
        f.kms
            .recover_custody(&custodians, &id, 1, &old)
            .await
            .is_err()
    );
    let new = parse(&new);
    assert_eq!(
        f.kms
            .recover_custody(&custodians, &id, 1, &new[..3])
            .await
            .unwrap(),
        report.check
    );
    assert!(
        f.kms
            .recover_custody(&custodians, &id, 1, &new[..2])
            .await
            .is_err()
    );
    // Officers who are not enough of its custodians cannot recover it, even with shares.
    assert!(matches!(
        f.kms.recover_custody(&three, &id, 1, &new[..3]).await,
        Err(KmsError::NotAuthorised(_))
    ));
    assert!(f.kms.verify_audit().await.unwrap().is_intact());
}
