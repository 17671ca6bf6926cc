//! The KMS's internal certificate authority for the mutual TLS of its API: an ECDSA P-256 key
//! in the HSM (rustls has no SM2), a self-signed CA certificate, client certificates for the
//! platform services and issuing stations, and the revocation list.
//!
//! A client certificate names its holder (CN), role (OU: `platform`, `issuer`,
//! `terminal-manager`, `auditor`) and scope (a SAN URI `urn:ykt:client:NAME:ROLE[:SCHOOL,...]`),
//! so any verifier sees what it is for; the KMS itself authorises by the certificate's
//! SHA-256 fingerprint, registered at enrolment with the role and schools, so a revoked or
//! re-enrolled client is refused whatever its certificate says. The CA key signs inside the
//! HSM; the client's own key is made at enrolment and handed to the client only (PEM, or a
//! PKCS#12 bundle from [`Enrolment::pkcs12`]), never stored. Enrolment and revocation need one
//! officer and are audited.

use crate::audit::AuditRecord;
use crate::error::{KmsError, Result};
use crate::kms::Kms;
use crate::model::{KeyAlgorithm, Purpose, SchoolCode, Scope, Template};
use crate::officers::Credential;
use crate::provider::{Hsm, SignInput, WrappedKey};
use crate::store::now_ms;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    RevocationReason, RevokedCertParams, SanType, SerialNumber, SignatureAlgorithm, SigningKey,
};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use std::fmt;
use std::str::FromStr;
use ykt_hsm_sim::{Exportability, KeyUsage, Modes};
use zeroize::Zeroizing;

/// The template of the CA key.
pub const TLS_CA_TEMPLATE: Template = Template {
    name: "tls-ca",
    usage: KeyUsage::Signature,
    modes: Modes::SIGN,
    exportability: Exportability::None,
    master: false,
};

/// The attributes of a server TLS key: a P-256 signing key made in the HSM for one server
/// certificate, never exported, never stored.
fn server_key_attributes() -> Result<ykt_hsm_sim::KeyAttributes> {
    Ok(ykt_hsm_sim::KeyAttributes::new(
        KeyUsage::Signature,
        KeyAlgorithm::P256,
        Modes::SIGN,
        Exportability::None,
        1,
    )?)
}

/// How long a server certificate is valid (the server renews it well before).
pub const SERVER_VALIDITY_MS: i64 = 7 * 86_400_000;

/// How long a client certificate is valid.
const CLIENT_VALIDITY_DAYS: i64 = 365;

/// How long the CA certificate is valid.
const CA_VALIDITY_DAYS: i64 = 10 * 365;

/// How long a revocation list is valid before the next must be fetched.
const CRL_VALIDITY_DAYS: i64 = 7;

/// What an API client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientRole {
    /// The card and scenario platform: signatures, tokens, clearing.
    Platform,
    /// A remote issuing station, for its schools.
    Issuer,
    /// Terminal management: terminal registrations, PSAM tokens.
    TerminalManager,
    /// Read-only audit access.
    Auditor,
}

impl ClientRole {
    /// The name as certificates and the store carry it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Issuer => "issuer",
            Self::TerminalManager => "terminal-manager",
            Self::Auditor => "auditor",
        }
    }
}

impl fmt::Display for ClientRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ClientRole {
    type Err = KmsError;

    fn from_str(text: &str) -> Result<Self> {
        [
            Self::Platform,
            Self::Issuer,
            Self::TerminalManager,
            Self::Auditor,
        ]
        .into_iter()
        .find(|role| role.name() == text)
        .ok_or_else(|| invalid("role", format!("`{text}` is not a client role")))
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> KmsError {
    KmsError::InvalidInput {
        field,
        reason: reason.into(),
    }
}

fn cert_error(error: rcgen::Error) -> KmsError {
    KmsError::Store(format!("certificate: {error}"))
}

/// A key in the HSM seen by rcgen: its public key, and signatures made by the HSM.
struct HsmSigner<'a> {
    hsm: &'a dyn Hsm,
    key: WrappedKey,
    public: Vec<u8>,
}

impl<'a> HsmSigner<'a> {
    fn new(hsm: &'a dyn Hsm, key: WrappedKey) -> Result<Self> {
        let public = hsm.public_key(&key)?.to_vec();
        Ok(Self { hsm, key, public })
    }
}

impl PublicKeyData for HsmSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for HsmSigner<'_> {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.hsm
            .sign(&self.key, SignInput::P256 { message })
            .map(|signature| signature.to_der())
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

fn offset_time(ms: i64) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map_err(|_| invalid("time", "out of range"))
}

