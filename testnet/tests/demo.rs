//! The demo as a user runs it: real relay child processes, exit code 0, every step printed
//! (Alice's second device included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn the_demo_delivers_everything_and_exits_zero() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings-testnet"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for line in [
        "✓ sent (stored by relay 1)",
        "(relay 1 -> relay 3 -> bob)",
        "alice sees    ✓✓ delivered",
        "alice sees    ✓✓ read",
        "his relay (relay 3) crashes (SIGKILL)",
        "Relay 3 is restarted; relay 1's outbox delivers to it.",
        "all three arrived, in order",
        "5. A group across the three relays.",
        "bob got       \"Saturday, 8:00 at the trailhead\"",
        "carol got     \"Saturday, 8:00 at the trailhead\"",
        "alice sees    delivered to 2 of 2, read by 1 of 2",
        "6. Alice links her laptop as a second device.",
        "the laptop got Alice's contacts from her phone",
        "phone got     \"Dinner at 7? (from Bob)\"",
        "laptop got    \"Dinner at 7? (from Bob)\"",
        "alice reads it on the laptop",
        "phone shows   read (nothing unread from bob)",
        "bob sees      ✓✓ read",
        "OK: every message delivered once, in order, across relays, a relay crash, a group and two devices.",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}
