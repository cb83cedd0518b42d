//! The push scenario's messages: from random users to random others or to the group, each
//! text unique (a random tag from the seed), so a push carrying it would be found.

use rand::{RngExt, SeedableRng, rngs::StdRng};

/// Share of messages a group member sends to the group.
const GROUP_SHARE: f64 = 0.3;

/// Who a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One other user (index into the clients).
    User(usize),
    /// The group.
    Group,
}

/// One message of the run.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Its sender (index into the clients).
    pub from: usize,
    /// Where it goes.
    pub target: Target,
    /// Its text (unique in the run).
    pub text: String,
    /// Who must store it.
    pub recipients: Vec<usize>,
}

/// `count` messages among `users` users, `members` being the group's (empty: no group).
pub fn draw(users: usize, members: &[usize], count: usize, seed: u64) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut plan = Vec::with_capacity(count);
    for number in 1..=count {
        let from = rng.random_range(0..users);
        let target = if members.contains(&from) && rng.random_bool(GROUP_SHARE) {
            Target::Group
        } else {
            let mut to = rng.random_range(0..users - 1);
            if to >= from {
                to += 1;
            }
            Target::User(to)
        };
        let recipients = match target {
            Target::User(to) => vec![to],
            Target::Group => members.iter().copied().filter(|m| *m != from).collect(),
        };
        let tag: u64 = rng.random();
        let text = format!("push scenario text {tag:016x} from u{from} #{number}");
        plan.push(Planned {
            from,
            target,
            text,
            recipients,
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_never_go_to_their_sender_and_follow_the_seed() {
        let members = [0, 1, 2];
        let plan = draw(5, &members, 200, 7);
        assert_eq!(plan.len(), 200);
        for message in &plan {
            assert!(!message.recipients.is_empty());
            assert!(!message.recipients.contains(&message.from));
            if message.target == Target::Group {
                assert!(members.contains(&message.from));
                assert_eq!(message.recipients.len(), members.len() - 1);
            }
        }
        assert!(plan.iter().any(|message| message.target == Target::Group));
        let texts: std::collections::HashSet<_> = plan.iter().map(|m| &m.text).collect();
        assert_eq!(texts.len(), 200, "every text is unique");
        let again = draw(5, &members, 200, 7);
        assert!(plan.iter().zip(&again).all(|(a, b)| a.text == b.text));
        assert!(
            draw(2, &[], 20, 1)
                .iter()
                .all(|m| m.target != Target::Group)
        );
    }
}
