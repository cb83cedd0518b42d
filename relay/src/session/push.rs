//! `SetPush` and `GetPush`: a device's Web Push subscription and the relay's VAPID key.

use std::sync::Arc;

use tidings_protocol::{Address, ErrorAnswer, ErrorCode, client::Response, push::PushSubscription};
use web_push_native::p256;

use super::{Answer, context::ClientContext};
use crate::{ingest::storage_answer, push::check_endpoint, store::SetPushOutcome};

/// Stores (or with `None` clears) this device's subscription; answers what is held now.
pub(super) async fn set(
    cx: Arc<ClientContext>,
    me: Address,
    subscription: Option<Box<PushSubscription>>,
) -> Answer {
    if !cx.push.enabled() {
        return Err(ErrorAnswer::new(
            ErrorCode::Unavailable,
            "this relay does not send pushes (push.enabled = false)",
        ));
    }
    if let Some(subscription) = &subscription {
        check(&cx, subscription)?;
    }
    let subscription = subscription.map(|boxed| *boxed);
    match cx
        .store
        .set_push(me.device, me.user, subscription.clone())
        .await
        .map_err(storage_answer)?
    {
        SetPushOutcome::Done => {}
        SetPushOutcome::NotRegistered => {
            return Err(ErrorAnswer::new(
                ErrorCode::NotRegistered,
                "this device is not registered here",
            ));
        }
    }
    cx.push.set(me.device, subscription.clone());
    Ok(Response::Push {
        subscription: subscription.map(Box::new),
        vapid_key: cx.push.vapid_public_key(),
    })
}

/// The subscription held for this device and the relay's VAPID key (empty if push is off).
pub(super) async fn get(cx: Arc<ClientContext>, me: Address) -> Answer {
    let held = cx
        .store
        .push_subscription(me.device)
        .await
        .map_err(storage_answer)?;
    Ok(Response::Push {
        subscription: held.map(|record| Box::new(record.subscription)),
        vapid_key: cx.push.vapid_public_key(),
    })
}

/// Refuses a subscription the relay could not or may not push to, saying which part.
fn check(cx: &ClientContext, subscription: &PushSubscription) -> Result<(), ErrorAnswer> {
    let malformed = |detail: String| ErrorAnswer::new(ErrorCode::Malformed, detail);
    subscription
        .validate()
        .map_err(|error| malformed(error.to_string()))?;
    p256::PublicKey::from_sec1_bytes(&subscription.p256dh)
        .map_err(|_| malformed("p256dh is not a point on the P-256 curve".into()))?;
    check_endpoint(&subscription.endpoint, cx.push.allow_private())
        .map_err(|refused| malformed(format!("endpoint not allowed: {refused}")))?;
    Ok(())
}
