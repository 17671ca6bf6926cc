//! ECDSA-style signatures `(r, s)` over 256-bit curves (SM2 and P-256), in raw `r || s` and DER
//! (`ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`, GM/T 0009 for SM2) encodings.
//!
//! The DER codec is strict: minimal lengths, minimal positive integers, nothing trailing. The
//! range of `r` and `s` (1..n-1) is checked by the curve's verifier.

use crate::error::{CryptoError, Result};

/// A signature `(r, s)`, each a 32-byte big-endian integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    r: [u8; 32],
    s: [u8; 32],
}

impl Signature {
    /// From the two integers.
    pub fn new(r: [u8; 32], s: [u8; 32]) -> Self {
        Self { r, s }
    }

    /// `r`, big-endian.
    pub fn r(&self) -> &[u8; 32] {
        &self.r
    }

    /// `s`, big-endian.
    pub fn s(&self) -> &[u8; 32] {
        &self.s
    }

    /// Parses the raw 64-byte `r || s` encoding.
    pub fn from_raw(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 64 {
            return Err(CryptoError::MalformedSignature);
        }
        let (r, s) = bytes.split_at(32);
        Ok(Self {
            r: r.try_into().expect("32"),
            s: s.try_into().expect("32"),
        })
    }

    /// The raw 64-byte `r || s` encoding.
    pub fn to_raw(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }

    /// Parses strict DER.
    pub fn from_der(bytes: &[u8]) -> Result<Self> {
        let body = match bytes {
            [0x30, len, body @ ..] if *len < 0x80 && *len as usize == body.len() => body,
            _ => return Err(CryptoError::MalformedSignature),
        };
        let (r, rest) = der_integer(body)?;
        let (s, rest) = der_integer(rest)?;
        if !rest.is_empty() {
            return Err(CryptoError::MalformedSignature);
        }
        Ok(Self { r, s })
    }

    /// The DER encoding.
    pub fn to_der(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(70);
        for value in [&self.r, &self.s] {
            let first = value.iter().position(|&b| b != 0).unwrap_or(31);
            let digits = &value[first..];
            let pad = digits[0] & 0x80 != 0;
            body.push(0x02);
            body.push((digits.len() + usize::from(pad)) as u8);
            if pad {
                body.push(0);
            }
            body.extend_from_slice(digits);
        }
        let mut out = vec![0x30, body.len() as u8];
        out.extend_from_slice(&body);
        out
    }
}

/// One minimal, positive DER INTEGER of at most 32 value bytes, left-padded to 32.
fn der_integer(input: &[u8]) -> Result<([u8; 32], &[u8])> {
    let (len, rest) = match input {
        [0x02, len, rest @ ..] if *len >= 1 && (*len as usize) <= rest.len() => {
            (*len as usize, rest)
        }
        _ => return Err(CryptoError::MalformedSignature),
    };
    let (value, rest) = rest.split_at(len);
    let negative = value[0] & 0x80 != 0;
    let non_minimal = len > 1 && value[0] == 0 && value[1] & 0x80 == 0;
    if negative || non_minimal {
        return Err(CryptoError::MalformedSignature);
    }
    let digits = if value[0] == 0 && len > 1 {
        &value[1..]
    } else {
        value
    };
    if digits.len() > 32 {
        return Err(CryptoError::MalformedSignature);
    }
    let mut out = [0u8; 32];
    out[32 - digits.len()..].copy_from_slice(digits);
    Ok((out, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_round_trip_with_high_bits_and_leading_zeros() {
        let mut r = [0u8; 32];
        r[0] = 0x80;
        let mut s = [0u8; 32];
        s[5] = 0x01;
        let sig = Signature::new(r, s);
        let der = sig.to_der();
        assert_eq!(&der[..5], &[0x30, 35 + 29, 0x02, 33, 0x00]);
        assert_eq!(Signature::from_der(&der).unwrap(), sig);
        assert_eq!(Signature::from_raw(&sig.to_raw()).unwrap(), sig);
    }

    #[test]
    fn non_canonical_der_is_refused() {
        let good = Signature::new([1; 32], [2; 32]).to_der();
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Signature::from_der(&trailing).is_err());
        // 0x00 0x01: non-minimal integer.
        assert!(
            Signature::from_der(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01]).is_err()
        );
        // negative integer
        assert!(Signature::from_der(&[0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01]).is_err());
        assert!(Signature::from_der(&good[..good.len() - 1]).is_err());
        assert!(Signature::from_raw(&[0; 63]).is_err());
    }
}
