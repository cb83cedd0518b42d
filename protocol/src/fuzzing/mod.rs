//! Fuzz checks of the wire decoders, shared by the `fuzz/` targets and the corpus test.
//!
//! Each check takes arbitrary bytes and runs the real decoder on them. A decode may fail (with
//! a typed error); where it succeeds, the value is re-encoded and must decode to itself, and
//! whatever a relay or client does next with it (verify a signature, check a chain) must not
//! panic either. A check panics only when a property breaks: that is the bug report.

use std::{fmt::Debug, sync::LazyLock};

use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::{
    BoundedVec, ContactCard, DeviceId, Envelope, EnvelopeError, HomeRecord, RawEnvelope, UserId,
    client::{ClientFrame, RelayFrame, Request, Response},
    codec::{self, DecodeError},
    content::{GroupSealed, MegolmBody, OlmBody, Payload, Sealed},
    devices::{DeviceList, DeviceListError, SignedDeviceList},
    envelope::verify_batch,
    federation::{FederationFrame, FederationRequest, FederationResponse},
    group::{Descriptor, GroupError, GroupMember, Role, SignedDescriptor},
    home::HOME_KEY_PREFIX,
    ids::{EnvelopeId, GroupId},
    limits::{
        MAX_CARD_TEXT_LEN, MAX_DESCRIPTOR_BYTES, MAX_DEVICE_LIST_BYTES, MAX_ENVELOPE_BYTES,
        MAX_FRAME_BYTES, MAX_HOME_RECORD_BYTES,
    },
    link::{LinkCode, LinkPackage, MAX_LINK_PACKAGE_PLAINTEXT},
    mailbox::MailboxItem,
    presence::{MAX_TYPING_BODY, TypingBody},
};

mod frames;

pub use frames::frame_reader;

/// A check: arbitrary bytes in, a panic out only if a property breaks.
pub type Check = fn(&[u8]);

/// The checks of this crate, by fuzz target name.
pub const TARGETS: &[(&str, Check)] = &[
    ("envelope", envelope),
    ("client_request", client_request),
    ("client_response", client_response),
    ("federation_request", federation_request),
    ("home_record", home_record),
    ("group_descriptor", group_descriptor),
    ("device_list", device_list),
    ("content", content),
    ("presence", presence),
    ("contact_card", contact_card),
    ("frame_reader", frame_reader),
    ("link", link),
];

/// The clock the checks verify expiries against (any record expiring after it is valid).
const NOW_MS: u64 = 1;

/// A key the checks sign with, to test that what they sign verifies.
static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::from_bytes(&[0x5a; 32]));

/// Re-encodes `value` and checks that `decode` gives it back.
///
/// Skipped when the encoding is longer than `max_len` (the decoder's bound, or the length of
/// the input when the bound is private): a value decoded from a compact form (optional fields
/// left out) can re-encode a few bytes longer than the bound it came under.
pub fn round_trip<T, E>(value: &T, max_len: usize, decode: impl FnOnce(&[u8]) -> Result<T, E>)
where
    T: Serialize + PartialEq + Debug,
    E: Debug,
{
    let bytes = codec::encode(value);
    if bytes.len() > max_len {
        return;
    }
    let again = decode(&bytes);
    assert!(
        again.as_ref().is_ok_and(|again| again == value),
        "re-encoded {value:?} decodes as {again:?}"
    );
}

/// Envelope bytes as a relay takes them in: decode, verify (alone and in a batch), store.
pub fn envelope(data: &[u8]) {
    let raw = RawEnvelope::from_bytes(data.to_vec());
    let opened = raw.open();
    let decoded = match raw.decode_unverified() {
        Ok(decoded) => decoded,
        Err(error) => {
            assert_eq!(opened, Err(EnvelopeError::Decode(error)));
            return;
        }
    };
    if let Ok(opened) = &opened {
        assert_eq!(opened, &decoded);
    }
    round_trip(&decoded, MAX_ENVELOPE_BYTES, |bytes| {
        codec::decode::<Envelope>(bytes, MAX_ENVELOPE_BYTES)
    });

    // Whatever decodes, signed by its sender device, opens as itself.
    let mut mine = decoded.clone();
    mine.sender.device = DeviceId::from(&KEY.verifying_key());
    let signed = mine.sign(&KEY);
    let signed = (signed.len() <= MAX_ENVELOPE_BYTES).then_some(signed);
    if let Some(signed) = &signed {
        assert_eq!(signed.open(), Ok(mine.clone()));
    }

    // Batch verification gives the input the verdict single (strict) verification gives it,
    // alone and between honest envelopes.
    let alone = verify_batch(&[(&raw, &decoded)]);
    assert_eq!(alone.len(), 1);
    batch_agrees(&alone[0], &opened);
    if let Some(signed) = &signed {
        let between = verify_batch(&[(signed, &mine), (&raw, &decoded), (signed, &mine)]);
        assert!(
            between.len() == 3 && between[0].is_ok() && between[2].is_ok(),
            "honest envelopes refused beside one that opens as {opened:?}: {between:?}"
        );
        batch_agrees(&between[1], &opened);
    }
    mailbox_item(MailboxItem::Envelope(raw));
}

