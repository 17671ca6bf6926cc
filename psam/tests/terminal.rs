//! Loads, purchases, reads and failure paths of the terminal against card-sim user cards and
//! PSAMs over memory transports, in 3DES and SM4, every TAC checked with `ykt-crypto`.

mod common;

use common::*;
use ykt_apdu::{MemoryTransport, Session, Sw, Transport};
use ykt_card_sim::Card;
use ykt_card_sim::CardAlgorithm;
use ykt_psam::{
    LoadRequest, PurchaseRecord, PurchaseRequest, Purse, Terminal, TerminalError, balance, load,
    read_asn, read_log, recover_purchase, select_purse_application, verify_pin,
};

const ALGORITHMS: [CardAlgorithm; 2] = [CardAlgorithm::TripleDes, CardAlgorithm::Sm4];

fn purchase_request(
    purse: Purse,
    transaction_type: u8,
    amount: u32,
    key_index: u8,
) -> PurchaseRequest {
    PurchaseRequest {
        purse,
        amount,
        transaction_type,
        key_index,
        date: DATE,
        time: TIME,
    }
}

fn load_request(purse: Purse, amount: u32) -> LoadRequest {
    LoadRequest {
        purse,
        amount,
        transaction_type: purse.p2(),
        key_index: 0x01,
        terminal_id: TERMINAL_ID,
    }
}

/// Selects the purse application and reads the ASN.
fn open_card(card: &mut dyn Session) -> [u8; 8] {
    let fci = select_purse_application(card, &AID).unwrap();
    assert_eq!(fci.first(), Some(&0x6F));
    read_asn(card).unwrap()
}

#[test]
fn load_then_purchases_with_one_two_and_three_levels() {
    for algorithm in ALGORITHMS {
        let keys = Keys::new(algorithm);
        let (mut card_t, mut psam_t) = pair(&keys);
        let mut card = card_t.session().unwrap();
        let mut psam = psam_t.session().unwrap();
        let (card, psam) = (card.as_mut(), psam.as_mut());
        let terminal = Terminal::open(psam, &PSAM_AID).unwrap();
        assert_eq!(terminal.terminal_id(), TERMINAL_ID);
        let asn = open_card(card);
        assert_eq!(asn, ASN);

        let mut host = Host {
            keys: &keys,
            forge: false,
        };
        let loaded = load(card, &mut host, &load_request(Purse::Ep, 10_000), &asn).unwrap();
        keys.verify_load_tac(&loaded);
        assert_eq!((loaded.online_seq, loaded.balance_before), (0, 0));
        assert_eq!(loaded.balance_after(), 10_000);
        assert_eq!(balance(card, Purse::Ep).unwrap(), 10_000);

        let mut expected_balance = 10_000;
        for (n, key_index) in (0u16..).zip([1u8, 2, 3]) {
            let amount = 100 * u32::from(key_index);
            let request = purchase_request(Purse::Ep, 0x06, amount, key_index);
            let record = terminal
                .purchase(card, psam, &request, &asn, higher_factors(key_index))
                .unwrap();
            keys.verify_purchase_tac(&record);
            assert_eq!(
                (record.offline_seq, record.terminal_seq, record.key_version),
                (n, u32::from(n), key_index),
                "{algorithm:?} key {key_index}"
            );
            assert_eq!(
                record.algorithm_id,
                keys.profile.algorithm_id(&keys.mtk).unwrap()
            );
            assert_eq!(record.balance_before, expected_balance);
            expected_balance -= amount;
            assert_eq!(record.balance_after(), expected_balance);
            assert_eq!(PurchaseRecord::parse(&record.to_bytes()), Ok(record));
        }
        assert_eq!(balance(card, Purse::Ep).unwrap(), expected_balance);

        let log = read_log(card).unwrap();
        let summary: Vec<_> = log
            .iter()
            .map(|r| (r.serial, r.amount, r.transaction_type))
            .collect();
        assert_eq!(
            summary,
            [(2, 300, 6), (1, 200, 6), (0, 100, 6), (0, 10_000, 2)]
        );
        assert!(
            log.iter()
                .all(|r| r.terminal_id == TERMINAL_ID && r.date == DATE && r.time == TIME)
        );
    }
}

