//! Tethys benchmarks: the bids workload queries and Nexmark queries of `bench/WORKLOADS.md` as
//! DataStream jobs (Nexmark also in SQL, `nexmark_sql`), and the harness that runs them and reports events per second, elapsed time and
//! peak memory. The `tethys bench` command drives it; criterion micro-benchmarks live in the
//! engine's `benches/`.

#![deny(missing_docs)]

pub mod bids;
pub mod bursts;
pub mod end;
pub mod harness;
pub mod jobs;
pub mod latency;
pub mod memory;
pub mod nexmark;
pub mod nexmark_sql;
