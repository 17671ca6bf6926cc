//! `ykt bench crypto` prints one well-formed row per item.

use crate::support::ykt_json;

const ITEMS: [&str; 10] = [
    "SM4 block encrypt",
    "3DES block encrypt",
    "DES block encrypt",
    "AES-128 block encrypt",
    "3DES diversify + purchase TAC verify",
    "SM4 diversify + purchase TAC verify",
    "SM2 sign",
    "SM2 verify",
    "P-256 sign",
    "P-256 verify",
];

#[test]
fn crypto_bench_reports_every_item() {
    let out = ykt_json(&["bench", "crypto", "--seconds", "0.05"]);
    let rows = out.as_array().expect("an array");
    let names: Vec<&str> = rows
        .iter()
        .map(|row| row["item"].as_str().unwrap())
        .collect();
    assert_eq!(names, ITEMS);
    for row in rows {
        let mut keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "goal",
                "item",
                "met",
                "openssl_ops_per_s",
                "ops_per_s",
                "ratio"
            ]
        );
        assert!(row["ops_per_s"].as_u64().unwrap() > 0, "{row}");
        // Without --openssl there is no reference rate, so no ratio.
        assert!(
            row["openssl_ops_per_s"].is_null() && row["ratio"].is_null(),
            "{row}"
        );
        let goal = row["goal"].as_str();
        match goal {
            // Absolute goals are judged; goals relative to OpenSSL cannot be.
            Some(goal) if goal.ends_with("ops/s") => {
                let target: u64 = goal
                    .trim_start_matches(">= ")
                    .trim_end_matches(" ops/s")
                    .replace(',', "")
                    .parse()
                    .unwrap();
                assert_eq!(
                    row["met"],
                    row["ops_per_s"].as_u64().unwrap() >= target,
                    "{row}"
                );
            }
            Some(_) | None => assert!(row["met"].is_null(), "{row}"),
        }
    }
}
