//! PC/SC end to end through the `ykt` binary: `ykt card serve` puts a virtual user card into
//! vpcd's reader "Virtual PCD 00 00" and a virtual PSAM into "Virtual PCD 00 01", `ykt script
//! run` personalises both through pcscd, and a terminal (`ykt_psam` over `PcscTransport`)
//! loads, buys and reads balance and log, every MAC and the TACs checked against `ykt-crypto`
//! computed here; for 3DES and SM4. pcsc-tools' `scriptor`, a PC/SC client ykt does not share
//! code with, replays an exported script on a served card and must see what `ykt script run`
//! saw.
//!
//! The issuance script carries precomputed cryptograms (external authentication, WRITE KEY
//! under secure messaging, line-protected UPDATE BINARY). They fit because the served chips
//! draw their challenges from `--fixed-random` streams: the script is written against twins of
//! the chips simulated here (same factory state, same seed), which give the challenges the
//! served chips will give, and the script expects exactly those.
//!
//! Like `ykt-apdu`'s PC/SC tests these need pcscd with vpcd (`scripts/pcscd`) and
//! `YKT_PCSC_TESTS=1`; without the variable they say so and pass. They take turns at the two
//! readers ([`readers`]).
#![cfg(feature = "pcsc")]

use serde_json::Value;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use ykt_apdu::pcsc::{PcscTransport, wait_for_card, wait_for_removal};
use ykt_apdu::script::Script;
use ykt_apdu::{CardHandler, Session, Transport};
use ykt_card_sim::{Card, CardAlgorithm, Chip, ChipKind, RandomSource};
use ykt_crypto::secure_messaging::{external_auth_cryptogram, protect_command, write_key_command};
use ykt_crypto::{Load, Profile, Purchase, SymmetricAlgorithm, SymmetricKey};
use ykt_psam::{LoadHost, LoadRequest, PurchaseRequest, Purse, Terminal};

/// How long pcscd may take to notice a card coming or going (it polls vpcd about every 400 ms).
const NOTICE: Duration = Duration::from_secs(10);

/// Whether the PC/SC tests run: `YKT_PCSC_TESTS=1`; unset skips them (saying so), anything
/// else is an error.
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

/// Turns at vpcd's two readers: one test at a time serves cards there.
fn readers() -> MutexGuard<'static, ()> {
    static READERS: Mutex<()> = Mutex::new(());
    READERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A vpcd port and the reader pcscd shows for it.
#[derive(Clone, Copy)]
struct Slot {
    vpcd: &'static str,
    reader: &'static str,
}

/// Where the user card goes.
const CARD_SLOT: Slot = Slot {
    vpcd: "127.0.0.1:35963",
    reader: "Virtual PCD 00 00",
};

/// Where the PSAM goes.
const PSAM_SLOT: Slot = Slot {
    vpcd: "127.0.0.1:35964",
    reader: "Virtual PCD 00 01",
};

/// A scratch directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pcsc-e2e-{test}-{}", std::process::id()));
        drop(std::fs::remove_dir_all(&dir));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop(std::fs::remove_dir_all(&self.0));
    }
}

/// A file path as an argument.
fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// The `--alg` name of an algorithm.
fn alg_name(algorithm: CardAlgorithm) -> &'static str {
    match algorithm {
        CardAlgorithm::TripleDes => "3des",
        CardAlgorithm::Sm4 => "sm4",
    }
}

/// A `ykt card serve` process with its card in a vpcd reader. Dropping it stops the process
/// (SIGTERM, SIGKILL after 10 s) and waits until pcscd sees the reader empty, so that a
/// panicking test leaves neither a process nor a card behind.
struct Served {
    child: Option<Child>,
    slot: Slot,
}

impl Served {
    /// Serves the chip in `state` (a factory chip of `kind` and `algorithm` if the file does
    /// not exist) with randoms seeded by `seed`, and waits until pcscd sees it.
    fn start(state: &Path, kind: &str, algorithm: CardAlgorithm, seed: u64, slot: Slot) -> Self {
        let seed = seed.to_string();
        Self::spawn(
            &[
                "serve",
                "--state",
                arg(state),
                "--kind",
                kind,
                "--alg",
                alg_name(algorithm),
                "--fixed-random",
                &seed,
            ],
            slot,
        )
    }

