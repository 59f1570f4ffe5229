//! Keyed process functions: state scoped to the current key, event-time timers firing in order
//! when the watermark passes them, processing-time timers, side outputs from user code.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tethys_engine::sink::collect::CollectSink;
use tethys_engine::state::{KeyedStateBackend, StateDescriptor, TimeDomain, ValueState};
use tethys_engine::UserError;
use tethys_engine::{EngineConfig, KeyedProcessFunction, OutputTag, ProcessContext, StreamEnvironment, WatermarkStrategy};
use tethys_tests::IdleUntilReleased;

/// Emits (key, records seen) once a key has been quiet for 5 s of event time; records with a
/// negative value go to a side output.
struct QuietKeys {
    count: Option<ValueState<u64>>,
    last_seen: Option<ValueState<i64>>,
    rejected: OutputTag<(char, i64)>,
}

impl KeyedProcessFunction<char, (char, i64), (char, u64, i64)> for QuietKeys {
    fn open(&mut self, state: &mut KeyedStateBackend<char>) -> Result<(), UserError> {
        use tethys_engine::state::StateBackend;
        self.count = Some(state.register_value(&StateDescriptor::new("count"))?);
        self.last_seen = Some(state.register_value(&StateDescriptor::new("last-seen"))?);
        Ok(())
    }

    fn process_element(&mut self, record: (char, i64), ctx: &mut ProcessContext<'_, '_, char, (char, u64, i64)>) -> Result<(), UserError> {
        if record.1 < 0 {
            ctx.emit_side(&self.rejected, record);
            return Ok(());
        }
        let (count, last_seen) = (self.count.expect("opened"), self.last_seen.expect("opened"));
        count.modify(&mut ctx.keyed, |c| *c.get_or_insert(0) += 1);
        let ts = ctx.timestamp().expect("the stream has timestamps");
        last_seen.update(&mut ctx.keyed, ts);
        ctx.register_event_time_timer(ts + 5_000);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        domain: TimeDomain,
        ctx: &mut ProcessContext<'_, '_, char, (char, u64, i64)>,
    ) -> Result<(), UserError> {
        assert_eq!(domain, TimeDomain::EventTime);
        let (count, last_seen) = (self.count.expect("opened"), self.last_seen.expect("opened"));
        // Only the timer of the latest record means "quiet since then".
        if last_seen.get(&mut ctx.keyed) == Some(timestamp - 5_000) {
            let seen = count.get(&mut ctx.keyed).unwrap_or(0);
            let key = *ctx.key();
            ctx.emit((key, seen, timestamp));
            ctx.keyed.clear_all_state();
        }
        Ok(())
    }
}

#[test]
fn state_and_event_time_timers_find_quiet_keys() {
    for parallelism in [1, 2] {
        let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, frame_records_max: 1, ..EngineConfig::default() });
        let (out, rejected) = (CollectSink::new(), CollectSink::new());
        let tag = OutputTag::<(char, i64)>::new("rejected");
        let input: Vec<(char, i64)> = vec![('a', 1_000), ('b', 1_500), ('a', 3_000), ('c', -1), ('a', 9_000), ('b', 20_000), ('a', 30_000)];
        let quiet_tag = tag.clone();
        let quiet = env
            .from_collection(input)
            .parallelism(1)
            .assign_timestamps_and_watermarks(WatermarkStrategy::for_bounded_out_of_orderness_per_record(
                Duration::ZERO,
                |r: &(char, i64)| r.1,
            ))
            .parallelism(1)
            .key_by(|r: &(char, i64)| r.0)
            .process("quiet-keys", move || QuietKeys { count: None, last_seen: None, rejected: quiet_tag.clone() });
        quiet.side_output(&tag).sink("rejected", rejected.clone());
        quiet.sink("out", out.clone());
        env.execute("quiet").unwrap();
        let mut quiet = out.records();
        quiet.sort();
        // a: 1000, 3000, 9000: the timer for 3000 (at 8000) fires on watermark 8999, which comes
        // after record 9000 (a watermark follows the record that raised it, as in Flink), so
        // a is not quiet then; the timer for 9000 (at 14000) fires with 3 records. 30000 is
        // alone (end of input fires it). b: 1500 quiet until 6500; 20000 alone.
        assert_eq!(quiet, vec![('a', 1, 35_000), ('a', 3, 14_000), ('b', 1, 6_500), ('b', 1, 25_000)], "p={parallelism}");
        assert_eq!(rejected.records(), vec![('c', -1)]);
    }
}

