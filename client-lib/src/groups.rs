//! Groups from the user's side: creating and changing them, and giving members the key of
//! this device's sending session.

use std::collections::HashMap;

use tidings_protocol::{
    BoundedVec, DeviceId, GroupId, Kind, MailboxItem, Recipient, UserId,
    client::{Delivery, Request, Response},
    group::{Descriptor, GroupMember, Role, SignedDescriptor},
    limits::{MAX_BATCH_ENVELOPES, MAX_GROUP_MEMBERS, MAX_GROUP_NAME_LEN},
};

use crate::{
    client::{Client, ClientError},
    session::{SealError, Session},
    store::{Conversation, ReceiptCounts},
};

impl Client {
    /// The users some contact names or user ids mean.
    pub(crate) fn resolve_all(&self, who: &[&str]) -> Result<Vec<UserId>, ClientError> {
        who.iter().map(|w| self.resolve(w)).collect()
    }

    /// The group a name or id means.
    pub fn group_id(&self, who: &str) -> Result<GroupId, ClientError> {
        match self.conversation(who)? {
            Conversation::Group(group) => Ok(group),
            Conversation::Direct(_) => Err(ClientError::Group(format!("{who:?} is not a group"))),
        }
    }

    /// The newest descriptor of a group this device knows.
    pub fn group(&self, group: &GroupId) -> Result<SignedDescriptor, ClientError> {
        self.store()
            .group(group)?
            .ok_or_else(|| ClientError::Group(format!("group {group} is not known here")))
    }

    /// Receipt counts of one of our group messages ("read by 3 of 7").
    pub fn receipt_counts(
        &self,
        id: &tidings_protocol::EnvelopeId,
    ) -> Result<ReceiptCounts, ClientError> {
        Ok(self.store().receipt_counts(id)?)
    }
}

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

fn members_of(descriptor: &Descriptor) -> Vec<GroupMember> {
    descriptor.members.to_vec()
}

