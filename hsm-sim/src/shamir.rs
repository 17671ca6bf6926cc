//! Shamir secret sharing over GF(2^8), byte by byte, for splitting a key among the bureau's
//! security officers so that any `threshold` of them can rebuild it and fewer learn nothing.
//!
//! Each byte of the secret is the constant term of its own random polynomial of degree
//! `threshold - 1` over the AES field GF(2^8) (reduction polynomial x^8 + x^4 + x^3 + x + 1);
//! share `i` holds the values of those polynomials at `x = i`, for `i` in `1..=shares`.
//! [`combine`] interpolates them back at `x = 0`.
//!
//! The field arithmetic is branch-free and table-free (a bitwise multiply, inversion as
//! `a^254`), so its timing does not depend on the share or secret bytes.
//!
//! A share travels as text an officer can read aloud ([`Share::to_text`], [`Share::parse`]):
//! upper-case hex in groups of four digits, encoding
//!
//! | bytes | field                                    |
//! |-------|------------------------------------------|
//! | 1     | format version, [`SHARE_VERSION`]        |
//! | 1     | threshold                                |
//! | 1     | index (x coordinate, never 0)            |
//! | 2     | value length, big-endian                 |
//! | n     | value                                    |
//! | 2     | CRC-16/CCITT-FALSE of all the above, BE  |
//!
//! The CRC catches every single mistyped digit, every swap of two neighbouring digits and every
//! truncation; it is a typing check, not a MAC, and does not protect against a forged share.

use std::fmt;

use thiserror::Error;
use zeroize::Zeroizing;

/// The version byte that starts every encoded share.
pub const SHARE_VERSION: u8 = 1;

/// The longest secret [`split`] accepts: the encoded length field is 16 bits.
pub const MAX_SECRET_LEN: usize = u16::MAX as usize;

/// Version, threshold, index and the two length bytes.
const HEADER_LEN: usize = 5;
/// The CRC-16 at the end of an encoding.
const CHECK_LEN: usize = 2;
/// Hex digits per group in the text form.
const GROUP_DIGITS: usize = 4;

/// The kind of problem with a share: which check refused it when splitting, combining or
/// parsing. [`crate::HsmError::Share`] carries it through the crate's error type.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ShamirError {
    /// [`split`] needs `2 <= threshold <= shares` (and `shares <= 255`, which `u8` ensures).
    #[error(
        "cannot split into {shares} shares with threshold {threshold}: need 2 <= threshold <= shares"
    )]
    InvalidParameters {
        /// The threshold asked for.
        threshold: u8,
        /// The number of shares asked for.
        shares: u8,
    },
    /// A share records a threshold below 2, which no split produces.
    #[error("invalid threshold {0} in a share: at least 2 is required")]
    InvalidThreshold(u8),
    /// A share has index 0: its value would be the secret itself.
    #[error("invalid share index 0")]
    ZeroIndex,
    /// There is nothing to share, or a share carries no value.
    #[error("the secret is empty")]
    EmptySecret,
    /// The secret is longer than [`MAX_SECRET_LEN`] bytes.
    #[error("the secret is {0} bytes long, at most {MAX_SECRET_LEN} can be shared")]
    SecretTooLong(usize),
    /// The random source failed; no shares were produced.
    #[error("the random source failed")]
    Random,
    /// [`combine`] was given no shares.
    #[error("no shares given")]
    NoShares,
    /// Fewer shares than the threshold they record.
    #[error("{given} shares given, {threshold} are needed")]
    NotEnoughShares {
        /// Shares given.
        given: usize,
        /// The threshold recorded in the shares.
        threshold: u8,
    },
    /// Two shares have the same index.
    #[error("share {0} given more than once")]
    DuplicateIndex(u8),
    /// The shares record different thresholds: they come from different splits.
    #[error("the shares record different thresholds")]
    MixedThresholds,
    /// The shares have values of different lengths: they come from different splits.
    #[error("the shares have values of different lengths")]
    MixedLengths,
    /// More shares than the threshold were given and they do not lie on one polynomial: one is
    /// wrong or comes from another split.
    #[error("the shares are inconsistent: one is wrong or from another split")]
    Inconsistent,
    /// Share text holds a character that is neither a hex digit nor a separator (white space
    /// or `-`).
    #[error("invalid character {character:?} at position {position} of the share text")]
    InvalidCharacter {
        /// Byte offset in the text.
        position: usize,
        /// The character found.
        character: char,
    },
    /// Share text or its encoding is not well formed (odd digit count, too short, a length
    /// field that disagrees with the data).
    #[error("malformed share: {0}")]
    Malformed(&'static str),
    /// The check value does not match: the share was mistyped or damaged.
    #[error("share check value mismatch: the share was mistyped or damaged")]
    Checksum,
    /// The encoding starts with a version byte other than [`SHARE_VERSION`].
    #[error("unsupported share format version {0}")]
    UnsupportedVersion(u8),
}

