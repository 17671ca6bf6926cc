//! Shared by the integration tests: a terminal that sends APDUs, the issuance of a user card
//! and of a PSAM by APDUs from factory chips, and load and purchase flows checked against
//! `ykt-crypto` computed independently.
#![allow(dead_code)] // each test binary uses part of this module

use ykt_apdu::CardHandler;
use ykt_card_sim::{Card, CardAlgorithm, Chip, ChipKind, RandomSource};
use ykt_crypto::secure_messaging::{external_auth_cryptogram, protect_command, write_key_command};
use ykt_crypto::{Load, Profile, Purchase, SymmetricAlgorithm, SymmetricKey};

/// Hex to bytes (spaces allowed).
pub fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// A short command APDU with data (no Le).
pub fn apdu(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    [&[cla, ins, p1, p2, data.len() as u8][..], data].concat()
}

/// The same with Le.
pub fn apdu_le(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], le: u8) -> Vec<u8> {
    [apdu(cla, ins, p1, p2, data), vec![le]].concat()
}

pub const AID: &str = "A00000000386980701";
pub const PSAM_AID: &str = "A00000000386980702";
pub const ASN10: &str = "0001A1B2C3D4E5F60718";
pub const ASN: [u8; 8] = [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18];
pub const SCHOOL: [u8; 8] = [0x51, 0x00, 0xFF, 0, 0, 0, 0, 0];
pub const REGION: [u8; 8] = [0x20, 0x00, 0xFF, 0, 0, 0, 0, 0];
pub const TERMINAL_ID: [u8; 6] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
pub const PIN: [u8; 3] = [0x12, 0x34, 0x56];
pub const DATE: [u8; 4] = [0x20, 0x26, 0x05, 0x01];
pub const TIME: [u8; 3] = [0x10, 0x20, 0x30];

/// A card or PSAM with a terminal's conveniences.
pub struct Terminal {
    pub card: Card,
}

impl Terminal {
    pub fn new(card: Card) -> Self {
        Self { card }
    }

    /// Sends an APDU; returns data and SW.
    pub fn send(&mut self, command: &[u8]) -> (Vec<u8>, u16) {
        let r = self.card.handle(command);
        assert!(r.len() >= 2, "no answer to {}", hex::encode_upper(command));
        let (data, sw) = r.split_at(r.len() - 2);
        (data.to_vec(), u16::from_be_bytes([sw[0], sw[1]]))
    }

    /// Sends an APDU that must succeed; returns the data.
    pub fn ok(&mut self, command: &[u8]) -> Vec<u8> {
        let (data, sw) = self.send(command);
        assert_eq!(sw, 0x9000, "{} -> {sw:04X}", hex::encode_upper(command));
        data
    }

    /// Sends an APDU; returns the SW.
    pub fn sw(&mut self, command: &[u8]) -> u16 {
        self.send(command).1
    }

    pub fn challenge(&mut self, n: u8) -> Vec<u8> {
        self.ok(&[0x00, 0x84, 0x00, 0x00, n])
    }

    pub fn external_auth(&mut self, key: &SymmetricKey, id: u8) {
        let challenge = self.challenge(8);
        let cryptogram = external_auth_cryptogram(key, &challenge).unwrap();
        self.ok(&apdu(0x00, 0x82, 0x00, id, &cryptogram));
    }

    pub fn select_fid(&mut self, fid: u16) -> Vec<u8> {
        self.ok(&apdu(0x00, 0xA4, 0x00, 0x00, &fid.to_be_bytes()))
    }

    pub fn select_name(&mut self, name: &[u8]) -> Vec<u8> {
        self.ok(&apdu(0x00, 0xA4, 0x04, 0x00, name))
    }

    pub fn create(&mut self, fid: u16, data: &[u8]) {
        let [hi, lo] = fid.to_be_bytes();
        self.ok(&apdu(0x80, 0xE0, hi, lo, data));
    }

