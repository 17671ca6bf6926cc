//! Shared by the integration tests: a user card and a PSAM personalised by APDUs from
//! card-sim factory chips (plain WRITE KEY, the shortest path the simulated COS accepts), the
//! issuer's keys, and an online load host made with `ykt-crypto`.

use ykt_apdu::{CardHandler, Command, MemoryTransport};
use ykt_card_sim::{Card, CardAlgorithm, Chip, ChipKind, RandomSource};
use ykt_crypto::secure_messaging::external_auth_cryptogram;
use ykt_crypto::{Load, Profile, Purchase, SymmetricAlgorithm, SymmetricKey};
use ykt_psam::{
    LoadAuthorization, LoadHost, LoadInit, LoadRecord, PurchaseRecord, Result, TerminalError,
};

pub const AID: [u8; 9] = [0xA0, 0, 0, 0, 0x03, 0x86, 0x98, 0x07, 0x01];
pub const PSAM_AID: [u8; 9] = [0xA0, 0, 0, 0, 0x03, 0x86, 0x98, 0x07, 0x02];
pub const ASN: [u8; 8] = [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18];
pub const SCHOOL: [u8; 8] = [0x51, 0x00, 0xFF, 0, 0, 0, 0, 0];
pub const REGION: [u8; 8] = [0x20, 0x00, 0xFF, 0, 0, 0, 0, 0];
pub const TERMINAL_ID: [u8; 6] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
pub const PIN: [u8; 3] = [0x12, 0x34, 0x56];
pub const DATE: [u8; 4] = [0x20, 0x26, 0x05, 0x01];
pub const TIME: [u8; 3] = [0x10, 0x20, 0x30];

/// The factors above the card for purchase key index 1, 2, 3 (1, 2, 3 levels), in wire order.
pub fn higher_factors(key_index: u8) -> &'static [[u8; 8]] {
    const ALL: [[u8; 8]; 2] = [SCHOOL, REGION];
    &ALL[..usize::from(key_index - 1)]
}

/// The issuer's master keys of one algorithm.
pub struct Keys {
    pub algorithm: CardAlgorithm,
    pub profile: Profile,
    /// Purchase master keys for 1, 2 and 3 levels (PSAM usages 22, 42, 62; versions 1-3).
    pub mpk: [SymmetricKey; 3],
    pub mlk: SymmetricKey,
    pub mtk: SymmetricKey,
}

fn key(algorithm: CardAlgorithm, seed: u8) -> SymmetricKey {
    let bytes: Vec<u8> = (0..16u8).map(|i| seed.wrapping_mul(29) ^ i).collect();
    SymmetricKey::new(symmetric(algorithm), &bytes).unwrap()
}

fn symmetric(algorithm: CardAlgorithm) -> SymmetricAlgorithm {
    match algorithm {
        CardAlgorithm::TripleDes => SymmetricAlgorithm::TripleDes,
        CardAlgorithm::Sm4 => SymmetricAlgorithm::Sm4,
    }
}

impl Keys {
    pub fn new(algorithm: CardAlgorithm) -> Self {
        Self {
            algorithm,
            profile: Profile::for_algorithm(symmetric(algorithm)).unwrap(),
            mpk: [1, 2, 3].map(|seed| key(algorithm, seed)),
            mlk: key(algorithm, 4),
            mtk: key(algorithm, 5),
        }
    }

    /// The card's key diversified from `master` along region, school, card for `levels`.
    pub fn card_key(&self, master: &SymmetricKey, levels: usize) -> SymmetricKey {
        let path = [REGION, SCHOOL, ASN];
        self.profile
            .diversify_path(master, &path[3 - levels..])
            .unwrap()
    }