/// A batch verdict is the single verdict; above all, a batch never accepts what `open` refuses
/// (relays would store and forward what every client drops).
fn batch_agrees(verdict: &Result<(), EnvelopeError>, opened: &Result<Envelope, EnvelopeError>) {
    assert!(
        !(verdict.is_ok() && opened.is_err()),
        "batch verification accepts what single verification refuses: {opened:?}"
    );
    assert!(
        verdict.is_ok() == opened.is_ok(),
        "batch verification says {verdict:?}, single verification says {opened:?}"
    );
}

/// A mailbox entry survives being stored and read back.
pub fn mailbox_item(item: MailboxItem) {
    let stored = item.to_stored();
    let again = MailboxItem::from_stored(stored);
    match (&item, &again) {
        (MailboxItem::Envelope(raw), Ok(MailboxItem::Envelope(back))) => assert_eq!(raw, back),
        (MailboxItem::Envelope(raw), _) => {
            // Only bytes that are not an envelope at all may be read back as something else.
            assert!(
                raw.decode_unverified().is_err(),
                "stored envelope reads back as {again:?}"
            );
        }
        (MailboxItem::Bounce(_), Ok(back)) => assert_eq!(&item, back),
        (MailboxItem::Bounce(_), Err(error)) => {
            assert!(
                matches!(error, DecodeError::TooLarge { .. }),
                "stored bounce {item:?} reads back as {error:?}"
            );
        }
    }
}

/// Verifies envelopes as the relay does, and checks the batch agrees with one-by-one opening.
fn verify_envelopes<'a>(raws: impl Iterator<Item = &'a RawEnvelope>) {
    let decoded: Vec<(&RawEnvelope, Envelope)> = raws
        .filter_map(|raw| raw.decode_unverified().ok().map(|envelope| (raw, envelope)))
        .collect();
    let items: Vec<(&RawEnvelope, &Envelope)> = decoded
        .iter()
        .map(|(raw, envelope)| (*raw, envelope))
        .collect();
    let verdicts = verify_batch(&items);
    assert_eq!(verdicts.len(), items.len());
    for ((raw, _), verdict) in items.iter().zip(verdicts) {
        batch_agrees(&verdict, &raw.open());
    }
}

/// A frame a device sends to its relay, and the checks the relay then makes.
pub fn client_request(data: &[u8]) {
    let Ok(frame) = ClientFrame::decode(data) else {
        return;
    };
    round_trip(&frame, MAX_FRAME_BYTES, ClientFrame::decode);
    let ClientFrame::Request { body, .. } = &frame else {
        return;
    };
    match body {
        Request::Register(register) => {
            let _ = register.cert.verify();
            if let Some(list) = &register.list {
                let _ = list.verify();
            }
        }
        Request::UploadKeys(upload) => {
            if let Some(identity) = &upload.identity {
                let _ = identity.verify();
            }
            for prekey in upload.one_time_keys.iter().chain(&upload.fallback) {
                let _ = prekey.verify();
            }
        }
        Request::PublishHome(record) => framed_home_record(record),
        Request::Send { envelopes } => verify_envelopes(envelopes.iter()),
        Request::Ephemeral { envelope } => {
            verify_envelopes(std::iter::once(envelope));
            if let Ok(decoded) = envelope.decode_unverified() {
                presence(&decoded.body);
            }
        }
        Request::PublishDeviceList { list } => {
            let _ = list.verify();
        }
        Request::SetPush {
            subscription: Some(subscription),
        } => assert!(
            subscription.validate().is_ok(),
            "decode checks subscriptions"
        ),
        Request::SetPush { subscription: None }
        | Request::GetPush
        | Request::ClaimBundle { .. }
        | Request::PutLink { .. }
        | Request::TakeLink
        | Request::GetDeviceList { .. }
        | Request::ClaimBundles { .. }
        | Request::Subscribe
        | Request::SetPresence { .. }
        | Request::WatchPresence { .. }
        | Request::GroupVersions { .. } => {}
        Request::PutProfile { profile } => {
            assert!(profile.check().is_ok(), "decode checks sealed profiles")
        }
        Request::GetProfile { .. } => {}
        Request::PostStatus(post) => {
            assert!(post.check().is_ok(), "decode checks status bodies");
            let _ = post.check_expiry(crate::now_ms());
        }
        Request::GetStatuses { .. } => {}
    }
}

