//! A user card and a PSAM issued by APDUs from factory chips, then loads, purchases, balance,
//! log and proof reads, for both 3DES and SM4.

mod common;

use common::*;
use ykt_card_sim::CardAlgorithm;

fn full_life(algorithm: CardAlgorithm) {
    let keys = Keys::new(algorithm);
    let mut card = issue_user_card(&keys, 1);
    let mut psam = issue_psam(&keys, 2);

    // The FCI of the ADF carries the 0015 contents as issuer data.
    let fci = card.select_name(&h(AID));
    assert_eq!(fci[0], 0x6F);
    assert!(
        fci.windows(30).any(|w| w == file_0015()),
        "9F0C issuer data"
    );

    let (serial, _) = load(&mut card, &keys, 0x02, 10_000);
    assert_eq!(serial, 0);
    assert_eq!(card.balance(0x02), 10_000);
    let (serial, _) = load(&mut card, &keys, 0x02, 500);
    assert_eq!(serial, 1);

    let first = purchase(&mut card, &mut psam, &keys, 0x01, 1_234);
    let second = purchase(&mut card, &mut psam, &keys, 0x02, 66);
    assert_eq!((first.serial, second.serial), (0, 1));
    assert_eq!(
        (first.terminal_seq, second.terminal_seq),
        (0, 1),
        "PSAM sequence"
    );
    assert_eq!(card.balance(0x02), 10_500 - 1_234 - 66);

    // Log: newest first, 23 bytes each.
    let newest = card.ok(&h("00B201C417"));
    assert_eq!(newest[..2], [0, 1]);
    assert_eq!(newest[5..9], 66u32.to_be_bytes());
    assert_eq!(newest[9], 0x06);
    assert_eq!(newest[10..16], TERMINAL_ID);
    assert_eq!(newest[16..], [&DATE[..], &TIME].concat());
    let oldest = card.ok(&h("00B204C400"));
    assert_eq!((oldest[..2].to_vec(), oldest[9]), (vec![0, 0], 0x02));
    assert_eq!(card.sw(&h("00B205C400")), 0x6A83);

    // GET TRANSACTION PROVE: MAC2 ‖ TAC of the last purchase.
    let prove = card.ok(&h("805A000602000108"));
    assert_eq!(prove, [second.mac2, second.tac].concat());
    assert_eq!(card.sw(&h("805A000602000008")), 0x9406);

    // The ED needs the PIN.
    assert_eq!(card.sw(&h("805C000104")), 0x6982);
    load(&mut card, &keys, 0x01, 77);
    card.ok(&apdu(0x00, 0x20, 0x00, 0x00, &PIN));
    assert_eq!(card.balance(0x01), 77);
}

#[test]
fn triple_des_card_and_psam() {
    full_life(CardAlgorithm::TripleDes);
}

#[test]
fn sm4_card_and_psam() {
    full_life(CardAlgorithm::Sm4);
}
