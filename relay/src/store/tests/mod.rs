//! The store's conformance suite, run on every backend: the plain redb file and the
//! fault-injecting one (with its switch off), plus what a failed commit must leave.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod faults;
mod suite;

use std::sync::Arc;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tempfile::TempDir;
use tidings_protocol::{
    DeviceCert, DeviceId, EnvelopeId, GroupId, UserId,
    group::{Descriptor, GroupMember, Role, SignedDescriptor},
};

use super::{
    NewEnvelope, Store, StoreConfig, StoreLimits, WriterHandle,
    fault::{FaultSwitch, FaultyBackend},
};
use crate::mailbox::Hub;

/// File name of the database in a fixture's temp dir.
const FILE: &str = "relay.redb";

/// A store on a backend, in its own temp dir.
pub(super) struct Fixture {
    pub dir: TempDir,
    pub store: Store,
    pub writer: WriterHandle,
    pub hub: Arc<Hub>,
    /// The fault-injecting backend's switch (None: the plain redb file).
    pub switch: Option<FaultSwitch>,
}

fn config() -> StoreConfig {
    StoreConfig {
        limits: StoreLimits::default(),
        self_peer: libp2p::PeerId::random().to_string(),
        cache_bytes: 16 << 20,
    }
}

/// The store of a plain redb file.
pub(super) fn on_file() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(Hub::default());
    let (store, writer) = Store::open(&dir.path().join(FILE), config(), hub.clone()).unwrap();
    Fixture {
        dir,
        store,
        writer,
        hub,
        switch: None,
    }
}

/// The store over a [`FaultyBackend`] (healthy until its switch is thrown).
pub(super) fn on_faulty_backend() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(Hub::default());
    let switch = FaultSwitch::default();
    let path = dir.path().join(FILE);
    let backend_switch = switch.clone();
    let (store, writer) = Store::open_with_backend(
        move || FaultyBackend::open(&path, backend_switch.clone()),
        config(),
        hub.clone(),
    )
    .unwrap();
    Fixture {
        dir,
        store,
        writer,
        hub,
        switch: Some(switch),
    }
}

impl Fixture {
    /// Stops the writer (it commits what is queued) and opens the same file again.
    pub async fn reopen(self) -> Fixture {
        let Fixture {
            dir,
            store,
            writer,
            switch,
            ..
        } = self;
        drop(store);
        writer.join().await;
        let hub = Arc::new(Hub::default());
        let (store, writer) = Store::open(&dir.path().join(FILE), config(), hub.clone()).unwrap();
        Fixture {
            dir,
            store,
            writer,
            hub,
            switch,
        }
    }
}

/// An account with one device.
pub(super) struct Account {
    pub key: SigningKey,
    pub device_key: SigningKey,
}

impl Account {
    pub fn new(seed: u8) -> Self {
        Self {
            key: SigningKey::from_bytes(&[seed; 32]),
            device_key: SigningKey::from_bytes(&[seed.wrapping_add(100); 32]),
        }
    }

    pub fn user(&self) -> UserId {
        UserId::from(&self.key.verifying_key())
    }

    pub fn device(&self) -> DeviceId {
        DeviceId::from(&self.device_key.verifying_key())
    }

    pub fn address(&self) -> tidings_protocol::Address {
        tidings_protocol::Address {
            user: self.user(),
            device: self.device(),
        }
    }

    pub fn cert(&self) -> DeviceCert {
        DeviceCert::issue(&self.key, self.device(), 1)
    }

    /// Registers the account's device; panics unless it is new.
    pub async fn register(self, store: &Store) -> Self {
        let outcome = store.register(self.cert(), None).await.unwrap();
        assert_eq!(
            outcome,
            super::RegisterOutcome::Registered {
                new: true,
                one_time_keys: 0
            }
        );
        self
    }
}

/// An envelope from `from` to `to`'s device whose bytes are `body`.
pub(super) fn envelope(from: &Account, to: &Account, body: &str) -> NewEnvelope {
    NewEnvelope {
        id: EnvelopeId::random(),
        sender: from.user(),
        recipient: to.user(),
        device: Some(to.device()),
        bytes: Bytes::copy_from_slice(body.as_bytes()),
    }
}

/// The first version of a group `admin` creates with `members` (besides the admin).
pub(super) fn genesis(admin: &Account, members: &[UserId]) -> SignedDescriptor {
    let mut list = vec![GroupMember {
        user: admin.user(),
        role: Role::Admin,
    }];
    list.extend(members.iter().map(|user| GroupMember {
        user: *user,
        role: Role::Member,
    }));
    let list = tidings_protocol::BoundedVec::new(Descriptor::normalize(list)).unwrap();
    SignedDescriptor::sign(
        &admin.key,
        Descriptor::genesis(admin.user(), "ropes".into(), list),
    )
}

/// The bodies in `device`'s mailbox from `from` on, as text.
pub(super) async fn mailbox(store: &Store, device: DeviceId, from: u64) -> Vec<(u64, String)> {
    store
        .mailbox_range(device, from, 1000, 1 << 20)
        .await
        .unwrap()
        .into_iter()
        .map(|(seq, bytes)| (seq, String::from_utf8_lossy(&bytes).into_owned()))
        .collect()
}

/// A group id nobody created.
pub(super) fn unknown_group() -> GroupId {
    GroupId::from_bytes([7; 16])
}

/// Runs every case of the suite on the store `$open` makes, as tests in module `$name`.
macro_rules! store_conformance {
    ($name:ident, $open:path) => {
        mod $name {
            store_conformance!(@cases $open;
                envelopes_are_stored_in_order_deduped_and_published,
                an_ack_deletes_the_mailbox_up_to_it,
                outbox_entries_are_done_bounced_or_moved_home,
                users_register_and_upload_and_hand_out_keys,
                group_envelopes_are_checked_and_fanned_out,
                descriptors_from_other_relays_are_checked,
                presence_and_handoffs_are_stored,
                what_was_answered_survives_a_reopen,
            );
        }
    };
    (@cases $open:path; $($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            $crate::store::tests::suite::$case($open()).await;
        }
    )*};
}

store_conformance!(redb_file, super::on_file);
store_conformance!(faulty_backend, super::on_faulty_backend);
