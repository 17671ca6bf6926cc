//! PKCS#12 (RFC 7292) bundles of a TLS identity: a certificate, its private key and the CA
//! certificate in one password-protected file, for the clients that import one file rather
//! than PEM files (browsers, Java and .NET key stores, curl's `--cert-type P12`).
//!
//! The profile is the one `openssl pkcs12 -export` writes by default in OpenSSL 3:
//! - the certificates in an `encryptedData` safe and the key in a PKCS#8 shrouded key bag,
//!   each encrypted with PBES2: PBKDF2-HMAC-SHA256 with a fresh 16-byte salt, AES-256-CBC with
//!   a fresh IV;
//! - the key bag and the certificate's bag carry the friendly name and the local key ID (the
//!   SHA-256 of the certificate) that pair them; the CA certificate's bag carries neither;
//! - an HMAC-SHA256 integrity MAC over the contents, keyed by the PKCS#12 key derivation
//!   (RFC 7292 appendix B) with SHA-256.
//!
//! Every derivation runs [`ITERATIONS`] rounds, as `openssl pkcs12 -export -iter` does with its
//! one count. OpenSSL 3 takes any count up to `INT_MAX`; 100,000 is a work factor worth having
//! for a chosen password, yet importers bound what a file may demand (p12-keystore refuses more
//! than 1,000,000 per derivation, .NET since its June 2023 update refuses "uncommonly high"
//! counts), and a passphrase from [`new_password`] has 120 bits, which no count adds to.
//!
//! The encoder is written here on `yasna` (the DER writer rcgen already brings) and aws-lc-rs
//! rather than taken from a PKCS#12 crate: the maintained writer, `p12-keystore`, would add 23
//! crates to the build (two of them pre-releases, `cms` and `pkcs12`), keeps its copies of the
//! private key in buffers that are never wiped, and names certificates by their subject rather
//! than by the client. Here the clear PKCS#8 key and every key derived from the password live
//! in [`Zeroizing`] buffers only.

use crate::error::{KmsError, Result};
use aws_lc_rs::cipher::{AES_256, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::{hmac, pbkdf2};
use std::num::NonZeroU32;
use yasna::models::ObjectIdentifier;
use yasna::{DERWriter, Tag};
use ykt_crypto::CryptoError;
use ykt_crypto::p256::sha256;
use zeroize::Zeroizing;

/// The iteration count of every key derivation of a bundle (both PBKDF2 runs and the MAC's).
pub const ITERATIONS: NonZeroU32 = NonZeroU32::new(100_000).expect("non-zero");

/// The length of a passphrase from [`new_password`], in characters of [`PASSWORD_ALPHABET`].
pub const PASSWORD_LENGTH: usize = 24;

/// The characters of a passphrase from [`new_password`]: RFC 4648's base32 alphabet, 5 bits
/// each.
pub const PASSWORD_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Salt length of the PBKDF2 runs and of the MAC.
const SALT_LEN: usize = 16;

/// The block length of SHA-256, the `v` of the PKCS#12 key derivation.
const SHA256_BLOCK_LEN: usize = 64;

/// The PKCS#12 key derivation's purpose byte for a MAC key (RFC 7292 B.3).
const MAC_KEY_ID: u8 = 3;

const DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 1];
const ENCRYPTED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 6];
const SHROUDED_KEY_BAG: &[u64] = &[1, 2, 840, 113_549, 1, 12, 10, 1, 2];
const CERT_BAG: &[u64] = &[1, 2, 840, 113_549, 1, 12, 10, 1, 3];
const X509_CERTIFICATE: &[u64] = &[1, 2, 840, 113_549, 1, 9, 22, 1];
const FRIENDLY_NAME: &[u64] = &[1, 2, 840, 113_549, 1, 9, 20];
const LOCAL_KEY_ID: &[u64] = &[1, 2, 840, 113_549, 1, 9, 21];
const PBES2: &[u64] = &[1, 2, 840, 113_549, 1, 5, 13];
const PBKDF2: &[u64] = &[1, 2, 840, 113_549, 1, 5, 12];
const HMAC_WITH_SHA256: &[u64] = &[1, 2, 840, 113_549, 2, 9];
const AES_256_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 42];
const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];

/// What a bundle holds, DER.
pub struct Identity<'a> {
    /// The name an importer shows for the key and its certificate.
    pub friendly_name: &'a str,
    /// The certificate.
    pub certificate: &'a [u8],
    /// Its private key, PKCS#8.
    pub key: &'a [u8],
    /// The CA certificate that issued it.
    pub ca_certificate: &'a [u8],
}

