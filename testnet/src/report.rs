//! Scenario reports: counts, latency percentiles, a human summary and one JSON object.

use serde::Serialize;

/// A finished run's report: shown for people or as one JSON object, with a verdict.
pub trait Outcome {
    /// Prints the report (as JSON with `json`).
    fn show(&self, json: bool) -> anyhow::Result<()>;
    /// Why the run failed, if it did.
    fn failure(&self) -> Option<&'static str> {
        None
    }
}

impl Outcome for Report {
    fn show(&self, json: bool) -> anyhow::Result<()> {
        self.print_with_verdict(json)
    }

    fn failure(&self) -> Option<&'static str> {
        (!self.passed()).then_some("the scenario found lost, duplicated or reordered messages")
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl std::fmt::Display for Percentiles {
    /// "p50 1.2 ms, p90 3.4 ms, p99 5.6 ms, max 7.8 ms".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.p50, self.p90, self.p99, self.max
        )
    }
}

impl Percentiles {
    /// Percentiles of `samples` (milliseconds); zeros when there are none.
    pub fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| {
            let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[index.min(samples.len() - 1)]
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: samples[samples.len() - 1],
        }
    }
}

/// What a delivery scenario measured. Loss, duplicates and order come from what the
/// recipients' clients stored, not from what they were told.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// Relay processes.
    pub relays: usize,
    /// Users.
    pub users: usize,
    /// Messages handed to senders.
    pub sent: usize,
    /// Messages their home relay accepted (✓).
    pub accepted: usize,
    /// Accepted messages found in the recipient's history.
    pub delivered: usize,
    /// Accepted messages missing from the recipient's history.
    pub lost: usize,
    /// Messages stored more than once by a recipient.
    pub duplicates: usize,
    /// Messages stored before an earlier one from the same sender in the same conversation.
    pub out_of_order: usize,
    /// From sending to being stored on the recipient's device.
    pub latency_ms: Percentiles,
    /// Wall-clock time of the whole run, seconds.
    pub wall_s: f64,
    /// Users that went offline for part of the run.
    pub offline_users: usize,
    /// Random seed of the workload.
    pub seed: u64,
}

impl Report {
    /// Whether nothing was lost, duplicated or reordered.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.accepted == self.sent
    }

    /// Prints the report for people, or as one JSON object.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "{} scenario: {} relays, {} users ({} offline for a while), {} messages, seed {}",
            self.scenario, self.relays, self.users, self.offline_users, self.sent, self.seed
        );
        println!(
            "  sent {}  accepted {}  delivered {}  lost {}  duplicates {}  out of order {}",
            self.sent, self.accepted, self.delivered, self.lost, self.duplicates, self.out_of_order
        );
        println!(
            "  latency (send -> stored on the recipient's device): {}",
            self.latency_ms
        );
        println!("  wall {:.1} s", self.wall_s);
        Ok(())
    }

    /// Like [`Report::print`], with the verdict line for people.
    pub fn print_with_verdict(&self, json: bool) -> anyhow::Result<()> {
        self.print(json)?;
        if !json {
            println!("  {}", if self.passed() { "OK" } else { "FAILED" });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranked_samples() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(samples);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (51.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(Vec::new()).max, 0.0);
    }
}
