//! A client of the first release (`/tidings/client/1`) is told to upgrade, in a frame it
//! decodes, and the stream ends.

use std::time::Duration;

use futures::AsyncReadExt;
use tidings_protocol::{
    ErrorCode,
    client::{CLIENT_PROTOCOL_V1, RelayFrame},
    framing,
};

use crate::common::{StreamOpener, start_tweaked};

#[tokio::test]
async fn a_client_of_protocol_1_is_told_to_upgrade_and_the_stream_closes() {
    let relay = start_tweaked(|_| {}, None).await;
    let address = relay.relay.tcp_dial_addr().unwrap();
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let mut opener = StreamOpener::dial(keypair, &address);
    let mut stream = opener.open(CLIENT_PROTOCOL_V1).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        framing::read_frame(&mut stream, &mut buf),
    )
    .await
    .unwrap();
    assert!(matches!(read, Ok(true)), "{read:?}");
    match RelayFrame::decode(&buf).unwrap() {
        RelayFrame::Fatal(answer) => {
            assert_eq!(answer.code, ErrorCode::UpgradeRequired);
            assert!(answer.detail.contains("/tidings/client/2"), "{answer}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Nothing follows: the relay closed its side.
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(end.is_ok_and(|_| rest.is_empty()), "{rest:?}");
    opener.close();
}