/// Refuses a password no bundle is made under: an empty one, or one with a NUL character
/// (which would end it early in the MAC's encoding, RFC 7292 B.1).
pub fn check_password(password: &str) -> Result<()> {
    let reason = if password.is_empty() {
        "empty"
    } else if password.contains('\0') {
        "holds a NUL character"
    } else {
        return Ok(());
    };
    Err(KmsError::InvalidInput {
        field: "PKCS#12 password",
        reason: reason.into(),
    })
}

/// A fresh passphrase for a bundle: [`PASSWORD_LENGTH`] characters of [`PASSWORD_ALPHABET`]
/// from the operating system's random source (120 bits).
pub fn new_password() -> Result<Zeroizing<String>> {
    let random = Zeroizing::new(ykt_crypto::random::bytes::<PASSWORD_LENGTH>()?);
    Ok(Zeroizing::new(
        random
            .iter()
            .map(|byte| char::from(PASSWORD_ALPHABET[usize::from(byte % 32)]))
            .collect(),
    ))
}

/// The PKCS#12 bundle of `identity` under `password`, DER.
pub fn encode(identity: &Identity<'_>, password: &str) -> Result<Zeroizing<Vec<u8>>> {
    check_password(password)?;
    let local_key_id = sha256(identity.certificate);
    let attributes = |writer: DERWriter<'_>| {
        writer.write_set_of(|set| {
            attribute(set.next(), FRIENDLY_NAME, |value| {
                value.write_bmp_string(identity.friendly_name);
            });
            attribute(set.next(), LOCAL_KEY_ID, |value| {
                value.write_bytes(&local_key_id);
            });
        });
    };
    let certificates = yasna::construct_der(|writer| {
        writer.write_sequence_of(|bags| {
            certificate_bag(bags.next(), identity.certificate, Some(&attributes));
            certificate_bag(bags.next(), identity.ca_certificate, None);
        });
    });
    let (certificates_scheme, encrypted_certificates) = encrypt(&certificates, password)?;
    let (key_scheme, encrypted_key) = encrypt(identity.key, password)?;
    let keys = yasna::construct_der(|writer| {
        writer.write_sequence_of(|bags| {
            bags.next().write_sequence(|bag| {
                bag.next().write_oid(&oid(SHROUDED_KEY_BAG));
                bag.next().write_tagged(Tag::context(0), |value| {
                    value.write_sequence(|info| {
                        info.next().write_der(&key_scheme);
                        info.next().write_bytes(&encrypted_key);
                    });
                });
                attributes(bag.next());
            });
        });
    });
    let authenticated_safe = yasna::construct_der(|writer| {
        writer.write_sequence_of(|safes| {
            safes.next().write_sequence(|content_info| {
                content_info.next().write_oid(&oid(ENCRYPTED_DATA));
                content_info
                    .next()
                    .write_tagged(Tag::context(0), |content| {
                        content.write_sequence(|encrypted_data| {
                            encrypted_data.next().write_u8(0);
                            encrypted_data.next().write_sequence(|info| {
                                info.next().write_oid(&oid(DATA));
                                info.next().write_der(&certificates_scheme);
                                info.next()
                                    .write_tagged_implicit(Tag::context(0), |content| {
                                        content.write_bytes(&encrypted_certificates);
                                    });
                            });
                        });
                    });
            });
            data(safes.next(), &keys);
        });
    });
    let mac_salt = ykt_crypto::random::bytes::<SALT_LEN>()?;
    let mac_key = mac_key(password, &mac_salt);
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, mac_key.as_slice()),
        &authenticated_safe,
    );
    Ok(Zeroizing::new(yasna::construct_der(|writer| {
        writer.write_sequence(|pfx| {
            pfx.next().write_u8(3);
            data(pfx.next(), &authenticated_safe);
            pfx.next().write_sequence(|mac_data| {
                mac_data.next().write_sequence(|digest_info| {
                    digest_info.next().write_sequence(|algorithm| {
                        algorithm.next().write_oid(&oid(SHA256));
                        algorithm.next().write_null();
                    });
                    digest_info.next().write_bytes(mac.as_ref());
                });
                mac_data.next().write_bytes(&mac_salt);
                mac_data.next().write_u32(ITERATIONS.get());
            });
        });
    })))
}

fn oid(components: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(components)
}

