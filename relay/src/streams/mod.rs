//! Inbound streams under limits: slots per peer and in total, and read deadlines.

mod deadline;
mod slots;

pub(crate) use deadline::{
    FrameTimeouts, TimedFrameError, read_frame_timed, read_frame_timed_owned,
};
pub(crate) use slots::{Refusal, StreamSlots};
