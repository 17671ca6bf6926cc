//! Anti-tearing: power is lost at every write point of CREDIT FOR LOAD, DEBIT FOR PURCHASE and
//! a compound DEBIT in turn; after the next power-on the persisted state is exactly the old
//! one or exactly the new one, and balance and GET TRANSACTION PROVE agree with it.

mod common;

use common::*;
use ykt_apdu::CardHandler;
use ykt_card_sim::{Card, CardAlgorithm, RandomSource};
use ykt_crypto::{Load, Purchase};

/// A financial command: its preparation (no writes) and the final command.
struct Operation {
    name: &'static str,
    prepare: fn(&mut Terminal, &Keys) -> Vec<u8>,
    /// GET TRANSACTION PROVE for the transaction the operation makes.
    prove: &'static str,
}

fn prepare_load(card: &mut Terminal, keys: &Keys) -> Vec<u8> {
    let init = [&[0x01][..], &300u32.to_be_bytes(), &TERMINAL_ID].concat();
    let r = card.ok(&apdu_le(0x80, 0x50, 0x00, 0x02, &init, 0x10));
    let load = Load {
        card_random: r[8..12].try_into().unwrap(),
        online_seq: u16::from_be_bytes([r[4], r[5]]),
        old_balance: u32::from_be_bytes(r[..4].try_into().unwrap()),
        amount: 300,
        transaction_type: 2,
        terminal_id: TERMINAL_ID,
        date: DATE,
        time: TIME,
    };
    let mac2 = load
        .mac2(&load.session_key(keys.profile, &keys.dlk).unwrap())
        .unwrap();
    apdu_le(
        0x80,
        0x52,
        0x00,
        0x00,
        &[&DATE[..], &TIME, &mac2].concat(),
        0x04,
    )
}

fn debit(card: &mut Terminal, keys: &Keys, p1: u8, transaction_type: u8) -> Vec<u8> {
    let init = [&[0x01][..], &40u32.to_be_bytes(), &TERMINAL_ID].concat();
    let r = card.ok(&apdu_le(0x80, 0x50, p1, 0x02, &init, 0x0F));
    if p1 == 0x03 {
        card.ok(&apdu(0x80, 0xDC, 0x01, (0x19 << 3) | 4, &[0xC1; 16]));
        card.ok(&apdu(0x80, 0xDC, 0x02, (0x19 << 3) | 4, &[0xC2; 16]));
    }
    let purchase = Purchase {
        card_random: r[11..15].try_into().unwrap(),
        offline_seq: u16::from_be_bytes([r[4], r[5]]),
        amount: 40,
        transaction_type,
        terminal_id: TERMINAL_ID,
        terminal_seq: 7,
        date: DATE,
        time: TIME,
    };
    let mac1 = purchase
        .mac1(&purchase.session_key(keys.profile, &keys.dpk).unwrap())
        .unwrap();
    let data = [&7u32.to_be_bytes()[..], &DATE, &TIME, &mac1].concat();
    apdu_le(0x80, 0x54, 0x01, 0x00, &data, 0x08)
}

const OPERATIONS: [Operation; 3] = [
    Operation {
        name: "credit for load",
        prepare: prepare_load,
        prove: "805A000202000108",
    },
    Operation {
        name: "debit for purchase",
        prepare: |card, keys| debit(card, keys, 0x01, 0x06),
        prove: "805A000602000008",
    },
    Operation {
        name: "compound debit",
        prepare: |card, keys| debit(card, keys, 0x03, 0x09),
        prove: "805A000902000008",
    },
];

/// The card from `state`, in the ADF, with the same randoms every time.
fn reopen(state: &[u8]) -> Terminal {
    let mut t = Terminal::new(Card::from_state(state).unwrap());
    t.card.set_random(RandomSource::seeded(99));
    t.card.power_on();
    t.select_name(&h(AID));
    t
}

#[test]
fn power_loss_at_every_write_point_leaves_old_or_new_state() {
    let keys = Keys::new(CardAlgorithm::TripleDes);
    let mut issued = issue_user_card(&keys, 11);
    load(&mut issued, &keys, 0x02, 1_000);
    let old_state = issued.card.state().to_vec();

    for op in &OPERATIONS {
        // The reference run, without power loss.
        let mut reference = reopen(&old_state);
        let command = (op.prepare)(&mut reference, &keys);
        let response = reference.ok(&command);
        let new_state = reference.card.state().to_vec();
        let new_balance = reference.balance(0x02);
        let prove = reference.ok(&h(op.prove));
        assert_eq!(
            prove[4..],
            response[..4],
            "{}: proof carries the TAC",
            op.name
        );

        let (mut olds, mut news) = (0, 0);
        for n in 1.. {
            let mut t = reopen(&old_state);
            assert_eq!((op.prepare)(&mut t, &keys), command);
            t.card.lose_power_at_write(n);
            let answer = t.card.handle(&command);
            if !answer.is_empty() {
                assert_eq!(answer[..answer.len() - 2], response[..], "{}", op.name);
                assert!(n > 4, "{}: {} write points only", op.name, n - 1);
                break;
            }
            assert!(t.card.is_mute() && t.card.handle(&h("805C000204")).is_empty());
            assert!(!t.card.power_on().is_empty());
            let state = t.card.state().to_vec();
            t.select_name(&h(AID));
            if state == old_state {
                olds += 1;
                assert_eq!(t.balance(0x02), 1_000);
                assert_eq!(t.sw(&h(op.prove)), 0x9406, "{} at write {n}", op.name);
            } else {
                assert!(
                    state == new_state,
                    "{}: mixed state after power loss at write {n}",
                    op.name
                );
                news += 1;
                assert_eq!(t.balance(0x02), new_balance);
                assert_eq!(t.ok(&h(op.prove)), prove, "{} at write {n}", op.name);
            }
            // The reopened card is the same card: the same state survives another reload.
            assert!(Card::from_state(&state).unwrap().state() == state);
        }
        assert_eq!(
            olds, 1,
            "{}: only a loss at the journal write keeps the old state",
            op.name
        );
        assert!(news >= 3, "{}", op.name);
    }
}

#[test]
fn power_loss_with_a_state_file_recovers_on_open() {
    let keys = Keys::new(CardAlgorithm::Sm4);
    let mut issued = issue_user_card(&keys, 12);
    load(&mut issued, &keys, 0x02, 1_000);
    let dir = std::env::temp_dir().join(format!("ykt-card-sim-tearing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("card.json");
    std::fs::write(&path, issued.card.state()).unwrap();

    let mut t = Terminal::new(Card::open(&path).unwrap());
    t.card.set_random(RandomSource::seeded(99));
    t.card.power_on();
    t.select_name(&h(AID));
    let command = prepare_load(&mut t, &keys);
    t.card.lose_power_at_write(3);
    assert!(t.card.handle(&command).is_empty());
    drop(t);
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(on_disk.contains("\"journal\": {"), "the journal is on disk");

    let mut t = Terminal::new(Card::open(&path).unwrap());
    t.card.power_on();
    t.select_name(&h(AID));
    assert_eq!(t.balance(0x02), 1_300);
    assert_eq!(t.ok(&h("805A000202000108")).len(), 8);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("\"journal\": null")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
