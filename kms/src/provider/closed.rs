//! No HSM: the provider of a KMS opened for store-only acts ([`crate::Kms::store_only`]).
//! Listing keys, registering officers or schools and lifecycle changes use no key, and in
//! officers mode opening the real HSM would need the officers' LMK components. Every HSM
//! operation is refused; the audit checkpoints of such acts wait for the next act that has
//! the HSM.

use super::{Custody, GeneratedKey, Hsm, ProviderKind, SignInput, WrappedKey, WriteKey};
use crate::error::{KmsError, Result};
use ykt_crypto::{Kcv, KcvMethod, Load, Signature};
use ykt_hsm_sim::shamir::Share;
use ykt_hsm_sim::{FormedKcvs, KeyAttributes, KeyComponent, TacCheck};

/// The HSM of a KMS opened without one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Closed;

/// The refusal of every operation.
fn closed<T>(operation: &'static str) -> Result<T> {
    Err(KmsError::Unsupported {
        provider: "no HSM (store-only)",
        operation,
    })
}

impl Hsm for Closed {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Closed
    }

    fn generate_key(&self, _: KeyAttributes) -> Result<GeneratedKey> {
        closed("key generation")
    }

    fn form_key(&self, _: KeyAttributes, _: &[KeyComponent]) -> Result<(WrappedKey, FormedKcvs)> {
        closed("forming a key")
    }

    fn custody_split(&self, _: &WrappedKey, _: u8, _: u8) -> Result<Custody> {
        closed("custody split")
    }

    fn custody_recover(&self, _: &str, _: &[Share]) -> Result<WrappedKey> {
        closed("custody recovery")
    }

    fn kcv(&self, _: &WrappedKey, _: KcvMethod) -> Result<Kcv> {
        closed("check value")
    }

    fn derive_key(
        &self,
        _: &WrappedKey,
        _: &[[u8; 8]],
        _: KeyAttributes,
    ) -> Result<(WrappedKey, Kcv)> {
        closed("derivation")
    }

    fn load_mac2(&self, _: &WrappedKey, _: &[[u8; 8]], _: &Load, _: &[u8]) -> Result<[u8; 4]> {
        closed("load MAC2")
    }

    fn verify_load_tac(&self, _: &WrappedKey, _: &[[u8; 8]], _: &Load, _: &[u8]) -> Result<()> {
        closed("TAC verification")
    }

    fn verify_purchase_tacs(&self, _: &WrappedKey, _: &[TacCheck<'_>]) -> Result<Vec<bool>> {
        closed("TAC verification")
    }

    fn write_key_command(&self, _: &WriteKey<'_>) -> Result<Vec<u8>> {
        closed("WRITE KEY")
    }

    fn external_auth_cryptogram(&self, _: &WrappedKey, _: &[[u8; 8]], _: &[u8]) -> Result<Vec<u8>> {
        closed("external authentication")
    }

    fn export_key(&self, _: &WrappedKey, _: &WrappedKey) -> Result<String> {
        closed("export")
    }

    fn import_key(&self, _: &str, _: &WrappedKey) -> Result<WrappedKey> {
        closed("import")
    }

    fn sign(&self, _: &WrappedKey, _: SignInput<'_>) -> Result<Signature> {
        closed("signing")
    }

    fn public_key(&self, _: &WrappedKey) -> Result<[u8; 65]> {
        closed("public key")
    }

    fn random(&self, _: &mut [u8]) -> Result<()> {
        closed("random")
    }

    fn destroy_key(&self, _: &WrappedKey) -> Result<()> {
        closed("destruction")
    }
}
