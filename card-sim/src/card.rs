//! The card: chip identity, the persistent image with its write points, the volatile session
//! (current DF/EF, security states, challenge, transaction in progress), power handling with
//! power-loss injection, and the command dispatcher behind [`CardHandler`].

use crate::error::{Result, SimError};
use crate::fs::{Body, Df, Ef, MF_FID};
use crate::keys::{KeyFile, KeyRecord, Secret, kind};
use crate::persist::{self, Image, Storage};
use crate::random::RandomSource;
use crate::security::SecurityState;
use crate::{journal, psam, purse};
use serde::{Deserialize, Serialize};
use std::path::Path;
use ykt_apdu::{CardHandler, Command, Sw};

/// The block cipher family of a chip: it decides what a 16-byte key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CardAlgorithm {
    /// DES (8-byte keys) and two-key 3DES (16-byte keys): the PBOC profile.
    #[serde(rename = "3des")]
    TripleDes,
    /// SM4 (16-byte keys): the ykt SM4 profile v1.
    #[serde(rename = "sm4")]
    Sm4,
}

/// Which application the chip's operating system offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChipKind {
    /// A user card: files, keys, PIN, e-purse and passbook.
    UserCard,
    /// A PSAM: files, keys and the terminal commands (8070, 8072, 801A, 80FA).
    Psam,
}

/// What was manufactured: the algorithm family and the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chip {
    /// Block cipher family.
    pub algorithm: CardAlgorithm,
    /// User card or PSAM.
    pub kind: ChipKind,
}

/// Why a command did not complete normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The card answers with this status word (nothing was written).
    Status(Sw),
    /// Power was lost at a write point: no answer.
    PowerLost,
}

impl From<Sw> for Fault {
    fn from(sw: Sw) -> Self {
        Self::Status(sw)
    }
}

/// What a command handler returns: response data, or why there is none.
pub(crate) type Reply = std::result::Result<Vec<u8>, Fault>;

/// A command that needs a preceding one (INITIALIZE → CREDIT/DEBIT, 8070 → 8072, 801A → 80FA).
/// Any other command in between discards it.
pub(crate) enum Pending {
    /// INITIALIZE FOR LOAD done.
    Load(purse::LoadSession),
    /// INITIALIZE FOR PURCHASE (or compound purchase) done.
    Purchase(purse::PurchaseSession),
    /// INIT_SAM_FOR_PURCHASE done.
    SamPurchase(psam::SamPurchase),
    /// DELIVER KEY done.
    DeliveredKey(psam::DeliveredKey),
}

/// The volatile state, lost on every reset.
#[derive(Default)]
pub(crate) struct Session {
    /// Path of the current DF below the MF (empty: the MF).
    pub df: Vec<u16>,
    /// Current EF in the current DF.
    pub ef: Option<u16>,
    /// Security states.
    pub security: SecurityState,
    /// The last GET CHALLENGE, until used.
    pub challenge: Option<Vec<u8>>,
    /// The command sequence in progress.
    pub pending: Option<Pending>,
}

/// A virtual FMCOS-style CPU card or PSAM.
///
/// Create one with [`Card::manufacture`] (in memory) or [`Card::manufacture_at`] (backed by a
/// state file), or reopen a state file with [`Card::open`]; then drive it with APDUs through
/// [`CardHandler`] (for example inside a [`ykt_apdu::MemoryTransport`]). A fresh card has an MF
/// `1PAY.SYS.DDF01` with a key file holding only the transport key (external authentication key
/// 39/00) and is personalised entirely by APDUs.
///
/// Every change of persistent state is a *write point* that stores the whole image (in memory
/// or by atomic file replacement). A financial command first writes a journal of all its
/// writes, then makes them one write point at a time, then clears the journal; a card that
/// loses power in between finishes the journal at the next power-on. [`Card::lose_power_at_write`]
/// injects such a power loss.
pub struct Card {
    image: Image,
    storage: Storage,
    persisted: Vec<u8>,
    pub(crate) session: Session,
    random: RandomSource,
    mute: bool,
    power_loss_in: Option<u32>,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("chip", &self.image.chip)
            .field("storage", &self.storage)
            .field("mute", &self.mute)
            .finish_non_exhaustive()
    }
}

/// Name of the MF of a fresh card.
const MF_NAME: &[u8] = b"1PAY.SYS.DDF01";

/// Right byte "after authentication to state 1" used by the factory MF.
const AUTHENTICATED: u8 = 0xF1;

