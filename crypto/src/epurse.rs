//! PBOC e-purse / e-passbook transaction cryptography: session keys, MAC1, MAC2 and TAC for
//! load (圈存) and purchase (消费), `pboc-spec.md` §5.2 and §5.4.
//!
//! MACs are the PBOC MAC ([`PbocMac`]) under the session key; TACs are the PBOC MAC under the
//! profile's TAC key ([`Profile::tac_key`]), always with a zero IV. The MAC values are the
//! leftmost four bytes.

use crate::error::{CryptoError, Result};
use crate::key::SymmetricKey;
use crate::mac::{PbocMac, verify};
use crate::profile::Profile;

/// Transaction type codes (`pboc-spec.md` §1).
pub mod transaction_type {
    /// ED (passbook) load.
    pub const ED_LOAD: u8 = 0x01;
    /// EP (purse) load.
    pub const EP_LOAD: u8 = 0x02;
    /// ED purchase.
    pub const ED_PURCHASE: u8 = 0x05;
    /// EP purchase.
    pub const EP_PURCHASE: u8 = 0x06;
    /// Compound (复合) purchase.
    pub const COMPOUND_PURCHASE: u8 = 0x09;
}

fn mac4(key: &SymmetricKey, data: &[u8]) -> Result<[u8; 4]> {
    Ok(PbocMac::new(key)?.compute(data).first4())
}

/// `amount4 || type1 || terminal6 || date4 || time3`: the input of the purchase MAC1 and of
/// the load MAC2.
fn amount_type_terminal_date_time(
    amount: u32,
    transaction_type: u8,
    terminal_id: &[u8; 6],
    date: &[u8; 4],
    time: &[u8; 3],
) -> [u8; 18] {
    let mut data = [0u8; 18];
    data[..4].copy_from_slice(&amount.to_be_bytes());
    data[4] = transaction_type;
    data[5..11].copy_from_slice(terminal_id);
    data[11..15].copy_from_slice(date);
    data[15..].copy_from_slice(time);
    data
}

/// The data of one purchase (INITIALIZE FOR PURCHASE + DEBIT FOR PURCHASE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// Card random from INITIALIZE FOR PURCHASE.
    pub card_random: [u8; 4],
    /// Card offline transaction serial (before the purchase).
    pub offline_seq: u16,
    /// Amount in fen.
    pub amount: u32,
    /// Transaction type (06 EP, 05 ED, 09 compound).
    pub transaction_type: u8,
    /// Terminal ID (PSAM file 0016).
    pub terminal_id: [u8; 6],
    /// Terminal (PSAM) transaction serial.
    pub terminal_seq: u32,
    /// Terminal date, YYYYMMDD BCD.
    pub date: [u8; 4],
    /// Terminal time, hhmmss BCD.
    pub time: [u8; 3],
}

impl Purchase {
    /// `SESPK = E(DPK, random4 || offline_seq2 || terminal_seq[2..4])`.
    pub fn session_key(&self, profile: Profile, dpk: &SymmetricKey) -> Result<SymmetricKey> {
        let mut input = [0u8; 8];
        input[..4].copy_from_slice(&self.card_random);
        input[4..6].copy_from_slice(&self.offline_seq.to_be_bytes());
        input[6..].copy_from_slice(&self.terminal_seq.to_be_bytes()[2..]);
        profile.session_key(dpk, &input)
    }

    /// MAC1 (terminal/PSAM → card): `MAC(SESPK, amount4 || type1 || terminal6 || date4 || time3)`.
    pub fn mac1(&self, session_key: &SymmetricKey) -> Result<[u8; 4]> {
        mac4(
            session_key,
            &amount_type_terminal_date_time(
                self.amount,
                self.transaction_type,
                &self.terminal_id,
                &self.date,
                &self.time,
            ),
        )
    }

    /// MAC2 (card → PSAM): `MAC(SESPK, amount4)`.
    pub fn mac2(&self, session_key: &SymmetricKey) -> Result<[u8; 4]> {
        mac4(session_key, &self.amount.to_be_bytes())
    }

    /// The TAC input: `amount4 || type1 || terminal6 || terminal_seq4 || date4 || time3`.
    pub fn tac_input(&self) -> [u8; 22] {
        let mut data = [0u8; 22];
        data[..4].copy_from_slice(&self.amount.to_be_bytes());
        data[4] = self.transaction_type;
        data[5..11].copy_from_slice(&self.terminal_id);
        data[11..15].copy_from_slice(&self.terminal_seq.to_be_bytes());
        data[15..19].copy_from_slice(&self.date);
        data[19..].copy_from_slice(&self.time);
        data
    }