    /// A card feeder of blank `algorithm` user cards, seen by pcscd.
    fn feed(algorithm: CardAlgorithm, slot: Slot) -> Self {
        Self::spawn(
            &["feed", "--kind", "user", "--alg", alg_name(algorithm)],
            slot,
        )
    }

    /// Runs `ykt --json card ARGS --vpcd SLOT` and waits until pcscd sees its card.
    fn spawn(args: &[&str], slot: Slot) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_ykt"))
            .args(["--json", "card"])
            .args(args)
            .args(["--vpcd", slot.vpcd])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ykt card");
        let mut served = Self {
            child: Some(child),
            slot,
        };
        if let Err(e) = wait_for_card(slot.reader, NOTICE) {
            let (status, stdout, stderr) = served.terminate().expect("a child");
            panic!(
                "no card in {}: {e}; ykt card serve {status}: {stdout}{stderr}",
                slot.reader
            );
        }
        served
    }

    /// Stops the card and returns the JSON record `ykt card serve` printed.
    fn stop(mut self) -> Value {
        let (status, stdout, stderr) = self.terminate().expect("a child");
        assert!(status.success(), "ykt card serve {status}: {stderr}");
        serde_json::from_str(&stdout).expect("ykt card serve prints JSON")
    }

    /// Sends SIGTERM, waits for the exit (SIGKILL after 10 s) and for pcscd to see the reader
    /// empty; the exit status and the output, once.
    fn terminate(&mut self) -> Option<(ExitStatus, String, String)> {
        let mut child = self.child.take()?;
        drop(
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    drop(child.kill());
                    break child.wait().expect("wait for ykt card serve");
                }
            }
        };
        let (stdout, stderr) = (read(child.stdout.take()), read(child.stderr.take()));
        drop(wait_for_removal(self.slot.reader, NOTICE));
        Some((status, stdout, stderr))
    }
}

/// All that a child's pipe holds, as text.
fn read(pipe: Option<impl Read>) -> String {
    let mut text = String::new();
    if let Some(mut pipe) = pipe {
        drop(pipe.read_to_string(&mut text));
    }
    text
}

impl Drop for Served {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Runs `ykt --json ARGS...`; gives the exit code, the parsed stdout (or `Null`) and stderr.
fn ykt(args: &[&str]) -> (i32, Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ykt"))
        .arg("--json")
        .args(args)
        .output()
        .expect("run ykt");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 stdout");
    (
        output.status.code().expect("exit code"),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    )
}

/// Hex to bytes (spaces allowed).
fn h(text: &str) -> Vec<u8> {
    hex::decode(text.replace(' ', "")).expect("hex")
}

/// A short command APDU with data and no Le.
fn apdu(header: [u8; 4], data: &[u8]) -> Vec<u8> {
    [
        &header[..],
        &[u8::try_from(data.len()).expect("short")],
        data,
    ]
    .concat()
}

/// The purse application of the user card.
const AID: &str = "A00000000386980701";
/// The PSAM's purchase application.
const PSAM_AID: &str = "A00000000386980702";
/// The application serial number in EF 0015 (10 bytes) and as a factor (its last 8).
const ASN10: &str = "0001A1B2C3D4E5F60718";
const ASN: [u8; 8] = [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18];
/// The PSAM's terminal ID (its EF 0016), and the load terminal's.
const TERMINAL_ID: [u8; 6] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
const LOAD_TERMINAL_ID: [u8; 6] = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60];
const PIN: [u8; 3] = [0x12, 0x34, 0x56];
const DATE: [u8; 4] = [0x20, 0x26, 0x05, 0x01];
const TIME: [u8; 3] = [0x10, 0x20, 0x30];

/// The issuer's keys for one algorithm and the card's keys derived from them for [`ASN`].
struct Keys {
    algorithm: CardAlgorithm,
    profile: Profile,
    transport: SymmetricKey,
    mf_master: SymmetricKey,
    app_master: SymmetricKey,
    line: SymmetricKey,
    mpk: SymmetricKey,
    mlk: SymmetricKey,
    dpk: SymmetricKey,
    dlk: SymmetricKey,
    dtk: SymmetricKey,
    psam_master: SymmetricKey,
}

