//! One outbound federation stream, on the shared multiplexer (`tidings_protocol::mux`):
//! the task owns the stream, writes requests, matches answers by id.

use futures::{AsyncReadExt, stream};
use libp2p::Stream;
use tidings_protocol::{
    ErrorAnswer,
    federation::{FederationFrame, FederationRequest, FederationResponse},
    mux::{FederationFrames, MAX_IN_FLIGHT, Mux, MuxError, Outgoing, Reply as MuxReply},
};
use tokio::sync::mpsc;

use std::time::Duration;

use tokio::sync::oneshot;

/// How long a request waits for its answer.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request to another relay got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LinkError {
    /// The relay could not be reached or the stream broke.
    #[error("relay unreachable: {0}")]
    Unreachable(String),
    /// The relay refused, with its reason.
    #[error("relay refused: {0}")]
    Refused(ErrorAnswer),
    /// No answer in time.
    #[error("relay did not answer within {REQUEST_TIMEOUT:?}")]
    Timeout,
}

pub(crate) type Reply = oneshot::Sender<Result<FederationResponse, LinkError>>;

/// A link caller's reply, as the multiplexer answers it.
struct LinkReply(Reply);

impl MuxReply<Result<FederationResponse, ErrorAnswer>> for LinkReply {
    fn send(self, result: Result<Result<FederationResponse, ErrorAnswer>, MuxError>) {
        let result = match result {
            Ok(answer) => answer.map_err(LinkError::Refused),
            Err(reason) => Err(LinkError::Unreachable(reason.to_string())),
        };
        let _ = self.0.send(result);
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// Owns one stream: writes requests, reads answers, fails everything pending when it breaks.
/// The request queue is closed before anyone hears of the failure, so a retry never picks
/// this link again.
pub(super) async fn run(stream: Stream, mut requests: mpsc::Receiver<(FederationRequest, Reply)>) {
    let (reader, writer) = stream.split();
    let commands = stream::poll_fn(move |cx| {
        requests.poll_recv(cx).map(|request| {
            request.map(|(body, reply)| Outgoing::Request {
                body,
                reply: LinkReply(reply),
            })
        })
    });
    let reason = Mux::<FederationFrames, LinkReply>::new(MAX_IN_FLIGHT)
        .drive(reader, writer, commands, |frame| match frame {
            FederationFrame::Request { .. } => Err(MuxError::UnexpectedFrame("a request")),
            FederationFrame::Response { .. } => Ok(()),
        })
        .await;
    tracing::debug!(%reason, "federation link closed");
}
