//! `ykt bench crypto`: single-thread throughput of the primitives and transaction checks a
//! school's back office and terminals run at volume, with the OpenSSL reference rates and the
//! goals they are held to.
//!
//! Every operation works on input derived from its loop counter: block ciphers encrypt a
//! counter block, TAC checks and verifications cycle through a table of distinct, valid
//! transactions or signatures prepared beforehand, signing signs a counter digest.

use super::measure::ops_per_second;
use super::openssl::{Rates, Reference};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report};
use clap::Args;
use std::hint::black_box;
use ykt_crypto::p256::P256PrivateKey;
use ykt_crypto::sm2::Sm2PrivateKey;
use ykt_crypto::{
    BlockCipher, Diversifier, Profile, Purchase, Signature, SymmetricAlgorithm, SymmetricKey,
};

/// Arguments of `ykt bench crypto`.
#[derive(Args)]
pub struct CryptoArgs {
    /// Seconds to measure each item.
    #[arg(long, default_value_t = 1.0, value_parser = parse_seconds, value_name = "S")]
    seconds: f64,
    /// Also run `openssl speed` (whole seconds, at least 1) and compare.
    #[arg(long)]
    openssl: bool,
}

/// The `--seconds` value: a duration above zero, at most an hour.
pub(super) fn parse_seconds(text: &str) -> Result<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .ok_or_else(|| CliError::Usage("must be a number of seconds above 0, at most 3600".into()))
}

/// What an item is held to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Goal {
    /// Informational only.
    None,
    /// At least this multiple of an OpenSSL rate.
    Relative(Reference, f64),
    /// At least this many operations per second.
    Absolute(u64),
}

/// One measured item: its name, goal and a function measuring it for the given seconds.
struct Item {
    name: &'static str,
    goal: Goal,
    measure: fn(f64) -> ykt_crypto::Result<f64>,
}

const ITEMS: &[Item] = &[
    Item {
        name: "SM4 block encrypt",
        goal: Goal::Relative(Reference::Sm4Ecb, 1.0),
        measure: |s| block_encrypt(SymmetricAlgorithm::Sm4, s),
    },
    Item {
        name: "3DES block encrypt",
        goal: Goal::Relative(Reference::DesEde3, 0.8),
        measure: |s| block_encrypt(SymmetricAlgorithm::TripleDes, s),
    },
    Item {
        name: "DES block encrypt",
        goal: Goal::None,
        measure: |s| block_encrypt(SymmetricAlgorithm::Des, s),
    },
    Item {
        name: "AES-128 block encrypt",
        goal: Goal::None,
        measure: |s| block_encrypt(SymmetricAlgorithm::Aes128, s),
    },
    Item {
        name: "3DES diversify + purchase TAC verify",
        goal: Goal::Absolute(500_000),
        measure: |s| diversify_and_verify_tac(SymmetricAlgorithm::TripleDes, s),
    },
    Item {
        name: "SM4 diversify + purchase TAC verify",
        goal: Goal::Absolute(1_000_000),
        measure: |s| diversify_and_verify_tac(SymmetricAlgorithm::Sm4, s),
    },
    Item {
        name: "SM2 sign",
        goal: Goal::Relative(Reference::Sm2Sign, 4.0),
        measure: sm2_sign,
    },
    Item {
        name: "SM2 verify",
        goal: Goal::Relative(Reference::Sm2Verify, 1.5),
        measure: sm2_verify,
    },
    Item {
        name: "P-256 sign",
        goal: Goal::Relative(Reference::P256Sign, 0.9),
        measure: p256_sign,
    },
    Item {
        name: "P-256 verify",
        goal: Goal::Relative(Reference::P256Verify, 0.9),
        measure: p256_verify,
    },
];

/// The bench key: a lab constant, never a real key.
const KEY: [u8; 16] = *b"ykt bench key 01";

/// How many distinct transactions or signatures the verification items cycle through.
const CASES: u64 = 256;

