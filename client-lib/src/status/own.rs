//! Our own other devices learn of each status we post (a self-sync over Olm), so `status
//! seen` on any of them lists who saw it: the viewers' receipts go to all of our devices.

use std::collections::VecDeque;

use tidings_protocol::{Address, limits::MAX_BATCH_ENVELOPES, status::OwnStatus};

use crate::{
    device_lists::refresh_list, error::ClientError, olm_sessions::reach, session::Session,
};

impl Session {
    /// Sends `status` to this user's other devices; one that cannot be reached now does not
    /// hear of it (the post goes on).
    pub(super) async fn tell_own_devices(&mut self, status: OwnStatus) -> Result<(), ClientError> {
        let client = self.client().clone();
        let me = client.address();
        let mut events = VecDeque::new();
        if !client.inner.list_checks.is_fresh(&me.user) {
            refresh_list(&client, self.connection(), me.user, &mut events).await?;
        }
        let devices: Vec<Address> = client
            .store()
            .device_list(&me.user)?
            .map(|list| {
                list.list
                    .devices
                    .iter()
                    .map(|entry| Address {
                        user: me.user,
                        device: entry.device,
                    })
                    .filter(|device| *device != me)
                    .collect()
            })
            .unwrap_or_default();
        if devices.is_empty() {
            return Ok(());
        }
        let reached = reach(&client, self.connection(), devices).await?;
        for (device, why) in &reached.unreachable {
            tracing::info!(%device, ?why, "an own device does not hear of a status posted");
        }
        for chunk in reached.ready.chunks(MAX_BATCH_ENVELOPES) {
            let (chunk, status) = (chunk.to_vec(), status.clone());
            let sealed = client
                .blocking(move |inner| {
                    inner
                        .store
                        .seal_status_mine(&inner.identity, &status, &chunk)
                })
                .await?;
            self.send(sealed, "statuses to own devices").await?;
        }
        Ok(())
    }
}
