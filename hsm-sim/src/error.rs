//! The one error type of `ykt-hsm-sim`.

use crate::shamir::ShamirError;
use thiserror::Error;
use ykt_crypto::CryptoError;

/// Everything an HSM command can refuse or fail with.
///
/// Messages never carry key bytes, component bytes or unlock secrets; check values, attribute
/// names and indexes are the most they show.
#[derive(Debug, Error)]
pub enum HsmError {
    /// A combination of key attributes is not allowed (for example a purchase key for SM2, or
    /// a signature key with the derive mode).
    #[error("invalid key attributes: {0}")]
    InvalidAttributes(&'static str),
    /// The attributes bound to the key forbid the requested operation.
    #[error("key attributes forbid {operation}: {reason}")]
    Forbidden {
        /// The command that was refused.
        operation: &'static str,
        /// The attribute that refused it.
        reason: &'static str,
    },
    /// A key blob is not one of this format (wrong length, unknown version or attribute code).
    #[error("malformed key blob: {0}")]
    MalformedBlob(&'static str),
    /// A key blob failed authentication: sealed under another LMK, corrupted or re-labelled.
    #[error("key blob rejected: not sealed by this LMK, corrupted or re-labelled")]
    BlobRejected,
    /// Text that is not a key block of this format (length, header code, hex).
    #[error("malformed key block: {0}")]
    MalformedKeyBlock(&'static str),
    /// A key block failed verification under the KEK given: another KEK, or a header, key
    /// field or MAC that was changed.
    #[error("key block rejected: wrong KEK, or header or key data altered")]
    KeyBlockRejected,
    /// A sealed LMK file could not be opened with the unlock secret given (wrong secret or a
    /// corrupted file).
    #[error("LMK file cannot be unsealed: wrong unlock secret or corrupted file")]
    LmkUnseal,
    /// A sealed LMK file is not of this format.
    #[error("malformed LMK file: {0}")]
    MalformedLmkFile(&'static str),
    /// Reading or writing the sealed LMK file failed.
    #[error("LMK file: {0}")]
    Io(#[from] std::io::Error),
    /// Key components: wrong number given.
    #[error("{actual} key components given, 2 or 3 are required")]
    ComponentCount {
        /// Number of components given.
        actual: usize,
    },
    /// A key component has the wrong length for the algorithm.
    #[error("key component {index} must be {expected} bytes, got {actual}")]
    ComponentLength {
        /// 1-based position of the component.
        index: usize,
        /// Required length in bytes.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// A key component's check value differs from the one its officer expected.
    #[error("key component {index}: check value does not match")]
    ComponentKcvMismatch {
        /// 1-based position of the component.
        index: usize,
    },
    /// A 32-byte secret was expected (Shamir-recombined LMK or unlock secret).
    #[error("secret must be 32 bytes, got {0}")]
    SecretLength(usize),
    /// The number of diversification factors is outside the command's range.
    #[error("{actual} diversification factors given, {expected} allowed")]
    FactorCount {
        /// Allowed range, as text.
        expected: &'static str,
        /// Number given.
        actual: usize,
    },
    /// A key record for WRITE KEY does not fit the key it carries.
    #[error("key record: {0}")]
    KeyRecord(&'static str),
    /// An algorithm-level failure, including a MAC1 or TAC that does not verify.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A share could not be made, read or combined; the kind says which check refused it.
    #[error("key share: {0}")]
    Share(#[from] ShamirError),
    /// The key blob was destroyed in this HSM ([`crate::Hsm::destroy_key`]): no command uses
    /// it, nor any byte-identical copy.
    #[error("the key was destroyed in this HSM")]
    Destroyed,
    /// The log of destroyed keys could not be read, written or synced, or holds a record that
    /// is not one ([`crate::Hsm::with_destroyed_log`]).
    #[error("destroyed-key log: {0}")]
    DestroyedLog(std::io::Error),
    /// Shares recombined into a secret whose length is not the key length of the algorithm
    /// asked for.
    #[error("the shares rebuild a {actual}-byte secret, the key needs {expected} bytes")]
    SharedSecretLength {
        /// Key length of the algorithm, in bytes.
        expected: usize,
        /// Length of the recombined secret.
        actual: usize,
    },
    /// A custody split was asked with a threshold or a share count outside
    /// `2 <= threshold <= count <= 16`.
    #[error(
        "custody split into {count} shares with threshold {threshold}: need 2 <= threshold <= count <= 16"
    )]
    CustodyParameters {
        /// The threshold asked for.
        threshold: u8,
        /// The number of shares asked for.
        count: u8,
    },
}

/// Result with [`HsmError`].
pub type Result<T, E = HsmError> = std::result::Result<T, E>;
