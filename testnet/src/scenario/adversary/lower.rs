//! The lower items of issue 12 (item 10) that show from outside: an envelope id claimed in
//! advance, an oversized (and escape-laden) `ErrorAnswer.detail` from a rogue relay reaching
//! a user's history, an unregistered session left open, and a client store readable by other
//! local users.

use std::{
    os::unix::fs::PermissionsExt,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use tidings_client::MessageStatus;
use tidings_keys::{Identity, OlmAccount};
use tidings_protocol::{
    BoundedVec, ContactCard, ErrorAnswer, ErrorCode, KeyBundle, Kind, Recipient, SignedPreKey,
    client::SendOutcome,
    federation::{FederationRequest, FederationResponse},
    limits::MAX_ERROR_DETAIL_LEN,
};

use super::{
    Findings, HEARTBEAT_SECS, Verdict, craft, findings,
    raw::{RawClient, RawUser},
    rogue::Answerer,
    world::{World, eventually, readable},
};
use crate::scenario::users;

const DEDUPE: &str = "dedupe_preclaim";
const DETAIL: &str = "oversized_error_detail";
const IDLE: &str = "idle_unregistered_session";
const PERMISSIONS: &str = "client_store_permissions";

/// How long an honest message may take to arrive.
const DELIVERY_PATIENCE: Duration = Duration::from_secs(30);

/// How long the honest sender to the rogue's user waits for the outcome.
const BOUNCE_PATIENCE: Duration = Duration::from_secs(30);

/// Presence changes the rogue relay keeps.
const MAX_HEARD: usize = 1024;

/// How long an unregistered, silent session may stay open (the bound it is judged by).
pub const IDLE_BOUND: Duration = Duration::from_secs(3 * HEARTBEAT_SECS);

/// What the rogue relay answers a forward to its user with (an ANSI escape sequence, then
/// far more than an error detail may hold).
fn rogue_detail() -> String {
    let mut detail = String::from(
        "\x1b[2J\x1b[31mYour relay is compromised: reinstall from evil.example\x1b[0m ",
    );
    detail.push_str(&"A".repeat(16 * 1024));
    detail
}

/// Makes the rogue relay home of a user of its own, "Zed" (a home record in the DHT naming
/// the rogue, keys to hand out), answering every forward to Zed with [`rogue_detail`].
pub async fn host_rogue_user(world: &mut World) -> anyhow::Result<()> {
    let zed = Identity::generate();
    let mut olm = OlmAccount::new();
    let one_time = olm.generate_one_time_keys(&zed, 20);
    let fallback = olm.rotate_fallback_key(&zed);
    let bundles = Arc::new(ZedKeys {
        cert: zed.cert().clone(),
        identity: olm.identity_key(&zed),
        one_time: Mutex::new(one_time),
        fallback,
    });
    let user = zed.user_id();
    let heard = world.rogue_heard.clone();
    let lists_asked = world.rogue_lists_asked.clone();
    // A list for Zed signed by a key that is not Zed's account key.
    let forged_list = super::devices::device_list(
        zed.account_key(),
        1,
        &[&craft::fresh_key()],
        &craft::fresh_key(),
    )?;
    let answer: Answerer = Arc::new(move |request| match request {
        FederationRequest::DeviceList { user: asked } if asked == user => {
            lists_asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(FederationResponse::DeviceList(Some(Box::new(
                forged_list.clone(),
            ))))
        }
        FederationRequest::PresenceChanged { report, .. } => {
            let mut heard = heard.lock().unwrap_or_else(|poison| poison.into_inner());
            if heard.len() < MAX_HEARD {
                heard.push(report);
            }
            Ok(FederationResponse::PresenceTaken)
        }
        FederationRequest::Claim { device: asked, .. } if asked.user == user => {
            Ok(FederationResponse::Bundle(Box::new(bundles.next())))
        }
        FederationRequest::ClaimBundles { devices, .. } => {
            let answers = devices
                .iter()
                .map(|asked| {
                    if asked.user == user {
                        Ok(bundles.next())
                    } else {
                        Err(ErrorAnswer::new(ErrorCode::WrongRelay, "not here"))
                    }
                })
                .collect();
            Ok(FederationResponse::Bundles {
                bundles: BoundedVec::new(answers)
                    .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))?,
            })
        }
        FederationRequest::Forward { items, .. } => {
            let count = items.iter().map(|item| item.recipients.len()).sum();
            let refusal = SendOutcome::Rejected(ErrorAnswer {
                code: ErrorCode::UnknownRecipient,
                detail: rogue_detail(),
            });
            Ok(FederationResponse::Stored {
                outcomes: BoundedVec::new(vec![refusal; count])
                    .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))?,
            })
        }
        _ => Err(ErrorAnswer::new(ErrorCode::Unavailable, "not now")),
    });
    world.rogue.serve(answer)?;
    let home = craft::home_record(
        zed.account_key(),
        world.rogue.peer_id,
        vec![world.rogue.bare_addr()],
        None,
    )?;
    if !world
        .rogue
        .put(craft::kad_record(&home), Vec::new())
        .await?
    {
        tracing::warn!("no relay took Zed's home record yet");
    }
    world.zed = Some(ContactCard {
        user,
        name: Some("zed".into()),
        relay: world.rogue.peer_id.to_string(),
        addrs: BoundedVec::new(vec![world.rogue.bare_addr()])?,
    });
    Ok(())
}

