//! Cross-checks of every ykt-crypto primitive against independent implementations.
//!
//! Each test draws random cases from a seeded generator, computes them with ykt-crypto and
//! sends one batch to `oracle/oracle.py` (pycryptodome, `cryptography`, gmssl) or runs the
//! OpenSSL command line. The ykt SM4 profile v1 has no published vectors: its values are
//! proven against the oracle's implementation of the profile text, never against ykt-crypto
//! itself. The seed is printed with every test; `YKT_CROSSCHECK_SEED` replays a run.

use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};
use ykt_crypto::SymmetricAlgorithm::{Aes128, Aes256, Des, Sm4, TripleDes};
use ykt_crypto::mac::cmac;
use ykt_crypto::p256::{P256PrivateKey, sha256};
use ykt_crypto::secure_messaging::{
    decrypt_data, external_auth_cryptogram, protect_command, write_key_command,
};
use ykt_crypto::sm2::{DEFAULT_ID, Sm2PrivateKey, sm3};
use ykt_crypto::{
    BlockCipher, Diversifier, Kcv, KcvMethod, Load, PbocMac, Profile, Purchase, Signature,
    SymmetricAlgorithm, SymmetricKey,
};

/// Random cases per primitive and algorithm (or profile).
const CASES: usize = 200;
/// Cases of the OpenSSL cross-checks that start processes per case.
const OPENSSL_CASES: usize = 20;
/// Algorithms of the PBOC MAC family, secure messaging and the e-purse.
const PBOC_ALGORITHMS: [SymmetricAlgorithm; 3] = [Des, TripleDes, Sm4];

// ----------------------------------------------------------------------------------------------
// Seeded generator

/// The run's seed: `YKT_CROSSCHECK_SEED` (decimal or 0x-hex), else the clock.
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| match std::env::var("YKT_CROSSCHECK_SEED") {
        Ok(text) => {
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("YKT_CROSSCHECK_SEED={text:?} is not a u64"))
        }
        Err(_) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970");
            now.as_nanos() as u64
        }
    })
}

/// How to replay a failure.
fn replay() -> String {
    format!("replay with YKT_CROSSCHECK_SEED={:#x}", seed())
}

/// splitmix64: small, seedable and good enough to draw test inputs.
struct Rng(u64);

impl Rng {
    /// The generator of test `name`: the run's seed mixed with the name, so that tests draw
    /// different cases from one seed. Prints the seed.
    fn for_test(name: &str) -> Self {
        println!(
            "{name}: seed {:#x} (set YKT_CROSSCHECK_SEED to replay)",
            seed()
        );
        let salt = name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
        });
        Self(seed() ^ salt)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant for test inputs).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        self.bytes(N).try_into().expect("N bytes")
    }

    /// 0 to 64 bytes: crosses the 8- and 16-byte block boundaries.
    fn data(&mut self) -> Vec<u8> {
        let len = self.below(65);
        self.bytes(len)
    }

    /// A key of `alg`; now and then a degenerate one (all FF, 3DES with equal halves).
    fn key(&mut self, alg: SymmetricAlgorithm) -> SymmetricKey {
        let mut bytes = self.bytes(alg.key_len());
        match self.below(16) {
            0 => bytes.fill(0xFF),
            1 if alg == TripleDes => bytes.copy_within(..8, 8),
            _ => {}
        }
        SymmetricKey::new(alg, &bytes).expect("length of the algorithm")
    }

    /// A GET CHALLENGE value for a card with `alg` keys: 4 or 8 bytes, or 16 for SM4.
    fn challenge(&mut self, alg: SymmetricAlgorithm) -> Vec<u8> {
        let len = if alg == Sm4 {
            self.pick(&[4, 8, 16])
        } else {
            self.pick(&[4, 8])
        };
        self.bytes(len)
    }

    fn sm2_key(&mut self) -> Sm2PrivateKey {
        loop {
            if let Ok(key) = Sm2PrivateKey::from_bytes(&self.bytes(32)) {
                return key;
            }
        }
    }

    fn p256_key(&mut self) -> P256PrivateKey {
        loop {
            if let Ok(key) = P256PrivateKey::from_bytes(&self.bytes(32)) {
                return key;
            }
        }
    }

    /// A bit position for [`flip_bit`].
    fn bit(&mut self) -> usize {
        self.next_u64() as usize
    }

    fn tamper(&mut self) -> Tamper {
        Tamper {
            bit: self.bit(),
            message: self.coin(),
        }
    }
}