/// A frame a relay sends to a device, and the checks the client then makes.
pub fn client_response(data: &[u8]) {
    let Ok(frame) = RelayFrame::decode(data) else {
        return;
    };
    round_trip(&frame, MAX_FRAME_BYTES, RelayFrame::decode);
    match &frame {
        RelayFrame::Deliver { items } => {
            for delivery in items.iter() {
                mailbox_item(delivery.item.clone());
            }
        }
        RelayFrame::Response {
            body: Ok(Response::Bundle(bundle)),
            ..
        } => {
            let _ = bundle.verify_for(&bundle.cert.user);
        }
        RelayFrame::Response {
            body: Ok(Response::Bundles { bundles }),
            ..
        } => {
            for bundle in bundles.iter().flatten() {
                let _ = bundle.verify_for(&bundle.cert.user);
            }
        }
        RelayFrame::Ephemeral(raw) => verify_envelopes(std::iter::once(raw)),
        RelayFrame::Response {
            body: Ok(Response::GroupVersions { versions }),
            ..
        } => descriptor_chain(versions),
        _ => {}
    }
}

/// A frame between relays (requests, forwarded batches, answers), and the relay's checks.
pub fn federation_request(data: &[u8]) {
    let Ok(frame) = FederationFrame::decode(data) else {
        return;
    };
    round_trip(&frame, MAX_FRAME_BYTES, FederationFrame::decode);
    match &frame {
        FederationFrame::Request { body, .. } => match body {
            FederationRequest::Forward { items, certs } => {
                verify_envelopes(items.iter().map(|item| &item.envelope));
                for cert in certs.iter() {
                    let _ = cert.verify();
                }
            }
            FederationRequest::Descriptors { versions } => descriptor_chain(versions),
            FederationRequest::Handoff {
                home,
                previous,
                items,
            } => {
                framed_home_record(home);
                framed_home_record(previous);
                let _ = home.supersedes(previous);
                for item in items.iter() {
                    mailbox_item(item.clone());
                }
            }
            FederationRequest::Ephemeral { envelope, cert, .. } => {
                verify_envelopes(std::iter::once(envelope));
                let _ = cert.verify();
            }
            FederationRequest::GroupVersion { .. }
            | FederationRequest::ClaimBundles { .. }
            | FederationRequest::Claim { .. }
            | FederationRequest::DeviceList { .. }
            | FederationRequest::WatchPresence { .. }
            | FederationRequest::PresenceChanged { .. } => {}
            FederationRequest::Profile { .. } => {}
            FederationRequest::StatusForward { post, .. } => {
                assert!(post.check().is_ok(), "decode checks status bodies");
            }
        },
        FederationFrame::Response {
            body: Ok(FederationResponse::Bundle(bundle)),
            ..
        } => {
            let _ = bundle.verify_for(&bundle.cert.user);
        }
        FederationFrame::Response { .. } => {}
    }
}

/// Checks a chain of descriptor versions the way a relay takes it in, oldest first.
fn descriptor_chain(versions: &[SignedDescriptor]) {
    let mut known: Option<&SignedDescriptor> = None;
    for version in versions {
        let verdict = match known {
            None => version.check_genesis(),
            Some(known) => version.check_successor(known),
        };
        if verdict.is_err() {
            return;
        }
        known = Some(version);
    }
}

