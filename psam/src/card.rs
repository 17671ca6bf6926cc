//! User-card commands around the transactions (`pboc-spec.md` §1, §2): application selection,
//! the ASN, PIN verification, balance and the transaction log; and the exchange helpers every
//! command of this crate goes through.

use crate::error::{Result, TerminalError};
use ykt_apdu::{Command, LogRecord, Response, Session, Sw, exchange};

/// Sends `command` (completing T=0 responses) and returns the response, whatever its status.
pub(crate) fn transmit(
    session: &mut dyn Session,
    command: &Command,
) -> Result<Response, TerminalError> {
    Ok(exchange(session, command)?)
}

/// Checks that `response` to `name` succeeded and returns its data.
pub(crate) fn expect_ok(response: Response, name: &'static str) -> Result<Vec<u8>> {
    if response.sw == Sw::Ok {
        Ok(response.data)
    } else {
        Err(TerminalError::status(name, response.sw))
    }
}

/// Checks that `response` to `name` succeeded with exactly `len` bytes of data.
pub(crate) fn expect(response: Response, name: &'static str, len: usize) -> Result<Vec<u8>> {
    let data = expect_ok(response, name)?;
    if data.len() != len {
        return Err(TerminalError::MalformedResponse {
            command: name,
            len: data.len(),
            expected: len,
        });
    }
    Ok(data)
}

/// Sends `command` named `name` and returns its `len` bytes of data after 9000.
pub(crate) fn call(
    session: &mut dyn Session,
    name: &'static str,
    command: &Command,
    len: usize,
) -> Result<Vec<u8>> {
    expect(transmit(session, command)?, name, len)
}

/// READ BINARY by SFI (00 B0 80|SFI 00 len) in the current DF: the first `len` bytes of the
/// file.
pub(crate) fn read_binary_sfi(
    session: &mut dyn Session,
    name: &'static str,
    sfi: u8,
    len: u8,
) -> Result<Vec<u8>> {
    let command = Command::new(0x00, 0xB0, 0x80 | sfi, 0x00).with_le(len.into());
    call(session, name, &command, len.into())
}

/// The first `N` bytes of `bytes`, which the caller has checked are there.
pub(crate) fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// A 4-byte big-endian number at `offset`.
pub(crate) fn be32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes(array(&bytes[offset..]))
}

/// A 2-byte big-endian number at `offset`.
pub(crate) fn be16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_be_bytes(array(&bytes[offset..]))
}

/// A purse of the PBOC application: its P2 in GET BALANCE and INITIALIZE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purse {
    /// The electronic passbook (ED, EF 0001, P2 01): needs the PIN.
    Ed,
    /// The electronic purse (EP, EF 0002, P2 02).
    Ep,
}

impl Purse {
    /// P2 of GET BALANCE and INITIALIZE: 01 for the ED, 02 for the EP.
    pub fn p2(self) -> u8 {
        match self {
            Self::Ed => 0x01,
            Self::Ep => 0x02,
        }
    }
}

/// SFI of the transaction log (cyclic EF 0018).
const LOG_SFI: u8 = 0x18;

/// SELECT by name (00 A4 04 00 Lc AID 00): enters the purse application `aid` and returns its
/// FCI.
pub fn select_purse_application(card: &mut dyn Session, aid: &[u8]) -> Result<Vec<u8>> {
    let command = Command::new(0x00, 0xA4, 0x04, 0x00)
        .with_data(aid)
        .with_le(256);
    expect_ok(transmit(card, &command)?, "SELECT")
}

/// The card's ASN as a diversification factor: the rightmost 8 bytes of the 10-byte
/// application serial number at bytes 11-20 of EF 0015 (PBOC layout, `pboc-spec.md` §1), read
/// with READ BINARY by SFI (00 B0 95 00 14) in the selected application.
pub fn read_asn(card: &mut dyn Session) -> Result<[u8; 8]> {
    let data = read_binary_sfi(card, "READ BINARY 0015", 0x15, 20)?;
    Ok(array(&data[12..]))
}

/// VERIFY PIN (00 20 00 00 Lc PIN): opens the passbook (ED) for load and purchase. A wrong
/// PIN is [`TerminalError::PinRejected`] with the tries left.
pub fn verify_pin(card: &mut dyn Session, pin: &[u8]) -> Result<()> {
    let command = Command::new(0x00, 0x20, 0x00, 0x00).with_data(pin);
    match transmit(card, &command)?.sw {
        Sw::Ok => Ok(()),
        Sw::TriesLeft(n) => Err(TerminalError::PinRejected(n)),
        sw => Err(TerminalError::status("VERIFY PIN", sw)),
    }
}

/// GET BALANCE (80 5C 00 P2 04): the balance of `purse` in fen.
pub fn balance(card: &mut dyn Session, purse: Purse) -> Result<u32> {
    let command = Command::new(0x80, 0x5C, 0x00, purse.p2()).with_le(4);
    Ok(be32(&call(card, "GET BALANCE", &command, 4)?, 0))
}

/// The transaction log, newest first: READ RECORD (00 B2 n C4 17) for n = 1, 2, ... until the
/// card answers 6A83 (record not found).
pub fn read_log(card: &mut dyn Session) -> Result<Vec<LogRecord>> {
    let mut records = Vec::new();
    for number in 1..=u8::MAX {
        let command =
            Command::new(0x00, 0xB2, number, (LOG_SFI << 3) | 0x04).with_le(LogRecord::LEN as u32);
        let response = transmit(card, &command)?;
        if response.sw == Sw::RecordNotFound {
            break;
        }
        let data = expect(response, "READ RECORD 0018", LogRecord::LEN)?;
        records.extend(LogRecord::parse(&data));
    }
    Ok(records)
}
