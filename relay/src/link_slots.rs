//! Link slots: sealed link packages waiting, in memory and for minutes, for the device being linked to take them.
//!
//! A device of an account leaves a package for a device its account's list names
//! (`PutLink`); that device takes it once, before it is registered (`TakeLink`). Slots are
//! bounded per account and in all, expire, and are never written to disk: a restart only
//! makes the person approve the link again.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tidings_protocol::{DeviceId, UserId};
use tokio::time::Instant;

/// Packages one account may have waiting at once.
pub const MAX_PENDING_LINKS_PER_ACCOUNT: usize = 2;

/// Packages waiting at this relay at once, over all accounts.
pub const MAX_PENDING_LINKS: usize = 1024;

/// How long a package waits before it is dropped (a link code is shown for as long).
pub const LINK_SLOT_TTL: Duration = Duration::from_secs(10 * 60);

/// Why a package was not left.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutLinkError {
    /// The account already has [`MAX_PENDING_LINKS_PER_ACCOUNT`] packages waiting.
    #[error("your account already has {max} link packages waiting; let them be taken or expire")]
    AccountFull {
        /// The cap.
        max: usize,
    },
    /// The relay holds [`MAX_PENDING_LINKS`] packages.
    #[error("this relay holds {max} link packages; try again in a few minutes")]
    RelayFull {
        /// The cap.
        max: usize,
    },
    /// Another account left a package for this device that waits to be taken.
    #[error("another account's link package waits for this device")]
    TakenByAnotherAccount,
}

struct Slot {
    account: UserId,
    package: Vec<u8>,
    expires: Instant,
}

/// The waiting packages, by the device they are for.
#[derive(Default)]
pub struct LinkSlots {
    slots: Mutex<HashMap<DeviceId, Slot>>,
}

impl LinkSlots {
    /// No packages waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves `package` from `account` for `device` until `now + LINK_SLOT_TTL`, replacing a
    /// package the same account left for it earlier.
    pub fn put(
        &self,
        account: UserId,
        device: DeviceId,
        package: Vec<u8>,
        now: Instant,
    ) -> Result<(), PutLinkError> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.retain(|_, slot| slot.expires > now);
        match slots.get(&device) {
            Some(held) if held.account != account => {
                return Err(PutLinkError::TakenByAnotherAccount);
            }
            Some(_) => {}
            None => {
                let of_account = slots.values().filter(|slot| slot.account == account);
                if of_account.count() >= MAX_PENDING_LINKS_PER_ACCOUNT {
                    return Err(PutLinkError::AccountFull {
                        max: MAX_PENDING_LINKS_PER_ACCOUNT,
                    });
                }
                if slots.len() >= MAX_PENDING_LINKS {
                    return Err(PutLinkError::RelayFull {
                        max: MAX_PENDING_LINKS,
                    });
                }
            }
        }
        slots.insert(
            device,
            Slot {
                account,
                package,
                expires: now + LINK_SLOT_TTL,
            },
        );
        Ok(())
    }

    /// Hands out the package waiting for `device`, once; `None` if there is none (or it
    /// expired).
    pub fn take(&self, device: DeviceId, now: Instant) -> Option<Vec<u8>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.remove(&device)?;
        (slot.expires > now).then_some(slot.package)
    }

    /// How many packages wait (expired ones included until the next `put`).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none wait.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(seed: u8) -> UserId {
        UserId::from_bytes([seed; 32])
    }

    fn device(n: u16) -> DeviceId {
        let mut bytes = [0u8; 32];
        bytes[..2].copy_from_slice(&n.to_be_bytes());
        DeviceId::from_bytes(bytes)
    }

    #[test]
    fn a_package_is_taken_once_by_its_device_only() {
        let slots = LinkSlots::new();
        let now = Instant::now();
        slots.put(user(1), device(1), b"p".to_vec(), now).unwrap();
        assert_eq!(slots.take(device(2), now), None);
        assert_eq!(slots.take(device(1), now), Some(b"p".to_vec()));
        assert_eq!(slots.take(device(1), now), None);
        assert!(slots.is_empty());
    }

    #[test]
    fn the_same_account_replaces_another_account_is_refused() {
        let slots = LinkSlots::new();
        let now = Instant::now();
        slots.put(user(1), device(1), b"a".to_vec(), now).unwrap();
        slots.put(user(1), device(1), b"b".to_vec(), now).unwrap();
        assert_eq!(
            slots.put(user(2), device(1), b"evil".to_vec(), now),
            Err(PutLinkError::TakenByAnotherAccount)
        );
        assert_eq!(slots.take(device(1), now), Some(b"b".to_vec()));
    }

    #[test]
    fn accounts_and_the_relay_are_capped_and_slots_expire() {
        let slots = LinkSlots::new();
        let now = Instant::now();
        slots.put(user(1), device(1), vec![1], now).unwrap();
        slots.put(user(1), device(2), vec![2], now).unwrap();
        assert_eq!(
            slots.put(user(1), device(3), vec![3], now),
            Err(PutLinkError::AccountFull {
                max: MAX_PENDING_LINKS_PER_ACCOUNT
            })
        );
        let later = now + LINK_SLOT_TTL + Duration::from_millis(1);
        assert_eq!(slots.take(device(1), later), None, "expired");
        slots.put(user(1), device(3), vec![3], later).unwrap();
        assert_eq!(slots.len(), 1, "the expired slot of device 2 was swept");

        let flood = LinkSlots::new();
        for n in 0..MAX_PENDING_LINKS {
            let account = UserId::from_bytes({
                let mut bytes = [0u8; 32];
                bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
                bytes
            });
            flood.put(account, device(n as u16), vec![0], now).unwrap();
        }
        assert_eq!(
            flood.put(user(9), device(u16::MAX), vec![0], now),
            Err(PutLinkError::RelayFull {
                max: MAX_PENDING_LINKS
            })
        );
    }
}
