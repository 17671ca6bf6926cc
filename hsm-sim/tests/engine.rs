//! Every command of the engine, its attribute refusals, tampered blobs and the LMK ceremony.
//! MACs and TACs are checked against `ykt-crypto` computed independently from the same clear
//! test keys, which enter the HSM as components.

use std::sync::Arc;
use ykt_crypto::epurse::transaction_type;
use ykt_crypto::p256::{P256PublicKey, sha256};
use ykt_crypto::sm2::Sm2PublicKey;
use ykt_crypto::{
    CryptoError, Kcv, KcvMethod, Load, Profile, Purchase, SymmetricAlgorithm, SymmetricKey,
};
use ykt_hsm_sim::shamir::ShamirError;
use ykt_hsm_sim::{
    CeremonySecret, Exportability, GeneratedKey, Hsm, HsmError, KeyAlgorithm, KeyAttributes,
    KeyBlob, KeyCheck, KeyComponent, KeyUsage, Lmk, Modes, TacCheck, WriteKeyRequest,
};

const ASN: [u8; 8] = [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18];
const SCHOOL: [u8; 8] = [0x51, 0x00, 0xFF, 0, 0, 0, 0, 0];
const REGION: [u8; 8] = [0x20, 0x00, 0xFF, 0, 0, 0, 0, 0];

fn new_hsm() -> Hsm {
    Hsm::new(Lmk::generate().unwrap())
}

fn attrs(
    usage: KeyUsage,
    algorithm: KeyAlgorithm,
    modes: Modes,
    exportability: Exportability,
) -> KeyAttributes {
    KeyAttributes::new(usage, algorithm, modes, exportability, 1).unwrap()
}

fn clear_key(algorithm: SymmetricAlgorithm, seed: u8) -> SymmetricKey {
    let bytes: Vec<u8> = (0..algorithm.key_len() as u8)
        .map(|i| seed.wrapping_mul(29) ^ i.wrapping_mul(13))
        .collect();
    SymmetricKey::new(algorithm, &bytes).unwrap()
}

/// Imports a clear key as two components, each with its expected check value.
fn import(hsm: &Hsm, key: &SymmetricKey, attributes: KeyAttributes) -> KeyBlob {
    let first: Vec<u8> = (0..key.len() as u8)
        .map(|i| i.wrapping_mul(71) ^ 0x5C)
        .collect();
    let second: Vec<u8> = first
        .iter()
        .zip(key.expose_secret())
        .map(|(a, b)| a ^ b)
        .collect();
    let algorithm = key.algorithm();
    let components: Vec<KeyComponent> = [first, second]
        .iter()
        .map(|c| {
            let kcv = KeyComponent::new(c).kcv(algorithm).unwrap();
            KeyComponent::new(c).with_expected_kcv(kcv.value())
        })
        .collect();
    let (blob, kcvs) = hsm.form_key(attributes, &components).unwrap();
    assert_eq!(kcvs.combined, Kcv::of(key));
    assert_eq!(kcvs.components.len(), 2);
    blob
}

fn profile(algorithm: SymmetricAlgorithm) -> Profile {
    Profile::for_algorithm(algorithm).unwrap()
}

fn key_algorithm(algorithm: SymmetricAlgorithm) -> KeyAlgorithm {
    match algorithm {
        SymmetricAlgorithm::Sm4 => KeyAlgorithm::Sm4,
        _ => KeyAlgorithm::TripleDes,
    }
}

const CARD_ALGORITHMS: [SymmetricAlgorithm; 2] =
    [SymmetricAlgorithm::TripleDes, SymmetricAlgorithm::Sm4];

fn purchase(amount: u32, terminal_seq: u32) -> Purchase {
    Purchase {
        card_random: [1, 2, 3, 4],
        offline_seq: 7,
        amount,
        transaction_type: transaction_type::EP_PURCHASE,
        terminal_id: [1, 2, 3, 4, 5, 6],
        terminal_seq,
        date: [0x20, 0x26, 0x05, 0x01],
        time: [0x10, 0x20, 0x30],
    }
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, HsmError>) {
    assert!(
        matches!(result, Err(HsmError::Forbidden { .. })),
        "{result:?}"
    );
}

#[test]
fn generated_keys_carry_check_values_or_public_keys() {
    let hsm = new_hsm();
    for algorithm in [
        KeyAlgorithm::Sm4,
        KeyAlgorithm::TripleDes,
        KeyAlgorithm::Aes128,
        KeyAlgorithm::Aes256,
    ] {
        let a = attrs(
            KeyUsage::KeyEncryption,
            algorithm,
            Modes::ENCRYPT,
            Exportability::None,
        );
        let GeneratedKey { blob, check } = hsm.generate_key(a).unwrap();
        assert_eq!(blob.attributes(), &a);
        let kcv = hsm
            .kcv(
                &blob,
                KcvMethod::default_for(algorithm.symmetric().unwrap()),
            )
            .unwrap();
        assert_eq!(check, KeyCheck::Kcv(kcv));
        assert_eq!(
            hsm.kcv(&blob, KcvMethod::EncryptZeros)
                .unwrap()
                .value()
                .len(),
            3
        );
    }
    for algorithm in [KeyAlgorithm::Sm2, KeyAlgorithm::P256] {
        let a = attrs(
            KeyUsage::Signature,
            algorithm,
            Modes::SIGN,
            Exportability::None,
        );
        let GeneratedKey { blob, check } = hsm.generate_key(a).unwrap();
        assert_eq!(check, KeyCheck::PublicKey(hsm.public_key(&blob).unwrap()));
        forbidden(hsm.kcv(&blob, KcvMethod::Cmac));
    }
}

#[test]
fn signatures_verify_with_the_exported_public_key() {
    let hsm = new_hsm();
    let sm2 = hsm
        .generate_key(attrs(
            KeyUsage::Signature,
            KeyAlgorithm::Sm2,
            Modes::SIGN,
            Exportability::None,
        ))
        .unwrap()
        .blob;
    let id = b"bureau-audit@ykt";
    let signature = hsm.sign_sm2(&sm2, id, b"checkpoint 42").unwrap();
    let public = Sm2PublicKey::from_sec1(&hsm.public_key(&sm2).unwrap()).unwrap();
    public.verify(id, b"checkpoint 42", &signature).unwrap();
    assert!(
        public
            .verify(b"1234567812345678", b"checkpoint 42", &signature)
            .is_err()
    );

    let p256 = hsm
        .generate_key(attrs(
            KeyUsage::Signature,
            KeyAlgorithm::P256,
            Modes::SIGN,
            Exportability::None,
        ))
        .unwrap()
        .blob;
    let signature = hsm.sign_p256(&p256, b"blacklist v7").unwrap();
    let p256_public = P256PublicKey::from_sec1(&hsm.public_key(&p256).unwrap()).unwrap();
    p256_public.verify(b"blacklist v7", &signature).unwrap();

    // A digest computed outside signs as the message it was computed from.
    let e = public.digest(id, b"checkpoint 43").unwrap();
    let signature = hsm.sign_sm2_digest(&sm2, &e).unwrap();
    public.verify(id, b"checkpoint 43", &signature).unwrap();
    assert!(public.verify(id, b"checkpoint 42", &signature).is_err());
    assert!(
        public
            .verify(b"1234567812345678", b"checkpoint 43", &signature)
            .is_err()
    );
    let signature = hsm
        .sign_p256_digest(&p256, &sha256(b"blacklist v8"))
        .unwrap();
    p256_public.verify(b"blacklist v8", &signature).unwrap();
    assert!(p256_public.verify(b"blacklist v7", &signature).is_err());

    // Each signing command takes only its own algorithm.
    forbidden(hsm.sign_sm2(&p256, id, b"x"));
    forbidden(hsm.sign_p256(&sm2, b"x"));
    forbidden(hsm.sign_sm2_digest(&p256, &e));
    forbidden(hsm.sign_p256_digest(&sm2, &sha256(b"x")));
}

