//! The back office of the terminals: online loads authorised by the KMS. A load runs
//! INITIALIZE FOR LOAD on the card, has the KMS check MAC1 and make MAC2 (an audited act,
//! refused for a card that is not issued), runs CREDIT FOR LOAD and has the KMS verify the
//! card's TAC before the load counts. Clearing is the KMS's
//! (`Kms::verify_purchase_records`). The KMS is any [`CardAuthority`]: in process, or the API.

use crate::error::Result;
use ykt_apdu::Session;
use ykt_apdu::pboc::bcd_date_time;
use ykt_kms::issuance::Load;
use ykt_kms::station::CardAuthority;
use ykt_psam::{LoadAuthorization, LoadRecord, LoadRequest};

/// Loads `request` onto the card (purse application selected, ASN `asn`) at host time
/// `now_ms`, with the KMS as host acting for `actor`. Returns the record after the KMS
/// verified its TAC.
pub async fn load(
    kms: &impl CardAuthority,
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
