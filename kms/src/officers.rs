//! Security officers: registration with argon2id password hashes, and the quorum check every
//! dual-control act goes through.
//!
//! The KMS, not its client, decides whether the officers present may act: each credential is
//! verified against the store, each officer counts once, disabled officers do not count, and
//! the act needs at least the bureau's quorum (at least two officers, fixed at initialisation).

use crate::audit::AuditRecord;
use crate::error::{KmsError, Result};
use crate::kms::Kms;
use crate::store::{Object, now_ms};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use std::collections::BTreeSet;
use std::fmt;
use zeroize::Zeroizing;

/// The shortest password an officer may have.
pub const MIN_PASSWORD_LEN: usize = 12;

/// An officer's name and password, as presented for one act. The password is wiped on drop
/// and never shown.
#[derive(Clone)]
pub struct Credential {
    /// The officer's login name.
    pub name: String,
    /// The password.
    pub password: Zeroizing<String>,
}

impl Credential {
    /// A credential of `name` and `password`.
    pub fn new(name: &str, password: &str) -> Self {
        Self {
            name: name.to_owned(),
            password: Zeroizing::new(password.to_owned()),
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A registered officer, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Officer {
    /// Login name.
    pub name: String,
    /// Full name.
    pub display_name: String,
    /// `active` or `disabled`.
    pub status: String,
    /// When registered (Unix ms).
    pub created_at: i64,
    /// When the status last changed (Unix ms).
    pub status_at: i64,
    /// Why.
    pub status_reason: String,
}

/// Checks an officer name: 1–32 characters of lower-case letters, digits, `-` and `_`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(KmsError::InvalidInput {
            field: "officer name",
            reason: "1 to 32 characters of a-z, 0-9, `-` and `_`".into(),
        })
    }
}

/// Hashes a new officer's password with argon2id (a fresh random salt).
pub(crate) fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(KmsError::InvalidInput {
            field: "password",
            reason: format!("at least {MIN_PASSWORD_LEN} characters"),
        });
    }
    let salt = ykt_crypto::random::bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| KmsError::Corrupt("salt encoding"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| KmsError::Corrupt("argon2 hashing failed"))
}

fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// An officer to register.
#[derive(Debug, Clone)]
pub struct NewOfficer {
    /// Login name and password.
    pub credential: Credential,
    /// Full name.
    pub display_name: String,
}

impl Kms {
    /// Verifies the credentials presented for `act`: every one must be an active officer
    /// with the right password, each officer counts once, and at least `needed` distinct
    /// officers must remain (dual-control acts pass the bureau's quorum, never below two).
    /// Returns their names, sorted. A refusal is audited and changes nothing else.
    pub async fn approve(
        &self,
        credentials: &[Credential],
        needed: usize,
        act: &str,
    ) -> Result<Vec<String>> {
        let mut approved = BTreeSet::new();
        let mut refusal = None;
        for credential in credentials {
            if !self.credential_valid(credential).await? {
                refusal = Some(format!("credentials of `{}` refused", credential.name));
                break;
            }
            if !approved.insert(credential.name.clone()) {
                refusal = Some(format!("officer `{}` presented twice", credential.name));
                break;
            }
        }
        if refusal.is_none() && approved.len() < needed.max(1) {
            refusal = Some(format!(
                "{act} needs {needed} distinct officers, {} presented",
                approved.len()
            ));
        }
        match refusal {
            None => Ok(approved.into_iter().collect()),
            Some(reason) => {
                let names = credentials.iter().map(|c| c.name.clone()).collect();
                self.audit_refusal(names, act, "officers", &reason).await?;
                Err(KmsError::NotAuthorised(reason))
            }
        }
    }

    /// Verifies one officer's credential for a single-officer act (suspend, report a
    /// compromise, add a school); returns the name.
    pub async fn approve_one(&self, credential: &Credential, act: &str) -> Result<String> {
        let mut names = self
            .approve(std::slice::from_ref(credential), 1, act)
            .await?;
        Ok(names.remove(0))
    }

    /// Whether `credential` is an active officer's, with the right password. Unknown names
    /// cost one hash too, so timing does not tell registered names apart.
    async fn credential_valid(&self, credential: &Credential) -> Result<bool> {
        let row = sqlx::query("SELECT password_hash, status FROM officers WHERE name = $1")
            .bind(&credential.name)
            .fetch_optional(self.store().pool())
            .await?;
        Ok(match row {
            Some(row) => {
                let hash: String = row.try_get("password_hash")?;
                let status: String = row.try_get("status")?;
                password_matches(&hash, &credential.password) && status == "active"
            }
            None => {
                hash_password("a password that never matches")?;
                false
            }
        })
    }