/// A home record that came inside a frame: only the frame's bound applied while decoding, yet
/// the relay stores it in its user record and puts it in the DHT, which both assume
/// [`MAX_HOME_RECORD_BYTES`].
fn framed_home_record(record: &HomeRecord) {
    let len = record.encode().len();
    assert!(
        len <= MAX_HOME_RECORD_BYTES,
        "a frame carried a home record of {len} bytes"
    );
    home_record_checks(record);
}

/// What any holder of a decoded home record does with it.
fn home_record_checks(record: &HomeRecord) {
    let verified = record.verify(NOW_MS);
    assert_eq!(record.supersedes(record), Ok(()));
    let key = HomeRecord::dht_key(&record.user);
    let bytes = record.encode();
    if bytes.len() <= MAX_HOME_RECORD_BYTES {
        let again = HomeRecord::decode_verified(&key, &bytes, NOW_MS);
        assert_eq!(again.is_ok(), verified.is_ok(), "{again:?} vs {verified:?}");
    }
}

/// A DHT value: decoded and verified under the key of the user it names (and a wrong key).
pub fn home_record(data: &[u8]) {
    let claimed = codec::decode::<HomeRecord>(data, MAX_HOME_RECORD_BYTES).ok();
    let key = match &claimed {
        Some(record) => HomeRecord::dht_key(&record.user),
        None => HOME_KEY_PREFIX.to_vec(),
    };
    let verified = HomeRecord::decode_verified(&key, data, NOW_MS);
    let wrong = HomeRecord::decode_verified(HOME_KEY_PREFIX, data, NOW_MS);
    assert!(wrong.is_err());
    let Some(record) = claimed else {
        assert!(verified.is_err());
        return;
    };
    home_record_checks(&record);
    if let Ok(verified) = verified {
        assert_eq!(verified, record);
        round_trip(&record, MAX_HOME_RECORD_BYTES, |bytes| {
            HomeRecord::decode_verified(&key, bytes, NOW_MS)
        });
    }
    // The same content signed by a real account key verifies.
    let signed = HomeRecord::sign(
        &KEY,
        record.relay.clone(),
        record.addrs.clone(),
        record.seq,
        record.expires_at_ms.max(NOW_MS + 1),
    );
    let bytes = signed.encode();
    if bytes.len() <= MAX_HOME_RECORD_BYTES {
        let key = HomeRecord::dht_key(&signed.user);
        assert_eq!(
            HomeRecord::decode_verified(&key, &bytes, NOW_MS),
            Ok(signed)
        );
    }
}

/// A signed group descriptor (an envelope body or a stored version) and the chain rules.
pub fn group_descriptor(data: &[u8]) {
    let Ok(signed) = SignedDescriptor::decode(data) else {
        return;
    };
    round_trip(&signed, MAX_DESCRIPTOR_BYTES, SignedDescriptor::decode);
    let _ = signed.check_genesis();
    assert!(signed.check_successor(&signed).is_err());
    let descriptor = &signed.descriptor;
    let _ = descriptor.role_of(&descriptor.author);

    // Normalizing is idempotent and gives a list the shape check accepts.
    let members = Descriptor::normalize(descriptor.members.to_vec());
    assert!(members.windows(2).all(|pair| pair[0].user < pair[1].user));
    assert_eq!(Descriptor::normalize(members.clone()), members);

    // Re-signed by an admin it names, the signature verifies, and a successor signed by that
    // admin follows it.
    let me = UserId::from(&KEY.verifying_key());
    let mut mine = descriptor.clone();
    mine.author = me;
    if let Some(salt) = mine.salt {
        mine.group = crate::group::group_id_for(&me, &salt);
    }
    let mut members = mine.members.to_vec();
    members.push(GroupMember {
        user: me,
        role: Role::Admin,
    });
    if let Ok(members) = BoundedVec::new(Descriptor::normalize(members)) {
        mine.members = members;
    }
    let resigned = SignedDescriptor::sign(&KEY, mine);
    let verdict = resigned.check_genesis();
    assert_ne!(verdict, Err(GroupError::BadSignature));
    if verdict.is_ok() {
        let next = SignedDescriptor::sign(
            &KEY,
            Descriptor {
                version: 2,
                previous: Some(resigned.hash()),
                salt: None,
                ..resigned.descriptor.clone()
            },
        );
        assert_eq!(next.check_successor(&resigned), Ok(()));
    }
}

