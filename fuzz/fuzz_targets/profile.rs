//! Personalisation profile text: a typed error naming the field, or a profile that holds to
//! the checks (ten or fewer keys, every content in a binary file of its size), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ykt_issuer::IssueError;
use ykt_issuer::profile::{Content, Profile, Structure};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Profile::parse(text) {
        Ok(loaded) => {
            let profile = &loaded.profile;
            assert_eq!(loaded.digest.len(), 64);
            for content in [Content::PublicInfo, Content::PsamSerial] {
                if let Some(file) = profile.file_with(content) {
                    assert_eq!(file.structure, Structure::Binary);
                    assert_eq!(usize::from(file.size.unwrap()), content.size());
                }
            }
            assert!(!profile.templates().is_empty());
        }
        Err(IssueError::Profile { field, .. }) => assert!(!field.is_empty()),
        Err(other) => panic!("unexpected error kind: {other}"),
    }
});
