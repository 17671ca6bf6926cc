//! What an issuing station asks of the KMS, as one trait: the card registry (batches, card
//! records, holders), the personalisation attempts and the card-key acts (external-auth and
//! WRITE KEY cryptograms, the certificate signature), and the online-load MACs. [`Kms`]
//! answers it in process; the API's client answers it over HTTPS for a station on another
//! machine (`ykt issue --kms URL`), with the same rules, since the KMS behind the API runs
//! the same methods.

use crate::error::Result;
use crate::issuance::{
    Attempt, BatchInfo, BatchProfile, CardKey, CardKeyWrite, CardRecord, Load, NewCard, NewPsams,
    Serial,
};
use crate::kms::Kms;
use crate::model::KeyAlgorithm;
use std::future::Future;

/// The KMS as an issuing station and a load host use it. Every method has the meaning of
/// the [`Kms`] method of the same name.
pub trait CardAuthority: Send + Sync {
    /// Whether the KMS knows the school `code`.
    fn knows_school(&self, code: &str) -> impl Future<Output = Result<bool>> + Send;

    /// The card a holder has of a card type at a school, if any.
    fn holder_card(
        &self,
        school: &str,
        holder_number: &str,
        card_type: &str,
    ) -> impl Future<Output = Result<Option<CardRecord>>> + Send;

    /// Creates a batch of user cards ([`Kms::create_card_batch`]).
    fn create_card_batch(
        &self,
        actor: &str,
        profile: &BatchProfile,
        cards: &[NewCard],
    ) -> impl Future<Output = Result<BatchInfo>> + Send;

    /// Creates a batch of PSAMs ([`Kms::create_psam_batch`]).
    fn create_psam_batch(
        &self,
        actor: &str,
        profile: &BatchProfile,
        psams: &NewPsams,
    ) -> impl Future<Output = Result<BatchInfo>> + Send;

    /// A batch.
    fn batch(&self, id: &str) -> impl Future<Output = Result<BatchInfo>> + Send;

    /// The cards of a batch, in batch order.
    fn batch_cards(&self, id: &str) -> impl Future<Output = Result<Vec<CardRecord>>> + Send;

    /// A card's or PSAM's record.
    fn card(&self, serial: &Serial) -> impl Future<Output = Result<CardRecord>> + Send;

    /// Starts (or takes over) a card's personalisation ([`Kms::start_personalisation`]).
    fn start_personalisation(
        &self,
        actor: &str,
        serial: &Serial,
        take_over: bool,
    ) -> impl Future<Output = Result<CardRecord>> + Send;

    /// Records a card issued ([`Kms::finish_personalisation`]).
    fn finish_personalisation(
        &self,
        actor: &str,
        attempt: &Attempt,
        apdus: u64,
    ) -> impl Future<Output = Result<CardRecord>> + Send;

    /// An EXTERNAL AUTHENTICATE cryptogram ([`Kms::card_external_auth`]).
    fn card_external_auth(
        &self,
        attempt: &Attempt,
        key: CardKey<'_>,
        challenge: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// A whole WRITE KEY command ([`Kms::card_write_key`]).
    fn card_write_key(
        &self,
        attempt: &Attempt,
        write: &CardKeyWrite<'_>,
    ) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// The certificate signature of a card's data ([`Kms::sign_card_data`]).
    fn sign_card_data(
        &self,
        attempt: &Attempt,
        data: &[u8],
    ) -> impl Future<Output = Result<(KeyAlgorithm, u8, Vec<u8>)>> + Send;

    /// Verifies a card certificate's signature ([`Kms::verify_card_data`]).
    fn verify_card_data(
        &self,
        serial: &Serial,
        data: &[u8],
        version: u8,
        signature: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Checks a load's MAC1 and makes MAC2 ([`Kms::authorize_load`]).
    fn authorize_load(
        &self,
        actor: &str,
        factor: &[u8; 8],
        key_version: u8,
        load: &Load,
        mac1: &[u8],
    ) -> impl Future<Output = Result<[u8; 4]>> + Send;

    /// Verifies the TAC of a load ([`Kms::verify_load_tac`]).
    fn verify_load_tac(
        &self,
        factor: &[u8; 8],
        load: &Load,
        tac: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
}

impl CardAuthority for Kms {
    async fn knows_school(&self, code: &str) -> Result<bool> {
        match self.school(code).await {
            Ok(_) => Ok(true),
            Err(crate::KmsError::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn holder_card(
        &self,
        school: &str,
        holder_number: &str,
        card_type: &str,
    ) -> Result<Option<CardRecord>> {
        Kms::holder_card(self, school, holder_number, card_type).await
    }

    async fn create_card_batch(
        &self,
        actor: &str,
        profile: &BatchProfile,
        cards: &[NewCard],
    ) -> Result<BatchInfo> {
        Kms::create_card_batch(self, actor, profile, cards).await
    }

    async fn create_psam_batch(
        &self,
        actor: &str,
        profile: &BatchProfile,
        psams: &NewPsams,
    ) -> Result<BatchInfo> {
        Kms::create_psam_batch(self, actor, profile, psams).await
    }

    async fn batch(&self, id: &str) -> Result<BatchInfo> {
        Kms::batch(self, id).await
    }

    async fn batch_cards(&self, id: &str) -> Result<Vec<CardRecord>> {
        Kms::batch_cards(self, id).await
    }

    async fn card(&self, serial: &Serial) -> Result<CardRecord> {
        Kms::card(self, serial).await
    }

    async fn start_personalisation(
        &self,
        actor: &str,
        serial: &Serial,
        take_over: bool,
    ) -> Result<CardRecord> {
        Kms::start_personalisation(self, actor, serial, take_over).await
    }

    async fn finish_personalisation(
        &self,
        actor: &str,
        attempt: &Attempt,
        apdus: u64,
    ) -> Result<CardRecord> {
        Kms::finish_personalisation(self, actor, attempt, apdus).await
    }

    async fn card_external_auth(
        &self,
        attempt: &Attempt,
        key: CardKey<'_>,
        challenge: &[u8],
    ) -> Result<Vec<u8>> {
        Kms::card_external_auth(self, attempt, key, challenge).await
    }

    async fn card_write_key(&self, attempt: &Attempt, write: &CardKeyWrite<'_>) -> Result<Vec<u8>> {
        Kms::card_write_key(self, attempt, write).await
    }

    async fn sign_card_data(
        &self,
        attempt: &Attempt,
        data: &[u8],
    ) -> Result<(KeyAlgorithm, u8, Vec<u8>)> {
        Kms::sign_card_data(self, attempt, data).await
    }

    async fn verify_card_data(
        &self,
        serial: &Serial,
        data: &[u8],
        version: u8,
        signature: &[u8],
    ) -> Result<()> {
        Kms::verify_card_data(self, serial, data, version, signature).await
    }

    async fn authorize_load(
        &self,
        actor: &str,
        factor: &[u8; 8],
        key_version: u8,
        load: &Load,
        mac1: &[u8],
    ) -> Result<[u8; 4]> {
        Kms::authorize_load(self, actor, factor, key_version, load, mac1).await
    }

    async fn verify_load_tac(&self, factor: &[u8; 8], load: &Load, tac: &[u8]) -> Result<()> {
        Kms::verify_load_tac(self, factor, load, tac).await
    }
}
