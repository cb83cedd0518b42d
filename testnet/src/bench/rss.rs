//! A process's resident memory (VmRSS), read once or sampled while something runs.

use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often [`Sampler`] reads each process's memory.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Resident memory of process `pid` (VmRSS in /proc/PID/status), KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reads the memory of some processes every [`SAMPLE_EVERY`] until stopped, keeping each
/// one's peak.
pub struct Sampler {
    stop: CancellationToken,
    task: JoinHandle<Vec<u64>>,
}

impl Sampler {
    /// Starts sampling `pids`.
    pub fn start(pids: Vec<u32>) -> Sampler {
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let mut peaks = vec![0u64; pids.len()];
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                for (peak, pid) in peaks.iter_mut().zip(&pids) {
                    let path = format!("/proc/{pid}/status");
                    if let Ok(status) = tokio::fs::read_to_string(&path).await
                        && let Some(rss) = parse_vm_rss(&status)
                    {
                        *peak = (*peak).max(rss);
                    }
                }
                tokio::select! {
                    _ = until.cancelled() => return peaks,
                    _ = tick.tick() => {}
                }
            }
        });
        Sampler { stop, task }
    }

    /// Stops sampling; returns each process's peak in KiB.
    pub async fn peaks(self) -> anyhow::Result<Vec<u64>> {
        self.stop.cancel();
        Ok(self.task.await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resident_size_is_read_from_the_status_file() {
        let status = "Name:\trelay\nVmPeak:\t  9000 kB\nVmRSS:\t   1234 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(1234));
        assert_eq!(parse_vm_rss("Name:\trelay\n"), None);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
