//! The PKCS#11 provider against a real token (SoftHSM2: `eval "$(scripts/softhsm)"`), every
//! result cross-checked with `ykt-crypto` computing on the known keys, and P-256 signatures
//! also with the OpenSSL command line.
//!
//! Without `YKT_PKCS11_MODULE` the tests say why and pass, unless `YKT_PKCS11_TESTS=1` asks
//! for them, which makes a missing module a failure.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use ykt_crypto::p256::P256PublicKey;
use ykt_crypto::{Kcv, KcvMethod, Load, Profile, Signature, SymmetricKey};
use ykt_hsm_sim::{
    Exportability, HsmError, KeyAlgorithm, KeyAttributes, KeyComponent, KeyUsage, Modes,
};
use ykt_kms::KmsError;
use ykt_kms::provider::pkcs11::{Pkcs11Config, Pkcs11Hsm};
use ykt_kms::provider::{Hsm, KeyCheck, ProviderKind, SignInput, WrappedKey, WriteKey};
use zeroize::Zeroizing;

struct Token {
    module: PathBuf,
    label: String,
    pin: String,
}

/// The token from the environment, or `None` (with the reason printed) when it is not set.
fn token() -> Option<Token> {
    let Some(module) = std::env::var_os("YKT_PKCS11_MODULE") else {
        assert_ne!(
            std::env::var("YKT_PKCS11_TESTS").as_deref(),
            Ok("1"),
            "YKT_PKCS11_TESTS=1 but YKT_PKCS11_MODULE is not set: run `eval \"$(scripts/softhsm)\"`"
        );
        eprintln!(
            "skipped: YKT_PKCS11_MODULE is not set (`eval \"$(scripts/softhsm)\"` sets up SoftHSM2)"
        );
        return None;
    };
    let label = std::env::var("YKT_PKCS11_TOKEN").unwrap_or_else(|_| "ykt-test".into());
    let pin_file = std::env::var_os("YKT_PKCS11_PIN_FILE").expect("YKT_PKCS11_PIN_FILE");
    let pin = std::fs::read_to_string(&pin_file)
        .unwrap_or_else(|e| panic!("{}: {e}", Path::new(&pin_file).display()))
        .trim()
        .to_owned();
    Some(Token {
        module: module.into(),
        label,
        pin,
    })
}

fn open(token: &Token) -> Pkcs11Hsm {
    Pkcs11Hsm::open(Pkcs11Config {
        module: token.module.clone(),
        token_label: token.label.clone(),
        pin: Zeroizing::new(token.pin.clone()),
    })
    .expect("open the token")
}

/// Tests that open sessions of their own run alone: SoftHSM's file store does not keep a
/// token object being created apart from another thread's reads, and such sessions are
/// outside the provider's own lock. The others run in parallel.
static RAW_SESSIONS: RwLock<()> = RwLock::new(());

/// A provider for one test, held while the test runs beside others.
struct Fixture {
    hsm: Pkcs11Hsm,
    _turn: RwLockReadGuard<'static, ()>,
}

impl std::ops::Deref for Fixture {
    type Target = Pkcs11Hsm;

    fn deref(&self) -> &Pkcs11Hsm {
        &self.hsm
    }
}

fn hsm() -> Option<Fixture> {
    let token = token()?;
    let turn = RAW_SESSIONS.read().unwrap_or_else(|p| p.into_inner());
    Some(Fixture {
        hsm: open(&token),
        _turn: turn,
    })
}

/// The token and a provider for a test that also opens sessions of its own.
fn alone() -> Option<(Token, Pkcs11Hsm, RwLockWriteGuard<'static, ()>)> {
    let token = token()?;
    let turn = RAW_SESSIONS.write().unwrap_or_else(|p| p.into_inner());
    let hsm = open(&token);
    Some((token, hsm, turn))
}

fn attributes(usage: KeyUsage, algorithm: KeyAlgorithm, modes: Modes) -> KeyAttributes {
    let exportability = if usage == KeyUsage::Signature {
        Exportability::None
    } else {
        Exportability::DerivedOnly
    };
    KeyAttributes::new(usage, algorithm, modes, exportability, 1).unwrap()
}

fn xor(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0u8; parts[0].len()];
    for part in parts {
        out.iter_mut().zip(*part).for_each(|(o, b)| *o ^= b);
    }
    out
}

