//! Key ceremonies: the acts that make, recover, ship or end master keys. Each needs the
//! bureau's quorum of officers, verified here; custody acts also need enough of the key's own
//! custodians. Every ceremony ends with a signed audit checkpoint.
//!
//! Custody follows the PCI rules: a key's custody backup is split M-of-N among distinct
//! officers (no officer ever holds two shares of the same key), and a re-split replaces the
//! backup, so the old shares open nothing.

use crate::audit::{self, AuditRecord};
use crate::error::{KmsError, Result};
use crate::keys::{
    CustodyRecord, NewKey, check_columns, insert_custodians, insert_key, insert_version,
    record_transition,
};
use crate::kms::Kms;
use crate::model::{KeyState, MASTER_TEMPLATES, Purpose, Scope, TRANSPORT_TEMPLATE, Template};
use crate::officers::Credential;
use crate::provider::{Custody, KeyCheck};
use crate::store::now_ms;
use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use std::collections::BTreeSet;
use std::fmt;
use ykt_hsm_sim::shamir::Share;
use ykt_hsm_sim::{Exportability, KeyAlgorithm, KeyAttributes, KeyComponent};
use zeroize::Zeroizing;

/// Who keeps a key's custody backup: `threshold` of the listed officers can recover it.
#[derive(Debug, Clone)]
pub struct CustodySpec {
    /// Shares needed to recover.
    pub threshold: u8,
    /// One officer per share, all distinct.
    pub custodians: Vec<String>,
}

/// A custody share handed to one officer: shown to that officer only, never stored.
pub struct IssuedShare {
    /// The custodian.
    pub officer: String,
    /// The key.
    pub key_id: String,
    /// The key version the share recovers.
    pub version: u8,
    /// The share's index.
    pub index: u8,
    /// The share as text (CRC-checked hex groups).
    pub text: Zeroizing<String>,
    /// The custody KEK's check value, to confirm a recovery.
    pub kek_kcv: String,
}

impl fmt::Debug for IssuedShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedShare")
            .field("officer", &self.officer)
            .field("key_id", &self.key_id)
            .field("version", &self.version)
            .field("index", &self.index)
            .field("kek_kcv", &self.kek_kcv)
            .finish_non_exhaustive()
    }
}

/// What a ceremony made: the key, its check, and the shares to hand out.
#[derive(Debug)]
pub struct KeyReport {
    /// Key ID.
    pub key_id: String,
    /// Version made.
    pub version: u8,
    /// `encrypt-zeros`, `cmac` or `public-key`.
    pub check_method: String,
    /// Check value or public key (hex).
    pub check: String,
    /// Custody shares, one per custodian.
    pub shares: Vec<IssuedShare>,
}

/// A component an officer brings to an import ceremony.
#[derive(Debug, Clone)]
pub struct OfficerComponent {
    /// The officer who holds it (must be among the approvals).
    pub officer: String,
    /// The clear component and the check value printed on its form.
    pub component: KeyComponent,
}

/// What an import ceremony formed.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Key ID.
    pub key_id: String,
    /// Each officer's component check value, in the order entered.
    pub component_kcvs: Vec<(String, String)>,
    /// The formed key's check value.
    pub kcv: String,
}

/// One key of a school package: a master diversified to the school, under the school's
/// transport key.
#[derive(Debug, Clone, Serialize)]
pub struct PackagedKey {
    /// Template name (`purchase`, ...).
    pub template: String,
    /// Algorithm name.
    pub algorithm: String,
    /// The master version it derives from (the card key version).
    pub version: u8,
    /// Check value of the school key.
    pub kcv: String,
    /// The key block (TR-31 version D style) under the transport key.
    pub block: String,
}

/// A school key package: the school-level keys under the school's transport key, signed by
/// the KMS signing key (SM2 with signer ID `ykt-kms`, or P-256) over the JSON of every other
/// field.
#[derive(Debug, Clone, Serialize)]
pub struct SchoolPackage {
    /// `ykt-school-package-v1`.
    pub format: String,
    /// Bureau code.
    pub bureau: String,
    /// Region code.
    pub region: String,
    /// School code.
    pub school: String,
    /// When made (Unix ms).
    pub created_at: i64,
    /// Transport key ID, version and check value.
    pub transport_key: (String, u8, String),
    /// The keys.
    pub keys: Vec<PackagedKey>,
    /// The KMS signing key that signed (`kms-signing-sm2` or `kms-signing-p256`).
    pub signer: String,
    /// Its version.
    pub signer_version: u8,
    /// The signature `r || s`, hex.
    pub signature: String,
}

