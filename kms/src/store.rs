//! The KMS store: SQLite (the default, one file in the data directory, WAL) or PostgreSQL
//! (a URL in the configuration), behind sqlx's `Any` driver so every query is written once.
//!
//! The schema is applied by an embedded, append-only migration list: one SQL file per step
//! and backend (`migrations/sqlite/`, `migrations/postgres/`, the same tables in each
//! dialect), or one file for both when its SQL reads alike in each (`migrations/`). Each applied step is recorded with the SM3 digest of its text, and a store whose
//! recorded digest differs from the embedded one is refused: a released migration is never
//! edited, the next one is added. sqlx's own migrator would need its proc-macro stack, which
//! compiles both database drivers a second time for the build host; twenty lines do here.
//!
//! SQLite transactions begin `IMMEDIATE`, so two writers queue on the write lock instead of
//! failing on a stale snapshot; deleted content is overwritten (`secure_delete`), so a
//! destroyed key's wrapped form does not linger in free pages. PostgreSQL transactions order
//! their audit appends on the `audit_head` row lock.

use crate::error::{KmsError, Result};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// One migration step: its number, name and the SQL for each backend.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every migration, in order. Append only.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "issuance",
        sqlite: include_str!("../migrations/0002_issuance.sql"),
        postgres: include_str!("../migrations/0002_issuance.sql"),
    },
    Migration {
        version: 3,
        name: "api",
        sqlite: include_str!("../migrations/0003_api.sql"),
        postgres: include_str!("../migrations/0003_api.sql"),
    },
    Migration {
        version: 4,
        name: "idempotency",
        sqlite: include_str!("../migrations/0004_idempotency.sql"),
        postgres: include_str!("../migrations/0004_idempotency.sql"),
    },
];

/// The connection pool and the backend it talks to.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// A kind of object the KMS names by one text key: where its rows are, how errors name it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Object {
    Key,
    Officer,
    Region,
    School,
    ApiClient,
}

impl Object {
    fn kind(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Officer => "officer",
            Self::Region => "region",
            Self::School => "school",
            Self::ApiClient => "API client",
        }
    }

    fn lookup(self) -> &'static str {
        match self {
            Self::Key => "SELECT 1 FROM keys WHERE id = $1",
            Self::Officer => "SELECT 1 FROM officers WHERE name = $1",
            Self::Region => "SELECT 1 FROM regions WHERE code = $1",
            Self::School => "SELECT 1 FROM schools WHERE code = $1",
            Self::ApiClient => "SELECT 1 FROM api_clients WHERE name = $1",
        }
    }

    async fn exists(self, tx: &mut Transaction<'static, Any>, id: &str) -> Result<bool> {
        Ok(sqlx::query(self.lookup())
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some())
    }

    /// Refuses `id` when an object of this kind already has it.
    pub(crate) async fn require_absent(
        self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
    ) -> Result<()> {
        if self.exists(tx, id).await? {
            return Err(KmsError::AlreadyExists {
                kind: self.kind(),
                id: id.to_owned(),
            });
        }
        Ok(())
    }

    /// Refuses `id` unless an object of this kind has it.
    pub(crate) async fn require_present(
        self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
    ) -> Result<()> {
        if !self.exists(tx, id).await? {
            return Err(KmsError::NotFound {
                kind: self.kind(),
                id: id.to_owned(),
            });
        }
        Ok(())
    }
}

/// Now, as Unix milliseconds (UTC).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl From<sqlx::Error> for KmsError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.to_string())
    }
}

impl Store {
    /// Connects to `url` (`sqlite://PATH?mode=rwc` or `postgres://...`) and brings the schema
    /// up to date.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(KmsError::InvalidInput {
                field: "database URL",
                reason: "must start with sqlite: or postgres:".into(),
            });
        };
        let options = AnyConnectOptions::from_str(url).map_err(|e| KmsError::InvalidInput {
            field: "database URL",
            reason: e.to_string(),
        })?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            // A ping before each use guards against a server that dropped the connection; an
            // SQLite file has no server, and the ping is one more thread hop per transaction.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        connection
                            .execute(
                                "PRAGMA journal_mode = WAL; PRAGMA secure_delete = ON; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;",
                            )
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let store = Self { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a write transaction (on SQLite, holding the write lock from the start).
    pub async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.pool.begin_with(self.begin_statement()).await?)
    }

    /// [`Store::begin`] on `connection`, one taken from [`Store::pool`] and kept.
    pub async fn begin_on<'c>(
        &self,
        connection: &'c mut sqlx::AnyConnection,
    ) -> Result<Transaction<'c, Any>> {
        use sqlx::Connection;
        Ok(connection.begin_with(self.begin_statement()).await?)
    }

    fn begin_statement(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// Begins a read-only transaction that sees one snapshot of the whole store (PostgreSQL:
    /// repeatable read), for reads that must agree with each other.
    pub async fn begin_snapshot(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        })
    }

    /// Folds SQLite's write-ahead log into the database file and truncates it, so content
    /// deleted in the last transactions is gone from the log too. Nothing on PostgreSQL.
    pub async fn checkpoint_wal(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
             name TEXT NOT NULL, digest TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await?;
        let applied = sqlx::query("SELECT version, digest FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
        for (index, row) in applied.iter().enumerate() {
            let version: i64 = row.try_get("version")?;
            let digest: String = row.try_get("digest")?;
            let known = MIGRATIONS
                .get(index)
                .filter(|m| m.version == version)
                .ok_or(KmsError::Corrupt(
                    "the store has a schema newer than this version of ykt",
                ))?;
            if digest != self.digest(known) {
                return Err(KmsError::Corrupt(
                    "an applied migration differs from this version's text",
                ));
            }
        }
        for migration in &MIGRATIONS[applied.len()..] {
            tx.execute(self.sql(migration)).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, digest, applied_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(migration.version)
            .bind(migration.name)
            .bind(self.digest(migration))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn sql(&self, migration: &Migration) -> &'static str {
        match self.backend {
            Backend::Sqlite => migration.sqlite,
            Backend::Postgres => migration.postgres,
        }
    }

    fn digest(&self, migration: &Migration) -> String {
        hex::encode_upper(ykt_crypto::sm2::sm3(self.sql(migration).as_bytes()))
    }
}
