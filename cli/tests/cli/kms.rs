//! The KMS commands end to end on the real binary: a bureau in lab mode (`YKT_HSM_UNLOCK=lab`)
//! in a scratch data directory, five officers in a ceremony file and a quorum of three. Shares
//! go to files and never to the output; refusals exit with status 2 and change nothing; a
//! tampered audit log is caught; `ykt hsm serve` serves the HSM to an authenticated client.

use crate::support::Run;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use ykt_crypto::{Kcv, SymmetricAlgorithm, SymmetricKey};

const OFFICERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
const REGION: &str = "330106";
const SCHOOL: &str = "2133010601";

/// The password of an officer in the ceremony files.
fn password(officer: &str) -> String {
    format!("{officer}-pass-phrase-2024")
}

/// A scratch bureau: a data directory and a ceremony file for the five officers.
struct Bureau {
    dir: PathBuf,
    ceremony: PathBuf,
}

impl Bureau {
    /// A fresh, empty bureau directory named after the test.
    fn new(name: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kms-{name}"));
        drop(std::fs::remove_dir_all(&dir));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let ceremony = dir.join("officers.toml");
        let text: String = OFFICERS
            .iter()
            .map(|o| {
                format!(
                    "[[officer]]\nname = \"{o}\"\npassword = \"{}\"\n",
                    password(o)
                )
            })
            .collect();
        std::fs::write(&ceremony, text).expect("ceremony file");
        Self { dir, ceremony }
    }

    /// The data directory.
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A path in the scratch directory.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `ykt ARGS... --data-dir DATA --components-from FILE` in lab mode, with no
    /// terminal.
    fn run_with(&self, ceremony: &Path, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_ykt"))
            .args(args)
            .arg("--data-dir")
            .arg(self.data())
            .arg("--components-from")
            .arg(ceremony)
            .env("YKT_HSM_UNLOCK", "lab")
            .env_remove("YKT_DATA_DIR")
            .env_remove("YKT_DATABASE_URL")
            .env_remove("YKT_HSM")
            .stdin(Stdio::null())
            .output()
            .expect("run ykt");
        Run {
            code: output.status.code().expect("exit code"),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        }
    }

    /// Runs with the five officers' ceremony file.
    fn run(&self, args: &[&str]) -> Run {
        self.run_with(&self.ceremony, args)
    }

    /// Runs with `--json`, expects exit status `code`, nothing on stderr and one line of JSON.
    fn json_code_with(&self, ceremony: &Path, args: &[&str], code: i32) -> Value {
        let run = self.run_with(ceremony, &[&["--json"], args].concat());
        assert_eq!(run.code, code, "ykt {args:?}: {}", run.stderr);
        assert!(run.stderr.is_empty(), "ykt {args:?}: {}", run.stderr);
        assert_eq!(
            run.stdout.lines().count(),
            1,
            "ykt {args:?}: {}",
            run.stdout
        );
        serde_json::from_str(&run.stdout).expect("JSON")
    }

    /// Runs with `--json` and the five officers' file, expects success.
    fn json(&self, args: &[&str]) -> Value {
        self.json_code_with(&self.ceremony, args, 0)
    }

    /// Initialises the bureau: five officers, quorum three.
    fn init(&self) -> Value {
        let mut args = vec![
            "kms",
            "init",
            "--bureau-code",
            "330100",
            "--bureau-name",
            "Hangzhou Education Bureau",
            "--quorum",
            "3",
        ];
        for officer in OFFICERS {
            args.extend(["--officer", officer]);
        }
        self.json(&args)
    }

    /// Adds the region and the school.
    fn tree(&self) {
        self.json(&[
            "region",
            "add",
            REGION,
            "--name",
            "Xihu",
            "--officer",
            "alice",
        ]);
        self.json(&[
            "school",
            "add",
            SCHOOL,
            "--region",
            REGION,
            "--name",
            "No. 1 Middle School",
            "--officer",
            "bob",
        ]);
    }
}