/// The CA's distinguished name.
fn ca_name(bureau: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, format!("ykt bureau {bureau}"));
    name.push(DnType::CommonName, "ykt KMS internal CA");
    name
}

/// The parameters of the CA certificate (the same at every signing, so that the issuer name
/// of every certificate is the CA's subject).
fn ca_params(bureau: &str, created_at: i64) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_name(bureau);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = offset_time(created_at)?;
    params.not_after = offset_time(created_at + CA_VALIDITY_DAYS * 86_400_000)?;
    params.serial_number = Some(SerialNumber::from_slice(&[0x01]));
    Ok(params)
}

fn pem(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der.to_vec()))
}

/// A server's TLS credential: its certificate (signed by the CA) and its key, in the HSM.
#[derive(Debug, Clone)]
pub struct ServerCredential {
    /// The certificate, DER.
    pub certificate: Vec<u8>,
    /// The CA certificate, DER.
    pub ca_certificate: Vec<u8>,
    /// The key, wrapped by the HSM.
    pub key: WrappedKey,
    /// Last valid moment (Unix ms).
    pub not_after: i64,
}

/// The parameters every leaf certificate of the CA shares: `subject`, a digital-signature
/// key for `purpose`, valid from a minute ago (clock skew) until `not_after`, a random
/// 127-bit serial from the HSM and the CA's key identifier. Returns them and the serial.
fn leaf_params(
    hsm: &dyn Hsm,
    mut params: CertificateParams,
    subject: DistinguishedName,
    purpose: ExtendedKeyUsagePurpose,
    not_after: i64,
) -> Result<(CertificateParams, [u8; 16])> {
    let mut serial = [0u8; 16];
    hsm.random(&mut serial)?;
    serial[0] &= 0x7F;
    params.distinguished_name = subject;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![purpose];
    params.not_before = offset_time(now_ms() - 60_000)?;
    params.not_after = offset_time(not_after)?;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.use_authority_key_identifier_extension = true;
    Ok((params, serial))
}

/// A client as registered.
#[derive(Debug, Clone, Serialize)]
pub struct ApiClient {
    /// Client name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Schools in scope (issuing stations).
    pub schools: Vec<String>,
    /// Certificate serial (hex).
    pub serial: String,
    /// SHA-256 of the certificate (hex): what the KMS authorises by.
    pub fingerprint: String,
    /// `active` or `revoked`.
    pub status: String,
    /// Last valid moment (Unix ms).
    pub not_after: i64,
    /// When enrolled (Unix ms).
    pub enrolled_at: i64,
}

/// What enrolment hands to the client: its certificate and private key (PEM, or together as
/// a PKCS#12 bundle), and the CA certificate to trust the KMS by. The key is the client's
/// alone: the KMS keeps no copy.
pub struct Enrolment {
    /// The registration.
    pub client: ApiClient,
    /// The client certificate, PEM.
    pub certificate_pem: String,
    /// The client's private key, PKCS#8 PEM (wiped when dropped).
    pub key_pem: Zeroizing<String>,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    certificate_der: Vec<u8>,
    key_der: Zeroizing<Vec<u8>>,
    ca_der: Vec<u8>,
}

impl Enrolment {
    /// The client's identity as a PKCS#12 bundle under `password` (see [`crate::pkcs12`]): its
    /// certificate and private key, named after the client, and the CA certificate. The bundle
    /// is wiped when dropped.
    pub fn pkcs12(&self, password: &str) -> Result<Zeroizing<Vec<u8>>> {
        crate::pkcs12::encode(
            &crate::pkcs12::Identity {
                friendly_name: &self.client.name,
                certificate: &self.certificate_der,
                key: &self.key_der,
                ca_certificate: &self.ca_der,
            },
            password,
        )
    }
}

