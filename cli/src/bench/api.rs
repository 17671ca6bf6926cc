//! `ykt bench api`: the KMS API under load, in one process. A lab KMS in a temporary
//! directory ([`LabBureau`]) gets its CA, API signing keys in P-256 and SM2 (made with the
//! lab quorum), an enrolled platform client and 1,000 purchase records of issued virtual
//! cards; the API server serves it on 127.0.0.1 from a runtime of its own, and
//! `--connections` client tasks ([`KmsClient`]) on another runtime send requests back to back.
//!
//! Scenarios, `--seconds` each: P-256 and SM2 signing in batches of 1 and 100 messages and TAC
//! verification of 1,000 records a call, over kept-alive connections, then P-256 batches of 1
//! each over a new TCP and TLS connection with a full handshake. A row gives requests/s, items/s
//! (signatures or records), the latency of one request (p50, p99, max, within 1/64), the errors
//! and the goal the kept-alive rows are held to: P-256 ≥ 10,000 signatures/s, with p99 under
//! 10 ms for single signatures, SM2 ≥ 8,000 signatures/s, TAC ≥ 100,000 records/s. Next to them, the in-process
//! HSM's sign rate of the same keys on one thread, and `openssl speed`'s for ecdsap256 and sm2.
//!
//! `--soak S` runs one mixed scenario instead (each task sends every kind of request above in
//! turn) for S seconds and samples the process's resident memory (VmRSS of /proc/self/status)
//! every 10 s: first, last and largest, and the growth after warm-up (the first tenth of the
//! run, at least 10 s).
//!
//! Every answer is checked: one signature per message, every record valid; before measuring,
//! one batch of each key is verified with the key's public key. An error or a failed check is
//! counted; the command prints its report, then fails when any occurred.

use super::crypto::parse_seconds;
use super::measure::ops_per_second;
use super::openssl::{Rates, Reference};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report, Value};
use crate::terminal::{load_request, purchase, purse_aid, terminal_id};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use ykt_apdu::pboc::Date;
use ykt_apdu::{MemoryTransport, Transport};
use ykt_api::client::{ClientIdentity, KmsClient};
use ykt_api::server::RateLimit;
use ykt_card_sim::Card;
use ykt_crypto::Signature;
use ykt_issuer::batch::{Silent, VirtualCards};
use ykt_issuer::lab::{LAB_SCHOOLS, LabBureau, quorum};
use ykt_issuer::personalise::Station;
use ykt_issuer::profile::{Algorithm, Profile, ProfileKind};
use ykt_issuer::roster::{CardType, RosterRow};
use ykt_kms::Kms;
use ykt_kms::ca::ClientRole;
use ykt_kms::issuance::CardRecord;
use ykt_kms::model::{KeyAlgorithm, Purpose, Scope};
use ykt_kms::provider::{SignInput, WrappedKey};
use ykt_kms::signing::{API_SIGNING_TEMPLATE, DEFAULT_SM2_ID};

/// Arguments of `ykt bench api`.
#[derive(Args)]
pub struct ApiArgs {
    /// Seconds to drive each scenario.
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds, value_name = "S")]
    seconds: f64,
    /// Concurrent client tasks, each with its own requests in flight one at a time.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: u16,
    /// Instead of the scenarios, one mixed scenario for SECONDS (1 to 86,400), sampling the
    /// process's resident memory every 10 s.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    soak: Option<u64>,
}

/// Cards issued for the clearing scenario, and purchases made with each: the records of one
/// TAC verification call.
const CARDS: usize = 20;
const PURCHASES_PER_CARD: usize = 50;

/// Messages per signing call in the batched scenarios.
const SIGN_BATCH: usize = 100;

/// How often the soak samples the resident memory.
const SOAK_SAMPLE: Duration = Duration::from_secs(10);

/// The platform client the load comes from.
const CLIENT: &str = "bench-platform";

/// What a kept-alive scenario is held to.
#[derive(Clone, Copy)]
struct Goal {
    items_per_s: f64,
    p99_ms: Option<f64>,
    text: &'static str,
}