/// One officer's share: the values at `x = index` of the polynomials hiding each secret byte.
///
/// Its `Debug` output shows the index and threshold but not the value, which is wiped on drop.
#[derive(Clone)]
pub struct Share {
    index: u8,
    threshold: u8,
    value: Zeroizing<Vec<u8>>,
}

impl Share {
    /// A share from its parts, e.g. read back from an officer card.
    ///
    /// Refuses index 0 ([`ShamirError::ZeroIndex`]), a threshold below 2
    /// ([`ShamirError::InvalidThreshold`]), an empty value ([`ShamirError::EmptySecret`]) and a
    /// value longer than [`MAX_SECRET_LEN`] ([`ShamirError::SecretTooLong`]).
    pub fn new(index: u8, threshold: u8, value: Zeroizing<Vec<u8>>) -> Result<Self, ShamirError> {
        if index == 0 {
            return Err(ShamirError::ZeroIndex);
        }
        if threshold < 2 {
            return Err(ShamirError::InvalidThreshold(threshold));
        }
        if value.is_empty() {
            return Err(ShamirError::EmptySecret);
        }
        if value.len() > MAX_SECRET_LEN {
            return Err(ShamirError::SecretTooLong(value.len()));
        }
        Ok(Self {
            index,
            threshold,
            value,
        })
    }

    /// The x coordinate of this share, `1..=255`.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// How many shares of this split [`combine`] needs.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// The share value, one byte per secret byte; as sensitive as the secret itself.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The share as upper-case hex in space-separated groups of four digits, to be read aloud
    /// or written down; see the module documentation for the layout. The text is as secret as
    /// the share and is wiped on drop.
    pub fn to_text(&self) -> Zeroizing<String> {
        let encoded = self.encode();
        let digits = encoded.len() * 2;
        let mut text = Zeroizing::new(String::with_capacity(digits + digits / GROUP_DIGITS));
        for (n, nibble) in encoded
            .iter()
            .flat_map(|byte| [byte >> 4, byte & 0x0f])
            .enumerate()
        {
            if n > 0 && n % GROUP_DIGITS == 0 {
                text.push(' ');
            }
            text.push(char::from(hex_digit(nibble)));
        }
        text
    }

