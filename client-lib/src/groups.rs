//! Groups from the user's side: creating, changing and leaving them, on top of a session.

use tidings_protocol::{
    BoundedVec, EnvelopeId, GroupId,
    group::{Descriptor, GroupMember, Role, SignedDescriptor},
    limits::{MAX_GROUP_MEMBERS, MAX_GROUP_NAME_LEN},
};

use crate::{
    client::Client,
    error::{ClientError, GroupOpError},
    session::Session,
    store::{Conversation, ReceiptCounts},
};

impl Client {
    /// The group a name or id means.
    pub fn group_id(&self, who: &str) -> Result<GroupId, ClientError> {
        match self.conversation(who)? {
            Conversation::Group(group) => Ok(group),
            Conversation::Direct(_) => Err(GroupOpError::NotAGroup(who.to_string()).into()),
        }
    }

    /// The newest descriptor of a group this device knows.
    pub fn group(&self, group: &GroupId) -> Result<SignedDescriptor, ClientError> {
        self.store()
            .group(group)?
            .ok_or(ClientError::Group(GroupOpError::Unknown(*group)))
    }

    /// Receipt counts of one of our group messages ("read by 3 of 7").
    pub fn receipt_counts(&self, id: &EnvelopeId) -> Result<ReceiptCounts, ClientError> {
        Ok(self.store().receipt_counts(id)?)
    }
}

fn members_of(descriptor: &Descriptor) -> Vec<GroupMember> {
    descriptor.members.to_vec()
}

impl Session {
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
                return Err(GroupOpError::LastAdmin.into());
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
            return Err(GroupOpError::NameTooLong.into());
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
            return Err(GroupOpError::Refused(reason.clone()).into());
        }
        let applied = client
            .store()
            .group(&group)?
            .is_some_and(|d| d.descriptor.version >= version);
        if !applied {
            return Err(GroupOpError::Queued(report.waiting.join("; ")).into());
        }
        Ok(())
    }
}

fn bounded(
    members: Vec<GroupMember>,
) -> Result<BoundedVec<GroupMember, MAX_GROUP_MEMBERS>, ClientError> {
    let members = Descriptor::normalize(members);
    let count = members.len();
    BoundedVec::new(members).map_err(|_| GroupOpError::TooManyMembers(count).into())
}
