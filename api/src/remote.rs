//! The KMS over the API as an issuing station and a load host use it: [`KmsClient`]
//! answers [`CardAuthority`] through the card endpoints ([`crate::cards`]), so the issuer's
//! station runs the same code against a KMS on another machine (`ykt issue --kms URL`).
//! Every state-changing call carries its own idempotency key, so a retry after a broken
//! connection does not act twice. Refusals come back as [`KmsError::Api`] with the server's
//! status, code and message.

use crate::cards::{
    CardBatchRequest, CardSignature, CertificateCheck, CertificateRequest, Cryptogram,
    ExternalAuthRequest, FinishRequest, HolderCard, LoadAuthorizeRequest, LoadTacRequest, Mac2,
    PsamBatchRequest, StartRequest, Validity, WireCardKey, WireLoad, WriteCommand, WriteKeyRequest,
};
use crate::client::KmsClient;
use crate::error::ApiError;
use serde::de::DeserializeOwned;

use ykt_kms::issuance::{
    Attempt, BatchInfo, BatchProfile, CardKey, CardKeyWrite, CardRecord, Load, NewCard, NewPsams,
    Serial,
};
use ykt_kms::model::{KeyAlgorithm, algorithm_named};
use ykt_kms::station::CardAuthority;
use ykt_kms::{KmsError, Result};

/// The KMS error for an API error.
fn kms_error(error: ApiError) -> KmsError {
    match error {
        ApiError::Refused {
            status,
            code,
            message,
        } => KmsError::Api {
            status,
            code,
            message,
        },
        ApiError::Kms(error) => error,
        other => KmsError::Api {
            status: 0,
            code: "transport".into(),
            message: other.to_string(),
        },
    }
}

/// A path segment with everything but unreserved characters percent-encoded (RFC 3986).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn mismatch(what: &'static str) -> KmsError {
    KmsError::Crypto(ykt_crypto::CryptoError::Mismatch(what))
}

impl KmsClient {
    async fn fetch<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.get(path).await.map_err(kms_error)
    }

    async fn act<B: serde::Serialize + Sync, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.post(path, body).await.map_err(kms_error)
    }
}

fn card_path(serial: &Serial, action: &str) -> String {
    format!("/v1/cards/{serial}/{action}")
}

