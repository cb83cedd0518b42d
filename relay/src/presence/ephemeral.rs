//! Typing notices: checked, then passed to the recipients' live devices, here or through
//! their home relay; never stored, dropped for anyone offline.

use std::{collections::HashMap, time::Duration};

use libp2p::PeerId;
use tidings_protocol::{
    Address, BoundedVec, Envelope, ErrorAnswer, ErrorCode, RawEnvelope, Recipient, UserId,
    client::RelayFrame,
    federation::{FederationRequest, FederationResponse},
    now_ms,
    presence::TypingBody,
};

use super::{Command, Presence};
use crate::federation::{Home, LookupBudget, Remote};

/// Typing notices older (or further ahead) than this are refused: they would be stale.
const MAX_SKEW_MS: u64 = 30_000;

/// How long passing a notice to another relay may take.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(5);

fn malformed(detail: &str) -> ErrorAnswer {
    ErrorAnswer::new(ErrorCode::Malformed, detail)
}

/// Checks an ephemeral envelope: signature, kind, body, age.
pub(crate) fn check(raw: &RawEnvelope) -> Result<Envelope, ErrorAnswer> {
    let envelope = raw
        .open()
        .map_err(|error| ErrorAnswer::new(ErrorCode::BadSignature, error.to_string()))?;
    if !envelope.kind.is_ephemeral() {
        return Err(malformed("only typing notices are ephemeral"));
    }
    TypingBody::decode(&envelope.body).map_err(|error| malformed(&error.to_string()))?;
    if envelope.sent_at_ms.abs_diff(now_ms()) > MAX_SKEW_MS {
        return Err(malformed("typing notice is stale"));
    }
    Ok(envelope)
}

impl Presence {
    /// Passes a device's typing notice on; returns how many live devices (here) or relays
    /// (elsewhere) took it.
    pub(crate) async fn pass_ephemeral(
        &self,
        me: Address,
        raw: RawEnvelope,
    ) -> Result<u32, ErrorAnswer> {
        let envelope = check(&raw)?;
        if envelope.sender != me {
            return Err(ErrorAnswer::new(
                ErrorCode::SenderMismatch,
                "the envelope names another sender",
            ));
        }
        let recipients = match envelope.recipient {
            Recipient::Direct(address) => vec![address.user],
            Recipient::Group(group) => {
                let version = self
                    .store
                    .group_version(group)
                    .await
                    .map_err(crate::ingest::storage_answer)?;
                let head = self
                    .store
                    .group_versions(group, version, 1)
                    .await
                    .map_err(crate::ingest::storage_answer)?;
                let Some(head) = head.into_iter().next() else {
                    return Err(ErrorAnswer::new(
                        ErrorCode::GroupOutOfDate,
                        format!("group {group} is not known here"),
                    ));
                };
                let members: Vec<UserId> = head.descriptor.members.iter().map(|m| m.user).collect();
                if !members.contains(&me.user) {
                    return Err(ErrorAnswer::new(
                        ErrorCode::NotMember,
                        "you are not a member of this group",
                    ));
                }
                members
                    .into_iter()
                    .filter(|user| *user != me.user)
                    .collect()
            }
        };
        let mut here = Vec::new();
        let mut remote: HashMap<PeerId, (Remote, Vec<UserId>)> = HashMap::new();
        let budget = LookupBudget::per_request();
        for user in recipients {
            match self.directory.resolve_within(user, &budget).await {
                Ok(Home::Local) => here.push(user),
                Ok(Home::Remote(relay)) => remote
                    .entry(relay.peer)
                    .or_insert_with(|| (relay, Vec::new()))
                    .1
                    .push(user),
                Ok(Home::Unknown) | Err(_) => {}
            }
        }
        let mut reached = self.pass_ephemeral_here(&raw, me.user, &here).await;
        if remote.is_empty() {
            return Ok(reached);
        }
        // The other relays check that the sending device belongs to its account.
        let cert = self
            .store
            .device_certs(vec![me])
            .await
            .map_err(crate::ingest::storage_answer)?
            .into_iter()
            .find(|cert| cert.address() == me)
            .ok_or_else(|| {
                ErrorAnswer::new(
                    ErrorCode::NotRegistered,
                    "this device is not registered here",
                )
            })?;
        for (relay, users) in remote.into_values() {
            let Ok(recipients) = BoundedVec::new(users) else {
                continue;
            };
            let request = FederationRequest::Ephemeral {
                envelope: raw.clone(),
                recipients,
                cert: cert.clone(),
            };
            match tokio::time::timeout(REMOTE_TIMEOUT, self.links.request(&relay, request)).await {
                Ok(Ok(FederationResponse::EphemeralPassed { reached: n })) => reached += n.min(1),
                Ok(other) => {
                    tracing::debug!(peer = %relay.peer, ?other, "typing notice not passed on")
                }
                Err(_) => tracing::debug!(peer = %relay.peer, "typing notice timed out"),
            }
        }
        Ok(reached)
    }

    /// Hands an ephemeral envelope from `sender` to the live devices of local `recipients`;
    /// returns how many took it, counting only recipients who let `sender` see their presence:
    /// for everyone else the answer is 0 whether they are online or not, so it tells nothing.
    pub(crate) async fn pass_ephemeral_here(
        &self,
        raw: &RawEnvelope,
        sender: UserId,
        recipients: &[UserId],
    ) -> u32 {
        let users = recipients.to_vec();
        let live = self
            .ask(|reply| Command::LiveSenders { users, reply })
            .await
            .unwrap_or_default();
        let mut reached = 0;
        for (user, senders) in recipients.iter().zip(live) {
            let mut took = 0;
            for live in senders {
                if live
                    .try_send(Box::new(RelayFrame::Ephemeral(raw.clone())))
                    .is_ok()
                {
                    took += 1;
                }
            }
            if took > 0 && self.may_see(&sender, *user).await {
                reached += took;
            }
        }
        reached
    }
}
