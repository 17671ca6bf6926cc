//! Key and PIN commands: GET CHALLENGE, EXTERNAL and INTERNAL AUTHENTICATE, VERIFY PIN,
//! CHANGE/RELOAD PIN, PIN UNBLOCK and WRITE KEY (plain 80D4, or 84D4 encrypted and MACed
//! under the DF master key 39/00).
//!
//! A key that counts failures (external authentication, PIN, PIN unblock and reload) loses a
//! try in a write point *before* the result is known and gets its tries back in a second
//! write point after a success, so cutting the power cannot test a guess for free.

use crate::card::{Card, CardAlgorithm, ChipKind, Reply, check_le, expect_len};
use crate::keys::{KeyFile, KeyRecord, PsamKey, Secret, kind};
use crate::persist::Image;
use crate::security::Protection;
use crate::sm;
use ykt_apdu::{Command, Sw};
use ykt_crypto::mac::verify;
use ykt_crypto::secure_messaging::external_auth_cryptogram;
use ykt_crypto::{BlockCipher, PbocMac, Profile, SymmetricKey};

/// The key file of the DF at `path`.
fn key_file_mut<'a>(image: &'a mut Image, path: &[u16]) -> Result<&'a mut KeyFile, Sw> {
    image
        .mf
        .descend_mut(path)
        .and_then(|df| df.key_file_mut())
        .ok_or(Sw::ReferenceNotFound)
}

/// PIN length limits (bytes).
const PIN_LEN: std::ops::RangeInclusive<usize> = 2..=8;

impl Card {
    /// The counted verification of key `base`/`id` whose outcome is `ok`: one write point takes
    /// a try; on success a second one gives the tries back and applies `then` to the key file.
    /// A failure answers 63Cx (x tries left).
    fn counted(
        &mut self,
        base: u8,
        id: u8,
        ok: bool,
        then: impl FnOnce(&mut KeyFile) -> Result<(), Sw>,
    ) -> Result<(), crate::card::Fault> {
        let path = self.session.df.clone();
        let left = self.write(|image| {
            let key = key_file_mut(image, &path)?
                .find_mut(base, id)
                .ok_or(Sw::ReferenceNotFound)?;
            key.take_try();
            Ok(key.tries_left())
        })?;
        if !ok {
            return Err(Sw::TriesLeft(left).into());
        }
        self.write(|image| {
            let keys = key_file_mut(image, &path)?;
            keys.find_mut(base, id)
                .ok_or(Sw::ReferenceNotFound)?
                .reset_tries();
            then(keys)
        })
    }

    /// Key `base`/`id` ready for use: 6A88 absent, 6982 usage right, 6983 blocked.
    fn usable_key(&self, base: u8, id: u8) -> Result<&KeyRecord, Sw> {
        let key = self.key(base, id)?;
        self.require(key.usage)?;
        if key.blocked() {
            return Err(Sw::Blocked);
        }
        Ok(key)
    }

    /// The key protecting an 84D4 in the current DF: its master key 39/00, or, while its key
    /// file has none yet, the nearest enclosing DF's (FMCOS: a new DF's first keys are written
    /// under its parent's master key).
    fn write_key_master(&self) -> Result<SymmetricKey, Sw> {
        let path = &self.session.df;
        (0..=path.len())
            .rev()
            .filter_map(|depth| self.mf().descend(&path[..depth]))
            .filter_map(|df| df.key_file())
            .find_map(|keys| keys.find(kind::EXTERNAL, 0))
            .ok_or(Sw::ReferenceNotFound)?
            .secret
            .key(self.algorithm())
    }

    /// The lowest-ID key of type `base`, unblocked: the PIN-unblock and PIN-reload keys.
    fn first_usable(&self, base: u8) -> Result<(u8, SymmetricKey), Sw> {
        let key = self.key_file()?.first(base).ok_or(Sw::ReferenceNotFound)?;
        if key.blocked() {
            return Err(Sw::Blocked);
        }
        Ok((key.id, key.secret.key(self.algorithm())?))
    }

    /// GET CHALLENGE (00 84 00 00 Le): 4 or 8 bytes (16 too on an SM4 chip), usable once.
    pub(crate) fn get_challenge(&mut self, c: &Command) -> Reply {
        if (c.p1, c.p2) != (0, 0) {
            return Err(Sw::WrongP1P2.into());
        }
        let n = match c.le {
            Some(n @ (4 | 8)) if c.data.is_empty() => n,
            Some(16) if c.data.is_empty() && self.algorithm() == CardAlgorithm::Sm4 => 16,
            _ => return Err(Sw::WrongLength.into()),
        };
        let challenge = self.random(n as usize)?;
        self.session.challenge = Some(challenge.clone());
        Ok(challenge)
    }

