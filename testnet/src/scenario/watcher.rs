//! A watching user for the presence scenario: one live session that watches the subjects'
//! presence, logs what it is told, types and writes to other watchers, and reads what
//! arrives.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use tidings_client::{Client, Event, MessageStatus};
use tidings_protocol::{UserId, presence::PresenceState};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::users;

/// One thing a watcher was told about a subject.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Which watcher (ordinal among watchers).
    pub watcher: usize,
    /// Which subject (ordinal among subjects).
    pub subject: usize,
    /// What it was told.
    pub state: PresenceState,
    /// When.
    pub at: Instant,
    /// Whether it came as a change (not the answer to the watch itself).
    pub pushed: bool,
}

/// What all watchers saw, shared.
#[derive(Debug, Default)]
pub struct Log {
    /// Presence reports and changes, in arrival order.
    pub observations: Vec<Observation>,
    /// Typing notices that arrived: (watcher, from).
    pub typing: Vec<(usize, UserId)>,
    /// Messages a watcher sent that turned read.
    pub read_ticks: usize,
}

/// The shared log.
pub type SharedLog = Arc<Mutex<Log>>;

/// Locks the log (a panic elsewhere cannot make its counts wrong, so poisoning is ignored).
pub fn lock(log: &SharedLog) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Something a watcher is asked to do through its session.
pub enum Command {
    /// Send a typing notice; answers how many live devices took it.
    Type {
        /// Contact name.
        to: String,
        /// Where the answer goes.
        reply: oneshot::Sender<u32>,
    },
    /// Send a text; answers whether the relay took it.
    Text {
        /// Contact name.
        to: String,
        /// The text.
        text: String,
        /// Where the answer goes.
        reply: oneshot::Sender<bool>,
    },
}

/// Who a watcher is and what it watches.
pub struct Watcher {
    /// Ordinal among watchers.
    pub index: usize,
    /// Its client.
    pub client: Client,
    /// Contact names of the subjects, by subject ordinal.
    pub subjects: Vec<String>,
    /// Subject ordinals by user id.
    pub subject_ids: HashMap<UserId, usize>,
    /// Contact names of the other watchers, by user id (to send read markers to).
    pub peers: HashMap<UserId, String>,
}

impl Watcher {
    /// Runs until `stop`; commands arrive on `commands`. A failure is logged as it happens
    /// (the scenario only sees a closed command channel until it joins the task).
    pub async fn run(
        self,
        log: SharedLog,
        commands: mpsc::Receiver<Command>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let index = self.index;
        let result = self.serve(log, commands, stop).await;
        if let Err(error) = &result {
            tracing::error!(watcher = index, "watcher failed: {error:#}");
        }
        result
    }

    async fn serve(
        self,
        log: SharedLog,
        mut commands: mpsc::Receiver<Command>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut session = users::connect(&self.client).await;
        session.subscribe().await?;
        let names: Vec<&str> = self.subjects.iter().map(String::as_str).collect();
        let reports = session.watch_presence(&names).await?;
        let now = Instant::now();
        for report in reports {
            self.observe(&log, report.user, report.state, now, false);
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                command = commands.recv() => match command {
                    None => break,
                    Some(Command::Type { to, reply }) => {
                        let reached = session.send_typing(&to, true).await?;
                        let _ = reply.send(reached);
                    }
                    Some(Command::Text { to, text, reply }) => {
                        let taken = session.send_text(&to, &text).await.is_ok();
                        let _ = reply.send(taken);
                    }
                },
                event = session.next_event() => match event? {
                    Event::Presence { user, state } => {
                        self.observe(&log, user, state, Instant::now(), true);
                    }
                    Event::Typing { from, .. } => lock(&log).typing.push((self.index, from)),
                    Event::Message(message) if message.group.is_none() => {
                        if let Some(name) = self.peers.get(&message.peer) {
                            session.mark_read(name).await?;
                        }
                    }
                    Event::Status { status: MessageStatus::Read, .. } => {
                        lock(&log).read_ticks += 1;
                    }
                    _ => {}
                },
            }
        }
        session.close().await;
        Ok(())
    }

    fn observe(
        &self,
        log: &SharedLog,
        user: UserId,
        state: PresenceState,
        at: Instant,
        pushed: bool,
    ) {
        if let Some(&subject) = self.subject_ids.get(&user) {
            lock(log).observations.push(Observation {
                watcher: self.index,
                subject,
                state,
                at,
                pushed,
            });
        }
    }
}