/// `--officer` for the first `n` officers.
fn quorum(n: usize) -> Vec<&'static str> {
    OFFICERS[..n]
        .iter()
        .flat_map(|o| ["--officer", *o])
        .collect()
}

/// The custody options of a 3-of-5 split into `dir`.
fn custody(dir: &Path) -> Vec<String> {
    let mut args = vec!["--threshold".to_string(), "3".into()];
    for officer in OFFICERS {
        args.extend(["--custodian".to_string(), officer.into()]);
    }
    args.extend(["--shares-out".to_string(), dir.display().to_string()]);
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The share line of a share file.
fn share_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("share file");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("share = \""))
        .expect("a share line");
    line.trim_end_matches('"').to_string()
}

/// The check value ykt shows for a 3DES key or component.
fn tdes_kcv(bytes: &[u8]) -> String {
    Kcv::of(&SymmetricKey::new(SymmetricAlgorithm::TripleDes, bytes).expect("3DES key")).to_string()
}

#[test]
fn a_bureau_from_initialisation_to_a_verified_audit_log() {
    let bureau = Bureau::new("lifecycle");
    let mut outputs = Vec::new();
    let init = bureau.init();
    assert_eq!(init["bureau_code"], "330100");
    assert_eq!(init["quorum"], 3);
    assert_eq!(init["hsm"], "in-process");
    assert!(
        init["lmk_kcv"].as_str().is_some_and(|k| k.len() == 10),
        "{init}"
    );
    assert!(
        init["signing_public_key"]
            .as_str()
            .is_some_and(|k| k.len() == 130 && k.starts_with("04")),
        "{init}"
    );
    let officers = bureau.json(&["officer", "list"]);
    let names: Vec<&str> = officers
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| o["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, OFFICERS);
    assert!(
        officers
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "active")
    );
    bureau.tree();
    let schools = bureau.json(&["school", "list", "--region", REGION]);
    assert_eq!(schools[0]["code"], SCHOOL);

    // The ten SM4 masters under 3-of-5 custody: 5 share files each, mode 0600.
    let shares = bureau.path("shares");
    let mut args = vec![
        "ceremony",
        "generate",
        "--template",
        "masters",
        "--alg",
        "sm4",
    ];
    let custody_args = custody(&shares);
    args.extend(strs(&custody_args));
    args.extend(quorum(3));
    let run = bureau.run(&[&["--json"], &args[..]].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let masters: Value = serde_json::from_str(&run.stdout).expect("JSON");
    outputs.push(run);
    let masters = masters.as_array().expect("a list");
    assert_eq!(masters.len(), 10);
    let mut share_files = Vec::new();
    for master in masters {
        let id = master["key_id"].as_str().expect("key id");
        assert!(id.ends_with("-sm4"), "{id}");
        assert_eq!(master["version"], 1);
        assert_eq!(master["check_method"], "cmac");
        for officer in OFFICERS {
            let file = shares.join(format!("{officer}-{id}-v1.share"));
            let mode = std::fs::metadata(&file)
                .expect("share file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
            share_files.push(file);
        }
        assert_eq!(master["share_files"].as_array().map(Vec::len), Some(5));
    }
    assert_eq!(std::fs::read_dir(&shares).expect("shares").count(), 50);

    // A 3DES purchase master from three components, check values computed here.
    let components: [[u8; 16]; 3] = [
        *b"\x01\x23\x45\x67\x89\xAB\xCD\xEF\xFE\xDC\xBA\x98\x76\x54\x32\x10",
        [0x1F; 16],
        *b"\x40\x41\x42\x43\x44\x45\x46\x47\x48\x49\x4A\x4B\x4C\x4D\x4E\x4F",
    ];
    let expected: Vec<String> = components.iter().map(|c| tdes_kcv(c)).collect();
    let mut combined = [0u8; 16];
    for component in &components {
        combined
            .iter_mut()
            .zip(component)
            .for_each(|(x, c)| *x ^= c);
    }
    let import = bureau.path("import.toml");
    let text: String = OFFICERS[..3]
        .iter()
        .zip(&components)
        .zip(&expected)
        .map(|((o, c), kcv)| {
            format!(
                "[[officer]]\nname = \"{o}\"\npassword = \"{}\"\ncomponent = \"{}\"\nkcv = \"{kcv}\"\n",
                password(o),
                hex::encode_upper(c)
            )
        })
        .collect();
    std::fs::write(&import, text).expect("import file");
    let formed = tdes_kcv(&combined);
    let imported = bureau.json_code_with(
        &import,
        &[
            "ceremony",
            "import",
            "--template",
            "purchase",
            "--alg",
            "3des",
            "--kcv",
            &formed,
        ],
        0,
    );
    assert_eq!(imported["key_id"], "purchase-3des");
    assert_eq!(imported["kcv"], formed.as_str());
    let shown: Vec<(&str, &str)> = imported["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| (c["officer"].as_str().unwrap(), c["kcv"].as_str().unwrap()))
        .collect();
    let wanted: Vec<(&str, &str)> = OFFICERS[..3]
        .iter()
        .copied()
        .zip(expected.iter().map(String::as_str))
        .collect();
    assert_eq!(shown, wanted);

    // The school's transport key and its package.
    let mut args = vec![
        "ceremony",
        "generate",
        "--template",
        "transport",
        "--alg",
        "sm4",
        "--scope",
    ];
    let scope = format!("school:{SCHOOL}");
    args.push(&scope);
    args.extend(quorum(3));
    let transport = bureau.json(&args);
    assert_eq!(transport["key_id"], format!("transport-sm4-{SCHOOL}"));
    let package_file = bureau.path("school.json");
    let package_path = package_file.display().to_string();
    let mut args = vec![
        "ceremony",
        "export-school",
        SCHOOL,
        "--alg",
        "sm4",
        "--transport-alg",
        "sm4",
        "--out",
        &package_path,
    ];
    args.extend(quorum(3));
    let exported = bureau.json(&args);
    assert_eq!(exported["school"], SCHOOL);
    assert_eq!(exported["keys"].as_array().map(Vec::len), Some(10));
    let mode = std::fs::metadata(&package_file)
        .expect("package")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let package: Value =
        serde_json::from_str(&std::fs::read_to_string(&package_file).unwrap()).expect("JSON");
    assert_eq!(package["format"], "ykt-school-package-v1");
    assert_eq!(package["region"], REGION);
    assert!(
        package["signature"]
            .as_str()
            .is_some_and(|s| s.len() == 128)
    );
    let run = bureau.run(&args);
    assert_eq!(run.code, 1, "an existing package file is not replaced");

    // Lifecycle.
    let keys = bureau.json(&["key", "list"]);
    assert_eq!(keys.as_array().map(Vec::len), Some(13), "{keys}");
    let shown = bureau.json(&["key", "show", "purchase-sm4"]);
    assert_eq!(shown["custody_threshold"], 3);
    assert_eq!(shown["custodians"].as_array().map(Vec::len), Some(5));
    assert_eq!(shown["versions"][0]["check_value"], masters[0]["check"]);
    let mut args = vec!["key", "rotate", "purchase-sm4", "--shares-out"];
    let shares_arg = shares.display().to_string();
    args.push(&shares_arg);
    args.extend(quorum(3));
    let run = bureau.run(&[&["--json"], &args[..]].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rotated: Value = serde_json::from_str(&run.stdout).expect("JSON");
    outputs.push(run);
    assert_eq!(rotated["version"], 2);
    for officer in OFFICERS {
        share_files.push(shares.join(format!("{officer}-purchase-sm4-v2.share")));
    }
    let suspended = bureau.json(&[
        "key",
        "suspend",
        "purchase-3des",
        "--reason",
        "terminal audit",
        "--officer",
        "carol",
    ]);
    assert_eq!(suspended["state"], "suspended");
    let mut args = vec!["key", "resume", "purchase-3des", "--reason", "audit done"];
    args.extend(quorum(3));
    assert_eq!(bureau.json(&args)["state"], "active");
    let mut args = vec![
        "key",
        "retire",
        "purchase-sm4",
        "--version",
        "1",
        "--reason",
        "re-issued",
    ];
    args.extend(quorum(3));
    let retired = bureau.json(&args);
    assert_eq!(retired["min_version"], 2);
    assert_eq!(retired["state"], "active");
    let shown = bureau.json(&["key", "show", "purchase-sm4"]);
    assert_eq!(shown["versions"][0]["state"], "retired");
    assert_eq!(shown["versions"][1]["state"], "active");
    let mut args = vec!["key", "retire", "purchase-3des", "--reason", "moved to SM4"];
    args.extend(quorum(3));
    assert_eq!(bureau.json(&args)["state"], "deactivated");

    // No share ever reached the output.
    for file in &share_files {
        let share = share_text(file);
        for run in &outputs {
            assert!(!run.stdout.contains(&share) && !run.stderr.contains(&share));
        }
    }

    // The audit log verifies; a rewritten record is named.
    let verified = bureau.json(&["audit", "verify"]);
    assert_eq!(verified["intact"], true, "{verified}");
    let records = verified["records"].as_u64().expect("records");
    assert!(records > 20, "{verified}");
    assert!(verified["checkpoints"].as_u64().unwrap() > 0);
    assert!(verified["last_checkpoint"].as_u64().unwrap() > 0);
    // The last checkpoint, noted outside the KMS, anchors later verifications.
    let anchor = format!(
        "{}:{}",
        verified["last_checkpoint"],
        verified["last_checkpoint_hash"].as_str().unwrap()
    );
    let anchored = bureau.json(&["audit", "verify", "--anchor", &anchor]);
    assert_eq!(anchored["intact"], true, "{anchored}");
    let wrong = format!("{}:{}", verified["last_checkpoint"], "00".repeat(32));
    let refused = bureau.json_code_with(
        &bureau.ceremony,
        &["audit", "verify", "--anchor", &wrong],
        1,
    );
    assert_eq!(refused["intact"], false);
    let export = bureau.run(&["audit", "export"]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    assert_eq!(export.stdout.lines().count() as u64, records);
    for line in export.stdout.lines() {
        let record: Value = serde_json::from_str(line).expect("a JSON line");
        assert!(record["hash"].as_str().is_some_and(|h| h.len() == 64));
    }
    tamper(&bureau.data(), 7);
    let broken = bureau.json_code_with(&bureau.ceremony, &["audit", "verify"], 1);
    assert_eq!(broken["intact"], false);
    assert_eq!(broken["fault_seq"], 7, "{broken}");
    assert!(
        broken["fault_reason"]
            .as_str()
            .is_some_and(|r| r.contains("hash")),
        "{broken}"
    );
    let run = bureau.run(&["audit", "verify"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("fault seq"), "{}", run.stdout);
}

/// Rewrites the detail of audit record `seq` behind the KMS's back.
fn tamper(data: &Path, seq: i64) {
    let url = format!("sqlite://{}?mode=rw", data.join("kms.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = ykt_kms::Store::open(&url).await.expect("store");
        let changed =
            sqlx::query("UPDATE audit_log SET detail = '{\"forged\":true}' WHERE seq = $1")
                .bind(seq)
                .execute(store.pool())
                .await
                .expect("update")
                .rows_affected();
        assert_eq!(changed, 1);
        store.close().await;
    });
}

#[test]
fn refusals_exit_2_and_change_nothing() {
    let bureau = Bureau::new("refusals");
    bureau.init();
    bureau.tree();
    let mut args = vec!["ceremony", "generate", "--template", "tac", "--alg", "sm4"];
    args.extend(quorum(3));
    bureau.json(&args);
    let mut args = vec!["key", "retire", "tac-sm4", "--reason", "test"];
    args.extend(quorum(3));
    bureau.json(&args);
    let before = bureau.json(&["key", "list"]);
    let audit_before = bureau.run(&["audit", "export"]).stdout.lines().count();

    let expect_refusal = |ceremony: &Path, args: &[&str], message: &str| {
        let run = bureau.run_with(ceremony, args);
        assert_eq!(run.code, 2, "ykt {args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "ykt {args:?}: {}", run.stdout);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(message), "ykt {args:?}: {}", run.stderr);
        for officer in OFFICERS {
            assert!(!run.stderr.contains(&password(officer)), "{}", run.stderr);
        }
    };
    let mut two = vec!["ceremony", "destroy", "tac-sm4", "--reason", "test"];
    two.extend(quorum(2));
    expect_refusal(&bureau.ceremony, &two, "not authorised");
    let mut two = vec!["key", "destroy", "tac-sm4", "--reason", "test"];
    two.extend(quorum(2));
    expect_refusal(&bureau.ceremony, &two, "not authorised");

    let wrong = bureau.path("wrong.toml");
    let text = std::fs::read_to_string(&bureau.ceremony)
        .unwrap()
        .replace(&password("bob"), "not-the-password-of-bob");
    std::fs::write(&wrong, text).unwrap();
    let mut args = vec!["ceremony", "destroy", "tac-sm4", "--reason", "test"];
    args.extend(quorum(3));
    expect_refusal(&wrong, &args, "credentials of `bob` refused");
    expect_refusal(
        &wrong,
        &[
            "region",
            "add",
            "330108",
            "--name",
            "Binjiang",
            "--officer",
            "bob",
        ],
        "not authorised",
    );

    for school in ["213301060", "21330106AB", "2133019999"] {
        let scope = format!("school:{school}");
        let mut args = vec![
            "ceremony",
            "generate",
            "--template",
            "transport",
            "--alg",
            "sm4",
            "--scope",
            &scope,
        ];
        args.extend(quorum(3));
        expect_refusal(&bureau.ceremony, &args, "school");
        let out = bureau.path("never.json").display().to_string();
        let mut args = vec![
            "ceremony",
            "export-school",
            school,
            "--alg",
            "sm4",
            "--transport-alg",
            "sm4",
            "--out",
            &out,
        ];
        args.extend(quorum(3));
        expect_refusal(&bureau.ceremony, &args, "school");
        assert!(!bureau.path("never.json").exists());
    }
    expect_refusal(
        &bureau.ceremony,
        &[
            "school",
            "add",
            "21330106",
            "--region",
            REGION,
            "--name",
            "X",
            "--officer",
            "bob",
        ],
        "school code",
    );

    // Officers named but no ceremony file and no terminal: a usage error, nothing asked.
    let output = Command::new(env!("CARGO_BIN_EXE_ykt"))
        .args([
            "region",
            "add",
            "330108",
            "--name",
            "Binjiang",
            "--officer",
            "bob",
        ])
        .arg("--data-dir")
        .arg(bureau.data())
        .env("YKT_HSM_UNLOCK", "lab")
        .stdin(Stdio::null())
        .output()
        .expect("run ykt");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("terminal") && stderr.contains("--components-from"),
        "{stderr}"
    );

    assert_eq!(
        bureau.json(&["key", "list"]),
        before,
        "the keys did not change"
    );
    assert_eq!(
        bureau.json(&["region", "list"]).as_array().map(Vec::len),
        Some(1)
    );
    let audit_after = bureau.run(&["audit", "export"]).stdout;
    assert!(
        audit_after.lines().count() > audit_before,
        "refusals by officers are audited"
    );
    assert!(audit_after.contains("refused: "));
    assert_eq!(bureau.json(&["audit", "verify"])["intact"], true);

    // A second initialisation and a missing KMS are refused too.
    let run = bureau.run(&[
        "kms",
        "init",
        "--bureau-code",
        "330100",
        "--bureau-name",
        "X",
        "--quorum",
        "2",
        "--officer",
        "alice",
        "--officer",
        "bob",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    let empty = Bureau::new("refusals-empty");
    let run = empty.run(&["key", "list"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no KMS in"), "{}", run.stderr);
    assert!(!empty.data().join("kms.db").exists());
}

#[test]
fn every_kms_command_prints_one_json_line() {
    let bureau = Bureau::new("json");
    assert!(bureau.init()["bureau_code"].is_string());
    let info = bureau.json(&["kms", "info"]);
    assert_eq!(info["bureau_name"], "Hangzhou Education Bureau");
    bureau.tree();
    assert_eq!(bureau.json(&["region", "list"])[0]["code"], REGION);
    assert_eq!(bureau.json(&["school", "list"])[0]["region"], REGION);

    // A pre-active key waits for the quorum to activate it.
    let school_scope = format!("school:{SCHOOL}");
    let mut args = vec![
        "ceremony",
        "generate",
        "--template",
        "transport",
        "--alg",
        "aes128",
        "--scope",
        &school_scope,
        "--pre-active",
    ];
    args.extend(quorum(3));
    let staged = bureau.json(&args);
    let staged_id = staged["key_id"].as_str().unwrap().to_owned();
    assert_eq!(
        bureau.json(&["key", "show", &staged_id])["state"],
        "pre-active"
    );
    let mut args = vec!["key", "activate", &staged_id, "--reason", "school ready"];
    args.extend(quorum(3));
    bureau.json(&args);
    assert_eq!(bureau.json(&["key", "show", &staged_id])["state"], "active");

    // A sixth officer, then disabled by three others.
    let frank = bureau.path("frank.toml");
    let mut text = std::fs::read_to_string(&bureau.ceremony).unwrap();
    text += &format!(
        "[[officer]]\nname = \"frank\"\npassword = \"{}\"\n",
        password("frank")
    );
    std::fs::write(&frank, text).unwrap();
    let mut args = vec!["officer", "add", "frank", "--display-name", "Frank Li"];
    args.extend(quorum(3));
    assert_eq!(bureau.json_code_with(&frank, &args, 0)["officer"], "frank");
    let mut args = vec!["officer", "disable", "frank", "--reason", "left the bureau"];
    args.extend(quorum(3));
    assert_eq!(bureau.json(&args)["status"], "disabled");

    // Custody of one key, re-split, recovered.
    let shares = bureau.path("shares");
    let mut args = vec![
        "ceremony",
        "generate",
        "--template",
        "load",
        "--alg",
        "3des",
    ];
    let custody_args = custody(&shares);
    args.extend(strs(&custody_args));
    args.extend(quorum(3));
    let generated = bureau.json(&args);
    assert_eq!(generated["check_method"], "encrypt-zeros");
    let resplit_dir = bureau.path("resplit");
    let resplit_arg = resplit_dir.display().to_string();
    let mut args = vec![
        "ceremony",
        "resplit",
        "load-3des",
        "--threshold",
        "2",
        "--custodian",
        "bob",
        "--custodian",
        "dave",
        "--custodian",
        "erin",
        "--shares-out",
        &resplit_arg,
    ];
    args.extend(quorum(3));
    let resplit = bureau.json(&args);
    assert_eq!(resplit["share_files"].as_array().map(Vec::len), Some(3));
    let recovery = bureau.path("recover.toml");
    let text: String = ["bob", "dave", "erin"]
        .iter()
        .map(|o| {
            let share = share_text(&resplit_dir.join(format!("{o}-load-3des-v1.share")));
            format!(
                "[[officer]]\nname = \"{o}\"\npassword = \"{}\"\nshare = \"{share}\"\n",
                password(o)
            )
        })
        .collect();
    std::fs::write(&recovery, text).unwrap();
    let recovered = bureau.json_code_with(
        &recovery,
        &["ceremony", "recover", "load-3des", "--version", "1"],
        0,
    );
    assert_eq!(recovered["check"], generated["check"]);

    let aliased = bureau.json(&[
        "key",
        "alias",
        "alias/dlk",
        "load-3des",
        "--officer",
        "alice",
    ]);
    assert_eq!(aliased["key_id"], "load-3des");
    let kcv = bureau.json(&["key", "kcv", "alias/dlk"]);
    assert_eq!(kcv["kcv"], generated["check"]);
    assert_eq!(kcv["matches_stored"], true);
    let cmac = bureau.json(&["key", "kcv", "alias/dlk", "--method", "cmac"]);
    assert_eq!(cmac["method"], "cmac");
    assert_eq!(cmac["matches_stored"], Value::Null);
    let compromised = bureau.json(&[
        "key",
        "compromised",
        "alias/dlk",
        "--reason",
        "component form lost",
        "--officer",
        "dave",
    ]);
    assert_eq!(compromised["state"], "compromised");
    let mut args = vec!["key", "destroy", "load-3des", "--reason", "compromised"];
    args.extend(quorum(3));
    assert_eq!(bureau.json(&args)["state"], "destroyed");
    let shown = bureau.json(&["key", "show", "load-3des"]);
    assert_eq!(shown["state"], "destroyed");
    assert!(
        shown["transitions"]
            .as_array()
            .is_some_and(|t| t.len() == 3),
        "{shown}"
    );

    let checkpoint = bureau.json(&["audit", "checkpoint"]);
    assert!(checkpoint["signed"].is_boolean());
    let again = bureau.json(&["audit", "checkpoint"]);
    assert_eq!(again["signed"], false, "nothing new to sign");
    assert_eq!(bureau.json(&["audit", "verify"])["intact"], true);
    let since = bureau.run(&["--json", "audit", "export", "--since", "2999-01-01"]);
    assert_eq!(
        (since.code, since.stdout.as_str()),
        (0, ""),
        "{}",
        since.stderr
    );
    let bad = bureau.run(&["audit", "export", "--since", "last week"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--since"), "{}", bad.stderr);

    // Tables without --json.
    let table = bureau.run(&["key", "show", "load-3des"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.starts_with("id "), "{}", table.stdout);
    assert!(
        table.stdout.contains("\ntransitions:\n"),
        "{}",
        table.stdout
    );
}

#[test]
fn lab_flag_writes_the_configuration_and_hsm_serve_answers_its_clients() {
    let bureau = Bureau::new("serve");
    let data = bureau.data();
    let output = Command::new(env!("CARGO_BIN_EXE_ykt"))
        .args([
            "--json",
            "kms",
            "init",
            "--bureau-code",
            "330100",
            "--bureau-name",
            "Lab",
        ])
        .args([
            "--quorum",
            "2",
            "--officer",
            "alice",
            "--officer",
            "bob",
            "--lab",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--components-from")
        .arg(&bureau.ceremony)
        .env_remove("YKT_HSM_UNLOCK")
        .stdin(Stdio::null())
        .output()
        .expect("run ykt");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = std::fs::read_to_string(data.join("ykt.toml")).expect("ykt.toml");
    assert!(config.contains("unlock = \"lab\""), "{config}");
    let init: Value = serde_json::from_slice(&output.stdout).expect("JSON");

    let secret = [0x5Au8; 32];
    let secret_file = bureau.path("client.secret");
    std::fs::write(&secret_file, hex::encode(secret)).unwrap();
    let client = format!("kms-1={}", secret_file.display());
    let mut server = Command::new(env!("CARGO_BIN_EXE_ykt"))
        .args([
            "--json",
            "hsm",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--client",
            &client,
        ])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("YKT_HSM_UNLOCK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ykt hsm serve");
    let mut stderr = BufReader::new(server.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("the first line");
    let address = line
        .trim()
        .strip_prefix("ykt: HSM listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let mut host = ykt_hsm_sim::host::HostClient::connect(&address, "kms-1", &secret)
        .expect("an authenticated client");
    let mut random = [0u8; 16];
    host.random(&mut random).expect("random bytes");
    assert_ne!(random, [0; 16]);
    drop(host);
    assert!(
        ykt_hsm_sim::host::HostClient::connect(&address, "kms-1", &[0x11; 32]).is_err(),
        "a wrong secret is refused"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let output = server.wait_with_output().expect("ykt hsm serve ends");
    assert_eq!(output.status.code(), Some(0));
    let served: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(served["listen"], address.as_str());
    assert_eq!(served["lmk_kcv"], init["lmk_kcv"]);
    assert_eq!(served["clients"][0], "kms-1");
}

/// Runs `ykt --json ARGS... --data-dir DATA --components-from OFFICERS [--lmk-from LMK]` in
/// officers mode (the LMK unsealed by what the officers bring), with no terminal.
fn run_officers_mode(bureau: &Bureau, lmk: Option<&Path>, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ykt"));
    command
        .arg("--json")
        .args(args)
        .arg("--data-dir")
        .arg(bureau.data())
        .arg("--components-from")
        .arg(&bureau.ceremony)
        .env("YKT_HSM_UNLOCK", "officers")
        .env_remove("YKT_DATA_DIR")
        .env_remove("YKT_DATABASE_URL")
        .env_remove("YKT_HSM")
        .stdin(Stdio::null());
    if let Some(lmk) = lmk {
        command.arg("--lmk-from").arg(lmk);
    }
    let output = command.output().expect("run ykt");
    Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

#[test]
fn an_lmk_under_custody_unseals_with_any_two_of_three_shares() {
    let bureau = Bureau::new("lmk-custody");
    let shares = bureau.path("lmk-shares");
    let mut init = vec![
        "kms",
        "init",
        "--bureau-code",
        "330100",
        "--bureau-name",
        "Hangzhou Education Bureau",
        "--quorum",
        "3",
        "--lmk-threshold",
        "2",
        "--shares-out",
        shares.to_str().unwrap(),
    ];
    for officer in OFFICERS {
        init.extend(["--officer", officer]);
    }
    for custodian in ["alice", "bob", "carol"] {
        init.extend(["--lmk-custodian", custodian]);
    }
    let run = run_officers_mode(&bureau, None, &init);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["lmk_share_files"].as_array().unwrap().len(), 3);
    // Each custodian's share, read from its file: never in the output.
    let share_of = |officer: &str| -> String {
        let path = shares.join(format!("{officer}-lmk-v1.share"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text.lines().find(|l| l.starts_with("share = ")).unwrap();
        line["share = ".len()..].trim_matches('"').to_owned()
    };
    for officer in ["alice", "bob", "carol"] {
        let share = share_of(officer);
        assert!(!run.stdout.contains(&share) && !run.stderr.contains(&share));
    }
    let lmk_file = |holders: &[&str]| -> PathBuf {
        let path = bureau.path(&format!("lmk-{}.toml", holders.join("-")));
        let text: String = holders
            .iter()
            .map(|o| format!("[[officer]]\nname = \"{o}\"\nshare = \"{}\"\n", share_of(o)))
            .collect();
        std::fs::write(&path, text).unwrap();
        path
    };
    let generate = [
        "ceremony",
        "generate",
        "--template",
        "tac",
        "--alg",
        "sm4",
        "--officer",
        "alice",
        "--officer",
        "bob",
        "--officer",
        "carol",
    ];
    // Two of the three shares unseal the HSM; one does not, and changes nothing.
    let one = run_officers_mode(&bureau, Some(&lmk_file(&["carol"])), &generate);
    assert_ne!(one.code, 0, "one share unsealed the LMK");
    let two = run_officers_mode(&bureau, Some(&lmk_file(&["carol", "alice"])), &generate);
    assert_eq!(two.code, 0, "{}", two.stderr);
    let made: Value = serde_json::from_str(&two.stdout).unwrap();
    assert_eq!(made["key_id"], "tac-sm4", "{made}");
    let verify = run_officers_mode(
        &bureau,
        Some(&lmk_file(&["bob", "carol"])),
        &["audit", "verify"],
    );
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    let verified: Value = serde_json::from_str(&verify.stdout).unwrap();
    assert_eq!(verified["intact"], true);
}
