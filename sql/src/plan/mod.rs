//! Query plans: what a query computes, as a tree of relational operators with their schemas,
//! before it becomes a job graph (`crate::job`).
//!
//! - `Scan`: a table's rows (its connector, computed columns, watermark);
//! - `Calc`: filter and projection in one step (Flink's Calc);
//! - `WindowTvf`: `TUMBLE`/`HOP`/`CUMULATE` rows with their windows' columns;
//! - `WindowAggregate`: a window table function grouped by `window_start, window_end` and keys,
//!   one final row per window and key when the watermark passes its end;
//! - `GroupAggregate`: `GROUP BY` over an unbounded stream, a changelog of updates;
//! - `Join`: two inputs paired on equal keys: regular (rows kept, outer joins retracting),
//!   interval (event times within a bound) or window (both inputs windowed);
//! - `Rank`: Top-N and deduplication with `ROW_NUMBER()`, per window or over the stream;
//! - `Over`: aggregates over a frame of preceding rows in event-time order;
//! - `Union`: `UNION ALL`.
//!
//! A plan knows whether its rows are append-only or a changelog with updates (`updating`), so a
//! sink that takes only appends refuses an updating query when it is planned.

pub mod join;
pub mod over;
pub mod query;
pub mod rules;

use std::fmt::Write;

use crate::aggregate::AggCall;
use crate::catalog::SqlTable;
use crate::expr::Scalar;
use crate::types::Schema;

/// A window of a window table function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// `TUMBLE(data, DESCRIPTOR(t), size [, offset])`.
    Tumble {
        /// Size.
        size_ms: i64,
        /// Offset.
        offset_ms: i64,
    },
    /// `HOP(data, DESCRIPTOR(t), slide, size [, offset])`.
    Hop {
        /// Slide.
        slide_ms: i64,
        /// Size.
        size_ms: i64,
        /// Offset.
        offset_ms: i64,
    },
    /// `CUMULATE(data, DESCRIPTOR(t), step, max size [, offset])`.
    Cumulate {
        /// Step.
        step_ms: i64,
        /// Max size.
        max_size_ms: i64,
        /// Offset.
        offset_ms: i64,
    },
    /// `SESSION(data [PARTITION BY keys], DESCRIPTOR(t), gap)`.
    Session {
        /// Gap.
        gap_ms: i64,
    },
}

impl WindowKind {
    /// How it shows in a plan.
    pub fn describe(&self) -> String {
        match self {
            WindowKind::Tumble { size_ms, offset_ms: 0 } => format!("TUMBLE(size={size_ms} ms)"),
            WindowKind::Tumble { size_ms, offset_ms } => format!("TUMBLE(size={size_ms} ms, offset={offset_ms} ms)"),
            WindowKind::Hop { slide_ms, size_ms, .. } => format!("HOP(slide={slide_ms} ms, size={size_ms} ms)"),
            WindowKind::Cumulate { step_ms, max_size_ms, .. } => format!("CUMULATE(step={step_ms} ms, max size={max_size_ms} ms)"),
            WindowKind::Session { gap_ms } => format!("SESSION(gap={gap_ms} ms)"),
        }
    }

    /// The slices its windows are made of, as `(step, offset)`: every window starts and ends on
    /// a slice's boundary (`offset` plus a multiple of `step`), so a slice is in a window whole or
    /// not at all, and a row is in the windows its slice is in. A tumbling window is one slice, a
    /// hopping one `gcd(size, slide)` long slices, a cumulating one its steps. Sessions have none.
    pub fn slices(&self) -> Option<(i64, i64)> {
        fn gcd(a: i64, b: i64) -> i64 {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        match *self {
            WindowKind::Tumble { size_ms, offset_ms } => Some((size_ms, offset_ms)),
            WindowKind::Hop { slide_ms, size_ms, offset_ms } => Some((gcd(size_ms, slide_ms), offset_ms)),
            WindowKind::Cumulate { step_ms, offset_ms, .. } => Some((step_ms, offset_ms)),
            WindowKind::Session { .. } => None,
        }
    }
}

/// `table.optimizer.agg-phase-strategy`: which aggregates run in two phases, a local one in each
/// subtask before the shuffle and a global one after it, as Flink's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AggPhaseStrategy {
    /// Window aggregates in two phases where that gives the same rows (their aggregates merge
    /// whatever the order, their windows slice); group aggregates in one. The default.
    #[default]
    Auto,
    /// Every aggregate in one phase.
    OnePhase,
    /// Window aggregates as `Auto`, and group aggregates over inserts in two phases too (their
    /// changelog is then coarser: one update per key and frame).
    TwoPhase,
}

