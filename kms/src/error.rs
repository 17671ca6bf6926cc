//! The one error type of `ykt-kms`.

use thiserror::Error;
use ykt_hsm_sim::HsmError;
use ykt_hsm_sim::host::HostError;

/// Everything a KMS operation can refuse or fail with.
///
/// Messages carry names, identifiers and check values at most: never key bytes, components,
/// shares or passwords.
#[derive(Debug, Error)]
pub enum KmsError {
    /// The in-process HSM refused or failed.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The remote HSM refused, or the host link failed.
    #[error("remote HSM: {0}")]
    Host(#[from] HostError),
    /// An algorithm-level failure outside the HSM (a check value or signature received).
    #[error(transparent)]
    Crypto(#[from] ykt_crypto::CryptoError),
    /// The PKCS#11 token refused or failed.
    #[error("PKCS#11: {0}")]
    Pkcs11(String),
    /// The HSM behind this provider cannot do the operation (for example SM4 on a PKCS#11
    /// token, or forming a key from clear components over the host link).
    #[error("{operation} is unsupported by this HSM ({provider})")]
    Unsupported {
        /// The provider that refused.
        provider: &'static str,
        /// The operation asked for.
        operation: &'static str,
    },
    /// Input from an operator or a file is not acceptable; nothing was changed.
    #[error("{field}: {reason}")]
    InvalidInput {
        /// What was wrong (`school code`, `components file`, ...).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// An officer's credentials were refused, or the officers present are not a quorum for
    /// the act; nothing was changed.
    #[error("not authorised: {0}")]
    NotAuthorised(String),
    /// The object asked for does not exist.
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// What kind of object (`key`, `school`, `officer`, ...).
        kind: &'static str,
        /// Its identifier.
        id: String,
    },
    /// The object already exists.
    #[error("{kind} `{id}` already exists")]
    AlreadyExists {
        /// What kind of object.
        kind: &'static str,
        /// Its identifier.
        id: String,
    },
    /// The key's lifecycle state (or version) forbids the act.
    #[error("key `{key}`: {reason}")]
    KeyState {
        /// The key.
        key: String,
        /// Why the state forbids it.
        reason: String,
    },
    /// The database refused or failed (connection, constraint, I/O).
    #[error("store: {0}")]
    Store(String),
    /// The store holds something this version cannot read.
    #[error("store content is inconsistent: {0}")]
    Corrupt(&'static str),
    /// A wrapped key is not of the format this provider expects.
    #[error("wrapped key: {0}")]
    MalformedKey(&'static str),
    /// The KMS API refused or failed a request of a station or service using it
    /// (`ykt_api::remote`): the HTTP status (0 when no answer came), the API's error code and
    /// its message.
    #[error("KMS API ({status} {code}): {message}")]
    Api {
        /// HTTP status, 0 for a transport failure.
        status: u16,
        /// The API's error code (`forbidden`, `not-found`, ...).
        code: String,
        /// What the API said.
        message: String,
    },
}

impl KmsError {
    /// Whether this is a MAC, TAC or signature that does not verify (as opposed to a
    /// failure to check it).
    pub fn is_mismatch(&self) -> bool {
        use ykt_crypto::CryptoError::{BadSignature, Mismatch};
        matches!(
            self,
            Self::Crypto(Mismatch(_) | BadSignature)
                | Self::Hsm(HsmError::Crypto(Mismatch(_) | BadSignature))
        )
    }
}

/// Result with [`KmsError`].
pub type Result<T, E = KmsError> = std::result::Result<T, E>;
