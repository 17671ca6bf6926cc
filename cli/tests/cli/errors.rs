//! Bad input gives exit status 2, one line on stderr naming the problem, nothing on stdout, and
//! never echoes key material.

use crate::support::ykt;

const KEY16: &str = "00112233445566778899AABBCCDDEEFF";

fn assert_usage_error(args: &[&str], expected: &str) {
    for json in [false, true] {
        let args = if json {
            [&["--json"], args].concat()
        } else {
            args.to_vec()
        };
        let run = ykt(&args);
        assert_eq!(run.code, 2, "ykt {args:?}");
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
        assert!(
            !run.stderr.contains("AABBCCDD"),
            "ykt {args:?} echoed the key: {}",
            run.stderr
        );
    }
}

#[test]
fn bad_hex_is_refused_without_echoing_it() {
    let bad = "00112233445566778899AABBCCDDEEGG";
    assert_usage_error(&["lab", "kcv", "--alg", "3des", "--key", bad], "--key");
    assert_usage_error(
        &[
            "lab",
            "kcv",
            "--alg",
            "3des",
            "--key",
            "0011223344556677889AABBCCDDEEFF",
        ],
        "odd",
    );
    assert_usage_error(&["lab", "sm3", "--msg", "xyz1"], "--msg");
}

#[test]
fn wrong_key_lengths_are_refused() {
    assert_usage_error(
        &["lab", "kcv", "--alg", "des", "--key", KEY16],
        "des key must be 8 bytes",
    );
    assert_usage_error(
        &["lab", "kcv", "--alg", "3des", "--key", "0011223344556677"],
        "3des key must be 16 bytes",
    );
    assert_usage_error(
        &[
            "lab", "mac", "--alg", "sm4", "--key", "00112233", "--data", "00",
        ],
        "--key",
    );
    assert_usage_error(
        &["lab", "sm2", "sign", "--key", KEY16, "--msg", "00"],
        "invalid private key",
    );
}

#[test]
fn unknown_algorithms_are_refused() {
    assert_usage_error(&["lab", "kcv", "--alg", "aes", "--key", KEY16], "--alg");
    assert_usage_error(
        &[
            "lab", "mac", "--alg", "SM4X", "--key", KEY16, "--data", "00",
        ],
        "--alg",
    );
}

#[test]
fn wrong_field_lengths_are_refused() {
    let purchase = |terminal: &'static str| {
        vec![
            "lab",
            "purchase",
            "--alg",
            "3des",
            "--dpk",
            KEY16,
            "--dtk",
            KEY16,
            "--random",
            "01020304",
            "--offline-seq",
            "0001",
            "--amount",
            "00000001",
            "--type",
            "06",
            "--terminal",
            terminal,
            "--terminal-seq",
            "00000001",
            "--date",
            "20240101",
            "--time",
            "120000",
        ]
    };
    assert_usage_error(
        &purchase("0011223344"),
        "--terminal: must be 6 bytes, got 5",
    );
    assert_usage_error(
        &[
            "lab",
            "diversify",
            "--alg",
            "3des",
            "--key",
            KEY16,
            "--factor",
            "00",
        ],
        "--factor",
    );
    assert_usage_error(
        &[
            "lab", "mac", "--alg", "3des", "--key", KEY16, "--iv", "010203", "--data", "00",
        ],
        "--iv",
    );
    assert_usage_error(
        &[
            "lab",
            "secure-message",
            "--alg",
            "3des",
            "--key",
            KEY16,
            "--challenge",
            "01020304",
            "--header",
            "84D401",
            "--data",
            "00",
        ],
        "--header",
    );
    assert_usage_error(
        &[
            "lab",
            "sm2",
            "verify",
            "--key",
            "04",
            "--msg",
            "00",
            "--signature",
            "00",
        ],
        "--key",
    );
}

#[test]
fn missing_arguments_and_unknown_commands_are_refused() {
    assert_usage_error(&["lab", "kcv", "--alg", "3des"], "--key");
    assert_usage_error(&["lab", "frobnicate"], "frobnicate");
    assert_usage_error(&["bench", "crypto", "--seconds", "0"], "--seconds");
}
