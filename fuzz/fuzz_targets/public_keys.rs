//! SEC1 public-key parsing for SM2 and P-256, and SM2 ciphertext parsing: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use ykt_crypto::p256::P256PublicKey;
use ykt_crypto::sm2::{Sm2PrivateKey, Sm2PublicKey};

static KEY: LazyLock<Sm2PrivateKey> = LazyLock::new(|| Sm2PrivateKey::from_bytes(&[7; 32]).unwrap());

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = Sm2PublicKey::from_sec1(data) {
        let again = Sm2PublicKey::from_sec1(&key.to_uncompressed()).unwrap();
        assert_eq!(again, key);
    }
    let _ = P256PublicKey::from_sec1(data);
    let _ = KEY.decrypt(data);
    let _ = KEY.decrypt_der(data);
});
