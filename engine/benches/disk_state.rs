//! Disk state backend benchmarks: puts, random gets and read-modify-writes (`value_modify`, what a
//! rolling aggregate does per record) of a value state through the `StateBackend` API, one thread,
//! over a key set that fits the backend's default cache and one that does not.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tethys_engine::key_group::KeyGroupRange;
use tethys_engine::state::{DiskStateBackend, StateBackend, StateDescriptor, ValueState};

const MAX_PARALLELISM: usize = 128;
/// Key set sizes: about the agg query's 100,001 bidders, and ten times more.
const KEY_COUNTS: [u64; 2] = [100_000, 1_000_000];

/// The state of one rolling count-and-max per key, as the agg query keeps it.
type Stats = (u64, i64);

fn directory(name: &str, keys: u64) -> PathBuf {
    std::env::temp_dir().join(format!("tethys-bench-disk-state-{}-{name}-{keys}", std::process::id()))
}

/// A backend of the whole key group range holding a value for every key `0..keys`.
fn filled(name: &str, keys: u64) -> (DiskStateBackend<u64>, ValueState<Stats>) {
    let range = KeyGroupRange::for_subtask(0, 1, MAX_PARALLELISM);
    let mut backend = DiskStateBackend::open(directory(name, keys), range, MAX_PARALLELISM).expect("a fresh directory");
    let state = backend.register_value(&StateDescriptor::new("stats")).expect("a new state");
    for key in 0..keys {
        backend.value_put(state, backend.scope(&key), (1, key as i64));
    }
    (backend, state)
}

/// Keys in a random order, visited in turn: every key once before any twice.
fn shuffled(keys: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..keys).collect();
    fastrand::Rng::with_seed(7).shuffle(&mut order);
    order
}

/// The next key of `order`, going round.
fn next_key(order: &[u64], next: &mut usize) -> u64 {
    *next = (*next + 1) % order.len();
    order[*next]
}

fn disk_state(c: &mut Criterion) {
    let mut group = c.benchmark_group("disk_state");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    // Each operation on a backend of its own, freshly filled: what one operation leaves behind
    // (entries to write back, memtables to flush, segments to compact) is not the next one's cost.
    for keys in KEY_COUNTS {
        let order = shuffled(keys);
        let mut next = 0;
        let (mut backend, state) = filled("put", keys);
        group.bench_with_input(BenchmarkId::new("put", keys), &keys, |b, _| {
            b.iter(|| {
                let key = next_key(&order, &mut next);
                backend.value_put(state, backend.scope(&key), (2, key as i64));
            })
        });
        drop(backend);
        let (mut backend, state) = filled("get", keys);
        group.bench_with_input(BenchmarkId::new("get", keys), &keys, |b, _| {
            b.iter(|| {
                let key = next_key(&order, &mut next);
                black_box(backend.value_read(state, backend.scope(&key), |value| value.copied()))
            })
        });
        drop(backend);
        let (mut backend, state) = filled("value_modify", keys);
        group.bench_with_input(BenchmarkId::new("value_modify", keys), &keys, |b, _| {
            b.iter(|| {
                let key = next_key(&order, &mut next);
                backend.value_modify(state, backend.scope(&key), |slot| {
                    let stats = slot.get_or_insert((0, i64::MIN));
                    stats.0 += 1;
                    stats.1 = stats.1.max(key as i64);
                    stats.0
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, disk_state);
criterion_main!(benches);
