//! Reading a frame within deadlines: the next frame must start within the idle timeout
//! (when there is one), and a frame once started must arrive whole within the frame timeout,
//! so a peer cannot hold a stream by saying nothing, or by sending a frame byte by byte.

use std::{
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
    time::Duration,
};

use futures::AsyncRead;
use tidings_protocol::framing::{self, FrameError};
use tokio::time::Instant;

use crate::metrics::StreamLimit;

/// How long a stream may wait before and within a frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameTimeouts {
    /// How long the next frame may take to start; `None`: as long as it likes.
    pub idle: Option<Duration>,
    /// How long a started frame may take to arrive whole.
    pub frame: Duration,
}

/// Why no frame was read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TimedFrameError {
    /// The stream failed, closed mid-frame, or announced a frame too large.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// No frame started within the idle timeout.
    #[error("no frame for {0:?}")]
    Idle(Duration),
    /// A frame started but did not arrive whole within the frame timeout.
    #[error("a frame took longer than {0:?} to arrive")]
    SlowFrame(Duration),
}

impl TimedFrameError {
    /// Which deadline passed, as a metric label; `None` if none did.
    pub fn deadline(&self) -> Option<StreamLimit> {
        match self {
            TimedFrameError::Idle(_) => Some(StreamLimit::Idle),
            TimedFrameError::SlowFrame(_) => Some(StreamLimit::SlowFrame),
            TimedFrameError::Frame(_) => None,
        }
    }
}

/// A reader that notes when its first byte arrived.
struct Noting<'a, R> {
    inner: &'a mut R,
    started: &'a OnceLock<Instant>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Noting<'_, R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut *self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(read)) = &polled
            && *read > 0
        {
            let _ = self.started.set(Instant::now());
        }
        polled
    }
}

/// Reads one frame into `buf` as [`framing::read_frame`] does, within `timeouts`.
pub(crate) async fn read_frame_timed<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    timeouts: FrameTimeouts,
) -> Result<bool, TimedFrameError> {
    let started = OnceLock::new();
    let waiting_since = Instant::now();
    let mut noting = Noting {
        inner: reader,
        started: &started,
    };
    let read = framing::read_frame(&mut noting, buf);
    tokio::pin!(read);
    loop {
        let deadline = match (started.get(), timeouts.idle) {
            (Some(at), _) => *at + timeouts.frame,
            (None, Some(idle)) => waiting_since + idle,
            (None, None) => waiting_since + Duration::from_secs(24 * 3600),
        };
        tokio::select! {
            result = &mut read => return Ok(result?),
            () = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                match (started.get(), timeouts.idle) {
                    (Some(at), _) if now >= *at + timeouts.frame => {
                        return Err(TimedFrameError::SlowFrame(timeouts.frame));
                    }
                    (None, Some(idle)) if now >= waiting_since + idle => {
                        return Err(TimedFrameError::Idle(idle));
                    }
                    // The frame started since the deadline was set: wait for its own.
                    _ => {}
                }
            }
        }
    }
}

/// [`read_frame_timed`] as a future that owns its reader and buffer, so a `select!` loop
/// can keep it across iterations without ever dropping a frame half read.
pub(crate) async fn read_frame_timed_owned<R: AsyncRead + Unpin>(
    mut reader: R,
    mut buf: Vec<u8>,
    timeouts: FrameTimeouts,
) -> (R, Vec<u8>, Result<bool, TimedFrameError>) {
    let result = read_frame_timed(&mut reader, &mut buf, timeouts).await;
    (reader, buf, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures::AsyncWriteExt;

    fn timeouts() -> FrameTimeouts {
        FrameTimeouts {
            idle: Some(Duration::from_millis(50)),
            frame: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn silence_and_half_sent_frames_end_the_read_and_whole_frames_pass() {
        let (mut near, mut far) = futures_ringbuf_pair();
        // Silence: the idle timeout.
        let mut buf = Vec::new();
        let silent = read_frame_timed(&mut near, &mut buf, timeouts()).await;
        assert!(
            matches!(silent, Err(TimedFrameError::Idle(_))),
            "{silent:?}"
        );
        // A started frame that never ends: the frame timeout.
        far.write_all(&[0, 0, 0, 9, 1]).await.unwrap();
        let slow = read_frame_timed(&mut near, &mut buf, timeouts()).await;
        assert!(
            matches!(slow, Err(TimedFrameError::SlowFrame(_))),
            "{slow:?}"
        );
        // A whole frame passes.
        let (mut near, mut far) = futures_ringbuf_pair();
        far.write_all(&[0, 0, 0, 2, 7, 8]).await.unwrap();
        let whole = read_frame_timed(&mut near, &mut buf, timeouts()).await;
        assert!(matches!(whole, Ok(true)), "{whole:?}");
        assert_eq!(buf, vec![7, 8]);
    }

    /// Two ends of an in-memory byte pipe.
    fn futures_ringbuf_pair() -> (
        tokio_util::compat::Compat<tokio::io::DuplexStream>,
        tokio_util::compat::Compat<tokio::io::DuplexStream>,
    ) {
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (near, far) = tokio::io::duplex(1024);
        (near.compat(), far.compat())
    }
}
