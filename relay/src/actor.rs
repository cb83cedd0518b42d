//! What every actor of the relay shares: taking the next command from its bounded inbox.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The next command, or `None` once `stop` is cancelled or every handle is gone.
pub(crate) async fn next_command<C>(
    inbox: &mut mpsc::Receiver<C>,
    stop: &CancellationToken,
) -> Option<C> {
    tokio::select! {
        _ = stop.cancelled() => None,
        command = inbox.recv() => command,
    }
}