/// Forms a key of `attributes` from three known components; returns it and its clear value
/// (the test's independent copy).
fn form(
    hsm: &Pkcs11Hsm,
    attributes: KeyAttributes,
    seed: u8,
) -> (WrappedKey, SymmetricKey, Vec<Kcv>) {
    let algorithm = attributes.algorithm().symmetric().unwrap();
    let n = algorithm.key_len();
    let parts: Vec<Vec<u8>> = (0..3u8)
        .map(|i| {
            (0..n as u8)
                .map(|j| seed.wrapping_mul(31) ^ j.wrapping_mul(17) ^ i.wrapping_mul(0x5B))
                .collect()
        })
        .collect();
    let components: Vec<KeyComponent> = parts
        .iter()
        .map(|p| {
            let kcv = Kcv::of(&SymmetricKey::new(algorithm, p).unwrap());
            KeyComponent::new(p).with_expected_kcv(kcv.value())
        })
        .collect();
    let clear = SymmetricKey::new(
        algorithm,
        &xor(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>()),
    )
    .unwrap();
    let (key, kcvs) = hsm.form_key(attributes, &components).expect("form the key");
    assert_eq!(kcvs.combined, Kcv::of(&clear));
    (key, clear, kcvs.components)
}

fn is_unsupported(result: Result<impl std::fmt::Debug, KmsError>, what: &str) {
    match result {
        Err(KmsError::Unsupported {
            provider: "PKCS#11",
            operation,
        }) => assert!(
            operation.contains(what),
            "unsupported `{operation}`, expected `{what}`"
        ),
        other => panic!("expected {what} to be unsupported, got {other:?}"),
    }
}

fn is_forbidden(result: Result<impl std::fmt::Debug, KmsError>, why: &str) {
    match result {
        Err(KmsError::Hsm(HsmError::Forbidden { reason, .. })) => {
            assert!(
                reason.contains(why),
                "refused for `{reason}`, expected `{why}`"
            )
        }
        other => panic!("expected a refusal ({why}), got {other:?}"),
    }
}

/// Runs `f` on the objects labelled `ykt:<hex id>` for a reference, through a session of the
/// test's own.
fn with_objects<T>(
    token: &Token,
    key: &WrappedKey,
    f: impl FnOnce(&Session, Vec<ObjectHandle>) -> T,
) -> T {
    let label = format!("ykt:{}", hex::encode(&key.as_bytes()[1..17]));
    let context = Pkcs11::new(&token.module).unwrap();
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = context
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|slot| context.get_token_info(*slot).unwrap().label() == token.label)
        .expect("the token's slot");
    let session = context.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(token.pin.as_str()))) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("C_Login: {e}"),
    }
    let objects = session
        .find_objects(&[Attribute::Label(label.into_bytes())])
        .unwrap();
    f(&session, objects)
}

fn objects_labelled_like(token: &Token, key: &WrappedKey) -> usize {
    with_objects(token, key, |_, objects| objects.len())
}

/// The boolean attributes of a key's one secret or private object, and whether the token
/// let this session turn its CKA_ENCRYPT and CKA_DERIVE on.
fn object_flags(token: &Token, key: &WrappedKey) -> (Vec<Attribute>, bool) {
    with_objects(token, key, |session, objects| {
        let wanted = [
            AttributeType::Class,
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::Modifiable,
            AttributeType::Copyable,
            AttributeType::Token,
            AttributeType::Encrypt,
            AttributeType::Decrypt,
            AttributeType::Derive,
            AttributeType::Sign,
            AttributeType::Wrap,
            AttributeType::Unwrap,
        ];
        let key_object = objects
            .into_iter()
            .find(|o| {
                let class = session.get_attributes(*o, &[AttributeType::Class]).unwrap();
                !matches!(class[..], [Attribute::Class(ObjectClass::PUBLIC_KEY)])
            })
            .expect("the key object");
        let flags = session.get_attributes(key_object, &wanted).unwrap();
        let widened = session
            .update_attributes(
                key_object,
                &[Attribute::Encrypt(true), Attribute::Derive(true)],
            )
            .is_ok();
        (flags, widened)
    })
}

fn flag(flags: &[Attribute], wanted: AttributeType) -> bool {
    flags
        .iter()
        .find(|a| a.attribute_type() == wanted)
        .map(|a| match a {
            Attribute::Sensitive(b)
            | Attribute::Extractable(b)
            | Attribute::Modifiable(b)
            | Attribute::Copyable(b)
            | Attribute::Token(b)
            | Attribute::Encrypt(b)
            | Attribute::Decrypt(b)
            | Attribute::Derive(b)
            | Attribute::Sign(b)
            | Attribute::Wrap(b)
            | Attribute::Unwrap(b) => *b,
            other => panic!("{other:?}"),
        })
        .unwrap_or_else(|| panic!("{wanted:?} missing"))
}

