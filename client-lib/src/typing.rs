//! When to tell the other side that we type: the throttle every client (the CLI's chat view,
//! the browser page) uses, so receivers see the same "typing…" from each.

use std::time::Duration;

use crate::runtime::Instant;

/// While keys keep coming, "typing" is sent again this often (receivers expire it after
/// [`crate::events::TYPING_EXPIRES`]).
pub const TYPING_REFRESH: Duration = Duration::from_secs(4);

/// Keys idle this long mean typing stopped.
pub const TYPING_IDLE: Duration = Duration::from_secs(3);

/// Whether we told the other side we are typing, and when keys last came.
#[derive(Debug, Default, Clone)]
pub struct OutgoingTyping {
    sent_at: Option<Instant>,
    last_key: Option<Instant>,
}

impl OutgoingTyping {
    /// A key was pressed: whether to send "typing" now.
    pub fn on_key(&mut self, now: Instant) -> bool {
        self.last_key = Some(now);
        let due = self
            .sent_at
            .is_none_or(|sent| now.duration_since(sent) >= TYPING_REFRESH);
        if due {
            self.sent_at = Some(now);
        }
        due
    }

    /// The line was sent or keys went idle: whether to send "stopped".
    pub fn stop_if(&mut self, now: Instant, sent_line: bool) -> bool {
        let idle = self
            .last_key
            .is_some_and(|last| now.duration_since(last) >= TYPING_IDLE);
        if self.sent_at.is_some() && (sent_line || idle) {
            *self = Self::default();
            return true;
        }
        false
    }

    /// When keys will have been idle long enough to send "stopped", while "typing" is out.
    pub fn idle_at(&self) -> Option<Instant> {
        self.sent_at?;
        self.last_key.map(|last| last + TYPING_IDLE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_is_sent_on_the_first_key_refreshed_and_stopped_when_idle_or_sent() {
        let start = Instant::now();
        let mut typing = OutgoingTyping::default();
        assert_eq!(typing.idle_at(), None, "nothing said yet");
        assert!(typing.on_key(start), "first key sends typing");
        assert_eq!(typing.idle_at(), Some(start + TYPING_IDLE));
        assert!(!typing.on_key(start + Duration::from_secs(1)), "no flood");
        assert!(typing.on_key(start + TYPING_REFRESH + Duration::from_secs(1)));
        let later = start + TYPING_REFRESH + Duration::from_secs(2);
        assert!(!typing.stop_if(later, false), "still typing");
        assert!(
            typing.stop_if(later + TYPING_IDLE, false),
            "idle means stopped"
        );
        assert_eq!(typing.idle_at(), None, "stopped: nothing due");
        assert!(!typing.stop_if(later + TYPING_IDLE * 2, true), "said once");
        assert!(typing.on_key(later));
        assert!(typing.stop_if(later, true), "sending the line stops typing");
    }
}
