//! Secure-messaging cryptogram parsing: never panics, and anything it accepts re-encrypts to
//! the same cryptogram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ykt_crypto::secure_messaging::{decrypt_data, encrypt_data};
use ykt_crypto::{SymmetricAlgorithm, SymmetricKey};

fuzz_target!(|data: &[u8]| {
    for algorithm in [SymmetricAlgorithm::TripleDes, SymmetricAlgorithm::Sm4] {
        let key = SymmetricKey::new(algorithm, &[0x5A; 16]).unwrap();
        if let Ok(plain) = decrypt_data(&key, data) {
            assert_eq!(encrypt_data(&key, &plain).unwrap(), data);
        }
    }
});