impl Keys {
    fn new(algorithm: CardAlgorithm) -> Self {
        let cipher = match algorithm {
            CardAlgorithm::TripleDes => SymmetricAlgorithm::TripleDes,
            CardAlgorithm::Sm4 => SymmetricAlgorithm::Sm4,
        };
        let profile = Profile::for_algorithm(cipher).expect("a profile");
        let key = |seed: u8| {
            let bytes: Vec<u8> = (0..16u8)
                .map(|i| seed.wrapping_mul(31) ^ i.wrapping_mul(17))
                .collect();
            SymmetricKey::new(cipher, &bytes).expect("a key")
        };
        let (mpk, mlk, mtk) = (key(10), key(12), key(13));
        let diversified = |master: &SymmetricKey| profile.diversify(master, &ASN).expect("DK");
        Self {
            algorithm,
            profile,
            transport: SymmetricKey::new(cipher, &[0xFF; 16]).expect("a key"),
            mf_master: key(1),
            app_master: key(2),
            line: key(3),
            dpk: diversified(&mpk),
            dlk: diversified(&mlk),
            dtk: diversified(&mtk),
            mpk,
            mlk,
            psam_master: key(22),
        }
    }

    /// The algorithm ID of key records and INITIALIZE responses.
    fn algorithm_id(&self) -> u8 {
        match self.algorithm {
            CardAlgorithm::TripleDes => 0x00,
            CardAlgorithm::Sm4 => 0x04,
        }
    }
}

/// One channel of an issuance script being written, and a twin of the chip it is for: every
/// command runs on the twin first (which must answer 9000), so the script can carry the
/// cryptograms for the challenges the served chip will give.
struct Twin {
    /// `""` for the card channel, `"@psam "` for the PSAM.
    prefix: &'static str,
    chip: Card,
}

impl Twin {
    /// A factory chip with the transport key FF..FF and randoms seeded by `seed`, as `ykt card
    /// serve --fixed-random SEED` makes it.
    fn new(prefix: &'static str, kind: ChipKind, algorithm: CardAlgorithm, seed: u64) -> Self {
        let mut chip = Card::manufacture(Chip { algorithm, kind }, &[0xFF; 16]).expect("a chip");
        chip.set_random(RandomSource::seeded(seed));
        chip.power_on();
        Self { prefix, chip }
    }

    /// Runs `command` on the twin and writes it to `script` as `text`, expecting `expect`;
    /// gives the response data.
    fn line(&mut self, script: &mut String, text: &str, command: &[u8], expect: &str) -> Vec<u8> {
        let response = self.chip.handle(command);
        let (data, sw) = response.split_at(response.len() - 2);
        assert_eq!(sw, [0x90, 0x00], "the twin refuses {text}");
        writeln!(script, "{}{text} => {expect}", self.prefix).expect("write");
        data.to_vec()
    }

    /// A command whose response is not checked beyond 9000.
    fn send(&mut self, script: &mut String, command: &[u8]) -> Vec<u8> {
        self.line(script, &hex::encode_upper(command), command, "9000")
    }

    /// GET CHALLENGE, expecting the exact challenge the twin gave.
    fn challenge(&mut self, script: &mut String, n: u8) -> Vec<u8> {
        let command = [0x00, 0x84, 0x00, 0x00, n];
        let challenge = self.chip.handle(&command)[..usize::from(n)].to_vec();
        let expect = format!("[{}] 9000", hex::encode_upper(&challenge));
        writeln!(script, "{}0084 0000 {n:02X} => {expect}", self.prefix).expect("write");
        challenge
    }

    /// EXTERNAL AUTHENTICATE with key `id` of the current DF.
    fn external_auth(&mut self, script: &mut String, key: &SymmetricKey, id: u8) {
        let challenge = self.challenge(script, 8);
        let cryptogram = external_auth_cryptogram(key, &challenge).expect("cryptogram");
        self.send(script, &apdu([0x00, 0x82, 0x00, id], &cryptogram));
    }

    /// CREATE FILE `fid`.
    fn create(&mut self, script: &mut String, fid: u16, data: &[u8]) {
        let [hi, lo] = fid.to_be_bytes();
        self.send(script, &apdu([0x80, 0xE0, hi, lo], data));
    }

    /// A plain WRITE KEY (80 D4 01 00) of `header || key`, the key in a `secret` variable.
    fn write_key_plain(&mut self, script: &mut String, var: &str, header: &str, key: &[u8]) {
        writeln!(script, "let secret {var} = {}", hex::encode_upper(key)).expect("write");
        let record = [h(header), key.to_vec()].concat();
        let text = format!("80D4 0100 {:02X} {header} ${var}", record.len());
        self.line(
            script,
            &text,
            &apdu([0x80, 0xD4, 0x01, 0x00], &record),
            "9000",
        );
    }

