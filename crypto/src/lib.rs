//! `ykt-crypto`: the hazmat algorithms every other part of ykt rests on.
//!
//! Block ciphers (SM4, DES, two-key 3DES, AES), the PBOC/FMCOS MAC family and CMAC, PBOC key
//! diversification, e-purse session keys with MAC1/MAC2/TAC for load and purchase, FMCOS secure
//! messaging (line protection, encryption, WRITE KEY, external authentication), key check
//! values, SM2/SM3 and ECDSA P-256. Each function names the clause it implements; the protocol
//! notes are `pboc-spec.md` and the ykt SM4 profile v1 is defined in `ARCHITECTURE.md`.
//!
//! Only providers (the HSM simulator) and simulators (the virtual card) may use this crate with
//! real keys: everywhere else in ykt keys stay behind the HSM boundary. Keys are wiped on drop,
//! never shown by `Debug`, and MACs are compared in constant time.

pub mod block;
pub mod des;
pub mod epurse;
pub mod error;
pub mod kcv;
pub mod key;
pub mod mac;
pub mod p256;
pub mod profile;
pub mod random;
pub mod secure_messaging;
pub mod selftest;
pub mod signature;
pub mod sm2;
pub mod sm4;

pub use block::BlockCipher;
pub use epurse::{Load, Purchase};
pub use error::{CryptoError, Result};
pub use kcv::{Kcv, KcvMethod};
pub use key::{SymmetricAlgorithm, SymmetricKey};
pub use mac::{MacBlock, PbocMac};
pub use profile::{Diversifier, Profile};
pub use signature::Signature;