    /// Reads a share written by [`Share::to_text`]. Hex digits may be upper or lower case;
    /// white space and `-` between them are ignored. Never panics, whatever the input.
    ///
    /// A mistyped digit shows up as [`ShamirError::Checksum`]; other errors name what is wrong.
    pub fn parse(text: &str) -> Result<Self, ShamirError> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len() / 2));
        let mut high: Option<u8> = None;
        for (position, character) in text.char_indices() {
            if character.is_whitespace() || character == '-' {
                continue;
            }
            let nibble = u8::try_from(character).ok().and_then(hex_value).ok_or(
                ShamirError::InvalidCharacter {
                    position,
                    character,
                },
            )?;
            match high.take() {
                Some(high) => bytes.push(high << 4 | nibble),
                None => high = Some(nibble),
            }
        }
        if high.is_some() {
            return Err(ShamirError::Malformed("odd number of hex digits"));
        }
        Self::decode(&bytes)
    }

    /// The binary encoding: header, value, CRC.
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            HEADER_LEN + self.value.len() + CHECK_LEN,
        ));
        out.extend_from_slice(&[SHARE_VERSION, self.threshold, self.index]);
        // `new`, `parse` and `split` keep values within MAX_SECRET_LEN, so this never saturates.
        let len = u16::try_from(self.value.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.value);
        let check = crc16(&out);
        out.extend_from_slice(&check.to_be_bytes());
        out
    }

    /// Reads the binary encoding, checking the CRC before any field.
    fn decode(bytes: &[u8]) -> Result<Self, ShamirError> {
        let too_short = ShamirError::Malformed("too short");
        let (body, check) = bytes
            .split_last_chunk::<CHECK_LEN>()
            .ok_or(too_short.clone())?;
        let (&[version, threshold, index, len_high, len_low], value) =
            body.split_first_chunk::<HEADER_LEN>().ok_or(too_short)?;
        if crc16(body) != u16::from_be_bytes(*check) {
            return Err(ShamirError::Checksum);
        }
        if version != SHARE_VERSION {
            return Err(ShamirError::UnsupportedVersion(version));
        }
        if usize::from(u16::from_be_bytes([len_high, len_low])) != value.len() {
            return Err(ShamirError::Malformed(
                "length field disagrees with the data",
            ));
        }
        Self::new(index, threshold, Zeroizing::new(value.to_vec()))
    }
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("index", &self.index)
            .field("threshold", &self.threshold)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// Splits `secret` into `shares` shares, any `threshold` of which rebuild it; share `i` (from
/// 1) has index `i`.
///
/// `rng` fills a buffer with uniformly random bytes (for example
/// `|buf| ykt_crypto::random::fill(buf).map_err(|_| ShamirError::Random)`); its error is
/// returned as is. It is called `threshold - 1` times with a buffer as long as the secret.
///
/// Errors: [`ShamirError::InvalidParameters`] unless `2 <= threshold <= shares`,
/// [`ShamirError::EmptySecret`], [`ShamirError::SecretTooLong`].
pub fn split(
    secret: &[u8],
    threshold: u8,
    shares: u8,
    rng: &mut dyn FnMut(&mut [u8]) -> Result<(), ShamirError>,
) -> Result<Vec<Share>, ShamirError> {
    if threshold < 2 || threshold > shares {
        return Err(ShamirError::InvalidParameters { threshold, shares });
    }
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(ShamirError::SecretTooLong(secret.len()));
    }
    let mut out: Vec<Share> = (1..=shares)
        .map(|index| Share {
            index,
            threshold,
            value: Zeroizing::new(secret.to_vec()),
        })
        .collect();
    // `powers[i]` is index^degree for share i, for the degree being added.
    let mut powers: Vec<u8> = (1..=shares).collect();
    let mut coefficients = Zeroizing::new(vec![0u8; secret.len()]);
    for _degree in 1..threshold {
        rng(&mut coefficients)?;
        for (share, power) in out.iter_mut().zip(powers.iter_mut()) {
            for (y, &a) in share.value.iter_mut().zip(coefficients.iter()) {
                *y ^= gf_mul(a, *power);
            }
            *power = gf_mul(*power, share.index);
        }
    }
    Ok(out)
}