const P256_GOAL: Goal = Goal {
    items_per_s: 10_000.0,
    p99_ms: Some(10.0),
    text: ">= 10,000 signatures/s, p99 < 10 ms",
};
/// Batches are held to the rate: the latency goal is a signature's, and a call of 100 waits
/// for 100.
const P256_BATCH_GOAL: Goal = Goal {
    items_per_s: 10_000.0,
    p99_ms: None,
    text: ">= 10,000 signatures/s",
};
const SM2_GOAL: Goal = Goal {
    items_per_s: 8_000.0,
    p99_ms: None,
    text: ">= 8,000 signatures/s",
};
const TAC_GOAL: Goal = Goal {
    items_per_s: 100_000.0,
    p99_ms: None,
    text: ">= 100,000 records/s",
};

/// What a request asks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    /// `POST /v1/keys/api-signing-ALG/sign` with `batch` messages.
    Sign {
        algorithm: KeyAlgorithm,
        batch: usize,
    },
    /// `POST /v1/tac/verify` with every prepared record.
    Clear,
}

/// How requests reach the server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Connections {
    /// Kept alive between requests.
    KeptAlive,
    /// A new TCP and TLS connection per request.
    New,
}

impl Connections {
    fn name(self) -> &'static str {
        match self {
            Self::KeptAlive => "kept-alive",
            Self::New => "new",
        }
    }
}

/// One measured scenario.
struct Scenario {
    name: &'static str,
    call: Call,
    connections: Connections,
    goal: Option<Goal>,
}

const fn sign(
    name: &'static str,
    algorithm: KeyAlgorithm,
    batch: usize,
    connections: Connections,
    goal: Option<Goal>,
) -> Scenario {
    Scenario {
        name,
        call: Call::Sign { algorithm, batch },
        connections,
        goal,
    }
}

const SCENARIOS: [Scenario; 6] = [
    sign(
        "P-256 sign",
        KeyAlgorithm::P256,
        1,
        Connections::KeptAlive,
        Some(P256_GOAL),
    ),
    sign(
        "P-256 sign",
        KeyAlgorithm::P256,
        SIGN_BATCH,
        Connections::KeptAlive,
        Some(P256_BATCH_GOAL),
    ),
    sign(
        "SM2 sign",
        KeyAlgorithm::Sm2,
        1,
        Connections::KeptAlive,
        Some(SM2_GOAL),
    ),
    sign(
        "SM2 sign",
        KeyAlgorithm::Sm2,
        SIGN_BATCH,
        Connections::KeptAlive,
        Some(SM2_GOAL),
    ),
    Scenario {
        name: "TAC verify",
        call: Call::Clear,
        connections: Connections::KeptAlive,
        goal: Some(TAC_GOAL),
    },
    sign("P-256 sign", KeyAlgorithm::P256, 1, Connections::New, None),
];

/// The ID of the API signing key in `algorithm`.
fn key_id(algorithm: KeyAlgorithm) -> String {
    API_SIGNING_TEMPLATE.key_id(algorithm, &Scope::Bureau)
}

/// The lab KMS the server serves, and what the load needs of it.
struct Lab {
    kms: Arc<Kms>,
    identity: ClientIdentity,
    /// Valid purchase records of issued cards, as hex.
    records: Vec<String>,
}

impl Lab {
    /// The lab bureau in the empty directory `dir`, with the CA, the API signing keys, the
    /// platform client and the purchase records.
    async fn create(dir: &Path) -> Result<Self> {
        let kms = LabBureau::create(dir).await?.bureau.kms;
        let approvals = quorum();
        kms.init_ca(&approvals).await?;
        for algorithm in [KeyAlgorithm::P256, KeyAlgorithm::Sm2] {
            kms.generate_key(
                &approvals,
                API_SIGNING_TEMPLATE,
                algorithm,
                Scope::Bureau,
                None,
            )
            .await?;
        }
        let enrolment = kms
            .enroll_client(&approvals[0], CLIENT, ClientRole::Platform, &[])
            .await?;
        let identity = ClientIdentity::from_pem(
            &enrolment.certificate_pem,
            &enrolment.key_pem,
            &enrolment.ca_pem,
        )?;
        let records = purchase_records(&kms, &dir.join("cards")).await?;
        Ok(Self {
            kms: Arc::new(kms),
            identity,
            records,
        })
    }

