//! The host protocol server: one thread per connection over an in-process [`Hsm`].

use super::auth::{self, ClientRegistry};
use super::codec::{Frame, read_frame, write_frame};
use super::protocol::{
    AUTH_LEN, CheckValue, MAX_FRAME, ProtocolError, Request, Response, Status, TacRecord,
    decode_request, encode_error, encode_response,
};
use crate::engine::{Hsm, TacCheck, WriteKeyRequest};
use crate::error::HsmError;
use aws_lc_rs::hmac;
use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Per-connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sustained requests per second (token bucket refill); a request beyond it is answered
    /// `RateLimited` and the connection stays open.
    pub requests_per_second: u32,
    /// Token bucket size: requests allowed in a burst.
    pub burst: u32,
    /// Requests a connection may make in its life; the one beyond is answered `RateLimited`
    /// and the connection is closed.
    pub max_requests: u64,
    /// A connection silent for this long (or stalled inside a frame) is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests_per_second: 10_000,
            burst: 1_000,
            max_requests: u64::MAX,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

struct Shared {
    hsm: Arc<Hsm>,
    clients: ClientRegistry,
    limits: Limits,
    stop: AtomicBool,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running host protocol server. [`HostServer::stop`] (or drop) stops accepting, lets
/// every connection finish the request it is serving, closes them and joins their threads.
pub struct HostServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HostServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl HostServer {
    /// Binds `addr` and serves `hsm` to the registered `clients` with default [`Limits`].
    pub fn bind(
        addr: impl ToSocketAddrs,
        hsm: Arc<Hsm>,
        clients: ClientRegistry,
    ) -> io::Result<Self> {
        Self::bind_with_limits(addr, hsm, clients, Limits::default())
    }

