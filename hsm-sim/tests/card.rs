//! The HSM's WRITE KEY and external-authentication cryptograms accepted by a virtual FMCOS
//! card: the issuer drives the card, the HSM makes every cryptogram from the card's challenge,
//! and the key written is the one `ykt-crypto` derives independently.

use ykt_apdu::CardHandler;
use ykt_card_sim::{Card, CardAlgorithm, Chip, ChipKind, RandomSource};
use ykt_crypto::secure_messaging::external_auth_cryptogram;
use ykt_crypto::{Profile, SymmetricAlgorithm, SymmetricKey};
use ykt_hsm_sim::{
    Exportability, Hsm, KeyAlgorithm, KeyAttributes, KeyBlob, KeyComponent, KeyUsage, Lmk, Modes,
    WriteKeyRequest,
};

const ASN: [u8; 8] = [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18];
const SCHOOL: [u8; 8] = [0x51, 0x00, 0xFF, 0, 0, 0, 0, 0];
const AID: [u8; 9] = [0xA0, 0x00, 0x00, 0x00, 0x03, 0x86, 0x98, 0x07, 0x01];

/// Sends an APDU; returns data and status word.
fn send(card: &mut Card, command: &[u8]) -> (Vec<u8>, u16) {
    let response = card.handle(command);
    let (data, sw) = response.split_at(response.len() - 2);
    (data.to_vec(), u16::from_be_bytes([sw[0], sw[1]]))
}

fn ok(card: &mut Card, command: &[u8]) -> Vec<u8> {
    let (data, sw) = send(card, command);
    assert_eq!(sw, 0x9000, "{command:02X?}");
    data
}

fn apdu(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    [&[cla, ins, p1, p2, data.len() as u8][..], data].concat()
}

fn challenge(card: &mut Card, len: u8) -> Vec<u8> {
    ok(card, &[0x00, 0x84, 0x00, 0x00, len])
}

fn clear_key(algorithm: SymmetricAlgorithm, seed: u8) -> SymmetricKey {
    let bytes: Vec<u8> = (0..16u8)
        .map(|i| seed.wrapping_mul(31) ^ i.wrapping_mul(17))
        .collect();
    SymmetricKey::new(algorithm, &bytes).unwrap()
}

/// Imports a clear master key as two components.
fn import(hsm: &Hsm, key: &SymmetricKey, attributes: KeyAttributes) -> KeyBlob {
    let first = [0x3C; 16];
    let second: Vec<u8> = first
        .iter()
        .zip(key.expose_secret())
        .map(|(a, b)| a ^ b)
        .collect();
    hsm.form_key(
        attributes,
        &[KeyComponent::new(&first), KeyComponent::new(&second)],
    )
    .unwrap()
    .0
}

