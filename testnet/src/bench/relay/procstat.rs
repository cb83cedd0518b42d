//! Relay processes' CPU time (utime + stime in /proc/PID/stat) over a timed part, and their
//! resident memory (VmRSS), as the report shows them.

use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::{bench::rss::rss_kib, cluster::Cluster};

/// CPU time a process has used so far (user plus system), seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_cpu_ticks(&stat).with_context(|| format!("no CPU times in {path}"))?;
    Ok(ticks as f64 / clock_ticks_per_second()?)
}

/// utime + stime, in clock ticks, from a /proc/PID/stat line.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses of
    // its own: count fields after the last ')'. utime and stime are fields 14 and 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> anyhow::Result<f64> {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::CLK_TCK)? {
        Some(ticks) if ticks > 0 => Ok(ticks as f64),
        _ => bail!("the clock tick rate is unknown"),
    }
}

/// One relay's figures over a timed part.
#[derive(Debug, Clone, Serialize)]
pub struct RelayUsage {
    /// Index in the cluster (0: senders' home).
    pub relay: usize,
    /// CPU time over the timed part, as a percentage of one core.
    pub cpu_percent: f64,
    /// Resident memory when the timed part started, KiB.
    pub rss_start_kib: u64,
    /// Resident memory when it ended, KiB.
    pub rss_end_kib: u64,
}

/// Readings taken when a timed part starts.
pub struct Usage {
    started: Instant,
    start: Vec<(u32, f64, u64)>,
}

impl Usage {
    /// Reads every relay's CPU time and memory now.
    pub fn start(cluster: &Cluster) -> anyhow::Result<Self> {
        let start = cluster
            .relays
            .iter()
            .map(|relay| {
                let pid = relay.pid();
                Ok((pid, cpu_seconds(pid)?, rss_kib(pid)?))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            started: Instant::now(),
            start,
        })
    }

    /// Reads them again: each relay's use since [`Usage::start`].
    pub fn finish(&self) -> anyhow::Result<Vec<RelayUsage>> {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-6);
        self.start
            .iter()
            .enumerate()
            .map(|(relay, (pid, cpu_start, rss_start_kib))| {
                let cpu = cpu_seconds(*pid)? - cpu_start;
                Ok(RelayUsage {
                    relay,
                    cpu_percent: 100.0 * cpu / elapsed,
                    rss_start_kib: *rss_start_kib,
                    rss_end_kib: rss_kib(*pid)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "4242 (tidings (relay) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 50 0 0 20 0 9 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("4242 (relay) S 1"), None);
        let own = cpu_seconds(std::process::id()).unwrap();
        assert!(own >= 0.0);
    }
}
