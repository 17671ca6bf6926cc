//! The simulator in this process: the default provider, with its LMK sealed in a state
//! directory.
//!
//! The state directory holds `lmk.sealed` (the LMK sealed under a key derived from the
//! ceremony secret, [`ykt_hsm_sim::lmk`]) and `destroyed.log` (the identities, nonce and tag, of
//! destroyed blobs, so they stay refused after a restart). Opening the HSM needs the ceremony secret again: the
//! officers' components or shares.

use super::{Custody, GeneratedKey, Hsm, ProviderKind, SignInput, WrappedKey, WriteKey};
use crate::error::{KmsError, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ykt_crypto::{Kcv, KcvMethod, Load, Signature};
use ykt_hsm_sim::keyblock::KeyBlock;
use ykt_hsm_sim::shamir::Share;
use ykt_hsm_sim::{
    CeremonySecret, FormedKcvs, KeyAttributes, KeyBlob, KeyComponent, Lmk, TacCheck,
    WriteKeyRequest,
};

const LMK_FILE: &str = "lmk.sealed";
const DESTROYED_FILE: &str = "destroyed.log";

/// The in-process simulator behind the [`Hsm`] trait.
#[derive(Debug, Clone)]
pub struct LocalHsm {
    engine: Arc<ykt_hsm_sim::Hsm>,
}

/// Opens the blob inside a wrapped key, checking that the attributes stored beside it are the
/// ones bound into it.
pub(crate) fn blob_of(key: &WrappedKey) -> Result<KeyBlob> {
    let blob = KeyBlob::from_bytes(key.as_bytes().to_vec())?;
    if blob.attributes() != key.attributes() {
        return Err(KmsError::MalformedKey(
            "the stored attributes differ from the ones bound to the key",
        ));
    }
    Ok(blob)
}

/// Runs `call` on the simulator's form of a WRITE KEY request: both keys opened as blobs
/// ([`blob_of`]), every other field as given.
pub(crate) fn with_write_key_request<T>(
    request: &WriteKey<'_>,
    call: impl FnOnce(&WriteKeyRequest<'_>) -> Result<T>,
) -> Result<T> {
    let key = blob_of(request.key)?;
    let under = blob_of(request.under)?;
    call(&WriteKeyRequest {
        key: &key,
        key_factors: request.key_factors,
        under: &under,
        under_factors: request.under_factors,
        challenge: request.challenge,
        p1: request.p1,
        p2: request.p2,
        record_header: request.record_header,
    })
}

/// Wraps a simulator blob.
pub(crate) fn wrapped(blob: KeyBlob) -> WrappedKey {
    WrappedKey::new(*blob.attributes(), blob.as_bytes().to_vec())
}

impl LocalHsm {
    /// A provider over an engine, which may also serve the host protocol.
    pub fn new(engine: Arc<ykt_hsm_sim::Hsm>) -> Self {
        Self { engine }
    }

    /// The engine, to share with a host protocol server.
    pub fn engine(&self) -> &Arc<ykt_hsm_sim::Hsm> {
        &self.engine
    }

    /// True if `dir` holds a sealed LMK.
    pub fn exists(dir: &Path) -> bool {
        dir.join(LMK_FILE).is_file()
    }

    /// First start: forms the LMK from the ceremony secret and seals it into `dir`. Refuses a
    /// directory that already holds an LMK.
    pub fn create(dir: &Path, secret: &CeremonySecret) -> Result<Self> {
        let path = dir.join(LMK_FILE);
        if path.exists() {
            return Err(KmsError::Hsm(ykt_hsm_sim::HsmError::Io(
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} already holds an LMK", dir.display()),
                ),
            )));
        }
        std::fs::create_dir_all(dir).map_err(ykt_hsm_sim::HsmError::Io)?;
        let lmk = Lmk::form(secret)?;
        lmk.seal_to(&path, secret)?;
        Self::with_lmk(dir, lmk)
    }

    /// Later starts: unseals the LMK in `dir` with the ceremony secret.
    pub fn open(dir: &Path, secret: &CeremonySecret) -> Result<Self> {
        let lmk = Lmk::unseal_from(&dir.join(LMK_FILE), secret)?;
        Self::with_lmk(dir, lmk)
    }

    fn with_lmk(dir: &Path, lmk: Lmk) -> Result<Self> {
        let log: PathBuf = dir.join(DESTROYED_FILE);
        Ok(Self::new(Arc::new(ykt_hsm_sim::Hsm::with_destroyed_log(
            lmk, &log,
        )?)))
    }

    /// The LMK's check value.
    pub fn lmk_kcv(&self) -> Kcv {
        self.engine.lmk_kcv()
    }
}

