//! The OpenSSL reference rates: runs `openssl speed` and reads its human-readable tables.
//!
//! Cipher runs (`-evp NAME -bytes N`) print one row per cipher whose last column is the rate in
//! thousands of bytes per second (`SM4-ECB  137327.79k`); dividing by the block length gives
//! blocks per second. Signature runs print a row per curve ending in `sign/s verify/s`.

use crate::error::{CliError, Result};
use std::process::Command;

/// One rate measured by OpenSSL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// SM4-ECB on 16-byte inputs, blocks per second.
    Sm4Ecb,
    /// DES-EDE3-ECB on 8-byte inputs, blocks per second.
    DesEde3,
    /// SM2 signatures per second.
    Sm2Sign,
    /// SM2 verifications per second.
    Sm2Verify,
    /// ECDSA P-256 signatures per second.
    P256Sign,
    /// ECDSA P-256 verifications per second.
    P256Verify,
}

impl Reference {
    /// How the goals name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sm4Ecb => "sm4-ecb 16-byte",
            Self::DesEde3 => "des-ede3 8-byte",
            Self::Sm2Sign => "sm2 sign",
            Self::Sm2Verify => "sm2 verify",
            Self::P256Sign => "ecdsap256 sign",
            Self::P256Verify => "ecdsap256 verify",
        }
    }
}

/// The reference rates measured by `openssl speed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    sm4_ecb: f64,
    des_ede3: f64,
    sm2: (f64, f64),
    p256: (f64, f64),
}

impl Rates {
    /// Runs the four `openssl speed` measurements, `seconds` each (signature runs take twice
    /// that: signing, then verifying).
    pub fn measure(seconds: u32) -> Result<Self> {
        Ok(Self {
            sm4_ecb: block_rate(
                &speed(seconds, &["-evp", "sm4-ecb", "-bytes", "16"])?,
                "SM4",
                16,
            )?,
            des_ede3: block_rate(
                &speed(seconds, &["-evp", "des-ede3", "-bytes", "8"])?,
                "DES-EDE3",
                8,
            )?,
            sm2: sign_verify_rates(&speed(seconds, &["sm2"])?, "(CurveSM2)")?,
            p256: sign_verify_rates(&speed(seconds, &["ecdsap256"])?, "(nistp256)")?,
        })
    }

    /// Operations per second of `reference`.
    pub fn get(&self, reference: Reference) -> f64 {
        match reference {
            Reference::Sm4Ecb => self.sm4_ecb,
            Reference::DesEde3 => self.des_ede3,
            Reference::Sm2Sign => self.sm2.0,
            Reference::Sm2Verify => self.sm2.1,
            Reference::P256Sign => self.p256.0,
            Reference::P256Verify => self.p256.1,
        }
    }
}

/// Standard output of `openssl speed -seconds SECONDS ARGS...`.
fn speed(seconds: u32, args: &[&str]) -> Result<String> {
    let output = Command::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string()])
        .args(args)
        .output()
        .map_err(|err| CliError::Openssl(format!("cannot run openssl: {err}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(CliError::Openssl(format!(
            "`{}` failed: {}",
            args.join(" "),
            stderr.lines().next().unwrap_or("no message")
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn number(token: &str) -> Option<f64> {
    token
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite() && *x >= 0.0)
}

/// Blocks per second from the row whose first column starts with `cipher` (upper case).
fn block_rate(output: &str, cipher: &str, block_len: u32) -> Result<f64> {
    output
        .lines()
        .map(str::split_whitespace)
        .filter_map(|mut columns| {
            let first = columns.next()?;
            let last = columns.next_back()?;
            first
                .to_ascii_uppercase()
                .starts_with(cipher)
                .then_some(last)
        })
        .find_map(|rate| number(rate.strip_suffix('k')?))
        .map(|kilobytes| kilobytes * 1000.0 / f64::from(block_len))
        .ok_or_else(|| CliError::Openssl(format!("no {cipher} rate in its output")))
}

/// Signatures and verifications per second from the row containing `curve`.
fn sign_verify_rates(output: &str, curve: &str) -> Result<(f64, f64)> {
    output
        .lines()
        .filter(|line| line.contains(curve))
        .find_map(|line| {
            let mut columns = line.split_whitespace().rev();
            let verify = number(columns.next()?)?;
            let sign = number(columns.next()?)?;
            Some((sign, verify))
        })
        .ok_or_else(|| CliError::Openssl(format!("no {curve} sign/verify rates in its output")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIPHER: &str = "version: 3.0.19
built on: Fri Apr  3 12:29:32 2026 UTC
options: bn(64,64)
compiler: gcc -fPIC -pthread -m64 -Wa,--noexecstack -Wall -O2 -DNDEBUG
CPUINFO: OPENSSL_ia32cap=0xfffa3203078bffff:0x405fc6f1bf07ab
The 'numbers' are in 1000s of bytes per second processed.
type             16 bytes
SM4-ECB         137327.79k
";

    const SIGNATURE: &str = "version: 3.0.19
options: bn(64,64)
                              sign    verify    sign/s verify/s
 256 bits SM2 (CurveSM2)   0.0003s   0.0002s   3825.3   4178.0
";

    #[test]
    fn cipher_rows_give_blocks_per_second() {
        let rate = block_rate(CIPHER, "SM4", 16).unwrap();
        assert!((rate - 137_327_790.0 / 16.0).abs() < 1e-3);
        let des = "type              8 bytes\nDES-EDE3-ECB     32880.57k\n";
        assert!((block_rate(des, "DES-EDE3", 8).unwrap() - 4_110_071.25).abs() < 1e-3);
        assert!(block_rate(CIPHER, "DES-EDE3", 8).is_err());
    }

    #[test]
    fn signature_rows_give_sign_and_verify_rates() {
        assert_eq!(
            sign_verify_rates(SIGNATURE, "(CurveSM2)").unwrap(),
            (3825.3, 4178.0)
        );
        let p256 = " 256 bits ecdsa (nistp256)   0.0000s   0.0000s  63369.4  20969.0\n";
        assert_eq!(
            sign_verify_rates(p256, "(nistp256)").unwrap(),
            (63369.4, 20969.0)
        );
        assert!(sign_verify_rates(SIGNATURE, "(nistp256)").is_err());
        assert!(sign_verify_rates("SM2 (CurveSM2) n/a n/a\n", "(CurveSM2)").is_err());
    }
}
