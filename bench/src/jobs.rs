//! The jobs a cluster's processes know by name: what a coordinator and its workers (`tethys
//! worker`) build from a `JobSpec`, the same in every process because they run the same program.
//!
//! `sql <script>`: the job of a SQL script (see [`SQL_JOB`]).
//!
//! `bench <query> <events> <seed> [split] [sources=N] [rate=N] [slow=N]`: a benchmark query over its generated
//! input, ending in a discarding sink; `split` puts the sink of the passthrough and filter queries
//! in a task of its own (a rebalance instead of a chain), so that on a cluster source and sink can
//! run in different processes; `sources=N` fixes the bids source's parallelism at N (a source
//! keeps its parallelism across restores, so only such a job can be rescaled); `rate=N` holds
//! the bids source to N bids per second over all its subtasks (a live job, as the demo's);
//! `slow=N` makes the discarding sink take N microseconds per frame (a job that backpressures).

use std::sync::Arc;

use tethys_engine::base::key::KeyHasher;
use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::cluster::JobRegistry;
use tethys_engine::frame::Record;
use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::sink::file::FileSink;
use tethys_engine::source::bids::BidsSource;
use tethys_engine::source::nexmark::NexmarkSource;
use tethys_engine::{DataStream, StreamEnvironment};

use crate::end::QueryEnd;

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

/// Defines the job `spec` names in `env`, ending in `sink` (a `bench` job) or in its digest
/// topic (a `digest` job); says what is wrong with a spec it does not know.
pub fn define_with_sink(spec: &JobSpec, env: &StreamEnvironment, sink: DiscardSink) -> Result<(), String> {
    let (digests, args) = match spec.name.as_str() {
        BENCH_JOB => (None, spec.args.as_slice()),
        DIGEST_JOB => {
            let [dir, args @ ..] = spec.args.as_slice() else {
                return Err(format!(
                    "'{DIGEST_JOB}' takes <output dir> <query> <events> <seed> [split] [sources=N] [rate=N] [slow=N], not {:?}",
                    spec.args
                ));
            };
            (Some(DigestsTo { dir: dir.into() }), args)
        }
        SQL_JOB => return define_sql(spec, env),
        other => return Err(format!("unknown job '{other}' (this program knows '{BENCH_JOB}', '{DIGEST_JOB}' and '{SQL_JOB}')")),
    };
    let [query, events, seed, rest @ ..] = args else {
        return Err(format!(
            "'{}' takes <query> <events> <seed> [split] [sources=N] [rate=N] [slow=N] after its own arguments, not {:?}",
            spec.name, spec.args
        ));
    };
    let query: Query = query.parse()?;
    let events: u64 = events.parse().map_err(|_| format!("'{events}' is not a number of events"))?;
    let seed: u64 = seed.parse().map_err(|_| format!("'{seed}' is not a seed"))?;
    // Options after the seed: `split`, `sources=N` (the bids source's parallelism, fixed: such a
    // job can be rescaled, as a source keeps its parallelism across restores), `rate=N`.
    let (mut split, mut sources, mut rate, mut slow) = (false, None, None, None);
    for option in rest {
        let positive =
            |text: &str| text.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| format!("'{option}': N must be a positive number"));
        if option == "split" {
            split = true;
        } else if let Some(count) = option.strip_prefix("sources=") {
            sources = Some(positive(count)? as usize);
        } else if let Some(per_second) = option.strip_prefix("rate=") {
            rate = Some(positive(per_second)?);
        } else if let Some(micros) = option.strip_prefix("slow=") {
            slow = Some(std::time::Duration::from_micros(positive(micros)?));
        } else {
            return Err(format!("unexpected argument '{option}' after the seed (only 'split', 'sources=N', 'rate=N' and 'slow=N')"));
        }
    }
    // A sink that takes `slow` per frame: the job backpressures (to see it in the console).
    let sink = match slow {
        Some(delay) => sink.with_frame_delay(delay),
        None => sink,
    };
    if (sources.is_some() || rate.is_some()) && !matches!(query, Query::Bids(_)) {
        return Err("'sources=N' and 'rate=N' apply to the bids queries only".to_string());
    }
    // At most `rate` bids per second over all source subtasks (a live job rather than a benchmark).
    let bids = match rate {
        Some(rate) => BidsSource::new(events, seed).with_rate(rate),
        None => BidsSource::new(events, seed),
    };
    match (query, digests) {
        (Query::Bids(query), None) => bids::define_with_sources(env, query, bids, sink, split, sources),
        (Query::Bids(query), Some(end)) => bids::define_with_sources(env, query, bids, end, split, sources),
        (Query::Nexmark(query), None) => nexmark::define_into(env, query, NexmarkSource::new(events, seed), sink),
        (Query::Nexmark(query), Some(end)) => nexmark::define_into(env, query, NexmarkSource::new(events, seed), end),
        (Query::Burst(query), None) => bursts::define(env, query, BidsSource::new(events, seed), sink),
        (Query::Burst(_), Some(_)) => return Err("the burst queries have no digest job".to_string()),
        (Query::NexmarkSql(number), end) => {
            // Every process rebuilds the job from the query's SQL text.
            let session = crate::nexmark_sql::session(events, seed, env.config().clone())?;
            let text = crate::nexmark_sql::query(number).ok_or_else(|| format!("no Nexmark query q{number} in SQL"))?;
            let (stream, _) = session.query_stream(env, text).map_err(|error| error.render(text))?;
            match end {
                Some(end) => end.end(stream),
                None => {
                    stream.sink("discard", sink);
                }
            }
        }
    }
    Ok(())
}

