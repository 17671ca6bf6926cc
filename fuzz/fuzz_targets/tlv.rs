//! BER-TLV parsing: never panics, and nested search terminates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ykt_apdu::tlv::{find, parse_all};

fuzz_target!(|data: &[u8]| {
    if let Ok(objects) = parse_all(data) {
        let _ = find(&objects, 0x9F0C);
        for object in &objects {
            let _ = object.children();
        }
    }
});
