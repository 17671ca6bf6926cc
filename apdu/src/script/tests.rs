//! Tests of parsing, running and exporting scripts.

use super::*;
use crate::error::ApduError;
use crate::sw::Sw;
use crate::transport::{CardHandler, MemoryTransport, MockTransport};

fn h(text: &str) -> Vec<u8> {
    hex::decode(text.replace(' ', "")).unwrap()
}

fn mock(exchanges: &[(&str, &str)]) -> MockTransport {
    MockTransport::new(h("3B00"), exchanges.iter().map(|(c, r)| (h(c), h(r))))
}

fn parse(text: &str) -> Script {
    Script::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn parse_error(text: &str) -> (usize, ErrorKind) {
    let error = Script::parse(text).unwrap_err();
    (error.line, error.kind)
}

/// Runs `text` on one card.
fn run_on(
    text: &str,
    card: &mut dyn Transport,
    mode: Mode,
) -> std::result::Result<Transcript, RunFailure> {
    let mut channels: Channels<'_> = BTreeMap::from([("card", card)]);
    parse(text).run(&mut channels, mode)
}

fn exchanges(transcript: &Transcript) -> Vec<String> {
    transcript
        .entries
        .iter()
        .map(|entry| match &entry.event {
            Event::Reset { atr } => format!(
                "{} @{} reset {}",
                entry.line,
                entry.channel,
                hex::encode_upper(atr)
            ),
            Event::Exchange { command, data, sw } => {
                format!("{} @{} {command} -> {data} {sw}", entry.line, entry.channel)
            }
        })
        .collect()
}

/// A PIN-checking card: VERIFY with 123456 succeeds, any other PIN leaves two tries; GET
/// CHALLENGE answers 8 bytes in two T=0 steps (6108, then GET RESPONSE).
struct PinCard;

impl CardHandler for PinCard {
    fn power_on(&mut self) -> Vec<u8> {
        h("3B6D00")
    }

    fn handle(&mut self, command: &[u8]) -> Vec<u8> {
        match command {
            [0x00, 0x20, 0x00, 0x00, 0x03, pin @ ..] if pin == [0x12, 0x34, 0x56] => h("9000"),
            [0x00, 0x20, ..] => h("63C2"),
            [0x00, 0x84, 0x00, 0x00, 0x08] => h("6108"),
            [0x00, 0xC0, 0x00, 0x00, 0x08] => h("A1A2A3A4A5A6A7A8 9000"),
            _ => h("6D00"),
        }
    }
}

mod grammar {
    use super::*;

    #[test]
    fn plain_scriptor_files_are_scripts() {
        let script = parse(
            "#! /usr/bin/env scriptor\n\
             # reset the card\n\
             reset\n\
             \n\
             # Select applet\n\
             00 A4 04 00 09 A0 00 00 00 66 03 01 B3 01\n\
             00a4040009a00000006603 \\\n\
             \x20  # a comment inside a continued line\n\
             01b301\n\
             00 10 00 00 00 00\n\
             RESET\n\
             exit\n\
             this is not read\n",
        );
        assert_eq!(script.commands_per_channel(), BTreeMap::from([("card", 3)]));
        assert_eq!(format!("{script:?}"), "Script(5 statements)");
        let mut card = mock(&[
            ("00A4040009A00000006603 01B301", "9000"),
            ("00A4040009A00000006603 01B301", "6A82"),
            ("001000000000", "6700"),
        ]);
        let transcript = run_on(
            "00A4040009A0000000660301B301\n00A4040009A0000000660301B301\n00 10 00 00 00 00\n",
            &mut card,
            Mode::Raw,
        )
        .unwrap();
        assert_eq!(transcript.entries.len(), 3);
        assert_eq!(card.remaining(), 0);
    }

    #[test]
    fn statements_of_every_kind() {
        let script = parse(
            "let AID = A0 00 00 00 03 86 98 07 01\n\
             LET Secret K = ${AID}00 # comments may follow anything\n\
             00A4040009 $AID => [6F ?? 84 09 $AID ..] 9000 | 61xx\n\
             @psam reset\n\
             @psam secret 80 1A 00 00 02 $K => [$MAC:4 $REST:..] 90 00\n\
             0084000004 => [] 63Cx\n\
             @psam 00 $MAC\n\
             quit",
        );
        assert_eq!(
            script.commands_per_channel(),
            BTreeMap::from([("card", 2), ("psam", 2)])
        );
        let only_reset = parse("@sam2 reset\nreset");
        assert_eq!(
            only_reset.commands_per_channel(),
            BTreeMap::from([("card", 0), ("sam2", 0)])
        );
        assert_eq!(
            parse("# nothing\n\n").commands_per_channel(),
            BTreeMap::new()
        );
    }

    #[test]
    fn problems_are_typed_and_name_their_line() {
        use ErrorKind::*;
        let cases: &[(&str, usize, ErrorKind)] = &[
            ("00A4 0", 1, OddDigits),
            ("\n00A 4", 2, OddDigits),
            ("00A4G0", 1, Character('G')),
            ("00A4 é", 1, Character('é')),
            ("reset now", 1, Character('n')),
            ("exit 00", 1, Character('0')),
            ("00A4 $", 1, VariableName),
            ("00A4 ${X", 1, VariableName),
            ("@ 00A4", 1, ChannelName),
            ("@1card 00", 1, ChannelName),
            ("00A4 $X", 1, Undefined("X".into())),
            ("0084000004 => [$C:4] 9000 $C", 1, Character('$')),
            ("0084000004 => [$C:4] 9000\n00 $D", 2, Undefined("D".into())),
            ("let X = $X", 1, Undefined("X".into())),
            ("0084000004 => [$C:4 $C] 9000", 1, Undefined("C".into())),
            ("let", 1, Let),
            ("let X 00", 1, Let),
            ("let X =", 1, NoBytes),
            ("let X = 00 => 9000", 1, Character('=')),
            ("@card", 1, NoBytes),
            ("secret", 1, NoBytes),
            ("=> 9000", 1, NoBytes),
            ("00 => [? ] 9000", 1, Wildcard),
            ("00 => [...] 9000", 1, Wildcard),
            ("00 => [.] 9000", 1, Wildcard),
            ("00 => [6F", 1, UnclosedPattern),
            ("00 => [$X:0] 9000", 1, CaptureLength),
            ("00 => [$X:65537] 9000", 1, CaptureLength),
            ("00 => [$X:99999999999999999999999] 9000", 1, CaptureLength),
            ("00 => [$X:] 9000", 1, CaptureLength),
            ("let X = 00\n00 $X:4", 2, CaptureOutsidePattern),
            ("00 => [$X:1 $X:..] 9000", 1, DuplicateCapture("X".into())),
            ("00 =>", 1, StatusWord),
            ("00 => [..]", 1, StatusWord),
            ("00 => 900", 1, StatusWord),
            ("00 => 90000", 1, StatusWord),
            ("00 => 9G00", 1, StatusWord),
            ("00 => 9000|", 1, StatusWord),
            ("00 => 9000 6A82", 1, Character('6')),
            ("00A4 \\\n\n# still going \\", 1, Continuation),
        ];
        for (text, line, kind) in cases {
            assert_eq!(parse_error(text), (*line, kind.clone()), "{text:?}");
        }
        let error = Script::parse("00\n\n00A4 $NOPE").unwrap_err();
        assert_eq!(error.to_string(), "line 3: undefined variable $NOPE");
    }

    #[test]
    fn a_capture_or_let_defines_a_variable_from_the_next_line_on() {
        parse("0084000004 => [$C:4] 9000\nlet D = $C $C\n00 $D");
        parse("let X = 01\nlet X = $X 02\n00 $X");
        parse("let _x1 = 01\n00 ${_x1}02 $_x1");
    }

    #[test]
    fn problem_messages_never_quote_more_than_one_character() {
        let error = Script::parse("let secret KEY = 00112233445566778899AABBCCDDEEFG").unwrap_err();
        assert_eq!(error.to_string(), "line 1: unexpected character 'G'");
        let error = Script::parse("let secret KEY = 00112233445566778899AABBCCDDEEF").unwrap_err();
        assert_eq!(error.to_string(), "line 1: a byte needs two hex digits");
    }

    #[test]
    fn parsing_never_panics() {
        let full = "let secret K = 0011\n@psam reset\n@psam 80FA0000 ${K} => [6F ?? .. $C:2 $R:..] 61XX|9000\n00 $C \\\n 01 # c\nexit\n";
        for end in 0..=full.len() {
            let _ = Script::parse(&full[..end]);
        }
        let alphabet = [
            '0', 'A', 'x', 'X', '$', '{', '}', ':', '.', '?', '[', ']', '=', '>', '|', '@', '#',
            '\\', ' ', '\n', 'é', '\0', '9',
        ];
        // A deterministic walk through short texts over the grammar's characters.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let _ = Script::parse(&text);
            let _ = Script::parse(&format!("let A = 01\n00 => [{text}] 9000"));
        }
        let _ = Script::parse(&"\\\n".repeat(10_000));
        let _ = Script::parse(&format!("00 => [{}] 9000", ".. ".repeat(50_000)));
    }
}