/// How a negative check spoils a signed message: one bit of the message or of the signature.
#[derive(Clone, Copy)]
struct Tamper {
    bit: usize,
    message: bool,
}

impl Tamper {
    /// The spoilt `(message, signature)`.
    fn apply(self, message: &[u8], signature: &[u8]) -> (Vec<u8>, Vec<u8>) {
        if self.message {
            (flip_bit(message, self.bit), signature.to_vec())
        } else {
            (message.to_vec(), flip_bit(signature, self.bit))
        }
    }
}

/// `bytes` with bit `bit` (modulo the length) flipped; an empty input becomes one byte.
fn flip_bit(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        out.push(0);
    } else {
        let bit = bit % (8 * out.len());
        out[bit / 8] ^= 0x80 >> (bit % 8);
    }
    out
}

// ----------------------------------------------------------------------------------------------
// Processes and the oracle

fn hx(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

/// Runs `command` with `input` on its standard input and collects its output.
fn run(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    std::thread::scope(|scope| {
        // A child that stops reading early fails on its own; its exit status tells.
        scope.spawn(move || stdin.write_all(input).ok());
        child.wait_with_output()
    })
    .unwrap_or_else(|e| panic!("{command:?} failed: {e}"))
}

/// The Python that has the oracle's requirements: `YKT_PYTHON`, else the workspace's `.venv`.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("YKT_PYTHON") {
        return python.into();
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = manifest
        .parent()
        .expect("workspace root")
        .join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run ./scripts/test (it creates .venv)",
        venv.display()
    );
    venv
}

