//! Keeping a device's group descriptors in one chain: before a pushed batch is stored, the
//! versions missing before each change in it are fetched from the relay and applied in order.

use std::collections::HashMap;

use tidings_protocol::{
    GroupId, Kind, MailboxItem, Recipient, client::Delivery, group::SignedDescriptor,
};

use crate::{
    calls::GroupVersions,
    client::Client,
    connection::{Connection, ConnectionError},
    error::ClientError,
};

/// The newest descriptor version each group change in a pushed batch names.
pub(crate) fn changes_in(items: &[Delivery]) -> HashMap<GroupId, u64> {
    let mut changes: HashMap<GroupId, u64> = HashMap::new();
    for item in items {
        let MailboxItem::Envelope(raw) = &item.item else {
            continue;
        };
        let Ok(envelope) = raw.decode_unverified() else {
            continue;
        };
        let (Kind::GroupControl, Recipient::Group(group)) = (envelope.kind, envelope.recipient)
        else {
            continue;
        };
        if let Ok(change) = SignedDescriptor::decode(&envelope.body)
            && change.descriptor.group == group
        {
            let newest = changes.entry(group).or_default();
            *newest = (*newest).max(change.descriptor.version);
        }
    }
    changes
}

/// Fetches from the relay the descriptor versions this device lacks before each group's
/// change in `changes` (group -> version of the change), and applies them, each checked
/// against the one before. A relay that cannot fill a gap leaves it: the change is then
/// refused when it is stored, as any change that does not follow.
pub(crate) async fn fill_group_gaps(
    client: &Client,
    connection: &Connection,
    changes: HashMap<GroupId, u64>,
) -> Result<(), ClientError> {
    for (group, version) in changes {
        loop {
            let held = client
                .store()
                .group(&group)?
                .map_or(0, |known| known.descriptor.version);
            if held + 1 >= version {
                break;
            }
            let asked = GroupVersions {
                group,
                from: held + 1,
            };
            let versions = match connection.call(asked).await {
                Ok(versions) => versions,
                Err(ConnectionError::Refused(answer)) => {
                    tracing::info!(%group, %answer, "the relay has no versions to fill a gap");
                    break;
                }
                Err(error) => return Err(error.into()),
            };
            let missing: Vec<SignedDescriptor> = versions
                .into_iter()
                .filter(|known| known.descriptor.version < version)
                .collect();
            let applied = client
                .blocking(move |inner| inner.store.apply_group_versions(&missing))
                .await?;
            if applied == 0 {
                break;
            }
        }
    }
    Ok(())
}