    /// WRITE KEY under secure messaging (84 D4): `record` encrypted and MACed under `master`
    /// with a fresh challenge.
    fn write_key_protected(
        &mut self,
        script: &mut String,
        master: &SymmetricKey,
        p1: u8,
        p2: u8,
        record: &[u8],
    ) {
        let challenge = self.challenge(script, 4);
        let command = write_key_command(master, &challenge, p1, p2, record).expect("84D4");
        self.send(script, &command);
    }
}

/// The script that issues a user card (channel `card`) and a PSAM (channel `psam`) from
/// factory chips seeded with `card_seed` and `psam_seed`, the way an issuing station does: the
/// transport key opens the MF, ERASE DF, the MF key file and master key, the purse
/// application with its key file and keys (plain 80D4 for the application master key, 84D4
/// under it for the others), its files and EF 0015 (with a line-protection MAC) and 0016; the
/// PSAM's EF 0015-0017 and its application with the purchase master key.
fn issuance_script(keys: &Keys, card_seed: u64, psam_seed: u64) -> String {
    let mut s = String::from("# Issue a user card and a PSAM.\nreset\n@psam reset\n");
    let alg = keys.algorithm_id();

    let mut card = Twin::new("", ChipKind::UserCard, keys.algorithm, card_seed);
    card.send(&mut s, &h("00A4 0000 02 3F00"));
    card.external_auth(&mut s, &keys.transport, 0);
    card.send(&mut s, &h("800E 0000 00"));
    card.create(&mut s, 0x0000, &h("3F 0100 81 F1 FF FF"));
    card.write_key_plain(
        &mut s,
        "MF_MASTER",
        "39 F0 F1 01 33",
        keys.mf_master.expose_secret(),
    );
    writeln!(s, "let AID = {AID}").expect("write");
    card.create(
        &mut s,
        0x3F01,
        &[h("38 0A00 F1 F1 95 FF FF"), h(AID)].concat(),
    );
    card.create(&mut s, 0x0000, &h("3F 0200 95 F0 FF FF"));
    card.write_key_plain(
        &mut s,
        "APP_MASTER",
        "F9 F0 F1 01 33",
        keys.app_master.expose_secret(),
    );
    card.external_auth(&mut s, &keys.app_master, 0);
    let master = &keys.app_master;
    for (kind, id, key) in [
        (0x3E, 0x01, &keys.dpk),
        (0x3F, 0x01, &keys.dlk),
        (0x34, 0x00, &keys.dtk),
    ] {
        let record = [&[kind, 0xF0, 0xF1, 0x01, alg][..], key.expose_secret()].concat();
        card.write_key_protected(&mut s, master, 0x01, id, &record);
    }
    let line_key = [h("36 F0 F1 FF 33"), keys.line.expose_secret().to_vec()].concat();
    card.write_key_protected(&mut s, master, 0x01, 0x00, &line_key);
    card.write_key_protected(
        &mut s,
        master,
        0x01,
        0x00,
        &[h("3A F0 EF 01 33"), PIN.to_vec()].concat(),
    );
    card.create(&mut s, 0x0015, &h("A8 001E F0 F1 FF FF"));
    card.create(&mut s, 0x0016, &h("28 0027 F0 F1 FF FF"));
    card.create(&mut s, 0x0018, &h("2E 0A 17 F0 EF FF FF"));
    card.create(&mut s, 0x0001, &h("2F 0208 F1 00 FF 18"));
    card.create(&mut s, 0x0002, &h("2F 0208 F0 00 FF 18"));
    let file_0015 = h(&format!(
        "0102030405060708 03 01 {ASN10} 20260101 20301231 0000"
    ));
    let challenge = card.challenge(&mut s, 4);
    let update = protect_command(
        &keys.line,
        &challenge,
        [0x00, 0xD6, 0x95, 0x00],
        &file_0015,
        false,
    )
    .expect("04D6");
    card.send(&mut s, &update);
    card.send(&mut s, &apdu([0x00, 0xD6, 0x96, 0x00], &[0x5A; 0x27]));
    // The application answers to its name, and EF 0015 holds the ASN.
    card.line(
        &mut s,
        "00A4 0400 09 $AID",
        &apdu([0x00, 0xA4, 0x04, 0x00], &h(AID)),
        "[6F ?? 84 09 $AID ..] 9000",
    );
    card.line(
        &mut s,
        "00B0 9500 00",
        &h("00B0950000"),
        &format!("[.. {ASN10} 20260101 20301231 0000] 9000"),
    );

    let mut psam = Twin::new("@psam ", ChipKind::Psam, keys.algorithm, psam_seed);
    psam.external_auth(&mut s, &keys.transport, 0);
    psam.send(&mut s, &h("800E 0000 00"));
    psam.create(&mut s, 0x0000, &h("3F 0100 81 F1 FF FF"));
    psam.write_key_plain(
        &mut s,
        "PSAM_MF_MASTER",
        "39 F0 F1 01 33",
        keys.mf_master.expose_secret(),
    );
    psam.create(&mut s, 0x0015, &h("28 000E F0 F1 FF FF"));
    psam.create(&mut s, 0x0016, &h("28 0006 F0 F1 FF FF"));
    psam.create(&mut s, 0x0017, &h("28 0019 F0 F1 FF FF"));
    psam.send(
        &mut s,
        &apdu([0x00, 0xD6, 0x95, 0x00], &h("1122334455667788990001020304")),
    );
    psam.send(&mut s, &apdu([0x00, 0xD6, 0x96, 0x00], &TERMINAL_ID));
    psam.send(
        &mut s,
        &apdu(
            [0x00, 0xD6, 0x97, 0x00],
            &h("01 0102030405060708 0807060504030201 20260101 20301231"),
        ),
    );
    psam.create(
        &mut s,
        0x1001,
        &[h("38 0400 F1 F1 95 FF FF"), h(PSAM_AID)].concat(),
    );
    psam.create(&mut s, 0x0000, &h("3F 0200 95 F0 FF FF"));
    psam.write_key_plain(
        &mut s,
        "PSAM_MASTER",
        "39 F0 F1 01 33",
        keys.psam_master.expose_secret(),
    );
    psam.external_auth(&mut s, &keys.psam_master, 0);
    let mpk = [&[0x22, 0x01, alg][..], keys.mpk.expose_secret()].concat();
    psam.write_key_protected(&mut s, &keys.psam_master, 0x00, 0x00, &mpk);
    s
}