impl CryptoArgs {
    /// Measures every item (after OpenSSL, when asked) and reports one row each.
    pub fn run(self) -> Result<Report> {
        let rates = if self.openssl {
            Some(Rates::measure(self.seconds.ceil() as u32)?)
        } else {
            None
        };
        let rows = ITEMS
            .iter()
            .map(|item| Ok(row(item, (item.measure)(self.seconds)?, rates.as_ref())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Report::ok(Output::List(rows)))
    }
}

/// The row of an item: its rate, the OpenSSL rate it is compared with, the ratio, the goal
/// and whether it is met (unknown when the goal needs an OpenSSL rate that was not measured).
fn row(item: &Item, ops: f64, rates: Option<&Rates>) -> Record {
    let (openssl, goal, met) = match item.goal {
        Goal::None => (None, None, None),
        Goal::Relative(reference, factor) => {
            let openssl = rates.map(|rates| rates.get(reference));
            (
                openssl,
                Some(format!(">= {factor:.1} x openssl {}", reference.name())),
                openssl.map(|openssl| ops >= factor * openssl),
            )
        }
        Goal::Absolute(rate) => (
            None,
            Some(format!(">= {} ops/s", crate::output::thousands(rate))),
            Some(ops >= rate as f64),
        ),
    };
    Record::new()
        .with("item", item.name)
        .with("ops_per_s", ops.round() as u64)
        .with("openssl_ops_per_s", openssl.map(|rate| rate.round() as u64))
        .with(
            "ratio",
            openssl.map(|rate| (ops / rate * 1000.0).round() / 1000.0),
        )
        .with("goal", goal)
        .with("met", met)
}

/// A 32-byte digest that differs for each `n`.
fn digest(n: u64) -> [u8; 32] {
    let mut e = [0x5A; 32];
    e[..8].copy_from_slice(&n.to_be_bytes());
    e
}

fn block_encrypt(algorithm: SymmetricAlgorithm, seconds: f64) -> ykt_crypto::Result<f64> {
    let cipher = BlockCipher::new(&SymmetricKey::new(algorithm, &KEY[..algorithm.key_len()])?);
    let len = algorithm.block_len();
    ops_per_second(seconds, |i| {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&i.to_be_bytes());
        cipher.encrypt_block(&mut block[..len])?;
        black_box(block);
        Ok(())
    })
}

/// A school key prepared once derives each card's DTK from its ASN, then the card's purchase
/// TAC is checked: what the back office does for every uploaded transaction record.
fn diversify_and_verify_tac(
    algorithm: SymmetricAlgorithm,
    seconds: f64,
) -> ykt_crypto::Result<f64> {
    let profile = Profile::for_algorithm(algorithm)?;
    let school = Diversifier::new(profile, &SymmetricKey::new(algorithm, &KEY)?)?;
    let cases = (0..CASES)
        .map(|n| {
            let asn = (0x2026_0000_0000_1000 + n).to_be_bytes();
            let purchase = Purchase {
                card_random: (n as u32).wrapping_mul(0x9E37_79B9).to_be_bytes(),
                offline_seq: n as u16,
                amount: 100 + n as u32,
                transaction_type: 0x06,
                terminal_id: [0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
                terminal_seq: 0x1000 + n as u32,
                date: [0x20, 0x26, 0x05, 0x01],
                time: [0x12, 0x00, n as u8],
            };
            let tac = purchase.tac(profile, &school.derive(&asn))?;
            Ok((asn, purchase, tac))
        })
        .collect::<ykt_crypto::Result<Vec<_>>>()?;
    ops_per_second(seconds, |i| {
        let (asn, purchase, tac) = &cases[(i % CASES) as usize];
        purchase.verify_tac(profile, &school.derive(asn), tac)
    })
}

fn signing(
    seconds: f64,
    sign: impl Fn(&[u8; 32]) -> ykt_crypto::Result<Signature>,
) -> ykt_crypto::Result<f64> {
    ops_per_second(seconds, |i| {
        black_box(sign(&digest(i))?);
        Ok(())
    })
}

fn verification(
    seconds: f64,
    sign: impl Fn(&[u8; 32]) -> ykt_crypto::Result<Signature>,
    verify: impl Fn(&[u8; 32], &Signature) -> ykt_crypto::Result<()>,
) -> ykt_crypto::Result<f64> {
    let cases = (0..CASES)
        .map(|n| Ok((digest(n), sign(&digest(n))?)))
        .collect::<ykt_crypto::Result<Vec<_>>>()?;
    ops_per_second(seconds, |i| {
        let (e, signature) = &cases[(i % CASES) as usize];
        verify(e, signature)
    })
}

fn sm2_sign(seconds: f64) -> ykt_crypto::Result<f64> {
    let key = Sm2PrivateKey::generate()?;
    signing(seconds, |e| key.sign_digest(e))
}

fn sm2_verify(seconds: f64) -> ykt_crypto::Result<f64> {
    let key = Sm2PrivateKey::generate()?;
    verification(
        seconds,
        |e| key.sign_digest(e),
        |e, s| key.public_key().verify_digest(e, s),
    )
}

fn p256_sign(seconds: f64) -> ykt_crypto::Result<f64> {
    let key = P256PrivateKey::generate()?;
    signing(seconds, |e| key.sign_digest(e))
}

fn p256_verify(seconds: f64) -> ykt_crypto::Result<f64> {
    let key = P256PrivateKey::generate()?;
    verification(
        seconds,
        |e| key.sign_digest(e),
        |e, s| key.public_key().verify_digest(e, s),
    )
}
