//! The conformance suite every [`StateBackend`] runs: the semantics of each state kind, key
//! scoping, TTL, registration checks, and key-group snapshots moved between backends.
//!
//! Each check is a generic function over a backend factory; an implementation runs them all with
//! one line, `state_backend_conformance!(factory)`, which makes one `#[test]` per check (see
//! `heap::tests`). A new backend passes this suite before anything uses it, so operators can
//! rely on these semantics whichever backend a job chose. The suite also checks change tracking
//! for incremental checkpoints ([`ChangeTracking`]), and [`snapshots_move_between_backends`] takes
//! two factories, so snapshots of each backend are checked to restore into every other.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::{
    AggregatingState, ChangeTracking, Clock, KeyContext, KeyGroupSnapshot, ListState, ManualClock, MapState, ReducingState, StateBackend,
    StateDescriptor, StateError, StateHandle, StateKind, StateTtlConfig, TimerService, TtlUpdateType, ValueState,
};
use crate::base::AggregateFunction;
use crate::key_group::{assign_key_group, KeyGroupRange};

/// Makes an empty backend for a key group range, a max parallelism and a clock.
pub(crate) type MakeBackend<'a, B> = &'a dyn Fn(KeyGroupRange, usize, Arc<dyn Clock>) -> B;

/// Runs every check of the suite as its own `#[test]`, for the backend `$make` builds.
macro_rules! state_backend_conformance {
    ($make:path) => {
        $crate::state::conformance::state_backend_conformance!(@tests $make;
            value_state_reads_what_was_written_until_cleared,
            value_modify_creates_changes_and_removes_in_place,
            list_state_keeps_order_and_an_empty_list_is_no_list,
            map_state_puts_gets_removes_and_iterates,
            reducing_state_folds_added_values,
            aggregating_state_feeds_the_aggregate_function,
            two_keys_never_see_each_others_state,
            clear_key_removes_every_state_of_that_key_only,
            keys_lists_exactly_the_keys_with_state_in_a_group,
            registration_is_idempotent_and_checks_kind_types_and_ttl,
            a_key_group_moves_to_a_backend_with_another_range,
            a_restore_before_registration_is_applied_by_it,
            restore_replaces_the_group_and_rejects_foreign_snapshots,
            ttl_on_create_and_write_expires_values_even_if_read,
            ttl_on_read_and_write_keeps_read_values_alive,
            ttl_applies_to_each_map_entry,
            ttl_applies_to_lists_reducing_and_aggregating_values_whole,
            cleanup_expired_sweeps_one_key_group,
            incremental_cleanup_on_access_removes_expired_keys_never_read_again,
            incremental_cleanup_on_every_record_needs_no_access,
            snapshots_keep_ttl_stamps,
            snapshots_restore_exactly_what_was_written,
            a_deferred_snapshot_encodes_the_state_as_it_was_when_taken,
            a_new_backend_reports_every_key_group_changed_until_a_checkpoint,
            writes_clears_and_restores_mark_their_key_group_and_reads_do_not,
            reads_that_restamp_a_value_mark_its_key_group,
            an_unchanged_key_group_restores_from_the_last_checkpoint_to_its_state_now,
        );
    };
    (@tests $make:path; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::state::conformance::$check(&$make);
            }
        )*
    };
}
pub(crate) use state_backend_conformance;

const MAX_PARALLELISM: usize = 128;
const TTL: Duration = Duration::from_millis(100);

/// A backend with its timers and the manual clock it reads.
struct Harness<B> {
    backend: B,
    timers: TimerService<u64>,
    clock: ManualClock,
}

impl<B: StateBackend<u64>> Harness<B> {
    fn new(make: MakeBackend<'_, B>, range: KeyGroupRange) -> Harness<B> {
        let clock = ManualClock::new(0);
        Harness { backend: make(range, MAX_PARALLELISM, Arc::new(clock.clone())), timers: TimerService::new(range, MAX_PARALLELISM), clock }
    }

    fn whole(make: MakeBackend<'_, B>) -> Harness<B> {
        Harness::new(make, KeyGroupRange::for_subtask(0, 1, MAX_PARALLELISM))
    }

    fn ctx<'a>(&'a mut self, key: &'a u64) -> KeyContext<'a, u64, B> {
        KeyContext::new(&mut self.backend, &mut self.timers, key)
    }

    fn at(&mut self, now_ms: i64) -> &mut Self {
        self.clock.set_ms(now_ms);
        self
    }
}

/// The states every check registers, one of each kind.
struct States {
    value: ValueState<u64>,
    list: ListState<String>,
    map: MapState<u32, String>,
    sum: ReducingState<i64>,
    mean: AggregatingState<i64, i64>,
}

/// Integer mean: the accumulator is (sum, count).
struct Mean;

impl AggregateFunction<i64, (i64, i64), i64> for Mean {
    fn create_accumulator(&self) -> (i64, i64) {
        (0, 0)
    }

    fn add(&self, accumulator: &mut (i64, i64), value: i64) {
        accumulator.0 += value;
        accumulator.1 += 1;
    }

    fn get_result(&self, accumulator: &(i64, i64)) -> i64 {
        accumulator.0 / accumulator.1
    }
}

fn descriptor(name: &str, ttl: Option<TtlUpdateType>) -> StateDescriptor {
    let descriptor = StateDescriptor::new(name);
    match ttl {
        Some(update_type) => descriptor.with_ttl(StateTtlConfig::new(TTL).with_update_type(update_type)),
        None => descriptor,
    }
}

fn register_states<B: StateBackend<u64>>(backend: &mut B, ttl: Option<TtlUpdateType>) -> States {
    States {
        value: backend.register_value(&descriptor("value", ttl)).expect("fresh name"),
        list: backend.register_list(&descriptor("list", ttl)).expect("fresh name"),
        map: backend.register_map(&descriptor("map", ttl)).expect("fresh name"),
        sum: backend.register_reducing(&descriptor("sum", ttl), |a: i64, b: i64| a + b).expect("fresh name"),
        mean: backend.register_aggregating(&descriptor("mean", ttl), Mean).expect("fresh name"),
    }
}