impl Card {
    /// A fresh card in memory: MF with a key file holding `transport_key` as external
    /// authentication key 39/00 (8 or 16 bytes on a 3DES chip, 16 on an SM4 chip). Randoms come
    /// from the operating system until [`Card::set_random`].
    pub fn manufacture(chip: Chip, transport_key: &[u8]) -> Result<Self> {
        Self::with_storage(factory_image(chip, transport_key)?, Storage::Memory)
    }

    /// The same, backed by the state file `path` (created or replaced).
    pub fn manufacture_at(path: &Path, chip: Chip, transport_key: &[u8]) -> Result<Self> {
        Self::with_storage(
            factory_image(chip, transport_key)?,
            Storage::File(path.to_path_buf()),
        )
    }

    /// Reopens a card from its state file, finishing an interrupted financial command.
    pub fn open(path: &Path) -> Result<Self> {
        let image = persist::decode(&persist::read(path)?)?;
        Self::with_storage(image, Storage::File(path.to_path_buf()))
    }

    /// A card in memory from state-file text (see [`Card::state`]), finishing an interrupted
    /// financial command.
    pub fn from_state(state: &[u8]) -> Result<Self> {
        Self::with_storage(persist::decode(state)?, Storage::Memory)
    }

    fn with_storage(mut image: Image, storage: Storage) -> Result<Self> {
        journal::finish(&mut image);
        let persisted = persist::encode(&image);
        storage.write(&persisted)?;
        Ok(Self {
            image,
            storage,
            persisted,
            session: Session::default(),
            random: RandomSource::os(),
            mute: false,
            power_loss_in: None,
        })
    }

    /// The state-file text of the card as last persisted (it contains the card's clear keys,
    /// as a chip's EEPROM does).
    pub fn state(&self) -> &[u8] {
        &self.persisted
    }

    /// What the chip is.
    pub fn chip(&self) -> Chip {
        self.image.chip
    }

    /// Replaces the random source (challenges, transaction randoms).
    pub fn set_random(&mut self, random: RandomSource) {
        self.random = random;
    }

    /// Queues exact bytes to be used as the next randoms (a trace's card random).
    pub fn script_random(&mut self, bytes: &[u8]) {
        self.random.push(bytes);
    }

    /// Power-loss injection: the `n`-th write point from now (1 = the next) loses power instead
    /// of writing. The command in progress gets no answer (an empty response) and the card
    /// stays mute until [`CardHandler::power_on`], which reloads the persisted image.
    /// `n = 0` disarms.
    pub fn lose_power_at_write(&mut self, n: u32) {
        self.power_loss_in = (n > 0).then_some(n);
    }

    /// Whether the card lost power and waits for a reset.
    pub fn is_mute(&self) -> bool {
        self.mute
    }

    /// The image, read-only.
    pub(crate) fn image(&self) -> &Image {
        &self.image
    }

    /// A write point: applies `change` to the image and persists it. When `change` fails,
    /// nothing is written and the image is what was last persisted.
    pub(crate) fn write<T>(
        &mut self,
        change: impl FnOnce(&mut Image) -> std::result::Result<T, Sw>,
    ) -> std::result::Result<T, Fault> {
        match change(&mut self.image) {
            Ok(value) => self.persist().map(|()| value),
            Err(sw) => {
                self.restore()?;
                Err(sw.into())
            }
        }
    }

    fn persist(&mut self) -> std::result::Result<(), Fault> {
        if let Some(n) = self.power_loss_in {
            if n <= 1 {
                self.power_loss_in = None;
                self.mute = true;
                return Err(Fault::PowerLost);
            }
            self.power_loss_in = Some(n - 1);
        }
        let bytes = persist::encode(&self.image);
        if self.storage.write(&bytes).is_err() {
            self.restore()?;
            return Err(Sw::MemoryFailure.into());
        }
        self.persisted = bytes;
        Ok(())
    }

    /// Reloads the image from the last persisted state (a card whose state cannot be decoded
    /// goes mute).
    fn restore(&mut self) -> std::result::Result<(), Fault> {
        match persist::decode(&self.persisted) {
            Ok(image) => {
                self.image = image;
                Ok(())
            }
            Err(_) => {
                self.mute = true;
                Err(Fault::PowerLost)
            }
        }
    }

    /// `n` random bytes from the card's source.
    pub(crate) fn random(&mut self, n: usize) -> std::result::Result<Vec<u8>, Sw> {
        self.random.bytes(n)
    }

    /// Whether the current DF is the MF.
    pub(crate) fn at_mf(&self) -> bool {
        self.session.df.is_empty()
    }

    /// The current DF.
    pub(crate) fn df(&self) -> std::result::Result<&Df, Sw> {
        self.image
            .mf
            .descend(&self.session.df)
            .ok_or(Sw::FileNotFound)
    }

