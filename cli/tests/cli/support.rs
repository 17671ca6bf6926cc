//! Running the built `ykt` binary and reading its output.

use serde_json::Value;
use std::process::Command;
use ykt_test_vectors::{Vector, VectorFile};

/// What one run of `ykt` produced.
pub struct Run {
    /// Exit status code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `ykt ARGS...`.
pub fn ykt(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_ykt"))
        .args(args)
        .output()
        .expect("run ykt");
    Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// Runs `ykt --json ARGS...`, expects exit status `code` and nothing on stderr, and parses the
/// single line of JSON it printed.
pub fn ykt_json_with_code(args: &[&str], code: i32) -> Value {
    let run = ykt(&[&["--json"], args].concat());
    assert_eq!(run.code, code, "ykt {args:?}: stderr {}", run.stderr);
    assert!(
        run.stderr.is_empty(),
        "ykt {args:?} wrote to stderr: {}",
        run.stderr
    );
    assert_eq!(
        run.stdout.lines().count(),
        1,
        "ykt {args:?}: JSON is one line"
    );
    serde_json::from_str(&run.stdout).expect("stdout is JSON")
}

/// Runs `ykt --json ARGS...`, expects success, and parses the JSON.
pub fn ykt_json(args: &[&str]) -> Value {
    ykt_json_with_code(args, 0)
}

/// Loads `test-vectors/data/FILE`.
pub fn vector_file(file: &str) -> VectorFile {
    VectorFile::load(file).expect("vector file")
}

/// A string field of a vector.
pub fn field<'a>(vector: &Vector<'a>, name: &str) -> &'a str {
    vector.str(name).expect("vector field")
}
