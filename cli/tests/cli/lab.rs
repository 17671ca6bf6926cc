//! `ykt lab` reproduces the published vectors and real-card traces.

use crate::support::{field, vector_file, ykt, ykt_json, ykt_json_with_code};
use serde_json::json;

#[test]
fn load_reproduces_the_deng214_card_trace() {
    let file = vector_file("pboc_epurse_load.json");
    let v = file.vector("load-card-trace-deng214").unwrap();
    let f = |name| field(&v, name);
    let out = ykt_json(&[
        "lab",
        "load",
        "--alg",
        "3des",
        "--dlk",
        f("load_key_DLK"),
        "--dtk",
        f("tac_key_DTK"),
        "--random",
        f("card_random"),
        "--online-seq",
        f("online_seq_before"),
        "--old-balance",
        f("old_balance"),
        "--amount",
        f("amount"),
        "--type",
        f("trans_type"),
        "--terminal",
        f("terminal_id"),
        "--date",
        f("host_date"),
        "--time",
        f("host_time"),
    ]);
    assert_eq!(
        out,
        json!({
            "session_key": f("session_key"),
            "mac1": f("mac1"),
            "mac2": f("mac2"),
            "tac": f("tac"),
        })
    );
}

#[test]
fn purchase_reproduces_the_deng214_card_trace() {
    let file = vector_file("pboc_epurse_purchase.json");
    let v = file.vector("purchase-card-trace-deng214").unwrap();
    let f = |name| field(&v, name);
    let out = ykt_json(&[
        "lab",
        "purchase",
        "--alg",
        "3des",
        "--dpk",
        f("purchase_key_DPK"),
        "--dtk",
        f("tac_key_DTK"),
        "--random",
        f("card_random"),
        "--offline-seq",
        f("offline_seq"),
        "--amount",
        f("amount"),
        "--type",
        f("trans_type"),
        "--terminal",
        f("terminal_id"),
        "--terminal-seq",
        f("terminal_seq"),
        "--date",
        f("terminal_date"),
        "--time",
        f("terminal_time"),
    ]);
    assert_eq!(
        out,
        json!({
            "session_key": f("session_key"),
            "mac1": f("mac1"),
            "mac2": f("mac2"),
            "tac": f("tac"),
        })
    );
}

