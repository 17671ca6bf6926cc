//! `ykt bench card` (in process) prints one well-formed row per item, algorithm and transport.

use crate::support::ykt_json;

#[test]
fn card_bench_reports_balance_reads_and_purchases() {
    let out = ykt_json(&["bench", "card", "--seconds", "0.05"]);
    let rows = out.as_array().expect("an array");
    let items: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|row| {
            (
                row["item"].as_str().unwrap(),
                row["algorithm"].as_str().unwrap(),
                row["transport"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            ("GET BALANCE", "3DES", "memory"),
            ("purchase", "3DES", "memory"),
            ("GET BALANCE", "SM4", "memory"),
            ("purchase", "SM4", "memory"),
        ]
    );
    for row in rows {
        let ops = row["ops_per_s"].as_u64().unwrap();
        let apdus = row["apdus_per_op"].as_u64().unwrap();
        assert!(ops > 0, "{row}");
        // A purchase is INITIALIZE, INIT_SAM, DEBIT and CREDIT_SAM.
        let expected = if row["item"] == "purchase" { 4 } else { 1 };
        assert_eq!(apdus, expected, "{row}");
        let per_s = row["apdus_per_s"].as_u64().unwrap();
        assert!(per_s.abs_diff(ops * apdus) <= apdus, "{row}");
        let us = row["us_per_op"].as_f64().unwrap();
        assert!((us * ops as f64 / 1e6 - 1.0).abs() < 0.01, "{row}");
    }
}
