//! The virtual card and PSAM: a sequence of APDUs never panics, every APDU gets a status word,
//! a malformed APDU (one `Command::parse` rejects, or an extended one) gets 6700 and leaves the
//! persistent state byte for byte as it was, and the state always reopens to itself.
//!
//! Input: one selector byte, then chunks `LEN BYTES...` (at most `MAX_APDUS`); `LEN = FF` is a
//! reset instead of an APDU, a short last chunk is sent as it is. Selector bits:
//! - bit 0: 3DES (0) or SM4 (1) chip;
//! - bit 1: user card (0) or PSAM (1);
//! - bit 2: factory chip (0) or one issued by APDUs (1): a user card with its application DF,
//!   keys, files, PIN verified and 10000 in the EP and ED, a PSAM with its purchase keys; the
//!   session starts with the application selected;
//! - bit 3: an 8-byte transport key on a factory 3DES chip.
//!
//! The card's random source is seeded with the selector.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use ykt_apdu::{CardHandler, Command};
use ykt_card_sim::{Card, CardAlgorithm, Chip, ChipKind, RandomSource};
use ykt_crypto::secure_messaging::{external_auth_cryptogram, protect_command, write_key_command};
use ykt_crypto::{Load, Profile, SymmetricAlgorithm, SymmetricKey};

/// The most APDUs one input sends (bounds the time per input).
const MAX_APDUS: usize = 64;
/// The chunk length that means "reset".
const RESET: u8 = 0xFF;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let algorithm = if selector & 1 == 0 {
        CardAlgorithm::TripleDes
    } else {
        CardAlgorithm::Sm4
    };
    let kind = if selector & 2 == 0 {
        ChipKind::UserCard
    } else {
        ChipKind::Psam
    };
    let chip = Chip { algorithm, kind };
    let issued = selector & 4 != 0;

    let mut card = if issued {
        Card::from_state(issued_state(chip)).expect("the issued state reopens")
    } else {
        let short = selector & 8 != 0 && algorithm == CardAlgorithm::TripleDes;
        Card::manufacture(chip, &TRANSPORT_KEY[..if short { 8 } else { 16 }])
            .expect("a factory chip")
    };
    let initial = card.state().to_vec();
    card.set_random(RandomSource::seeded(selector.into()));
    assert!(!card.power_on().is_empty(), "no ATR");
    if issued {
        for command in session_prefix(kind) {
            assert_eq!(sw(&card.handle(&command)), 0x9000, "prefix {command:02X?}");
        }
    }

    for _ in 0..MAX_APDUS {
        let Some((&len, tail)) = rest.split_first() else {
            break;
        };
        if len == RESET {
            assert!(!card.power_on().is_empty(), "no ATR");
            rest = tail;
            continue;
        }
        let (apdu, next) = tail.split_at(usize::from(len).min(tail.len()));
        rest = next;

        let malformed = !matches!(Command::parse(apdu), Ok(c) if !c.extended);
        let before = malformed.then(|| card.state().to_vec());
        let response = card.handle(apdu);
        assert!(
            response.len() >= 2,
            "no status word for {apdu:02X?}: {response:02X?}"
        );
        if let Some(before) = before {
            assert_eq!(response, [0x67, 0x00], "malformed {apdu:02X?}");
            assert!(
                card.state() == before.as_slice(),
                "malformed {apdu:02X?} changed the state"
            );
        }
    }

    // With no power loss every command finishes its journal: a changed state reopens to
    // itself.
    if card.state() != initial.as_slice() {
        let reopened = Card::from_state(card.state()).expect("the state reopens");
        assert!(
            reopened.state() == card.state(),
            "the state changed on reopening"
        );
    }
});

/// Status word of a response.
fn sw(response: &[u8]) -> u16 {
    match response {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => panic!("no status word: {response:02X?}"),
    }
}

