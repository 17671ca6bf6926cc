//! File commands: SELECT, READ/UPDATE BINARY, READ/UPDATE/APPEND RECORD, CREATE FILE and
//! ERASE DF, with access rights, line protection and protected reads.

use crate::card::{Card, Reply, check_le};
use crate::fs::{self, Body, Content, Created, DataFile, Df, MF_FID};
use crate::keys::kind;
use crate::persist::Image;
use crate::security::{AccessByte, Protection};
use crate::sm;
use ykt_apdu::{Command, Sw};

/// Which EF a command addresses: the current one, or one by short identifier.
#[derive(Clone, Copy)]
enum Target {
    Current,
    Sfi(u8),
}

impl Target {
    /// From a record command's P2 (`SFI << 3 | mode`; SFI 0 is the current EF).
    fn from_record_p2(p2: u8) -> Self {
        match p2 >> 3 {
            0 => Self::Current,
            sfi => Self::Sfi(sfi),
        }
    }

    /// From a binary command's P1 P2: `(target, offset)`.
    fn from_binary(c: &Command) -> (Self, usize) {
        if c.p1 & 0x80 != 0 {
            (Self::Sfi(c.p1 & 0x1F), usize::from(c.p2))
        } else {
            (
                Self::Current,
                usize::from(u16::from_be_bytes([c.p1 & 0x7F, c.p2])),
            )
        }
    }
}

/// The data file at `fid` in the DF at `path` of `image`.
fn data_file_mut<'a>(image: &'a mut Image, path: &[u16], fid: u16) -> Result<&'a mut DataFile, Sw> {
    match image.mf.descend_mut(path).and_then(|df| df.ef_mut(fid)) {
        Some(fs::Ef {
            body: Body::Data(file),
            ..
        }) => Ok(file),
        _ => Err(Sw::FileNotFound),
    }
}

impl Card {
    /// The data file a command addresses and its FID: 6986 without a current EF, 6A82 for an
    /// unknown SFI, 6981 for a purse or key file.
    fn resolve(&self, target: Target) -> Result<(u16, &DataFile), Sw> {
        let df = self.df()?;
        let ef = match target {
            Target::Current => self
                .session
                .ef
                .and_then(|fid| df.ef(fid))
                .ok_or(Sw::NoCurrentEf)?,
            Target::Sfi(sfi) => df.ef_by_sfi(sfi).ok_or(Sw::FileNotFound)?,
        };
        match &ef.body {
            Body::Data(file) => Ok((ef.fid, file)),
            _ => Err(Sw::IncompatibleFileStructure),
        }
    }

    /// Checks a write's rights and protection and returns its plain data: 6982 (right), 6900
    /// (CLA against the file's protection), then the secure-messaging checks.
    fn write_payload(&mut self, c: &Command, file: &DataFile) -> Result<Vec<u8>, Sw> {
        self.require(file.write)?;
        let protection = Protection::of_type(file.type_byte);
        if !protection.matches_cla(c.cla) {
            return Err(Sw::ClaMismatchesProtection);
        }
        if protection == Protection::Plain {
            return Ok(c.data.clone());
        }
        let key = self
            .key(
                kind::LINE_PROTECTION,
                AccessByte(file.access).write_key_id(),
            )?
            .secret
            .key(self.algorithm())?;
        let challenge = self.take_challenge()?;
        sm::open(&key, &challenge, c, protection == Protection::MacEncrypted)
    }

    /// Checks a read's rights and protection, then answers `data` (‖ MAC when protected).
    fn read_reply(&mut self, c: &Command, file: &DataFile, data: &[u8]) -> Reply {
        self.require(file.read)?;
        let access = AccessByte(file.access);
        let protected = c.cla & 0x04 != 0;
        if protected == access.plain_reads() {
            return Err(Sw::ClaMismatchesProtection.into());
        }
        if !protected {
            if !c.data.is_empty() {
                return Err(Sw::WrongLength.into());
            }
            return Ok(data.to_vec());
        }
        let key = self
            .key(kind::LINE_PROTECTION, access.read_key_id())?
            .secret
            .key(self.algorithm())?;
        let challenge = self.take_challenge()?;
        if !sm::open(&key, &challenge, c, false)?.is_empty() {
            return Err(Sw::WrongLength.into());
        }
        let mut out = data.to_vec();
        out.extend_from_slice(&sm::response_mac(&key, &challenge, data)?);
        Ok(out)
    }

