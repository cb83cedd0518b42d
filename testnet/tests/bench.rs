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

#[test]
fn the_fanout_bench_reaches_every_member_with_one_batch_per_other_relay() {
    let report = bench(&[
        "fanout",
        "--relays",
        "2",
        "--members",
        "6",
        "--messages",
        "5",
        "--interval-ms",
        "50",
    ]);
    assert_eq!(report["bench"], "fanout");
    assert_eq!(report["messages"], 5, "{report}");
    assert_eq!(report["online_members"], 5, "{report}");
    assert_eq!(report["deliveries_expected"], 25, "{report}");
    assert_eq!(report["deliveries"], 25, "{report}");
    assert_eq!(report["missed"], 0);
    assert_eq!(report["duplicates"], 0);
    let batches = report["forward_batches_per_message"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&batches), "{report}");
    for figure in ["all_members_ms", "member_ms"] {
        let p = &report[figure];
        assert!(p["p50"].as_f64().unwrap() > 0.0, "{report}");
        assert!(p["max"].as_f64().unwrap() >= p["p50"].as_f64().unwrap());
    }
    // A message is everyone's only once the last member has it.
    assert!(
        report["all_members_ms"]["p50"].as_f64().unwrap()
            >= report["member_ms"]["p50"].as_f64().unwrap()
    );
}

#[test]
fn the_connections_bench_measures_the_relays_memory_per_idle_device() {
    let report = bench(&["connections", "--devices", "20", "--idle-secs", "1"]);
    assert_eq!(report["bench"], "connections");
    assert_eq!(report["devices"], 20);
    assert_eq!(report["connected"], 20, "{report}");
    let before = report["rss_before_kib"].as_u64().unwrap();
    let after = report["rss_after_kib"].as_u64().unwrap();
    assert!(before > 1024 && after > before, "{report}");
    let per = report["rss_per_connection_kib"].as_f64().unwrap();
    assert!(per > 0.0 && per < 10_000.0, "{report}");
    assert!(report["connect_s"].as_f64().unwrap() > 0.0, "{report}");
}

#[test]
fn the_dht_bench_finds_every_home_record_and_counts_the_requests() {
    let report = bench(&["dht", "--relays", "5", "--users", "10"]);
    assert_eq!(report["bench"], "dht");
    // Each record looked up twice, from two random relays.
    assert_eq!(report["lookups"], 20);
    assert_eq!(report["found"], 20, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["routing_peers_min"], 4, "{report}");
    for pass in ["latency_ms", "repeat_latency_ms"] {
        assert!(report[pass]["p50"].as_f64().unwrap() > 0.0, "{report}");
    }
    // Five relays: a lookup ends at the first valid record, so it asks nobody more once one
    // came (a relay holding the record, as most do here, asks nobody at all), and never more
    // than the four others.
    let requests = &report["requests_per_lookup"];
    assert_eq!(requests, &report["requests_to_first_record"], "{report}");
    assert!(report["held_locally"].as_u64().unwrap() >= 1, "{report}");
    assert!(requests["max"].as_f64().unwrap() <= 4.0, "{report}");
}

