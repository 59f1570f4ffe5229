//! Flow control end to end: a slow sink slows the source instead of letting frames pile up; the
//! counts of queued frames stay within the credit bounds (asserted on counts, never on time). Also
//! when one step emits far more than the credits allow: a flat_map that explodes, a watermark that
//! fires thousands of windows or event-time timers, processing-time timers that all come due at
//! once. The operator stops when its output blocks and goes on when credit returns, so at most
//! `OUTPUT_OVERDRAFT_FRAMES_MAX` frames per channel ever wait beyond the credits.

use std::time::Duration;

use std::sync::atomic::Ordering;
use tethys_engine::rkyv;
use tethys_engine::sink::{Sink, SinkWriter};
use tethys_engine::UserError;

use tethys_engine::channel::credit::OUTPUT_OVERDRAFT_FRAMES_MAX;
use tethys_engine::state::TimeDomain;
use tethys_engine::{
    EngineConfig, EventTimeSessionWindows, EventTimeTrigger, FrameOperator, GlobalWindows, KeyedProcessFunction, Output, ProcessContext,
    StreamEnvironment, SubtaskContext, TumblingEventTimeWindows, WatermarkStrategy, WindowResult,
};

/// A sink that takes a while per frame and counts what it got.
struct SlowSink<T> {
    records: std::sync::Arc<std::sync::atomic::AtomicU64>,
    _records: std::marker::PhantomData<fn(T)>,
}

impl<T> Default for SlowSink<T> {
    fn default() -> Self {
        SlowSink { records: Default::default(), _records: std::marker::PhantomData }
    }
}

impl<T> Clone for SlowSink<T> {
    fn clone(&self) -> Self {
        SlowSink { records: std::sync::Arc::clone(&self.records), _records: std::marker::PhantomData }
    }
}

impl<T: tethys_engine::Codec> Sink<T> for SlowSink<T> {
    fn create_writer(&self, _context: &SubtaskContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(self.clone()))
    }
}

impl<T: tethys_engine::Codec> SinkWriter<T> for SlowSink<T> {
    fn write_frame(&mut self, frame: Vec<T>) -> Result<(), UserError> {
        std::thread::sleep(Duration::from_micros(50));
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
        let sink = SlowSink::<u64>::default();
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

/// A small-frame configuration with a slow sink behind a rebalance: the credit bound is
/// `exclusive + floating` = 3 frames of 16 records at the sink's gate.
fn tight_config() -> EngineConfig {
    EngineConfig {
        slots: 2,
        parallelism: 1,
        frame_records_max: 16,
        exclusive_credits_per_channel: 2,
        floating_credits_per_gate: 1,
        ..EngineConfig::default()
    }
}

/// Checks that nothing was lost and that no output channel held more than the overdraft beyond
/// its credits, although the step under test emitted `burst_frames` frames at once.
fn assert_within_the_overdraft(result: &tethys_engine::JobResult, delivered: u64, expected: u64, burst_frames: u64) {
    assert_eq!(delivered, expected, "nothing lost");
    assert!(burst_frames > 20 * OUTPUT_OVERDRAFT_FRAMES_MAX as u64, "the burst must dwarf the bound");
    let channels = result.channels;
    assert!(channels.gate_queued_frames_peak <= channels.gate_capacity_min, "gate over its capacity: {channels:?}");
    assert!(
        channels.output_backlog_frames_peak <= OUTPUT_OVERDRAFT_FRAMES_MAX,
        "{} frames waited for credit on one channel, overdraft {OUTPUT_OVERDRAFT_FRAMES_MAX}",
        channels.output_backlog_frames_peak
    );
}

#[test]
fn an_exploding_flat_map_stops_at_the_credit_bound() {
    let env = StreamEnvironment::new(tight_config());
    let sink = SlowSink::<u64>::default();
    let fan_out = 2_000u64;
    env.from_collection((0..32u64).collect::<Vec<_>>())
        .flat_map(move |r: u64| (0..fan_out).map(move |k| r * fan_out + k))
        .rebalance()
        .sink("slow", sink.clone());
    let result = env.execute("explode").unwrap();
    let expected = 32 * fan_out;
    assert_within_the_overdraft(&result, sink.records.load(Ordering::Relaxed), expected, expected / 16);
}

#[test]
fn a_watermark_firing_thousands_of_windows_waits_for_credit() {
    let env = StreamEnvironment::new(tight_config());
    let sink = SlowSink::<WindowResult<u64, u64>>::default();
    let keys = 8_000u64;
    env.from_collection((0..keys).map(|k| (k, 1_000i64)).collect::<Vec<_>>())
        .key_by(|r: &(u64, i64)| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)), |r: &(u64, i64)| r.1)
        .count()
        .rebalance()
        .sink("slow", sink.clone());
    let result = env.execute("window-burst").unwrap();
    assert_within_the_overdraft(&result, sink.records.load(Ordering::Relaxed), keys, keys / 16);
}

