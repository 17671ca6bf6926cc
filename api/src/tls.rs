//! TLS of the API: TLS 1.3 only, the server's key in the HSM (rustls asks the HSM for every
//! handshake signature), client certificates required and verified against the KMS's CA
//! and its current revocation list. The server credential is renewed while the server runs
//! and handshakes pick up the newest one, so certificates rotate without downtime.

use crate::error::{ApiError, Result};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{ServerConfig, SignatureAlgorithm, SignatureScheme};
use std::sync::{Arc, RwLock};
use ykt_kms::ca::ServerCredential;
use ykt_kms::provider::{Hsm, SignInput, WrappedKey};

/// A P-256 key in the HSM, as rustls signs with it.
struct HsmKey {
    hsm: Arc<dyn Hsm>,
    key: WrappedKey,
}

impl std::fmt::Debug for HsmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmKey").finish_non_exhaustive()
    }
}

impl SigningKey for HsmKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| {
                Box::new(HsmSigner {
                    hsm: self.hsm.clone(),
                    key: self.key.clone(),
                }) as Box<dyn Signer>
            })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

struct HsmSigner {
    hsm: Arc<dyn Hsm>,
    key: WrappedKey,
}

impl std::fmt::Debug for HsmSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmSigner").finish_non_exhaustive()
    }
}

impl Signer for HsmSigner {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rustls::Error> {
        self.hsm
            .sign(&self.key, SignInput::P256 { message })
            .map(|signature| signature.to_der())
            .map_err(|error| rustls::Error::General(format!("HSM signature: {error}")))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// The server's current certificate and key; replaced when the credential is renewed.
#[derive(Debug)]
pub struct Credentials {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Credentials {
    fn certified(hsm: &Arc<dyn Hsm>, credential: &ServerCredential) -> Arc<CertifiedKey> {
        Arc::new(CertifiedKey::new(
            vec![
                CertificateDer::from(credential.certificate.clone()),
                CertificateDer::from(credential.ca_certificate.clone()),
            ],
            Arc::new(HsmKey {
                hsm: hsm.clone(),
                key: credential.key.clone(),
            }),
        ))
    }

    /// Credentials serving `credential`.
    pub fn new(hsm: &Arc<dyn Hsm>, credential: &ServerCredential) -> Self {
        Self {
            current: RwLock::new(Self::certified(hsm, credential)),
        }
    }

    /// From now on, handshakes use `credential`.
    pub fn replace(&self, hsm: &Arc<dyn Hsm>, credential: &ServerCredential) {
        let certified = Self::certified(hsm, credential);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = certified;
    }
}

impl ResolvesServerCert for Credentials {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// A TLS 1.3 server configuration: the certificate from `credentials`, client certificates
/// required and verified against `ca` with the revocation list `crl`.
pub fn server_config(
    credentials: Arc<Credentials>,
    ca: &[u8],
    crl: Vec<u8>,
) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.to_vec()))
        .map_err(|e| ApiError::Tls(format!("the CA certificate: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls([CertificateRevocationListDer::from(crl)])
        .build()
        .map_err(|e| ApiError::Tls(format!("the client verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ApiError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(credentials);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
