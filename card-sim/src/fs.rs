//! The FMCOS file tree: MF/DF with their EFs (binary, fixed, variable and cyclic record files,
//! ED/EP purses, key files), the CREATE FILE layouts of `pboc-spec.md` §2.1, space accounting
//! and the FCI returned by SELECT.

use crate::keys::KeyFile;
use crate::persist::{hex_bytes, hex_list};
use crate::purse::Purse;
use serde::{Deserialize, Serialize};
use ykt_apdu::{Sw, Tlv};

/// FID of the MF.
pub(crate) const MF_FID: u16 = 0x3F00;

/// A dedicated file (the MF is one) with its EFs and child DFs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Df {
    /// File identifier.
    pub fid: u16,
    /// DF name (AID), 5 to 16 bytes.
    #[serde(with = "hex_bytes")]
    pub name: Vec<u8>,
    /// Space for everything under the DF.
    pub size: u16,
    /// Right to create files in the DF.
    pub create_right: u8,
    /// Right to erase the DF's contents.
    pub erase_right: u8,
    /// `80 | SFI` of the file whose contents SELECT returns as issuer data (9F0C).
    pub app_fid: u8,
    /// Elementary files.
    pub files: Vec<Ef>,
    /// Child DFs.
    pub dfs: Vec<Df>,
}

/// An elementary file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ef {
    /// File identifier; its low five bits are the short file identifier (SFI).
    pub fid: u16,
    /// What the file is.
    pub body: Body,
}

/// The kinds of EF.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Body {
    /// Binary or record file.
    Data(DataFile),
    /// ED (FID 0001) or EP (FID 0002).
    Purse(Purse),
    /// The DF's key file.
    Keys(KeyFile),
}

/// A binary or record file with its rights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DataFile {
    /// Type byte as created, protection bits included (28, A8, 2A, ...).
    pub type_byte: u8,
    /// Read right.
    pub read: u8,
    /// Write right.
    pub write: u8,
    /// Access byte (plain reads allowed, line-protection key IDs).
    pub access: u8,
    /// The data.
    pub content: Content,
}

/// The structure and data of a [`DataFile`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "structure", rename_all = "snake_case")]
pub(crate) enum Content {
    /// Transparent file of fixed size.
    Binary {
        /// The bytes.
        #[serde(with = "hex_bytes")]
        data: Vec<u8>,
    },
    /// Up to `count` records of exactly `len` bytes.
    Fixed {
        /// Maximum number of records.
        count: u8,
        /// Record length.
        len: u8,
        /// Records, record 1 first.
        #[serde(with = "hex_list")]
        records: Vec<Vec<u8>>,
    },
    /// Records of any length within `size` bytes (one byte of overhead each).
    Variable {
        /// Space for records.
        size: u16,
        /// Records, record 1 first.
        #[serde(with = "hex_list")]
        records: Vec<Vec<u8>>,
    },
    /// The last `count` records of `len` bytes, record 1 the newest.
    Cyclic {
        /// Number of records kept.
        count: u8,
        /// Record length.
        len: u8,
        /// Records, newest first.
        #[serde(with = "hex_list")]
        records: Vec<Vec<u8>>,
    },
}

impl Content {
    /// Record `number` (1-based); 6981 for a binary file, 6A83 when absent.
    pub fn record(&self, number: u8) -> Result<&[u8], Sw> {
        let records = self.records()?;
        usize::from(number)
            .checked_sub(1)
            .and_then(|i| records.get(i))
            .map(Vec::as_slice)
            .ok_or(Sw::RecordNotFound)
    }

    fn records(&self) -> Result<&Vec<Vec<u8>>, Sw> {
        match self {
            Self::Binary { .. } => Err(Sw::IncompatibleFileStructure),
            Self::Fixed { records, .. }
            | Self::Variable { records, .. }
            | Self::Cyclic { records, .. } => Ok(records),
        }
    }

