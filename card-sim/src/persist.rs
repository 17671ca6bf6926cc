//! The persistent card image and its storage: a versioned JSON document (`format_version`)
//! replaced atomically (write a temporary file, flush it, rename it over the old one), so a
//! crash leaves either the previous image or the new one on disk, never a mix.
//!
//! The image is what a real card keeps in EEPROM: the file tree with its contents and keys,
//! the PSAM terminal sequence, the proof of the last transaction and the commit journal of a
//! financial command in progress. Like a card's EEPROM it holds clear keys: protect the file.

use crate::card::Chip;
use crate::error::{Result, SimError};
use crate::fs::Df;
use crate::journal::Journal;
use crate::purse::Prove;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The state-file format version this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// Everything the card keeps across power cycles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Image {
    /// What the chip is (user card or PSAM, 3DES or SM4).
    pub chip: Chip,
    /// Answer to reset.
    #[serde(with = "hex_bytes")]
    pub atr: Vec<u8>,
    /// The master file and everything under it.
    pub mf: Df,
    /// PSAM terminal transaction serial: the value the next INIT_SAM_FOR_PURCHASE uses.
    pub terminal_seq: u32,
    /// MAC and TAC of the last e-purse transaction (GET TRANSACTION PROVE).
    pub last_transaction: Option<Prove>,
    /// A financial command's writes, recorded before the first of them is made.
    pub journal: Option<Journal>,
}

#[derive(Serialize)]
struct StateOut<'a> {
    format_version: u64,
    card: &'a Image,
}

#[derive(Deserialize)]
struct StateIn {
    card: Image,
}

/// The state-file text of `image` (pretty JSON with a final newline).
pub(crate) fn encode(image: &Image) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(&StateOut {
        format_version: FORMAT_VERSION,
        card: image,
    })
    .expect("the image serialises: string keys, no maps with foreign keys");
    text.push(b'\n');
    text
}

/// Parses state-file text, refusing other format versions.
pub(crate) fn decode(bytes: &[u8]) -> Result<Image> {
    let value: serde_json::Value = serde_json::from_slice(bytes)?;
    let found = value["format_version"].as_u64().unwrap_or(0);
    if found != FORMAT_VERSION {
        return Err(SimError::UnsupportedVersion {
            found,
            supported: FORMAT_VERSION,
        });
    }
    Ok(serde_json::from_value::<StateIn>(value)?.card)
}

/// Where the image is stored.
#[derive(Debug, Clone)]
pub(crate) enum Storage {
    /// Only in this process (the last persisted bytes are kept by the card).
    Memory,
    /// A state file, replaced atomically on every write.
    File(PathBuf),
}

impl Storage {
    /// Stores `bytes` as the new image.
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        match self {
            Self::Memory => Ok(()),
            Self::File(path) => write_atomically(path, bytes),
        }
    }
}

/// Reads a state file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let temp = path.with_file_name(name);
    let io = |source, at: &Path| SimError::Io {
        path: at.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp).map_err(|e| io(e, &temp))?;
    file.write_all(bytes).map_err(|e| io(e, &temp))?;
    file.sync_all().map_err(|e| io(e, &temp))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(|e| io(e, path))
}

/// Serde adapter: bytes as an upper-case hex string.
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes upper-case hex.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(bytes))
    }

    /// Reads hex (either case).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// Serde adapter: a list of byte strings as a list of hex strings (record files).
pub(crate) mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes a list of upper-case hex strings.
    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(hex::encode_upper))
    }

    /// Reads a list of hex strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|h| hex::decode(h).map_err(D::Error::custom))
            .collect()
    }
}
