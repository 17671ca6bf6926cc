//! PC/SC readers through the `pcsc` crate, and a virtual card attached to vsmartcard's vpcd.
//!
//! Two halves that meet in pcscd:
//!
//! - [`PcscTransport`] is a [`Transport`](crate::Transport) over a PC/SC reader (a real one, or
//!   vpcd's "Virtual PCD 00 00"). It connects in shared mode and makes every
//!   [`Session`](crate::Session) a PC/SC transaction (`SCardBeginTransaction`), so a
//!   multi-command operation holds the card exclusively while other programs may still use
//!   the reader between operations. Readers are chosen by exact name or by a unique,
//!   case-insensitive substring ([`find_reader`]); [`wait_for_card`] and [`wait_for_removal`]
//!   block in `SCardGetStatusChange` instead of polling `connect`.
//! - [`VpcdLink`] (and the shorthand [`serve_vpcd`]) puts an in-process
//!   [`CardHandler`](crate::CardHandler) into vpcd's reader: the card is a TCP client of vpcd,
//!   connected means inserted, closed means removed.
//!
//! # Lost card state
//!
//! PC/SC tells every other handle when a card was reset (`SCARD_W_RESET_CARD`) or replaced
//! (`SCARD_W_REMOVED_CARD` followed by a new card). The card's security state (verified PIN,
//! external authentication, selected file, secure-messaging session) is gone then, and a
//! caller that carried on would send commands that only made sense in the old state.
//! [`PcscTransport`] therefore reconnects on its own and reports
//! [`ApduError::CardReset`](crate::ApduError::CardReset) exactly once; the next session
//! works again and the caller starts its operation over. Its own [`reset`](crate::Transport::reset)
//! does not trigger that report. Dropping a [`PcscTransport`] disconnects with a card reset,
//! so no authenticated state outlives the program.
//!
//! # The vpcd link and the `vpicc` crate
//!
//! vpcd frames every message as a 2-byte big-endian length and a payload; 1-byte payloads are
//! control (00 power off, 01 power on, 02 reset, 04 get ATR), longer ones are command APDUs.
//! The `vpicc` crate (one small file, depending only on `log`) implements exactly that framing
//! and dispatch, and it is the crate the architecture names for this link, so [`VpcdLink`]
//! uses it for the protocol and adds what it leaves out around it:
//!
//! - Latency: vpcd writes the length and the body of each frame in two `send()` calls. A
//!   reader that lets the kernel delay its ACK of the first segment stalls vpcd's second one
//!   (Nagle) for about 40 ms per APDU. Linux's `TCP_QUICKACK` prevents that but is not sticky,
//!   so the link re-arms it (through `socket2`, without `unsafe`) before every read, and sets
//!   `TCP_NODELAY` for its own answers. `vpicc` owns its stream privately; the link opens the
//!   `TcpStream` itself, gives `vpicc` one handle (`Connection::from`) and keeps a clone of the
//!   same socket for the options.
//! - Stopping and closing: `vpicc::Connection::run` loops until an error. The link instead
//!   waits for each frame by peeking at the kept handle with a short timeout, so it checks its
//!   stop flag between frames, and a close at a frame boundary (vpcd or pcscd stopped) ends
//!   the link cleanly while a close inside a frame is an error. Only once a frame has begun
//!   does it call `vpicc::Connection::poll`, with a longer timeout for the frame's rest.
//! - The ATR: `vpicc` asks the card for its ATR at any time (vpcd polls presence with "get
//!   ATR"), while [`CardHandler::power_on`](crate::CardHandler::power_on) is what produces it.
//!   The link powers the card on when it connects and on every vpcd power-on or reset, and
//!   answers "get ATR" with the latest one.
//!
//! Writing the framing here would be some 40 lines; taking `vpicc` keeps the protocol in the
//! crate that documents it, at the cost of the peek-then-poll arrangement above.

mod reader;
mod vpcd;

pub use reader::{PcscTransport, find_reader, list_readers, wait_for_card, wait_for_removal};
pub use vpcd::{DEFAULT_VPCD_ADDR, VPCD_READER, VpcdLink, serve_vpcd};
