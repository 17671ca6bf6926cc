//! The KMS's text inputs, the scripted ceremony file (officers, components, shares) and the
//! configuration file: typed errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ykt_kms::ceremony_file::CeremonyFile;
use ykt_kms::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(file) = CeremonyFile::parse(&text) {
        let _ = file.credentials(&[]);
        let _ = file.components();
        let _ = file.shares();
    }
    let _ = Config::parse(&text);
});
