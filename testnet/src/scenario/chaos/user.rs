//! A chaos user: one device that sends its planned messages on schedule (queueing them
//! while offline), receives while online, and reconnects whenever its relay goes away.

use std::time::Duration;

use tidings_client::{Client, Session};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

/// One message of the plan: when to send it (from the start of the run), where, and what.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Offset from the start of the run.
    pub at: Duration,
    /// Contact or group name.
    pub target: String,
    /// The text (`<label>#<counter>`).
    pub text: String,
}

/// Runs one user until `stop`: queues each planned message when it is due, keeps a
/// subscribed session while `online`, flushes after every reconnect. Fails only if the
/// client's own store refuses a message (the scenario could not account for it).
pub async fn live(
    client: Client,
    plan: Vec<Planned>,
    start: Instant,
    mut online: watch::Receiver<bool>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut plan = plan.into_iter().peekable();
    let due = |at: Duration| start + at;
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        if !*online.borrow_and_update() {
            // Offline: messages are written, and wait in the client's outbox.
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = online.changed() => {}
                _ = tokio::time::sleep_until(plan.peek().map_or(far_future(), |next| due(next.at))),
                    if plan.peek().is_some() => {
                    if let Some(next) = plan.next() {
                        client.queue_text(&next.target, &next.text).await?;
                    }
                }
            }
            continue;
        }
        let Some(mut session) = connect(&client, &mut online, &stop).await else {
            continue;
        };
        if session.subscribe().await.is_err() || session.flush().await.is_err() {
            continue;
        }
        loop {
            let next_at = plan.peek().map_or(far_future(), |next| due(next.at));
            tokio::select! {
                _ = stop.cancelled() => {
                    session.close().await;
                    return Ok(());
                }
                changed = online.changed() => {
                    if changed.is_err() || !*online.borrow() {
                        session.close().await;
                        break;
                    }
                }
                _ = tokio::time::sleep_until(next_at), if plan.peek().is_some() => {
                    if let Some(next) = plan.next() {
                        client.queue_text(&next.target, &next.text).await?;
                        if session.flush().await.is_err() {
                            break;
                        }
                    }
                }
                event = session.next_event() => {
                    if event.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

/// Connects with backoff; gives up (None) when the user goes offline or the run stops.
async fn connect(
    client: &Client,
    online: &mut watch::Receiver<bool>,
    stop: &CancellationToken,
) -> Option<Session> {
    let mut pause = Duration::from_millis(50);
    loop {
        match client.connect().await {
            Ok(session) => return Some(session),
            Err(error) => tracing::debug!(%error, "chaos user cannot connect yet"),
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            changed = online.changed() => {
                if changed.is_err() || !*online.borrow() {
                    return None;
                }
            }
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(24 * 3600)
}
