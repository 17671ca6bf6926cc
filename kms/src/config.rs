//! Configuration: where the data lives, which store and which HSM.
//!
//! Read from `ykt.toml` in the data directory (or a file given explicitly), then overridden by
//! `YKT_*` environment variables. With nothing configured the KMS runs on its embedded
//! defaults: an SQLite file and the in-process HSM in the data directory.
//!
//! ```toml
//! database = "postgres://ykt:ykt@127.0.0.1/ykt"   # YKT_DATABASE_URL; default sqlite in the data dir
//!
//! [hsm]
//! backend = "local"          # YKT_HSM: local | remote | pkcs11
//! unlock = "officers"        # YKT_HSM_UNLOCK: officers | lab (local only)
//! address = "10.0.0.5:1500"  # YKT_HSM_ADDRESS (remote)
//! client = "kms-1"           # YKT_HSM_CLIENT (remote)
//! secret_file = "hsm.secret" # YKT_HSM_SECRET_FILE (remote; hex)
//! module = "/usr/lib/softhsm/libsofthsm2.so"  # YKT_PKCS11_MODULE
//! token = "ykt"              # YKT_PKCS11_TOKEN
//! pin_file = "token.pin"     # YKT_PKCS11_PIN_FILE
//! ```
//!
//! Secrets (the host secret, the token PIN) are read from files, never from the
//! configuration text itself.

use crate::error::{KmsError, Result};
use crate::provider::pkcs11::Pkcs11Config;
use crate::provider::remote::RemoteConfig;
use crate::provider::{Hsm, LocalHsm, Pkcs11Hsm, RemoteHsm};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ykt_hsm_sim::CeremonySecret;
use zeroize::Zeroizing;

/// The configuration file's name inside the data directory.
pub const CONFIG_FILE: &str = "ykt.toml";

/// Which HSM the KMS talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The simulator in this process, its LMK sealed in `<data>/hsm`.
    #[default]
    Local,
    /// A simulator over the host protocol.
    Remote,
    /// A PKCS#11 token.
    Pkcs11,
}

/// How the in-process HSM's LMK is unsealed at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unlock {
    /// The officers bring their LMK components or shares at every start.
    #[default]
    Officers,
    /// Lab mode: the ceremony secret is kept in `<data>/hsm/lab-unlock.key`, so anyone who
    /// can read the data directory holds the LMK. For labs, demos and tests only.
    Lab,
}

/// The `[hsm]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    /// Backend.
    #[serde(default)]
    pub backend: Backend,
    /// How the local HSM unlocks.
    #[serde(default)]
    pub unlock: Unlock,
    /// Remote: `host:port`.
    pub address: Option<String>,
    /// Remote: client name.
    pub client: Option<String>,
    /// Remote: file holding the shared secret (hex).
    pub secret_file: Option<PathBuf>,
    /// PKCS#11: module path.
    pub module: Option<PathBuf>,
    /// PKCS#11: token label.
    pub token: Option<String>,
    /// PKCS#11: file holding the user PIN.
    pub pin_file: Option<PathBuf>,
}

