//! Idempotency keys of the API's state-changing calls: a client names each such call with a
//! key of its own; the first call with a key claims it with the digest of its request, and
//! its answer is kept. A retry with the same key and the same request gets the kept answer
//! and the act is not done again; the same key with another request is refused; a retry
//! while the first call still runs is told so. Keys are kept for [`RETENTION_MS`].

use crate::error::Result;
use crate::kms::Kms;
use crate::store::now_ms;
use sqlx::Row;

/// How long a key and its answer are kept: a day.
pub const RETENTION_MS: i64 = 24 * 3600 * 1000;

/// What a claimed key means for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A new key: run the call, then [`Kms::complete_idempotency_key`] (or release it).
    Fresh,
    /// The key answered this request before: answer the same.
    Replay {
        /// The HTTP status.
        status: u16,
        /// The JSON body.
        body: String,
    },
    /// The key was used with another request.
    Mismatch,
    /// The first call with this key has not finished.
    InFlight,
}

impl Kms {
    /// Claims `key` of `client` for a request of SHA-256 digest `digest` (hex).
    pub async fn claim_idempotency_key(
        &self,
        client: &str,
        key: &str,
        digest: &str,
    ) -> Result<Claim> {
        let inserted = sqlx::query(
            "INSERT INTO api_idempotency (client, key, digest, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (client, key) DO NOTHING",
        )
        .bind(client)
        .bind(key)
        .bind(digest)
        .bind(now_ms())
        .execute(self.store().pool())
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Fresh);
        }
        let row = sqlx::query(
            "SELECT digest, status, body FROM api_idempotency WHERE client = $1 AND key = $2",
        )
        .bind(client)
        .bind(key)
        .fetch_optional(self.store().pool())
        .await?;
        let Some(row) = row else {
            // Released between the two statements: the caller may retry.
            return Ok(Claim::InFlight);
        };
        let stored: String = row.try_get("digest")?;
        if stored != digest {
            return Ok(Claim::Mismatch);
        }
        let status: Option<i64> = row.try_get("status")?;
        let body: Option<String> = row.try_get("body")?;
        Ok(match (status, body) {
            (Some(status), Some(body)) => Claim::Replay {
                status: u16::try_from(status).unwrap_or(500),
                body,
            },
            _ => Claim::InFlight,
        })
    }

    /// Keeps the answer of the call that claimed `key`.
    pub async fn complete_idempotency_key(
        &self,
        client: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE api_idempotency SET status = $1, body = $2 WHERE client = $3 AND key = $4",
        )
        .bind(i64::from(status))
        .bind(body)
        .bind(client)
        .bind(key)
        .execute(self.store().pool())
        .await?;
        Ok(())
    }

    /// Gives `key` up after a call that did not complete (a server failure): a retry runs it.
    pub async fn release_idempotency_key(&self, client: &str, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM api_idempotency WHERE client = $1 AND key = $2")
            .bind(client)
            .bind(key)
            .execute(self.store().pool())
            .await?;
        Ok(())
    }

    /// Forgets keys older than [`RETENTION_MS`]; returns how many.
    pub async fn purge_idempotency_keys(&self) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM api_idempotency WHERE created_at < $1")
                .bind(now_ms() - RETENTION_MS)
                .execute(self.store().pool())
                .await?
                .rows_affected(),
        )
    }
}
