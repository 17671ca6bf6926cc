//! `ykt bench card`: what a terminal's card transactions cost, against virtual cards
//! (`ykt_card_sim`) personalised here by APDUs, in 3DES and SM4.
//!
//! Two items per algorithm and transport: GET BALANCE round trips (the APDU rate of the
//! transport and the card), and whole purchases through [`ykt_psam::Terminal::purchase`] (card
//! and PSAM, four commands) with the APDUs each takes. The transport is `memory` (the cards in
//! this process behind [`MemoryTransport`]) and, with `--pcsc`, `pcsc`: the user card and the
//! PSAM served on vpcd's first and second readers by threads of this process and reached
//! through pcscd with [`ykt_apdu::pcsc::PcscTransport`], so every APDU crosses pcscd and two
//! TCP hops.
//!
//! The bench keys are lab constants, never real keys. A card's offline serial is 16 bits: the
//! user card is put back to its state after issuance and load every [`RESTORE_EVERY`]
//! purchases, inside the timed loop but too rarely to matter.

use super::crypto::parse_seconds;
use super::measure::ops_per_second;
use crate::error::Result;
use crate::output::{Output, Record, Report};
use clap::Args;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use ykt_apdu::{CardHandler, Command, MemoryTransport, Response, Session, Sw, Transport};
use ykt_card_sim::{Card, CardAlgorithm, Chip, ChipKind};
use ykt_crypto::secure_messaging::external_auth_cryptogram;
use ykt_crypto::{Load, Profile, SymmetricAlgorithm, SymmetricKey};
use ykt_psam::{
    LoadAuthorization, LoadHost, LoadInit, LoadRequest, PurchaseRequest, Purse, Terminal,
    TerminalError, balance, load, read_asn, select_purse_application,
};

/// Arguments of `ykt bench card`.
#[derive(Args)]
pub struct CardArgs {
    /// Seconds to measure each item.
    #[arg(long, default_value_t = 1.0, value_parser = parse_seconds, value_name = "S")]
    seconds: f64,
    /// Also measure through pcscd and vpcd (pcscd with vsmartcard's vpcd must run, e.g. from
    /// `scripts/pcscd`; the cards take the readers "Virtual PCD 00 00" and "Virtual PCD 00 01").
    #[cfg(feature = "pcsc")]
    #[arg(long)]
    pcsc: bool,
}

/// The bench's lab master key.
const KEY: [u8; 16] = *b"ykt bench card 1";
/// The factory transport key of the virtual chips.
const TRANSPORT_KEY: [u8; 16] = [0xFF; 16];
/// Purse application of the user card.
const AID: [u8; 9] = [0xA0, 0x00, 0x00, 0x00, 0x03, 0x86, 0x98, 0x07, 0x01];
/// Purchase application of the PSAM.
const PSAM_AID: [u8; 9] = [0xA0, 0x00, 0x00, 0x00, 0x03, 0x86, 0x98, 0x07, 0x02];
/// The card's ASN (diversification factor).
const ASN: [u8; 8] = [0x20, 0x26, 0x00, 0x00, 0x00, 0x00, 0x10, 0x01];
/// The PSAM's terminal ID.
const TERMINAL_ID: [u8; 6] = [0x00, 0x00, 0x00, 0x00, 0xBE, 0x01];
/// What the purse holds after issuance: enough for every purchase between restores.
const LOADED: u32 = 1_000_000_000;
/// The user card returns to its loaded state after this many purchases (its offline serial
/// stops at 65535).
const RESTORE_EVERY: u64 = 60_000;

impl CardArgs {
    /// Issues a card and a PSAM per algorithm and measures each item on each transport.
    pub fn run(self) -> Result<Report> {
        let mut rows = Vec::new();
        for algorithm in [CardAlgorithm::TripleDes, CardAlgorithm::Sm4] {
            let rig = Rig::issue(algorithm)?;
            let mut card = MemoryTransport::new("card", rig.card.clone());
            let mut psam = MemoryTransport::new("psam", rig.psam.clone());
            rows.extend(rig.measure("memory", &mut card, &mut psam, self.seconds)?);
            #[cfg(feature = "pcsc")]
            if self.pcsc {
                rows.extend(pcsc::measure(&rig, self.seconds)?);
            }
        }
        Ok(Report::ok(Output::List(rows)))
    }
}

/// A virtual card shared between this thread and the one serving it to vpcd.
#[derive(Clone)]
struct SharedCard(Arc<Mutex<Card>>);

impl SharedCard {
    fn lock(&self) -> MutexGuard<'_, Card> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CardHandler for SharedCard {
    fn power_on(&mut self) -> Vec<u8> {
        self.lock().power_on()
    }

