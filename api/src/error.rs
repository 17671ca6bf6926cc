//! The one error type of the API crate.

/// Why the API server could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The KMS refused or failed.
    #[error(transparent)]
    Kms(#[from] ykt_kms::KmsError),
    /// TLS could not be set up (a certificate, the revocation list, the verifier).
    #[error("TLS: {0}")]
    Tls(String),
    /// The listening socket failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Result with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;