/// Writes state of every kind for `key`, derived from the key so it can be checked later.
fn write_all<B: StateBackend<u64>>(states: &States, ctx: &mut KeyContext<'_, u64, B>, key: u64) {
    states.value.update(ctx, key * 10);
    states.list.add_all(ctx, [format!("{key}a"), format!("{key}b")]);
    states.map.put(ctx, 1, format!("{key}-one"));
    states.map.put(ctx, 2, format!("{key}-two"));
    states.sum.add(ctx, key as i64);
    states.sum.add(ctx, 1);
    states.mean.add(ctx, key as i64);
    states.mean.add(ctx, key as i64 + 2);
}

/// Checks what `write_all` wrote for `key` is there, or (with `present` false) that nothing is.
fn check_all<B: StateBackend<u64>>(states: &States, ctx: &mut KeyContext<'_, u64, B>, key: u64, present: bool) {
    if present {
        assert_eq!(states.value.get(ctx), Some(key * 10), "value of {key}");
        assert_eq!(states.list.get(ctx), [format!("{key}a"), format!("{key}b")], "list of {key}");
        let mut entries = states.map.entries(ctx);
        entries.sort();
        assert_eq!(entries, [(1, format!("{key}-one")), (2, format!("{key}-two"))], "map of {key}");
        assert_eq!(states.sum.get(ctx), Some(key as i64 + 1), "sum of {key}");
        assert_eq!(states.mean.get(ctx), Some(key as i64 + 1), "mean of {key}");
    } else {
        assert_eq!(states.value.get(ctx), None, "value of {key}");
        assert!(states.list.get(ctx).is_empty(), "list of {key}");
        assert!(states.map.is_empty(ctx), "map of {key}");
        assert_eq!(states.sum.get(ctx), None, "sum of {key}");
        assert_eq!(states.mean.get(ctx), None, "mean of {key}");
    }
}

/// The first `n` keys in `key_group`.
fn keys_in_group(key_group: usize, n: usize) -> Vec<u64> {
    (0..).filter(|key| assign_key_group(key, MAX_PARALLELISM) == key_group).take(n).collect()
}

fn sorted(mut keys: Vec<u64>) -> Vec<u64> {
    keys.sort_unstable();
    keys
}

pub(crate) fn value_state_reads_what_was_written_until_cleared<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, None);
    let mut ctx = h.ctx(&7);
    assert_eq!(states.value.get(&mut ctx), None);
    states.value.update(&mut ctx, 1);
    states.value.update(&mut ctx, 2);
    assert_eq!(states.value.get(&mut ctx), Some(2));
    assert!(states.value.read(&mut ctx, |value| value == Some(&2)));
    states.value.clear(&mut ctx);
    assert_eq!(states.value.get(&mut ctx), None);
    states.value.update(&mut ctx, 3);
    assert_eq!(states.value.take(&mut ctx), Some(3));
    assert_eq!(states.value.get(&mut ctx), None, "take leaves no value");
    assert_eq!(states.value.take(&mut ctx), None);
}

pub(crate) fn value_modify_creates_changes_and_removes_in_place<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, None);
    let mut ctx = h.ctx(&7);
    for expected in 1..=3 {
        let count = states.value.modify(&mut ctx, |count| {
            *count.get_or_insert(0) += 1;
            *count
        });
        assert_eq!(count, Some(expected));
    }
    states.value.modify(&mut ctx, |count| assert_eq!(count.take(), Some(3)));
    assert_eq!(states.value.get(&mut ctx), None);
    let group = ctx.key_group();
    assert!(h.backend.keys(group).is_empty(), "leaving None removes the key");
}

pub(crate) fn list_state_keeps_order_and_an_empty_list_is_no_list<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, None);
    let mut ctx = h.ctx(&7);
    assert!(states.list.get(&mut ctx).is_empty());
    states.list.add(&mut ctx, "a".into());
    states.list.add_all(&mut ctx, ["b".to_string(), "c".to_string()]);
    assert_eq!(states.list.get(&mut ctx), ["a", "b", "c"]);
    assert_eq!(states.list.read(&mut ctx, <[String]>::len), 3);
    states.list.update(&mut ctx, vec!["z".into()]);
    assert_eq!(states.list.get(&mut ctx), ["z"]);
    states.list.update(&mut ctx, Vec::new());
    let group = ctx.key_group();
    assert!(h.backend.keys(group).is_empty(), "an emptied list leaves no key behind");
    let mut ctx = h.ctx(&7);
    states.list.add(&mut ctx, "again".into());
    states.list.clear(&mut ctx);
    assert!(states.list.get(&mut ctx).is_empty());
}

pub(crate) fn map_state_puts_gets_removes_and_iterates<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, None);
    let mut ctx = h.ctx(&7);
    assert!(states.map.is_empty(&mut ctx));
    states.map.put(&mut ctx, 1, "one".into());
    states.map.put(&mut ctx, 2, "two".into());
    states.map.put(&mut ctx, 1, "uno".into());
    assert_eq!(states.map.get(&mut ctx, &1).as_deref(), Some("uno"));
    assert!(states.map.contains(&mut ctx, &2));
    assert!(!states.map.contains(&mut ctx, &3));
    let mut entries = states.map.entries(&mut ctx);
    entries.sort();
    assert_eq!(entries, [(1, "uno".to_string()), (2, "two".to_string())]);
    states.map.remove(&mut ctx, &1);
    states.map.remove(&mut ctx, &9);
    assert_eq!(states.map.entries(&mut ctx), [(2, "two".to_string())]);
    states.map.remove(&mut ctx, &2);
    assert!(states.map.is_empty(&mut ctx));
    let group = ctx.key_group();
    assert!(h.backend.keys(group).is_empty(), "a map emptied entry by entry leaves no key behind");
    let mut ctx = h.ctx(&7);
    states.map.put(&mut ctx, 5, "five".into());
    states.map.clear(&mut ctx);
    assert!(states.map.is_empty(&mut ctx));
}

