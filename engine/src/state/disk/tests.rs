//! Tests of the disk backend: the conformance suite (with the default cache, a cache that keeps
//! only a few dozen entries, and none), snapshots moving to and from the heap backend, its working
//! directory, point-in-time views, and state larger than the cache.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{DiskStateBackend, DiskStateOptions};
use crate::key_group::{assign_key_group, KeyGroupRange};
use crate::state::conformance;
use crate::state::ttl::Clock;
use crate::state::{ChangeTracking, HeapStateBackend, KeyContext, StateBackend, StateDescriptor, StateError, TimerService, ValueState};

/// A directory of its own for one backend of one test run (the backend deletes it when dropped).
fn test_directory(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("tethys-disk-state-{}-{name}-{n}", std::process::id()))
}

fn disk_backend(range: KeyGroupRange, max_parallelism: usize, clock: Arc<dyn Clock>) -> DiskStateBackend<u64> {
    DiskStateBackend::with_clock(test_directory("conformance"), range, max_parallelism, clock).expect("a fresh directory")
}

fn heap_backend(range: KeyGroupRange, max_parallelism: usize, clock: Arc<dyn Clock>) -> HeapStateBackend<u64> {
    HeapStateBackend::with_clock(range, max_parallelism, clock)
}

crate::state::conformance::state_backend_conformance!(disk_backend);

/// A disk backend with `cache_bytes` of memory and TTL read from `clock`.
fn disk_backend_caching(cache_bytes: u64, range: KeyGroupRange, max_parallelism: usize, clock: Arc<dyn Clock>) -> DiskStateBackend<u64> {
    let options = DiskStateOptions { cache_bytes };
    let mut backend = DiskStateBackend::open_with(test_directory("cache"), range, max_parallelism, options).expect("a fresh directory");
    backend.set_clock(clock);
    backend
}

/// The suite with a cache of a few dozen entries: entries leave it, dirty or not, all the time.
mod small_cache {
    use super::*;

    fn disk_backend(range: KeyGroupRange, max_parallelism: usize, clock: Arc<dyn Clock>) -> DiskStateBackend<u64> {
        disk_backend_caching(32 * 1024, range, max_parallelism, clock)
    }

    crate::state::conformance::state_backend_conformance!(disk_backend);
}

/// The suite with no cache: every access reads and writes fjall.
mod no_cache {
    use super::*;

    fn disk_backend(range: KeyGroupRange, max_parallelism: usize, clock: Arc<dyn Clock>) -> DiskStateBackend<u64> {
        disk_backend_caching(0, range, max_parallelism, clock)
    }

    crate::state::conformance::state_backend_conformance!(disk_backend);
}

#[test]
fn heap_snapshots_restore_into_the_disk_backend_and_back() {
    conformance::snapshots_move_between_backends(&heap_backend, &disk_backend);
}

#[test]
fn disk_snapshots_restore_into_the_heap_backend_and_back() {
    conformance::snapshots_move_between_backends(&disk_backend, &heap_backend);
}

const MAX_PARALLELISM: usize = 16;

fn whole_range() -> KeyGroupRange {
    KeyGroupRange::for_subtask(0, 1, MAX_PARALLELISM)
}

#[test]
fn open_replaces_a_store_left_behind_and_drop_deletes_the_directory() {
    // A store left behind by a run whose process died: fjall's files, not cleaned up.
    let directory = test_directory("reopen");
    {
        let keyspace = fjall::Config::new(&directory).open().unwrap();
        let partition = keyspace.open_partition("state", fjall::PartitionCreateOptions::default()).unwrap();
        partition.insert([0u8; 16], [0u8; 16]).unwrap();
    }
    assert!(directory.join("version").is_file());
    let mut backend = DiskStateBackend::<u64>::open(&directory, whole_range(), MAX_PARALLELISM).unwrap();
    assert!(whole_range().as_range().all(|group| backend.keys(group).is_empty()), "state comes back through restores only");
    let count: ValueState<u64> = backend.register_value(&StateDescriptor::new("count")).unwrap();
    let mut timers = TimerService::new(whole_range(), MAX_PARALLELISM);
    count.update(&mut KeyContext::new(&mut backend, &mut timers, &1), 5);
    assert_eq!(backend.directory(), directory);
    drop(backend);
    assert!(!directory.exists(), "the working directory goes with the backend");
}

