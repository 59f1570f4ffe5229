//! Flow control end to end: a slow sink slows the source instead of letting frames pile up; the
//! counts of queued frames stay within the credit bounds (asserted on counts, never on time).

use std::time::Duration;

use tethys_engine::sink::{Sink, SinkWriter};
use tethys_engine::UserError;
use tethys_engine::{EngineConfig, StreamEnvironment, SubtaskContext};

/// A sink that takes a while per frame and counts what it got.
#[derive(Clone, Default)]
struct SlowSink {
    records: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Sink<u64> for SlowSink {
    fn create_writer(&self, _context: &SubtaskContext) -> Result<Box<dyn SinkWriter<u64>>, UserError> {
        Ok(Box::new(self.clone()))
    }
}

impl SinkWriter<u64> for SlowSink {
    fn write_frame(&mut self, frame: Vec<u64>) -> Result<(), UserError> {
        std::thread::sleep(Duration::from_micros(200));
        self.records.fetch_add(frame.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn slow_sink_keeps_queued_frames_within_the_credit_bound() {
    for (parallelism, exclusive, floating) in [(1, 2, 8), (2, 1, 3), (2, 4, 0)] {
        let config = EngineConfig {
            slots: 2,
            parallelism,
            frame_records_max: 16,
            exclusive_credits_per_channel: exclusive,
            floating_credits_per_gate: floating,
            ..EngineConfig::default()
        };
        let env = StreamEnvironment::new(config);
        let sink = SlowSink::default();
        let records = 16 * 1000u64; // 1000 frames: far more than any bound below
        env.from_collection((0..records).collect::<Vec<_>>()).rebalance().sink("slow", sink.clone());
        let result = env.execute("backpressure").unwrap();
        assert_eq!(sink.records.load(std::sync::atomic::Ordering::Relaxed), records, "nothing lost");
        let channels = result.channels;
        let bound = parallelism as u32 * exclusive + floating;
        assert_eq!(channels.gate_capacity_min, bound);
        assert!(channels.gate_queued_frames_peak <= bound, "gate held {} frames, bound {bound}", channels.gate_queued_frames_peak);
        // The sources did run into the bound: frames waited for credit...
        assert!(channels.output_backlog_frames_peak >= 1, "the source never waited for credit");
        // ...but never more than the one frame a blocked task may have produced.
        assert_eq!(channels.output_backlog_frames_peak, 1, "a blocked source kept producing");
    }
}