#[test]
fn keys_are_refused_for_what_their_attributes_forbid() {
    let hsm = new_hsm();
    let sm4 = KeyAlgorithm::Sm4;
    let purchase_key = hsm
        .generate_key(attrs(
            KeyUsage::Purchase,
            sm4,
            Modes::DERIVE | Modes::MAC,
            Exportability::UnderKek,
        ))
        .unwrap()
        .blob;
    // A purchase key cannot sign nor show a public key.
    forbidden(hsm.sign_sm2(&purchase_key, b"id", b"m"));
    forbidden(hsm.sign_sm2_digest(&purchase_key, &[0x5A; 32]));
    forbidden(hsm.sign_p256_digest(&purchase_key, &[0x5A; 32]));
    forbidden(hsm.public_key(&purchase_key));

    // A derive-only master cannot MAC: used directly (no factors) it is refused.
    let mlk = hsm
        .generate_key(attrs(
            KeyUsage::Load,
            sm4,
            Modes::DERIVE,
            Exportability::None,
        ))
        .unwrap()
        .blob;
    let load = Load {
        card_random: [0; 4],
        online_seq: 0,
        old_balance: 0,
        amount: 1,
        transaction_type: transaction_type::EP_LOAD,
        terminal_id: [0; 6],
        date: [0; 4],
        time: [0; 3],
    };
    forbidden(hsm.load_mac2(&mlk, &[], &load, &[0; 4]));
    // A MAC-only key cannot derive.
    let mac_only = hsm
        .generate_key(attrs(KeyUsage::Tac, sm4, Modes::MAC, Exportability::None))
        .unwrap()
        .blob;
    forbidden(hsm.verify_purchase_tac(&mac_only, &[ASN], &purchase(1, 1), &[0; 4]));
    forbidden(hsm.derive_key(
        &mac_only,
        &[ASN],
        attrs(KeyUsage::Tac, sm4, Modes::MAC, Exportability::None),
    ));
    // A load key is no TAC key, and a TAC key no load key.
    forbidden(hsm.verify_purchase_tac(&mlk, &[ASN], &purchase(1, 1), &[0; 4]));
    forbidden(hsm.load_mac2(&mac_only, &[], &load, &[0; 4]));
    // Derivation keeps the usage and algorithm and never widens exportability.
    forbidden(hsm.derive_key(
        &mlk,
        &[ASN],
        attrs(KeyUsage::Purchase, sm4, Modes::MAC, Exportability::None),
    ));
    forbidden(hsm.derive_key(
        &mlk,
        &[ASN],
        attrs(
            KeyUsage::Load,
            KeyAlgorithm::TripleDes,
            Modes::MAC,
            Exportability::None,
        ),
    ));
    forbidden(hsm.derive_key(
        &mlk,
        &[ASN],
        attrs(KeyUsage::Load, sm4, Modes::MAC, Exportability::DerivedOnly),
    ));
    // A derived-only master's derivatives may leave under a KEK (a school's package).
    let derived_only = hsm
        .generate_key(attrs(
            KeyUsage::Load,
            sm4,
            Modes::DERIVE,
            Exportability::DerivedOnly,
        ))
        .unwrap()
        .blob;
    let school_key = attrs(KeyUsage::Load, sm4, Modes::DERIVE, Exportability::UnderKek);
    assert!(hsm.derive_key(&derived_only, &[ASN], school_key).is_ok());
    forbidden(hsm.derive_key(&mlk, &[ASN], school_key));
    // Factor counts.
    assert!(matches!(
        hsm.derive_key(
            &mlk,
            &[],
            attrs(KeyUsage::Load, sm4, Modes::MAC, Exportability::None)
        ),
        Err(HsmError::FactorCount { actual: 0, .. })
    ));
    assert!(matches!(
        hsm.load_mac2(&mlk, &[ASN; 4], &load, &[0; 4]),
        Err(HsmError::FactorCount { actual: 4, .. })
    ));

    // A non-exportable key cannot be wrapped; a derived-only one only through factors.
    let app_master = hsm
        .generate_key(attrs(
            KeyUsage::AppMaster,
            sm4,
            Modes::DERIVE,
            Exportability::None,
        ))
        .unwrap()
        .blob;
    let request = |key: &KeyBlob, key_factors: &'static [[u8; 8]]| {
        hsm.write_key_command(&WriteKeyRequest {
            key,
            key_factors,
            under: &app_master,
            under_factors: &[ASN],
            challenge: &[1, 2, 3, 4],
            p1: 0x01,
            p2: 0x00,
            record_header: &[0x3F, 0xF0, 0xF1, 0x01, 0x04],
        })
    };
    forbidden(request(&mlk, &[ASN]));
    let exportable_mlk = hsm
        .generate_key(attrs(
            KeyUsage::Load,
            sm4,
            Modes::DERIVE,
            Exportability::DerivedOnly,
        ))
        .unwrap()
        .blob;
    assert!(request(&exportable_mlk, &[ASN]).is_ok());
    forbidden(request(&exportable_mlk, &[]));
    // The record's key type must be the key's: a load key is not written as a purchase key.
    forbidden(hsm.write_key_command(&WriteKeyRequest {
        key: &exportable_mlk,
        key_factors: &[ASN],
        under: &app_master,
        under_factors: &[ASN],
        challenge: &[1, 2, 3, 4],
        p1: 0x01,
        p2: 0x00,
        record_header: &[0x3E, 0xF0, 0xF1, 0x01, 0x04],
    }));
    // The app master is derive-only: it cannot encrypt an external-auth cryptogram itself.
    forbidden(hsm.external_auth_cryptogram(&app_master, &[], &[0; 8]));
    assert!(
        hsm.external_auth_cryptogram(&app_master, &[ASN], &[0; 8])
            .is_ok()
    );
}