/// Sends `requests` to the oracle as one batch; one response per request, in order.
fn oracle(requests: &[Value]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("oracle/oracle.py");
    let input = serde_json::to_vec(requests).expect("requests serialize");
    let output = run(Command::new(python()).arg(&script), &input);
    assert!(
        output.status.success(),
        "oracle {} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let responses: Vec<Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("oracle output is not a JSON array: {e}"));
    assert_eq!(
        responses.len(),
        requests.len(),
        "oracle answered a different number of requests"
    );
    responses
}

/// What ykt-crypto checks on one oracle response.
type Check = Box<dyn Fn(&Value) -> Result<(), String>>;

/// One oracle request (which also names the inputs when the case fails) and its check.
struct Case {
    request: Value,
    check: Check,
}

impl Case {
    /// The response must carry every field of `expected` (ykt-crypto's values) unchanged.
    fn expect(request: Value, expected: Value) -> Self {
        Self::expect_then(request, expected, |_| Ok(()))
    }

    /// As [`Case::expect`], then `then` runs ykt-crypto on the oracle's output (verifying its
    /// signature, decrypting its ciphertext).
    fn expect_then(
        request: Value,
        expected: Value,
        then: impl Fn(&Value) -> Result<(), String> + 'static,
    ) -> Self {
        let check = move |response: &Value| {
            if let Some(error) = response.get("error") {
                return Err(format!("oracle error {error}"));
            }
            let fields = expected
                .as_object()
                .expect("expected fields form an object");
            let differences: Vec<String> = fields
                .iter()
                .filter(|&(name, want)| response[name] != *want)
                .map(|(name, want)| format!("{name}: ykt-crypto {want}, oracle {}", response[name]))
                .collect();
            ensure(differences.is_empty(), &differences.join("; "))?;
            then(response)
        };
        Self {
            request,
            check: Box::new(check),
        }
    }

    /// The oracle must refuse the request (a tampered ciphertext).
    fn refused(request: Value) -> Self {
        let check = |response: &Value| match response.get("error") {
            Some(_) => Ok(()),
            None => Err(format!("oracle accepted it: {response}")),
        };
        Self {
            request,
            check: Box::new(check),
        }
    }
}

/// `CASES` cases for each of `variants`, each variant's inputs made by `make`.
fn cases_for<T: Copy, I: IntoIterator<Item = Case>>(
    rng: &mut Rng,
    variants: &[T],
    mut make: impl FnMut(&mut Rng, T) -> I,
) -> Vec<Case> {
    let mut cases = Vec::new();
    for &variant in variants {
        for _ in 0..CASES {
            cases.extend(make(rng, variant));
        }
    }
    cases
}

/// Sends every case of `primitive` to the oracle in one batch and fails naming each case
/// whose check fails, with its inputs.
fn cross_check(primitive: &str, cases: Vec<Case>) {
    let requests: Vec<Value> = cases.iter().map(|case| case.request.clone()).collect();
    let responses = oracle(&requests);
    let failures: Vec<String> = cases
        .iter()
        .zip(&responses)
        .enumerate()
        .filter_map(|(i, (case, response))| {
            let why = (case.check)(response).err()?;
            Some(format!(
                "{primitive} case {i}: {why}\n    inputs: {}",
                case.request
            ))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} {primitive} cases disagree with the oracle ({}):\n{}",
        failures.len(),
        cases.len(),
        replay(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The hex field `name` of an oracle response.
fn field(response: &Value, name: &str) -> Result<Vec<u8>, String> {
    response[name]
        .as_str()
        .and_then(|text| hex::decode(text).ok())
        .ok_or_else(|| format!("no hex field {name} in {response}"))
}

fn ensure(ok: bool, why: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why.to_owned()) }
}

fn key_hex(key: &SymmetricKey) -> String {
    hx(key.expose_secret())
}

fn profile_name(profile: Profile) -> &'static str {
    match profile {
        Profile::PbocDes => "pboc",
        Profile::YktSm4V1 => "sm4",
    }
}

// ----------------------------------------------------------------------------------------------
// Symmetric primitives

#[test]
fn block_ciphers_match_oracle() {
    let mut rng = Rng::for_test("block_ciphers");
    let algorithms = [Des, TripleDes, Sm4, Aes128, Aes256];
    let cases = cases_for(&mut rng, &algorithms, |rng, alg| {
        let key = rng.key(alg);
        let blocks = 1 + rng.below(4);
        let plain = rng.bytes(blocks * alg.block_len());
        let cipher = BlockCipher::new(&key);
        let mut ours = plain.clone();
        cipher.encrypt_ecb(&mut ours).expect("whole blocks");
        let request = json!({"op": "block_encrypt", "alg": alg.name(), "key": key_hex(&key),
            "data": hx(&plain)});
        [Case::expect_then(
            request,
            json!({"out": hx(&ours)}),
            move |response| {
                let mut back = field(response, "out")?;
                cipher.decrypt_ecb(&mut back).map_err(|e| e.to_string())?;
                ensure(
                    back == plain,
                    "ykt-crypto does not decrypt the oracle's ciphertext",
                )
            },
        )]
    });
    cross_check("block cipher", cases);
}

#[test]
fn pboc_mac_matches_oracle() {
    let mut rng = Rng::for_test("pboc_mac");
    let cases = cases_for(&mut rng, &PBOC_ALGORITHMS, |rng, alg| {
        let key = rng.key(alg);
        let data = rng.data();
        let mac = PbocMac::new(&key).expect("PBOC algorithm");
        let (iv, ours) = if rng.coin() {
            (vec![0; alg.block_len()], mac.compute(&data))
        } else {
            let iv = rng.bytes(alg.block_len());
            let ours = mac.compute_with_iv(&iv, &data).expect("one-block IV");
            (iv, ours)
        };
        let request = json!({"op": "pboc_mac", "alg": alg.name(), "key": key_hex(&key),
            "iv": hx(&iv), "data": hx(&data)});
        [Case::expect(request, json!({"mac": hx(ours.as_bytes())}))]
    });
    cross_check("PBOC MAC", cases);
}

#[test]
fn cmac_matches_oracle() {
    let mut rng = Rng::for_test("cmac");
    let cases = cases_for(&mut rng, &[Aes128, Aes256, Sm4], |rng, alg| {
        let key = rng.key(alg);
        let data = rng.data();
        let request = json!({"op": "cmac", "alg": alg.name(), "key": key_hex(&key),
            "data": hx(&data)});
        [Case::expect(
            request,
            json!({"mac": hx(&cmac(&key, &data))}),
        )]
    });
    cross_check("CMAC", cases);
}

#[test]
fn kcv_matches_oracle() {
    let mut rng = Rng::for_test("kcv");
    let algorithms = [Des, TripleDes, Sm4, Aes128, Aes256];
    let cases = cases_for(&mut rng, &algorithms, |rng, alg| {
        let key = rng.key(alg);
        let method = match KcvMethod::default_for(alg) {
            KcvMethod::Cmac if rng.coin() => KcvMethod::EncryptZeros,
            default => default,
        };
        let request = json!({"op": "kcv", "alg": alg.name(), "key": key_hex(&key),
            "method": method.name()});
        [Case::expect(
            request,
            json!({"kcv": Kcv::compute(&key, method).to_string()}),
        )]
    });
    cross_check("KCV", cases);
}

#[test]
fn diversification_matches_oracle() {
    let mut rng = Rng::for_test("diversification");
    let cases = cases_for(&mut rng, &PBOC_ALGORITHMS, |rng, alg| {
        let profile = Profile::for_algorithm(alg).expect("e-purse algorithm");
        let root = rng.key(alg);
        let levels = 1 + rng.below(3);
        let factors: Vec<[u8; 8]> = (0..levels).map(|_| rng.array()).collect();
        let path = profile
            .diversify_path(&root, &factors)
            .expect("profile key");
        let stepwise = factors.iter().fold(root.clone(), |key, factor| {
            Diversifier::new(profile, &key)
                .expect("profile key")
                .derive(factor)
        });
        let request = json!({"op": "diversify", "profile": profile_name(profile),
            "key": key_hex(&root), "factors": factors.iter().map(|f| hx(f)).collect::<Vec<_>>()});
        [Case::expect_then(
            request,
            json!({"key": key_hex(&path)}),
            move |response| {
                ensure(
                    field(response, "key")? == stepwise.expose_secret(),
                    "level-by-level Diversifier::derive differs from the oracle",
                )
            },
        )]
    });
    cross_check("diversification", cases);
}

/// The keys of one e-purse transaction under the profile of `alg`: the purchase or load key
/// and a DTK (for PBOC, DES or 3DES independently of the other key).
fn epurse_keys(rng: &mut Rng, alg: SymmetricAlgorithm) -> (Profile, SymmetricKey, SymmetricKey) {
    let profile = Profile::for_algorithm(alg).expect("e-purse algorithm");
    let dtk_alg = if alg == Sm4 {
        Sm4
    } else {
        rng.pick(&[Des, TripleDes])
    };
    (profile, rng.key(alg), rng.key(dtk_alg))
}

/// The oracle's values of one transaction, as ykt-crypto computed them.
fn transaction_fields(session: &SymmetricKey, mac1: [u8; 4], mac2: [u8; 4], tac: [u8; 4]) -> Value {
    json!({"session_key": key_hex(session), "mac1": hx(&mac1), "mac2": hx(&mac2), "tac": hx(&tac)})
}

/// ykt-crypto's TAC verification must accept the oracle's TAC and refuse it with a bit flipped.
fn tac_verifies(
    bit: usize,
    verify: impl Fn(&[u8]) -> ykt_crypto::Result<()> + 'static,
) -> impl Fn(&Value) -> Result<(), String> + 'static {
    move |response| {
        let tac = field(response, "tac")?;
        verify(&tac).map_err(|e| format!("verify_tac refuses the oracle's TAC: {e}"))?;
        ensure(
            verify(&flip_bit(&tac, bit)).is_err(),
            "verify_tac accepts a tampered TAC",
        )
    }
}

