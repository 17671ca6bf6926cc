//! The back office of the terminals: online loads authorised by the KMS, and clearing of
//! purchase records by their TACs.
//!
//! A load runs INITIALIZE FOR LOAD on the card, has the KMS check MAC1 and make MAC2 (an
//! audited act, refused for a card that is not issued), runs CREDIT FOR LOAD and has the KMS
//! verify the card's TAC before the load counts. Clearing sends a batch of purchase records
//! to the KMS, which verifies each TAC under the card's own TAC key.

use crate::error::Result;
use ykt_apdu::Session;
use ykt_apdu::pboc::bcd_date_time;
use ykt_kms::Kms;
use ykt_kms::issuance::{Load, Purchase, PurchaseCheck, TacVerdict};
use ykt_psam::{LoadAuthorization, LoadRecord, LoadRequest, PurchaseRecord};

/// Loads `request` onto the card (purse application selected, ASN `asn`) at host time
/// `now_ms`, with the KMS as host acting for `actor`. Returns the record after the KMS
/// verified its TAC.
pub async fn load(
    kms: &Kms,
    actor: &str,
    card: &mut dyn Session,
    request: &LoadRequest,
    asn: &[u8; 8],
    now_ms: i64,
) -> Result<LoadRecord> {
    let init = ykt_psam::initialize_load(card, request, asn)?;
    let (date, time) = bcd_date_time(now_ms);
    let load = Load {
        card_random: init.card_random,
        online_seq: init.online_seq,
        old_balance: init.old_balance,
        amount: request.amount,
        transaction_type: request.transaction_type,
        terminal_id: request.terminal_id,
        date,
        time,
    };
    let mac2 = kms
        .authorize_load(actor, asn, init.key_version, &load, &init.mac1)
        .await?;
    let record = ykt_psam::credit_load(card, &init, &LoadAuthorization { date, time, mac2 })?;
    kms.verify_load_tac(asn, &load, &record.tac).await?;
    Ok(record)
}

/// The purchase a record describes, as the TAC covers it (the card's random does not enter
/// the TAC and is not in the record).
fn purchase_of(record: &PurchaseRecord) -> Purchase {
    Purchase {
        card_random: [0; 4],
        offline_seq: record.offline_seq,
        amount: record.amount,
        transaction_type: record.transaction_type,
        terminal_id: record.terminal_id,
        terminal_seq: record.terminal_seq,
        date: record.date,
        time: record.time,
    }
}

/// Clears purchase records: the KMS's verdict on each record's TAC, in order.
pub async fn clear(kms: &Kms, records: &[PurchaseRecord]) -> Result<Vec<TacVerdict>> {
    let purchases: Vec<Purchase> = records.iter().map(purchase_of).collect();
    let checks: Vec<PurchaseCheck<'_>> = records
        .iter()
        .zip(&purchases)
        .map(|(record, purchase)| PurchaseCheck {
            factor: record.asn,
            purchase,
            tac: record.tac,
        })
        .collect();
    Ok(kms.verify_purchase_tacs(&checks).await?)
}
