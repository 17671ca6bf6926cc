//! SM2 on the recommended curve sm2p256v1 (GB/T 32918): signatures with SM3 and the signer's
//! distinguishing identifier (GB/T 32918.2 clause 6–7, ZA of clause 5.5), and public-key
//! encryption (GB/T 32918.4, `C1 || C3 || C2` or the GM/T 0009 DER form). SM3 is GB/T 32905.
//!
//! The field and group arithmetic are ykt's own (`field.rs`, `point.rs`): a Montgomery field
//! that exploits `p = -1 mod 2^64`, Jacobian points, a doubling-free generator table, and a
//! width-5 NAF for verification. That runs several times faster than the generic arithmetic
//! of the `sm2` crate, which still parses and validates public keys, reduces scalars modulo n,
//! encrypts and decrypts (GB/T 32918.4), and serves as the reference in the tests. The
//! identifier may be any byte string, and a signing key keeps `(1 + d)^-1` precomputed
//! (GB/T 32918.2 step A6).

mod field;
mod point;

use crate::error::{CryptoError, Result};
use crate::signature::Signature;
use point::{Affine, GX, GY, hex32};
use sm2::elliptic_curve::ff::PrimeField;
use sm2::elliptic_curve::ops::Reduce;
use sm2::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
use sm2::pke::{DecryptingKey, EncryptingKey, Mode};
use sm2::{AffinePoint, FieldBytes, NonZeroScalar, Scalar};
use sm3::Digest;
use std::fmt;
use zeroize::Zeroizing;

/// The default distinguishing identifier of GM/T 0009: the ASCII string `1234567812345678`.
pub const DEFAULT_ID: &[u8] = b"1234567812345678";

/// Curve coefficient a of sm2p256v1.
const CURVE_A: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
/// Curve coefficient b of sm2p256v1.
const CURVE_B: [u8; 32] = hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");

/// SM3 hash (GB/T 32905-2016).
pub fn sm3(data: &[u8]) -> [u8; 32] {
    sm3::Sm3::digest(data).into()
}

/// The curve and key data that enter ZA, for [`za_with_curve`].
#[derive(Debug, Clone, Copy)]
pub struct ZaCurve<'a> {
    /// Coefficient a, 32 bytes big-endian.
    pub a: &'a [u8],
    /// Coefficient b.
    pub b: &'a [u8],
    /// Base point x.
    pub gx: &'a [u8],
    /// Base point y.
    pub gy: &'a [u8],
}

/// `ZA = SM3(ENTL || ID || a || b || xG || yG || xA || yA)` (GB/T 32918.2 clause 5.5) for any
/// curve parameters. ENTL is the bit length of `id` in two bytes, so `id` is at most 8191 bytes.
pub fn za_with_curve(id: &[u8], curve: &ZaCurve<'_>, xa: &[u8], ya: &[u8]) -> Result<[u8; 32]> {
    let entl = u16::try_from(id.len() * 8).map_err(|_| CryptoError::IdTooLong)?;
    let mut h = sm3::Sm3::new();
    h.update(entl.to_be_bytes());
    h.update(id);
    for part in [curve.a, curve.b, curve.gx, curve.gy, xa, ya] {
        h.update(part);
    }
    Ok(h.finalize().into())
}

/// An SM2 public key (a point of sm2p256v1 other than the identity).
#[derive(Clone, Copy)]
pub struct Sm2PublicKey {
    point: AffinePoint,
    affine: Affine,
}

impl PartialEq for Sm2PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.point == other.point
    }
}

impl Eq for Sm2PublicKey {}

impl Sm2PublicKey {
    /// Parses a SEC1 point: `04 || x || y` (65 bytes) or compressed `02|03 || x` (33 bytes).
    pub fn from_sec1(bytes: &[u8]) -> Result<Self> {
        let encoded =
            sm2::Sec1Point::from_bytes(bytes).map_err(|_| CryptoError::InvalidPublicKey)?;
        let point = Option::<AffinePoint>::from(AffinePoint::from_sec1_point(&encoded))
            .ok_or(CryptoError::InvalidPublicKey)?;
        if bool::from(point.is_identity()) {
            return Err(CryptoError::InvalidPublicKey);
        }
        let uncompressed = point.to_sec1_point(false);
        let (x, y) = uncompressed.as_bytes()[1..].split_at(32);
        let affine = Affine::from_coordinates(x.try_into().expect("32"), y.try_into().expect("32"))
            .ok_or(CryptoError::InvalidPublicKey)?;
        Ok(Self { point, affine })
    }

    /// `04 || x || y`.
    pub fn to_uncompressed(&self) -> [u8; 65] {
        self.point
            .to_sec1_point(false)
            .as_bytes()
            .try_into()
            .expect("65 bytes")
    }

    /// ZA for this key and the signer's identifier `id`.
    pub fn za(&self, id: &[u8]) -> Result<[u8; 32]> {
        let point = self.to_uncompressed();
        let curve = ZaCurve {
            a: &CURVE_A,
            b: &CURVE_B,
            gx: &GX,
            gy: &GY,
        };
        za_with_curve(id, &curve, &point[1..33], &point[33..])
    }