#[test]
fn purchase_matches_oracle() {
    let mut rng = Rng::for_test("purchase");
    let cases = cases_for(&mut rng, &PBOC_ALGORITHMS, |rng, alg| {
        let (profile, dpk, dtk) = epurse_keys(rng, alg);
        let purchase = Purchase {
            card_random: rng.array(),
            offline_seq: rng.next_u64() as u16,
            amount: rng.next_u64() as u32,
            transaction_type: rng.pick(&[0x05, 0x06, 0x09]),
            terminal_id: rng.array(),
            terminal_seq: rng.next_u64() as u32,
            date: rng.array(),
            time: rng.array(),
        };
        let session = purchase.session_key(profile, &dpk).expect("profile key");
        let expected = transaction_fields(
            &session,
            purchase.mac1(&session).expect("session key"),
            purchase.mac2(&session).expect("session key"),
            purchase.tac(profile, &dtk).expect("profile key"),
        );
        let request = json!({"op": "purchase", "profile": profile_name(profile),
            "dpk": key_hex(&dpk), "dtk": key_hex(&dtk), "card_random": hx(&purchase.card_random),
            "offline_seq": hx(&purchase.offline_seq.to_be_bytes()),
            "terminal_seq": hx(&purchase.terminal_seq.to_be_bytes()),
            "amount": hx(&purchase.amount.to_be_bytes()),
            "type": hx(&[purchase.transaction_type]), "terminal_id": hx(&purchase.terminal_id),
            "date": hx(&purchase.date), "time": hx(&purchase.time)});
        let verify = move |tac: &[u8]| purchase.verify_tac(profile, &dtk, tac);
        [Case::expect_then(
            request,
            expected,
            tac_verifies(rng.bit(), verify),
        )]
    });
    cross_check("purchase", cases);
}