impl SchoolPackage {
    /// The bytes the signature covers: the package's JSON with an empty signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature.clear();
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> KmsError {
    KmsError::InvalidInput {
        field,
        reason: reason.into(),
    }
}

impl Kms {
    async fn check_custody(&self, spec: &CustodySpec) -> Result<()> {
        let distinct: BTreeSet<&String> = spec.custodians.iter().collect();
        if distinct.len() != spec.custodians.len() {
            return Err(invalid(
                "custodians",
                "an officer may hold only one share of a key",
            ));
        }
        let count = spec.custodians.len();
        if spec.threshold < 2 || usize::from(spec.threshold) > count || count > 16 {
            return Err(invalid(
                "custody",
                "need 2 <= threshold <= custodians <= 16",
            ));
        }
        let active: BTreeSet<String> = self
            .officers()
            .await?
            .into_iter()
            .filter(|o| o.status == "active")
            .map(|o| o.name)
            .collect();
        if let Some(unknown) = spec.custodians.iter().find(|c| !active.contains(*c)) {
            return Err(invalid(
                "custodians",
                format!("`{unknown}` is not an active officer"),
            ));
        }
        Ok(())
    }

    /// Refuses a custody act unless the threshold of the key's own custodians are among the
    /// approving officers (audited); returns the actors.
    async fn require_custodians(
        &self,
        info: &crate::keys::KeyInfo,
        actors: Vec<String>,
        act: &str,
    ) -> Result<Vec<String>> {
        let object = format!("key:{}", info.id);
        let Some((threshold, _)) = info.custody else {
            let reason = "the key has no custody backup";
            self.audit_refusal(actors, act, &object, reason).await?;
            return Err(KmsError::KeyState {
                key: info.id.clone(),
                reason: reason.into(),
            });
        };
        let present = info
            .custodians
            .iter()
            .filter(|(officer, _)| actors.contains(officer))
            .count();
        if present < usize::from(threshold) {
            let reason = format!("{threshold} current custodians must approve, {present} did");
            self.audit_refusal(actors, act, &object, &reason).await?;
            return Err(KmsError::NotAuthorised(reason));
        }
        Ok(actors)
    }

    fn split(&self, key: &crate::provider::WrappedKey, spec: &CustodySpec) -> Result<Custody> {
        self.hsm()
            .custody_split(key, spec.threshold, spec.custodians.len() as u8)
    }

    /// Generates a key of `template` at `scope`, active, under M-of-N custody (masters and
    /// other symmetric keys) and hands out one share per custodian. Needs the quorum.
    pub async fn generate_key(
        &self,
        approvals: &[Credential],
        template: Template,
        algorithm: KeyAlgorithm,
        scope: Scope,
        custody: Option<&CustodySpec>,
    ) -> Result<KeyReport> {
        self.generate_key_in(
            approvals,
            template,
            algorithm,
            scope,
            custody,
            KeyState::Active,
        )
        .await
    }

    /// [`Kms::generate_key`], the key made in state `initial`: active, or pre-active (made
    /// and backed up now, usable once the quorum activates it with [`Kms::transition`]).
    pub async fn generate_key_in(
        &self,
        approvals: &[Credential],
        template: Template,
        algorithm: KeyAlgorithm,
        scope: Scope,
        custody: Option<&CustodySpec>,
        initial: KeyState,
    ) -> Result<KeyReport> {
        if !matches!(initial, KeyState::Active | KeyState::PreActive) {
            return Err(invalid("state", "a new key is active or pre-active"));
        }
        let actors = self
            .approve(approvals, self.quorum().await?, "ceremony generate")
            .await?;
        if let Some(spec) = custody {
            self.check_custody(spec).await?;
        }
        let generated = self
            .hsm()
            .generate_key(template.attributes(algorithm, 1)?)?;
        let split = custody
            .map(|spec| self.split(&generated.key, spec))
            .transpose()?;
        let mut tx = self.store().begin().await?;
        let key_id = insert_key(
            &mut tx,
            &NewKey {
                template,
                algorithm,
                scope,
                state: initial,
                provider: self.hsm().kind().name(),
                key: &generated.key,
                check: &generated.check,
                custody: custody
                    .zip(split.as_ref())
                    .map(|(spec, custody)| CustodyRecord {
                        threshold: spec.threshold,
                        custody,
                        custodians: &spec.custodians,
                    }),
            },
            &actors,
            "generated in a ceremony",
        )
        .await?;
        tx.commit().await?;
        self.checkpoint_after_act().await;
        Ok(report(key_id, 1, &generated.check, custody, split))
    }

