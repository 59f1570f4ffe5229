//! A plan made into the engine's job: each plan operator becomes DataStream operators over
//! [`Row`]s, with operator names and uids derived from the plan's shape, so the same SQL text
//! builds the same job graph in every process and a savepoint finds its state again.
//!
//! - `Scan`: the connector's source, a `Calc` for computed columns, the watermark;
//! - `Calc`: one frame operator evaluating filter and projection;
//! - `WindowTvf`: a flat map adding each row's windows;
//! - `WindowAggregate`: the keys and aggregate arguments computed first (so aggregation cannot
//!   fail), then `key_by` and the engine's window operator, which fires per key and window; in
//!   two phases, each frame's rows summed per key and slice before the shuffle (`local_window`);
//! - `GroupAggregate`: the same preparation, then a keyed process function holding the
//!   accumulators and emitting `+I`, `-U`/`+U` and `-D`;
//! - `Union`: the engine's union.

use std::collections::HashMap;
use std::time::Duration;

use tethys_engine::operator::{FrameOperator, Output};
use tethys_engine::state::{StateBackend, StateDescriptor, ValueState};
use tethys_engine::{
    CumulateEventTimeWindows, DataStream, EventTimeSessionWindows, KeyedProcessFunction, ProcessContext, SlidingEventTimeWindows,
    StreamEnvironment, TimeWindow, TumblingEventTimeWindows, UserError,
};

use crate::aggregate::{Accumulators, AggCall, Aggregates};
use crate::connector;
use crate::error::SqlError;
use crate::expr::Scalar;
use crate::function::EvalContext;
use crate::plan::{JoinKind, JoinStrategy, Plan, PlanNode, WindowKind, WindowSpec};

mod join;
mod local_window;
mod lookup;
mod over;
mod proc_window;
mod rank;
mod scan;
use crate::value::{KeyValues, Row, RowKey, RowKind, Value};
use join::{IntervalJoinFunction, JoinFunction, JoinRows, SidedRow};
pub use local_window::WindowPartial;
use local_window::{LocalWindowAggregate, MergedPartials};
use over::OverFunction;
use proc_window::ProcTimeWindowAggregate;
use rank::RankFunction;

/// A row with its grouping key and event time, computed before a keyed operator.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct KeyedRow {
    /// The grouping key.
    pub key: RowKey,
    /// The event time (windows), or 0.
    pub time: i64,
    /// The aggregate arguments and filters, as the aggregate calls read them.
    pub row: Row,
}

/// Builds jobs from plans into one environment.
pub struct JobBuilder<'a> {
    env: &'a StreamEnvironment,
    context: EvalContext,
    parallelism: usize,
    /// Operator ids given so far, with how many times each was wanted.
    uids: HashMap<String, usize>,
    /// How long a group aggregate keeps a key nobody touched.
    state_ttl_ms: Option<i64>,
    /// The sub-plans read more than once by the plans being built, by their text.
    shared: HashMap<String, SharedPlan>,
    /// The sources of the tables the plans being built scan.
    sources: connector::SharedSources,
    /// Whether shared sub-plans, and sources, are built once (else once per reader).
    reuse: (bool, bool),
}

/// A sub-plan the plans being built compute more than once (a self-join's two sides aggregating
/// the same windows, a statement set's inserts reading one table): it is built once and its rows
/// fanned out to its readers, as Flink's sub-plan reuse. Its readers then see the same rows.
struct SharedPlan {
    readers: usize,
    /// The copies of its stream built and not yet taken by a reader.
    copies: Vec<DataStream<Row>>,
}

/// Counts how many times each sub-plan is read, and each table scanned, as the builder reads
/// them: a sub-plan met again is not descended into when it is built once (`reused`), and the
/// scan under a Calc fused with it is that Calc's own.
fn count_readers(plan: &Plan, reused: bool, readers: &mut HashMap<String, usize>, sources: &mut connector::SharedSources) {
    let count = readers.entry(format!("{plan:?}")).or_insert(0);
    *count += 1;
    if *count > 1 && reused {
        return;
    }
    match &plan.node {
        PlanNode::Scan { table, .. } => sources.count(table),
        PlanNode::Calc { input, .. } if matches!(input.node, PlanNode::Scan { pushed: Some(_), .. }) => {
            let PlanNode::Scan { table, .. } = &input.node else { unreachable!("matched above") };
            sources.count(table);
        }
        _ => plan.inputs().into_iter().for_each(|input| count_readers(input, reused, readers, sources)),
    }
}

/// An output column taken from the input row rather than computed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Move {
    /// Input column `c`.
    Column(usize),
    /// Field `f` of input ROW column `c`.
    Field(usize, usize),
}

/// How often each column, and each field of a column, is read by `scalar`.
fn count_reads(scalar: &Scalar, whole: &mut HashMap<usize, usize>, fields: &mut HashMap<(usize, usize), usize>) {
    match scalar {
        Scalar::Column(column) => *whole.entry(*column).or_default() += 1,
        Scalar::Field(inner, field) => match inner.as_ref() {
            Scalar::Column(column) => *fields.entry((*column, *field)).or_default() += 1,
            inner => count_reads(inner, whole, fields),
        },
        other => other.children().into_iter().for_each(|child| count_reads(child, whole, fields)),
    }
}

/// A Calc's filter and projection over input rows' values.
#[derive(Clone)]
struct Calc {
    projection: Vec<Scalar>,
    /// Per output column: the input column (or field of one) it is, when nothing else reads
    /// it (so its value is moved, not copied).
    moves: Vec<Option<Move>>,
    filter: Option<Scalar>,
    context: EvalContext,
}