/// A signed device list (a frame field, a DHT value or a stored list) and the version rule.
pub fn device_list(data: &[u8]) {
    let Ok(signed) = SignedDeviceList::decode(data) else {
        return;
    };
    round_trip(&signed, MAX_DEVICE_LIST_BYTES, SignedDeviceList::decode);
    let verdict = signed.verify();
    assert!(signed.check_successor(&signed).is_err());
    for entry in signed.list.devices.iter() {
        assert!(signed.contains(&entry.device));
    }

    // The same devices, listed by a real account key: valid exactly when the shape is, and
    // the next version follows it.
    let me = UserId::from(&KEY.verifying_key());
    let mine = DeviceList::new(me, signed.list.version, signed.list.devices.to_vec());
    if verdict.is_ok() || verdict == Err(DeviceListError::Forged) {
        assert!(mine.is_ok(), "{mine:?}");
    }
    let Ok(mine) = mine else {
        return;
    };
    let resigned = mine.clone().sign(&KEY);
    assert_eq!(resigned.verify(), Ok(()));
    if let Some(version) = mine.version.checked_add(1) {
        let next = DeviceList { version, ..mine }.sign(&KEY);
        assert_eq!(next.check_successor(&resigned), Ok(()));
        assert!(resigned.check_successor(&next).is_err());
    }
}

/// End-to-end payloads: every decoder of an envelope body or a decrypted plaintext.
pub fn content(data: &[u8]) {
    if let Ok(body) = OlmBody::decode(data) {
        round_trip(&body, MAX_ENVELOPE_BYTES, OlmBody::decode);
        if let Some(keys) = &body.sender_keys {
            let _ = keys.cert.verify();
            let _ = keys.identity.verify();
        }
    }
    if let Ok(body) = MegolmBody::decode(data) {
        round_trip(&body, MAX_ENVELOPE_BYTES, MegolmBody::decode);
    }
    if let Ok(sealed) = GroupSealed::decode(data) {
        round_trip(&sealed, MAX_ENVELOPE_BYTES, GroupSealed::decode);
    }
    if let Ok(payload) = Payload::decode(data) {
        round_trip(&payload, MAX_ENVELOPE_BYTES, Payload::decode);
    }
    if let Ok(sealed) = Sealed::decode(data) {
        round_trip(&sealed, MAX_ENVELOPE_BYTES, Sealed::decode);
    }
}

/// The body of a typing notice (the one presence decoder outside the frames).
pub fn presence(data: &[u8]) {
    if let Ok(body) = TypingBody::decode(data) {
        round_trip(&body, MAX_TYPING_BODY, TypingBody::decode);
    }
}

/// Text people paste: contact cards and the text forms of ids.
pub fn contact_card(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(card) = text.parse::<ContactCard>() {
        let shown = card.to_string();
        if shown.len() <= MAX_CARD_TEXT_LEN {
            assert_eq!(shown.parse::<ContactCard>(), Ok(card));
        }
    }
    if let Ok(user) = text.parse::<UserId>() {
        assert_eq!(user.to_string().parse::<UserId>(), Ok(user));
    }
    if let Ok(device) = text.parse::<DeviceId>() {
        assert_eq!(device.to_string().parse::<DeviceId>(), Ok(device));
    }
    if let Ok(id) = text.parse::<EnvelopeId>() {
        assert_eq!(id.to_string().parse::<EnvelopeId>(), Ok(id));
    }
    if let Ok(group) = text.parse::<GroupId>() {
        assert_eq!(group.to_string().parse::<GroupId>(), Ok(group));
    }
}

/// Link codes and link packages: a code's text parses back to the same code; a package
/// decodes and re-encodes the same, and checking it refuses without panicking.
pub fn link(data: &[u8]) {
    if let Ok(code) = std::str::from_utf8(data).map(str::parse::<LinkCode>)
        && let Ok(code) = code
    {
        assert_eq!(code.to_string().parse::<LinkCode>().as_ref(), Ok(&code));
    }
    let Ok(package) = LinkPackage::decode(data) else {
        return;
    };
    round_trip(&package, MAX_LINK_PACKAGE_PLAINTEXT, LinkPackage::decode);
    let _ = package.check_for(package.cert.device);
}
