//! The frame-reader check: a byte stream read as frames in network-sized pieces.

use futures::{AsyncRead, executor::block_on};

use crate::{
    client::{ClientFrame, RelayFrame},
    federation::FederationFrame,
    framing,
    limits::MAX_FRAME_BYTES,
};

/// A stream that hands out at most `chunk` bytes per read, as a network would.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        std::task::Poll::Ready(Ok(n))
    }
}

/// A byte stream cut into frames (the first byte picks the read size), each decoded as
/// every kind of frame.
pub fn frame_reader(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let mut reader = Chunked {
        data: stream,
        chunk: usize::from(chunk % 64) + 1,
    };
    let mut buf = Vec::new();
    loop {
        let (back, frame, result) = block_on(framing::read_frame_owned(reader, buf));
        (reader, buf) = (back, frame);
        match result {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
        assert!(buf.len() <= MAX_FRAME_BYTES);
        let _ = ClientFrame::decode(&buf);
        let _ = RelayFrame::decode(&buf);
        let _ = FederationFrame::decode(&buf);
        // The frame, length-prefixed again, reads back as itself.
        let mut wire = u32::try_from(buf.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes()
            .to_vec();
        wire.extend_from_slice(&buf);
        let mut again = Vec::new();
        let reread = block_on(framing::read_frame(&mut wire.as_slice(), &mut again));
        assert!(matches!(reread, Ok(true)) && again == buf);
    }
}
