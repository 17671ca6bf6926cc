//! The state file: a stored state of the current format version loads and round-trips byte
//! for byte (golden file), other versions and malformed files are refused with typed errors,
//! and a file-backed card reopens where it was.
//!
//! `YKT_BLESS=1 cargo test -p ykt-card-sim --test persistence` rewrites the golden file; do
//! that only together with a new `FORMAT_VERSION`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use ykt_apdu::CardHandler;
use ykt_card_sim::{Card, CardAlgorithm, Chip, ChipKind, FORMAT_VERSION, SimError};

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/state-v1.json")
}

/// An issued SM4 card with two loads, one purchase and a failed PIN try.
fn golden_state() -> Vec<u8> {
    let keys = Keys::new(CardAlgorithm::Sm4);
    let mut card = issue_user_card(&keys, 13);
    let mut psam = issue_psam(&keys, 14);
    load(&mut card, &keys, 0x02, 2_000);
    load(&mut card, &keys, 0x02, 500);
    purchase(&mut card, &mut psam, &keys, 0x01, 321);
    card.select_name(&h(AID));
    assert_eq!(card.sw(&apdu(0x00, 0x20, 0x00, 0x00, &[9, 9])), 0x63C2);
    card.card.state().to_vec()
}

#[test]
fn golden_state_file_loads_and_round_trips() {
    if std::env::var_os("YKT_BLESS").is_some() {
        std::fs::write(golden_path(), golden_state()).unwrap();
    }
    let golden = std::fs::read(golden_path()).unwrap();
    assert_eq!(FORMAT_VERSION, 1);
    assert!(String::from_utf8_lossy(&golden).contains("\"format_version\": 1"));
    let card = Card::from_state(&golden).unwrap();
    assert!(
        card.state() == golden,
        "the stored state re-encodes byte for byte"
    );

    let mut t = Terminal::new(card);
    t.card.power_on();
    t.select_name(&h(AID));
    assert_eq!(t.balance(0x02), 2_500 - 321);
    assert_eq!(t.ok(&h("00B201C417"))[9], 0x06);
    assert_eq!(t.ok(&h("805A000602000008")).len(), 8);
    assert_eq!(t.sw(&apdu(0x00, 0x20, 0x00, 0x00, &PIN)), 0x9000);
}

#[test]
fn other_versions_and_malformed_states_are_refused() {
    let golden = String::from_utf8(std::fs::read(golden_path()).unwrap()).unwrap();
    let v2 = golden.replacen("\"format_version\": 1", "\"format_version\": 2", 1);
    assert!(matches!(
        Card::from_state(v2.as_bytes()),
        Err(SimError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    ));
    assert!(matches!(
        Card::from_state(b"{}"),
        Err(SimError::UnsupportedVersion { found: 0, .. })
    ));
    assert!(matches!(
        Card::from_state(b"not json"),
        Err(SimError::Format(_))
    ));
    let broken = golden.replacen("\"balance\": ", "\"balance\": \"x\", \"b\": ", 1);
    assert!(matches!(
        Card::from_state(broken.as_bytes()),
        Err(SimError::Format(_))
    ));
    let missing = std::env::temp_dir().join("ykt-card-sim-no-such-dir/card.json");
    let err = Card::open(&missing).unwrap_err();
    assert!(matches!(err, SimError::Io { .. }));
    assert!(err.to_string().contains("card.json"));
}

#[test]
fn a_file_backed_card_reopens_where_it_was() {
    let dir = std::env::temp_dir().join(format!("ykt-card-sim-persist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("psam.json");
    let chip = Chip {
        algorithm: CardAlgorithm::TripleDes,
        kind: ChipKind::Psam,
    };
    let mut t = Terminal::new(Card::manufacture_at(&path, chip, &[0xFF; 8]).unwrap());
    t.card.power_on();
    let transport =
        ykt_crypto::SymmetricKey::new(ykt_crypto::SymmetricAlgorithm::Des, &[0xFF; 8]).unwrap();
    t.external_auth(&transport, 0);
    t.create(0x0016, &h("28 0006 F0 F0 FF FF"));
    t.ok(&apdu(0x00, 0xD6, 0x96, 0x00, &TERMINAL_ID));
    let state = t.card.state().to_vec();
    drop(t);
    assert_eq!(std::fs::read(&path).unwrap(), state);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["psam.json"], "no temporary file is left behind");

    let mut t = Terminal::new(Card::open(&path).unwrap());
    assert_eq!(t.card.chip(), chip);
    t.card.power_on();
    assert_eq!(t.ok(&h("00B0960006")), TERMINAL_ID);
    assert!(!format!("{:?}", t.card).contains("FFFFFFFF"));
    std::fs::remove_dir_all(&dir).unwrap();
}
