//! Helpers for the workspace-level end-to-end tests: find the built binaries and run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The path of a workspace binary built in the same profile as this test
/// (`cargo test --workspace` builds them, since their packages have integration tests).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/..");
    let path = dir.join(name);
    assert!(path.is_file(), "{} is not built; run the tests with `cargo test --workspace --release`", path.display());
    path
}

/// The output of one run of a binary.
pub struct Run {
    /// Exit status success.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `edge-ad` with `args`.
pub fn edge_ad(args: &[&str]) -> Run {
    run(&binary("edge-ad"), args)
}

/// Runs a binary with `args` and captures its output.
pub fn run(bin: &Path, args: &[&str]) -> Run {
    let Output { status, stdout, stderr } =
        Command::new(bin).args(args).output().unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    Run {
        ok: status.success(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A path as &str (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
