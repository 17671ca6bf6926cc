//! The HTTPS server: accepts TCP connections (TCP_NODELAY set), completes the TLS 1.3
//! handshake with a client certificate, finds the client by its certificate's SHA-256
//! fingerprint (registered, active, not expired) and serves the API's routes to it over
//! HTTP/1.1, with a body size limit and a structured access log (client, method, path,
//! status, time; never a body). The server credential is renewed in the background well
//! before it expires, and the revocation list the handshake checks is refreshed every
//! minute. Shutdown stops accepting and lets the connections in flight finish.

use crate::cards;
use crate::error::{ApiError, Result};
use crate::tls::{Credentials, server_config};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use axum::routing::{get, post};
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use ykt_kms::Kms;
use ykt_kms::KmsError;
use ykt_kms::audit::AuditRecord;
use ykt_kms::ca::{ApiClient, SERVER_VALIDITY_MS};
use ykt_kms::idempotency::Claim;

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

/// The error code of a refusal, kept on the response for the call's audit record.
#[derive(Debug, Clone, Copy)]
struct RefusalCode(&'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        response.extensions_mut().insert(RefusalCode(self.code));
        response
    }
}

/// A JSON request body; a body that is not the expected JSON is refused in the API's
/// error format: 400 `malformed` (not JSON), 422 `invalid` (JSON of the wrong shape), 415
/// `unsupported-media-type` (not `application/json`), 413 `too-large`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request(request: Request, state: &S) -> Result<Self, Refusal> {
        use axum::extract::rejection::JsonRejection;
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(body)) => Ok(Self(body)),
            Err(rejection) => {
                let (status, code) = match &rejection {
                    JsonRejection::JsonDataError(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
                    }
                    JsonRejection::MissingJsonContentType(_) => {
                        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
                    }
                    _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                        (StatusCode::PAYLOAD_TOO_LARGE, "too-large")
                    }
                    _ => (StatusCode::BAD_REQUEST, "malformed"),
                };
                Err(Refusal::new(status, code, rejection.body_text()))
            }
        }
    }
}

/// The refusal answering a KMS error: its kind decides the status; failures inside the KMS
/// are not described to the caller.
pub fn refused(error: KmsError) -> Refusal {
    let status = match &error {
        KmsError::NotFound { .. } => (StatusCode::NOT_FOUND, "not-found"),
        KmsError::NotAuthorised(_) => (StatusCode::FORBIDDEN, "forbidden"),
        KmsError::InvalidInput { .. } => (StatusCode::BAD_REQUEST, "invalid"),
        KmsError::AlreadyExists { .. } => (StatusCode::CONFLICT, "exists"),
        KmsError::KeyState { .. } => (StatusCode::CONFLICT, "key-state"),
        _ => {
            tracing::error!(%error, "a KMS act failed");
            return Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the KMS could not complete the request",
            );
        }
    };
    Refusal::new(status.0, status.1, error.to_string())
}

/// Marks an answer whose act the KMS audited itself (a signature, a card-key act, a batch):
/// every other call, refusals included, gets an `api.call` audit record from the server.
#[derive(Debug, Clone, Copy)]
pub struct Audited;

impl IntoResponseParts for Audited {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Self::Error> {
        parts.extensions_mut().insert(self);
        Ok(parts)
    }
}

/// The per-client rate limit: a token bucket of `burst` requests refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell.
    pub burst: f64,
}

impl Default for RateLimit {
    /// 2,000 requests per second, bursts of 4,000.
    fn default() -> Self {
        Self {
            per_second: 2000.0,
            burst: 4000.0,
        }
    }
}

/// The token buckets of the clients, shared by all their connections.
#[derive(Debug, Default)]
struct Buckets {
    clients: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    /// Takes one request from `client`'s bucket, or says how long until one is there.
    fn take(&self, client: &str, limit: RateLimit) -> Result<(), Duration> {
        let now = Instant::now();
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = clients
            .entry(client.to_owned())
            .or_insert((limit.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * limit.per_second).min(limit.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / limit.per_second))
        }
    }
}

