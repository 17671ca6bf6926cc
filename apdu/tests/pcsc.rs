//! PC/SC end to end: an in-process card served through vpcd, reached through pcscd with
//! [`PcscTransport`].
//!
//! These tests start nothing themselves: they need pcscd running with vsmartcard's vpcd driver
//! (readers "Virtual PCD 00 00" and "Virtual PCD 00 01"), which `scripts/pcscd` installs and
//! starts, and `YKT_PCSC_TESTS=1`. When the variable is unset they print why and pass, so that
//! `cargo test --all-features` stays usable on a machine without pcscd; `scripts/test` sets it,
//! so there a missing or broken pcscd fails the run instead of being skipped. Any other value
//! than `1` is an error, not a way to skip.
//!
//! The tests that use "Virtual PCD 00 00" take turns (one card per vpcd port).
#![cfg(feature = "pcsc")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use ykt_apdu::pcsc::{
    DEFAULT_VPCD_ADDR, PcscTransport, VPCD_READER, VpcdLink, list_readers, wait_for_card,
    wait_for_removal,
};
use ykt_apdu::{ApduError, CardHandler, Command, Sw, Transport, exchange};

/// The card's ATR: T=0, historical bytes "YKT-TEST".
const ATR: [u8; 12] = [
    0x3B, 0x68, 0x00, 0x00, b'Y', b'K', b'T', b'-', b'T', b'E', b'S', b'T',
];

/// How long pcscd may take to notice a card coming or going (it polls vpcd about every 400 ms).
const NOTICE: Duration = Duration::from_secs(10);

/// The bytes GET DATA returns through 61xx chaining: more than one short response.
const BIG: usize = 300;

fn enabled(test: &str) -> bool {
    match std::env::var("YKT_PCSC_TESTS") {
        Err(std::env::VarError::NotPresent) => {
            eprintln!(
                "skipping {test}: needs pcscd with vpcd running (scripts/pcscd) and YKT_PCSC_TESTS=1"
            );
            false
        }
        Ok(value) if value == "1" => true,
        Ok(other) => panic!("YKT_PCSC_TESTS is {other:?}: set it to 1, or unset it to skip"),
        Err(e) => panic!("YKT_PCSC_TESTS: {e}"),
    }
}

/// Turns at "Virtual PCD 00 00".
fn first_reader() -> MutexGuard<'static, ()> {
    static READER: Mutex<()> = Mutex::new(());
    READER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the card saw, readable while it is served on another thread.
#[derive(Default)]
struct Seen {
    power_ons: AtomicUsize,
    commands: AtomicUsize,
}

/// A small card: ECHO (INS 10), GET DATA (INS CA, 300 bytes through 61xx and GET RESPONSE),
/// GET CHALLENGE (INS 84, wants Le = 8, else 6C08), COUNT (INS 02: commands since power-on).
struct TestCard {
    seen: Arc<Seen>,
    since_power_on: u32,
    pending: Vec<u8>,
}

impl TestCard {
    fn new(seen: Arc<Seen>) -> Self {
        Self {
            seen,
            since_power_on: 0,
            pending: Vec::new(),
        }
    }

    /// Answers up to `ne` pending bytes, with 61xx while more remain.
    fn drain(&mut self, ne: usize) -> Vec<u8> {
        let mut response: Vec<u8> = self.pending.drain(..ne.min(self.pending.len())).collect();
        match self.pending.len() {
            0 => response.extend([0x90, 0x00]),
            rest => response.extend([0x61, u8::try_from(rest).unwrap_or(0)]),
        }
        response
    }
}

impl CardHandler for TestCard {
    fn power_on(&mut self) -> Vec<u8> {
        self.seen.power_ons.fetch_add(1, Ordering::SeqCst);
        self.since_power_on = 0;
        self.pending.clear();
        ATR.to_vec()
    }

