//! `ykt-psam`: the terminal side of the ykt e-purse, driving a user card and a PSAM by APDUs.
//!
//! A terminal holds no clear key. For a purchase the PSAM computes MAC1 with its purchase
//! master key diversified by the card's factors and checks the card's MAC2; the card answers
//! DEBIT FOR PURCHASE with a TAC that only the back office can verify. For a load the MACs
//! come from an online host (the KMS and its HSM), reached through the [`LoadHost`] trait.
//! Every exchange goes through [`ykt_apdu::exchange`] on a [`ykt_apdu::Session`], so the same
//! code runs against an in-process card ([`ykt_apdu::MemoryTransport`]) or a PC/SC reader.
//!
//! - [`Terminal::open`] reads the terminal ID once from the PSAM (MF EF 0016) and selects the
//!   PSAM application; [`Terminal::purchase`] runs INITIALIZE FOR PURCHASE (80 50 01/03),
//!   INIT_SAM_FOR_PURCHASE (80 70), DEBIT FOR PURCHASE (80 54) and CREDIT_SAM_FOR_PURCHASE
//!   (80 72) and returns the [`PurchaseRecord`] for clearing, whose binary layout is fixed
//!   ([`PurchaseRecord::to_bytes`]). A purchase whose DEBIT got no answer fails with
//!   [`TerminalError::PurchaseTorn`]; [`recover_purchase`] settles it with GET TRANSACTION
//!   PROVE (80 5A).
//! - [`load`] runs INITIALIZE FOR LOAD (80 50 00), asks the [`LoadHost`] to verify MAC1 and
//!   make MAC2, and runs CREDIT FOR LOAD (80 52); the [`LoadRecord`] carries the TAC for the
//!   host to verify.
//! - [`select_purse_application`], [`read_asn`], [`verify_pin`], [`balance`] and [`read_log`]
//!   are the card reads and checks around them.
//!
//! The protocol facts (APDU layouts, response layouts, status words) are those of
//! `pboc-spec.md` §1, §2 and §6.

mod card;
mod error;
mod load;
mod purchase;
mod record;

pub use card::{Purse, balance, read_asn, read_log, select_purse_application, verify_pin};
pub use error::{Result, TerminalError};
pub use load::{
    LoadAuthorization, LoadHost, LoadInit, LoadRecord, LoadRequest, credit_load, initialize_load,
    load,
};
pub use purchase::{PurchaseRequest, Terminal, TornPurchase, recover_purchase};
pub use record::{FieldValue, PURCHASE_RECORD_LEN, PURCHASE_RECORD_VERSION, PurchaseRecord};
pub use ykt_apdu::LogRecord;