    /// EXTERNAL AUTHENTICATE (00 82 00 keyID Lc E(K, challenge)); success sets the current
    /// DF's security state to the key's next state.
    pub(crate) fn external_authenticate(&mut self, c: &Command) -> Reply {
        if c.p1 != 0 {
            return Err(Sw::WrongP1P2.into());
        }
        let record = self.usable_key(kind::EXTERNAL, c.p2)?;
        let next_state = record.p4;
        let key = record.secret.key(self.algorithm())?;
        expect_len(
            c,
            PbocMac::new(&key)
                .map_err(|_| Sw::FileInvalidated)?
                .block_len(),
        )?;
        let challenge = self.take_challenge()?;
        let expected = external_auth_cryptogram(&key, &challenge).map_err(|_| Sw::InvalidRandom)?;
        let ok = verify(&expected, &c.data, "external authentication").is_ok();
        self.counted(kind::EXTERNAL, c.p2, ok, |_| Ok(()))?;
        let at_mf = self.at_mf();
        self.session.security.set(next_state, at_mf);
        Ok(Vec::new())
    }

    /// INTERNAL AUTHENTICATE (00 88 P1 keyID Lc data): P1 00 encrypts (key type 34 or 30, data
    /// padded with `80 00..` when not block-aligned), 01 decrypts (31), 02 MACs (32, 4 bytes).
    pub(crate) fn internal_authenticate(&mut self, c: &Command) -> Reply {
        let types: &[u8] = match c.p1 {
            0x00 => &[kind::INTERNAL, kind::ENCRYPT],
            0x01 => &[kind::DECRYPT],
            0x02 => &[kind::MAC],
            _ => return Err(Sw::WrongP1P2.into()),
        };
        let keys = self.key_file()?;
        let record = types
            .iter()
            .find_map(|&base| keys.find(base, c.p2))
            .ok_or(Sw::ReferenceNotFound)?;
        self.require(record.usage)?;
        let key = record.secret.key(self.algorithm())?;
        if c.data.is_empty() {
            return Err(Sw::WrongLength.into());
        }
        let cipher = BlockCipher::new(&key);
        let n = cipher.block_len();
        let out = match c.p1 {
            0x00 => {
                let mut block = c.data.clone();
                if !block.len().is_multiple_of(n) {
                    block.push(0x80);
                    block.resize(block.len().div_ceil(n) * n, 0);
                }
                cipher
                    .encrypt_ecb(&mut block)
                    .map_err(|_| Sw::WrongLength)?;
                block
            }
            0x01 => {
                let mut block = c.data.clone();
                cipher
                    .decrypt_ecb(&mut block)
                    .map_err(|_| Sw::WrongLength)?;
                block
            }
            _ => PbocMac::new(&key)
                .map_err(|_| Sw::FileInvalidated)?
                .compute(&c.data)
                .first4()
                .to_vec(),
        };
        check_le(c, out.len())?;
        Ok(out)
    }

    /// VERIFY PIN (00 20 00 keyID Lc PIN); success sets the PIN's next security state.
    pub(crate) fn verify_pin(&mut self, c: &Command) -> Reply {
        if c.p1 != 0 {
            return Err(Sw::WrongP1P2.into());
        }
        if !PIN_LEN.contains(&c.data.len()) {
            return Err(Sw::WrongLength.into());
        }
        let record = self.usable_key(kind::PIN, c.p2)?;
        let ok = verify(record.secret.expose(), &c.data, "PIN").is_ok();
        let next_state = record.p4;
        self.counted(kind::PIN, c.p2, ok, |_| Ok(()))?;
        let at_mf = self.at_mf();
        self.session.security.set(next_state, at_mf);
        Ok(Vec::new())
    }

    /// CHANGE PIN (80 5E 01 keyID Lc old‖FF‖new) and RELOAD PIN (80 5E 00 keyID Lc
    /// new‖MAC4, the MAC under the PIN-reload key folded as a TAC key, zero IV).
    pub(crate) fn change_or_reload_pin(&mut self, c: &Command) -> Reply {
        let pin_id = c.p2;
        let record = self.key(kind::PIN, pin_id)?;
        match c.p1 {
            0x01 => {
                self.require(record.usage)?;
                if record.blocked() {
                    return Err(Sw::Blocked.into());
                }
                let split = c.data.iter().position(|&b| b == 0xFF);
                let (old, new) = match split {
                    Some(i) => (&c.data[..i], &c.data[i + 1..]),
                    None => return Err(Sw::WrongData.into()),
                };
                if !PIN_LEN.contains(&old.len()) || !PIN_LEN.contains(&new.len()) {
                    return Err(Sw::WrongData.into());
                }
                let ok = verify(record.secret.expose(), old, "PIN").is_ok();
                let new = Secret::new(new);
                self.counted(kind::PIN, pin_id, ok, move |keys| {
                    set_pin(keys, pin_id, new)
                })?;
            }
            0x00 => {
                let (reload_id, key) = self.first_usable(kind::PIN_RELOAD)?;
                let Some(split) = c.data.len().checked_sub(4) else {
                    return Err(Sw::WrongLength.into());
                };
                let (pin, mac) = c.data.split_at(split);
                if !PIN_LEN.contains(&pin.len()) {
                    return Err(Sw::WrongLength.into());
                }
                let profile =
                    Profile::for_algorithm(key.algorithm()).map_err(|_| Sw::FileInvalidated)?;
                let mac_key = profile.tac_key(&key).map_err(|_| Sw::FileInvalidated)?;
                let expected = PbocMac::new(&mac_key)
                    .map_err(|_| Sw::FileInvalidated)?
                    .compute(pin)
                    .first4();
                let ok = verify(&expected, mac, "PIN reload MAC").is_ok();
                let new = Secret::new(pin);
                self.counted(kind::PIN_RELOAD, reload_id, ok, move |keys| {
                    set_pin(keys, pin_id, new)
                })?;
            }
            _ => return Err(Sw::WrongP1P2.into()),
        }
        Ok(Vec::new())
    }

