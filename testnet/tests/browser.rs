//! `scenario browser` without a built page: it stops before starting anything and says how to
//! build the page. (The scenario itself needs Chromium and the wasm build: `.ci/browser`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn the_browser_scenario_says_how_to_build_a_missing_page() {
    let missing = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings-testnet"))
        .args(["scenario", "browser", "--json", "--page"])
        .arg(missing.path().join("pkg"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "ran without a page: {stderr}");
    assert!(stderr.contains("run web/build.sh first"), "{stderr}");
    assert!(output.stdout.is_empty(), "printed a report without running");
}
