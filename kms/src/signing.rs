//! Signatures for the platform services: the `api-signing` keys (SM2 with SM3 and a
//! distinguishing ID, or ECDSA P-256 with SHA-256), made in ceremonies like every key and
//! used through the API. A signing call is one audited act naming the caller, the key, its
//! version and how many messages were signed — never the messages.

use crate::audit::AuditRecord;
use crate::error::{KmsError, Result};
use crate::kms::Kms;
use crate::model::{KeyAlgorithm, Purpose, Template};
use crate::provider::SignInput;
use serde_json::json;
use ykt_crypto::Signature;
use ykt_hsm_sim::{Exportability, KeyUsage, Modes};

/// The template of the keys the API signs with.
pub const API_SIGNING_TEMPLATE: Template = Template {
    name: "api-signing",
    usage: KeyUsage::Signature,
    modes: Modes::SIGN,
    exportability: Exportability::None,
    master: false,
};

/// The most messages one signing call may carry.
pub const MAX_SIGN_BATCH: usize = 1000;

/// The distinguishing ID of SM2 signatures when the caller names none (GM/T 0009).
pub const DEFAULT_SM2_ID: &[u8] = ykt_crypto::sm2::DEFAULT_ID;

fn check_api_key(key_id: &str) -> Result<()> {
    if key_id.starts_with("api-signing-") {
        Ok(())
    } else {
        Err(KmsError::NotAuthorised(format!(
            "`{key_id}` is not a key the API signs with"
        )))
    }
}

fn input<'a>(algorithm: KeyAlgorithm, id: &'a [u8], message: &'a [u8]) -> SignInput<'a> {
    match algorithm {
        KeyAlgorithm::Sm2 => SignInput::Sm2 { id, message },
        _ => SignInput::P256 { message },
    }
}

impl Kms {
    /// Signs each of `messages` with the current version of the API signing key `key_id`
    /// for `caller` (`id`: the SM2 distinguishing ID; ignored for P-256). One audit record.
    pub async fn api_sign(
        &self,
        caller: &str,
        key_id: &str,
        id: &[u8],
        messages: &[Vec<u8>],
    ) -> Result<(u8, Vec<Signature>)> {
        check_api_key(key_id)?;
        if messages.is_empty() || messages.len() > MAX_SIGN_BATCH {
            return Err(KmsError::InvalidInput {
                field: "messages",
                reason: format!("1 to {MAX_SIGN_BATCH} per call"),
            });
        }
        let (version, key) = self.wrapped(key_id, None, Purpose::Sign).await?;
        let algorithm = key.attributes().algorithm();
        let signatures = messages
            .iter()
            .map(|message| self.hsm().sign(&key, input(algorithm, id, message)))
            .collect::<Result<Vec<_>>>()?;
        let tx = self.store().begin().await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors: vec![caller.to_owned()],
                act: "api.sign".into(),
                object: format!("key:{key_id}"),
                result: "ok".into(),
                detail: json!({ "version": version, "messages": messages.len() }),
            },
        )
        .await?;
        Ok((version, signatures))
    }

    /// Whether `signature` is version `version` of the API signing key `key_id` over
    /// `message` (any version not destroyed, whatever the key's state).
    pub async fn api_verify(
        &self,
        key_id: &str,
        version: u8,
        id: &[u8],
        message: &[u8],
        signature: &Signature,
    ) -> Result<bool> {
        check_api_key(key_id)?;
        let (_, key) = self.wrapped(key_id, Some(version), Purpose::Verify).await?;
        let public = self.hsm().public_key(&key)?;
        Ok(match key.attributes().algorithm() {
            KeyAlgorithm::Sm2 => ykt_crypto::sm2::Sm2PublicKey::from_sec1(&public)?
                .verify(id, message, signature)
                .is_ok(),
            _ => ykt_crypto::p256::P256PublicKey::from_sec1(&public)?
                .verify(message, signature)
                .is_ok(),
        })
    }
}
