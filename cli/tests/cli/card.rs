//! `ykt card info` describes virtual cards in state files without changing them; `ykt card
//! serve` needs PC/SC support, refuses options that do not fit the card, and serves a card to
//! vpcd (played here by the test, so pcscd is not needed) until vpcd closes the connection.

use crate::support::{ykt, ykt_json};
use serde_json::json;
use std::path::PathBuf;
use ykt_card_sim::{Card, CardAlgorithm, Chip, ChipKind};

/// A fresh path in the test scratch directory (nothing there yet).
fn scratch(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("card-{name}"));
    drop(std::fs::remove_file(&path));
    path
}

fn arg(path: &std::path::Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn info_describes_factory_chips_and_leaves_the_file_alone() {
    for (kind, algorithm, name) in [
        (
            ChipKind::UserCard,
            CardAlgorithm::TripleDes,
            ("user", "3des"),
        ),
        (ChipKind::Psam, CardAlgorithm::Sm4, ("psam", "sm4")),
    ] {
        let state = scratch(&format!("info-{}-{}.json", name.0, name.1));
        Card::manufacture_at(&state, Chip { algorithm, kind }, &[0xFF; 16]).expect("a card");
        let before = std::fs::read(&state).expect("the state");
        let info = ykt_json(&["card", "info", "--state", arg(&state)]);
        assert_eq!(info["kind"], name.0);
        assert_eq!(info["algorithm"], name.1);
        assert!(
            info["atr"]
                .as_str()
                .is_some_and(|atr| atr.starts_with("3B")),
            "{info}"
        );
        for absent in ["asn", "ep_balance", "terminal_id"] {
            assert_eq!(info[absent], json!(null), "{info}");
        }
        assert_eq!(std::fs::read(&state).expect("the state"), before);
        std::fs::remove_file(&state).expect("remove the state");
    }
}

#[test]
fn info_refuses_missing_and_malformed_state_files() {
    let missing = scratch("missing.json");
    let run = ykt(&["card", "info", "--state", arg(&missing)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("ykt: error: cannot read "),
        "{}",
        run.stderr
    );

    let malformed = scratch("malformed.json");
    std::fs::write(&malformed, "{\"format_version\": 1}").expect("write");
    let run = ykt(&["card", "info", "--state", arg(&malformed)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("malformed card state"),
        "{}",
        run.stderr
    );
}

#[cfg(not(feature = "pcsc"))]
#[test]
fn serve_needs_pcsc_support_and_creates_nothing_without_it() {
    let state = scratch("no-pcsc.json");
    let run = ykt(&["card", "serve", "--state", arg(&state)]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "ykt: error: PC/SC support is not built in; build with --features pcsc\n"
    );
    assert!(!state.exists());
}

/// vpcd's side of the link, played by the test: frames of a 2-byte length and a payload.
#[cfg(feature = "pcsc")]
mod fake_vpcd {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// Sends one frame.
    pub fn send(stream: &mut TcpStream, payload: &[u8]) {
        let length = u16::try_from(payload.len())
            .expect("short frame")
            .to_be_bytes();
        stream
            .write_all(&[&length[..], payload].concat())
            .expect("send");
    }

    /// Receives one frame.
    pub fn receive(stream: &mut TcpStream) -> Vec<u8> {
        let mut length = [0; 2];
        stream.read_exact(&mut length).expect("a frame length");
        let mut payload = vec![0; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut payload).expect("a frame");
        payload
    }
}

#[cfg(feature = "pcsc")]
#[test]
fn serve_answers_vpcd_persists_and_reports_when_vpcd_closes() {
    use fake_vpcd::{receive, send};
    use std::net::TcpListener;
    use std::process::{Command, Stdio};

    let state = scratch("served.json");
    let challenge = || {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = listener.local_addr().expect("its address").to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_ykt"))
            .args([
                "--json",
                "card",
                "serve",
                "--state",
                arg(&state),
                "--kind",
                "psam",
            ])
            .args(["--alg", "sm4", "--vpcd", &addr, "--fixed-random", "5"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ykt card serve");
        let (mut vpcd, _) = listener.accept().expect("the card connects");
        send(&mut vpcd, &[0x04]);
        let atr = receive(&mut vpcd);
        send(&mut vpcd, &[0x00, 0x84, 0x00, 0x00, 0x08]);
        let response = receive(&mut vpcd);
        drop(vpcd);
        let output = child.wait_with_output().expect("ykt card serve ends");
        assert!(output.status.success(), "{output:?}");
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("a JSON report");
        (atr, response, report)
    };
    let (atr, first, report) = challenge();
    assert!(atr.starts_with(&[0x3B]), "{atr:02X?}");
    assert_eq!((first.len(), &first[8..]), (10, &[0x90, 0x00][..]));
    assert_eq!(report["created"], true);
    assert_eq!(
        (report["kind"].as_str(), report["algorithm"].as_str()),
        (Some("psam"), Some("sm4"))
    );
    assert_eq!(report["commands"], 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state)
            .expect("the state")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the state file holds keys");
    }
    // Served again from its file: the same card, and the same stream from the same seed.
    let (_, second, report) = challenge();
    assert_eq!((second, report["created"].clone()), (first, json!(false)));
}

#[cfg(feature = "pcsc")]
#[test]
fn serve_refuses_options_that_do_not_fit_the_card() {
    use std::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let vpcd = listener.local_addr().expect("its address").to_string();
    let state = scratch("existing.json");
    let chip = Chip {
        algorithm: CardAlgorithm::TripleDes,
        kind: ChipKind::UserCard,
    };
    Card::manufacture_at(&state, chip, &[0xFF; 16]).expect("a card");
    let serve = |extra: &[&str], code| {
        let args = [
            &["card", "serve", "--state", arg(&state), "--vpcd", &vpcd],
            extra,
        ]
        .concat();
        let run = ykt(&args);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        run.stderr
    };
    assert!(serve(&["--kind", "psam"], 2).contains("--kind: psam, but the card is a user card"));
    assert!(serve(&["--alg", "sm4"], 2).contains("--alg: sm4, but the card is a 3des card"));
    assert!(
        serve(&["--transport-key", "00112233445566778899AABBCCDDEEFF"], 2)
            .contains("--transport-key: is for a new card")
    );
    let new = scratch("short-key.json");
    let run = ykt(&[
        "card",
        "serve",
        "--state",
        arg(&new),
        "--alg",
        "sm4",
        "--vpcd",
        &vpcd,
        "--transport-key",
        "0011223344556677",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("--transport-key: transport key must be"),
        "{}",
        run.stderr
    );
    assert!(!new.exists());

    drop(listener);
    let run = ykt(&["card", "serve", "--state", arg(&new), "--vpcd", &vpcd]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("ykt: error: cannot serve the card: transport: vpcd at ")
            && run.stderr.contains("refuses connections"),
        "{}",
        run.stderr
    );
    assert!(!new.exists(), "nothing is created without vpcd");
}
