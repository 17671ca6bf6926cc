//! `ykt demo`, and the issuing station as a card centre runs it: rosters and profiles checked
//! before any card is touched, a batch whose process is killed (SIGKILL) at random moments
//! and resumed until done, the terminal commands on the cards it issued.

use crate::support::{ykt, ykt_json, ykt_json_with_code};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory, removed on drop.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    /// A fresh directory for `test`.
    pub(crate) fn new(test: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("issue-{test}-{}", std::process::id()));
        drop(std::fs::remove_dir_all(&dir));
        Self(dir)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// The directory as an argument.
    pub(crate) fn arg(&self) -> &str {
        self.0.to_str().expect("UTF-8 path")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop(std::fs::remove_dir_all(&self.0));
    }
}

/// The first lab school.
pub(crate) const SCHOOL: &str = "2133010601";

/// Runs the demo into `dir` and returns its report.
pub(crate) fn demo(dir: &Scratch) -> Value {
    ykt_json(&["demo", "--data-dir", dir.arg()])
}

/// A resident ID number with its GB 11643 check character.
fn id_number(n: usize) -> String {
    let first17 = format!("330106201501{:02}{:03}", 1 + n % 28, n % 1000);
    let check = ykt_issuer::roster::id_check_character(first17.as_bytes()) as char;
    format!("{first17}{check}")
}

