//! Published real-card traces replayed against virtual chips personalised with the same keys:
//! the responses must be byte-identical.

mod common;

use common::*;
use ykt_apdu::CardHandler;
use ykt_card_sim::{Card, CardAlgorithm, Chip, ChipKind, RandomSource};
use ykt_crypto::{Profile, Purchase, SymmetricAlgorithm, SymmetricKey};
use ykt_test_vectors::VectorFile;

fn chip(kind: ChipKind) -> Chip {
    Chip {
        algorithm: CardAlgorithm::TripleDes,
        kind,
    }
}

fn factory(kind: ChipKind) -> Terminal {
    let mut t = Terminal::new(Card::manufacture(chip(kind), &[0xFF; 8]).unwrap());
    t.card.set_random(RandomSource::seeded(3));
    t.card.power_on();
    t
}

/// deng214: INITIALIZE FOR LOAD / CREDIT FOR LOAD, then INITIALIZE FOR PURCHASE / DEBIT on the
/// same card (the purchase trace starts from the loaded balance).
#[test]
fn deng214_load_and_purchase_are_byte_identical() {
    let loads = VectorFile::load("pboc_epurse_load.json").unwrap();
    let l = loads.vector("load-card-trace-deng214").unwrap();
    let purchases = VectorFile::load("pboc_epurse_purchase.json").unwrap();
    let p = purchases.vector("purchase-card-trace-deng214").unwrap();
    let key = l.hex("load_key_DLK").unwrap();
    assert_eq!(key, p.hex("purchase_key_DPK").unwrap());
    assert_eq!(key, l.hex("tac_key_DTK").unwrap());

    let mut t = factory(ChipKind::UserCard);
    let transport = SymmetricKey::new(SymmetricAlgorithm::Des, &[0xFF; 8]).unwrap();
    t.external_auth(&transport, 0);
    t.create(0x3F01, &[h("38 0800 F0 F0 95 FF FF"), h(AID)].concat());
    t.create(0x0000, &h("3F 0100 95 F0 FF FF"));
    for (kind, id, version) in [(0x3F, 0x01, 0x01), (0x3E, 0x00, 0x00), (0x34, 0x00, 0x00)] {
        let record = [&[kind, 0xF0, 0xF0, version, 0x00][..], &key].concat();
        t.ok(&apdu(0x80, 0xD4, 0x01, id, &record));
    }
    t.create(0x0018, &h("2E 0A 17 F0 EF FF FF"));
    t.create(0x0002, &h("2F 0208 F0 00 FF 18"));

    // Load: 805000020B 01 amount terminal 10 → balance seq 01 00 random MAC1.
    t.card.script_random(&l.hex("card_random").unwrap());
    let init = h(&format!(
        "805000020B01{}{}10",
        l.str("amount").unwrap(),
        l.str("terminal_id").unwrap()
    ));
    assert_eq!(
        hex::encode_upper(&init),
        "805000020B010000200000112233445510"
    );
    let expected = [
        l.hex("old_balance").unwrap(),
        l.hex("online_seq_before").unwrap(),
        h("0100"),
        l.hex("card_random").unwrap(),
        l.hex("mac1").unwrap(),
        h("9000"),
    ]
    .concat();
    assert_eq!(
        hex::encode_upper(t.card.handle(&init)),
        hex::encode_upper(expected)
    );
    let credit = [
        h("805200000B"),
        l.hex("host_date").unwrap(),
        l.hex("host_time").unwrap(),
        l.hex("mac2").unwrap(),
    ]
    .concat();
    assert_eq!(
        t.card.handle(&credit),
        [l.hex("tac").unwrap(), h("9000")].concat()
    );

    // Purchase: 805001020B 00 amount terminal → balance seq overdraft 00 00 random.
    t.card.script_random(&p.hex("card_random").unwrap());
    let init = h("805001020B0000000001001122334455");
    let expected = [
        h("00002000 0000 000000 00 00"),
        p.hex("card_random").unwrap(),
        h("9000"),
    ]
    .concat();
    assert_eq!(t.card.handle(&init), expected);
    let debit = h("805401000F0000000020161216134600D45737C508");
    assert_eq!(
        debit[9..16],
        [
            p.hex("terminal_date").unwrap(),
            p.hex("terminal_time").unwrap()
        ]
        .concat()
    );
    assert_eq!(
        t.card.handle(&debit),
        [p.hex("tac").unwrap(), p.hex("mac2").unwrap(), h("9000")].concat()
    );
    assert_eq!(t.balance(0x02), 0x2000 - 1);
}

