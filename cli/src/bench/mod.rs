//! `ykt bench`: single-thread throughput measurements of ykt's hot paths, compared with
//! OpenSSL on the same machine and with the project's performance goals, and of the terminal's
//! card transactions.

mod card;
mod crypto;
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
}

impl BenchCommand {
    /// Runs the benchmark.
    pub fn run(self) -> Result<Report> {
        match self {
            Self::Crypto(args) => args.run(),
            Self::Card(args) => args.run(),
        }
    }
}