/// The name of the digest job: a query whose every result is written, exactly once, as a 64-bit
/// digest of its encoding (one decimal number per line) into the part files of a directory, so
/// two runs (in one process and on a cluster; with failures or without) compare as multisets.
pub const DIGEST_JOB: &str = "digest";

/// The job of a SQL script (`sql <script>`): its definitions run in order and its one job
/// statement (INSERT INTO, a statement set, or a SELECT) is the job; every process builds it
/// from the same text.
pub const SQL_JOB: &str = "sql";

fn define_sql(spec: &JobSpec, env: &StreamEnvironment) -> Result<(), String> {
    let [script] = spec.args.as_slice() else {
        return Err(format!("'{SQL_JOB}' takes one argument, the SQL script, not {} arguments", spec.args.len()));
    };
    let mut session = tethys_sql::session::SqlSession::default();
    session.define_job(env, script).map(drop).map_err(|error| error.render(script))
}

/// The spec of the digest job of benchmark `query` into the directory `dir`.
pub fn digest_spec(dir: &std::path::Path, query: Query, events: u64, seed: u64, split: bool) -> JobSpec {
    let mut spec = bench_spec(query, events, seed, split);
    spec.name = DIGEST_JOB.to_string();
    spec.args.insert(0, dir.display().to_string());
    spec
}

/// Ends a query in files of digests (see `DIGEST_JOB`).
struct DigestsTo {
    dir: std::path::PathBuf,
}

/// The digest of a record: the engine's key hash over its codec encoding.
pub fn digest<T: Record>(record: &T) -> u64 {
    let bytes = tethys_engine::base::codec::encode(record).expect("a job's records encode");
    let mut hasher = KeyHasher::default();
    hasher.write_bytes(&bytes);
    hasher.finish()
}

impl QueryEnd for DigestsTo {
    fn end<T: Record + Clone>(self, stream: DataStream<T>) {
        // Part files are committed by renaming them (two-phase): exact on a cluster too, as the
        // rename happens in the coordinator and the files are the writers' own.
        stream.map(|record: T| digest(&record)).name("digest").sink("digests", FileSink::lines(self.dir));
    }
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