    /// The TAC of `record` is the card's own.
    pub fn verify_purchase_tac(&self, record: &PurchaseRecord) {
        let purchase = Purchase {
            card_random: [0; 4],
            offline_seq: record.offline_seq,
            amount: record.amount,
            transaction_type: record.transaction_type,
            terminal_id: record.terminal_id,
            terminal_seq: record.terminal_seq,
            date: record.date,
            time: record.time,
        };
        purchase
            .verify_tac(self.profile, &self.card_key(&self.mtk, 1), &record.tac)
            .expect("purchase TAC");
    }

    /// The TAC of `record` is the card's own.
    pub fn verify_load_tac(&self, record: &LoadRecord) {
        let load = Load {
            card_random: [0; 4],
            online_seq: record.online_seq,
            old_balance: record.balance_before,
            amount: record.amount,
            transaction_type: record.transaction_type,
            terminal_id: record.terminal_id,
            date: record.date,
            time: record.time,
        };
        load.verify_tac(self.profile, &self.card_key(&self.mtk, 1), &record.tac)
            .expect("load TAC");
    }
}

/// The online host: verifies MAC1 with the card's DLK and makes MAC2, dated [`DATE`] [`TIME`];
/// `forge` corrupts MAC2.
pub struct Host<'a> {
    pub keys: &'a Keys,
    pub forge: bool,
}

impl LoadHost for Host<'_> {
    fn authorize(&mut self, init: &LoadInit) -> Result<LoadAuthorization> {
        assert_eq!(init.asn, ASN);
        let load = Load {
            card_random: init.card_random,
            online_seq: init.online_seq,
            old_balance: init.old_balance,
            amount: init.request.amount,
            transaction_type: init.request.transaction_type,
            terminal_id: init.request.terminal_id,
            date: DATE,
            time: TIME,
        };
        let session_key = load
            .session_key(self.keys.profile, &self.keys.card_key(&self.keys.mlk, 1))
            .unwrap();
        if load.mac1(&session_key).unwrap() != init.mac1 {
            return Err(TerminalError::Host("MAC1 wrong".into()));
        }
        let mut mac2 = load.mac2(&session_key).unwrap();
        if self.forge {
            mac2[0] ^= 1;
        }
        Ok(LoadAuthorization {
            date: DATE,
            time: TIME,
            mac2,
        })
    }
}

/// Sends `command`, which must succeed.
fn ok(card: &mut Card, command: Command) {
    let bytes = command.to_bytes().unwrap();
    let response = card.handle(&bytes);
    assert_eq!(
        response[response.len() - 2..],
        [0x90, 0x00],
        "{}",
        hex::encode_upper(&bytes)
    );
}

fn apdu(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Command {
    Command::new(cla, ins, p1, p2).with_data(data)
}

/// External authentication with `key` (39/00) on a fresh challenge.
fn authenticate(card: &mut Card, key: &SymmetricKey) {
    let response = card.handle(&[0x00, 0x84, 0x00, 0x00, 0x08]);
    let cryptogram = external_auth_cryptogram(key, &response[..8]).unwrap();
    ok(card, apdu(0x00, 0x82, 0x00, 0x00, &cryptogram));
}

/// A factory chip erased after transport-key authentication, with an MF key file.
fn factory(keys: &Keys, kind: ChipKind) -> Card {
    let chip = Chip {
        algorithm: keys.algorithm,
        kind,
    };
    let mut card = Card::manufacture(chip, &[0xFF; 16]).unwrap();
    card.set_random(RandomSource::seeded(7));
    card.power_on();
    authenticate(
        &mut card,
        &SymmetricKey::new(symmetric(keys.algorithm), &[0xFF; 16]).unwrap(),
    );
    ok(&mut card, apdu(0x80, 0x0E, 0x00, 0x00, &[]));
    ok(
        &mut card,
        apdu(0x80, 0xE0, 0x00, 0x00, &hex("3F010081F1FFFF")),
    );
    card
}

fn hex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap()
}

