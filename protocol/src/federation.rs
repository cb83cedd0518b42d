//! The federation protocol (`/tidings/federation/1`): relays forwarding to each other.
//!
//! The relay that opens a stream sends requests; the other answers each by id. Envelopes
//! are acknowledged only once the receiving relay has committed them.

use serde::{Deserialize, Serialize};

use crate::{
    certs::KeyBundle,
    client::{EnvelopeBatch, SendOutcome},
    codec::{self, BoundedVec, DecodeError},
    errors::ErrorAnswer,
    home::HomeRecord,
    ids::UserId,
    limits::{MAX_BATCH_ENVELOPES, MAX_FRAME_BYTES},
    mailbox::MailboxItem,
};

/// Protocol name of the federation protocol, version 1.
pub const FEDERATION_PROTOCOL: &str = "/tidings/federation/1";

/// A frame between two relays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FederationFrame {
    /// From the relay that opened the stream.
    #[serde(rename = "q")]
    Request {
        /// Unique among this stream's requests in flight.
        #[serde(rename = "i")]
        id: u64,
        /// What is asked.
        #[serde(rename = "b")]
        body: FederationRequest,
    },
    /// The answer to the request with the same id.
    #[serde(rename = "r")]
    Response {
        /// The request's id.
        #[serde(rename = "i")]
        id: u64,
        /// The outcome.
        #[serde(rename = "b")]
        body: Result<FederationResponse, ErrorAnswer>,
    },
}

impl FederationFrame {
    /// Decodes a frame from another relay.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, MAX_FRAME_BYTES)
    }
}

/// A request from another relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FederationRequest {
    /// Store these envelopes for users whose home is the receiving relay.
    #[serde(rename = "fwd")]
    Forward {
        /// The envelopes, signed by their senders' devices.
        #[serde(rename = "e")]
        envelopes: EnvelopeBatch,
    },
    /// Hand out a key bundle of a user homed at the receiving relay.
    #[serde(rename = "claim")]
    Claim {
        /// Whose.
        #[serde(rename = "u")]
        user: UserId,
    },
    /// The user moved to the receiving relay: here is what was waiting for them.
    #[serde(rename = "handoff")]
    Handoff {
        /// The user's home record naming the receiving relay.
        #[serde(rename = "h")]
        home: Box<HomeRecord>,
        /// The user's older record naming the sending relay: proof it was their home.
        #[serde(rename = "p")]
        previous: Box<HomeRecord>,
        /// Their undelivered mailbox entries, oldest first.
        #[serde(rename = "m")]
        items: BoundedVec<MailboxItem, MAX_BATCH_ENVELOPES>,
    },
}

/// A successful answer from another relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FederationResponse {
    /// One outcome per forwarded envelope or handed-off item, in order.
    #[serde(rename = "stored")]
    Stored {
        /// The outcomes.
        #[serde(rename = "o")]
        outcomes: BoundedVec<SendOutcome, MAX_BATCH_ENVELOPES>,
    },
    /// The claimed bundle (the claiming client verifies it).
    #[serde(rename = "bundle")]
    Bundle(Box<KeyBundle>),
}
