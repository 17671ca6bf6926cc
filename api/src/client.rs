//! The Rust client of the API: HTTPS to `https://HOST:PORT` with the client's certificate,
//! TLS 1.3 only, the server verified against the KMS's CA for HOST (a DNS name or an IP
//! address), JSON in and out.
//!
//! Requests go over kept-alive connections from a small pool ([`KmsClient::new`]), or each
//! over a fresh TCP and TLS connection with a full handshake ([`KmsClient::with_new_connections`],
//! the worst case a server sees from many clients, for benchmarks). TCP_NODELAY is set on
//! every connection. A POST carries an `Idempotency-Key` header; when a connection breaks
//! before the answer arrives, the request is sent again, at most [`ATTEMPTS`] times in all,
//! with the same key, so the server can tell a repeat from a new request. An answer with an
//! error status becomes [`ApiError::Refused`] with the server's code and message and is never
//! repeated.
//!
//! Transport: tokio-rustls (with the workspace's rustls and aws-lc-rs) and hyper's HTTP/1.1
//! client connection, the crates the server already runs on, with a pool of its own of a few
//! lines. hyper-util's pooled client with hyper-rustls would add a connector stack, a second
//! rustls binding and a general pool (keyed per host, with a background reaper) for what is
//! one server here.
//!
//! The client's private key goes into the TLS configuration and nowhere else: the types here
//! print no key in `Debug`, and errors name files and requests, never PEM text.

use crate::error::{ApiError, Result};
use crate::server::IDEMPOTENCY_KEY;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

/// How many times a request is sent at most when connections break under it.
pub const ATTEMPTS: usize = 3;

/// How long one attempt may take, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most idle connections a pool keeps.
const MAX_IDLE: usize = 256;

/// How much of a non-JSON error body a refusal quotes.
const QUOTED_BODY: usize = 200;

/// A client's TLS identity: its certificate chain and private key, and the CA the server's
/// certificate must chain to. `Debug` shows the certificate's fingerprint only.
#[derive(Clone)]
pub struct ClientIdentity {
    config: Arc<ClientConfig>,
    fingerprint: String,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificate_sha256", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn tls(message: impl Into<String>) -> ApiError {
    ApiError::Tls(message.into())
}

impl ClientIdentity {
    /// From PEM text: the client's certificate (and any intermediates), its private key
    /// (PKCS#8, SEC1 or PKCS#1) and the CA certificate(s) that issued the server's.
    pub fn from_pem(certificate_pem: &str, key_pem: &str, ca_pem: &str) -> Result<Self> {
        let chain = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| tls(format!("the client certificate: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(tls(
                "the client certificate: no CERTIFICATE in the PEM text",
            ));
        };
        let fingerprint = hex::encode_upper(ykt_crypto::p256::sha256(leaf.as_ref()));
        // The PEM error would quote the key's text: name the problem only.
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|_| tls("the client key is not a PEM private key"))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let ca = ca.map_err(|e| tls(format!("the CA certificate: {e}")))?;
            roots
                .add(ca)
                .map_err(|e| tls(format!("the CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(tls("the CA certificate: no CERTIFICATE in the PEM text"));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls(format!("the client certificate and key: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            fingerprint,
        })
    }

    /// From the PEM files `ykt client enroll` writes: `NAME.pem`, `NAME.key`, `ca.pem`.
    pub fn from_files(certificate: &Path, key: &Path, ca: &Path) -> Result<Self> {
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map(Zeroizing::new)
                .map_err(|source| ApiError::Io {
                    context: format!("cannot read {}", path.display()),
                    source,
                })
        };
        Self::from_pem(&read(certificate)?, &read(key)?, &read(ca)?)
    }
}

/// Where the server is: what the connection, the certificate check and the `Host` header use.
#[derive(Clone)]
struct Endpoint {
    base_url: String,
    host: String,
    port: u16,
    authority: HeaderValue,
    server_name: ServerName<'static>,
}

impl Endpoint {
    fn parse(base_url: &str) -> Result<Self> {
        let bad = |reason: &str| ApiError::Url(format!("{base_url:?}: {reason}"));
        let uri: Uri = base_url
            .parse()
            .map_err(|_| bad("not a URL of the form https://HOST:PORT"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the scheme must be https"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("a base URL has no path"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        // An IPv6 address stands in brackets in the URL, not in the name checked or dialled.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let server_name =
            ServerName::try_from(host.clone()).map_err(|_| bad("the host is not a valid name"))?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            port: authority.port_u16().unwrap_or(443),
            authority: HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?,
            host,
            server_name,
        })
    }
}

/// Why one attempt failed, and whether a broken connection caused it (then the request may be
/// sent again).
struct Failure {
    reason: String,
    broken: bool,
}

