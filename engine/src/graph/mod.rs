//! The job graph: the logical graph users build and the execution plan the runtime runs.

pub mod fingerprint;
pub mod logical;
pub mod plan;