impl CardAuthority for KmsClient {
    async fn knows_school(&self, code: &str) -> Result<bool> {
        match self
            .fetch::<serde_json::Value>(&format!("/v1/schools/{}", segment(code)))
            .await
        {
            Ok(_) => Ok(true),
            Err(KmsError::Api { status: 404, .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn holder_card(
        &self,
        school: &str,
        holder_number: &str,
        card_type: &str,
    ) -> Result<Option<CardRecord>> {
        let found: HolderCard = self
            .fetch(&format!(
                "/v1/schools/{}/holders/{}/{}",
                segment(school),
                segment(holder_number),
                segment(card_type)
            ))
            .await?;
        Ok(found.card)
    }

    async fn create_card_batch(
        &self,
        actor: &str,
        profile: &BatchProfile,
        cards: &[NewCard],
    ) -> Result<BatchInfo> {
        let request = CardBatchRequest {
            operator: actor.into(),
            profile: profile.clone(),
            cards: cards.to_vec(),
        };
        self.act("/v1/batches", &request).await
    }

    async fn create_psam_batch(
        &self,
        actor: &str,
        profile: &BatchProfile,
        psams: &NewPsams,
    ) -> Result<BatchInfo> {
        let request = PsamBatchRequest {
            operator: actor.into(),
            profile: profile.clone(),
            psams: psams.clone(),
        };
        self.act("/v1/psam-batches", &request).await
    }

    async fn batch(&self, id: &str) -> Result<BatchInfo> {
        self.fetch(&format!("/v1/batches/{}", segment(id))).await
    }

    async fn batch_cards(&self, id: &str) -> Result<Vec<CardRecord>> {
        self.fetch(&format!("/v1/batches/{}/cards", segment(id)))
            .await
    }

    async fn card(&self, serial: &Serial) -> Result<CardRecord> {
        self.fetch(&format!("/v1/cards/{serial}")).await
    }

    async fn start_personalisation(
        &self,
        actor: &str,
        serial: &Serial,
        take_over: bool,
    ) -> Result<CardRecord> {
        let request = StartRequest {
            operator: actor.into(),
            take_over,
        };
        self.act(&card_path(serial, "personalisation"), &request)
            .await
    }

    async fn finish_personalisation(
        &self,
        actor: &str,
        attempt: &Attempt,
        apdus: u64,
    ) -> Result<CardRecord> {
        let request = FinishRequest {
            operator: actor.into(),
            attempt: attempt.number,
            apdus,
        };
        self.act(&card_path(&attempt.serial, "issued"), &request)
            .await
    }

    async fn card_external_auth(
        &self,
        attempt: &Attempt,
        key: CardKey<'_>,
        challenge: &[u8],
    ) -> Result<Vec<u8>> {
        let request = ExternalAuthRequest {
            attempt: attempt.number,
            key: WireCardKey::from(key),
            challenge: challenge.to_vec(),
        };
        let answer: Cryptogram = self
            .act(&card_path(&attempt.serial, "external-auth"), &request)
            .await?;
        Ok(answer.cryptogram)
    }

    async fn card_write_key(&self, attempt: &Attempt, write: &CardKeyWrite<'_>) -> Result<Vec<u8>> {
        let request = WriteKeyRequest {
            attempt: attempt.number,
            key: WireCardKey::from(write.key),
            under: WireCardKey::from(write.under),
            challenge: write.challenge.to_vec(),
            p1: write.p1,
            p2: write.p2,
            record_header: write.record_header.to_vec(),
        };
        let answer: WriteCommand = self
            .act(&card_path(&attempt.serial, "write-key"), &request)
            .await?;
        Ok(answer.command)
    }

    async fn sign_card_data(
        &self,
        attempt: &Attempt,
        data: &[u8],
    ) -> Result<(KeyAlgorithm, u8, Vec<u8>)> {
        let request = CertificateRequest {
            attempt: attempt.number,
            data: data.to_vec(),
        };
        let answer: CardSignature = self
            .act(&card_path(&attempt.serial, "certificate"), &request)
            .await?;
        Ok((
            algorithm_named(&answer.algorithm)?,
            answer.version,
            answer.signature,
        ))
    }

    async fn verify_card_data(
        &self,
        serial: &Serial,
        data: &[u8],
        version: u8,
        signature: &[u8],
    ) -> Result<()> {
        let request = CertificateCheck {
            data: data.to_vec(),
            version,
            signature: signature.to_vec(),
        };
        let answer: Validity = self
            .act(&card_path(serial, "certificate/verify"), &request)
            .await?;
        answer
            .valid
            .then_some(())
            .ok_or_else(|| mismatch("the card certificate"))
    }

    async fn authorize_load(
        &self,
        actor: &str,
        factor: &[u8; 8],
        key_version: u8,
        load: &Load,
        mac1: &[u8],
    ) -> Result<[u8; 4]> {
        let request = LoadAuthorizeRequest {
            operator: actor.into(),
            factor: *factor,
            key_version,
            load: WireLoad::from(load),
            mac1: mac1.to_vec(),
        };
        let answer: Mac2 = self.act("/v1/loads/authorize", &request).await?;
        Ok(answer.mac2)
    }

    async fn verify_load_tac(&self, factor: &[u8; 8], load: &Load, tac: &[u8]) -> Result<()> {
        let request = LoadTacRequest {
            factor: *factor,
            load: WireLoad::from(load),
            tac: tac.to_vec(),
        };
        let answer: Validity = self.act("/v1/loads/verify-tac", &request).await?;
        answer
            .valid
            .then_some(())
            .ok_or_else(|| mismatch("the load TAC"))
    }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn path_segments_keep_only_unreserved_characters() {
        assert_eq!(segment("2133010601"), "2133010601");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("学"), "%E5%AD%A6");
    }
}
