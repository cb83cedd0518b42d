//! The relay side of the admin socket: bind it owner-only, accept a bounded number of
//! connections, decode each request at the edge and hand it to its handler.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::{
    net::{UnixListener, UnixStream},
    sync::Semaphore,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    AdminContext,
    protocol::{self, AdminError, Answer, FrameError, MAX_REQUEST_BYTES, Reply, Request},
};

/// Admin connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 8;

/// How long a connection may take to send a request (or stay idle between two).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long writing an answer may take before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds the admin socket at `path`, readable and writable by its owner only. A socket left
/// by a relay that crashed is replaced; one that answers belongs to a running relay and is
/// an error.
pub(super) async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is served by a running relay", path.display()),
            ));
        }
        tracing::info!(path = %path.display(), "replacing a stale admin socket");
        std::fs::remove_file(path)?;
    }
    // Bound under a temporary name and made owner-only before it takes its real name, so
    // nobody can connect through the final path while the mode is still the default.
    let temporary = path.with_extension(format!("sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary)?;
    let made_private = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = made_private {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(listener)
}

/// Serves the admin socket until `stop`, then removes it.
pub(super) async fn serve(
    cx: Arc<AdminContext>,
    listener: UnixListener,
    path: PathBuf,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let connections = TaskTracker::new();
    let owner = std::fs::metadata(&cx.data_dir)
        .map(|metadata| metadata.uid())
        .ok();
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // The file mode already keeps others out; the peer's uid is checked as well, in case
        // the data dir's mode was loosened by hand.
        let peer = stream.peer_cred().map(|cred| cred.uid()).ok();
        if owner.is_some() && peer != owner && peer != Some(0) {
            tracing::warn!(?peer, "admin connection from another user refused");
            continue;
        }
        let cx = cx.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            serve_connection(&cx, stream, stop).await;
            drop(permit);
        });
    }
    connections.close();
    connections.wait().await;
    if let Err(error) = std::fs::remove_file(&path) {
        tracing::debug!(%error, "admin socket not removed");
    }
}

/// Answers requests on one connection until it closes, misbehaves or the relay stops.
async fn serve_connection(cx: &AdminContext, mut stream: UnixStream, stop: CancellationToken) {
    loop {
        let read = tokio::select! {
            _ = stop.cancelled() => return,
            read = tokio::time::timeout(
                REQUEST_TIMEOUT,
                protocol::read_frame(&mut stream, MAX_REQUEST_BYTES),
            ) => read,
        };
        let (answer, go_on) = match read {
            Err(_) => return,
            Ok(Ok(None)) => return,
            Ok(Ok(Some(body))) => match protocol::decode_request(&body) {
                Ok(request) => (handle(cx, request).await, true),
                Err(error) => (Err(error), false),
            },
            Ok(Err(FrameError::TooLarge { len, max })) => (
                Err(AdminError::TooLarge {
                    len: len as u64,
                    max: max as u64,
                }),
                false,
            ),
            Ok(Err(FrameError::Io(error))) => {
                tracing::debug!(%error, "admin connection read failed");
                return;
            }
        };
        if let Err(refused) = &answer {
            tracing::debug!(%refused, "admin request refused");
        }
        let written =
            tokio::time::timeout(WRITE_TIMEOUT, protocol::write_frame(&mut stream, &answer)).await;
        if !matches!(written, Ok(Ok(()))) || !go_on {
            return;
        }
    }
}

/// Runs one request's handler.
async fn handle(cx: &AdminContext, request: Request) -> Answer {
    tracing::info!(?request, "admin request");
    match request {
        Request::Status => super::status::handle(cx)
            .await
            .map(|report| Reply::Status(Box::new(report))),
        Request::ListUsers => super::users::list(cx).await.map(Reply::Users),
        Request::ShowUser(user) => super::users::show(cx, &user)
            .await
            .map(|detail| Reply::User(Box::new(detail))),
        Request::SuspendUser(user) => super::suspend::handle(cx, &user, true)
            .await
            .map(Reply::Done),
        Request::ResumeUser(user) => super::suspend::handle(cx, &user, false)
            .await
            .map(Reply::Done),
        Request::RemoveUser(user) => super::remove::handle(cx, &user).await.map(Reply::Done),
        Request::Backup { to } => super::backup::handle(cx, &to).await.map(Reply::Backup),
    }
}