#[test]
fn a_directory_holding_other_files_is_refused_and_left_alone() {
    let directory = test_directory("foreign");
    std::fs::create_dir_all(&directory).unwrap();
    std::fs::write(directory.join("notes.txt"), "keep me").unwrap();
    let result = DiskStateBackend::<u64>::open(&directory, whole_range(), MAX_PARALLELISM);
    assert!(matches!(&result, Err(StateError::Storage { operation: "clear the working directory", .. })), "{:?}", result.err());
    assert_eq!(std::fs::read_to_string(directory.join("notes.txt")).unwrap(), "keep me");
    std::fs::remove_dir_all(&directory).unwrap();
}

/// Writes `value` for keys `0..keys` in a backend of the whole range.
fn write_values(backend: &mut DiskStateBackend<u64>, state: ValueState<u64>, keys: u64, value: u64) {
    let mut timers = TimerService::new(whole_range(), MAX_PARALLELISM);
    for key in 0..keys {
        state.update(&mut KeyContext::new(backend, &mut timers, &key), value + key);
    }
}

/// The value of every key `0..keys` in the snapshots of every key group.
fn values_in(snapshots: Vec<crate::state::KeyGroupSnapshot<u64>>, keys: u64) -> Vec<Option<u64>> {
    let mut restored = HeapStateBackend::<u64>::new(whole_range(), MAX_PARALLELISM);
    for snapshot in snapshots {
        restored.restore_key_group(snapshot).unwrap();
    }
    let state: ValueState<u64> = restored.register_value(&StateDescriptor::new("value")).unwrap();
    let mut timers = TimerService::new(whole_range(), MAX_PARALLELISM);
    (0..keys).map(|key| state.get(&mut KeyContext::new(&mut restored, &mut timers, &key))).collect()
}

#[test]
fn a_view_encodes_the_state_as_it_was_when_taken() {
    let mut backend = DiskStateBackend::<u64>::open(test_directory("view"), whole_range(), MAX_PARALLELISM).unwrap();
    let state: ValueState<u64> = backend.register_value(&StateDescriptor::new("value")).unwrap();
    write_values(&mut backend, state, 100, 1_000);
    backend.checkpoint_taken();
    let mut timers = TimerService::new(whole_range(), MAX_PARALLELISM);
    state.update(&mut KeyContext::new(&mut backend, &mut timers, &7), 1);

    let view = backend.snapshot_view();
    backend.checkpoint_taken();
    assert_eq!(view.changed_key_groups(), [assign_key_group(&7u64, MAX_PARALLELISM)]);
    // Writes after the view: overwrites, removals, new keys, and a flush of the memtable to disk.
    write_values(&mut backend, state, 20_000, 5_000);
    backend.store.flush();
    state.clear(&mut KeyContext::new(&mut backend, &mut timers, &8));

    let expected: Vec<Option<u64>> = (0..100).map(|key| Some(if key == 7 { 1 } else { 1_000 + key })).collect();
    let snapshots = whole_range().as_range().map(|group| view.snapshot_key_group(group).unwrap()).collect();
    assert_eq!(values_in(snapshots, 100), expected);
    assert!(matches!(view.snapshot_key_group(MAX_PARALLELISM), Err(StateError::KeyGroupNotOwned { .. })));
    let now = whole_range().as_range().map(|group| backend.snapshot_key_group(group).unwrap()).collect();
    assert_eq!(values_in(now, 3), [Some(5_000), Some(5_001), Some(5_002)], "the backend itself has moved on");
}

