//! Typed error answers a relay sends back to a peer.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::MAX_ERROR_DETAIL_LEN;

/// Why a relay refused something. Peers branch on the code; the detail is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame did not decode.
    #[serde(rename = "malformed")]
    Malformed,
    /// The frame is longer than the limit.
    #[serde(rename = "frame_too_large")]
    FrameTooLarge,
    /// An envelope is longer than the limit.
    #[serde(rename = "envelope_too_large")]
    EnvelopeTooLarge,
    /// A signature does not verify.
    #[serde(rename = "bad_signature")]
    BadSignature,
    /// The envelope's sender is not the device on this stream.
    #[serde(rename = "sender_mismatch")]
    SenderMismatch,
    /// This device is not registered here.
    #[serde(rename = "not_registered")]
    NotRegistered,
    /// The certificate is invalid or is not for the connecting device.
    #[serde(rename = "bad_certificate")]
    BadCertificate,
    /// The account's device list is full, or names more devices than this relay allows.
    #[serde(rename = "device_limit")]
    DeviceLimit,
    /// The device is not on its account's signed device list (never added, or removed).
    #[serde(rename = "device_revoked")]
    DeviceRevoked,
    /// A device list is not newer than the one held.
    #[serde(rename = "stale_device_list")]
    StaleDeviceList,
    /// The peer speaks an older version of the protocol than this relay serves.
    #[serde(rename = "upgrade_required")]
    UpgradeRequired,
    /// The relay does not take registrations.
    #[serde(rename = "registration_closed")]
    RegistrationClosed,
    /// The relay asks for an invite code and none was given.
    #[serde(rename = "invite_required")]
    InviteRequired,
    /// The invite code is unknown, used up or expired.
    #[serde(rename = "invalid_invite")]
    InvalidInvite,
    /// Keys are malformed or not signed by the device.
    #[serde(rename = "bad_keys")]
    BadKeys,
    /// The recipient is not known to this relay.
    #[serde(rename = "unknown_recipient")]
    UnknownRecipient,
    /// The user's home is another relay (ask the DHT again).
    #[serde(rename = "wrong_relay")]
    WrongRelay,
    /// The relay that handed this over is not the sender's home relay.
    #[serde(rename = "wrong_origin")]
    WrongOrigin,
    /// A home record is forged, expired, stale or not for this user.
    #[serde(rename = "bad_home_record")]
    BadHomeRecord,
    /// The recipient's relay could not be reached in time; the envelope was not delivered.
    #[serde(rename = "undeliverable")]
    Undeliverable,
    /// The sender is not a member of the group, or a recipient is not.
    #[serde(rename = "not_member")]
    NotMember,
    /// The group is not known here, or only an older version of it.
    #[serde(rename = "group_out_of_date")]
    GroupOutOfDate,
    /// A group descriptor change breaks the rules (not signed by an admin, forked, stale).
    #[serde(rename = "bad_descriptor")]
    BadDescriptor,
    /// The user has not published keys.
    #[serde(rename = "no_keys")]
    NoKeys,
    /// This envelope id was already used for different content.
    #[serde(rename = "id_reused")]
    IdReused,
    /// Too many requests; try again later.
    #[serde(rename = "rate_limited")]
    RateLimited,
    /// A quota (mailbox, keys) is full.
    #[serde(rename = "quota_exceeded")]
    QuotaExceeded,
    /// The relay could not store it durably; nothing was accepted, retry later.
    #[serde(rename = "storage")]
    Storage,
    /// The relay is shutting down or overloaded; retry later.
    #[serde(rename = "unavailable")]
    Unavailable,
    /// The relay's disk is nearly full: it takes nothing that grows its store for now (reads
    /// and acks still work); retry later.
    #[serde(rename = "storage_full")]
    StorageFull,
    /// An uploaded blob's bytes do not hash to the id it was announced under (nothing kept).
    #[serde(rename = "hash_mismatch")]
    HashMismatch,
    /// A blob is larger than this relay takes.
    #[serde(rename = "blob_too_large")]
    BlobTooLarge,
    /// No such blob here (never uploaded, or collected), nor at the relay named for it.
    #[serde(rename = "blob_not_found")]
    BlobNotFound,
    /// The relay's operator suspended the account: its devices may not connect and nothing
    /// is delivered to it until the operator resumes it.
    #[serde(rename = "user_suspended")]
    UserSuspended,
    /// A code from a newer version (serde wants it last: new codes go just above it).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code's name on the wire (what logs, docs and people see).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::EnvelopeTooLarge => "envelope_too_large",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::SenderMismatch => "sender_mismatch",
            ErrorCode::NotRegistered => "not_registered",
            ErrorCode::BadCertificate => "bad_certificate",
            ErrorCode::DeviceLimit => "device_limit",
            ErrorCode::DeviceRevoked => "device_revoked",
            ErrorCode::StaleDeviceList => "stale_device_list",
            ErrorCode::UpgradeRequired => "upgrade_required",
            ErrorCode::RegistrationClosed => "registration_closed",
            ErrorCode::InviteRequired => "invite_required",
            ErrorCode::InvalidInvite => "invalid_invite",
            ErrorCode::BadKeys => "bad_keys",
            ErrorCode::UnknownRecipient => "unknown_recipient",
            ErrorCode::WrongRelay => "wrong_relay",
            ErrorCode::WrongOrigin => "wrong_origin",
            ErrorCode::BadHomeRecord => "bad_home_record",
            ErrorCode::Undeliverable => "undeliverable",
            ErrorCode::NotMember => "not_member",
            ErrorCode::GroupOutOfDate => "group_out_of_date",
            ErrorCode::BadDescriptor => "bad_descriptor",
            ErrorCode::NoKeys => "no_keys",
            ErrorCode::IdReused => "id_reused",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::Storage => "storage",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::StorageFull => "storage_full",
            ErrorCode::HashMismatch => "hash_mismatch",
            ErrorCode::BlobTooLarge => "blob_too_large",
            ErrorCode::BlobNotFound => "blob_not_found",
            ErrorCode::UserSuspended => "user_suspended",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// Whether the same request may succeed if simply sent again later.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::Storage
                | ErrorCode::Unavailable
                | ErrorCode::StorageFull
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed refusal with a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ErrorAnswer {
    /// What went wrong.
    #[serde(rename = "c")]
    pub code: ErrorCode,
    /// More about it, for logs and people; at most [`MAX_ERROR_DETAIL_LEN`] bytes (a longer
    /// one from a peer is cut when decoded).
    #[serde(rename = "d", deserialize_with = "bounded_detail")]
    pub detail: String,
}