pub(crate) fn reducing_state_folds_added_values<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, None);
    let mut ctx = h.ctx(&7);
    assert_eq!(states.sum.get(&mut ctx), None);
    states.sum.add(&mut ctx, 5);
    assert_eq!(states.sum.get(&mut ctx), Some(5), "the first value is kept as it is");
    states.sum.add(&mut ctx, -2);
    states.sum.add(&mut ctx, 10);
    assert_eq!(states.sum.get(&mut ctx), Some(13));
    states.sum.clear(&mut ctx);
    states.sum.add(&mut ctx, 1);
    assert_eq!(states.sum.get(&mut ctx), Some(1), "clear starts the fold afresh");
}

pub(crate) fn aggregating_state_feeds_the_aggregate_function<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, None);
    let mut ctx = h.ctx(&7);
    assert_eq!(states.mean.get(&mut ctx), None);
    for value in [2, 4, 9] {
        states.mean.add(&mut ctx, value);
    }
    assert_eq!(states.mean.get(&mut ctx), Some(5));
    states.mean.clear(&mut ctx);
    assert_eq!(states.mean.get(&mut ctx), None);
}

pub(crate) fn two_keys_never_see_each_others_state<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, None);
    // Two keys of the same group and one of another: scoping is by key, not by group.
    let same_group = keys_in_group(3, 2);
    let other = keys_in_group(4, 1)[0];
    let (a, b) = (same_group[0], same_group[1]);
    write_all(&states, &mut h.ctx(&a), a);
    check_all(&states, &mut h.ctx(&b), b, false);
    check_all(&states, &mut h.ctx(&other), other, false);
    write_all(&states, &mut h.ctx(&b), b);
    write_all(&states, &mut h.ctx(&other), other);
    for key in [a, b, other] {
        check_all(&states, &mut h.ctx(&key), key, true);
    }
}

pub(crate) fn clear_key_removes_every_state_of_that_key_only<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, None);
    for key in 0..20 {
        write_all(&states, &mut h.ctx(&key), key);
    }
    h.ctx(&5).clear_all_state();
    for key in 0..20 {
        check_all(&states, &mut h.ctx(&key), key, key != 5);
    }
    assert!(!h.backend.keys(assign_key_group(&5u64, MAX_PARALLELISM)).contains(&5));
}

pub(crate) fn keys_lists_exactly_the_keys_with_state_in_a_group<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, None);
    let keys = keys_in_group(9, 6);
    // Each key has state in a different one of the states: the union is listed, once per key.
    for (i, &key) in keys.iter().enumerate() {
        let mut ctx = h.ctx(&key);
        match i % 5 {
            0 => states.value.update(&mut ctx, 1),
            1 => states.list.add(&mut ctx, "x".into()),
            2 => states.map.put(&mut ctx, 1, "x".into()),
            3 => states.sum.add(&mut ctx, 1),
            _ => states.mean.add(&mut ctx, 1),
        }
    }
    states.value.update(&mut h.ctx(&keys[1]), 2);
    assert_eq!(sorted(h.backend.keys(9)), keys);
    assert!(h.backend.keys(10).is_empty());
    states.value.clear(&mut h.ctx(&keys[0]));
    assert_eq!(sorted(h.backend.keys(9)), keys[1..]);
}

pub(crate) fn registration_is_idempotent_and_checks_kind_types_and_ttl<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, None);
    let again: ValueState<u64> = h.backend.register_value(&descriptor("value", None)).expect("same declaration");
    assert_eq!(again.id(), states.value.id());
    assert_eq!(ValueState::<u64>::KIND, StateKind::Value);

    let as_list = h.backend.register_list::<u64>(&descriptor("value", None));
    assert!(
        matches!(as_list, Err(StateError::IncompatibleState { registered: StateKind::Value, requested: StateKind::List, .. })),
        "{as_list:?}"
    );
    let other_type = h.backend.register_value::<String>(&descriptor("value", None));
    assert!(matches!(other_type, Err(StateError::IncompatibleState { .. })), "{other_type:?}");
    let other_ttl = h.backend.register_value::<u64>(&descriptor("value", Some(TtlUpdateType::OnCreateAndWrite)));
    assert!(matches!(other_ttl, Err(StateError::TtlMismatch { .. })), "{other_ttl:?}");
}

pub(crate) fn a_key_group_moves_to_a_backend_with_another_range<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut source = Harness::whole(make);
    let states = register_states(&mut source.backend, None);
    for key in 0..1_000 {
        write_all(&states, &mut source.ctx(&key), key);
    }
    // Rescale from 1 to 3 subtasks: subtask 1 takes over, among others, this group.
    let target_range = KeyGroupRange::for_subtask(1, 3, MAX_PARALLELISM);
    let group = target_range.start + 5;
    let snapshot = source.backend.snapshot_key_group(group).unwrap();
    assert_eq!(snapshot.key_group(), group);
    assert_eq!(snapshot.states().len(), 5, "{snapshot:?}");

    let mut target = Harness::new(make, target_range);
    let target_states = register_states(&mut target.backend, None);
    target.backend.restore_key_group(snapshot).expect("the target owns the group");

    let moved: Vec<u64> = (0..1_000).filter(|key| assign_key_group(key, MAX_PARALLELISM) == group).collect();
    assert!(!moved.is_empty());
    assert_eq!(sorted(target.backend.keys(group)), moved);
    for &key in &moved {
        check_all(&target_states, &mut target.ctx(&key), key, true);
    }
    for other in target_range.as_range().filter(|&g| g != group) {
        assert!(target.backend.keys(other).is_empty(), "group {other} was not restored, yet has keys");
    }
    // A snapshot is a copy: the source still has the group.
    check_all(&states, &mut source.ctx(&moved[0]), moved[0], true);
}

