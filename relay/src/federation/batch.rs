//! One forward batch to one relay: outbox entries grouped into items (one per envelope, with
//! all its recipients there), and bringing that relay's copy of a group up to date.

use std::collections::HashSet;

use tidings_protocol::{
    Address, BoundedVec, DeviceCert, EnvelopeId, ErrorCode, GroupId, Kind, RawEnvelope, Recipient,
    UserId,
    client::SendOutcome,
    federation::{FederationRequest, FederationResponse, ForwardItem, MAX_DESCRIPTORS_PER_REQUEST},
    group::SignedDescriptor,
    limits::MAX_BATCH_ENVELOPES,
};

use std::sync::Arc;

use super::{Links, link_stream::LinkError, remote::Remote};
use crate::{
    metrics::Metrics,
    store::{OutboxMeta, Store},
};

/// Most envelope bytes in one forwarded batch.
const BATCH_MAX_BYTES: usize = 512 * 1024;

/// What sending a batch uses.
pub(super) struct Courier {
    pub store: Store,
    pub links: Links,
    pub metrics: Arc<Metrics>,
}

/// One envelope of the batch and the outbox entries (one per recipient) it stands for.
struct Planned {
    id: EnvelopeId,
    entries: Vec<(u64, UserId)>,
}

/// Groups `entries` by envelope, oldest first, within the batch limits.
fn plan(entries: Vec<(u64, OutboxMeta)>) -> Vec<Planned> {
    let mut planned: Vec<Planned> = Vec::new();
    for (seq, meta) in entries {
        if let Some(item) = planned.iter_mut().find(|item| item.id == meta.id) {
            item.entries.push((seq, meta.recipient));
            continue;
        }
        if planned.len() == MAX_BATCH_ENVELOPES {
            break;
        }
        planned.push(Planned {
            id: meta.id,
            entries: vec![(seq, meta.recipient)],
        });
    }
    planned
}

/// The descriptor version a group envelope was fanned out by: its own for a change, else
/// the newest this relay holds.
async fn group_version(courier: &Courier, raw: &RawEnvelope) -> Option<(GroupId, u64)> {
    let envelope = raw.decode_unverified().ok()?;
    let Recipient::Group(group) = envelope.recipient else {
        return None;
    };
    if envelope.kind == Kind::GroupControl
        && let Ok(change) = SignedDescriptor::decode(&envelope.body)
    {
        return Some((group, change.descriptor.version));
    }
    Some((group, courier.store.group_version(group).await.ok()?))
}

/// Sends entries to `remote`; returns the seqs sent and one outcome per seq.
pub(super) async fn forward(
    courier: &Courier,
    remote: &Remote,
    entries: Vec<(u64, OutboxMeta)>,
) -> (Vec<u64>, Result<Vec<SendOutcome>, LinkError>) {
    let planned = plan(entries);
    let ids: Vec<EnvelopeId> = planned.iter().map(|item| item.id).collect();
    let bodies = match courier.store.outbox_bodies(ids).await {
        Ok(bodies) => bodies,
        Err(error) => return (Vec::new(), Err(LinkError::Unreachable(error.to_string()))),
    };
    let mut seqs = Vec::new();
    let mut items = Vec::new();
    let mut groups = HashSet::new();
    let mut bytes = 0;
    for item in planned {
        let Some((_, body)) = bodies.iter().find(|(id, _)| *id == item.id) else {
            continue;
        };
        if !items.is_empty() && bytes + body.len() > BATCH_MAX_BYTES {
            break;
        }
        bytes += body.len();
        let raw = RawEnvelope::from_bytes(body.to_vec());
        let version = group_version(courier, &raw).await;
        if let Some((group, _)) = version {
            groups.insert(group);
        }
        let recipients: Vec<UserId> = item.entries.iter().map(|(_, user)| *user).collect();
        seqs.extend(item.entries.iter().map(|(seq, _)| *seq));
        items.push(ForwardItem {
            envelope: raw,
            recipients: BoundedVec::new(recipients).unwrap_or_default(),
            group_version: version.map(|(_, v)| v).unwrap_or(0),
        });
    }
    let certs = match sender_certs(courier, &items).await {
        Ok(certs) => certs,
        Err(error) => return (Vec::new(), Err(error)),
    };
    let Ok(items) = BoundedVec::new(items) else {
        return (
            Vec::new(),
            Err(LinkError::Unreachable("batch too large".into())),
        );
    };
    let recipients: usize = items.iter().map(|item| item.recipients.len()).sum();
    tracing::debug!(peer = %remote.peer, items = items.len(), recipients, groups = groups.len(), "forwarding a batch");
    let request = FederationRequest::Forward { items, certs };
    courier.metrics.forward_batch(!groups.is_empty());
    let mut result = send(courier, remote, request.clone(), seqs.len()).await;
    if let Ok(outcomes) = &result
        && outcomes.iter().any(is_out_of_date)
    {
        // That relay holds an older copy of a group: send it the newer versions, retry once.
        tracing::debug!(peer = %remote.peer, "the relay is behind on a group; syncing it");
        for group in groups {
            if let Err(error) = sync_group(courier, remote, group).await {
                return (seqs, Err(error));
            }
        }
        courier.metrics.forward_batch(true);
        result = send(courier, remote, request, seqs.len()).await;
    }
    (seqs, result)
}