impl fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolment")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

fn client_of(row: &sqlx::any::AnyRow) -> Result<ApiClient> {
    let schools: String = row.try_get("schools")?;
    Ok(ApiClient {
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        schools: serde_json::from_str(&schools)
            .map_err(|_| KmsError::Corrupt("malformed client schools in the store"))?,
        serial: row.try_get("serial")?,
        fingerprint: row.try_get("fingerprint")?,
        status: row.try_get("status")?,
        not_after: row.try_get("not_after")?,
        enrolled_at: row.try_get("enrolled_at")?,
    })
}

const CLIENT_COLUMNS: &str =
    "name, role, schools, serial, fingerprint, status, not_after, enrolled_at";

impl Kms {
    async fn bureau_code(&self) -> Result<String> {
        Ok(self.info().await?.bureau_code)
    }

    /// Creates the CA: its P-256 key in the HSM (generated under the quorum) and its
    /// self-signed certificate. Audited.
    pub async fn init_ca(&self, approvals: &[Credential]) -> Result<String> {
        if self.ca_certificate_der().await.is_ok() {
            return Err(KmsError::AlreadyExists {
                kind: "CA",
                id: "tls-ca".into(),
            });
        }
        let report = self
            .generate_key(
                approvals,
                TLS_CA_TEMPLATE,
                KeyAlgorithm::P256,
                Scope::Bureau,
                None,
            )
            .await?;
        let (version, key) = self.wrapped(&report.key_id, None, Purpose::Sign).await?;
        let created_at = now_ms();
        let bureau = self.bureau_code().await?;
        let params = ca_params(&bureau, created_at)?;
        let signer = HsmSigner::new(self.hsm(), key)?;
        let certificate = params.self_signed(&signer).map_err(cert_error)?;
        let der = certificate.der().to_vec();
        let mut tx = self.store().begin().await?;
        sqlx::query(
            "INSERT INTO api_ca (id, key_id, key_version, certificate, created_at) \
             VALUES (1, $1, $2, $3, $4)",
        )
        .bind(&report.key_id)
        .bind(i64::from(version))
        .bind(hex::encode_upper(&der))
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors: approvals.iter().map(|c| c.name.clone()).collect(),
                act: "ca.init".into(),
                object: "ca:tls-ca".into(),
                result: "ok".into(),
                detail: json!({
                    "key": report.key_id,
                    "public_key": report.check,
                    "fingerprint": hex::encode_upper(ykt_crypto::p256::sha256(&der)),
                }),
            },
        )
        .await?;
        Ok(pem("CERTIFICATE", &der))
    }

    async fn ca_row(&self) -> Result<(String, u8, Vec<u8>, i64)> {
        let row = sqlx::query("SELECT key_id, key_version, certificate, created_at FROM api_ca")
            .fetch_optional(self.store().pool())
            .await?
            .ok_or(KmsError::NotFound {
                kind: "CA",
                id: "tls-ca (run `ykt ca init`)".into(),
            })?;
        let version: i64 = row.try_get("key_version")?;
        let certificate: String = row.try_get("certificate")?;
        Ok((
            row.try_get("key_id")?,
            u8::try_from(version).map_err(|_| KmsError::Corrupt("CA key version"))?,
            hex::decode(certificate).map_err(|_| KmsError::Corrupt("CA certificate"))?,
            row.try_get("created_at")?,
        ))
    }

    /// The CA certificate, DER.
    pub async fn ca_certificate_der(&self) -> Result<Vec<u8>> {
        Ok(self.ca_row().await?.2)
    }

    /// The CA certificate, PEM.
    pub async fn ca_certificate_pem(&self) -> Result<String> {
        Ok(pem("CERTIFICATE", &self.ca_certificate_der().await?))
    }

    /// The CA as rcgen's issuer: its certificate's parameters and the HSM signer.
    async fn ca_issuer(&self) -> Result<(Issuer<'static, HsmSigner<'_>>, Vec<u8>)> {
        let (key_id, version, der, created_at) = self.ca_row().await?;
        let (_, key) = self.wrapped(&key_id, Some(version), Purpose::Sign).await?;
        let params = ca_params(&self.bureau_code().await?, created_at)?;
        let signer = HsmSigner::new(self.hsm(), key)?;
        Ok((Issuer::new(params, signer), der))
    }

    /// Enrols an API client (one officer): makes its key and certificate (role in OU, scope
    /// in a SAN URI), registers its fingerprint with the role and schools, audits it. An
    /// issuing station needs at least one school; other roles none.
    pub async fn enroll_client(
        &self,
        approval: &Credential,
        name: &str,
        role: ClientRole,
        schools: &[String],
    ) -> Result<Enrolment> {
        crate::officers::check_name(name).map_err(|_| invalid("client name", "a short name"))?;
        match (role, schools.is_empty()) {
            (ClientRole::Issuer, true) => {
                return Err(invalid("schools", "an issuing station needs its schools"));
            }
            (ClientRole::Issuer, false) => {
                for school in schools {
                    SchoolCode::new(school)?;
                    self.school(school).await?;
                }
            }
            (_, false) => return Err(invalid("schools", "only issuing stations have schools")),
            (_, true) => {}
        }
        let actor = self.approve_one(approval, "client enroll").await?;
        let (issuer, ca_der) = self.ca_issuer().await?;
        let key = KeyPair::generate().map_err(cert_error)?;
        let now = now_ms();
        let not_after = now + CLIENT_VALIDITY_DAYS * 86_400_000;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, name);
        subject.push(DnType::OrganizationalUnitName, role.name());
        let uri = [format!("urn:ykt:client:{name}:{role}"), schools.join(",")]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(":");
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(uri.as_str().try_into().map_err(cert_error)?)];
        let (params, serial) = leaf_params(
            self.hsm(),
            params,
            subject,
            ExtendedKeyUsagePurpose::ClientAuth,
            not_after,
        )?;
        let certificate = params.signed_by(&key, &issuer).map_err(cert_error)?;
        let der = certificate.der().to_vec();
        let client = ApiClient {
            name: name.to_owned(),
            role: role.name().to_owned(),
            schools: schools.to_vec(),
            serial: hex::encode_upper(serial),
            fingerprint: hex::encode_upper(ykt_crypto::p256::sha256(&der)),
            status: "active".into(),
            not_after,
            enrolled_at: now,
        };
        let mut tx = self.store().begin().await?;
        crate::store::Object::ApiClient
            .require_absent(&mut tx, name)
            .await?;
        sqlx::query(
            "INSERT INTO api_clients (name, role, schools, serial, fingerprint, status, \
             not_after, enrolled_at, status_at) VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $7)",
        )
        .bind(name)
        .bind(role.name())
        .bind(serde_json::to_string(schools).expect("a list serialises"))
        .bind(&client.serial)
        .bind(&client.fingerprint)
        .bind(not_after)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors: vec![actor],
                act: "client.enroll".into(),
                object: format!("client:{name}"),
                result: "ok".into(),
                detail: json!({
                    "role": role.name(),
                    "schools": schools,
                    "serial": client.serial,
                    "fingerprint": client.fingerprint,
                    "not_after": not_after,
                }),
            },
        )
        .await?;
        Ok(Enrolment {
            client,
            certificate_pem: pem("CERTIFICATE", &der),
            key_pem: Zeroizing::new(key.serialize_pem()),
            ca_pem: pem("CERTIFICATE", &ca_der),
            certificate_der: der,
            key_der: Zeroizing::new(key.serialize_der()),
            ca_der,
        })
    }

    /// Revokes a client (one officer): refused by the API from then on and listed in the
    /// revocation list. Audited.
    pub async fn revoke_client(
        &self,
        approval: &Credential,
        name: &str,
        reason: &str,
    ) -> Result<()> {
        let actor = self.approve_one(approval, "client revoke").await?;
        let mut tx = self.store().begin().await?;
        let changed = sqlx::query(
            "UPDATE api_clients SET status = 'revoked', status_at = $1, status_reason = $2 \
             WHERE name = $3 AND status = 'active'",
        )
        .bind(now_ms())
        .bind(reason)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(KmsError::NotFound {
                kind: "active client",
                id: name.to_owned(),
            });
        }
        self.commit_audited(
            tx,
            AuditRecord {
                actors: vec![actor],
                act: "client.revoke".into(),
                object: format!("client:{name}"),
                result: "ok".into(),
                detail: json!({ "reason": reason }),
            },
        )
        .await
    }

    /// A new server credential for `hosts` (DNS names or IP addresses): a fresh P-256 key
    /// made in the HSM and a certificate for it signed by the CA, valid for
    /// [`SERVER_VALIDITY_MS`]. Audited; a server renews its credential this way while it runs.
    pub async fn issue_server_credential(&self, hosts: &[String]) -> Result<ServerCredential> {
        if hosts.is_empty() {
            return Err(invalid(
                "hosts",
                "a server certificate names at least one host",
            ));
        }
        let (issuer, ca_der) = self.ca_issuer().await?;
        let key = self.hsm().generate_key(server_key_attributes()?)?.key;
        let signer = HsmSigner::new(self.hsm(), key.clone())?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, "ykt KMS API");
        let not_after = now_ms() + SERVER_VALIDITY_MS;
        let (params, serial) = leaf_params(
            self.hsm(),
            CertificateParams::new(hosts.to_vec()).map_err(cert_error)?,
            subject,
            ExtendedKeyUsagePurpose::ServerAuth,
            not_after,
        )?;
        let certificate = params.signed_by(&signer, &issuer).map_err(cert_error)?;
        let der = certificate.der().to_vec();
        let tx = self.store().begin().await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors: vec!["kms".into()],
                act: "ca.server-certificate".into(),
                object: "ca:tls-ca".into(),
                result: "ok".into(),
                detail: json!({
                    "hosts": hosts,
                    "serial": hex::encode_upper(serial),
                    "fingerprint": hex::encode_upper(ykt_crypto::p256::sha256(&der)),
                    "not_after": not_after,
                }),
            },
        )
        .await?;
        Ok(ServerCredential {
            certificate: der,
            ca_certificate: ca_der,
            key,
            not_after,
        })
    }

    /// Every client, by name.
    pub async fn clients(&self) -> Result<Vec<ApiClient>> {
        sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM api_clients ORDER BY name"
        ))
        .fetch_all(self.store().pool())
        .await?
        .iter()
        .map(client_of)
        .collect()
    }

    /// The client whose certificate has the SHA-256 `fingerprint` (hex), if registered.
    pub async fn client_by_fingerprint(&self, fingerprint: &str) -> Result<Option<ApiClient>> {
        sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM api_clients WHERE fingerprint = $1"
        ))
        .bind(fingerprint)
        .fetch_optional(self.store().pool())
        .await?
        .as_ref()
        .map(client_of)
        .transpose()
    }

    /// The certificate revocation list, signed now by the CA key, PEM.
    pub async fn revocation_list_pem(&self) -> Result<String> {
        Ok(pem("X509 CRL", &self.revocation_list_der().await?))
    }

    /// The certificate revocation list, signed now by the CA key, DER.
    pub async fn revocation_list_der(&self) -> Result<Vec<u8>> {
        let (issuer, _) = self.ca_issuer().await?;
        let rows = sqlx::query(
            "SELECT serial, status_at FROM api_clients WHERE status = 'revoked' ORDER BY serial",
        )
        .fetch_all(self.store().pool())
        .await?;
        let mut revoked = Vec::with_capacity(rows.len());
        for row in &rows {
            let serial: String = row.try_get("serial")?;
            let at: i64 = row.try_get("status_at")?;
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(
                    &hex::decode(&serial).map_err(|_| KmsError::Corrupt("client serial"))?,
                ),
                revocation_time: offset_time(at)?,
                reason_code: Some(RevocationReason::CessationOfOperation),
                invalidity_date: None,
            });
        }
        let now = now_ms();
        let params = CertificateRevocationListParams {
            this_update: offset_time(now)?,
            next_update: offset_time(now + CRL_VALIDITY_DAYS * 86_400_000)?,
            crl_number: SerialNumber::from_slice(&(now as u64).to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params
            .signed_by(&issuer)
            .map_err(cert_error)?
            .der()
            .to_vec())
    }
}
