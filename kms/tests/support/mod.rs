//! Fixtures shared by the KMS integration tests: a KMS on a fresh store (SQLite file or a new
//! PostgreSQL database) over a fresh in-process HSM, with five registered officers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use ykt_hsm_sim::{CeremonySecret, KeyComponent};
use ykt_kms::provider::LocalHsm;
use ykt_kms::{Credential, InitRequest, Kms, NewOfficer, Store};

/// The store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// An SQLite file in the test's directory.
    Sqlite,
    /// A new database on the server of `YKT_TEST_POSTGRES_URL`.
    Postgres,
}

/// The officers every fixture registers: name and password.
pub const OFFICERS: [(&str, &str); 5] = [
    ("alice", "alice-passphrase-1"),
    ("bob", "bob-passphrase-22"),
    ("carol", "carol-passphrase-3"),
    ("dave", "dave-passphrase-44"),
    ("erin", "erin-passphrase-55"),
];

/// The bureau's quorum in the fixtures.
pub const QUORUM: u8 = 3;

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory.
    pub fn new(tag: &str) -> Self {
        let random = ykt_crypto::random::bytes::<8>().unwrap();
        let path = std::env::temp_dir().join(format!("ykt-kms-{tag}-{}", hex::encode(random)));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running KMS and what made it.
pub struct Fixture {
    /// The KMS.
    pub kms: Kms,
    /// Its HSM.
    pub hsm: Arc<LocalHsm>,
    /// The database URL.
    pub url: String,
    /// The data directory (SQLite file, HSM state).
    pub dir: TempDir,
    /// The store kind.
    pub db: Db,
}

/// Credentials of the named fixture officers.
pub fn creds(names: &[&str]) -> Vec<Credential> {
    names
        .iter()
        .map(|name| {
            let (_, password) = OFFICERS.iter().find(|(n, _)| n == name).unwrap();
            Credential::new(name, password)
        })
        .collect()
}

/// The URL of a new, empty database of kind `db`; `None` (with a note on stderr) when
/// PostgreSQL is not configured, a failure when `YKT_PG_TESTS=1` demands it.
pub async fn database_url(db: Db, dir: &Path) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!(
            "sqlite://{}?mode=rwc",
            dir.join("kms.db").display()
        )),
        Db::Postgres => {
            let Ok(base) = std::env::var("YKT_TEST_POSTGRES_URL") else {
                assert!(
                    std::env::var("YKT_PG_TESTS").as_deref() != Ok("1"),
                    "YKT_PG_TESTS=1 but YKT_TEST_POSTGRES_URL is not set"
                );
                eprintln!("skipped: YKT_TEST_POSTGRES_URL is not set (scripts/postgres)");
                return None;
            };
            use sqlx::{Connection, Executor};
            sqlx::any::install_default_drivers();
            let name = format!(
                "ykt_{}",
                hex::encode(ykt_crypto::random::bytes::<6>().unwrap())
            );
            let mut admin = sqlx::AnyConnection::connect(&base).await.unwrap();
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            admin.close().await.unwrap();
            let (prefix, _) = base.rsplit_once('/').unwrap();
            Some(format!("{prefix}/{name}"))
        }
    }
}

/// A fresh in-process HSM in `dir/hsm` whose LMK is formed from two fixed components.
pub fn new_hsm(dir: &Path) -> Arc<LocalHsm> {
    let (secret, _) = CeremonySecret::from_components(&[
        KeyComponent::new(&[0x5A; 32]),
        KeyComponent::new(&[0xC3; 32]),
    ])
    .unwrap();
    Arc::new(LocalHsm::create(&dir.join("hsm"), &secret).unwrap())
}

/// Everything logged by every test of this binary, at every level.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// A log writer appending to [`LOGS`].
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the logs of the whole test binary (once) from now on.
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogBuffer(writer.clone()))
            .init();
        buffer
    });
}

/// What has been logged so far.
pub fn logs() -> Vec<u8> {
    LOGS.get()
        .map(|l| l.lock().unwrap().clone())
        .unwrap_or_default()
}

/// A KMS on a fresh store of kind `db`, initialised with the five officers and quorum 3.
pub async fn fixture(db: Db) -> Option<Fixture> {
    capture_logs();
    let dir = TempDir::new("store");
    let url = database_url(db, dir.path()).await?;
    let hsm = new_hsm(dir.path());
    let store = Store::open(&url).await.unwrap();
    let kms = Kms::new(store, hsm.clone());
    kms.initialize(&InitRequest {
        bureau_code: "330100".into(),
        bureau_name: "Hangzhou Education Bureau".into(),
        quorum: QUORUM,
        officers: OFFICERS
            .iter()
            .map(|(name, password)| NewOfficer {
                credential: Credential::new(name, password),
                display_name: name.to_uppercase(),
            })
            .collect(),
        lmk_kcv: Some(hsm.lmk_kcv().to_string()),
    })
    .await
    .unwrap();
    Some(Fixture {
        kms,
        hsm,
        url,
        dir,
        db,
    })
}

/// How many records of `act` the audit chain holds.
pub async fn acts(kms: &Kms, act: &str) -> usize {
    kms.audit_entries(0)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.act == act)
        .count()
}

/// Defines one `#[tokio::test]` per scenario and store: `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(fixture) = $crate::support::fixture($crate::support::Db::Sqlite).await {
                        super::$scenario(fixture).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(fixture) = $crate::support::fixture($crate::support::Db::Postgres).await {
                        super::$scenario(fixture).await;
                    }
                }
            )*
        }
    };
}

/// The Python of the independent cross-checks: `$YKT_PYTHON`, or the `.venv` that
/// `scripts/test` makes (the test fails, never skips, when it is missing).
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("YKT_PYTHON") {
        return python.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run ./scripts/test (it creates .venv) or set YKT_PYTHON",
        venv.display()
    );
    venv
}

/// Runs Python with `args` on `requests` (JSON on standard input); one answer per request.
pub fn python_batch(
    args: &[&std::ffi::OsStr],
    requests: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let python = python();
    let mut child = Command::new(&python)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(&serde_json::to_vec(requests).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answers.len(), requests.len());
    answers
}