#[test]
fn passbook_needs_the_pin_and_compound_purchases_use_type_09() {
    for algorithm in ALGORITHMS {
        let keys = Keys::new(algorithm);
        let (mut card_t, mut psam_t) = pair(&keys);
        let mut card = card_t.session().unwrap();
        let mut psam = psam_t.session().unwrap();
        let (card, psam) = (card.as_mut(), psam.as_mut());
        let terminal = Terminal::open(psam, &PSAM_AID).unwrap();
        let asn = open_card(card);
        let mut host = Host {
            keys: &keys,
            forge: false,
        };

        assert_eq!(
            balance(card, Purse::Ed),
            Err(TerminalError::Status {
                command: "GET BALANCE",
                sw: Sw::SecurityStatusNotSatisfied
            })
        );
        assert_eq!(
            verify_pin(card, &[0, 0, 0]),
            Err(TerminalError::PinRejected(2))
        );
        verify_pin(card, &PIN).unwrap();
        keys.verify_load_tac(&load(card, &mut host, &load_request(Purse::Ed, 500), &asn).unwrap());
        verify_pin(card, &PIN).unwrap();
        let record = terminal
            .purchase(
                card,
                psam,
                &purchase_request(Purse::Ed, 0x05, 120, 1),
                &asn,
                &[],
            )
            .unwrap();
        keys.verify_purchase_tac(&record);
        verify_pin(card, &PIN).unwrap();
        assert_eq!(balance(card, Purse::Ed).unwrap(), 380);

        load(card, &mut host, &load_request(Purse::Ep, 50), &asn).unwrap();
        let compound = purchase_request(Purse::Ep, 0x09, 20, 2);
        let record = terminal
            .purchase(card, psam, &compound, &asn, higher_factors(2))
            .unwrap();
        keys.verify_purchase_tac(&record);
        assert_eq!(
            (record.transaction_type, record.balance_after()),
            (0x09, 30)
        );
        assert_eq!(read_log(card).unwrap()[0].transaction_type, 0x09);
    }
}

#[test]
fn refusals_change_nothing() {
    let keys = Keys::new(CardAlgorithm::TripleDes);
    let (mut card_t, mut psam_t) = pair(&keys);
    let mut card = card_t.session().unwrap();
    let mut psam = psam_t.session().unwrap();
    let (card, psam) = (card.as_mut(), psam.as_mut());
    let terminal = Terminal::open(psam, &PSAM_AID).unwrap();
    let asn = open_card(card);

    let mut forger = Host {
        keys: &keys,
        forge: true,
    };
    assert_eq!(
        load(card, &mut forger, &load_request(Purse::Ep, 100), &asn),
        Err(TerminalError::MacRejectedByCard {
            command: "CREDIT FOR LOAD"
        })
    );
    assert_eq!(balance(card, Purse::Ep).unwrap(), 0);
    let mut host = Host {
        keys: &keys,
        forge: false,
    };
    load(card, &mut host, &load_request(Purse::Ep, 100), &asn).unwrap();

    let too_much = purchase_request(Purse::Ep, 0x06, 101, 1);
    assert_eq!(
        terminal.purchase(card, psam, &too_much, &asn, &[]),
        Err(TerminalError::InsufficientBalance)
    );
    for (request, factors) in [
        (purchase_request(Purse::Ep, 0x05, 1, 1), &[][..]),
        (purchase_request(Purse::Ep, 0x06, 1, 1), &[SCHOOL; 3][..]),
    ] {
        assert!(matches!(
            terminal.purchase(card, psam, &request, &asn, factors),
            Err(TerminalError::InvalidRequest(_))
        ));
    }
    let mut ed_as_ep = load_request(Purse::Ed, 1);
    ed_as_ep.transaction_type = 0x02;
    assert!(matches!(
        load(card, &mut host, &ed_as_ep, &asn),
        Err(TerminalError::InvalidRequest(_))
    ));
    // A factor the card was not diversified with: the PSAM's MAC1 is refused.
    assert_eq!(
        terminal.purchase(
            card,
            psam,
            &purchase_request(Purse::Ep, 0x06, 1, 2),
            &asn,
            &[REGION]
        ),
        Err(TerminalError::MacRejectedByCard {
            command: "DEBIT FOR PURCHASE"
        })
    );
    assert_eq!(balance(card, Purse::Ep).unwrap(), 100);
    assert_eq!(read_log(card).unwrap().len(), 1);
}

/// A session that corrupts the last byte of the response to DEBIT FOR PURCHASE (the card's
/// MAC2), as a card without the purchase key would answer.
struct ForgedMac2<'a>(&'a mut dyn Session);

