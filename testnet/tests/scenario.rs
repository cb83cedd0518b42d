//! The federation, group, media, push, status, multidevice, presence, chaos and adversary scenarios at
//! a small size: relay processes, users offline for a while, pushes, attackers, files, and JSON
//! reports that must show nothing lost, missed, corrupt, stored twice, reordered, leaked or
//! broken into.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Runs `tidings-testnet scenario ARGS --json`, asserts it passed and returns its report.
fn scenario(args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings-testnet"))
        .arg("scenario")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scenario failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

fn assert_fields(report: &serde_json::Value, want: &[(&str, u64)]) {
    for (key, want) in want {
        assert_eq!(report[key], *want, "{key} in {report}");
    }
}

#[test]
fn the_federation_scenario_loses_nothing() {
    let report = scenario(&[
        "federation",
        "--relays",
        "3",
        "--users",
        "8",
        "--messages",
        "120",
        "--seed",
        "3",
    ]);
    assert_fields(
        &report,
        &[
            ("relays", 3),
            ("users", 8),
            ("sent", 120),
            ("accepted", 120),
            ("delivered", 120),
            ("lost", 0),
            ("duplicates", 0),
            ("out_of_order", 0),
        ],
    );
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
    let report = scenario(&[
        "group",
        "--relays",
        "3",
        "--members",
        "9",
        "--messages",
        "30",
        "--seed",
        "2",
    ]);
    assert_fields(
        &report,
        &[
            ("relays", 3),
            ("members", 9),
            ("sent", 30),
            ("accepted", 30),
            ("delivered", 240),
            ("lost", 0),
            ("duplicates", 0),
            ("out_of_order", 0),
        ],
    );
    assert_eq!(report["scenario"], "group");
    let per_message = report["forward_batches_per_message"].as_f64().unwrap();
    assert!(per_message > 0.0 && per_message <= 2.0, "{report}");
    assert!(report["forward_batches"].as_u64().unwrap() > 0);
}

/// Files sent 1:1 and to a group across two relays, re-sent and forwarded: every recipient
/// saves every file intact, re-sends and forwards upload nothing, and no relay holds a blob
/// twice (each relay's bytes stay within what was uploaded once).
#[test]
fn the_media_scenario_saves_every_file_intact_and_stores_each_blob_once() {
    let report = scenario(&[
        "media",
        "--relays",
        "2",
        "--users",
        "4",
        "--files",
        "10",
        "--min-size",
        "2K",
        "--max-size",
        "256K",
        "--seed",
        "4",
    ]);
    assert_eq!(report["scenario"], "media");
    assert_fields(
        &report,
        &[
            ("relays", 2),
            ("users", 4),
            ("offline_users", 1),
            ("groups", 1),
            ("files", 10),
            ("corrupt", 0),
            ("lost", 0),
            ("reuploads", 0),
            ("stray_blobs", 0),
        ],
    );
    let count = |key: &str| report[key].as_u64().unwrap();
    assert!(count("resends") > 0 && count("forwards") > 0, "{report}");
    assert_eq!(count("accepted"), count("messages"), "{report}");
    assert!(count("deliveries") >= count("messages"), "{report}");
    assert_eq!(count("saved"), count("deliveries"), "{report}");
    // Each file went up once, sealed: its bytes plus a 16-byte tag per 64 KiB chunk.
    let (plain, uploaded) = (count("file_bytes"), count("bytes_uploaded"));
    let tags = 16 * (count("file_bytes") / 65_536 + count("files"));
    assert!(plain < uploaded && uploaded <= plain + tags, "{report}");
    let stored: Vec<u64> = report["bytes_stored_per_relay"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bytes| bytes.as_u64().unwrap())
        .collect();
    assert_eq!(stored.len(), 2, "{report}");
    // Every blob lives on its uploader's relay; none twice on one relay.
    assert!(stored.iter().sum::<u64>() >= uploaded, "{report}");
    assert!(stored.iter().all(|bytes| *bytes <= uploaded), "{report}");
    for blobs in report["blobs_per_relay"].as_array().unwrap() {
        assert!(blobs.as_u64().unwrap() <= 10, "{report}");
    }
    assert!(report["dedupe_ratio"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["save_ms"]["p50"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["wall_s"].as_f64().unwrap() > 0.0);
}

/// Accounts with up to three devices: deliveries counted per intended device, a device
/// removed halfway that gets nothing sent after (nor holds a key to it), reads that show on
/// the account's other devices. Every other device learns of the removal from the account's
/// notice (and asks for the list) before phase 2, so no group message after it goes under a
/// session the removed device holds the key of.
/// Offline devices with push subscriptions on two relays get 1:1 and group messages; every
/// delivery is stored by a wake that a decrypted push caused, and no push carries a text, a
/// user id or a name.
#[test]
fn the_push_scenario_wakes_every_offline_device_and_leaks_nothing() {
    let report = scenario(&[
        "push",
        "--relays",
        "2",
        "--users",
        "4",
        "--messages",
        "24",
        "--seed",
        "5",
    ]);
    assert_eq!(report["scenario"], "push");
    assert_fields(
        &report,
        &[
            ("relays", 2),
            ("users", 4),
            ("group_members", 3),
            ("messages", 24),
            ("accepted", 24),
            ("missed", 0),
            ("leaked_content", 0),
            ("bad_pushes", 0),
            ("lost", 0),
            ("pushes_within_interval", 0),
        ],
    );
    let count = |key: &str| report[key].as_u64().unwrap();
    assert!(count("deliveries") >= 24, "{report}");
    assert_eq!(count("delivered"), count("deliveries"), "{report}");
    // Pushes are coalesced (at most one per device per second), and each woke its device.
    assert!(count("pushes") > 0, "{report}");
    assert!(count("pushes") <= count("deliveries"), "{report}");
    assert!(
        count("wakeups") > 0 && count("wakeups") <= count("pushes"),
        "{report}"
    );
    assert!(count("announced") >= count("pushes"), "{report}");
    let latency = &report["push_to_delivered_ms"];
    assert!(latency["p50"].as_f64().unwrap() > 0.0, "{report}");
    assert!(latency["p99"].as_f64().unwrap() >= latency["p50"].as_f64().unwrap());
}

#[test]
fn the_multidevice_scenario_reaches_every_device_and_shuts_the_removed_one_out() {
    let report = scenario(&[
        "multidevice",
        "--relays",
        "2",
        "--users",
        "5",
        "--devices-per-user",
        "3",
        "--messages",
        "80",
        "--seed",
        "1",
    ]);
    assert_fields(
        &report,
        &[
            ("relays", 2),
            ("users", 5),
            ("devices", 9),
            ("group_members", 3),
            ("sent", 80),
            ("accepted", 80),
            ("lost", 0),
            ("duplicates", 0),
            ("out_of_order", 0),
            ("removed_device_leaks", 0),
            ("removed_device_readable", 0),
            ("removal_unlearned", 0),
            ("sync_unconfirmed", 0),
        ],
    );
    assert_eq!(report["scenario"], "multidevice");
    let count = |key: &str| report[key].as_u64().unwrap();
    // Every message reaches at least one other device (recipient or own).
    assert!(count("delivered") >= 80, "{report}");
    assert!(count("removed_device_group_keys") > 0, "{report}");
    assert!(count("removed_device_attempts") > 0, "{report}");
    assert_eq!(
        count("removed_device_revoked"),
        count("removed_device_attempts"),
        "{report}"
    );
    assert!(count("sync_reads") > 0, "{report}");
    for key in ["p50", "p99"] {
        assert!(
            report["sync_lag_ms"][key].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
}

#[test]
fn the_presence_scenario_keeps_privacy_tells_in_time_and_never_stores_typing() {
    let report = scenario(&[
        "presence",
        "--relays",
        "3",
        "--users",
        "6",
        "--rounds",
        "3",
        "--heartbeat-timeout",
        "2",
    ]);
    assert_fields(
        &report,
        &[
            ("relays", 3),
            ("watchers", 3),
            ("subjects", 3),
            ("privacy_violations", 0),
            ("typing_stored", 0),
            ("stale_online_after_timeout", 0),
            ("missed_updates", 0),
            ("typing_to_offline_reached", 0),
        ],
    );
    assert_eq!(report["scenario"], "presence");
    let count = |key: &str| report[key].as_u64().unwrap();
    assert!(count("presence_updates") > 0, "{report}");
    assert!(
        count("messages_stored") > 0,
        "the stored counter counts: {report}"
    );
    assert!(count("typing_sent") > 0 && count("typing_seen") == count("typing_sent"));
    assert!(count("texts_sent") > 0 && count("texts_read") == count("texts_sent"));
    assert!(count("typing_to_offline") > 0, "{report}");
    for key in ["p50", "p99", "max"] {
        assert!(report["presence_latency_ms"][key].is_number(), "{report}");
    }
    // Every subject vanished once (frozen, connection open): shown offline within the
    // heartbeat timeout plus the scenario's grace.
    let vanished = report["vanished_offline_ms"]["max"].as_f64().unwrap();
    assert!(vanished > 0.0 && vanished <= 5_000.0, "{report}");
}

#[test]
fn the_chaos_scenario_survives_kills_partitions_and_offline_users() {
    let report = scenario(&[
        "chaos",
        "--relays",
        "3",
        "--users",
        "10",
        "--messages",
        "240",
        "--rate",
        "40",
        "--kill-every",
        "1.5",
        "--partition",
        "--seed",
        "5",
    ]);
    assert_fields(
        &report,
        &[
            ("relays", 3),
            ("users", 10),
            ("sent", 240),
            ("accepted", 240),
            ("lost", 0),
            ("duplicates", 0),
            ("out_of_order", 0),
            ("seed", 5),
        ],
    );
    assert_eq!(report["scenario"], "chaos");
    // The fixed seed draws kills, partitions and offline users inside the 6 s of traffic.
    for key in ["kills", "partitions", "offline_episodes", "group_messages"] {
        assert!(report[key].as_u64().unwrap() > 0, "{key} in {report}");
    }
    // Every accepted message reached each of its recipients: at least one each.
    assert!(report["delivered"].as_u64().unwrap() >= 240, "{report}");
}

/// Every attack of issue 12, run against honest users while they chat. Fails until the
/// fixes of issue 12 are in: today every attack succeeds.
#[test]
fn the_adversary_scenario_finds_no_attack_that_works() {
    let report = scenario(&[
        "adversary",
        "--relays",
        "3",
        "--users",
        "4",
        "--messages",
        "30",
        "--seed",
        "2",
    ]);
    assert_eq!(report["scenario"], "adversary");
    assert_fields(
        &report,
        &[
            ("relays", 3),
            ("users", 4),
            ("sent", 30),
            ("accepted", 30),
            ("honest_lost", 0),
            ("duplicates", 0),
            ("out_of_order", 0),
            ("attacks_succeeded", 0),
            ("attacks_unjudged", 0),
        ],
    );
    assert_eq!(report["relays_stopped_cleanly"], true, "{report}");
    let attacks = report["attacks"].as_object().unwrap();
    for name in [
        "impersonation_message",
        "impersonation_rebind",
        "impersonation_group_message",
        "group_takeover",
        "removed_member_posts",
        "group_id_squatting",
        "federation_lockout",
        "outbox_flood",
        "descriptor_flood",
        "mailbox_bytes",
        "claim_draining",
        "presence_reached_oracle",
        "presence_transition_reports",
        "presence_relay_reports",
        "typing_forgery",
        "lookup_amplification",
        "dht_long_expiry",
        "dht_records_per_peer",
        "dht_home_hijack",
        "dedupe_preclaim",
        "oversized_error_detail",
        "idle_unregistered_session",
        "client_store_permissions",
        "removed_device_kept_stream",
        "removed_device_returned",
        "removed_device_reached",
        "forged_device_list",
    ] {
        let verdict = &attacks[name];
        assert_eq!(verdict["judged"], true, "{name}: {verdict}");
        assert_eq!(verdict["succeeded"], false, "{name}: {verdict}");
    }
    for key in ["p50", "p99"] {
        assert!(report["honest_delayed_ms"][key].is_number(), "{report}");
    }
}

/// Statuses to random audiences over two relays: every audience member sees each one, nobody
/// else sees or fetches it, and after expiry plus one sweep no relay or client holds one.
#[test]
fn the_status_scenario_leaks_nothing_and_forgets_everything_at_expiry() {
    let report = scenario(&[
        "status",
        "--relays",
        "2",
        "--users",
        "4",
        "--posts",
        "8",
        "--lifetime-secs",
        "10",
        "--seed",
        "3",
    ]);
    assert_eq!(report["scenario"], "status");
    assert_fields(
        &report,
        &[
            ("relays", 2),
            ("users", 4),
            ("posts", 8),
            ("leaked", 0),
            ("lost", 0),
            ("expired_still_stored", 0),
            ("expired_still_shown", 0),
        ],
    );
    assert_eq!(report["views"], report["owed"]);
    assert!(report["views"].as_u64().unwrap() >= 8, "{report}");
}