/// A session that keeps every exchange: the terminal's own wire, read back to check the
/// MACs it carried.
struct Tap<'a> {
    inner: &'a mut dyn Session,
    log: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<'a> Tap<'a> {
    fn new(inner: &'a mut dyn Session) -> Self {
        Self {
            inner,
            log: Vec::new(),
        }
    }

    /// The response data of the last command with this CLA and INS.
    fn response(&self, cla: u8, ins: u8) -> Vec<u8> {
        let (_, response) = self
            .log
            .iter()
            .rev()
            .find(|(command, _)| command[..2] == [cla, ins])
            .unwrap_or_else(|| panic!("no {cla:02X}{ins:02X} on the wire"));
        response[..response.len() - 2].to_vec()
    }
}

impl Session for Tap<'_> {
    fn transmit(&mut self, command: &[u8]) -> ykt_apdu::Result<Vec<u8>> {
        let response = self.inner.transmit(command)?;
        self.log.push((command.to_vec(), response.clone()));
        Ok(response)
    }
}

/// The load host, with the load key computed here: checks MAC1, makes MAC2, and keeps the
/// load for the TAC check.
struct Host<'a> {
    keys: &'a Keys,
    load: Option<Load>,
}

impl LoadHost for Host<'_> {
    fn authorize(
        &mut self,
        init: &ykt_psam::LoadInit,
    ) -> ykt_psam::Result<ykt_psam::LoadAuthorization> {
        assert_eq!(init.asn, ASN);
        assert_eq!(
            (init.key_version, init.algorithm_id),
            (0x01, self.keys.algorithm_id())
        );
        let dlk = self
            .keys
            .profile
            .diversify(&self.keys.mlk, &init.asn)
            .expect("DLK");
        assert_eq!(dlk.expose_secret(), self.keys.dlk.expose_secret());
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
            .session_key(self.keys.profile, &dlk)
            .expect("session key");
        assert_eq!(
            load.mac1(&session_key).expect("MAC1"),
            init.mac1,
            "load MAC1"
        );
        let mac2 = load.mac2(&session_key).expect("MAC2");
        self.load = Some(load);
        Ok(ykt_psam::LoadAuthorization {
            date: DATE,
            time: TIME,
            mac2,
        })
    }
}