impl AggPhaseStrategy {
    /// The strategy a setting's value names (`AUTO`, `ONE_PHASE`, `TWO_PHASE`, in any case).
    pub fn parse(value: &str) -> Option<AggPhaseStrategy> {
        [("AUTO", AggPhaseStrategy::Auto), ("ONE_PHASE", AggPhaseStrategy::OnePhase), ("TWO_PHASE", AggPhaseStrategy::TwoPhase)]
            .into_iter()
            .find_map(|(name, strategy)| name.eq_ignore_ascii_case(value).then_some(strategy))
    }
}

/// A window table function's window and time column.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    /// The windows.
    pub kind: WindowKind,
    /// The event-time column of the input rows.
    pub time_column: usize,
    /// `SESSION`'s `PARTITION BY` columns of the input rows.
    pub partition: Vec<usize>,
    /// Added to the time column's value for the row's event time (-1 when a window's end is
    /// the time of rows windowed again: a window holds times up to its end, exclusive).
    pub time_offset_ms: i64,
    /// The time column is a processing-time attribute: rows are windowed by the wall clock of
    /// the aggregating operator and windows fire when it passes their end.
    pub processing_time: bool,
}

/// What a scan's consumers need, pushed down to its connector: a connector may leave the other
/// columns (and fields of `ROW` columns) NULL, and may skip rows the filter drops (the filter
/// is applied above the scan too).
#[derive(Debug, Clone, Default)]
pub struct ScanPushDown {
    /// Per physical column: whether it is read.
    pub columns: Vec<bool>,
    /// Per physical column of a `ROW` type read only by its fields: which fields are read.
    pub fields: Vec<Option<Vec<bool>>>,
    /// Conjuncts of the filter above that read physical columns only.
    pub filter: Vec<Scalar>,
    /// Per computed column: whether it is read.
    pub computed: Vec<bool>,
}

impl ScanPushDown {
    /// Whether field `field` of physical column `column` is read.
    pub fn reads_field(&self, column: usize, field: usize) -> bool {
        self.columns[column] && self.fields[column].as_ref().is_none_or(|fields| fields.get(field).copied().unwrap_or(true))
    }
}

/// Which rows of a join are kept without a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Only pairs.
    Inner,
    /// Every left row (padded with NULLs).
    Left,
    /// Every right row.
    Right,
    /// Every row of both.
    Full,
}

impl JoinKind {
    /// Whether rows of the left input without a partner are kept.
    pub fn keeps_left(self) -> bool {
        matches!(self, JoinKind::Left | JoinKind::Full)
    }

    /// Whether rows of the right input without a partner are kept.
    pub fn keeps_right(self) -> bool {
        matches!(self, JoinKind::Right | JoinKind::Full)
    }
}