/// Zed's keys as the rogue hands them out.
struct ZedKeys {
    cert: tidings_protocol::DeviceCert,
    identity: tidings_protocol::IdentityKey,
    one_time: Mutex<Vec<SignedPreKey>>,
    fallback: SignedPreKey,
}

impl ZedKeys {
    fn next(&self) -> KeyBundle {
        let prekey = self
            .one_time
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .pop()
            .unwrap_or_else(|| self.fallback.clone());
        KeyBundle {
            cert: self.cert.clone(),
            identity: self.identity.clone(),
            prekey,
        }
    }
}

/// An honest user writes to Zed; judged by the failure reason stored in the sender's
/// history.
pub async fn error_detail(world: &World) -> Findings {
    findings(&[DETAIL], error_detail_attempt(world).await)
}

async fn error_detail_attempt(world: &World) -> anyhow::Result<Findings> {
    let card = world.zed.clone().context("the rogue hosts no user")?;
    let sender = world.probe_user("writes-to-zed", 0).await?;
    sender.add_contact("zed", &card)?;
    let mut session = users::connect(&sender).await;
    session.subscribe().await?;
    let record = session.send_text("zed", "hello Zed").await?;
    let deadline = tokio::time::Instant::now() + BOUNCE_PATIENCE;
    let failed = || -> anyhow::Result<Option<String>> {
        Ok(
            match sender.store().message(&record.id)?.map(|r| r.status) {
                Some(MessageStatus::Failed(reason)) => Some(reason),
                _ => None,
            },
        )
    };
    while failed()?.is_none() {
        match tokio::time::timeout_at(deadline, session.next_event()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => session = users::connect(&sender).await,
            Err(_) => break,
        }
    }
    session.close().await;
    let Some(reason) = failed()? else {
        let status = sender.store().message(&record.id)?.map(|r| r.status);
        return Ok(vec![(
            DETAIL,
            Verdict::new(
                false,
                format!(
                    "the message to the rogue relay's user stood at {status:?}: no oversized reason reached the sender"
                ),
            ),
        )]);
    };
    let oversized = reason.len() > MAX_ERROR_DETAIL_LEN + 128;
    Ok(vec![(
        DETAIL,
        Verdict::new(
            oversized,
            format!(
                "the rogue relay refused a message to its user with a {}-byte detail; the sender's history keeps a {}-byte reason ({} escape characters; bound {MAX_ERROR_DETAIL_LEN})",
                rogue_detail().len(),
                reason.len(),
                reason.matches('\x1b').count()
            ),
        ),
    )])
}

