//! Integration tests of the `ykt` binary: the lab calculator against the published vectors and
//! real-card traces of `test-vectors/data`, its error behaviour, and the benchmark's output.

mod bench;
mod errors;
mod lab;
mod support;
