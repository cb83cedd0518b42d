//! The timed loops: a sender writes its prebuilt frames (a window in flight, or bursts at a
//! fixed pace) and reads the relay's answers; a receiver reads deliveries, times them and
//! acks them, without decrypting or storing anything.

use std::{
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use futures::{FutureExt, io::WriteHalf};
use libp2p::Stream;
use tidings_protocol::{
    client::{ClientFrame, RelayFrame, Response, SendOutcome},
    framing,
    mailbox::MailboxItem,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    device::Link,
    frames::{FIRST_SEND_ID, Prebuilt, SendClock, parse_id},
};

/// Frames already received that one loop turn takes before writing.
const MAX_READ_AHEAD: usize = 256;

/// How long a sender waits for the answers still due once it stopped writing.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// How a sender paces its writes.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Keep this many frames written and not yet answered.
    Window(usize),
    /// Write `burst` frames every `every`, the first batch at `first`.
    Bursts {
        /// When the first burst goes.
        first: Instant,
        /// Time between bursts.
        every: Duration,
        /// Frames per burst.
        burst: usize,
    },
}

/// One sender's part of a run.
pub struct SenderJob {
    /// Its index among the senders (in the clock and in envelope ids).
    pub index: usize,
    /// Its frames.
    pub frames: Arc<Prebuilt>,
    /// Where write times go.
    pub clock: Arc<SendClock>,
    /// Which of its frames to send.
    pub range: Range<usize>,
    /// How.
    pub pace: Pace,
    /// No frame is written after this.
    pub deadline: Instant,
}

/// What one sender saw.
#[derive(Debug, Default)]
pub struct SenderTally {
    /// Frames written.
    pub written: usize,
    /// Envelopes the relay answered `Accepted`.
    pub accepted: usize,
    /// Envelopes answered otherwise.
    pub refused: usize,
    /// The first refusal, for the report.
    pub first_refusal: Option<String>,
    /// From writing a frame to reading its answer, milliseconds.
    pub ack_ms: Vec<f64>,
    /// When the last answer was read.
    pub last_answer: Option<Instant>,
}

impl SenderTally {
    fn on_frame(&mut self, job: &SenderJob, frame: RelayFrame) -> anyhow::Result<()> {
        let (id, body) = match frame {
            RelayFrame::Response { id, body } => (id, body),
            RelayFrame::Fatal(answer) => bail!("the relay closed a sender's stream: {answer}"),
            _ => return Ok(()),
        };
        let frame = id
            .checked_sub(FIRST_SEND_ID)
            .context("an answer to no frame")? as usize;
        if let Some(ms) = job.clock.since(job.index, frame) {
            self.ack_ms.push(ms);
        }
        self.last_answer = Some(Instant::now());
        match body {
            Ok(Response::Sent { outcomes })
                if outcomes.iter().all(|o| *o == SendOutcome::Accepted) =>
            {
                self.accepted += outcomes.len();
            }
            other => {
                self.refused += 1;
                if self.first_refusal.is_none() {
                    self.first_refusal = Some(format!("{other:?}"));
                }
            }
        }
        Ok(())
    }
}