/// Rebuilds the secret from shares of one split.
///
/// Refuses an empty slice, shares with different thresholds or value lengths, duplicate
/// indices, and fewer shares than their threshold. With more shares than the threshold, the
/// secret comes from the first `threshold` of them and every further share must agree with
/// the same polynomials, else [`ShamirError::Inconsistent`].
pub fn combine(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    let first = shares.first().ok_or(ShamirError::NoShares)?;
    let threshold = first.threshold;
    let len = first.value.len();
    if shares.iter().any(|share| share.threshold != threshold) {
        return Err(ShamirError::MixedThresholds);
    }
    if shares.iter().any(|share| share.value.len() != len) {
        return Err(ShamirError::MixedLengths);
    }
    let mut seen = [false; 256];
    for share in shares {
        let seen = &mut seen[usize::from(share.index)];
        if *seen {
            return Err(ShamirError::DuplicateIndex(share.index));
        }
        *seen = true;
    }
    if shares.len() < usize::from(threshold) {
        return Err(ShamirError::NotEnoughShares {
            given: shares.len(),
            threshold,
        });
    }
    let (basis, extra) = shares.split_at(usize::from(threshold));
    let secret = interpolate(basis, 0);
    for share in extra {
        let expected = interpolate(basis, share.index);
        let difference = expected
            .iter()
            .zip(share.value.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference != 0 {
            return Err(ShamirError::Inconsistent);
        }
    }
    Ok(secret)
}

/// The values at `x` of the polynomials through `points` (distinct indices, equal lengths), by
/// Lagrange interpolation: `sum_i y_i * prod_{j != i} (x - x_j) / (x_i - x_j)`, where
/// subtraction is XOR.
fn interpolate(points: &[Share], x: u8) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; points.first().map_or(0, |p| p.value.len())]);
    for (i, point) in points.iter().enumerate() {
        let (mut numerator, mut denominator) = (1u8, 1u8);
        for (j, other) in points.iter().enumerate() {
            if i != j {
                numerator = gf_mul(numerator, x ^ other.index);
                denominator = gf_mul(denominator, point.index ^ other.index);
            }
        }
        let weight = gf_mul(numerator, gf_inv(denominator));
        for (acc, &y) in out.iter_mut().zip(point.value.iter()) {
            *acc ^= gf_mul(weight, y);
        }
    }
    out
}

/// Product in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1, without branches or tables.
fn gf_mul(a: u8, b: u8) -> u8 {
    let (mut a, mut b, mut product) = (a, b, 0u8);
    for _ in 0..8 {
        product ^= a & (b & 1).wrapping_neg();
        a = (a << 1) ^ (0x1b & (a >> 7).wrapping_neg());
        b >>= 1;
    }
    product
}

/// Inverse in GF(2^8) as `a^254` (so 0 maps to 0), by a fixed square-and-multiply chain.
fn gf_inv(a: u8) -> u8 {
    // 254 = 0b1111_1110: after the loop, result = a^(2^7 - 1) = a^127; squared, a^254.
    let mut result = a;
    for _ in 0..6 {
        result = gf_mul(gf_mul(result, result), a);
    }
    gf_mul(result, result)
}

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR.
fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0xffffu16;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = (crc << 1) ^ (0x1021 & (crc >> 15).wrapping_neg());
        }
    }
    crc
}

/// The upper-case hex digit of a nibble, without branching on it.
fn hex_digit(nibble: u8) -> u8 {
    // 0xff when the nibble is 10 or more: then skip the 7 characters between '9' and 'A'.
    let letter = (9u8.wrapping_sub(nibble) >> 7).wrapping_neg();
    b'0' + nibble + (letter & 7)
}