#[test]
fn load_matches_oracle() {
    let mut rng = Rng::for_test("load");
    let cases = cases_for(&mut rng, &PBOC_ALGORITHMS, |rng, alg| {
        let (profile, dlk, dtk) = epurse_keys(rng, alg);
        let load = Load {
            card_random: rng.array(),
            online_seq: rng.next_u64() as u16,
            // Both below 2^31, so that the new balance fits in four bytes.
            old_balance: rng.next_u64() as u32 >> 1,
            amount: rng.next_u64() as u32 >> 1,
            transaction_type: rng.pick(&[0x01, 0x02]),
            terminal_id: rng.array(),
            date: rng.array(),
            time: rng.array(),
        };
        let session = load.session_key(profile, &dlk).expect("profile key");
        let expected = transaction_fields(
            &session,
            load.mac1(&session).expect("session key"),
            load.mac2(&session).expect("session key"),
            load.tac(profile, &dtk).expect("balance in range"),
        );
        let request = json!({"op": "load", "profile": profile_name(profile),
            "dlk": key_hex(&dlk), "dtk": key_hex(&dtk), "card_random": hx(&load.card_random),
            "online_seq": hx(&load.online_seq.to_be_bytes()),
            "old_balance": hx(&load.old_balance.to_be_bytes()),
            "amount": hx(&load.amount.to_be_bytes()),
            "type": hx(&[load.transaction_type]), "terminal_id": hx(&load.terminal_id),
            "date": hx(&load.date), "time": hx(&load.time)});
        let verify = move |tac: &[u8]| load.verify_tac(profile, &dtk, tac);
        [Case::expect_then(
            request,
            expected,
            tac_verifies(rng.bit(), verify),
        )]
    });
    cross_check("load", cases);
}

#[test]
fn secure_messaging_matches_oracle() {
    let mut rng = Rng::for_test("secure_messaging");
    let cases = cases_for(&mut rng, &PBOC_ALGORITHMS, |rng, alg| {
        let key = rng.key(alg);
        let challenge = rng.challenge(alg);
        let data = rng.data();
        let encrypt = rng.coin();
        let (header, apdu) = if encrypt && rng.coin() {
            let [p1, p2] = rng.array();
            let apdu = write_key_command(&key, &challenge, p1, p2, &data);
            ([0x84, 0xD4, p1, p2], apdu)
        } else {
            let header = rng.array();
            (
                header,
                protect_command(&key, &challenge, header, &data, encrypt),
            )
        };
        let apdu = apdu.expect("valid challenge and length");
        let request = json!({"op": "protect_command", "alg": alg.name(), "key": key_hex(&key),
            "challenge": hx(&challenge), "header": hx(&header), "data": hx(&data),
            "encrypt": encrypt});
        [Case::expect_then(
            request,
            json!({"apdu": hx(&apdu)}),
            move |response| {
                let theirs = field(response, "apdu")?;
                if !encrypt {
                    return Ok(());
                }
                let payload = theirs.get(5..theirs.len() - 4).ok_or("APDU too short")?;
                let plain = decrypt_data(&key, payload).map_err(|e| e.to_string())?;
                ensure(
                    plain == data,
                    "decrypt_data of the oracle's payload differs from the data",
                )
            },
        )]
    });
    cross_check("secure messaging", cases);
}

#[test]
fn external_auth_matches_oracle() {
    let mut rng = Rng::for_test("external_auth");
    let cases = cases_for(&mut rng, &PBOC_ALGORITHMS, |rng, alg| {
        let key = rng.key(alg);
        let challenge = rng.challenge(alg);
        let ours = external_auth_cryptogram(&key, &challenge).expect("valid challenge");
        let request = json!({"op": "external_auth", "alg": alg.name(), "key": key_hex(&key),
            "challenge": hx(&challenge)});
        [Case::expect(request, json!({"out": hx(&ours)}))]
    });
    cross_check("external authentication", cases);
}

// ----------------------------------------------------------------------------------------------
// SM3, SM2, P-256

#[test]
fn sm3_matches_oracle() {
    let mut rng = Rng::for_test("sm3");
    let cases = cases_for(&mut rng, &[()], |rng, ()| {
        // Up to three SM3 blocks, across the 55/56-byte padding boundary.
        let len = rng.below(200);
        let data = rng.bytes(len);
        let request = json!({"op": "sm3", "data": hx(&data)});
        [Case::expect(request, json!({"digest": hx(&sm3(&data))}))]
    });
    cross_check("SM3", cases);
}