/// The certificates of the items' senders (local users), one per device, so the other relay
/// can tie each envelope's device to its account.
async fn sender_certs(
    courier: &Courier,
    items: &[ForwardItem],
) -> Result<BoundedVec<DeviceCert, MAX_BATCH_ENVELOPES>, LinkError> {
    let mut senders: Vec<Address> = items
        .iter()
        .filter_map(|item| item.envelope.decode_unverified().ok())
        .map(|envelope| envelope.sender)
        .collect();
    senders.sort();
    senders.dedup();
    let certs = courier
        .store
        .device_certs(senders.clone())
        .await
        .map_err(|error| LinkError::Unreachable(error.to_string()))?
        .into_iter()
        .filter(|cert| senders.binary_search(&cert.address()).is_ok())
        .collect();
    BoundedVec::new(certs).map_err(|error| LinkError::Unreachable(error.to_string()))
}

fn is_out_of_date(outcome: &SendOutcome) -> bool {
    matches!(outcome, SendOutcome::Rejected(answer) if answer.code == ErrorCode::GroupOutOfDate)
}

async fn send(
    courier: &Courier,
    remote: &Remote,
    request: FederationRequest,
    expected: usize,
) -> Result<Vec<SendOutcome>, LinkError> {
    match courier.links.request(remote, request).await {
        Ok(FederationResponse::Stored { outcomes }) if outcomes.len() == expected => {
            Ok(outcomes.into_vec())
        }
        Ok(_) => Err(LinkError::Unreachable(
            "answer does not match the batch".into(),
        )),
        Err(error) => Err(error),
    }
}

/// Sends `remote` every version of `group` after the one it holds.
async fn sync_group(courier: &Courier, remote: &Remote, group: GroupId) -> Result<(), LinkError> {
    let mut held = match courier
        .links
        .request(remote, FederationRequest::GroupVersion { group })
        .await?
    {
        FederationResponse::GroupVersion(version) => version,
        _ => return Err(LinkError::Unreachable("unexpected answer".into())),
    };
    loop {
        let versions = courier
            .store
            .group_versions(group, held + 1, MAX_DESCRIPTORS_PER_REQUEST)
            .await
            .map_err(|error| LinkError::Unreachable(error.to_string()))?;
        let Some(last) = versions.last().map(|d| d.descriptor.version) else {
            return Ok(());
        };
        let versions =
            BoundedVec::new(versions).map_err(|error| LinkError::Unreachable(error.to_string()))?;
        match courier
            .links
            .request(remote, FederationRequest::Descriptors { versions })
            .await?
        {
            FederationResponse::DescriptorsStored => held = last,
            _ => return Err(LinkError::Unreachable("unexpected answer".into())),
        }
    }
}
