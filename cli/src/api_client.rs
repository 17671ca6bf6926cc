//! The client identity with which `ykt` commands reach a KMS over its API (`--kms URL`).
//!
//! It is read from a small TOML file, `api-client.toml` in the data directory unless
//! `--client-config FILE` names another; `ykt client enroll NAME --out DIR` writes one, as
//! `DIR/NAME-api-client.toml`, next to the files it makes. Relative paths are relative to the
//! file:
//!
//! ```toml
//! certificate = "station-1.pem"   # the client certificate (PEM)
//! key = "station-1.key"           # its private key (PEM, mode 0600)
//! ca = "ca.pem"                   # the KMS's CA, which the server's certificate must chain to
//! ```

use crate::error::{CliError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use ykt_api::client::{ClientIdentity, KmsClient};

/// The file name of the client configuration in a data or enrolment directory.
pub const CLIENT_CONFIG: &str = "api-client.toml";

/// The client configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The client certificate file.
    pub certificate: PathBuf,
    /// Its private key file.
    pub key: PathBuf,
    /// The CA certificate file.
    pub ca: PathBuf,
}

impl ClientConfig {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|error| CliError::Input {
            arg: "--client-config",
            reason: format!("{}: {}", path.display(), error.message()),
        })
    }

    /// The client of the KMS at `url` with the identity of the configuration at `path`.
    pub fn connect(path: &Path, url: &str) -> Result<KmsClient> {
        let config = Self::read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let identity = ClientIdentity::from_files(
            &base.join(&config.certificate),
            &base.join(&config.key),
            &base.join(&config.ca),
        )?;
        Ok(KmsClient::new(url, &identity)?)
    }
}
