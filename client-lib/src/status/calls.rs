//! The status requests to the home relay, typed.

use tidings_protocol::{
    client::{Request, Response},
    status::{StatusBatch, StatusPost},
};

use crate::calls::ClientCall;

/// Stores a status for its audience.
#[derive(Debug, Clone)]
pub struct PostStatus(pub StatusPost);

impl ClientCall for PostStatus {
    /// Whether this post stored it (false: it was already).
    type Answer = bool;
    const NAME: &'static str = "post status";
    fn into_request(self) -> Request {
        Request::PostStatus(Box::new(self.0))
    }
    fn answer(response: Response) -> Result<bool, Response> {
        match response {
            Response::StatusPosted { new } => Ok(new),
            other => Err(other),
        }
    }
}

/// Asks for the statuses this user may see, stored after `after_ms`.
#[derive(Debug, Clone, Copy)]
pub struct GetStatuses {
    /// Relay clock, milliseconds since the epoch (0: all).
    pub after_ms: u64,
}

impl ClientCall for GetStatuses {
    type Answer = StatusBatch;
    const NAME: &'static str = "get statuses";
    fn into_request(self) -> Request {
        Request::GetStatuses {
            after_ms: self.after_ms,
        }
    }
    fn answer(response: Response) -> Result<StatusBatch, Response> {
        match response {
            Response::Statuses { items } => Ok(items),
            other => Err(other),
        }
    }
}