    /// Replaces record `number` with `data` (not in cyclic files, which only grow by APPEND).
    pub fn update_record(&mut self, number: u8, data: &[u8]) -> Result<(), Sw> {
        self.record(number)?;
        let i = usize::from(number) - 1;
        match self {
            Self::Fixed { len, records, .. } => {
                if data.len() != usize::from(*len) {
                    return Err(Sw::WrongLength);
                }
                records[i] = data.to_vec();
            }
            Self::Variable { size, records } => {
                let others: usize =
                    records.iter().map(|r| r.len() + 1).sum::<usize>() - (records[i].len() + 1);
                if data.is_empty() || others + data.len() + 1 > usize::from(*size) {
                    return Err(Sw::WrongLength);
                }
                records[i] = data.to_vec();
            }
            Self::Binary { .. } | Self::Cyclic { .. } => {
                return Err(Sw::IncompatibleFileStructure);
            }
        }
        Ok(())
    }

    /// Appends a record; a cyclic file puts it at record 1 and drops the oldest when full.
    pub fn append_record(&mut self, data: &[u8]) -> Result<(), Sw> {
        match self {
            Self::Binary { .. } => return Err(Sw::IncompatibleFileStructure),
            Self::Fixed {
                count,
                len,
                records,
            } => {
                if data.len() != usize::from(*len) {
                    return Err(Sw::WrongLength);
                }
                if records.len() >= usize::from(*count) {
                    return Err(Sw::NotEnoughSpace);
                }
                records.push(data.to_vec());
            }
            Self::Variable { size, records } => {
                let used: usize = records.iter().map(|r| r.len() + 1).sum();
                if data.is_empty() {
                    return Err(Sw::WrongLength);
                }
                if used + data.len() + 1 > usize::from(*size) {
                    return Err(Sw::NotEnoughSpace);
                }
                records.push(data.to_vec());
            }
            Self::Cyclic {
                count,
                len,
                records,
            } => {
                if data.len() != usize::from(*len) {
                    return Err(Sw::WrongLength);
                }
                records.insert(0, data.to_vec());
                records.truncate(usize::from(*count));
            }
        }
        Ok(())
    }
}

impl Ef {
    /// The short file identifier.
    pub fn sfi(&self) -> u8 {
        (self.fid & 0x1F) as u8
    }

    /// Storage the file takes in its DF (record files: `n × (len + 1) + 8`, §1).
    fn footprint(&self) -> usize {
        match &self.body {
            Body::Data(file) => match &file.content {
                Content::Binary { data } => data.len(),
                Content::Fixed { count, len, .. } | Content::Cyclic { count, len, .. } => {
                    usize::from(*count) * (usize::from(*len) + 1) + 8
                }
                Content::Variable { size, .. } => usize::from(*size),
            },
            Body::Purse(purse) => usize::from(purse.size),
            Body::Keys(keys) => usize::from(keys.size),
        }
    }
}

impl Df {
    /// The DF at `path` (FIDs below this one).
    pub fn descend(&self, path: &[u16]) -> Option<&Df> {
        path.iter()
            .try_fold(self, |df, fid| df.dfs.iter().find(|d| d.fid == *fid))
    }

    /// The same, mutably.
    pub fn descend_mut(&mut self, path: &[u16]) -> Option<&mut Df> {
        path.iter()
            .try_fold(self, |df, fid| df.dfs.iter_mut().find(|d| d.fid == *fid))
    }

    /// The EF with `fid`.
    pub fn ef(&self, fid: u16) -> Option<&Ef> {
        self.files.iter().find(|f| f.fid == fid)
    }

    /// The same, mutably.
    pub fn ef_mut(&mut self, fid: u16) -> Option<&mut Ef> {
        self.files.iter_mut().find(|f| f.fid == fid)
    }

    /// The EF with short identifier `sfi`.
    pub fn ef_by_sfi(&self, sfi: u8) -> Option<&Ef> {
        self.files.iter().find(|f| f.sfi() == sfi)
    }

    /// The DF's key file.
    pub fn key_file(&self) -> Option<&KeyFile> {
        self.files.iter().find_map(|f| match &f.body {
            Body::Keys(keys) => Some(keys),
            _ => None,
        })
    }

    /// The same, mutably.
    pub fn key_file_mut(&mut self) -> Option<&mut KeyFile> {
        self.files.iter_mut().find_map(|f| match &mut f.body {
            Body::Keys(keys) => Some(keys),
            _ => None,
        })
    }

