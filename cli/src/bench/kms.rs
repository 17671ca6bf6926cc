//! `ykt bench kms`: the KMS's HSM operations (card-key derivation, purchase TAC verification
//! single and in batches, SM2 and P-256 signatures) through each provider: `ykt-crypto` called
//! directly (the floor), the in-process simulator, the simulator over the TCP host protocol on
//! 127.0.0.1 (one and two client threads), and with `--pkcs11` a PKCS#11 token (SoftHSM2)
//! for the operations it supports (P-256 signing; 3DES derivation when the binding can name
//! `CKM_DES3_ECB_ENCRYPT_DATA`, see `ykt_kms::provider::pkcs11`). Each row gives the rate, the median and 99th-percentile
//! latency of one call, and for the in-process rows the overhead over the direct call.
//!
//! Inputs come from a known master formed from two components, so the TACs fed to the
//! verifiers are computed beforehand with `ykt-crypto`, all distinct and valid; a verdict
//! other than "valid" stops the benchmark.

use super::crypto::parse_seconds;
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report};
use clap::Args;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ykt_crypto::p256::P256PrivateKey;
use ykt_crypto::sm2::Sm2PrivateKey;
use ykt_crypto::{Profile, Purchase, SymmetricKey};
use ykt_hsm_sim::host::{ClientRegistry, HostServer, Limits};
use ykt_hsm_sim::{
    Exportability, KeyAlgorithm, KeyAttributes, KeyComponent, KeyUsage, Lmk, Modes, TacCheck,
};
use ykt_kms::provider::pkcs11::Pkcs11Config;
use ykt_kms::provider::remote::RemoteConfig;
use ykt_kms::provider::{Hsm, LocalHsm, Pkcs11Hsm, RemoteHsm, SignInput, WrappedKey};
use zeroize::Zeroizing;

/// Arguments of `ykt bench kms`.
#[derive(Args)]
pub struct KmsArgs {
    /// Seconds to measure each row.
    #[arg(long, default_value_t = 1.0, value_parser = parse_seconds, value_name = "S")]
    seconds: f64,
    /// Records per batch TAC verification (1 to 4096).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..=4096))]
    batch: u16,
    /// Also measure a PKCS#11 token: `YKT_PKCS11_MODULE`, `YKT_PKCS11_TOKEN` and
    /// `YKT_PKCS11_PIN_FILE` say which (`eval "$(scripts/softhsm)"` sets them for SoftHSM2).
    #[arg(long)]
    pkcs11: bool,
}

/// The client name and secret of the benchmark's own host server.
const CLIENT: &str = "bench";
const CLIENT_SECRET: &[u8] = b"ykt bench kms host secret 32 by.";
/// Distinct prepared transactions.
const RECORDS: usize = 4096;
/// Region, school and card factors: one school, distinct cards.
const REGION: [u8; 8] = [0, 0, 0, 0, 0, 0x33, 0x01, 0x06];
const SCHOOL: [u8; 8] = [0, 0, 0, 0x21, 0x33, 0x01, 0x06, 0x01];

/// One measured row.
struct Row {
    operation: &'static str,
    algorithm: &'static str,
    provider: &'static str,
    clients: u64,
    batch: u64,
    measured: Measured,
    overhead: Option<f64>,
}

