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

/// The number a goal names after `marker` (`>= 10,000 signatures/s` → 10000).
fn goal_number(goal: &str, marker: &str) -> Option<f64> {
    let rest = &goal[goal.find(marker)? + marker.len()..];
    rest.split_whitespace()
        .next()?
        .replace(',', "")
        .parse()
        .ok()
}

#[test]
fn api_bench_reports_every_scenario_without_errors() {
    let out = ykt_json(&["bench", "api", "--seconds", "0.5", "--connections", "4"]);
    assert_eq!(out["errors"], 0, "{out}");
    assert_eq!(out["connections"], 4);
    let rows = out["scenarios"].as_array().expect("scenarios");
    let shape: Vec<(&str, &str, u64)> = rows
        .iter()
        .map(|row| {
            (
                row["scenario"].as_str().unwrap(),
                row["connections"].as_str().unwrap(),
                row["batch"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("P-256 sign", "kept-alive", 1),
            ("P-256 sign", "kept-alive", 100),
            ("SM2 sign", "kept-alive", 1),
            ("SM2 sign", "kept-alive", 100),
            ("TAC verify", "kept-alive", 1000),
            ("P-256 sign", "new", 1),
        ]
    );
    for row in rows {
        assert_eq!(row["errors"], 0, "{row}");
        assert!(row["first_error"].is_null(), "{row}");
        assert!(row["requests"].as_u64().unwrap() > 0, "{row}");
        let (per_s, items_per_s) = (
            row["requests_per_s"].as_f64().unwrap(),
            row["items_per_s"].as_f64().unwrap(),
        );
        let batch = row["batch"].as_f64().unwrap();
        assert!(
            (items_per_s - per_s * batch).abs() <= 1e-6 * items_per_s,
            "{row}"
        );
        let (p50, p99, max) = (
            row["p50_ms"].as_f64().unwrap(),
            row["p99_ms"].as_f64().unwrap(),
            row["max_ms"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{row}");
        // Kept-alive rows are judged against their goal; the new-connection row has none.
        match row["goal"].as_str() {
            Some(goal) => {
                let rate = goal_number(goal, ">= ").unwrap();
                let p99_met = goal_number(goal, "p99 < ").is_none_or(|limit| p99 < limit);
                assert_eq!(row["met"], items_per_s >= rate && p99_met, "{row}");
            }
            None => {
                assert_eq!(row["connections"], "new");
                assert!(row["met"].is_null(), "{row}");
            }
        }
    }
    let hsm = out["hsm_sign"].as_array().expect("hsm_sign");
    let keys: Vec<&str> = hsm.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["api-signing-p256", "api-signing-sm2"]);
    for row in hsm {
        let (ours, openssl) = (
            row["hsm_signs_per_s"].as_f64().unwrap(),
            row["openssl_signs_per_s"].as_f64().unwrap(),
        );
        assert!(ours > 0.0 && openssl > 0.0, "{row}");
        assert!(
            (row["ratio"].as_f64().unwrap() - ours / openssl).abs() < 0.01,
            "{row}"
        );
    }

    // The soak: one mixed load, every kind of request in it, memory sampled at start and end.
    let soak = ykt_json(&["bench", "api", "--soak", "2", "--connections", "3"]);
    assert_eq!(soak["errors"], 0, "{soak}");
    assert_eq!(soak["soak_seconds"], 2);
    let mix = soak["mix"].as_array().expect("mix");
    assert_eq!(mix.len(), 6);
    let requests: u64 = mix.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    assert_eq!(soak["requests"], requests);
    assert!(
        mix.iter()
            .all(|r| r["requests"].as_u64().unwrap() > 0 && r["errors"] == 0),
        "{soak}"
    );
    let samples = soak["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 2, "{soak}");
    assert_eq!(samples[1]["at_s"], 2);
    let rss: Vec<f64> = samples
        .iter()
        .map(|s| s["rss_mib"].as_f64().unwrap())
        .collect();
    assert!(rss.iter().all(|mib| *mib > 1.0), "{soak}");
    assert_eq!(soak["rss_first_mib"].as_f64(), Some(rss[0]));
    assert_eq!(soak["rss_last_mib"].as_f64(), Some(rss[1]));
    assert_eq!(soak["rss_max_mib"].as_f64(), Some(rss[0].max(rss[1])));
    // Two seconds are all warm-up: no growth is reported.
    assert!(soak["growth_after_warm_up_mib"].is_null(), "{soak}");
}