    fn handle(&mut self, command: &[u8]) -> Vec<u8> {
        self.lock().handle(command)
    }
}

/// A session that counts the commands it transmits (GET RESPONSE rounds included).
struct Counted<'a> {
    inner: &'a mut dyn Session,
    commands: u64,
}

impl Session for Counted<'_> {
    fn transmit(&mut self, command: &[u8]) -> ykt_apdu::Result<Vec<u8>> {
        self.commands += 1;
        self.inner.transmit(command)
    }
}

/// An issued, loaded user card and a PSAM of one algorithm.
struct Rig {
    algorithm: CardAlgorithm,
    card: SharedCard,
    psam: SharedCard,
    /// The user card's state after issuance and load.
    loaded: Vec<u8>,
}

/// The bench's load host: the card's load key, checking MAC1 and making MAC2.
struct Host {
    profile: Profile,
    dlk: SymmetricKey,
}

impl LoadHost for Host {
    fn authorize(&mut self, init: &LoadInit) -> ykt_psam::Result<LoadAuthorization> {
        let (date, time) = ([0x20, 0x26, 0x01, 0x01], [0x08, 0x00, 0x00]);
        let load = Load {
            card_random: init.card_random,
            online_seq: init.online_seq,
            old_balance: init.old_balance,
            amount: init.request.amount,
            transaction_type: init.request.transaction_type,
            terminal_id: init.request.terminal_id,
            date,
            time,
        };
        let host = |e: ykt_crypto::CryptoError| TerminalError::Host(e.to_string());
        let session_key = load.session_key(self.profile, &self.dlk).map_err(host)?;
        if load.mac1(&session_key).map_err(host)? != init.mac1 {
            return Err(TerminalError::Host("MAC1 does not verify".into()));
        }
        let mac2 = load.mac2(&session_key).map_err(host)?;
        Ok(LoadAuthorization { date, time, mac2 })
    }
}

impl Rig {
    /// Personalises a user card (purchase key 01, load key 01, TAC key, EF 0015, log, EP) and
    /// a PSAM (terminal ID, purchase master key usage 22 version 01) by APDUs, and loads the
    /// purse.
    fn issue(algorithm: CardAlgorithm) -> Result<Self> {
        let symmetric = match algorithm {
            CardAlgorithm::TripleDes => SymmetricAlgorithm::TripleDes,
            CardAlgorithm::Sm4 => SymmetricAlgorithm::Sm4,
        };
        let profile = Profile::for_algorithm(symmetric)?;
        let master = |role: u8| {
            let mut key = KEY;
            key[15] = role;
            SymmetricKey::new(symmetric, &key)
        };
        let (mpk, mlk, mtk, app) = (master(1)?, master(2)?, master(3)?, master(4)?);
        let alg = profile.algorithm_id(&mpk)?;

        let mut personalise = Personalise::factory(algorithm, ChipKind::UserCard)?;
        personalise.application(0x3F01, &AID, &app)?;
        for (kind, id, key) in [(0x3E, 1, &mpk), (0x3F, 1, &mlk), (0x34, 0, &mtk)] {
            let key = profile.diversify(key, &ASN)?;
            let record = [&[kind, 0xF0, 0xF1, 0x01, alg][..], key.expose_secret()].concat();
            personalise.ok(0x80, 0xD4, 0x01, id, &record)?;
        }
        for (fid, header) in [
            (0x0015, [0x28, 0x00, 0x1E, 0xF0, 0xF1, 0xFF, 0xFF]),
            (0x0018, [0x2E, 0x0A, 0x17, 0xF0, 0xEF, 0xFF, 0xFF]),
            (0x0002, [0x2F, 0x02, 0x08, 0xF0, 0x00, 0xFF, 0x18]),
        ] {
            let [hi, lo] = u16::to_be_bytes(fid);
            personalise.ok(0x80, 0xE0, hi, lo, &header)?;
        }
        let file_0015 = [&[0x01; 12][..], &ASN, &[0x20; 10]].concat();
        personalise.ok(0x00, 0xD6, 0x95, 0x00, &file_0015)?;
        let card = SharedCard(Arc::new(Mutex::new(personalise.card)));

        let mut personalise = Personalise::factory(algorithm, ChipKind::Psam)?;
        personalise.ok(
            0x80,
            0xE0,
            0x00,
            0x16,
            &[0x28, 0x00, 0x06, 0xF0, 0xF1, 0xFF, 0xFF],
        )?;
        personalise.ok(0x00, 0xD6, 0x96, 0x00, &TERMINAL_ID)?;
        personalise.application(0x1001, &PSAM_AID, &app)?;
        let record = [&[0x22, 0x01, alg][..], mpk.expose_secret()].concat();
        personalise.ok(0x80, 0xD4, 0x00, 0x00, &record)?;
        let psam = SharedCard(Arc::new(Mutex::new(personalise.card)));

        let mut transport = MemoryTransport::new("card", card.clone());
        let mut session = transport.session().map_err(TerminalError::from)?;
        select_purse_application(session.as_mut(), &AID)?;
        let request = LoadRequest {
            purse: Purse::Ep,
            amount: LOADED,
            transaction_type: 0x02,
            key_index: 0x01,
            terminal_id: TERMINAL_ID,
        };
        let mut host = Host {
            profile,
            dlk: profile.diversify(&mlk, &ASN)?,
        };
        load(session.as_mut(), &mut host, &request, &ASN)?;
        let loaded = card.lock().state().to_vec();
        Ok(Self {
            algorithm,
            card,
            psam,
            loaded,
        })
    }