    /// 84D4 under `master` with a fresh challenge.
    pub fn write_key_protected(&mut self, master: &SymmetricKey, p1: u8, p2: u8, record: &[u8]) {
        let challenge = self.challenge(4);
        self.ok(&write_key_command(master, &challenge, p1, p2, record).unwrap());
    }

    /// 04D6 with a line-protection MAC.
    pub fn update_binary_mac(&mut self, key: &SymmetricKey, p1: u8, data: &[u8]) {
        let challenge = self.challenge(4);
        self.ok(&protect_command(key, &challenge, [0x00, 0xD6, p1, 0x00], data, false).unwrap());
    }

    pub fn balance(&mut self, p2: u8) -> u32 {
        u32::from_be_bytes(self.ok(&[0x80, 0x5C, 0x00, p2, 0x04]).try_into().unwrap())
    }
}

pub fn key_algorithm(algorithm: CardAlgorithm) -> SymmetricAlgorithm {
    match algorithm {
        CardAlgorithm::TripleDes => SymmetricAlgorithm::TripleDes,
        CardAlgorithm::Sm4 => SymmetricAlgorithm::Sm4,
    }
}

/// A 16-byte key of the chip's algorithm, distinct per `seed`.
pub fn test_key(algorithm: CardAlgorithm, seed: u8) -> SymmetricKey {
    let bytes: Vec<u8> = (0..16u8)
        .map(|i| seed.wrapping_mul(31) ^ i.wrapping_mul(17))
        .collect();
    SymmetricKey::new(key_algorithm(algorithm), &bytes).unwrap()
}

/// The issuer's keys, and the card keys derived from them for the card with [`ASN`].
pub struct Keys {
    pub algorithm: CardAlgorithm,
    pub profile: Profile,
    pub transport: SymmetricKey,
    pub mf_master: SymmetricKey,
    pub app_master: SymmetricKey,
    pub line: SymmetricKey,
    pub unblock: SymmetricKey,
    pub reload: SymmetricKey,
    /// Purchase master key, 1 level (PSAM usage 22, version 01).
    pub mpk: SymmetricKey,
    /// Purchase master key, 3 levels (PSAM usage 62, version 02).
    pub mpk3: SymmetricKey,
    pub mlk: SymmetricKey,
    pub mtk: SymmetricKey,
    pub psam_mac: SymmetricKey,
    pub psam_enc: SymmetricKey,
    pub psam_master: SymmetricKey,
    pub dpk: SymmetricKey,
    pub dpk3: SymmetricKey,
    pub dlk: SymmetricKey,
    pub dtk: SymmetricKey,
}

impl Keys {
    pub fn new(algorithm: CardAlgorithm) -> Self {
        let profile = Profile::for_algorithm(key_algorithm(algorithm)).unwrap();
        let k = |seed| test_key(algorithm, seed);
        let (mpk, mpk3, mlk, mtk) = (k(10), k(11), k(12), k(13));
        Self {
            algorithm,
            profile,
            transport: SymmetricKey::new(key_algorithm(algorithm), &[0xFF; 16]).unwrap(),
            mf_master: k(1),
            app_master: k(2),
            line: k(3),
            unblock: k(4),
            reload: k(5),
            dpk: profile.diversify(&mpk, &ASN).unwrap(),
            dpk3: profile
                .diversify_path(&mpk3, &[REGION, SCHOOL, ASN])
                .unwrap(),
            dlk: profile.diversify(&mlk, &ASN).unwrap(),
            dtk: profile.diversify(&mtk, &ASN).unwrap(),
            mpk,
            mpk3,
            mlk,
            mtk,
            psam_mac: k(20),
            psam_enc: k(21),
            psam_master: k(22),
        }
    }

    /// The algorithm ID byte of key records and INITIALIZE responses.
    pub fn algorithm_id(&self) -> u8 {
        match self.algorithm {
            CardAlgorithm::TripleDes => 0x00,
            CardAlgorithm::Sm4 => 0x04,
        }
    }
}

