//! Live figures of a running job (`JobClient::live`): a sink that takes a while per frame is
//! busy most of the time, and the source that feeds it spends most of its time backpressured,
//! waiting for credit. Ratios of time over a stretch of the run, between two readings; no
//! absolute time is asserted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tethys_engine::sink::{Sink, SinkWriter};
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{EngineConfig, StreamEnvironment, SubtaskContext, SubtaskLive, UserError};

#[derive(Clone, Default)]
struct SlowSink(Arc<AtomicU64>);

impl Sink<Bid> for SlowSink {
    fn create_writer(&self, _context: &SubtaskContext) -> Result<Box<dyn SinkWriter<Bid>>, UserError> {
        Ok(Box::new(self.clone()))
    }
}

impl SinkWriter<Bid> for SlowSink {
    fn write_frame(&mut self, frame: Vec<Bid>) -> Result<(), UserError> {
        std::thread::sleep(Duration::from_millis(2));
        self.0.fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The readings of tasks 0 (source) and 1 (sink), once both have some.
fn readings(client: &tethys_engine::JobClient) -> Option<(SubtaskLive, SubtaskLive)> {
    let all = client.live();
    let task = |task: u32| all.iter().find(|reading| reading.task == task && reading.subtask == 0).cloned();
    Some((task(0)?, task(1)?))
}

fn ratio(part: u64, whole: u64) -> f64 {
    part as f64 / whole.max(1) as f64
}

#[test]
fn a_slow_sink_is_busy_and_its_source_backpressured() {
    let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism: 1, frame_records_max: 64, ..EngineConfig::default() });
    let sink = SlowSink::default();
    env.source("bids", BidsSource::new(1_000_000_000_000, 7)).rebalance().sink("slow", sink.clone());
    let client = env.execute_async("live").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Two readings at least half a second of the sink's time apart.
    let first = loop {
        if let Some(pair) = readings(&client) {
            if pair.1.elapsed_ns > 0 && pair.1.records_in > 0 {
                break pair;
            }
        }
        assert!(Instant::now() < deadline, "no readings of both tasks: {:?}", client.live());
        std::thread::sleep(Duration::from_millis(20));
    };
    let second = loop {
        let pair = readings(&client).unwrap();
        if pair.1.elapsed_ns >= first.1.elapsed_ns + 500_000_000 && pair.0.elapsed_ns >= first.0.elapsed_ns + 500_000_000 {
            break pair;
        }
        assert!(Instant::now() < deadline, "the readings did not advance: {pair:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (source, sink_task) = (&second.0, &second.1);
    let sink_busy = ratio(sink_task.busy_ns - first.1.busy_ns, sink_task.elapsed_ns - first.1.elapsed_ns);
    let source_backpressured = ratio(source.backpressured_ns - first.0.backpressured_ns, source.elapsed_ns - first.0.elapsed_ns);
    assert!(sink_busy > 0.5, "the slow sink is busy most of the time: {sink_busy:.2} ({first:?} -> {second:?})");
    assert!(
        source_backpressured > 0.5,
        "its source waits for credit most of the time: {source_backpressured:.2} ({first:?} -> {second:?})"
    );
    // Counts: the source read what it sent; the sink took in what reached it.
    assert!(source.records_in >= source.records_out && source.records_out > 0, "{source:?}");
    assert!(sink_task.records_in > first.1.records_in && sink_task.records_in <= sink.0.load(Ordering::Relaxed) + 64 * 64, "{sink_task:?}");
    assert_eq!((source.attempt, source.ended, sink_task.ended), (1, false, false));
    drop(client.cancel());
}