    /// Puts the user card back to its loaded state and selects its purse application again.
    fn restore(&self, card: &mut dyn Session) -> Result<()> {
        *self.card.lock() = Card::from_state(&self.loaded)?;
        select_purse_application(card, &AID)?;
        Ok(())
    }

    /// GET BALANCE and purchase rows for the cards behind `card` and `psam`.
    fn measure(
        &self,
        transport: &'static str,
        card: &mut dyn Transport,
        psam: &mut dyn Transport,
        seconds: f64,
    ) -> Result<Vec<Record>> {
        let (mut card, mut psam) = (
            card.session().map_err(TerminalError::from)?,
            psam.session().map_err(TerminalError::from)?,
        );
        let (card, psam) = (card.as_mut(), psam.as_mut());
        let terminal = Terminal::open(psam, &PSAM_AID)?;
        self.restore(card)?;
        let asn = read_asn(card)?;
        let balance_rate = ops_per_second(seconds, |_| balance(card, Purse::Ep).map(drop))?;

        let request = PurchaseRequest {
            purse: Purse::Ep,
            amount: 1,
            transaction_type: 0x06,
            key_index: 0x01,
            date: [0x20, 0x26, 0x05, 0x01],
            time: [0x12, 0x00, 0x00],
        };
        let (mut counted_card, mut counted_psam) = (
            Counted {
                inner: card,
                commands: 0,
            },
            Counted {
                inner: psam,
                commands: 0,
            },
        );
        terminal.purchase(&mut counted_card, &mut counted_psam, &request, &asn, &[])?;
        let apdus = counted_card.commands + counted_psam.commands;
        let (card, psam) = (counted_card.inner, counted_psam.inner);
        let mut done = 1u64;
        let purchase_rate = ops_per_second(seconds, |_| -> Result<()> {
            if done.is_multiple_of(RESTORE_EVERY) {
                self.restore(card)?;
            }
            done += 1;
            terminal.purchase(card, psam, &request, &asn, &[])?;
            Ok(())
        })?;
        Ok(vec![
            self.row("GET BALANCE", transport, balance_rate, 1),
            self.row("purchase", transport, purchase_rate, apdus),
        ])
    }

    fn row(&self, item: &str, transport: &str, ops: f64, apdus: u64) -> Record {
        let algorithm = match self.algorithm {
            CardAlgorithm::TripleDes => "3DES",
            CardAlgorithm::Sm4 => "SM4",
        };
        Record::new()
            .with("item", item)
            .with("algorithm", algorithm)
            .with("transport", transport)
            .with("ops_per_s", ops.round() as u64)
            .with("apdus_per_op", apdus)
            .with("apdus_per_s", (ops * apdus as f64).round() as u64)
            .with("us_per_op", (1e9 / ops).round() / 1000.0)
    }
}

/// A factory chip being personalised by APDUs.
struct Personalise {
    card: Card,
}

impl Personalise {
    /// A factory chip of `kind`, erased after external authentication with the transport key,
    /// with an MF key file.
    fn factory(algorithm: CardAlgorithm, kind: ChipKind) -> Result<Self> {
        let mut card = Card::manufacture(Chip { algorithm, kind }, &TRANSPORT_KEY)?;
        card.power_on();
        let mut personalise = Self { card };
        personalise.authenticate(&TRANSPORT_KEY)?;
        personalise.ok(0x80, 0x0E, 0x00, 0x00, &[])?;
        personalise.ok(
            0x80,
            0xE0,
            0x00,
            0x00,
            &[0x3F, 0x01, 0x00, 0x81, 0xF1, 0xFF, 0xFF],
        )?;
        Ok(personalise)
    }

