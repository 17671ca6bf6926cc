//! `ykt key`: keys in the store and their lifecycle. A key is one template at one scope
//! (`purchase-sm4`, `transport-sm4-2133010601`); its versions are the card key version byte.
//!
//! Suspending and reporting a compromise are protective and need one officer; resuming,
//! retiring, rotating and destroying need the quorum (the KMS decides). Listings, aliases and
//! lifecycle changes use the store only; rotation, destruction and check values use the HSM.

use crate::ceremony::{DestroyArgs, key_record, prepare_shares_dir, write_shares};
use crate::context::{Context, GroupCommand, Need, Officers, OneOfficer};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report, Value};
use crate::time::format_ms;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use ykt_crypto::KcvMethod;
use ykt_kms::keys::KeyInfo;
use ykt_kms::model::KeyState;

/// The key commands.
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Every key: state, versions, custody, aliases.
    List(ListArgs),
    /// One key: versions, custodians, aliases and lifecycle history.
    Show(ShowArgs),
    /// Make a new version current (custody split anew among the same custodians).
    Rotate(RotateArgs),
    /// Take a key out of use for a while (one officer).
    Suspend(TransitionArgs),
    /// Put a suspended key back into use.
    Resume(TransitionArgs),
    /// Put a pre-active key into use (the quorum).
    Activate(TransitionArgs),
    /// Deactivate a key (it then only verifies past transactions), or with --version retire
    /// one old version.
    Retire(RetireArgs),
    /// Report a key known or suspected to be disclosed (one officer): refused for everything
    /// from then on.
    Compromised(CompromisedArgs),
    /// Destroy a pre-active, deactivated or compromised key (as `ykt ceremony destroy`).
    Destroy(DestroyArgs),
    /// Point an alias at a key (one officer).
    Alias(AliasArgs),
    /// Recompute a key version's check value in the HSM and compare it with the stored one.
    Kcv(KcvArgs),
}

impl GroupCommand for KeyCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::List(args) => args.run(context),
            Self::Show(args) => args.run(context),
            Self::Rotate(args) => args.run(context),
            Self::Suspend(args) => args.run(context, KeyState::Suspended),
            Self::Resume(args) | Self::Activate(args) => args.run(context, KeyState::Active),
            Self::Retire(args) => args.run(context),
            Self::Compromised(args) => args.run(context),
            Self::Destroy(args) => args.run(context),
            Self::Alias(args) => args.run(context),
            Self::Kcv(args) => args.run(context),
        }
    }
}

/// Arguments of `ykt key list` (none of its own).
#[derive(Args)]
pub struct ListArgs {}

impl ListArgs {
    /// Lists the keys.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let keys = context.block_on(kms.keys())?;
        Ok(Report::ok(Output::List(
            keys.into_iter()
                .map(|key| {
                    Record::new()
                        .with("id", key.id)
                        .with("usage", key.usage)
                        .with("algorithm", key.algorithm)
                        .with("scope", key.scope)
                        .with("state", key.state)
                        .with("current_version", u64::from(key.current_version))
                        .with("min_version", u64::from(key.min_version))
                        .with("custody", key.custody.map(|(m, n)| format!("{m} of {n}")))
                        .with("aliases", Value::list(key.aliases))
                })
                .collect(),
        )))
    }
}

/// Arguments of `ykt key show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The key (ID or alias).
    key: String,
}

impl ShowArgs {
    /// Shows the key.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let key = context.block_on(kms.key(&self.key))?;
        Ok(Report::ok(Output::Record(show(key))))
    }
}

/// Everything known of a key, never its wrapped bytes.
fn show(key: KeyInfo) -> Record {
    let (threshold, count) = key.custody.unzip();
    Record::new()
        .with("id", key.id)
        .with("usage", key.usage)
        .with("algorithm", key.algorithm)
        .with("scope", key.scope)
        .with("state", key.state)
        .with("state_at", format_ms(key.state_at))
        .with("state_reason", key.state_reason)
        .with("current_version", u64::from(key.current_version))
        .with("min_version", u64::from(key.min_version))
        .with("custody_threshold", threshold.map(u64::from))
        .with("custody_shares", count.map(u64::from))
        .with("aliases", Value::list(key.aliases))
        .with(
            "versions",
            Value::Records(
                key.versions
                    .into_iter()
                    .map(|v| {
                        Record::new()
                            .with("version", u64::from(v.version))
                            .with("state", v.state)
                            .with("check_method", v.check_method)
                            .with("check_value", v.check_value)
                            .with("custody", v.custody)
                            .with("created_at", format_ms(v.created_at))
                    })
                    .collect(),
            ),
        )
        .with(
            "custodians",
            Value::Records(
                key.custodians
                    .into_iter()
                    .map(|(officer, index)| {
                        Record::new()
                            .with("officer", officer)
                            .with("share_index", u64::from(index))
                    })
                    .collect(),
            ),
        )
        .with(
            "transitions",
            Value::Records(
                key.transitions
                    .into_iter()
                    .map(|t| {
                        Record::new()
                            .with("at", format_ms(t.at))
                            .with("version", t.version.map(u64::from))
                            .with("from", t.from)
                            .with("to", t.to)
                            .with("reason", t.reason)
                            .with("actors", t.actors)
                    })
                    .collect(),
            ),
        )
}

/// Arguments of `ykt key rotate`.
#[derive(Args)]
pub struct RotateArgs {
    /// The key (ID or alias).
    key: String,
    /// The directory for the new version's share files (needed when the key has custody).
    #[arg(long, value_name = "DIR")]
    shares_out: Option<PathBuf>,
    #[command(flatten)]
    officers: Officers,
}