impl Session for ForgedMac2<'_> {
    fn transmit(&mut self, command: &[u8]) -> ykt_apdu::Result<Vec<u8>> {
        let mut response = self.0.transmit(command)?;
        if command[..2] == [0x80, 0x54] && response.len() == 10 {
            response[7] ^= 0x01;
        }
        Ok(response)
    }
}

#[test]
fn a_forged_mac2_is_caught_by_the_psam() {
    for algorithm in ALGORITHMS {
        let keys = Keys::new(algorithm);
        let (mut card_t, mut psam_t) = pair(&keys);
        let mut card = card_t.session().unwrap();
        let mut psam = psam_t.session().unwrap();
        let psam = psam.as_mut();
        let terminal = Terminal::open(psam, &PSAM_AID).unwrap();
        let asn = open_card(card.as_mut());
        let mut host = Host {
            keys: &keys,
            forge: false,
        };
        load(
            card.as_mut(),
            &mut host,
            &load_request(Purse::Ep, 100),
            &asn,
        )
        .unwrap();

        let request = purchase_request(Purse::Ep, 0x06, 40, 1);
        let result = terminal.purchase(&mut ForgedMac2(card.as_mut()), psam, &request, &asn, &[]);
        let Err(TerminalError::Mac2Rejected { record, sw }) = result else {
            panic!("{result:?}");
        };
        assert_eq!(sw, Some(Sw::MacInvalid));
        // The card did debit; its TAC is genuine and goes to clearing.
        keys.verify_purchase_tac(&record);
        assert_eq!(balance(card.as_mut(), Purse::Ep).unwrap(), 60);
    }
}

#[test]
fn a_torn_purchase_is_recovered_at_every_write_point() {
    for algorithm in ALGORITHMS {
        let keys = Keys::new(algorithm);
        let (mut card_t, psam_t) = pair(&keys);
        {
            let mut card = card_t.session().unwrap();
            let asn = open_card(card.as_mut());
            let mut host = Host {
                keys: &keys,
                forge: false,
            };
            load(
                card.as_mut(),
                &mut host,
                &load_request(Purse::Ep, 1_000),
                &asn,
            )
            .unwrap();
        }
        let card_state = card_t.card().state().to_vec();
        let psam_state = psam_t.card().state().to_vec();
        let request = purchase_request(Purse::Ep, 0x06, 250, 3);
        let (mut debited, mut untouched) = (0, 0);
        for write_point in 1.. {
            let mut card_t = MemoryTransport::new("card", Card::from_state(&card_state).unwrap());
            let mut psam_t = MemoryTransport::new("psam", Card::from_state(&psam_state).unwrap());
            card_t.reset().unwrap();
            psam_t.reset().unwrap();
            let mut psam = psam_t.session().unwrap();
            let terminal = Terminal::open(psam.as_mut(), &PSAM_AID).unwrap();
            let asn = open_card(card_t.session().unwrap().as_mut());
            card_t.card_mut().lose_power_at_write(write_point);
            let result = terminal.purchase(
                card_t.session().unwrap().as_mut(),
                psam.as_mut(),
                &request,
                &asn,
                higher_factors(3),
            );
            let torn = match result {
                Ok(record) => {
                    keys.verify_purchase_tac(&record);
                    break;
                }
                Err(TerminalError::PurchaseTorn(torn)) => torn,
                Err(other) => panic!("write point {write_point}: {other:?}"),
            };
            assert!(card_t.card().is_mute());
            assert_eq!(
                (torn.offline_seq(), torn.terminal_seq(), torn.asn()),
                (0, 0, ASN)
            );
            card_t.reset().unwrap();
            let mut card = card_t.session().unwrap();
            open_card(card.as_mut());
            match recover_purchase(card.as_mut(), psam.as_mut(), &torn).unwrap() {
                Some(record) => {
                    keys.verify_purchase_tac(&record);
                    assert_eq!(record.balance_after(), 750);
                    assert_eq!(balance(card.as_mut(), Purse::Ep).unwrap(), 750);
                    debited += 1;
                }
                None => {
                    assert_eq!(balance(card.as_mut(), Purse::Ep).unwrap(), 1_000);
                    untouched += 1;
                }
            }
        }
        assert!(
            debited > 0 && untouched > 0,
            "{debited} debited, {untouched} untouched"
        );
    }
}