impl Hsm for LocalHsm {
    fn kind(&self) -> ProviderKind {
        ProviderKind::InProcess
    }

    fn generate_key(&self, attributes: KeyAttributes) -> Result<GeneratedKey> {
        let generated = self.engine.generate_key(attributes)?;
        Ok(GeneratedKey {
            key: wrapped(generated.blob),
            check: generated.check.into(),
        })
    }

    fn form_key(
        &self,
        attributes: KeyAttributes,
        components: &[KeyComponent],
    ) -> Result<(WrappedKey, FormedKcvs)> {
        let (blob, kcvs) = self.engine.form_key(attributes, components)?;
        Ok((wrapped(blob), kcvs))
    }

    fn custody_split(&self, key: &WrappedKey, threshold: u8, count: u8) -> Result<Custody> {
        let custody = self
            .engine
            .custody_split(&blob_of(key)?, threshold, count)?;
        Ok(Custody {
            block: custody.block.as_str().to_owned(),
            shares: custody.shares,
            kek_kcv: custody.kek_kcv,
        })
    }

    fn custody_recover(&self, block: &str, shares: &[Share]) -> Result<WrappedKey> {
        let block = KeyBlock::parse(block)?;
        Ok(wrapped(self.engine.custody_recover(&block, shares)?))
    }

    fn kcv(&self, key: &WrappedKey, method: KcvMethod) -> Result<Kcv> {
        Ok(self.engine.kcv(&blob_of(key)?, method)?)
    }

    fn derive_key(
        &self,
        master: &WrappedKey,
        factors: &[[u8; 8]],
        attributes: KeyAttributes,
    ) -> Result<(WrappedKey, Kcv)> {
        let (blob, kcv) = self
            .engine
            .derive_key(&blob_of(master)?, factors, attributes)?;
        Ok((wrapped(blob), kcv))
    }

    fn load_mac2(
        &self,
        dlk_master: &WrappedKey,
        factors: &[[u8; 8]],
        load: &Load,
        mac1: &[u8],
    ) -> Result<[u8; 4]> {
        Ok(self
            .engine
            .load_mac2(&blob_of(dlk_master)?, factors, load, mac1)?)
    }

    fn verify_load_tac(
        &self,
        dtk_master: &WrappedKey,
        factors: &[[u8; 8]],
        load: &Load,
        tac: &[u8],
    ) -> Result<()> {
        Ok(self
            .engine
            .verify_load_tac(&blob_of(dtk_master)?, factors, load, tac)?)
    }

    fn verify_purchase_tacs(
        &self,
        dtk_master: &WrappedKey,
        records: &[TacCheck<'_>],
    ) -> Result<Vec<bool>> {
        Ok(self
            .engine
            .verify_purchase_tacs(&blob_of(dtk_master)?, records)?)
    }

    fn write_key_command(&self, request: &WriteKey<'_>) -> Result<Vec<u8>> {
        with_write_key_request(request, |r| Ok(self.engine.write_key_command(r)?))
    }

    fn external_auth_cryptogram(
        &self,
        master: &WrappedKey,
        factors: &[[u8; 8]],
        challenge: &[u8],
    ) -> Result<Vec<u8>> {
        Ok(self
            .engine
            .external_auth_cryptogram(&blob_of(master)?, factors, challenge)?)
    }

    fn export_key(&self, key: &WrappedKey, kek: &WrappedKey) -> Result<String> {
        let block = self.engine.export_key(&blob_of(key)?, &blob_of(kek)?)?;
        Ok(block.as_str().to_owned())
    }

    fn import_key(&self, block: &str, kek: &WrappedKey) -> Result<WrappedKey> {
        let block = KeyBlock::parse(block)?;
        Ok(wrapped(self.engine.import_key(&block, &blob_of(kek)?)?))
    }

    fn sign(&self, key: &WrappedKey, input: SignInput<'_>) -> Result<Signature> {
        let blob = blob_of(key)?;
        Ok(match input {
            SignInput::Sm2 { id, message } => self.engine.sign_sm2(&blob, id, message)?,
            SignInput::P256 { message } => self.engine.sign_p256(&blob, message)?,
            SignInput::Sm2Digest { e } => self.engine.sign_sm2_digest(&blob, e)?,
            SignInput::P256Digest { digest } => self.engine.sign_p256_digest(&blob, digest)?,
        })
    }

    fn public_key(&self, key: &WrappedKey) -> Result<[u8; 65]> {
        Ok(self.engine.public_key(&blob_of(key)?)?)
    }

    fn random(&self, out: &mut [u8]) -> Result<()> {
        Ok(self.engine.random(out)?)
    }

    fn destroy_key(&self, key: &WrappedKey) -> Result<()> {
        Ok(self.engine.destroy_key(&blob_of(key)?)?)
    }
}
