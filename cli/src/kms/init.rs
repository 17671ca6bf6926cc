//! `ykt kms init`: the bureau's first ceremony.
//!
//! With the local HSM in officers mode, the officers present each enter a 32-byte LMK
//! component (2 or 3 of them; the others press Enter), or the ceremony file gives them: each
//! component's check value and the combined one are shown, and the LMK formed from them is
//! sealed in the data directory. In lab mode (`unlock = "lab"`, `YKT_HSM_UNLOCK=lab`, or
//! `--lab`, which writes that configuration when there is none) the HSM makes a random secret
//! kept beside it. A remote or PKCS#11 HSM is simply opened. Then every first officer sets a
//! password and the KMS records the bureau, its quorum, the officers and its signing key.
//!
//! Everything the officers type is asked before the HSM is created; if initialisation fails
//! all the same, an HSM directory made by this run is removed, so the command can be run again.

use crate::ceremony::{prepare_shares_dir, write_shares};
use crate::context::{Context, private_dir, write_new};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report, Value};
use crate::time::format_ms;
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ykt_hsm_sim::CeremonySecret;
use ykt_kms::ceremony::IssuedShare;
use ykt_kms::config::{Backend, Unlock};
use ykt_kms::{Credential, Hsm, InitRequest, Kms, KmsError, NewOfficer};

/// Arguments of `ykt kms init`.
#[derive(Args)]
pub struct InitArgs {
    /// The bureau's 6-digit administrative division code.
    #[arg(long, value_name = "CODE")]
    bureau_code: String,
    /// The bureau's name.
    #[arg(long, value_name = "NAME")]
    bureau_name: String,
    /// How many officers every dual-control act needs (at least 2).
    #[arg(long, value_name = "N")]
    quorum: u8,
    /// A first officer, as NAME or NAME=DISPLAY NAME (repeat; at least the quorum). Each sets
    /// a password; in officers mode, 2 or 3 of them bring the LMK components.
    #[arg(long = "officer", value_name = "NAME[=DISPLAY NAME]", required = true)]
    officers: Vec<String>,
    /// Put the LMK under M-of-N custody instead of components: the HSM makes a random secret
    /// and splits it into one share per `--lmk-custodian`, any M of whom unseal the HSM.
    #[arg(long, value_name = "M", requires_all = ["lmk_custodians", "shares_out"])]
    lmk_threshold: Option<u8>,
    /// An officer who keeps a share of the LMK secret (repeat; with --lmk-threshold).
    #[arg(
        long = "lmk-custodian",
        value_name = "NAME",
        requires = "lmk_threshold"
    )]
    lmk_custodians: Vec<String>,
    /// Where the LMK shares go: one file per custodian, mode 0600, never replaced.
    #[arg(long, value_name = "DIR", requires = "lmk_threshold")]
    shares_out: Option<PathBuf>,
    /// Lab mode: when no configuration file exists, write one with `[hsm] unlock = "lab"`.
    /// The LMK's secret is then kept in the data directory: for labs and demos only.
    #[arg(long)]
    lab: bool,
}