fn record(header: &str, key: &[u8]) -> Vec<u8> {
    [h(header), key.to_vec()].concat()
}

/// The contents of 0015: issuer ID, type, version, ASN(10), start, expiry, FCI.
pub fn file_0015() -> Vec<u8> {
    h(&format!(
        "0102030405060708 03 01 {ASN10} 20260101 20301231 0000"
    ))
}

/// Issues a user card from a factory chip, by APDUs only: external authentication with the
/// transport key, ERASE DF, MF key file and master key, ADF with key file, keys (the first
/// plain, the others with 84D4), files, and 0015/0016.
pub fn issue_user_card(keys: &Keys, seed: u64) -> Terminal {
    let chip = Chip {
        algorithm: keys.algorithm,
        kind: ChipKind::UserCard,
    };
    let mut t = Terminal::new(Card::manufacture(chip, &[0xFF; 16]).unwrap());
    t.card.set_random(RandomSource::seeded(seed));
    assert!(!t.card.power_on().is_empty());
    t.select_fid(0x3F00);
    t.external_auth(&keys.transport, 0);
    t.ok(&h("800E000000"));
    t.create(0x0000, &h("3F 0100 81 F1 FF FF"));
    t.ok(&apdu(
        0x80,
        0xD4,
        0x01,
        0x00,
        &record("39 F0 F1 01 33", keys.mf_master.expose_secret()),
    ));

    let alg = keys.algorithm_id();
    t.create(0x3F01, &[h("38 0A00 F1 F1 95 FF FF"), h(AID)].concat());
    t.create(0x0000, &h("3F 0200 95 F0 FF FF"));
    t.ok(&apdu(
        0x80,
        0xD4,
        0x01,
        0x00,
        &record("F9 F0 F1 01 33", keys.app_master.expose_secret()),
    ));
    t.external_auth(&keys.app_master, 0);
    let m = &keys.app_master;
    let group_a = |t: &mut Terminal, kind: u8, id: u8, version: u8, key: &SymmetricKey| {
        let header = [kind, 0xF0, 0xF1, version, alg];
        t.write_key_protected(m, 0x01, id, &[&header[..], key.expose_secret()].concat());
    };
    group_a(&mut t, 0x3E, 0x01, 0x01, &keys.dpk);
    group_a(&mut t, 0x3E, 0x02, 0x02, &keys.dpk3);
    group_a(&mut t, 0x3F, 0x01, 0x01, &keys.dlk);
    group_a(&mut t, 0x34, 0x00, 0x01, &keys.dtk);
    t.write_key_protected(
        m,
        0x01,
        0x00,
        &record("36 F0 F1 FF 33", keys.line.expose_secret()),
    );
    t.write_key_protected(
        m,
        0x01,
        0x00,
        &record("37 F0 F1 FF 33", keys.unblock.expose_secret()),
    );
    t.write_key_protected(
        m,
        0x01,
        0x00,
        &record("38 F0 F1 FF 33", keys.reload.expose_secret()),
    );
    t.write_key_protected(m, 0x01, 0x00, &record("3A F0 EF 01 33", &PIN));

    t.create(0x0015, &h("A8 001E F0 F1 FF FF"));
    t.create(0x0016, &h("28 0027 F0 F1 FF FF"));
    t.create(0x0018, &h("2E 0A 17 F0 EF FF FF"));
    t.create(0x0001, &h("2F 0208 F1 00 FF 18"));
    t.create(0x0002, &h("2F 0208 F0 00 FF 18"));
    t.create(0x0019, &h("2A 02 10 F0 F0 FF FF"));
    t.ok(&apdu(0x00, 0xE2, 0x00, 0x19 << 3, &[0; 16]));
    t.ok(&apdu(0x00, 0xE2, 0x00, 0x19 << 3, &[0; 16]));
    t.update_binary_mac(&keys.line, 0x95, &file_0015());
    t.ok(&apdu(0x00, 0xD6, 0x96, 0x00, &[0x5A; 0x27]));
    t.card.power_on();
    t
}

