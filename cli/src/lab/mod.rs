//! `ykt lab`: the calculator field engineers use to check what a terminal, PSAM or card
//! computes. It takes lab/test keys in hex and prints only the values asked for.
//!
//! `--alg` chooses the key type and, for the e-purse, the profile: `3des` (16-byte keys) and
//! `des` (8-byte keys) use the PBOC profile, `sm4` (16-byte keys) the ykt SM4 profile v1.

mod diversify;
mod kcv;
mod load;
mod mac;
mod purchase;
mod secure_message;
mod selftest;
mod sm2;
mod sm3;

use crate::error::Result;
use crate::hex_arg::Hex;
use crate::output::{Output, Record, Report};
use clap::{Args, Subcommand, ValueEnum};
use ykt_crypto::{Profile, SymmetricAlgorithm, SymmetricKey};

/// The lab calculations.
#[derive(Subcommand)]
pub enum LabCommand {
    /// Key check value of a key.
    Kcv(kcv::KcvArgs),
    /// Multi-level PBOC key diversification.
    Diversify(diversify::DiversifyArgs),
    /// PBOC MAC (4 bytes) with a zero IV or a card challenge.
    Mac(mac::MacArgs),
    /// Purchase (消费) session key, MAC1, MAC2 and TAC.
    Purchase(purchase::PurchaseArgs),
    /// Load (圈存) session key, MAC1, MAC2 and TAC.
    Load(load::LoadArgs),
    /// A secure-messaging command (line protection, optionally encrypted): the whole APDU.
    SecureMessage(secure_message::SecureMessageArgs),
    /// SM2 keys and signatures (GB/T 32918.2).
    #[command(subcommand)]
    Sm2(sm2::Sm2Command),
    /// SM3 digest (GB/T 32905).
    Sm3(sm3::Sm3Args),
    /// Run the built-in known-answer tests.
    Selftest,
}

impl LabCommand {
    /// Runs the calculation.
    pub fn run(self) -> Result<Report> {
        match self {
            Self::Kcv(args) => args.run(),
            Self::Diversify(args) => args.run(),
            Self::Mac(args) => args.run(),
            Self::Purchase(args) => args.run(),
            Self::Load(args) => args.run(),
            Self::SecureMessage(args) => args.run(),
            Self::Sm2(command) => command.run(),
            Self::Sm3(args) => args.run(),
            Self::Selftest => Ok(selftest::run()),
        }
    }
}

/// The symmetric algorithms of the lab calculator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Alg {
    /// Two-key triple DES, 16-byte keys, PBOC profile.
    #[value(name = "3des")]
    TripleDes,
    /// Single DES, 8-byte keys, PBOC profile.
    Des,
    /// SM4, 16-byte keys, ykt SM4 profile v1.
    Sm4,
}

impl Alg {
    /// The cipher of the keys.
    pub fn algorithm(self) -> SymmetricAlgorithm {
        match self {
            Self::TripleDes => SymmetricAlgorithm::TripleDes,
            Self::Des => SymmetricAlgorithm::Des,
            Self::Sm4 => SymmetricAlgorithm::Sm4,
        }
    }

    /// The e-purse profile of the keys.
    pub fn profile(self) -> Profile {
        match self {
            Self::TripleDes | Self::Des => Profile::PbocDes,
            Self::Sm4 => Profile::YktSm4V1,
        }
    }
}

/// `--alg` and `--key`, for the calculations that take one symmetric key.
#[derive(Args)]
pub struct KeyArgs {
    /// Key algorithm.
    #[arg(long, value_enum)]
    alg: Alg,
    /// The key, in hex (16 bytes for 3des and sm4, 8 for des).
    #[arg(long, value_name = "HEX")]
    key: Hex,
}

impl KeyArgs {
    /// The algorithm chosen.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The key, checked against the algorithm.
    pub fn key(&self) -> Result<SymmetricKey> {
        self.key.key(self.alg.algorithm(), "--key")
    }
}

/// The arguments a purchase and a load have in common.
#[derive(Args)]
pub struct TransactionArgs {
    /// Key algorithm (and e-purse profile).
    #[arg(long, value_enum)]
    alg: Alg,
    /// The card's TAC key (DTK), in hex.
    #[arg(long, value_name = "HEX")]
    dtk: Hex,
    /// Card random from INITIALIZE FOR PURCHASE/LOAD, 4 bytes.
    #[arg(long, value_name = "HEX")]
    random: Hex,
    /// Amount in fen, 4 bytes big-endian.
    #[arg(long, value_name = "HEX")]
    amount: Hex,
    /// Transaction type, 1 byte (06 EP purchase, 02 EP load, ...).
    #[arg(long = "type", value_name = "HEX")]
    transaction_type: Hex,
    /// Terminal ID, 6 bytes.
    #[arg(long, value_name = "HEX")]
    terminal: Hex,
    /// Date, YYYYMMDD BCD (4 bytes).
    #[arg(long, value_name = "HEX")]
    date: Hex,
    /// Time, hhmmss BCD (3 bytes).
    #[arg(long, value_name = "HEX")]
    time: Hex,
}

/// [`TransactionArgs`] checked and converted.
pub struct Transaction {
    /// The e-purse profile.
    pub profile: Profile,
    /// The key algorithm, shared by the DTK and the DPK or DLK.
    pub algorithm: SymmetricAlgorithm,
    /// The card's TAC key.
    pub dtk: SymmetricKey,
    /// Card random.
    pub card_random: [u8; 4],
    /// Amount in fen.
    pub amount: u32,
    /// Transaction type.
    pub transaction_type: u8,
    /// Terminal ID.
    pub terminal_id: [u8; 6],
    /// Date, BCD.
    pub date: [u8; 4],
    /// Time, BCD.
    pub time: [u8; 3],
}

impl TransactionArgs {
    /// Checks the lengths and converts the values.
    pub fn parse(&self) -> Result<Transaction> {
        Ok(Transaction {
            profile: self.alg.profile(),
            algorithm: self.alg.algorithm(),
            dtk: self.dtk.key(self.alg.algorithm(), "--dtk")?,
            card_random: self.random.array("--random")?,
            amount: u32::from_be_bytes(self.amount.array("--amount")?),
            transaction_type: u8::from_be_bytes(self.transaction_type.array("--type")?),
            terminal_id: self.terminal.array("--terminal")?,
            date: self.date.array("--date")?,
            time: self.time.array("--time")?,
        })
    }
}

/// The output of a purchase or load: session key, MAC1, MAC2, TAC.
pub fn cryptograms(
    session_key: &SymmetricKey,
    mac1: [u8; 4],
    mac2: [u8; 4],
    tac: [u8; 4],
) -> Report {
    Report::ok(Output::Record(
        Record::new()
            .with("session_key", session_key.expose_secret())
            .with("mac1", mac1)
            .with("mac2", mac2)
            .with("tac", tac),
    ))
}
