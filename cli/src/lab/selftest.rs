//! `ykt lab selftest`: the known-answer tests built into `ykt-crypto`, one row each.

use crate::output::{Output, Record, Report};

/// Runs every known-answer test; the report fails if any test did.
pub fn run() -> Report {
    let outcomes = ykt_crypto::selftest::run();
    let all_passed = outcomes.iter().all(|outcome| outcome.passed());
    let rows = outcomes
        .into_iter()
        .map(|outcome| {
            Record::new()
                .with("name", outcome.name)
                .with("source", outcome.source)
                .with("passed", outcome.passed())
                .with("failure", outcome.failure)
        })
        .collect();
    Report::with_status(Output::List(rows), all_passed)
}