#[test]
fn relabelled_and_corrupted_blobs_are_refused() {
    let hsm = new_hsm();
    let a = attrs(
        KeyUsage::Tac,
        KeyAlgorithm::TripleDes,
        Modes::DERIVE,
        Exportability::None,
    );
    let blob = hsm.generate_key(a).unwrap().blob;
    let record = purchase(100, 1);
    // Re-label: add the mac mode, widen exportability, change the usage or the version.
    for (offset, value) in [(3, 0x03), (4, 0x02), (1, 0x02), (5, 0x02)] {
        let mut bytes = blob.as_bytes().to_vec();
        bytes[offset] = value;
        let relabelled = KeyBlob::from_bytes(bytes).unwrap();
        assert_ne!(relabelled.attributes(), blob.attributes());
        let result = match offset {
            1 => hsm
                .load_mac2(
                    &relabelled,
                    &[ASN],
                    &Load {
                        card_random: [0; 4],
                        online_seq: 0,
                        old_balance: 0,
                        amount: 1,
                        transaction_type: 2,
                        terminal_id: [0; 6],
                        date: [0; 4],
                        time: [0; 3],
                    },
                    &[0; 4],
                )
                .map(|_| ()),
            3 => hsm.verify_purchase_tac(&relabelled, &[], &record, &[0; 4]),
            _ => hsm.verify_purchase_tac(&relabelled, &[ASN], &record, &[0; 4]),
        };
        assert!(
            matches!(result, Err(HsmError::BlobRejected)),
            "{offset}: {result:?}"
        );
    }
    // Corrupt the nonce, the ciphertext or the tag.
    for offset in [6, 20, blob.as_bytes().len() - 1] {
        let mut bytes = blob.as_bytes().to_vec();
        bytes[offset] ^= 0x01;
        let corrupted = KeyBlob::from_bytes(bytes).unwrap();
        assert!(matches!(
            hsm.kcv(&corrupted, KcvMethod::EncryptZeros),
            Err(HsmError::BlobRejected)
        ));
    }
    // A blob of another HSM (another LMK) does not open here.
    assert!(matches!(
        new_hsm().kcv(&blob, KcvMethod::EncryptZeros),
        Err(HsmError::BlobRejected)
    ));
    // Truncated or with an unknown format version: refused before decryption.
    assert!(matches!(
        KeyBlob::from_bytes(blob.as_bytes()[..30].to_vec()),
        Err(HsmError::MalformedBlob(_))
    ));
}

#[test]
fn form_key_refuses_a_component_with_the_wrong_check_value() {
    let hsm = new_hsm();
    let a = attrs(
        KeyUsage::Tac,
        KeyAlgorithm::Sm4,
        Modes::DERIVE,
        Exportability::None,
    );
    let good = KeyComponent::new(&[0x11; 16]);
    let kcv = good.kcv(SymmetricAlgorithm::Sm4).unwrap();
    let bad = KeyComponent::new(&[0x22; 16]).with_expected_kcv(kcv.value());
    assert!(matches!(
        hsm.form_key(a, &[good.clone().with_expected_kcv(kcv.value()), bad]),
        Err(HsmError::ComponentKcvMismatch { index: 2 })
    ));
    assert!(matches!(
        hsm.form_key(a, std::slice::from_ref(&good)),
        Err(HsmError::ComponentCount { actual: 1 })
    ));
    let signature = attrs(
        KeyUsage::Signature,
        KeyAlgorithm::Sm2,
        Modes::SIGN,
        Exportability::None,
    );
    forbidden(hsm.form_key(signature, &[good.clone(), good]));
}

#[test]
fn derived_blobs_hold_the_pboc_diversified_key() {
    let hsm = new_hsm();
    for algorithm in CARD_ALGORITHMS {
        let ka = key_algorithm(algorithm);
        let mtk = clear_key(algorithm, 3);
        let master = import(
            &hsm,
            &mtk,
            attrs(KeyUsage::Tac, ka, Modes::DERIVE, Exportability::DerivedOnly),
        );
        let school = attrs(
            KeyUsage::Tac,
            ka,
            Modes::DERIVE | Modes::MAC,
            Exportability::None,
        );
        let (school_blob, kcv) = hsm.derive_key(&master, &[REGION, SCHOOL], school).unwrap();
        let expected = profile(algorithm)
            .diversify_path(&mtk, &[REGION, SCHOOL])
            .unwrap();
        assert_eq!(kcv, Kcv::of(&expected));
        assert_eq!(
            hsm.kcv(&school_blob, KcvMethod::default_for(algorithm))
                .unwrap(),
            kcv
        );
        // The school key then serves its cards, and a card key kept as a blob MACs directly.
        let dtk = profile(algorithm).diversify(&expected, &ASN).unwrap();
        let record = purchase(250, 9);
        let tac = record.tac(profile(algorithm), &dtk).unwrap();
        hsm.verify_purchase_tac(&school_blob, &[ASN], &record, &tac)
            .unwrap();
        let (card_blob, _) = hsm
            .derive_key(
                &school_blob,
                &[ASN],
                attrs(KeyUsage::Tac, ka, Modes::MAC, Exportability::None),
            )
            .unwrap();
        hsm.verify_purchase_tac(&card_blob, &[], &record, &tac)
            .unwrap();
    }
}

#[test]
fn load_mac1_is_verified_and_mac2_matches_ykt_crypto() {
    let hsm = new_hsm();
    for algorithm in CARD_ALGORITHMS {
        let mlk = clear_key(algorithm, 2);
        let blob = import(
            &hsm,
            &mlk,
            attrs(
                KeyUsage::Load,
                key_algorithm(algorithm),
                Modes::DERIVE,
                Exportability::None,
            ),
        );
        let profile = profile(algorithm);
        let dlk = profile.diversify(&mlk, &ASN).unwrap();
        let load = Load {
            card_random: [0x9A, 0x1B, 0x2C, 0x3D],
            online_seq: 5,
            old_balance: 1000,
            amount: 5000,
            transaction_type: transaction_type::EP_LOAD,
            terminal_id: [0x11, 0x22, 0x33, 0x44, 0x55, 0x66],
            date: [0x20, 0x26, 0x05, 0x01],
            time: [0x12, 0x00, 0x00],
        };
        let session = load.session_key(profile, &dlk).unwrap();
        let mac1 = load.mac1(&session).unwrap();
        let mac2 = hsm.load_mac2(&blob, &[ASN], &load, &mac1).unwrap();
        assert_eq!(mac2, load.mac2(&session).unwrap());
        let mut bad = mac1;
        bad[0] ^= 1;
        assert!(matches!(
            hsm.load_mac2(&blob, &[ASN], &load, &bad),
            Err(HsmError::Crypto(CryptoError::Mismatch("MAC1")))
        ));
        // Another card's MAC1 does not pass for this one.
        assert!(hsm.load_mac2(&blob, &[SCHOOL], &load, &mac1).is_err());
    }
}