impl Failure {
    /// `error` with its causes, on one line.
    fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut reason = error.to_string();
        let mut broken = false;
        let mut cause = Some(error);
        while let Some(current) = cause {
            if let Some(hyper) = current.downcast_ref::<hyper::Error>() {
                broken |= hyper.is_canceled() || hyper.is_incomplete_message();
            }
            if let Some(io) = current.downcast_ref::<std::io::Error>() {
                broken |= matches!(
                    io.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                        | ErrorKind::UnexpectedEof
                );
            }
            cause = current.source();
            if let Some(next) = cause {
                let text = next.to_string();
                if !reason.ends_with(&text) {
                    reason = format!("{reason}: {text}");
                }
            }
        }
        Self { reason, broken }
    }
}

/// A connection's request half, ready for the next request.
type Connection = SendRequest<Full<Bytes>>;

/// A client of the API. Cloning is cheap: clones share the connection pool.
#[derive(Clone)]
pub struct KmsClient {
    endpoint: Endpoint,
    config: Arc<ClientConfig>,
    connector: TlsConnector,
    /// Idle kept-alive connections; `None` when every request gets a new connection.
    idle: Option<Arc<Mutex<Vec<Connection>>>>,
}

impl fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsClient")
            .field("base_url", &self.endpoint.base_url)
            .field("keep_alive", &self.idle.is_some())
            .finish_non_exhaustive()
    }
}

impl KmsClient {
    /// A client of the server at `base_url` (`https://HOST:PORT`) with `identity`, keeping
    /// connections alive between requests.
    pub fn new(base_url: &str, identity: &ClientIdentity) -> Result<Self> {
        Ok(Self {
            endpoint: Endpoint::parse(base_url)?,
            config: identity.config.clone(),
            connector: TlsConnector::from(identity.config.clone()),
            idle: Some(Arc::default()),
        })
    }

    /// The same client, but every request on a fresh TCP and TLS connection with a full
    /// handshake (no session resumption), closed after the answer.
    pub fn with_new_connections(self) -> Self {
        let mut config = (*self.config).clone();
        config.resumption = rustls::client::Resumption::disabled();
        let config = Arc::new(config);
        Self {
            connector: TlsConnector::from(config.clone()),
            config,
            idle: None,
            endpoint: self.endpoint,
        }
    }

    /// `GET path` (e.g. `/v1/whoami`), the JSON answer as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with `body` as JSON and a fresh random idempotency key, the JSON answer
    /// as `T`.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let key = hex::encode(ykt_crypto::random::bytes::<16>()?);
        self.post_with_key(path, body, &key).await
    }

    /// `POST path` with `body` as JSON and `idempotency_key` (sent again unchanged when a
    /// broken connection makes the client repeat the request), the JSON answer as `T`.
    pub async fn post_with_key<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        idempotency_key: &str,
    ) -> Result<T> {
        let key = HeaderValue::from_str(idempotency_key)
            .map_err(|_| ApiError::Url("an idempotency key must be a valid header value".into()))?;
        let bytes = serde_json::to_vec(body).map_err(|source| ApiError::Json {
            context: format!("POST {}{path}", self.endpoint.base_url),
            source,
        })?;
        self.call(Method::POST, path, Some((Bytes::from(bytes), key)))
            .await
    }

    /// Sends the request until it is answered, it fails other than by a broken connection,
    /// or [`ATTEMPTS`] are spent.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, HeaderValue)>,
    ) -> Result<T> {
        let context = format!("{method} {}{path}", self.endpoint.base_url);
        let uri: Uri = path
            .parse()
            .ok()
            .filter(|uri: &Uri| uri.scheme().is_none() && path.starts_with('/'))
            .ok_or_else(|| ApiError::Url(format!("{path:?} is not a request path")))?;
        let mut attempt = 1;
        loop {
            let mut request = Request::builder()
                .method(method.clone())
                .uri(uri.clone())
                .header(HOST, self.endpoint.authority.clone())
                .header(ACCEPT, "application/json");
            let content = match &body {
                Some((bytes, key)) => {
                    request = request
                        .header(CONTENT_TYPE, "application/json")
                        .header(IDEMPOTENCY_KEY, key.clone());
                    bytes.clone()
                }
                None => Bytes::new(),
            };
            let request = request
                .body(Full::new(content))
                .map_err(|e| ApiError::Url(format!("{context}: {e}")))?;
            let failure = match tokio::time::timeout(ATTEMPT_TIMEOUT, self.exchange(request)).await
            {
                Ok(Ok((status, answer))) => return answer_of(status, &answer, context),
                Ok(Err(failure)) => failure,
                Err(_) => Failure {
                    reason: format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
                    broken: false,
                },
            };
            if !failure.broken || attempt == ATTEMPTS {
                return Err(ApiError::Transport {
                    context,
                    reason: failure.reason,
                });
            }
            tracing::debug!(%context, reason = %failure.reason, attempt, "connection broken; sending again");
            attempt += 1;
        }
    }

    /// One attempt: a connection, the request, the whole answer; the connection goes back to
    /// the pool when it can carry another request.
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> std::result::Result<(StatusCode, Bytes), Failure> {
        let mut connection = self.connection().await?;
        let response = connection
            .send_request(request)
            .await
            .map_err(|e| Failure::of(&e))?;
        let status = response.status();
        let answer = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::of(&e))?
            .to_bytes();
        if let Some(idle) = &self.idle
            && !connection.is_closed()
        {
            let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(connection);
            }
        }
        Ok((status, answer))
    }

    /// An idle connection still open, else a new one.
    async fn connection(&self) -> std::result::Result<Connection, Failure> {
        while let Some(mut connection) = self.take_idle() {
            if connection.ready().await.is_ok() {
                return Ok(connection);
            }
        }
        self.connect().await
    }

    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self
            .idle
            .as_ref()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::iter::from_fn(|| idle.pop()).find(|connection| !connection.is_closed())
    }

    /// A new TCP connection (TCP_NODELAY), the TLS handshake, HTTP/1.1 on it; the connection
    /// is driven by a task of its own until its request half is dropped or the server closes it.
    async fn connect(&self) -> std::result::Result<Connection, Failure> {
        let endpoint = &self.endpoint;
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| Failure::of(&e))?;
        tcp.set_nodelay(true).map_err(|e| Failure::of(&e))?;
        let tls = self
            .connector
            .connect(endpoint.server_name.clone(), tcp)
            .await
            .map_err(|e| Failure::of(&e))?;
        let (connection, driver) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| Failure::of(&e))?;
        tokio::spawn(async move {
            if let Err(error) = driver.await {
                tracing::debug!(%error, "API connection ended");
            }
        });
        Ok(connection)
    }
}