/// Creates the application DF `fid` named `aid` with a key file and an external
/// authentication key, and authenticates with it.
fn application(card: &mut Card, keys: &Keys, fid: u16, aid: &[u8]) {
    let [hi, lo] = fid.to_be_bytes();
    ok(
        card,
        apdu(
            0x80,
            0xE0,
            hi,
            lo,
            &[&hex("380A00F1F195FFFF"), aid].concat(),
        ),
    );
    ok(card, apdu(0x80, 0xE0, 0x00, 0x00, &hex("3F020095F0FFFF")));
    let master = key(keys.algorithm, 9);
    let record = [&hex("39F0F10133"), master.expose_secret()].concat();
    ok(card, apdu(0x80, 0xD4, 0x01, 0x00, &record));
    authenticate(card, &master);
}

/// A user card with ASN [`ASN`]: purchase keys 1-3 (1-3 levels), load key 1, TAC key, PIN,
/// EF 0015, log 0018, ED 0001 and EP 0002.
pub fn issue_card(keys: &Keys) -> Card {
    let mut card = factory(keys, ChipKind::UserCard);
    application(&mut card, keys, 0x3F01, &AID);
    let alg = keys.profile.algorithm_id(&keys.mtk).unwrap();
    let mut write = |kind: u8, id: u8, key: SymmetricKey| {
        let record = [&[kind, 0xF0, 0xF1, id.max(1), alg][..], key.expose_secret()].concat();
        ok(&mut card, apdu(0x80, 0xD4, 0x01, id, &record));
    };
    for (index, master) in (1..).zip(&keys.mpk) {
        write(0x3E, index, keys.card_key(master, usize::from(index)));
    }
    write(0x3F, 0x01, keys.card_key(&keys.mlk, 1));
    write(0x34, 0x00, keys.card_key(&keys.mtk, 1));
    ok(
        &mut card,
        apdu(
            0x80,
            0xD4,
            0x01,
            0x00,
            &[&hex("3AF0EF0133"), &PIN[..]].concat(),
        ),
    );
    for (fid, header) in [
        (0x0015, "28001EF0F1FFFF"),
        (0x0018, "2E0A17F0EFFFFF"),
        (0x0001, "2F0208F100FF18"),
        (0x0002, "2F0208F000FF18"),
    ] {
        let [hi, lo] = u16::to_be_bytes(fid);
        ok(&mut card, apdu(0x80, 0xE0, hi, lo, &hex(header)));
    }
    let file_0015 = [&[0x01; 10][..], &[0x00, 0x01], &ASN, &[0x20; 10]].concat();
    ok(&mut card, apdu(0x00, 0xD6, 0x95, 0x00, &file_0015));
    card.power_on();
    card
}

/// A PSAM with terminal ID [`TERMINAL_ID`] and the purchase master keys.
pub fn issue_psam(keys: &Keys) -> Card {
    let mut psam = factory(keys, ChipKind::Psam);
    ok(
        &mut psam,
        apdu(0x80, 0xE0, 0x00, 0x16, &hex("280006F0F1FFFF")),
    );
    ok(&mut psam, apdu(0x00, 0xD6, 0x96, 0x00, &TERMINAL_ID));
    application(&mut psam, keys, 0x1001, &PSAM_AID);
    let alg = keys.profile.algorithm_id(&keys.mtk).unwrap();
    for (version, master) in (1u8..).zip(&keys.mpk) {
        let usage = (version << 5) | 0x02;
        let record = [&[usage, version, alg][..], master.expose_secret()].concat();
        ok(&mut psam, apdu(0x80, 0xD4, 0x00, 0x00, &record));
    }
    psam.power_on();
    psam
}

/// The card and PSAM of `keys` in memory transports.
pub fn pair(keys: &Keys) -> (MemoryTransport<Card>, MemoryTransport<Card>) {
    (
        MemoryTransport::new("card", issue_card(keys)),
        MemoryTransport::new("psam", issue_psam(keys)),
    )
}
