//! Arithmetic modulo the sm2p256v1 prime `p = 2^256 - 2^224 - 2^96 + 2^64 - 1`
//! (GB/T 32918.5), in Montgomery form with `R = 2^256`.
//!
//! Every operation is constant time (no secret-dependent branches or indices). Because
//! `p ≡ -1 (mod 2^64)`, the Montgomery factor `-p^-1 mod 2^64` is 1, which saves one
//! multiplication per reduction round.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// The prime, little-endian 64-bit limbs.
const P: [u64; 4] = [
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFF_0000_0000,
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFE_FFFF_FFFF,
];

/// `R mod p = 2^256 - p`: the Montgomery form of 1.
const R: [u64; 4] = [1, 0x0000_0000_FFFF_FFFF, 0, 0x0000_0001_0000_0000];

/// `R^2 mod p`, for conversion into Montgomery form: `R` doubled 256 times.
const R2: [u64; 4] = {
    let mut x = R;
    let mut i = 0;
    while i < 256 {
        x = add_limbs(&x, &x);
        i += 1;
    }
    x
};

#[inline(always)]
const fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    // Cannot overflow: at most 2^65 - 1. Wrapping keeps release overflow checks out of the
    // hot path.
    let t = (a as u128)
        .wrapping_add(b as u128)
        .wrapping_add(carry as u128);
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
const fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub((b as u128).wrapping_add(borrow as u128));
    (t as u64, (t >> 127) as u64)
}

