//! The acts of the API on both stores: signing calls committed in groups while officers act
//! at the same time, with every record signed by a checkpoint and the chain intact; a chain
//! altered since the last checkpoint is never signed by a group; and the key cache, which
//! follows this KMS's own acts at once and another process's within its lifetime.

mod support;

use std::sync::Arc;
use support::{Fixture, acts, creds};
use ykt_hsm_sim::KeyAlgorithm;
use ykt_kms::key_cache::KEY_CACHE_TTL;
use ykt_kms::model::{KeyState, Scope};
use ykt_kms::signing::{API_SIGNING_TEMPLATE, DEFAULT_SM2_ID, Signed};
use ykt_kms::{Kms, KmsError};

const KEY: &str = "api-signing-p256";
const CALLER: &str = "client:platform-1";

on_both_stores!(
    concurrent_calls_share_commits_and_every_record_is_signed,
    a_chain_altered_since_its_checkpoint_is_not_signed_by_a_group,
    the_key_cache_follows_key_state,
);

async fn with_signing_key(fixture: &Fixture) -> &Kms {
    fixture
        .kms
        .generate_key(
            &creds(&["alice", "bob", "carol"]),
            API_SIGNING_TEMPLATE,
            KeyAlgorithm::P256,
            Scope::Bureau,
            None,
        )
        .await
        .unwrap();
    &fixture.kms
}

async fn sign(kms: &Kms, message: &[u8]) -> Result<u8, KmsError> {
    kms.api_sign(CALLER, KEY, DEFAULT_SM2_ID, &[Signed::Message(message)])
        .await
        .map(|(version, _)| version)
}

async fn concurrent_calls_share_commits_and_every_record_is_signed(fixture: Fixture) {
    with_signing_key(&fixture).await;
    let kms = Arc::new(Kms::new(fixture.kms.store().clone(), fixture.hsm.clone()));
    let before = kms.verify_audit().await.unwrap();
    const CALLS: usize = 300;
    let mut tasks = tokio::task::JoinSet::new();
    for call in 0..CALLS {
        let kms = kms.clone();
        tasks.spawn(async move { sign(&kms, format!("message {call}").as_bytes()).await });
    }
    // Officers' acts commit and sign their own checkpoints in between.
    for (code, name) in [("330106", "Xihu"), ("330108", "Binjiang")] {
        let kms = kms.clone();
        tasks.spawn(async move {
            kms.add_region(&creds(&["erin"])[0], code, name)
                .await
                .map(|()| 0)
        });
    }
    while let Some(outcome) = tasks.join_next().await {
        outcome.unwrap().unwrap();
    }
    assert_eq!(acts(&kms, "api.sign").await, CALLS);
    assert_eq!(acts(&kms, "region.add").await, 2);
    let report = kms.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, before.records + CALLS as u64 + 2);
    assert_eq!(report.unsigned, 0, "every record is under a checkpoint");
    let checkpoints = report.checkpoints - before.checkpoints;
    assert!(
        checkpoints < CALLS as u64,
        "{CALLS} concurrent calls took {checkpoints} checkpoints: no group was shared"
    );
}

async fn a_chain_altered_since_its_checkpoint_is_not_signed_by_a_group(fixture: Fixture) {
    let kms = with_signing_key(&fixture).await;
    sign(kms, b"first").await.unwrap();
    // An act of a KMS without the HSM is chained, not yet signed; then its record is edited.
    Kms::store_only(kms.store().clone())
        .add_region(&creds(&["erin"])[0], "330106", "Xihu")
        .await
        .unwrap();
    let signed = kms.verify_audit().await.unwrap();
    assert!(signed.is_intact(), "{signed:?}");
    assert_eq!(signed.unsigned, 1);
    let altered = signed.records;
    sqlx::query("UPDATE audit_log SET object = 'region:330199' WHERE seq = $1")
        .bind(altered as i64)
        .execute(kms.store().pool())
        .await
        .unwrap();
    // The call stands, recorded, but no checkpoint signs over the edited record.
    sign(kms, b"second").await.unwrap();
    let report = kms.verify_audit().await.unwrap();
    assert_eq!(report.records, altered + 1);
    let last_signed: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM audit_checkpoints")
        .fetch_one(kms.store().pool())
        .await
        .unwrap();
    assert_eq!(last_signed as u64, signed.last_checkpoint);
    let fault = report.fault.expect("the edit is reported");
    assert_eq!(fault.seq, altered, "{fault:?}");
}

async fn the_key_cache_follows_key_state(fixture: Fixture) {
    let kms = with_signing_key(&fixture).await;
    let officer = creds(&["alice"]);
    let quorum = creds(&["alice", "bob", "carol"]);
    assert_eq!(sign(kms, b"cached").await.unwrap(), 1);
    // This KMS's own acts take effect on the next call.
    kms.transition(&officer, KEY, KeyState::Suspended, "inquiry")
        .await
        .unwrap();
    assert!(matches!(
        sign(kms, b"suspended").await,
        Err(KmsError::KeyState { .. })
    ));
    kms.transition(&quorum, KEY, KeyState::Active, "inquiry closed")
        .await
        .unwrap();
    assert_eq!(sign(kms, b"resumed").await.unwrap(), 1);
    kms.rotate_key(&quorum, KEY).await.unwrap();
    assert_eq!(sign(kms, b"rotated").await.unwrap(), 2);
    // Another process's suspension, on the same store, is seen once the cached entry expires.
    Kms::store_only(kms.store().clone())
        .transition(&officer, KEY, KeyState::Suspended, "inquiry")
        .await
        .unwrap();
    tokio::time::sleep(KEY_CACHE_TTL + std::time::Duration::from_millis(100)).await;
    assert!(matches!(
        sign(kms, b"suspended elsewhere").await,
        Err(KmsError::KeyState { .. })
    ));
    let report = kms.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
}
