//! Programs of users' own: a Tethys program is the `tethys` command line with jobs written in Rust
//! added (the `tethys` library's `Program`). Every process of a job runs the same program, so a
//! job of an uploaded program runs in processes of that program, which the masters and workers
//! start for it. This module holds what a program says of itself ([`ProgramInfo`], printed by
//! `<program> program-info`).

use serde::{Deserialize, Serialize};

/// The hidden command of every Tethys program that prints its [`ProgramInfo`] as JSON.
pub const PROGRAM_INFO_COMMAND: &str = "program-info";

/// What a program says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProgramInfo {
    /// The program's name, as its author gave it.
    pub program: String,
    /// The version of the Tethys library it was built with.
    pub tethys_version: String,
    /// Its build id (a hash of its executable), which jobs' graph fingerprints carry.
    pub build_id: String,
    /// The jobs it defines, its own first, then those every program has built in.
    pub jobs: Vec<JobAbout>,
}

/// One job a program defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobAbout {
    /// Its name (what a submission names).
    pub name: String,
    /// What it does and the arguments it takes.
    pub about: String,
    /// Whether every program has it (the benchmark, digest and SQL jobs of `tethys` itself).
    pub builtin: bool,
}