/// A roster of `count` students of `school`, numbers from `first`.
pub(crate) fn roster(dir: &Path, name: &str, school: &str, first: usize, count: usize) -> PathBuf {
    let mut text = String::from("name,number,id_number,card_type,school\n");
    for n in first..first + count {
        text.push_str(&format!(
            "Student {n},K{n:05},{},student,{school}\n",
            id_number(n)
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_demo_tells_the_whole_story_and_leaves_a_data_dir_to_inspect() {
    let dir = Scratch::new("demo");
    let report = demo(&dir);
    assert_eq!(report["audit_intact"], true, "{report}");
    assert_eq!(report["tacs_verified"], 20);
    let cards = report["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 10);
    for card in cards {
        assert!(card["apdus"].as_u64().unwrap() <= 40, "{card}");
        assert_eq!(card["balance_fen"], 10_000 - 1_250 - 800);
    }
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["kms", "psams", "cards", "transactions", "clearing", "audit"]
    );
    // The other commands open the directory it leaves.
    let batches = ykt_json(&["issue", "list", "--data-dir", dir.arg()]);
    assert_eq!(batches.as_array().unwrap().len(), 4);
    let keys = ykt_json(&["key", "list", "--data-dir", dir.arg()]);
    assert!(keys.as_array().unwrap().len() >= 23);
    let audit = ykt_json(&["audit", "verify", "--data-dir", dir.arg()]);
    assert_eq!(audit["intact"], true);
    let cleared = ykt_json(&["terminal", "clear", "--data-dir", dir.arg()]);
    assert!(
        cleared
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["verdict"] == "valid")
    );
    // A tampered record in the records file is caught.
    let records = dir.path().join("records/purchases.txt");
    let text = std::fs::read_to_string(&records).unwrap();
    let first = text.lines().next().unwrap();
    let mut forged: Vec<u8> = hex::decode(first).unwrap();
    forged[14] ^= 0x01; // the amount's low byte
    std::fs::write(&records, hex::encode_upper(forged) + "\n").unwrap();
    let cleared = ykt_json_with_code(&["terminal", "clear", "--data-dir", dir.arg()], 1);
    assert_eq!(cleared[0]["verdict"], "invalid");
    // Custody shares went to owner-only files, one per custodian and key.
    let shares = std::fs::read_dir(dir.path().join("custody"))
        .unwrap()
        .count();
    assert_eq!(shares, 60);
}

#[test]
fn bad_rosters_and_profiles_are_refused_with_their_rows_and_fields_before_any_card() {
    let dir = Scratch::new("refusals");
    demo(&dir);
    let before = ykt_json(&["issue", "list", "--data-dir", dir.arg()]);
    let cards_before = std::fs::read_dir(dir.path().join("cards")).unwrap().count();

    let bad = dir.path().join("bad.csv");
    let mut wrong_check = id_number(3);
    wrong_check.replace_range(17.., if wrong_check.ends_with('0') { "1" } else { "0" });
    std::fs::write(
        &bad,
        format!(
            "name,number,id_number,card_type,school\n\
             Good One,G0001,{},student,2133010601\n\
             ,G0002,{},student,2133010601\n\
             Bad Id,G0003,{wrong_check},student,2133010601\n\
             Bad Type,G0004,{},pupil,2133010601\n",
            id_number(1),
            id_number(2),
            id_number(4)
        ),
    )
    .unwrap();
    let run = ykt(&[
        "issue",
        "batch",
        "--data-dir",
        dir.arg(),
        "--roster",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    for row in ["row 3, name", "row 4, id_number", "row 5, card_type"] {
        assert!(run.stderr.contains(row), "{row}: {}", run.stderr);
    }
    // A roster that parses but names a school the KMS does not know, and a holder who has a
    // card already.
    let unknown = dir.path().join("unknown.csv");
    std::fs::write(
        &unknown,
        format!(
            "name,number,id_number,card_type,school\n\
             No School,G0005,{},student,2133010699\n\
             Has Card,0601001,{},student,2133010601\n",
            id_number(5),
            id_number(6)
        ),
    )
    .unwrap();
    let run = ykt(&[
        "issue",
        "batch",
        "--data-dir",
        dir.arg(),
        "--roster",
        unknown.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("row 2, school"), "{}", run.stderr);
    assert!(run.stderr.contains("row 3, number"), "{}", run.stderr);

    let profile = dir.path().join("bad-profile.toml");
    let text = ykt_issuer::profile::Profile::builtin_text("ykt-user-sm4")
        .unwrap()
        .replacen("key_type = \"3E\"", "key_type = \"3F\"", 1);
    std::fs::write(&profile, text).unwrap();
    let run = ykt(&["profile", "check", profile.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("application.keys[2].key_type"),
        "{}",
        run.stderr
    );
    let good = roster(dir.path(), "good.csv", SCHOOL, 1, 2);
    let run = ykt(&[
        "issue",
        "batch",
        "--data-dir",
        dir.arg(),
        "--roster",
        good.to_str().unwrap(),
        "--profile",
        profile.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);

    assert_eq!(
        ykt_json(&["issue", "list", "--data-dir", dir.arg()]),
        before
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("cards")).unwrap().count(),
        cards_before
    );
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Runs `ykt ARGS` and kills it (SIGKILL) after `after` unless it ended first; whether it
/// ended by itself with success.
fn run_or_kill(args: &[&str], after: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ykt"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + after;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_batch_killed_at_random_moments_resumes_to_every_card_issued_once() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let dir = Scratch::new("kill");
    demo(&dir);
    let roster = roster(dir.path(), "roster.csv", SCHOOL, 100, 40);
    let batch_args = [
        "issue",
        "batch",
        "--data-dir",
        dir.arg(),
        "--roster",
        roster.to_str().unwrap(),
        "--valid-from",
        "2026-09-01",
    ];
    let resume_args = ["issue", "resume", "--data-dir", dir.arg()];
    let mut kills = 0;
    let mut created = false;
    let mut finished = false;
    for _ in 0..200 {
        let after = Duration::from_millis(10 + rng.below(250));
        let args: &[&str] = if created { &resume_args } else { &batch_args };
        if run_or_kill(args, after) {
            finished = true;
            break;
        }
        kills += 1;
        created = ykt_json(&["issue", "list", "--data-dir", dir.arg()])
            .as_array()
            .unwrap()
            .len()
            == 5;
    }
    if !finished {
        assert!(created, "seed {seed}: the batch was never created");
        let run = ykt(&resume_args);
        assert_eq!(run.code, 0, "seed {seed}: {}", run.stderr);
    }
    eprintln!("{kills} kills");
    assert!(kills >= 6, "seed {seed}: only {kills} kills");

    let cards = ykt_json(&["issue", "show", "B000005", "--data-dir", dir.arg()]);
    let cards = cards.as_array().unwrap();
    assert_eq!(cards.len(), 40);
    assert!(
        cards.iter().any(|c| c["attempts"].as_u64() > Some(1)),
        "seed {seed}: no card was caught half-written"
    );
    let mut serials: Vec<&str> = cards
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    for (n, card) in cards.iter().enumerate() {
        assert_eq!(card["status"], "issued", "seed {seed}: {card}");
        // The demo issued numbers 1-5 of this school; this batch continues at 6.
        assert_eq!(card["serial"], format!("330121330106010000{:02}", n + 6));
    }
    serials.dedup();
    assert_eq!(serials.len(), 40);
    // One issue act per card in the audit chain, which verifies.
    let export = ykt(&["audit", "export", "--data-dir", dir.arg()]);
    let mut issued: BTreeMap<String, usize> = BTreeMap::new();
    for line in export.stdout.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        if entry["act"] == "card.issue" {
            *issued
                .entry(entry["object"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    for serial in &serials {
        assert_eq!(issued.get(&format!("card:{serial}")), Some(&1), "{serial}");
    }
    assert_eq!(
        ykt_json(&["audit", "verify", "--data-dir", dir.arg()])["intact"],
        true
    );
    // Every card works: a load authorised by the KMS, a purchase, clearing.
    let psam = "33012133010601900001";
    for serial in [serials[0], serials[19], serials[39]] {
        let loaded = ykt_json(&[
            "terminal",
            "load",
            "--data-dir",
            dir.arg(),
            "--card",
            serial,
            "--psam",
            psam,
            "--amount",
            "2000",
        ]);
        assert_eq!(loaded["balance_fen"], 2000);
        ykt_json(&[
            "terminal",
            "purchase",
            "--data-dir",
            dir.arg(),
            "--card",
            serial,
            "--psam",
            psam,
            "--amount",
            "150",
        ]);
    }
    let cleared = ykt_json(&["terminal", "clear", "--data-dir", dir.arg()]);
    assert!(
        cleared
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["verdict"] == "valid")
    );
}