    fn handle(&mut self, command: &[u8]) -> Vec<u8> {
        self.seen.commands.fetch_add(1, Ordering::SeqCst);
        self.since_power_on += 1;
        let Ok(command) = Command::parse(command) else {
            return vec![0x67, 0x00];
        };
        let ne = command.le.unwrap_or(0) as usize;
        match command.ins {
            0x10 => [command.data.as_slice(), &[0x90, 0x00]].concat(),
            0xCA => {
                self.pending = (0..BIG).map(|i| i as u8).collect();
                vec![0x61, 0x00]
            }
            0xC0 if !self.pending.is_empty() => self.drain(ne),
            0x84 if ne != 8 => vec![0x6C, 0x08],
            0x84 => vec![1, 2, 3, 4, 5, 6, 7, 8, 0x90, 0x00],
            0x02 => [&self.since_power_on.to_be_bytes()[..], &[0x90, 0x00]].concat(),
            0xC0 => vec![0x69, 0x85],
            _ => vec![0x6D, 0x00],
        }
    }
}

/// A [`TestCard`] inserted into vpcd's first reader, served on its own thread.
struct Inserted {
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ykt_apdu::Result<()>>,
}

impl Inserted {
    fn new(quickack: bool) -> Self {
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut link = VpcdLink::connect(DEFAULT_VPCD_ADDR).expect("vpcd is listening");
        link.set_quickack(quickack);
        let thread = thread::spawn({
            let (seen, stop) = (seen.clone(), stop.clone());
            move || link.serve(&mut TestCard::new(seen), &stop)
        });
        wait_for_card(VPCD_READER, NOTICE).expect("pcscd sees the card");
        Self { seen, stop, thread }
    }

    /// Removes the card and waits until pcscd has noticed.
    fn remove(self) {
        self.stop.store(true, Ordering::Release);
        assert_eq!(self.thread.join().expect("card thread"), Ok(()));
        wait_for_removal(VPCD_READER, NOTICE).expect("pcscd sees the reader empty");
    }
}

fn count(transport: &mut PcscTransport) -> u32 {
    let mut session = transport.session().unwrap();
    let response = exchange(session.as_mut(), &Command::new(0, 0x02, 0, 0).with_le(4)).unwrap();
    assert_eq!(response.sw, Sw::Ok);
    u32::from_be_bytes(response.data.try_into().unwrap())
}

#[test]
fn apdus_reach_a_virtual_card_through_pcscd() {
    if !enabled("apdus_reach_a_virtual_card_through_pcscd") {
        return;
    }
    let _turn = first_reader();
    let card = Inserted::new(true);
    let mut transport = PcscTransport::connect("virtual pcd 00 00").unwrap();
    assert_eq!(transport.name(), VPCD_READER);
    assert_eq!(transport.atr().unwrap(), ATR);

    {
        let mut session = transport.session().unwrap();
        // Raw: exactly what the card answered.
        assert_eq!(
            session
                .transmit(&[0x00, 0x10, 0x00, 0x00, 0x03, 0xAA, 0xBB, 0xCC, 0x00])
                .unwrap(),
            [0xAA, 0xBB, 0xCC, 0x90, 0x00]
        );
        assert_eq!(
            session.transmit(&[0x00, 0xCA, 0x00, 0x00, 0x00]).unwrap(),
            [0x61, 0x00]
        );
        assert_eq!(
            session.transmit(&[0x00, 0xC0, 0x00, 0x00, 0x10]).unwrap()[16..],
            [0x61, 0x00] // 284 left: 256 or more
        );
        // 61xx: GET RESPONSE rounds (Le 00 = 256, then the rest) give the whole answer.
        let response =
            exchange(session.as_mut(), &Command::new(0, 0xCA, 0, 0).with_le(256)).unwrap();
        assert_eq!(response.sw, Sw::Ok);
        assert_eq!(response.data, (0..BIG).map(|i| i as u8).collect::<Vec<_>>());
        // 6Cxx: re-sent with the Le the card asked for.
        let response = exchange(session.as_mut(), &Command::new(0, 0x84, 0, 0).with_le(4)).unwrap();
        assert_eq!(response.data, [1, 2, 3, 4, 5, 6, 7, 8]);
    }
    assert_eq!(count(&mut transport), 9);
    assert_eq!(card.seen.commands.load(Ordering::SeqCst), 9);

    // Our own reset: a new ATR, the card's state is gone, and no CardReset report.
    let power_ons = card.seen.power_ons.load(Ordering::SeqCst);
    assert_eq!(transport.reset().unwrap(), ATR);
    assert!(card.seen.power_ons.load(Ordering::SeqCst) > power_ons);
    assert_eq!(count(&mut transport), 1);

    // Another program resets the card: reported once, then business as usual.
    let mut other = PcscTransport::connect(VPCD_READER).unwrap();
    assert_eq!(count(&mut other), 2);
    assert_eq!(other.reset().unwrap(), ATR);
    assert_eq!(transport.session().err(), Some(ApduError::CardReset));
    assert_eq!(count(&mut transport), 1);
    assert_eq!(count(&mut transport), 2);
    drop(other);

    // The card is removed, then another one is inserted: "no card", then CardReset once.
    card.remove();
    assert_eq!(
        transport.session().err(),
        Some(ApduError::Transport(format!(
            "no card in reader {VPCD_READER:?}"
        )))
    );
    let card = Inserted::new(true);
    assert_eq!(transport.session().err(), Some(ApduError::CardReset));
    assert_eq!(count(&mut transport), 1);
    assert_eq!(transport.atr().unwrap(), ATR);
    drop(transport);
    card.remove();
}