/// Loads 100.00 into the EP and buys for 12.34 through the two readers, checking load MAC1,
/// the PSAM's MAC1, the card's MAC2 and both TACs; then the balance and the log.
fn transact(keys: &Keys) {
    let mut card_reader = PcscTransport::connect(CARD_SLOT.reader).expect("the card's reader");
    let mut psam_reader = PcscTransport::connect(PSAM_SLOT.reader).expect("the PSAM's reader");
    let mut card_session = card_reader.session().expect("a card session");
    let mut psam_session = psam_reader.session().expect("a PSAM session");
    let mut card = Tap::new(card_session.as_mut());
    let mut psam = Tap::new(psam_session.as_mut());

    ykt_psam::select_purse_application(&mut card, &h(AID)).expect("SELECT");
    let asn = ykt_psam::read_asn(&mut card).expect("ASN");
    assert_eq!(asn, ASN);
    let mut host = Host { keys, load: None };
    let request = LoadRequest {
        purse: Purse::Ep,
        amount: 10_000,
        transaction_type: 0x02,
        key_index: 0x01,
        terminal_id: LOAD_TERMINAL_ID,
    };
    let loaded = ykt_psam::load(&mut card, &mut host, &request, &asn).expect("load");
    let load = host.load.expect("the host authorised the load");
    assert_eq!(
        loaded.tac,
        load.tac(keys.profile, &keys.dtk).expect("TAC"),
        "load TAC"
    );
    assert_eq!(loaded.balance_after(), 10_000);

    let terminal = Terminal::open(&mut psam, &h(PSAM_AID)).expect("PSAM");
    assert_eq!(terminal.terminal_id(), TERMINAL_ID);
    let request = PurchaseRequest {
        purse: Purse::Ep,
        amount: 1_234,
        transaction_type: 0x06,
        key_index: 0x01,
        date: DATE,
        time: TIME,
    };
    let record = terminal
        .purchase(&mut card, &mut psam, &request, &asn, &[])
        .expect("purchase");
    assert_eq!((record.offline_seq, record.terminal_seq), (0, 0));
    let init = card.response(0x80, 0x50);
    let sam = psam.response(0x80, 0x70);
    let debit = card.response(0x80, 0x54);
    let purchase = Purchase {
        card_random: init[11..15].try_into().expect("4 bytes"),
        offline_seq: record.offline_seq,
        amount: 1_234,
        transaction_type: 0x06,
        terminal_id: TERMINAL_ID,
        terminal_seq: record.terminal_seq,
        date: DATE,
        time: TIME,
    };
    let session_key = purchase
        .session_key(keys.profile, &keys.dpk)
        .expect("session key");
    assert_eq!(
        sam[4..8],
        purchase.mac1(&session_key).expect("MAC1"),
        "PSAM MAC1"
    );
    assert_eq!(
        debit[4..8],
        purchase.mac2(&session_key).expect("MAC2"),
        "card MAC2"
    );
    let tac = purchase.tac(keys.profile, &keys.dtk).expect("TAC");
    assert_eq!(
        (debit[..4].to_vec(), record.tac),
        (tac.to_vec(), tac),
        "purchase TAC"
    );

    assert_eq!(
        ykt_psam::balance(&mut card, Purse::Ep).expect("balance"),
        10_000 - 1_234
    );
    let log = ykt_psam::read_log(&mut card).expect("log");
    let entries: Vec<_> = log
        .iter()
        .map(|r| (r.serial, r.amount, r.transaction_type, r.terminal_id))
        .collect();
    assert_eq!(
        entries,
        [
            (0, 1_234, 0x06, TERMINAL_ID),
            (0, 10_000, 0x02, LOAD_TERMINAL_ID)
        ],
        "the log, newest first"
    );
}