/// The value of a hex digit (either case), or `None`; only the validity is branched on.
fn hex_value(c: u8) -> Option<u8> {
    let c = i16::from(c);
    // Each mask is -1 when `c` is in the range, 0 otherwise; each term then adds value + 1.
    let digit = ((0x2f - c) & (c - 0x3a)) >> 8;
    let upper = ((0x40 - c) & (c - 0x47)) >> 8;
    let lower = ((0x60 - c) & (c - 0x67)) >> 8;
    let value = -1 + (digit & (c - 0x2f)) + (upper & (c - 0x36)) + (lower & (c - 0x56));
    u8::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: a small deterministic generator for test inputs.
    struct TestRng(u64);

    impl TestRng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn fill(&mut self, buf: &mut [u8]) -> Result<(), ShamirError> {
            for byte in buf {
                *byte = self.next_u64().to_le_bytes()[0];
            }
            Ok(())
        }

        /// Uniform in `low..=high`.
        fn between(&mut self, low: usize, high: usize) -> usize {
            low + usize::try_from(self.next_u64() % (high - low + 1) as u64).unwrap()
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            let mut out = vec![0u8; len];
            self.fill(&mut out).unwrap();
            out
        }
    }

    /// Textbook GF(2^8) product: carry-less multiply into 16 bits, then long division by 0x11B.
    fn reference_mul(a: u8, b: u8) -> u8 {
        let mut wide = 0u16;
        for bit in 0..8 {
            if b >> bit & 1 == 1 {
                wide ^= u16::from(a) << bit;
            }
        }
        for bit in (8..16).rev() {
            if wide >> bit & 1 == 1 {
                wide ^= 0x11b << (bit - 8);
            }
        }
        u8::try_from(wide).unwrap()
    }

    /// Evaluates `sum_d coefficients[d] * x^d` with powers computed from scratch each time.
    fn reference_eval(coefficients: &[u8], x: u8) -> u8 {
        coefficients
            .iter()
            .enumerate()
            .fold(0, |acc, (degree, &c)| {
                let power = (0..degree).fold(1, |p, _| reference_mul(p, x));
                acc ^ reference_mul(c, power)
            })
    }

    fn split_with_seed(secret: &[u8], threshold: u8, shares: u8, seed: u64) -> Vec<Share> {
        let mut rng = TestRng(seed);
        split(secret, threshold, shares, &mut |buf| rng.fill(buf)).unwrap()
    }

    /// Every subset of `0..n`.
    fn subsets(n: usize) -> impl Iterator<Item = Vec<usize>> {
        (0u32..1 << n).map(move |mask| (0..n).filter(|i| mask >> i & 1 == 1).collect())
    }

    #[test]
    fn multiply_matches_fips_197_examples() {
        // FIPS-197 section 4.2: {57} * {83} = {c1}, {57} * {13} = {fe}.
        assert_eq!(gf_mul(0x57, 0x83), 0xc1);
        assert_eq!(gf_mul(0x57, 0x13), 0xfe);
        // The AES S-box is built on the inverse; {53}^-1 = {ca}.
        assert_eq!(gf_inv(0x53), 0xca);
        assert_eq!(gf_inv(0), 0);
    }

    #[test]
    fn multiply_matches_reference_exhaustively() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let product = gf_mul(a, b);
                assert_eq!(product, reference_mul(a, b), "{a:02x} * {b:02x}");
                assert_eq!(product, gf_mul(b, a));
            }
            assert_eq!(gf_mul(a, 1), a);
            assert_eq!(gf_mul(a, 0), 0);
        }
    }

    #[test]
    fn every_nonzero_element_times_its_inverse_is_one() {
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "{a:02x}");
        }
    }

    #[test]
    fn field_is_associative_and_distributive() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for c in [0u8, 1, 2, 0x1b, 0x53, 0x80, 0xca, 0xff] {
                    assert_eq!(gf_mul(a, gf_mul(b, c)), gf_mul(gf_mul(a, b), c));
                    assert_eq!(gf_mul(a, b ^ c), gf_mul(a, b) ^ gf_mul(a, c));
                }
            }
        }
    }

    #[test]
    fn crc_matches_the_catalogue_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29b1);
    }

    #[test]
    fn hex_digits_round_trip() {
        for nibble in 0..16u8 {
            let digit = hex_digit(nibble);
            assert_eq!(
                char::from(digit),
                format!("{nibble:X}").chars().next().unwrap()
            );
            assert_eq!(hex_value(digit), Some(nibble));
            assert_eq!(hex_value(digit.to_ascii_lowercase()), Some(nibble));
        }
        let valid = |c: u8| c.is_ascii_hexdigit();
        for c in 0..=255u8 {
            assert_eq!(hex_value(c).is_some(), valid(c), "{c:02x}");
        }
    }

    #[test]
    fn split_matches_fips_197_products() {
        // Threshold 2, secret 00 and coefficient 57: share x holds {57} * x.
        let shares = split(&[0x00], 2, 0x83, &mut |buf| {
            buf.fill(0x57);
            Ok(())
        })
        .unwrap();
        assert_eq!(shares[0x12].index(), 0x13);
        assert_eq!(shares[0x12].value(), [0xfe]);
        assert_eq!(shares[0x82].index(), 0x83);
        assert_eq!(shares[0x82].value(), [0xc1]);
        let pair = [shares[0x82].clone(), shares[0x12].clone()];
        assert_eq!(*combine(&pair).unwrap(), [0x00]);
    }

    #[test]
    fn split_matches_independent_polynomial_evaluation() {
        let mut inputs = TestRng(1);
        for (threshold, count) in [(2u8, 2u8), (2, 5), (3, 5), (5, 9), (7, 255)] {
            let secret = inputs.bytes(17);
            // Record the coefficient rows split draws, degree 1 upwards.
            let mut rows: Vec<Vec<u8>> = Vec::new();
            let mut source = TestRng(u64::from(threshold) * 1000 + u64::from(count));
            let shares = split(&secret, threshold, count, &mut |buf| {
                source.fill(buf)?;
                rows.push(buf.to_vec());
                Ok(())
            })
            .unwrap();
            assert_eq!(rows.len(), usize::from(threshold) - 1);
            assert_eq!(shares.len(), usize::from(count));
            for (share, index) in shares.iter().zip(1..=count) {
                assert_eq!(share.index(), index);
                assert_eq!(share.threshold(), threshold);
                let expected: Vec<u8> = (0..secret.len())
                    .map(|k| {
                        let mut coefficients = vec![secret[k]];
                        coefficients.extend(rows.iter().map(|row| row[k]));
                        reference_eval(&coefficients, index)
                    })
                    .collect();
                assert_eq!(share.value(), expected);
            }
        }
    }

    #[test]
    fn every_subset_of_three_of_five_recombines_and_smaller_ones_fail() {
        let secret = b"LMK component: 16 bytes of key".to_vec();
        let shares = split_with_seed(&secret, 3, 5, 7);
        for members in subsets(5) {
            let chosen: Vec<Share> = members.iter().map(|&i| shares[i].clone()).collect();
            let result = combine(&chosen);
            match members.len() {
                0 => assert_eq!(result.unwrap_err(), ShamirError::NoShares),
                1 | 2 => assert_eq!(
                    result.unwrap_err(),
                    ShamirError::NotEnoughShares {
                        given: members.len(),
                        threshold: 3
                    }
                ),
                _ => assert_eq!(*result.unwrap(), secret, "{members:?}"),
            }
        }
    }

    #[test]
    fn random_secrets_and_thresholds_round_trip() {
        let mut rng = TestRng(42);
        for round in 0..300 {
            let len = rng.between(1, 64);
            let count = if round % 50 == 0 {
                255
            } else {
                rng.between(2, 12)
            };
            let threshold = rng.between(2, count);
            let secret = rng.bytes(len);
            let (threshold, count) = (
                u8::try_from(threshold).unwrap(),
                u8::try_from(count).unwrap(),
            );
            let mut shares = split_with_seed(&secret, threshold, count, round);
            // Shuffle, then keep `take` of them.
            for i in (1..shares.len()).rev() {
                shares.swap(i, rng.between(0, i));
            }
            let take = rng.between(usize::from(threshold), usize::from(count));
            assert_eq!(*combine(&shares[..take]).unwrap(), secret);
            let short = usize::from(threshold) - 1;
            assert!(matches!(
                combine(&shares[..short]),
                Err(ShamirError::NotEnoughShares { .. })
            ));
            // Every share survives its text form.
            let back = Share::parse(&shares[0].to_text()).unwrap();
            assert_eq!(back.index(), shares[0].index());
            assert_eq!(back.threshold(), threshold);
            assert_eq!(back.value(), shares[0].value());
        }
    }

    #[test]
    fn split_refuses_bad_parameters() {
        let mut rng = TestRng(0);
        let mut fill = |buf: &mut [u8]| rng.fill(buf);
        for (threshold, shares) in [(0, 5), (1, 5), (6, 5), (2, 1), (255, 254)] {
            assert_eq!(
                split(b"k", threshold, shares, &mut fill).unwrap_err(),
                ShamirError::InvalidParameters { threshold, shares }
            );
        }
        assert_eq!(
            split(b"", 2, 3, &mut fill).unwrap_err(),
            ShamirError::EmptySecret
        );
        assert_eq!(
            split(&vec![0; MAX_SECRET_LEN + 1], 2, 3, &mut fill).unwrap_err(),
            ShamirError::SecretTooLong(MAX_SECRET_LEN + 1)
        );
        assert_eq!(
            split(&vec![1; MAX_SECRET_LEN], 2, 2, &mut fill)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(split(b"k", 255, 255, &mut fill).unwrap().len(), 255);
    }

    #[test]
    fn random_source_failure_is_returned() {
        assert_eq!(
            split(b"key", 2, 3, &mut |_| Err(ShamirError::Random)).unwrap_err(),
            ShamirError::Random
        );
    }

    #[test]
    fn combine_refuses_inconsistent_sets() {
        let shares = split_with_seed(b"0123456789abcdef", 2, 4, 3);
        let other = split_with_seed(b"0123456789abcdef", 3, 4, 4);
        let longer = split_with_seed(b"0123456789abcdef!", 2, 4, 5);
        assert_eq!(
            combine(&[shares[0].clone(), other[1].clone(), other[2].clone()]).unwrap_err(),
            ShamirError::MixedThresholds
        );
        assert_eq!(
            combine(&[shares[0].clone(), longer[1].clone()]).unwrap_err(),
            ShamirError::MixedLengths
        );
        assert_eq!(
            combine(&[shares[1].clone(), shares[2].clone(), shares[1].clone()]).unwrap_err(),
            ShamirError::DuplicateIndex(2)
        );
        // A third share from another split of the same shape does not fit the first two.
        let stranger = split_with_seed(b"0123456789abcdef", 2, 4, 6);
        assert_eq!(
            combine(&[shares[0].clone(), shares[1].clone(), stranger[2].clone()]).unwrap_err(),
            ShamirError::Inconsistent
        );
        // Nor does a share with one byte changed.
        let mut value = Zeroizing::new(shares[3].value().to_vec());
        value[5] ^= 1;
        let damaged = Share::new(4, 2, value).unwrap();
        assert_eq!(
            combine(&[shares[0].clone(), shares[1].clone(), damaged]).unwrap_err(),
            ShamirError::Inconsistent
        );
    }

    #[test]
    fn share_new_refuses_what_no_split_produces() {
        let value = || Zeroizing::new(vec![1, 2, 3]);
        assert_eq!(
            Share::new(0, 2, value()).unwrap_err(),
            ShamirError::ZeroIndex
        );
        assert_eq!(
            Share::new(1, 1, value()).unwrap_err(),
            ShamirError::InvalidThreshold(1)
        );
        assert_eq!(
            Share::new(1, 2, Zeroizing::new(Vec::new())).unwrap_err(),
            ShamirError::EmptySecret
        );
        assert_eq!(
            Share::new(1, 2, Zeroizing::new(vec![0; MAX_SECRET_LEN + 1])).unwrap_err(),
            ShamirError::SecretTooLong(MAX_SECRET_LEN + 1)
        );
    }

    #[test]
    fn text_form_is_grouped_hex_with_the_documented_layout() {
        let share = Share::new(3, 2, Zeroizing::new(vec![0xab, 0xcd, 0xef])).unwrap();
        let body = [SHARE_VERSION, 2, 3, 0, 3, 0xab, 0xcd, 0xef];
        let check = crc16(&body);
        let expected = format!("0102 0300 03AB CDEF {check:04X}");
        assert_eq!(*share.to_text(), expected);
        // Lower case, dashes and line breaks are accepted.
        let loose = expected.to_lowercase().replace(' ', "-\n ");
        let back = Share::parse(&loose).unwrap();
        assert_eq!((back.index(), back.threshold()), (3, 2));
        assert_eq!(back.value(), [0xab, 0xcd, 0xef]);
    }

    #[test]
    fn every_mistyped_digit_and_swap_is_detected() {
        let share = &split_with_seed(&[0x11; 32], 3, 5, 9)[2];
        let text = share.to_text();
        let digits: Vec<u8> = text.bytes().filter(|c| *c != b' ').collect();
        let parse = |digits: &[u8]| Share::parse(std::str::from_utf8(digits).unwrap());
        for position in 0..digits.len() {
            for replacement in b"0123456789ABCDEF" {
                if *replacement != digits[position] {
                    let mut typo = digits.clone();
                    typo[position] = *replacement;
                    assert_eq!(parse(&typo).unwrap_err(), ShamirError::Checksum);
                }
            }
            if position + 1 < digits.len() && digits[position] != digits[position + 1] {
                let mut swapped = digits.clone();
                swapped.swap(position, position + 1);
                assert_eq!(parse(&swapped).unwrap_err(), ShamirError::Checksum);
            }
        }
        // A dropped group, or a dropped byte.
        for cut in [4, 2] {
            assert!(parse(&digits[..digits.len() - cut]).is_err());
            let mut missing = digits.clone();
            missing.drain(10..10 + cut);
            assert!(parse(&missing).is_err());
        }
    }

    #[test]
    fn parse_reports_what_is_wrong() {
        let encode = |body: &[u8]| {
            let mut bytes = body.to_vec();
            bytes.extend_from_slice(&crc16(body).to_be_bytes());
            bytes.iter().map(|b| format!("{b:02X}")).collect::<String>()
        };
        assert_eq!(
            Share::parse("0102 0x00").unwrap_err(),
            ShamirError::InvalidCharacter {
                position: 6,
                character: 'x'
            }
        );
        assert_eq!(
            Share::parse("0102 é").unwrap_err(),
            ShamirError::InvalidCharacter {
                position: 5,
                character: 'é'
            }
        );
        assert_eq!(
            Share::parse("010").unwrap_err(),
            ShamirError::Malformed("odd number of hex digits")
        );
        assert_eq!(
            Share::parse("").unwrap_err(),
            ShamirError::Malformed("too short")
        );
        assert_eq!(
            Share::parse(&encode(&[2, 2, 1, 0, 1, 9])).unwrap_err(),
            ShamirError::UnsupportedVersion(2)
        );
        assert_eq!(
            Share::parse(&encode(&[1, 1, 1, 0, 1, 9])).unwrap_err(),
            ShamirError::InvalidThreshold(1)
        );
        assert_eq!(
            Share::parse(&encode(&[1, 2, 0, 0, 1, 9])).unwrap_err(),
            ShamirError::ZeroIndex
        );
        assert_eq!(
            Share::parse(&encode(&[1, 2, 1, 0, 2, 9])).unwrap_err(),
            ShamirError::Malformed("length field disagrees with the data")
        );
        assert_eq!(
            Share::parse(&encode(&[1, 2, 1, 0, 0])).unwrap_err(),
            ShamirError::EmptySecret
        );
        assert!(Share::parse(&encode(&[1, 2, 1, 0, 1, 9])).is_ok());
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text() {
        let mut rng = TestRng(99);
        let alphabet: Vec<char> = "0123456789abcdefABCDEF -\n\txyzé\u{0}\u{2003}"
            .chars()
            .collect();
        let valid = split_with_seed(b"seed", 2, 3, 1)[0].to_text();
        for _ in 0..20_000 {
            let len = rng.between(0, 40);
            let text: String = (0..len)
                .map(|_| alphabet[rng.between(0, alphabet.len() - 1)])
                .collect();
            let _ = Share::parse(&text);
            // Mutations of a valid share: a random character overwritten.
            let mut chars: Vec<char> = valid.chars().collect();
            let at = rng.between(0, chars.len() - 1);
            chars[at] = alphabet[rng.between(0, alphabet.len() - 1)];
            let _ = Share::parse(&chars.into_iter().collect::<String>());
        }
    }

    #[test]
    fn debug_hides_the_value() {
        let share = Share::new(7, 3, Zeroizing::new(vec![0xde, 0xad, 0xbe, 0xef])).unwrap();
        let shown = format!("{share:?}");
        assert_eq!(
            shown,
            r#"Share { index: 7, threshold: 3, value: "<redacted>" }"#
        );
    }
}