    /// Imports a key from 2 or 3 clear components, each brought by a different officer among
    /// the approvals and checked against its printed check value; the formed key's check value
    /// must equal `expected_kcv` when given. Needs the quorum.
    pub async fn import_key(
        &self,
        approvals: &[Credential],
        template: Template,
        algorithm: KeyAlgorithm,
        scope: Scope,
        components: &[OfficerComponent],
        expected_kcv: Option<&str>,
    ) -> Result<ImportReport> {
        let needed = self.quorum().await?.max(components.len());
        let actors = self.approve(approvals, needed, "ceremony import").await?;
        let holders: BTreeSet<&String> = components.iter().map(|c| &c.officer).collect();
        if holders.len() != components.len() {
            return Err(invalid(
                "components",
                "each component must come from a different officer",
            ));
        }
        if let Some(stranger) = holders.iter().find(|h| !actors.contains(h)) {
            return Err(KmsError::NotAuthorised(format!(
                "`{stranger}` brought a component without presenting credentials"
            )));
        }
        let parts: Vec<KeyComponent> = components.iter().map(|c| c.component.clone()).collect();
        let (key, kcvs) = self
            .hsm()
            .form_key(template.attributes(algorithm, 1)?, &parts)?;
        if let Some(expected) = expected_kcv
            && !expected.eq_ignore_ascii_case(&kcvs.combined.to_string())
        {
            self.audit_refusal(
                actors,
                "ceremony import",
                &template.key_id(algorithm, &scope),
                "the formed key's check value differs from the expected one",
            )
            .await?;
            return Err(invalid(
                "expected check value",
                format!("the formed key's check value is {}", kcvs.combined),
            ));
        }
        let check = KeyCheck::Kcv(kcvs.combined.clone());
        let mut tx = self.store().begin().await?;
        let key_id = insert_key(
            &mut tx,
            &NewKey {
                template,
                algorithm,
                scope,
                state: KeyState::Active,
                provider: self.hsm().kind().name(),
                key: &key,
                check: &check,
                custody: None,
            },
            &actors,
            "imported from components",
        )
        .await?;
        tx.commit().await?;
        self.checkpoint_after_act().await;
        Ok(ImportReport {
            key_id,
            component_kcvs: components
                .iter()
                .map(|c| c.officer.clone())
                .zip(kcvs.components.iter().map(|k| k.to_string()))
                .collect(),
            kcv: kcvs.combined.to_string(),
        })
    }