#[test]
fn sessions_firing_together_wait_for_credit() {
    let env = StreamEnvironment::new(tight_config());
    let sink = SlowSink::<WindowResult<u64, u64>>::default();
    let keys = 8_000u64;
    env.from_collection((0..keys).map(|k| (k, 1_000i64)).collect::<Vec<_>>())
        .key_by(|r: &(u64, i64)| r.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_secs(5)), |r: &(u64, i64)| r.1)
        .count()
        .rebalance()
        .sink("slow", sink.clone());
    let result = env.execute("session-burst").unwrap();
    assert_within_the_overdraft(&result, sink.records.load(Ordering::Relaxed), keys, keys / 16);
}

#[test]
fn an_interval_join_record_matching_thousands_waits_for_credit() {
    // 4,000 left records of one key at time 0, then right records at time 0: each right record
    // matches all of them.
    let env = StreamEnvironment::new(EngineConfig { parallelism: 1, ..tight_config() });
    let sink = SlowSink::<(u64, u64)>::default();
    let (lefts, rights) = (4_000u64, 3u64);
    let strategy = || WatermarkStrategy::for_monotonous_timestamps(|_: &u64| 0);
    env.from_collection((0..lefts).collect::<Vec<_>>())
        .assign_timestamps_and_watermarks(strategy())
        .join(env.from_collection((0..rights).collect::<Vec<_>>()).assign_timestamps_and_watermarks(strategy()))
        .on(|_: &u64| 0u8, |_: &u64| 0u8)
        .interval(-10, 10, |_: &u64| 0, |_: &u64| 0, |l: &u64, r: &u64| (*l, *r))
        .rebalance()
        .sink("slow", sink.clone());
    let result = env.execute("join-burst").unwrap();
    // Either side may come first; every left meets every right once.
    assert_within_the_overdraft(&result, sink.records.load(Ordering::Relaxed), lefts * rights, lefts * rights / 16);
}

#[test]
fn global_windows_firing_at_the_end_of_input_wait_for_credit() {
    let env = StreamEnvironment::new(tight_config());
    let sink = SlowSink::<WindowResult<u64, u64>>::default();
    let keys = 8_000u64;
    env.from_collection((0..keys).map(|k| (k, 1_000i64)).collect::<Vec<_>>())
        .key_by(|r: &(u64, i64)| r.0)
        .window(GlobalWindows::create().with_trigger(EventTimeTrigger::new()), |r: &(u64, i64)| r.1)
        .count()
        .rebalance()
        .sink("slow", sink.clone());
    let result = env.execute("global-window-burst").unwrap();
    assert_within_the_overdraft(&result, sink.records.load(Ordering::Relaxed), keys, keys / 16);
}

/// Registers, per record, a timer in `domain` that is due at once (processing time) or at the end
/// of input (event time); each timer emits one record.
struct TimerPerKey(TimeDomain);

impl KeyedProcessFunction<u64, u64, u64> for TimerPerKey {
    fn process_element(&mut self, _record: u64, ctx: &mut ProcessContext<'_, '_, u64, u64>) -> Result<(), UserError> {
        match self.0 {
            TimeDomain::ProcessingTime => {
                let now = ctx.current_processing_time();
                ctx.register_processing_time_timer(now);
            }
            TimeDomain::EventTime => ctx.register_event_time_timer(1_000),
        }
        Ok(())
    }

    fn on_timer(&mut self, _timestamp: i64, _domain: TimeDomain, ctx: &mut ProcessContext<'_, '_, u64, u64>) -> Result<(), UserError> {
        let key = *ctx.key();
        ctx.emit(key);
        Ok(())
    }
}

#[test]
fn due_processing_time_timers_fire_before_more_input_is_taken() {
    // Every record registers a timer due at once. A task that took input whenever its output had
    // room, and fired timers only on its tick message, let them pile up between ticks.
    let env = StreamEnvironment::new(tight_config());
    let sink = SlowSink::<u64>::default();
    let keys = 20_000u64;
    env.from_collection((0..keys).collect::<Vec<_>>())
        .key_by(|k: &u64| *k)
        .process("timers", || TimerPerKey(TimeDomain::ProcessingTime))
        .rebalance()
        .sink("slow", sink.clone());
    let result = env.execute("due-timers").unwrap();
    assert_eq!(sink.records.load(Ordering::Relaxed), keys, "nothing lost");
    let peak = result.operator("timers").unwrap().extra["timers_peak"];
    // One input frame's timers (16) plus those a frame's worth of output left waiting.
    assert!(peak <= 2 * 16, "{peak} timers registered at once: due timers waited behind input");
}

