//! `ykt audit`: the SM3-chained audit log and its signed checkpoints (SM2, or P-256 on a
//! PKCS#11 token). Verification opens the HSM, which gives the signing public keys from the
//! stored wrapped keys, so a store rewritten by someone without the HSM is caught.

use crate::context::{Context, GroupCommand, Need};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report};
use crate::time::parse_since;
use clap::{Args, Subcommand};

/// The audit commands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the whole chain and its checkpoints; exit status 1, with the first record that
    /// cannot be trusted and why, when it is broken.
    Verify(VerifyArgs),
    /// The records as JSON lines on standard output, one per line, oldest first.
    Export(ExportArgs),
    /// Sign a checkpoint at the head of the chain (if it moved since the last one).
    Checkpoint(CheckpointArgs),
}

impl GroupCommand for AuditCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::Verify(args) => args.run(context),
            Self::Export(args) => args.run(context),
            Self::Checkpoint(args) => args.run(context),
        }
    }
}

/// Arguments of `ykt audit verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// An officer bringing an LMK component to unseal the local HSM (officers mode only;
    /// repeat).
    #[arg(long = "officer", value_name = "NAME")]
    holders: Vec<String>,
    /// A checkpoint noted earlier outside the KMS, as SEQ:HASH (`last_checkpoint` and
    /// `last_checkpoint_hash` of a former verification): the chain must still have it.
    #[arg(long, value_name = "SEQ:HASH", value_parser = parse_anchor)]
    anchor: Option<(u64, [u8; 32])>,
}

/// `--anchor`: a sequence number and a 32-byte hash in hex.
fn parse_anchor(text: &str) -> Result<(u64, [u8; 32])> {
    let bad = || CliError::Usage("must be SEQ:HASH, the hash 64 hex digits".into());
    let (seq, hash) = text.split_once(':').ok_or_else(bad)?;
    let seq = seq.parse().map_err(|_| bad())?;
    let hash = hex::decode(hash).map_err(|_| bad())?;
    Ok((seq, hash.try_into().map_err(|_| bad())?))
}

impl VerifyArgs {
    /// Verifies the chain.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Hsm(&self.holders))?;
        let report = context.block_on(kms.verify_audit_anchored(self.anchor))?;
        let intact = report.is_intact();
        let (seq, reason) = match report.fault {
            Some(fault) => (Some(fault.seq), Some(fault.reason)),
            None => (None, None),
        };
        Ok(Report::with_status(
            Output::Record(
                Record::new()
                    .with("intact", intact)
                    .with("records", report.records)
                    .with("checkpoints", report.checkpoints)
                    .with("last_checkpoint", report.last_checkpoint)
                    .with("last_checkpoint_hash", report.last_checkpoint_hash)
                    .with("unsigned", report.unsigned)
                    .with("fault_seq", seq)
                    .with("fault_reason", reason),
            ),
            intact,
        ))
    }
}

/// Arguments of `ykt audit export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Only records from this time on: Unix milliseconds, or an RFC 3339 date
    /// (`2025-03-01`, UTC) or date-time (`2025-03-01T08:00:00+08:00`).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
}

impl ExportArgs {
    /// Exports the records.
    pub fn run(self, context: &Context) -> Result<Report> {
        let since = self.since.as_deref().map(parse_since).transpose()?;
        let kms = context.open(Need::Store)?;
        let entries = context.block_on(kms.audit_entries(since.unwrap_or(i64::MIN)))?;
        let lines = entries
            .iter()
            .map(|entry| serde_json::to_string(entry).map_err(|e| CliError::Output(e.into())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Report::ok(Output::JsonLines(lines)))
    }
}

/// Arguments of `ykt audit checkpoint`.
#[derive(Args)]
pub struct CheckpointArgs {
    /// An officer bringing an LMK component to unseal the local HSM (officers mode only;
    /// repeat).
    #[arg(long = "officer", value_name = "NAME")]
    holders: Vec<String>,
}

impl CheckpointArgs {
    /// Signs a checkpoint.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Hsm(&self.holders))?;
        let signed = context.block_on(kms.checkpoint())?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("signed", signed.is_some())
                .with("checkpoint", signed),
        )))
    }
}
