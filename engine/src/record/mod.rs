//! Record building blocks that keep frames free of per-record heap allocation.

mod inline_str;

pub use inline_str::{InlineStr, InlineStrOverflow};