#[test]
fn tacs_are_verified_singly_and_in_batches() {
    let hsm = new_hsm();
    for algorithm in CARD_ALGORITHMS {
        let mtk = clear_key(algorithm, 7);
        let blob = import(
            &hsm,
            &mtk,
            attrs(
                KeyUsage::Tac,
                key_algorithm(algorithm),
                Modes::DERIVE,
                Exportability::None,
            ),
        );
        let profile = profile(algorithm);
        let cards: Vec<[[u8; 8]; 3]> = (0..6u8)
            .map(|i| {
                let mut asn = ASN;
                asn[7] = i;
                let mut school = SCHOOL;
                school[1] = i / 3; // two schools, three cards each
                [REGION, school, asn]
            })
            .collect();
        let records: Vec<Purchase> = (0..6u32).map(|i| purchase(100 + i, i)).collect();
        let mut tacs: Vec<[u8; 4]> = cards
            .iter()
            .zip(&records)
            .map(|(factors, record)| {
                let dtk = profile.diversify_path(&mtk, factors).unwrap();
                record.tac(profile, &dtk).unwrap()
            })
            .collect();
        hsm.verify_purchase_tac(&blob, &cards[0], &records[0], &tacs[0])
            .unwrap();
        assert!(matches!(
            hsm.verify_purchase_tac(&blob, &cards[1], &records[0], &tacs[0]),
            Err(HsmError::Crypto(CryptoError::Mismatch("TAC")))
        ));
        tacs[4][3] ^= 0x40;
        let checks: Vec<TacCheck<'_>> = (0..6)
            .map(|i| TacCheck {
                factors: &cards[i],
                purchase: &records[i],
                tac: &tacs[i],
            })
            .collect();
        assert_eq!(
            hsm.verify_purchase_tacs(&blob, &checks).unwrap(),
            [true, true, true, true, false, true]
        );
        assert!(hsm.verify_purchase_tacs(&blob, &[]).unwrap().is_empty());
        // One record with too many factors fails the batch before anything is checked.
        let too_deep = [ASN; 4];
        let mut bad = checks.clone();
        bad.push(TacCheck {
            factors: &too_deep,
            purchase: &records[0],
            tac: &tacs[0],
        });
        assert!(matches!(
            hsm.verify_purchase_tacs(&blob, &bad),
            Err(HsmError::FactorCount { actual: 4, .. })
        ));
    }
}

#[test]
fn lmk_ceremony_seal_unseal_and_custody_change() {
    let dir = std::env::temp_dir().join(format!("ykt-hsm-sim-lmk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lmk.sealed");
    let components = |seed: u8| -> Vec<KeyComponent> {
        (0..3u8)
            .map(|i| KeyComponent::new(&[seed.wrapping_add(i).wrapping_mul(37); 32]))
            .collect()
    };
    let (secret, kcvs) = CeremonySecret::from_components(&components(1)).unwrap();
    assert_eq!(kcvs.components.len(), 3);
    assert_eq!(kcvs.combined, secret.kcv());
    let lmk = Lmk::form(&secret).unwrap();
    assert_eq!(lmk.kcv(), secret.kcv());
    lmk.seal_to(&path, &secret).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The file never holds the LMK in clear.
    let file = std::fs::read(&path).unwrap();
    let lmk_bytes: Vec<u8> = (0..3u8)
        .map(|i| [1u8.wrapping_add(i).wrapping_mul(37); 32])
        .fold(vec![0u8; 32], |acc, c| {
            acc.iter().zip(c).map(|(a, b)| a ^ b).collect()
        });
    assert!(!file.windows(32).any(|w| w == lmk_bytes.as_slice()));

    let hsm = Hsm::new(lmk);
    let blob = hsm
        .generate_key(attrs(
            KeyUsage::Tac,
            KeyAlgorithm::Sm4,
            Modes::DERIVE,
            Exportability::None,
        ))
        .unwrap()
        .blob;
    let kcv = hsm.kcv(&blob, KcvMethod::Cmac).unwrap();

    // Restart: the officers re-enter their components.
    let (again, _) = CeremonySecret::from_components(&components(1)).unwrap();
    let restarted = Hsm::new(Lmk::unseal_from(&path, &again).unwrap());
    assert_eq!(restarted.lmk_kcv(), hsm.lmk_kcv());
    assert_eq!(restarted.kcv(&blob, KcvMethod::Cmac).unwrap(), kcv);

    // Wrong components are refused, they do not form another LMK.
    let (wrong, _) = CeremonySecret::from_components(&components(2)).unwrap();
    assert!(matches!(
        Lmk::unseal_from(&path, &wrong),
        Err(HsmError::LmkUnseal)
    ));

    // Custody change: the same LMK sealed under a Shamir-recombined secret.
    let shamir = CeremonySecret::from_bytes(&[0x42; 32]).unwrap();
    Lmk::unseal_from(&path, &again)
        .unwrap()
        .seal_to(&path, &shamir)
        .unwrap();
    assert!(Lmk::unseal_from(&path, &again).is_err());
    let custody = Hsm::new(Lmk::unseal_from(&path, &shamir).unwrap());
    assert_eq!(custody.kcv(&blob, KcvMethod::Cmac).unwrap(), kcv);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lmk_components_are_checked() {
    let component = KeyComponent::new(&[7; 32]);
    let kcv = component.kcv(SymmetricAlgorithm::Aes256).unwrap();
    let ok = [
        component.clone().with_expected_kcv(kcv.value()),
        KeyComponent::new(&[9; 32]),
    ];
    assert!(CeremonySecret::from_components(&ok).is_ok());
    let bad = [
        KeyComponent::new(&[9; 32]),
        component.with_expected_kcv(&[0; 5]),
    ];
    assert!(matches!(
        CeremonySecret::from_components(&bad),
        Err(HsmError::ComponentKcvMismatch { index: 2 })
    ));
    assert!(matches!(
        CeremonySecret::from_components(&[
            KeyComponent::new(&[1; 16]),
            KeyComponent::new(&[2; 16])
        ]),
        Err(HsmError::ComponentLength { index: 1, .. })
    ));
}

#[test]
fn random_and_sharing_between_threads() {
    let hsm = Arc::new(new_hsm());
    let blob = hsm
        .generate_key(attrs(
            KeyUsage::Tac,
            KeyAlgorithm::Sm4,
            Modes::MAC,
            Exportability::None,
        ))
        .unwrap()
        .blob;
    let kcv = hsm.kcv(&blob, KcvMethod::Cmac).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (hsm, blob) = (Arc::clone(&hsm), blob.clone());
            std::thread::spawn(move || hsm.kcv(&blob, KcvMethod::Cmac).unwrap())
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), kcv);
    }
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    hsm.random(&mut a).unwrap();
    hsm.random(&mut b).unwrap();
    assert_ne!(a, b);
}

#[test]
fn nothing_secret_in_debug_or_errors() {
    let hsm = new_hsm();
    let key = clear_key(SymmetricAlgorithm::Sm4, 0x5A);
    let blob = import(
        &hsm,
        &key,
        attrs(
            KeyUsage::Tac,
            KeyAlgorithm::Sm4,
            Modes::DERIVE,
            Exportability::None,
        ),
    );
    let hex_key: String = key
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let error = hsm
        .verify_purchase_tac(&blob, &[ASN], &purchase(1, 1), &[0; 4])
        .unwrap_err();
    for shown in [
        format!("{hsm:?}"),
        format!("{blob:?}"),
        format!("{error} {error:?}"),
    ] {
        assert!(!shown.to_uppercase().contains(&hex_key), "{shown}");
        assert!(
            !shown.contains(&format!("{:?}", key.expose_secret())),
            "{shown}"
        );
    }
}

