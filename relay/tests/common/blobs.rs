//! A raw `/tidings/blob/1` client: opens blob streams as a device and speaks their frames
//! by hand.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, io::ReadHalf, io::WriteHalf};
use libp2p::{Multiaddr, PeerId, Stream};
use tidings_protocol::{
    BlobAnswer, BlobData, BlobId, BlobRef, BlobRequest, BoundedVec, ErrorAnswer, ErrorCode,
    blob::{BLOB_PROTOCOL, MAX_BLOB_DATA_BYTES, MAX_BLOBS_PER_ENVELOPE},
    framing,
};

use super::{RawDevice, StreamOpener};

/// An envelope header naming the blob of ciphertext `bytes`, uploaded to `relay`.
pub fn naming_blob(bytes: &[u8], relay: PeerId) -> BoundedVec<BlobRef, MAX_BLOBS_PER_ENVELOPE> {
    BoundedVec::new(vec![BlobRef {
        id: BlobId::of(bytes),
        relay: relay.to_string(),
        size: bytes.len() as u64,
    }])
    .unwrap()
}

/// One connection to a relay as a device key, opening blob streams on it.
pub struct BlobClient {
    opener: StreamOpener,
}

impl BlobClient {
    /// Connects as `device`'s key.
    pub fn of(device: &RawDevice, address: &Multiaddr) -> Self {
        Self::as_key(&device.device, address)
    }

    /// Connects as the device key `key` (registered or not).
    pub fn as_key(key: &ed25519_dalek::SigningKey, address: &Multiaddr) -> Self {
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(key.to_bytes()).unwrap();
        Self {
            opener: StreamOpener::dial(keypair, address),
        }
    }

    /// A new blob stream.
    pub async fn stream(&mut self) -> BlobStream {
        self.stream_on(BLOB_PROTOCOL).await
    }

    /// A new stream of `protocol` (the blob protocol, or the relays' one).
    pub async fn stream_on(&mut self, protocol: &'static str) -> BlobStream {
        let stream = self.opener.open(protocol).await.unwrap();
        let (reader, writer) = stream.split();
        BlobStream {
            reader,
            writer,
            buf: Vec::new(),
        }
    }

