//! Share text parsing: never panics; an accepted share prints back to text that parses to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ykt_hsm_sim::shamir::Share;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(share) = Share::parse(&text) {
        let again = Share::parse(&share.to_text()).expect("printed share parses");
        assert_eq!(
            (again.index(), again.threshold(), again.value()),
            (share.index(), share.threshold(), share.value())
        );
    }
});
