//! ECDSA over NIST P-256 with SHA-256 (FIPS 186-5), through AWS-LC (`aws-lc-rs`, the provider
//! rustls already uses), whose assembly field arithmetic runs at OpenSSL's rate. Agreement
//! with the pure-Rust `p256` crate is proven in the tests.

use crate::error::{CryptoError, Result};
use crate::signature::Signature;
use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    ParsedPublicKey,
};
use std::fmt;
use zeroize::Zeroizing;

/// A P-256 public key.
pub struct P256PublicKey {
    parsed: ParsedPublicKey,
    sec1: [u8; 65],
}

impl P256PublicKey {
    /// Parses an uncompressed SEC1 point `04 || x || y`.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self> {
        let sec1: [u8; 65] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidPublicKey)?;
        let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, bytes)
            .map_err(|_| CryptoError::InvalidPublicKey)?;
        Ok(Self { parsed, sec1 })
    }

    /// `04 || x || y`.
    pub fn to_uncompressed(&self) -> [u8; 65] {
        self.sec1
    }

    /// Verifies a signature over `message` (hashed with SHA-256).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<()> {
        self.parsed
            .verify_sig(message, &signature.to_raw())
            .map_err(|_| CryptoError::BadSignature)
    }

    /// Verifies a signature over a SHA-256 digest computed elsewhere.
    pub fn verify_digest(&self, digest: &[u8; 32], signature: &Signature) -> Result<()> {
        self.parsed
            .verify_digest_sig(&sha256_digest(digest)?, &signature.to_raw())
            .map_err(|_| CryptoError::BadSignature)
    }
}

impl Clone for P256PublicKey {
    fn clone(&self) -> Self {
        Self::from_sec1(&self.sec1).expect("was valid")
    }
}

impl fmt::Debug for P256PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P256PublicKey(")?;
        self.sec1.iter().try_for_each(|b| write!(f, "{b:02X}"))?;
        write!(f, ")")
    }
}

fn sha256_digest(digest: &[u8; 32]) -> Result<Digest> {
    Digest::import_less_safe(digest, &SHA256).map_err(|_| CryptoError::FieldLength {
        field: "SHA-256 digest",
        expected: "32 bytes",
        actual: digest.len(),
    })
}

/// A P-256 private key.
pub struct P256PrivateKey {
    pair: EcdsaKeyPair,
    public: P256PublicKey,
}

impl P256PrivateKey {
    /// A fresh key from AWS-LC's CSPRNG.
    pub fn generate() -> Result<Self> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| CryptoError::Random)?;
        Self::wrap(pair)
    }

    /// From the 32-byte big-endian scalar `d` (1 <= d < n).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 32 {
            return Err(CryptoError::InvalidPrivateKey);
        }
        // RFC 5915 ECPrivateKey { version 1, privateKey d, parameters prime256v1 }.
        let mut der = Zeroizing::new(Vec::with_capacity(51));
        der.extend_from_slice(&[0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20]);
        der.extend_from_slice(bytes);
        der.extend_from_slice(&[
            0xA0, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07,
        ]);
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|_| CryptoError::InvalidPrivateKey)?;
        Self::wrap(pair)
    }

    fn wrap(pair: EcdsaKeyPair) -> Result<Self> {
        let public = P256PublicKey::from_sec1(pair.public_key().as_ref())?;
        Ok(Self { pair, public })
    }

    /// The 32-byte scalar. Hazmat: only HSM code and the lab calculator export it.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        let bin = self.pair.private_key().as_be_bytes().expect("P-256 scalar");
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(bin.as_ref());
        out
    }

    /// The public key.
    pub fn public_key(&self) -> &P256PublicKey {
        &self.public
    }

    /// Signs `message` (hashed with SHA-256); the nonce is random.
    pub fn sign(&self, message: &[u8]) -> Result<Signature> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self
            .pair
            .sign(&rng, message)
            .map_err(|_| CryptoError::Random)?;
        Signature::from_raw(sig.as_ref())
    }

    /// Signs a SHA-256 digest computed elsewhere.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<Signature> {
        let sig = self
            .pair
            .sign_digest(&sha256_digest(digest)?)
            .map_err(|_| CryptoError::Random)?;
        Signature::from_raw(sig.as_ref())
    }
}

impl fmt::Debug for P256PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P256PrivateKey")
            .field("d", &"<redacted>")
            .field("public", &self.public)
            .finish()
    }
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    aws_lc_rs::digest::digest(&SHA256, data)
        .as_ref()
        .try_into()
        .expect("32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::{Signer, Verifier};

    #[test]
    fn agrees_with_the_p256_crate_both_ways() {
        for _ in 0..20 {
            let ours = P256PrivateKey::generate().unwrap();
            let theirs = p256::ecdsa::SigningKey::from_slice(&ours.to_bytes()[..]).unwrap();
            let their_public = theirs.verifying_key().to_sec1_point(false);
            assert_eq!(their_public.as_bytes(), ours.public_key().to_uncompressed());

            let sig = ours.sign(b"ykt").unwrap();
            let as_theirs = p256::ecdsa::Signature::from_slice(&sig.to_raw()).unwrap();
            theirs.verifying_key().verify(b"ykt", &as_theirs).unwrap();

            let their_sig: p256::ecdsa::Signature = theirs.sign(b"ykt");
            let back = Signature::from_raw(&their_sig.to_bytes()).unwrap();
            ours.public_key().verify(b"ykt", &back).unwrap();
            ours.public_key()
                .verify_digest(&sha256(b"ykt"), &back)
                .unwrap();
            assert!(ours.public_key().verify(b"ykT", &back).is_err());

            let digest_sig = ours.sign_digest(&sha256(b"pre-hashed")).unwrap();
            ours.public_key()
                .verify(b"pre-hashed", &digest_sig)
                .unwrap();
        }
    }

    #[test]
    fn key_import_round_trips_and_refuses_bad_scalars() {
        let key = P256PrivateKey::generate().unwrap();
        let again = P256PrivateKey::from_bytes(&key.to_bytes()[..]).unwrap();
        assert_eq!(
            again.public_key().to_uncompressed(),
            key.public_key().to_uncompressed()
        );
        assert!(P256PrivateKey::from_bytes(&[0; 32]).is_err());
        assert!(P256PrivateKey::from_bytes(&[0xFF; 32]).is_err());
        assert!(P256PublicKey::from_sec1(&[4; 65]).is_err());
    }
}