pub(crate) fn a_restore_before_registration_is_applied_by_it<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut source = Harness::whole(make);
    let states = register_states(&mut source.backend, None);
    let keys = keys_in_group(17, 4);
    for &key in &keys {
        write_all(&states, &mut source.ctx(&key), key);
    }
    let snapshot = source.backend.snapshot_key_group(17).unwrap();

    let mut target = Harness::whole(make);
    target.backend.restore_key_group(snapshot.clone()).expect("owned group");
    // Not registered yet, but still the group's state: a checkpoint now must keep it.
    assert_eq!(target.backend.snapshot_key_group(17).unwrap().states().len(), 5);
    let target_states = register_states(&mut target.backend, None);
    for &key in &keys {
        check_all(&target_states, &mut target.ctx(&key), key, true);
    }

    // A pending state registered as another kind is refused.
    let mut wrong = Harness::whole(make);
    wrong.backend.restore_key_group(snapshot).expect("owned group");
    let as_list = wrong.backend.register_list::<u64>(&descriptor("value", None));
    assert!(matches!(as_list, Err(StateError::IncompatibleSnapshot { key_group: 17, .. })), "{as_list:?}");
}

pub(crate) fn restore_replaces_the_group_and_rejects_foreign_snapshots<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut source = Harness::whole(make);
    let states = register_states(&mut source.backend, None);
    let keys = keys_in_group(20, 3);
    write_all(&states, &mut source.ctx(&keys[0]), keys[0]);
    let snapshot = source.backend.snapshot_key_group(20).unwrap();

    let mut target = Harness::whole(make);
    let target_states = register_states(&mut target.backend, None);
    write_all(&target_states, &mut target.ctx(&keys[1]), keys[1]);
    let untouched = keys_in_group(21, 1)[0];
    write_all(&target_states, &mut target.ctx(&untouched), untouched);
    target.backend.restore_key_group(snapshot.clone()).expect("owned group");
    check_all(&target_states, &mut target.ctx(&keys[0]), keys[0], true);
    check_all(&target_states, &mut target.ctx(&keys[1]), keys[1], false);
    check_all(&target_states, &mut target.ctx(&untouched), untouched, true);

    let mut elsewhere = Harness::new(make, KeyGroupRange::for_subtask(1, 2, MAX_PARALLELISM));
    let result = elsewhere.backend.restore_key_group(snapshot.clone());
    assert!(matches!(result, Err(StateError::KeyGroupNotOwned { key_group: 20, .. })), "{result:?}");

    let other_parallelism =
        make(KeyGroupRange::for_subtask(0, 1, 64), 64, Arc::new(ManualClock::new(0))).restore_key_group(snapshot.clone());
    assert!(matches!(other_parallelism, Err(StateError::MaxParallelismMismatch { snapshot: 128, subtask: 64 })), "{other_parallelism:?}");

    // "value" registered as a list: refused, and the group keeps what it had.
    let mut mismatched = Harness::whole(make);
    let list: ListState<u64> = mismatched.backend.register_list(&descriptor("value", None)).expect("fresh name");
    list.add(&mut mismatched.ctx(&keys[2]), 1);
    let result = mismatched.backend.restore_key_group(snapshot);
    assert!(matches!(result, Err(StateError::IncompatibleSnapshot { .. })), "{result:?}");
    assert_eq!(list.get(&mut mismatched.ctx(&keys[2])), [1]);
}

pub(crate) fn ttl_on_create_and_write_expires_values_even_if_read<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, Some(TtlUpdateType::OnCreateAndWrite));
    states.value.update(&mut h.at(0).ctx(&1), 10);
    assert_eq!(states.value.get(&mut h.at(50).ctx(&1)), Some(10));
    assert_eq!(states.value.get(&mut h.at(99).ctx(&1)), Some(10), "reads do not extend its life");
    assert_eq!(states.value.get(&mut h.at(100).ctx(&1)), None, "expired exactly TTL after the write");
    assert!(h.backend.keys(assign_key_group(&1u64, MAX_PARALLELISM)).is_empty(), "an expired value found by a read is removed");

    states.value.update(&mut h.at(200).ctx(&1), 20);
    states.value.update(&mut h.at(280).ctx(&1), 21);
    assert_eq!(states.value.get(&mut h.at(379).ctx(&1)), Some(21), "a write restarts the TTL");
    assert_eq!(states.value.get(&mut h.at(380).ctx(&1)), None);

    // Modifying an expired value starts from nothing.
    states.value.update(&mut h.at(400).ctx(&1), 5);
    let seen = states.value.modify(&mut h.at(500).ctx(&1), |value| value.replace(6));
    assert_eq!(seen, None);
    assert_eq!(states.value.get(&mut h.at(599).ctx(&1)), Some(6));
}

pub(crate) fn ttl_on_read_and_write_keeps_read_values_alive<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, Some(TtlUpdateType::OnReadAndWrite));
    states.value.update(&mut h.at(0).ctx(&1), 10);
    assert_eq!(states.value.get(&mut h.at(80).ctx(&1)), Some(10));
    assert_eq!(states.value.get(&mut h.at(170).ctx(&1)), Some(10), "the read at 80 extended its life");
    assert_eq!(states.value.get(&mut h.at(270).ctx(&1)), None, "expired TTL after the last read");
    states.map.put(&mut h.at(300).ctx(&1), 1, "a".into());
    assert!(states.map.contains(&mut h.at(390).ctx(&1), &1));
    assert_eq!(states.map.entries(&mut h.at(480).ctx(&1)).len(), 1, "iteration reads, and so refreshes");
    assert!(states.map.contains(&mut h.at(570).ctx(&1), &1));
    assert!(states.map.is_empty(&mut h.at(670).ctx(&1)));
}

