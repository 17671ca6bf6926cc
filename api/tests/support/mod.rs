//! The KMS the API tests serve: in a directory, an in-process HSM formed from two fixed
//! components, SQLite, three officers and a quorum of two; its CA, enrolled clients, and the
//! server serving it on 127.0.0.1. (Each test binary uses part of this module.)

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ykt_api::Server;
use ykt_api::client::ClientIdentity;
use ykt_api::server::RateLimit;
use ykt_hsm_sim::{CeremonySecret, KeyComponent};
use ykt_kms::ca::{ClientRole, Enrolment};
use ykt_kms::provider::LocalHsm;
use ykt_kms::{Credential, InitRequest, Kms, NewOfficer, Store};

const OFFICERS: [(&str, &str); 3] = [
    ("alice", "alice-passphrase-1"),
    ("bob", "bob-passphrase-22"),
    ("carol", "carol-passphrase-3"),
];

/// The credentials of the first `n` officers.
pub fn creds(n: usize) -> Vec<Credential> {
    OFFICERS[..n]
        .iter()
        .map(|(name, password)| Credential::new(name, password))
        .collect()
}

/// An initialised KMS in `dir`.
pub async fn kms(dir: &Path) -> Kms {
    let (secret, _) = CeremonySecret::from_components(&[
        KeyComponent::new(&[0x5A; 32]),
        KeyComponent::new(&[0xC3; 32]),
    ])
    .unwrap();
    let hsm = Arc::new(LocalHsm::create(&dir.join("hsm"), &secret).unwrap());
    let url = format!("sqlite://{}?mode=rwc", dir.join("kms.db").display());
    let kms = Kms::new(Store::open(&url).await.unwrap(), hsm.clone());
    kms.initialize(&InitRequest {
        bureau_code: "330100".into(),
        bureau_name: "Hangzhou Education Bureau".into(),
        quorum: 2,
        officers: OFFICERS
            .iter()
            .map(|(name, password)| NewOfficer {
                credential: Credential::new(name, password),
                display_name: name.to_uppercase(),
            })
            .collect(),
        lmk_kcv: Some(hsm.lmk_kcv().to_string()),
    })
    .await
    .unwrap();
    kms
}

/// A fresh directory for one test.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ykt-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A KMS with its CA in `dir`.
pub async fn kms_with_ca(dir: &Path) -> Kms {
    let kms = kms(dir).await;
    kms.init_ca(&creds(2)).await.unwrap();
    kms
}

/// A client enrolled by the first officer, for `schools`.
pub async fn enroll(kms: &Kms, name: &str, role: ClientRole, schools: &[String]) -> Enrolment {
    kms.enroll_client(&creds(1)[0], name, role, schools)
        .await
        .unwrap()
}

/// The client identity of an enrolment.
pub fn identity(enrolment: &Enrolment) -> ClientIdentity {
    ClientIdentity::from_pem(
        &enrolment.certificate_pem,
        &enrolment.key_pem,
        &enrolment.ca_pem,
    )
    .unwrap()
}

/// The API server of `kms` bound to a free port of 127.0.0.1, for the name 127.0.0.1.
pub async fn bind(kms: impl Into<Arc<Kms>>) -> Server {
    Server::bind(
        kms.into(),
        "127.0.0.1:0".parse().unwrap(),
        vec!["127.0.0.1".into()],
    )
    .await
    .unwrap()
}

/// A server, serving until stopped.
pub struct Served {
    /// Where it listens.
    pub address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<ykt_api::Result<()>>,
}

impl Served {
    /// Serves `kms` with the default settings.
    pub async fn start(kms: impl Into<Arc<Kms>>) -> Self {
        Self::serve(bind(kms).await).await
    }

    /// Serves `kms` with the rate limit `limit`.
    pub async fn start_with(kms: impl Into<Arc<Kms>>, limit: RateLimit) -> Self {
        Self::serve(bind(kms).await.with_rate_limit(limit)).await
    }

    /// Serves `server`.
    pub async fn serve(server: Server) -> Self {
        let address = server.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Self {
            address,
            stop,
            serving,
        }
    }

    /// `https://ADDRESS`.
    pub fn base(&self) -> String {
        format!("https://{}", self.address)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        self.serving.await.unwrap().unwrap();
    }
}