#[test]
fn sm2_signatures_cross_verify() {
    let mut rng = Rng::for_test("sm2_signatures");
    let cases = cases_for(&mut rng, &[()], |rng, ()| {
        let key = rng.sm2_key();
        let public = *key.public_key();
        let point = hx(&public.to_uncompressed());
        let message = rng.data();
        let ours = key.sign(DEFAULT_ID, &message).expect("signature").to_raw();
        let tamper = rng.tamper();
        let (bad_message, bad_signature) = tamper.apply(&message, &ours);
        let signed = message.clone();
        [
            Case::expect(
                json!({"op": "sm2_verify", "pub": point, "msg": hx(&message), "sig": hx(&ours)}),
                json!({"ok": true}),
            ),
            Case::expect(
                json!({"op": "sm2_verify", "pub": point, "msg": hx(&bad_message),
                    "sig": hx(&bad_signature)}),
                json!({"ok": false}),
            ),
            Case::expect_then(
                json!({"op": "sm2_sign", "d": hx(&key.to_bytes()[..]), "msg": hx(&message)}),
                json!({"pub": point}),
                move |response| {
                    let theirs = field(response, "sig")?;
                    let verify = |message: &[u8], signature: &[u8]| {
                        let signature = Signature::from_raw(signature)?;
                        public.verify(DEFAULT_ID, message, &signature)
                    };
                    verify(&signed, &theirs)
                        .map_err(|e| format!("ykt-crypto refuses the oracle's signature: {e}"))?;
                    let (bad_message, bad_signature) = tamper.apply(&signed, &theirs);
                    ensure(
                        verify(&bad_message, &bad_signature).is_err(),
                        "ykt-crypto accepts a tampered oracle signature",
                    )
                },
            ),
        ]
    });
    cross_check("SM2 signature", cases);
}

#[test]
fn sm2_encryption_cross_decrypts() {
    let mut rng = Rng::for_test("sm2_encryption");
    let cases = cases_for(&mut rng, &[()], |rng, ()| {
        let key = rng.sm2_key();
        let d = hx(&key.to_bytes()[..]);
        // gmssl cannot encrypt an empty message.
        let len = 1 + rng.below(64);
        let message = rng.bytes(len);
        let ours = key.public_key().encrypt(&message).expect("encryption");
        let bit = rng.bit();
        let tampered = flip_bit(&ours, bit);
        [
            Case::expect(
                json!({"op": "sm2_decrypt", "d": d, "ct": hx(&ours)}),
                json!({"msg": hx(&message)}),
            ),
            Case::refused(json!({"op": "sm2_decrypt", "d": d, "ct": hx(&tampered)})),
            Case::expect_then(
                json!({"op": "sm2_encrypt", "pub": hx(&key.public_key().to_uncompressed()),
                    "msg": hx(&message)}),
                json!({}),
                move |response| {
                    let theirs = field(response, "ct")?;
                    let plain = key.decrypt(&theirs).map_err(|e| e.to_string())?;
                    ensure(plain == message, "ykt-crypto decrypts to another message")?;
                    ensure(
                        key.decrypt(&flip_bit(&theirs, bit)).is_err(),
                        "ykt-crypto decrypts a tampered oracle ciphertext",
                    )
                },
            ),
        ]
    });
    cross_check("SM2 encryption", cases);
}