fn destroyed<T: std::fmt::Debug>(result: Result<T, HsmError>) {
    assert!(matches!(result, Err(HsmError::Destroyed)), "{result:?}");
}

fn load(amount: u32) -> Load {
    Load {
        card_random: [0x9A, 0x1B, 0x2C, 0x3D],
        online_seq: 5,
        old_balance: 1000,
        amount,
        transaction_type: transaction_type::EP_LOAD,
        terminal_id: [0x11, 0x22, 0x33, 0x44, 0x55, 0x66],
        date: [0x20, 0x26, 0x05, 0x01],
        time: [0x12, 0x00, 0x00],
    }
}

/// A fresh directory under the system temporary directory.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ykt-hsm-sim-{name}-{}", std::process::id()));
    drop(std::fs::remove_dir_all(&dir));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn random_shares(secret: &[u8], threshold: u8, count: u8) -> Vec<ykt_hsm_sim::shamir::Share> {
    ykt_hsm_sim::shamir::split(secret, threshold, count, &mut |out| {
        ykt_crypto::random::fill(out).map_err(|_| ShamirError::Random)
    })
    .unwrap()
}

/// Every `k`-element subset of `0..n`, in lexicographic order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    (k - 1..n)
        .flat_map(|last| {
            subsets(last, k - 1).into_iter().map(move |mut s| {
                s.push(last);
                s
            })
        })
        .collect()
}

fn pick<T: Clone>(items: &[T], indexes: &[usize]) -> Vec<T> {
    indexes.iter().map(|&i| items[i].clone()).collect()
}

/// The keys of the destruction test: those destroyed and those left alone.
struct DestroyFixture {
    mtk: KeyBlob,
    mpk: KeyBlob,
    doomed_master: KeyBlob,
    doomed_kek: KeyBlob,
    sm2: KeyBlob,
    app_master: KeyBlob,
    kek: KeyBlob,
    live_mpk: KeyBlob,
    block_under_doomed_kek: ykt_hsm_sim::keyblock::KeyBlock,
    record: Purchase,
    tac: [u8; 4],
    load: Load,
    load_tac: [u8; 4],
}

const DESTROY_FACTORS: [[u8; 8]; 2] = [SCHOOL, ASN];

impl DestroyFixture {
    fn new(hsm: &Hsm) -> Self {
        let sm4 = KeyAlgorithm::Sm4;
        let generate = |usage, algorithm, modes, exportability| {
            hsm.generate_key(attrs(usage, algorithm, modes, exportability))
                .unwrap()
                .blob
        };
        let mtk_clear = clear_key(SymmetricAlgorithm::Sm4, 11);
        let mtk = import(
            hsm,
            &mtk_clear,
            attrs(
                KeyUsage::Tac,
                sm4,
                Modes::DERIVE | Modes::MAC,
                Exportability::None,
            ),
        );
        let kek = generate(
            KeyUsage::KeyEncryption,
            KeyAlgorithm::Aes256,
            Modes::ENCRYPT,
            Exportability::None,
        );
        let doomed_kek = generate(
            KeyUsage::KeyEncryption,
            KeyAlgorithm::Aes256,
            Modes::ENCRYPT,
            Exportability::None,
        );
        let live_mpk = generate(
            KeyUsage::Purchase,
            sm4,
            Modes::DERIVE,
            Exportability::UnderKek,
        );
        let profile = profile(SymmetricAlgorithm::Sm4);
        let dtk = profile
            .diversify_path(&mtk_clear, &DESTROY_FACTORS)
            .unwrap();
        let record = purchase(300, 4);
        let load = load(700);
        Self {
            tac: record.tac(profile, &dtk).unwrap(),
            load_tac: load.tac(profile, &dtk).unwrap(),
            record,
            load,
            block_under_doomed_kek: hsm.export_key(&live_mpk, &doomed_kek).unwrap(),
            mtk,
            mpk: generate(
                KeyUsage::Purchase,
                sm4,
                Modes::DERIVE,
                Exportability::UnderKek,
            ),
            doomed_master: generate(KeyUsage::AppMaster, sm4, Modes::DERIVE, Exportability::None),
            doomed_kek,
            sm2: generate(
                KeyUsage::Signature,
                KeyAlgorithm::Sm2,
                Modes::SIGN,
                Exportability::None,
            ),
            app_master: generate(KeyUsage::AppMaster, sm4, Modes::DERIVE, Exportability::None),
            kek,
            live_mpk,
        }
    }

    fn doomed(&self) -> [&KeyBlob; 5] {
        [
            &self.mtk,
            &self.mpk,
            &self.doomed_master,
            &self.doomed_kek,
            &self.sm2,
        ]
    }

    fn write_key(hsm: &Hsm, key: &KeyBlob, under: &KeyBlob) -> Result<Vec<u8>, HsmError> {
        hsm.write_key_command(&WriteKeyRequest {
            key,
            key_factors: &[ASN],
            under,
            under_factors: &[ASN],
            challenge: &[1, 2, 3, 4],
            p1: 0x01,
            p2: 0x00,
            record_header: &[0x3E, 0xF0, 0xF1, 0x01, 0x04],
        })
    }

    /// Every command given one of the doomed keys (all would succeed before destruction).
    fn uses_of_doomed_keys(&self, hsm: &Hsm) -> Vec<(&'static str, Result<(), HsmError>)> {
        let sm4 = KeyAlgorithm::Sm4;
        let check = TacCheck {
            factors: &DESTROY_FACTORS,
            purchase: &self.record,
            tac: &self.tac,
        };
        vec![
            ("kcv", hsm.kcv(&self.mtk, KcvMethod::Cmac).map(drop)),
            (
                "derive",
                hsm.derive_key(
                    &self.mtk,
                    &[SCHOOL],
                    attrs(KeyUsage::Tac, sm4, Modes::MAC, Exportability::None),
                )
                .map(drop),
            ),
            (
                "purchase TAC",
                hsm.verify_purchase_tac(&self.mtk, &DESTROY_FACTORS, &self.record, &self.tac),
            ),
            (
                "purchase TACs",
                hsm.verify_purchase_tacs(&self.mtk, &[check])
                    .map(|verdicts| assert_eq!(verdicts, [true])),
            ),
            (
                "load TAC",
                hsm.verify_load_tac(&self.mtk, &DESTROY_FACTORS, &self.load, &self.load_tac),
            ),
            (
                "custody split",
                hsm.custody_split(&self.mtk, 2, 3).map(|_| ()),
            ),
            ("export", hsm.export_key(&self.mpk, &self.kek).map(drop)),
            (
                "export under the KEK",
                hsm.export_key(&self.live_mpk, &self.doomed_kek).map(drop),
            ),
            (
                "import under the KEK",
                hsm.import_key(&self.block_under_doomed_kek, &self.doomed_kek)
                    .map(drop),
            ),
            (
                "WRITE KEY of the key",
                Self::write_key(hsm, &self.mpk, &self.app_master).map(drop),
            ),
            (
                "WRITE KEY under the key",
                Self::write_key(hsm, &self.live_mpk, &self.doomed_master).map(drop),
            ),
            (
                "external auth",
                hsm.external_auth_cryptogram(&self.doomed_master, &[ASN], &[0; 8])
                    .map(drop),
            ),
            ("sign", hsm.sign_sm2(&self.sm2, b"id", b"m").map(drop)),
            (
                "sign a digest",
                hsm.sign_sm2_digest(&self.sm2, &[0x5A; 32]).map(drop),
            ),
            ("public key", hsm.public_key(&self.sm2).map(drop)),
        ]
    }

