//! Points of sm2p256v1 in Jacobian coordinates (`x = X/Z^2`, `y = Y/Z^3`, the identity has
//! `Z = 0`), with the `a = -3` doubling and mixed/general additions of the Explicit-Formulas
//! Database (dbl-2001-b, madd-2007-bl, add-2007-bl).
//!
//! Two scalar multiplications:
//! - by the generator, from a table of `j * 16^i * G` (65 windows of signed radix-16 digits,
//!   so no doublings at all): constant time for signing, variable time for verification;
//! - by any point, variable time with a width-5 NAF (verification only: public data).

use super::field::Fe;
use std::sync::LazyLock;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Base point x of sm2p256v1 (GB/T 32918.5).
pub(crate) const GX: [u8; 32] =
    hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
/// Base point y of sm2p256v1.
pub(crate) const GY: [u8; 32] =
    hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");

/// Parses 64 upper-case hex digits at compile time.
pub(crate) const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("upper-case hex only"),
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// A point in affine coordinates (never the identity).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Affine {
    x: Fe,
    y: Fe,
}

impl Affine {
    /// From big-endian coordinates. The caller has validated the point (the public-key parser
    /// checks the curve equation).
    pub(crate) fn from_coordinates(x: &[u8; 32], y: &[u8; 32]) -> Option<Self> {
        Some(Self {
            x: Fe::from_bytes(x)?,
            y: Fe::from_bytes(y)?,
        })
    }

    /// Big-endian x.
    pub(crate) fn x_bytes(&self) -> [u8; 32] {
        self.x.to_bytes()
    }

    /// Big-endian y.
    pub(crate) fn y_bytes(&self) -> [u8; 32] {
        self.y.to_bytes()
    }

    fn neg(&self) -> Self {
        Self {
            x: self.x,
            y: self.y.neg(),
        }
    }
}

impl ConditionallySelectable for Affine {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Self {
            x: Fe::conditional_select(&a.x, &b.x, choice),
            y: Fe::conditional_select(&a.y, &b.y, choice),
        }
    }
}

/// A point in Jacobian coordinates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl ConditionallySelectable for Jacobian {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Self {
            x: Fe::conditional_select(&a.x, &b.x, choice),
            y: Fe::conditional_select(&a.y, &b.y, choice),
            z: Fe::conditional_select(&a.z, &b.z, choice),
        }
    }
}

impl Jacobian {
    const IDENTITY: Self = Self {
        x: Fe::ONE,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    fn from_affine(p: &Affine) -> Self {
        Self {
            x: p.x,
            y: p.y,
            z: Fe::ONE,
        }
    }

    fn is_identity(&self) -> Choice {
        self.z.is_zero()
    }

    fn neg(&self) -> Self {
        Self {
            x: self.x,
            y: self.y.neg(),
            z: self.z,
        }
    }

    /// `2P` (dbl-2001-b, a = -3); the identity doubles to the identity.
    fn double(&self) -> Self {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma2_8 = gamma.square().double().double().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&gamma2_8);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// `P + Q` for affine Q (madd-2007-bl). Wrong when P is the identity or P = ±Q: callers
    /// handle those cases.
    fn add_affine_unchecked(&self, q: &Affine) -> Self {
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let r = s2.sub(&self.y).double();
        let v = self.x.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&j).double());
        let z3 = self.z.add(&h).square().sub(&z1z1).sub(&hh);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// `P + Q` for affine Q, every case handled (variable time).
    fn add_affine_vartime(&self, q: &Affine) -> Self {
        if bool::from(self.is_identity()) {
            return Self::from_affine(q);
        }
        let sum = self.add_affine_unchecked(q);
        if bool::from(sum.z.is_zero()) {
            // H = 0: P = ±Q.
            let z1z1 = self.z.square();
            let same_y = q.y.mul(&self.z).mul(&z1z1) == self.y;
            return if same_y {
                Self::from_affine(q).double()
            } else {
                Self::IDENTITY
            };
        }
        sum
    }