    /// Rotates a key: a new version from the same template, made current; older versions
    /// keep working for cards that carry them until retired. Custody, if any, is split anew
    /// for the new version among the same custodians. Needs the quorum.
    pub async fn rotate_key(
        &self,
        approvals: &[Credential],
        id_or_alias: &str,
    ) -> Result<KeyReport> {
        let key = self.key_row(id_or_alias).await?;
        let actors = self
            .approve(approvals, self.quorum().await?, "key rotate")
            .await?;
        if key.state != KeyState::Active {
            let reason = "only an active key can be rotated";
            self.audit_refusal(actors, "key rotate", &format!("key:{}", key.id), reason)
                .await?;
            return Err(KmsError::KeyState {
                key: key.id,
                reason: reason.into(),
            });
        }
        let version = key
            .current_version
            .checked_add(1)
            .ok_or(KmsError::KeyState {
                key: key.id.clone(),
                reason: "version 255 is the last".into(),
            })?;
        let (_, current) = self.wrapped(&key.id, None, Purpose::Use).await?;
        let previous = current.attributes();
        let attributes = KeyAttributes::new(
            previous.usage(),
            previous.algorithm(),
            previous.modes(),
            previous.exportability(),
            version,
        )?;
        let generated = self.hsm().generate_key(attributes)?;
        let spec = match key.custody {
            Some((threshold, _)) => Some(CustodySpec {
                threshold,
                custodians: self
                    .key(&key.id)
                    .await?
                    .custodians
                    .into_iter()
                    .map(|(o, _)| o)
                    .collect(),
            }),
            None => None,
        };
        if let Some(spec) = &spec {
            // The new version's shares go to the same custodians, who must all still be
            // active officers; otherwise re-split the custody first.
            self.check_custody(spec).await?;
        }
        let split = spec
            .as_ref()
            .map(|s| self.split(&generated.key, s))
            .transpose()?;
        let mut tx = self.store().begin().await?;
        let record = spec
            .as_ref()
            .zip(split.as_ref())
            .map(|(s, custody)| CustodyRecord {
                threshold: s.threshold,
                custody,
                custodians: &s.custodians,
            });
        insert_version(
            &mut tx,
            &key.id,
            version,
            self.hsm().kind().name(),
            &generated.key,
            &generated.check,
            record.as_ref(),
        )
        .await?;
        let changed = sqlx::query(
            "UPDATE keys SET current_version = $1 \
             WHERE id = $2 AND current_version = $3 AND state = 'active'",
        )
        .bind(i64::from(version))
        .bind(&key.id)
        .bind(i64::from(key.current_version))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(KmsError::KeyState {
                key: key.id,
                reason: "changed concurrently; try again".into(),
            });
        }
        record_transition(
            &mut tx,
            &key.id,
            Some(version),
            "none",
            "active",
            "rotation",
            &actors,
        )
        .await?;
        let (method, value) = check_columns(&generated.check);
        self.commit_audited(
            tx,
            AuditRecord {
                actors,
                act: "key.rotate".into(),
                object: format!("key:{}", key.id),
                result: "ok".into(),
                detail: json!({ "version": version, "check_method": method, "check": value }),
            },
        )
        .await?;
        Ok(report(
            key.id,
            version,
            &generated.check,
            spec.as_ref(),
            split,
        ))
    }

