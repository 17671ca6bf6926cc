//! What every KMS command shares: where the data is (`--data-dir`, `--config`), the
//! configuration (`ykt_kms::config::Config`, so `YKT_*` variables apply), the runtime the
//! KMS runs on, opening the store and the HSM, and the secrets officers bring: passwords, key
//! components and custody shares, from a ceremony file (`--components-from`, see
//! `ykt_kms::ceremony_file`) or at hidden prompts on the terminal.
//!
//! Commands that only read or change the store (listings, registrations, lifecycle changes)
//! open the store alone, so officers do not bring LMK components to list keys; commands that
//! use keys open the HSM too: in officers mode the local HSM's LMK is unsealed with the
//! components the officers bring (`--lmk-from`, else `--components-from`, else prompts).

mod prompt;

use crate::error::{CliError, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ykt_hsm_sim::shamir::Share;
use ykt_hsm_sim::{CeremonySecret, KeyComponent};
use ykt_kms::ceremony::OfficerComponent;
use ykt_kms::ceremony_file::CeremonyFile;
use ykt_kms::config::Config;
use ykt_kms::{Credential, Hsm, Kms, KmsError, Store};
use zeroize::Zeroizing;

pub use prompt::hidden;

/// The help heading of the options every KMS command takes.
const HEADING: &str = "Data and ceremony files";

/// The options of every KMS command group, accepted before or after the subcommand.
#[derive(Args)]
pub struct ContextArgs {
    /// The data directory: store, HSM state, `ykt.toml` [default: $YKT_DATA_DIR, else
    /// $XDG_DATA_HOME/ykt, else ~/.local/share/ykt].
    #[arg(long, global = true, value_name = "DIR", help_heading = HEADING)]
    data_dir: Option<PathBuf>,
    /// The configuration file [default: <data dir>/ykt.toml]; `YKT_*` variables override it.
    #[arg(long, global = true, value_name = "FILE", help_heading = HEADING)]
    config: Option<PathBuf>,
    /// A ceremony file with what each officer present brings (password, key component and
    /// its check value, custody share) instead of hidden prompts. It holds secrets: keep it
    /// off shared disks and delete it after the ceremony.
    #[arg(long, global = true, value_name = "FILE", help_heading = HEADING)]
    components_from: Option<PathBuf>,
    /// A ceremony file with the officers' LMK components, to unseal the local HSM in
    /// officers mode [default: --components-from, else hidden prompts].
    #[arg(long, global = true, value_name = "FILE", help_heading = HEADING)]
    lmk_from: Option<PathBuf>,
}

/// A KMS command group: the shared options and one of its commands.
#[derive(Args)]
pub struct Group<C: Subcommand + GroupCommand> {
    #[command(flatten)]
    context: ContextArgs,
    #[command(subcommand)]
    command: C,
}

/// A command that runs in a [`Context`].
pub trait GroupCommand {
    /// Runs the command.
    fn run(self, context: &mut Context) -> Result<crate::output::Report>;
}

impl<C: Subcommand + GroupCommand> Group<C> {
    /// Loads the context and runs the command in it.
    pub fn run(self) -> Result<crate::output::Report> {
        let mut context = Context::load(&self.context)?;
        self.command.run(&mut context)
    }
}

/// The officers present for an act, each entering their password.
#[derive(Args)]
pub struct Officers {
    /// An officer present for the act (repeat for each). With --components-from and no
    /// --officer, every officer in the file.
    #[arg(long = "officer", id = "officers", value_name = "NAME")]
    pub names: Vec<String>,
}

/// The one officer a single-officer act needs.
#[derive(Args)]
pub struct OneOfficer {
    /// The officer who acts; enters their password.
    #[arg(long = "officer", id = "officer", value_name = "NAME")]
    pub name: String,
}

/// What a command opens.
pub enum Need<'a> {
    /// The store only.
    Store,
    /// The store and the HSM; in officers mode `holders` bring the LMK components (numbered
    /// prompts when there are none).
    Hsm(&'a [String]),
}

/// The loaded configuration and what opens the KMS.
pub struct Context {
    data_dir: PathBuf,
    config_file: Option<PathBuf>,
    config: Config,
    ceremony: Option<CeremonyFile>,
    lmk_from: Option<PathBuf>,
    runtime: tokio::runtime::Runtime,
}

/// The data directory when `--data-dir` is not given.
fn default_data_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("YKT_DATA_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_DATA_HOME").map(PathBuf::from)
        && dir.is_absolute()
    {
        return Ok(dir.join("ykt"));
    }
    var("HOME")
        .map(|home| PathBuf::from(home).join(".local/share/ykt"))
        .ok_or_else(|| CliError::Usage("no data directory: give --data-dir DIR".into()))
}

