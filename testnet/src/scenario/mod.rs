//! Named workloads run against a network of relay processes.

pub mod adversary;
pub mod browser;
pub mod chaos;
pub mod federation;
pub mod group;
pub mod media;
pub mod multidevice;
pub mod presence;
pub mod push;
pub mod status;
pub(crate) mod tally;
pub(crate) mod users;
mod watcher;