    /// The current version of the API signing key in `algorithm`, as the HSM holds it.
    async fn signing_key(&self, algorithm: KeyAlgorithm) -> Result<WrappedKey> {
        Ok(self
            .kms
            .wrapped(&key_id(algorithm), None, Purpose::Sign)
            .await?
            .1)
    }
}

/// One SM4 PSAM and [`CARDS`] SM4 student cards of the first lab school issued on virtual
/// cards in `cards_dir`; then, on copies of them in memory, each card loaded online and
/// [`PURCHASES_PER_CARD`] purchases of 1 fen each at the PSAM's terminal: their records, as
/// hex.
async fn purchase_records(kms: &Kms, cards_dir: &Path) -> Result<Vec<String>> {
    let station = Station::new(kms, "operator:bench");
    let cards = VirtualCards::new(cards_dir)?;
    let school = LAB_SCHOOLS[0].0;
    let from = Date::of_unix_ms(ykt_kms::store::now_ms());
    let psam_profile = Profile::default_for(ProfileKind::Psam, Algorithm::Sm4);
    let batch = station
        .create_psam_batch(&psam_profile, school, "bench-terminals", 1, from)
        .await?;
    station
        .run_batch(
            &batch.id,
            &psam_profile,
            &mut cards.clone(),
            None,
            &mut Silent,
        )
        .await?;
    let psam = kms.batch_cards(&batch.id).await?.remove(0);
    let roster: Vec<RosterRow> = (0..CARDS)
        .map(|i| RosterRow {
            row: i + 2,
            name: format!("Bench Student {i}"),
            number: format!("B{i:06}"),
            id_number: "11010519491231002X".into(),
            card_type: CardType::Student,
            school: school.into(),
            expiry: None,
        })
        .collect();
    let card_profile = Profile::default_for(ProfileKind::UserCard, Algorithm::Sm4);
    let batch = station
        .create_card_batch(&card_profile, &roster, from)
        .await?;
    station
        .run_batch(
            &batch.id,
            &card_profile,
            &mut cards.clone(),
            None,
            &mut Silent,
        )
        .await?;
    // The issued cards in memory: purchases need not wait for state files.
    let powered = |record: &CardRecord| -> Result<MemoryTransport<Card>> {
        let card = Card::from_state(cards.open(record)?.state())?;
        let mut transport = MemoryTransport::new(record.serial.to_string(), card);
        transport.reset()?;
        Ok(transport)
    };
    let mut psam = powered(&psam)?;
    let mut psam_session = psam.session()?;
    let terminal = terminal_id(psam_session.as_mut())?;
    let actor = format!("terminal:{}", hex::encode_upper(terminal));
    let now = ykt_kms::store::now_ms();
    let mut records = Vec::with_capacity(CARDS * PURCHASES_PER_CARD);
    for card in kms.batch_cards(&batch.id).await? {
        let mut transport = powered(&card)?;
        let mut session = transport.session()?;
        ykt_psam::select_purse_application(session.as_mut(), &purse_aid())?;
        let asn = ykt_psam::read_asn(session.as_mut())?;
        let load = load_request(PURCHASES_PER_CARD as u32, terminal);
        ykt_issuer::host::load(kms, &actor, session.as_mut(), &load, &asn, now).await?;
        for n in 0..PURCHASES_PER_CARD {
            let at = now + 1_000 * (n as i64 + 1);
            let record = purchase(session.as_mut(), psam_session.as_mut(), &asn, 1, at)?;
            records.push(record.to_hex());
        }
    }
    Ok(records)
}

/// The API server serving the lab KMS on 127.0.0.1, on `runtime`.
struct Served {
    address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<ykt_api::Result<()>>,
}

