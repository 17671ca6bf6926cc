//! An issuing station on another machine: `ykt issue --kms https://…` with an `issuer`
//! client certificate for one school issues a roster through `ykt kms serve`; the cards
//! work with the bureau's PSAM (load, purchase, clearing); a roster with a school outside
//! the certificate's scope is refused before anything is recorded; and the audit chain
//! names the client and its operator.

use crate::issue::{SCHOOL, Scratch, roster};
use crate::support::{Served, lab_officers_file, ykt, ykt_json};
use serde_json::Value;

/// The arguments as `ykt` takes them.
fn args(owned: &[String]) -> Vec<&str> {
    owned.iter().map(String::as_str).collect()
}

/// The demo's second school, outside the station's scope.
const OTHER_SCHOOL: &str = "2133010602";

#[test]
fn a_remote_station_issues_cards_for_the_schools_of_its_certificate() {
    let dir = Scratch::new("remote");
    let kms_dir = dir.path().join("kms");
    let kms_arg = kms_dir.to_str().unwrap();
    ykt_json(&["demo", "--data-dir", kms_arg]);
    let officers = lab_officers_file(dir.path());
    let officers = officers.to_str().unwrap();
    let clients = dir.path().join("clients");
    let with_officers = ["--data-dir", kms_arg, "--components-from", officers];
    ykt_json(&[&["ca", "init"][..], &with_officers].concat());
    let enrolled = ykt_json(
        &[
            &[
                "client",
                "enroll",
                "station-1",
                "--role",
                "issuer",
                "--school",
                SCHOOL,
                "--out",
                clients.to_str().unwrap(),
                "--officer",
                "zhang",
            ][..],
            &with_officers,
        ]
        .concat(),
    );
    let config = enrolled["client_config"].as_str().unwrap().to_owned();
    let served = Served::start(kms_arg);
    let url = format!("https://{}", served.address);

    // The station's own directory holds only its cards.
    let station = dir.path().join("station");
    let station_arg = station.to_str().unwrap();
    let remote = |extra: &[&str]| -> Vec<String> {
        [
            extra,
            &[
                "--kms",
                &url,
                "--client-config",
                &config,
                "--data-dir",
                station_arg,
                "--operator",
                "wang",
            ],
        ]
        .concat()
        .into_iter()
        .map(str::to_owned)
        .collect()
    };
    let good = roster(dir.path(), "good.csv", SCHOOL, 500, 5);
    let issued = ykt_json(&args(&remote(&[
        "issue",
        "batch",
        "--roster",
        good.to_str().unwrap(),
    ])));
    assert_eq!(issued["issued_now"], 5, "{issued}");
    assert_eq!(issued["status"], "done", "{issued}");
    let batch = issued["batch"].as_str().unwrap().to_owned();

    // Outside the scope: refused, nothing recorded.
    let batches_before = ykt_json(&["issue", "list", "--data-dir", kms_arg]);
    let foreign = roster(dir.path(), "foreign.csv", OTHER_SCHOOL, 600, 2);
    let run = ykt(&args(&remote(&[
        "issue",
        "batch",
        "--roster",
        foreign.to_str().unwrap(),
    ])));
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("403") && run.stderr.contains("outside the scope"),
        "{}",
        run.stderr
    );
    assert_eq!(
        ykt_json(&["issue", "list", "--data-dir", kms_arg]),
        batches_before
    );
    // Resuming a finished batch through the API issues nothing more.
    let resumed = ykt_json(&args(&remote(&["issue", "resume", &batch])));
    assert_eq!(resumed[0]["issued_now"], 0, "{resumed}");
    served.stop();

    // The KMS recorded the cards issued by the station's client and operator.
    let cards = ykt_json(&["issue", "show", &batch, "--data-dir", kms_arg]);
    let cards = cards.as_array().unwrap();
    assert_eq!(cards.len(), 5);
    assert!(cards.iter().all(|c| c["status"] == "issued"));
    let export = ykt(&["audit", "export", "--data-dir", kms_arg]).stdout;
    let acts: Vec<Value> = export
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let issues: Vec<&Value> = acts.iter().filter(|a| a["act"] == "card.issue").collect();
    let by_station = issues
        .iter()
        .filter(|a| a["actors"] == "client:station-1/operator:wang")
        .count();
    assert_eq!(by_station, 5, "{issues:?}");
    assert!(
        acts.iter()
            .any(|a| a["act"] == "api.call" && a["result"] == "refused: forbidden"),
        "the refused call is audited"
    );
    assert_eq!(
        ykt_json(&["audit", "verify", "--data-dir", kms_arg])["intact"],
        true
    );

    // The cards work at the bureau's terminal: their keys are the KMS's.
    for card in cards {
        let serial = card["serial"].as_str().unwrap();
        let file = format!("{serial}.card");
        std::fs::copy(
            station.join("cards").join(&file),
            kms_dir.join("cards").join(&file),
        )
        .unwrap();
        let terminal = |action: &str, amount: &str| {
            ykt_json(&[
                "terminal",
                action,
                "--data-dir",
                kms_arg,
                "--card",
                serial,
                "--psam",
                "33012133010601900001",
                "--amount",
                amount,
            ])
        };
        assert_eq!(terminal("load", "1000")["balance_fen"], 1000);
        terminal("purchase", "250");
    }
    let cleared = ykt_json(&["terminal", "clear", "--data-dir", kms_arg]);
    let cleared = cleared.as_array().unwrap();
    assert!(
        cleared.iter().all(|r| r["verdict"] == "valid"),
        "{cleared:?}"
    );
}
