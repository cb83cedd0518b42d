//! Binding what another relay hands over to its senders: each sending device certified by
//! its account, and the handing relay that account's home.
//!
//! An envelope's signature proves only which device made it. Without these checks any relay
//! (or a bare libp2p peer) could hand over envelopes whose sender names someone else's
//! account with the attacker's own device.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use futures::{StreamExt, stream};
use libp2p::PeerId;
use tidings_protocol::{Address, DeviceCert, DeviceId, ErrorAnswer, ErrorCode, UserId};

use crate::{
    federation::{Directory, HomeCheck, LookupBudget},
    ingest::storage_answer,
};

/// Most (device, account) bindings remembered after their certificate verified.
const MAX_CERTIFIED: usize = 100_000;

/// Home lookups one check runs at once.
const LOOKUPS_AT_ONCE: usize = 8;

/// Certificates already verified, so a busy link costs one signature check per device.
#[derive(Default)]
pub(crate) struct SenderCheck {
    certified: Mutex<HashMap<DeviceId, UserId>>,
}

impl SenderCheck {
    /// Whether `cert` binds `sender`'s device to its account (verifying it the first time).
    fn certified(&self, sender: &Address, cert: Option<&DeviceCert>) -> bool {
        let mut certified = self
            .certified
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if certified.get(&sender.device) == Some(&sender.user) {
            return true;
        }
        let Some(cert) = cert else {
            return false;
        };
        if cert.address() != *sender || cert.verify().is_err() {
            return false;
        }
        if certified.len() >= MAX_CERTIFIED {
            certified.clear();
        }
        certified.insert(sender.device, sender.user);
        true
    }

    /// Checks that `origin` may hand over envelopes from each of `senders`; returns the
    /// refusal for each sender that fails (certificate first, then home).
    pub async fn check(
        &self,
        directory: &Directory,
        origin: PeerId,
        certs: &[DeviceCert],
        senders: impl IntoIterator<Item = Address>,
    ) -> HashMap<Address, ErrorAnswer> {
        let by_device: HashMap<DeviceId, &DeviceCert> =
            certs.iter().map(|cert| (cert.device, cert)).collect();
        let senders: HashSet<Address> = senders.into_iter().collect();
        let mut refused = HashMap::new();
        let mut users = HashSet::new();
        for sender in &senders {
            if self.certified(sender, by_device.get(&sender.device).copied()) {
                users.insert(sender.user);
            } else {
                refused.insert(
                    *sender,
                    ErrorAnswer::new(
                        ErrorCode::BadCertificate,
                        "no valid certificate binds the sending device to its account",
                    ),
                );
            }
        }
        // One request's senders cost at most a request's lookups; the rest wait (transient).
        let budget = LookupBudget::per_request();
        let budget = &budget;
        let homes: HashMap<UserId, Result<(), ErrorAnswer>> = stream::iter(users)
            .map(|user| async move { (user, home_answer(directory, user, origin, budget).await) })
            .buffer_unordered(LOOKUPS_AT_ONCE)
            .collect()
            .await;
        for sender in senders {
            if let Some(Err(answer)) = homes.get(&sender.user) {
                refused.entry(sender).or_insert_with(|| answer.clone());
            }
        }
        refused
    }
}

async fn home_answer(
    directory: &Directory,
    user: UserId,
    origin: PeerId,
    budget: &LookupBudget,
) -> Result<(), ErrorAnswer> {
    match directory.is_home_of(user, origin, budget).await {
        Ok(HomeCheck::Home) => Ok(()),
        Ok(HomeCheck::NotHome) => Err(ErrorAnswer::new(
            ErrorCode::WrongOrigin,
            format!("this relay is not the home of the sender {user}"),
        )),
        Ok(HomeCheck::Unknown) => Err(ErrorAnswer::new(
            ErrorCode::Unavailable,
            format!("the home of the sender {user} cannot be looked up now; retry later"),
        )),
        Err(error) => Err(storage_answer(error)),
    }
}