/// The state every handler sees.
#[derive(Clone)]
pub struct AppState {
    /// The KMS.
    pub kms: Arc<Kms>,
    buckets: Arc<Buckets>,
    rate_limit: RateLimit,
}

async fn whoami(axum::Extension(caller): axum::Extension<Caller>) -> axum::Json<Caller> {
    axum::Json(caller)
}

/// The header naming a state-changing call's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The header set on an answer replayed for a repeated idempotency key.
pub const IDEMPOTENT_REPLAY: &str = "idempotent-replayed";

/// The per-client rate limit.
async fn rate_limited(
    state: AppState,
    caller: Arc<Caller>,
    request: Request,
    next: Next,
) -> Response {
    match state.buckets.take(&caller.name, state.rate_limit) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let mut response = Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!("client {} is over its rate limit", caller.name),
            )
            .into_response();
            let seconds = wait.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

/// One audit record per call the KMS did not audit itself: the caller, the route, the
/// status (never a body). A call whose record cannot be committed fails.
async fn audited(state: AppState, caller: Arc<Caller>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_owned());
    let response = next.run(request).await;
    if response.extensions().get::<Audited>().is_some() {
        return response;
    }
    let status = response.status();
    let result = match response.extensions().get::<RefusalCode>() {
        _ if status.is_success() => "ok".to_owned(),
        Some(RefusalCode(code)) => format!("refused: {code}"),
        None => format!("refused: {}", status.as_u16()),
    };
    let replayed = response.headers().contains_key(IDEMPOTENT_REPLAY);
    let record = AuditRecord {
        actors: vec![format!("client:{}", caller.name)],
        act: "api.call".into(),
        object: format!("{method} {path}"),
        result,
        detail: serde_json::json!({
            "route": route,
            "status": status.as_u16(),
            "replayed": replayed,
        }),
    };
    match state.kms.record_api_act(record).await {
        Ok(()) => response,
        Err(error) => refused(error).into_response(),
    }
}

/// The routes whose calls change the KMS's state, and so honour idempotency keys. The others
/// (signatures, verifications, clearing) change nothing a retry could double, and skip the
/// store's round trips.
const STATE_CHANGING: &[&str] = &[
    "/v1/tokens",
    "/v1/batches",
    "/v1/psam-batches",
    "/v1/cards/{serial}/personalisation",
    "/v1/cards/{serial}/issued",
    "/v1/cards/{serial}/external-auth",
    "/v1/cards/{serial}/write-key",
    "/v1/cards/{serial}/certificate",
    "/v1/loads/authorize",
];

/// Idempotency keys on state-changing calls (`POST` with an `Idempotency-Key` header to a
/// route of [`STATE_CHANGING`]): the
/// first call with a key runs and its answer is kept; the same key and request again gets
/// that answer (marked `Idempotent-Replayed: true`) without acting again; the same key with
/// another request is refused with 422, and while the first call runs with 409.
async fn idempotent(
    state: AppState,
    caller: Arc<Caller>,
    request: Request,
    next: Next,
) -> Response {
    let changes_state = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|route| STATE_CHANGING.contains(&route.as_str()));
    if request.method() != Method::POST || !changes_state {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let key = match key.to_str() {
        Ok(key)
            if (8..=128).contains(&key.len())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
        {
            key.to_owned()
        }
        _ => {
            return Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                "an idempotency key is 8 to 128 letters, digits or - _ . :",
            )
            .into_response();
        }
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("a request body is at most {MAX_BODY} bytes"),
        )
        .into_response();
    };
    let mut digest_input = format!("{} {}\n", parts.method, parts.uri).into_bytes();
    digest_input.extend_from_slice(&body);
    let digest = hex::encode(ykt_crypto::p256::sha256(&digest_input));
    let kms = &state.kms;
    let claim = match kms.claim_idempotency_key(&caller.name, &key, &digest).await {
        Ok(claim) => claim,
        Err(error) => return refused(error).into_response(),
    };
    match claim {
        Claim::Fresh => {}
        Claim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            return (
                status,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (HeaderName::from_static(IDEMPOTENT_REPLAY), "true"),
                ],
                body,
            )
                .into_response();
        }
        Claim::Mismatch => {
            return Refusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                format!("idempotency key {key} was used with another request"),
            )
            .into_response();
        }
        Claim::InFlight => {
            return Refusal::new(
                StatusCode::CONFLICT,
                "in-flight",
                format!("the call with idempotency key {key} has not finished"),
            )
            .into_response();
        }
    }
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::from(body)))
        .await;
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let kept = match std::str::from_utf8(&body) {
        Ok(text) if !parts.status.is_server_error() => {
            kms.complete_idempotency_key(&caller.name, &key, parts.status.as_u16(), text)
                .await
        }
        _ => kms.release_idempotency_key(&caller.name, &key).await,
    };
    if let Err(error) = kept {
        tracing::error!(%error, client = %caller.name, "an idempotency key could not be kept");
    }
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The structured access log: client, method, path, status, time; never a body.
async fn access_log(caller: Arc<Caller>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    tracing::info!(
        client = %caller.name,
        %method,
        %path,
        status = response.status().as_u16(),
        us = started.elapsed().as_micros() as u64,
        "api request"
    );
    response
}

