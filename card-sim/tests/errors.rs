//! Error paths: every refusal answers its status word and leaves the persistent state as it
//! was; malformed and random APDUs never panic.

mod common;

use common::*;
use ykt_apdu::CardHandler;
use ykt_card_sim::CardAlgorithm;
use ykt_crypto::Load;
use ykt_crypto::secure_messaging::{external_auth_cryptogram, protect_command};

/// Sends `command`, expects `sw`, and checks the persistent state did not change.
fn refused(t: &mut Terminal, command: &[u8], sw: u16) {
    let before = t.card.state().to_vec();
    assert_eq!(t.sw(command), sw, "{}", hex::encode_upper(command));
    assert!(
        t.card.state() == before,
        "state changed by {}",
        hex::encode_upper(command)
    );
}

#[test]
fn transaction_errors_change_nothing() {
    for algorithm in [CardAlgorithm::TripleDes, CardAlgorithm::Sm4] {
        let keys = Keys::new(algorithm);
        let mut card = issue_user_card(&keys, 5);
        load(&mut card, &keys, 0x02, 100);

        // Wrong MAC2: 9302, balance and online serial unchanged.
        card.select_name(&h(AID));
        let init = [&[0x01][..], &50u32.to_be_bytes(), &TERMINAL_ID].concat();
        let r = card.ok(&apdu_le(0x80, 0x50, 0x00, 0x02, &init, 0x10));
        assert_eq!(r[4..6], [0, 1]);
        refused(
            &mut card,
            &apdu_le(0x80, 0x52, 0, 0, &[&DATE[..], &TIME, &[0; 4]].concat(), 4),
            0x9302,
        );
        // The INITIALIZE is used up.
        refused(&mut card, &apdu_le(0x80, 0x52, 0, 0, &[0; 11], 4), 0x6985);
        let r = card.ok(&apdu_le(0x80, 0x50, 0x00, 0x02, &init, 0x10));
        assert_eq!(
            (r[..4].to_vec(), r[4..6].to_vec()),
            (100u32.to_be_bytes().to_vec(), vec![0, 1])
        );
        // A MAC2 for another amount is refused too.
        let other = Load {
            card_random: r[8..12].try_into().unwrap(),
            online_seq: 1,
            old_balance: 100,
            amount: 51,
            transaction_type: 2,
            terminal_id: TERMINAL_ID,
            date: DATE,
            time: TIME,
        };
        let mac2 = other
            .mac2(&other.session_key(keys.profile, &keys.dlk).unwrap())
            .unwrap();
        refused(
            &mut card,
            &apdu_le(0x80, 0x52, 0, 0, &[&DATE[..], &TIME, &mac2].concat(), 4),
            0x9302,
        );

        // Insufficient balance, unknown key index, unknown purse.
        let init = [&[0x01][..], &101u32.to_be_bytes(), &TERMINAL_ID].concat();
        refused(
            &mut card,
            &apdu_le(0x80, 0x50, 0x01, 0x02, &init, 0x0F),
            0x9401,
        );
        let init = [&[0x07][..], &1u32.to_be_bytes(), &TERMINAL_ID].concat();
        refused(
            &mut card,
            &apdu_le(0x80, 0x50, 0x01, 0x02, &init, 0x0F),
            0x9403,
        );
        refused(
            &mut card,
            &apdu_le(0x80, 0x50, 0x01, 0x03, &init, 0x0F),
            0x6A86,
        );
        // Wrong MAC1 in DEBIT.
        let init = [&[0x01][..], &1u32.to_be_bytes(), &TERMINAL_ID].concat();
        card.ok(&apdu_le(0x80, 0x50, 0x01, 0x02, &init, 0x0F));
        refused(
            &mut card,
            &apdu_le(0x80, 0x54, 0x01, 0x00, &[0; 15], 8),
            0x9302,
        );
        assert_eq!(card.balance(0x02), 100);
        // Lengths, Le, P1P2, CLA, INS.
        refused(&mut card, &h("805C00020104"), 0x6700);
        refused(&mut card, &h("805C000202"), 0x6C04);
        refused(&mut card, &h("805C010204"), 0x6A86);
        refused(&mut card, &h("005C000204"), 0x6E00);
        refused(&mut card, &h("80CA000000"), 0x6D00);
        refused(&mut card, &h("B05C000204"), 0x6E00);
    }
}