impl Served {
    /// The one place the bench builds the server. The bench measures the server itself, so
    /// the per-client rate limit is lifted here (as any other limit the server comes to
    /// have must be).
    fn start(runtime: &Runtime, kms: Arc<Kms>) -> Result<Self> {
        let unlimited = RateLimit {
            per_second: 1e12,
            burst: 1e12,
        };
        let server = runtime
            .block_on(ykt_api::Server::bind(
                kms,
                SocketAddr::from(([127, 0, 0, 1], 0)),
                vec!["127.0.0.1".into()],
            ))?
            .with_rate_limit(unlimited);
        let address = server.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = runtime.spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            address,
            stop,
            serving,
        })
    }

    /// Stops accepting and waits for the connections in flight (every client must be gone).
    fn stop(self, runtime: &Runtime) -> Result<()> {
        let _ = self.stop.send(());
        runtime
            .block_on(self.serving)
            .map_err(|e| CliError::Bench(format!("the API server failed: {e}")))??;
        Ok(())
    }
}

/// One kind of request, ready to send again and again.
struct Step {
    client: KmsClient,
    call: Call,
    path: String,
    body: serde_json::Value,
    /// Signatures or records per request.
    items: u64,
}

impl Step {
    fn new(lab: &Lab, client: &KmsClient, call: Call, connections: Connections) -> Self {
        let client = match connections {
            Connections::KeptAlive => client.clone(),
            Connections::New => client.clone().with_new_connections(),
        };
        let (path, body, items) = match call {
            Call::Sign { algorithm, batch } => {
                let messages: Vec<String> = (0..batch)
                    .map(|n| STANDARD.encode(format!("ykt bench api message {n:04}")))
                    .collect();
                (
                    format!("/v1/keys/{}/sign", key_id(algorithm)),
                    json!({ "messages": messages }),
                    batch,
                )
            }
            Call::Clear => (
                "/v1/tac/verify".to_owned(),
                json!({ "records": lab.records }),
                lab.records.len(),
            ),
        };
        Self {
            client,
            call,
            path,
            body,
            items: items as u64,
        }
    }

    /// Sends the request once and checks the answer; the signatures when asked for them.
    async fn send(&self) -> std::result::Result<Vec<String>, String> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            signatures: Vec<String>,
            #[serde(default)]
            valid: u64,
        }
        let answer: Answer = self
            .client
            .post(&self.path, &self.body)
            .await
            .map_err(|e| e.to_string())?;
        let (what, got) = match self.call {
            Call::Sign { .. } => ("signatures", answer.signatures.len() as u64),
            Call::Clear => ("valid records", answer.valid),
        };
        if got == self.items {
            Ok(answer.signatures)
        } else {
            Err(format!("{got} {what} of {}", self.items))
        }
    }
}

/// Latencies in microseconds, in 64 buckets per power of two: each within 1/64 of its value.
#[derive(Clone)]
struct Latencies {
    counts: Vec<u64>,
    max_us: u64,
}

/// Buckets per power of two, as bits.
const SUB_BITS: u32 = 6;

impl Latencies {
    fn new() -> Self {
        Self {
            counts: vec![0; (64 - SUB_BITS as usize + 1) << SUB_BITS],
            max_us: 0,
        }
    }

    fn bucket(us: u64) -> usize {
        let exponent = (63 - us.max(1).leading_zeros()).max(SUB_BITS);
        let shift = exponent - SUB_BITS;
        ((shift as usize) << SUB_BITS) + (us >> shift) as usize
    }

    /// The largest latency that falls in `bucket`.
    fn upper(bucket: usize) -> u64 {
        let (shift, mantissa) = (bucket >> SUB_BITS, (bucket & ((1 << SUB_BITS) - 1)) as u64);
        if shift == 0 {
            return mantissa;
        }
        let end = u128::from((1 << SUB_BITS) + mantissa + 1) << (shift - 1);
        u64::try_from(end - 1).unwrap_or(u64::MAX)
    }

    fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(us)] += 1;
        self.max_us = self.max_us.max(us);
    }

    fn merge(&mut self, other: &Self) {
        for (count, more) in self.counts.iter_mut().zip(&other.counts) {
            *count += more;
        }
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The latency `fraction` of the requests took at most, in milliseconds.
    fn quantile_ms(&self, fraction: f64) -> f64 {
        let total: u64 = self.counts.iter().sum();
        let rank = ((total as f64 * fraction).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper(bucket).min(self.max_us) as f64 / 1e3;
            }
        }
        0.0
    }
}

/// What the requests of one step came to.
#[derive(Clone)]
struct Tally {
    requests: u64,
    items: u64,
    errors: u64,
    first_error: Option<String>,
    latencies: Latencies,
}