/// A 2xx answer as `T`; any other as [`ApiError::Refused`].
fn answer_of<T: DeserializeOwned>(status: StatusCode, body: &[u8], context: String) -> Result<T> {
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|source| ApiError::Json { context, source });
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
        message: String,
    }
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error, message }) => (error, message),
        Err(_) => (
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
                .replace(' ', "-"),
            String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(QUOTED_BODY)
                .collect(),
        ),
    };
    Err(ApiError::Refused {
        status: status.as_u16(),
        code,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, body: &str) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap();
        answer_of::<serde_json::Value>(status, body.as_bytes(), "POST /".into()).unwrap_err()
    }

    #[test]
    fn error_answers_become_refusals_with_the_servers_code_or_the_reason_phrase() {
        let json = refusal(
            409,
            r#"{"error":"key-state","message":"the key is suspended"}"#,
        );
        assert!(
            matches!(&json, ApiError::Refused { status: 409, code, message }
                if code == "key-state" && message == "the key is suspended"),
            "{json:?}"
        );
        let text = refusal(422, &format!("Failed to deserialize {}\n", "x".repeat(500)));
        match text {
            ApiError::Refused {
                status: 422,
                code,
                message,
            } => {
                assert_eq!(code, "unprocessable-entity");
                assert!(message.starts_with("Failed to deserialize x"));
                assert_eq!(message.chars().count(), QUOTED_BODY);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            refusal(404, ""),
            ApiError::Refused { status: 404, code, message } if code == "not-found" && message.is_empty()
        ));
    }

    #[test]
    fn a_success_is_parsed_as_the_type_asked() {
        let value: serde_json::Value =
            answer_of(StatusCode::OK, br#"{"valid":true}"#, "GET /".into()).unwrap();
        assert_eq!(value["valid"], true);
        let error = answer_of::<u32>(StatusCode::OK, b"{}", "GET /v1/x".into()).unwrap_err();
        assert!(matches!(error, ApiError::Json { context, .. } if context == "GET /v1/x"));
    }

    #[test]
    fn base_urls_are_https_with_a_host_and_no_path() {
        let endpoint = Endpoint::parse("https://127.0.0.1:8443/").unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("127.0.0.1", 8443));
        assert_eq!(endpoint.authority, "127.0.0.1:8443");
        assert_eq!(endpoint.base_url, "https://127.0.0.1:8443");
        let v6 = Endpoint::parse("https://[::1]:9000").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9000));
        assert_eq!(Endpoint::parse("https://kms.example").unwrap().port, 443);
        for bad in [
            "http://127.0.0.1:80",
            "https://h:1/v1",
            "127.0.0.1:80",
            "https://",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(ApiError::Url(_))),
                "{bad}"
            );
        }
    }
}