    /// A new blob stream that took `request`. libp2p-stream drops an inbound stream that
    /// arrives while the relay's acceptor is busy with another, so a client tries again.
    /// Returns the stream and the relay's first answer.
    pub async fn open_with(&mut self, request: &BlobRequest) -> (BlobStream, BlobAnswer) {
        for _ in 0..10 {
            let mut stream = self.stream().await;
            if framing::write_frame(&mut stream.writer, request)
                .await
                .is_ok()
                && let Some(answer) = stream.answer().await
            {
                return (stream, answer);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the relay dropped every stream");
    }

    /// Starts an upload of `bytes`, retrying while an earlier stream of it is still being
    /// wound up on the relay; the relay's first answer and the stream.
    pub async fn start_upload(&mut self, bytes: &[u8]) -> (BlobAnswer, BlobStream) {
        let id = BlobId::of(bytes);
        self.start_upload_as(id, bytes.len() as u64).await
    }

    /// As [`Self::start_upload`] for a declared id and size.
    pub async fn start_upload_as(&mut self, id: BlobId, size: u64) -> (BlobAnswer, BlobStream) {
        for _ in 0..100 {
            let (stream, answer) = self
                .open_with(&BlobRequest::Upload {
                    id,
                    size,
                    offset: 0,
                })
                .await;
            match &answer {
                BlobAnswer::Error(error) if error.code == ErrorCode::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => return (answer, stream),
            }
        }
        panic!("the upload stayed unavailable");
    }

    /// Uploads `bytes` whole (resuming where the relay stands): its last answer.
    pub async fn upload(&mut self, bytes: &[u8]) -> Result<(), ErrorAnswer> {
        let (answer, mut stream) = self.start_upload(bytes).await;
        match answer {
            BlobAnswer::Stored => Ok(()),
            BlobAnswer::Ready { offset } => stream.finish(bytes, offset).await,
            BlobAnswer::Error(error) => Err(error),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Downloads blob `id` from `offset`: its bytes from there.
    pub async fn download(&mut self, id: BlobId, offset: u64) -> Result<Vec<u8>, ErrorAnswer> {
        self.download_from(id, None, offset).await
    }

    /// Downloads blob `id` uploaded to `relay` from `offset` (the relay fetches it first if
    /// it must; its progress frames are checked and skipped).
    pub async fn download_from(
        &mut self,
        id: BlobId,
        relay: Option<String>,
        offset: u64,
    ) -> Result<Vec<u8>, ErrorAnswer> {
        let (mut stream, mut answer) = self
            .open_with(&BlobRequest::Download { id, relay, offset })
            .await;
        let (size, from) = loop {
            match answer {
                BlobAnswer::Sending { size, offset } => break (size, offset),
                BlobAnswer::Fetching { have, size } => assert!(have <= size),
                BlobAnswer::Error(error) => return Err(error),
                other => panic!("unexpected {other:?}"),
            }
            answer = stream.answer().await.expect("an answer to the download");
        };
        assert_eq!(from, offset);
        let mut got = Vec::new();
        while (got.len() as u64) < size - offset {
            let data = stream.data().await.expect("data until the end");
            assert!(data.len() <= MAX_BLOB_DATA_BYTES);
            got.extend_from_slice(&data);
        }
        assert_eq!(got.len() as u64, size - offset);
        assert!(
            stream.data().await.is_none(),
            "the stream ends after the blob"
        );
        Ok(got)
    }

    /// Stops the connection.
    pub fn close(self) {
        self.opener.close();
    }
}

/// One blob stream.
pub struct BlobStream {
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    buf: Vec<u8>,
}

impl BlobStream {
    /// Sends the request frame; false if the relay dropped the stream already.
    pub async fn try_request(&mut self, request: &BlobRequest) -> bool {
        framing::write_frame(&mut self.writer, request)
            .await
            .is_ok()
    }

    pub async fn request(&mut self, request: &BlobRequest) {
        framing::write_frame(&mut self.writer, request)
            .await
            .unwrap();
    }

    /// Sends one data frame (false if the relay closed the stream).
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        framing::write_frame(
            &mut self.writer,
            &BlobData {
                bytes: bytes.to_vec(),
            },
        )
        .await
        .is_ok()
    }

    /// Sends `bytes[from..]` in full-size frames, then reads the last answer.
    pub async fn finish(&mut self, bytes: &[u8], from: u64) -> Result<(), ErrorAnswer> {
        for chunk in bytes[from as usize..].chunks(MAX_BLOB_DATA_BYTES) {
            assert!(self.send(chunk).await, "the relay closed the upload");
        }
        match self.answer().await.expect("a last answer") {
            BlobAnswer::Stored => Ok(()),
            BlobAnswer::Error(error) => Err(error),
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn frame(&mut self) -> Option<()> {
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            framing::read_frame(&mut self.reader, &mut self.buf),
        )
        .await
        .expect("the relay did not answer in time");
        matches!(read, Ok(true)).then_some(())
    }

    /// The next answer frame, or None if the stream ended.
    pub async fn answer(&mut self) -> Option<BlobAnswer> {
        self.frame().await?;
        Some(BlobAnswer::decode(&self.buf).unwrap())
    }

    /// The next data frame's bytes, or None if the stream ended.
    pub async fn data(&mut self) -> Option<Vec<u8>> {
        self.frame().await?;
        Some(BlobData::decode(&self.buf).unwrap().bytes)
    }

    /// Closes the stream (the relay sees its end).
    pub async fn close(mut self) {
        let _ = self.writer.close().await;
    }
}