/// How a join keeps rows and when it emits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JoinStrategy {
    /// Every row is kept (or for the state TTL), and each row emits its pairs at once; outer
    /// rows are retracted when a partner comes.
    Regular {
        /// `table.exec.state.ttl`: rows unused for this long are dropped.
        ttl_ms: Option<i64>,
    },
    /// Rows are paired when their event times are within `[lower, upper]` of each other
    /// (right time minus left time), and dropped once the watermark passes that.
    Interval {
        /// The left event-time column.
        left_time: usize,
        /// The right event-time column (in the right row).
        right_time: usize,
        /// The least right minus left time.
        lower_ms: i64,
        /// The most right minus left time.
        upper_ms: i64,
    },
    /// Both inputs are windowed (their keys include window_start and window_end); a window's
    /// pairs are emitted when the watermark passes its end.
    Window {
        /// The left rows' window_end column.
        left_end: usize,
        /// The right rows' window_end column.
        right_end: usize,
    },
}

/// The rows an OVER aggregate's row sees, before it and itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFrame {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW` (`None`: unbounded).
    Rows(Option<i64>),
    /// `RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT ROW` in ms (`None`: unbounded); rows of
    /// the same time are each other's peers.
    Range(Option<i64>),
}

/// One operator of a plan.
#[derive(Debug, Clone)]
pub enum PlanNode {
    /// A table's rows.
    Scan {
        /// The table.
        table: Box<SqlTable>,
        /// What the operators above need of its rows (all of them when `None`).
        pushed: Option<ScanPushDown>,
    },
    /// Filter, then projection.
    Calc {
        /// Its input.
        input: Box<Plan>,
        /// The output columns, over the input row.
        projection: Vec<Scalar>,
        /// Only rows where this is TRUE.
        filter: Option<Scalar>,
        /// The projection and filter as written, for `EXPLAIN`.
        text: String,
    },
    /// Each row with its windows' columns (`window_start`, `window_end`, `window_time`
    /// appended), one row per window it is in.
    WindowTvf {
        /// Its input.
        input: Box<Plan>,
        /// The windows.
        window: WindowSpec,
    },
    /// Aggregates per window and key: rows `keys..., window_start, window_end, window_time,
    /// aggregates...`.
    WindowAggregate {
        /// Its input.
        input: Box<Plan>,
        /// The windows.
        window: WindowSpec,
        /// The grouping keys, over the input row.
        keys: Vec<Scalar>,
        /// The aggregates, over the input row.
        aggregates: Vec<AggCall>,
        /// Windowing again rows already windowed (grouped by their window_start and
        /// window_end): the key columns holding them, which are the result's windows.
        window_keys: Option<(usize, usize)>,
        /// Aggregated in two phases: each subtask's rows per key and slice of the windows
        /// (`WindowKind::slices`) in each frame, before the shuffle; the global phase merges
        /// those partial aggregates into the windows their slices are in.
        two_phase: bool,
    },
    /// Aggregates per key over the whole stream, updated with each row: `keys...,
    /// aggregates...` as a changelog.
    GroupAggregate {
        /// Its input.
        input: Box<Plan>,
        /// The grouping keys, over the input row.
        keys: Vec<Scalar>,
        /// The aggregates, over the input row.
        aggregates: Vec<AggCall>,
        /// Aggregated in two phases: each subtask's rows per key and frame before the shuffle
        /// (`table.optimizer.agg-phase-strategy` = `TWO_PHASE`; inserts-only inputs).
        two_phase: bool,
    },
    /// Rows of two inputs paired on equal keys (and a residual condition).
    Join {
        /// The left input.
        left: Box<Plan>,
        /// The right input.
        right: Box<Plan>,
        /// Inner or outer.
        kind: JoinKind,
        /// The left rows' key, equal to the right rows'.
        left_keys: Vec<Scalar>,
        /// The right rows' key.
        right_keys: Vec<Scalar>,
        /// The rest of the condition, over the joined row (left columns, then right ones).
        residual: Option<Scalar>,
        /// How rows meet: kept (regular), within a time bound (interval) or per window.
        strategy: JoinStrategy,
    },
    /// `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` kept to the first `limit` rows per
    /// partition (Top-N; deduplication when it is 1): the input's rows with their row number.
    Rank {
        /// Its input.
        input: Box<Plan>,
        /// The partition keys, over the input row.
        partition: Vec<Scalar>,
        /// The order: expression and whether descending.
        order: Vec<(Scalar, bool)>,
        /// How many rows per partition (the enclosing query's `WHERE rn <= N`).
        limit: Option<i64>,
        /// Window Top-N: the input's window_end column (partitioned by the window), ranked once
        /// when the watermark passes the window's end.
        window_end: Option<usize>,
        /// Whether the row number is read above: without it a row entering the top emits
        /// itself and the row it pushed out, not the change of every rank it moved.
        numbered: bool,
    },
    /// Aggregates `OVER (PARTITION BY ... ORDER BY time ROWS|RANGE ... PRECEDING)`: each row with
    /// the aggregates of its frame, in event-time order.
    Over {
        /// Its input.
        input: Box<Plan>,
        /// The partition keys, over the input row.
        partition: Vec<Scalar>,
        /// The event-time column ordering the rows.
        time_column: usize,
        /// The frame.
        frame: OverFrame,
        /// The aggregates, over the input row.
        aggregates: Vec<AggCall>,
    },
    /// A lookup join (`JOIN t FOR SYSTEM_TIME AS OF s.proc`): each input row joined with the rows
    /// of `table` whose `right_keys` columns equal its `left_keys`, as they are when the job
    /// starts (the table is read whole then). Inner or left.
    LookupJoin {
        /// The stream.
        input: Box<Plan>,
        /// The table looked up.
        table: Box<SqlTable>,
        /// Inner or left.
        kind: JoinKind,
        /// The stream's side of each key equality (over the input row).
        left_keys: Vec<Scalar>,
        /// The table's key columns (over its physical row).
        right_keys: Vec<usize>,
        /// The rest of the condition, over the joined row.
        residual: Option<Scalar>,
    },
    /// `UNION ALL` of inputs with one schema.
    Union {
        /// The inputs.
        inputs: Vec<Plan>,
    },
}