#[test]
fn token_objects_are_locked_down_and_carry_the_modes_of_use() {
    let Some((token, hsm, _alone)) = alone() else {
        return;
    };
    let derive = attributes(KeyUsage::Purchase, KeyAlgorithm::TripleDes, Modes::DERIVE);
    let encrypt = attributes(
        KeyUsage::ExternalAuth,
        KeyAlgorithm::TripleDes,
        Modes::ENCRYPT,
    );
    let kek = attributes(
        KeyUsage::KeyEncryption,
        KeyAlgorithm::Aes128,
        Modes::ENCRYPT,
    );
    let sign = attributes(KeyUsage::Signature, KeyAlgorithm::P256, Modes::SIGN);
    let mut keys = vec![
        (
            hsm.generate_key(derive).unwrap().key,
            [false, true, false, false],
        ),
        (form(&hsm, derive, 7).0, [false, true, false, false]),
        (
            hsm.generate_key(encrypt).unwrap().key,
            [true, false, false, false],
        ),
        (
            hsm.generate_key(kek).unwrap().key,
            [true, false, true, true],
        ),
        (
            hsm.generate_key(sign).unwrap().key,
            [false, false, true, false],
        ),
    ];
    if hsm.derives_pboc_keys() {
        let (derived, _) = hsm.derive_key(&keys[0].0, &[[3; 8]], derive).unwrap();
        keys.push((derived, [false, true, false, false]));
    }
    for (key, [encrypt, derive, sign, wrap]) in &keys {
        let (flags, widened) = object_flags(&token, key);
        let shown = format!("{:?}: {flags:?}", key.attributes());
        for (wanted, value) in [
            (AttributeType::Token, true),
            (AttributeType::Sensitive, true),
            (AttributeType::Extractable, false),
            (AttributeType::Modifiable, false),
            (AttributeType::Copyable, false),
            (AttributeType::Decrypt, false),
            (AttributeType::Unwrap, false),
            (AttributeType::Encrypt, *encrypt),
            (AttributeType::Derive, *derive),
            (AttributeType::Sign, *sign),
            (AttributeType::Wrap, *wrap),
        ] {
            if key.attributes().algorithm() == KeyAlgorithm::P256
                && matches!(
                    wanted,
                    AttributeType::Encrypt | AttributeType::Wrap | AttributeType::Copyable
                )
            {
                continue;
            }
            assert_eq!(flag(&flags, wanted), value, "{wanted:?} of {shown}");
        }
        assert!(!widened, "the token let a session widen {shown}");
    }
    for (key, _) in keys {
        hsm.destroy_key(&key).unwrap();
    }
}

#[test]
fn formed_3des_master_has_the_check_value_of_its_components_xor() {
    let Some(hsm) = hsm() else { return };
    let master = attributes(KeyUsage::Purchase, KeyAlgorithm::TripleDes, Modes::DERIVE);
    let (key, clear, component_kcvs) = form(&hsm, master, 1);
    assert_eq!(component_kcvs.len(), 3);
    let kcv = hsm.kcv(&key, KcvMethod::EncryptZeros).unwrap();
    assert_eq!(kcv, Kcv::of(&clear));
    assert_eq!(kcv.value().len(), 3);
    assert_eq!(key.as_bytes().len(), 49);

    let wrong = KeyComponent::new(&[0x11; 16]).with_expected_kcv(&[0, 0, 0]);
    let right = KeyComponent::new(&[0x22; 16]);
    assert!(matches!(
        hsm.form_key(master, &[right.clone(), wrong]),
        Err(KmsError::Hsm(HsmError::ComponentKcvMismatch { index: 2 }))
    ));
    assert!(matches!(
        hsm.form_key(master, std::slice::from_ref(&right)),
        Err(KmsError::Hsm(HsmError::ComponentCount { actual: 1 }))
    ));
    hsm.destroy_key(&key).unwrap();
}

#[test]
fn generated_3des_key_reports_its_token_check_value() {
    let Some(hsm) = hsm() else { return };
    assert_eq!(hsm.kind(), ProviderKind::Pkcs11);
    let generated = hsm
        .generate_key(attributes(
            KeyUsage::Load,
            KeyAlgorithm::TripleDes,
            Modes::DERIVE | Modes::MAC,
        ))
        .unwrap();
    let KeyCheck::Kcv(kcv) = &generated.check else {
        panic!("a 3DES key has a check value")
    };
    assert_eq!(kcv.method(), KcvMethod::EncryptZeros);
    assert_eq!(
        &hsm.kcv(&generated.key, KcvMethod::EncryptZeros).unwrap(),
        kcv
    );
    is_unsupported(
        hsm.kcv(&generated.key, KcvMethod::Cmac),
        "CMAC check value of a 3DES key",
    );
    hsm.destroy_key(&generated.key).unwrap();
}

