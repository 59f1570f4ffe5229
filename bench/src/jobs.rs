//! The jobs a cluster's processes know by name: what a coordinator and its workers (`tethys
//! worker`) build from a `JobSpec`, the same in every process because they run the same program.
//!
//! `bench <query> <events> <seed> [split]`: a benchmark query over its generated input, ending in
//! a discarding sink; `split` puts the sink of the passthrough and filter queries in a task of
//! its own (a rebalance instead of a chain), so that on a cluster source and sink can run in
//! different processes.

use std::sync::Arc;

use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::cluster::JobRegistry;
use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::source::bids::BidsSource;
use tethys_engine::source::nexmark::NexmarkSource;
use tethys_engine::StreamEnvironment;

use crate::harness::Query;
use crate::{bids, bursts, nexmark};

/// The name of the benchmark job.
pub const BENCH_JOB: &str = "bench";

/// The spec of benchmark `query` over `events` events from `seed`, split or not.
pub fn bench_spec(query: Query, events: u64, seed: u64, split: bool) -> JobSpec {
    let mut args = vec![query.to_string(), events.to_string(), seed.to_string()];
    if split {
        args.push("split".to_string());
    }
    JobSpec { name: BENCH_JOB.to_string(), args }
}

/// Defines the job `spec` names in `env`, ending in `sink`; says what is wrong with a spec it
/// does not know.
pub fn define_with_sink(spec: &JobSpec, env: &StreamEnvironment, sink: DiscardSink) -> Result<(), String> {
    if spec.name != BENCH_JOB {
        return Err(format!("unknown job '{}' (this program knows '{BENCH_JOB}')", spec.name));
    }
    let [query, events, seed, rest @ ..] = spec.args.as_slice() else {
        return Err(format!("'{BENCH_JOB}' takes <query> <events> <seed> [split], not {:?}", spec.args));
    };
    let query: Query = query.parse()?;
    let events: u64 = events.parse().map_err(|_| format!("'{events}' is not a number of events"))?;
    let seed: u64 = seed.parse().map_err(|_| format!("'{seed}' is not a seed"))?;
    let split = match rest {
        [] => false,
        [flag] if flag == "split" => true,
        other => return Err(format!("unexpected arguments {other:?} after the seed (only 'split')")),
    };
    match query {
        Query::Bids(query) => bids::define_split(env, query, BidsSource::new(events, seed), sink, split),
        Query::Nexmark(query) => nexmark::define(env, query, NexmarkSource::new(events, seed), sink),
        Query::Burst(query) => bursts::define(env, query, BidsSource::new(events, seed), sink),
    }
    Ok(())
}

/// Defines the job `spec` names in `env` (its sink counts here, where it runs).
pub fn define(spec: &JobSpec, env: &StreamEnvironment) -> Result<(), String> {
    define_with_sink(spec, env, DiscardSink::new())
}

/// The registry of every job this crate defines.
pub fn registry() -> JobRegistry {
    Arc::new(define)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bids::BidsQuery;

    #[test]
    fn specs_round_trip_and_bad_ones_are_named() {
        let env = StreamEnvironment::new(tethys_engine::EngineConfig { slots: 1, parallelism: 1, ..Default::default() });
        define(&bench_spec(Query::Bids(BidsQuery::Filter), 10, 1, true), &env).unwrap();
        let env = StreamEnvironment::new(tethys_engine::EngineConfig { slots: 1, parallelism: 1, ..Default::default() });
        let error = define(&JobSpec { name: "nope".into(), args: vec![] }, &env).unwrap_err();
        assert!(error.contains("unknown job 'nope'"), "{error}");
        let error = define(&JobSpec { name: BENCH_JOB.into(), args: vec!["filter".into(), "x".into(), "1".into()] }, &env).unwrap_err();
        assert!(error.contains("'x'"), "{error}");
    }
}
