//! The contents the station writes into a card's files, in the bureau's layouts (all sizes
//! fixed, so that a read-back compares whole files).
//!
//! User card, application DF:
//! - **0015 public information**, 30 bytes (the PBOC form, `pboc-spec.md` §1): issuer ID (8:
//!   region code 3 and school code 5, BCD), application type `01` (campus e-purse),
//!   application version (the profile version), the 10-byte serial (ASN), first and last
//!   valid day (BCD `YYYYMMDD`), card type (`01` student, `02` staff, `03` temporary) and
//!   algorithm ID (`00` 3DES, `04` SM4).
//! - **0016 holder information**, 66 bytes: card type (1), student or staff number (16,
//!   ASCII, zero-padded), name (30, UTF-8, zero-padded), ID type `01` (resident ID card),
//!   ID number (18, ASCII).
//! - **certificate**, 68 bytes: format `01`, signature algorithm (`01` SM2 with SM3 and the
//!   signer ID `ykt-kms`, `02` ECDSA P-256 with SHA-256), the KMS signing key's version, `00`,
//!   and the signature `r ‖ s` over `ykt-card-certificate-v1 ‖ serial ‖ 0015 ‖ 0016`.
//!
//! PSAM, MF:
//! - **0015 serial**, 14 bytes: the 10-byte serial, profile version, key card type `01`
//!   (consumption), command set version `01`, `00`.
//! - **0016 terminal ID**, 6 bytes BCD.
//! - **0017 PSAM information**, 25 bytes: key index `01`, issuer ID (8), receiver ID (8: the
//!   school's), first and last valid day.

use crate::error::{IssueError, Result};
use ykt_apdu::pboc::Date;
use ykt_kms::issuance::{CardRecord, Serial};
use ykt_kms::model::{KeyAlgorithm, RegionCode, SchoolCode};

/// Size of the public information file.
pub const PUBLIC_INFO_LEN: usize = 30;
/// Size of the holder information file.
pub const HOLDER_INFO_LEN: usize = 66;
/// Size of the certificate file.
pub const CERTIFICATE_LEN: usize = 68;
/// Size of a PSAM's serial file.
pub const PSAM_SERIAL_LEN: usize = 14;
/// Size of a PSAM's information file.
pub const PSAM_INFO_LEN: usize = 25;

const NUMBER_LEN: usize = 16;
const NAME_LEN: usize = 30;
const ID_NUMBER_LEN: usize = 18;

fn bad(field: &str, reason: &str) -> IssueError {
    IssueError::Verification(format!("card record {field}: {reason}"))
}

fn date(text: &str, field: &str) -> Result<[u8; 4]> {
    Date::parse(text)
        .map(Date::bcd)
        .ok_or_else(|| bad(field, "not a date"))
}

/// The issuer ID: region code (3 bytes BCD) and school code (5 bytes BCD).
pub fn issuer_id(card: &CardRecord) -> Result<[u8; 8]> {
    let region = RegionCode::new(&card.region)?.factor();
    let school = SchoolCode::new(&card.school)?.factor();
    let mut id = [0u8; 8];
    id[..3].copy_from_slice(&region[5..]);
    id[3..].copy_from_slice(&school[3..]);
    Ok(id)
}

/// The card type code of a card type name.
pub fn card_type_code(name: &str) -> Result<u8> {
    match name {
        "student" => Ok(0x01),
        "staff" => Ok(0x02),
        "temporary" => Ok(0x03),
        _ => Err(bad("card type", "unknown")),
    }
}

fn padded<const N: usize>(text: &str, field: &str) -> Result<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() > N {
        return Err(bad(field, "too long for its field"));
    }
    let mut out = [0u8; N];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

/// The public information file of a user card.
pub fn public_info(card: &CardRecord, profile_version: u8) -> Result<[u8; PUBLIC_INFO_LEN]> {
    let algorithm_id = match card.key_algorithm()? {
        KeyAlgorithm::TripleDes => 0x00,
        _ => 0x04,
    };
    let card_type = card_type_code(card.card_type.as_deref().unwrap_or_default())?;
    let mut out = [0u8; PUBLIC_INFO_LEN];
    out[..8].copy_from_slice(&issuer_id(card)?);
    out[8] = 0x01;
    out[9] = profile_version;
    out[10..20].copy_from_slice(&card.serial.bytes());
    out[20..24].copy_from_slice(&date(&card.valid_from, "valid from")?);
    out[24..28].copy_from_slice(&date(&card.expiry, "expiry")?);
    out[28] = card_type;
    out[29] = algorithm_id;
    Ok(out)
}

/// The holder information file of a user card.
pub fn holder_info(card: &CardRecord) -> Result<[u8; HOLDER_INFO_LEN]> {
    let mut out = [0u8; HOLDER_INFO_LEN];
    out[0] = card_type_code(card.card_type.as_deref().unwrap_or_default())?;
    let number: [u8; NUMBER_LEN] =
        padded(card.holder_number.as_deref().unwrap_or_default(), "number")?;
    let name: [u8; NAME_LEN] = padded(card.holder_name.as_deref().unwrap_or_default(), "name")?;
    let id_number = card.id_number.as_deref().unwrap_or_default();
    if id_number.len() != ID_NUMBER_LEN {
        return Err(bad("ID number", "must be 18 characters"));
    }
    out[1..17].copy_from_slice(&number);
    out[17..47].copy_from_slice(&name);
    out[47] = 0x01;
    out[48..].copy_from_slice(id_number.as_bytes());
    Ok(out)
}

/// The signature algorithm code of the certificate file.
pub fn signature_algorithm_code(algorithm: KeyAlgorithm) -> u8 {
    match algorithm {
        KeyAlgorithm::Sm2 => 0x01,
        _ => 0x02,
    }
}

/// The certificate file from the KMS's signature.
pub fn certificate(algorithm: KeyAlgorithm, version: u8, signature: &[u8]) -> Result<Vec<u8>> {
    if signature.len() != 64 {
        return Err(IssueError::Verification(
            "the KMS signature is not 64 bytes".into(),
        ));
    }
    let mut out = vec![0x01, signature_algorithm_code(algorithm), version, 0x00];
    out.extend_from_slice(signature);
    Ok(out)
}

/// A certificate file's parts: signature algorithm code, key version, signature.
pub fn parse_certificate(file: &[u8]) -> Result<(u8, u8, &[u8])> {
    match file {
        [
            0x01,
            algorithm @ (0x01 | 0x02),
            version,
            0x00,
            signature @ ..,
        ] if signature.len() == 64 => Ok((*algorithm, *version, signature)),
        _ => Err(IssueError::Verification(
            "the certificate file is malformed".into(),
        )),
    }
}

/// The PSAM serial file.
pub fn psam_serial(serial: &Serial, profile_version: u8) -> [u8; PSAM_SERIAL_LEN] {
    let mut out = [0u8; PSAM_SERIAL_LEN];
    out[..10].copy_from_slice(&serial.bytes());
    out[10] = profile_version;
    out[11] = 0x01;
    out[12] = 0x01;
    out
}

/// The PSAM information file.
pub fn psam_info(card: &CardRecord) -> Result<[u8; PSAM_INFO_LEN]> {
    let issuer = issuer_id(card)?;
    let mut out = [0u8; PSAM_INFO_LEN];
    out[0] = 0x01;
    out[1..9].copy_from_slice(&issuer);
    out[9..17].copy_from_slice(&issuer);
    out[17..21].copy_from_slice(&date(&card.valid_from, "valid from")?);
    out[21..].copy_from_slice(&date(&card.expiry, "expiry")?);
    Ok(out)
}