    /// `P + Q` (add-2007-bl), every case handled (variable time).
    pub(crate) fn add_vartime(&self, other: &Self) -> Self {
        if bool::from(self.is_identity()) {
            return *other;
        }
        if bool::from(other.is_identity()) {
            return *self;
        }
        let z1z1 = self.z.square();
        let z2z2 = other.z.square();
        let u1 = self.x.mul(&z2z2);
        let u2 = other.x.mul(&z1z1);
        let s1 = self.y.mul(&other.z).mul(&z2z2);
        let s2 = other.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let r = s2.sub(&s1).double();
        if bool::from(h.is_zero()) {
            return if bool::from(r.is_zero()) {
                self.double()
            } else {
                Self::IDENTITY
            };
        }
        let i = h.double().square();
        let j = h.mul(&i);
        let v = u1.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&j).double());
        let z3 = self.z.add(&other.z).square().sub(&z1z1).sub(&z2z2).mul(&h);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// The affine point, `None` for the identity. Constant time in the coordinates.
    pub(crate) fn to_affine(self) -> Option<Affine> {
        if bool::from(self.is_identity()) {
            return None;
        }
        let zinv = self.z.invert();
        let zinv2 = zinv.square();
        Some(Affine {
            x: self.x.mul(&zinv2),
            y: self.y.mul(&zinv2).mul(&zinv),
        })
    }
}

/// `TABLE[i][j] = (j + 1) * 16^i * G`.
type GeneratorTable = [[Affine; 8]; 65];

static GENERATOR_TABLE: LazyLock<Box<GeneratorTable>> = LazyLock::new(|| {
    let g = Affine::from_coordinates(&GX, &GY).expect("generator coordinates");
    let mut points = Vec::with_capacity(65 * 8);
    let mut base = Jacobian::from_affine(&g);
    for _ in 0..65 {
        let mut multiple = base;
        for _ in 0..8 {
            points.push(multiple);
            multiple = multiple.add_vartime(&base);
        }
        base = base.double().double().double().double();
    }
    let affine = batch_to_affine(&points);
    let mut table = Box::new([[Affine::default(); 8]; 65]);
    for (i, window) in table.iter_mut().enumerate() {
        window.copy_from_slice(&affine[8 * i..8 * i + 8]);
    }
    table
});

/// Converts many non-identity points with one inversion (Montgomery's trick).
fn batch_to_affine(points: &[Jacobian]) -> Vec<Affine> {
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = Fe::ONE;
    for p in points {
        prefix.push(acc);
        acc = acc.mul(&p.z);
    }
    let mut inv = acc.invert();
    let mut out = vec![Affine::default(); points.len()];
    for (k, p) in points.iter().enumerate().rev() {
        let zinv = inv.mul(&prefix[k]);
        inv = inv.mul(&p.z);
        let zinv2 = zinv.square();
        out[k] = Affine {
            x: p.x.mul(&zinv2),
            y: p.y.mul(&zinv2).mul(&zinv),
        };
    }
    out
}

/// Signed radix-16 digits of a big-endian scalar below 2^256, least significant first, each
/// in -7..=8 (the last one 0 or 1). Branch-free.
fn radix16_digits(k: &[u8; 32]) -> [i8; 65] {
    let mut digits = [0i8; 65];
    let mut carry = 0i8;
    for i in 0..64 {
        let byte = k[31 - i / 2];
        let nibble = if i % 2 == 0 { byte & 0x0F } else { byte >> 4 } as i8;
        let v = nibble + carry;
        carry = (v + 7) >> 4;
        digits[i] = v - (carry << 4);
    }
    digits[64] = carry;
    digits
}

