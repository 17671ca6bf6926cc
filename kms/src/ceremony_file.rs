//! The scripted ceremony input (`--components-from FILE`): what each officer brings —
//! password, key component with its printed check value, share — for labs, tests and
//! rehearsed ceremonies. Interactive ceremonies ask each officer at a hidden prompt instead.
//!
//! ```toml
//! [[officer]]
//! name = "alice"
//! password = "correct horse battery"
//! component = "0123456789ABCDEFFEDCBA9876543210"   # optional, hex
//! kcv = "D5D44F"                                  # optional, the component's check value
//! share = "0102 ..."                              # optional, a share as text
//! ```
//!
//! The file holds secrets: keep it off shared disks and delete it after the ceremony.

use crate::ceremony::OfficerComponent;
use crate::error::{KmsError, Result};
use crate::officers::Credential;
use serde::Deserialize;
use std::fmt;
use std::path::Path;
use ykt_hsm_sim::KeyComponent;
use ykt_hsm_sim::shamir::Share;
use zeroize::Zeroizing;

/// One officer's entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficerEntry {
    /// Login name.
    pub name: String,
    /// Password.
    pub password: Option<Zeroizing<String>>,
    /// Key component, hex.
    pub component: Option<Zeroizing<String>>,
    /// The component's printed check value, hex.
    pub kcv: Option<String>,
    /// A share as text.
    pub share: Option<Zeroizing<String>>,
}

/// A parsed ceremony file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeremonyFile {
    /// The officers present, in the order they enter.
    #[serde(default, rename = "officer")]
    pub officers: Vec<OfficerEntry>,
}

impl fmt::Debug for CeremonyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.officers.iter().map(|o| &o.name))
            .finish()
    }
}

fn invalid(reason: String) -> KmsError {
    KmsError::InvalidInput {
        field: "ceremony file",
        reason,
    }
}

impl CeremonyFile {
    /// Reads and parses a ceremony file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("{}: {e}", path.display())))?,
        );
        Self::parse(&text)
    }

    /// Parses ceremony file text; unknown keys and repeated officers are refused.
    pub fn parse(text: &str) -> Result<Self> {
        // The parser's message may quote the offending line, which may hold a secret: keep
        // only its position.
        let file: Self = toml::from_str(text).map_err(|e| {
            invalid(match e.span() {
                Some(span) => format!("malformed at byte {}", span.start),
                None => "malformed".into(),
            })
        })?;
        let mut names: Vec<&str> = file.officers.iter().map(|o| o.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("an officer appears twice".into()));
        }
        Ok(file)
    }

    fn entry(&self, name: &str) -> Result<&OfficerEntry> {
        self.officers
            .iter()
            .find(|o| o.name == name)
            .ok_or_else(|| invalid(format!("no entry for officer `{name}`")))
    }

    /// The credentials of the named officers (all officers in the file when `names` is
    /// empty).
    pub fn credentials(&self, names: &[String]) -> Result<Vec<Credential>> {
        let names: Vec<&str> = if names.is_empty() {
            self.officers.iter().map(|o| o.name.as_str()).collect()
        } else {
            names.iter().map(String::as_str).collect()
        };
        names
            .into_iter()
            .map(|name| {
                let entry = self.entry(name)?;
                let password = entry
                    .password
                    .as_ref()
                    .ok_or_else(|| invalid(format!("no password for `{name}`")))?;
                Ok(Credential::new(name, password))
            })
            .collect()
    }

    /// The components in the file, in order, each with its expected check value.
    pub fn components(&self) -> Result<Vec<OfficerComponent>> {
        self.officers
            .iter()
            .filter_map(|o| o.component.as_ref().map(|c| (o, c)))
            .map(|(officer, component)| {
                let bytes = Zeroizing::new(hex::decode(component.trim()).map_err(|_| {
                    invalid(format!("the component of `{}` is not hex", officer.name))
                })?);
                let mut component = KeyComponent::new(&bytes);
                if let Some(kcv) = &officer.kcv {
                    let kcv = hex::decode(kcv.trim()).map_err(|_| {
                        invalid(format!("the check value of `{}` is not hex", officer.name))
                    })?;
                    component = component.with_expected_kcv(&kcv);
                }
                Ok(OfficerComponent {
                    officer: officer.name.clone(),
                    component,
                })
            })
            .collect()
    }

    /// The shares in the file, in order, with the officer who brought each.
    pub fn shares(&self) -> Result<Vec<(String, Share)>> {
        self.officers
            .iter()
            .filter_map(|o| o.share.as_ref().map(|s| (o, s)))
            .map(|(officer, text)| {
                Ok((
                    officer.name.clone(),
                    Share::parse(text).map_err(ykt_hsm_sim::HsmError::from)?,
                ))
            })
            .collect::<Result<Vec<_>>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_give_credentials_components_and_shares() {
        let file = CeremonyFile::parse(
            "[[officer]]\nname = \"alice\"\npassword = \"pw-alice-123456\"\n\
             component = \"000102030405060708090A0B0C0D0E0F\"\n\
             [[officer]]\nname = \"bob\"\npassword = \"pw-bob-1234567\"\n",
        )
        .unwrap();
        assert_eq!(file.credentials(&[]).unwrap().len(), 2);
        assert_eq!(file.credentials(&["bob".into()]).unwrap()[0].name, "bob");
        assert!(file.credentials(&["carol".into()]).is_err());
        assert_eq!(file.components().unwrap().len(), 1);
        assert!(file.shares().unwrap().is_empty());
    }

    #[test]
    fn malformed_files_are_refused_without_quoting_them() {
        let err = CeremonyFile::parse("[[officer]]\nname = \"a\"\npassword = SECRETVALUE\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRETVALUE"), "{err}");
        assert!(
            CeremonyFile::parse("[[officer]]\nname = \"a\"\n[[officer]]\nname = \"a\"\n").is_err()
        );
        assert!(CeremonyFile::parse("[[officer]]\nname = \"a\"\ncolour = \"red\"\n").is_err());
        let file = CeremonyFile::parse("[[officer]]\nname = \"a\"\ncomponent = \"XYZ\"\n").unwrap();
        assert!(file.components().is_err());
    }
}
