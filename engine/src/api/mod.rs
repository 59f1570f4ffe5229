//! The typed DataStream API: the environment, streams and keyed streams.

pub mod env;
pub mod join;
pub mod keyed;
pub mod stream;