pub(crate) fn ttl_applies_to_each_map_entry<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, Some(TtlUpdateType::OnCreateAndWrite));
    states.map.put(&mut h.at(0).ctx(&1), 1, "early".into());
    states.map.put(&mut h.at(60).ctx(&1), 2, "late".into());
    let mut ctx = h.at(100).ctx(&1);
    assert_eq!(states.map.get(&mut ctx, &1), None);
    assert_eq!(states.map.get(&mut ctx, &2).as_deref(), Some("late"));
    assert_eq!(states.map.entries(&mut ctx), [(2, "late".to_string())]);
    let mut ctx = h.at(160).ctx(&1);
    assert!(states.map.is_empty(&mut ctx));
    assert!(h.backend.keys(assign_key_group(&1u64, MAX_PARALLELISM)).is_empty(), "a map whose entries all expired leaves no key");
}

pub(crate) fn ttl_applies_to_lists_reducing_and_aggregating_values_whole<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, Some(TtlUpdateType::OnCreateAndWrite));
    let mut ctx = h.at(0).ctx(&1);
    states.list.add(&mut ctx, "a".into());
    states.sum.add(&mut ctx, 1);
    states.mean.add(&mut ctx, 4);
    let mut ctx = h.at(50).ctx(&1);
    states.list.add(&mut ctx, "b".into());
    states.sum.add(&mut ctx, 2);
    states.mean.add(&mut ctx, 6);
    let mut ctx = h.at(149).ctx(&1);
    assert_eq!(states.list.get(&mut ctx), ["a", "b"], "an add writes the whole list");
    assert_eq!(states.sum.get(&mut ctx), Some(3));
    assert_eq!(states.mean.get(&mut ctx), Some(5));
    let mut ctx = h.at(150).ctx(&1);
    assert!(states.list.get(&mut ctx).is_empty());
    assert_eq!(states.sum.get(&mut ctx), None);
    assert_eq!(states.mean.get(&mut ctx), None);
    // Adding after expiry folds from nothing, never from the expired value.
    let mut ctx = h.at(300).ctx(&1);
    states.sum.add(&mut ctx, 10);
    states.mean.add(&mut ctx, 10);
    states.list.add(&mut ctx, "c".into());
    states.sum.add(&mut h.at(500).ctx(&1), 7);
    let mut ctx = h.at(500).ctx(&1);
    assert_eq!(states.sum.get(&mut ctx), Some(7));
    assert_eq!(states.mean.get(&mut ctx), None);
    assert!(states.list.get(&mut ctx).is_empty());
}

pub(crate) fn cleanup_expired_sweeps_one_key_group<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, Some(TtlUpdateType::OnCreateAndWrite));
    let keys = keys_in_group(30, 6);
    let other = keys_in_group(31, 1)[0];
    for (i, &key) in keys.iter().enumerate() {
        let mut ctx = h.at(if i < 4 { 0 } else { 50 }).ctx(&key);
        states.value.update(&mut ctx, 1);
        states.map.put(&mut ctx, 1, "a".into());
        states.map.put(&mut ctx, 2, "b".into());
    }
    states.value.update(&mut h.at(0).ctx(&other), 1);
    // Four keys stamped at 0: four values and eight map entries expired at 120.
    assert_eq!(h.backend.cleanup_expired(30, 120), 12);
    assert_eq!(sorted(h.backend.keys(30)), keys[4..]);
    assert_eq!(h.backend.keys(31), [other], "another group is left alone");
    assert_eq!(h.backend.cleanup_expired(30, 120), 0);
    assert_eq!(h.backend.cleanup_expired(30, 150), 6);
    assert!(h.backend.keys(30).is_empty());
}

/// Entries (values, or keys with a map) of every state in every owned group, expired or not.
fn stored_keys<B: StateBackend<u64>>(backend: &B) -> usize {
    backend.key_groups().as_range().map(|group| backend.keys(group).len()).sum()
}

pub(crate) fn incremental_cleanup_on_access_removes_expired_keys_never_read_again<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    // Flink's heap backend: each access of a state with TTL visits a few of its entries and drops
    // expired ones, so keys that are never read again still leave.
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, Some(TtlUpdateType::OnCreateAndWrite));
    for key in 0..1_000u64 {
        let mut ctx = h.at(0).ctx(&key);
        states.value.update(&mut ctx, key);
        states.map.put(&mut ctx, 1, "a".into());
    }
    assert_eq!(stored_keys(&h.backend), 1_000);
    // Past the TTL, one other key is written again and again: the cold keys are swept.
    let hot = 1_000_000u64;
    for round in 0..2_000i64 {
        let mut ctx = h.at(100 + round).ctx(&hot);
        states.value.update(&mut ctx, 1);
        states.map.put(&mut ctx, 1, "hot".into());
    }
    assert_eq!(stored_keys(&h.backend), 1, "only the key still written is left");
    assert_eq!(states.value.get(&mut h.ctx(&hot)), Some(1), "a live value is never swept");
    assert_eq!(states.map.get(&mut h.ctx(&hot), &1).as_deref(), Some("hot"));
}

pub(crate) fn incremental_cleanup_on_every_record_needs_no_access<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let ttl = StateTtlConfig::new(TTL).with_incremental_cleanup(5, true);
    let swept: ValueState<u64> = h.backend.register_value(&StateDescriptor::new("swept").with_ttl(ttl)).expect("fresh name");
    let kept: ValueState<u64> =
        h.backend.register_value(&StateDescriptor::new("kept").with_ttl(StateTtlConfig::new(TTL))).expect("fresh name");
    for key in 0..500u64 {
        let mut ctx = h.at(0).ctx(&key);
        swept.update(&mut ctx, key);
        kept.update(&mut ctx, key);
    }
    h.at(50);
    for _ in 0..1_000 {
        h.backend.cleanup_after_record();
    }
    assert_eq!(stored_keys(&h.backend), 500, "nothing expired yet");
    h.at(100);
    let removed: usize = (0..1_000).map(|_| h.backend.cleanup_after_record()).sum();
    assert_eq!(removed, 500, "each expired value of the state that cleans on every record, once");
    assert_eq!(swept.get(&mut h.ctx(&7)), None);
    // The other state cleans only on access: its values are still stored (though never returned).
    assert_eq!(stored_keys(&h.backend), 500);
}