#[test]
fn readers_are_listed_and_bad_choices_are_explained() {
    if !enabled("readers_are_listed_and_bad_choices_are_explained") {
        return;
    }
    let readers = list_readers().unwrap();
    assert!(
        readers.iter().any(|r| r == "Virtual PCD 00 00"),
        "{readers:?}"
    );
    assert!(
        readers.iter().any(|r| r == "Virtual PCD 00 01"),
        "{readers:?}"
    );

    let error = |selector| PcscTransport::connect(selector).err().unwrap().to_string();
    assert!(
        error("no such reader")
            .starts_with("transport: no reader matches \"no such reader\" (readers: "),
        "{}",
        error("no such reader")
    );
    assert_eq!(
        error("Virtual PCD"),
        "transport: \"Virtual PCD\" matches several readers: \"Virtual PCD 00 00\", \"Virtual PCD 00 01\""
    );
    // Nothing serves vpcd's second port in these tests.
    assert_eq!(
        error("Virtual PCD 00 01"),
        "transport: no card in reader \"Virtual PCD 00 01\""
    );
    assert_eq!(
        wait_for_card("PCD 00 01", Duration::from_millis(200)).err(),
        Some(ApduError::Transport(
            "no card in reader \"Virtual PCD 00 01\" after 0.2 s".into()
        ))
    );
}

/// Round trips of a trivial command through pcscd and vpcd, with and without re-arming
/// `TCP_QUICKACK`. Run with `YKT_PCSC_TESTS=1 cargo test -p ykt-apdu --features pcsc --release
/// --test pcsc -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: prints APDU round trips per second"]
fn apdu_rate() {
    if !enabled("apdu_rate") {
        return;
    }
    let _turn = first_reader();
    for (quickack, rounds) in [(true, 5000), (false, 50)] {
        let card = Inserted::new(quickack);
        let mut transport = PcscTransport::connect(VPCD_READER).unwrap();
        {
            let mut session = transport.session().unwrap();
            let count = [0x00, 0x02, 0x00, 0x00, 0x04];
            session.transmit(&count).unwrap();
            let start = Instant::now();
            for _ in 0..rounds {
                session.transmit(&count).unwrap();
            }
            let elapsed = start.elapsed();
            println!(
                "TCP_QUICKACK {}: {rounds} APDUs in {:.3} s, {:.0} APDU/s, {:.0} µs each",
                if quickack { "on" } else { "off" },
                elapsed.as_secs_f64(),
                f64::from(rounds) / elapsed.as_secs_f64(),
                elapsed.as_secs_f64() * 1e6 / f64::from(rounds),
            );
        }
        // One transaction per APDU: what a caller opening a session per command pays.
        if quickack {
            let start = Instant::now();
            for _ in 0..rounds {
                count(&mut transport);
            }
            let elapsed = start.elapsed();
            println!(
                "TCP_QUICKACK on, one session per APDU: {:.0} APDU/s",
                f64::from(rounds) / elapsed.as_secs_f64()
            );
        }
        drop(transport);
        card.remove();
    }
}