impl InitArgs {
    /// Initialises the KMS and shows the bureau, the quorum, the LMK check value and the KMS
    /// signing public key.
    pub fn run(self, context: &mut Context) -> Result<Report> {
        private_dir(context.data_dir())?;
        if self.lab {
            write_lab_config(context)?;
        }
        let store = context.open_store()?;
        let probe = Kms::store_only(store.clone());
        match context.block_on(probe.quorum()) {
            Ok(_) => {
                return Err(KmsError::AlreadyExists {
                    kind: "KMS",
                    id: context.data_dir().display().to_string(),
                }
                .into());
            }
            Err(KmsError::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }

        let mut officers = Vec::with_capacity(self.officers.len());
        for entry in &self.officers {
            let (name, display_name) = entry.split_once('=').unwrap_or((entry, entry));
            let password = context.new_password(name)?;
            officers.push(NewOfficer {
                credential: Credential::new(name, &password),
                display_name: display_name.to_owned(),
            });
        }
        let names: Vec<String> = officers.iter().map(|o| o.credential.name.clone()).collect();

        let config = context.config();
        let hsm_dir = config.hsm_dir();
        let fresh_hsm_dir = config.hsm.backend == Backend::Local && !hsm_dir.exists();
        let mut components = Vec::new();
        let mut share_files = Vec::new();
        let mut secret_kcv = None;
        let (hsm, lmk_kcv): (Arc<dyn Hsm>, Option<String>) =
            match (config.hsm.backend, config.hsm.unlock) {
                (Backend::Local, Unlock::Officers) => {
                    let secret = match (self.lmk_threshold, &self.shares_out) {
                        (Some(threshold), Some(dir)) => {
                            let (secret, files) = self.split_lmk(threshold, dir, &names)?;
                            share_files = files;
                            secret
                        }
                        _ => {
                            let (secret, shown) = context.lmk_secret(&names)?;
                            components = shown
                                .into_iter()
                                .map(|(officer, kcv)| {
                                    Record::new().with("officer", officer).with("kcv", kcv)
                                })
                                .collect();
                            secret
                        }
                    };
                    secret_kcv = Some(secret.kcv().to_string());
                    let hsm = config.create_local_hsm(&secret)?;
                    let kcv = hsm.lmk_kcv().to_string();
                    (Arc::new(hsm), Some(kcv))
                }
                (Backend::Local, Unlock::Lab) => {
                    let hsm = config.create_lab_hsm()?;
                    let kcv = hsm.lmk_kcv().to_string();
                    (Arc::new(hsm), Some(kcv))
                }
                _ => (context.open_hsm(&[])?, None),
            };

        let kms = Kms::new(store, hsm);
        let request = InitRequest {
            bureau_code: self.bureau_code,
            bureau_name: self.bureau_name,
            quorum: self.quorum,
            officers,
            lmk_kcv,
        };
        let info = match context.block_on(kms.initialize(&request)) {
            Ok(info) => info,
            Err(err) => {
                let uninitialised = matches!(
                    context.block_on(kms.quorum()),
                    Err(KmsError::NotFound { .. })
                );
                if fresh_hsm_dir && uninitialised {
                    // Nothing is wrapped under this LMK yet; a new run makes a new one, and
                    // the shares of this one open nothing.
                    drop(std::fs::remove_dir_all(&hsm_dir));
                    if let Some(dir) = &self.shares_out {
                        for name in &share_files {
                            drop(std::fs::remove_file(dir.join(name)));
                        }
                    }
                }
                return Err(err.into());
            }
        };
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("data_dir", context.data_dir().display().to_string())
                .with("bureau_code", info.bureau_code)
                .with("bureau_name", info.bureau_name)
                .with("quorum", u64::from(info.quorum))
                .with("officers", Value::list(names))
                .with("hsm", info.hsm)
                .with("lmk_secret_kcv", secret_kcv)
                .with("lmk_kcv", info.lmk_kcv)
                .with("signing_public_key", info.signing_public_key)
                .with("initialised_at", format_ms(info.initialised_at))
                .with("lmk_components", Value::Records(components))
                .with("lmk_share_files", Value::list(share_files)),
        )))
    }
}

impl InitArgs {
    /// `--lmk-threshold`: a new LMK secret split among the LMK custodians, every one a first
    /// officer, their shares written to `dir`; returns the secret and the share files.
    fn split_lmk(
        &self,
        threshold: u8,
        dir: &Path,
        officers: &[String],
    ) -> Result<(CeremonySecret, Vec<String>)> {
        if let Some(stranger) = self.lmk_custodians.iter().find(|c| !officers.contains(c)) {
            return Err(CliError::Input {
                arg: "--lmk-custodian",
                reason: format!("`{stranger}` is not among the first officers"),
            });
        }
        let mut distinct = self.lmk_custodians.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != self.lmk_custodians.len() {
            return Err(CliError::Input {
                arg: "--lmk-custodian",
                reason: "an officer may hold only one share of the LMK".into(),
            });
        }
        let count = u8::try_from(self.lmk_custodians.len()).unwrap_or(u8::MAX);
        let planned: Vec<(String, String, u8)> = self
            .lmk_custodians
            .iter()
            .map(|c| (c.clone(), LMK_SHARE_NAME.to_owned(), 1))
            .collect();
        prepare_shares_dir(dir, &planned)?;
        let (secret, shares) =
            CeremonySecret::split_new(threshold, count).map_err(KmsError::from)?;
        let kcv = secret.kcv().to_string();
        let issued: Vec<IssuedShare> = self
            .lmk_custodians
            .iter()
            .zip(shares)
            .map(|(officer, share)| IssuedShare {
                officer: officer.clone(),
                key_id: LMK_SHARE_NAME.into(),
                version: 1,
                index: share.index(),
                text: share.to_text(),
                kek_kcv: kcv.clone(),
            })
            .collect();
        Ok((secret, write_shares(dir, &issued)?))
    }
}

/// The key name in LMK share files.
const LMK_SHARE_NAME: &str = "lmk";

/// `--lab`: writes `[hsm] unlock = "lab"` to the configuration file if there is none, and
/// refuses a configuration that is not in lab mode.
fn write_lab_config(context: &mut Context) -> Result<()> {
    let path = context.config_path();
    if !path.exists() {
        write_new(&path, b"[hsm]\nunlock = \"lab\"\n", 0o644)?;
        context.reload_config()?;
    }
    let hsm = &context.config().hsm;
    if hsm.backend != Backend::Local || hsm.unlock != Unlock::Lab {
        return Err(CliError::Input {
            arg: "--lab",
            reason: format!(
                "{} (or YKT_HSM/YKT_HSM_UNLOCK) configures an HSM that is not the local one in lab mode",
                path.display()
            ),
        });
    }
    Ok(())
}
