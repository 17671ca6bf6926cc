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

/// The lab officers zhang and li (the lab quorum) as a `--components-from` file in `dir`.
pub fn lab_officers_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("officers.toml");
    std::fs::write(
        &path,
        "[[officer]]\nname = \"zhang\"\npassword = \"zhang-lab-passphrase\"\n\n\
         [[officer]]\nname = \"li\"\npassword = \"li-lab-passphrase\"\n",
    )
    .expect("write the officers file");
    path
}

/// `ykt kms serve` on a data directory, on a free port of 127.0.0.1; stopped with SIGTERM
/// when dropped.
pub struct Served {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl Served {
    /// Serves `data_dir` and waits until the port accepts connections.
    pub fn start(data_dir: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_ykt"))
            .args(["kms", "serve", "--data-dir", data_dir, "--listen", &address])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ykt kms serve");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "ykt kms serve did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child, address }
    }

    /// Stops the server with SIGTERM and expects a clean exit.
    pub fn stop(mut self) {
        self.terminate();
        let status = self.child.wait().expect("wait for ykt kms serve");
        assert!(status.success(), "ykt kms serve ended with {status}");
    }

    fn terminate(&self) {
        drop(
            Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status(),
        );
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.terminate();
        drop(self.child.wait());
    }
}
