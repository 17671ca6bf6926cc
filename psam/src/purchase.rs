//! The purchase (`pboc-spec.md` §2, §5.4, §6): the card's INITIALIZE FOR PURCHASE, the PSAM's
//! MAC1, the card's DEBIT FOR PURCHASE, the PSAM's check of MAC2; and the recovery of a
//! purchase whose DEBIT got no answer.

use crate::card::{Purse, array, be16, be32, call, expect, read_binary_sfi, transmit};
use crate::error::{Result, TerminalError};
use crate::record::PurchaseRecord;
use ykt_apdu::{ApduError, Command, Session, Sw};

/// The most factors above the card's ASN a PSAM key takes (three levels in all).
const MAX_HIGHER_FACTORS: usize = 2;

/// What to buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseRequest {
    /// The purse to debit. The ED needs a verified PIN ([`crate::verify_pin`]) first.
    pub purse: Purse,
    /// Amount in fen.
    pub amount: u32,
    /// Transaction type: 06 EP purchase, 05 ED purchase, 09 compound purchase (INITIALIZE
    /// FOR CAPP PURCHASE, 80 50 03, on either purse).
    pub transaction_type: u8,
    /// Index of the card's purchase key (DPK), which also selects the PSAM key through the
    /// key version the card reports.
    pub key_index: u8,
    /// Terminal date YYYYMMDD, BCD.
    pub date: [u8; 4],
    /// Terminal time hhmmss, BCD.
    pub time: [u8; 3],
}

impl PurchaseRequest {
    /// P1 of INITIALIZE: 01 for a purchase of the purse's own type, 03 for a compound one.
    fn initialize_p1(&self) -> Result<u8> {
        match (self.purse, self.transaction_type) {
            (Purse::Ed, 0x05) | (Purse::Ep, 0x06) => Ok(0x01),
            (_, 0x09) => Ok(0x03),
            _ => Err(TerminalError::InvalidRequest(
                "purchase type must be 05 (ED), 06 (EP) or 09 (compound)",
            )),
        }
    }
}

/// A terminal: the identity of its PSAM.
///
/// The terminal ID is read once by [`Terminal::open`], which also leaves the PSAM in its
/// purchase application. Reset or replace the PSAM and the terminal must be opened again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    terminal_id: [u8; 6],
}

impl Terminal {
    /// Reads the terminal ID from the PSAM (SELECT MF 3F00, READ BINARY of EF 0016 by SFI,
    /// 00 B0 96 00 06) and selects the PSAM application by its name `application` (its AID).
    pub fn open(psam: &mut dyn Session, application: &[u8]) -> Result<Self> {
        let select_mf = Command::new(0x00, 0xA4, 0x00, 0x00).with_data([0x3F, 0x00]);
        expect_status(psam, "SELECT MF", &select_mf)?;
        let terminal_id = array(&read_binary_sfi(psam, "READ BINARY 0016", 0x16, 6)?);
        let select = Command::new(0x00, 0xA4, 0x04, 0x00).with_data(application);
        expect_status(psam, "SELECT PSAM application", &select)?;
        Ok(Self { terminal_id })
    }

    /// The terminal ID, from PSAM EF 0016.
    pub fn terminal_id(&self) -> [u8; 6] {
        self.terminal_id
    }

