//! The federation scenario at a small size: relay processes, users offline for a while, and
//! a JSON report that must show nothing lost, duplicated or reordered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn the_federation_scenario_loses_nothing() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings-testnet"))
        .args([
            "scenario",
            "federation",
            "--relays",
            "3",
            "--users",
            "8",
            "--messages",
            "120",
            "--seed",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scenario failed:\n{stdout}\n{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for (key, want) in [
        ("relays", 3),
        ("users", 8),
        ("sent", 120),
        ("accepted", 120),
        ("delivered", 120),
        ("lost", 0),
        ("duplicates", 0),
        ("out_of_order", 0),
    ] {
        assert_eq!(report[key], want, "{key} in {report}");
    }
    assert_eq!(report["scenario"], "federation");
    for key in ["p50", "p90", "p99", "max"] {
        assert!(
            report["latency_ms"][key].is_number(),
            "latency_ms.{key} in {report}"
        );
    }
    assert!(report["wall_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_group_scenario_reaches_every_member_once_per_relay() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings-testnet"))
        .args([
            "scenario",
            "group",
            "--relays",
            "3",
            "--members",
            "9",
            "--messages",
            "30",
            "--seed",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scenario failed:\n{stdout}\n{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for (key, want) in [
        ("relays", 3),
        ("members", 9),
        ("sent", 30),
        ("accepted", 30),
        ("delivered", 240),
        ("lost", 0),
        ("duplicates", 0),
        ("out_of_order", 0),
    ] {
        assert_eq!(report[key], want, "{key} in {report}");
    }
    assert_eq!(report["scenario"], "group");
    let per_message = report["forward_batches_per_message"].as_f64().unwrap();
    assert!(per_message > 0.0 && per_message <= 2.0, "{report}");
    assert!(report["forward_batches"].as_u64().unwrap() > 0);
}
