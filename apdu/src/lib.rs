//! `ykt-apdu`: the ISO/IEC 7816-4 vocabulary every card-facing part of ykt speaks.
//!
//! Command and response APDUs (all four cases, short and extended lengths), typed status words
//! with the FMCOS/PBOC codes, BER-TLV for FCI templates, and transports: a [`Transport`] is a
//! reader slot, a [`Session`] holds the card exclusively, and [`exchange`] completes T=0
//! responses (61xx GET RESPONSE, 6Cxx re-send) once for every transport. No cryptography lives
//! here.
//!
//! The `iso7816` crate was considered: its status type has no FMCOS/PBOC codes, its command
//! type normalises the class byte and length form (ykt MACs the exact header bytes and keeps
//! transcripts byte-exact), so these types are ykt's own.

pub mod command;
pub mod error;
pub mod pboc;
#[cfg(feature = "pcsc")]
pub mod pcsc;
pub mod response;
pub mod script;
pub mod sw;
pub mod tlv;
pub mod transport;

pub use command::{Case, Command};
pub use error::{ApduError, Result};
pub use pboc::LogRecord;
pub use response::Response;
pub use sw::Sw;
pub use tlv::{Tag, Tlv};
pub use transport::{CardHandler, MemoryTransport, MockTransport, Session, Transport, exchange};