#[test]
fn timers_that_come_due_together_wait_for_credit() {
    for domain in [TimeDomain::ProcessingTime, TimeDomain::EventTime] {
        let env = StreamEnvironment::new(tight_config());
        let sink = SlowSink::<u64>::default();
        let keys = 6_000u64;
        env.from_collection((0..keys).collect::<Vec<_>>())
            .assign_timestamps_and_watermarks(WatermarkStrategy::for_monotonous_timestamps(|_: &u64| 1_000))
            .key_by(|k: &u64| *k)
            .process("timers", move || TimerPerKey(domain))
            .rebalance()
            .sink("slow", sink.clone());
        let result = env.execute("timer-burst").unwrap();
        assert_within_the_overdraft(&result, sink.records.load(Ordering::Relaxed), keys, keys / 16);
    }
}

/// A record of 4 KiB.
#[derive(Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = tethys_engine::rkyv)]
struct Big([u64; 512]);

/// A sink that remembers the largest frame it was given.
#[derive(Clone, Default)]
struct LargestFrame {
    records: std::sync::Arc<std::sync::atomic::AtomicU64>,
    largest: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Sink<Big> for LargestFrame {
    fn create_writer(&self, _context: &SubtaskContext) -> Result<Box<dyn SinkWriter<Big>>, UserError> {
        Ok(Box::new(self.clone()))
    }
}

impl SinkWriter<Big> for LargestFrame {
    fn write_frame(&mut self, frame: Vec<Big>) -> Result<(), UserError> {
        assert!(frame.iter().all(|big| big.0.iter().all(|&word| word == big.0[0])), "a record arrived intact");
        self.records.fetch_add(frame.len() as u64, Ordering::Relaxed);
        self.largest.fetch_max(frame.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn frames_of_large_records_are_bounded_in_bytes() {
    // 1024 records per frame would be 4 MiB of 4 KiB records; 16 KiB allows 4.
    let config = EngineConfig { frame_bytes_max: 16 << 10, ..tight_config() };
    let config = EngineConfig { frame_records_max: 1024, ..config };
    for chained in [false, true] {
        let env = StreamEnvironment::new(config.clone());
        let sink = LargestFrame::default();
        let records = env.from_collection((0..300u64).map(|i| Big([i; 512])).collect::<Vec<_>>());
        // Frames built by the source, by an operator's output and by the partitioner.
        let records = if chained { records.flat_map(|b: Big| [b.clone(), b]) } else { records };
        records.rebalance().sink("largest", sink.clone());
        env.execute("large-records").unwrap();
        let expected = if chained { 600 } else { 300 };
        assert_eq!(sink.records.load(Ordering::Relaxed), expected, "nothing lost");
        assert_eq!(sink.largest.load(Ordering::Relaxed), 4, "frames hold 16 KiB of records, chained={chained}");
    }
}

/// Passes records on and emits `burst` more when its input ends.
struct BurstAtFinish {
    burst: u64,
}

impl FrameOperator<u64, u64> for BurstAtFinish {
    fn process(&mut self, frame: Vec<u64>, out: &mut Output<'_, u64>) -> Result<(), UserError> {
        out.emit_frame(frame);
        Ok(())
    }

    fn finish(&mut self, out: &mut Output<'_, u64>) -> Result<(), UserError> {
        for record in 0..self.burst {
            out.emit(record);
        }
        Ok(())
    }
}

#[test]
fn what_an_operator_emits_at_its_finish_is_delivered_before_end_of_input() {
    // The burst blocks the output, so the flat_map after it stops with records held back; its
    // own finish and the end of input must wait until they are out.
    let env = StreamEnvironment::new(tight_config());
    let sink = SlowSink::<u64>::default();
    env.from_collection((0..100u64).collect::<Vec<_>>())
        .process("burst-at-finish", |_| BurstAtFinish { burst: 5_000 })
        .flat_map(|r: u64| [r, r])
        .rebalance()
        .sink("slow", sink.clone());
    let result = env.execute("finish-burst").unwrap();
    assert_eq!(sink.records.load(Ordering::Relaxed), 2 * (100 + 5_000), "nothing lost");
    assert!(result.channels.gate_queued_frames_peak <= result.channels.gate_capacity_min);
}

#[test]
fn per_record_watermarks_wait_for_credit_too() {
    // Ascending timestamps: every record raises the watermark, so each becomes a frame of its own
    // followed by a watermark.
    let env = StreamEnvironment::new(tight_config());
    let sink = SlowSink::<u64>::default();
    let records = 2_000u64;
    env.from_collection((0..records).collect::<Vec<_>>())
        .assign_timestamps_and_watermarks(WatermarkStrategy::for_bounded_out_of_orderness_per_record(Duration::ZERO, |r: &u64| *r as i64))
        .rebalance()
        .sink("slow", sink.clone());
    let result = env.execute("punctuated-burst").unwrap();
    assert_within_the_overdraft(&result, sink.records.load(Ordering::Relaxed), records, records);
}
