//! The raw devices of a run: registered pairs with their prebuilt frames, receivers
//! subscribed and counting, senders connected and warmed up (one envelope per pair
//! delivered, so lookups and relay links exist before anything is timed).

use std::{
    sync::{Arc, atomic::AtomicUsize},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use libp2p::Multiaddr;
use tidings_protocol::client::{Register, Request};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    device::{Link, RawDevice, heartbeat},
    frames::{Prebuilt, SendClock},
    load::{self, Pace, ReceiverJob, ReceiverTally, SenderJob, SenderTally},
};

/// Devices registering at the same time.
const REGISTER_CONCURRENCY: usize = 32;
/// How long the warm-up envelopes may take to arrive.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long receivers subscribing may pause before the run fails.
const SUBSCRIBE_STALL: Duration = Duration::from_secs(60);

/// Registers every device, several at a time.
pub async fn register_all(devices: &[Arc<RawDevice>]) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(REGISTER_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for device in devices {
        let (device, slots) = (device.clone(), slots.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            device.register().await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined?.context("registering a raw device")?;
    }
    Ok(())
}

/// Sender/receiver pairs and what they send.
pub struct Pairs {
    /// Sender `i` sends to receiver `i`.
    pub senders: Vec<Arc<RawDevice>>,
    /// The receivers.
    pub receivers: Vec<Arc<RawDevice>>,
    /// Each sender's frames (frame 0 is the warm-up).
    pub frames: Vec<Arc<Prebuilt>>,
    /// When each frame went out.
    pub clock: Arc<SendClock>,
    /// Seconds spent signing and framing.
    pub prebuild_s: f64,
}

impl Pairs {
    /// Registers `counts.len()` pairs (senders at `sender_home`, receivers at
    /// `receiver_home`) and builds `counts[i]` timed frames for sender `i`.
    pub async fn make(
        sender_home: &Multiaddr,
        receiver_home: &Multiaddr,
        counts: &[usize],
        body_bytes: usize,
    ) -> anyhow::Result<Self> {
        let senders: Vec<_> = counts
            .iter()
            .map(|_| Arc::new(RawDevice::new(sender_home.clone())))
            .collect();
        let receivers: Vec<_> = counts
            .iter()
            .map(|_| Arc::new(RawDevice::new(receiver_home.clone())))
            .collect();
        register_all(&receivers).await?;
        register_all(&senders).await?;
        let started = Instant::now();
        let mut building = JoinSet::new();
        for (index, count) in counts.iter().enumerate() {
            let (sender, recipient) = (senders[index].clone(), receivers[index].address());
            let frames = count + 1;
            building.spawn_blocking(move || {
                let built = Prebuilt::build(
                    &sender.identity,
                    index as u32,
                    recipient,
                    frames,
                    body_bytes,
                );
                built.map(|built| (index, built))
            });
        }
        let mut frames: Vec<Option<Arc<Prebuilt>>> = vec![None; counts.len()];
        while let Some(joined) = building.join_next().await {
            let (index, built) = joined??;
            frames[index] = Some(Arc::new(built));
        }
        let frames: Vec<Arc<Prebuilt>> = frames.into_iter().flatten().collect();
        ensure!(
            frames.len() == counts.len(),
            "a sender's frames are missing"
        );
        let clock = Arc::new(SendClock::new(frames.iter().map(|frames| frames.len())));
        Ok(Self {
            senders,
            receivers,
            frames,
            clock,
            prebuild_s: started.elapsed().as_secs_f64(),
        })
    }

    /// Connects every receiver, subscribed and counting; returns once all are.
    pub async fn receive(&self) -> anyhow::Result<Receiving> {
        let receiving = Receiving {
            delivered: Arc::default(),
            warmed: Arc::default(),
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
        };
        let subscribed = Arc::new(AtomicUsize::new(0));
        let mut receiving = receiving;
        for (index, device) in self.receivers.iter().enumerate() {
            let job = ReceiverJob {
                sender: index,
                frames: self.frames[index].len(),
                clock: self.clock.clone(),
                delivered: receiving.delivered.clone(),
                warmed: receiving.warmed.clone(),
                stop: receiving.stop.clone(),
                heartbeat: Duration::ZERO,
            };
            let (device, subscribed) = (device.clone(), subscribed.clone());
            receiving.tasks.spawn(async move {
                let opened = device.open(Request::Subscribe).await?;
                let mut link = opened.link;
                let job = ReceiverJob {
                    heartbeat: heartbeat(&opened.answer)?,
                    ..job
                };
                subscribed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                load::receive(&mut link, job).await
            });
        }
        let all = self.receivers.len();
        if !load::wait_for(&subscribed, all, SUBSCRIBE_STALL).await {
            receiving.stop.cancel();
            bail!("receivers stopped subscribing: none for {SUBSCRIBE_STALL:?}");
        }
        Ok(receiving)
    }

    /// Connects every sender and sends its warm-up envelope; returns the senders' links
    /// once every warm-up envelope reached a receiver of `receiving`.
    pub async fn warm_up(&self, receiving: &Receiving) -> anyhow::Result<Vec<Link>> {
        let mut tasks = JoinSet::new();
        for (index, device) in self.senders.iter().enumerate() {
            let device = device.clone();
            let job = SenderJob {
                index,
                frames: self.frames[index].clone(),
                clock: self.clock.clone(),
                range: 0..1,
                pace: Pace::Window(1),
                deadline: tokio::time::Instant::now() + WARM_UP_TIMEOUT,
            };
            tasks.spawn(async move {
                let mut link = open_sender(&device).await?;
                let tally = load::send(&mut link, job).await?;
                ensure!(
                    tally.accepted == 1,
                    "the warm-up envelope was refused: {:?}",
                    tally.first_refusal
                );
                anyhow::Ok((index, link))
            });
        }
        let mut links: Vec<Option<Link>> = self.senders.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            let (index, link) = joined??;
            links[index] = Some(link);
        }
        let all = self.senders.len();
        ensure!(
            load::wait_for(&receiving.warmed, all, WARM_UP_TIMEOUT).await,
            "warm-up envelopes stopped arriving: none for {WARM_UP_TIMEOUT:?}"
        );
        Ok(links.into_iter().flatten().collect())
    }

    /// Runs every sender on its link with frames `1..` (at most `limit[i]` of them), paced
    /// by `pace(i)`, until `deadline`; returns the links and their tallies.
    pub async fn send(
        &self,
        links: Vec<Link>,
        pace: impl Fn(usize) -> Pace,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<Vec<(Link, SenderTally)>> {
        let mut tasks = JoinSet::new();
        for (index, mut link) in links.into_iter().enumerate() {
            let job = SenderJob {
                index,
                frames: self.frames[index].clone(),
                clock: self.clock.clone(),
                range: 1..self.frames[index].len(),
                pace: pace(index),
                deadline,
            };
            tasks.spawn(async move {
                let tally = load::send(&mut link, job).await?;
                anyhow::Ok((index, link, tally))
            });
        }
        let mut done: Vec<Option<(Link, SenderTally)>> = Vec::new();
        done.resize_with(self.senders.len(), || None);
        while let Some(joined) = tasks.join_next().await {
            let (index, link, tally) = joined??;
            done[index] = Some((link, tally));
        }
        Ok(done.into_iter().flatten().collect())
    }
}

/// A sender's link: opened with a registration it already has (answered without a write).
pub async fn open_sender(device: &RawDevice) -> anyhow::Result<Link> {
    let register = Request::Register(Box::new(Register {
        cert: device.identity.cert().clone(),
        invite: None,
        list: None,
    }));
    Ok(device.open(register).await?.link)
}

/// Subscribed receivers, counting what arrives.
pub struct Receiving {
    /// Timed envelopes delivered so far.
    pub delivered: Arc<AtomicUsize>,
    /// Warm-up envelopes delivered so far.
    pub warmed: Arc<AtomicUsize>,
    stop: CancellationToken,
    tasks: JoinSet<anyhow::Result<ReceiverTally>>,
}

impl Receiving {
    /// Stops the receivers (closing their connections); returns their tallies.
    pub async fn finish(mut self) -> anyhow::Result<Vec<ReceiverTally>> {
        self.stop.cancel();
        let mut tallies = Vec::new();
        while let Some(joined) = self.tasks.join_next().await {
            tallies.push(joined??);
        }
        Ok(tallies)
    }
}
