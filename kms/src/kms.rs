//! The KMS itself: a store, an HSM, and the bureau's initialisation.

use crate::audit::{self, AuditRecord};
use crate::error::{KmsError, Result};
use crate::key_cache::KeyCache;
use crate::keys::NewKey;
use crate::model::Purpose;
use crate::model::{KMS_SIGNING_TEMPLATE, KeyState, Scope};
use crate::officers::{NewOfficer, check_name, hash_password, insert_officer};
use crate::provider::{Hsm, KeyCheck, ProviderKind, SignInput, WrappedKey};
use crate::store::{Store, now_ms};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use std::collections::BTreeSet;
use std::sync::Arc;
use ykt_hsm_sim::{KeyAlgorithm, KeyAttributes};

/// The signer ID of the KMS signing key in SM2 signatures (ZA).
pub const KMS_SIGNER_ID: &[u8] = b"ykt-kms";

/// The KMS: every act goes through here, so quorum, lifecycle and audit rules hold whatever
/// the front end.
pub struct Kms {
    store: Store,
    hsm: Arc<dyn Hsm>,
    api_audit: audit::GroupCommit,
    key_cache: Arc<KeyCache>,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("hsm", &self.hsm.kind())
            .finish_non_exhaustive()
    }
}

/// What the bureau decides at initialisation.
#[derive(Debug, Clone)]
pub struct InitRequest {
    /// The bureau's 6-digit administrative division code.
    pub bureau_code: String,
    /// The bureau's name.
    pub bureau_name: String,
    /// How many officers every dual-control act needs (at least 2).
    pub quorum: u8,
    /// The first officers (at least `quorum`).
    pub officers: Vec<NewOfficer>,
    /// The LMK check value reported by the HSM, recorded for later comparison.
    pub lmk_kcv: Option<String>,
}

/// The facts fixed at initialisation.
#[derive(Debug, Clone, Serialize)]
pub struct KmsInfo {
    /// Bureau code.
    pub bureau_code: String,
    /// Bureau name.
    pub bureau_name: String,
    /// Officers needed for dual-control acts.
    pub quorum: u8,
    /// The HSM kind at initialisation.
    pub hsm: String,
    /// LMK check value at initialisation, if the HSM has one.
    pub lmk_kcv: Option<String>,
    /// When initialised (Unix ms).
    pub initialised_at: i64,
    /// The KMS signing key's public key (SM2, or P-256 on a PKCS#11 token; uncompressed hex).
    pub signing_public_key: String,
}

impl Kms {
    /// A KMS over an opened store and HSM.
    pub fn new(store: Store, hsm: Arc<dyn Hsm>) -> Self {
        Self {
            store,
            hsm,
            api_audit: audit::GroupCommit::default(),
            key_cache: Arc::default(),
        }
    }

    /// Another handle on the same store, HSM and key cache, with its own audit writer: the
    /// handle the API's audit writer runs on.
    fn sibling(&self) -> Self {
        Self {
            key_cache: self.key_cache.clone(),
            ..Self::new(self.store.clone(), self.hsm.clone())
        }
    }

    /// The cache of the keys the API uses on every call.
    pub(crate) fn key_cache(&self) -> &KeyCache {
        &self.key_cache
    }

