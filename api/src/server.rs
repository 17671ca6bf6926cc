//! The HTTPS server: accepts TCP connections (TCP_NODELAY set), completes the TLS 1.3
//! handshake with a client certificate, finds the client by its certificate's SHA-256
//! fingerprint (registered, active, not expired) and serves the API's routes to it over
//! HTTP/1.1, with a body size limit and a structured access log (client, method, path,
//! status, time; never a body). The server credential is renewed in the background well
//! before it expires, and the revocation list the handshake checks is refreshed every
//! minute. Shutdown stops accepting and lets the connections in flight finish.

use crate::error::{ApiError, Result};
use crate::tls::{Credentials, server_config};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use ykt_kms::Kms;
use ykt_kms::ca::{ApiClient, SERVER_VALIDITY_MS};

/// The largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the revocation list is fetched again and the credential checked.
const REFRESH: Duration = Duration::from_secs(60);

/// How long connections in flight may take to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// The authenticated caller of a request.
#[derive(Debug, Clone, Serialize)]
pub struct Caller {
    /// Client name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Schools in scope.
    pub schools: Vec<String>,
}

impl From<ApiClient> for Caller {
    fn from(client: ApiClient) -> Self {
        Self {
            name: client.name,
            role: client.role,
            schools: client.schools,
        }
    }
}

/// An API error response: a status and `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    /// A refusal.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

/// The state every handler sees.
#[derive(Clone)]
pub struct AppState {
    /// The KMS.
    pub kms: Arc<Kms>,
}

async fn whoami(axum::Extension(caller): axum::Extension<Caller>) -> axum::Json<Caller> {
    axum::Json(caller)
}

/// The routes, for one authenticated caller.
fn routes(state: AppState, caller: Caller) -> Router {
    let name = caller.name.clone();
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/keys", get(crate::sign::keys))
        .route("/.well-known/jwks.json", get(crate::sign::jwks))
        .route("/v1/keys/{id}/sign", axum::routing::post(crate::sign::sign))
        .route(
            "/v1/keys/{id}/verify",
            axum::routing::post(crate::sign::verify),
        )
        .route(
            "/v1/tac/verify",
            axum::routing::post(crate::clearing::verify),
        )
        .with_state(state)
        .layer(axum::Extension(caller))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let name = name.clone();
                async move {
                    let started = Instant::now();
                    let (method, path) =
                        (request.method().clone(), request.uri().path().to_owned());
                    let response = next.run(request).await;
                    tracing::info!(
                        client = %name,
                        %method,
                        %path,
                        status = response.status().as_u16(),
                        us = started.elapsed().as_micros() as u64,
                        "api request"
                    );
                    response
                }
            },
        ))
}

/// The API server, bound and ready to serve.
pub struct Server {
    kms: Arc<Kms>,
    listener: TcpListener,
    hosts: Vec<String>,
    credentials: Arc<Credentials>,
    config: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    not_after: i64,
}

impl Server {
    /// Binds `listen` and issues the server credential for `hosts` (the names clients
    /// connect to) from the KMS's CA.
    pub async fn bind(kms: Arc<Kms>, listen: SocketAddr, hosts: Vec<String>) -> Result<Self> {
        let credential = kms.issue_server_credential(&hosts).await?;
        let hsm = kms.hsm_handle();
        let credentials = Arc::new(Credentials::new(&hsm, &credential));
        let crl = kms.revocation_list_der().await?;
        let config = server_config(credentials.clone(), &credential.ca_certificate, crl)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ApiError::Io {
                context: format!("cannot listen on {listen}"),
                source,
            })?;
        Ok(Self {
            kms,
            listener,
            hosts,
            credentials,
            config: Arc::new(RwLock::new(config)),
            not_after: credential.not_after,
        })
    }

    /// The address bound (its port when 0 was asked).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|source| ApiError::Io {
            context: "the listening address".into(),
            source,
        })
    }

    /// Serves until `shutdown` completes, then lets the connections in flight finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Self {
            kms,
            listener,
            hosts,
            credentials,
            config,
            mut not_after,
        } = self;
        let state = AppState { kms: kms.clone() };
        let mut connections = JoinSet::new();
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = refresh.tick() => {
                    if let Err(error) =
                        refresh_tls(&kms, &hosts, &credentials, &config, &mut not_after).await
                    {
                        tracing::error!(%error, "the TLS credential or revocation list could not be refreshed");
                    }
                }
                accepted = listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(%error, "accept failed");
                            continue;
                        }
                    };
                    let _ = socket.set_nodelay(true);
                    let acceptor = tokio_rustls::TlsAcceptor::from(
                        config.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
                    );
                    let state = state.clone();
                    connections.spawn(async move {
                        if let Err(reason) = connection(acceptor, socket, state).await {
                            tracing::info!(%peer, %reason, "connection refused");
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        let _ = tokio::time::timeout(DRAIN, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        Ok(())
    }
}

/// Renews the server credential when it is past half its life; rebuilds the TLS
/// configuration with the current revocation list.
async fn refresh_tls(
    kms: &Kms,
    hosts: &[String],
    credentials: &Arc<Credentials>,
    config: &RwLock<Arc<rustls::ServerConfig>>,
    not_after: &mut i64,
) -> Result<()> {
    let hsm = kms.hsm_handle();
    if *not_after - ykt_kms::store::now_ms() < SERVER_VALIDITY_MS / 2 {
        let credential = kms.issue_server_credential(hosts).await?;
        credentials.replace(&hsm, &credential);
        *not_after = credential.not_after;
    }
    let ca = kms.ca_certificate_der().await?;
    let crl = kms.revocation_list_der().await?;
    let fresh = server_config(credentials.clone(), &ca, crl)?;
    *config
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    Ok(())
}

/// One connection: the handshake, the caller by fingerprint, then HTTP/1.1.
async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    socket: tokio::net::TcpStream,
    state: AppState,
) -> std::result::Result<(), String> {
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket))
        .await
        .map_err(|_| "the handshake timed out".to_owned())?
        .map_err(|error| format!("handshake: {error}"))?;
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("no client certificate")?;
    let fingerprint = hex::encode_upper(ykt_crypto::p256::sha256(certificate.as_ref()));
    let client = state
        .kms
        .client_by_fingerprint(&fingerprint)
        .await
        .map_err(|error| error.to_string())?;
    let caller = match client {
        Some(client)
            if client.status == "active" && client.not_after > ykt_kms::store::now_ms() =>
        {
            Caller::from(client)
        }
        Some(client) => return Err(format!("client {} is {}", client.name, client.status)),
        None => return Err(format!("no client has the certificate {fingerprint}")),
    };
    let service = hyper_util::service::TowerToHyperService::new(routes(state, caller));
    hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
        .await
        .map_err(|error| format!("http: {error}"))
}