    /// Re-splits a key's custody among new custodians: every live version gets a new backup
    /// and the old shares open nothing any more. Needs the quorum, of which at least the
    /// current threshold must be current custodians.
    pub async fn resplit_custody(
        &self,
        approvals: &[Credential],
        id_or_alias: &str,
        spec: &CustodySpec,
    ) -> Result<Vec<IssuedShare>> {
        let info = self.key(id_or_alias).await?;
        let actors = self
            .approve(approvals, self.quorum().await?, "ceremony resplit")
            .await?;
        let actors = self
            .require_custodians(&info, actors, "ceremony resplit")
            .await?;
        self.check_custody(spec).await?;
        let mut splits = Vec::new();
        for version in info.versions.iter().filter(|v| v.state != "destroyed") {
            let (_, key) = self
                .wrapped(&info.id, Some(version.version), Purpose::Verify)
                .await?;
            splits.push((version.version, self.split(&key, spec)?));
        }
        let mut tx = self.store().begin().await?;
        for (version, custody) in &splits {
            sqlx::query(
                "UPDATE key_versions SET custody_block = $1 WHERE key_id = $2 AND version = $3",
            )
            .bind(&custody.block)
            .bind(&info.id)
            .bind(i64::from(*version))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM custodians WHERE key_id = $1")
            .bind(&info.id)
            .execute(&mut *tx)
            .await?;
        insert_custodians(&mut tx, &info.id, &spec.custodians).await?;
        sqlx::query("UPDATE keys SET custody_threshold = $1, custody_count = $2 WHERE id = $3")
            .bind(i64::from(spec.threshold))
            .bind(spec.custodians.len() as i64)
            .bind(&info.id)
            .execute(&mut *tx)
            .await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors,
                act: "custody.resplit".into(),
                object: format!("key:{}", info.id),
                result: "ok".into(),
                detail: json!({
                    "threshold": spec.threshold,
                    "custodians": spec.custodians,
                    "versions": splits.iter().map(|(v, _)| v).collect::<Vec<_>>(),
                }),
            },
        )
        .await?;
        Ok(splits
            .into_iter()
            .flat_map(|(version, custody)| issued(&info.id, version, spec, custody))
            .collect())
    }

    /// Recovers a key version from its custody backup with a quorum of custodians' shares,
    /// into this HSM (for example after moving to a new HSM): the recovered key must have the
    /// stored check value or public key, and then replaces the stored wrapped form. Needs the
    /// quorum, with the threshold of the key's custodians among it; a compromised or
    /// destroyed key is not recovered. Refusals are audited.
    pub async fn recover_custody(
        &self,
        approvals: &[Credential],
        id_or_alias: &str,
        version: u8,
        shares: &[Share],
    ) -> Result<String> {
        const ACT: &str = "ceremony recover";
        let info = self.key(id_or_alias).await?;
        let id = info.id.clone();
        let object = format!("key:{id}");
        let actors = self.approve(approvals, self.quorum().await?, ACT).await?;
        let actors = self.require_custodians(&info, actors, ACT).await?;
        let state: KeyState = info.state.parse()?;
        if matches!(state, KeyState::Compromised | KeyState::Destroyed) {
            let reason = format!("a {state} key is not recovered");
            self.audit_refusal(actors, ACT, &object, &reason).await?;
            return Err(KmsError::KeyState { key: id, reason });
        }
        let row = sqlx::query(
            "SELECT custody_block, check_value FROM key_versions \
             WHERE key_id = $1 AND version = $2 AND state <> 'destroyed'",
        )
        .bind(&id)
        .bind(i64::from(version))
        .fetch_optional(self.store().pool())
        .await?
        .ok_or_else(|| KmsError::NotFound {
            kind: "key version",
            id: format!("{id} v{version}"),
        })?;
        let block: Option<String> = row.try_get("custody_block")?;
        let block = block.ok_or_else(|| KmsError::KeyState {
            key: id.clone(),
            reason: "this version has no custody backup".into(),
        })?;
        let stored: String = row.try_get("check_value")?;
        let recovered = match self.hsm().custody_recover(&block, shares) {
            Ok(recovered) => recovered,
            Err(error) => {
                self.audit_refusal(actors, ACT, &object, &error.to_string())
                    .await?;
                return Err(error);
            }
        };
        // The recovered key must be the stored version: its check value or public key.
        let check = match recovered.attributes().algorithm().symmetric() {
            Some(algorithm) => self
                .hsm()
                .kcv(&recovered, ykt_crypto::KcvMethod::default_for(algorithm))?
                .to_string(),
            None => hex::encode_upper(self.hsm().public_key(&recovered)?),
        };
        if check != stored {
            let reason = "the recovered key is not the stored version";
            self.audit_refusal(actors, ACT, &object, reason).await?;
            return Err(KmsError::Corrupt(reason));
        }
        let mut tx = self.store().begin().await?;
        let changed = sqlx::query(
            "UPDATE key_versions SET wrapped = $1, provider = $2 \
             WHERE key_id = $3 AND version = $4 AND state <> 'destroyed'",
        )
        .bind(recovered.as_bytes().to_vec())
        .bind(self.hsm().kind().name())
        .bind(&id)
        .bind(i64::from(version))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(KmsError::KeyState {
                key: id,
                reason: "changed concurrently; try again".into(),
            });
        }
        self.commit_audited(
            tx,
            AuditRecord {
                actors,
                act: "custody.recover".into(),
                object,
                result: "ok".into(),
                detail: json!({ "version": version, "check": stored, "shares": shares.len() }),
            },
        )
        .await?;
        Ok(stored)
    }

    /// Exports a school's key package: every active master in `algorithm` diversified to the
    /// school (region, then school factor), each as a key block under the school's transport
    /// key, signed by the KMS. Needs the quorum.
    pub async fn export_school_package(
        &self,
        approvals: &[Credential],
        school: &str,
        algorithm: KeyAlgorithm,
        transport_algorithm: KeyAlgorithm,
    ) -> Result<SchoolPackage> {
        let (school, factors) = self.school(school).await?;
        let actors = self
            .approve(approvals, self.quorum().await?, "ceremony export-school")
            .await?;
        let scope = Scope::School(crate::model::SchoolCode::new(&school.code)?);
        let transport_id = TRANSPORT_TEMPLATE.key_id(transport_algorithm, &scope);
        let (transport_version, transport) =
            self.wrapped(&transport_id, None, Purpose::Use).await?;
        let transport_kcv = crate::keys::current_check(self, &transport_id).await?;
        let mut keys = Vec::new();
        for template in MASTER_TEMPLATES {
            let master_id = template.key_id(algorithm, &Scope::Bureau);
            let (version, master) = self.wrapped(&master_id, None, Purpose::Use).await?;
            let attributes = master.attributes();
            let school_attributes = KeyAttributes::new(
                attributes.usage(),
                attributes.algorithm(),
                attributes.modes(),
                Exportability::UnderKek,
                version,
            )?;
            let (school_key, kcv) = self
                .hsm()
                .derive_key(&master, &factors, school_attributes)?;
            let block = self.hsm().export_key(&school_key, &transport)?;
            keys.push(PackagedKey {
                template: template.name.into(),
                algorithm: algorithm.name().into(),
                version,
                kcv: kcv.to_string(),
                block,
            });
        }
        let mut package = SchoolPackage {
            format: "ykt-school-package-v1".into(),
            bureau: self.info().await?.bureau_code,
            region: school.region.clone(),
            school: school.code.clone(),
            created_at: now_ms(),
            transport_key: (transport_id.clone(), transport_version, transport_kcv),
            keys,
            signer: String::new(),
            signer_version: 0,
            signature: String::new(),
        };
        let (signer, signer_version, signing_key) = self.signing_key().await?;
        package.signer = signer;
        package.signer_version = signer_version;
        let signature = self.sign_with(&signing_key, &package.signed_bytes())?;
        package.signature = hex::encode_upper(signature);
        let tx = self.store().begin().await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors,
                act: "ceremony.export-school".into(),
                object: format!("school:{}", school.code),
                result: "ok".into(),
                detail: json!({
                    "algorithm": algorithm.name(),
                    "transport_key": transport_id,
                    "keys": package.keys.iter().map(|k| json!({
                        "template": k.template, "version": k.version, "kcv": k.kcv,
                    })).collect::<Vec<_>>(),
                }),
            },
        )
        .await?;
        Ok(package)
    }

    /// Destroys a key. First the decision is committed and audited (state `destroyed`,
    /// custody backups, aliases and custodians erased): from then on the key is refused for
    /// everything. Then every version is destroyed in the HSM, and the wrapped forms are
    /// erased from the store (audited as `key.erase`); if the HSM fails, they stay for the
    /// next `destroy_key` of the same key to finish. The key's record and history remain. Only
    /// a pre-active, deactivated or compromised key can be destroyed. Needs the quorum.
    pub async fn destroy_key(
        &self,
        approvals: &[Credential],
        id_or_alias: &str,
        reason: &str,
    ) -> Result<()> {
        let key = self.key_row(id_or_alias).await?;
        let actors = self
            .approve(approvals, self.quorum().await?, "ceremony destroy")
            .await?;
        let object = format!("key:{}", key.id);
        if key.state != KeyState::Destroyed {
            if !key.state.may_become(KeyState::Destroyed) {
                let why = format!(
                    "a {} key cannot be destroyed; deactivate it first",
                    key.state
                );
                self.audit_refusal(actors, "ceremony destroy", &object, &why)
                    .await?;
                return Err(KmsError::KeyState {
                    key: key.id,
                    reason: why,
                });
            }
            // First the decision, audited: from here on the key is refused for everything.
            let now = now_ms();
            let mut tx = self.store().begin().await?;
            let changed = sqlx::query(
                "UPDATE keys SET state = 'destroyed', state_at = $1, state_reason = $2 \
                 WHERE id = $3 AND state = $4",
            )
            .bind(now)
            .bind(reason)
            .bind(&key.id)
            .bind(key.state.name())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed != 1 {
                return Err(KmsError::KeyState {
                    key: key.id,
                    reason: "changed concurrently; try again".into(),
                });
            }
            sqlx::query(
                "UPDATE key_versions SET custody_block = NULL, state = 'destroyed', state_at = $1 \
                 WHERE key_id = $2",
            )
            .bind(now)
            .bind(&key.id)
            .execute(&mut *tx)
            .await?;
            for table in ["aliases", "custodians"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE key_id = $1"))
                    .bind(&key.id)
                    .execute(&mut *tx)
                    .await?;
            }
            record_transition(
                &mut tx,
                &key.id,
                None,
                key.state.name(),
                "destroyed",
                reason,
                &actors,
            )
            .await?;
            audit::append(
                &mut tx,
                &AuditRecord {
                    actors: actors.clone(),
                    act: "ceremony.destroy".into(),
                    object: object.clone(),
                    result: "ok".into(),
                    detail: json!({ "from": key.state.name(), "reason": reason }),
                },
            )
            .await?;
            tx.commit().await?;
        }
        // Then the HSM, version by version; a failure leaves the wrapped forms in the store
        // (refused by the key's state) for the next `destroy` to finish.
        let versions = sqlx::query(
            "SELECT version, attributes, wrapped FROM key_versions \
             WHERE key_id = $1 AND wrapped IS NOT NULL",
        )
        .bind(&key.id)
        .fetch_all(self.store().pool())
        .await?;
        let mut destroyed = Vec::with_capacity(versions.len());
        for row in &versions {
            let version: i64 = row.try_get("version")?;
            let attributes: Vec<u8> = row.try_get("attributes")?;
            let wrapped: Vec<u8> = row.try_get("wrapped")?;
            let wrapped =
                crate::provider::WrappedKey::new(KeyAttributes::from_bytes(&attributes)?, wrapped);
            match self.hsm().destroy_key(&wrapped) {
                // A token object already gone was destroyed by an earlier attempt.
                Ok(()) | Err(KmsError::NotFound { .. }) => destroyed.push(version),
                Err(error) => {
                    self.audit_refusal(
                        actors,
                        "ceremony destroy",
                        &object,
                        &format!("the HSM did not destroy version {version}: {error}"),
                    )
                    .await?;
                    return Err(error);
                }
            }
        }
        let mut tx = self.store().begin().await?;
        sqlx::query("UPDATE key_versions SET wrapped = NULL WHERE key_id = $1")
            .bind(&key.id)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            &AuditRecord {
                actors,
                act: "key.erase".into(),
                object,
                result: "ok".into(),
                detail: json!({ "versions_destroyed_in_hsm": destroyed }),
            },
        )
        .await?;
        tx.commit().await?;
        if let Err(error) = self.store().checkpoint_wal().await {
            tracing::warn!(%error, "the write-ahead log could not be folded in after a destruction");
        }
        self.checkpoint_after_act().await;
        Ok(())
    }

    /// Verifies a school package's signature with the KMS signing key that made it.
    pub async fn verify_school_package(&self, package: &SchoolPackage) -> Result<()> {
        let signature =
            hex::decode(&package.signature).map_err(|_| invalid("signature", "not hex"))?;
        self.verify_kms_signature(
            &package.signer,
            package.signer_version,
            &package.signed_bytes(),
            &signature,
        )
        .await
    }
}

fn issued(key_id: &str, version: u8, spec: &CustodySpec, custody: Custody) -> Vec<IssuedShare> {
    let kek_kcv = custody.kek_kcv.to_string();
    spec.custodians
        .iter()
        .zip(custody.shares)
        .map(|(officer, share)| IssuedShare {
            officer: officer.clone(),
            key_id: key_id.to_owned(),
            version,
            index: share.index(),
            text: share.to_text(),
            kek_kcv: kek_kcv.clone(),
        })
        .collect()
}

fn report(
    key_id: String,
    version: u8,
    check: &KeyCheck,
    spec: Option<&CustodySpec>,
    split: Option<Custody>,
) -> KeyReport {
    let (method, value) = check_columns(check);
    let shares = match (spec, split) {
        (Some(spec), Some(custody)) => issued(&key_id, version, spec, custody),
        _ => Vec::new(),
    };
    KeyReport {
        key_id,
        version,
        check_method: method.into(),
        check: value,
        shares,
    }
}