#[test]
fn security_errors() {
    let keys = Keys::new(CardAlgorithm::TripleDes);
    let mut card = issue_user_card(&keys, 6);
    card.select_name(&h(AID));
    // 6A82, 6982 (write right F1 without authentication), 6900 (MAC-protected file written
    // plain), 6984 (no challenge), 6988 (wrong MAC).
    refused(&mut card, &h("00A40000020099"), 0x6A82);
    refused(&mut card, &apdu(0x00, 0xD6, 0x96, 0x00, &[1, 2]), 0x6982);
    card.external_auth(&keys.app_master, 0);
    refused(&mut card, &apdu(0x00, 0xD6, 0x95, 0x00, &[1, 2]), 0x6900);
    refused(
        &mut card,
        &apdu(0x04, 0xD6, 0x95, 0x00, &[1, 2, 3, 4, 5, 6]),
        0x6984,
    );
    let challenge = card.challenge(4);
    let mut good = protect_command(
        &keys.line,
        &challenge,
        [0x00, 0xD6, 0x95, 0x00],
        &[7; 2],
        false,
    )
    .unwrap();
    let last = good.len() - 1;
    good[last] ^= 1;
    refused(&mut card, &good, 0x6988);
    // A challenge is good for one command only.
    let challenge = card.challenge(4);
    let good = protect_command(
        &keys.line,
        &challenge,
        [0x00, 0xD6, 0x95, 0x00],
        &[7; 2],
        false,
    )
    .unwrap();
    card.ok(&good);
    refused(&mut card, &good, 0x6984);
    // The F9 master key cannot be modified in plain.
    let record = [
        &[0xF9, 0xF0, 0xF1, 0x01, 0x33][..],
        keys.app_master.expose_secret(),
    ]
    .concat();
    refused(&mut card, &apdu(0x80, 0xD4, 0x39, 0x00, &record), 0x6900);
    // Protected read of a file that allows plain reads only, and GET CHALLENGE lengths.
    refused(&mut card, &h("04B095000400000000"), 0x6900);
    refused(&mut card, &h("0084000005"), 0x6700);
    refused(&mut card, &h("0084000010"), 0x6700);

    // External-authentication key with 3 tries: 63C2, 63C1, 63C0, then 6983 even when right.
    for left in [2u16, 1, 0] {
        card.challenge(8);
        assert_eq!(
            card.sw(&apdu(0x00, 0x82, 0x00, 0x00, &[0; 8])),
            0x63C0 | left
        );
    }
    let challenge = card.challenge(8);
    let right = external_auth_cryptogram(&keys.app_master, &challenge).unwrap();
    refused(&mut card, &apdu(0x00, 0x82, 0x00, 0x00, &right), 0x6983);

    // PIN: wrong twice, right once (tries back), blocked after three, unblocked with 37.
    card.card.power_on();
    card.select_name(&h(AID));
    assert_eq!(card.sw(&apdu(0x00, 0x20, 0x00, 0x00, &[9, 9, 9])), 0x63C2);
    assert_eq!(card.sw(&apdu(0x00, 0x20, 0x00, 0x00, &[9, 9, 9])), 0x63C1);
    card.ok(&apdu(0x00, 0x20, 0x00, 0x00, &PIN));
    for left in [2u16, 1, 0] {
        assert_eq!(
            card.sw(&apdu(0x00, 0x20, 0x00, 0x00, &[9, 9, 9])),
            0x63C0 | left
        );
    }
    refused(&mut card, &apdu(0x00, 0x20, 0x00, 0x00, &PIN), 0x6983);
    refused(&mut card, &apdu(0x00, 0x20, 0x00, 0x00, &[1]), 0x6700);
    let challenge = card.challenge(4);
    let unblock = protect_command(
        &keys.unblock,
        &challenge,
        [0x84, 0x24, 0x00, 0x00],
        &[0x65, 0x43],
        true,
    )
    .unwrap();
    card.ok(&unblock);
    card.ok(&apdu(0x00, 0x20, 0x00, 0x00, &[0x65, 0x43]));
    // CHANGE PIN and RELOAD PIN (MAC under the folded reload key).
    card.ok(&apdu(0x80, 0x5E, 0x01, 0x00, &h("6543 FF 112233")));
    card.ok(&apdu(0x00, 0x20, 0x00, 0x00, &h("112233")));
    let fold = keys.profile.tac_key(&keys.reload).unwrap();
    let mac = ykt_crypto::PbocMac::new(&fold)
        .unwrap()
        .compute(&PIN)
        .first4();
    card.ok(&apdu(0x80, 0x5E, 0x00, 0x00, &[&PIN[..], &mac].concat()));
    card.ok(&apdu(0x00, 0x20, 0x00, 0x00, &PIN));
    assert_eq!(
        card.sw(&apdu(0x80, 0x5E, 0x00, 0x00, &[&PIN[..], &[0; 4]].concat())),
        0x63C2
    );
}