#[test]
fn p256_signatures_cross_verify() {
    let mut rng = Rng::for_test("p256_signatures");
    let cases = cases_for(&mut rng, &[()], |rng, ()| {
        let key = rng.p256_key();
        let public = key.public_key().clone();
        let point = hx(&public.to_uncompressed());
        let message = rng.data();
        let ours = if rng.coin() {
            key.sign(&message)
        } else {
            key.sign_digest(&sha256(&message))
        };
        let ours = ours.expect("signature");
        let tamper = rng.tamper();
        let (bad_message, bad_signature) = tamper.apply(&message, &ours.to_raw());
        let signed = message.clone();
        [
            Case::expect(
                json!({"op": "p256_verify", "pub": point, "msg": hx(&message),
                    "sig": hx(&ours.to_raw())}),
                json!({"ok": true}),
            ),
            Case::expect(
                json!({"op": "p256_verify", "pub": point, "msg": hx(&message),
                    "der": hx(&ours.to_der())}),
                json!({"ok": true}),
            ),
            Case::expect(
                json!({"op": "p256_verify", "pub": point, "msg": hx(&bad_message),
                    "sig": hx(&bad_signature)}),
                json!({"ok": false}),
            ),
            Case::expect_then(
                json!({"op": "p256_sign", "d": hx(&key.to_bytes()[..]), "msg": hx(&message)}),
                json!({"pub": point}),
                move |response| {
                    let (raw, der) = (field(response, "raw")?, field(response, "der")?);
                    let signature = Signature::from_der(&der).map_err(|e| e.to_string())?;
                    ensure(
                        Signature::from_raw(&raw).ok() == Some(signature)
                            && signature.to_der() == der,
                        "ykt-crypto's DER codec disagrees with the oracle's raw and DER forms",
                    )?;
                    public
                        .verify(&signed, &signature)
                        .and_then(|()| public.verify_digest(&sha256(&signed), &signature))
                        .map_err(|e| format!("ykt-crypto refuses the oracle's signature: {e}"))?;
                    let (bad_message, bad_signature) = tamper.apply(&signed, &raw);
                    let accepted = Signature::from_raw(&bad_signature)
                        .and_then(|signature| public.verify(&bad_message, &signature));
                    ensure(
                        accepted.is_err(),
                        "ykt-crypto accepts a tampered oracle signature",
                    )
                },
            ),
        ]
    });
    cross_check("P-256 signature", cases);
}

// ----------------------------------------------------------------------------------------------
// The OpenSSL command line

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "ykt-crosscheck-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self(path)
    }

    /// Writes `name` in the directory and returns its path.
    fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory under the temp dir harms nothing.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// DER AlgorithmIdentifier of an SM2 key: id-ecPublicKey with the curve sm2p256v1
/// (1.2.156.10197.1.301).
const SM2_ALGORITHM: [u8; 21] = [
    0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A, 0x81, 0x1C,
    0xCF, 0x55, 0x01, 0x82, 0x2D,
];

/// PKCS#8 PrivateKeyInfo wrapping an RFC 5915 ECPrivateKey (d and the public point).
fn sm2_private_key_der(key: &Sm2PrivateKey) -> Vec<u8> {
    let ec_private_key = [
        &[0x30, 0x6B, 0x02, 0x01, 0x01, 0x04, 0x20][..],
        &key.to_bytes()[..],
        &[0xA1, 0x44, 0x03, 0x42, 0x00],
        &key.public_key().to_uncompressed(),
    ]
    .concat();
    [
        &[0x30, 0x81, 0x87, 0x02, 0x01, 0x00][..],
        &SM2_ALGORITHM,
        &[0x04, 0x6D],
        &ec_private_key,
    ]
    .concat()
}

/// SubjectPublicKeyInfo of the SM2 public key.
fn sm2_public_key_der(key: &Sm2PrivateKey) -> Vec<u8> {
    let point = key.public_key().to_uncompressed();
    [
        &[0x30, 0x59][..],
        &SM2_ALGORITHM,
        &[0x03, 0x42, 0x00],
        &point,
    ]
    .concat()
}

/// `openssl pkeyutl` with `args`, the key file given as DER, reading `input`.
fn pkeyutl(args: &[&str], key: &Path, input: &[u8]) -> Output {
    let mut command = Command::new("openssl");
    command
        .arg("pkeyutl")
        .args(args)
        .arg("-keyform")
        .arg("DER")
        .arg("-inkey")
        .arg(key);
    run(&mut command, input)
}

/// Fails the test unless OpenSSL succeeded; returns its standard output.
fn succeeded(output: Output, what: &str, inputs: &str) -> Vec<u8> {
    assert!(
        output.status.success(),
        "{what} failed for {inputs}: {} ({})",
        String::from_utf8_lossy(&output.stderr).trim(),
        replay()
    );
    output.stdout
}