/// B-olj2: external authentication with the transport key 8 × FF and an 8-byte challenge.
/// B-cmac: 84D4 adding external-authentication key 02 (type F9) under the master key 8 × FF.
#[test]
fn fmcos_external_auth_and_protected_write_key_traces() {
    let file = VectorFile::load("pboc_secure_messaging.json").unwrap();
    let ext = file.vector("external-auth-des-ff").unwrap();
    let wk = file.vector("fmcos-84D4-des-1").unwrap();
    let mut t = factory(ChipKind::UserCard);
    t.card.script_random(&ext.hex("challenge8").unwrap());
    assert_eq!(t.challenge(8), ext.hex("challenge8").unwrap());
    t.ok(&ext.hex("apdu").unwrap());

    t.card.script_random(&wk.hex("challenge4").unwrap());
    t.challenge(4);
    t.ok(&wk.hex("apdu").unwrap());
    // The new key works, and being F9 it can only be changed under 84D4.
    let record = wk.hex("plaintext_key_record").unwrap();
    let new_key = SymmetricKey::new(SymmetricAlgorithm::Des, &record[5..]).unwrap();
    t.external_auth(&new_key, 0x02);
    assert_eq!(t.sw(&apdu(0x80, 0xD4, 0x39, 0x02, &record)), 0x6900);
}

/// B-psam: a purchase master key (usage 22) loaded with 84D4 00 00 under the application master
/// key; the PSAM then makes MAC1 with it diversified by the card ASN.
#[test]
fn psam_write_key_trace_then_mac1() {
    let file = VectorFile::load("pboc_secure_messaging.json").unwrap();
    let v = file.vector("psam-84D4-3des").unwrap();
    let master = SymmetricKey::new(
        SymmetricAlgorithm::TripleDes,
        &v.hex("master_key_16").unwrap(),
    )
    .unwrap();
    let mut t = factory(ChipKind::Psam);
    let transport = SymmetricKey::new(SymmetricAlgorithm::Des, &[0xFF; 8]).unwrap();
    t.external_auth(&transport, 0);
    t.create(0x0016, &h("28 0006 F0 F0 FF FF"));
    t.ok(&apdu(0x00, 0xD6, 0x96, 0x00, &TERMINAL_ID));
    t.create(0x1001, &[h("38 0400 F0 F0 95 FF FF"), h(PSAM_AID)].concat());
    t.create(0x0000, &h("3F 0200 95 F0 FF FF"));
    t.ok(&apdu(
        0x80,
        0xD4,
        0x01,
        0x00,
        &[&h("39 F0 F0 01 33")[..], master.expose_secret()].concat(),
    ));
    t.card.script_random(&v.hex("iv").unwrap()[..4]);
    t.challenge(4);
    t.ok(&v.hex("apdu").unwrap());

    let asn = h("1122334455667788");
    let data = [
        h("01020304 0000 00000010 06 20260501 102030 00 00"),
        asn.clone(),
    ]
    .concat();
    let r = t.ok(&apdu_le(0x80, 0x70, 0x00, 0x00, &data, 0x08));
    let dpk = Profile::PbocDes
        .diversify(&master, &asn.try_into().unwrap())
        .unwrap();
    assert_eq!(
        hex::encode_upper(dpk.expose_secret()),
        "496BD7A3513644533100B54E71196528"
    );
    let purchase = Purchase {
        card_random: [1, 2, 3, 4],
        offline_seq: 0,
        amount: 0x10,
        transaction_type: 0x06,
        terminal_id: TERMINAL_ID,
        terminal_seq: 0,
        date: DATE,
        time: TIME,
    };
    let session_key = purchase.session_key(Profile::PbocDes, &dpk).unwrap();
    assert_eq!(
        r,
        [&[0, 0, 0, 0][..], &purchase.mac1(&session_key).unwrap()].concat()
    );
    assert_eq!(t.sw(&h("807200000400000000")), 0x9302);
}
