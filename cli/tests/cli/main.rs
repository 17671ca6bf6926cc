//! Integration tests of the `ykt` binary: the lab calculator against the published vectors and
//! real-card traces of `test-vectors/data`, its error behaviour, the benchmark's output, and
//! the APDU script commands.

mod bench;
mod errors;
mod lab;
mod script;
mod support;
