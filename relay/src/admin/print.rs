//! How `tidings-relay status` and `users ...` show an answer to a person (`--json` prints
//! the answer's fields as they are instead).

use std::fmt::Write;

use super::replies::{StatusReport, UserChange, UserDetail, UserList, UserSummary};

/// A time in milliseconds since the epoch, as UTC RFC 3339.
fn time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|at| {
            at.round(jiff::Unit::Second)
                .map_or(at, |rounded| rounded)
                .to_string()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn maybe_time(ms: Option<u64>) -> String {
    ms.map_or_else(|| "never".into(), time)
}

/// Bytes with a binary unit.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {} ({n} B)", UNITS[unit])
    }
}

fn duration(secs: u64) -> String {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d {hours}h {minutes}m")
    } else if hours > 0 {
        format!("{hours}h {minutes}m {seconds}s")
    } else {
        format!("{minutes}m {seconds}s")
    }
}

/// `status` as lines of `field: value`.
pub fn status(report: &StatusReport) -> String {
    let mut out = String::new();
    let mut line = |name: &str, value: String| {
        let _ = writeln!(out, "{name:<20} {value}");
    };
    line("relay", format!("{} ({})", report.name, report.version));
    line("peer id", report.peer_id.clone());
    line("listening on", report.listen_addrs.join(" "));
    if !report.announce_addrs.is_empty() {
        line("announcing", report.announce_addrs.join(" "));
    }
    line(
        "up since",
        format!(
            "{} ({})",
            time(report.started_at_ms),
            duration(report.uptime_secs)
        ),
    );
    line(
        "users",
        format!("{} ({} suspended)", report.users, report.suspended_users),
    );
    line(
        "devices",
        format!("{} ({} online)", report.devices, report.devices_online),
    );
    line(
        "mailboxes",
        format!(
            "{} entries, {}",
            report.mailbox_entries,
            bytes(report.mailbox_bytes)
        ),
    );
    line(
        "outbox",
        format!(
            "{} entries, {}",
            report.outbox_entries,
            bytes(report.outbox_bytes)
        ),
    );
    line(
        "media blobs",
        format!(
            "{} blobs, {}",
            report.media_blobs,
            bytes(report.media_bytes)
        ),
    );
    for (name, size) in &report.database_files {
        line("database", format!("{name}: {}", bytes(*size)));
    }
    line(
        "dht routing table",
        format!("{} relays", report.dht_routing_peers),
    );
    line("last commit", maybe_time(report.last_commit_ms));
    let compact = match (report.compact_would_help, report.reclaimable_bytes) {
        (Some(true), Some(free)) => format!("would help: {} reclaimable", bytes(free)),
        (Some(true), None) => "would help".into(),
        (Some(false), _) => "would not help".into(),
        (None, _) => "unknown".into(),
    };
    line("compact", compact);
    out
}

fn summary_line(user: &UserSummary) -> String {
    let mut flags = Vec::new();
    if user.suspended_at_ms.is_some() {
        flags.push("suspended");
    }
    if !user.home_here {
        flags.push("moved away");
    }
    format!(
        "{}  registered {}  {} devices  mailbox {} entries / {}  media {}  last seen {}{}",
        user.user,
        time(user.registered_at_ms),
        user.devices,
        user.mailbox_entries,
        bytes(user.mailbox_bytes),
        bytes(user.media_bytes),
        maybe_time(user.last_seen_ms),
        if flags.is_empty() {
            String::new()
        } else {
            format!("  [{}]", flags.join(", "))
        }
    )
}

/// `users list`: one line per user.
pub fn user_list(list: &UserList) -> String {
    let mut out = String::new();
    for user in &list.users {
        let _ = writeln!(out, "{}", summary_line(user));
    }
    if list.truncated {
        let _ = writeln!(out, "(more users are registered than listed)");
    }
    if list.users.is_empty() {
        let _ = writeln!(out, "no users are registered");
    }
    out
}

/// `users show USER`.
pub fn user_detail(detail: &UserDetail) -> String {
    let user = &detail.summary;
    let mut out = String::new();
    let _ = writeln!(out, "user                 {}", user.user);
    let _ = writeln!(out, "registered           {}", time(user.registered_at_ms));
    let _ = writeln!(
        out,
        "home                 {}",
        if user.home_here {
            "this relay"
        } else {
            "moved to another relay"
        }
    );
    let _ = writeln!(
        out,
        "suspended            {}",
        user.suspended_at_ms
            .map_or_else(|| "no".into(), |at| format!("since {}", time(at)))
    );
    let _ = writeln!(
        out,
        "last seen            {}",
        maybe_time(user.last_seen_ms)
    );
    let _ = writeln!(
        out,
        "mailbox              {} entries, {} (quota per device: {} entries, {})",
        user.mailbox_entries,
        bytes(user.mailbox_bytes),
        detail.mailbox_quota_entries,
        bytes(detail.mailbox_quota_bytes)
    );
    let _ = writeln!(
        out,
        "outbox               {} entries (share: {})",
        user.outbox_entries, detail.outbox_quota_entries
    );
    let _ = writeln!(
        out,
        "media                {} of {} ({} uploads in progress)",
        bytes(user.media_bytes),
        bytes(detail.media_quota_bytes),
        detail.media_uploads
    );
    let _ = writeln!(out, "devices              {}", user.devices);
    for device in &detail.devices {
        let _ = writeln!(
            out,
            "  {}  registered {}  {}  mailbox {} entries / {}",
            device.device,
            time(device.registered_at_ms),
            if device.online {
                "online".to_string()
            } else {
                format!("last seen {}", maybe_time(device.last_seen_ms))
            },
            device.mailbox_entries,
            bytes(device.mailbox_bytes)
        );
    }
    out
}

/// What suspend, resume or remove did, in one line.
pub fn change(verb: &str, change: &UserChange) -> String {
    if !change.changed {
        return format!("{} was already {verb}\n", change.user);
    }
    let mut out = format!("{verb} {}", change.user);
    if change.sessions_ended > 0 {
        let _ = write!(out, "; {} sessions ended", change.sessions_ended);
    }
    if change.mailbox_entries_deleted > 0 || change.media_blobs_deleted > 0 {
        let _ = write!(
            out,
            "; {} mailbox entries and {} media blobs deleted",
            change.mailbox_entries_deleted, change.media_blobs_deleted
        );
    }
    out.push('\n');
    out
}
