//! APDU scripts: parsing any text never panics; a parsed script counts its commands, exports
//! each channel and runs against an echoing card without panicking; an export parses again
//! and sends as many commands as the channel it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use ykt_apdu::script::{Channels, DEFAULT_CHANNEL, Mode, Script};
use ykt_apdu::{CardHandler, MemoryTransport, Transport};

/// Answers a command `CLA INS P1 P2 [body] SW1 SW2` (six bytes or more) with the body and that
/// status word, anything shorter with 9000: the script picks the response, 61xx and 6Cxx
/// included.
struct Echo;

impl CardHandler for Echo {
    fn power_on(&mut self) -> Vec<u8> {
        vec![0x3B, 0x00]
    }

    fn handle(&mut self, command: &[u8]) -> Vec<u8> {
        if command.len() >= 6 {
            command[4..].to_vec()
        } else {
            vec![0x90, 0x00]
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let script = match Script::parse(text) {
        Ok(script) => script,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let _ = format!("{script:?}");
    let counts = script.commands_per_channel();
    for (&channel, &commands) in &counts {
        let Ok(export) = script.export(channel) else {
            continue;
        };
        let again = Script::parse(&export)
            .unwrap_or_else(|e| panic!("the export of @{channel} does not parse: {e}\n{export}"));
        assert_eq!(
            again.commands_per_channel(),
            BTreeMap::from([(DEFAULT_CHANNEL, commands)]),
            "the export of @{channel} sends other commands:\n{export}"
        );
    }
    let _ = script.export(DEFAULT_CHANNEL);

    for mode in [Mode::Exchange, Mode::Raw] {
        let mut cards: Vec<(&str, MemoryTransport<Echo>)> = counts
            .keys()
            .map(|&channel| (channel, MemoryTransport::new(channel, Echo)))
            .collect();
        let mut channels: Channels<'_> = cards
            .iter_mut()
            .map(|(channel, card)| (*channel, card as &mut dyn Transport))
            .collect();
        match script.run(&mut channels, mode) {
            Ok(transcript) => {
                let _ = transcript.to_string();
            }
            Err(failure) => {
                let _ = failure.to_string();
                let _ = failure.transcript.to_string();
            }
        }
    }
});