    fn used(&self) -> usize {
        self.files.iter().map(Ef::footprint).sum::<usize>()
            + self.dfs.iter().map(|d| usize::from(d.size)).sum::<usize>()
    }

    /// Adds a created file: 6A89 when the FID (or the key file, or the DF name) exists, 6A84
    /// when the DF is full.
    pub fn add(&mut self, file: Created) -> Result<(), Sw> {
        let (fid, footprint) = match &file {
            Created::Df(df) => (df.fid, usize::from(df.size)),
            Created::Ef(ef) => (ef.fid, ef.footprint()),
        };
        let taken = self.ef(fid).is_some()
            || self.dfs.iter().any(|d| d.fid == fid)
            || matches!(&file, Created::Ef(Ef { body: Body::Keys(_), .. }) if self.key_file().is_some());
        if taken {
            return Err(Sw::AlreadyExists);
        }
        if self.used() + footprint > usize::from(self.size) {
            return Err(Sw::NotEnoughSpace);
        }
        match file {
            Created::Df(df) => self.dfs.push(df),
            Created::Ef(ef) => self.files.push(ef),
        }
        Ok(())
    }

    /// Whether a DF named `name` is this one or below it; returns its path below this DF.
    pub fn find_name(&self, name: &[u8]) -> Option<Vec<u16>> {
        if self.name == name {
            return Some(Vec::new());
        }
        self.dfs.iter().find_map(|child| {
            child.find_name(name).map(|mut path| {
                path.insert(0, child.fid);
                path
            })
        })
    }

    /// The FCI: `6F [84 name] [A5 [88 01 SFI] [9F0C issuer data]]`, the issuer data being the
    /// contents of the binary file that `app_fid` names.
    pub fn fci(&self) -> Vec<u8> {
        let mut proprietary = Vec::new();
        if self.app_fid & 0x80 != 0 {
            let sfi = self.app_fid & 0x1F;
            proprietary.push(Tlv::new(0x88, [sfi]));
            if let Some(Ef {
                body:
                    Body::Data(DataFile {
                        content: Content::Binary { data },
                        ..
                    }),
                ..
            }) = self.ef_by_sfi(sfi)
            {
                proprietary.push(Tlv::new(0x9F0C, data.clone()));
            }
        }
        let mut fci = vec![Tlv::new(0x84, self.name.clone())];
        if !proprietary.is_empty() {
            fci.push(Tlv::constructed(0xA5, &proprietary));
        }
        Tlv::constructed(0x6F, &fci).to_bytes()
    }
}

/// A file made by CREATE FILE, not yet placed in its DF.
#[derive(Debug, Clone)]
pub(crate) enum Created {
    /// A DF (or the MF's new header).
    Df(Df),
    /// An EF.
    Ef(Ef),
}