impl Tally {
    fn new() -> Self {
        Self {
            requests: 0,
            items: 0,
            errors: 0,
            first_error: None,
            latencies: Latencies::new(),
        }
    }

    fn merge(&mut self, other: &Self) {
        self.requests += other.requests;
        self.items += other.items;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.latencies.merge(&other.latencies);
    }
}

/// Sends requests back to back from `tasks` tasks until `until`, each task taking the steps
/// in turn from its own starting point; one tally per step, and the requests answered so far
/// in `answered`.
async fn drive(
    steps: Arc<Vec<Step>>,
    tasks: usize,
    until: Instant,
    answered: Arc<AtomicU64>,
) -> Result<Vec<Tally>> {
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let (steps, answered) = (steps.clone(), answered.clone());
            tokio::spawn(async move {
                let mut tallies = vec![Tally::new(); steps.len()];
                let mut next = task % steps.len();
                while Instant::now() < until {
                    let (step, tally) = (&steps[next], &mut tallies[next]);
                    let started = Instant::now();
                    let outcome = step.send().await;
                    tally.latencies.record(started.elapsed());
                    tally.requests += 1;
                    match outcome {
                        Ok(_) => tally.items += step.items,
                        Err(error) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(error);
                        }
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                    next = (next + 1) % steps.len();
                }
                tallies
            })
        })
        .collect();
    let mut total = vec![Tally::new(); steps.len()];
    for worker in workers {
        let tallies = worker
            .await
            .map_err(|e| CliError::Bench(format!("a client task failed: {e}")))?;
        for (sum, tally) in total.iter_mut().zip(&tallies) {
            sum.merge(tally);
        }
    }
    Ok(total)
}

/// One request per task at once, before the clock starts: the connections are open.
async fn warm_up(steps: &Arc<Vec<Step>>, tasks: usize) -> Result<()> {
    let mut calls = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let steps = steps.clone();
        calls.spawn(async move { steps[task % steps.len()].send().await.map(drop) });
    }
    while let Some(outcome) = calls.join_next().await {
        outcome
            .map_err(|e| CliError::Bench(format!("a client task failed: {e}")))?
            .map_err(|e| CliError::Bench(format!("a warm-up request failed: {e}")))?;
    }
    Ok(())
}

/// Signs one batch with each key through the API and verifies every signature with the key's
/// public key from the HSM.
async fn check_signatures(lab: &Lab, client: &KmsClient) -> Result<()> {
    for algorithm in [KeyAlgorithm::P256, KeyAlgorithm::Sm2] {
        let step = Step::new(
            lab,
            client,
            Call::Sign {
                algorithm,
                batch: 4,
            },
            Connections::KeptAlive,
        );
        let signatures = step.send().await.map_err(CliError::Bench)?;
        let public = lab
            .kms
            .hsm()
            .public_key(&lab.signing_key(algorithm).await?)?;
        let messages = step.body["messages"].as_array().into_iter().flatten();
        for (message, signature) in messages.zip(&signatures) {
            let message = STANDARD.decode(message.as_str().unwrap_or_default());
            let signature = signature
                .split_once(':')
                .and_then(|(_, rest)| rest.split_once(':'))
                .and_then(|(_, encoded)| STANDARD.decode(encoded).ok());
            let (Ok(message), Some(signature)) = (message, signature) else {
                return Err(CliError::Bench("a signature is not ykt:vN:BASE64".into()));
            };
            let signature = Signature::from_der(&signature)?;
            match algorithm {
                KeyAlgorithm::Sm2 => ykt_crypto::sm2::Sm2PublicKey::from_sec1(&public)?.verify(
                    DEFAULT_SM2_ID,
                    &message,
                    &signature,
                )?,
                _ => ykt_crypto::p256::P256PublicKey::from_sec1(&public)?
                    .verify(&message, &signature)?,
            }
        }
    }
    Ok(())
}

