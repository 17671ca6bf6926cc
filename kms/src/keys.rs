//! Keys in the store: logical keys with versions, aliases, custodians and a lifecycle.
//!
//! A key is one template (usage, algorithm) at one scope, for example `purchase-sm4` at the
//! bureau. Its versions are the card key version byte: rotating adds a version and makes it
//! current while cards personalised with older versions keep working until those versions are
//! retired (the key's minimum version then rises). The lifecycle state applies to the whole
//! key; every transition is recorded with its time, reason and officers, and audited.

use crate::audit::{self, AuditRecord};
use crate::error::{KmsError, Result};
use crate::kms::Kms;
use crate::model::{KeyState, Purpose, Scope, Template};
use crate::provider::{Custody, KeyCheck, WrappedKey};
use crate::store::{Object, now_ms};
use serde::Serialize;
use serde_json::json;
use sqlx::{Any, Row, Transaction};
use ykt_crypto::{Kcv, KcvMethod};
use ykt_hsm_sim::{KeyAlgorithm, KeyAttributes};

/// What every alias begins with: aliases and key IDs never collide.
pub const ALIAS_PREFIX: &str = "alias/";

/// One version of a key, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// The version (card key version byte).
    pub version: u8,
    /// `active`, `retired` or `destroyed`.
    pub state: String,
    /// `encrypt-zeros`, `cmac` or `public-key`.
    pub check_method: String,
    /// Check value or public key, upper-case hex.
    pub check_value: String,
    /// Whether a custody backup exists for this version.
    pub custody: bool,
    /// When made (Unix ms).
    pub created_at: i64,
}

/// One lifecycle transition.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// When (Unix ms).
    pub at: i64,
    /// The version concerned, when the transition was about one version.
    pub version: Option<u8>,
    /// State before.
    pub from: String,
    /// State after.
    pub to: String,
    /// Why.
    pub reason: String,
    /// Officers who acted, comma-separated.
    pub actors: String,
}

/// A key as listed by `ykt key list|show`: never its wrapped bytes.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Key ID.
    pub id: String,
    /// Usage name.
    pub usage: String,
    /// Algorithm name.
    pub algorithm: String,
    /// `bureau` or `school:CODE`.
    pub scope: String,
    /// Lifecycle state.
    pub state: String,
    /// When the state last changed (Unix ms).
    pub state_at: i64,
    /// Why.
    pub state_reason: String,
    /// The version new cards get.
    pub current_version: u8,
    /// The oldest active version (a retired version is refused whatever its number).
    pub min_version: u8,
    /// Custody threshold and custodian count, if the key has custodians.
    pub custody: Option<(u8, u8)>,
    /// Custodians and their share indexes.
    pub custodians: Vec<(String, u8)>,
    /// Aliases pointing at the key.
    pub aliases: Vec<String>,
    /// Versions, oldest first.
    pub versions: Vec<VersionInfo>,
    /// Lifecycle history, oldest first.
    pub transitions: Vec<Transition>,
}

/// The custody of a new key version: its block and who holds which share.
pub(crate) struct CustodyRecord<'a> {
    pub threshold: u8,
    pub custody: &'a Custody,
    pub custodians: &'a [String],
}

/// A key to insert with its first version.
pub(crate) struct NewKey<'a> {
    pub template: Template,
    pub algorithm: KeyAlgorithm,
    pub scope: Scope,
    pub state: KeyState,
    pub provider: &'static str,
    pub key: &'a WrappedKey,
    pub check: &'a KeyCheck,
    pub custody: Option<CustodyRecord<'a>>,
}

/// Method name and upper-case hex of a check.
pub(crate) fn check_columns(check: &KeyCheck) -> (&'static str, String) {
    match check {
        KeyCheck::Kcv(kcv) => (kcv.method().name(), kcv.to_string()),
        KeyCheck::PublicKey(point) => ("public-key", hex::encode_upper(point)),
    }
}

