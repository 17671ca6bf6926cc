//! The one error type of the API crate.

/// Why the API server could not start or serve, or why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The KMS refused or failed.
    #[error(transparent)]
    Kms(#[from] ykt_kms::KmsError),
    /// TLS could not be set up (a certificate, the revocation list, the verifier, a
    /// client's identity).
    #[error("TLS: {0}")]
    Tls(String),
    /// The listening socket failed, or a file could not be read.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// A client was given a server address that is not `https://HOST[:PORT]`, or a request
    /// path or idempotency key that cannot be sent.
    #[error("{0}")]
    Url(String),
    /// The server answered a client's request with an error status and, where it could, the
    /// code and message of its `{"error": code, "message": text}` body.
    #[error("{status} {code}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's error code (`forbidden`, `invalid`, ...), or the status's reason
        /// phrase in kebab case when the body names none.
        code: String,
        /// The server's message.
        message: String,
    },
    /// A client's request did not get an answer: the connection could not be made, the TLS
    /// handshake failed or the peer refused it, the connection broke, or no answer came in
    /// time.
    #[error("{context}: {reason}")]
    Transport {
        /// The request (`POST https://host:port/path`).
        context: String,
        /// What failed, with its causes.
        reason: String,
    },
    /// A request body could not be encoded, or a successful answer is not the JSON expected.
    #[error("{context}: {source}")]
    Json {
        /// The request.
        context: String,
        /// The error.
        source: serde_json::Error,
    },
    /// The operating system's random source failed (idempotency keys).
    #[error(transparent)]
    Crypto(#[from] ykt_crypto::CryptoError),
}

/// Result with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;
