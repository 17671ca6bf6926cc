//! PKCS#11 tokens.

use crate::error::{KmsError, Result};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Where the token is and how to log in.
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The user PIN.
    pub pin: Zeroizing<String>,
}

/// A PKCS#11 token behind the [`super::Hsm`] trait.
#[derive(Debug)]
pub struct Pkcs11Hsm;

impl Pkcs11Hsm {
    /// Opens the token.
    pub fn open(_config: Pkcs11Config) -> Result<Self> {
        Err(KmsError::Pkcs11(
            "the PKCS#11 backend is not built yet".into(),
        ))
    }
}

fn unsupported<T>() -> Result<T> {
    Err(KmsError::Unsupported {
        provider: "PKCS#11",
        operation: "anything (backend not built yet)",
    })
}

use super::{Custody, GeneratedKey, Hsm, ProviderKind, SignInput, WrappedKey, WriteKey};
use ykt_crypto::{Kcv, KcvMethod, Load, Signature};
use ykt_hsm_sim::shamir::Share;
use ykt_hsm_sim::{FormedKcvs, KeyAttributes, KeyComponent, TacCheck};

impl Hsm for Pkcs11Hsm {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Pkcs11
    }
    fn generate_key(&self, _: KeyAttributes) -> Result<GeneratedKey> {
        unsupported()
    }
    fn form_key(&self, _: KeyAttributes, _: &[KeyComponent]) -> Result<(WrappedKey, FormedKcvs)> {
        unsupported()
    }
    fn form_key_from_shares(&self, _: KeyAttributes, _: &[Share]) -> Result<(WrappedKey, Kcv)> {
        unsupported()
    }
    fn custody_split(&self, _: &WrappedKey, _: u8, _: u8) -> Result<Custody> {
        unsupported()
    }
    fn custody_recover(&self, _: &str, _: &[Share]) -> Result<WrappedKey> {
        unsupported()
    }
    fn kcv(&self, _: &WrappedKey, _: KcvMethod) -> Result<Kcv> {
        unsupported()
    }
    fn derive_key(
        &self,
        _: &WrappedKey,
        _: &[[u8; 8]],
        _: KeyAttributes,
    ) -> Result<(WrappedKey, Kcv)> {
        unsupported()
    }
    fn load_mac2(&self, _: &WrappedKey, _: &[[u8; 8]], _: &Load, _: &[u8]) -> Result<[u8; 4]> {
        unsupported()
    }
    fn verify_load_tac(&self, _: &WrappedKey, _: &[[u8; 8]], _: &Load, _: &[u8]) -> Result<()> {
        unsupported()
    }
    fn verify_purchase_tacs(&self, _: &WrappedKey, _: &[TacCheck<'_>]) -> Result<Vec<bool>> {
        unsupported()
    }
    fn write_key_command(&self, _: &WriteKey<'_>) -> Result<Vec<u8>> {
        unsupported()
    }
    fn external_auth_cryptogram(&self, _: &WrappedKey, _: &[[u8; 8]], _: &[u8]) -> Result<Vec<u8>> {
        unsupported()
    }
    fn export_key(&self, _: &WrappedKey, _: &WrappedKey) -> Result<String> {
        unsupported()
    }
    fn import_key(&self, _: &str, _: &WrappedKey) -> Result<WrappedKey> {
        unsupported()
    }
    fn sign(&self, _: &WrappedKey, _: SignInput<'_>) -> Result<Signature> {
        unsupported()
    }
    fn public_key(&self, _: &WrappedKey) -> Result<[u8; 65]> {
        unsupported()
    }
    fn random(&self, _: &mut [u8]) -> Result<()> {
        unsupported()
    }
    fn destroy_key(&self, _: &WrappedKey) -> Result<()> {
        unsupported()
    }
}
