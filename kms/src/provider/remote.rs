//! A simulator reached over the host protocol ([`ykt_hsm_sim::host`]): the production shape,
//! with the HSM on its own machine, unlocked there by the officers.
//!
//! Connections are authenticated at connect time and pooled; a call takes an idle connection
//! (or opens one), and a connection that fails at the transport level is dropped and the call
//! tried once more on a fresh one. Refusals by the HSM are returned as they are.
//!
//! Clear key material never crosses the link, so forming keys from components or shares and
//! custody splits and recoveries (whose shares are clear secrets) are
//! [`KmsError::Unsupported`] here: a KMS that needs them runs beside its HSM, on the
//! in-process provider.

use super::local::{blob_of, with_write_key_request, wrapped};
use super::{Custody, GeneratedKey, Hsm, KeyCheck, ProviderKind, SignInput, WrappedKey, WriteKey};
use crate::error::{KmsError, Result};
use std::sync::Mutex;
use ykt_crypto::{Kcv, KcvMethod, Load, Signature};
use ykt_hsm_sim::host::{CheckValue, HostClient, HostError, RemoteKeyCheck, TacRecord};
use ykt_hsm_sim::keyblock::KeyBlock;
use ykt_hsm_sim::shamir::Share;
use ykt_hsm_sim::{FormedKcvs, KeyAttributes, KeyComponent, TacCheck};
use zeroize::Zeroizing;

const PROVIDER: &str = "remote HSM";
/// Idle connections kept for reuse.
const MAX_IDLE: usize = 16;

/// Where and as whom to reach the HSM.
pub struct RemoteConfig {
    /// `host:port` of the HSM's host protocol server.
    pub address: String,
    /// The client name registered at the HSM.
    pub client: String,
    /// The secret shared with the HSM for that client.
    pub secret: Zeroizing<Vec<u8>>,
}

/// The [`Hsm`] trait over a pool of host protocol connections.
pub struct RemoteHsm {
    config: RemoteConfig,
    idle: Mutex<Vec<HostClient>>,
}

impl std::fmt::Debug for RemoteHsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteHsm")
            .field("address", &self.config.address)
            .field("client", &self.config.client)
            .finish()
    }
}

fn unsupported(operation: &'static str) -> KmsError {
    KmsError::Unsupported {
        provider: PROVIDER,
        operation,
    }
}

fn kcv_of(value: CheckValue) -> Result<Kcv> {
    Ok(Kcv::from_value(value.method, &value.value)?)
}

impl RemoteHsm {
    /// Connects once to check the address and credentials, and keeps that connection.
    pub fn connect(config: RemoteConfig) -> Result<Self> {
        let first = HostClient::connect(&config.address, &config.client, &config.secret)?;
        Ok(Self {
            config,
            idle: Mutex::new(vec![first]),
        })
    }

    fn take(&self) -> Result<HostClient> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(client) => Ok(client),
            None => Ok(HostClient::connect(
                &self.config.address,
                &self.config.client,
                &self.config.secret,
            )?),
        }
    }

    fn give_back(&self, client: HostClient) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(client);
        }
    }

    /// Runs `call` on a pooled connection; a transport failure drops the connection and the
    /// call is tried once more on a new one.
    fn with_client<T>(
        &self,
        mut call: impl FnMut(&mut HostClient) -> Result<T, HostError>,
    ) -> Result<T> {
        let mut retried = false;
        loop {
            let mut client = self.take()?;
            match call(&mut client) {
                Err(HostError::Io(error)) => {
                    if retried {
                        return Err(HostError::Io(error).into());
                    }
                    tracing::warn!(address = %self.config.address, %error, "HSM connection lost; reconnecting");
                    retried = true;
                }
                result => {
                    self.give_back(client);
                    return Ok(result?);
                }
            }
        }
    }
}