/// The whole configuration.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The data directory (not read from the file: it is where the file is).
    #[serde(skip)]
    pub data_dir: PathBuf,
    /// Database URL; default an SQLite file in the data directory.
    pub database: Option<String>,
    /// HSM settings.
    #[serde(default)]
    pub hsm: HsmConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A database URL may carry a password.
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("database", &self.database.as_ref().map(|_| "<configured>"))
            .field("hsm", &self.hsm)
            .finish()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// Loads `file` (default `<data_dir>/ykt.toml`, which may be absent) and applies the
    /// `YKT_*` environment overrides.
    pub fn load(data_dir: &Path, file: Option<&Path>) -> Result<Self> {
        let default_file = data_dir.join(CONFIG_FILE);
        let (path, required) = match file {
            Some(path) => (path.to_path_buf(), true),
            None => (default_file, false),
        };
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Self::default(),
            Err(e) => {
                return Err(KmsError::InvalidInput {
                    field: "configuration file",
                    reason: format!("{}: {e}", path.display()),
                });
            }
        };
        config.data_dir = data_dir.to_path_buf();
        config.apply_env()?;
        Ok(config)
    }

    /// Parses configuration text; unknown keys are refused.
    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| KmsError::InvalidInput {
            field: "configuration file",
            reason: e.message().to_owned(),
        })
    }

    fn apply_env(&mut self) -> Result<()> {
        if let Some(url) = env("YKT_DATABASE_URL") {
            self.database = Some(url);
        }
        if let Some(backend) = env("YKT_HSM") {
            self.hsm.backend = match backend.as_str() {
                "local" => Backend::Local,
                "remote" => Backend::Remote,
                "pkcs11" => Backend::Pkcs11,
                _ => {
                    return Err(KmsError::InvalidInput {
                        field: "YKT_HSM",
                        reason: "local, remote or pkcs11".into(),
                    });
                }
            };
        }
        if let Some(unlock) = env("YKT_HSM_UNLOCK") {
            self.hsm.unlock = match unlock.as_str() {
                "officers" => Unlock::Officers,
                "lab" => Unlock::Lab,
                _ => {
                    return Err(KmsError::InvalidInput {
                        field: "YKT_HSM_UNLOCK",
                        reason: "officers or lab".into(),
                    });
                }
            };
        }
        let hsm = &mut self.hsm;
        for (name, slot) in [
            ("YKT_HSM_ADDRESS", &mut hsm.address),
            ("YKT_HSM_CLIENT", &mut hsm.client),
            ("YKT_PKCS11_TOKEN", &mut hsm.token),
        ] {
            if let Some(value) = env(name) {
                *slot = Some(value);
            }
        }
        for (name, slot) in [
            ("YKT_HSM_SECRET_FILE", &mut hsm.secret_file),
            ("YKT_PKCS11_MODULE", &mut hsm.module),
            ("YKT_PKCS11_PIN_FILE", &mut hsm.pin_file),
        ] {
            if let Some(value) = env(name) {
                *slot = Some(PathBuf::from(value));
            }
        }
        Ok(())
    }

    /// The database URL: the configured one, or the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("kms.db").display()
            )
        })
    }

    /// The in-process HSM's state directory.
    pub fn hsm_dir(&self) -> PathBuf {
        self.data_dir.join("hsm")
    }

    /// The lab-mode unlock file.
    pub fn lab_unlock_file(&self) -> PathBuf {
        self.hsm_dir().join("lab-unlock.key")
    }
}

/// Reads a secret file (a PIN) as its trimmed text.
fn read_secret(path: &Path, what: &'static str) -> Result<Zeroizing<String>> {
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| KmsError::InvalidInput {
                field: what,
                reason: format!("{}: {e}", path.display()),
            })?,
        );
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// Reads a secret kept in a file as hex (whitespace ignored): a host-protocol client secret,
/// the lab unlock secret. `what` names the file in errors, which never quote its content.
pub fn read_hex_secret(path: &Path, what: &'static str) -> Result<Zeroizing<Vec<u8>>> {
    let text = read_secret(path, what)?;
    let digits: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    Ok(Zeroizing::new(hex::decode(digits.as_bytes()).map_err(
        |_| KmsError::InvalidInput {
            field: what,
            reason: format!("{}: not hex", path.display()),
        },
    )?))
}

fn required<'a, T: ?Sized>(value: Option<&'a T>, what: &'static str) -> Result<&'a T> {
    value.ok_or(KmsError::InvalidInput {
        field: what,
        reason: "not configured".into(),
    })
}