mod running {
    use super::*;

    #[test]
    fn expectations_pass_and_the_transcript_records_every_exchange() {
        let mut card = mock(&[
            (
                "00A4040009A00000000386980701",
                "6F0A8408A000000003869807 9000",
            ),
            ("00B0950000", "6A82"),
            ("0020000003123456", "63C2"),
        ]);
        let transcript = run_on(
            "00A4040009A00000000386980701 => [6F ?? 84 ..] 9000\n\
             00B0950000 => [] 6A82\n\
             0020000003123456 => 63CX|9000",
            &mut card,
            Mode::Exchange,
        )
        .unwrap();
        assert_eq!(
            exchanges(&transcript),
            [
                "1 @card 00A4040009A00000000386980701 -> 6F0A8408A000000003869807 9000",
                "2 @card 00B0950000 ->  6A82",
                "3 @card 0020000003123456 ->  63C2",
            ]
        );
        let text = transcript.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("# line 1 @card ") && lines[0].ends_with(" ms"));
        assert_eq!(
            lines[1..3],
            [
                "> 00A4040009A00000000386980701",
                "< 6F0A8408A000000003869807 9000"
            ]
        );
        assert_eq!(lines[5], "< 6A82");
    }

    #[test]
    fn the_first_unmet_expectation_stops_the_run_with_line_command_expected_and_actual() {
        let mut card = mock(&[
            ("00A4040002 3F00", "9000"),
            ("00A4040009A00000000386980701", "6A82"),
            ("00B0950000", "9000"),
        ]);
        let failure = run_on(
            "00A40400023F00 => 9000\n# a comment\n00A4040009A00000000386980701 => [6F ..] 9000|61XX\n00B0950000",
            &mut card,
            Mode::Exchange,
        )
        .unwrap_err();
        assert_eq!(failure.error.line, 3);
        assert_eq!(
            failure.error.kind,
            ErrorKind::Unmet {
                channel: "card".into(),
                command: Value::new(&h("00A4040009A00000000386980701"), false).redacted(),
                expected: "[6F ..] 9000|61XX".into(),
                data: Redacted::default(),
                sw: Sw::FileNotFound,
            }
        );
        assert_eq!(
            failure.to_string(),
            "line 3: @card 00A4040009A00000000386980701: expected [6F ..] 9000|61XX, got 6A82"
        );
        assert_eq!(
            failure.transcript.entries.len(),
            2,
            "the failing exchange is recorded"
        );
        assert_eq!(card.remaining(), 1, "nothing is sent after the failure");

        let mut card = mock(&[("00CA9F7F00", "0102 9000")]);
        let failure = run_on("00CA9F7F00 => [01] 9000", &mut card, Mode::Exchange).unwrap_err();
        assert_eq!(
            failure.error.to_string(),
            "line 1: @card 00CA9F7F00: expected [01] 9000, got 0102 9000"
        );
    }

    #[test]
    fn exchange_mode_completes_61xx_and_raw_mode_shows_it() {
        let mut card = MemoryTransport::new("pin card", PinCard);
        let transcript = run_on("0084000008 => [$R:8] 9000", &mut card, Mode::Exchange).unwrap();
        assert_eq!(
            exchanges(&transcript),
            ["1 @card 0084000008 -> A1A2A3A4A5A6A7A8 9000"]
        );
        let transcript = run_on(
            "0084000008 => 61XX\n00C0000008 => [A1 ..] 9000",
            &mut card,
            Mode::Raw,
        )
        .unwrap();
        assert_eq!(
            exchanges(&transcript),
            [
                "1 @card 0084000008 ->  6108",
                "2 @card 00C0000008 -> A1A2A3A4A5A6A7A8 9000"
            ]
        );
    }

    #[test]
    fn malformed_apdus_need_raw_mode() {
        let mut card = mock(&[("001000000000", "6700")]);
        let failure = run_on("00 10 00 00 00 00", &mut card, Mode::Exchange).unwrap_err();
        assert!(matches!(
            failure.error.kind,
            ErrorKind::Exchange {
                source: ApduError::MalformedCommand(_),
                ..
            }
        ));
        assert_eq!(
            failure.to_string(),
            "line 1: @card 001000000000: malformed command APDU: truncated extended length"
        );
        assert!(run_on("00 10 00 00 00 00", &mut card, Mode::Raw).is_ok());
        let mut card = mock(&[("00", "90")]);
        let failure = run_on("00", &mut card, Mode::Raw).unwrap_err();
        assert!(matches!(
            failure.error.kind,
            ErrorKind::Exchange {
                source: ApduError::MalformedResponse(1),
                ..
            }
        ));
    }

    #[test]
    fn captures_feed_later_commands_on_other_channels() {
        let mut card = mock(&[
            ("0084000004", "11223344 9000"),
            ("0082000008 CAFEBABE11223344", "9000"),
        ]);
        let mut psam = mock(&[
            ("80FA000008 1122334400000000", "6104"),
            ("00C0000004", "CAFEBABE 9000"),
        ]);
        let script = parse(
            "0084000004 => [$CHALLENGE:4] 9000\n\
             @psam 80FA000008 $CHALLENGE 00000000 => [$MAC:..] 9000\n\
             let CRYPTOGRAM = $MAC $CHALLENGE\n\
             0082000008 $CRYPTOGRAM => 9000",
        );
        let mut channels: Channels<'_> = BTreeMap::from([
            ("card", &mut card as &mut dyn Transport),
            ("psam", &mut psam as &mut dyn Transport),
        ]);
        let transcript = script.run(&mut channels, Mode::default()).unwrap();
        assert_eq!(
            exchanges(&transcript),
            [
                "1 @card 0084000004 -> 11223344 9000",
                "2 @psam 80FA0000081122334400000000 -> CAFEBABE 9000",
                "4 @card 0082000008CAFEBABE11223344 ->  9000",
            ]
        );
        assert_eq!((card.remaining(), psam.remaining()), (0, 0));
    }

    #[test]
    fn a_pattern_compares_against_variables() {
        let text = "let AID = A000000003869807\n00A4040008 $AID => [6F ?? 84 08 $AID ..] 9000";
        let mut card = mock(&[(
            "00A4040008A000000003869807",
            "6F0E8408A000000003869807A5020000 9000",
        )]);
        run_on(text, &mut card, Mode::Exchange).unwrap();
        let mut card = mock(&[(
            "00A4040008A000000003869807",
            "6F0E8408A000000003869808A5020000 9000",
        )]);
        assert!(run_on(text, &mut card, Mode::Exchange).is_err());
    }

    #[test]
    fn every_channel_must_have_a_transport_before_anything_is_sent() {
        let mut card = mock(&[("0084000004", "11223344 9000")]);
        let failure =
            run_on("0084000004\n\n@psam 0084000004", &mut card, Mode::Exchange).unwrap_err();
        assert_eq!(
            failure.to_string(),
            "line 3: no transport for channel @psam"
        );
        assert!(failure.transcript.entries.is_empty());
        assert_eq!(card.remaining(), 1);
    }

    #[test]
    fn resets_are_recorded_and_sessions_reopened() {
        let mut card = MemoryTransport::new("pin card", PinCard);
        let transcript = run_on(
            "0020000003123456 => 9000\nreset\n0020000003123456 => 9000",
            &mut card,
            Mode::Exchange,
        )
        .unwrap();
        assert_eq!(
            exchanges(&transcript),
            [
                "1 @card 0020000003123456 ->  9000",
                "2 @card reset 3B6D00",
                "3 @card 0020000003123456 ->  9000",
            ]
        );
        assert!(transcript.to_string().contains("\n> RESET\n< 3B6D00\n"));
    }

    #[test]
    fn transport_failures_name_the_line_and_channel() {
        struct Broken;
        impl Transport for Broken {
            fn name(&self) -> &str {
                "broken"
            }
            fn reset(&mut self) -> crate::Result<Vec<u8>> {
                Err(ApduError::Transport("no card".into()))
            }
            fn session(&mut self) -> crate::Result<Box<dyn crate::Session + '_>> {
                Err(ApduError::CardReset)
            }
        }
        let failure = run_on("\nreset", &mut Broken, Mode::Exchange).unwrap_err();
        assert_eq!(
            failure.to_string(),
            "line 2: @card reset: transport: no card"
        );
        let failure = run_on("00A4", &mut Broken, Mode::Exchange).unwrap_err();
        assert_eq!(
            failure.to_string(),
            "line 1: @card 00A4: the card was reset"
        );
        let mut card = mock(&[]);
        let failure = run_on("00A40000", &mut card, Mode::Exchange).unwrap_err();
        assert_eq!(
            failure.to_string(),
            "line 1: @card 00A40000: unexpected command 00A40000, expected nothing"
        );
    }
}