#[test]
fn a_view_encodes_on_another_thread_while_the_task_writes_and_outlives_the_backend() {
    let directory = test_directory("view-thread");
    let mut backend = DiskStateBackend::<u64>::open(&directory, whole_range(), MAX_PARALLELISM).unwrap();
    let state: ValueState<u64> = backend.register_value(&StateDescriptor::new("value")).unwrap();
    write_values(&mut backend, state, 2_000, 0);
    let view = backend.snapshot_view();
    let encoder = std::thread::spawn(move || {
        let snapshots: Vec<_> = view.key_groups().as_range().map(|group| view.snapshot_key_group(group).unwrap()).collect();
        (view, snapshots)
    });
    write_values(&mut backend, state, 2_000, 1_000_000);
    drop(backend);
    let (view, snapshots) = encoder.join().expect("the encoding thread");
    assert!(directory.exists(), "the view keeps the store open after the backend is gone");
    assert_eq!(values_in(snapshots, 2_000), (0..2_000).map(Some).collect::<Vec<_>>());
    drop(view);
    assert!(!directory.exists());
}

#[test]
fn a_restore_before_registration_survives_in_views() {
    let mut source = HeapStateBackend::<u64>::new(whole_range(), MAX_PARALLELISM);
    let state: ValueState<u64> = source.register_value(&StateDescriptor::new("value")).unwrap();
    let mut timers = TimerService::new(whole_range(), MAX_PARALLELISM);
    state.update(&mut KeyContext::new(&mut source, &mut timers, &3), 33);
    let mut backend = DiskStateBackend::<u64>::open(test_directory("pending-view"), whole_range(), MAX_PARALLELISM).unwrap();
    for group in whole_range().as_range() {
        backend.restore_key_group(source.snapshot_key_group(group).unwrap()).unwrap();
    }
    let view = backend.snapshot_view();
    let snapshots = whole_range().as_range().map(|group| view.snapshot_key_group(group).unwrap()).collect();
    assert_eq!(values_in(snapshots, 4), [None, None, None, Some(33)]);
}

#[test]
fn state_larger_than_the_cache_reads_back_lists_and_snapshots_whole() {
    // A cache of about 200 entries (64 KiB, half of it for entries) for 5,000 keys.
    let options = DiskStateOptions { cache_bytes: 64 * 1024 };
    let mut backend = DiskStateBackend::<u64>::open_with(test_directory("larger"), whole_range(), MAX_PARALLELISM, options).unwrap();
    let state: ValueState<u64> = backend.register_value(&StateDescriptor::new("value")).unwrap();
    let keys = 5_000;
    write_values(&mut backend, state, keys, 0);
    let mut timers = TimerService::new(whole_range(), MAX_PARALLELISM);
    for key in (0..keys).rev() {
        state.modify(&mut KeyContext::new(&mut backend, &mut timers, &key), |value| *value.as_mut().unwrap() += 1);
    }
    for key in (0..keys).step_by(2) {
        state.clear(&mut KeyContext::new(&mut backend, &mut timers, &key));
    }
    let expected: Vec<Option<u64>> = (0..keys).map(|key| (key % 2 == 1).then_some(key + 1)).collect();
    let read: Vec<Option<u64>> = (0..keys).map(|key| state.get(&mut KeyContext::new(&mut backend, &mut timers, &key))).collect();
    assert_eq!(read, expected);
    let mut listed: Vec<u64> = whole_range().as_range().flat_map(|group| backend.keys(group)).collect();
    listed.sort_unstable();
    assert_eq!(listed, (1..keys).step_by(2).collect::<Vec<u64>>());
    let snapshots = whole_range().as_range().map(|group| backend.snapshot_key_group(group).unwrap()).collect();
    assert_eq!(values_in(snapshots, keys), expected);
}

#[test]
fn the_backend_and_its_views_move_between_threads() {
    fn is_send<T: Send + 'static>() {}
    fn is_send_sync<T: Send + Sync + 'static>() {}
    is_send::<DiskStateBackend<String>>();
    is_send_sync::<super::DiskSnapshotView<String>>();
}