    /// PIN UNBLOCK (84 24 PINkeyID 00 Lc ENC(Ld‖newPIN)‖MAC4) under the PIN-unblock key, with
    /// the challenge as MAC IV: sets the new PIN and gives its tries back.
    pub(crate) fn unblock_pin(&mut self, c: &Command) -> Reply {
        if c.p2 != 0 {
            return Err(Sw::WrongP1P2.into());
        }
        let pin_id = c.p1;
        self.key(kind::PIN, pin_id)?;
        let (unblock_id, key) = self.first_usable(kind::PIN_UNBLOCK)?;
        let challenge = self.take_challenge()?;
        let (payload, ok) = sm::check_mac(&key, &challenge, c)?;
        let new = if ok {
            let pin = sm::decrypt(&key, payload)?;
            if !PIN_LEN.contains(&pin.len()) {
                return Err(Sw::WrongData.into());
            }
            Some(Secret::new(&pin))
        } else {
            None
        };
        self.counted(kind::PIN_UNBLOCK, unblock_id, ok, move |keys| match new {
            Some(pin) => set_pin(keys, pin_id, pin),
            None => Ok(()),
        })?;
        Ok(Vec::new())
    }

    /// WRITE KEY: P1 01 adds key P2 (add right of the key file), P1 = key type modifies it
    /// (its change right; a key with protection bits only through 84D4). CLA 84: the data is
    /// `ENC(Ld‖record)‖MAC` under the DF master key 39/00 (the enclosing DF's while the DF has
    /// none) with the challenge IV. On a PSAM,
    /// P1 P2 = 00 00 writes an application key (`usage version algorithm key`).
    pub(crate) fn write_key(&mut self, c: &Command) -> Reply {
        let keys = self.df()?.key_file().ok_or(Sw::FileNotFound)?;
        let psam_key = self.chip().kind == ChipKind::Psam && (c.p1, c.p2) == (0, 0);
        let modified = match c.p1 {
            _ if psam_key => None,
            0x01 => None,
            base if crate::keys::kind::ALL.contains(&(base & 0x3F)) => {
                Some(keys.find(base & 0x3F, c.p2).ok_or(Sw::ReferenceNotFound)?)
            }
            _ => return Err(Sw::WrongP1P2.into()),
        };
        match modified {
            Some(old) => {
                self.require(old.change)?;
                if old.protection() != Protection::Plain && c.cla == 0x80 {
                    return Err(Sw::ClaMismatchesProtection.into());
                }
            }
            None => self.require(keys.add_right)?,
        }
        let old_shape = modified.map(|k| (k.base(), k.secret.expose().len()));
        let data = if c.cla == 0x84 {
            let master = self.write_key_master()?;
            let challenge = self.take_challenge()?;
            sm::open(&master, &challenge, c, true)?
        } else {
            c.data.clone()
        };
        let path = self.session.df.clone();
        if psam_key {
            let key = PsamKey::parse(&data)?;
            self.write(|image| key_file_mut(image, &path)?.put_psam_key(key))?;
            return Ok(Vec::new());
        }
        let record = KeyRecord::parse(c.p2, &data)?;
        let id = c.p2;
        self.write(|image| {
            let keys = key_file_mut(image, &path)?;
            match old_shape {
                None if keys.find(record.base(), id).is_some() => Err(Sw::AlreadyExists),
                None => keys.add(record),
                Some(shape) if shape != (record.base(), record.secret.expose().len()) => {
                    Err(Sw::WrongData)
                }
                Some((base, _)) => {
                    let slot = keys.find_mut(base, id).ok_or(Sw::ReferenceNotFound)?;
                    *slot = record;
                    Ok(())
                }
            }
        })?;
        Ok(Vec::new())
    }
}

/// Sets PIN `id` to `pin` and gives it all its tries back.
fn set_pin(keys: &mut KeyFile, id: u8, pin: Secret) -> Result<(), Sw> {
    let record = keys.find_mut(kind::PIN, id).ok_or(Sw::ReferenceNotFound)?;
    record.secret = pin;
    record.reset_tries();
    Ok(())
}