mod secrets {
    use super::*;

    /// Asserts that nothing a run or its failure shows holds the PIN's digits.
    fn assert_hidden(shown: &str) {
        assert!(
            !shown.contains("123456") && !shown.contains("654321"),
            "{shown}"
        );
    }

    #[test]
    fn secret_variables_are_redacted_in_transcripts() {
        let mut card = MemoryTransport::new("pin card", PinCard);
        let transcript = run_on(
            "let secret PIN = 12 34 56\nlet PADDED = $PIN FF\n0020000003 $PIN => 9000\n0020000004 $PADDED",
            &mut card,
            Mode::Exchange,
        )
        .unwrap();
        assert_eq!(
            exchanges(&transcript),
            [
                "3 @card 0020000003****** ->  9000",
                "4 @card 0020000004******FF ->  63C2"
            ]
        );
        assert_hidden(&transcript.to_string());
        assert_hidden(&format!("{transcript:?}"));
    }

    #[test]
    fn secret_bytes_are_redacted_in_errors() {
        let mut card = MemoryTransport::new("pin card", PinCard);
        let failure = run_on(
            "let secret PIN = 654321\n0020000003 $PIN => 9000",
            &mut card,
            Mode::Exchange,
        )
        .unwrap_err();
        assert_eq!(
            failure.to_string(),
            "line 2: @card 0020000003******: expected 9000, got 63C2"
        );
        assert_hidden(&format!("{failure:?}"));

        // A mock quotes the command it did not expect: not when it holds secret bytes.
        let mut card = mock(&[("0020000003000000", "9000")]);
        let failure = run_on("secret 0020000003123456", &mut card, Mode::Exchange).unwrap_err();
        assert_eq!(
            failure.to_string(),
            "line 1: @card 00200000********: unexpected command <redacted>, expected <redacted>"
        );
        assert_hidden(&format!("{failure:?}"));
    }