#[inline(always)]
const fn mac(acc: u64, a: u64, b: u64, carry: u64) -> (u64, u64) {
    // Cannot overflow: at most (2^64 - 1)^2 + 2 (2^64 - 1) = 2^128 - 1.
    let t = (a as u128)
        .wrapping_mul(b as u128)
        .wrapping_add(acc as u128)
        .wrapping_add(carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// `x + hi * 2^256 - p` if that is non-negative, else `x` (for `x + hi * 2^256 < 2p`).
#[inline(always)]
const fn subtract_p_if_needed(x: &[u64; 4], hi: u64) -> [u64; 4] {
    let (d0, b) = sbb(x[0], P[0], 0);
    let (d1, b) = sbb(x[1], P[1], b);
    let (d2, b) = sbb(x[2], P[2], b);
    let (d3, b) = sbb(x[3], P[3], b);
    let (_, underflow) = sbb(hi, 0, b);
    // underflow = 1: x < p, keep x.
    let keep = 0u64.wrapping_sub(underflow);
    [
        (x[0] & keep) | (d0 & !keep),
        (x[1] & keep) | (d1 & !keep),
        (x[2] & keep) | (d2 & !keep),
        (x[3] & keep) | (d3 & !keep),
    ]
}

#[inline(always)]
const fn add_limbs(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let (s0, c) = adc(a[0], b[0], 0);
    let (s1, c) = adc(a[1], b[1], c);
    let (s2, c) = adc(a[2], b[2], c);
    let (s3, c) = adc(a[3], b[3], c);
    subtract_p_if_needed(&[s0, s1, s2, s3], c)
}

/// An element of GF(p) in Montgomery form.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Fe([u64; 4]);

impl Fe {
    /// Zero.
    pub(crate) const ZERO: Self = Self([0; 4]);
    /// One.
    pub(crate) const ONE: Self = Self(R);

    /// From a big-endian 32-byte integer; `None` if it is not below `p`.
    pub(crate) fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let start = 32 - 8 * (i + 1);
            *limb = u64::from_be_bytes(bytes[start..start + 8].try_into().expect("8 bytes"));
        }
        let (_, b) = sbb(limbs[0], P[0], 0);
        let (_, b) = sbb(limbs[1], P[1], b);
        let (_, b) = sbb(limbs[2], P[2], b);
        let (_, b) = sbb(limbs[3], P[3], b);
        (b == 1).then(|| Self(limbs).mul(&Self(R2)))
    }

    /// The big-endian 32-byte canonical value.
    pub(crate) fn to_bytes(self) -> [u8; 32] {
        let plain = self.mul(&Self([1, 0, 0, 0])).0;
        let mut out = [0u8; 32];
        for (i, limb) in plain.iter().enumerate() {
            out[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// `self + other`.
    #[inline(always)]
    pub(crate) fn add(&self, other: &Self) -> Self {
        Self(add_limbs(&self.0, &other.0))
    }

    /// `self - other`.
    #[inline(always)]
    pub(crate) fn sub(&self, other: &Self) -> Self {
        let (d0, b) = sbb(self.0[0], other.0[0], 0);
        let (d1, b) = sbb(self.0[1], other.0[1], b);
        let (d2, b) = sbb(self.0[2], other.0[2], b);
        let (d3, b) = sbb(self.0[3], other.0[3], b);
        let mask = 0u64.wrapping_sub(b);
        let (s0, c) = adc(d0, P[0] & mask, 0);
        let (s1, c) = adc(d1, P[1] & mask, c);
        let (s2, c) = adc(d2, P[2] & mask, c);
        let (s3, _) = adc(d3, P[3] & mask, c);
        Self([s0, s1, s2, s3])
    }

    /// `2 * self`.
    #[inline(always)]
    pub(crate) fn double(&self) -> Self {
        self.add(self)
    }

    /// `-self`.
    #[inline(always)]
    pub(crate) fn neg(&self) -> Self {
        Self::ZERO.sub(self)
    }

    /// Montgomery product `self * other * R^-1`, i.e. the product of the represented values.
    #[inline(always)]
    pub(crate) fn mul(&self, other: &Self) -> Self {
        let a = &self.0;
        let b = &other.0;
        let mut t = [0u64; 6];
        for &bi in b {
            let mut carry = 0;
            for j in 0..4 {
                (t[j], carry) = mac(t[j], a[j], bi, carry);
            }
            (t[4], t[5]) = adc(t[4], carry, 0);
            // m = t[0] * (-p^-1 mod 2^64) = t[0]; add m * p, which clears t[0], and shift.
            let m = t[0];
            let (_, mut carry) = mac(t[0], m, P[0], 0);
            for j in 1..4 {
                (t[j - 1], carry) = mac(t[j], m, P[j], carry);
            }
            let (s, c) = adc(t[4], carry, 0);
            t[3] = s;
            t[4] = t[5].wrapping_add(c);
            t[5] = 0;
        }
        Self(subtract_p_if_needed(&[t[0], t[1], t[2], t[3]], t[4]))
    }

    /// `self^2`.
    #[inline(always)]
    pub(crate) fn square(&self) -> Self {
        self.mul(self)
    }

    /// `self^(2^n)`.
    fn square_n(&self, n: usize) -> Self {
        (0..n).fold(*self, |x, _| x.square())
    }

    /// `self^-1` by Fermat (`self^(p-2)`), zero for zero. Constant time: a fixed chain.
    pub(crate) fn invert(&self) -> Self {
        // e_k = self^(2^k - 1).
        let e1 = *self;
        let e2 = e1.square().mul(&e1);
        let e3 = e2.square().mul(&e1);
        let e6 = e3.square_n(3).mul(&e3);
        let e12 = e6.square_n(6).mul(&e6);
        let e15 = e12.square_n(3).mul(&e3);
        let e30 = e15.square_n(15).mul(&e15);
        let e31 = e30.square().mul(&e1);
        let e32 = e31.square().mul(&e1);
        // p - 2 = 1^31 0 1^128 0^32 1^32 1^30 0 1 (bits from the top).
        let mut r = e31.square();
        for _ in 0..4 {
            r = r.square_n(32).mul(&e32);
        }
        r = r.square_n(32);
        r = r.square_n(32).mul(&e32);
        r = r.square_n(30).mul(&e30);
        r.square().square().mul(&e1)
    }

    /// Whether this is zero.
    #[inline(always)]
    pub(crate) fn is_zero(&self) -> Choice {
        self.ct_eq(&Self::ZERO)
    }
}

impl ConstantTimeEq for Fe {
    fn ct_eq(&self, other: &Self) -> Choice {
        // Both sides are fully reduced, so equal values have equal limbs.
        self.0.ct_eq(&other.0)
    }
}

impl ConditionallySelectable for Fe {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Self([
            u64::conditional_select(&a.0[0], &b.0[0], choice),
            u64::conditional_select(&a.0[1], &b.0[1], choice),
            u64::conditional_select(&a.0[2], &b.0[2], choice),
            u64::conditional_select(&a.0[3], &b.0[3], choice),
        ])
    }
}

impl PartialEq for Fe {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.ct_eq(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm2::elliptic_curve::ff::PrimeField;
    use sm2::elliptic_curve::hazmat::FieldArithmetic;

    type Reference = <sm2::Sm2 as FieldArithmetic>::FieldElement;

    fn sample(state: &mut u64) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_exact_mut(8) {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            chunk.copy_from_slice(&state.to_be_bytes());
        }
        out[0] &= 0x7F; // below p
        out
    }

    fn reference(bytes: &[u8; 32]) -> Reference {
        Reference::from_repr((*bytes).into()).unwrap()
    }

    fn bytes_of(r: Reference) -> [u8; 32] {
        r.to_repr().into()
    }

    fn p_bytes() -> [u8; 32] {
        let mut p = [0u8; 32];
        for (i, limb) in P.iter().enumerate() {
            p[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&limb.to_be_bytes());
        }
        p
    }

    #[test]
    fn agrees_with_the_sm2_crate_field() {
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        let mut p_minus_1 = p_bytes();
        p_minus_1[31] -= 1;
        let mut one = [0u8; 32];
        one[31] = 1;
        let edge = [[0u8; 32], p_minus_1, one];
        for round in 0..2000 {
            let (x, y) = if round < 9 {
                (edge[round / 3], edge[round % 3])
            } else {
                (sample(&mut state), sample(&mut state))
            };
            let (a, b) = (Fe::from_bytes(&x).unwrap(), Fe::from_bytes(&y).unwrap());
            let (ra, rb) = (reference(&x), reference(&y));
            assert_eq!(a.to_bytes(), x);
            assert_eq!(a.add(&b).to_bytes(), bytes_of(ra + rb));
            assert_eq!(a.sub(&b).to_bytes(), bytes_of(ra - rb));
            assert_eq!(a.mul(&b).to_bytes(), bytes_of(ra * rb));
            assert_eq!(a.square().to_bytes(), bytes_of(ra.square()));
            assert_eq!(a.neg().to_bytes(), bytes_of(-ra));
            if round % 20 == 0 {
                let expected = Option::<Reference>::from(ra.invert()).map_or([0; 32], bytes_of);
                assert_eq!(a.invert().to_bytes(), expected);
            }
        }
    }

    #[test]
    fn values_at_or_above_p_are_refused() {
        assert!(Fe::from_bytes(&p_bytes()).is_none());
        assert!(Fe::from_bytes(&[0xFF; 32]).is_none());
        assert_eq!(Fe::ONE.to_bytes()[31], 1);
        assert!(bool::from(Fe::ZERO.is_zero()));
    }
}
