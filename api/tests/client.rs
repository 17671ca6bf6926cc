//! The Rust client against a real server on 127.0.0.1: the caller it is served as, P-256
//! signatures checked with `ykt-crypto`, refusals with the server's status and code, clients
//! and servers of another CA refused at the handshake, and, through a relay that counts TCP
//! connections, kept-alive connections reused, an idle connection the network cut replaced,
//! a new connection per request when asked, and a POST whose answer was lost sent again with
//! its idempotency key and acted on once.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::{Served, creds, enroll, identity, kms_with_ca, test_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use ykt_api::ApiError;
use ykt_api::client::{ClientIdentity, KmsClient};
use ykt_crypto::Signature;
use ykt_crypto::p256::P256PublicKey;

use ykt_kms::ca::ClientRole;
use ykt_kms::model::{KeyAlgorithm, Scope};
use ykt_kms::signing::{API_SIGNING_TEMPLATE, TOKEN_SIGNING_TEMPLATE};

/// The answer of a signing call.
#[derive(Debug, Deserialize)]
struct Signed {
    key: String,
    version: u8,
    signatures: Vec<String>,
}

/// The P-256 public key of version 1 of `key_id`, from `GET /v1/keys`.
async fn public_key(client: &KmsClient, key_id: &str) -> P256PublicKey {
    let keys: Value = client.get("/v1/keys").await.unwrap();
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id)
        .unwrap();
    let pem = pem::parse(key["versions"][0]["pem"].as_str().unwrap()).unwrap();
    let spki = pem.contents();
    P256PublicKey::from_sec1(&spki[spki.len() - 65..]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_and_refusals_carry_the_servers_status_and_code() {
    let dir = test_dir("sign");
    let kms = kms_with_ca(&dir).await;
    kms.generate_key(
        &creds(2),
        API_SIGNING_TEMPLATE,
        KeyAlgorithm::P256,
        Scope::Bureau,
        None,
    )
    .await
    .unwrap();
    let platform = enroll(&kms, "platform-1", ClientRole::Platform, &[]).await;
    let auditor = enroll(&kms, "audit-1", ClientRole::Auditor, &[]).await;
    let served = Served::start(kms).await;
    let identity_of_platform = identity(&platform);
    // The key stays out of Debug output.
    let shown = format!("{identity_of_platform:?}");
    let key_line = platform.key_pem.lines().nth(1).unwrap();
    assert!(!shown.contains(key_line), "{shown}");
    let client = KmsClient::new(&served.base(), &identity_of_platform).unwrap();

    let caller: Value = client.get("/v1/whoami").await.unwrap();
    assert_eq!(caller["name"], "platform-1");
    assert_eq!(caller["role"], "platform");

    let public = public_key(&client, "api-signing-p256").await;
    let messages: [&[u8]; 3] = [b"settlement 2026-12-01", b"", &[0xA5; 300]];
    let encoded: Vec<String> = messages.iter().map(|m| STANDARD.encode(m)).collect();
    for encoding in ["der", "raw"] {
        let signed: Signed = client
            .post(
                "/v1/keys/api-signing-p256/sign",
                &json!({ "messages": encoded, "encoding": encoding }),
            )
            .await
            .unwrap();
        assert_eq!(
            (signed.key.as_str(), signed.version),
            ("api-signing-p256", 1)
        );
        assert_eq!(signed.signatures.len(), messages.len());
        for (message, signature) in messages.iter().zip(&signed.signatures) {
            let bytes = STANDARD
                .decode(signature.strip_prefix("ykt:v1:").unwrap())
                .unwrap();
            let signature = match encoding {
                "der" => Signature::from_der(&bytes),
                _ => Signature::from_raw(&bytes),
            }
            .unwrap();
            public.verify(message, &signature).unwrap();
            assert!(public.verify(b"another message", &signature).is_err());
        }
    }
    // The same key on every attempt is accepted like any other.
    let signed: Signed = client
        .post_with_key(
            "/v1/keys/api-signing-p256/sign",
            &json!({ "messages": [encoded[0]] }),
            "0123456789abcdef0123456789abcdef",
        )
        .await
        .unwrap();
    assert_eq!(signed.signatures.len(), 1);

    // An auditor may not sign: 403 with the server's code and message.
    let auditor = KmsClient::new(&served.base(), &identity(&auditor)).unwrap();
    let refusal = auditor
        .post::<_, Value>(
            "/v1/keys/api-signing-p256/sign",
            &json!({ "messages": [encoded[0]] }),
        )
        .await
        .unwrap_err();
    match refusal {
        ApiError::Refused {
            status: 403,
            code,
            message,
        } => {
            assert_eq!(code, "forbidden");
            assert!(message.contains("auditor"), "{message}");
        }
        other => panic!("not a 403 refusal: {other:?}"),
    }
    // An unknown key; a body over the limit.
    let refusal = client
        .post::<_, Value>(
            "/v1/keys/api-signing-nope/sign",
            &json!({ "messages": [encoded[0]] }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refusal, ApiError::Refused { status: 404, code, .. } if code == "not-found"),
        "{refusal:?}"
    );
    let huge = json!({ "messages": [STANDARD.encode(vec![0u8; 1 << 20])] });
    let refusal = client
        .post::<_, Value>("/v1/keys/api-signing-p256/sign", &huge)
        .await
        .unwrap_err();
    assert!(
        matches!(&refusal, ApiError::Refused { status: 413, .. }),
        "{refusal:?}"
    );
    // The connection survives refusals.
    let caller: Value = client.get("/v1/whoami").await.unwrap();
    assert_eq!(caller["name"], "platform-1");
    // Kept-alive connections would hold the server's drain at shutdown.
    drop((client, auditor));
    served.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_or_a_server_of_another_ca_is_refused_at_the_handshake() {
    let dir = test_dir("ca");
    let ours = kms_with_ca(&dir.join("ours")).await;
    let theirs = kms_with_ca(&dir.join("theirs")).await;
    let platform = enroll(&ours, "platform-1", ClientRole::Platform, &[]).await;
    // The same name and role, issued by another CA.
    let stranger = enroll(&theirs, "platform-1", ClientRole::Platform, &[]).await;
    let served = Served::start(ours).await;

    let client = KmsClient::new(&served.base(), &identity(&platform)).unwrap();
    let caller: Value = client.get("/v1/whoami").await.unwrap();
    assert_eq!(caller["name"], "platform-1");
    drop(client);

    // The stranger trusts our server, but the server does not trust its certificate.
    let identity_of_stranger = ClientIdentity::from_pem(
        &stranger.certificate_pem,
        &stranger.key_pem,
        &platform.ca_pem,
    )
    .unwrap();
    let stranger_client = KmsClient::new(&served.base(), &identity_of_stranger).unwrap();
    let error = stranger_client
        .get::<Value>("/v1/whoami")
        .await
        .unwrap_err();
    assert!(matches!(error, ApiError::Transport { .. }), "{error:?}");
    assert!(error.to_string().contains("alert"), "{error}");
    // Our client, trusting only the other CA, refuses the server's certificate.
    let identity_trusting_them = ClientIdentity::from_pem(
        &platform.certificate_pem,
        &platform.key_pem,
        &stranger.ca_pem,
    )
    .unwrap();
    let distrusting = KmsClient::new(&served.base(), &identity_trusting_them).unwrap();
    match distrusting.get::<Value>("/v1/whoami").await.unwrap_err() {
        ApiError::Transport { reason, .. } => {
            assert!(reason.contains("certificate"), "{reason}")
        }
        other => panic!("not a transport error: {other:?}"),
    }
    // A name the server's certificate does not carry.
    let misnamed = KmsClient::new(
        &format!("https://localhost:{}", served.address.port()),
        &identity(&platform),
    )
    .unwrap();
    match misnamed.get::<Value>("/v1/whoami").await.unwrap_err() {
        ApiError::Transport { reason, .. } => {
            assert!(reason.contains("certificate"), "{reason}")
        }
        other => panic!("not a transport error: {other:?}"),
    }
    served.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Forwards TCP connections to a target, counting them; can cut every connection at once,
/// or drop the next answer of the server with its connection.
struct Relay {
    address: SocketAddr,
    accepted: Arc<AtomicUsize>,
    links: Arc<Mutex<JoinSet<()>>>,
    lose_next_answer: Arc<AtomicBool>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let links = Arc::new(Mutex::new(JoinSet::new()));
        let lose_next_answer = Arc::new(AtomicBool::new(false));
        let (counted, spawned, lose) = (accepted.clone(), links.clone(), lose_next_answer.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let lose = lose.clone();
                spawned.lock().unwrap().spawn(async move {
                    let outbound = TcpStream::connect(target).await.unwrap();
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    let upstream = tokio::io::copy(&mut from_client, &mut to_server);
                    let downstream = async {
                        let mut buffer = vec![0; 1 << 16];
                        loop {
                            let n = from_server.read(&mut buffer).await?;
                            if n == 0 || lose.swap(false, Ordering::SeqCst) {
                                return Ok::<_, std::io::Error>(());
                            }
                            to_client.write_all(&buffer[..n]).await?;
                        }
                    };
                    // Either side ending ends the link: both connections close.
                    tokio::select! {
                        _ = upstream => {}
                        _ = downstream => {}
                    }
                });
            }
        });
        Self {
            address,
            accepted,
            links,
            lose_next_answer,
        }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every relayed connection, both ends.
    fn cut(&self) {
        self.links.lock().unwrap().abort_all();
    }

    /// The next bytes the server sends are dropped and their connection closed.
    fn lose_next_answer(&self) {
        self.lose_next_answer.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_kept_alive_replaced_when_cut_and_new_per_request_when_asked() {
    let dir = test_dir("pool");
    let kms = kms_with_ca(&dir).await;
    let platform = enroll(&kms, "platform-1", ClientRole::Platform, &[]).await;
    let served = Served::start(kms).await;
    let relay = Relay::start(served.address).await;
    let client =
        KmsClient::new(&format!("https://{}", relay.address), &identity(&platform)).unwrap();
    let whoami = |client: KmsClient| async move {
        let caller: Value = client.get("/v1/whoami").await.unwrap();
        assert_eq!(caller["name"], "platform-1");
    };

    for _ in 0..5 {
        whoami(client.clone()).await;
    }
    assert_eq!(relay.connections(), 1, "one kept-alive connection");
    // The network drops the idle connection: the next request goes over a new one.
    relay.cut();
    whoami(client.clone()).await;
    assert_eq!(relay.connections(), 2);
    whoami(client.clone()).await;
    assert_eq!(relay.connections(), 2);

    let fresh = client.clone().with_new_connections();
    for _ in 0..4 {
        whoami(fresh.clone()).await;
    }
    assert_eq!(relay.connections(), 6, "one connection per request");
    // A POST too, answered on its own connection.
    let refusal = fresh
        .post::<_, Value>("/v1/tac/verify", &json!({ "records": [] }))
        .await
        .unwrap_err();
    assert!(
        matches!(refusal, ApiError::Refused { status: 400, .. }),
        "{refusal:?}"
    );
    assert_eq!(relay.connections(), 7);
    // The pooled client still has its connection.
    whoami(client.clone()).await;
    assert_eq!(relay.connections(), 7);
    drop((client, fresh));
    served.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_answer_is_lost_is_sent_again_with_its_key_and_acts_once() {
    let dir = test_dir("retry");
    let kms = kms_with_ca(&dir).await;
    kms.generate_key(
        &creds(2),
        TOKEN_SIGNING_TEMPLATE,
        KeyAlgorithm::P256,
        Scope::Bureau,
        None,
    )
    .await
    .unwrap();
    kms.add_region(&creds(1)[0], "330106", "Xihu")
        .await
        .unwrap();
    kms.add_school(&creds(1)[0], "2133010601", "330106", "School")
        .await
        .unwrap();
    let platform = enroll(&kms, "platform-1", ClientRole::Platform, &[]).await;
    let kms = Arc::new(kms);
    let served = Served::start(kms.clone()).await;
    let relay = Relay::start(served.address).await;
    let client =
        KmsClient::new(&format!("https://{}", relay.address), &identity(&platform)).unwrap();
    let mints = || async {
        kms.audit_entries(0)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.act == "api.token.mint")
            .count()
    };
    let _: Value = client.get("/v1/whoami").await.unwrap();
    assert_eq!(relay.connections(), 1);

    // The server mints and answers; the answer is lost with the connection. The client sends
    // the request again, with the same key, on a new connection, and gets the first answer.
    relay.lose_next_answer();
    let request = json!({ "subject": "station-1", "permissions": ["issue-batch"], "schools": ["2133010601"] });
    let minted: Value = client
        .post_with_key("/v1/tokens", &request, "retry-0123456789abcdef")
        .await
        .unwrap();
    assert_eq!(relay.connections(), 2, "sent again on a new connection");
    let token = json!({ "token": minted["token"] });
    let verdict: Value = client.post("/v1/tokens/verify", &token).await.unwrap();
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert_eq!(mints().await, 1, "minted once");
    // Without a repeat of the key, a new request mints again.
    let _: Value = client.post("/v1/tokens", &request).await.unwrap();
    assert_eq!(mints().await, 2);
    drop(client);
    served.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