    #[test]
    fn secret_lines_hide_their_body_response_and_captures() {
        let mut card = mock(&[
            ("80D4000003 123456", "654321 9000"),
            ("00DA000003 654321", "9000"),
        ]);
        let failure = run_on(
            "secret 80D4000003123456 => [$KEY:3] 9000\n00DA000003 $KEY => 6A82",
            &mut card,
            Mode::Exchange,
        )
        .unwrap_err();
        assert_eq!(
            exchanges(&failure.transcript),
            [
                "1 @card 80D40000******** -> ****** 9000",
                "2 @card 00DA000003****** ->  9000"
            ]
        );
        assert_eq!(
            failure.to_string(),
            "line 2: @card 00DA000003******: expected 6A82, got 9000"
        );
        assert_hidden(&failure.transcript.to_string());
    }

    #[test]
    fn a_response_compared_with_a_secret_is_secret() {
        let mut card = mock(&[("00CA000000", "123456 9000")]);
        let failure = run_on(
            "let secret PIN = 654321\n00CA000000 => [$PIN] 9000",
            &mut card,
            Mode::Exchange,
        )
        .unwrap_err();
        assert_eq!(
            failure.to_string(),
            "line 2: @card 00CA000000: expected [$PIN] 9000, got ****** 9000"
        );
        assert_hidden(&format!("{failure:?} {}", failure.transcript));
    }
}

