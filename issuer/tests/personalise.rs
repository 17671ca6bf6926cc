//! Personalisation of virtual user cards and PSAMs through a lab KMS, then a load, a purchase
//! and clearing on them.

use ykt_apdu::{MemoryTransport, Transport};
use ykt_card_sim::{Card, Chip, ChipKind};
use ykt_issuer::lab::{LabBureau, chip_algorithm};
use ykt_issuer::personalise::Station;
use ykt_issuer::profile::{Algorithm, Profile, ProfileKind};
use ykt_kms::issuance::{BatchProfile, NewCard, NewPsams};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ykt-issuer-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blank_card_and_psam_are_personalised_and_verified() {
    let dir = temp_dir("one");
    let setup = LabBureau::create(&dir).await.unwrap();
    let kms = &setup.bureau.kms;
    for algorithm in [Algorithm::Sm4, Algorithm::TripleDes] {
        let profile = Profile::default_for(ProfileKind::UserCard, algorithm);
        let batch = kms
            .create_card_batch(
                "station:test",
                &BatchProfile {
                    name: profile.label(),
                    digest: profile.digest.clone(),
                    algorithm: algorithm.key_algorithm(),
                    templates: profile.profile.templates(),
                    valid_from: "20260901".into(),
                },
                &[NewCard {
                    school: "2133010601".into(),
                    card_type: "student".into(),
                    holder_name: "王小明".into(),
                    holder_number: format!("S{:?}", algorithm),
                    id_number: "11010519491231002X".into(),
                    expiry: "20320831".into(),
                }],
            )
            .await
            .unwrap();
        let cards = kms.batch_cards(&batch.id).await.unwrap();
        let chip = Chip {
            algorithm: chip_algorithm(algorithm.key_algorithm()),
            kind: ChipKind::UserCard,
        };
        let mut transport = MemoryTransport::new("virtual", Card::blank(chip).unwrap());
        transport.reset().unwrap();
        let mut session = transport.session().unwrap();
        let station = Station::new(kms, "station:test");
        let done = station
            .personalise(session.as_mut(), &cards[0].serial, &profile)
            .await
            .unwrap();
        println!("{algorithm:?} user card: {} APDUs", done.apdus);
        assert!(done.apdus <= 40, "{}", done.apdus);

        let psam_profile = Profile::default_for(ProfileKind::Psam, algorithm);
        let batch = kms
            .create_psam_batch(
                "station:test",
                &BatchProfile {
                    name: psam_profile.label(),
                    digest: psam_profile.digest.clone(),
                    algorithm: algorithm.key_algorithm(),
                    templates: psam_profile.profile.templates(),
                    valid_from: "20260901".into(),
                },
                &NewPsams {
                    school: "2133010601".into(),
                    vendor: "acme".into(),
                    count: 1,
                    expiry: "20360831".into(),
                },
            )
            .await
            .unwrap();
        let psams = kms.batch_cards(&batch.id).await.unwrap();
        let chip = Chip {
            algorithm: chip_algorithm(algorithm.key_algorithm()),
            kind: ChipKind::Psam,
        };
        let mut transport = MemoryTransport::new("virtual", Card::blank(chip).unwrap());
        transport.reset().unwrap();
        let mut session = transport.session().unwrap();
        let done = station
            .personalise(session.as_mut(), &psams[0].serial, &psam_profile)
            .await
            .unwrap();
        println!("{algorithm:?} PSAM: {} APDUs", done.apdus);
        println!("{}", done.transcript);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