impl Session {
    /// Fetches from the relay the descriptor versions this device lacks before each group's
    /// change in `changes` (group -> version of the change), and applies them, each checked
    /// against the one before. A relay that cannot fill a gap leaves it: the change is then
    /// refused when it is stored, as any change that does not follow.
    pub(crate) async fn fill_group_gaps(
        &self,
        changes: HashMap<GroupId, u64>,
    ) -> Result<(), ClientError> {
        for (group, version) in changes {
            loop {
                let held = self
                    .client()
                    .store()
                    .group(&group)?
                    .map_or(0, |known| known.descriptor.version);
                if held + 1 >= version {
                    break;
                }
                let request = Request::GroupVersions {
                    group,
                    from: held + 1,
                };
                let versions = match self.request_pub(request).await {
                    Ok(Response::GroupVersions { versions }) => versions.into_vec(),
                    Ok(other) => return Err(ClientError::Unexpected(format!("{other:?}"))),
                    Err(ClientError::Refused(answer)) => {
                        tracing::info!(%group, %answer, "the relay has no versions to fill a gap");
                        break;
                    }
                    Err(error) => return Err(error),
                };
                let missing: Vec<SignedDescriptor> = versions
                    .into_iter()
                    .filter(|known| known.descriptor.version < version)
                    .collect();
                let applied = self
                    .client()
                    .blocking(move |inner| inner.store.apply_group_versions(&missing))
                    .await?;
                if applied == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Gives every member who lacks it the key of this device's current sending session for
    /// `group` (making a new session first if a member who had the old key left).
    pub(crate) async fn share_group_key(&self, group: GroupId) -> Result<(), SealError> {
        let client = self.client().clone();
        let plan = client
            .blocking(move |inner| inner.store.plan_group_key(&inner.identity, &group))
            .await?;
        let Some(plan) = plan else {
            return Err(SealError::Wait(format!(
                "group {group} is not known here yet"
            )));
        };
        if plan.need.is_empty() {
            return Ok(());
        }
        let mut devices: Vec<(UserId, DeviceId)> = Vec::new();
        let mut missing = Vec::new();
        let mut later = Vec::new();
        for user in plan.need {
            match client
                .blocking(move |inner| inner.store.device_for(&user))
                .await?
            {
                Some(device) => devices.push((user, device)),
                None => missing.push(user),
            }
        }
        for chunk in missing.chunks(MAX_BATCH_ENVELOPES) {
            let users = BoundedVec::new(chunk.to_vec()).unwrap_or_default();
            let bundles = match self.request_pub(Request::ClaimBundles { users }).await? {
                Response::Bundles { bundles } => bundles.into_vec(),
                other => return Err(ClientError::Unexpected(format!("{other:?}")).into()),
            };
            for (user, bundle) in chunk.iter().copied().zip(bundles) {
                let bundle = match bundle {
                    Ok(bundle) => bundle,
                    Err(answer) => {
                        tracing::info!(%user, %answer, "a member gets the group key later");
                        later.push(user);
                        continue;
                    }
                };
                let installed = client
                    .blocking(move |inner| {
                        inner
                            .store
                            .install_outbound(&inner.identity, &user, &bundle)
                    })
                    .await;
                match installed {
                    Ok(device) => devices.push((user, device)),
                    Err(error) => {
                        tracing::warn!(%user, %error, "a member's keys do not verify");
                        later.push(user);
                    }
                }
            }
        }
        if !later.is_empty() {
            let key = plan.session_key.clone();
            client
                .blocking(move |inner| inner.store.queue_key_shares(group, &key, &later))
                .await?;
        }
        for chunk in devices.chunks(MAX_BATCH_ENVELOPES) {
            let chunk = chunk.to_vec();
            let key = plan.session_key.clone();
            let sealed = client
                .blocking(move |inner| {
                    inner
                        .store
                        .seal_key_shares(&inner.identity, group, &key, &chunk)
                })
                .await?;
            let (users, envelopes): (Vec<UserId>, Vec<_>) = sealed.into_iter().unzip();
            let envelopes = BoundedVec::new(envelopes).unwrap_or_default();
            let outcomes = match self.request_pub(Request::Send { envelopes }).await? {
                Response::Sent { outcomes } => outcomes.into_vec(),
                other => return Err(ClientError::Unexpected(format!("{other:?}")).into()),
            };
            let shared: Vec<UserId> = users
                .into_iter()
                .zip(outcomes)
                .filter(|(_, outcome)| outcome.is_stored())
                .map(|(user, _)| user)
                .collect();
            client
                .blocking(move |inner| inner.store.mark_key_shared(&group, &shared))
                .await?;
        }
        Ok(())
    }

    /// Creates a group named `name` with the given contacts (or user ids); you are its admin.
    pub async fn create_group(
        &mut self,
        name: &str,
        members: &[&str],
    ) -> Result<GroupId, ClientError> {
        let client = self.client().clone();
        let me = client.user_id();
        let mut list = vec![GroupMember {
            user: me,
            role: Role::Admin,
        }];
        for who in members {
            let user = client.resolve(who)?;
            if user != me {
                list.push(GroupMember {
                    user,
                    role: Role::Member,
                });
            }
        }
        let descriptor = Descriptor::genesis(me, name.to_string(), bounded(list)?);
        let group = descriptor.group;
        self.publish_change(descriptor).await?;
        Ok(group)
    }

    /// Adds contacts to a group (admins only).
    pub async fn add_to_group(&mut self, group: GroupId, who: &[&str]) -> Result<(), ClientError> {
        let users = self.client().resolve_all(who)?;
        self.change_group(group, |members| {
            for user in users {
                if !members.iter().any(|m| m.user == user) {
                    members.push(GroupMember {
                        user,
                        role: Role::Member,
                    });
                }
            }
            Ok(())
        })
        .await
    }

    /// Removes members from a group (admins only); they cannot read what is sent after.
    pub async fn remove_from_group(
        &mut self,
        group: GroupId,
        who: &[&str],
    ) -> Result<(), ClientError> {
        let users = self.client().resolve_all(who)?;
        self.change_group(group, |members| {
            members.retain(|member| !users.contains(&member.user));
            Ok(())
        })
        .await
    }

    /// Makes members admins (admins only).
    pub async fn promote_in_group(
        &mut self,
        group: GroupId,
        who: &[&str],
    ) -> Result<(), ClientError> {
        let users = self.client().resolve_all(who)?;
        self.change_group(group, |members| {
            for member in members.iter_mut().filter(|m| users.contains(&m.user)) {
                member.role = Role::Admin;
            }
            Ok(())
        })
        .await
    }

    /// Leaves a group. The last admin must promote someone first.
    pub async fn leave_group(&mut self, group: GroupId) -> Result<(), ClientError> {
        let me = self.client().user_id();
        self.change_group(group, |members| {
            let others = members.iter().filter(|m| m.user != me);
            if members
                .iter()
                .any(|m| m.user == me && m.role == Role::Admin)
                && !others.clone().any(|m| m.role == Role::Admin)
                && others.count() > 0
            {
                return Err(ClientError::Group(
                    "you are the last admin: promote someone first".into(),
                ));
            }
            members.retain(|member| member.user != me);
            Ok(())
        })
        .await
    }

    /// Renames a group (admins only).
    pub async fn rename_group(&mut self, group: GroupId, name: &str) -> Result<(), ClientError> {
        let client = self.client().clone();
        let current = client.group(&group)?;
        let mut next = current.descriptor.clone();
        next.name = name.to_string();
        self.publish_next(&current, next).await
    }

    async fn change_group(
        &mut self,
        group: GroupId,
        change: impl FnOnce(&mut Vec<GroupMember>) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let current = self.client().group(&group)?;
        let mut members = members_of(&current.descriptor);
        change(&mut members)?;
        let mut next = current.descriptor.clone();
        next.members = bounded(members)?;
        self.publish_next(&current, next).await
    }

    async fn publish_next(
        &mut self,
        current: &SignedDescriptor,
        next: Descriptor,
    ) -> Result<(), ClientError> {
        let next = Descriptor::successor(current, self.client().user_id(), next.name, next.members);
        self.publish_change(next).await
    }

    /// Signs a descriptor, sends it through the relay, and waits until it applies here.
    async fn publish_change(&mut self, descriptor: Descriptor) -> Result<(), ClientError> {
        if descriptor.name.len() > MAX_GROUP_NAME_LEN {
            return Err(ClientError::Group(format!(
                "group names are at most {MAX_GROUP_NAME_LEN} bytes"
            )));
        }
        let group = descriptor.group;
        let version = descriptor.version;
        let client = self.client().clone();
        let signed = client.inner.identity.sign_descriptor(descriptor);
        let id = client
            .blocking(move |inner| inner.store.queue_group_change(&signed))
            .await?;
        let report = self.flush().await?;
        if let Some((_, reason)) = report.refused.iter().find(|(refused, _)| *refused == id) {
            return Err(ClientError::Group(format!(
                "the relay refused the change: {reason}"
            )));
        }
        let applied = client
            .store()
            .group(&group)?
            .is_some_and(|d| d.descriptor.version >= version);
        if !applied {
            return Err(ClientError::Group(format!(
                "the change is queued and applies once your relay takes it ({})",
                report.waiting.join("; ")
            )));
        }
        Ok(())
    }
}

fn bounded(
    members: Vec<GroupMember>,
) -> Result<BoundedVec<GroupMember, MAX_GROUP_MEMBERS>, ClientError> {
    let members = Descriptor::normalize(members);
    let count = members.len();
    BoundedVec::new(members).map_err(|_| {
        ClientError::Group(format!(
            "a group has at most {MAX_GROUP_MEMBERS} members ({count} asked)"
        ))
    })
}
