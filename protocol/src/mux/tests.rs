//! The multiplexer against a hand-driven peer over an in-memory pipe.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use futures::{
    SinkExt, StreamExt, TryStreamExt,
    channel::{mpsc, oneshot},
    executor::block_on,
};

use super::*;
use crate::{
    ErrorCode, GroupId,
    client::{ClientFrame, RelayFrame, Request, Response},
};

/// The writing end of a one-way in-memory pipe: every write is one chunk.
struct PipeWriter(mpsc::UnboundedSender<Vec<u8>>);

impl AsyncWrite for PipeWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.0.unbounded_send(buf.to_vec()) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.close_channel();
        Poll::Ready(Ok(()))
    }
}

type Chunks = mpsc::UnboundedReceiver<Vec<u8>>;

fn pipe() -> (PipeWriter, Chunks) {
    let (sender, receiver) = mpsc::unbounded();
    (PipeWriter(sender), receiver)
}

fn reader(chunks: Chunks) -> impl AsyncRead + Unpin {
    chunks.map(Ok::<_, io::Error>).into_async_read()
}

/// The frames in one chunk the multiplexer wrote.
fn frames_in(chunk: &[u8]) -> Vec<ClientFrame> {
    let mut rest = chunk;
    let mut frames = Vec::new();
    while let Some((prefix, tail)) = rest.split_first_chunk::<4>() {
        let (frame, tail) = tail.split_at(u32::from_be_bytes(*prefix) as usize);
        frames.push(ClientFrame::decode(frame).unwrap());
        rest = tail;
    }
    frames
}

/// A request whose body names `n`; the peer below answers it with `reached: n`.
fn numbered(n: u64) -> Request {
    Request::GroupVersions {
        group: GroupId::from_bytes([0; 16]),
        from: n,
    }
}

fn answer_to(frame: &ClientFrame) -> RelayFrame {
    let ClientFrame::Request {
        id,
        body: Request::GroupVersions { from, .. },
    } = frame
    else {
        panic!("not a numbered request: {frame:?}");
    };
    RelayFrame::Response {
        id: *id,
        body: Ok(Response::EphemeralPassed {
            reached: *from as u32,
        }),
    }
}

fn encoded(frames: &[RelayFrame]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        framing::encode_frame(frame, &mut out);
    }
    out
}

type Answer = Result<Result<Response, ErrorAnswer>, MuxError>;
type Queue = mpsc::Sender<Outgoing<ClientFrames, oneshot::Sender<Answer>>>;

async fn ask(queue: &mut Queue, n: u64) -> oneshot::Receiver<Answer> {
    let (reply, answer) = oneshot::channel();
    queue
        .send(Outgoing::Request {
            body: numbered(n),
            reply,
        })
        .await
        .unwrap();
    answer
}

fn reached(answer: Answer) -> u32 {
    match answer {
        Ok(Ok(Response::EphemeralPassed { reached })) => reached,
        other => panic!("unexpected answer {other:?}"),
    }
}

/// Lets the other futures of a `join` run until they wait.
async fn settle() {
    for _ in 0..32 {
        let mut yielded = false;
        futures::future::poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }
}

#[test]
fn answers_are_matched_by_id_out_of_order() {
    let (to_peer, mut peer_reads) = pipe();
    let (peer_writes, from_peer) = pipe();
    let (mut queue, commands) = mpsc::channel(8);
    let mux = Mux::<ClientFrames, _>::new(MAX_IN_FLIGHT);
    let driver = mux.drive(reader(from_peer), to_peer, commands, |_| Ok(()));
    let caller = async {
        let mut waiting = Vec::new();
        for n in [10, 20, 30] {
            waiting.push(ask(&mut queue, n).await);
        }
        let mut got = Vec::new();
        for answer in waiting {
            got.push(reached(answer.await.unwrap()));
        }
        drop(queue);
        got
    };
    let peer = async {
        let mut requests = Vec::new();
        while requests.len() < 3 {
            requests.extend(frames_in(&peer_reads.next().await.unwrap()));
        }
        let answers: Vec<RelayFrame> = requests.iter().rev().map(answer_to).collect();
        peer_writes.0.unbounded_send(encoded(&answers)).unwrap();
        requests
    };
    let (reason, got, requests) = block_on(futures::future::join3(driver, caller, peer));
    assert_eq!(got, [10, 20, 30]);
    let ids: Vec<u64> = requests
        .iter()
        .map(|frame| match frame {
            ClientFrame::Request { id, .. } => *id,
            _ => 0,
        })
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert!(matches!(reason, MuxError::Dropped), "{reason:?}");
}

#[test]
fn every_pending_request_fails_when_the_stream_closes() {
    let (to_peer, mut peer_reads) = pipe();
    let (peer_writes, from_peer) = pipe();
    let (mut queue, commands) = mpsc::channel(8);
    let mux = Mux::<ClientFrames, _>::new(MAX_IN_FLIGHT);
    let driver = mux.drive(reader(from_peer), to_peer, commands, |_| Ok(()));
    let caller = async {
        let first = ask(&mut queue, 1).await;
        let second = ask(&mut queue, 2).await;
        (first.await.unwrap(), second.await.unwrap(), queue)
    };
    let peer = async {
        let mut requests = 0;
        while requests < 2 {
            requests += frames_in(&peer_reads.next().await.unwrap()).len();
        }
        drop(peer_writes);
        // The multiplexer closes its side once it has failed everything.
        assert!(peer_reads.next().await.is_none());
    };
    let (reason, (first, second, _queue), ()) =
        block_on(futures::future::join3(driver, caller, peer));
    assert!(matches!(reason, MuxError::PeerClosed), "{reason:?}");
    assert!(matches!(first, Err(MuxError::PeerClosed)), "{first:?}");
    assert!(matches!(second, Err(MuxError::PeerClosed)), "{second:?}");
}

