//! What attackers forge with the protocol and keys crates: envelopes, Olm bodies,
//! descriptors, typing notices, home records (kept here so a wire change is one local edit).

use ed25519_dalek::SigningKey;
use libp2p::{PeerId, kad};
use tidings_keys::{GroupOutbound, OlmSession};
use tidings_protocol::{
    Address, BoundedVec, DeviceId, Envelope, EnvelopeId, GroupId, HomeRecord, Kind, RawEnvelope,
    Recipient, UserId,
    content::{GroupSealed, MegolmBody, OlmBody, Payload, Sealed, SenderKeys},
    group::{Descriptor, GroupMember, Role, SignedDescriptor},
    home::HOME_RECORD_LIFETIME_MS,
    limits::MAX_CARD_ADDRS,
    now_ms,
    presence::TypingBody,
};

/// A fresh random signing key (an account or a device nobody else knows).
pub fn fresh_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random())
}

/// The user id of an account key.
pub fn user_of(account: &SigningKey) -> UserId {
    UserId::from(&account.verifying_key())
}

/// The device id of a device key.
pub fn device_of(device: &SigningKey) -> DeviceId {
    DeviceId::from(&device.verifying_key())
}

/// `count` valid user ids of accounts that exist nowhere.
pub fn made_up_users(count: usize) -> Vec<UserId> {
    (0..count).map(|_| user_of(&fresh_key())).collect()
}

/// An envelope signed by `device_key`, claiming to come from `sender` (which need not be the
/// key's own address: relays and clients must catch that).
pub fn envelope(
    device_key: &SigningKey,
    id: EnvelopeId,
    sender: Address,
    recipient: Recipient,
    kind: Kind,
    body: Vec<u8>,
) -> RawEnvelope {
    Envelope {
        id,
        sender,
        recipient,
        sent_at_ms: now_ms(),
        kind,
        body,
        blobs: Default::default(),
    }
    .sign(device_key)
}

/// `payload` over an existing Olm session, sealed as coming from `from` to `to`. With
/// `forge`, the body carries `keys` whatever kind of message it is: a client that skips its
/// device-to-user check when sender keys are present takes `from` at its word.
pub fn olm_body(
    session: &mut OlmSession,
    keys: &SenderKeys,
    id: EnvelopeId,
    from: Address,
    to: Address,
    payload: Payload,
    forge: bool,
) -> anyhow::Result<OlmBody> {
    let sealed = Sealed {
        message: None,
        id,
        from,
        to,
        payload,
    };
    let mut body = session.encrypt(&sealed.encode(), keys)?;
    if forge {
        body.sender_keys = Some(keys.clone());
    }
    Ok(body)
}

/// A text as [`olm_body`] seals it.
pub fn olm_text(
    session: &mut OlmSession,
    keys: &SenderKeys,
    id: EnvelopeId,
    from: Address,
    to: Address,
    text: &str,
    forge: bool,
) -> anyhow::Result<OlmBody> {
    let payload = Payload::Text {
        text: text.to_string(),
    };
    olm_body(session, keys, id, from, to, payload, forge)
}

/// A group text over a Megolm session of the attacker's, sealed as coming from `from`.
pub fn megolm_text(
    outbound: &mut GroupOutbound,
    id: EnvelopeId,
    from: Address,
    group: GroupId,
    text: &str,
) -> MegolmBody {
    let sealed = GroupSealed {
        id,
        from,
        group,
        payload: Payload::Text {
            text: text.to_string(),
        },
    };
    outbound.encrypt(&sealed.encode())
}

/// A typing notice ("started typing") from `sender`, signed by `device_key`.
pub fn typing(device_key: &SigningKey, sender: Address, to: Recipient) -> RawEnvelope {
    envelope(
        device_key,
        EnvelopeId::random(),
        sender,
        to,
        Kind::Typing,
        TypingBody { typing: true }.encode(),
    )
}

/// A descriptor version signed by `author`.
pub fn descriptor(
    author: &SigningKey,
    group: GroupId,
    version: u64,
    previous: Option<[u8; 32]>,
    name: &str,
    members: Vec<(UserId, Role)>,
) -> anyhow::Result<SignedDescriptor> {
    let members = Descriptor::normalize(
        members
            .into_iter()
            .map(|(user, role)| GroupMember { user, role })
            .collect(),
    );
    let descriptor = Descriptor {
        group,
        version,
        previous,
        name: name.to_string(),
        members: BoundedVec::new(members)?,
        author: user_of(author),
        // A first version carries a salt; for a group id not derived from it, any salt.
        salt: (version == 1).then(rand::random),
    };
    Ok(SignedDescriptor::sign(author, descriptor))
}

/// A first version of a new group of `author` (its admin, the others members), with the
/// group id derived from the author and a fresh salt, as every relay and device checks.
pub fn genesis(
    author: &SigningKey,
    name: &str,
    others: &[UserId],
) -> anyhow::Result<SignedDescriptor> {
    let mut members = vec![GroupMember {
        user: user_of(author),
        role: Role::Admin,
    }];
    members.extend(others.iter().map(|user| GroupMember {
        user: *user,
        role: Role::Member,
    }));
    let members = BoundedVec::new(Descriptor::normalize(members))?;
    let descriptor = Descriptor::genesis(user_of(author), name.to_string(), members);
    Ok(SignedDescriptor::sign(author, descriptor))
}

/// A first version claiming `group`, an id another user's genesis was derived from.
pub fn squatting_genesis(
    author: &SigningKey,
    group: GroupId,
    name: &str,
    others: &[UserId],
) -> anyhow::Result<SignedDescriptor> {
    let mut members = vec![(user_of(author), Role::Admin)];
    members.extend(others.iter().map(|user| (*user, Role::Member)));
    descriptor(author, group, 1, None, name, members)
}

/// A group change (or creation) envelope carrying `change`, signed by its author's device.
pub fn group_change(
    device_key: &SigningKey,
    sender: Address,
    change: &SignedDescriptor,
) -> RawEnvelope {
    envelope(
        device_key,
        EnvelopeId::random(),
        sender,
        Recipient::Group(change.descriptor.group),
        Kind::GroupControl,
        change.encode(),
    )
}

/// A home record for the account of `account` naming `relay`; `expires_at_ms` defaults to
/// the normal lifetime from now.
pub fn home_record(
    account: &SigningKey,
    relay: PeerId,
    addrs: Vec<String>,
    expires_at_ms: Option<u64>,
) -> anyhow::Result<HomeRecord> {
    let mut addrs = addrs;
    addrs.truncate(MAX_CARD_ADDRS);
    let now = now_ms();
    Ok(HomeRecord::sign(
        account,
        relay.to_string(),
        BoundedVec::new(addrs)?,
        now,
        expires_at_ms.unwrap_or(now + HOME_RECORD_LIFETIME_MS),
    ))
}

/// A home record claiming `user`'s home is `relay`, signed by someone else's `account`.
pub fn hijacked_home_record(
    user: UserId,
    account: &SigningKey,
    relay: PeerId,
    addrs: Vec<String>,
) -> anyhow::Result<HomeRecord> {
    let mut record = home_record(account, relay, addrs, None)?;
    record.user = user;
    record.seq = u64::MAX / 2;
    Ok(record)
}

/// A home record as the Kademlia record a relay would store it as.
pub fn kad_record(home: &HomeRecord) -> kad::Record {
    kad::Record::new(
        kad::RecordKey::new(&HomeRecord::dht_key(&home.user)),
        home.encode(),
    )
}