/// Wraps `layer(state, caller, request, next)` as axum middleware for one caller.
macro_rules! with_caller {
    ($layer:path, $state:expr, $caller:expr) => {{
        let (state, caller) = ($state.clone(), $caller.clone());
        axum::middleware::from_fn(move |request: Request, next: Next| {
            $layer(state.clone(), caller.clone(), request, next)
        })
    }};
}

/// The routes, for one authenticated caller. Layers, outermost first: access log, rate
/// limit, audit, idempotency, body limit.
fn routes(state: AppState, caller: Caller) -> Router {
    let caller = Arc::new(caller);
    let log = caller.clone();
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/keys", get(crate::sign::keys))
        .route("/v1/keys/{id}", get(crate::sign::key))
        .route("/.well-known/jwks.json", get(crate::sign::jwks))
        .route("/v1/keys/{id}/sign", post(crate::sign::sign))
        .route("/v1/keys/{id}/verify", post(crate::sign::verify))
        .route("/v1/tac/verify", post(crate::clearing::verify))
        .route("/v1/tokens", post(crate::tokens::mint))
        .route("/v1/tokens/verify", post(crate::tokens::verify))
        .route("/v1/schools/{code}", get(cards::school))
        .route(
            "/v1/schools/{code}/holders/{number}/{card_type}",
            get(cards::holder_card),
        )
        .route("/v1/batches", post(cards::create_card_batch))
        .route("/v1/psam-batches", post(cards::create_psam_batch))
        .route("/v1/batches/{id}", get(cards::batch))
        .route("/v1/batches/{id}/cards", get(cards::batch_cards))
        .route("/v1/cards/{serial}", get(cards::card))
        .route("/v1/cards/{serial}/personalisation", post(cards::start))
        .route("/v1/cards/{serial}/issued", post(cards::finish))
        .route(
            "/v1/cards/{serial}/external-auth",
            post(cards::external_auth),
        )
        .route("/v1/cards/{serial}/write-key", post(cards::write_key))
        .route("/v1/cards/{serial}/certificate", post(cards::certificate))
        .route(
            "/v1/cards/{serial}/certificate/verify",
            post(cards::verify_certificate),
        )
        .route("/v1/loads/authorize", post(cards::authorize_load))
        .route("/v1/loads/verify-tac", post(cards::verify_load_tac))
        .with_state(state.clone())
        .layer(axum::Extension((*caller).clone()))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(with_caller!(idempotent, state, caller))
        .layer(with_caller!(audited, state, caller))
        .layer(with_caller!(rate_limited, state, caller))
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| access_log(log.clone(), request, next),
        ))
}

/// The API's OpenAPI 3.1 description, as kept in the repository (`api/openapi.json`).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /v1/openapi.json`.
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The API server, bound and ready to serve.
pub struct Server {
    kms: Arc<Kms>,
    listener: TcpListener,
    hosts: Vec<String>,
    credentials: Arc<Credentials>,
    config: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    not_after: i64,
    rate_limit: RateLimit,
    renewal: Renewal,
}