/// The row of a scenario or of one step of the soak.
fn row(
    name: &str,
    step: &Step,
    connections: Connections,
    tally: &Tally,
    seconds: f64,
    goal: Option<Goal>,
) -> Record {
    let (batch, unit) = match step.call {
        Call::Sign { batch, .. } => (batch as u64, "signatures"),
        Call::Clear => (step.items, "records"),
    };
    let items_per_s = tally.items as f64 / seconds;
    let p99_ms = tally.latencies.quantile_ms(0.99);
    let met = goal.map(|goal| {
        items_per_s >= goal.items_per_s && goal.p99_ms.is_none_or(|limit| p99_ms < limit)
    });
    Record::new()
        .with("scenario", name)
        .with("connections", connections.name())
        .with("batch", batch)
        .with("requests", tally.requests)
        .with("requests_per_s", tally.requests as f64 / seconds)
        .with("items_per_s", items_per_s)
        .with("unit", unit)
        .with("p50_ms", tally.latencies.quantile_ms(0.50))
        .with("p99_ms", p99_ms)
        .with("max_ms", tally.latencies.max_us as f64 / 1e3)
        .with("errors", tally.errors)
        .with("goal", goal.map(|goal| goal.text))
        .with("met", met)
        .with("first_error", tally.first_error.clone())
}

/// The process's resident memory, in KiB.
fn resident_kib() -> Result<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .ok_or_else(|| CliError::Bench("no VmRSS in /proc/self/status".into()))
}

/// One memory sample of the soak.
#[derive(Clone, Copy)]
struct Sample {
    at_s: u64,
    rss_kib: u64,
    requests: u64,
}