#[test]
fn the_media_bench_times_both_sizes_through_one_relay_and_across_two() {
    let report = bench(&["media", "--size-mib", "2", "--relays", "2"]);
    assert_eq!(report["bench"], "media");
    assert_eq!(report["relays"], 2);
    let sizes = report["sizes"].as_array().unwrap();
    let bytes: Vec<u64> = sizes
        .iter()
        .map(|s| s.as_object().unwrap()["bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(bytes, [1 << 20, 2 << 20], "{report}");
    for size in sizes {
        assert_eq!(size["intact"], true, "{report}");
        for key in [
            "copy_mib_s",
            "upload_mib_s",
            "send_mib_s",
            "download_mib_s",
            "save_mib_s",
            "remote_download_mib_s",
            "remote_save_mib_s",
        ] {
            assert!(size[key].as_f64().unwrap() > 0.0, "{key} in {report}");
        }
        let baseline = size["rss_baseline_kib"].as_array().unwrap();
        let peak = size["rss_peak_kib"].as_array().unwrap();
        assert_eq!((baseline.len(), peak.len()), (2, 2), "{report}");
        for (base, peak) in baseline.iter().zip(peak) {
            let (base, peak) = (base.as_u64().unwrap(), peak.as_u64().unwrap());
            // Sampled apart, a peak may sit a little under the baseline if memory was freed.
            assert!(base > 1024 && peak > 1024, "{report}");
        }
    }
    assert_eq!(report["rss_peak_growth_kib"].as_array().unwrap().len(), 2);
}

#[test]
fn the_search_bench_indexes_what_it_received_and_its_results_agree_with_a_scan() {
    let report = bench(&[
        "search",
        "--messages",
        "1200",
        "--senders",
        "3",
        "--queries",
        "140",
    ]);
    assert_eq!(report["bench"], "search");
    assert_eq!(report["messages"], 1200);
    assert_eq!(report["mismatches"], 0, "{report}");
    assert!(report["results"].as_u64().unwrap() > 0, "{report}");
    assert!(report["index_bytes"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["query_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}

/// `bench relay` with `args`: its report, after the checks every scenario shares (each
/// relay's CPU and memory read, nothing refused, lost or doubled).
fn relay_bench(args: &[&str], relays: usize) -> serde_json::Value {
    let mut all = vec!["relay"];
    all.extend_from_slice(args);
    let report = bench(&all);
    assert_eq!(report["bench"], "relay");
    assert_eq!(report["relays"], relays);
    let usage = report["relay_usage"].as_array().unwrap();
    assert_eq!(usage.len(), relays, "{report}");
    for relay in usage {
        assert!(relay["cpu_percent"].as_f64().unwrap() >= 0.0, "{report}");
        assert!(relay["rss_start_kib"].as_u64().unwrap() > 1024, "{report}");
        assert!(relay["rss_end_kib"].as_u64().unwrap() > 1024, "{report}");
    }
    for key in ["refused", "lost", "duplicates"] {
        assert_eq!(report[key], 0, "{key} in {report}");
    }
    report
}

/// The checks of a run that sent envelopes: all delivered, rates and percentiles present.
fn assert_all_delivered(report: &serde_json::Value) {
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent > 0, "{report}");
    assert_eq!(report["delivered"].as_u64().unwrap(), sent, "{report}");
    assert!(report["accepted_per_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        report["delivered_per_s"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(report["ack_ms"][key].as_f64().unwrap() > 0.0, "{report}");
    }
}

#[test]
fn the_relay_bench_throughput_delivers_every_accepted_envelope_on_one_relay_and_across_two() {
    for relays in ["1", "2"] {
        let report = relay_bench(
            &[
                "--scenario",
                "throughput",
                "--relays",
                relays,
                "--pairs",
                "2",
                "--window",
                "8",
                "--secs",
                "1",
                "--max-messages",
                "400",
            ],
            relays.parse().unwrap(),
        );
        assert_eq!(report["scenario"], "throughput");
        assert_eq!(report["window"], 8);
        assert_all_delivered(&report);
        assert!(
            report["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
}

#[test]
fn the_relay_bench_rate_sends_at_its_rate_and_times_every_delivery() {
    let report = relay_bench(
        &[
            "--scenario",
            "rate",
            "--rate",
            "200",
            "--burst",
            "10",
            "--pairs",
            "2",
            "--secs",
            "2",
        ],
        1,
    );
    assert_eq!(
        (report["rate"].clone(), report["burst"].clone()),
        (200.into(), 10.into())
    );
    // 200 msg/s for 2 s in bursts of 10: exactly the prebuilt 400, or a burst less if the
    // last tick fell on the deadline.
    let sent = report["sent"].as_u64().unwrap();
    assert!((390..=400).contains(&sent), "{report}");
    assert_all_delivered(&report);
    let latency = &report["latency_ms"];
    assert_eq!(latency["count"].as_u64().unwrap(), sent, "{report}");
    assert!(latency["p999"].as_f64().unwrap() >= latency["p50"].as_f64().unwrap());
}

#[test]
fn the_relay_bench_offline_drains_everything_pushed_while_receivers_were_away() {
    let report = relay_bench(
        &["--scenario", "offline", "--messages", "300", "--pairs", "2"],
        1,
    );
    assert_eq!(report["sent"], 300, "{report}");
    assert_all_delivered(&report);
    assert!(report["drain_per_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report.get("latency_ms").is_none(), "{report}");
    assert_eq!(report["drain_relay_usage"].as_array().unwrap().len(), 1);
}

#[test]
fn the_relay_bench_idle_connects_every_device_and_weighs_it() {
    let report = relay_bench(
        &["--scenario", "idle", "--devices", "20", "--idle-secs", "1"],
        1,
    );
    assert_eq!(report["devices"], 20);
    assert_eq!(report["connected"], 20, "{report}");
    assert!(
        report["first_streams_failed"].as_u64().is_some(),
        "{report}"
    );
    assert!(report["connections_failed"].as_u64().is_some(), "{report}");
    let per = report["rss_per_device_kib"].as_f64().unwrap();
    assert!(per > 0.0 && per < 10_000.0, "{report}");
}

#[test]
fn the_relay_bench_runs_back_to_back_on_one_relay_and_keeps_its_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kept");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings-testnet"))
        .args(["bench", "relay", "--scenario", "throughput", "--runs", "3"])
        .args(["--pairs", "2", "--window", "8", "--secs", "1"])
        .args(["--max-messages", "200", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reports: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(reports.len(), 3, "one JSON line per run:\n{stdout}");
    let mut total = 0;
    for (index, report) in reports.iter().enumerate() {
        assert_eq!(report["run"], index + 1, "{report}");
        assert_all_delivered(report);
        // Each run's envelopes and warm-ups add to the same relay's count.
        total += report["sent"].as_u64().unwrap() + 2;
        assert_eq!(report["accepted_total"], total, "{report}");
        let sizes = report["relay_db_bytes"].as_array().unwrap();
        assert_eq!(sizes.len(), 1, "{report}");
        assert!(sizes[0].as_u64().unwrap() > 0, "{report}");
    }
    // The store stays in --data-dir (redb may shrink the file when the relay stops).
    let kept = data.join("relay1").join("relay.redb");
    assert!(std::fs::metadata(&kept).unwrap().len() > 0);
}