mod export {
    use super::*;

    #[test]
    fn exports_substitute_variables_and_keep_expectations_as_comments() {
        let script = parse(
            "let AID = A0000000038698 07 01\n\
             reset\n\
             00A4040009 $AID => [6F ..] 9000 # select\n\
             @psam reset\n\
             @psam 0084000004 => [$RANDOM:4] 9000\n\
             00b0950000\n\
             let EXITCODE = 01\n\
             00B2 $EXITCODE 0C00 => [$EXITCODE ..] 9000",
        );
        let exported = script.export("card").unwrap();
        assert_eq!(
            exported,
            "# Exported from a ykt script: variables substituted, expectations kept as comments.\n\
             reset\n\
             00 A4 04 00 09 A0 00 00 00 03 86 98 07 01\n\
             # => [6F ..] 9000\n\
             00 B0 95 00 00\n\
             00 B2 01 0C 00\n"
        );
        assert!(!exported.to_ascii_lowercase().contains("exit"));
        assert_eq!(
            script
                .export("psam")
                .unwrap()
                .lines()
                .skip(1)
                .collect::<Vec<_>>(),
            ["reset", "00 84 00 00 04", "# => [$RANDOM:4] 9000"]
        );

        // The export is a script that sends the same bytes.
        let replay = parse(&exported);
        assert_eq!(replay.commands_per_channel(), BTreeMap::from([("card", 3)]));
        let mut card = mock(&[
            ("00A4040009A00000000386980701", "6F00 9000"),
            ("00B0950000", "6A82"),
            ("00B2010C00", "6A83"),
        ]);
        let transcript = run_on(&exported, &mut card, Mode::Raw).unwrap();
        assert_eq!(transcript.entries.len(), 4);
        assert_eq!(card.remaining(), 0);
    }