    /// SELECT by FID (P1 00: the MF, an EF or DF of the current DF, the parent DF or a sibling
    /// DF) or by DF name (P1 04). A DF answers its FCI; an EF answers nothing.
    pub(crate) fn select(&mut self, c: &Command) -> Reply {
        if !matches!(c.p2, 0x00 | 0x0C) {
            return Err(Sw::WrongP1P2.into());
        }
        let path = match c.p1 {
            0x00 => {
                let [hi, lo] = c.data[..] else {
                    return Err(Sw::WrongLength.into());
                };
                let fid = u16::from_be_bytes([hi, lo]);
                let current = &self.session.df;
                if fid == MF_FID {
                    Vec::new()
                } else if self.df()?.ef(fid).is_some() {
                    self.session.ef = Some(fid);
                    return Ok(Vec::new());
                } else if self.df()?.dfs.iter().any(|d| d.fid == fid) {
                    [current.as_slice(), &[fid]].concat()
                } else {
                    let parent = &current[..current.len().saturating_sub(1)];
                    let in_parent = self.mf().descend(parent).ok_or(Sw::FileNotFound)?;
                    if current.last() == Some(&fid) {
                        current.clone()
                    } else if !current.is_empty() && in_parent.fid == fid {
                        parent.to_vec()
                    } else if in_parent.dfs.iter().any(|d| d.fid == fid) {
                        [parent, &[fid]].concat()
                    } else {
                        return Err(Sw::FileNotFound.into());
                    }
                }
            }
            0x04 if (1..=16).contains(&c.data.len()) => {
                self.mf().find_name(&c.data).ok_or(Sw::FileNotFound)?
            }
            0x04 => return Err(Sw::WrongLength.into()),
            _ => return Err(Sw::WrongP1P2.into()),
        };
        let fci = self.mf().descend(&path).ok_or(Sw::FileNotFound)?.fci();
        let fci = if c.p2 == 0x0C { Vec::new() } else { fci };
        check_le(c, fci.len())?;
        self.enter(path);
        Ok(fci)
    }

    /// Makes the DF at `path` current (its security state starts at 0 unless it already was).
    pub(crate) fn enter(&mut self, path: Vec<u16>) {
        if path != self.session.df {
            self.session.security.enter_df(path.is_empty());
            self.session.df = path;
        }
        self.session.ef = None;
    }

    /// READ BINARY (P1 bit 8: SFI addressing). Le = 00 reads to the end (at most 256 bytes).
    pub(crate) fn read_binary(&mut self, c: &Command) -> Reply {
        let (target, offset) = Target::from_binary(c);
        let (fid, file) = self.resolve(target)?;
        let Content::Binary { data } = &file.content else {
            return Err(Sw::IncompatibleFileStructure.into());
        };
        let available = data.len().checked_sub(offset).ok_or(Sw::WrongOffset)?;
        let wanted = match c.le {
            None | Some(256) => available.min(256),
            Some(ne) if ne as usize <= available => ne as usize,
            Some(_) => return Err(Sw::WrongLe(available.min(255) as u8).into()),
        };
        let (file, chunk) = (file.clone(), data[offset..offset + wanted].to_vec());
        let out = self.read_reply(c, &file, &chunk)?;
        self.session.ef = Some(fid);
        Ok(out)
    }

    /// UPDATE BINARY (plain, MAC or MAC + encryption as the file's type byte asks).
    pub(crate) fn update_binary(&mut self, c: &Command) -> Reply {
        let (target, offset) = Target::from_binary(c);
        let (fid, file) = self.resolve(target)?;
        let Content::Binary { data } = &file.content else {
            return Err(Sw::IncompatibleFileStructure.into());
        };
        if offset > data.len() {
            return Err(Sw::WrongOffset.into());
        }
        let file = file.clone();
        let payload = self.write_payload(c, &file)?;
        let path = self.session.df.clone();
        self.write(|image| {
            let Content::Binary { data } = &mut data_file_mut(image, &path, fid)?.content else {
                return Err(Sw::IncompatibleFileStructure);
            };
            if payload.is_empty() || offset + payload.len() > data.len() {
                return Err(Sw::WrongLength);
            }
            data[offset..offset + payload.len()].copy_from_slice(&payload);
            Ok(())
        })?;
        self.session.ef = Some(fid);
        Ok(Vec::new())
    }