    /// Registers an officer; a quorum of existing officers approves.
    pub async fn add_officer(&self, approvals: &[Credential], officer: NewOfficer) -> Result<()> {
        check_name(&officer.credential.name)?;
        let hash = hash_password(&officer.credential.password)?;
        let actors = self
            .approve(approvals, self.quorum().await?, "officer add")
            .await?;
        let mut tx = self.store().begin().await?;
        insert_officer(&mut tx, &officer, &hash).await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors,
                act: "officer.add".into(),
                object: format!("officer:{}", officer.credential.name),
                result: "ok".into(),
                detail: json!({ "display_name": officer.display_name }),
            },
        )
        .await?;
        Ok(())
    }

    /// Disables an officer (their credentials stop counting); a quorum of other officers
    /// approves, and at least the quorum of active officers must remain.
    pub async fn disable_officer(
        &self,
        approvals: &[Credential],
        name: &str,
        reason: &str,
    ) -> Result<()> {
        const ACT: &str = "officer disable";
        let object = format!("officer:{name}");
        let names = || approvals.iter().map(|c| c.name.clone()).collect();
        if approvals.iter().any(|c| c.name == name) {
            let reason = "an officer cannot approve their own disabling";
            self.audit_refusal(names(), ACT, &object, reason).await?;
            return Err(KmsError::NotAuthorised(reason.into()));
        }
        let quorum = self.quorum().await?;
        let actors = self.approve(approvals, quorum, ACT).await?;
        let mut tx = self.store().begin().await?;
        let active: i64 = sqlx::query("SELECT COUNT(*) AS n FROM officers WHERE status = 'active'")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if usize::try_from(active).unwrap_or(0) <= quorum {
            drop(tx);
            let reason = format!(
                "{active} active officers: disabling one would leave fewer than the quorum of \
                 {quorum}, and no act could be approved again; register an officer first"
            );
            self.audit_refusal(actors, ACT, &object, &reason).await?;
            return Err(KmsError::NotAuthorised(reason));
        }
        let changed = sqlx::query(
            "UPDATE officers SET status = 'disabled', status_at = $1, status_reason = $2 \
             WHERE name = $3 AND status = 'active'",
        )
        .bind(now_ms())
        .bind(reason)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(KmsError::NotFound {
                kind: "active officer",
                id: name.to_owned(),
            });
        }
        self.commit_audited(
            tx,
            AuditRecord {
                actors,
                act: "officer.disable".into(),
                object: format!("officer:{name}"),
                result: "ok".into(),
                detail: json!({ "reason": reason }),
            },
        )
        .await?;
        Ok(())
    }

    /// Every registered officer, by name.
    pub async fn officers(&self) -> Result<Vec<Officer>> {
        let rows = sqlx::query(
            "SELECT name, display_name, status, created_at, status_at, status_reason \
             FROM officers ORDER BY name",
        )
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Officer {
                    name: row.try_get("name")?,
                    display_name: row.try_get("display_name")?,
                    status: row.try_get("status")?,
                    created_at: row.try_get("created_at")?,
                    status_at: row.try_get("status_at")?,
                    status_reason: row.try_get("status_reason")?,
                })
            })
            .collect()
    }

    /// Writes a refusal to the audit chain in its own transaction.
    pub(crate) async fn audit_refusal(
        &self,
        actors: Vec<String>,
        act: &str,
        object: &str,
        reason: &str,
    ) -> Result<()> {
        let tx = self.store().begin().await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors,
                act: act.replace(' ', "."),
                object: object.to_owned(),
                result: format!("refused: {reason}"),
                detail: json!({}),
            },
        )
        .await?;
        Ok(())
    }
}

/// Inserts an officer row inside a transaction (registration and initialisation).
pub(crate) async fn insert_officer(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    officer: &NewOfficer,
    hash: &str,
) -> Result<()> {
    Object::Officer
        .require_absent(tx, &officer.credential.name)
        .await?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO officers (name, display_name, password_hash, status, created_at, status_at, \
         status_reason) VALUES ($1, $2, $3, 'active', $4, $4, 'registered')",
    )
    .bind(&officer.credential.name)
    .bind(&officer.display_name)
    .bind(hash)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