/// Issues a PSAM the same way: MF with 0015 (serial), 0016 (terminal ID), 0017 (PSAM info),
/// an application DF whose key file holds the purchase master keys (usage 22 version 01 and
/// 62 version 02), a MAC key (26) and an encryption key (27), all written with 84D4 00 00.
pub fn issue_psam(keys: &Keys, seed: u64) -> Terminal {
    let chip = Chip {
        algorithm: keys.algorithm,
        kind: ChipKind::Psam,
    };
    let mut t = Terminal::new(Card::manufacture(chip, &[0xFF; 16]).unwrap());
    t.card.set_random(RandomSource::seeded(seed));
    t.card.power_on();
    t.external_auth(&keys.transport, 0);
    t.ok(&h("800E000000"));
    t.create(0x0000, &h("3F 0100 81 F1 FF FF"));
    t.ok(&apdu(
        0x80,
        0xD4,
        0x01,
        0x00,
        &record("39 F0 F1 01 33", keys.mf_master.expose_secret()),
    ));
    t.create(0x0015, &h("28 000E F0 F1 FF FF"));
    t.create(0x0016, &h("28 0006 F0 F1 FF FF"));
    t.create(0x0017, &h("28 0019 F0 F1 FF FF"));
    t.ok(&apdu(
        0x00,
        0xD6,
        0x95,
        0x00,
        &h("1122334455667788990001020304"),
    ));
    t.ok(&apdu(0x00, 0xD6, 0x96, 0x00, &TERMINAL_ID));
    t.ok(&apdu(
        0x00,
        0xD6,
        0x97,
        0x00,
        &h("01 0102030405060708 0807060504030201 20260101 20301231"),
    ));
    t.create(0x1001, &[h("38 0400 F1 F1 95 FF FF"), h(PSAM_AID)].concat());
    t.create(0x0000, &h("3F 0200 95 F0 FF FF"));
    t.ok(&apdu(
        0x80,
        0xD4,
        0x01,
        0x00,
        &record("39 F0 F1 01 33", keys.psam_master.expose_secret()),
    ));
    t.external_auth(&keys.psam_master, 0);
    let alg = keys.algorithm_id();
    for (usage, version, key) in [
        (0x22, 0x01, &keys.mpk),
        (0x62, 0x02, &keys.mpk3),
        (0x26, 0x01, &keys.psam_mac),
        (0x27, 0x01, &keys.psam_enc),
    ] {
        let data = [&[usage, version, alg][..], key.expose_secret()].concat();
        t.write_key_protected(&keys.psam_master, 0x00, 0x00, &data);
    }
    t.card.power_on();
    t
}

/// The outcome of a purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub serial: u16,
    pub terminal_seq: u32,
    pub mac2: [u8; 4],
    pub tac: [u8; 4],
}

