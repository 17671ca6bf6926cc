//! Signatures for the platform services: the `api-signing` keys (SM2 with SM3 and a
//! distinguishing ID, or ECDSA P-256 with SHA-256), made in ceremonies like every key and
//! used through the API. A signing call is one audited act naming the caller, the key, its
//! version and how many messages or pre-hashed digests were signed — never what was signed.

use crate::audit::AuditRecord;
use crate::error::{KmsError, Result};
use crate::kms::Kms;
use crate::model::{KeyAlgorithm, Purpose, Template};
use crate::provider::{SignInput, WrappedKey};
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

/// The template of the keys that sign authorization tokens ([`crate::tokens`]). They are
/// not the `api-signing` keys: those sign whatever a platform service sends (messages or
/// digests), so a token signed by them could be made without the checks of minting.
pub const TOKEN_SIGNING_TEMPLATE: Template = Template {
    name: "api-token",
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

/// What a signature covers: a message, or the digest the caller made of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed<'a> {
    /// The message (SM2: hashed with the distinguishing ID, GB/T 32918.2).
    Message(&'a [u8]),
    /// A pre-hashed digest: SHA-256 of the message for P-256; for SM2, e = SM3(Z_A ‖ message)
    /// (`ykt_crypto::sm2::Sm2PublicKey::digest`), in which the distinguishing ID already is.
    Digest(&'a [u8; 32]),
}

fn input<'a>(algorithm: KeyAlgorithm, id: &'a [u8], signed: Signed<'a>) -> SignInput<'a> {
    match (algorithm, signed) {
        (KeyAlgorithm::Sm2, Signed::Message(message)) => SignInput::Sm2 { id, message },
        (KeyAlgorithm::Sm2, Signed::Digest(e)) => SignInput::Sm2Digest { e },
        (_, Signed::Message(message)) => SignInput::P256 { message },
        (_, Signed::Digest(digest)) => SignInput::P256Digest { digest },
    }
}

impl Kms {
    /// Version `version` (the current one when `None`) of the API signing key `key_id`,
    /// opened for `purpose`: refused for any key the API does not sign with.
    pub(crate) async fn api_key(
        &self,
        key_id: &str,
        version: Option<u8>,
        purpose: Purpose,
    ) -> Result<(u8, WrappedKey)> {
        check_api_key(key_id)?;
        self.cached_wrapped(key_id, version, purpose).await
    }

    /// Signs `message` in the HSM with `key`, a version of an API signing key (`id`: the SM2
    /// distinguishing ID; ignored for P-256).
    pub(crate) fn api_signature(
        &self,
        key: &WrappedKey,
        id: &[u8],
        signed: Signed<'_>,
    ) -> Result<Signature> {
        self.hsm()
            .sign(key, input(key.attributes().algorithm(), id, signed))
    }

    /// Whether `signature` is `key`'s over `message`, the public key from the HSM.
    pub(crate) fn api_signature_valid(
        &self,
        key: &WrappedKey,
        id: &[u8],
        signed: Signed<'_>,
        signature: &Signature,
    ) -> Result<bool> {
        use ykt_crypto::{p256::P256PublicKey, sm2::Sm2PublicKey};
        let public = self.hsm().public_key(key)?;
        let outcome = match (key.attributes().algorithm(), signed) {
            (KeyAlgorithm::Sm2, Signed::Message(message)) => {
                Sm2PublicKey::from_sec1(&public)?.verify(id, message, signature)
            }
            (KeyAlgorithm::Sm2, Signed::Digest(e)) => {
                Sm2PublicKey::from_sec1(&public)?.verify_digest(e, signature)
            }
            (_, Signed::Message(message)) => {
                P256PublicKey::from_sec1(&public)?.verify(message, signature)
            }
            (_, Signed::Digest(digest)) => {
                P256PublicKey::from_sec1(&public)?.verify_digest(digest, signature)
            }
        };
        Ok(outcome.is_ok())
    }

    /// Signs each of `items` (messages, or digests the caller made) with the current version
    /// of the API signing key `key_id` for `caller` (`id`: the SM2 distinguishing ID of
    /// messages; ignored for P-256 and for digests). One audit record, with the count.
    pub async fn api_sign(
        &self,
        caller: &str,
        key_id: &str,
        id: &[u8],
        items: &[Signed<'_>],
    ) -> Result<(u8, Vec<Signature>)> {
        check_api_key(key_id)?;
        if items.is_empty() || items.len() > MAX_SIGN_BATCH {
            return Err(KmsError::InvalidInput {
                field: "messages",
                reason: format!("1 to {MAX_SIGN_BATCH} per call"),
            });
        }
        let (version, key) = self.api_key(key_id, None, Purpose::Sign).await?;
        let signatures = items
            .iter()
            .map(|item| self.api_signature(&key, id, *item))
            .collect::<Result<Vec<_>>>()?;
        let digests = items
            .iter()
            .filter(|i| matches!(i, Signed::Digest(_)))
            .count();
        self.record_api_act(AuditRecord {
            actors: vec![caller.to_owned()],
            act: "api.sign".into(),
            object: format!("key:{key_id}"),
            result: "ok".into(),
            detail: json!({
                "version": version,
                "messages": items.len() - digests,
                "digests": digests,
            }),
        })
        .await?;
        Ok((version, signatures))
    }

    /// Whether `signature` is version `version` of the API signing key `key_id` over
    /// `signed` (any version not destroyed, whatever the key's state).
    pub async fn api_verify(
        &self,
        key_id: &str,
        version: u8,
        id: &[u8],
        signed: Signed<'_>,
        signature: &Signature,
    ) -> Result<bool> {
        let (_, key) = self.api_key(key_id, Some(version), Purpose::Verify).await?;
        self.api_signature_valid(&key, id, signed, signature)
    }
}