struct RemindLater;

impl KeyedProcessFunction<char, char, String> for RemindLater {
    fn process_element(&mut self, record: char, ctx: &mut ProcessContext<'_, '_, char, String>) -> Result<(), UserError> {
        let at = ctx.current_processing_time() + 30;
        ctx.register_processing_time_timer(at);
        ctx.emit(format!("saw {record}"));
        Ok(())
    }

    fn on_timer(&mut self, timestamp: i64, domain: TimeDomain, ctx: &mut ProcessContext<'_, '_, char, String>) -> Result<(), UserError> {
        assert_eq!(domain, TimeDomain::ProcessingTime);
        assert!(ctx.current_processing_time() >= timestamp, "fired early");
        ctx.emit(format!("reminder for {}", ctx.key()));
        Ok(())
    }
}

#[test]
fn processing_time_timers_fire_while_the_job_runs() {
    // The source only ends after the reminder came out: without processing-time timers the job
    // would never end.
    let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism: 1, ..EngineConfig::default() });
    let release = Arc::new(AtomicBool::new(false));
    let out = CollectSink::new();
    let released = Arc::clone(&release);
    env.source("once", IdleUntilReleased::new(vec!['x'], &release))
        .key_by(|c: &char| *c)
        .process("remind", || RemindLater)
        .map(move |s: String| {
            if s.starts_with("reminder") {
                released.store(true, Ordering::Relaxed);
            }
            s
        })
        .sink("out", out.clone());
    env.execute("reminder").unwrap();
    assert_eq!(out.records(), vec!["saw x".to_string(), "reminder for x".to_string()]);
}

/// Remembers the first record for 30 ms of processing time (state TTL); 80 ms later a timer
/// looks for it.
struct ForgetAfterTtl(Option<ValueState<char>>);

impl KeyedProcessFunction<char, char, String> for ForgetAfterTtl {
    fn open(&mut self, state: &mut KeyedStateBackend<char>) -> Result<(), UserError> {
        use tethys_engine::state::{StateBackend, StateTtlConfig};
        let descriptor = StateDescriptor::new("seen").with_ttl(StateTtlConfig::new(Duration::from_millis(30)));
        self.0 = Some(state.register_value(&descriptor)?);
        Ok(())
    }

    fn process_element(&mut self, record: char, ctx: &mut ProcessContext<'_, '_, char, String>) -> Result<(), UserError> {
        let seen = self.0.expect("opened");
        seen.update(&mut ctx.keyed, record);
        let fresh = seen.get(&mut ctx.keyed);
        ctx.emit(format!("fresh: {fresh:?}"));
        let at = ctx.current_processing_time() + 80;
        ctx.register_processing_time_timer(at);
        Ok(())
    }

    fn on_timer(&mut self, _timestamp: i64, _domain: TimeDomain, ctx: &mut ProcessContext<'_, '_, char, String>) -> Result<(), UserError> {
        let seen = self.0.expect("opened");
        let later = seen.get(&mut ctx.keyed);
        ctx.emit(format!("later: {later:?}"));
        Ok(())
    }
}

#[test]
fn state_ttl_never_returns_an_expired_value() {
    let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism: 1, ..EngineConfig::default() });
    let release = Arc::new(AtomicBool::new(false));
    let out = CollectSink::new();
    let released = Arc::clone(&release);
    env.source("once", IdleUntilReleased::new(vec!['x'], &release))
        .key_by(|c: &char| *c)
        .process("ttl", || ForgetAfterTtl(None))
        .map(move |s: String| {
            if s.starts_with("later") {
                released.store(true, Ordering::Relaxed);
            }
            s
        })
        .sink("out", out.clone());
    env.execute("ttl").unwrap();
    assert_eq!(out.records(), vec!["fresh: Some('x')".to_string(), "later: None".to_string()]);
}