/// Serves factory chips, issues them by script through pcscd, transacts through pcscd, and
/// reads the card's state file afterwards.
fn issue_and_transact(algorithm: CardAlgorithm) {
    let name = alg_name(algorithm);
    let scratch = Scratch::new(&format!("issue-{name}"));
    let keys = Keys::new(algorithm);
    let (card_state, psam_state) = (scratch.path("card.json"), scratch.path("psam.json"));
    let card = Served::start(&card_state, "user", algorithm, 11, CARD_SLOT);
    let psam = Served::start(&psam_state, "psam", algorithm, 12, PSAM_SLOT);

    let script = scratch.path("issue.apdu");
    std::fs::write(&script, issuance_script(&keys, 11, 12)).expect("write the script");
    let transcript = scratch.path("issue.txt");
    let (code, rows, stderr) = ykt(&[
        "script",
        "run",
        arg(&script),
        "--reader",
        &format!("card={}", CARD_SLOT.reader),
        "--reader",
        &format!("psam={}", PSAM_SLOT.reader),
        "--transcript",
        arg(&transcript),
    ]);
    assert_eq!(code, 0, "issuance by script ({name}): {stderr}");
    let rows = rows.as_array().expect("transcript rows");
    let writes = rows
        .iter()
        .filter(|row| {
            row["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("84D4"))
        })
        .count();
    assert_eq!(writes, 6, "84D4 key writes");
    let text = std::fs::read_to_string(&transcript).expect("the transcript");
    for key in [&keys.mf_master, &keys.app_master, &keys.psam_master] {
        let secret = hex::encode_upper(key.expose_secret());
        assert!(
            !text.contains(&secret) && !rows.iter().any(|r| r.to_string().contains(&secret)),
            "a key in the transcript"
        );
    }

    transact(&keys);

    let served = card.stop();
    assert_eq!(served["kind"], "user");
    assert_eq!(served["algorithm"], name);
    assert_eq!(served["created"], true);
    assert!(
        served["commands"].as_u64().is_some_and(|n| n > 40),
        "{served}"
    );
    drop(psam);
    let (code, info, stderr) = ykt(&["card", "info", "--state", arg(&card_state)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(info["asn"], ASN10);
    assert_eq!(info["ep_balance"], 10_000 - 1_234);
    let (_, info, _) = ykt(&["card", "info", "--state", arg(&psam_state)]);
    assert_eq!(info["terminal_id"], hex::encode_upper(TERMINAL_ID));
}

#[test]
fn cards_issued_by_script_through_pcscd_load_and_buy() {
    if !enabled("cards_issued_by_script_through_pcscd_load_and_buy") {
        return;
    }
    let _turn = readers();
    issue_and_transact(CardAlgorithm::TripleDes);
    issue_and_transact(CardAlgorithm::Sm4);
}

/// What `scriptor` printed, as (command, response) pairs in ykt's notation: hex without
/// spaces, `reset` and the ATR for a reset, the response data followed by the status word.
fn scriptor_exchanges(output: &str) -> Vec<(String, String)> {
    let mut exchanges = Vec::new();
    let mut command = None;
    let mut response = String::new();
    for line in output.lines() {
        if let Some(sent) = line.strip_prefix("> ") {
            command = Some(sent.replace(' ', ""));
            response.clear();
        } else if let Some(sent) = &command {
            // A response ends with " : " and the status word's meaning; an ATR with the line.
            let (text, done) = match line.strip_prefix("< OK: ") {
                Some(atr) if sent == "RESET" => (atr, true),
                _ => {
                    let text = line.strip_prefix("< ").unwrap_or(line);
                    text.split_once(" : ")
                        .map_or((text, false), |(bytes, _)| (bytes, true))
                }
            };
            response += &text.replace(' ', "");
            if done {
                let command = command.take().expect("a command");
                let command = if command == "RESET" {
                    "reset".to_string()
                } else {
                    command
                };
                exchanges.push((command, std::mem::take(&mut response)));
            }
        }
    }
    exchanges
}

/// A look at a factory card: its MF, a challenge, a missing file and a failed external
/// authentication.
const PROBE: &str = "\
let MF = 315041592E5359532E4444463031
reset
00A4 0000 02 3F00 => [6F ?? 84 0E $MF ..] 9000
0084 0000 08 => [$CHALLENGE:8] 9000
00A4 0400 0E $MF => 9000
00B0 9500 00 => 6A82
0084 0000 08 => [?? ?? ?? ?? ?? ?? ?? ??] 9000
0082 0000 08 0011223344556677
";

#[test]
fn scriptor_replays_an_exported_script_as_ykt_ran_it() {
    if !enabled("scriptor_replays_an_exported_script_as_ykt_ran_it") {
        return;
    }
    let _turn = readers();
    let scratch = Scratch::new("scriptor");
    let (ykt_file, scriptor_file) = (scratch.path("probe.apdu"), scratch.path("probe.scriptor"));
    std::fs::write(&ykt_file, PROBE).expect("write the script");
    let export = Script::parse(PROBE)
        .expect("a script")
        .export("card")
        .expect("an export");
    std::fs::write(&scriptor_file, export).expect("write the export");

    // The same factory card with the same random stream, once for each program.
    let state = scratch.path("card.json");
    let card = Served::start(&state, "user", CardAlgorithm::TripleDes, 7, CARD_SLOT);
    let (code, rows, stderr) = ykt(&[
        "script",
        "run",
        arg(&ykt_file),
        "--raw",
        "--reader",
        CARD_SLOT.reader,
    ]);
    assert_eq!(code, 0, "{stderr}");
    card.stop();
    std::fs::remove_file(&state).expect("remove the card");
    let card = Served::start(&state, "user", CardAlgorithm::TripleDes, 7, CARD_SLOT);
    let output = Command::new("scriptor")
        .args(["-r", CARD_SLOT.reader, arg(&scriptor_file)])
        .stdin(Stdio::null())
        .output()
        .expect("run scriptor (package pcsc-tools)");
    card.stop();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scriptor: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let ours: Vec<(String, String)> = rows
        .as_array()
        .expect("transcript rows")
        .iter()
        .map(|row| {
            let field = |name: &str| row[name].as_str().unwrap_or("").to_string();
            (field("command"), field("response") + &field("sw"))
        })
        .collect();
    assert_eq!(ours.len(), 7, "a reset and six commands: {ours:?}");
    assert_eq!(
        scriptor_exchanges(&stdout),
        ours,
        "scriptor's output:\n{stdout}"
    );
}

#[test]
fn a_roster_is_issued_through_pcscd_from_a_card_feeder() {
    if !enabled("a_roster_is_issued_through_pcscd_from_a_card_feeder") {
        return;
    }
    let _readers = readers();
    let scratch = Scratch::new("feeder");
    let data = scratch.path("data");
    let demo = Command::new(env!("CARGO_BIN_EXE_ykt"))
        .args(["--json", "demo", "--data-dir", arg(&data)])
        .output()
        .expect("run ykt demo");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let roster = scratch.path("roster.csv");
    std::fs::write(
        &roster,
        "name,number,id_number,card_type,school\n\
         Feeder One,F0001,11010519491231002X,student,2133010601\n\
         Feeder Two,F0002,110105201501010017,student,2133010601\n\
         Feeder Three,F0003,110105201501020012,student,2133010601\n",
    )
    .unwrap();
    let feeder = Served::feed(CardAlgorithm::Sm4, CARD_SLOT);
    let issued = Command::new(env!("CARGO_BIN_EXE_ykt"))
        .args(["--json", "issue", "batch", "--data-dir", arg(&data)])
        .args([
            "--roster",
            arg(&roster),
            "--reader",
            CARD_SLOT.reader,
            "--no-prompt",
        ])
        .args(["--transcripts", arg(&scratch.path("transcripts"))])
        .output()
        .expect("run ykt issue batch");
    let fed = feeder.stop();
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let report: Value = serde_json::from_slice(&issued.stdout).unwrap();
    assert_eq!(report["issued"], 3, "{report}");
    assert_eq!(report["max_apdus"], 40);
    assert!(fed["cards_fed"].as_u64().unwrap() >= 3, "{fed}");
    // The transcripts show every exchange and no secret: cryptograms and the PIN redacted.
    let transcripts: Vec<_> = std::fs::read_dir(scratch.path("transcripts"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(transcripts.len(), 3);
    for transcript in &transcripts {
        let commands: Vec<&str> = transcript.lines().filter(|l| l.starts_with("> ")).collect();
        assert_eq!(commands.len(), 40);
        for command in commands {
            if command.starts_with("> 84D4") || command.starts_with("> 0082") {
                assert!(command.contains("**"), "{command}");
            }
            if command.starts_with("> 80D4") {
                assert!(
                    command.ends_with("******"),
                    "the PIN is redacted: {command}"
                );
            }
        }
    }
}