    /// The MF.
    pub(crate) fn mf(&self) -> &Df {
        &self.image.mf
    }

    /// The algorithm family of the chip.
    pub(crate) fn algorithm(&self) -> CardAlgorithm {
        self.image.chip.algorithm
    }

    /// 6982 unless the security state satisfies `right`.
    pub(crate) fn require(&self, right: u8) -> std::result::Result<(), Sw> {
        if self.session.security.allows(right, self.at_mf()) {
            Ok(())
        } else {
            Err(Sw::SecurityStatusNotSatisfied)
        }
    }

    /// The current DF's key file: 6A88 when it has none.
    pub(crate) fn key_file(&self) -> std::result::Result<&KeyFile, Sw> {
        self.df()?.key_file().ok_or(Sw::ReferenceNotFound)
    }

    /// Key `base`/`id` of the current DF: 6A88 when absent.
    pub(crate) fn key(&self, base: u8, id: u8) -> std::result::Result<&KeyRecord, Sw> {
        self.key_file()?.find(base, id).ok_or(Sw::ReferenceNotFound)
    }

    /// Uses up the challenge: 6984 when there is none.
    pub(crate) fn take_challenge(&mut self) -> std::result::Result<Vec<u8>, Sw> {
        self.session.challenge.take().ok_or(Sw::InvalidRandom)
    }

    fn dispatch(&mut self, c: &Command) -> Reply {
        let pending = self.session.pending.take();
        let user = self.image.chip.kind == ChipKind::UserCard;
        let psam = !user;
        match (c.cla, c.ins) {
            (0x00, 0xA4) => self.select(c),
            (0x00 | 0x04, 0xB0) => self.read_binary(c),
            (0x00 | 0x04, 0xD6) => self.update_binary(c),
            (0x00 | 0x04, 0xB2) => self.read_record(c),
            (0x00 | 0x04, 0xDC) => self.update_record(c),
            (0x00 | 0x04, 0xE2) => self.append_record(c),
            (0x80, 0x0E) => self.erase_df(c),
            (0x80, 0xE0) => self.create_file(c),
            (0x00, 0x84) => self.get_challenge(c),
            (0x00, 0x82) => self.external_authenticate(c),
            (0x00, 0x88) => self.internal_authenticate(c),
            (0x00, 0x20) => self.verify_pin(c),
            (0x80, 0x5E) => self.change_or_reload_pin(c),
            (0x84, 0x24) => self.unblock_pin(c),
            (0x80 | 0x84, 0xD4) => self.write_key(c),
            (0x80, 0x5C) if user => self.get_balance(c),
            (0x80, 0x50) if user => self.initialize(c),
            (0x80, 0x52) if user => self.credit_for_load(c, pending),
            (0x80, 0x54) if user => self.debit_for_purchase(c, pending),
            (0x80, 0xDC) if user => self.update_capp_data_cache(c, pending),
            (0x80, 0x5A) if user => self.get_transaction_prove(c),
            (0x80, 0x70) if psam => self.init_sam_for_purchase(c),
            (0x80, 0x72) if psam => self.credit_sam_for_purchase(c, pending),
            (0x80, 0x1A) if psam => self.deliver_key(c),
            (0x80, 0xFA) if psam => self.cipher_data(c, pending),
            (cla, ins) if !matches!(cla, 0x00 | 0x04 | 0x80 | 0x84) || is_known(ins, user) => {
                Err(Sw::ClaNotSupported.into())
            }
            _ => Err(Sw::InsNotSupported.into()),
        }
    }
}

/// Whether `ins` is a command of this chip (with another class byte).
fn is_known(ins: u8, user: bool) -> bool {
    const COMMON: [u8; 15] = [
        0xA4, 0xB0, 0xD6, 0xB2, 0xDC, 0xE2, 0x0E, 0xE0, 0x84, 0x82, 0x88, 0x20, 0x5E, 0x24, 0xD4,
    ];
    const USER: [u8; 5] = [0x5C, 0x50, 0x52, 0x54, 0x5A];
    const PSAM: [u8; 4] = [0x70, 0x72, 0x1A, 0xFA];
    COMMON.contains(&ins)
        || if user {
            USER.contains(&ins)
        } else {
            PSAM.contains(&ins)
        }
}

/// 6Cxx when the command's Le asks for fewer than the `len` bytes it will get (Le = 00, or no
/// Le, takes everything).
pub(crate) fn check_le(c: &Command, len: usize) -> std::result::Result<(), Sw> {
    match c.le {
        Some(ne) if ne != 256 && (ne as usize) < len => Err(Sw::WrongLe(len as u8)),
        _ => Ok(()),
    }
}

