//! Command and response APDU parsing: never panics; whatever parses re-encodes to the same
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ykt_apdu::{Command, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(command) = Command::parse(data) {
        assert_eq!(command.to_bytes().unwrap(), data);
    }
    if let Ok(response) = Response::parse(data) {
        assert_eq!(response.to_bytes(), data);
    }
});