/// Writes the job's frames as its pace says and reads every answer; returns once each
/// written frame is answered.
pub async fn send(link: &mut Link, job: SenderJob) -> anyhow::Result<SenderTally> {
    let mut tally = SenderTally::default();
    let mut next = job.range.start;
    let mut read = Box::pin(framing::read_frame_owned(&mut link.reader, Vec::new()));
    let mut ticker = match job.pace {
        Pace::Bursts { first, every, .. } => {
            let mut ticker = tokio::time::interval_at(first, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            Some(ticker)
        }
        Pace::Window(_) => None,
    };
    let mut give_up: Option<Instant> = None;
    loop {
        let answered = tally.accepted + tally.refused;
        let writing = next < job.range.end && Instant::now() < job.deadline;
        if !writing && answered >= tally.written {
            break;
        }
        if !writing && give_up.is_none() {
            give_up = Some(Instant::now() + ANSWER_TIMEOUT);
        }
        let mut count = 0;
        if let (true, Pace::Window(window)) = (writing, job.pace) {
            count = window
                .saturating_sub(tally.written - answered)
                .min(job.range.end - next);
        }
        if count > 0 {
            write(&mut link.writer, &job, next..next + count).await?;
            next += count;
            tally.written += count;
            continue;
        }
        tokio::select! {
            biased;
            done = &mut read => {
                // Every answer already here is taken before writing again: fewer, larger
                // writes, the window unchanged.
                let (mut ready, mut taken) = (Some(done), 0);
                while let Some((reader, buf, result)) = ready.take() {
                    if !result.context("reading the relay's answers")? {
                        bail!("the relay closed a sender's stream");
                    }
                    tally.on_frame(&job, RelayFrame::decode(&buf)?)?;
                    read = Box::pin(framing::read_frame_owned(reader, buf));
                    taken += 1;
                    if taken < MAX_READ_AHEAD {
                        ready = (&mut read).now_or_never();
                    }
                }
            }
            _ = tick(&mut ticker), if writing => {
                if let Pace::Bursts { burst, .. } = job.pace {
                    let count = burst.min(job.range.end - next);
                    write(&mut link.writer, &job, next..next + count).await?;
                    next += count;
                    tally.written += count;
                }
            }
            () = tokio::time::sleep_until(job.deadline), if writing => {}
            () = sleep_until_some(give_up) => {
                bail!("{} answers still due after {ANSWER_TIMEOUT:?}", tally.written - answered)
            }
        }
    }
    Ok(tally)
}

async fn write(
    writer: &mut WriteHalf<Stream>,
    job: &SenderJob,
    frames: Range<usize>,
) -> anyhow::Result<()> {
    job.clock.written(job.index, frames.clone());
    framing::write_frames(writer, job.frames.slice(frames))
        .await
        .context("writing to the relay")
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One receiver's part of a run.
pub struct ReceiverJob {
    /// The sender whose envelopes come here.
    pub sender: usize,
    /// Its frame count (the warm-up included).
    pub frames: usize,
    /// When they were written.
    pub clock: Arc<SendClock>,
    /// Timed envelopes delivered, over all receivers.
    pub delivered: Arc<AtomicUsize>,
    /// Warm-up envelopes delivered, over all receivers.
    pub warmed: Arc<AtomicUsize>,
    /// Stop reading.
    pub stop: CancellationToken,
    /// Ping this often (the relay's heartbeat).
    pub heartbeat: Duration,
}

/// What one receiver saw.
#[derive(Debug, Default)]
pub struct ReceiverTally {
    /// Timed envelopes, each counted once.
    pub delivered: usize,
    /// Envelopes delivered again.
    pub duplicates: usize,
    /// Envelopes from anyone else, or that do not parse.
    pub foreign: usize,
    /// From writing to delivery, milliseconds.
    pub latency_ms: Vec<f64>,
    /// When the last timed envelope arrived.
    pub last_delivery: Option<Instant>,
}

/// Reads deliveries until stopped, acking each push as it arrives.
pub async fn receive(link: &mut Link, job: ReceiverJob) -> anyhow::Result<ReceiverTally> {
    let mut tally = ReceiverTally::default();
    let mut seen = vec![false; job.frames];
    let mut read = Box::pin(framing::read_frame_owned(&mut link.reader, Vec::new()));
    let mut ping = tokio::time::interval(job.heartbeat);
    let mut out = Vec::new();
    loop {
        tokio::select! {
            biased;
            () = job.stop.cancelled() => break,
            _ = ping.tick() => framing::encode_frame(&ClientFrame::Ping, &mut out),
            done = &mut read => {
                // Every push already here is taken first, then acked with one frame.
                let (mut ready, mut taken, mut ack) = (Some(done), 0, None);
                while let Some((reader, buf, result)) = ready.take() {
                    if !result.context("reading deliveries")? {
                        bail!("the relay closed a receiver's stream");
                    }
                    let up_to = tally.on_frame(&job, &mut seen, RelayFrame::decode(&buf)?)?;
                    ack = ack.max(up_to);
                    read = Box::pin(framing::read_frame_owned(reader, buf));
                    taken += 1;
                    if taken < MAX_READ_AHEAD {
                        ready = (&mut read).now_or_never();
                    }
                }
                if let Some(up_to) = ack {
                    framing::encode_frame(&ClientFrame::Ack { up_to }, &mut out);
                }
            }
        }
        if !out.is_empty() {
            framing::write_frames(&mut link.writer, &out)
                .await
                .context("acking")?;
            out.clear();
        }
    }
    Ok(tally)
}

impl ReceiverTally {
    /// Counts a pushed frame; the sequence number to ack, if it delivered anything.
    fn on_frame(
        &mut self,
        job: &ReceiverJob,
        seen: &mut [bool],
        frame: RelayFrame,
    ) -> anyhow::Result<Option<u64>> {
        let items = match frame {
            RelayFrame::Deliver { items } => items.into_vec(),
            RelayFrame::Fatal(answer) => bail!("the relay closed a receiver's stream: {answer}"),
            _ => return Ok(None),
        };
        let mut up_to = None;
        for delivery in items {
            up_to = up_to.max(Some(delivery.seq));
            let MailboxItem::Envelope(raw) = delivery.item else {
                self.foreign += 1;
                continue;
            };
            let Ok(envelope) = raw.decode_unverified() else {
                self.foreign += 1;
                continue;
            };
            let (sender, frame) = parse_id(&envelope.id);
            let frame = frame as usize;
            match seen.get_mut(frame) {
                Some(_) if sender as usize != job.sender => self.foreign += 1,
                None => self.foreign += 1,
                Some(true) => self.duplicates += 1,
                Some(slot) => {
                    *slot = true;
                    if frame == 0 {
                        job.warmed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    self.delivered += 1;
                    self.last_delivery = Some(Instant::now());
                    if let Some(ms) = job.clock.since(job.sender, frame) {
                        self.latency_ms.push(ms);
                    }
                    job.delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(up_to)
    }
}

/// Waits until `counter` reaches `count`, giving up once it has not moved for `stall`;
/// whether it got there.
pub async fn wait_for(counter: &AtomicUsize, count: usize, stall: Duration) -> bool {
    let mut seen = counter.load(Ordering::Relaxed);
    let mut moved = Instant::now();
    while seen < count {
        if moved.elapsed() >= stall {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != seen {
            (seen, moved) = (now, Instant::now());
        }
    }
    true
}