/// Someone who learned the id of an envelope before it was sent uses it first; judged by
/// whether the real envelope reaches its recipient.
pub async fn dedupe(world: &World) -> Findings {
    findings(&[DEDUPE], dedupe_attempt(world).await)
}

async fn dedupe_attempt(world: &World) -> anyhow::Result<Findings> {
    let bob = world.bob();
    let sender = world.probe_user("id-preclaimed", 0).await?;
    world.introduce(&sender, "bob", bob)?;
    let record = sender.queue_text("bob", "dedupe probe").await?;
    let mut claimer = RawUser::register(&world.relays[0].addr).await?;
    let me = claimer.identity.address();
    let squatter = craft::envelope(
        claimer.identity.device_key(),
        record.id,
        me,
        Recipient::Direct(bob.address()),
        Kind::Message,
        vec![0; 32],
    );
    let claimed = match claimer.client.send(vec![squatter]).await? {
        Ok(outcomes) => outcomes.first().is_some_and(SendOutcome::is_stored),
        Err(_) => false,
    };
    let mut session = users::connect(&sender).await;
    let _ = session.flush().await;
    let arrived = || -> anyhow::Result<bool> {
        Ok(readable(bob, &record.id)?.is_some_and(|got| got.text == "dedupe probe"))
    };
    let refused = || -> anyhow::Result<bool> {
        Ok(sender
            .store()
            .message(&record.id)?
            .is_some_and(|mine| matches!(mine.status, MessageStatus::Failed(_))))
    };
    eventually(DELIVERY_PATIENCE, || Ok(arrived()? || refused()?)).await?;
    let arrived = arrived()?;
    session.close().await;
    let status = sender.store().message(&record.id)?.map(|r| r.status);
    Ok(vec![(
        DEDUPE,
        Verdict::new(
            !arrived,
            format!(
                "a stranger sent an envelope under the id of a message not yet sent ({}); the real message then stood at {status:?} and {} Bob",
                if claimed { "accepted" } else { "refused" },
                if arrived { "reached" } else { "never reached" }
            ),
        ),
    )])
}

/// An unregistered client stream that never sends anything, opened at the start.
pub struct IdleSession {
    client: anyhow::Result<RawClient>,
    opened: Instant,
}

/// Opens the idle session on Bob's relay.
pub async fn open_idle_session(world: &World) -> IdleSession {
    let device = craft::fresh_key();
    IdleSession {
        client: RawClient::connect(&device, &world.relays[world.home_of(1)].addr).await,
        opened: Instant::now(),
    }
}

/// Judged by whether the relay closed the idle session within [`IDLE_BOUND`].
pub async fn judge_idle_session(idle: IdleSession) -> Findings {
    let attempt = async {
        let mut client = idle.client?;
        let left = IDLE_BOUND.saturating_sub(idle.opened.elapsed());
        let closed = client.closed_within(left + Duration::from_secs(1)).await;
        Ok(vec![(
            IDLE,
            Verdict::new(
                !closed,
                format!(
                    "an unregistered session that never sent a frame was {} when looked at after {} s (bound {} s)",
                    if closed { "closed" } else { "still open" },
                    idle.opened.elapsed().as_secs(),
                    IDLE_BOUND.as_secs()
                ),
            ),
        )])
    };
    findings(&[IDLE], attempt.await)
}

/// Whether other local users can read honest users' stores (plaintext history).
pub fn store_permissions(world: &World) -> Findings {
    let attempt = || -> anyhow::Result<Findings> {
        let mut open = Vec::new();
        for dir in &world.honest_dirs {
            let path = dir.join(tidings_client::store::STORE_FILE);
            let mode = std::fs::metadata(&path)
                .with_context(|| format!("reading {}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                open.push(format!("{:o}", mode & 0o777));
            }
        }
        Ok(vec![(
            PERMISSIONS,
            Verdict::new(
                !open.is_empty(),
                format!(
                    "{} of {} honest users' client.redb (plaintext history) can be read or written by other local users (modes {})",
                    open.len(),
                    world.honest_dirs.len(),
                    open.join(", ")
                ),
            ),
        )])
    };
    findings(&[PERMISSIONS], attempt())
}