    #[test]
    fn exports_refuse_run_time_values_and_secrets() {
        let script = parse(
            "0084000004 => [$C:4] 9000\nlet M = $C 00\n@psam 80FA000005 $M\n@psam 80FA000004 $C",
        );
        assert_eq!(script.export("card").unwrap().lines().count(), 3);
        let error = script.export("psam").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 3: $M is known only when the script runs, so no export can hold it"
        );
        let error = parse("let C = 01\n0084000004 => [$C:4] 9000\n00 $C")
            .export("card")
            .unwrap_err();
        assert_eq!(
            (error.line, error.kind),
            (3, ErrorKind::RunTimeValue("C".into()))
        );

        let error = parse("let secret PIN = 123456\n\n0020000003 $PIN")
            .export("card")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 3: the command needs secret bytes, which an export never holds"
        );
        let error = parse("secret 0020000003123456").export("card").unwrap_err();
        assert_eq!((error.line, error.kind), (1, ErrorKind::SecretNeeded));
        // A secret line with nothing after its header has nothing to hide.
        assert!(parse("secret 80CA0000").export("card").is_ok());
        // A secret variable used on another channel does not stop this channel's export.
        assert!(
            parse("let secret K = 01\n@psam 00 $K\n00A4")
                .export("card")
                .is_ok()
        );
    }
}

#[test]
fn values_that_could_outgrow_an_extended_apdu_are_refused_when_parsed() {
    let mut text = String::from("let A = 00\n");
    for _ in 0..40 {
        text += "let A = $A $A\n";
    }
    text += "$A\n";
    let err = Script::parse(&text).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooLong);
    // Line n + 1 doubles to 2^n bytes: 2^20 still parses, 2^21 does not.
    let first = |n: usize| text.lines().take(n).collect::<Vec<_>>().join("\n");
    assert!(Script::parse(&first(21)).is_ok());
    assert_eq!(Script::parse(&first(22)).unwrap_err().line, 22);
    // A few rest captures (65536 bytes each, at most) are fine; twenty are not.
    assert!(Script::parse("00A40000 => [$R:..] 9000\nlet B = $R $R\n$B").is_ok());
    let twenty = format!("00A40000 => [$R:..] 9000\n{}", "$R ".repeat(20));
    assert_eq!(Script::parse(&twenty).unwrap_err().kind, ErrorKind::TooLong);
}