    /// Sends a command that must succeed.
    fn ok(&mut self, cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> ykt_psam::Result<()> {
        let command = Command::new(cla, ins, p1, p2).with_data(data).to_bytes()?;
        match Response::parse(&self.card.handle(&command))?.sw {
            Sw::Ok => Ok(()),
            sw => Err(TerminalError::Status {
                command: "personalisation",
                sw,
            }),
        }
    }

    /// External authentication with key 39/00 `key` (of the chip's algorithm).
    fn authenticate(&mut self, key: &[u8]) -> Result<()> {
        let symmetric = match self.card.chip().algorithm {
            CardAlgorithm::TripleDes => SymmetricAlgorithm::TripleDes,
            CardAlgorithm::Sm4 => SymmetricAlgorithm::Sm4,
        };
        let challenge = self.card.handle(&[0x00, 0x84, 0x00, 0x00, 0x08]);
        let key = SymmetricKey::new(symmetric, key)?;
        let cryptogram = external_auth_cryptogram(&key, &challenge[..8])?;
        Ok(self.ok(0x00, 0x82, 0x00, 0x00, &cryptogram)?)
    }

    /// Creates the application DF `fid` named `aid` with a key file holding the external
    /// authentication key `master`, and authenticates with it.
    fn application(&mut self, fid: u16, aid: &[u8], master: &SymmetricKey) -> Result<()> {
        let [hi, lo] = fid.to_be_bytes();
        let header = [0x38, 0x0A, 0x00, 0xF1, 0xF1, 0x95, 0xFF, 0xFF];
        self.ok(0x80, 0xE0, hi, lo, &[&header[..], aid].concat())?;
        self.ok(
            0x80,
            0xE0,
            0x00,
            0x00,
            &[0x3F, 0x02, 0x00, 0x95, 0xF0, 0xFF, 0xFF],
        )?;
        let record = [&[0x39, 0xF0, 0xF1, 0x01, 0x33][..], master.expose_secret()].concat();
        self.ok(0x80, 0xD4, 0x01, 0x00, &record)?;
        self.authenticate(master.expose_secret())
    }
}

/// The same through pcscd: the cards served on vpcd's two readers.
#[cfg(feature = "pcsc")]
mod pcsc {
    use super::{Rig, SharedCard};
    use crate::error::{CliError, Result};
    use crate::output::Record;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::{self, JoinHandle};
    use std::time::Duration;
    use ykt_apdu::pcsc::{PcscTransport, VpcdLink, wait_for_card};

    /// vpcd's readers (Debian's `/etc/reader.conf.d/vpcd`: one port per reader): the user card
    /// goes into the first, the PSAM into the second.
    const SLOTS: [(&str, &str); 2] = [
        ("127.0.0.1:35963", "Virtual PCD 00 00"),
        ("127.0.0.1:35964", "Virtual PCD 00 01"),
    ];

    /// How long pcscd may take to see a card inserted (it polls vpcd about every 400 ms).
    const NOTICE: Duration = Duration::from_secs(5);

    fn failed(context: &str) -> impl FnOnce(ykt_apdu::ApduError) -> CliError + '_ {
        move |source| CliError::Pcsc {
            context: context.to_string(),
            source,
        }
    }

    /// Serves the rig's cards on vpcd, measures through pcscd, and removes the cards.
    pub fn measure(rig: &Rig, seconds: f64) -> Result<Vec<Record>> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut servers: Vec<JoinHandle<ykt_apdu::Result<()>>> = Vec::new();
        let mut insert = |card: &SharedCard, (addr, reader): (&str, &str)| {
            let link = VpcdLink::connect(addr).map_err(failed("cannot serve the card"))?;
            let (mut card, stop) = (card.clone(), stop.clone());
            servers.push(thread::spawn(move || link.serve(&mut card, &stop)));
            wait_for_card(reader, NOTICE).map_err(failed(reader))?;
            PcscTransport::connect(reader).map_err(failed(reader))
        };
        let result = insert(&rig.card, SLOTS[0]).and_then(|mut card| {
            let mut psam = insert(&rig.psam, SLOTS[1])?;
            rig.measure("pcsc", &mut card, &mut psam, seconds)
        });
        stop.store(true, Ordering::Release);
        for server in servers {
            let served = server.join().unwrap_or_else(|_| {
                Err(ykt_apdu::ApduError::Transport(
                    "the vpcd thread panicked".into(),
                ))
            });
            served.map_err(failed("cannot serve the card"))?;
        }
        result
    }
}