    /// The signed digest `e = SM3(ZA || message)` (GB/T 32918.2 steps A1–A2), as
    /// [`Sm2PrivateKey::sign_digest`] and [`Sm2PublicKey::verify_digest`] take it: what a
    /// caller computes to have a message signed by an HSM that is sent only the digest.
    pub fn digest(&self, id: &[u8], message: &[u8]) -> Result<[u8; 32]> {
        let mut h = sm3::Sm3::new();
        h.update(self.za(id)?);
        h.update(message);
        Ok(h.finalize().into())
    }

    /// Verifies a signature over `message` by the signer `id`.
    pub fn verify(&self, id: &[u8], message: &[u8], signature: &Signature) -> Result<()> {
        self.verify_digest(&self.digest(id, message)?, signature)
    }

    /// Verifies a signature over a digest `e` (GB/T 32918.2 clause 7.1, steps B1–B7).
    pub fn verify_digest(&self, e: &[u8; 32], signature: &Signature) -> Result<()> {
        let r = nonzero_scalar(signature.r()).ok_or(CryptoError::BadSignature)?;
        let s = nonzero_scalar(signature.s()).ok_or(CryptoError::BadSignature)?;
        let t = r + s;
        if bool::from(t.is_zero()) {
            return Err(CryptoError::BadSignature);
        }
        let s_g = point::mul_generator_vartime(&s.to_repr().into());
        let t_p = point::mul_vartime(&self.affine, &t.to_repr().into());
        let sum = s_g
            .add_vartime(&t_p)
            .to_affine()
            .ok_or(CryptoError::BadSignature)?;
        let expected = reduce(e) + reduce(&sum.x_bytes());
        if expected == r {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }

    /// Encrypts `message` (GB/T 32918.4) and returns `C1 || C3 || C2` with C1 uncompressed.
    pub fn encrypt(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.encrypting_key()?
            .encrypt(&mut getrandom::SysRng, message)
            .map_err(|_| CryptoError::Random)
    }

    /// Encrypts `message` into the GM/T 0009 DER structure (what OpenSSL produces).
    pub fn encrypt_der(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.encrypting_key()?
            .encrypt_der(&mut getrandom::SysRng, message)
            .map_err(|_| CryptoError::Random)
    }

    fn encrypting_key(&self) -> Result<EncryptingKey> {
        let public =
            sm2::PublicKey::from_affine(self.point).map_err(|_| CryptoError::InvalidPublicKey)?;
        Ok(EncryptingKey::new_with_mode(public, Mode::C1C3C2))
    }
}

impl fmt::Debug for Sm2PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sm2PublicKey(")?;
        self.to_uncompressed()
            .iter()
            .try_for_each(|b| write!(f, "{b:02X}"))?;
        write!(f, ")")
    }
}

fn nonzero_scalar(bytes: &[u8; 32]) -> Option<Scalar> {
    Option::<NonZeroScalar>::from(NonZeroScalar::from_repr((*bytes).into())).map(|s| *s)
}

fn reduce(bytes: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*bytes))
}

/// An SM2 private key `d` with its public key and the precomputed `(1 + d)^-1`.
#[derive(Clone)]
pub struct Sm2PrivateKey {
    d: NonZeroScalar,
    inv_one_plus_d: Scalar,
    public: Sm2PublicKey,
}

impl Drop for Sm2PrivateKey {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.d.zeroize();
        self.inv_one_plus_d.zeroize();
    }
}