/// A plan: an operator, its output schema, and whether its output has updates.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The operator.
    pub node: PlanNode,
    /// Its rows' columns.
    pub schema: Schema,
    /// Whether its rows are a changelog with updates and deletes (else inserts only).
    pub updating: bool,
}

impl Plan {
    /// The plan as an indented tree, one operator per line, as `EXPLAIN` shows it.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        self.explain_into(&mut out, 0);
        out
    }

    fn explain_into(&self, out: &mut String, depth: usize) {
        let indent = "  ".repeat(depth);
        let columns = self.schema.names().collect::<Vec<_>>().join(", ");
        let mode = if self.updating { " changelog" } else { "" };
        let line = match &self.node {
            PlanNode::Scan { table, pushed } => {
                let connector = table.def.option("connector").unwrap_or("?");
                let watermark = match &table.watermark {
                    Some(watermark) => {
                        format!(", watermark={} - {} ms", table.schema.fields[watermark.column].name, watermark.delay_ms)
                    }
                    None => String::new(),
                };
                let pushed = match pushed {
                    Some(pushed) => {
                        let read: Vec<String> = table
                            .physical
                            .fields
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| pushed.columns[*i])
                            .map(|(i, field)| match (&pushed.fields[i], &field.data_type) {
                                (Some(fields), crate::types::SqlType::Row(names)) => {
                                    let names: Vec<&str> =
                                        names.iter().zip(fields).filter(|(_, read)| **read).map(|((name, _), _)| name.as_str()).collect();
                                    format!("{}.{{{}}}", field.name, names.join(", "))
                                }
                                _ => field.name.clone(),
                            })
                            .collect();
                        let filter =
                            if pushed.filter.is_empty() { String::new() } else { format!(", {} filter conjuncts", pushed.filter.len()) };
                        let flat = crate::connector::flattened_fields(table, pushed);
                        let flat = if flat.is_empty() {
                            String::new()
                        } else {
                            let name = |(column, field): (usize, usize)| match &table.physical.fields[column].data_type {
                                crate::types::SqlType::Row(fields) => format!("{}.{}", table.physical.fields[column].name, fields[field].0),
                                _ => unreachable!("only fields of ROW columns are given as columns"),
                            };
                            format!(", fields as columns=[{}]", flat.into_iter().map(name).collect::<Vec<_>>().join(", "))
                        };
                        format!(", reads=[{}]{filter}{flat}", read.join(", "))
                    }
                    None => String::new(),
                };
                format!("Scan(table={}, connector={connector}{watermark}{pushed})", table.name())
            }
            PlanNode::Calc { text, .. } => format!("Calc({text})"),
            PlanNode::WindowTvf { window, .. } => format!("WindowTableFunction({})", window.kind.describe()),
            PlanNode::WindowAggregate { window, keys, aggregates, two_phase, .. } => format!(
                "{}WindowAggregate(window={}{}, keys={}, aggregates=[{}])",
                if *two_phase { "LocalGlobal" } else { "" },
                window.kind.describe(),
                if window.processing_time { " over processing time" } else { "" },
                keys.len(),
                aggregates.iter().map(|call| call.text.as_str()).collect::<Vec<_>>().join(", ")
            ),
            PlanNode::GroupAggregate { keys, aggregates, two_phase, .. } => format!(
                "{}GroupAggregate(keys={}, aggregates=[{}])",
                if *two_phase { "LocalGlobal" } else { "" },
                keys.len(),
                aggregates.iter().map(|call| call.text.as_str()).collect::<Vec<_>>().join(", ")
            ),
            PlanNode::Union { .. } => "Union(all)".to_string(),
            PlanNode::LookupJoin { table, kind, left_keys, .. } => {
                format!("LookupJoin(table={}, kind={kind:?}, keys={})", table.name(), left_keys.len())
            }
            PlanNode::Rank { partition, order, limit, window_end, .. } => format!(
                "{}Rank(ROW_NUMBER, partition keys={}, order keys={}, limit={})",
                if window_end.is_some() { "Window" } else { "" },
                partition.len(),
                order.len(),
                limit.map_or("none".to_string(), |limit| limit.to_string())
            ),
            PlanNode::Over { frame, aggregates, partition, .. } => format!(
                "OverAggregate(partition keys={}, frame={frame:?}, aggregates=[{}])",
                partition.len(),
                aggregates.iter().map(|call| call.text.as_str()).collect::<Vec<_>>().join(", ")
            ),
            PlanNode::Join { kind, left_keys, residual, strategy, .. } => {
                let how = match strategy {
                    JoinStrategy::Regular { ttl_ms: None } => "regular".to_string(),
                    JoinStrategy::Regular { ttl_ms: Some(ttl) } => format!("regular, state ttl {ttl} ms"),
                    JoinStrategy::Interval { lower_ms, upper_ms, .. } => format!("interval [{lower_ms}, {upper_ms}] ms"),
                    JoinStrategy::Window { .. } => "window".to_string(),
                };
                let residual = if residual.is_some() { ", with residual condition" } else { "" };
                format!("Join({kind:?}, {how}, keys={}{residual})", left_keys.len())
            }
        };
        let _ = writeln!(out, "{indent}{line} -> [{columns}]{mode}");
        for input in self.inputs() {
            input.explain_into(out, depth + 1);
        }
    }

    /// Its inputs.
    pub fn inputs(&self) -> Vec<&Plan> {
        match &self.node {
            PlanNode::Scan { .. } => Vec::new(),
            PlanNode::Calc { input, .. }
            | PlanNode::WindowTvf { input, .. }
            | PlanNode::WindowAggregate { input, .. }
            | PlanNode::GroupAggregate { input, .. }
            | PlanNode::Rank { input, .. }
            | PlanNode::Over { input, .. }
            | PlanNode::LookupJoin { input, .. } => vec![input],
            PlanNode::Union { inputs } => inputs.iter().collect(),
            PlanNode::Join { left, right, .. } => vec![left, right],
        }
    }
}