#[test]
fn pboc_derivation_in_the_token_matches_ykt_crypto_for_one_to_three_levels() {
    let Some(hsm) = hsm() else { return };
    let master = attributes(KeyUsage::Purchase, KeyAlgorithm::TripleDes, Modes::DERIVE);
    let (key, clear, _) = form(&hsm, master, 2);
    let factors = [
        [0x44, 0x03, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF],
        [0x44, 0x03, 0x05, 0x12, 0x34, 0x56, 0xFF, 0xFF],
        [0x00, 0x00, 0x31, 0x00, 0x00, 0x12, 0x34, 0x56],
    ];
    for levels in 1..=3 {
        let path = &factors[..levels];
        let child = attributes(KeyUsage::Purchase, KeyAlgorithm::TripleDes, Modes::DERIVE);
        let derived = hsm.derive_key(&key, path, child);
        if !hsm.derives_pboc_keys() {
            eprintln!("this PKCS#11 binding cannot name CKM_DES3_ECB_ENCRYPT_DATA");
            is_unsupported(derived, "PBOC derivation");
            continue;
        }
        let (derived, kcv) = derived.unwrap();
        let expected = Profile::PbocDes.diversify_path(&clear, path).unwrap();
        assert_eq!(kcv, Kcv::of(&expected), "{levels} levels");
        assert_eq!(
            hsm.kcv(&derived, KcvMethod::EncryptZeros).unwrap(),
            Kcv::of(&expected)
        );
        hsm.destroy_key(&derived).unwrap();
    }
    hsm.destroy_key(&key).unwrap();
}

#[test]
fn aes_check_values_are_the_ykt_crypto_ones() {
    let Some(hsm) = hsm() else { return };
    for (algorithm, seed) in [(KeyAlgorithm::Aes128, 3), (KeyAlgorithm::Aes256, 4)] {
        let kek = attributes(KeyUsage::KeyEncryption, algorithm, Modes::ENCRYPT);
        let (key, clear, _) = form(&hsm, kek, seed);
        let cmac = hsm.kcv(&key, KcvMethod::Cmac).unwrap();
        assert_eq!(cmac, Kcv::compute(&clear, KcvMethod::Cmac));
        assert_eq!(cmac.value().len(), 5);
        assert_eq!(
            hsm.kcv(&key, KcvMethod::EncryptZeros).unwrap(),
            Kcv::compute(&clear, KcvMethod::EncryptZeros)
        );
        hsm.destroy_key(&key).unwrap();

        let generated = hsm.generate_key(kek).unwrap();
        let KeyCheck::Kcv(kcv) = &generated.check else {
            panic!("an AES key has a check value")
        };
        assert_eq!(kcv.method(), KcvMethod::Cmac);
        assert_eq!(&hsm.kcv(&generated.key, KcvMethod::Cmac).unwrap(), kcv);
        hsm.destroy_key(&generated.key).unwrap();
    }
}

