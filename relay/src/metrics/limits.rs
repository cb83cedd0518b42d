//! Labels of the series that count refused connections, streams and claims.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};

/// Which protocol a stream speaks, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum StreamKind {
    /// `/tidings/client/2` (and `/1`, told to upgrade), from devices.
    Client,
    /// `/tidings/federation/2`, from other relays.
    Federation,
    /// `/tidings/blob/1`, blob transfers from devices.
    Blob,
    /// `/tidings/blob-federation/1`, blob fetches from other relays.
    BlobFederation,
}

/// Why a stream was refused or closed early, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum StreamLimit {
    /// The peer already held its share of streams.
    PeerLimit,
    /// Every slot was taken.
    Full,
    /// No frame within the idle timeout.
    Idle,
    /// A started frame did not arrive whole in time.
    SlowFrame,
    /// The protocol's accept queue was full: the stream was reset before it was read.
    Backlog,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StreamLabels {
    pub protocol: StreamKind,
    pub reason: StreamLimit,
}

/// Why a key claim from another relay was refused, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ClaimRefusal {
    /// The requester's home record names another relay.
    NotHome,
    /// No home record of the requester was found.
    UnknownRequester,
    /// The asking relay claimed too fast.
    RateLimited,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ClaimLabels {
    pub reason: ClaimRefusal,
}
