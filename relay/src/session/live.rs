//! The sessions open per device, so that revoking a device ends every one of them.
//!
//! A session enters itself when it starts (before it learns whether its device is
//! registered, so a revocation committed meanwhile still reaches it) and leaves when it ends.
//! Bounded by the relay's session cap: one entry per open client stream.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tidings_protocol::DeviceId;
use tokio_util::sync::CancellationToken;

use crate::presence::SessionId;

/// The tokens that end one session, by why it ends.
#[derive(Clone)]
struct Ends {
    revoked: CancellationToken,
    suspended: CancellationToken,
    removed: CancellationToken,
}

/// Open sessions by device, each with the tokens that end it.
#[derive(Default)]
pub(crate) struct LiveDevices {
    sessions: Mutex<HashMap<DeviceId, HashMap<SessionId, Ends>>>,
}

/// A session's entry; leaving the registry when dropped.
pub(crate) struct LiveEntry {
    registry: Arc<LiveDevices>,
    device: DeviceId,
    session: SessionId,
    /// Cancelled when the device is revoked.
    pub revoked: CancellationToken,
    /// Cancelled when the operator suspends the device's account.
    pub suspended: CancellationToken,
    /// Cancelled when the operator removes the device's account.
    pub removed: CancellationToken,
}

impl LiveDevices {
    /// Enters a session of `device`.
    pub fn enter(self: &Arc<Self>, device: DeviceId, session: SessionId) -> LiveEntry {
        let ends = Ends {
            revoked: CancellationToken::new(),
            suspended: CancellationToken::new(),
            removed: CancellationToken::new(),
        };
        self.lock()
            .entry(device)
            .or_default()
            .insert(session, ends.clone());
        LiveEntry {
            registry: self.clone(),
            device,
            session,
            revoked: ends.revoked,
            suspended: ends.suspended,
            removed: ends.removed,
        }
    }

    /// Ends every session of each of `devices`; returns how many there were.
    pub fn revoke(&self, devices: &[DeviceId]) -> usize {
        let mut sessions = self.lock();
        let mut ended = 0;
        for device in devices {
            for ends in sessions.remove(device).unwrap_or_default().into_values() {
                ends.revoked.cancel();
                ended += 1;
            }
        }
        ended
    }

    /// Ends every session of each of `devices` because the operator suspended (`removed`
    /// false) or removed their account; returns how many there were.
    pub fn end_by_operator(&self, devices: &[DeviceId], removed: bool) -> usize {
        let mut sessions = self.lock();
        let mut ended = 0;
        for device in devices {
            for ends in sessions.remove(device).unwrap_or_default().into_values() {
                if removed {
                    ends.removed.cancel();
                } else {
                    ends.suspended.cancel();
                }
                ended += 1;
            }
        }
        ended
    }

    /// How many devices have an open session.
    pub fn devices(&self) -> usize {
        self.lock().len()
    }

    /// Whether `device` has an open session.
    pub fn is_open(&self, device: &DeviceId) -> bool {
        self.lock().contains_key(device)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, HashMap<SessionId, Ends>>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Drop for LiveEntry {
    fn drop(&mut self) {
        let mut sessions = self.registry.lock();
        if let Some(of_device) = sessions.get_mut(&self.device) {
            of_device.remove(&self.session);
            if of_device.is_empty() {
                sessions.remove(&self.device);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_a_device_ends_its_sessions_and_only_those() {
        let registry = Arc::new(LiveDevices::default());
        let (phone, laptop) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
        let first = registry.enter(phone, 1);
        let second = registry.enter(phone, 2);
        let other = registry.enter(laptop, 3);
        assert_eq!(registry.revoke(&[phone]), 2);
        assert!(first.revoked.is_cancelled() && second.revoked.is_cancelled());
        assert!(!other.revoked.is_cancelled());
        assert!(!registry.is_open(&phone));
        drop(other);
        assert!(!registry.is_open(&laptop));
    }
}
