//! Push: registering this device's Web Push subscription with its home relay, and the one
//! call an app's push handler makes when a push arrives ([`Client::wake`]).

use std::time::Duration;

use tidings_protocol::{
    client::{Request, Response},
    push::PushSubscription,
};

use crate::{
    calls::ClientCall, client::Client, error::ClientError, events::Event, session::Session,
};

/// What the home relay holds for this device's pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushState {
    /// Where the relay pushes to, if anywhere.
    pub subscription: Option<PushSubscription>,
    /// The relay's VAPID public key (uncompressed P-256, 65 bytes; empty if the relay does not
    /// push): what a browser's push service asks for as `applicationServerKey`.
    pub vapid_key: Vec<u8>,
}

/// What one wake-up received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeReport {
    /// Everything that happened, in order (messages, ticks, group changes, ...).
    pub events: Vec<Event>,
    /// New messages among them.
    pub messages: usize,
}

/// Sets (or with `None` clears) this device's push subscription.
#[derive(Debug, Clone)]
pub struct SetPush(pub Option<PushSubscription>);

/// Asks for this device's push subscription.
#[derive(Debug, Clone, Copy)]
pub struct GetPush;

fn push_state(response: Response) -> Result<PushState, Response> {
    match response {
        Response::Push {
            subscription,
            vapid_key,
        } => Ok(PushState {
            subscription: subscription.map(|subscription| *subscription),
            vapid_key,
        }),
        other => Err(other),
    }
}

impl ClientCall for SetPush {
    type Answer = PushState;
    const NAME: &'static str = "set push";
    fn into_request(self) -> Request {
        Request::SetPush {
            subscription: self.0.map(Box::new),
        }
    }
    fn answer(response: Response) -> Result<PushState, Response> {
        push_state(response)
    }
}

impl ClientCall for GetPush {
    type Answer = PushState;
    const NAME: &'static str = "get push";
    fn into_request(self) -> Request {
        Request::GetPush
    }
    fn answer(response: Response) -> Result<PushState, Response> {
        push_state(response)
    }
}

impl Session {
    /// Registers `subscription` as where the home relay pushes to while this device is
    /// offline (replacing any earlier one), or with `None` stops pushes. The subscription is
    /// checked before it is sent; the relay checks it again (and where it may point).
    pub async fn set_push(
        &self,
        subscription: Option<PushSubscription>,
    ) -> Result<PushState, ClientError> {
        if let Some(subscription) = &subscription {
            subscription.validate()?;
        }
        Ok(self.connection().call(SetPush(subscription)).await?)
    }

    /// This device's push subscription as the relay holds it, and the relay's VAPID key.
    pub async fn push_state(&self) -> Result<PushState, ClientError> {
        Ok(self.connection().call(GetPush).await?)
    }
}

impl Client {
    /// [`Session::set_push`] on a connection of its own.
    pub async fn set_push(
        &self,
        subscription: Option<PushSubscription>,
    ) -> Result<PushState, ClientError> {
        let session = self.connect().await?;
        let state = session.set_push(subscription).await;
        session.close().await;
        state
    }

    /// [`Session::push_state`] on a connection of its own.
    pub async fn push_state(&self) -> Result<PushState, ClientError> {
        let session = self.connect().await?;
        let state = session.push_state().await;
        session.close().await;
        state
    }

    /// What an app does when a push arrives: connects, receives everything waiting (stored,
    /// delivered receipts queued, acked) until caught up or `timeout`, sends the outbox, and
    /// disconnects, so the relay pushes again for what comes next.
    pub async fn wake(&self, timeout: Duration) -> Result<WakeReport, ClientError> {
        let mut session = self.connect().await?;
        let events = session.sync(timeout).await;
        session.close().await;
        let events = events?;
        let messages = events
            .iter()
            .filter(|event| matches!(event, Event::Message(_)))
            .count();
        Ok(WakeReport { events, messages })
    }
}
