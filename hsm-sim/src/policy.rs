//! The attribute rules an HSM command applies before it touches a key: usage, modes of use,
//! the number of diversification factors, what a derived key may be, what may sign. The
//! engine applies them to every command; they are public so that another provider behind the
//! KMS (a PKCS#11 token) refuses exactly what the simulator refuses, with the same errors.

use crate::attributes::{KeyAlgorithm, KeyAttributes, KeyUsage, Modes};
use crate::error::{HsmError, Result};
use ykt_crypto::Profile;

/// The most diversification levels a command accepts (region, school, card).
pub const MAX_FACTORS: usize = 3;

/// The refusal of `operation` by an attribute, for `reason`.
pub fn forbidden(operation: &'static str, reason: &'static str) -> HsmError {
    HsmError::Forbidden { operation, reason }
}

/// Refuses a key whose usage is not among `allowed`.
pub fn require_usage(
    attributes: &KeyAttributes,
    allowed: &[KeyUsage],
    operation: &'static str,
) -> Result<()> {
    if allowed.contains(&attributes.usage()) {
        Ok(())
    } else {
        Err(forbidden(operation, "the key's usage does not allow it"))
    }
}

/// Refuses a key whose modes of use exclude `mode`.
pub fn require_mode(
    attributes: &KeyAttributes,
    mode: Modes,
    operation: &'static str,
) -> Result<()> {
    if attributes.modes().contains(mode) {
        return Ok(());
    }
    Err(forbidden(
        operation,
        match mode {
            Modes::DERIVE => "the key's modes of use exclude derive",
            Modes::MAC => "the key's modes of use exclude mac",
            Modes::ENCRYPT => "the key's modes of use exclude encrypt",
            _ => "the key's modes of use exclude sign",
        },
    ))
}

/// Refuses fewer than `minimum` (0 or 1) or more than [`MAX_FACTORS`] factors.
pub fn check_factors(factors: &[[u8; 8]], minimum: usize) -> Result<()> {
    if (minimum..=MAX_FACTORS).contains(&factors.len()) {
        Ok(())
    } else {
        Err(HsmError::FactorCount {
            expected: if minimum == 0 { "0 to 3" } else { "1 to 3" },
            actual: factors.len(),
        })
    }
}

/// The mode a card-key command needs on its master: derive to reach a card key through
/// factors, `direct` to use the key itself.
pub fn card_key_mode(factors: &[[u8; 8]], direct: Modes) -> Modes {
    if factors.is_empty() {
        direct
    } else {
        Modes::DERIVE
    }
}

/// The e-purse profile of an SM4 or 3DES key.
pub fn profile_of(attributes: &KeyAttributes, operation: &'static str) -> Result<Profile> {
    attributes.algorithm().profile().ok_or(forbidden(
        operation,
        "the key's algorithm has no e-purse profile",
    ))
}

/// The checks of a card-key command on its master: the usage, an e-purse profile, 0 to 3
/// factors, and derive to go through factors or `direct` to use the key itself. Returns the
/// profile.
pub fn check_card_key(
    attributes: &KeyAttributes,
    usages: &[KeyUsage],
    factors: &[[u8; 8]],
    direct: Modes,
    operation: &'static str,
) -> Result<Profile> {
    require_usage(attributes, usages, operation)?;
    let profile = profile_of(attributes, operation)?;
    check_factors(factors, 0)?;
    require_mode(attributes, card_key_mode(factors, direct), operation)?;
    Ok(profile)
}

/// The checks of a derivation of `master` by `factors` into a key with `derived`: 1 to 3
/// factors, the derive mode, an e-purse profile, the master's usage and algorithm, and an
/// exportability no wider than the master allows ([`crate::Exportability::derived_ceiling`]).
/// Returns the profile.
pub fn check_derivation(
    master: &KeyAttributes,
    factors: &[[u8; 8]],
    derived: &KeyAttributes,
) -> Result<Profile> {
    const OP: &str = "derivation";
    check_factors(factors, 1)?;
    require_mode(master, Modes::DERIVE, OP)?;
    let profile = profile_of(master, OP)?;
    if derived.usage() != master.usage() {
        return Err(forbidden(OP, "a derived key keeps its master's usage"));
    }
    if derived.algorithm() != master.algorithm() {
        return Err(forbidden(OP, "a derived key keeps its master's algorithm"));
    }
    if derived.exportability() > master.exportability().derived_ceiling() {
        return Err(forbidden(
            OP,
            "a derived key cannot be more exportable than its master allows",
        ));
    }
    Ok(profile)
}

/// The checks of a signature with `algorithm`: signature usage, the sign mode, and a key of
/// that algorithm.
pub fn check_signing(attributes: &KeyAttributes, algorithm: KeyAlgorithm) -> Result<()> {
    const OP: &str = "signing";
    require_usage(attributes, &[KeyUsage::Signature], OP)?;
    require_mode(attributes, Modes::SIGN, OP)?;
    if attributes.algorithm() != algorithm {
        return Err(forbidden(OP, "the key is of another algorithm"));
    }
    Ok(())
}