/// `k * G` in constant time, for `k < n` (signing nonces, key generation).
///
/// The sum of windows below `i` is smaller in absolute value than any non-zero digit of
/// window `i`, so the mixed addition never meets `P = ±Q` except, with probability about
/// 2^-256, in the final carry window.
pub(crate) fn mul_generator(k: &[u8; 32]) -> Jacobian {
    let table = &**GENERATOR_TABLE;
    let mut acc = Jacobian::IDENTITY;
    let mut acc_is_identity = Choice::from(1);
    for (window, &digit) in table.iter().zip(radix16_digits(k).iter()) {
        let sign_mask = digit >> 7; // -1 for negative digits, else 0
        let magnitude = ((digit ^ sign_mask) - sign_mask) as u8;
        let mut point = Affine::default();
        for (j, candidate) in window.iter().enumerate() {
            point.conditional_assign(candidate, magnitude.ct_eq(&(j as u8 + 1)));
        }
        let negative = Choice::from((sign_mask & 1) as u8);
        point.conditional_assign(&point.neg(), negative);

        let zero_digit = magnitude.ct_eq(&0);
        let sum = acc.add_affine_unchecked(&point);
        let next =
            Jacobian::conditional_select(&sum, &Jacobian::from_affine(&point), acc_is_identity);
        acc = Jacobian::conditional_select(&next, &acc, zero_digit);
        acc_is_identity &= zero_digit;
    }
    acc
}

/// `k * G` in variable time (verification).
pub(crate) fn mul_generator_vartime(k: &[u8; 32]) -> Jacobian {
    let table = &**GENERATOR_TABLE;
    let mut acc = Jacobian::IDENTITY;
    for (window, &digit) in table.iter().zip(radix16_digits(k).iter()) {
        match digit {
            0 => {}
            d if d > 0 => acc = acc.add_affine_vartime(&window[d as usize - 1]),
            d => acc = acc.add_affine_vartime(&window[(-d) as usize - 1].neg()),
        }
    }
    acc
}

/// Width-5 NAF digits of a big-endian scalar, least significant first: odd digits in
/// -15..=15, at least four zeros after each non-zero one.
fn naf5_digits(k: &[u8; 32]) -> [i8; 257] {
    let mut limbs = [0u64; 5];
    for (i, limb) in limbs.iter_mut().take(4).enumerate() {
        let start = 32 - 8 * (i + 1);
        *limb = u64::from_be_bytes(k[start..start + 8].try_into().expect("8 bytes"));
    }
    let mut digits = [0i8; 257];
    for digit in digits.iter_mut() {
        if limbs[0] & 1 == 1 {
            let mut d = (limbs[0] & 31) as i8;
            if d > 15 {
                d -= 32;
            }
            *digit = d;
            // limbs -= d (d odd, |d| < 32)
            if d > 0 {
                let mut borrow = d as u64;
                for limb in limbs.iter_mut() {
                    let (v, b) = limb.overflowing_sub(borrow);
                    *limb = v;
                    borrow = u64::from(b);
                }
            } else {
                let mut carry = (-d) as u64;
                for limb in limbs.iter_mut() {
                    let (v, c) = limb.overflowing_add(carry);
                    *limb = v;
                    carry = u64::from(c);
                }
            }
        }
        for i in 0..5 {
            limbs[i] = (limbs[i] >> 1) | limbs.get(i + 1).map_or(0, |next| next << 63);
        }
    }
    digits
}