pub(crate) fn snapshots_keep_ttl_stamps<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut source = Harness::whole(make);
    let states = register_states(&mut source.backend, Some(TtlUpdateType::OnCreateAndWrite));
    let group = assign_key_group(&1u64, MAX_PARALLELISM);
    states.value.update(&mut source.at(0).ctx(&1), 10);
    let snapshot = source.backend.snapshot_key_group(group).unwrap();

    let mut target = Harness::whole(make);
    let target_states = register_states(&mut target.backend, Some(TtlUpdateType::OnCreateAndWrite));
    target.at(50).backend.restore_key_group(snapshot).expect("owned group");
    assert_eq!(target_states.value.get(&mut target.at(99).ctx(&1)), Some(10));
    assert_eq!(target_states.value.get(&mut target.at(100).ctx(&1)), None, "a restore does not extend a value's life");

    // State without TTL restored into state with TTL: its life starts at the restore.
    let mut plain = Harness::whole(make);
    let plain_states = register_states(&mut plain.backend, None);
    plain_states.value.update(&mut plain.ctx(&1), 7);
    let snapshot = plain.backend.snapshot_key_group(group).unwrap();
    let mut target = Harness::whole(make);
    let target_states = register_states(&mut target.backend, Some(TtlUpdateType::OnCreateAndWrite));
    target.at(1_000).backend.restore_key_group(snapshot).expect("owned group");
    assert_eq!(target_states.value.get(&mut target.at(1_099).ctx(&1)), Some(7));
    assert_eq!(target_states.value.get(&mut target.at(1_100).ctx(&1)), None);
}

#[derive(Debug, Clone)]
enum StateOp {
    Put(u64, u64),
    Clear(u64),
    MapPut(u64, u32),
    MapRemove(u64, u32),
}

fn state_op() -> impl Strategy<Value = StateOp> {
    prop_oneof![
        3 => (0..200u64, any::<u64>()).prop_map(|(k, v)| StateOp::Put(k, v)),
        1 => (0..200u64).prop_map(StateOp::Clear),
        3 => (0..200u64, 0..4u32).prop_map(|(k, uk)| StateOp::MapPut(k, uk)),
        1 => (0..200u64, 0..4u32).prop_map(|(k, uk)| StateOp::MapRemove(k, uk)),
    ]
}

/// Cases of a property test for backend `B`: a quarter for the disk backend, each of whose
/// cases opens stores whose fjall threads take up to 250 ms to stop (the suite's time on CI).
fn property_cases<B>(cases: u32) -> u32 {
    if std::any::type_name::<B>().contains("DiskStateBackend") {
        (cases / 4).max(4)
    } else {
        cases
    }
}

