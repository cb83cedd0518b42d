//! The `tidings` binary run as a person runs it, on one data dir.

use std::{path::Path, process::Output};

/// Runs `tidings --data-dir DIR ARGS...` (no passphrase from the environment).
pub fn tidings(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("TIDINGS_PASSPHRASE")
        .output()
        .unwrap()
}

/// Runs it and returns its standard output, failing the test (with both outputs) if it
/// did not succeed.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let output = tidings(dir, args);
    assert!(
        output.status.success(),
        "tidings {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}