/// 6700 unless the command data has exactly `len` bytes.
pub(crate) fn expect_len(c: &Command, len: usize) -> std::result::Result<(), Sw> {
    if c.data.len() == len {
        Ok(())
    } else {
        Err(Sw::WrongLength)
    }
}

fn factory_image(chip: Chip, transport_key: &[u8]) -> Result<Image> {
    let fits = match chip.algorithm {
        CardAlgorithm::TripleDes => matches!(transport_key.len(), 8 | 16),
        CardAlgorithm::Sm4 => transport_key.len() == 16,
    };
    if !fits {
        return Err(SimError::Parameter(
            "transport key must be 8 or 16 bytes (3DES chip) or 16 bytes (SM4 chip)",
        ));
    }
    let transport = KeyRecord {
        type_byte: kind::EXTERNAL,
        id: 0,
        usage: 0xF0,
        change: AUTHENTICATED,
        p4: 0x01,
        p5: 0xFF,
        secret: Secret::new(transport_key),
    };
    let key_file = Ef {
        fid: 0x0000,
        body: Body::Keys(KeyFile {
            size: 0x0100,
            df_sfi: 0x81,
            add_right: AUTHENTICATED,
            keys: vec![transport],
            psam_keys: Vec::new(),
        }),
    };
    Ok(Image {
        chip,
        atr: atr(chip),
        mf: Df {
            fid: MF_FID,
            name: MF_NAME.to_vec(),
            size: 0xFFFF,
            create_right: AUTHENTICATED,
            erase_right: AUTHENTICATED,
            app_fid: 0x81,
            files: vec![key_file],
            dfs: Vec::new(),
        },
        terminal_seq: 0,
        last_transaction: None,
        journal: None,
    })
}

/// An ISO/IEC 7816-3 ATR: `3B`, T0 with the number of historical bytes, TD1 = 80 and TD2 = 01
/// (T=1 offered, as a PC/SC reader builds for a contactless card), the historical bytes and
/// TCK.
fn atr(chip: Chip) -> Vec<u8> {
    let historical: &[u8] = match (chip.kind, chip.algorithm) {
        (ChipKind::UserCard, CardAlgorithm::TripleDes) => b"FMCOS2.0-3D",
        (ChipKind::UserCard, CardAlgorithm::Sm4) => b"FMCOS2.0-S4",
        (ChipKind::Psam, CardAlgorithm::TripleDes) => b"PSAM2.0-3D",
        (ChipKind::Psam, CardAlgorithm::Sm4) => b"PSAM2.0-S4",
    };
    let mut atr = vec![0x3B, 0x80 | historical.len() as u8, 0x80, 0x01];
    atr.extend_from_slice(historical);
    let tck = atr[1..].iter().fold(0, |x, b| x ^ b);
    atr.push(tck);
    atr
}

impl CardHandler for Card {
    /// Resets the card: a card that lost power reloads its persisted image (finishing an
    /// interrupted financial command); the session starts over in the MF.
    fn power_on(&mut self) -> Vec<u8> {
        if self.mute {
            if self.restore().is_err() {
                return Vec::new();
            }
            self.mute = false;
            if journal::finish(&mut self.image) && self.persist().is_err() {
                return Vec::new();
            }
        }
        self.session = Session::default();
        self.image.atr.clone()
    }

    /// Answers one command APDU. Anything that is not a short command APDU gets 6700; a card
    /// that lost power answers nothing until the next [`CardHandler::power_on`].
    fn handle(&mut self, command: &[u8]) -> Vec<u8> {
        if self.mute {
            return Vec::new();
        }
        let reply = match Command::parse(command) {
            Ok(c) if !c.extended => self.dispatch(&c),
            _ => Err(Sw::WrongLength.into()),
        };
        match reply {
            Ok(mut data) => {
                data.extend_from_slice(&Sw::Ok.to_bytes());
                data
            }
            Err(Fault::Status(sw)) => sw.to_bytes().to_vec(),
            Err(Fault::PowerLost) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atr_check_byte_and_parameters() {
        for kind in [ChipKind::UserCard, ChipKind::Psam] {
            for algorithm in [CardAlgorithm::TripleDes, CardAlgorithm::Sm4] {
                let a = atr(Chip { algorithm, kind });
                assert_eq!(a[1..].iter().fold(0, |x, b| x ^ b), 0);
                assert_eq!(usize::from(a[1] & 0x0F), a.len() - 5);
            }
        }
        let chip = Chip {
            algorithm: CardAlgorithm::Sm4,
            kind: ChipKind::UserCard,
        };
        assert!(matches!(
            Card::manufacture(chip, &[0xFF; 8]),
            Err(SimError::Parameter(_))
        ));
    }
}
