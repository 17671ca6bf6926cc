//! `ykt script check` parses scripts and counts their commands; `ykt script run` refuses
//! scripts, readers and channels it cannot use, with exit status 2 and one line on stderr.

use crate::support::{ykt, ykt_json};
use serde_json::json;
use std::path::PathBuf;

/// Writes `text` to a file named `name` in the test scratch directory and gives its path.
fn script_file(name: &str, text: &str) -> String {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).expect("write the script");
    path.to_str().expect("UTF-8 path").to_string()
}

/// Runs `ykt ARGS...` with and without `--json`, expecting exit status 2, nothing on stdout
/// and one line on stderr that contains `expected`; gives that line.
fn assert_refused(args: &[&str], expected: &str) -> String {
    let mut line = String::new();
    for json in [false, true] {
        let args = if json {
            [&["--json"], args].concat()
        } else {
            args.to_vec()
        };
        let run = ykt(&args);
        assert_eq!(run.code, 2, "ykt {args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "ykt {args:?} printed {}", run.stdout);
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "ykt {args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(expected),
            "ykt {args:?}: {}",
            run.stderr
        );
        line = run.stderr;
    }
    line
}

/// What `ykt script run` says about a reader named `name` that it cannot open: without PC/SC
/// support none resolves; with it, no reader here has such a name (or pcscd is not running).
fn unusable_reader(name: &str) -> String {
    if cfg!(feature = "pcsc") {
        format!("reader {name:?}: transport: ")
    } else {
        "PC/SC support is not built in; build with --features pcsc".to_string()
    }
}

const TWO_CHANNELS: &str = "\
# Purchase preparation: the card's challenge goes to the PSAM.
let AID = A00000000386980701
reset
00A4040009 $AID => [6F ?? 84 09 $AID ..] 9000|61XX
0084000004 => [$CHALLENGE:4] 9000
@psam reset
@psam 80FA000008 $CHALLENGE 00000000 => [$MAC:4] 9000
0082000008 $MAC $CHALLENGE => 9000
";

#[test]
fn check_counts_the_commands_of_each_channel() {
    let file = script_file("two-channels.apdu", TWO_CHANNELS);
    let out = ykt_json(&["script", "check", &file]);
    assert_eq!(
        out,
        json!([
            {"channel": "card", "commands": 3},
            {"channel": "psam", "commands": 1},
        ])
    );
    let run = ykt(&["script", "check", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "channel  commands\n-------  --------\ncard            3\npsam            1\n"
    );
}

#[test]
fn check_accepts_plain_scriptor_files() {
    let file = script_file(
        "scriptor.apdu",
        "#! /usr/bin/env scriptor\nreset\n00 A4 04 00 09 A0 00 00 00 66 03 01 B3 01\n\
         00 40 00 10 10 00 01 02 03 04 05 06 07 08 09 0A 0B \\\n0C 0D 0E 0F\n00B0000000\nexit\n",
    );
    assert_eq!(
        ykt_json(&["script", "check", &file]),
        json!([{"channel": "card", "commands": 3}])
    );
}

#[test]
fn check_names_the_file_and_line_of_a_parse_error() {
    let file = script_file("undefined.apdu", "00A4040000\n\n# next\n00 $NOPE\n");
    let line = assert_refused(&["script", "check", &file], &format!("{file}:4: "));
    assert!(line.ends_with(":4: undefined variable $NOPE\n"), "{line}");

    let file = script_file("unmet-grammar.apdu", "0084000004 => [$C:4] 9O00\n");
    assert_refused(
        &["script", "check", &file],
        &format!("{file}:1: expected a status word such as 9000 or 61XX after `=>`"),
    );
}

#[test]
fn parse_errors_never_echo_secrets() {
    let file = script_file(
        "secret-typo.apdu",
        "let secret KEY = 00112233445566778899AABBCCDDEEGG\n",
    );
    let line = assert_refused(&["script", "check", &file], ":1: unexpected character 'G'");
    assert!(!line.contains("AABBCCDD"), "{line}");
    assert_refused(
        &["script", "run", &file, "--reader", "Any Reader 00"],
        ":1: unexpected character 'G'",
    );
}

#[test]
fn a_missing_file_is_refused() {
    let missing = format!("{}/no-such-script.apdu", env!("CARGO_TARGET_TMPDIR"));
    assert_refused(&["script", "check", &missing], "cannot read");
    assert_refused(&["script", "run", &missing, "--reader", "R"], "cannot read");
}

#[test]
fn run_refuses_readers_it_does_not_know() {
    let file = script_file("one-channel.apdu", "0084000004 => [$C:4] 9000\n");
    let transcript = format!("{}/unknown-reader.txt", env!("CARGO_TARGET_TMPDIR"));
    assert_refused(
        &[
            "script",
            "run",
            &file,
            "--reader",
            "ACS ACR122U 00 00",
            "--transcript",
            &transcript,
        ],
        &unusable_reader("ACS ACR122U 00 00"),
    );
    assert!(!std::path::Path::new(&transcript).exists(), "nothing ran");
    assert_refused(
        &[
            "script",
            "run",
            &file,
            "--raw",
            "--reader",
            "card=Reader=With=Equals",
        ],
        &unusable_reader("Reader=With=Equals"),
    );
}

#[test]
fn run_needs_one_reader_for_each_channel() {
    let file = script_file("run-two-channels.apdu", TWO_CHANNELS);
    assert_refused(
        &["script", "run", &file, "--reader", "Card Reader"],
        "--reader: the script uses channel @psam: give --reader psam=NAME",
    );
    assert_refused(
        &["script", "run", &file, "--reader", "psam=PSAM Reader"],
        "--reader: the script uses channel @card: give --reader card=NAME",
    );
    assert_refused(
        &[
            "script", "run", &file, "--reader", "A", "--reader", "card=B",
        ],
        "--reader: channel @card given twice",
    );
    assert_refused(
        &[
            "script",
            "run",
            &file,
            "--reader",
            "Card Reader",
            "--reader",
            "psam=PSAM Reader",
        ],
        &unusable_reader("Card Reader"),
    );
    assert_refused(&["script", "run", &file], "--reader");
}
