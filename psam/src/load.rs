//! The load (`pboc-spec.md` §2, §5.4): INITIALIZE FOR LOAD on the card, MAC1 checked and MAC2
//! made by the online host, CREDIT FOR LOAD on the card.

use crate::card::{Purse, array, be16, be32, call, expect, transmit};
use crate::error::{Result, TerminalError};
use ykt_apdu::{Command, Session, Sw};

/// What to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRequest {
    /// The purse to credit. The ED needs a verified PIN ([`crate::verify_pin`]) first.
    pub purse: Purse,
    /// Amount in fen.
    pub amount: u32,
    /// Transaction type: 02 EP load, 01 ED load.
    pub transaction_type: u8,
    /// Index of the card's load key (DLK).
    pub key_index: u8,
    /// Terminal ID of the load terminal (it enters MAC1, MAC2 and the TAC).
    pub terminal_id: [u8; 6],
}

/// What the host needs to authorise a load: the request, the card's ASN and what INITIALIZE
/// FOR LOAD answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadInit {
    /// The request as sent.
    pub request: LoadRequest,
    /// The card's ASN, the diversification factor of its load and TAC keys.
    pub asn: [u8; 8],
    /// Balance before the load, in fen.
    pub old_balance: u32,
    /// The card's online serial before the load.
    pub online_seq: u16,
    /// Version of the card's load key.
    pub key_version: u8,
    /// Algorithm ID the card reported.
    pub algorithm_id: u8,
    /// The card's random (session-key input).
    pub card_random: [u8; 4],
    /// The card's MAC1 over old balance, amount, type and terminal ID.
    pub mac1: [u8; 4],
}

/// The host's answer: the host date and time and MAC2 for CREDIT FOR LOAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadAuthorization {
    /// Host date YYYYMMDD, BCD.
    pub date: [u8; 4],
    /// Host time hhmmss, BCD.
    pub time: [u8; 3],
    /// MAC2 over amount, type, terminal ID, date and time.
    pub mac2: [u8; 4],
}

/// The online host (KMS and HSM) that holds the load master key.
pub trait LoadHost {
    /// Verifies the card's MAC1 with the card's load key (derived from the master key by the
    /// ASN) and, when it is right and the load allowed, makes MAC2. A refusal is an error,
    /// typically [`TerminalError::Host`].
    fn authorize(&mut self, init: &LoadInit) -> Result<LoadAuthorization>;
}

/// A completed load, for the host to verify its TAC and book it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadRecord {
    /// The card's ASN.
    pub asn: [u8; 8],
    /// The card's online serial before the load (the TAC's serial).
    pub online_seq: u16,
    /// Amount in fen.
    pub amount: u32,
    /// Transaction type: 01 ED, 02 EP.
    pub transaction_type: u8,
    /// Terminal ID.
    pub terminal_id: [u8; 6],
    /// Host date YYYYMMDD, BCD.
    pub date: [u8; 4],
    /// Host time hhmmss, BCD.
    pub time: [u8; 3],
    /// The card's transaction authentication code.
    pub tac: [u8; 4],
    /// Version of the card's load key.
    pub key_version: u8,
    /// Algorithm ID the card reported.
    pub algorithm_id: u8,
    /// Balance before the load, in fen.
    pub balance_before: u32,
}

impl LoadRecord {
    /// Balance after the load, in fen (the TAC covers it).
    pub fn balance_after(&self) -> u32 {
        self.balance_before.saturating_add(self.amount)
    }
}

/// A load into the card with the ASN `asn` (see [`crate::read_asn`]), whose purse application
/// is selected:
///
/// 1. INITIALIZE FOR LOAD (80 50 00 P2 0B keyIndex amount terminalID 10): old balance, online
///    serial, key version, algorithm ID, card random, MAC1 ([`initialize_load`]);
/// 2. `host` verifies MAC1 and makes MAC2;
/// 3. CREDIT FOR LOAD (80 52 00 00 0B date time MAC2 04): the TAC ([`credit_load`]).
///
/// A card that refuses the host's MAC2 is [`TerminalError::MacRejectedByCard`] (nothing is
/// credited). A terminal whose host is asynchronous calls the two halves itself.
pub fn load(
    card: &mut dyn Session,
    host: &mut dyn LoadHost,
    request: &LoadRequest,
    asn: &[u8; 8],
) -> Result<LoadRecord> {
    let init = initialize_load(card, request, asn)?;
    let authorization = host.authorize(&init)?;
    credit_load(card, &init, &authorization)
}

/// The first half of a load: INITIALIZE FOR LOAD, whose answer (with MAC1) goes to the host.
pub fn initialize_load(
    card: &mut dyn Session,
    request: &LoadRequest,
    asn: &[u8; 8],
) -> Result<LoadInit> {
    match (request.purse, request.transaction_type) {
        (Purse::Ed, 0x01) | (Purse::Ep, 0x02) => {}
        _ => {
            return Err(TerminalError::InvalidRequest(
                "load type must be 01 (ED) or 02 (EP)",
            ));
        }
    }
    let mut data = vec![request.key_index];
    data.extend_from_slice(&request.amount.to_be_bytes());
    data.extend_from_slice(&request.terminal_id);
    let command = Command::new(0x80, 0x50, 0x00, request.purse.p2())
        .with_data(data)
        .with_le(16);
    let r = call(card, "INITIALIZE FOR LOAD", &command, 16)?;
    Ok(LoadInit {
        request: request.clone(),
        asn: *asn,
        old_balance: be32(&r, 0),
        online_seq: be16(&r, 4),
        key_version: r[6],
        algorithm_id: r[7],
        card_random: array(&r[8..]),
        mac1: array(&r[12..]),
    })
}

/// The second half of a load: CREDIT FOR LOAD with the host's MAC2; the record carries the
/// card's TAC.
pub fn credit_load(
    card: &mut dyn Session,
    init: &LoadInit,
    authorization: &LoadAuthorization,
) -> Result<LoadRecord> {
    let request = &init.request;
    let mut data = authorization.date.to_vec();
    data.extend_from_slice(&authorization.time);
    data.extend_from_slice(&authorization.mac2);
    let command = Command::new(0x80, 0x52, 0x00, 0x00)
        .with_data(data)
        .with_le(4);
    let response = transmit(card, &command)?;
    if response.sw == Sw::MacInvalid {
        return Err(TerminalError::MacRejectedByCard {
            command: "CREDIT FOR LOAD",
        });
    }
    let tac = array(&expect(response, "CREDIT FOR LOAD", 4)?);
    Ok(LoadRecord {
        asn: init.asn,
        online_seq: init.online_seq,
        amount: request.amount,
        transaction_type: request.transaction_type,
        terminal_id: request.terminal_id,
        date: authorization.date,
        time: authorization.time,
        tac,
        key_version: init.key_version,
        algorithm_id: init.algorithm_id,
        balance_before: init.old_balance,
    })
}
