//! The one error type of `ykt-crypto`.

use thiserror::Error;

/// Everything that can go wrong in a cryptographic operation of ykt.
///
/// Messages never carry key bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// A key of the wrong length was given for its algorithm.
    #[error("{algorithm} key must be {expected} bytes, got {actual}")]
    KeyLength {
        /// Algorithm name.
        algorithm: &'static str,
        /// Required length in bytes.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// An input field had the wrong length.
    #[error("{field} must be {expected}, got {actual} bytes")]
    FieldLength {
        /// What the field is.
        field: &'static str,
        /// Allowed lengths, as text ("4 bytes", "4 or 8 bytes", ...).
        expected: &'static str,
        /// Length given.
        actual: usize,
    },
    /// The key's algorithm cannot be used for this operation or profile.
    #[error("{algorithm} keys cannot be used for {operation}")]
    WrongAlgorithm {
        /// Algorithm of the key given.
        algorithm: &'static str,
        /// The operation that refused it.
        operation: &'static str,
    },
    /// A balance or counter would leave its range.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    /// A MAC, TAC or cryptogram did not verify.
    #[error("{0} does not verify")]
    Mismatch(&'static str),
    /// A private key is not a valid scalar for its curve.
    #[error("invalid private key")]
    InvalidPrivateKey,
    /// A public key is not a valid point on its curve.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// A signature is malformed (bad DER, wrong length, zero or out-of-range r or s).
    #[error("malformed signature")]
    MalformedSignature,
    /// A signature is well formed but does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// An SM2 ciphertext is malformed or fails its integrity check.
    #[error("SM2 decryption failed")]
    Decryption,
    /// The distinguishing identifier is longer than 8191 bytes (ENTL is 16 bits of bit length).
    #[error("distinguishing identifier too long")]
    IdTooLong,
    /// A decrypted secure-messaging block is not `Ld || data || padding`.
    #[error("malformed secure-messaging plaintext")]
    MalformedPlaintext,
    /// The operating system's random source failed.
    #[error("random source failed")]
    Random,
}

/// Result with [`CryptoError`].
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
