//! The media workload: random files on disk, groups, and who sends, re-sends and forwards what.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use tidings_protocol::BlobId;

use super::Params;
use crate::files;

/// Members of each scenario group, its creator included (fewer if there are fewer users).
const GROUP_SIZE: usize = 4;

/// Mixed into the seed for the files' bytes, so they are not drawn like the plan.
const FILE_SEED_SALT: u64 = 0x6d65_6469_6100;

/// One random file of the run.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Where it lies.
    pub path: PathBuf,
    /// Its plaintext size.
    pub size: u64,
    /// SHA-256 of its plaintext (as a [`BlobId`], which is a SHA-256).
    pub digest: BlobId,
}

/// Where a file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A user (index into the clients), 1:1.
    User(usize),
    /// A group (index into [`Plan::groups`]).
    Group(usize),
}

/// A file sent by `from` to `to`.
#[derive(Debug, Clone, Copy)]
pub struct Send {
    /// Index into the samples.
    pub file: usize,
    /// The sender.
    pub from: usize,
    /// Where it goes.
    pub to: Target,
    /// Whether `from` sent this file before (the upload must be reused).
    pub again: bool,
}

/// A delivery of send `send` forwarded by one of its recipients to `to`.
#[derive(Debug, Clone, Copy)]
pub struct Forward {
    /// Index into [`Plan::sends`].
    pub send: usize,
    /// Picks the forwarder among the send's recipients (modulo their number).
    pub pick: usize,
    /// Picks the user it goes to among the users other than the forwarder (modulo their
    /// number).
    pub to: usize,
}

/// Everything the run does, decided up front from the seed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Users of the run (at least two).
    pub users: usize,
    /// Per group, its members (the creator first).
    pub groups: Vec<Vec<usize>>,
    /// Sends, first sends and re-sends; a sender sends its own in this order.
    pub sends: Vec<Send>,
    /// Forwards, done once the sends were saved.
    pub forwards: Vec<Forward>,
}

impl Plan {
    /// Draws the plan for `params` (`files` samples).
    pub fn draw(params: &Params) -> Plan {
        let mut rng = StdRng::seed_from_u64(params.seed);
        let users = params.users;
        let group_count = if users >= 3 { (users / 4).max(1) } else { 0 };
        let groups: Vec<Vec<usize>> = (0..group_count)
            .map(|group| {
                let creator = group % users;
                let mut members = vec![creator];
                while members.len() < GROUP_SIZE.min(users) {
                    let member = rng.random_range(0..users);
                    if !members.contains(&member) {
                        members.push(member);
                    }
                }
                members
            })
            .collect();
        let mut plan = Plan {
            users,
            groups,
            sends: Vec::new(),
            forwards: Vec::new(),
        };
        for file in 0..params.files {
            let from = rng.random_range(0..users);
            let to = plan.target(&mut rng, from);
            plan.sends.push(Send {
                file,
                from,
                to,
                again: false,
            });
            // Every fourth file goes out twice from the same sender: the second send must
            // reuse the upload.
            if file % 4 == 1 {
                let to = plan.target(&mut rng, from);
                plan.sends.push(Send {
                    file,
                    from,
                    to,
                    again: true,
                });
            }
        }
        // Every third first send is forwarded on by one of its recipients.
        for (send, _) in plan
            .sends
            .iter()
            .enumerate()
            .filter(|(_, send)| !send.again && send.file % 3 == 2)
        {
            plan.forwards.push(Forward {
                send,
                pick: rng.random_range(0..users),
                to: rng.random_range(0..users),
            });
        }
        plan
    }

    /// A random target for `from`: one of its groups a third of the time, else another user.
    fn target(&self, rng: &mut StdRng, from: usize) -> Target {
        let own: Vec<usize> = (0..self.groups.len())
            .filter(|group| self.groups[*group].contains(&from))
            .collect();
        if !own.is_empty() && rng.random_range(0..3) == 0 {
            return Target::Group(own[rng.random_range(0..own.len())]);
        }
        Target::User(other_than(from, rng.random_range(0..self.users - 1)))
    }

    /// Who gets `to` from `from`.
    pub fn recipients(&self, from: usize, to: Target) -> Vec<usize> {
        match to {
            Target::User(user) => vec![user],
            Target::Group(group) => self.groups[group]
                .iter()
                .copied()
                .filter(|member| *member != from)
                .collect(),
        }
    }
}

/// A user index other than `from`, from a draw in `0..users - 1`.
fn other_than(from: usize, draw: usize) -> usize {
    if draw >= from { draw + 1 } else { draw }
}

/// Writes `count` random files under `dir`, log-uniform in size between `min` and `max`
/// bytes (blocking).
pub fn write_samples(
    dir: &Path,
    count: usize,
    min: u64,
    max: u64,
    seed: u64,
) -> anyhow::Result<Vec<Sample>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rng = StdRng::seed_from_u64(seed ^ FILE_SEED_SALT);
    let (low, high) = ((min.max(1)) as f64, (max.max(min).max(1)) as f64);
    let mut samples = Vec::with_capacity(count);
    for index in 0..count {
        let size = (low * (high / low).powf(rng.random::<f64>())).round() as u64;
        let size = size.clamp(min, max.max(min));
        let path = dir.join(format!("f{index}.bin"));
        let digest = files::write_random(&path, size, &mut rng)?;
        samples.push(Sample { path, size, digest });
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(users: usize, files: usize, seed: u64) -> Params {
        Params {
            relays: 2,
            users,
            files,
            min_size: 1024,
            max_size: 4096,
            seed,
        }
    }

    #[test]
    fn the_plan_follows_the_seed_and_never_sends_to_the_sender() {
        for seed in 0..20 {
            let plan = Plan::draw(&params(6, 16, seed));
            assert_eq!(plan.groups.len(), 1);
            assert!(plan.groups.iter().all(|members| members.len() == 4));
            assert_eq!(plan.sends.iter().filter(|send| !send.again).count(), 16);
            assert_eq!(plan.sends.iter().filter(|send| send.again).count(), 4);
            for send in &plan.sends {
                let recipients = plan.recipients(send.from, send.to);
                assert!(!recipients.is_empty() && !recipients.contains(&send.from));
                if let Target::Group(group) = send.to {
                    assert!(plan.groups[group].contains(&send.from));
                }
            }
            for again in plan.sends.iter().filter(|send| send.again) {
                let first = plan
                    .sends
                    .iter()
                    .find(|send| send.file == again.file)
                    .unwrap();
                assert!(!first.again && first.from == again.from);
            }
            assert!(
                plan.forwards
                    .iter()
                    .all(|forward| !plan.sends[forward.send].again)
            );
            assert_eq!(plan.forwards.len(), 5, "files 2, 5, 8, 11 and 14");
        }
        let (one, two) = (Plan::draw(&params(6, 16, 3)), Plan::draw(&params(6, 16, 3)));
        assert_eq!(format!("{one:?}"), format!("{two:?}"));
        assert!(Plan::draw(&params(2, 4, 1)).groups.is_empty());
    }

    #[test]
    fn sample_sizes_stay_within_the_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let samples = write_samples(dir.path(), 12, 1000, 50_000, 7).unwrap();
        assert_eq!(samples.len(), 12);
        for sample in &samples {
            assert!((1000..=50_000).contains(&sample.size), "{}", sample.size);
            assert_eq!(std::fs::metadata(&sample.path).unwrap().len(), sample.size);
        }
        let digests: std::collections::HashSet<_> = samples.iter().map(|s| s.digest).collect();
        assert_eq!(digests.len(), 12, "every file has its own bytes");
    }
}