    /// A purchase from the card with the ASN `asn` (see [`crate::read_asn`]), whose purse
    /// application is selected:
    ///
    /// 1. INITIALIZE FOR PURCHASE (80 50 01|03 P2 0B keyIndex amount terminalID 0F): balance,
    ///    offline serial, key version, algorithm ID, card random;
    /// 2. INIT_SAM_FOR_PURCHASE (80 70 00 00 Lc random offlineSeq amount type date time
    ///    keyVersion algorithmID ASN factors 08): terminal serial and MAC1. The factors go on
    ///    the wire card ASN first, then `higher_factors` in their order: the level just above
    ///    the card first (school, then region), up to two;
    /// 3. DEBIT FOR PURCHASE (80 54 01 00 0F terminalSeq date time MAC1 08): TAC and MAC2;
    /// 4. CREDIT_SAM_FOR_PURCHASE (80 72 00 00 04 MAC2): the PSAM checks MAC2.
    ///
    /// Errors: [`TerminalError::InsufficientBalance`] (9401 from INITIALIZE);
    /// [`TerminalError::MacRejectedByCard`] when the card refuses MAC1 (nothing debited);
    /// [`TerminalError::PurchaseTorn`] when DEBIT gets no answer; and
    /// [`TerminalError::Mac2Rejected`], with the record, when the card debited but the PSAM
    /// does not confirm its MAC2.
    pub fn purchase(
        &self,
        card: &mut dyn Session,
        psam: &mut dyn Session,
        request: &PurchaseRequest,
        asn: &[u8; 8],
        higher_factors: &[[u8; 8]],
    ) -> Result<PurchaseRecord> {
        let p1 = request.initialize_p1()?;
        if higher_factors.len() > MAX_HIGHER_FACTORS {
            return Err(TerminalError::InvalidRequest(
                "at most two factors above the card's ASN",
            ));
        }
        let mut init = vec![request.key_index];
        init.extend_from_slice(&request.amount.to_be_bytes());
        init.extend_from_slice(&self.terminal_id);
        let command = Command::new(0x80, 0x50, p1, request.purse.p2())
            .with_data(init)
            .with_le(15);
        let r = call(card, "INITIALIZE FOR PURCHASE", &command, 15)?;
        let card_random: [u8; 4] = array(&r[11..]);
        let mut record = PurchaseRecord {
            asn: *asn,
            offline_seq: be16(&r, 4),
            amount: request.amount,
            transaction_type: request.transaction_type,
            terminal_id: self.terminal_id,
            terminal_seq: 0,
            date: request.date,
            time: request.time,
            tac: [0; 4],
            key_version: r[9],
            algorithm_id: r[10],
            balance_before: be32(&r, 0),
        };

        let mut sam = card_random.to_vec();
        sam.extend_from_slice(&record.offline_seq.to_be_bytes());
        sam.extend_from_slice(&request.amount.to_be_bytes());
        sam.push(request.transaction_type);
        sam.extend_from_slice(&request.date);
        sam.extend_from_slice(&request.time);
        sam.extend_from_slice(&[record.key_version, record.algorithm_id]);
        sam.extend_from_slice(asn);
        sam.extend(higher_factors.iter().flatten());
        let command = Command::new(0x80, 0x70, 0x00, 0x00)
            .with_data(sam)
            .with_le(8);
        let r = call(psam, "INIT_SAM_FOR_PURCHASE", &command, 8)?;
        record.terminal_seq = be32(&r, 0);
        let mac1 = &r[4..];

        let mut debit = r[..4].to_vec();
        debit.extend_from_slice(&request.date);
        debit.extend_from_slice(&request.time);
        debit.extend_from_slice(mac1);
        let command = Command::new(0x80, 0x54, 0x01, 0x00)
            .with_data(debit)
            .with_le(8);
        let response = match transmit(card, &command) {
            Ok(response) => response,
            Err(TerminalError::Transport(cause)) => {
                return Err(TerminalError::PurchaseTorn(Box::new(TornPurchase {
                    record,
                    cause,
                })));
            }
            Err(other) => return Err(other),
        };
        if response.sw == Sw::MacInvalid {
            return Err(TerminalError::MacRejectedByCard {
                command: "DEBIT FOR PURCHASE",
            });
        }
        let r = expect(response, "DEBIT FOR PURCHASE", 8)?;
        record.tac = array(&r);
        confirm_mac2(psam, record, &r[4..])
    }
}

/// Sends `command` and expects 9000, whatever the data.
fn expect_status(session: &mut dyn Session, name: &'static str, command: &Command) -> Result<()> {
    let sw = transmit(session, command)?.sw;
    if sw == Sw::Ok {
        Ok(())
    } else {
        Err(TerminalError::status(name, sw))
    }
}

/// CREDIT_SAM_FOR_PURCHASE (80 72 00 00 04 MAC2): the record when the PSAM accepts the card's
/// MAC2, else [`TerminalError::Mac2Rejected`] with it.
fn confirm_mac2(
    psam: &mut dyn Session,
    record: PurchaseRecord,
    mac2: &[u8],
) -> Result<PurchaseRecord> {
    let command = Command::new(0x80, 0x72, 0x00, 0x00).with_data(mac2);
    let sw = match transmit(psam, &command) {
        Ok(response) if response.sw == Sw::Ok => return Ok(record),
        Ok(response) => Some(response.sw),
        Err(_) => None,
    };
    Err(TerminalError::Mac2Rejected {
        record: Box::new(record),
        sw,
    })
}

/// A purchase whose DEBIT FOR PURCHASE got no answer: what the terminal knew when it sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornPurchase {
    /// The record with a zero TAC until recovered.
    record: PurchaseRecord,
    cause: ApduError,
}

impl TornPurchase {
    /// The card's offline serial the purchase used.
    pub fn offline_seq(&self) -> u16 {
        self.record.offline_seq
    }

    /// The terminal serial the PSAM gave the purchase.
    pub fn terminal_seq(&self) -> u32 {
        self.record.terminal_seq
    }

    /// The card's ASN.
    pub fn asn(&self) -> [u8; 8] {
        self.record.asn
    }

    /// Why DEBIT got no answer.
    pub fn cause(&self) -> &ApduError {
        &self.cause
    }
}

/// Settles a torn purchase once the card answers again (reset it and select its purse
/// application first; the PSAM must have received nothing since the torn purchase's
/// INIT_SAM_FOR_PURCHASE). GET TRANSACTION PROVE (80 5A 00 type 02 offlineSeq 08) returns the
/// card's MAC2 and TAC when the card's last transaction is this one: the purchase happened, the
/// PSAM checks MAC2 as in [`Terminal::purchase`] and the record is returned. 9406 (no such
/// transaction) means the card did not debit: `Ok(None)`, and the purchase can be retried.
pub fn recover_purchase(
    card: &mut dyn Session,
    psam: &mut dyn Session,
    torn: &TornPurchase,
) -> Result<Option<PurchaseRecord>> {
    let mut record = torn.record;
    let command = Command::new(0x80, 0x5A, 0x00, record.transaction_type)
        .with_data(record.offline_seq.to_be_bytes())
        .with_le(8);
    let response = transmit(card, &command)?;
    if response.sw == Sw::MacNotAvailable {
        return Ok(None);
    }
    let r = expect(response, "GET TRANSACTION PROVE", 8)?;
    record.tac = array(&r[4..]);
    confirm_mac2(psam, record, &r[..4]).map(Some)
}