/// DER SubjectPublicKeyInfo of a P-256 point, as PEM.
fn p256_public_pem(point: &[u8; 65]) -> String {
    const PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08,
        0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let der = [&PREFIX[..], point].concat();
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            text.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// `openssl dgst -sha256 -verify` of a DER signature over `message`.
fn openssl_verifies(dir: &Path, pem: &str, signature: &Signature, message: &[u8]) -> bool {
    let public = dir.join("pub.pem");
    let sig = dir.join("sig.der");
    std::fs::write(&public, pem).unwrap();
    std::fs::write(&sig, signature.to_der()).unwrap();
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(&sig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl on PATH");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let output = child.wait_with_output().unwrap();
    output.status.success() && String::from_utf8_lossy(&output.stdout).contains("Verified OK")
}

/// `openssl pkeyutl -verify` of a DER signature over a SHA-256 `digest`, which OpenSSL takes as
/// it is (no hashing).
fn openssl_verifies_digest(
    dir: &Path,
    pem: &str,
    signature: &Signature,
    digest: &[u8; 32],
) -> bool {
    let public = dir.join("pub.pem");
    let sig = dir.join("sig.der");
    let input = dir.join("digest.bin");
    std::fs::write(&public, pem).unwrap();
    std::fs::write(&sig, signature.to_der()).unwrap();
    std::fs::write(&input, digest).unwrap();
    let output = Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(&public)
        .arg("-in")
        .arg(&input)
        .arg("-sigfile")
        .arg(&sig)
        .output()
        .expect("openssl on PATH");
    output.status.success()
        && String::from_utf8_lossy(&output.stdout).contains("Signature Verified Successfully")
}

#[test]
fn p256_signatures_verify_with_ykt_crypto_and_openssl() {
    let Some(hsm) = hsm() else { return };
    let signing = attributes(KeyUsage::Signature, KeyAlgorithm::P256, Modes::SIGN);
    let generated = hsm.generate_key(signing).unwrap();
    let KeyCheck::PublicKey(point) = generated.check else {
        panic!("a P-256 key has a public key")
    };
    assert_eq!(hsm.public_key(&generated.key).unwrap(), point);
    let public = P256PublicKey::from_sec1(&point).unwrap();
    let dir = std::env::temp_dir().join(format!("ykt-p11-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = p256_public_pem(&point);
    for message in [&b""[..], b"ykt checkpoint 42", &[0xA5; 1000]] {
        let signature = hsm
            .sign(&generated.key, SignInput::P256 { message })
            .unwrap();
        assert!(public.verify(message, &signature).is_ok());
        assert!(openssl_verifies(&dir, &pem, &signature, message));
        let tampered = [message, b"!"].concat();
        assert!(public.verify(&tampered, &signature).is_err());
        assert!(!openssl_verifies(&dir, &pem, &signature, &tampered));

        // Over a digest computed here: verifies as the message, and as the digest with
        // OpenSSL taking the digest as it is.
        let digest = ykt_crypto::p256::sha256(message);
        let signature = hsm
            .sign(&generated.key, SignInput::P256Digest { digest: &digest })
            .unwrap();
        assert!(public.verify(message, &signature).is_ok());
        assert!(openssl_verifies(&dir, &pem, &signature, message));
        assert!(openssl_verifies_digest(&dir, &pem, &signature, &digest));
        let other = ykt_crypto::p256::sha256(&tampered);
        assert!(public.verify(&tampered, &signature).is_err());
        assert!(!openssl_verifies_digest(&dir, &pem, &signature, &other));
    }
    std::fs::remove_dir_all(&dir).ok();
    is_unsupported(
        hsm.sign(&generated.key, SignInput::Sm2Digest { e: &[0x5A; 32] }),
        "SM2 signatures",
    );
    is_unsupported(
        hsm.sign(
            &generated.key,
            SignInput::Sm2 {
                id: b"1234567812345678",
                message: b"m",
            },
        ),
        "SM2 signatures",
    );
    hsm.destroy_key(&generated.key).unwrap();
}

#[test]
fn relabelled_or_damaged_references_are_refused() {
    let Some(hsm) = hsm() else { return };
    let granted = attributes(KeyUsage::Purchase, KeyAlgorithm::TripleDes, Modes::DERIVE);
    let generated = hsm.generate_key(granted).unwrap();
    let bytes = generated.key.as_bytes().to_vec();
    for relabelled in [
        attributes(KeyUsage::Purchase, KeyAlgorithm::TripleDes, Modes::ENCRYPT),
        attributes(
            KeyUsage::ExternalAuth,
            KeyAlgorithm::TripleDes,
            Modes::DERIVE,
        ),
        KeyAttributes::new(
            KeyUsage::Purchase,
            KeyAlgorithm::TripleDes,
            Modes::DERIVE,
            Exportability::UnderKek,
            1,
        )
        .unwrap(),
        KeyAttributes::new(
            KeyUsage::Purchase,
            KeyAlgorithm::TripleDes,
            Modes::DERIVE,
            Exportability::DerivedOnly,
            2,
        )
        .unwrap(),
    ] {
        let forged = WrappedKey::new(relabelled, bytes.clone());
        assert!(matches!(
            hsm.kcv(&forged, KcvMethod::EncryptZeros),
            Err(KmsError::MalformedKey(_))
        ));
    }
    let mut flipped = bytes.clone();
    flipped[48] ^= 1;
    let mut other_object = bytes.clone();
    other_object[5] ^= 1;
    for damaged in [flipped, other_object, bytes[..48].to_vec(), vec![0x02; 49]] {
        assert!(matches!(
            hsm.kcv(&WrappedKey::new(granted, damaged), KcvMethod::EncryptZeros),
            Err(KmsError::MalformedKey(_))
        ));
    }
    assert!(hsm.kcv(&generated.key, KcvMethod::EncryptZeros).is_ok());
    hsm.destroy_key(&generated.key).unwrap();
}

#[test]
fn destroyed_keys_are_gone_from_the_token_and_refused() {
    let Some((token, hsm, _alone)) = alone() else {
        return;
    };
    let secret = hsm
        .generate_key(attributes(
            KeyUsage::Tac,
            KeyAlgorithm::TripleDes,
            Modes::DERIVE,
        ))
        .unwrap()
        .key;
    let pair = hsm
        .generate_key(attributes(
            KeyUsage::Signature,
            KeyAlgorithm::P256,
            Modes::SIGN,
        ))
        .unwrap()
        .key;
    assert_eq!(objects_labelled_like(&token, &secret), 1);
    assert_eq!(objects_labelled_like(&token, &pair), 2);
    hsm.destroy_key(&secret).unwrap();
    hsm.destroy_key(&pair).unwrap();
    assert_eq!(objects_labelled_like(&token, &secret), 0);
    assert_eq!(objects_labelled_like(&token, &pair), 0);
    for result in [
        hsm.kcv(&secret, KcvMethod::EncryptZeros).map(|_| ()),
        hsm.destroy_key(&secret),
        hsm.public_key(&pair).map(|_| ()),
        hsm.sign(&pair, SignInput::P256 { message: b"m" })
            .map(|_| ()),
        hsm.sign(
            &pair,
            SignInput::P256Digest {
                digest: &[0x5A; 32],
            },
        )
        .map(|_| ()),
    ] {
        assert!(
            matches!(
                result,
                Err(KmsError::NotFound {
                    kind: "token key object",
                    ..
                })
            ),
            "{result:?}"
        );
    }
}

#[test]
fn sm2_and_sm4_are_unsupported() {
    let Some(hsm) = hsm() else { return };
    is_unsupported(
        hsm.generate_key(attributes(
            KeyUsage::Purchase,
            KeyAlgorithm::Sm4,
            Modes::DERIVE,
        )),
        "SM4 keys",
    );
    is_unsupported(
        hsm.generate_key(attributes(
            KeyUsage::Signature,
            KeyAlgorithm::Sm2,
            Modes::SIGN,
        )),
        "SM2 keys",
    );
    let sm4 = attributes(KeyUsage::Purchase, KeyAlgorithm::Sm4, Modes::DERIVE);
    is_unsupported(
        hsm.form_key(
            sm4,
            &[KeyComponent::new(&[1; 16]), KeyComponent::new(&[2; 16])],
        ),
        "SM4 keys",
    );
}

#[test]
fn derivation_is_refused_by_the_master_attributes() {
    let Some(hsm) = hsm() else { return };
    let no_derive = attributes(
        KeyUsage::ExternalAuth,
        KeyAlgorithm::TripleDes,
        Modes::MAC | Modes::ENCRYPT,
    );
    let key = hsm.generate_key(no_derive).unwrap().key;
    is_forbidden(hsm.derive_key(&key, &[[1; 8]], no_derive), "exclude derive");
    let master = attributes(KeyUsage::Purchase, KeyAlgorithm::TripleDes, Modes::DERIVE);
    let master_key = hsm.generate_key(master).unwrap().key;
    let other_usage = attributes(KeyUsage::Load, KeyAlgorithm::TripleDes, Modes::DERIVE);
    is_forbidden(
        hsm.derive_key(&master_key, &[[1; 8]], other_usage),
        "keeps its master's usage",
    );
    // A master that never lets anything out derives nothing exportable.
    let sealed = |exportability| {
        KeyAttributes::new(
            KeyUsage::Purchase,
            KeyAlgorithm::TripleDes,
            Modes::DERIVE,
            exportability,
            1,
        )
        .unwrap()
    };
    let sealed_master = hsm.generate_key(sealed(Exportability::None)).unwrap().key;
    is_forbidden(
        hsm.derive_key(
            &sealed_master,
            &[[1; 8]],
            sealed(Exportability::DerivedOnly),
        ),
        "more exportable",
    );
    hsm.destroy_key(&sealed_master).unwrap();
    assert!(matches!(
        hsm.derive_key(&master_key, &[[1; 8]; 4], master),
        Err(KmsError::Hsm(HsmError::FactorCount { actual: 4, .. }))
    ));
    assert!(matches!(
        hsm.derive_key(&master_key, &[], master),
        Err(KmsError::Hsm(HsmError::FactorCount { actual: 0, .. }))
    ));
    hsm.destroy_key(&key).unwrap();
    hsm.destroy_key(&master_key).unwrap();
}

#[test]
fn external_auth_cryptograms_equal_ykt_crypto() {
    let Some(hsm) = hsm() else { return };
    let card_key = attributes(
        KeyUsage::ExternalAuth,
        KeyAlgorithm::TripleDes,
        Modes::DERIVE | Modes::ENCRYPT,
    );
    let (key, clear, _) = form(&hsm, card_key, 5);
    for challenge in [&[0x12, 0x34, 0x56, 0x78][..], &[9, 8, 7, 6, 5, 4, 3, 2]] {
        assert_eq!(
            hsm.external_auth_cryptogram(&key, &[], challenge).unwrap(),
            ykt_crypto::secure_messaging::external_auth_cryptogram(&clear, challenge).unwrap()
        );
        let factors = [[0x11; 8], [0x22; 8]];
        let derived = hsm.external_auth_cryptogram(&key, &factors, challenge);
        if hsm.derives_pboc_keys() {
            let card = Profile::PbocDes.diversify_path(&clear, &factors).unwrap();
            assert_eq!(
                derived.unwrap(),
                ykt_crypto::secure_messaging::external_auth_cryptogram(&card, challenge).unwrap()
            );
        } else {
            is_unsupported(derived, "derived card key");
        }
    }
    assert!(matches!(
        hsm.external_auth_cryptogram(&key, &[], &[1, 2, 3]),
        Err(KmsError::Crypto(_))
    ));
    let purchase = attributes(KeyUsage::Purchase, KeyAlgorithm::TripleDes, Modes::ENCRYPT);
    let purchase_key = hsm.generate_key(purchase).unwrap().key;
    is_forbidden(
        hsm.external_auth_cryptogram(&purchase_key, &[], &[0; 8]),
        "usage does not allow",
    );
    let mac_only = attributes(KeyUsage::ExternalAuth, KeyAlgorithm::TripleDes, Modes::MAC);
    let mac_key = hsm.generate_key(mac_only).unwrap().key;
    is_forbidden(
        hsm.external_auth_cryptogram(&mac_key, &[], &[0; 8]),
        "exclude encrypt",
    );
    for key in [key, purchase_key, mac_key] {
        hsm.destroy_key(&key).unwrap();
    }
}

#[test]
fn load_mac2_equals_ykt_crypto_when_the_token_derives() {
    let Some(hsm) = hsm() else { return };
    let master = attributes(KeyUsage::Load, KeyAlgorithm::TripleDes, Modes::DERIVE);
    let (key, clear, _) = form(&hsm, master, 6);
    let factors = [[0x44, 0x03, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF], [0x31; 8]];
    let load = Load {
        card_random: [0xA1, 0xB2, 0xC3, 0xD4],
        online_seq: 7,
        old_balance: 1_000,
        amount: 5_000,
        transaction_type: 0x02,
        terminal_id: [0x11, 0x22, 0x33, 0x44, 0x55, 0x66],
        date: [0x20, 0x26, 0x12, 0x01],
        time: [0x18, 0x30, 0x00],
    };
    let dlk = Profile::PbocDes.diversify_path(&clear, &factors).unwrap();
    let session = load.session_key(Profile::PbocDes, &dlk).unwrap();
    let mac1 = load.mac1(&session).unwrap();
    let result = hsm.load_mac2(&key, &factors, &load, &mac1);
    if hsm.derives_pboc_keys() {
        assert_eq!(result.unwrap(), load.mac2(&session).unwrap());
        let mut bad = mac1;
        bad[0] ^= 1;
        assert!(matches!(
            hsm.load_mac2(&key, &factors, &load, &bad),
            Err(KmsError::Crypto(ykt_crypto::CryptoError::Mismatch("MAC1")))
        ));
    } else {
        is_unsupported(result, "load MAC2");
    }
    hsm.destroy_key(&key).unwrap();
}

#[test]
fn what_the_token_cannot_do_is_unsupported() {
    let Some(hsm) = hsm() else { return };
    let tac = attributes(KeyUsage::Tac, KeyAlgorithm::TripleDes, Modes::DERIVE);
    let key = hsm.generate_key(tac).unwrap().key;
    let load = Load {
        card_random: [0; 4],
        online_seq: 0,
        old_balance: 0,
        amount: 1,
        transaction_type: 2,
        terminal_id: [0; 6],
        date: [0; 4],
        time: [0; 3],
    };
    is_unsupported(
        hsm.verify_load_tac(&key, &[[1; 8]], &load, &[0; 4]),
        "TAC verification",
    );
    is_unsupported(hsm.verify_purchase_tacs(&key, &[]), "TAC verification");
    is_unsupported(
        hsm.write_key_command(&WriteKey {
            key: &key,
            key_factors: &[[1; 8]],
            under: &key,
            under_factors: &[],
            challenge: &[0; 4],
            p1: 1,
            p2: 1,
            record_header: &[0x34, 0xF0, 0x02, 0x00, 0x01],
        }),
        "WRITE KEY",
    );
    is_unsupported(hsm.export_key(&key, &key), "key block export");
    is_unsupported(hsm.import_key("D0000", &key), "key block import");
    is_unsupported(hsm.custody_split(&key, 2, 3), "custody split");
    is_unsupported(hsm.custody_recover("D0000", &[]), "custody recovery");
    hsm.destroy_key(&key).unwrap();
}

#[test]
fn random_bytes_come_from_the_token() {
    let Some(hsm) = hsm() else { return };
    let (mut a, mut b) = ([0u8; 48], [0u8; 3000]);
    hsm.random(&mut a).unwrap();
    hsm.random(&mut b).unwrap();
    assert_ne!(a, [0u8; 48]);
    assert_ne!(a[..], b[..48]);
    assert!(b[2000..].iter().any(|&x| x != 0));
}

#[test]
fn parallel_calls_share_one_provider() {
    let Some(token) = token() else { return };
    let Some(hsm) = hsm() else { return };
    let shown = format!("{:?}", *hsm);
    assert!(
        shown.contains(&token.label) && !shown.contains(&token.pin),
        "{shown}"
    );
    let signing = attributes(KeyUsage::Signature, KeyAlgorithm::P256, Modes::SIGN);
    let key = hsm.generate_key(signing).unwrap();
    let KeyCheck::PublicKey(point) = key.check else {
        unreachable!()
    };
    let public = P256PublicKey::from_sec1(&point).unwrap();
    let master = attributes(KeyUsage::Purchase, KeyAlgorithm::TripleDes, Modes::DERIVE);
    std::thread::scope(|scope| {
        for thread in 0..4u8 {
            let (hsm, key, public) = (&*hsm, &key.key, &public);
            scope.spawn(move || {
                for i in 0..12u8 {
                    if thread % 2 == 0 {
                        let message = [thread, i];
                        let signature = hsm
                            .sign(key, SignInput::P256 { message: &message })
                            .unwrap();
                        assert!(public.verify(&message, &signature).is_ok());
                    } else {
                        let generated = hsm.generate_key(master).unwrap();
                        let KeyCheck::Kcv(kcv) = generated.check else {
                            unreachable!()
                        };
                        assert_eq!(
                            hsm.kcv(&generated.key, KcvMethod::EncryptZeros).unwrap(),
                            kcv
                        );
                        hsm.destroy_key(&generated.key).unwrap();
                    }
                }
            });
        }
    });
    hsm.destroy_key(&key.key).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_kms_runs_on_the_token_with_a_p256_signing_key() {
    let Some(hsm) = hsm() else { return };
    let dir = std::env::temp_dir().join(format!(
        "ykt-kms-p11-{}",
        hex::encode(ykt_crypto::random::bytes::<6>().unwrap())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("kms.db").display());
    let store = ykt_kms::Store::open(&url).await.unwrap();
    let kms = ykt_kms::Kms::new(store, std::sync::Arc::new(hsm.hsm));
    let officers = [
        ("alice", "alice-passphrase-1"),
        ("bob", "bob-passphrase-22"),
    ];
    let info = kms
        .initialize(&ykt_kms::InitRequest {
            bureau_code: "330100".into(),
            bureau_name: "Hangzhou Education Bureau".into(),
            quorum: 2,
            officers: officers
                .iter()
                .map(|(n, p)| ykt_kms::NewOfficer {
                    credential: ykt_kms::Credential::new(n, p),
                    display_name: (*n).into(),
                })
                .collect(),
            lmk_kcv: None,
        })
        .await
        .unwrap();
    assert_eq!(info.hsm, "pkcs11");
    assert_eq!(kms.signing_key_id().await.unwrap(), "kms-signing-p256");
    let both: Vec<_> = officers
        .iter()
        .map(|(n, p)| ykt_kms::Credential::new(n, p))
        .collect();
    let purchase = ykt_kms::model::MASTER_TEMPLATES[0];
    let report = kms
        .generate_key(
            &both,
            purchase,
            KeyAlgorithm::TripleDes,
            ykt_kms::model::Scope::Bureau,
            None,
        )
        .await
        .unwrap();
    let (kcv, matches) = kms.kcv(&report.key_id, None, None).await.unwrap();
    assert_eq!(kcv.to_string(), report.check);
    assert_eq!(matches, Some(true));
    // Custody needs the simulator's key blocks.
    let custody = ykt_kms::ceremony::CustodySpec {
        threshold: 2,
        custodians: vec!["alice".into(), "bob".into()],
    };
    assert!(matches!(
        kms.generate_key(
            &both,
            ykt_kms::model::MASTER_TEMPLATES[1],
            KeyAlgorithm::TripleDes,
            ykt_kms::model::Scope::Bureau,
            Some(&custody),
        )
        .await,
        Err(KmsError::Unsupported { .. })
    ));
    // Every act is checkpointed with P-256 and verifies.
    let audit = kms.verify_audit().await.unwrap();
    assert!(audit.is_intact(), "{audit:?}");
    assert_eq!(audit.last_checkpoint, audit.records);
    // Destroyed: the token object is gone.
    let (_, wrapped) = kms
        .wrapped(&report.key_id, None, ykt_kms::model::Purpose::Verify)
        .await
        .unwrap();
    kms.transition(
        &both,
        &report.key_id,
        ykt_kms::model::KeyState::Deactivated,
        "end of test",
    )
    .await
    .unwrap();
    kms.destroy_key(&both, &report.key_id, "end of test")
        .await
        .unwrap();
    assert!(kms.hsm().kcv(&wrapped, KcvMethod::EncryptZeros).is_err());
    assert!(kms.verify_audit().await.unwrap().is_intact());
    // The KMS signing key leaves the token with the test.
    let signing = kms.signing_key_id().await.unwrap();
    let (_, signing) = kms
        .wrapped(&signing, None, ykt_kms::model::Purpose::Sign)
        .await
        .unwrap();
    kms.hsm().destroy_key(&signing).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