    /// The keys left alone keep working.
    fn check_live_keys(&self, hsm: &Hsm) {
        hsm.kcv(&self.app_master, KcvMethod::Cmac).unwrap();
        hsm.kcv(&self.kek, KcvMethod::Cmac).unwrap();
        let block = hsm.export_key(&self.live_mpk, &self.kek).unwrap();
        let imported = hsm.import_key(&block, &self.kek).unwrap();
        assert_eq!(
            hsm.kcv(&imported, KcvMethod::Cmac).unwrap(),
            hsm.kcv(&self.live_mpk, KcvMethod::Cmac).unwrap()
        );
        Self::write_key(hsm, &self.live_mpk, &self.app_master).unwrap();
    }
}

#[test]
fn destroyed_keys_are_refused_by_every_command_and_after_a_restart() {
    let dir = temp_dir("destroyed");
    let path = dir.join("destroyed.log");
    let secret = CeremonySecret::from_bytes(&[0x37; 32]).unwrap();
    let hsm = Hsm::with_destroyed_log(Lmk::form(&secret).unwrap(), &path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let keys = DestroyFixture::new(&hsm);
    for (name, result) in keys.uses_of_doomed_keys(&hsm) {
        assert!(result.is_ok(), "{name} before destruction: {result:?}");
    }
    for key in keys.doomed() {
        hsm.destroy_key(key).unwrap();
    }
    let refused_everywhere = |hsm: &Hsm| {
        for (name, result) in keys.uses_of_doomed_keys(hsm) {
            assert!(
                matches!(result, Err(HsmError::Destroyed)),
                "{name}: {result:?}"
            );
        }
        // A byte-identical copy is the same blob.
        let copy = KeyBlob::from_bytes(keys.mtk.as_bytes().to_vec()).unwrap();
        destroyed(hsm.kcv(&copy, KcvMethod::EncryptZeros));
        keys.check_live_keys(hsm);
    };
    refused_everywhere(&hsm);
    // Destroying again, or destroying a copy, succeeds and records nothing new.
    hsm.destroy_key(&keys.mtk).unwrap();
    hsm.destroy_key(&KeyBlob::from_bytes(keys.sm2.as_bytes().to_vec()).unwrap())
        .unwrap();
    let log = std::fs::read_to_string(&path).unwrap();
    assert_eq!(log.lines().count(), keys.doomed().len());
    assert!(
        log.lines()
            .all(|line| line.len() == 56 && line.bytes().all(|b| b.is_ascii_hexdigit()))
    );

    // Restart with the same LMK and log: still refused.
    drop(hsm);
    let restarted = Hsm::with_destroyed_log(Lmk::form(&secret).unwrap(), &path).unwrap();
    refused_everywhere(&restarted);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), log);

    // An engine without a log remembers in memory only.
    let memory = Hsm::new(Lmk::form(&secret).unwrap());
    memory.kcv(&keys.mtk, KcvMethod::Cmac).unwrap();
    memory.destroy_key(&keys.mtk).unwrap();
    destroyed(memory.kcv(&keys.mtk, KcvMethod::Cmac));
    Hsm::new(Lmk::form(&secret).unwrap())
        .kcv(&keys.mtk, KcvMethod::Cmac)
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn destroying_a_foreign_or_corrupted_blob_is_refused_and_records_nothing() {
    let dir = temp_dir("destroy-foreign");
    let path = dir.join("destroyed.log");
    let hsm = Hsm::with_destroyed_log(Lmk::generate().unwrap(), &path).unwrap();
    let a = attrs(
        KeyUsage::Tac,
        KeyAlgorithm::Sm4,
        Modes::MAC,
        Exportability::None,
    );
    let foreign = new_hsm().generate_key(a).unwrap().blob;
    assert!(matches!(
        hsm.destroy_key(&foreign),
        Err(HsmError::BlobRejected)
    ));
    let own = hsm.generate_key(a).unwrap().blob;
    let kcv = hsm.kcv(&own, KcvMethod::Cmac).unwrap();
    for offset in [3, 6, 30, own.as_bytes().len() - 1] {
        let mut bytes = own.as_bytes().to_vec();
        bytes[offset] ^= 0x01;
        let Ok(edited) = KeyBlob::from_bytes(bytes) else {
            continue;
        };
        assert!(matches!(
            hsm.destroy_key(&edited),
            Err(HsmError::BlobRejected)
        ));
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    assert_eq!(hsm.kcv(&own, KcvMethod::Cmac).unwrap(), kcv);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn destroyed_log_records_are_checked_when_opened() {
    let dir = temp_dir("destroyed-log");
    let path = dir.join("destroyed.log");
    let secret = CeremonySecret::from_bytes(&[0x51; 32]).unwrap();
    let a = attrs(
        KeyUsage::Tac,
        KeyAlgorithm::Sm4,
        Modes::MAC,
        Exportability::None,
    );
    let hsm = Hsm::with_destroyed_log(Lmk::form(&secret).unwrap(), &path).unwrap();
    let first = hsm.generate_key(a).unwrap().blob;
    let second = hsm.generate_key(a).unwrap().blob;
    hsm.destroy_key(&first).unwrap();
    drop(hsm);
    let record_len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(record_len, 57);

    // A record cut short by a crash is dropped; the complete one still counts.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut file, b"0123ABCD").unwrap();
    drop(file);
    let hsm = Hsm::with_destroyed_log(Lmk::form(&secret).unwrap(), &path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), record_len);
    destroyed(hsm.kcv(&first, KcvMethod::Cmac));
    hsm.destroy_key(&second).unwrap();
    drop(hsm);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * record_len);
    let hsm = Hsm::with_destroyed_log(Lmk::form(&secret).unwrap(), &path).unwrap();
    destroyed(hsm.kcv(&first, KcvMethod::Cmac));
    destroyed(hsm.kcv(&second, KcvMethod::Cmac));
    drop(hsm);

    // Any complete line that is not a record refuses the file.
    let good = std::fs::read_to_string(&path).unwrap();
    for bad in [
        format!("{good}not a record\n"),
        format!("{}{}", good.to_lowercase(), good),
        format!("\n{good}"),
        format!("{}\n", &good[..60]),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let refused = Hsm::with_destroyed_log(Lmk::form(&secret).unwrap(), &path);
        assert!(
            matches!(refused, Err(HsmError::DestroyedLog(_))),
            "{bad:?}: {refused:?}"
        );
    }
    // A log that cannot be opened is refused too.
    assert!(matches!(
        Hsm::with_destroyed_log(Lmk::form(&secret).unwrap(), &dir.join("missing/log")),
        Err(HsmError::DestroyedLog(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keys_are_formed_from_any_threshold_of_their_shares() {
    let hsm = new_hsm();
    for (algorithm, attributes) in [
        (
            SymmetricAlgorithm::Sm4,
            attrs(
                KeyUsage::Tac,
                KeyAlgorithm::Sm4,
                Modes::DERIVE,
                Exportability::None,
            ),
        ),
        (
            SymmetricAlgorithm::TripleDes,
            attrs(
                KeyUsage::Load,
                KeyAlgorithm::TripleDes,
                Modes::DERIVE,
                Exportability::DerivedOnly,
            ),
        ),
        (
            SymmetricAlgorithm::Aes256,
            attrs(
                KeyUsage::KeyEncryption,
                KeyAlgorithm::Aes256,
                Modes::ENCRYPT,
                Exportability::None,
            ),
        ),
    ] {
        let key = clear_key(algorithm, 21);
        let expected = Kcv::of(&key);
        let shares = random_shares(key.expose_secret(), 3, 5);
        let mut quorums = subsets(5, 3);
        quorums.extend(subsets(5, 4));
        quorums.push((0..5).collect());
        for quorum in quorums {
            let (blob, kcv) = hsm
                .form_key_from_shares(attributes, &pick(&shares, &quorum))
                .unwrap();
            assert_eq!(kcv, expected, "{quorum:?}");
            assert_eq!(blob.attributes(), &attributes);
            assert_eq!(
                hsm.kcv(&blob, KcvMethod::default_for(algorithm)).unwrap(),
                expected
            );
        }
        assert!(matches!(
            hsm.form_key_from_shares(attributes, &shares[..2]),
            Err(HsmError::Share(ShamirError::NotEnoughShares {
                given: 2,
                threshold: 3
            }))
        ));
        // A tampered share: caught by the extra shares, or by the check value.
        let mut value = shares[1].value().to_vec();
        // Distinct changes in four bytes: not all of them DES parity bits.
        for (i, byte) in value.iter_mut().take(4).enumerate() {
            *byte ^= 0x11 * (i as u8 + 1);
        }
        let tampered =
            ykt_hsm_sim::shamir::Share::new(shares[1].index(), shares[1].threshold(), value.into())
                .unwrap();
        let with_tampered = [shares[0].clone(), tampered, shares[2].clone()];
        let mut four = with_tampered.to_vec();
        four.push(shares[3].clone());
        assert!(matches!(
            hsm.form_key_from_shares(attributes, &four),
            Err(HsmError::Share(ShamirError::Inconsistent))
        ));
        let (_, kcv) = hsm
            .form_key_from_shares(attributes, &with_tampered)
            .unwrap();
        assert_ne!(kcv, expected);
        // As text, a mistyped digit is caught before the share reaches the HSM.
        let text = shares[1].to_text();
        let mut typo = text.to_string();
        let digit = if typo.as_bytes()[5] == b'0' { "1" } else { "0" };
        typo.replace_range(5..6, digit);
        assert_eq!(
            ykt_hsm_sim::shamir::Share::parse(&typo).unwrap_err(),
            ShamirError::Checksum
        );
        // Shares of a secret of another length.
        let other_len = if algorithm.key_len() == 16 { 32 } else { 16 };
        assert!(matches!(
            hsm.form_key_from_shares(attributes, &random_shares(&vec![7; other_len], 2, 2)),
            Err(HsmError::SharedSecretLength { expected, actual })
                if expected == algorithm.key_len() && actual == other_len
        ));
    }
    let signature = attrs(
        KeyUsage::Signature,
        KeyAlgorithm::Sm2,
        Modes::SIGN,
        Exportability::None,
    );
    forbidden(hsm.form_key_from_shares(signature, &random_shares(&[1; 32], 2, 2)));
}

/// What proves a key: its check value, or its public key.
fn proof(hsm: &Hsm, blob: &KeyBlob) -> KeyCheck {
    match blob.attributes().algorithm().symmetric() {
        Some(algorithm) => KeyCheck::Kcv(hsm.kcv(blob, KcvMethod::default_for(algorithm)).unwrap()),
        None => KeyCheck::PublicKey(hsm.public_key(blob).unwrap()),
    }
}

#[test]
fn custody_backups_recover_from_any_threshold_of_shares() {
    let hsm = new_hsm();
    let generate = |usage, algorithm, modes, exportability| {
        hsm.generate_key(attrs(usage, algorithm, modes, exportability))
            .unwrap()
            .blob
    };
    let kek = generate(
        KeyUsage::KeyEncryption,
        KeyAlgorithm::Aes256,
        Modes::ENCRYPT,
        Exportability::None,
    );
    let sm4_kek = generate(
        KeyUsage::KeyEncryption,
        KeyAlgorithm::Sm4,
        Modes::ENCRYPT,
        Exportability::None,
    );
    let tac_master = generate(
        KeyUsage::Tac,
        KeyAlgorithm::Sm4,
        Modes::DERIVE,
        Exportability::None,
    );
    let app_master = generate(
        KeyUsage::AppMaster,
        KeyAlgorithm::TripleDes,
        Modes::DERIVE,
        Exportability::DerivedOnly,
    );
    let keys = [
        tac_master.clone(),
        app_master.clone(),
        generate(
            KeyUsage::KeyEncryption,
            KeyAlgorithm::Aes256,
            Modes::DERIVE | Modes::ENCRYPT,
            Exportability::None,
        ),
        generate(
            KeyUsage::Purchase,
            KeyAlgorithm::Sm4,
            Modes::DERIVE,
            Exportability::UnderKek,
        ),
        generate(
            KeyUsage::Signature,
            KeyAlgorithm::Sm2,
            Modes::SIGN,
            Exportability::None,
        ),
        generate(
            KeyUsage::Signature,
            KeyAlgorithm::P256,
            Modes::SIGN,
            Exportability::None,
        ),
    ];
    let kek_attributes = attrs(
        KeyUsage::KeyEncryption,
        KeyAlgorithm::Aes256,
        Modes::ENCRYPT,
        Exportability::None,
    );
    for key in &keys {
        let custody = hsm.custody_split(key, 3, 5).unwrap();
        let header = custody.block.header();
        assert_eq!(header.kind(), ykt_hsm_sim::keyblock::BlockKind::Custody);
        assert!(custody.block.as_str().starts_with("20144"));
        assert_eq!(header.exportability(), key.attributes().exportability());
        assert_eq!(
            custody.shares.iter().map(|s| s.index()).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert!(custody.shares.iter().all(|s| s.threshold() == 3));
        let custody_kek = SymmetricKey::new(
            SymmetricAlgorithm::Aes256,
            &ykt_hsm_sim::shamir::combine(&custody.shares[..3]).unwrap(),
        )
        .unwrap();
        assert_eq!(custody.kek_kcv, Kcv::of(&custody_kek));
        let expected = proof(&hsm, key);
        let mut quorums = subsets(5, 3);
        quorums.push((0..5).collect());
        for quorum in quorums {
            let recovered = hsm
                .custody_recover(&custody.block, &pick(&custody.shares, &quorum))
                .unwrap();
            assert_eq!(recovered.attributes(), key.attributes(), "{quorum:?}");
            assert_eq!(proof(&hsm, &recovered), expected, "{quorum:?}");
            assert_ne!(recovered.as_bytes(), key.as_bytes());
        }
        // Fewer shares than the threshold.
        assert!(matches!(
            hsm.custody_recover(&custody.block, &custody.shares[1..3]),
            Err(HsmError::Share(ShamirError::NotEnoughShares { .. }))
        ));
        // A custody block is never imported, not even under a KEK formed from its shares.
        let (shared_kek, kcv) = hsm
            .form_key_from_shares(kek_attributes, &custody.shares[2..])
            .unwrap();
        assert_eq!(kcv, custody.kek_kcv);
        for kek in [&kek, &sm4_kek, &shared_kek] {
            forbidden(hsm.import_key(&custody.block, kek));
        }
        // Debug shows no share value.
        let shown = format!("{custody:?}");
        for share in &custody.shares {
            let hex: String = share.value().iter().map(|b| format!("{b:02X}")).collect();
            assert!(!shown.to_uppercase().contains(&hex), "{shown}");
            assert!(!shown.contains(&format!("{:?}", share.value())), "{shown}");
            assert!(!shown.contains(&share.to_text()[..9]), "{shown}");
        }
    }

    // Non-exportable masters are backed up, and stay non-exportable once recovered.
    for master in [&tac_master, &app_master] {
        forbidden(hsm.export_key(master, &kek));
        let custody = hsm.custody_split(master, 2, 2).unwrap();
        let recovered = hsm
            .custody_recover(&custody.block, &custody.shares)
            .unwrap();
        forbidden(hsm.export_key(&recovered, &kek));
    }

    // A recovered SM2 key signs for the original public key.
    let sm2 = &keys[4];
    let custody = hsm.custody_split(sm2, 2, 3).unwrap();
    let recovered = hsm
        .custody_recover(&custody.block, &custody.shares[1..])
        .unwrap();
    let signature = hsm.sign_sm2(&recovered, b"audit", b"day 1").unwrap();
    Sm2PublicKey::from_sec1(&hsm.public_key(sm2).unwrap())
        .unwrap()
        .verify(b"audit", b"day 1", &signature)
        .unwrap();

    // Shares of another split give another KEK: the block's MAC fails.
    let first = hsm.custody_split(&tac_master, 3, 5).unwrap();
    let second = hsm.custody_split(&tac_master, 3, 5).unwrap();
    let mixed = [
        first.shares[0].clone(),
        first.shares[1].clone(),
        second.shares[2].clone(),
    ];
    assert!(matches!(
        hsm.custody_recover(&first.block, &mixed),
        Err(HsmError::KeyBlockRejected)
    ));
    assert!(matches!(
        hsm.custody_recover(&second.block, &first.shares[..3]),
        Err(HsmError::KeyBlockRejected)
    ));
    // Shares of another secret length.
    assert!(matches!(
        hsm.custody_recover(&first.block, &random_shares(&[9; 16], 2, 2)),
        Err(HsmError::SharedSecretLength {
            expected: 32,
            actual: 16
        })
    ));

    // An export block is not recovered, even with shares of its KEK.
    let shares = random_shares(&[0x6B; 32], 3, 5);
    let (shared_kek, _) = hsm
        .form_key_from_shares(kek_attributes, &shares[..3])
        .unwrap();
    let block = hsm.export_key(&keys[3], &shared_kek).unwrap();
    forbidden(hsm.custody_recover(&block, &shares[..3]));
    let imported = hsm.import_key(&block, &shared_kek).unwrap();
    assert_eq!(proof(&hsm, &imported), proof(&hsm, &keys[3]));

    // Parameters.
    for (threshold, count) in [(1, 3), (0, 2), (4, 3), (2, 17), (17, 17), (0, 0)] {
        assert!(
            matches!(
                hsm.custody_split(&tac_master, threshold, count),
                Err(HsmError::CustodyParameters { threshold: t, count: c })
                    if (t, c) == (threshold, count)
            ),
            "{threshold} of {count}"
        );
    }
    let custody = hsm.custody_split(&tac_master, 16, 16).unwrap();
    assert_eq!(custody.shares.len(), 16);
    assert_eq!(
        proof(
            &hsm,
            &hsm.custody_recover(&custody.block, &custody.shares)
                .unwrap()
        ),
        proof(&hsm, &tac_master)
    );
    assert!(matches!(
        hsm.custody_recover(&custody.block, &[]),
        Err(HsmError::Share(ShamirError::NoShares))
    ));
    // A blob of another HSM is not backed up.
    assert!(matches!(
        new_hsm().custody_split(&tac_master, 2, 3),
        Err(HsmError::BlobRejected)
    ));
}

#[test]
fn load_tacs_are_verified_against_ykt_crypto() {
    let hsm = new_hsm();
    for algorithm in CARD_ALGORITHMS {
        let ka = key_algorithm(algorithm);
        let mtk = clear_key(algorithm, 13);
        let blob = import(
            &hsm,
            &mtk,
            attrs(KeyUsage::Tac, ka, Modes::DERIVE, Exportability::None),
        );
        let profile = profile(algorithm);
        let factors = [REGION, SCHOOL, ASN];
        let dtk = profile.diversify_path(&mtk, &factors).unwrap();
        let record = load(5000);
        let tac = record.tac(profile, &dtk).unwrap();
        hsm.verify_load_tac(&blob, &factors, &record, &tac).unwrap();
        for bit in 0..32 {
            let mut flipped = tac;
            flipped[bit / 8] ^= 0x80 >> (bit % 8);
            assert!(
                matches!(
                    hsm.verify_load_tac(&blob, &factors, &record, &flipped),
                    Err(HsmError::Crypto(CryptoError::Mismatch("TAC")))
                ),
                "bit {bit}"
            );
        }
        // Another card's key or another amount: refused.
        assert!(
            hsm.verify_load_tac(&blob, &[REGION, SCHOOL, SCHOOL], &record, &tac)
                .is_err()
        );
        assert!(
            hsm.verify_load_tac(&blob, &factors, &load(5001), &tac)
                .is_err()
        );
        // The card's DTK kept as a blob verifies directly.
        let (card, _) = hsm
            .derive_key(
                &blob,
                &factors,
                attrs(KeyUsage::Tac, ka, Modes::MAC, Exportability::None),
            )
            .unwrap();
        hsm.verify_load_tac(&card, &[], &record, &tac).unwrap();
        // Attribute and factor refusals are those of the purchase TAC.
        forbidden(hsm.verify_load_tac(&blob, &[], &record, &tac));
        let mlk = import(
            &hsm,
            &mtk,
            attrs(KeyUsage::Load, ka, Modes::DERIVE, Exportability::None),
        );
        forbidden(hsm.verify_load_tac(&mlk, &factors, &record, &tac));
        assert!(matches!(
            hsm.verify_load_tac(&blob, &[ASN; 4], &record, &tac),
            Err(HsmError::FactorCount { actual: 4, .. })
        ));
    }
}
