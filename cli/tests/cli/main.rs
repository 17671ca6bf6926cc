//! Integration tests of the `ykt` binary: the lab calculator against the published vectors and
//! real-card traces of `test-vectors/data`, its error behaviour, the benchmark's output, and
//! the APDU script commands, virtual cards, (with the `pcsc` feature and pcscd) cards served
//! through vpcd, issued by script and used by a terminal end to end, and the KMS commands on a
//! lab-mode bureau, the demo and the issuing station, and the KMS API over mutual TLS.

mod api;
mod bench;
mod bench_card;
mod card;
mod errors;
mod issue;
mod kms;
mod lab;
mod pcsc_e2e;
mod remote;
mod script;
mod support;