const TRANSPORT_KEY: [u8; 16] = [0xFF; 16];
const AID: [u8; 9] = [0xA0, 0x00, 0x00, 0x00, 0x03, 0x86, 0x98, 0x07, 0x01];
const PSAM_AID: [u8; 9] = [0xA0, 0x00, 0x00, 0x00, 0x03, 0x86, 0x98, 0x07, 0x02];
const ASN: [u8; 8] = [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18];
const PIN: [u8; 3] = [0x12, 0x34, 0x56];
const TERMINAL_ID: [u8; 6] = [1, 2, 3, 4, 5, 6];

/// What every input sends first to an issued chip: select the application (and VERIFY PIN).
fn session_prefix(kind: ChipKind) -> Vec<Vec<u8>> {
    match kind {
        ChipKind::UserCard => vec![
            apdu(0x00, 0xA4, 0x04, 0x00, &AID),
            apdu(0x00, 0x20, 0, 0, &PIN),
        ],
        ChipKind::Psam => vec![apdu(0x00, 0xA4, 0x04, 0x00, &PSAM_AID)],
    }
}

/// The state of an issued chip, made once per chip.
fn issued_state(chip: Chip) -> &'static [u8] {
    static STATES: [OnceLock<Vec<u8>>; 4] = [const { OnceLock::new() }; 4];
    let index = usize::from(chip.algorithm == CardAlgorithm::Sm4)
        + 2 * usize::from(chip.kind == ChipKind::Psam);
    STATES[index].get_or_init(|| Issuer::new(chip).issue())
}

/// A short command APDU with data.
fn apdu(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    [&[cla, ins, p1, p2, data.len() as u8][..], data].concat()
}

/// Issues a factory chip by APDUs, as the issuer does; every key is the same one.
struct Issuer {
    card: Card,
    algorithm: SymmetricAlgorithm,
    key: SymmetricKey,
}

impl Issuer {
    fn new(chip: Chip) -> Self {
        let algorithm = match chip.algorithm {
            CardAlgorithm::TripleDes => SymmetricAlgorithm::TripleDes,
            CardAlgorithm::Sm4 => SymmetricAlgorithm::Sm4,
        };
        let bytes: Vec<u8> = (0..16u8).map(|i| 0x5A ^ i.wrapping_mul(17)).collect();
        let mut card = Card::manufacture(chip, &TRANSPORT_KEY).expect("a factory chip");
        card.set_random(RandomSource::seeded(0));
        card.power_on();
        Self {
            card,
            algorithm,
            key: SymmetricKey::new(algorithm, &bytes).expect("a key"),
        }
    }

    /// Sends a command that must succeed; gives the response data.
    fn ok(&mut self, command: &[u8]) -> Vec<u8> {
        let mut response = self.card.handle(command);
        assert_eq!(sw(&response), 0x9000, "issuing: {command:02X?}");
        response.truncate(response.len() - 2);
        response
    }

    fn challenge(&mut self, n: u8) -> Vec<u8> {
        self.ok(&[0x00, 0x84, 0x00, 0x00, n])
    }

    fn external_auth(&mut self, key: &SymmetricKey) {
        let challenge = self.challenge(8);
        let cryptogram = external_auth_cryptogram(key, &challenge).expect("cryptogram");
        self.ok(&apdu(0x00, 0x82, 0x00, 0x00, &cryptogram));
    }

    fn create(&mut self, fid: u16, data: &[u8]) {
        let [hi, lo] = fid.to_be_bytes();
        self.ok(&apdu(0x80, 0xE0, hi, lo, data));
    }

    /// A key record: header then this issuer's key.
    fn record(&self, header: &[u8]) -> Vec<u8> {
        [header, self.key.expose_secret()].concat()
    }

    fn write_key_protected(&mut self, p1: u8, p2: u8, record: &[u8]) {
        let challenge = self.challenge(4);
        let command = write_key_command(&self.key, &challenge, p1, p2, record).expect("84D4");
        self.ok(&command);
    }