/// Property: after any sequence of writes, moving every key group of a one-subtask backend into
/// two backends of a two-subtask split gives every key exactly the state the model says.
pub(crate) fn snapshots_restore_exactly_what_was_written<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    use std::collections::{BTreeMap, HashMap};

    let mut runner = TestRunner::new(Config { cases: property_cases::<B>(48), failure_persistence: None, ..Config::default() });
    let outcome = runner.run(&proptest::collection::vec(state_op(), 0..400), |ops| {
        let mut source = Harness::whole(make);
        let states = register_states(&mut source.backend, None);
        let mut values: HashMap<u64, u64> = HashMap::new();
        let mut maps: HashMap<u64, BTreeMap<u32, String>> = HashMap::new();
        for op in ops {
            match op {
                StateOp::Put(key, value) => {
                    states.value.update(&mut source.ctx(&key), value);
                    values.insert(key, value);
                }
                StateOp::Clear(key) => {
                    source.ctx(&key).clear_all_state();
                    values.remove(&key);
                    maps.remove(&key);
                }
                StateOp::MapPut(key, user_key) => {
                    let value = format!("{key}/{user_key}");
                    states.map.put(&mut source.ctx(&key), user_key, value.clone());
                    maps.entry(key).or_default().insert(user_key, value);
                }
                StateOp::MapRemove(key, user_key) => {
                    states.map.remove(&mut source.ctx(&key), &user_key);
                    if let Some(map) = maps.get_mut(&key) {
                        map.remove(&user_key);
                        if map.is_empty() {
                            maps.remove(&key);
                        }
                    }
                }
            }
        }
        for subtask in 0..2 {
            let range = KeyGroupRange::for_subtask(subtask, 2, MAX_PARALLELISM);
            let mut target = Harness::new(make, range);
            let target_states = register_states(&mut target.backend, None);
            for group in range.as_range() {
                target.backend.restore_key_group(source.backend.snapshot_key_group(group).unwrap()).expect("owned group");
            }
            let no_entries = BTreeMap::new();
            for key in (0..200u64).filter(|key| range.contains(assign_key_group(key, MAX_PARALLELISM))) {
                let mut ctx = target.ctx(&key);
                prop_assert_eq!(target_states.value.get(&mut ctx), values.get(&key).copied(), "value of key {}", key);
                let entries: BTreeMap<u32, String> = target_states.map.entries(&mut ctx).into_iter().collect();
                prop_assert_eq!(&entries, maps.get(&key).unwrap_or(&no_entries), "map of key {}", key);
            }
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// A checkpoint takes a key group at its barrier and encodes it later while the task goes on
/// writing: what it encodes is the state at the barrier, for every kind, whatever came after
/// (writes, clears, new keys, a whole group cleared by a restore).
pub(crate) fn a_deferred_snapshot_encodes_the_state_as_it_was_when_taken<B: StateBackend<u64>>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, None);
    let (group, other_group) = (3, 4);
    let keys = keys_in_group(group, 6);
    for &key in &keys[..4] {
        write_all(&states, &mut h.ctx(&key), key);
    }
    let taken = h.backend.snapshot_key_group_deferred(group).expect("owned group");
    let empty_taken = h.backend.snapshot_key_group_deferred(other_group).expect("owned group");
    // After the barrier: change one key, clear another, add two, and fill the other group.
    states.value.update(&mut h.ctx(&keys[0]), 999);
    states.map.put(&mut h.ctx(&keys[0]), 3, "late".to_string());
    h.ctx(&keys[1]).clear_all_state();
    for &key in &keys[4..] {
        write_all(&states, &mut h.ctx(&key), key);
    }
    for key in keys_in_group(other_group, 3) {
        write_all(&states, &mut h.ctx(&key), key);
    }
    let snapshot = taken().expect("encodes");
    let empty = empty_taken().expect("encodes");

    let mut restored = Harness::whole(make);
    let restored_states = register_states(&mut restored.backend, None);
    restored.backend.restore_key_group(snapshot).expect("owned group");
    restored.backend.restore_key_group(empty).expect("owned group");
    for (index, &key) in keys.iter().enumerate() {
        check_all(&restored_states, &mut restored.ctx(&key), key, index < 4);
    }
    for key in keys_in_group(other_group, 3) {
        check_all(&restored_states, &mut restored.ctx(&key), key, false);
    }
    // The backend itself kept every write made after the barrier.
    assert_eq!(states.value.get(&mut h.ctx(&keys[0])), Some(999));
    check_all(&states, &mut h.ctx(&keys[1]), keys[1], false);
    check_all(&states, &mut h.ctx(&keys[5]), keys[5], true);
}

pub(crate) fn a_new_backend_reports_every_key_group_changed_until_a_checkpoint<B: StateBackend<u64> + ChangeTracking>(
    make: MakeBackend<'_, B>,
) {
    let range = KeyGroupRange::for_subtask(1, 4, MAX_PARALLELISM);
    let mut h = Harness::new(make, range);
    assert_eq!(h.backend.changed_key_groups(), range.as_range().collect::<Vec<_>>(), "no previous checkpoint to refer to");
    h.backend.checkpoint_taken();
    assert!(h.backend.changed_key_groups().is_empty());
    register_states(&mut h.backend, None);
    assert!(h.backend.changed_key_groups().is_empty(), "registering a state changes no key group");
}

pub(crate) fn writes_clears_and_restores_mark_their_key_group_and_reads_do_not<B: StateBackend<u64> + ChangeTracking>(
    make: MakeBackend<'_, B>,
) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, Some(TtlUpdateType::OnCreateAndWrite));
    let groups = [3, 9, 17, 40, 41, 100, 127];
    let keys: Vec<u64> = groups.iter().map(|&group| keys_in_group(group, 1)[0]).collect();
    h.backend.checkpoint_taken();
    states.value.update(&mut h.ctx(&keys[0]), 1);
    states.list.add(&mut h.ctx(&keys[1]), "a".into());
    states.map.put(&mut h.ctx(&keys[2]), 1, "a".into());
    states.sum.add(&mut h.ctx(&keys[3]), 1);
    states.mean.add(&mut h.ctx(&keys[4]), 1);
    states.value.modify(&mut h.ctx(&keys[5]), |value| *value = Some(5));
    assert_eq!(h.backend.changed_key_groups(), groups[..6]);

    h.backend.checkpoint_taken();
    for &key in &keys {
        let mut ctx = h.ctx(&key);
        states.value.get(&mut ctx);
        states.list.get(&mut ctx);
        states.map.entries(&mut ctx);
        states.sum.get(&mut ctx);
        states.mean.get(&mut ctx);
    }
    assert!(h.backend.changed_key_groups().is_empty(), "reads that do not restamp change nothing");

    states.value.clear(&mut h.ctx(&keys[0]));
    states.map.remove(&mut h.ctx(&keys[2]), &1);
    h.ctx(&keys[1]).clear_all_state();
    assert_eq!(h.backend.changed_key_groups(), [groups[0], groups[1], groups[2]]);

    h.backend.checkpoint_taken();
    let snapshot = h.backend.snapshot_key_group(groups[6]).unwrap();
    h.backend.restore_key_group(snapshot).expect("owned group");
    assert_eq!(h.backend.changed_key_groups(), [groups[6]]);

    // A checkpoint that failed gives its groups back.
    h.backend.checkpoint_taken();
    h.backend.mark_changed(&[groups[4], groups[2]]);
    assert_eq!(h.backend.changed_key_groups(), [groups[2], groups[4]]);

    // Dropping expired values does not: the last checkpoint holds them expired too.
    h.backend.checkpoint_taken();
    h.at(1_000);
    assert_eq!(states.sum.get(&mut h.ctx(&keys[3])), None);
    h.backend.cleanup_expired(groups[4], 1_000);
    assert!(h.backend.changed_key_groups().is_empty(), "{:?}", h.backend.changed_key_groups());
}

pub(crate) fn reads_that_restamp_a_value_mark_its_key_group<B: StateBackend<u64> + ChangeTracking>(make: MakeBackend<'_, B>) {
    let mut h = Harness::whole(make);
    let states = register_states(&mut h.backend, Some(TtlUpdateType::OnReadAndWrite));
    let (value_key, map_key) = (keys_in_group(5, 1)[0], keys_in_group(6, 1)[0]);
    states.value.update(&mut h.at(0).ctx(&value_key), 1);
    states.map.put(&mut h.ctx(&map_key), 1, "a".into());
    h.backend.checkpoint_taken();
    assert_eq!(states.value.get(&mut h.at(50).ctx(&value_key)), Some(1));
    assert_eq!(h.backend.changed_key_groups(), [5], "the read moved the value's expiry");
    assert_eq!(states.map.entries(&mut h.ctx(&map_key)).len(), 1);
    assert_eq!(h.backend.changed_key_groups(), [5, 6]);
}

