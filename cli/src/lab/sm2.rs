//! `ykt lab sm2`: SM2 key generation, signing and verification with the signer's
//! distinguishing identifier (GB/T 32918.2).

use crate::error::{CliError, Result};
use crate::hex_arg::Hex;
use crate::output::{Output, Record, Report};
use clap::{Args, Subcommand};
use ykt_crypto::sm2::{DEFAULT_ID, Sm2PrivateKey, Sm2PublicKey};
use ykt_crypto::{CryptoError, Signature};

/// The SM2 operations.
#[derive(Subcommand)]
pub enum Sm2Command {
    /// A fresh key pair: private_key (32 bytes) and public_key (04 || x || y).
    Keygen,
    /// Sign a message; prints the signature raw (r || s) and in DER.
    Sign(SignArgs),
    /// Verify a signature; exit status 1 when it does not verify.
    Verify(VerifyArgs),
}

impl Sm2Command {
    /// Runs the operation.
    pub fn run(self) -> Result<Report> {
        match self {
            Self::Keygen => keygen(),
            Self::Sign(args) => args.run(),
            Self::Verify(args) => args.run(),
        }
    }
}

/// The signer's distinguishing identifier.
#[derive(Args)]
pub struct IdArgs {
    /// Signer ID in ASCII [default: 1234567812345678].
    #[arg(long, value_name = "ASCII", conflicts_with = "id_hex")]
    id: Option<String>,
    /// Signer ID in hex.
    #[arg(long, value_name = "HEX")]
    id_hex: Option<Hex>,
}

impl IdArgs {
    fn bytes(&self) -> Result<&[u8]> {
        match (&self.id, &self.id_hex) {
            (Some(id), _) if !id.is_ascii() => Err(CliError::Input {
                arg: "--id",
                reason: "must be ASCII (use --id-hex for other bytes)".into(),
            }),
            (Some(id), _) => Ok(id.as_bytes()),
            (None, Some(id)) => Ok(id.bytes()),
            (None, None) => Ok(DEFAULT_ID),
        }
    }
}

/// An identifier too long for ENTL is the caller's mistake; anything else is a failure.
fn id_error(err: CryptoError) -> CliError {
    match err {
        CryptoError::IdTooLong => CliError::rejected("--id")(err),
        other => other.into(),
    }
}

fn keygen() -> Result<Report> {
    let key = Sm2PrivateKey::generate()?;
    Ok(Report::ok(Output::Record(
        Record::new()
            .with("private_key", &key.to_bytes()[..])
            .with("public_key", key.public_key().to_uncompressed()),
    )))
}

/// Arguments of `ykt lab sm2 sign`.
#[derive(Args)]
pub struct SignArgs {
    /// The private key d, 32 bytes.
    #[arg(long, value_name = "HEX")]
    key: Hex,
    /// The message, in hex.
    #[arg(long, value_name = "HEX")]
    msg: Hex,
    #[command(flatten)]
    id: IdArgs,
}

impl SignArgs {
    /// Computes `{signature, signature_der}`.
    pub fn run(self) -> Result<Report> {
        let key =
            Sm2PrivateKey::from_bytes(self.key.bytes()).map_err(CliError::rejected("--key"))?;
        let signature = key
            .sign(self.id.bytes()?, self.msg.bytes())
            .map_err(id_error)?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("signature", signature.to_raw())
                .with("signature_der", signature.to_der()),
        )))
    }
}

/// Arguments of `ykt lab sm2 verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The public key, SEC1: 04 || x || y (65 bytes) or compressed (33 bytes).
    #[arg(long, value_name = "HEX")]
    key: Hex,
    /// The message, in hex.
    #[arg(long, value_name = "HEX")]
    msg: Hex,
    /// The signature: raw r || s (64 bytes) or DER.
    #[arg(long, value_name = "HEX")]
    signature: Hex,
    #[command(flatten)]
    id: IdArgs,
}

impl VerifyArgs {
    /// Computes `{valid}`; the report fails when the signature does not verify.
    pub fn run(self) -> Result<Report> {
        let key = Sm2PublicKey::from_sec1(self.key.bytes()).map_err(CliError::rejected("--key"))?;
        let bytes = self.signature.bytes();
        let signature = Signature::from_der(bytes)
            .or_else(|_| Signature::from_raw(bytes))
            .map_err(CliError::rejected("--signature"))?;
        let valid = match key.verify(self.id.bytes()?, self.msg.bytes(), &signature) {
            Ok(()) => true,
            Err(CryptoError::BadSignature) => false,
            Err(other) => return Err(id_error(other)),
        };
        Ok(Report::with_status(
            Output::Record(Record::new().with("valid", valid)),
            valid,
        ))
    }
}