/// A load of `amount` into the EP (P2 02) or ED (01, after VERIFY PIN): INITIALIZE checked
/// against the host's own MAC1, MAC2 made by the host, TAC checked. Returns (online serial, TAC).
pub fn load(card: &mut Terminal, keys: &Keys, p2: u8, amount: u32) -> (u16, [u8; 4]) {
    card.select_name(&h(AID));
    if p2 == 0x01 {
        card.ok(&apdu(0x00, 0x20, 0x00, 0x00, &PIN));
    }
    let init = [&[0x01][..], &amount.to_be_bytes(), &TERMINAL_ID].concat();
    let r = card.ok(&apdu_le(0x80, 0x50, 0x00, p2, &init, 0x10));
    assert_eq!(r.len(), 16);
    assert_eq!(
        (r[6], r[7]),
        (0x01, keys.algorithm_id()),
        "key version, algorithm ID"
    );
    let load = Load {
        card_random: r[8..12].try_into().unwrap(),
        online_seq: u16::from_be_bytes([r[4], r[5]]),
        old_balance: u32::from_be_bytes(r[..4].try_into().unwrap()),
        amount,
        transaction_type: p2,
        terminal_id: TERMINAL_ID,
        date: DATE,
        time: TIME,
    };
    let session_key = load.session_key(keys.profile, &keys.dlk).unwrap();
    assert_eq!(load.mac1(&session_key).unwrap(), r[12..16], "MAC1");
    let mac2 = load.mac2(&session_key).unwrap();
    let credit = [&DATE[..], &TIME, &mac2].concat();
    let tac = card.ok(&apdu_le(0x80, 0x52, 0x00, 0x00, &credit, 0x04));
    assert_eq!(tac, load.tac(keys.profile, &keys.dtk).unwrap(), "TAC");
    (load.online_seq, tac.try_into().unwrap())
}

/// A purchase of `amount` from the EP with the PSAM (key index 01: 1-level key, 02: 3-level),
/// every MAC and the TAC checked against the card keys.
pub fn purchase(
    card: &mut Terminal,
    psam: &mut Terminal,
    keys: &Keys,
    key_index: u8,
    amount: u32,
) -> Receipt {
    card.select_name(&h(AID));
    let asn = card.ok(&h("00B0950000"))[10..20].to_vec();
    let init = [&[key_index][..], &amount.to_be_bytes(), &TERMINAL_ID].concat();
    let r = card.ok(&apdu_le(0x80, 0x50, 0x01, 0x02, &init, 0x0F));
    let (version, algorithm_id) = (r[9], r[10]);
    assert_eq!((version, algorithm_id), (key_index, keys.algorithm_id()));
    let (random, serial) = (&r[11..15], &r[4..6]);

    psam.select_name(&h(PSAM_AID));
    let factors: Vec<u8> = match key_index {
        0x01 => asn[2..].to_vec(),
        _ => [&asn[2..], &SCHOOL[..], &REGION[..]].concat(),
    };
    let sam_in = [
        random,
        serial,
        &amount.to_be_bytes(),
        &[0x06],
        &DATE,
        &TIME,
        &[version, algorithm_id],
        &factors,
    ]
    .concat();
    let sam = psam.ok(&apdu_le(0x80, 0x70, 0x00, 0x00, &sam_in, 0x08));
    let terminal_seq = u32::from_be_bytes(sam[..4].try_into().unwrap());

    let purchase = Purchase {
        card_random: random.try_into().unwrap(),
        offline_seq: u16::from_be_bytes(serial.try_into().unwrap()),
        amount,
        transaction_type: 0x06,
        terminal_id: TERMINAL_ID,
        terminal_seq,
        date: DATE,
        time: TIME,
    };
    let dpk = if key_index == 0x01 {
        &keys.dpk
    } else {
        &keys.dpk3
    };
    let session_key = purchase.session_key(keys.profile, dpk).unwrap();
    assert_eq!(sam[4..], purchase.mac1(&session_key).unwrap(), "PSAM MAC1");

    let debit = [&sam[..4], &DATE[..], &TIME, &sam[4..]].concat();
    let out = card.ok(&apdu_le(0x80, 0x54, 0x01, 0x00, &debit, 0x08));
    let (tac, mac2) = (&out[..4], &out[4..]);
    assert_eq!(mac2, purchase.mac2(&session_key).unwrap(), "MAC2");
    assert_eq!(tac, purchase.tac(keys.profile, &keys.dtk).unwrap(), "TAC");
    psam.ok(&apdu(0x80, 0x72, 0x00, 0x00, mac2));
    Receipt {
        serial: purchase.offline_seq,
        terminal_seq,
        mac2: mac2.try_into().unwrap(),
        tac: tac.try_into().unwrap(),
    }
}