#[test]
fn openssl_sm2_signatures_with_distinguishing_ids() {
    let mut rng = Rng::for_test("openssl_sm2_signatures");
    let dir = TempDir::new("sm2-sign");
    for case in 0..OPENSSL_CASES {
        let key = rng.sm2_key();
        let id_len = 1 + rng.below(32);
        let id = if rng.coin() {
            (0..id_len).map(|_| b'!' + rng.below(94) as u8).collect()
        } else {
            rng.bytes(id_len)
        };
        let message = rng.data();
        let inputs = format!(
            "case {case}: d {}, ID {}, message {}",
            hx(&key.to_bytes()[..]),
            hx(&id),
            hx(&message)
        );
        let private = dir.write("key.der", &sm2_private_key_der(&key));
        let public = dir.write("pub.der", &sm2_public_key_der(&key));
        let distid = format!("hexdistid:{}", hex::encode(&id));
        let sm3_with_id = ["-rawin", "-digest", "sm3", "-pkeyopt", distid.as_str()];

        let ours = key.sign(&id, &message).expect("signature").to_der();
        let sigfile = dir.write("sig.der", &ours);
        let sigfile = sigfile.to_str().expect("UTF-8 temp path");
        let verify = [
            &["-verify", "-pubin", "-sigfile", sigfile][..],
            &sm3_with_id,
        ]
        .concat();
        succeeded(
            pkeyutl(&verify, &public, &message),
            "openssl verify of ykt's signature",
            &inputs,
        );
        let tampered = flip_bit(&message, rng.bit());
        assert!(
            !pkeyutl(&verify, &public, &tampered).status.success(),
            "openssl verifies ykt's signature on a tampered message, {inputs} ({})",
            replay()
        );

        let sign = [&["-sign"][..], &sm3_with_id].concat();
        let theirs = succeeded(pkeyutl(&sign, &private, &message), "openssl sign", &inputs);
        let signature = Signature::from_der(&theirs)
            .unwrap_or_else(|e| panic!("OpenSSL's DER signature {}: {e}, {inputs}", hx(&theirs)));
        let public_key = key.public_key();
        assert!(
            public_key.verify(&id, &message, &signature).is_ok(),
            "ykt-crypto refuses OpenSSL's signature, {inputs} ({})",
            replay()
        );
        assert!(
            public_key
                .verify(&flip_bit(&id, rng.bit()), &message, &signature)
                .is_err(),
            "ykt-crypto accepts OpenSSL's signature under another ID, {inputs} ({})",
            replay()
        );
    }
}

#[test]
fn openssl_sm2_der_encryption() {
    let mut rng = Rng::for_test("openssl_sm2_encryption");
    let dir = TempDir::new("sm2-encrypt");
    for case in 0..OPENSSL_CASES / 2 {
        let key = rng.sm2_key();
        let len = 1 + rng.below(64);
        let message = rng.bytes(len);
        let inputs = format!(
            "case {case}: d {}, message {}",
            hx(&key.to_bytes()[..]),
            hx(&message)
        );
        let private = dir.write("key.der", &sm2_private_key_der(&key));
        let public = dir.write("pub.der", &sm2_public_key_der(&key));

        let ours = key.public_key().encrypt_der(&message).expect("encryption");
        let plain = succeeded(
            pkeyutl(&["-decrypt"], &private, &ours),
            "openssl decrypt",
            &inputs,
        );
        assert_eq!(
            plain, message,
            "OpenSSL decrypts ykt's ciphertext wrongly, {inputs}"
        );

        let theirs = succeeded(
            pkeyutl(&["-encrypt", "-pubin"], &public, &message),
            "openssl encrypt",
            &inputs,
        );
        let plain = key
            .decrypt_der(&theirs)
            .unwrap_or_else(|e| panic!("ykt-crypto cannot decrypt {}: {e}, {inputs}", hx(&theirs)));
        assert_eq!(
            plain, message,
            "ykt-crypto decrypts OpenSSL's ciphertext wrongly, {inputs}"
        );
    }
}

#[test]
fn openssl_sm4_ecb() {
    let mut rng = Rng::for_test("openssl_sm4_ecb");
    let mut blocks = 0;
    for case in 0..OPENSSL_CASES {
        let key = rng.key(Sm4);
        let count = 10 + rng.below(7);
        blocks += count;
        let plain = rng.bytes(16 * count);
        let mut ours = plain.clone();
        BlockCipher::new(&key)
            .encrypt_ecb(&mut ours)
            .expect("whole blocks");
        let inputs = format!("case {case}: key {}, data {}", key_hex(&key), hx(&plain));
        let mut command = Command::new("openssl");
        command.args(["enc", "-sm4-ecb", "-nopad", "-K", &key_hex(&key)]);
        let theirs = succeeded(run(&mut command, &plain), "openssl enc -sm4-ecb", &inputs);
        assert_eq!(
            hx(&theirs),
            hx(&ours),
            "SM4-ECB differs from OpenSSL, {inputs} ({})",
            replay()
        );
    }
    assert!(blocks >= CASES, "only {blocks} SM4 blocks checked");
}