impl Hsm for RemoteHsm {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Remote
    }

    fn generate_key(&self, attributes: KeyAttributes) -> Result<GeneratedKey> {
        let (blob, check) = self.with_client(|c| c.generate_key(attributes))?;
        let check = match check {
            RemoteKeyCheck::Kcv(value) => KeyCheck::Kcv(kcv_of(value)?),
            RemoteKeyCheck::PublicKey(point) => KeyCheck::PublicKey(point),
        };
        Ok(GeneratedKey {
            key: wrapped(blob),
            check,
        })
    }

    fn form_key(
        &self,
        _attributes: KeyAttributes,
        _components: &[KeyComponent],
    ) -> Result<(WrappedKey, FormedKcvs)> {
        Err(unsupported("forming a key from clear components"))
    }

    fn custody_split(&self, _key: &WrappedKey, _threshold: u8, _count: u8) -> Result<Custody> {
        Err(unsupported("a custody split"))
    }

    fn custody_recover(&self, _block: &str, _shares: &[Share]) -> Result<WrappedKey> {
        Err(unsupported("a custody recovery"))
    }

    fn kcv(&self, key: &WrappedKey, method: KcvMethod) -> Result<Kcv> {
        let blob = blob_of(key)?;
        kcv_of(self.with_client(|c| c.kcv(&blob, method))?)
    }

    fn derive_key(
        &self,
        master: &WrappedKey,
        factors: &[[u8; 8]],
        attributes: KeyAttributes,
    ) -> Result<(WrappedKey, Kcv)> {
        let master = blob_of(master)?;
        let (blob, kcv) = self.with_client(|c| c.derive_key(&master, factors, attributes))?;
        Ok((wrapped(blob), kcv_of(kcv)?))
    }

    fn load_mac2(
        &self,
        dlk_master: &WrappedKey,
        factors: &[[u8; 8]],
        load: &Load,
        mac1: &[u8],
    ) -> Result<[u8; 4]> {
        let master = blob_of(dlk_master)?;
        self.with_client(|c| c.load_mac2(&master, factors, load, mac1))
    }

    fn verify_load_tac(
        &self,
        dtk_master: &WrappedKey,
        factors: &[[u8; 8]],
        load: &Load,
        tac: &[u8],
    ) -> Result<()> {
        let master = blob_of(dtk_master)?;
        self.with_client(|c| c.verify_load_tac(&master, factors, load, tac))
    }

    fn verify_purchase_tacs(
        &self,
        dtk_master: &WrappedKey,
        records: &[TacCheck<'_>],
    ) -> Result<Vec<bool>> {
        let master = blob_of(dtk_master)?;
        let records: Vec<TacRecord> = records
            .iter()
            .map(|r| TacRecord {
                factors: r.factors.to_vec(),
                purchase: r.purchase.clone(),
                tac: r.tac.to_vec(),
            })
            .collect();
        self.with_client(|c| c.verify_purchase_tacs(&master, records.clone()))
    }

    fn write_key_command(&self, request: &WriteKey<'_>) -> Result<Vec<u8>> {
        with_write_key_request(request, |r| self.with_client(|c| c.write_key_command(r)))
    }

    fn external_auth_cryptogram(
        &self,
        master: &WrappedKey,
        factors: &[[u8; 8]],
        challenge: &[u8],
    ) -> Result<Vec<u8>> {
        let master = blob_of(master)?;
        self.with_client(|c| c.external_auth_cryptogram(&master, factors, challenge))
    }

    fn export_key(&self, key: &WrappedKey, kek: &WrappedKey) -> Result<String> {
        let (key, kek) = (blob_of(key)?, blob_of(kek)?);
        let block = self.with_client(|c| c.export_key(&key, &kek))?;
        Ok(block.as_str().to_owned())
    }

    fn import_key(&self, block: &str, kek: &WrappedKey) -> Result<WrappedKey> {
        let block = KeyBlock::parse(block)?;
        let kek = blob_of(kek)?;
        Ok(wrapped(self.with_client(|c| c.import_key(&block, &kek))?))
    }

    fn sign(&self, key: &WrappedKey, input: SignInput<'_>) -> Result<Signature> {
        let blob = blob_of(key)?;
        self.with_client(|c| match input {
            SignInput::Sm2 { id, message } => c.sign_sm2(&blob, id, message),
            SignInput::P256 { message } => c.sign_p256(&blob, message),
            SignInput::Sm2Digest { e } => c.sign_sm2_digest(&blob, e),
            SignInput::P256Digest { digest } => c.sign_p256_digest(&blob, digest),
        })
    }

    fn public_key(&self, key: &WrappedKey) -> Result<[u8; 65]> {
        let blob = blob_of(key)?;
        self.with_client(|c| c.public_key(&blob))
    }

    fn random(&self, out: &mut [u8]) -> Result<()> {
        self.with_client(|c| c.random(out))
    }

    fn destroy_key(&self, key: &WrappedKey) -> Result<()> {
        let blob = blob_of(key)?;
        self.with_client(|c| c.destroy_key(&blob))
    }
}