impl RotateArgs {
    /// Rotates the key and writes the new version's share files.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Hsm(&self.officers.names))?;
        let info = context.block_on(kms.key(&self.key))?;
        if info.custody.is_some() {
            let Some(dir) = &self.shares_out else {
                return Err(CliError::Input {
                    arg: "--shares-out",
                    reason: format!(
                        "{} has custodians: the new version's shares need a directory",
                        info.id
                    ),
                });
            };
            let next = info.current_version.saturating_add(1);
            let planned: Vec<(String, String, u8)> = info
                .custodians
                .iter()
                .map(|(officer, _)| (officer.clone(), info.id.clone(), next))
                .collect();
            prepare_shares_dir(dir, &planned)?;
        }
        let approvals = context.credentials(&self.officers.names)?;
        let report = context.block_on(kms.rotate_key(&approvals, &self.key))?;
        let files = match &self.shares_out {
            Some(dir) if !report.shares.is_empty() => write_shares(dir, &report.shares)?,
            _ => Vec::new(),
        };
        Ok(Report::ok(Output::Record(key_record(&report, files))))
    }
}

/// What a lifecycle change shows.
fn changed(context: &Context, kms: &ykt_kms::Kms, key: &str, reason: &str) -> Result<Report> {
    let info = context.block_on(kms.key(key))?;
    Ok(Report::ok(Output::Record(
        Record::new()
            .with("key_id", info.id)
            .with("state", info.state)
            .with("min_version", u64::from(info.min_version))
            .with("current_version", u64::from(info.current_version))
            .with("reason", reason),
    )))
}

/// Arguments of `ykt key suspend`, `ykt key resume` and `ykt key activate`.
#[derive(Args)]
pub struct TransitionArgs {
    /// The key (ID or alias).
    key: String,
    /// Why.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    #[command(flatten)]
    officers: Officers,
}

impl TransitionArgs {
    /// Moves the key to `target`.
    pub fn run(self, context: &Context, target: KeyState) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let approvals = context.credentials(&self.officers.names)?;
        context.block_on(kms.transition(&approvals, &self.key, target, &self.reason))?;
        changed(context, &kms, &self.key, &self.reason)
    }
}

/// Arguments of `ykt key retire`.
#[derive(Args)]
pub struct RetireArgs {
    /// The key (ID or alias).
    key: String,
    /// Why.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Retire only this version (older than the current one) instead of the whole key.
    #[arg(long, value_name = "V")]
    version: Option<u8>,
    #[command(flatten)]
    officers: Officers,
}

impl RetireArgs {
    /// Deactivates the key, or retires the version.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let approvals = context.credentials(&self.officers.names)?;
        context.block_on(async {
            match self.version {
                Some(version) => {
                    kms.retire_version(&approvals, &self.key, version, &self.reason)
                        .await
                }
                None => {
                    kms.transition(&approvals, &self.key, KeyState::Deactivated, &self.reason)
                        .await
                }
            }
        })?;
        changed(context, &kms, &self.key, &self.reason)
    }
}

/// Arguments of `ykt key compromised`.
#[derive(Args)]
pub struct CompromisedArgs {
    /// The key (ID or alias).
    key: String,
    /// What is known or suspected.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    #[command(flatten)]
    officer: OneOfficer,
}

impl CompromisedArgs {
    /// Marks the key compromised.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let credential = context.credential(&self.officer.name)?;
        context.block_on(kms.transition(
            std::slice::from_ref(&credential),
            &self.key,
            KeyState::Compromised,
            &self.reason,
        ))?;
        changed(context, &kms, &self.key, &self.reason)
    }
}

/// Arguments of `ykt key alias`.
#[derive(Args)]
pub struct AliasArgs {
    /// The alias: `alias/` then letters, digits and `-_./` (aliases never take a key ID's name).
    alias: String,
    /// The key it points at (ID or alias).
    key: String,
    #[command(flatten)]
    officer: OneOfficer,
}

impl AliasArgs {
    /// Points the alias at the key.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let credential = context.credential(&self.officer.name)?;
        context.block_on(kms.set_alias(&credential, &self.alias, &self.key))?;
        let id = context.block_on(kms.resolve(&self.alias))?;
        Ok(Report::ok(Output::Record(
            Record::new().with("alias", self.alias).with("key_id", id),
        )))
    }
}

/// `--method`: how a check value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Encrypt a block of zeros, leftmost 3 bytes (the DES/3DES default).
    EncryptZeros,
    /// CMAC of a block of zeros, leftmost 5 bytes (the AES/SM4 default).
    Cmac,
}

/// Arguments of `ykt key kcv`.
#[derive(Args)]
pub struct KcvArgs {
    /// The key (ID or alias).
    key: String,
    /// The version [default: the current one].
    #[arg(long, value_name = "V")]
    version: Option<u8>,
    /// The method [default: the algorithm's; only it is compared with the stored value].
    #[arg(long, value_enum)]
    method: Option<Method>,
    /// An officer bringing an LMK component to unseal the local HSM (officers mode only;
    /// repeat).
    #[arg(long = "officer", value_name = "NAME")]
    holders: Vec<String>,
}

impl KcvArgs {
    /// Computes the check value and compares it.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Hsm(&self.holders))?;
        let method = self.method.map(|m| match m {
            Method::EncryptZeros => KcvMethod::EncryptZeros,
            Method::Cmac => KcvMethod::Cmac,
        });
        let (kcv, matches) = context.block_on(kms.kcv(&self.key, self.version, method))?;
        let info = context.block_on(kms.key(&self.key))?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("key_id", info.id)
                .with(
                    "version",
                    u64::from(self.version.unwrap_or(info.current_version)),
                )
                .with("method", kcv.method().name())
                .with("kcv", kcv.to_string())
                .with("matches_stored", matches),
        )))
    }
}