/// Parses CREATE FILE data (`80 E0 FIDhi FIDlo Lc data`, §2.1): 6A80 for an unknown layout,
/// 6700 for a known one of the wrong length, 6A86 for a reserved FID.
pub(crate) fn parse_create(fid: u16, data: &[u8]) -> Result<Created, Sw> {
    let Some(&type_byte) = data.first() else {
        return Err(Sw::WrongLength);
    };
    let base = type_byte & 0x3F;
    let protected = type_byte & 0xC0 != 0;
    let u16_at = |i: usize| u16::from_be_bytes([data[i], data[i + 1]]);
    if base == 0x38 && !protected {
        if !(13..=24).contains(&data.len()) {
            return Err(Sw::WrongLength);
        }
        if fid == 0xFFFF {
            return Err(Sw::WrongP1P2);
        }
        return Ok(Created::Df(Df {
            fid,
            name: data[8..].to_vec(),
            size: u16_at(1),
            create_right: data[3],
            erase_right: data[4],
            app_fid: data[5],
            files: Vec::new(),
            dfs: Vec::new(),
        }));
    }
    if fid == MF_FID || fid == 0xFFFF {
        return Err(Sw::WrongP1P2);
    }
    if data.len() != 7 {
        return Err(if matches!(base, 0x28 | 0x2A | 0x2C | 0x2E | 0x2F | 0x3F) {
            Sw::WrongLength
        } else {
            Sw::WrongData
        });
    }
    let data_file = |content| {
        Body::Data(DataFile {
            type_byte,
            read: data[3],
            write: data[4],
            access: data[6],
            content,
        })
    };
    let (n, len) = (data[1], data[2]);
    let body = match (base, protected) {
        (0x28, _) => data_file(Content::Binary {
            data: vec![0; usize::from(u16_at(1))],
        }),
        (0x2A, _) | (0x2E, _) if n == 0 || len == 0 => return Err(Sw::WrongData),
        (0x2A, _) => data_file(Content::Fixed {
            count: n,
            len,
            records: Vec::new(),
        }),
        (0x2C, _) => data_file(Content::Variable {
            size: u16_at(1),
            records: Vec::new(),
        }),
        (0x2E, _) => data_file(Content::Cyclic {
            count: n,
            len,
            records: Vec::new(),
        }),
        (0x2F, false) if matches!(fid, 0x0001 | 0x0002) => {
            Body::Purse(Purse::new(u16_at(1), data[3], [data[4], data[5]], data[6]))
        }
        (0x3F, false) => Body::Keys(KeyFile {
            size: u16_at(1),
            df_sfi: data[3],
            add_right: data[4],
            keys: Vec::new(),
            psam_keys: Vec::new(),
        }),
        _ => return Err(Sw::WrongData),
    };
    Ok(Created::Ef(Ef { fid, body }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(apdu: &str) -> Created {
        let bytes = hex::decode(apdu).unwrap();
        parse_create(u16::from_be_bytes([bytes[2], bytes[3]]), &bytes[5..]).unwrap()
    }

    #[test]
    fn layouts_of_the_spec() {
        let Created::Df(df) = create("80E03F010D380800F0F095FFFF1122334455") else {
            panic!("a DF")
        };
        assert_eq!((df.fid, df.size, df.app_fid), (0x3F01, 0x0800, 0x95));
        assert_eq!(df.name, [0x11, 0x22, 0x33, 0x44, 0x55]);
        assert!(matches!(
            create("80E00000073F018F95F0FFFF"),
            Created::Ef(Ef {
                body: Body::Keys(_),
                ..
            })
        ));
        assert!(matches!(
            create("80E00018072E0A17F0EFFFFF"),
            Created::Ef(Ef {
                body: Body::Data(DataFile {
                    content: Content::Cyclic {
                        count: 10,
                        len: 0x17,
                        ..
                    },
                    ..
                }),
                ..
            })
        ));
        assert!(matches!(
            create("80E00002072F0208F000FF18"),
            Created::Ef(Ef {
                body: Body::Purse(_),
                ..
            })
        ));
        assert_eq!(
            parse_create(3, &hex::decode("2F0208F000FF18").unwrap()).unwrap_err(),
            Sw::WrongData
        );
        assert_eq!(parse_create(3, &[0x28, 0, 1]).unwrap_err(), Sw::WrongLength);
        assert_eq!(parse_create(3, &[0x11; 7]).unwrap_err(), Sw::WrongData);
        assert_eq!(parse_create(3, &[]).unwrap_err(), Sw::WrongLength);
    }

    #[test]
    fn cyclic_files_keep_the_newest_first() {
        let mut c = Content::Cyclic {
            count: 2,
            len: 1,
            records: Vec::new(),
        };
        for b in 1..=3u8 {
            c.append_record(&[b]).unwrap();
        }
        assert_eq!(
            (c.record(1).unwrap(), c.record(2).unwrap()),
            (&[3u8][..], &[2u8][..])
        );
        assert_eq!(c.record(3).unwrap_err(), Sw::RecordNotFound);
        assert_eq!(c.record(0).unwrap_err(), Sw::RecordNotFound);
        assert_eq!(
            c.update_record(1, &[9]).unwrap_err(),
            Sw::IncompatibleFileStructure
        );
        assert_eq!(c.append_record(&[1, 2]).unwrap_err(), Sw::WrongLength);
    }
}
