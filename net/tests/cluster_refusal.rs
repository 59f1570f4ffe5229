//! A worker that builds another graph than the coordinator's refuses the job before any subtask
//! starts, and the error names the operator that differs and what differs about it.

use std::sync::Arc;
use std::time::Duration;

use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::cluster::JobRegistry;
use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::source::collection::CollectionSource;
use tethys_engine::{EngineConfig, JobError, StreamEnvironment, TumblingEventTimeWindows, WatermarkStrategy};
use tethys_net::launcher::InProcessCluster;

/// A keyed tumbling-window count whose window is `window_ms` long.
fn define(env: &StreamEnvironment, window_ms: u64) {
    env.source("numbers", CollectionSource::new((0..1_000u64).collect::<Vec<u64>>()))
        .assign_timestamps_and_watermarks(WatermarkStrategy::for_bounded_out_of_orderness(Duration::ZERO, |n: &u64| *n as i64))
        .key_by(|n: &u64| n % 7)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(window_ms)), |n: &u64| *n as i64)
        .count()
        .sink("counts", DiscardSink::new());
}

#[test]
fn a_worker_with_another_graph_refuses_the_job_naming_the_operator() {
    // The workers' program builds 200 ms windows where the coordinator's builds 100 ms ones (as
    // if they ran another build or were given other arguments).
    let registry: JobRegistry = Arc::new(|_spec: &JobSpec, env: &StreamEnvironment| {
        define(env, 200);
        Ok(())
    });
    let job = JobSpec { name: "windows".into(), args: Vec::new() };
    let cluster = InProcessCluster::start(2, 1, registry, job).unwrap();
    let env = StreamEnvironment::new(EngineConfig { parallelism: 1, pin_slots: false, ..EngineConfig::default() });
    define(&env, 100);
    let error = env.execute_on_cluster("windows", cluster.coordinator().cluster()).unwrap_err();
    let JobError::Deploy { reason, .. } = &error else { panic!("expected a refused deployment, got {error}") };
    assert!(reason.contains("operator 'Window'") && reason.contains("parameters"), "{error}");
    assert!(reason.contains("200") && reason.contains("100"), "both window sizes are named: {error}");
}