    /// The MF part common to both chips: erase, key file, master key.
    fn mf(&mut self) {
        let transport = SymmetricKey::new(self.algorithm, &TRANSPORT_KEY).expect("a key");
        self.ok(&apdu(0x00, 0xA4, 0x00, 0x00, &[0x3F, 0x00]));
        self.external_auth(&transport);
        self.ok(&[0x80, 0x0E, 0x00, 0x00, 0x00]);
        self.create(0x0000, &[0x3F, 0x01, 0x00, 0x81, 0xF1, 0xFF, 0xFF]);
        let master = self.record(&[0x39, 0xF0, 0xF1, 0x01, 0x33]);
        self.ok(&apdu(0x80, 0xD4, 0x01, 0x00, &master));
    }

    fn issue(mut self) -> Vec<u8> {
        self.mf();
        match self.card.chip().kind {
            ChipKind::UserCard => self.user_card(),
            ChipKind::Psam => self.psam(),
        }
        self.card.power_on();
        self.card.state().to_vec()
    }

    fn user_card(&mut self) {
        let alg = if self.algorithm == SymmetricAlgorithm::Sm4 {
            0x04
        } else {
            0x00
        };
        let adf = [&[0x38, 0x0A, 0x00, 0xF1, 0xF1, 0x95, 0xFF, 0xFF][..], &AID].concat();
        self.create(0x3F01, &adf);
        self.create(0x0000, &[0x3F, 0x02, 0x00, 0x95, 0xF0, 0xFF, 0xFF]);
        let master = self.record(&[0xF9, 0xF0, 0xF1, 0x01, 0x33]);
        self.ok(&apdu(0x80, 0xD4, 0x01, 0x00, &master));
        let key = self.key.clone();
        self.external_auth(&key);
        // Purchase (1 and 3 levels), load, TAC; line protection, unblock, reload; PIN.
        for (kind, id, version) in [
            (0x3E, 0x01, 0x01),
            (0x3E, 0x02, 0x02),
            (0x3F, 0x01, 0x01),
            (0x34, 0x00, 0x01),
        ] {
            let record = self.record(&[kind, 0xF0, 0xF1, version, alg]);
            self.write_key_protected(0x01, id, &record);
        }
        for kind in [0x36, 0x37, 0x38] {
            let record = self.record(&[kind, 0xF0, 0xF1, 0xFF, 0x33]);
            self.write_key_protected(0x01, 0x00, &record);
        }
        let pin = [&[0x3A, 0xF0, 0xEF, 0x01, 0x33][..], &PIN].concat();
        self.write_key_protected(0x01, 0x00, &pin);

        self.create(0x0015, &[0xA8, 0x00, 0x1E, 0xF0, 0xF1, 0xFF, 0xFF]);
        self.create(0x0016, &[0x28, 0x00, 0x27, 0xF0, 0xF1, 0xFF, 0xFF]);
        self.create(0x0018, &[0x2E, 0x0A, 0x17, 0xF0, 0xEF, 0xFF, 0xFF]);
        self.create(0x0001, &[0x2F, 0x02, 0x08, 0xF1, 0x00, 0xFF, 0x18]);
        self.create(0x0002, &[0x2F, 0x02, 0x08, 0xF0, 0x00, 0xFF, 0x18]);
        self.create(0x0019, &[0x2A, 0x02, 0x10, 0xF0, 0xF0, 0xFF, 0xFF]);
        for _ in 0..2 {
            self.ok(&apdu(0x00, 0xE2, 0x00, 0x19 << 3, &[0; 16]));
        }
        let file_0015 = [
            &[1, 2, 3, 4, 5, 6, 7, 8, 0x03, 0x01, 0x00, 0x01][..],
            &ASN,
            &[0x20, 0x26, 0x01, 0x01, 0x20, 0x30, 0x12, 0x31, 0x00, 0x00],
        ]
        .concat();
        let challenge = self.challenge(4);
        let update = protect_command(
            &self.key,
            &challenge,
            [0x00, 0xD6, 0x95, 0x00],
            &file_0015,
            false,
        )
        .expect("04D6");
        self.ok(&update);
        self.ok(&apdu(0x00, 0xD6, 0x96, 0x00, &[0x5A; 0x27]));

        // 10000 into the EP (P2 02) and, after VERIFY PIN, the ED (01).
        let profile = Profile::for_algorithm(self.algorithm).expect("a profile");
        for p2 in [0x02, 0x01] {
            self.ok(&apdu(0x00, 0xA4, 0x04, 0x00, &AID));
            self.ok(&apdu(0x00, 0x20, 0x00, 0x00, &PIN));
            let amount = 10_000u32;
            let init = [&[0x01][..], &amount.to_be_bytes(), &TERMINAL_ID].concat();
            let r = self.ok(&[apdu(0x80, 0x50, 0x00, p2, &init), vec![0x10]].concat());
            let load = Load {
                card_random: r[8..12].try_into().expect("4 bytes"),
                online_seq: u16::from_be_bytes([r[4], r[5]]),
                old_balance: u32::from_be_bytes(r[..4].try_into().expect("4 bytes")),
                amount,
                transaction_type: p2,
                terminal_id: TERMINAL_ID,
                date: [0x20, 0x26, 0x05, 0x01],
                time: [0x10, 0x20, 0x30],
            };
            let session_key = load.session_key(profile, &self.key).expect("session key");
            let mac2 = load.mac2(&session_key).expect("MAC2");
            let credit = [&load.date[..], &load.time, &mac2].concat();
            self.ok(&[apdu(0x80, 0x52, 0x00, 0x00, &credit), vec![0x04]].concat());
        }
    }