fn state_error(key: &str, reason: impl Into<String>) -> KmsError {
    KmsError::KeyState {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn byte(value: i64, what: &'static str) -> Result<u8> {
    u8::try_from(value).map_err(|_| KmsError::Corrupt(what))
}

/// Inserts a new key (version 1), its custodians and its first transition, and audits its
/// creation; a school key needs its school in the tree.
pub(crate) async fn insert_key(
    tx: &mut Transaction<'static, Any>,
    new: &NewKey<'_>,
    actors: &[String],
    reason: &str,
) -> Result<String> {
    let id = new.template.key_id(new.algorithm, &new.scope);
    Object::Key.require_absent(tx, &id).await?;
    if let Scope::School(code) = &new.scope {
        Object::School.require_present(tx, code.as_str()).await?;
    }
    let now = now_ms();
    let (threshold, count) = match &new.custody {
        Some(c) => (
            Some(i64::from(c.threshold)),
            Some(c.custodians.len() as i64),
        ),
        None => (None, None),
    };
    sqlx::query(
        "INSERT INTO keys (id, usage, algorithm, scope, state, state_at, state_reason, \
         current_version, min_version, custody_threshold, custody_count, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 1, $8, $9, $6)",
    )
    .bind(&id)
    .bind(new.template.usage.name())
    .bind(new.algorithm.name())
    .bind(new.scope.to_string())
    .bind(new.state.name())
    .bind(now)
    .bind(reason)
    .bind(threshold)
    .bind(count)
    .execute(&mut **tx)
    .await?;
    insert_version(
        tx,
        &id,
        1,
        new.provider,
        new.key,
        new.check,
        new.custody.as_ref(),
    )
    .await?;
    if let Some(custody) = &new.custody {
        insert_custodians(tx, &id, custody.custodians).await?;
    }
    record_transition(tx, &id, None, "none", new.state.name(), reason, actors).await?;
    let (method, value) = check_columns(new.check);
    audit::append(
        tx,
        &AuditRecord {
            actors: actors.to_vec(),
            act: "key.create".into(),
            object: format!("key:{id}"),
            result: "ok".into(),
            detail: json!({
                "template": new.template.name,
                "algorithm": new.algorithm.name(),
                "scope": new.scope.to_string(),
                "state": new.state.name(),
                "version": 1,
                "check_method": method,
                "check": value,
                "custody": new.custody.as_ref().map(|c| json!({
                    "threshold": c.threshold,
                    "custodians": c.custodians,
                    "kek_kcv": c.custody.kek_kcv.to_string(),
                })),
                "reason": reason,
            }),
        },
    )
    .await?;
    Ok(id)
}

/// Records the custodians of a key, share `i + 1` to the `i`-th officer.
pub(crate) async fn insert_custodians(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    custodians: &[String],
) -> Result<()> {
    let now = now_ms();
    for (index, officer) in custodians.iter().enumerate() {
        sqlx::query(
            "INSERT INTO custodians (key_id, officer, share_index, assigned_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(officer)
        .bind(index as i64 + 1)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The custody threshold and count columns of a key.
fn custody_of(threshold: Option<i64>, count: Option<i64>) -> Result<Option<(u8, u8)>> {
    Ok(match (threshold, count) {
        (Some(t), Some(c)) => Some((byte(t, "custody")?, byte(c, "custody")?)),
        _ => None,
    })
}

/// Inserts one version row.
pub(crate) async fn insert_version(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    version: u8,
    provider: &str,
    key: &WrappedKey,
    check: &KeyCheck,
    custody: Option<&CustodyRecord<'_>>,
) -> Result<()> {
    let (method, value) = check_columns(check);
    let now = now_ms();
    sqlx::query(
        "INSERT INTO key_versions (key_id, version, provider, attributes, wrapped, check_method, \
         check_value, custody_block, state, created_at, state_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $9)",
    )
    .bind(id)
    .bind(i64::from(version))
    .bind(provider)
    .bind(key.attributes().to_bytes().to_vec())
    .bind(key.as_bytes().to_vec())
    .bind(method)
    .bind(value)
    .bind(custody.map(|c| c.custody.block.clone()))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a lifecycle transition.
pub(crate) async fn record_transition(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    version: Option<u8>,
    from: &str,
    to: &str,
    reason: &str,
    actors: &[String],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO key_transitions (key_id, at, version, from_state, to_state, reason, actors) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(now_ms())
    .bind(version.map(i64::from))
    .bind(from)
    .bind(to)
    .bind(reason)
    .bind(actors.join(","))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The current version's check (KCV or public key) of a key, as stored.
pub(crate) async fn current_check(kms: &Kms, id: &str) -> Result<String> {
    let row = sqlx::query(
        "SELECT v.check_value FROM keys k JOIN key_versions v \
         ON v.key_id = k.id AND v.version = k.current_version WHERE k.id = $1",
    )
    .bind(id)
    .fetch_optional(kms.store().pool())
    .await?
    .ok_or_else(|| KmsError::NotFound {
        kind: "key",
        id: id.to_owned(),
    })?;
    Ok(row.try_get("check_value")?)
}

/// The state row of a key: state, current and minimum version.
pub(crate) struct KeyRow {
    pub id: String,
    pub state: KeyState,
    pub current_version: u8,
    pub min_version: u8,
    pub custody: Option<(u8, u8)>,
}

impl Kms {
    /// Resolves a key ID or alias to the key ID. Aliases live in their own namespace (they
    /// begin with [`ALIAS_PREFIX`], key IDs never do), so an alias can never stand for a key
    /// ID that a ceremony computes from a template.
    pub async fn resolve(&self, id_or_alias: &str) -> Result<String> {
        if !id_or_alias.starts_with(ALIAS_PREFIX) {
            return Ok(id_or_alias.to_owned());
        }
        let alias = sqlx::query("SELECT key_id FROM aliases WHERE alias = $1")
            .bind(id_or_alias)
            .fetch_optional(self.store().pool())
            .await?
            .ok_or_else(|| KmsError::NotFound {
                kind: "alias",
                id: id_or_alias.to_owned(),
            })?;
        Ok(alias.try_get("key_id")?)
    }

    pub(crate) async fn key_row(&self, id_or_alias: &str) -> Result<KeyRow> {
        let id = self.resolve(id_or_alias).await?;
        let row = sqlx::query(
            "SELECT id, state, current_version, min_version, custody_threshold, custody_count \
             FROM keys WHERE id = $1",
        )
        .bind(&id)
        .fetch_optional(self.store().pool())
        .await?
        .ok_or_else(|| KmsError::NotFound {
            kind: "key",
            id: id.clone(),
        })?;
        let state: String = row.try_get("state")?;
        let threshold: Option<i64> = row.try_get("custody_threshold")?;
        let count: Option<i64> = row.try_get("custody_count")?;
        Ok(KeyRow {
            id,
            state: state.parse()?,
            current_version: byte(row.try_get("current_version")?, "key version")?,
            min_version: byte(row.try_get("min_version")?, "key version")?,
            custody: custody_of(threshold, count)?,
        })
    }

    /// The wrapped form of a key's version (the current one when `version` is `None`) for
    /// `purpose`, once its lifecycle state and version allow it.
    pub async fn wrapped(
        &self,
        id_or_alias: &str,
        version: Option<u8>,
        purpose: Purpose,
    ) -> Result<(u8, WrappedKey)> {
        let key = self.key_row(id_or_alias).await?;
        if !key.state.allows(purpose) {
            return Err(state_error(
                &key.id,
                format!("a {} key cannot be used for this", key.state),
            ));
        }
        let version = version.unwrap_or(key.current_version);
        if version > key.current_version {
            return Err(state_error(&key.id, format!("no version {version}")));
        }
        if version < key.min_version && purpose != Purpose::Verify {
            return Err(state_error(
                &key.id,
                format!("version {version} is retired"),
            ));
        }
        let row = sqlx::query(
            "SELECT attributes, wrapped, state FROM key_versions WHERE key_id = $1 AND version = $2",
        )
        .bind(&key.id)
        .bind(i64::from(version))
        .fetch_optional(self.store().pool())
        .await?
        .ok_or_else(|| state_error(&key.id, format!("no version {version}")))?;
        let version_state: String = row.try_get("state")?;
        match version_state.as_str() {
            "active" => {}
            "retired" if purpose == Purpose::Verify => {}
            other => {
                return Err(state_error(
                    &key.id,
                    format!("version {version} is {other}"),
                ));
            }
        }
        let wrapped: Option<Vec<u8>> = row.try_get("wrapped")?;
        let wrapped = wrapped.ok_or_else(|| state_error(&key.id, "destroyed"))?;
        let attributes: Vec<u8> = row.try_get("attributes")?;
        let attributes = KeyAttributes::from_bytes(&attributes)?;
        Ok((version, WrappedKey::new(attributes, wrapped)))
    }

    /// Every key, by ID.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>> {
        let ids = sqlx::query("SELECT id FROM keys ORDER BY id")
            .fetch_all(self.store().pool())
            .await?;
        let mut keys = Vec::with_capacity(ids.len());
        for row in ids {
            keys.push(self.key(&row.try_get::<String, _>("id")?).await?);
        }
        Ok(keys)
    }

    /// One key with its versions, custodians, aliases and history.
    pub async fn key(&self, id_or_alias: &str) -> Result<KeyInfo> {
        let id = self.resolve(id_or_alias).await?;
        let pool = self.store().pool();
        let row = sqlx::query(
            "SELECT id, usage, algorithm, scope, state, state_at, state_reason, current_version, \
             min_version, custody_threshold, custody_count FROM keys WHERE id = $1",
        )
        .bind(&id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| KmsError::NotFound {
            kind: "key",
            id: id.clone(),
        })?;
        let versions = sqlx::query(
            "SELECT version, state, check_method, check_value, custody_block, created_at \
             FROM key_versions WHERE key_id = $1 ORDER BY version",
        )
        .bind(&id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|v| {
            Ok(VersionInfo {
                version: byte(v.try_get("version")?, "key version")?,
                state: v.try_get("state")?,
                check_method: v.try_get("check_method")?,
                check_value: v.try_get("check_value")?,
                custody: v.try_get::<Option<String>, _>("custody_block")?.is_some(),
                created_at: v.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let custodians = sqlx::query(
            "SELECT officer, share_index FROM custodians WHERE key_id = $1 ORDER BY share_index",
        )
        .bind(&id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|c| {
            Ok((
                c.try_get("officer")?,
                byte(c.try_get("share_index")?, "share")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
        let aliases = sqlx::query("SELECT alias FROM aliases WHERE key_id = $1 ORDER BY alias")
            .bind(&id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|a| Ok(a.try_get("alias")?))
            .collect::<Result<Vec<_>>>()?;
        let transitions = sqlx::query(
            "SELECT at, version, from_state, to_state, reason, actors FROM key_transitions \
             WHERE key_id = $1 ORDER BY id",
        )
        .bind(&id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|t| {
            Ok(Transition {
                at: t.try_get("at")?,
                version: t
                    .try_get::<Option<i64>, _>("version")?
                    .map(|v| byte(v, "key version"))
                    .transpose()?,
                from: t.try_get("from_state")?,
                to: t.try_get("to_state")?,
                reason: t.try_get("reason")?,
                actors: t.try_get("actors")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let threshold: Option<i64> = row.try_get("custody_threshold")?;
        let count: Option<i64> = row.try_get("custody_count")?;
        Ok(KeyInfo {
            id: row.try_get("id")?,
            usage: row.try_get("usage")?,
            algorithm: row.try_get("algorithm")?,
            scope: row.try_get("scope")?,
            state: row.try_get("state")?,
            state_at: row.try_get("state_at")?,
            state_reason: row.try_get("state_reason")?,
            current_version: byte(row.try_get("current_version")?, "key version")?,
            min_version: byte(row.try_get("min_version")?, "key version")?,
            custody: custody_of(threshold, count)?,
            custodians,
            aliases,
            versions,
            transitions,
        })
    }

    /// Moves a key to `target` (suspend, resume, activate, deactivate, report compromised).
    /// Suspending and reporting a compromise are protective and need one officer; every
    /// other transition needs the quorum. Destruction is a ceremony of its own
    /// ([`Kms::destroy_key`]).
    pub async fn transition(
        &self,
        approvals: &[crate::officers::Credential],
        id_or_alias: &str,
        target: KeyState,
        reason: &str,
    ) -> Result<()> {
        if target == KeyState::Destroyed {
            return Err(KmsError::InvalidInput {
                field: "state",
                reason: "destroying a key is a ceremony: `ykt ceremony destroy`".into(),
            });
        }
        if reason.trim().is_empty() {
            return Err(KmsError::InvalidInput {
                field: "reason",
                reason: "every transition needs a reason".into(),
            });
        }
        let key = self.key_row(id_or_alias).await?;
        let act = format!("key {}", target.name());
        // Suspending or reporting a compromise protects, so one officer may; but the KMS
        // signing key signs every audit checkpoint, so any change to it needs the quorum.
        let signing_key = key.id.starts_with(crate::model::KMS_SIGNING_TEMPLATE.name);
        let needed = match target {
            KeyState::Suspended | KeyState::Compromised if !signing_key => 1,
            _ => self.quorum().await?,
        };
        let actors = self.approve(approvals, needed, &act).await?;
        if !key.state.may_become(target) {
            let reason = format!("a {} key cannot become {target}", key.state);
            self.audit_refusal(actors, &act, &format!("key:{}", key.id), &reason)
                .await?;
            return Err(state_error(&key.id, reason));
        }
        let mut tx = self.store().begin().await?;
        let changed = sqlx::query(
            "UPDATE keys SET state = $1, state_at = $2, state_reason = $3 \
             WHERE id = $4 AND state = $5",
        )
        .bind(target.name())
        .bind(now_ms())
        .bind(reason)
        .bind(&key.id)
        .bind(key.state.name())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(state_error(&key.id, "changed concurrently; try again"));
        }
        record_transition(
            &mut tx,
            &key.id,
            None,
            key.state.name(),
            target.name(),
            reason,
            &actors,
        )
        .await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors,
                act: format!("key.{}", target.name()),
                object: format!("key:{}", key.id),
                result: "ok".into(),
                detail: json!({ "from": key.state.name(), "reason": reason }),
            },
        )
        .await?;
        Ok(())
    }

    /// Retires one version of a key (not the current one): cards still on it must be
    /// re-personalised; it stays usable for verifying their past TACs. The minimum version
    /// rises to the oldest version still active. Needs the quorum.
    pub async fn retire_version(
        &self,
        approvals: &[crate::officers::Credential],
        id_or_alias: &str,
        version: u8,
        reason: &str,
    ) -> Result<()> {
        let key = self.key_row(id_or_alias).await?;
        let actors = self
            .approve(approvals, self.quorum().await?, "key retire-version")
            .await?;
        if version >= key.current_version {
            return Err(state_error(
                &key.id,
                "only versions older than the current one can be retired; rotate first",
            ));
        }
        let mut tx = self.store().begin().await?;
        let changed = sqlx::query(
            "UPDATE key_versions SET state = 'retired', state_at = $1 \
             WHERE key_id = $2 AND version = $3 AND state = 'active'",
        )
        .bind(now_ms())
        .bind(&key.id)
        .bind(i64::from(version))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(state_error(
                &key.id,
                format!("version {version} is not active"),
            ));
        }
        sqlx::query(
            "UPDATE keys SET min_version = (SELECT MIN(version) FROM key_versions \
             WHERE key_id = $1 AND state = 'active') WHERE id = $1",
        )
        .bind(&key.id)
        .execute(&mut *tx)
        .await?;
        record_transition(
            &mut tx,
            &key.id,
            Some(version),
            "active",
            "retired",
            reason,
            &actors,
        )
        .await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors,
                act: "key.retire-version".into(),
                object: format!("key:{}", key.id),
                result: "ok".into(),
                detail: json!({ "version": version, "reason": reason }),
            },
        )
        .await?;
        Ok(())
    }

    /// Points `alias` (`alias/NAME`) at a key (one officer). An alias names one key at a
    /// time; pointing it elsewhere is recorded like any other change. Ceremonies never
    /// resolve the key IDs they compute through aliases.
    pub async fn set_alias(
        &self,
        approval: &crate::officers::Credential,
        alias: &str,
        id_or_alias: &str,
    ) -> Result<()> {
        let name = alias.strip_prefix(ALIAS_PREFIX).unwrap_or_default();
        if name.is_empty()
            || alias.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        {
            return Err(KmsError::InvalidInput {
                field: "alias",
                reason: format!(
                    "`{ALIAS_PREFIX}` then letters, digits and `-_./`, 64 characters at most"
                ),
            });
        }
        let key = self.key_row(id_or_alias).await?;
        let actor = self.approve_one(approval, "key alias").await?;
        let mut tx = self.store().begin().await?;
        let previous = sqlx::query("SELECT key_id FROM aliases WHERE alias = $1")
            .bind(alias)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<String, _>("key_id"))
            .transpose()?;
        sqlx::query("DELETE FROM aliases WHERE alias = $1")
            .bind(alias)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO aliases (alias, key_id, created_at) VALUES ($1, $2, $3)")
            .bind(alias)
            .bind(&key.id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors: vec![actor],
                act: "key.alias".into(),
                object: format!("alias:{alias}"),
                result: "ok".into(),
                detail: json!({ "key": key.id, "previous": previous }),
            },
        )
        .await?;
        Ok(())
    }

    /// Recomputes a symmetric key version's check value in the HSM with `method` and tells
    /// whether it still matches the stored one (default method only).
    pub async fn kcv(
        &self,
        id_or_alias: &str,
        version: Option<u8>,
        method: Option<KcvMethod>,
    ) -> Result<(Kcv, Option<bool>)> {
        let (version, key) = self.wrapped(id_or_alias, version, Purpose::Verify).await?;
        let algorithm =
            key.attributes()
                .algorithm()
                .symmetric()
                .ok_or_else(|| KmsError::InvalidInput {
                    field: "key",
                    reason: "an asymmetric key has a public key, not a check value".into(),
                })?;
        let default = KcvMethod::default_for(algorithm);
        let method = method.unwrap_or(default);
        let kcv = self.hsm().kcv(&key, method)?;
        if method != default {
            return Ok((kcv, None));
        }
        let id = self.resolve(id_or_alias).await?;
        let row =
            sqlx::query("SELECT check_value FROM key_versions WHERE key_id = $1 AND version = $2")
                .bind(&id)
                .bind(i64::from(version))
                .fetch_one(self.store().pool())
                .await?;
        let stored: String = row.try_get("check_value")?;
        let matches = stored == kcv.to_string();
        Ok((kcv, Some(matches)))
    }
}