impl Calc {
    fn new(projection: Vec<Scalar>, filter: Option<Scalar>, context: EvalContext) -> Calc {
        let (mut whole, mut fields) = (HashMap::new(), HashMap::new());
        projection.iter().for_each(|scalar| count_reads(scalar, &mut whole, &mut fields));
        let field_reads = |column: usize| fields.keys().filter(|(c, _)| *c == column).count();
        let moves = projection
            .iter()
            .map(|scalar| match scalar {
                Scalar::Column(column) if whole[column] == 1 && field_reads(*column) == 0 => Some(Move::Column(*column)),
                Scalar::Field(inner, field) => match inner.as_ref() {
                    Scalar::Column(column) if fields[&(*column, *field)] == 1 && !whole.contains_key(column) => {
                        Some(Move::Field(*column, *field))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect();
        Calc { projection, moves, filter, context }
    }

    /// Whether `input` passes the filter; if it does, `output` (empty) gets the projection's
    /// values, those it passes through moved out of `input` (left NULL there). On an error,
    /// `input` is as it came.
    fn project(&self, input: &mut [Value], output: &mut Vec<Value>) -> Result<bool, String> {
        debug_assert!(output.is_empty());
        if let Some(filter) = &self.filter {
            if filter.test(input, &self.context)? != Some(true) {
                return Ok(false);
            }
        }
        // When every column is moved, in one pass: nothing can fail.
        if self.moves.iter().all(Option::is_some) {
            output.extend(self.moves.iter().map(|moved| match moved {
                Some(Move::Column(column)) => std::mem::replace(&mut input[*column], Value::Null),
                Some(Move::Field(column, field)) => take_field(&mut input[*column], *field),
                None => unreachable!("every column is moved"),
            }));
            return Ok(true);
        }
        // Computed columns first, so that an error leaves the input as it came; then the moved
        // ones (nothing else of the projection reads them: see `moves`).
        for (scalar, moved) in self.projection.iter().zip(&self.moves) {
            output.push(match moved {
                Some(_) => Value::Null,
                None => scalar.eval(input, &self.context)?,
            });
        }
        for (value, moved) in output.iter_mut().zip(&self.moves) {
            match moved {
                Some(Move::Column(column)) => *value = std::mem::replace(&mut input[*column], Value::Null),
                Some(Move::Field(column, field)) => *value = take_field(&mut input[*column], *field),
                None => {}
            }
        }
        Ok(true)
    }
}

/// Field `field` of a `ROW` value, taken out of it (left NULL there); NULL if it has none.
fn take_field(row: &mut Value, field: usize) -> Value {
    match row {
        Value::Row(fields) => fields.get_mut(field).map_or(Value::Null, |taken| std::mem::replace(taken, Value::Null)),
        _ => Value::Null,
    }
}

/// A Calc as an operator: filter then projection, per frame, each row's output in its own vector.
struct CalcOperator {
    calc: Calc,
    text: String,
    /// The output row being built, reused from row to row (its values then move into the input
    /// row's own vector: a row through a Calc allocates nothing of its own).
    scratch: Vec<Value>,
}

impl CalcOperator {
    fn new(projection: Vec<Scalar>, filter: Option<Scalar>, context: EvalContext, text: String) -> CalcOperator {
        let scratch = Vec::with_capacity(projection.len());
        CalcOperator { calc: Calc::new(projection, filter, context), text, scratch }
    }

    /// Whether the row passes the filter; if it does, the row becomes the projection's row (in
    /// its own vector). On an error the row is as it came.
    fn apply(&mut self, row: &mut Row) -> Result<bool, String> {
        self.scratch.clear();
        if !self.calc.project(&mut row.values, &mut self.scratch)? {
            return Ok(false);
        }
        row.values.clear();
        row.values.append(&mut self.scratch);
        Ok(true)
    }
}

impl FrameOperator<Row, Row> for CalcOperator {
    fn process(&mut self, mut frame: Vec<Row>, out: &mut Output<'_, Row>) -> Result<(), UserError> {
        let mut failure = None;
        frame.retain_mut(|row| {
            if failure.is_some() {
                return false;
            }
            self.apply(row).unwrap_or_else(|error| {
                failure = Some(format!("{error}, in Calc({}) of row {row}", self.text));
                false
            })
        });
        if let Some(failure) = failure {
            return Err(failure.into());
        }
        out.emit_frame(frame);
        Ok(())
    }
}

/// `scalar`, over a scan of `table` told `pushed`, with the columns the source fixes as constants,
/// the fields of `ROW` columns it gives as columns of their own read there, and folded.
fn over_scan(scalar: &Scalar, table: &crate::catalog::SqlTable, pushed: &crate::plan::ScanPushDown, context: &EvalContext) -> Scalar {
    let fixed = connector::fixed_columns(table, pushed);
    let flat = connector::flattened_fields(table, pushed);
    let first_flat = table.schema.fields.len();
    let rewritten = scalar.rewrite(&|part| match part {
        Scalar::Column(column) => fixed.iter().find(|(fixed, _)| fixed == column).map(|(_, value)| Scalar::Literal(value.clone())),
        Scalar::Field(inner, field) => match inner.as_ref() {
            Scalar::Column(column) => flat.iter().position(|flat| *flat == (*column, *field)).map(|k| Scalar::Column(first_flat + k)),
            _ => None,
        },
        _ => None,
    });
    rewritten.folded(context)
}

/// Computes a table's computed columns of each of its rows (they read only its physical columns,
/// and fields its source gives as columns of their own): appended to the row, or, when the source
/// left them room (`at`: the first one's place), written there.
struct ComputedColumns {
    computed: Vec<Scalar>,
    at: Option<usize>,
    context: EvalContext,
    text: String,
}

impl FrameOperator<Row, Row> for ComputedColumns {
    fn process(&mut self, mut frame: Vec<Row>, out: &mut Output<'_, Row>) -> Result<(), UserError> {
        for row in &mut frame {
            if self.at.is_none() {
                row.values.reserve_exact(self.computed.len());
            }
            for (n, scalar) in self.computed.iter().enumerate() {
                match (scalar.eval(&row.values, &self.context), self.at) {
                    (Ok(value), Some(at)) => row.values[at + n] = value,
                    (Ok(value), None) => row.values.push(value),
                    (Err(error), _) => return Err(format!("{error}, in Calc({}) of row {row}", self.text).into()),
                }
            }
        }
        out.emit_frame(frame);
        Ok(())
    }
}

/// Computes each row's key, event time and aggregate inputs.
#[derive(Clone)]
struct PrepareOperator {
    keys: Vec<Scalar>,
    inputs: Vec<Scalar>,
    /// The inputs are the row's columns in order (a join's or a rank's rows): the row's values
    /// are moved, not evaluated into new ones.
    whole_row: bool,
    time_column: Option<usize>,
    /// Added to the time column's value.
    time_offset_ms: i64,
    context: EvalContext,
}

impl PrepareOperator {
    fn new(keys: Vec<Scalar>, inputs: Vec<Scalar>, time_column: Option<usize>, time_offset_ms: i64, context: EvalContext) -> Self {
        let whole_row = inputs.iter().enumerate().all(|(i, input)| matches!(input, Scalar::Column(column) if *column == i));
        PrepareOperator { keys, inputs, whole_row, time_column, time_offset_ms, context }
    }
}

impl FrameOperator<Row, KeyedRow> for PrepareOperator {
    fn process(&mut self, frame: Vec<Row>, out: &mut Output<'_, KeyedRow>) -> Result<(), UserError> {
        for row in frame {
            let eval =
                |scalars: &[Scalar]| scalars.iter().map(|scalar| scalar.eval(&row.values, &self.context)).collect::<Result<Vec<_>, _>>();
            // Sized for the key's columns up front: one allocation at most (none for one column).
            let mut key = KeyValues::with_capacity(self.keys.len());
            for scalar in &self.keys {
                key.push(scalar.eval(&row.values, &self.context).map_err(|error| format!("{error}, in the grouping key of row {row}"))?);
            }
            let inputs = match self.whole_row && row.values.len() == self.inputs.len() {
                true => None,
                false => Some(eval(&self.inputs).map_err(|error| format!("{error}, in an aggregate's argument of row {row}"))?),
            };
            let time = match self.time_column {
                Some(column) => match row.values[column] {
                    Value::Timestamp(ms) => ms + self.time_offset_ms,
                    // A row without an event time is too late for every window.
                    _ => i64::MIN,
                },
                None => 0,
            };
            let values = inputs.unwrap_or(row.values);
            out.emit(KeyedRow { key: RowKey(key), time, row: Row { kind: row.kind, values } });
        }
        Ok(())
    }
}

/// The aggregate calls rewritten to read their prepared inputs: each argument and filter is
/// computed once before the keyed operator (so aggregation reads columns and cannot fail).
fn prepared_calls(calls: &[AggCall]) -> (Vec<Scalar>, Vec<AggCall>) {
    let mut inputs = Vec::new();
    let rewritten = calls
        .iter()
        .map(|call| {
            let mut call = call.clone();
            if let Some(argument) = call.argument.take() {
                inputs.push(argument);
                call.argument = Some(Scalar::Column(inputs.len() - 1));
            }
            if let Some(filter) = call.filter.take() {
                inputs.push(filter);
                call.filter = Some(Scalar::Column(inputs.len() - 1));
            }
            call
        })
        .collect();
    (inputs, rewritten)
}

/// The engine's aggregate function over prepared rows.
#[derive(Clone)]
struct WindowAggregates(Aggregates);

impl tethys_engine::AggregateFunction<KeyedRow, Accumulators, Vec<Value>> for WindowAggregates {
    fn create_accumulator(&self) -> Accumulators {
        self.0.create()
    }

    fn add(&self, accumulator: &mut Accumulators, value: KeyedRow) {
        self.add_ref(accumulator, &value);
    }

    fn add_ref(&self, accumulator: &mut Accumulators, value: &KeyedRow) {
        // Prepared inputs are columns: accumulating them does not fail.
        let _ = self.0.accumulate(accumulator, &value.row);
    }

    fn get_result(&self, accumulator: &Accumulators) -> Vec<Value> {
        self.0.results(accumulator)
    }
}

impl tethys_engine::MergingAggregateFunction<KeyedRow, Accumulators, Vec<Value>> for WindowAggregates {
    fn merge(&self, earlier: Accumulators, later: Accumulators) -> Accumulators {
        self.0.merge(earlier, later)
    }
}

/// What a group aggregate keeps per key: its accumulators and the values it emitted last.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct GroupState {
    /// The accumulators.
    pub accumulators: Accumulators,
    /// The aggregate values last emitted (none before the first row).
    pub emitted: Option<Vec<Value>>,
}

/// `GROUP BY` over an unbounded stream: per key, the accumulators; each row (or, in two phases,
/// each partial aggregate) updates them and emits the change of the key's result row.
struct GroupAggregateFunction {
    aggregates: Aggregates,
    ttl_ms: Option<i64>,
    state: Option<ValueState<GroupState>>,
}

/// A frame's rows of one key aggregated before the shuffle (the local phase of a two-phase
/// aggregate): the global phase merges it into the key's accumulators.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PartialAggregate {
    /// The grouping key.
    pub key: RowKey,
    /// The accumulators of the frame's rows of the key.
    pub accumulators: Accumulators,
}

/// The local phase of a two-phase aggregate: each frame's rows aggregated per key, one partial
/// per key and frame (nothing is held between frames, so checkpoints need no state here). A
/// key with many rows per frame (skew) sends one record over the shuffle instead of many.
struct LocalAggregate {
    aggregates: Aggregates,
}

impl FrameOperator<KeyedRow, PartialAggregate> for LocalAggregate {
    fn process(&mut self, frame: Vec<KeyedRow>, out: &mut Output<'_, PartialAggregate>) -> Result<(), UserError> {
        let mut index: HashMap<RowKey, usize> = HashMap::new();
        let mut partials: Vec<PartialAggregate> = Vec::new();
        for record in frame {
            let slot = *index.entry(record.key.clone()).or_insert_with(|| {
                partials.push(PartialAggregate { key: record.key.clone(), accumulators: self.aggregates.create() });
                partials.len() - 1
            });
            self.aggregates.accumulate(&mut partials[slot].accumulators, &record.row)?;
        }
        out.emit_frame(partials);
        Ok(())
    }
}

impl GroupAggregateFunction {
    fn open_state(&mut self, state: &mut tethys_engine::state::KeyedStateBackend<RowKey>) -> Result<(), UserError> {
        let mut descriptor = StateDescriptor::new("group-aggregate");
        if let Some(ttl_ms) = self.ttl_ms {
            descriptor = descriptor.with_ttl(tethys_engine::state::StateTtlConfig::new(Duration::from_millis(ttl_ms.max(1) as u64)));
        }
        self.state = Some(state.register_value(&descriptor)?);
        Ok(())
    }

    /// Changes the key's accumulators with `change` and emits how its result row changed.
    fn update(
        &self,
        key: &RowKey,
        ctx: &mut ProcessContext<'_, '_, RowKey, Row>,
        change: impl FnOnce(&mut Accumulators) -> Result<(), String>,
    ) -> Result<(), UserError> {
        let handle = self.state.expect("opened");
        let row_of = |kind: RowKind, values: &[Value]| Row { kind, values: key.0.iter().cloned().chain(values.iter().cloned()).collect() };
        let mut emitted_rows = Vec::new();
        // The key's state is changed in place (one lookup, no copy of the accumulators).
        handle.modify(&mut ctx.keyed, |slot| -> Result<(), String> {
            let state = slot.get_or_insert_with(|| GroupState { accumulators: self.aggregates.create(), emitted: None });
            change(&mut state.accumulators)?;
            if state.accumulators.rows <= 0 {
                // Every row of the key was taken back: the key's row is deleted.
                if let Some(emitted) = &state.emitted {
                    emitted_rows.push(row_of(RowKind::Delete, emitted));
                }
                *slot = None;
                return Ok(());
            }
            let results = self.aggregates.results(&state.accumulators);
            match &state.emitted {
                None => emitted_rows.push(row_of(RowKind::Insert, &results)),
                Some(emitted) if *emitted != results => {
                    emitted_rows.push(row_of(RowKind::UpdateBefore, emitted));
                    emitted_rows.push(row_of(RowKind::UpdateAfter, &results));
                }
                Some(_) => {}
            }
            state.emitted = Some(results);
            Ok(())
        })?;
        emitted_rows.into_iter().for_each(|row| ctx.emit(row));
        Ok(())
    }
}

impl KeyedProcessFunction<RowKey, PartialAggregate, Row> for GroupAggregateFunction {
    fn open(&mut self, state: &mut tethys_engine::state::KeyedStateBackend<RowKey>) -> Result<(), UserError> {
        self.open_state(state)
    }

    fn process_element(&mut self, record: PartialAggregate, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        let PartialAggregate { key, accumulators } = record;
        self.update(&key, ctx, |state| {
            *state = self.aggregates.merge(std::mem::replace(state, self.aggregates.create()), accumulators);
            Ok(())
        })
    }
}

impl KeyedProcessFunction<RowKey, KeyedRow, Row> for GroupAggregateFunction {
    fn open(&mut self, state: &mut tethys_engine::state::KeyedStateBackend<RowKey>) -> Result<(), UserError> {
        self.open_state(state)
    }

    fn process_element(&mut self, record: KeyedRow, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        self.update(&record.key, ctx, |state| self.aggregates.accumulate(state, &record.row))
    }
}

/// The windows a row at `time` is in, for the window table function (not session).
fn windows_of(kind: WindowKind, time: i64) -> Vec<(i64, i64)> {
    let floor = |time: i64, step: i64, offset: i64| time - (time - offset).rem_euclid(step);
    match kind {
        WindowKind::Tumble { size_ms, offset_ms } => {
            let start = floor(time, size_ms, offset_ms);
            vec![(start, start + size_ms)]
        }
        WindowKind::Hop { slide_ms, size_ms, offset_ms } => {
            let last = floor(time, slide_ms, offset_ms);
            let mut windows = Vec::new();
            let mut start = last;
            while start > time - size_ms {
                windows.push((start, start + size_ms));
                start -= slide_ms;
            }
            windows.reverse();
            windows
        }
        WindowKind::Cumulate { step_ms, max_size_ms, offset_ms } => {
            let start = floor(time, max_size_ms, offset_ms);
            let first_end = floor(time, step_ms, offset_ms) + step_ms;
            (0..).map(|i| first_end + i * step_ms).take_while(|end| *end <= start + max_size_ms).map(|end| (start, end)).collect()
        }
        WindowKind::Session { .. } => unreachable!("sessions are only aggregated"),
    }
}

impl<'a> JobBuilder<'a> {
    /// A builder adding operators of `parallelism` subtasks to `env`.
    pub fn new(env: &'a StreamEnvironment, context: EvalContext, parallelism: usize) -> JobBuilder<'a> {
        JobBuilder {
            env,
            context,
            parallelism,
            uids: HashMap::new(),
            state_ttl_ms: None,
            shared: HashMap::new(),
            sources: connector::SharedSources::default(),
            reuse: (true, true),
        }
    }

    /// Group aggregates forget a key nobody touched for `ttl_ms` (`table.exec.state.ttl`).
    pub fn with_state_ttl(mut self, ttl_ms: Option<i64>) -> Self {
        self.state_ttl_ms = ttl_ms;
        self
    }

    /// Whether a sub-plan computed more than once, and a generated table scanned more than once,
    /// are built once (`table.optimizer.reuse-sub-plan-enabled`, `reuse-source-enabled`).
    pub fn with_reuse(mut self, sub_plans: bool, sources: bool) -> Self {
        self.reuse = (sub_plans, sources);
        self
    }

    /// A stable operator id: the operator's kind and a hash of the plan it computes (tables,
    /// windows, keys, aggregates; not projections and filters), so the same query gets the same
    /// ids in every process and after a change that leaves this operator's input alone (a
    /// savepoint's state is found again); the second operator of one kind and plan gets `-2`.
    fn uid(&mut self, kind: &str, signature: &str) -> String {
        let base = format!("sql-{kind}-{:016x}", tethys_engine::base::key::key_hash(signature));
        let seen = self.uids.entry(base.clone()).or_insert(0);
        *seen += 1;
        if *seen == 1 {
            base
        } else {
            format!("{base}-{seen}")
        }
    }

    /// The plan's rows as a stream.
    pub fn build(&mut self, plan: &Plan) -> Result<DataStream<Row>, SqlError> {
        Ok(self.build_all(&[plan])?.remove(0))
    }

    /// Each plan's rows as a stream, the plans built into one job: a sub-plan they compute more
    /// than once is built once and fanned out (see [`SharedPlan`]).
    pub fn build_all(&mut self, plans: &[&Plan]) -> Result<Vec<DataStream<Row>>, SqlError> {
        let (mut readers, mut sources) = (HashMap::new(), connector::SharedSources::default());
        plans.iter().for_each(|plan| count_readers(plan, self.reuse.0, &mut readers, &mut sources));
        self.sources = if self.reuse.1 { sources } else { connector::SharedSources::default() };
        self.shared = readers
            .into_iter()
            .filter(|(_, readers)| *readers > 1 && self.reuse.0)
            .map(|(text, readers)| (text, SharedPlan { readers, copies: Vec::new() }))
            .collect();
        let streams = plans.iter().map(|plan| self.build_shared(plan)).collect::<Result<Vec<_>, _>>()?;
        debug_assert!(self.shared.values().all(|shared| shared.copies.is_empty()), "every copy of a shared sub-plan has its reader");
        Ok(streams)
    }

    /// The plan's rows: a copy of them if the plan is shared and was built already.
    fn build_shared(&mut self, plan: &Plan) -> Result<DataStream<Row>, SqlError> {
        if self.shared.is_empty() {
            return self.build_node(plan);
        }
        let text = format!("{plan:?}");
        let readers = match self.shared.get_mut(&text) {
            None => return self.build_node(plan),
            Some(shared) => match shared.copies.pop() {
                Some(copy) => return Ok(copy),
                None => shared.readers,
            },
        };
        let mut copies = self.build_node(plan)?.fan_out(readers);
        let first = copies.remove(0);
        self.shared.get_mut(&text).expect("counted above").copies = copies;
        Ok(first)
    }

    /// The plan's operators, its inputs built through `build_shared`.
    fn build_node(&mut self, plan: &Plan) -> Result<DataStream<Row>, SqlError> {
        let sig = signature(plan);
        Ok(match &plan.node {
            PlanNode::Scan { table, pushed } => {
                let source = connector::scan(self.env, table, pushed.as_ref(), self.parallelism, &mut self.sources)?;
                self.scan(source, table, pushed.as_ref(), &sig)
            }
            PlanNode::Calc { input, projection, filter, text } => {
                let (projection, filter) = match &input.node {
                    // Columns the source below fixes are constants here: a conjunct the source
                    // applies itself is TRUE, and is not tested again.
                    PlanNode::Scan { table, pushed: Some(pushed) } => (
                        projection.iter().map(|scalar| over_scan(scalar, table, pushed, &self.context)).collect(),
                        filter.as_ref().and_then(|filter| {
                            let conjuncts = over_scan(filter, table, pushed, &self.context).conjuncts();
                            Scalar::all_of(
                                conjuncts.into_iter().filter(|conjunct| !matches!(conjunct, Scalar::Literal(Value::Bool(true)))).collect(),
                            )
                        }),
                    ),
                    _ => (
                        projection.iter().map(|scalar| scalar.clone().folded(&self.context)).collect(),
                        filter.clone().map(|filter| filter.folded(&self.context)),
                    ),
                };
                if let PlanNode::Scan { table, pushed: Some(pushed) } = &input.node {
                    return self.scan_calc(table, pushed, projection, filter, text.clone(), &signature(input), &sig);
                }
                let input = self.build_shared(input)?;
                self.calc(input, projection, filter, text.clone(), &sig)
            }
            PlanNode::WindowTvf { input, window } => {
                let input = self.build_shared(input)?;
                let (kind, column) = (window.kind, window.time_column);
                let uid = self.uid("window-tvf", &sig);
                input
                    .flat_map(move |row: Row| {
                        let time = match row.values[column] {
                            Value::Timestamp(ms) => Some(ms),
                            _ => None,
                        };
                        let windows = time.map(|time| windows_of(kind, time)).unwrap_or_default();
                        let (kind, last) = (row.kind, windows.len().saturating_sub(1));
                        let mut row = Some(row.values);
                        windows.into_iter().enumerate().map(move |(n, (start, end))| {
                            // Copied for each window but the last, which takes the row itself.
                            let mut values = if n == last {
                                row.take().expect("the last window takes the row once")
                            } else {
                                let whole = row.as_deref().expect("taken by the last window only");
                                let mut values = Vec::with_capacity(whole.len() + 3);
                                values.extend_from_slice(whole);
                                values
                            };
                            values.extend([Value::Timestamp(start), Value::Timestamp(end), Value::Timestamp(end - 1)]);
                            Row { kind, values }
                        })
                    })
                    .uid(&uid)
            }
            PlanNode::WindowAggregate { input, window, keys, aggregates, window_keys, two_phase } => {
                let input = self.build_shared(input)?;
                self.window_aggregate(input, window, keys, aggregates, *window_keys, *two_phase, &sig)?
            }
            PlanNode::GroupAggregate { input, keys, aggregates, two_phase } => {
                let input = self.build_shared(input)?;
                let (inputs, calls) = prepared_calls(aggregates);
                let prepare = PrepareOperator::new(keys.clone(), inputs, None, 0, self.context.clone());
                let aggregates = Aggregates { calls, context: self.context.clone() };
                let prepare_uid = self.uid("prepare", &sig);
                let uid = self.uid("group-aggregate", &sig);
                let ttl_ms = self.state_ttl_ms;
                let prepared = input.process("PrepareAggregate", move |_| prepare.clone()).uid(&prepare_uid);
                let global = aggregates.clone();
                let make = move || GroupAggregateFunction { aggregates: global.clone(), ttl_ms, state: None };
                if *two_phase {
                    let local_uid = self.uid("local-aggregate", &sig);
                    prepared
                        .process("LocalAggregate", move |_| LocalAggregate { aggregates: aggregates.clone() })
                        .uid(&local_uid)
                        .key_by(|partial: &PartialAggregate| partial.key.clone())
                        .process("GlobalAggregate", make)
                        .uid(&uid)
                } else {
                    prepared.key_by(|row: &KeyedRow| row.key.clone()).process("GroupAggregate", make).uid(&uid)
                }
            }
            PlanNode::Join { left, right, kind, left_keys, right_keys, residual, strategy } => {
                let (left_width, right_width) = (left.schema.fields.len(), right.schema.fields.len());
                let (left, right) = (self.build_shared(left)?, self.build_shared(right)?);
                let left_time = match strategy {
                    JoinStrategy::Interval { left_time, .. } => Some(*left_time),
                    JoinStrategy::Window { left_end, .. } => Some(*left_end),
                    JoinStrategy::Regular { .. } => None,
                };
                let right_time = match strategy {
                    JoinStrategy::Interval { right_time, .. } => Some(*right_time),
                    JoinStrategy::Window { right_end, .. } => Some(*right_end),
                    JoinStrategy::Regular { .. } => None,
                };
                let left = self.prepare(left, left_keys.clone(), (0..left_width).map(Scalar::Column).collect(), left_time, &sig);
                let right = self.prepare(right, right_keys.clone(), (0..right_width).map(Scalar::Column).collect(), right_time, &sig);
                let uid = self.uid("join", &sig);
                let rows = JoinRows { kind: *kind, residual: residual.clone(), left_width, right_width, context: self.context.clone() };
                let sided = |left: DataStream<KeyedRow>, right: DataStream<KeyedRow>| {
                    let left = left.map(|keyed: KeyedRow| SidedRow { left: true, keyed });
                    let right = right.map(|keyed: KeyedRow| SidedRow { left: false, keyed });
                    left.union([right]).key_by(|row: &SidedRow| row.keyed.key.clone())
                };
                let joined = match *strategy {
                    JoinStrategy::Interval { lower_ms, upper_ms, .. } if *kind != JoinKind::Inner => {
                        return Ok(sided(left, right)
                            .process("IntervalJoin", move || IntervalJoinFunction { rows: rows.clone(), lower_ms, upper_ms, state: None })
                            .uid(&uid));
                    }
                    JoinStrategy::Interval { lower_ms, upper_ms, .. } => left
                        .join(right)
                        .on(|row: &KeyedRow| row.key.clone(), |row: &KeyedRow| row.key.clone())
                        .interval(
                            lower_ms,
                            upper_ms,
                            |row| row.time,
                            |row| row.time,
                            |l: &KeyedRow, r: &KeyedRow| Row::insert(l.row.values.iter().chain(&r.row.values).cloned().collect()),
                        )
                        .uid(&uid),
                    JoinStrategy::Regular { .. } | JoinStrategy::Window { .. } => {
                        let ttl_ms = match strategy {
                            JoinStrategy::Regular { ttl_ms } => *ttl_ms,
                            _ => None,
                        };
                        let window = matches!(strategy, JoinStrategy::Window { .. });
                        return Ok(sided(left, right)
                            .process("Join", move || JoinFunction { rows: rows.clone(), window, ttl_ms, state: None })
                            .uid(&uid));
                    }
                };
                match residual {
                    Some(residual) => self.calc(
                        joined,
                        (0..left_width + right_width).map(Scalar::Column).collect(),
                        Some(residual.clone()),
                        "join condition".into(),
                        &sig,
                    ),
                    None => joined,
                }
            }
            PlanNode::Rank { input, partition, order, limit, window_end, numbered } => {
                let Some(limit) = *limit else {
                    return Err(SqlError::at(
                        None,
                        "ROW_NUMBER() keeps the first rows per partition: filter on it in the enclosing query (WHERE row_num <= N)",
                    ));
                };
                let (width, retracting) = (input.schema.fields.len(), input.updating);
                let stream = self.build_shared(input)?;
                let inputs = (0..width).map(Scalar::Column).chain(order.iter().map(|(scalar, _)| scalar.clone())).collect();
                let prepared = self.prepare(stream, partition.clone(), inputs, *window_end, &sig);
                let descending: Vec<bool> = order.iter().map(|(_, descending)| *descending).collect();
                let (window, numbered, uid) = (window_end.is_some(), *numbered, self.uid("rank", &sig));
                prepared
                    .key_by(|row: &KeyedRow| row.key.clone())
                    .process("Rank", move || RankFunction {
                        width,
                        descending: descending.clone(),
                        limit: limit as usize,
                        window,
                        numbered,
                        retracting,
                        state: None,
                    })
                    .uid(&uid)
            }
            PlanNode::Over { input, partition, time_column, frame, aggregates } => {
                let width = input.schema.fields.len();
                let stream = self.build_shared(input)?;
                let (inputs, calls) = prepared_calls(aggregates);
                let calls: Vec<AggCall> = calls
                    .into_iter()
                    .map(|mut call| {
                        call.argument = call.argument.map(|argument| argument.map_columns(&|c| c + width));
                        call.filter = call.filter.map(|filter| filter.map_columns(&|c| c + width));
                        call
                    })
                    .collect();
                let inputs = (0..width).map(Scalar::Column).chain(inputs).collect();
                let prepared = self.prepare(stream, partition.clone(), inputs, Some(*time_column), &sig);
                let aggregates = Aggregates { calls, context: self.context.clone() };
                let (frame, uid) = (*frame, self.uid("over", &sig));
                prepared
                    .key_by(|row: &KeyedRow| row.key.clone())
                    .process("OverAggregate", move || OverFunction { width, frame, aggregates: aggregates.clone(), state: None })
                    .uid(&uid)
            }
            PlanNode::LookupJoin { input, table, kind, left_keys, right_keys, residual } => {
                let rows = crate::connector::lookup_table(table)?;
                let operator = lookup::LookupJoinOperator {
                    table: std::sync::Arc::new(lookup::LookupTable {
                        rows,
                        key_columns: right_keys.clone(),
                        index: std::sync::OnceLock::new(),
                    }),
                    left_keys: left_keys.clone(),
                    keep_unmatched: *kind == JoinKind::Left,
                    table_width: table.physical.fields.len(),
                    residual: residual.clone(),
                    context: self.context.clone(),
                };
                let uid = self.uid("lookup-join", &sig);
                self.build_shared(input)?.process("LookupJoin", move |_| operator.clone()).uid(&uid)
            }
            PlanNode::Union { inputs } => {
                let mut streams = inputs.iter().map(|input| self.build_shared(input)).collect::<Result<Vec<_>, _>>()?.into_iter();
                let first = streams.next().expect("a union has inputs");
                first.union(streams)
            }
        })
    }

    /// Each row with its key and time computed, ready for a keyed operator.
    fn prepare(
        &mut self,
        input: DataStream<Row>,
        keys: Vec<Scalar>,
        inputs: Vec<Scalar>,
        time_column: Option<usize>,
        sig: &str,
    ) -> DataStream<KeyedRow> {
        let prepare = PrepareOperator::new(keys, inputs, time_column, 0, self.context.clone());
        let uid = self.uid("prepare", sig);
        input.process("PrepareKeys", move |_| prepare.clone()).uid(&uid)
    }

    fn calc(
        &mut self,
        input: DataStream<Row>,
        projection: Vec<Scalar>,
        filter: Option<Scalar>,
        text: String,
        sig: &str,
    ) -> DataStream<Row> {
        let context = self.context.clone();
        let uid = self.uid("calc", sig);
        input.process("Calc", move |_| CalcOperator::new(projection.clone(), filter.clone(), context.clone(), text.clone())).uid(&uid)
    }

    /// A window aggregate; `window_keys`: the key columns holding each row's window (rows
    /// windowed again), which the results show as their windows.
    #[allow(clippy::too_many_arguments)]
    fn window_aggregate(
        &mut self,
        input: DataStream<Row>,
        window: &WindowSpec,
        keys: &[Scalar],
        aggregates: &[AggCall],
        window_keys: Option<(usize, usize)>,
        two_phase: bool,
        sig: &str,
    ) -> Result<DataStream<Row>, SqlError> {
        let (inputs, calls) = prepared_calls(aggregates);
        let aggregates = Aggregates { calls, context: self.context.clone() };
        let ms = |ms: i64| Duration::from_millis(ms as u64);
        // A result row: keys, window start, end and time, aggregates (made from the window
        // operator's key and accumulators where they lie).
        let results = aggregates.clone();
        let result_row = move |key: &RowKey, window: TimeWindow, accumulators: &Accumulators, is_update: bool| {
            let mut values = Vec::with_capacity(key.0.len() + 3 + accumulators.accs.len());
            values.extend_from_slice(&key.0);
            let (start, end) = match window_keys {
                Some((start, end)) => (key.0[start].clone(), key.0[end].clone()),
                None => (Value::Timestamp(window.start), Value::Timestamp(window.end)),
            };
            let time = match &end {
                Value::Timestamp(end) => Value::Timestamp(end - 1),
                _ => Value::Null,
            };
            values.extend([start, end, time]);
            results.extend_with_results(accumulators, &mut values);
            Row { kind: if is_update { RowKind::UpdateAfter } else { RowKind::Insert }, values }
        };
        // The engine's window operator for `window.kind` over a keyed stream, aggregating with
        // `function` into result rows.
        macro_rules! windowed {
            ($keyed:expr, $time:expr, $function:expr) => {{
                let (keyed, time, function) = ($keyed, $time, $function);
                match window.kind {
                    WindowKind::Tumble { size_ms, offset_ms } => {
                        let assigner = TumblingEventTimeWindows::try_of(ms(size_ms)).map_err(window_error)?.with_offset(ms(offset_ms));
                        keyed.window(assigner, time).aggregate_with(function, result_row)
                    }
                    WindowKind::Hop { slide_ms, size_ms, offset_ms } => {
                        let assigner = SlidingEventTimeWindows::try_of(ms(size_ms), ms(slide_ms))
                            .and_then(|assigner| assigner.try_with_offset(ms(offset_ms)))
                            .map_err(window_error)?;
                        keyed.window(assigner, time).aggregate_with(function, result_row)
                    }
                    WindowKind::Cumulate { step_ms, max_size_ms, offset_ms } => {
                        let assigner = CumulateEventTimeWindows::try_of(ms(step_ms), ms(max_size_ms))
                            .map_err(window_error)?
                            .with_offset(ms(offset_ms));
                        keyed.window(assigner, time).aggregate_with(function, result_row)
                    }
                    WindowKind::Session { gap_ms } => {
                        let assigner = EventTimeSessionWindows::try_with_gap(ms(gap_ms)).map_err(window_error)?;
                        keyed.window(assigner, time).aggregate_with(function, result_row)
                    }
                }
            }};
        }
        let uid = self.uid("window-aggregate", sig);
        let rows: DataStream<Row> = match window.kind.slices() {
            Some(slices) if two_phase => {
                debug_assert!(!window.processing_time, "processing-time windows aggregate in one phase");
                let local = LocalWindowAggregate::new(
                    keys.to_vec(),
                    inputs,
                    window.time_column,
                    window.time_offset_ms,
                    slices,
                    aggregates.clone(),
                    self.context.clone(),
                );
                let local_uid = self.uid("local-window-aggregate", sig);
                let keyed = input
                    .process("LocalWindowAggregate", move |_| local.clone())
                    .uid(&local_uid)
                    .key_by(|partial: &WindowPartial| partial.key.clone());
                windowed!(keyed, |partial: &WindowPartial| partial.time, MergedPartials(aggregates))
            }
            _ => {
                let prepare =
                    PrepareOperator::new(keys.to_vec(), inputs, Some(window.time_column), window.time_offset_ms, self.context.clone());
                let prepare_uid = self.uid("prepare", sig);
                let keyed =
                    input.process("PrepareAggregate", move |_| prepare.clone()).uid(&prepare_uid).key_by(|row: &KeyedRow| row.key.clone());
                if window.processing_time {
                    debug_assert!(window_keys.is_none(), "windows cascade over event time only");
                    let kind = window.kind;
                    let make = move || ProcTimeWindowAggregate { aggregates: aggregates.clone(), kind, state: None };
                    return Ok(keyed.process("ProcTimeWindowAggregate", make).uid(&uid));
                }
                windowed!(keyed, |row: &KeyedRow| row.time, WindowAggregates(aggregates))
            }
        };
        Ok(rows.uid(&uid))
    }
}

/// What a plan computes, for its operators' ids: tables, windows, keys, aggregates, joins,
/// ranks, with projections and filters left out (so adding or changing one keeps the ids of
/// the stateful operators around it).
fn signature(plan: &Plan) -> String {
    let texts = |calls: &[AggCall]| calls.iter().map(|call| call.text.as_str()).collect::<Vec<_>>().join(",");
    match &plan.node {
        PlanNode::Scan { table, .. } => format!("scan({})", table.name().to_lowercase()),
        PlanNode::Calc { input, .. } => signature(input),
        PlanNode::WindowTvf { input, window } => format!("tvf({:?},{})", window.kind, signature(input)),
        PlanNode::WindowAggregate { input, window, keys, aggregates, .. } => {
            format!("window-aggregate({:?},{},[{}],{})", window.kind, keys.len(), texts(aggregates), signature(input))
        }
        PlanNode::GroupAggregate { input, keys, aggregates, .. } => {
            format!("group-aggregate({},[{}],{})", keys.len(), texts(aggregates), signature(input))
        }
        PlanNode::Join { left, right, kind, left_keys, .. } => {
            format!("join({kind:?},{},{},{})", left_keys.len(), signature(left), signature(right))
        }
        PlanNode::Rank { input, partition, order, limit, .. } => {
            format!("rank({},{},{limit:?},{})", partition.len(), order.len(), signature(input))
        }
        PlanNode::Over { input, frame, aggregates, .. } => format!("over({frame:?},[{}],{})", texts(aggregates), signature(input)),
        PlanNode::Union { inputs } => format!("union({})", inputs.iter().map(signature).collect::<Vec<_>>().join(",")),
        PlanNode::LookupJoin { input, table, kind, left_keys, .. } => {
            format!("lookup-join({kind:?},{},{},{})", table.name().to_lowercase(), left_keys.len(), signature(input))
        }
    }
}

fn window_error(error: tethys_engine::WindowError) -> SqlError {
    SqlError::at(None, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operator ids of an EXPLAINed query's job graph, by operator name.
    fn ids(query: &str) -> Vec<String> {
        let mut session = crate::session::SqlSession::default();
        let script = format!(
            "CREATE TABLE t (a INT, b INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'datagen');\nEXPLAIN {query}"
        );
        let outcomes = session.execute_script(&script).unwrap();
        let Some(crate::session::Outcome::Explain(text)) = outcomes.last() else { panic!("an explanation") };
        text.lines().filter_map(|line| line.split(", id ").nth(1)).map(|id| id.split(')').next().unwrap().to_string()).collect()
    }

    #[test]
    fn stateful_operators_keep_their_ids_when_a_filter_or_projection_changes() {
        let plain = ids("SELECT a, COUNT(*) FROM t GROUP BY a");
        let filtered = ids("SELECT a, COUNT(*) * 2 AS twice FROM t WHERE b > 5 GROUP BY a");
        let aggregate = |ids: &[String]| ids.iter().find(|id| id.starts_with("sql-group-aggregate-")).cloned().unwrap();
        assert_eq!(aggregate(&plain), aggregate(&filtered));
        // Another aggregate is another operator.
        assert_ne!(aggregate(&plain), aggregate(&ids("SELECT a, SUM(b) FROM t GROUP BY a")));
        // Two aggregates of one signature in one job (their inputs differ by a filter): two ids.
        let twice = ids("SELECT a, COUNT(*) FROM t GROUP BY a UNION ALL SELECT a, COUNT(*) FROM t WHERE b > 5 GROUP BY a");
        let aggregates: Vec<&String> = twice.iter().filter(|id| id.starts_with("sql-group-aggregate-")).collect();
        assert_eq!(aggregates.len(), 2);
        assert_ne!(aggregates[0], aggregates[1]);
        // The same aggregate twice is built once (and read twice).
        let same = ids("SELECT a, COUNT(*) FROM t GROUP BY a UNION ALL SELECT a, COUNT(*) FROM t GROUP BY a");
        assert_eq!(same.iter().filter(|id| id.starts_with("sql-group-aggregate-")).count(), 1);
    }

    #[test]
    fn window_table_functions_assign_flink_s_windows() {
        assert_eq!(windows_of(WindowKind::Tumble { size_ms: 10, offset_ms: 0 }, 13), vec![(10, 20)]);
        assert_eq!(windows_of(WindowKind::Tumble { size_ms: 10, offset_ms: 0 }, -3), vec![(-10, 0)]);
        assert_eq!(windows_of(WindowKind::Hop { slide_ms: 5, size_ms: 10, offset_ms: 0 }, 13), vec![(5, 15), (10, 20)]);
        assert_eq!(windows_of(WindowKind::Cumulate { step_ms: 5, max_size_ms: 15, offset_ms: 0 }, 13), vec![(0, 15)]);
        assert_eq!(windows_of(WindowKind::Cumulate { step_ms: 5, max_size_ms: 15, offset_ms: 0 }, 3), vec![(0, 5), (0, 10), (0, 15)]);
    }
}