    fn psam(&mut self) {
        let alg = if self.algorithm == SymmetricAlgorithm::Sm4 {
            0x04
        } else {
            0x00
        };
        self.create(0x0015, &[0x28, 0x00, 0x0E, 0xF0, 0xF1, 0xFF, 0xFF]);
        self.create(0x0016, &[0x28, 0x00, 0x06, 0xF0, 0xF1, 0xFF, 0xFF]);
        self.create(0x0017, &[0x28, 0x00, 0x19, 0xF0, 0xF1, 0xFF, 0xFF]);
        let serial = [
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0x00, 0x01, 0x02, 0x03, 0x04,
        ];
        self.ok(&apdu(0x00, 0xD6, 0x95, 0x00, &serial));
        self.ok(&apdu(0x00, 0xD6, 0x96, 0x00, &TERMINAL_ID));
        let info = [
            0x01, 1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1, 0x20, 0x26, 0x01, 0x01, 0x20,
            0x30, 0x12, 0x31,
        ];
        self.ok(&apdu(0x00, 0xD6, 0x97, 0x00, &info));
        let adf = [
            &[0x38, 0x04, 0x00, 0xF1, 0xF1, 0x95, 0xFF, 0xFF][..],
            &PSAM_AID,
        ]
        .concat();
        self.create(0x1001, &adf);
        self.create(0x0000, &[0x3F, 0x02, 0x00, 0x95, 0xF0, 0xFF, 0xFF]);
        let master = self.record(&[0x39, 0xF0, 0xF1, 0x01, 0x33]);
        self.ok(&apdu(0x80, 0xD4, 0x01, 0x00, &master));
        let key = self.key.clone();
        self.external_auth(&key);
        // Purchase master keys (1 and 3 levels), MAC key, encryption key.
        for (usage, version) in [(0x22, 0x01), (0x62, 0x02), (0x26, 0x01), (0x27, 0x01)] {
            let record = self.record(&[usage, version, alg]);
            self.write_key_protected(0x00, 0x00, &record);
        }
    }
}