/// Property: after a checkpoint and any further writes, restoring each changed key group from a
/// new snapshot and every other from the checkpoint's gives every key the state it has now.
pub(crate) fn an_unchanged_key_group_restores_from_the_last_checkpoint_to_its_state_now<B: StateBackend<u64> + ChangeTracking>(
    make: MakeBackend<'_, B>,
) {
    fn apply<B: StateBackend<u64>>(h: &mut Harness<B>, states: &States, op: &StateOp) {
        match *op {
            StateOp::Put(key, value) => states.value.update(&mut h.ctx(&key), value),
            StateOp::Clear(key) => h.ctx(&key).clear_all_state(),
            StateOp::MapPut(key, user_key) => states.map.put(&mut h.ctx(&key), user_key, format!("{key}/{user_key}")),
            StateOp::MapRemove(key, user_key) => states.map.remove(&mut h.ctx(&key), &user_key),
        }
    }

    let mut runner = TestRunner::new(Config { cases: property_cases::<B>(24), failure_persistence: None, ..Config::default() });
    let ops = || proptest::collection::vec(state_op(), 0..300);
    let outcome = runner.run(&(ops(), ops()), |(before, after)| {
        let mut source = Harness::whole(make);
        let states = register_states(&mut source.backend, None);
        before.iter().for_each(|op| apply(&mut source, &states, op));
        let groups = source.backend.key_groups().as_range();
        let checkpoint: Vec<KeyGroupSnapshot<u64>> =
            groups.clone().map(|group| source.backend.snapshot_key_group(group).unwrap()).collect();
        source.backend.checkpoint_taken();
        after.iter().for_each(|op| apply(&mut source, &states, op));

        let changed = source.backend.changed_key_groups();
        let mut target = Harness::whole(make);
        let target_states = register_states(&mut target.backend, None);
        for (group, previous) in groups.zip(checkpoint) {
            let snapshot = if changed.contains(&group) { source.backend.snapshot_key_group(group).unwrap() } else { previous };
            target.backend.restore_key_group(snapshot).expect("owned group");
        }
        for key in 0..200u64 {
            prop_assert_eq!(
                target_states.value.get(&mut target.ctx(&key)),
                states.value.get(&mut source.ctx(&key)),
                "value of key {}",
                key
            );
            let mut now = states.map.entries(&mut source.ctx(&key));
            let mut restored = target_states.map.entries(&mut target.ctx(&key));
            now.sort();
            restored.sort();
            prop_assert_eq!(restored, now, "map of key {}", key);
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// Snapshots of every key group of a backend made by `make_a` restore into one made by `make_b`
/// (and back) with every state of every kind, TTL stamps, and restored states not registered yet.
pub(crate) fn snapshots_move_between_backends<A: StateBackend<u64>, B: StateBackend<u64>>(
    make_a: MakeBackend<'_, A>,
    make_b: MakeBackend<'_, B>,
) {
    let timed_descriptor = || StateDescriptor::new("timed").with_ttl(StateTtlConfig::new(TTL));
    let all_groups = KeyGroupRange::for_subtask(0, 1, MAX_PARALLELISM).as_range();
    let keys = 0..300u64;

    // A state restored into the source before it registers it, and so still waiting there.
    let mut earlier = Harness::whole(make_a);
    let waiting: ValueState<String> = earlier.backend.register_value(&StateDescriptor::new("waiting")).expect("fresh name");
    for key in keys.clone() {
        waiting.update(&mut earlier.ctx(&key), format!("w{key}"));
    }
    let mut source = Harness::whole(make_a);
    for group in all_groups.clone() {
        source.backend.restore_key_group(earlier.backend.snapshot_key_group(group).unwrap()).expect("owned group");
    }
    let states = register_states(&mut source.backend, None);
    let timed: ValueState<u64> = source.backend.register_value(&timed_descriptor()).expect("fresh name");
    for key in keys.clone() {
        write_all(&states, &mut source.at(0).ctx(&key), key);
        timed.update(&mut source.ctx(&key), key);
    }

    let mut target = Harness::whole(make_b);
    for group in all_groups.clone() {
        target.at(50).backend.restore_key_group(source.backend.snapshot_key_group(group).unwrap()).expect("owned group");
    }
    let target_states = register_states(&mut target.backend, None);
    let target_timed: ValueState<u64> = target.backend.register_value(&timed_descriptor()).expect("same declaration");

    // And back into a backend of the first kind, before anything expires.
    let mut back = Harness::whole(make_a);
    for group in all_groups.clone() {
        let snapshot = target.backend.snapshot_key_group(group).unwrap();
        let original = source.backend.snapshot_key_group(group).unwrap();
        let summary = |snapshot: &KeyGroupSnapshot<u64>| {
            let mut states: Vec<_> =
                snapshot.states().iter().map(|state| (state.name().to_string(), state.kind(), state.ttl(), state.entries())).collect();
            states.sort_by(|a, b| a.0.cmp(&b.0));
            states
        };
        assert_eq!(summary(&snapshot), summary(&original), "key group {group}");
        back.backend.restore_key_group(snapshot).expect("owned group");
    }
    let back_states = register_states(&mut back.backend, None);
    let back_timed: ValueState<u64> = back.backend.register_value(&timed_descriptor()).expect("fresh name");
    let target_waiting: ValueState<String> = target.backend.register_value(&StateDescriptor::new("waiting")).expect("fresh name");
    let back_waiting: ValueState<String> = back.backend.register_value(&StateDescriptor::new("waiting")).expect("fresh name");

    for key in keys.clone() {
        check_all(&target_states, &mut target.ctx(&key), key, true);
        check_all(&back_states, &mut back.ctx(&key), key, true);
        assert_eq!(target_waiting.get(&mut target.ctx(&key)), Some(format!("w{key}")));
        assert_eq!(back_waiting.get(&mut back.ctx(&key)), Some(format!("w{key}")));
        assert_eq!(target_timed.get(&mut target.at(99).ctx(&key)), Some(key), "stamped at 0 in the source");
        assert_eq!(back_timed.get(&mut back.at(99).ctx(&key)), Some(key));
    }
    for key in keys {
        assert_eq!(target_timed.get(&mut target.at(100).ctx(&key)), None, "the stamp came along: expired at 100");
        assert_eq!(back_timed.get(&mut back.at(100).ctx(&key)), None);
    }
}
