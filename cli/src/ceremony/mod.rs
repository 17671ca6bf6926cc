//! `ykt ceremony`: the acts that make, recover, ship or end master keys, each under the
//! bureau's quorum of officers (checked by the KMS, not here).
//!
//! Custody shares are handed out only as files, one per custodian
//! (`DIR/<officer>-<key>-v<version>.share`, mode 0600, never overwritten), in the ceremony
//! file's TOML form so a custodian can bring theirs back to a recovery. They are never printed,
//! on standard output, standard error or in JSON. Every file a ceremony will write is checked
//! to be free before the ceremony starts, so a ceremony does not make shares it cannot hand
//! out.

mod destroy;
mod export;
mod generate;
mod import;
mod recover;
mod resplit;

pub use destroy::DestroyArgs;

use crate::context::{Context, GroupCommand, private_dir, write_new};
use crate::error::{CliError, Result};
use crate::output::{Record, Report, Value};
use clap::{Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use ykt_hsm_sim::KeyAlgorithm;
use ykt_kms::ceremony::{IssuedShare, KeyReport};
use zeroize::Zeroizing;

/// The ceremony commands.
#[derive(Subcommand)]
pub enum CeremonyCommand {
    /// Generate a key (or every e-purse master, `--template masters`) in the HSM, optionally
    /// under M-of-N custody with one share file per custodian.
    Generate(generate::GenerateArgs),
    /// Form a key from 2 or 3 clear components brought by different officers.
    Import(import::ImportArgs),
    /// Split a key's custody anew among new custodians; the old shares open nothing any more.
    Resplit(resplit::ResplitArgs),
    /// Recover a key version from its custody backup with the custodians' shares.
    Recover(recover::RecoverArgs),
    /// Export a school's key package: the masters diversified to the school, under its
    /// transport key, signed by the KMS.
    ExportSchool(export::ExportSchoolArgs),
    /// Destroy a pre-active, deactivated or compromised key in the HSM and the store.
    Destroy(DestroyArgs),
}

impl GroupCommand for CeremonyCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::Generate(args) => args.run(context),
            Self::Import(args) => args.run(context),
            Self::Resplit(args) => args.run(context),
            Self::Recover(args) => args.run(context),
            Self::ExportSchool(args) => args.run(context),
            Self::Destroy(args) => args.run(context),
        }
    }
}

/// `--alg`: a key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Alg {
    /// SM4 (the ykt SM4 profile v1).
    Sm4,
    /// Two-key 3DES (the PBOC profile).
    #[value(name = "3des")]
    TripleDes,
    /// AES-128.
    Aes128,
    /// AES-256.
    Aes256,
    /// SM2 (signing).
    Sm2,
    /// ECDSA P-256 (signing).
    P256,
}

impl Alg {
    /// The HSM's algorithm.
    pub fn key_algorithm(self) -> KeyAlgorithm {
        match self {
            Self::Sm4 => KeyAlgorithm::Sm4,
            Self::TripleDes => KeyAlgorithm::TripleDes,
            Self::Aes128 => KeyAlgorithm::Aes128,
            Self::Aes256 => KeyAlgorithm::Aes256,
            Self::Sm2 => KeyAlgorithm::Sm2,
            Self::P256 => KeyAlgorithm::P256,
        }
    }
}

/// The share file of `officer` for version `version` of `key` in `dir`.
pub fn share_path(dir: &Path, officer: &str, key: &str, version: u8) -> PathBuf {
    dir.join(format!("{officer}-{key}-v{version}.share"))
}

/// Makes sure `dir` can take the share files of `planned` (custodian, key, version): creates
/// it (mode 0700) if missing and refuses a file that already exists.
pub fn prepare_shares_dir(dir: &Path, planned: &[(String, String, u8)]) -> Result<()> {
    private_dir(dir)?;
    for (officer, key, version) in planned {
        let path = share_path(dir, officer, key, *version);
        if path.exists() {
            return Err(CliError::Write {
                path: path.display().to_string(),
                source: std::io::ErrorKind::AlreadyExists.into(),
            });
        }
    }
    Ok(())
}

/// Writes one share file per share (mode 0600, never replacing a file); returns their names.
/// Every share is tried: the shares of a committed ceremony exist nowhere else, so one file
/// that cannot be written does not cost the others, and the error names both kinds.
pub fn write_shares(dir: &Path, shares: &[IssuedShare]) -> Result<Vec<String>> {
    let mut written = Vec::with_capacity(shares.len());
    let mut failed = Vec::new();
    for share in shares {
        let path = share_path(dir, &share.officer, &share.key_id, share.version);
        let text = Zeroizing::new(format!(
            "# Custody share {index} of key {key} version {version}, for {officer} only.\n\
             # It is as secret as the key: keep it offline. To recover, copy the share line\n\
             # into {officer}'s entry of a ceremony file.\n\
             officer = \"{officer}\"\n\
             key_id = \"{key}\"\n\
             version = {version}\n\
             index = {index}\n\
             kek_kcv = \"{kcv}\"\n\
             share = \"{text}\"\n",
            index = share.index,
            key = share.key_id,
            version = share.version,
            officer = share.officer,
            kcv = share.kek_kcv,
            text = share.text.as_str(),
        ));
        let name = path
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
        match write_new(&path, text.as_bytes(), 0o600) {
            Ok(()) => written.push(name),
            Err(error) => failed.push(format!("{name} ({error})")),
        }
    }
    if failed.is_empty() {
        Ok(written)
    } else {
        Err(CliError::SharesNotWritten { written, failed })
    }
}

/// What a ceremony that made a key version shows: never the shares, only where they went.
pub fn key_record(report: &KeyReport, share_files: Vec<String>) -> Record {
    Record::new()
        .with("key_id", report.key_id.clone())
        .with("version", u64::from(report.version))
        .with("check_method", report.check_method.clone())
        .with("check", report.check.clone())
        .with("share_files", Value::list(share_files))
}

/// What a re-split shows: the key, the versions given a new backup, the threshold and where
/// the shares went.
pub fn key_record_versions(
    key_id: &str,
    versions: &[u8],
    threshold: u8,
    share_files: Vec<String>,
) -> Record {
    Record::new()
        .with("key_id", key_id)
        .with(
            "versions",
            Value::list(versions.iter().map(|v| u64::from(*v))),
        )
        .with("threshold", u64::from(threshold))
        .with("share_files", Value::list(share_files))
}
