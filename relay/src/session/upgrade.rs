//! `/tidings/client/1`: a client of the first release is told, in a frame it decodes, to
//! upgrade, instead of meeting a relay that does not answer.

use std::time::Duration;

use futures::AsyncWriteExt;
use libp2p::{PeerId, Stream};
use tidings_protocol::{ErrorAnswer, ErrorCode, client::RelayFrame, framing};

use crate::{metrics::StreamKind, router::ProtocolHandler};

/// Streams of the old protocol served at once (each lives for one frame).
pub(crate) const V1_STREAMS: usize = 64;

/// Old-protocol streams one peer may hold at once.
pub(crate) const V1_STREAMS_PER_PEER: usize = 2;

/// How long writing the one frame may take before the stream is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client of the first release is told.
pub(crate) const UPGRADE_DETAIL: &str = "this relay speaks /tidings/client/2; upgrade tidings";

/// The `/tidings/client/1` handler: one `Fatal(upgrade_required)`, then the stream closes.
#[derive(Clone, Default)]
pub(crate) struct UpgradeHandler;

impl ProtocolHandler for UpgradeHandler {
    const KIND: StreamKind = StreamKind::Client;

    async fn accept(self, peer: PeerId, mut stream: Stream) {
        let fatal = RelayFrame::Fatal(ErrorAnswer::new(ErrorCode::UpgradeRequired, UPGRADE_DETAIL));
        let told = tokio::time::timeout(WRITE_TIMEOUT, async {
            framing::write_frame(&mut stream, &fatal).await?;
            stream.close().await
        })
        .await;
        tracing::debug!(%peer, told = matches!(told, Ok(Ok(()))), "a client of protocol /1 was told to upgrade");
    }
}