/// Rate (units per second, a unit being one record or one call) and per-call latency.
#[derive(Clone, Copy)]
struct Measured {
    per_second: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Row {
    fn record(&self) -> Record {
        Record::new()
            .with("operation", self.operation)
            .with("algorithm", self.algorithm)
            .with("provider", self.provider)
            .with("clients", self.clients)
            .with("batch", self.batch)
            .with("ops_per_s", self.measured.per_second)
            .with("p50_us", self.measured.p50_us)
            .with("p99_us", self.measured.p99_us)
            .with("overhead_percent", self.overhead)
    }
}

/// Runs `call(i)` on `clients` threads for `seconds`, each call counting `units`; returns the
/// total rate and the latency percentiles of one call.
fn measure(
    seconds: f64,
    clients: usize,
    units: u64,
    call: &(dyn Fn(u64) -> Result<()> + Sync),
) -> Result<Measured> {
    let budget = Duration::from_secs_f64(seconds);
    // Warm-up: connections opened, keys opened once, caches filled.
    for i in 0..16 {
        call(i)?;
    }
    let start = Instant::now();
    let results: Vec<Result<Vec<Duration>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients as u64)
            .map(|worker| {
                scope.spawn(move || {
                    let mut latencies = Vec::with_capacity(1 << 16);
                    let mut i = worker << 40;
                    while start.elapsed() < budget {
                        let t = Instant::now();
                        call(black_box(i))?;
                        latencies.push(t.elapsed());
                        i += 1;
                    }
                    Ok(latencies)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(CliError::Bench("a measuring thread panicked".into())))
            })
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for result in results {
        latencies.extend(result?);
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Ok(Measured {
        per_second: latencies.len() as f64 * units as f64 / elapsed,
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
    })
}

/// An HSM-side refusal, as the KMS reports it.
fn refused(error: ykt_hsm_sim::HsmError) -> CliError {
    CliError::Kms(error.into())
}

/// A known master of `algorithm` with `usage`, the same in every provider that can hold it.
struct Master {
    clear: SymmetricKey,
    profile: Profile,
    attributes: KeyAttributes,
}

impl Master {
    fn new(algorithm: KeyAlgorithm, usage: KeyUsage) -> Result<Self> {
        let symmetric = algorithm.symmetric().expect("a symmetric algorithm");
        let bytes: Vec<u8> = (0..symmetric.key_len() as u8)
            .map(|i| i.wrapping_mul(37) ^ 0x5C)
            .collect();
        Ok(Self {
            clear: SymmetricKey::new(symmetric, &bytes)?,
            profile: Profile::for_algorithm(symmetric)?,
            attributes: KeyAttributes::new(
                usage,
                algorithm,
                Modes::DERIVE,
                Exportability::DerivedOnly,
                1,
            )
            .map_err(refused)?,
        })
    }

    /// The master inside `hsm`, formed from the key and a zero component.
    fn load(&self, hsm: &dyn Hsm) -> Result<WrappedKey> {
        let zero = vec![0u8; self.clear.expose_secret().len()];
        let components = [
            KeyComponent::new(self.clear.expose_secret()),
            KeyComponent::new(&zero),
        ];
        Ok(hsm.form_key(self.attributes, &components)?.0)
    }
}

/// A prepared purchase: the card's factors, the purchase and its valid TAC.
struct Transaction {
    factors: [[u8; 8]; 3],
    purchase: Purchase,
    tac: [u8; 4],
}

/// Distinct purchases and their valid TACs under `master`, with the card factors.
fn transactions(master: &Master) -> Result<Vec<Transaction>> {
    (0..RECORDS as u32)
        .map(|n| {
            let card = [
                0,
                0,
                0,
                0,
                (n >> 24) as u8,
                (n >> 16) as u8,
                (n >> 8) as u8,
                n as u8,
            ];
            let purchase = Purchase {
                card_random: n.to_be_bytes(),
                offline_seq: n as u16,
                amount: 100 + n,
                transaction_type: 0x06,
                terminal_id: [0x33, 0x01, 0x06, 0, 0, 1],
                terminal_seq: n,
                date: [0x20, 0x26, 0x12, 0x01],
                time: [0x12, 0x30, 0x00],
            };
            let factors = [REGION, SCHOOL, card];
            let dtk = master.profile.diversify_path(&master.clear, &factors)?;
            let tac = purchase.tac(master.profile, &dtk)?;
            Ok(Transaction {
                factors,
                purchase,
                tac,
            })
        })
        .collect()
}

/// The providers measured: name, provider, client threads.
struct Providers {
    local: LocalHsm,
    remote: RemoteHsm,
    pkcs11: Option<Pkcs11Hsm>,
    _server: HostServer,
}

impl Providers {
    fn open(pkcs11: bool) -> Result<Self> {
        let lmk = Lmk::generate().map_err(refused)?;
        let local = LocalHsm::new(Arc::new(ykt_hsm_sim::Hsm::new(lmk)));
        let mut clients = ClientRegistry::new();
        clients.add(CLIENT, CLIENT_SECRET);
        // The rate limits protect a production HSM from a runaway client; here they would
        // measure themselves.
        let limits = Limits {
            requests_per_second: 100_000_000,
            burst: 1_000_000,
            ..Limits::default()
        };
        let server =
            HostServer::bind_with_limits("127.0.0.1:0", local.engine().clone(), clients, limits)
                .map_err(|e| {
                    CliError::Bench(format!("cannot serve the host protocol on 127.0.0.1: {e}"))
                })?;
        let remote = RemoteHsm::connect(RemoteConfig {
            address: server.local_addr().to_string(),
            client: CLIENT.into(),
            secret: Zeroizing::new(CLIENT_SECRET.to_vec()),
        })?;
        let pkcs11 = if pkcs11 {
            let var = |name: &'static str| {
                std::env::var(name).map_err(|_| CliError::Input {
                    arg: "--pkcs11",
                    reason: format!("{name} is not set"),
                })
            };
            let pin_file = var("YKT_PKCS11_PIN_FILE")?;
            let pin = std::fs::read_to_string(&pin_file).map_err(|source| CliError::Read {
                path: pin_file.clone(),
                source,
            })?;
            Some(Pkcs11Hsm::open(Pkcs11Config {
                module: var("YKT_PKCS11_MODULE")?.into(),
                token_label: var("YKT_PKCS11_TOKEN")?,
                pin: Zeroizing::new(pin.trim().to_owned()),
            })?)
        } else {
            None
        };
        Ok(Self {
            local,
            remote,
            pkcs11,
            _server: server,
        })
    }

    /// `master` as `provider` holds it. Clear components never cross the host link, so the
    /// TCP provider uses the blob the in-process engine (the server's) formed.
    fn load(&self, provider: &str, hsm: &dyn Hsm, master: &Master) -> Result<WrappedKey> {
        if provider == "tcp" {
            master.load(&self.local)
        } else {
            master.load(hsm)
        }
    }

    /// The simulator providers with the client threads each is measured with.
    fn simulators(&self) -> [(&'static str, &dyn Hsm, usize); 3] {
        [
            ("in-process", &self.local, 1),
            ("tcp", &self.remote, 1),
            ("tcp", &self.remote, 2),
        ]
    }
}

impl KmsArgs {
    /// Runs the benchmark.
    pub fn run(self) -> Result<Report> {
        let providers = Providers::open(self.pkcs11)?;
        let mut rows = Vec::new();
        for algorithm in [KeyAlgorithm::Sm4, KeyAlgorithm::TripleDes] {
            self.derive(&providers, algorithm, &mut rows)?;
            self.tac(&providers, algorithm, &mut rows)?;
        }
        self.sign(&providers, &mut rows)?;
        Ok(Report::ok(Output::List(
            rows.iter().map(Row::record).collect(),
        )))
    }

    fn derive(
        &self,
        providers: &Providers,
        algorithm: KeyAlgorithm,
        rows: &mut Vec<Row>,
    ) -> Result<()> {
        let master = Master::new(algorithm, KeyUsage::Purchase)?;
        let card_attributes = KeyAttributes::new(
            KeyUsage::Purchase,
            algorithm,
            Modes::MAC,
            Exportability::None,
            1,
        )
        .map_err(refused)?;
        let card = |i: u64| [REGION, SCHOOL, i.to_be_bytes()];
        // The same outputs as the HSM's: the card key and its check value.
        let raw = measure(self.seconds, 1, 1, &|i| {
            let key = master.profile.diversify_path(&master.clear, &card(i))?;
            black_box(ykt_crypto::Kcv::of(&key));
            Ok(())
        })?;
        let name = algorithm.name();
        rows.push(row(
            "derive 3 levels + KCV",
            name,
            "ykt-crypto",
            1,
            1,
            raw,
            None,
        ));
        let mut targets: Vec<(&'static str, &dyn Hsm, usize)> = providers.simulators().to_vec();
        if let Some(token) = &providers.pkcs11
            && algorithm == KeyAlgorithm::TripleDes
            && token.derives_pboc_keys()
        {
            targets.push(("pkcs11", token, 1));
        }
        for (provider, hsm, clients) in targets {
            let blob = providers.load(provider, hsm, &master)?;
            let measured = measure(self.seconds, clients, 1, &|i| {
                let derived = hsm.derive_key(&blob, &card(i), card_attributes)?;
                if provider == "pkcs11" {
                    hsm.destroy_key(&derived.0)?;
                }
                Ok(())
            })?;
            let overhead = (provider == "in-process").then(|| overhead(raw, measured));
            rows.push(row(
                "derive 3 levels + KCV",
                name,
                provider,
                clients,
                1,
                measured,
                overhead,
            ));
        }
        Ok(())
    }

    fn tac(
        &self,
        providers: &Providers,
        algorithm: KeyAlgorithm,
        rows: &mut Vec<Row>,
    ) -> Result<()> {
        let master = Master::new(algorithm, KeyUsage::Tac)?;
        let transactions = transactions(&master)?;
        let name = algorithm.name();
        let raw = measure(self.seconds, 1, 1, &|i| {
            let t = &transactions[i as usize % RECORDS];
            let dtk = master.profile.diversify_path(&master.clear, &t.factors)?;
            t.purchase.verify_tac(master.profile, &dtk, &t.tac)?;
            Ok(())
        })?;
        rows.push(row("TAC verify", name, "ykt-crypto", 1, 1, raw, None));
        let checks: Vec<TacCheck<'_>> = transactions
            .iter()
            .map(|t| TacCheck {
                factors: &t.factors,
                purchase: &t.purchase,
                tac: &t.tac,
            })
            .collect();
        let batch = usize::from(self.batch);
        for (provider, hsm, clients) in providers.simulators() {
            let blob = providers.load(provider, hsm, &master)?;
            for size in [1, batch] {
                let measured = measure(self.seconds, clients, size as u64, &|i| {
                    let start = (i as usize * size) % (RECORDS - size + 1);
                    let verdicts = hsm.verify_purchase_tacs(&blob, &checks[start..start + size])?;
                    if verdicts.iter().all(|v| *v) {
                        Ok(())
                    } else {
                        Err(ykt_crypto::CryptoError::Mismatch("TAC").into())
                    }
                })?;
                let overhead =
                    (provider == "in-process" && size == 1).then(|| overhead(raw, measured));
                let operation = if size == 1 {
                    "TAC verify"
                } else {
                    "TAC verify batch"
                };
                rows.push(row(
                    operation,
                    name,
                    provider,
                    clients,
                    size as u64,
                    measured,
                    overhead,
                ));
            }
        }
        Ok(())
    }

    fn sign(&self, providers: &Providers, rows: &mut Vec<Row>) -> Result<()> {
        let sm2 = Sm2PrivateKey::generate()?;
        let p256 = P256PrivateKey::generate()?;
        let raw_sm2 = measure(self.seconds, 1, 1, &|i| {
            black_box(sm2.sign(b"ykt-kms", &i.to_be_bytes())?);
            Ok(())
        })?;
        rows.push(row("sign", "sm2", "ykt-crypto", 1, 1, raw_sm2, None));
        let raw_p256 = measure(self.seconds, 1, 1, &|i| {
            black_box(p256.sign(&i.to_be_bytes())?);
            Ok(())
        })?;
        rows.push(row("sign", "p256", "ykt-crypto", 1, 1, raw_p256, None));
        let mut targets: Vec<(&'static str, &dyn Hsm, usize, KeyAlgorithm)> = Vec::new();
        for (provider, hsm, clients) in providers.simulators() {
            targets.push((provider, hsm, clients, KeyAlgorithm::Sm2));
            targets.push((provider, hsm, clients, KeyAlgorithm::P256));
        }
        if let Some(token) = &providers.pkcs11 {
            targets.push(("pkcs11", token, 1, KeyAlgorithm::P256));
        }
        for (provider, hsm, clients, algorithm) in targets {
            let attributes = KeyAttributes::new(
                KeyUsage::Signature,
                algorithm,
                Modes::SIGN,
                Exportability::None,
                1,
            )
            .map_err(refused)?;
            let key = hsm.generate_key(attributes)?.key;
            let measured = measure(self.seconds, clients, 1, &|i| {
                let message = i.to_be_bytes();
                let input = match algorithm {
                    KeyAlgorithm::Sm2 => SignInput::Sm2 {
                        id: b"ykt-kms",
                        message: &message,
                    },
                    _ => SignInput::P256 { message: &message },
                };
                black_box(hsm.sign(&key, input)?);
                Ok(())
            })?;
            let raw = if algorithm == KeyAlgorithm::Sm2 {
                raw_sm2
            } else {
                raw_p256
            };
            let overhead = (provider == "in-process").then(|| overhead(raw, measured));
            rows.push(row(
                "sign",
                algorithm.name(),
                provider,
                clients,
                1,
                measured,
                overhead,
            ));
            if provider == "pkcs11" {
                hsm.destroy_key(&key)?;
            }
        }
        Ok(())
    }
}

/// How much slower `measured` is than `raw`, in percent.
fn overhead(raw: Measured, measured: Measured) -> f64 {
    (raw.per_second / measured.per_second - 1.0) * 100.0
}

fn row(
    operation: &'static str,
    algorithm: &'static str,
    provider: &'static str,
    clients: usize,
    batch: u64,
    measured: Measured,
    overhead: Option<f64>,
) -> Row {
    Row {
        operation,
        algorithm,
        provider,
        clients: clients as u64,
        batch,
        measured,
        overhead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_runs_through_every_simulator_provider() {
        let args = KmsArgs {
            seconds: 0.01,
            batch: 16,
            pkcs11: false,
        };
        let providers = Providers::open(false).unwrap();
        let mut rows = Vec::new();
        args.tac(&providers, KeyAlgorithm::TripleDes, &mut rows)
            .unwrap();
        args.derive(&providers, KeyAlgorithm::Sm4, &mut rows)
            .unwrap();
        args.sign(&providers, &mut rows).unwrap();
        let has = |operation: &str, provider: &str, clients: u64| {
            rows.iter().any(|r| {
                r.operation == operation
                    && r.provider == provider
                    && r.clients == clients
                    && r.measured.per_second > 0.0
                    && r.measured.p99_us >= r.measured.p50_us
            })
        };
        for operation in [
            "TAC verify",
            "TAC verify batch",
            "derive 3 levels + KCV",
            "sign",
        ] {
            for (provider, clients) in [("in-process", 1), ("tcp", 1), ("tcp", 2)] {
                assert!(
                    has(operation, provider, clients),
                    "{operation} {provider} {clients}"
                );
            }
        }
        assert!(has("TAC verify", "ykt-crypto", 1));
        let overheads = rows.iter().filter(|r| r.overhead.is_some()).count();
        assert_eq!(overheads, 4, "TAC, derive, SM2 and P-256 in process");
    }
}