#[test]
fn pushes_go_to_the_caller_and_may_end_the_stream() {
    let (to_peer, mut peer_reads) = pipe();
    let (peer_writes, from_peer) = pipe();
    let (mut queue, commands) = mpsc::channel(8);
    let mux = Mux::<ClientFrames, _>::new(MAX_IN_FLIGHT);
    let mut pushed = Vec::new();
    let driver = mux.drive(reader(from_peer), to_peer, commands, |frame| {
        match frame {
            RelayFrame::Fatal(answer) => return Err(MuxError::Fatal(answer)),
            other => pushed.push(other),
        }
        Ok(())
    });
    let caller = async {
        let answered = ask(&mut queue, 7).await;
        let answered = reached(answered.await.unwrap());
        let never = ask(&mut queue, 8).await;
        (answered, never.await.unwrap(), queue)
    };
    let peer = async {
        let first = frames_in(&peer_reads.next().await.unwrap());
        let mut frames = vec![RelayFrame::CaughtUp { head: 5 }, answer_to(&first[0])];
        peer_writes.0.unbounded_send(encoded(&frames)).unwrap();
        frames.clear();
        assert_eq!(frames_in(&peer_reads.next().await.unwrap()).len(), 1);
        let fatal = ErrorAnswer::new(ErrorCode::Malformed, "bye");
        peer_writes
            .0
            .unbounded_send(encoded(&[RelayFrame::Fatal(fatal)]))
            .unwrap();
        peer_writes
    };
    let (reason, (answered, never, _queue), _peer) =
        block_on(futures::future::join3(driver, caller, peer));
    assert_eq!(answered, 7);
    assert!(matches!(reason, MuxError::Fatal(_)), "{reason:?}");
    assert!(matches!(never, Err(MuxError::Fatal(_))), "{never:?}");
    assert_eq!(pushed, [RelayFrame::CaughtUp { head: 5 }]);
}

#[test]
fn requests_beyond_the_in_flight_bound_wait_for_an_answer() {
    let (mut to_peer, mut peer_reads) = pipe();
    let (peer_writes, from_peer) = pipe();
    let (mut queue, mut commands) = mpsc::channel(8);
    let mut mux = Mux::<ClientFrames, _>::new(1);
    let run = mux.run(reader(from_peer), &mut to_peer, &mut commands, |_| Ok(()));
    let caller = async {
        let first = ask(&mut queue, 1).await;
        let second = ask(&mut queue, 2).await;
        let answers = (
            reached(first.await.unwrap()),
            reached(second.await.unwrap()),
        );
        drop(queue);
        answers
    };
    let peer = async {
        let first = frames_in(&peer_reads.next().await.unwrap());
        assert_eq!(first.len(), 1);
        settle().await;
        assert!(
            peer_reads.try_recv().is_err(),
            "a second request was written"
        );
        peer_writes
            .0
            .unbounded_send(encoded(&[answer_to(&first[0])]))
            .unwrap();
        let second = frames_in(&peer_reads.next().await.unwrap());
        peer_writes
            .0
            .unbounded_send(encoded(&[answer_to(&second[0])]))
            .unwrap();
        peer_writes
    };
    let (reason, answers, _peer) = block_on(futures::future::join3(run, caller, peer));
    assert_eq!(answers, (1, 2));
    assert!(matches!(reason, MuxError::Dropped), "{reason:?}");
}

#[test]
fn what_the_peer_never_heard_is_written_again_on_a_new_stream() {
    block_on(async {
        let (mut to_peer, mut peer_reads) = pipe();
        let (peer_writes, from_peer) = pipe();
        let (mut queue, mut commands) = mpsc::channel(8);
        let mut mux = Mux::<ClientFrames, _>::new(MAX_IN_FLIGHT).keeping_unheard();
        let answer = ask(&mut queue, 3).await;
        drop(peer_writes);
        let reason = mux
            .run(reader(from_peer), &mut to_peer, &mut commands, |_| Ok(()))
            .await;
        assert!(matches!(reason, MuxError::PeerClosed), "{reason:?}");
        let lost = frames_in(&peer_reads.next().await.unwrap());
        assert!(mux.can_replay());
        assert_eq!(mux.in_flight(), 1);

        let (mut to_peer, mut peer_reads) = pipe();
        let (peer_writes, from_peer) = pipe();
        mux.replay(&mut to_peer).await.unwrap();
        assert_eq!(frames_in(&peer_reads.next().await.unwrap()), lost);
        peer_writes
            .0
            .unbounded_send(encoded(&[answer_to(&lost[0])]))
            .unwrap();
        let run = mux.run(reader(from_peer), &mut to_peer, &mut commands, |_| Ok(()));
        let caller = async {
            let got = reached(answer.await.unwrap());
            drop(queue);
            got
        };
        let (reason, got) = futures::future::join(run, caller).await;
        assert!(matches!(reason, MuxError::Dropped), "{reason:?}");
        assert_eq!(got, 3);
        assert!(!mux.can_replay());
    });
}