/// An `Attribute` of a bag: its type and its one value.
fn attribute(writer: DERWriter<'_>, kind: &[u64], value: impl FnOnce(DERWriter<'_>)) {
    writer.write_sequence(|attribute| {
        attribute.next().write_oid(&oid(kind));
        attribute.next().write_set_of(|values| value(values.next()));
    });
}

/// A `CertBag` holding an X.509 certificate, with the bag's attributes if any.
fn certificate_bag(
    writer: DERWriter<'_>,
    certificate: &[u8],
    attributes: Option<&dyn Fn(DERWriter<'_>)>,
) {
    writer.write_sequence(|bag| {
        bag.next().write_oid(&oid(CERT_BAG));
        bag.next().write_tagged(Tag::context(0), |value| {
            value.write_sequence(|cert_bag| {
                cert_bag.next().write_oid(&oid(X509_CERTIFICATE));
                cert_bag
                    .next()
                    .write_tagged(Tag::context(0), |value| value.write_bytes(certificate));
            });
        });
        if let Some(attributes) = attributes {
            attributes(bag.next());
        }
    });
}

/// A `ContentInfo` of type `data` holding `content`.
fn data(writer: DERWriter<'_>, content: &[u8]) {
    writer.write_sequence(|content_info| {
        content_info.next().write_oid(&oid(DATA));
        content_info
            .next()
            .write_tagged(Tag::context(0), |value| value.write_bytes(content));
    });
}

/// `plaintext` encrypted under `password` with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC):
/// the scheme's `AlgorithmIdentifier` (DER) and the ciphertext.
fn encrypt(plaintext: &[u8], password: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let salt = ykt_crypto::random::bytes::<SALT_LEN>()?;
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        ITERATIONS,
        &salt,
        password.as_bytes(),
        key.as_mut_slice(),
    );
    let cipher = PaddedBlockEncryptingKey::cbc_pkcs7(
        UnboundCipherKey::new(&AES_256, key.as_slice()).expect("an AES-256 key is 32 bytes"),
    )
    .expect("AES-256 runs in CBC mode");
    // Room for the padding, so the clear text is never left behind by a reallocation.
    let mut buffer = Zeroizing::new(Vec::with_capacity(plaintext.len() + 16));
    buffer.extend_from_slice(plaintext);
    // With a valid key, encryption fails only when its random source fails to give the IV.
    let context = cipher
        .encrypt(&mut *buffer)
        .map_err(|_| CryptoError::Random)?;
    let iv: &[u8] = (&context).try_into().expect("CBC has a 16-byte IV");
    let scheme = yasna::construct_der(|writer| {
        writer.write_sequence(|algorithm| {
            algorithm.next().write_oid(&oid(PBES2));
            algorithm.next().write_sequence(|parameters| {
                parameters.next().write_sequence(|kdf| {
                    kdf.next().write_oid(&oid(PBKDF2));
                    kdf.next().write_sequence(|pbkdf2| {
                        pbkdf2.next().write_bytes(&salt);
                        pbkdf2.next().write_u32(ITERATIONS.get());
                        pbkdf2.next().write_sequence(|prf| {
                            prf.next().write_oid(&oid(HMAC_WITH_SHA256));
                            prf.next().write_null();
                        });
                    });
                });
                parameters.next().write_sequence(|cipher| {
                    cipher.next().write_oid(&oid(AES_256_CBC));
                    cipher.next().write_bytes(iv);
                });
            });
        });
    });
    Ok((scheme, buffer.to_vec()))
}

/// The MAC key: the PKCS#12 key derivation (RFC 7292 B.2) with SHA-256 for purpose
/// [`MAC_KEY_ID`], one digest long, from the password as a NUL-terminated BMPString.
fn mac_key(password: &str, salt: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut bmp = Zeroizing::new(Vec::with_capacity(2 * (password.len() + 1)));
    for unit in password.encode_utf16().chain([0]) {
        bmp.extend_from_slice(&unit.to_be_bytes());
    }
    let repeated_len = |len: usize| len.div_ceil(SHA256_BLOCK_LEN) * SHA256_BLOCK_LEN;
    let mut input = Zeroizing::new(Vec::with_capacity(
        SHA256_BLOCK_LEN + repeated_len(salt.len()) + repeated_len(bmp.len()),
    ));
    input.extend_from_slice(&[MAC_KEY_ID; SHA256_BLOCK_LEN]);
    for part in [salt, bmp.as_slice()] {
        input.extend(part.iter().cycle().take(repeated_len(part.len())));
    }
    let mut key = Zeroizing::new(sha256(&input));
    for _ in 1..ITERATIONS.get() {
        *key = sha256(key.as_slice());
    }
    key
}
