//! `ykt bench`: single-thread throughput measurements of ykt's hot paths, compared with
//! OpenSSL on the same machine and with the project's performance goals, of the terminal's
//! card transactions, of the KMS's HSM operations through each provider, and of the KMS API
//! under concurrent load.

mod api;
mod card;
mod crypto;
mod issue;
mod kms;
mod measure;
mod openssl;

use crate::error::Result;
use crate::output::Report;
use clap::Subcommand;

/// The benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Block ciphers, diversification + TAC verification, SM2 and P-256 signatures.
    Crypto(crypto::CryptoArgs),
    /// APDU round trips and whole purchases against virtual cards, in process and (with
    /// `--pcsc`) through pcscd and vpcd.
    Card(card::CardArgs),
    /// The KMS's HSM operations (derivation, TAC verification single and batched, SM2 and
    /// P-256 signing) directly, in process, over the TCP host protocol and on a PKCS#11 token.
    Kms(kms::KmsArgs),
    /// Issuing through a lab KMS: user cards and PSAMs per minute and APDUs per card, in
    /// process and (with `--pcsc`) through pcscd from a card feeder on vpcd.
    Issue(issue::IssueArgs),
    /// The KMS API under load, served in process on 127.0.0.1: P-256 and SM2 signing and TAC
    /// verification from concurrent clients over kept-alive and new connections, or (with
    /// `--soak`) a mixed load with the process's memory sampled.
    Api(api::ApiArgs),
}

impl BenchCommand {
    /// Runs the benchmark.
    pub fn run(self) -> Result<Report> {
        match self {
            Self::Crypto(args) => args.run(),
            Self::Card(args) => args.run(),
            Self::Kms(args) => args.run(),
            Self::Issue(args) => args.run(),
            Self::Api(args) => args.run(),
        }
    }
}