impl Config {
    /// Opens the configured HSM. The local HSM is opened by [`Config::open_local_hsm`].
    pub fn open_hsm<E: From<KmsError>>(
        &self,
        unlock: impl FnOnce() -> Result<CeremonySecret, E>,
    ) -> Result<Arc<dyn Hsm>, E> {
        match self.hsm.backend {
            Backend::Local => Ok(Arc::new(self.open_local_hsm(unlock)?)),
            Backend::Remote => {
                let secret_file = required(self.hsm.secret_file.as_deref(), "hsm.secret_file")?;
                let secret = read_hex_secret(secret_file, "hsm.secret_file")?;
                Ok(Arc::new(RemoteHsm::connect(RemoteConfig {
                    address: required(self.hsm.address.as_deref(), "hsm.address")?.to_owned(),
                    client: required(self.hsm.client.as_deref(), "hsm.client")?.to_owned(),
                    secret,
                })?))
            }
            Backend::Pkcs11 => {
                let pin_file = required(self.hsm.pin_file.as_deref(), "hsm.pin_file")?;
                Ok(Arc::new(Pkcs11Hsm::open(Pkcs11Config {
                    module: required(self.hsm.module.as_deref(), "hsm.module")?.to_path_buf(),
                    token_label: required(self.hsm.token.as_deref(), "hsm.token")?.to_owned(),
                    pin: read_secret(pin_file, "hsm.pin_file")?,
                })?))
            }
        }
    }

    /// Opens the in-process HSM in the data directory, unsealed with the lab unlock file or,
    /// in officers mode, with the secret `unlock` gathers from the officers.
    pub fn open_local_hsm<E: From<KmsError>>(
        &self,
        unlock: impl FnOnce() -> Result<CeremonySecret, E>,
    ) -> Result<LocalHsm, E> {
        let secret = match self.hsm.unlock {
            Unlock::Lab => {
                let bytes = read_hex_secret(&self.lab_unlock_file(), "lab unlock file")?;
                CeremonySecret::from_bytes(&bytes).map_err(KmsError::from)?
            }
            Unlock::Officers => unlock()?,
        };
        Ok(LocalHsm::open(&self.hsm_dir(), &secret)?)
    }

    /// First start of the local HSM in officers mode: forms and seals the LMK from the
    /// ceremony secret the officers brought.
    pub fn create_local_hsm(&self, secret: &CeremonySecret) -> Result<LocalHsm> {
        if self.hsm.unlock != Unlock::Officers {
            return Err(KmsError::InvalidInput {
                field: "hsm.unlock",
                reason: "officer components are for `unlock = \"officers\"`".into(),
            });
        }
        LocalHsm::create(&self.hsm_dir(), secret)
    }

    /// First start of the local HSM in lab mode: a random ceremony secret, kept in the lab
    /// unlock file (mode 0600) next to the sealed LMK.
    pub fn create_lab_hsm(&self) -> Result<LocalHsm> {
        if self.hsm.unlock != Unlock::Lab {
            return Err(KmsError::InvalidInput {
                field: "hsm.unlock",
                reason: "a lab HSM needs `unlock = \"lab\"` (YKT_HSM_UNLOCK=lab)".into(),
            });
        }
        let bytes = Zeroizing::new(ykt_crypto::random::bytes::<32>()?);
        let secret = CeremonySecret::from_bytes(&bytes[..])?;
        let hsm = LocalHsm::create(&self.hsm_dir(), &secret)?;
        write_private(&self.lab_unlock_file(), hex::encode(&bytes[..]).as_bytes())?;
        Ok(hsm)
    }
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| KmsError::InvalidInput {
        field: "data directory",
        reason: format!("{}: {e}", path.display()),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_and_unknown_keys_are_refused() {
        let config = Config::parse(
            "database = \"postgres://x\"\n[hsm]\nbackend = \"remote\"\naddress = \"a:1\"\n",
        )
        .unwrap();
        assert_eq!(config.hsm.backend, Backend::Remote);
        assert_eq!(config.database.as_deref(), Some("postgres://x"));
        assert!(Config::parse("[hsm]\nbakend = \"local\"\n").is_err());
        assert!(Config::parse("[hsm]\nbackend = \"cloud\"\n").is_err());
    }

    #[test]
    fn embedded_defaults_need_no_file() {
        let dir = Path::new("/nonexistent/ykt");
        let config = Config::load(dir, None).unwrap();
        assert_eq!(config.hsm.backend, Backend::Local);
        assert!(
            config
                .database_url()
                .starts_with("sqlite:///nonexistent/ykt/kms.db")
        );
        assert!(Config::load(dir, Some(Path::new("/nonexistent/x.toml"))).is_err());
    }
}