    /// Binds `addr` and serves `hsm` to `clients` with `limits`.
    pub fn bind_with_limits(
        addr: impl ToSocketAddrs,
        hsm: Arc<Hsm>,
        clients: ClientRegistry,
        limits: Limits,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            hsm,
            clients,
            limits,
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("ykt-hsm-host-accept".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Self {
            local_addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the server: no new connection is accepted, requests being served complete and
    /// their responses are sent, then every connection is closed. Idempotent.
    pub fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut wake = self.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        // Wakes the blocking accept; if it fails the listener is already gone.
        drop(TcpStream::connect_timeout(&wake, Duration::from_secs(1)));
        // A panicked acceptor has nothing left to clean.
        drop(acceptor.join());
        for stream in lock(&self.shared.connections).values() {
            // Blocked reads return end of stream; writes of in-flight responses still go out.
            drop(stream.shutdown(Shutdown::Read));
        }
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for handle in threads {
            drop(handle.join());
        }
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let Ok(registered) = stream.try_clone() else {
            continue;
        };
        lock(&shared.connections).insert(id, registered);
        let worker = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name(format!("ykt-hsm-host-{id}"))
            .spawn(move || {
                // Every I/O failure ends the connection; there is no one to report it to.
                drop(serve(stream, &worker));
                lock(&worker.connections).remove(&id);
            });
        let mut threads = lock(&shared.threads);
        threads.retain(|t| !t.is_finished());
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(_) => {
                lock(&shared.connections).remove(&id);
            }
        }
    }
}

/// The authentication state of a connection.
enum AuthState {
    /// Nothing received yet.
    Fresh,
    /// HELLO answered; waiting for the client's proof.
    Challenged(Box<Challenge>),
    /// The client proved its secret.
    Authenticated,
}

/// What the server expects the client to prove.
struct Challenge {
    name: String,
    key: hmac::Key,
    nonce: [u8; AUTH_LEN],
    challenge: [u8; AUTH_LEN],
}

/// A token bucket.
struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn new(limits: &Limits) -> Self {
        Self {
            tokens: f64::from(limits.burst),
            last: Instant::now(),
            rate: f64::from(limits.requests_per_second),
            burst: f64::from(limits.burst),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What to do after answering a frame.
enum After {
    Continue,
    Close,
}

fn serve(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(shared.limits.idle_timeout))?;
    let mut state = AuthState::Fresh;
    let mut bucket = Bucket::new(&shared.limits);
    let mut served: u64 = 0;
    loop {
        let body = match read_frame(&mut stream, MAX_FRAME)? {
            Frame::Closed => return Ok(()),
            Frame::TooLarge(len) => {
                let error = ProtocolError::FrameTooLarge(len);
                write_frame(
                    &mut stream,
                    &encode_error(0, error.status(), &error.to_string()),
                )?;
                return Ok(());
            }
            Frame::Body(body) => body,
        };
        let (reply, after) = answer(&body, shared, &mut state, &mut bucket, &mut served);
        write_frame(&mut stream, &reply)?;
        if let After::Close = after {
            return Ok(());
        }
    }
}

fn refuse(id: u32, error: &ProtocolError) -> Vec<u8> {
    encode_error(id, error.status(), &error.to_string())
}

fn answer(
    body: &[u8],
    shared: &Shared,
    state: &mut AuthState,
    bucket: &mut Bucket,
    served: &mut u64,
) -> (Vec<u8>, After) {
    let decoded = decode_request(body);
    let id = match &decoded {
        Ok((id, _)) => *id,
        Err(e) => e.id,
    };
    *served += 1;
    if *served > shared.limits.max_requests {
        return (refuse(id, &ProtocolError::RateLimited), After::Close);
    }
    if !bucket.take() {
        return (refuse(id, &ProtocolError::RateLimited), After::Continue);
    }
    let decoded = match decoded {
        Ok((_, decoded)) => decoded,
        Err(e) => return (refuse(id, &e.error), After::Continue),
    };
    let authenticated = matches!(state, AuthState::Authenticated);
    match decoded {
        Ok(Request::Hello { name, nonce }) => match state {
            AuthState::Fresh => hello(id, name, nonce, shared, state),
            _ => (refuse(id, &ProtocolError::Unauthenticated), After::Close),
        },
        Ok(Request::Auth { proof }) => {
            let accepted = match std::mem::replace(state, AuthState::Fresh) {
                AuthState::Challenged(c) => {
                    auth::verify_client_proof(&c.key, &c.nonce, &c.challenge, &c.name, &proof)
                }
                _ => false,
            };
            if accepted {
                *state = AuthState::Authenticated;
                ok(id, &Response::Empty)
            } else {
                (refuse(id, &ProtocolError::Unauthenticated), After::Close)
            }
        }
        _ if !authenticated => (refuse(id, &ProtocolError::Unauthenticated), After::Continue),
        Ok(request) => match execute(&shared.hsm, request) {
            Ok(response) => ok(id, &response),
            Err(error) => (
                encode_error(id, Status::of_hsm_error(&error), &error.to_string()),
                After::Continue,
            ),
        },
        Err(error) => (
            encode_error(id, Status::of_hsm_error(&error), &error.to_string()),
            After::Continue,
        ),
    }
}

fn ok(id: u32, response: &Response) -> (Vec<u8>, After) {
    match encode_response(id, response) {
        Ok(body) => (body, After::Continue),
        Err(e) => (refuse(id, &e), After::Continue),
    }
}

fn hello(
    id: u32,
    name: String,
    nonce: [u8; AUTH_LEN],
    shared: &Shared,
    state: &mut AuthState,
) -> (Vec<u8>, After) {
    let fresh = || ykt_crypto::random::bytes::<AUTH_LEN>();
    let (Ok(challenge), Ok(decoy)) = (fresh(), fresh()) else {
        let error = HsmError::Crypto(ykt_crypto::CryptoError::Random);
        return (
            encode_error(id, Status::of_hsm_error(&error), &error.to_string()),
            After::Close,
        );
    };
    // An unknown name gets a proof under a random key, indistinguishable from a wrong secret.
    let key = shared
        .clients
        .get(&name)
        .cloned()
        .unwrap_or_else(|| auth::key(&decoy));
    let proof = auth::server_proof(&key, &nonce, &challenge, &name);
    *state = AuthState::Challenged(Box::new(Challenge {
        name,
        key,
        nonce,
        challenge,
    }));
    ok(id, &Response::Hello { challenge, proof })
}

fn tac_checks(records: &[TacRecord]) -> Vec<TacCheck<'_>> {
    records
        .iter()
        .map(|r| TacCheck {
            factors: &r.factors,
            purchase: &r.purchase,
            tac: &r.tac,
        })
        .collect()
}

/// Runs one authenticated command on the engine.
fn execute(hsm: &Hsm, request: Request) -> Result<Response, HsmError> {
    Ok(match request {
        Request::Hello { .. } | Request::Auth { .. } => {
            unreachable!("handshake commands are answered before execution")
        }
        Request::Random { len } => {
            let mut out = vec![0; usize::from(len)];
            hsm.random(&mut out)?;
            Response::Bytes(out)
        }
        Request::GenerateKey { attributes } => {
            let generated = hsm.generate_key(attributes)?;
            Response::Generated {
                check: (&generated.check).into(),
                blob: generated.blob,
            }
        }
        Request::Kcv { key, method } => Response::Kcv(CheckValue::from(&hsm.kcv(&key, method)?)),
        Request::Derive {
            master,
            factors,
            attributes,
        } => {
            let (blob, kcv) = hsm.derive_key(&master, &factors, attributes)?;
            Response::Derived {
                blob,
                kcv: (&kcv).into(),
            }
        }
        Request::ExportKey { key, kek } => Response::KeyBlock(hsm.export_key(&key, &kek)?),
        Request::ImportKey { block, kek } => Response::Blob(hsm.import_key(&block, &kek)?),
        Request::DestroyKey { key } => {
            hsm.destroy_key(&key)?;
            Response::Empty
        }
        Request::LoadMac2 {
            master,
            factors,
            load,
            mac1,
        } => Response::Mac2(hsm.load_mac2(&master, &factors, &load, &mac1)?),
        Request::VerifyTac { master, record } => {
            hsm.verify_purchase_tac(&master, &record.factors, &record.purchase, &record.tac)?;
            Response::Empty
        }
        Request::VerifyTacs { master, records } => {
            Response::Verdicts(hsm.verify_purchase_tacs(&master, &tac_checks(&records))?)
        }
        Request::VerifyLoadTac {
            master,
            factors,
            load,
            tac,
        } => {
            hsm.verify_load_tac(&master, &factors, &load, &tac)?;
            Response::Empty
        }
        Request::WriteKey {
            key,
            key_factors,
            under,
            under_factors,
            challenge,
            p1,
            p2,
            record_header,
        } => Response::Bytes(hsm.write_key_command(&WriteKeyRequest {
            key: &key,
            key_factors: &key_factors,
            under: &under,
            under_factors: &under_factors,
            challenge: &challenge,
            p1,
            p2,
            record_header: &record_header,
        })?),
        Request::ExternalAuth {
            master,
            factors,
            challenge,
        } => Response::Bytes(hsm.external_auth_cryptogram(&master, &factors, &challenge)?),
        Request::SignSm2 { key, id, message } => {
            Response::Signature(hsm.sign_sm2(&key, &id, &message)?)
        }
        Request::SignP256 { key, message } => Response::Signature(hsm.sign_p256(&key, &message)?),
        Request::PublicKey { key } => Response::PublicKey(hsm.public_key(&key)?),
        Request::SignSm2Digest { key, e } => Response::Signature(hsm.sign_sm2_digest(&key, &e)?),
        Request::SignP256Digest { key, digest } => {
            Response::Signature(hsm.sign_p256_digest(&key, &digest)?)
        }
    })
}
