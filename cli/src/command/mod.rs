//! The subcommands of the `tethys` binary, one module each.

pub mod bench;
pub mod demo;
pub mod latency;
pub mod recovery_demo;
pub mod run;
pub mod worker;

/// An error reported to the user at the edge, with its context already in the text.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;