/// First, last and largest resident memory, the sample at the end of warm-up and the growth
/// from it to the last, in MiB.
struct Memory {
    first: f64,
    last: f64,
    max: f64,
    after_warm_up: Option<f64>,
    growth: Option<f64>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Memory {
    /// Warm-up is the first tenth of a `seconds`-long soak, at least one sampling interval.
    fn of(samples: &[Sample], seconds: u64) -> Option<Self> {
        let warm_up = (seconds / 10).max(SOAK_SAMPLE.as_secs());
        let (first, last) = (samples.first()?, samples.last()?);
        let after_warm_up = samples
            .iter()
            .find(|s| s.at_s >= warm_up && s.at_s < last.at_s)
            .map(|s| s.rss_kib);
        Some(Self {
            first: mib(first.rss_kib),
            last: mib(last.rss_kib),
            max: mib(samples.iter().map(|s| s.rss_kib).max()?),
            after_warm_up: after_warm_up.map(mib),
            growth: after_warm_up.map(|kib| mib(last.rss_kib) - mib(kib)),
        })
    }
}

fn runtime(name: &str, threads: usize) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

impl ApiArgs {
    /// Sets up the lab KMS and its server, runs the scenarios (or the soak) and reports.
    pub fn run(self) -> Result<Report> {
        let dir = std::env::temp_dir().join(format!("ykt-bench-api-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let server_runtime = runtime("ykt-api-server", threads)?;
        let load_runtime = runtime("ykt-bench-load", threads)?;
        let result = self.measure(&dir, threads, &server_runtime, &load_runtime);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn measure(
        &self,
        dir: &Path,
        threads: usize,
        server_runtime: &Runtime,
        load_runtime: &Runtime,
    ) -> Result<Report> {
        let lab = server_runtime.block_on(Lab::create(dir))?;
        let served = Served::start(server_runtime, lab.kms.clone())?;
        let base_url = format!("https://{}", served.address);
        let client = KmsClient::new(&base_url, &lab.identity)?;
        load_runtime.block_on(check_signatures(&lab, &client))?;
        let record = Record::new()
            .with("connections", u64::from(self.connections))
            .with("server_threads", threads as u64)
            .with("client_threads", threads as u64);
        let measured = match self.soak {
            Some(seconds) => self.soak(record, &lab, &client, seconds, load_runtime),
            None => self.scenarios(record, &lab, &client, load_runtime),
        };
        // The pooled connections close with the last client; then the server can drain.
        drop(client);
        served.stop(server_runtime)?;
        let (mut record, errors) = measured?;
        if self.soak.is_none() {
            record = record.with("hsm_sign", self.hsm_rates(&lab, server_runtime)?);
        }
        server_runtime.block_on(lab.kms.store().close());
        Ok(Report::with_status(
            Output::Record(record.with("errors", errors)),
            errors == 0,
        ))
    }

    /// Each scenario for `--seconds`: `record` with their rows, and the errors.
    fn scenarios(
        &self,
        record: Record,
        lab: &Lab,
        client: &KmsClient,
        runtime: &Runtime,
    ) -> Result<(Record, u64)> {
        let tasks = usize::from(self.connections);
        let mut rows = Vec::new();
        let mut errors = 0;
        for scenario in &SCENARIOS {
            let steps = Arc::new(vec![Step::new(
                lab,
                client,
                scenario.call,
                scenario.connections,
            )]);
            let tallies = runtime.block_on(async {
                warm_up(&steps, tasks).await?;
                let started = Instant::now();
                let until = started + Duration::from_secs_f64(self.seconds);
                let tallies = drive(steps.clone(), tasks, until, Arc::default()).await?;
                Ok::<_, CliError>((tallies, started.elapsed().as_secs_f64()))
            })?;
            let (tallies, seconds) = tallies;
            errors += tallies[0].errors;
            rows.push(row(
                scenario.name,
                &steps[0],
                scenario.connections,
                &tallies[0],
                seconds,
                scenario.goal,
            ));
        }
        Ok((
            record
                .with("seconds_each", self.seconds)
                .with("scenarios", Value::Records(rows)),
            errors,
        ))
    }

    /// The mixed scenario for `seconds`: `record` with the totals, the memory samples and a
    /// row per kind of request, and the errors.
    fn soak(
        &self,
        record: Record,
        lab: &Lab,
        client: &KmsClient,
        seconds: u64,
        runtime: &Runtime,
    ) -> Result<(Record, u64)> {
        let tasks = usize::from(self.connections);
        let steps = Arc::new(
            SCENARIOS
                .iter()
                .map(|s| Step::new(lab, client, s.call, s.connections))
                .collect::<Vec<_>>(),
        );
        let answered = Arc::new(AtomicU64::new(0));
        let (tallies, samples, elapsed) = runtime.block_on(async {
            warm_up(&steps, tasks).await?;
            let started = Instant::now();
            let until = started + Duration::from_secs(seconds);
            let load = tokio::spawn(drive(steps.clone(), tasks, until, answered.clone()));
            let sample = |at: Instant| -> Result<Sample> {
                Ok(Sample {
                    at_s: at.duration_since(started).as_secs(),
                    rss_kib: resident_kib()?,
                    requests: answered.load(Ordering::Relaxed),
                })
            };
            let mut samples = vec![sample(started)?];
            let mut ticks = tokio::time::interval_at((started + SOAK_SAMPLE).into(), SOAK_SAMPLE);
            while started.elapsed() + SOAK_SAMPLE < Duration::from_secs(seconds) {
                let at = ticks.tick().await;
                samples.push(sample(at.into_std())?);
            }
            let tallies = load
                .await
                .map_err(|e| CliError::Bench(format!("the load failed: {e}")))??;
            let elapsed = started.elapsed().as_secs_f64();
            samples.push(Sample {
                at_s: seconds,
                ..sample(Instant::now())?
            });
            Ok::<_, CliError>((tallies, samples, elapsed))
        })?;
        let mut total = Tally::new();
        for tally in &tallies {
            total.merge(tally);
        }
        let memory = Memory::of(&samples, seconds)
            .ok_or_else(|| CliError::Bench("no memory sample".into()))?;
        let mix = SCENARIOS
            .iter()
            .zip(steps.iter())
            .zip(&tallies)
            .map(|((scenario, step), tally)| {
                row(
                    scenario.name,
                    step,
                    scenario.connections,
                    tally,
                    elapsed,
                    None,
                )
            })
            .collect();
        let samples = samples
            .iter()
            .map(|s| {
                Record::new()
                    .with("at_s", s.at_s)
                    .with("rss_mib", mib(s.rss_kib))
                    .with("requests", s.requests)
            })
            .collect();
        let record = record
            .with("soak_seconds", seconds)
            .with("requests", total.requests)
            .with("requests_per_s", total.requests as f64 / elapsed)
            .with("p50_ms", total.latencies.quantile_ms(0.50))
            .with("p99_ms", total.latencies.quantile_ms(0.99))
            .with("max_ms", total.latencies.max_us as f64 / 1e3)
            .with("first_error", total.first_error.clone())
            .with("rss_first_mib", memory.first)
            .with("rss_last_mib", memory.last)
            .with("rss_max_mib", memory.max)
            .with("rss_after_warm_up_mib", memory.after_warm_up)
            .with("growth_after_warm_up_mib", memory.growth)
            .with("mix", Value::Records(mix))
            .with("samples", Value::Records(samples));
        Ok((record, total.errors))
    }

    /// The in-process HSM's sign rate of the API keys on one thread, next to OpenSSL's.
    fn hsm_rates(&self, lab: &Lab, runtime: &Runtime) -> Result<Value> {
        let openssl = Rates::measure(self.seconds.ceil() as u32)?;
        let mut rows = Vec::new();
        for (algorithm, reference) in [
            (KeyAlgorithm::P256, Reference::P256Sign),
            (KeyAlgorithm::Sm2, Reference::Sm2Sign),
        ] {
            let key = runtime.block_on(lab.signing_key(algorithm))?;
            let hsm = lab.kms.hsm();
            let rate = ops_per_second(self.seconds, |i| {
                let message = i.to_be_bytes();
                let input = match algorithm {
                    KeyAlgorithm::Sm2 => SignInput::Sm2 {
                        id: DEFAULT_SM2_ID,
                        message: &message,
                    },
                    _ => SignInput::P256 { message: &message },
                };
                hsm.sign(&key, input).map(drop)
            })?;
            let reference_rate = openssl.get(reference);
            rows.push(
                Record::new()
                    .with("key", key_id(algorithm))
                    .with("hsm_signs_per_s", rate.round() as u64)
                    .with("openssl", reference.name())
                    .with("openssl_signs_per_s", reference_rate.round() as u64)
                    .with("ratio", (rate / reference_rate * 1000.0).round() / 1000.0),
            );
        }
        Ok(Value::Records(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_hold_their_values_within_a_sixty_fourth() {
        for us in [
            0, 1, 63, 64, 65, 127, 128, 1_000, 9_999, 123_456, 10_000_000,
        ] {
            let bucket = Latencies::bucket(us);
            let upper = Latencies::upper(bucket);
            assert!(upper >= us, "{us}: bucket {bucket} ends at {upper}");
            assert!(
                (upper - us) as f64 <= us as f64 / 64.0,
                "{us}: {upper} too far"
            );
            if bucket > 0 {
                assert!(
                    Latencies::upper(bucket - 1) < us,
                    "{us}: in the bucket before"
                );
            }
        }
    }

    #[test]
    fn quantiles_come_from_the_recorded_latencies() {
        let mut latencies = Latencies::new();
        for ms in 1..=100 {
            latencies.record(Duration::from_millis(ms));
        }
        let mut other = Latencies::new();
        other.record(Duration::from_millis(250));
        latencies.merge(&other);
        let close = |got: f64, want: f64| (got - want).abs() <= want / 64.0;
        assert!(close(latencies.quantile_ms(0.50), 51.0));
        assert!(close(latencies.quantile_ms(0.99), 100.0));
        assert_eq!(latencies.quantile_ms(1.0), 250.0);
        assert_eq!(latencies.max_us, 250_000);
    }

    #[test]
    fn memory_growth_is_measured_from_the_end_of_warm_up() {
        let samples: Vec<Sample> = [(0, 10_240), (10, 20_480), (20, 21_504), (30, 20_992)]
            .into_iter()
            .map(|(at_s, rss_kib)| Sample {
                at_s,
                rss_kib,
                requests: at_s * 100,
            })
            .collect();
        let memory = Memory::of(&samples, 30).unwrap();
        assert_eq!((memory.first, memory.last, memory.max), (10.0, 20.5, 21.0));
        assert_eq!(memory.after_warm_up, Some(20.0));
        assert_eq!(memory.growth, Some(0.5));
        // A soak shorter than the warm-up has no growth to report.
        let memory = Memory::of(&samples[..2], 5).unwrap();
        assert_eq!(memory.growth, None);
    }
}