    /// A KMS over the store alone, for acts that use no key (listings, officers, the tree,
    /// lifecycle changes): every HSM operation is refused, and the audit checkpoint of its
    /// acts is signed with the next act that has the HSM.
    pub fn store_only(store: Store) -> Self {
        Self::new(store, Arc::new(crate::provider::Closed))
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The HSM.
    pub fn hsm(&self) -> &dyn Hsm {
        self.hsm.as_ref()
    }

    /// Initialises an empty store: the bureau's facts, the first officers and the KMS signing
    /// key (SM2), all audited, then the first signed checkpoint. Refuses a store that is
    /// already initialised.
    pub async fn initialize(&self, request: &InitRequest) -> Result<KmsInfo> {
        crate::model::RegionCode::new(&request.bureau_code).map_err(|_| {
            KmsError::InvalidInput {
                field: "bureau code",
                reason: "must be 6 decimal digits".into(),
            }
        })?;
        if request.quorum < 2 {
            return Err(KmsError::InvalidInput {
                field: "quorum",
                reason: "dual control needs at least 2 officers".into(),
            });
        }
        if request.officers.len() < usize::from(request.quorum) {
            return Err(KmsError::InvalidInput {
                field: "officers",
                reason: format!("at least {} officers are needed", request.quorum),
            });
        }
        let distinct: BTreeSet<_> = request
            .officers
            .iter()
            .map(|o| o.credential.name.as_str())
            .collect();
        if distinct.len() != request.officers.len() {
            return Err(KmsError::InvalidInput {
                field: "officers",
                reason: "an officer is listed twice".into(),
            });
        }
        let mut hashes = Vec::with_capacity(request.officers.len());
        for officer in &request.officers {
            check_name(&officer.credential.name)?;
            hashes.push(hash_password(&officer.credential.password)?);
        }
        if self.quorum().await.is_ok() {
            return Err(KmsError::AlreadyExists {
                kind: "KMS",
                id: "this store".into(),
            });
        }
        let signing_algorithm = signing_algorithm_of(self.hsm.kind());
        let attributes = KMS_SIGNING_TEMPLATE.attributes(signing_algorithm, 1)?;
        let generated = self.hsm.generate_key(attributes)?;
        let KeyCheck::PublicKey(_) = generated.check else {
            return Err(KmsError::Corrupt(
                "the HSM gave no public key for a signing key",
            ));
        };
        let actors: Vec<String> = distinct.iter().map(|s| (*s).to_owned()).collect();
        let now = now_ms();

        let mut tx = self.store.begin().await?;
        let initialised = sqlx::query("SELECT value FROM kms_meta WHERE name = 'initialised_at'")
            .fetch_optional(&mut *tx)
            .await?;
        if initialised.is_some() {
            return Err(KmsError::AlreadyExists {
                kind: "KMS",
                id: "this store".into(),
            });
        }
        let meta = [
            ("bureau_code", request.bureau_code.clone()),
            ("bureau_name", request.bureau_name.clone()),
            ("quorum", request.quorum.to_string()),
            ("hsm", self.hsm.kind().name().to_owned()),
            ("lmk_kcv", request.lmk_kcv.clone().unwrap_or_default()),
            ("initialised_at", now.to_string()),
        ];
        for (name, value) in &meta {
            sqlx::query("INSERT INTO kms_meta (name, value) VALUES ($1, $2)")
                .bind(*name)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        audit::append(
            &mut tx,
            &AuditRecord {
                actors: actors.clone(),
                act: "kms.init".into(),
                object: format!("bureau:{}", request.bureau_code),
                result: "ok".into(),
                detail: json!({
                    "bureau_name": request.bureau_name,
                    "quorum": request.quorum,
                    "hsm": self.hsm.kind().name(),
                    "lmk_kcv": request.lmk_kcv,
                }),
            },
        )
        .await?;
        for (officer, hash) in request.officers.iter().zip(&hashes) {
            insert_officer(&mut tx, officer, hash).await?;
            audit::append(
                &mut tx,
                &AuditRecord {
                    actors: actors.clone(),
                    act: "officer.add".into(),
                    object: format!("officer:{}", officer.credential.name),
                    result: "ok".into(),
                    detail: json!({ "display_name": officer.display_name }),
                },
            )
            .await?;
        }
        crate::keys::insert_key(
            &mut tx,
            &NewKey {
                template: KMS_SIGNING_TEMPLATE,
                algorithm: signing_algorithm,
                scope: Scope::Bureau,
                state: KeyState::Active,
                provider: self.hsm.kind().name(),
                key: &generated.key,
                check: &generated.check,
                custody: None,
            },
            &actors,
            "KMS initialisation",
        )
        .await?;
        tx.commit().await?;
        self.checkpoint_after_act().await;
        self.info().await
    }

    /// The facts fixed at initialisation; [`KmsError::NotFound`] before.
    pub async fn info(&self) -> Result<KmsInfo> {
        let rows = sqlx::query("SELECT name, value FROM kms_meta")
            .fetch_all(self.store.pool())
            .await?;
        let get = |name: &str| -> Option<String> {
            rows.iter()
                .find(|r| r.try_get::<String, _>("name").ok().as_deref() == Some(name))
                .and_then(|r| r.try_get("value").ok())
        };
        let missing = || KmsError::NotFound {
            kind: "KMS",
            id: "initialisation (run `ykt kms init`)".into(),
        };
        let bureau_code = get("bureau_code").ok_or_else(missing)?;
        let signing = crate::keys::current_check(self, &self.signing_key_id().await?).await?;
        Ok(KmsInfo {
            bureau_code,
            bureau_name: get("bureau_name").ok_or_else(missing)?,
            quorum: get("quorum")
                .and_then(|q| q.parse().ok())
                .ok_or_else(missing)?,
            hsm: get("hsm").ok_or_else(missing)?,
            lmk_kcv: get("lmk_kcv").filter(|k| !k.is_empty()),
            initialised_at: get("initialised_at")
                .and_then(|t| t.parse().ok())
                .ok_or_else(missing)?,
            signing_public_key: signing,
        })
    }

    /// Officers needed for dual-control acts.
    pub async fn quorum(&self) -> Result<usize> {
        let row = sqlx::query("SELECT value FROM kms_meta WHERE name = 'quorum'")
            .fetch_optional(self.store.pool())
            .await?
            .ok_or(KmsError::NotFound {
                kind: "KMS",
                id: "initialisation (run `ykt kms init`)".into(),
            })?;
        let value: String = row.try_get("value")?;
        value
            .parse()
            .map_err(|_| KmsError::Corrupt("quorum is not a number"))
    }

    /// The ID of the KMS signing key: `kms-signing-sm2`, or `kms-signing-p256` on an HSM
    /// without SM2 ([`signing_algorithm_of`]).
    pub async fn signing_key_id(&self) -> Result<String> {
        let ids = SIGNING_ALGORITHMS.map(|a| KMS_SIGNING_TEMPLATE.key_id(a, &Scope::Bureau));
        let row = sqlx::query("SELECT id FROM keys WHERE id = $1 OR id = $2")
            .bind(&ids[0])
            .bind(&ids[1])
            .fetch_optional(self.store.pool())
            .await?
            .ok_or(KmsError::NotFound {
                kind: "KMS",
                id: "initialisation (run `ykt kms init`)".into(),
            })?;
        Ok(row.try_get("id")?)
    }

    /// The current version of the KMS signing key, ready to sign: its ID, version and
    /// wrapped form.
    pub(crate) async fn signing_key(&self) -> Result<(String, u8, WrappedKey)> {
        let id = match self.key_cache.signing_key_id.get() {
            Some(id) => id.clone(),
            None => {
                let id = self.signing_key_id().await?;
                self.key_cache.signing_key_id.get_or_init(|| id.clone());
                id
            }
        };
        let (version, key) = self.cached_wrapped(&id, None, Purpose::Sign).await?;
        Ok((id, version, key))
    }

    /// A shared handle on the HSM (for a server that signs TLS handshakes with it).
    pub fn hsm_handle(&self) -> Arc<dyn Hsm> {
        self.hsm.clone()
    }

    /// Signs `message` with `key`, a version of the KMS signing key: SM2 with signer ID
    /// [`KMS_SIGNER_ID`], or ECDSA P-256; the signature is `r || s`.
    pub(crate) fn sign_with(&self, key: &WrappedKey, message: &[u8]) -> Result<Vec<u8>> {
        let input = match key.attributes().algorithm() {
            KeyAlgorithm::Sm2 => SignInput::Sm2 {
                id: KMS_SIGNER_ID,
                message,
            },
            _ => SignInput::P256 { message },
        };
        Ok(self.hsm.sign(key, input)?.to_raw().to_vec())
    }

    /// Verifies a signature `r || s` by version `version` of the KMS signing key `key_id` over
    /// `message`. Only the KMS signing key's own IDs are accepted; the public key comes from
    /// the HSM, which opens the stored wrapped key (any version not destroyed, whatever the
    /// key's lifecycle state, so that a suspended signing key still proves the past).
    pub async fn verify_kms_signature(
        &self,
        key_id: &str,
        version: u8,
        message: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        if !SIGNING_ALGORITHMS
            .iter()
            .any(|a| KMS_SIGNING_TEMPLATE.key_id(*a, &Scope::Bureau) == key_id)
        {
            return Err(KmsError::NotAuthorised(format!(
                "`{key_id}` is not the KMS signing key"
            )));
        }
        let key = self.signing_version(key_id, version).await?;
        let public = self.hsm.public_key(&key)?;
        let signature = ykt_crypto::Signature::from_raw(signature)?;
        match key.attributes().algorithm() {
            KeyAlgorithm::Sm2 => ykt_crypto::sm2::Sm2PublicKey::from_sec1(&public)?.verify(
                KMS_SIGNER_ID,
                message,
                &signature,
            )?,
            _ => {
                ykt_crypto::p256::P256PublicKey::from_sec1(&public)?.verify(message, &signature)?
            }
        }
        Ok(())
    }

    /// A version of the KMS signing key for verification, whatever the key's state, unless
    /// destroyed.
    async fn signing_version(&self, key_id: &str, version: u8) -> Result<WrappedKey> {
        let row = sqlx::query(
            "SELECT attributes, wrapped FROM key_versions WHERE key_id = $1 AND version = $2",
        )
        .bind(key_id)
        .bind(i64::from(version))
        .fetch_optional(self.store.pool())
        .await?
        .ok_or_else(|| KmsError::NotFound {
            kind: "signing key version",
            id: format!("{key_id} v{version}"),
        })?;
        let wrapped: Option<Vec<u8>> = row.try_get("wrapped")?;
        let wrapped = wrapped.ok_or_else(|| KmsError::KeyState {
            key: key_id.to_owned(),
            reason: format!("version {version} was destroyed"),
        })?;
        let attributes: Vec<u8> = row.try_get("attributes")?;
        Ok(WrappedKey::new(
            KeyAttributes::from_bytes(&attributes)?,
            wrapped,
        ))
    }

    /// Ends an act: appends its audit record to `tx`, commits, and signs a checkpoint
    /// ([`Kms::checkpoint_after_act`]).
    pub(crate) async fn commit_audited(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        record: AuditRecord,
    ) -> Result<()> {
        audit::append(&mut tx, &record).await?;
        tx.commit().await?;
        self.checkpoint_after_act().await;
        Ok(())
    }

    /// Records an act of the API that changes nothing in the store (a signature, a clearing
    /// call, a read): its audit record alone. Records of concurrent calls are committed
    /// together, in one transaction with one checkpoint (a group commit); this returns
    /// once the record is committed.
    pub async fn record_api_act(&self, record: AuditRecord) -> Result<()> {
        self.api_audit.record(record, || self.sibling()).await
    }

    /// Appends `records` and signs a checkpoint over them in one transaction, then commits:
    /// one durable write for the group, on `connection` (taken from the pool when `None`,
    /// and kept there for the next group). A checkpoint that cannot be signed (the signing
    /// key suspended, the HSM unreachable) is logged and left to the next act; the records
    /// are committed all the same.
    pub(crate) async fn commit_group(
        &self,
        connection: &mut Option<sqlx::pool::PoolConnection<sqlx::Any>>,
        records: &[AuditRecord],
    ) -> Result<()> {
        let signing_key = match self.hsm.kind() {
            ProviderKind::Closed => None,
            _ => match self.signing_key().await {
                Ok(key) => Some(key),
                Err(error) => {
                    tracing::error!(%error, "the audit checkpoint could not be signed");
                    None
                }
            },
        };
        let signer =
            signing_key
                .as_ref()
                .map(|(key_id, key_version, key)| audit::CheckpointSigner {
                    kms: self,
                    key_id,
                    key_version: *key_version,
                    key,
                });
        let connection = match connection {
            Some(connection) => connection,
            None => connection.insert(self.store.pool().acquire().await?),
        };
        let mut tx = self.store.begin_on(connection).await?;
        let appended = audit::append_signed(&mut tx, records, signer.as_ref()).await?;
        if let Err(error) = appended.checkpoint {
            tracing::error!(%error, "the audit checkpoint could not be signed");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends a committed act that may have changed keys: the key cache is emptied, and a
    /// checkpoint is signed so that the chain is signed up to the act. The act stands whatever
    /// happens here (its record is in the chain, hash-linked): a checkpoint that cannot be
    /// signed (the signing key suspended, the HSM unreachable) is logged as an error, and the
    /// next act's checkpoint covers both. A store-only KMS ([`Kms::store_only`]) leaves it to
    /// the next act that has the HSM.
    pub(crate) async fn checkpoint_after_act(&self) {
        self.key_cache.invalidate();
        if self.hsm.kind() == ProviderKind::Closed {
            tracing::debug!("audit checkpoint deferred: no HSM opened");
            return;
        }
        if let Err(error) = self.checkpoint().await {
            tracing::error!(%error, "the audit checkpoint could not be signed");
        }
    }

    /// Signs an audit checkpoint at the current head, if the head moved since the last one.
    pub async fn checkpoint(&self) -> Result<Option<u64>> {
        let (key_id, key_version, key) = self.signing_key().await?;
        let signer = audit::CheckpointSigner {
            kms: self,
            key_id: &key_id,
            key_version,
            key: &key,
        };
        audit::checkpoint(&self.store, &signer).await
    }
}

/// The algorithms of the KMS signing key, in order of preference.
const SIGNING_ALGORITHMS: [KeyAlgorithm; 2] = [KeyAlgorithm::Sm2, KeyAlgorithm::P256];

/// The KMS signing key's algorithm on an HSM of `kind`: SM2 (GB/T 32918) where the HSM has
/// it, ECDSA P-256 on a PKCS#11 token (which has no SM algorithms).
pub fn signing_algorithm_of(kind: ProviderKind) -> KeyAlgorithm {
    match kind {
        ProviderKind::Pkcs11 => KeyAlgorithm::P256,
        _ => KeyAlgorithm::Sm2,
    }
}
