//! One outbound federation stream: writes requests, reads answers by id.

use std::collections::HashMap;

use futures::{AsyncReadExt, io::WriteHalf};
use libp2p::Stream;
use tidings_protocol::{
    federation::{FederationFrame, FederationRequest},
    framing,
};
use tokio::sync::mpsc;

use super::link::{LinkError, Reply};

/// Owns one stream: writes requests, reads answers, fails everything pending when it breaks.
pub(super) async fn run(stream: Stream, mut requests: mpsc::Receiver<(FederationRequest, Reply)>) {
    let (reader, mut writer) = stream.split();
    let mut pending: HashMap<u64, Reply> = HashMap::new();
    let mut next_id = 1u64;
    let mut read = Box::pin(framing::read_frame_owned(reader, Vec::new()));
    let reason = loop {
        tokio::select! {
            request = requests.recv() => {
                let Some((body, reply)) = request else { break "link dropped".to_string() };
                let id = next_id;
                next_id += 1;
                pending.insert(id, reply);
                if let Err(error) = write(&mut writer, &FederationFrame::Request { id, body }).await {
                    break error;
                }
            }
            (reader, buf, result) = &mut read => {
                match result {
                    Ok(true) => match FederationFrame::decode(&buf) {
                        Ok(FederationFrame::Response { id, body }) => {
                            if let Some(reply) = pending.remove(&id) {
                                let _ = reply.send(body.map_err(LinkError::Refused));
                            }
                        }
                        Ok(FederationFrame::Request { .. }) => break "peer sent a request on our stream".into(),
                        Err(error) => break format!("undecodable frame: {error}"),
                    },
                    Ok(false) => break "peer closed the stream".into(),
                    Err(error) => break error.to_string(),
                }
                read = Box::pin(framing::read_frame_owned(reader, buf));
            }
        }
    };
    tracing::debug!(%reason, "federation link closed");
    // Closed before anyone hears of the failure, so a retry never picks this link again.
    drop(requests);
    for (_, reply) in pending.drain() {
        let _ = reply.send(Err(LinkError::Unreachable(reason.clone())));
    }
    let _ = futures::AsyncWriteExt::close(&mut writer).await;
}

async fn write(writer: &mut WriteHalf<Stream>, frame: &FederationFrame) -> Result<(), String> {
    framing::write_frame(writer, frame)
        .await
        .map_err(|error| error.to_string())
}
