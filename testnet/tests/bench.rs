//! The benches at a tiny size: they run, finish, and report figures with nothing lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

fn bench(args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings-testnet"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[test]
fn the_throughput_bench_delivers_everything_it_sent_and_times_it() {
    let report = bench(&[
        "throughput",
        "--pairs",
        "2",
        "--window",
        "16",
        "--seconds",
        "2",
    ]);
    assert_eq!(report["bench"], "throughput");
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent >= 32, "{report}");
    assert_eq!(report["delivered"].as_u64().unwrap(), sent, "{report}");
    assert_eq!(report["lost"], 0);
    assert!(report["msgs_per_s"].as_f64().unwrap() > 0.0);
    for key in ["p50", "p90", "p99", "max"] {
        assert!(
            report["latency_ms"][key].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
}

#[test]
fn the_drain_bench_stores_the_whole_backlog_once() {
    let report = bench(&["drain", "--messages", "600"]);
    assert_eq!(report["bench"], "drain");
    assert_eq!(report["messages"], 600);
    assert_eq!(report["drained"], 600);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicates"], 0);
    assert!(report["msgs_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_latency_bench_holds_its_rate_across_two_relays() {
    let report = bench(&["latency", "--rate", "200", "--pairs", "2", "--seconds", "2"]);
    assert_eq!(report["bench"], "latency");
    let sent = report["sent"].as_u64().unwrap();
    // 200 msg/s for 2 s, give or take the first and last tick.
    assert!((300..=420).contains(&sent), "{report}");
    assert_eq!(report["delivered"].as_u64().unwrap(), sent, "{report}");
    assert_eq!(report["lost"], 0);
    assert!(
        report["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}
