//! The single-process runtime: slots (pinned threads with one async runtime each), task actors
//! and the job driver.

pub(crate) mod alignment;
pub mod checkpoint;
pub mod cluster;
pub(crate) mod job;
pub(crate) mod keeper;
pub mod live;
pub mod restart;
pub mod snapshot;
pub(crate) mod task;
