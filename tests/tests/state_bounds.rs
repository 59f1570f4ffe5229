//! State stays bounded: state with a TTL leaves in the background for keys never read again
//! (incremental cleanup, as Flink's heap backend), a purged global window keeps nothing of its key,
//! and joins and global windows keep no state once the watermark has passed it.

use std::sync::Arc;
use std::time::Duration;

use tethys_engine::sink::collect::CollectSink;
use tethys_engine::state::{KeyedStateBackend, ManualClock, StateBackend, StateDescriptor, StateTtlConfig, ValueState};
use tethys_engine::UserError;
use tethys_engine::{CountTrigger, EngineConfig, GlobalWindows, KeyedProcessFunction, ProcessContext, StreamEnvironment, WindowResult};

const TTL: Duration = Duration::from_secs(60);
/// Keys written once each at the start, and never read again.
const COLD_KEYS: u64 = 10_000;
/// Records after the TTL has passed, all of one key.
const LATER_RECORDS: u64 = 5_000;
const SAMPLE_EVERY: u64 = 500;

/// Writes a value with TTL for every record's key. After the cold keys, it moves its own
/// processing-time clock past the TTL; every `SAMPLE_EVERY` records it emits (records seen,
/// entries stored in the backend, expired ones included).
struct WriteOnce {
    clock: ManualClock,
    value: Option<ValueState<u64>>,
    seen: u64,
}

impl KeyedProcessFunction<u64, u64, (u64, usize)> for WriteOnce {
    fn open(&mut self, state: &mut KeyedStateBackend<u64>) -> Result<(), UserError> {
        state.set_clock(Arc::new(self.clock.clone()));
        self.value = Some(state.register_value(&StateDescriptor::new("last").with_ttl(StateTtlConfig::new(TTL)))?);
        Ok(())
    }

    fn process_element(&mut self, key: u64, ctx: &mut ProcessContext<'_, '_, u64, (u64, usize)>) -> Result<(), UserError> {
        if self.seen == COLD_KEYS {
            self.clock.advance(TTL);
        }
        self.value.expect("opened").update(&mut ctx.keyed, key);
        self.seen += 1;
        if self.seen.is_multiple_of(SAMPLE_EVERY) {
            let backend = ctx.keyed.backend();
            let stored = backend.key_groups().as_range().map(|group| backend.keys(group).len()).sum();
            ctx.emit((self.seen, stored));
        }
        Ok(())
    }
}

#[test]
fn ttl_state_of_keys_never_read_again_is_cleaned_up_while_records_flow() {
    let env = StreamEnvironment::new(EngineConfig { slots: 1, parallelism: 1, ..EngineConfig::default() });
    let samples = CollectSink::new();
    let hot = u64::MAX;
    let input: Vec<u64> = (0..COLD_KEYS).chain((0..LATER_RECORDS).map(|_| hot)).collect();
    env.from_collection(input)
        .key_by(|key: &u64| *key)
        .process("write-once", || WriteOnce { clock: ManualClock::new(0), value: None, seen: 0 })
        .sink("samples", samples.clone());
    env.execute("ttl-cleanup").unwrap();

    let samples: Vec<(u64, usize)> = samples.records();
    assert_eq!(samples.len() as u64, (COLD_KEYS + LATER_RECORDS) / SAMPLE_EVERY);
    let at = |seen: u64| samples.iter().find(|(n, _)| *n == seen).expect("sampled").1;
    assert_eq!(at(COLD_KEYS), COLD_KEYS as usize, "every cold key is stored until the TTL passes");
    let last = samples.last().expect("samples").1;
    assert!(last <= 1, "{last} entries left after the TTL passed: only the key still written may stay");
    // It shrinks steadily as records flow, not all at once at the end.
    let midway = at(COLD_KEYS + LATER_RECORDS / 2);
    assert!(midway < COLD_KEYS as usize, "{midway} entries halfway through the later records");
}

#[test]
fn purged_count_windows_leave_no_state_behind() {
    for parallelism in [1, 2] {
        let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
        let out = CollectSink::new();
        // 5,000 keys, 4 records each: every key's window fires and purges twice.
        let input: Vec<(u64, i64)> = (0..20_000i64).map(|i| ((i % 5_000) as u64, i)).collect();
        env.from_collection(input)
            .key_by(|r: &(u64, i64)| r.0)
            .window(GlobalWindows::create().with_trigger(CountTrigger::of(2).purging()), |r: &(u64, i64)| r.1)
            .reduce(|a, b| (a.0, a.1 + b.1))
            .name("pairs")
            .sink("out", out.clone());
        let result = env.execute("purged-count-windows").unwrap();
        let pairs: Vec<WindowResult<u64, (u64, i64)>> = out.records();
        assert_eq!(pairs.len(), 10_000, "p={parallelism}");
        let metrics = &result.operator("pairs").expect("the window operator").extra;
        assert_eq!(metrics["state_keys"], 0, "p={parallelism}: purged windows keep their triggers");
        assert_eq!(metrics["event_timers"], 0, "p={parallelism}");
    }
}
