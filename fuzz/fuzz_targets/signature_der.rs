//! Strict DER signature parsing: never panics, and whatever parses re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ykt_crypto::Signature;

fuzz_target!(|data: &[u8]| {
    if let Ok(sig) = Signature::from_der(data) {
        assert_eq!(sig.to_der(), data, "accepted a non-canonical encoding");
    }
    if let Ok(sig) = Signature::from_raw(data) {
        assert_eq!(sig.to_raw().as_slice(), data);
    }
});
