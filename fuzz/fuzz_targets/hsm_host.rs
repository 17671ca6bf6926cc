//! The HSM host protocol's request decoder and the key-block parser: never panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ykt_hsm_sim::host::decode_request;
use ykt_hsm_sim::keyblock::KeyBlock;

fuzz_target!(|data: &[u8]| {
    let _ = decode_request(data);
    let _ = KeyBlock::parse(&String::from_utf8_lossy(data));
});