    /// READ RECORD by number (P2 = SFI << 3 | 04); Le must be 00 or the record length.
    pub(crate) fn read_record(&mut self, c: &Command) -> Reply {
        if c.p2 & 0x07 != 0x04 {
            return Err(Sw::WrongP1P2.into());
        }
        let (fid, file) = self.resolve(Target::from_record_p2(c.p2))?;
        let record = file.content.record(c.p1)?.to_vec();
        if let Some(ne) = c.le
            && ne != 256
            && ne as usize != record.len()
        {
            return Err(Sw::WrongLe(record.len() as u8).into());
        }
        let file = file.clone();
        let out = self.read_reply(c, &file, &record)?;
        self.session.ef = Some(fid);
        Ok(out)
    }

    /// UPDATE RECORD by number (P2 = SFI << 3 | 04).
    pub(crate) fn update_record(&mut self, c: &Command) -> Reply {
        if c.p2 & 0x07 != 0x04 {
            return Err(Sw::WrongP1P2.into());
        }
        let number = c.p1;
        self.record_write(c, |content, data| content.update_record(number, data))
    }

    /// APPEND RECORD (P1 = 00, P2 = SFI << 3); a cyclic file puts the record at number 1.
    pub(crate) fn append_record(&mut self, c: &Command) -> Reply {
        if c.p1 != 0 || c.p2 & 0x07 != 0 {
            return Err(Sw::WrongP1P2.into());
        }
        self.record_write(c, Content::append_record)
    }

    fn record_write(
        &mut self,
        c: &Command,
        change: impl FnOnce(&mut Content, &[u8]) -> Result<(), Sw>,
    ) -> Reply {
        let (fid, file) = self.resolve(Target::from_record_p2(c.p2))?;
        if matches!(file.content, Content::Binary { .. }) {
            return Err(Sw::IncompatibleFileStructure.into());
        }
        let file = file.clone();
        let payload = self.write_payload(c, &file)?;
        let path = self.session.df.clone();
        self.write(|image| change(&mut data_file_mut(image, &path, fid)?.content, &payload))?;
        self.session.ef = Some(fid);
        Ok(Vec::new())
    }

    /// Whether a DF right (create, erase) holds: always in a DF without a key file, where no
    /// key could raise the security state.
    fn df_right(&self, df: &Df, right: u8) -> Result<(), Sw> {
        if df.key_file().is_none() {
            Ok(())
        } else {
            self.require(right)
        }
    }

    /// CREATE FILE (80 E0 FID Lc data) in the current DF; a new DF becomes the current DF.
    /// `80 E0 3F 00` re-defines the MF header when the MF is empty.
    pub(crate) fn create_file(&mut self, c: &Command) -> Reply {
        let fid = u16::from_be_bytes([c.p1, c.p2]);
        let created = fs::parse_create(fid, &c.data)?;
        let df = self.df()?;
        self.df_right(df, df.create_right)?;
        if let (MF_FID, Created::Df(header)) = (fid, &created) {
            let header = header.clone();
            let mf = self.mf();
            if !mf.files.is_empty() || !mf.dfs.is_empty() {
                return Err(Sw::AlreadyExists.into());
            }
            self.write(|image| {
                image.mf = header;
                Ok(())
            })?;
            self.enter(Vec::new());
            return Ok(Vec::new());
        }
        let path = self.session.df.clone();
        let new_df = matches!(created, Created::Df(_));
        self.write(|image| {
            image
                .mf
                .descend_mut(&path)
                .ok_or(Sw::FileNotFound)?
                .add(created)
        })?;
        if new_df {
            self.enter([path.as_slice(), &[fid]].concat());
        }
        Ok(Vec::new())
    }

    /// ERASE DF (80 0E 00 00): removes every file under the current DF, the DF itself stays.
    pub(crate) fn erase_df(&mut self, c: &Command) -> Reply {
        if (c.p1, c.p2) != (0, 0) {
            return Err(Sw::WrongP1P2.into());
        }
        if !c.data.is_empty() {
            return Err(Sw::WrongLength.into());
        }
        let df = self.df()?;
        self.df_right(df, df.erase_right)?;
        let path = self.session.df.clone();
        self.write(|image| {
            let df = image.mf.descend_mut(&path).ok_or(Sw::FileNotFound)?;
            df.files.clear();
            df.dfs.clear();
            Ok(())
        })?;
        self.session.ef = None;
        Ok(Vec::new())
    }
}