#[test]
fn diversify_reproduces_every_diversification_vector() {
    let file = vector_file("pboc_key_diversification.json");
    let mut checked = 0;
    for v in file.vectors() {
        let factors = if v.has("factors_top_down") {
            v.str_list("factors_top_down").unwrap()
        } else if v.has("factor") {
            vec![field(&v, "factor")]
        } else {
            vec![
                field(&v, "factor_level1_issuer_or_city"),
                field(&v, "factor_level2_card_asn"),
            ]
        };
        let expected = v.str("derived_key").or_else(|_| v.str("card_key")).unwrap();
        let mut args = vec![
            "lab",
            "diversify",
            "--alg",
            "3des",
            "--key",
            field(&v, "master_key"),
        ];
        for factor in &factors {
            args.extend(["--factor", factor]);
        }
        assert_eq!(ykt_json(&args), json!({ "key": expected }), "{}", v.id());
        if v.has("intermediate_key") {
            args.truncate(8);
            assert_eq!(
                ykt_json(&args),
                json!({ "key": field(&v, "intermediate_key") })
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn mac_reproduces_the_line_protection_and_retail_mac_vectors() {
    let file = vector_file("pboc_mac_algorithms.json");
    let line_protection: Vec<_> = file
        .vectors()
        .into_iter()
        .filter(|v| v.id().starts_with("line-protect-mac"))
        .collect();
    assert_eq!(line_protection.len(), 3);
    for v in line_protection {
        let iv = field(&v, "iv");
        let expected = json!({ "mac": field(&v, "mac4") });
        // The whole 8-byte IV, and the 4-byte challenge it was padded from.
        for iv in [iv, &iv[..8]] {
            let args = [
                "lab",
                "mac",
                "--alg",
                "3des",
                "--key",
                field(&v, "key"),
                "--iv",
                iv,
            ];
            assert_eq!(
                ykt_json(&[&args[..], &["--data", field(&v, "data")]].concat()),
                expected
            );
        }
    }
    let retail = file.vector("retail-mac-blog").unwrap();
    let out = ykt_json(&[
        "lab",
        "mac",
        "--alg",
        "3des",
        "--key",
        field(&retail, "key"),
        "--data",
        field(&retail, "data"),
    ]);
    assert_eq!(out, json!({ "mac": &field(&retail, "mac8")[..8] }));
}

#[test]
fn secure_message_reproduces_the_84d4_write_key_traces() {
    let file = vector_file("pboc_secure_messaging.json");
    let cases = [
        (
            "fmcos-84D4-des-1",
            "des",
            "key_8byte_master_39",
            "challenge4",
            "plaintext_key_record",
        ),
        ("psam-84D4-3des", "3des", "master_key_16", "iv", "plaintext"),
    ];
    for (id, alg, key, challenge, data) in cases {
        let v = file.vector(id).unwrap();
        let apdu = field(&v, "apdu");
        let out = ykt_json(&[
            "lab",
            "secure-message",
            "--alg",
            alg,
            "--key",
            field(&v, key),
            "--challenge",
            &field(&v, challenge)[..8],
            "--header",
            &apdu[..8],
            "--data",
            field(&v, data),
            "--encrypt",
        ]);
        assert_eq!(out, json!({ "apdu": apdu }), "{id}");
    }
}

#[test]
fn sm3_reproduces_the_standard_digests() {
    let file = vector_file("sm3_gbt32905.json");
    for v in file.vectors() {
        let out = ykt_json(&["lab", "sm3", "--msg", field(&v, "message_hex")]);
        assert_eq!(out, json!({ "digest": field(&v, "digest") }), "{}", v.id());
    }
}

#[test]
fn sm2_verify_accepts_the_published_signature_raw_and_der() {
    let file = vector_file("sm2_gbt32918_sign.json");
    let v = file.vector("sm2-sign-recommended-curve").unwrap();
    let public = format!("04{}{}", field(&v, "pub_x"), field(&v, "pub_y"));
    let message = hex::encode(field(&v, "message_ascii"));
    let (r, s) = (field(&v, "r"), field(&v, "s"));
    // r and s both have the top bit set, so each DER INTEGER gets a leading 00.
    let der = format!("3046022100{r}022100{s}");
    for signature in [format!("{r}{s}"), der] {
        let args = ["lab", "sm2", "verify", "--key", &public, "--msg", &message];
        let id = [
            "--id",
            field(&v, "user_id_ascii"),
            "--signature",
            &signature,
        ];
        assert_eq!(
            ykt_json(&[&args[..], &id[..]].concat()),
            json!({ "valid": true })
        );
        // The default identifier is the vector's.
        assert_eq!(
            ykt_json(&[&args[..], &id[2..]].concat()),
            json!({ "valid": true })
        );
    }
}

#[test]
fn sm2_keygen_sign_verify_round_trip_and_tampering() {
    let keys = ykt_json(&["lab", "sm2", "keygen"]);
    let (private, public) = (
        keys["private_key"].as_str().unwrap(),
        keys["public_key"].as_str().unwrap(),
    );
    assert_eq!((private.len(), public.len()), (64, 130));
    assert!(public.starts_with("04"));

    let signed = ykt_json(&[
        "lab", "sm2", "sign", "--key", private, "--msg", "616263", "--id", "ALICE",
    ]);
    let raw = signed["signature"].as_str().unwrap();
    let der = signed["signature_der"].as_str().unwrap();
    assert_eq!(raw.len(), 128);
    assert!(der.starts_with("30"));

    let verify = |msg: &str, id: &[&str], signature: &str| {
        let args = [
            "lab",
            "sm2",
            "verify",
            "--key",
            public,
            "--msg",
            msg,
            "--signature",
            signature,
        ];
        [&args[..], id]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, code| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ykt_json_with_code(&args, code)
    };
    for signature in [raw, der] {
        assert_eq!(
            run(verify("616263", &["--id", "ALICE"], signature), 0),
            json!({ "valid": true })
        );
        assert_eq!(
            run(verify("616263", &["--id-hex", "414C494345"], signature), 0),
            json!({ "valid": true })
        );
        assert_eq!(
            run(verify("616264", &["--id", "ALICE"], signature), 1),
            json!({ "valid": false })
        );
        assert_eq!(
            run(verify("616263", &["--id", "BOB"], signature), 1),
            json!({ "valid": false })
        );
        assert_eq!(
            run(verify("616263", &[], signature), 1),
            json!({ "valid": false })
        );
    }
}

#[test]
fn kcv_uses_the_default_method_of_each_algorithm() {
    // The classic check value of the 3DES key 0123456789ABCDEF FEDCBA9876543210.
    let key = "0123456789ABCDEFFEDCBA9876543210";
    assert_eq!(
        ykt_json(&["lab", "kcv", "--alg", "3des", "--key", key]),
        json!({ "kcv": "08D7B4", "method": "encrypt-zeros" })
    );
    let sm4 = ykt_json(&["lab", "kcv", "--alg", "sm4", "--key", key]);
    assert_eq!(sm4["method"], "cmac");
    assert_eq!(sm4["kcv"].as_str().unwrap().len(), 10);
    let zeros = ykt_json(&[
        "lab",
        "kcv",
        "--alg",
        "sm4",
        "--key",
        key,
        "--method",
        "encrypt-zeros",
    ]);
    // SM4 of the zero block under the standard example key, leftmost 3 bytes.
    assert_eq!(zeros["method"], "encrypt-zeros");
    assert_eq!(zeros["kcv"].as_str().unwrap().len(), 6);
}

#[test]
fn hex_arguments_ignore_case_and_spaces() {
    let upper = ykt_json(&[
        "lab",
        "mac",
        "--alg",
        "des",
        "--key",
        "0123456789ABCDEF",
        "--data",
        "ABCDEF",
    ]);
    let lower = ykt_json(&[
        "lab",
        "mac",
        "--alg",
        "des",
        "--key",
        "01234567 89abcdef",
        "--data",
        "ab cd ef",
    ]);
    assert_eq!(upper, lower);
}

#[test]
fn selftest_passes_every_known_answer_test() {
    let out = ykt_json(&["lab", "selftest"]);
    let rows = out.as_array().unwrap();
    assert!(rows.len() >= 10);
    for row in rows {
        assert_eq!(row["passed"], true, "{row}");
        assert!(row["failure"].is_null());
        assert!(row["name"].is_string() && row["source"].is_string());
    }
}

#[test]
fn without_json_the_output_is_a_table() {
    let run = ykt(&["lab", "sm3", "--msg", "616263"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        "digest  66C7F0F462EEEDD9D1F2D46BDC10E4E24167C4875CF2F7A2297DA02B8F4BA8E0\n"
    );
    let run = ykt(&["lab", "selftest"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("name "));
    assert!(run.stdout.contains("sm4-encrypt"));
}