/// Cuts `detail` to [`MAX_ERROR_DETAIL_LEN`] bytes at a character boundary.
fn cut_detail(detail: &mut String) {
    if detail.len() > MAX_ERROR_DETAIL_LEN {
        let mut cut = MAX_ERROR_DETAIL_LEN;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
    }
}

fn bounded_detail<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let mut detail = String::deserialize(deserializer)?;
    cut_detail(&mut detail);
    Ok(detail)
}

impl ErrorAnswer {
    /// An answer with the given code and detail (cut to [`MAX_ERROR_DETAIL_LEN`]).
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        cut_detail(&mut detail);
        Self { code, detail }
    }
}

impl fmt::Display for ErrorAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorAnswer, ErrorCode, MAX_ERROR_DETAIL_LEN};

    #[test]
    fn a_peers_overlong_detail_is_cut_when_decoded() {
        let long = ErrorAnswer {
            code: ErrorCode::Malformed,
            detail: "é".repeat(MAX_ERROR_DETAIL_LEN),
        };
        let bytes = crate::codec::encode(&long);
        let decoded: ErrorAnswer = crate::codec::decode(&bytes, bytes.len()).unwrap();
        assert!(decoded.detail.len() <= MAX_ERROR_DETAIL_LEN);
        assert!(long.detail.starts_with(&decoded.detail));
    }

    #[test]
    fn display_names_are_the_wire_names() {
        for code in [
            ErrorCode::Malformed,
            ErrorCode::FrameTooLarge,
            ErrorCode::EnvelopeTooLarge,
            ErrorCode::BadSignature,
            ErrorCode::SenderMismatch,
            ErrorCode::NotRegistered,
            ErrorCode::BadCertificate,
            ErrorCode::DeviceLimit,
            ErrorCode::DeviceRevoked,
            ErrorCode::StaleDeviceList,
            ErrorCode::UpgradeRequired,
            ErrorCode::RegistrationClosed,
            ErrorCode::InviteRequired,
            ErrorCode::InvalidInvite,
            ErrorCode::BadKeys,
            ErrorCode::UnknownRecipient,
            ErrorCode::WrongRelay,
            ErrorCode::WrongOrigin,
            ErrorCode::BadHomeRecord,
            ErrorCode::Undeliverable,
            ErrorCode::NotMember,
            ErrorCode::GroupOutOfDate,
            ErrorCode::BadDescriptor,
            ErrorCode::NoKeys,
            ErrorCode::IdReused,
            ErrorCode::RateLimited,
            ErrorCode::QuotaExceeded,
            ErrorCode::Storage,
            ErrorCode::Unavailable,
            ErrorCode::StorageFull,
            ErrorCode::HashMismatch,
            ErrorCode::BlobTooLarge,
            ErrorCode::BlobNotFound,
            ErrorCode::UserSuspended,
            ErrorCode::Unknown,
        ] {
            let mut bytes = Vec::new();
            ciborium::into_writer(&code, &mut bytes).unwrap();
            let wire: String = ciborium::from_reader(bytes.as_slice()).unwrap();
            if code != ErrorCode::Unknown {
                assert_eq!(code.to_string(), wire);
            }
        }
    }
}