#[test]
fn psam_errors_and_cipher_data() {
    let keys = Keys::new(CardAlgorithm::Sm4);
    let mut psam = issue_psam(&keys, 8);
    psam.select_name(&h(PSAM_AID));
    let base = h("01020304 0000 00000010 06 20260501 102030 01 04");
    refused(&mut psam, &apdu_le(0x80, 0x70, 0, 0, &base, 8), 0x6700);
    refused(
        &mut psam,
        &apdu_le(0x80, 0x70, 0, 0, &[&base[..], &[0; 8 * 4]].concat(), 8),
        0x6700,
    );
    let mut wrong_version = [&base[..], &ASN].concat();
    wrong_version[18] = 9;
    refused(
        &mut psam,
        &apdu_le(0x80, 0x70, 0, 0, &wrong_version, 8),
        0x6A88,
    );
    refused(&mut psam, &h("807200000400000000"), 0x6985);
    // 801A/80FA with the level-1 encryption key and MAC key.
    let enc = keys.profile.diversify(&keys.psam_enc, &ASN).unwrap();
    psam.ok(&apdu(0x80, 0x1A, 0x27, 0x01, &ASN));
    let out = psam.ok(&apdu(0x80, 0xFA, 0x00, 0x00, &[0x11; 32]));
    let mut expected = vec![0x11; 32];
    ykt_crypto::BlockCipher::new(&enc)
        .encrypt_ecb(&mut expected)
        .unwrap();
    assert_eq!(out, expected);
    refused(&mut psam, &apdu(0x80, 0xFA, 0x05, 0x00, &[0; 32]), 0x6985);
    let mac_key = keys.profile.diversify(&keys.psam_mac, &ASN).unwrap();
    psam.ok(&apdu(0x80, 0x1A, 0x26, 0x01, &ASN));
    let iv = [0x42; 16];
    let out = psam.ok(&apdu(
        0x80,
        0xFA,
        0x05,
        0x00,
        &[&iv[..], b"transaction"].concat(),
    ));
    let mac = ykt_crypto::PbocMac::new(&mac_key)
        .unwrap()
        .compute_with_iv(&iv, b"transaction")
        .unwrap();
    assert_eq!(out, mac.first4());
    refused(&mut psam, &apdu(0x80, 0x1A, 0x22, 0x01, &ASN), 0x6985);
    // A user card does not know PSAM commands.
    let mut card = issue_user_card(&keys, 9);
    refused(
        &mut card,
        &apdu_le(0x80, 0x70, 0, 0, &[&base[..], &ASN].concat(), 8),
        0x6D00,
    );
}

/// A tiny deterministic generator for the random APDUs.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

#[test]
fn malformed_and_random_apdus_never_panic_and_errors_never_write() {
    let keys = Keys::new(CardAlgorithm::TripleDes);
    let mut card = issue_user_card(&keys, 10);
    card.select_name(&h(AID));
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    const CLA: [u8; 6] = [0x00, 0x04, 0x80, 0x84, 0x0C, 0xFF];
    const INS: [u8; 24] = [
        0xA4, 0xB0, 0xD6, 0xB2, 0xDC, 0xE2, 0x0E, 0xE0, 0x84, 0x82, 0x88, 0x20, 0x5E, 0x24, 0xD4,
        0x5C, 0x50, 0x52, 0x54, 0x5A, 0x70, 0x72, 0x1A, 0xFA,
    ];
    for round in 0..30_000 {
        let command: Vec<u8> = if round % 2 == 0 {
            let len = (rng.next() % 24) as usize;
            (0..len).map(|_| rng.byte()).collect()
        } else {
            // Well-formed headers of known commands with random parameters and lengths.
            let cla = CLA[(rng.next() % CLA.len() as u64) as usize];
            let ins = INS[(rng.next() % INS.len() as u64) as usize];
            let mut c = vec![cla, ins, rng.byte() % 4, rng.byte() % 0x20];
            match rng.next() % 4 {
                0 => {}
                1 => c.push(rng.byte()),
                n => {
                    let lc = (rng.next() % 40) as u8 + 1;
                    c.push(lc);
                    c.extend((0..lc).map(|_| rng.byte()));
                    if n == 3 {
                        c.push(rng.byte());
                    }
                }
            }
            c
        };
        let before = card.card.state().to_vec();
        let response = card.card.handle(&command);
        assert!(response.len() >= 2, "{}", hex::encode_upper(&command));
        let sw = u16::from_be_bytes([response[response.len() - 2], response[response.len() - 1]]);
        if sw != 0x9000 && sw & 0xFFF0 != 0x63C0 {
            assert!(
                card.card.state() == before,
                "{} -> {sw:04X} changed the state",
                hex::encode_upper(&command)
            );
        }
        if round % 1000 == 0 {
            card.card.power_on();
            card.select_name(&h(AID));
        }
    }
    // Still a working card.
    card.card.power_on();
    card.select_name(&h(AID));
    let _ = card.balance(0x02);
}