/// `k * P` in variable time (verification only).
pub(crate) fn mul_vartime(p: &Affine, k: &[u8; 32]) -> Jacobian {
    let base = Jacobian::from_affine(p);
    let twice = base.double();
    let mut odd = [base; 8]; // P, 3P, ..., 15P
    for i in 1..8 {
        odd[i] = odd[i - 1].add_vartime(&twice);
    }
    let digits = naf5_digits(k);
    let mut acc = Jacobian::IDENTITY;
    for &digit in digits.iter().rev() {
        acc = acc.double();
        match digit {
            0 => {}
            d if d > 0 => acc = acc.add_vartime(&odd[d as usize / 2]),
            d => acc = acc.add_vartime(&odd[(-d) as usize / 2].neg()),
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm2::elliptic_curve::ff::PrimeField;
    use sm2::elliptic_curve::point::AffineCoordinates;
    use sm2::{ProjectivePoint, Scalar};

    fn scalar(state: &mut u64) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_exact_mut(8) {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            chunk.copy_from_slice(&state.to_be_bytes());
        }
        out[0] &= 0x7F;
        out
    }

    fn reference(k: &[u8; 32], point: ProjectivePoint) -> ([u8; 32], [u8; 32]) {
        let s = Scalar::from_repr((*k).into()).unwrap();
        let a = (point * s).to_affine();
        let encoded = sm2::elliptic_curve::sec1::ToSec1Point::to_sec1_point(&a, false);
        (a.x().into(), encoded.as_bytes()[33..].try_into().unwrap())
    }

    fn coordinates(p: Jacobian) -> ([u8; 32], [u8; 32]) {
        let a = p.to_affine().unwrap();
        (a.x_bytes(), a.y_bytes())
    }

    #[test]
    fn multiplications_agree_with_the_sm2_crate() {
        let mut state = 0xDEAD_BEEF_1234_5678u64;
        let g = Affine::from_coordinates(&GX, &GY).unwrap();
        let mut specials = [[0u8; 32]; 4];
        specials[0][31] = 1;
        specials[1][31] = 2;
        specials[2][31] = 16;
        specials[3] = [0x11; 32];
        for round in 0..60 {
            let k = specials
                .get(round)
                .copied()
                .unwrap_or_else(|| scalar(&mut state));
            let want = reference(&k, ProjectivePoint::GENERATOR);
            assert_eq!(coordinates(mul_generator(&k)), want, "ct k = {k:02X?}");
            assert_eq!(
                coordinates(mul_generator_vartime(&k)),
                want,
                "vt k = {k:02X?}"
            );
            assert_eq!(coordinates(mul_vartime(&g, &k)), want, "naf k = {k:02X?}");

            let other = scalar(&mut state);
            let p_affine = mul_generator(&other).to_affine().unwrap();
            let p_ref = ProjectivePoint::GENERATOR * Scalar::from_repr(other.into()).unwrap();
            assert_eq!(
                coordinates(mul_vartime(&p_affine, &k)),
                reference(&k, p_ref)
            );
        }
    }

    #[test]
    fn exceptional_additions() {
        let g = Affine::from_coordinates(&GX, &GY).unwrap();
        let gj = Jacobian::from_affine(&g);
        let two_g = coordinates(gj.double());
        assert_eq!(coordinates(gj.add_vartime(&gj)), two_g);
        assert_eq!(coordinates(gj.add_affine_vartime(&g)), two_g);
        assert!(bool::from(gj.add_vartime(&gj.neg()).is_identity()));
        assert!(bool::from(gj.add_affine_vartime(&g.neg()).is_identity()));
        assert!(bool::from(mul_generator(&[0; 32]).is_identity()));
        assert!(Jacobian::IDENTITY.to_affine().is_none());
    }

    #[test]
    fn digit_recodings_reconstruct_the_scalar() {
        let mut state = 0x0123_4567_89AB_CDEFu64;
        for _ in 0..200 {
            let k = scalar(&mut state);
            let value = |digits: &[i8], radix: i128| -> Vec<i128> {
                // Evaluate in 4 base-2^64 "limbs" by Horner with i128 carries.
                let mut acc = vec![0i128; 6];
                for &d in digits.iter().rev() {
                    let mut carry = 0i128;
                    for limb in acc.iter_mut() {
                        let v = *limb * radix + carry;
                        *limb = v.rem_euclid(1 << 64);
                        carry = v.div_euclid(1 << 64);
                    }
                    acc[0] += i128::from(d);
                    let mut carry = 0i128;
                    for limb in acc.iter_mut() {
                        let v = *limb + carry;
                        *limb = v.rem_euclid(1 << 64);
                        carry = v.div_euclid(1 << 64);
                    }
                }
                acc
            };
            let mut expected = vec![0i128; 6];
            for (i, limb) in expected.iter_mut().take(4).enumerate() {
                let start = 32 - 8 * (i + 1);
                *limb = i128::from(u64::from_be_bytes(k[start..start + 8].try_into().unwrap()));
            }
            assert_eq!(value(&radix16_digits(&k), 16), expected);
            let naf = naf5_digits(&k);
            assert_eq!(value(&naf, 2), expected);
            for (i, &d) in naf.iter().enumerate() {
                if d != 0 {
                    assert!(d % 2 != 0 && (-15..=15).contains(&d));
                    assert!(naf[i + 1..(i + 5).min(257)].iter().all(|&z| z == 0));
                }
            }
        }
    }
}