    /// The TAC under the card's DTK.
    pub fn tac(&self, profile: Profile, dtk: &SymmetricKey) -> Result<[u8; 4]> {
        mac4(&profile.tac_key(dtk)?, &self.tac_input())
    }

    /// Checks a TAC from a transaction record in constant time.
    pub fn verify_tac(&self, profile: Profile, dtk: &SymmetricKey, tac: &[u8]) -> Result<()> {
        verify(&self.tac(profile, dtk)?, tac, "TAC")
    }
}

/// The data of one load (INITIALIZE FOR LOAD + CREDIT FOR LOAD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// Card random from INITIALIZE FOR LOAD.
    pub card_random: [u8; 4],
    /// Card online transaction serial before the load.
    pub online_seq: u16,
    /// Balance before the load, in fen.
    pub old_balance: u32,
    /// Amount in fen.
    pub amount: u32,
    /// Transaction type (02 EP, 01 ED).
    pub transaction_type: u8,
    /// Terminal ID.
    pub terminal_id: [u8; 6],
    /// Host date, YYYYMMDD BCD.
    pub date: [u8; 4],
    /// Host time, hhmmss BCD.
    pub time: [u8; 3],
}

impl Load {
    /// `SESLK = E(DLK, random4 || online_seq2 || 8000)`.
    pub fn session_key(&self, profile: Profile, dlk: &SymmetricKey) -> Result<SymmetricKey> {
        let mut input = [0u8; 8];
        input[..4].copy_from_slice(&self.card_random);
        input[4..6].copy_from_slice(&self.online_seq.to_be_bytes());
        input[6] = 0x80;
        profile.session_key(dlk, &input)
    }

    /// MAC1 (card → host): `MAC(SESLK, old_balance4 || amount4 || type1 || terminal6)`.
    pub fn mac1(&self, session_key: &SymmetricKey) -> Result<[u8; 4]> {
        let mut data = [0u8; 15];
        data[..4].copy_from_slice(&self.old_balance.to_be_bytes());
        data[4..8].copy_from_slice(&self.amount.to_be_bytes());
        data[8] = self.transaction_type;
        data[9..].copy_from_slice(&self.terminal_id);
        mac4(session_key, &data)
    }

    /// MAC2 (host → card): `MAC(SESLK, amount4 || type1 || terminal6 || date4 || time3)`.
    pub fn mac2(&self, session_key: &SymmetricKey) -> Result<[u8; 4]> {
        mac4(
            session_key,
            &amount_type_terminal_date_time(
                self.amount,
                self.transaction_type,
                &self.terminal_id,
                &self.date,
                &self.time,
            ),
        )
    }

    /// The balance after the load; an overflow of the 4-byte balance is an error.
    pub fn new_balance(&self) -> Result<u32> {
        self.old_balance
            .checked_add(self.amount)
            .ok_or(CryptoError::OutOfRange("balance"))
    }

    /// The TAC input: `new_balance4 || online_seq2 (before +1) || amount4 || type1 ||
    /// terminal6 || date4 || time3`.
    pub fn tac_input(&self) -> Result<[u8; 24]> {
        let mut data = [0u8; 24];
        data[..4].copy_from_slice(&self.new_balance()?.to_be_bytes());
        data[4..6].copy_from_slice(&self.online_seq.to_be_bytes());
        data[6..10].copy_from_slice(&self.amount.to_be_bytes());
        data[10] = self.transaction_type;
        data[11..17].copy_from_slice(&self.terminal_id);
        data[17..21].copy_from_slice(&self.date);
        data[21..].copy_from_slice(&self.time);
        Ok(data)
    }

    /// The TAC under the card's DTK.
    pub fn tac(&self, profile: Profile, dtk: &SymmetricKey) -> Result<[u8; 4]> {
        mac4(&profile.tac_key(dtk)?, &self.tac_input()?)
    }

    /// Checks a TAC in constant time.
    pub fn verify_tac(&self, profile: Profile, dtk: &SymmetricKey, tac: &[u8]) -> Result<()> {
        verify(&self.tac(profile, dtk)?, tac, "TAC")
    }
}