impl Sm2PrivateKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        loop {
            let candidate = Zeroizing::new(crate::random::bytes::<32>()?);
            match Self::from_bytes(&candidate[..]) {
                Ok(key) => return Ok(key),
                Err(CryptoError::InvalidPrivateKey) => continue,
                Err(other) => return Err(other),
            }
        }
    }

    /// From the 32-byte big-endian scalar `d`; GB/T 32918.1 requires `1 <= d <= n - 2`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidPrivateKey)?;
        let d = Option::<NonZeroScalar>::from(NonZeroScalar::from_repr(bytes.into()))
            .ok_or(CryptoError::InvalidPrivateKey)?;
        let inv_one_plus_d = Option::<Scalar>::from((Scalar::ONE + *d).invert())
            .ok_or(CryptoError::InvalidPrivateKey)?;
        let point = point::mul_generator(&bytes)
            .to_affine()
            .ok_or(CryptoError::InvalidPrivateKey)?;
        let mut uncompressed = [4u8; 65];
        uncompressed[1..33].copy_from_slice(&point.x_bytes());
        uncompressed[33..].copy_from_slice(&point.y_bytes());
        let public = Sm2PublicKey::from_sec1(&uncompressed)?;
        Ok(Self {
            d,
            inv_one_plus_d,
            public,
        })
    }

    /// The 32-byte scalar. Hazmat: only HSM code and the lab calculator export it.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.d.to_repr().into())
    }

    /// The public key `dG`.
    pub fn public_key(&self) -> &Sm2PublicKey {
        &self.public
    }

    /// Signs `message` as signer `id` (ZA is computed from `id` and the public key).
    pub fn sign(&self, id: &[u8], message: &[u8]) -> Result<Signature> {
        self.sign_digest(&self.public.digest(id, message)?)
    }

    /// Signs a digest `e` with a fresh random nonce (GB/T 32918.2 clause 6.1, A3–A7).
    pub fn sign_digest(&self, e: &[u8; 32]) -> Result<Signature> {
        loop {
            let k = Zeroizing::new(crate::random::bytes::<32>()?);
            if let Some(signature) = self.sign_digest_with_nonce(e, &k) {
                return Ok(signature);
            }
        }
    }

    /// Steps A4–A7 with the nonce `k`; `None` when `k` is out of range or yields `r = 0`,
    /// `r + k = n` or `s = 0` (the caller draws another nonce). Crate-private: a fixed or
    /// repeated nonce reveals the key; the known-answer self-test is the only other caller.
    pub(crate) fn sign_digest_with_nonce(&self, e: &[u8; 32], k: &[u8; 32]) -> Option<Signature> {
        let k_bytes = k;
        let k = nonzero_scalar(k)?;
        let x1 = point::mul_generator(k_bytes).to_affine()?.x_bytes();
        let r = reduce(e) + reduce(&x1);
        if bool::from(r.is_zero()) || bool::from((r + k).is_zero()) {
            return None;
        }
        let s = self.inv_one_plus_d * (k - r * *self.d);
        if bool::from(s.is_zero()) {
            return None;
        }
        Some(Signature::new(r.to_repr().into(), s.to_repr().into()))
    }

    /// Decrypts `C1 || C3 || C2` (C1 uncompressed or compressed).
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.decrypting_key()
            .decrypt(ciphertext)
            .map_err(|_| CryptoError::Decryption)
    }

    /// Decrypts the GM/T 0009 DER structure.
    pub fn decrypt_der(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.decrypting_key()
            .decrypt_der(ciphertext)
            .map_err(|_| CryptoError::Decryption)
    }

    fn decrypting_key(&self) -> DecryptingKey {
        DecryptingKey::new_with_mode(self.d, Mode::C1C3C2)
    }
}

impl fmt::Debug for Sm2PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sm2PrivateKey")
            .field("d", &"<redacted>")
            .field("public", &self.public)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_round_trip_and_tamper() {
        let key = Sm2PrivateKey::generate().unwrap();
        let sig = key.sign(b"ALICE", b"message").unwrap();
        key.public_key().verify(b"ALICE", b"message", &sig).unwrap();
        assert_eq!(
            key.public_key().verify(b"BOB", b"message", &sig),
            Err(CryptoError::BadSignature)
        );
        assert!(key.public_key().verify(b"ALICE", b"messagf", &sig).is_err());
        let zero = Signature::new([0; 32], *sig.s());
        assert!(
            key.public_key()
                .verify(b"ALICE", b"message", &zero)
                .is_err()
        );
    }

    #[test]
    fn agrees_with_the_sm2_crate() {
        use sm2::dsa::signature::{Signer, Verifier};
        let key = Sm2PrivateKey::generate().unwrap();
        let theirs =
            sm2::dsa::SigningKey::from_slice("1234567812345678", &key.to_bytes()[..]).unwrap();
        let ours = key.sign(DEFAULT_ID, b"abc").unwrap();
        let as_theirs = sm2::dsa::Signature::from_slice(&ours.to_raw()).unwrap();
        theirs.verifying_key().verify(b"abc", &as_theirs).unwrap();
        let theirs_sig: sm2::dsa::Signature = theirs.sign(b"abc");
        let back = Signature::from_raw(&theirs_sig.to_bytes()).unwrap();
        key.public_key().verify(DEFAULT_ID, b"abc", &back).unwrap();
    }

    #[test]
    fn encryption_round_trip_both_encodings() {
        let key = Sm2PrivateKey::generate().unwrap();
        let c = key.public_key().encrypt(b"secret data").unwrap();
        assert_eq!(c.len(), 65 + 32 + 11);
        assert_eq!(key.decrypt(&c).unwrap(), b"secret data");
        let der = key.public_key().encrypt_der(b"x").unwrap();
        assert_eq!(key.decrypt_der(&der).unwrap(), b"x");
        let mut tampered = c.clone();
        tampered[70] ^= 1;
        assert_eq!(key.decrypt(&tampered), Err(CryptoError::Decryption));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            Sm2PrivateKey::from_bytes(&[0; 32]).unwrap_err(),
            CryptoError::InvalidPrivateKey
        );
        assert!(Sm2PrivateKey::from_bytes(&[0xFF; 32]).is_err());
        assert!(Sm2PublicKey::from_sec1(&[4; 65]).is_err());
        assert!(Sm2PublicKey::from_sec1(&[]).is_err());
    }
}