/// The file of an `sqlite:` database URL.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

impl Context {
    /// Resolves the data directory, loads the configuration and the ceremony file, and starts
    /// a current-thread runtime.
    pub fn load(args: &ContextArgs) -> Result<Self> {
        let data_dir = match &args.data_dir {
            Some(dir) => dir.clone(),
            None => default_data_dir()?,
        };
        let config = Config::load(&data_dir, args.config.as_deref())?;
        let ceremony = args
            .components_from
            .as_deref()
            .map(CeremonyFile::load)
            .transpose()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(CliError::Runtime)?;
        Ok(Self {
            data_dir,
            config_file: args.config.clone(),
            config,
            ceremony,
            lmk_from: args
                .lmk_from
                .clone()
                .or_else(|| args.components_from.clone()),
            runtime,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The configuration file: the one given, or `ykt.toml` in the data directory.
    pub fn config_path(&self) -> PathBuf {
        self.config_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(ykt_kms::config::CONFIG_FILE))
    }

    /// Reads the configuration again (after `ykt kms init --lab` wrote it).
    pub fn reload_config(&mut self) -> Result<()> {
        self.config = Config::load(&self.data_dir, self.config_file.as_deref())?;
        Ok(())
    }

    /// Runs `future` to completion on the command's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// True when the configured database is an SQLite file that does not exist yet.
    pub fn store_missing(&self) -> bool {
        sqlite_file(&self.config.database_url()).is_some_and(|file| !file.exists())
    }

    /// Opens (and, for SQLite, creates) the store and brings its schema up to date.
    pub fn open_store(&self) -> Result<Store> {
        Ok(self.block_on(Store::open(&self.config.database_url()))?)
    }

    /// Opens an existing KMS: the store and, if `need` says so, the HSM.
    pub fn open(&self, need: Need<'_>) -> Result<Kms> {
        if self.store_missing() {
            return Err(CliError::NoKms(self.data_dir.display().to_string()));
        }
        let store = self.open_store()?;
        Ok(match need {
            Need::Store => Kms::store_only(store),
            Need::Hsm(holders) => Kms::new(store, self.open_hsm(holders)?),
        })
    }

    /// Opens the configured HSM; in officers mode `holders` bring the LMK components.
    pub fn open_hsm(&self, holders: &[String]) -> Result<Arc<dyn Hsm>> {
        self.config.open_hsm(|| Ok(self.lmk_secret(holders)?.0))
    }

    /// Opens the in-process HSM of the data directory (to serve it); in officers mode
    /// `holders` bring the LMK components.
    pub fn open_local_hsm(&self, holders: &[String]) -> Result<ykt_kms::provider::LocalHsm> {
        self.config
            .open_local_hsm(|| Ok(self.lmk_secret(holders)?.0))
    }

    /// The ceremony secret of the local HSM, from what the officers bring: LMK components
    /// (XOR, each checked against its printed check value) or custody shares of a secret made
    /// by `ykt kms init --lmk-threshold`. They come from the LMK ceremony file, or one hidden
    /// prompt per holder (numbered prompts without holders) that takes a component's hex or a
    /// share's text. Returns the secret and, per holder, what to show (a component's check
    /// value, or the share's index).
    pub fn lmk_secret(
        &self,
        holders: &[String],
    ) -> Result<(CeremonySecret, Vec<(String, String)>)> {
        let (components, shares) = match &self.lmk_from {
            Some(path) => {
                let file = CeremonyFile::load(path)?;
                (file.components()?, file.shares()?)
            }
            None if holders.is_empty() => {
                let numbered: Vec<String> = (1..=3).map(|n| format!("officer #{n}")).collect();
                prompt_lmk(&numbered)?
            }
            None => prompt_lmk(holders)?,
        };
        match (components.is_empty(), shares.is_empty()) {
            (false, true) => {
                let parts: Vec<KeyComponent> =
                    components.iter().map(|c| c.component.clone()).collect();
                let (secret, kcvs) =
                    CeremonySecret::from_components(&parts).map_err(KmsError::from)?;
                let shown = components
                    .into_iter()
                    .zip(&kcvs.components)
                    .map(|(c, kcv)| (c.officer, kcv.to_string()))
                    .collect();
                Ok((secret, shown))
            }
            (true, false) => {
                let (holders, shares): (Vec<String>, Vec<Share>) = shares.into_iter().unzip();
                let secret = CeremonySecret::from_shares(&shares).map_err(KmsError::from)?;
                let shown = holders
                    .into_iter()
                    .zip(&shares)
                    .map(|(officer, share)| (officer, format!("share {}", share.index())))
                    .collect();
                Ok((secret, shown))
            }
            (false, false) => Err(CliError::Input {
                arg: "LMK",
                reason: "bring components or custody shares, not both".into(),
            }),
            (true, true) => Err(CliError::Input {
                arg: "LMK",
                reason: "no LMK component or custody share was brought".into(),
            }),
        }
    }

    /// The credentials of the officers present: from the ceremony file (every officer in it
    /// when `names` is empty) or one hidden password prompt each.
    pub fn credentials(&self, names: &[String]) -> Result<Vec<Credential>> {
        match &self.ceremony {
            Some(file) => Ok(file.credentials(names)?),
            None if names.is_empty() => Err(CliError::Usage(
                "name the officers present with --officer NAME, or give --components-from FILE"
                    .into(),
            )),
            None => names
                .iter()
                .map(|name| {
                    let password = hidden(
                        &format!("Password of {name}: "),
                        &format!("the password of {name}"),
                        "--components-from",
                    )?;
                    Ok(Credential::new(name, &password))
                })
                .collect(),
        }
    }

    /// The credential of one officer.
    pub fn credential(&self, name: &str) -> Result<Credential> {
        let mut credentials = self.credentials(&[name.to_owned()])?;
        Ok(credentials.remove(0))
    }

    /// The password of a new officer: their entry in the ceremony file, or a hidden prompt
    /// entered twice.
    pub fn new_password(&self, name: &str) -> Result<Zeroizing<String>> {
        if let Some(file) = &self.ceremony {
            let credential = file.credentials(&[name.to_owned()])?.remove(0);
            return Ok(credential.password);
        }
        prompt::new_password(name)
    }

    /// The key components of an import ceremony: every component in the ceremony file, or a
    /// hidden prompt per officer present (who may bring none).
    pub fn key_components(
        &self,
        present: &[String],
        key: &str,
        len: usize,
    ) -> Result<Vec<OfficerComponent>> {
        match &self.ceremony {
            Some(file) => Ok(file.components()?),
            None if present.is_empty() => Err(CliError::Usage(
                "name the officers present with --officer NAME, or give --components-from FILE"
                    .into(),
            )),
            None => prompt_components(present, key, len, "--components-from"),
        }
    }

    /// Custody shares: those the officers present have in the ceremony file (every share in
    /// it when `present` is empty), or a hidden prompt per officer present.
    pub fn shares(&self, present: &[String], what: &str) -> Result<Vec<Share>> {
        let parse = |text: &str| {
            Share::parse(text).map_err(|err| CliError::Input {
                arg: "share",
                reason: err.to_string(),
            })
        };
        match &self.ceremony {
            Some(file) => Ok(file
                .shares()?
                .into_iter()
                .filter(|(officer, _)| present.is_empty() || present.contains(officer))
                .map(|(_, share)| share)
                .collect()),
            None if present.is_empty() => Err(CliError::Usage(
                "name the officers present with --officer NAME, or give --components-from FILE"
                    .into(),
            )),
            None => {
                let mut shares = Vec::new();
                for name in present {
                    let text = hidden(
                        &format!("Share of {name} for {what} (Enter if none): "),
                        &format!("the share of {name}"),
                        "--components-from",
                    )?;
                    if !text.trim().is_empty() {
                        shares.push(parse(&text)?);
                    }
                }
                Ok(shares)
            }
        }
    }
}

/// Asks each LMK holder for a component (hex, then the check value on its form) or a custody
/// share (its text), Enter if they bring none.
fn prompt_lmk(holders: &[String]) -> Result<LmkParts> {
    let mut components = Vec::new();
    let mut shares = Vec::new();
    for holder in holders {
        let text = hidden(
            &format!(
                "LMK component (64 hex digits) or custody share of {holder} (Enter if none): "
            ),
            &format!("the LMK component or share of {holder}"),
            "--lmk-from",
        )?;
        if text.trim().is_empty() {
            continue;
        }
        match Share::parse(&text) {
            Ok(share) => shares.push((holder.clone(), share)),
            Err(_) => components.push(read_component(holder, &text, "--lmk-from")?),
        }
    }
    Ok((components, shares))
}

/// What LMK holders bring: components, or shares with who brought each.
type LmkParts = (Vec<OfficerComponent>, Vec<(String, Share)>);

/// Asks each holder for a component of `what` (`len` bytes of hex, Enter if they bring none)
/// and the check value printed on its form (Enter to skip); `file_option` gives them from a
/// ceremony file instead.
fn prompt_components(
    holders: &[String],
    what: &str,
    len: usize,
    file_option: &str,
) -> Result<Vec<OfficerComponent>> {
    let mut components = Vec::new();
    for holder in holders {
        let text = hidden(
            &format!(
                "Component of {what} from {holder} ({} hex digits, Enter if none): ",
                len * 2
            ),
            &format!("the component of {what} from {holder}"),
            file_option,
        )?;
        if text.trim().is_empty() {
            continue;
        }
        components.push(read_component(holder, &text, file_option)?);
    }
    Ok(components)
}

/// The component `text` (hex) of `holder`, with the check value printed on its form, asked
/// at a hidden prompt (Enter to skip).
fn read_component(holder: &str, text: &str, file_option: &str) -> Result<OfficerComponent> {
    let digits: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    let bytes = Zeroizing::new(
        hex::decode(digits.as_bytes()).map_err(|_| CliError::Hex("a component is not hex"))?,
    );
    let mut component = KeyComponent::new(&bytes);
    let kcv = hidden(
        &format!("Check value on the component form of {holder} (Enter to skip): "),
        &format!("the check value of the component from {holder}"),
        file_option,
    )?;
    let kcv: String = kcv.chars().filter(|c| !c.is_whitespace()).collect();
    if !kcv.is_empty() {
        let kcv = hex::decode(&kcv).map_err(|_| CliError::Hex("a check value is not hex"))?;
        component = component.with_expected_kcv(&kcv);
    }
    Ok(OfficerComponent {
        officer: holder.to_owned(),
        component,
    })
}

/// Creates `path` (which must not exist) with `bytes` and permission `mode`, and syncs it.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |source| CliError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// Creates directory `dir` (and its parents) readable by its owner only, if missing.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CliError::Write {
            path: dir.display().to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file("sqlite:///var/ykt/kms.db?mode=rwc"),
            Some(PathBuf::from("/var/ykt/kms.db"))
        );
        assert_eq!(sqlite_file("sqlite:kms.db"), Some(PathBuf::from("kms.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://ykt@db/ykt"), None);
    }
}
