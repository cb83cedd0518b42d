//! Pauses between attempts to hand something to another relay: exponential, with jitter.

use std::time::Duration;

/// The pauses between attempts: `min` after the first failure, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// After the first failure (doubling after each further one).
    pub min: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Retry {
    /// `min_ms` and `max_ms` as configured (a zero floor counts as 1 ms).
    pub fn from_millis(min_ms: u64, max_ms: u64) -> Self {
        Self {
            min: Duration::from_millis(min_ms.max(1)),
            max: Duration::from_millis(max_ms.max(1)),
        }
    }

    /// The pause after `failures` failures in a row, with jitter (50% to 100% of the step),
    /// so relays that failed together do not all come back at once.
    pub fn after(&self, failures: u32) -> Duration {
        let step = self
            .min
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(self.max.max(self.min));
        step.mul_f64(rand::random::<f64>() * 0.5 + 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_from_the_floor_up_to_the_cap() {
        let retry = Retry::from_millis(100, 1000);
        for (failures, step) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let pause = retry.after(failures);
            assert!(
                pause <= Duration::from_millis(step),
                "{failures}: {pause:?}"
            );
            assert!(
                pause >= Duration::from_millis(step / 2),
                "{failures}: {pause:?}"
            );
        }
    }
}