#[test]
fn a_card_accepts_the_hsm_cryptograms() {
    for (card_algorithm, algorithm, key_algorithm) in [
        (
            CardAlgorithm::TripleDes,
            SymmetricAlgorithm::TripleDes,
            KeyAlgorithm::TripleDes,
        ),
        (
            CardAlgorithm::Sm4,
            SymmetricAlgorithm::Sm4,
            KeyAlgorithm::Sm4,
        ),
    ] {
        let profile = Profile::for_algorithm(algorithm).unwrap();
        let hsm = Hsm::new(Lmk::generate().unwrap());
        let app_master_clear = clear_key(algorithm, 2);
        let external_master_clear = clear_key(algorithm, 9);
        let attributes = |usage, modes, exportability| {
            KeyAttributes::new(usage, key_algorithm, modes, exportability, 1).unwrap()
        };
        let app_master = import(
            &hsm,
            &app_master_clear,
            attributes(KeyUsage::AppMaster, Modes::DERIVE, Exportability::None),
        );
        let external_master = import(
            &hsm,
            &external_master_clear,
            attributes(
                KeyUsage::ExternalAuth,
                Modes::DERIVE,
                Exportability::DerivedOnly,
            ),
        );

        // Factory chip → MF and an application with its DF master key, written in clear as
        // a personalisation bureau's first step would (the test computes that card key).
        let chip = Chip {
            algorithm: card_algorithm,
            kind: ChipKind::UserCard,
        };
        let mut card = Card::manufacture(chip, &[0xFF; 16]).unwrap();
        card.set_random(RandomSource::seeded(7));
        assert!(!card.power_on().is_empty());
        ok(&mut card, &apdu(0x00, 0xA4, 0x00, 0x00, &[0x3F, 0x00]));
        let transport = SymmetricKey::new(algorithm, &[0xFF; 16]).unwrap();
        let c = challenge(&mut card, 8);
        ok(
            &mut card,
            &apdu(
                0x00,
                0x82,
                0x00,
                0x00,
                &external_auth_cryptogram(&transport, &c).unwrap(),
            ),
        );
        ok(&mut card, &[0x80, 0x0E, 0x00, 0x00, 0x00]);
        ok(
            &mut card,
            &apdu(
                0x80,
                0xE0,
                0x00,
                0x00,
                &[0x3F, 0x01, 0x00, 0x81, 0xF1, 0xFF, 0xFF],
            ),
        );
        let mf_master = clear_key(algorithm, 1);
        ok(
            &mut card,
            &apdu(
                0x80,
                0xD4,
                0x01,
                0x00,
                &[
                    &[0x39, 0xF0, 0xF1, 0x01, 0x33][..],
                    mf_master.expose_secret(),
                ]
                .concat(),
            ),
        );
        let df = [
            &[0x38, 0x0A, 0x00, 0xF1, 0xF1, 0x95, 0xFF, 0xFF][..],
            &AID[..],
        ]
        .concat();
        ok(&mut card, &apdu(0x80, 0xE0, 0x3F, 0x01, &df));
        ok(
            &mut card,
            &apdu(
                0x80,
                0xE0,
                0x00,
                0x00,
                &[0x3F, 0x02, 0x00, 0x95, 0xF0, 0xFF, 0xFF],
            ),
        );
        let card_app_master = profile.diversify(&app_master_clear, &ASN).unwrap();
        ok(
            &mut card,
            &apdu(
                0x80,
                0xD4,
                0x01,
                0x00,
                &[
                    &[0xF9, 0xF0, 0xF1, 0x01, 0x33][..],
                    card_app_master.expose_secret(),
                ]
                .concat(),
            ),
        );

        // External authentication with the card's DF master key, made by the HSM.
        let c = challenge(&mut card, 8);
        let cryptogram = hsm
            .external_auth_cryptogram(&app_master, &[ASN], &c)
            .unwrap();
        ok(&mut card, &apdu(0x00, 0x82, 0x00, 0x00, &cryptogram));

        // WRITE KEY: the card's external-auth key 39/01, derived school → card inside the
        // HSM and written under the card's DF master key with the card's challenge.
        let request = |challenge: &[u8]| {
            hsm.write_key_command(&WriteKeyRequest {
                key: &external_master,
                key_factors: &[SCHOOL, ASN],
                under: &app_master,
                under_factors: &[ASN],
                challenge,
                p1: 0x01,
                p2: 0x01,
                record_header: &[0x39, 0xF0, 0xF1, 0x01, 0x33],
            })
            .unwrap()
        };
        // A corrupted cryptogram is refused by the card.
        let c = challenge(&mut card, 4);
        let mut corrupted = request(&c);
        corrupted[6] ^= 0x01;
        assert_ne!(send(&mut card, &corrupted).1, 0x9000);
        let c = challenge(&mut card, 4);
        ok(&mut card, &request(&c));

        // The key written is the one ykt-crypto derives: the card authenticates with it.
        let expected = profile
            .diversify_path(&external_master_clear, &[SCHOOL, ASN])
            .unwrap();
        let c = challenge(&mut card, 8);
        ok(
            &mut card,
            &apdu(
                0x00,
                0x82,
                0x00,
                0x01,
                &external_auth_cryptogram(&expected, &c).unwrap(),
            ),
        );
        let c = challenge(&mut card, 8);
        let cryptogram = hsm
            .external_auth_cryptogram(&external_master, &[SCHOOL, ASN], &c)
            .unwrap();
        ok(&mut card, &apdu(0x00, 0x82, 0x00, 0x01, &cryptogram));
    }
}