/// When the server credential is renewed: checked every `every`, renewed when less than
/// `within_ms` of its life is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// How often the credential is checked and the revocation list fetched again.
    pub every: Duration,
    /// Renew when less than this much of the credential's life is left (ms).
    pub within_ms: i64,
}

impl Default for Renewal {
    /// Every minute; at half the credential's life.
    fn default() -> Self {
        Self {
            every: REFRESH,
            within_ms: SERVER_VALIDITY_MS / 2,
        }
    }
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
            rate_limit: RateLimit::default(),
            renewal: Renewal::default(),
        })
    }

    /// Renews the server credential by `renewal` instead of [`Renewal::default`].
    pub fn with_renewal(mut self, renewal: Renewal) -> Self {
        self.renewal = renewal;
        self
    }

    /// Serves with `limit` per client instead of [`RateLimit::default`].
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = limit;
        self
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
            rate_limit,
            renewal,
        } = self;
        let state = AppState {
            kms: kms.clone(),
            buckets: Arc::default(),
            rate_limit,
        };
        let mut connections = JoinSet::new();
        let mut refresh = tokio::time::interval(renewal.every);
        refresh.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = refresh.tick() => {
                    if let Err(error) =
                        refresh_tls(&kms, &hosts, &credentials, &config, &mut not_after, renewal.within_ms).await
                    {
                        tracing::error!(%error, "the TLS credential or revocation list could not be refreshed");
                    }
                    if let Err(error) = kms.purge_idempotency_keys().await {
                        tracing::error!(%error, "old idempotency keys could not be purged");
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

/// Renews the server credential when less than `renew_within_ms` of its life is left; rebuilds the TLS
/// configuration with the current revocation list.
async fn refresh_tls(
    kms: &Kms,
    hosts: &[String],
    credentials: &Arc<Credentials>,
    config: &RwLock<Arc<rustls::ServerConfig>>,
    not_after: &mut i64,
    renew_within_ms: i64,
) -> Result<()> {
    let hsm = kms.hsm_handle();
    if *not_after - ykt_kms::store::now_ms() < renew_within_ms {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// `(method, path)` of every `.route(PATH, METHOD(...))` in this file.
    fn routes_in_source() -> BTreeSet<(String, String)> {
        let source = include_str!("server.rs");
        let (code, _) = source.split_once("#[cfg(test)]").unwrap();
        let mut routes = BTreeSet::new();
        for part in code.split(".route(").skip(1) {
            let Some(rest) = part.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some((path, rest)) = rest.split_once('"') else {
                continue;
            };
            let rest = rest.trim_start().trim_start_matches(',').trim_start();
            let method = rest.split('(').next().unwrap_or_default().trim();
            routes.insert((method.to_owned(), path.to_owned()));
        }
        routes
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_served_routes() {
        let document: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let mut described = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                described.insert((method.clone(), path.clone()));
            }
        }
        let served = routes_in_source();
        assert!(served.len() > 20, "{served:?}");
        assert_eq!(described, served);
        // The idempotency key is described exactly where the server honours it.
        let idempotent: BTreeSet<&str> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, item)| {
                item["post"]["parameters"]
                    .as_array()
                    .is_some_and(|parameters| {
                        parameters
                            .iter()
                            .any(|p| p["$ref"] == "#/components/parameters/IdempotencyKey")
                    })
            })
            .map(|(path, _)| path.as_str())
            .collect();
        assert_eq!(idempotent, super::STATE_CHANGING.iter().copied().collect());
        // Every schema reference resolves.
        let text = super::OPENAPI;
        for reference in text.split("\"$ref\": \"#/components/").skip(1) {
            let name = reference.split('"').next().unwrap();
            let (kind, name) = name.split_once('/').unwrap();
            assert!(
                !document["components"][kind][name].is_null(),
                "unresolved {kind}/{name}"
            );
        }
    }
}
