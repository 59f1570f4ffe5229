//! Rules that rewrite a plan into a cheaper one computing the same rows.
//!
//! - **Projection and filter push-down**: a scan learns which columns (and fields of ROW
//!   columns) the Calc above it reads, and the conjuncts of its filter over physical columns,
//!   so its connector generates no more than that.
//! - **Calc fusion** (Flink's CalcMergeRule): a filter and projection over another one become
//!   one, the upper one's expressions reading the lower one's instead of its columns, and the
//!   filters joined with AND (the lower one's first), so a row is projected once, not once per
//!   view or subquery it passes through.
//! - **Column trimming** under aggregates: the Calc below an aggregate computes only the columns
//!   the aggregate reads (its keys, arguments and time), not every column of the view it is.

use crate::aggregate::AggCall;
use crate::catalog::SqlTable;
use crate::expr::Scalar;
use crate::plan::{JoinStrategy, Plan, PlanNode, ScanPushDown, WindowSpec};

/// Records what `scalar` reads of the scan's row: whole columns, or fields of ROW columns.
fn reads(scalar: &Scalar, physical: usize, pushed: &mut ScanPushDown, table: &SqlTable) {
    match scalar {
        Scalar::Field(inner, field) => match inner.as_ref() {
            Scalar::Column(column) if *column < physical => {
                if !pushed.columns[*column] || pushed.fields[*column].is_some() {
                    pushed.columns[*column] = true;
                    let width = match &table.physical.fields[*column].data_type {
                        crate::types::SqlType::Row(fields) => fields.len(),
                        _ => 0,
                    };
                    let fields = pushed.fields[*column].get_or_insert_with(|| vec![false; width]);
                    if let Some(read) = fields.get_mut(*field) {
                        *read = true;
                    }
                }
            }
            inner => reads(inner, physical, pushed, table),
        },
        Scalar::Column(column) if *column < physical => {
            pushed.columns[*column] = true;
            pushed.fields[*column] = None;
        }
        Scalar::Column(column) => {
            let computed = column - physical;
            if !pushed.computed[computed] {
                pushed.computed[computed] = true;
                reads(&table.computed[computed], physical, pushed, table);
            }
        }
        other => other.children().into_iter().for_each(|child| reads(child, physical, pushed, table)),
    }
}

/// What a Calc over a scan needs of it (the watermark's column too), and its filter's
/// conjuncts over physical columns.
fn push_down(table: &SqlTable, projection: &[Scalar], filter: Option<&Scalar>) -> ScanPushDown {
    let physical = table.physical.fields.len();
    let mut pushed = ScanPushDown {
        columns: vec![false; physical],
        fields: vec![None; physical],
        filter: Vec::new(),
        computed: vec![false; table.computed.len()],
    };
    if let Some(watermark) = &table.watermark {
        reads(&Scalar::Column(watermark.column), physical, &mut pushed, table);
    }
    for scalar in projection.iter().chain(filter) {
        reads(scalar, physical, &mut pushed, table);
    }
    if let Some(filter) = filter {
        for conjunct in filter.clone().conjuncts() {
            let mut columns = Vec::new();
            conjunct.columns(&mut columns);
            if columns.iter().all(|column| *column < physical) {
                pushed.filter.push(conjunct);
            }
        }
    }
    pushed
}

/// The columns `scalars` read, sorted, each once.
fn columns_read<'a>(scalars: impl IntoIterator<Item = &'a Scalar>) -> Vec<usize> {
    let mut columns = Vec::new();
    scalars.into_iter().for_each(|scalar| scalar.columns(&mut columns));
    columns.sort_unstable();
    columns.dedup();
    columns
}

/// Column trimming under an aggregate (as Calcite's field trimmer): when its input is a Calc,
/// the Calc computes only the columns `read` (sorted, each once) instead of every column it
/// selects, and its scan is told to generate only what those need. Returns the input and the
/// new position of each column read (`None`: nothing changed).
fn trimmed(input: Plan, read: &[usize]) -> (Plan, Option<Vec<usize>>) {
    let moved = |read: &[usize]| {
        let mut moved = vec![usize::MAX; read.last().map_or(0, |last| last + 1)];
        read.iter().enumerate().for_each(|(to, &from)| moved[from] = to);
        moved
    };
    let (below, projection, filter, text, schema, updating) = match input {
        Plan { node: PlanNode::Calc { input: below, projection, filter, text }, schema, updating } => {
            (below, projection, filter, text, schema, updating)
        }
        // A scan read whole gets a Calc selecting what is read, which its scan then fuses with.
        Plan { node: PlanNode::Scan { table, pushed: None }, schema, updating } if read.len() < schema.fields.len() => {
            let projection: Vec<Scalar> = read.iter().map(|&column| Scalar::Column(column)).collect();
            let names: Vec<&str> = read.iter().map(|&column| schema.fields[column].name.as_str()).collect();
            let text = format!("select=[{}]", names.join(", "));
            let mut narrowed = schema.clone();
            narrowed.fields = read.iter().map(|&column| schema.fields[column].clone()).collect();
            let pushed = push_down(&table, &projection, None);
            let scan = Plan { node: PlanNode::Scan { table, pushed: Some(pushed) }, schema, updating };
            let calc = PlanNode::Calc { input: Box::new(scan), projection, filter: None, text };
            return (Plan { node: calc, schema: narrowed, updating }, Some(moved(read)));
        }
        input => return (input, None),
    };
    if read.len() == projection.len() {
        let calc = PlanNode::Calc { input: below, projection, filter, text };
        return (Plan { node: calc, schema, updating }, None);
    }
    let projection: Vec<Scalar> = read.iter().map(|&column| projection[column].clone()).collect();
    let mut schema = schema;
    schema.fields = read.iter().map(|&column| schema.fields[column].clone()).collect();
    let below = match *below {
        Plan { node: PlanNode::Scan { table, pushed: Some(_) }, schema, updating } => {
            let pushed = push_down(&table, &projection, filter.as_ref());
            Box::new(Plan { node: PlanNode::Scan { table, pushed: Some(pushed) }, schema, updating })
        }
        below => Box::new(below),
    };
    (Plan { node: PlanNode::Calc { input: below, projection, filter, text }, schema, updating }, Some(moved(read)))
}

/// A join under a Calc with each input trimmed (see [`trimmed`]) to the columns the Calc or the
/// join reads (keys, residual condition, time columns), so the join keeps and copies no others;
/// returns the join and where each of its columns went (`None`: nothing changed).
fn trimmed_join(join: Plan, above: &[Scalar]) -> (Plan, Option<Vec<usize>>) {
    let Plan { node: PlanNode::Join { left, right, kind, left_keys, right_keys, residual, strategy }, schema, updating } = join else {
        return (join, None);
    };
    let left_width = left.schema.fields.len();
    let joined = columns_read(above.iter().chain(&residual));
    let (mut left_read, mut right_read): (Vec<usize>, Vec<usize>) = (
        joined.iter().copied().filter(|&column| column < left_width).collect(),
        joined.iter().filter(|&&column| column >= left_width).map(|&column| column - left_width).collect(),
    );
    left_read.extend(columns_read(&left_keys));
    right_read.extend(columns_read(&right_keys));
    match strategy {
        JoinStrategy::Interval { left_time, right_time, .. } => {
            left_read.push(left_time);
            right_read.push(right_time);
        }
        JoinStrategy::Window { left_end, right_end } => {
            left_read.push(left_end);
            right_read.push(right_end);
        }
        JoinStrategy::Regular { .. } => {}
    }
    for read in [&mut left_read, &mut right_read] {
        read.sort_unstable();
        read.dedup();
    }
    let right_width = right.schema.fields.len();
    let (left, left_moved) = trimmed(*left, &left_read);
    let (right, right_moved) = trimmed(*right, &right_read);
    if left_moved.is_none() && right_moved.is_none() {
        let join = PlanNode::Join { left: Box::new(left), right: Box::new(right), kind, left_keys, right_keys, residual, strategy };
        return (Plan { node: join, schema, updating }, None);
    }
    // The columns each side keeps, and where each column of the joined row (left ones, then
    // right ones) went.
    let left_kept: Vec<usize> = if left_moved.is_some() { left_read } else { (0..left_width).collect() };
    let right_kept: Vec<usize> = if right_moved.is_some() { right_read } else { (0..right_width).collect() };
    let kept: Vec<usize> = left_kept.iter().copied().chain(right_kept.iter().map(|&column| column + left_width)).collect();
    let mut moved = vec![usize::MAX; left_width + right_width];
    kept.iter().enumerate().for_each(|(to, &from)| moved[from] = to);
    let left_moved = &moved[..left_width];
    let right_moved: Vec<usize> = moved[left_width..].iter().map(|&to| to.wrapping_sub(left_kept.len())).collect();
    let mut schema = schema;
    schema.fields = kept.iter().map(|&column| schema.fields[column].clone()).collect();
    let strategy = match strategy {
        JoinStrategy::Interval { left_time, right_time, lower_ms, upper_ms } => {
            JoinStrategy::Interval { left_time: left_moved[left_time], right_time: right_moved[right_time], lower_ms, upper_ms }
        }
        JoinStrategy::Window { left_end, right_end } => {
            JoinStrategy::Window { left_end: left_moved[left_end], right_end: right_moved[right_end] }
        }
        regular => regular,
    };
    let node = PlanNode::Join {
        left: Box::new(left),
        right: Box::new(right),
        kind,
        left_keys: left_keys.iter().map(|key| key.map_columns(&|column| left_moved[column])).collect(),
        right_keys: right_keys.iter().map(|key| key.map_columns(&|column| right_moved[column])).collect(),
        residual: residual.map(|residual| residual.map_columns(&|column| moved[column])),
        strategy,
    };
    (Plan { node, schema, updating }, Some(moved))
}

/// An aggregate call reading its input's columns where `moved` put them.
fn call_moved(call: AggCall, moved: &[usize]) -> AggCall {
    let to = |column: usize| moved[column];
    AggCall {
        argument: call.argument.map(|argument| argument.map_columns(&to)),
        filter: call.filter.map(|filter| filter.map_columns(&to)),
        ..call
    }
}

/// `plan` with every rule applied, bottom up.
pub fn optimize(plan: Plan) -> Plan {
    let Plan { node, schema, updating } = plan;
    let node = match node {
        PlanNode::Calc { input, projection, filter, text } => {
            let input = optimize(*input);
            // The join below reads only what this Calc and the join itself need of its inputs.
            let (input, projection, filter) = match &input.node {
                PlanNode::Join { .. } => match trimmed_join(input, &projection.iter().chain(&filter).cloned().collect::<Vec<_>>()) {
                    (input, None) => (input, projection, filter),
                    (input, Some(moved)) => {
                        let to = |column: usize| moved[column];
                        let projection = projection.iter().map(|scalar| scalar.map_columns(&to)).collect();
                        (input, projection, filter.map(|filter| filter.map_columns(&to)))
                    }
                },
                _ => (input, projection, filter),
            };
            match input.node {
                PlanNode::Calc { input: inner, projection: below, filter: below_filter, text: below_text } => {
                    let read = |column: usize| below[column].clone();
                    let projection: Vec<Scalar> = projection.iter().map(|scalar| scalar.substitute(&read)).collect();
                    let filter = match (below_filter, filter.map(|filter| filter.substitute(&read))) {
                        (Some(below), Some(above)) => Some(Scalar::And(Box::new(below), Box::new(above))),
                        (below, above) => below.or(above),
                    };
                    // What the scan below was told came from the lower Calc alone; the fused one may
                    // read less of it (a view's columns the query does not select).
                    let inner = match *inner {
                        Plan { node: PlanNode::Scan { table, pushed: Some(_) }, schema, updating } => {
                            let pushed = push_down(&table, &projection, filter.as_ref());
                            Box::new(Plan { node: PlanNode::Scan { table, pushed: Some(pushed) }, schema, updating })
                        }
                        inner => Box::new(inner),
                    };
                    PlanNode::Calc { input: inner, projection, filter, text: format!("{text} over {below_text}") }
                }
                PlanNode::Scan { table, pushed: None } => {
                    let pushed = push_down(&table, &projection, filter.as_ref());
                    let scan = Plan { node: PlanNode::Scan { table, pushed: Some(pushed) }, ..input };
                    PlanNode::Calc { input: Box::new(scan), projection, filter, text }
                }
                node => PlanNode::Calc { input: Box::new(Plan { node, ..input }), projection, filter, text },
            }
        }
        PlanNode::Scan { table, pushed } => PlanNode::Scan { table, pushed },
        PlanNode::WindowTvf { input, window } => PlanNode::WindowTvf { input: Box::new(optimize(*input)), window },
        PlanNode::WindowAggregate { input, window, keys, aggregates, window_keys, two_phase } => {
            let time = Scalar::Column(window.time_column);
            let partition: Vec<Scalar> = window.partition.iter().map(|&column| Scalar::Column(column)).collect();
            let arguments = aggregates.iter().flat_map(|call| call.argument.iter().chain(&call.filter));
            let read = columns_read(keys.iter().chain(arguments).chain(&partition).chain([&time]));
            match trimmed(optimize(*input), &read) {
                (input, None) => PlanNode::WindowAggregate { input: Box::new(input), window, keys, aggregates, window_keys, two_phase },
                (input, Some(moved)) => PlanNode::WindowAggregate {
                    input: Box::new(input),
                    window: WindowSpec {
                        time_column: moved[window.time_column],
                        partition: window.partition.iter().map(|&column| moved[column]).collect(),
                        ..window
                    },
                    keys: keys.iter().map(|key| key.map_columns(&|column| moved[column])).collect(),
                    aggregates: aggregates.into_iter().map(|call| call_moved(call, &moved)).collect(),
                    window_keys,
                    two_phase,
                },
            }
        }
        PlanNode::GroupAggregate { input, keys, aggregates, two_phase } => {
            let arguments = aggregates.iter().flat_map(|call| call.argument.iter().chain(&call.filter));
            let read = columns_read(keys.iter().chain(arguments));
            match trimmed(optimize(*input), &read) {
                (input, None) => PlanNode::GroupAggregate { input: Box::new(input), keys, aggregates, two_phase },
                (input, Some(moved)) => PlanNode::GroupAggregate {
                    input: Box::new(input),
                    keys: keys.iter().map(|key| key.map_columns(&|column| moved[column])).collect(),
                    aggregates: aggregates.into_iter().map(|call| call_moved(call, &moved)).collect(),
                    two_phase,
                },
            }
        }
        PlanNode::Join { left, right, kind, left_keys, right_keys, residual, strategy } => PlanNode::Join {
            left: Box::new(optimize(*left)),
            right: Box::new(optimize(*right)),
            kind,
            left_keys,
            right_keys,
            residual,
            strategy,
        },
        PlanNode::Rank { input, partition, order, limit, window_end, numbered } => {
            PlanNode::Rank { input: Box::new(optimize(*input)), partition, order, limit, window_end, numbered }
        }
        PlanNode::Over { input, partition, time_column, frame, aggregates } => {
            PlanNode::Over { input: Box::new(optimize(*input)), partition, time_column, frame, aggregates }
        }
        PlanNode::Union { inputs } => PlanNode::Union { inputs: inputs.into_iter().map(optimize).collect() },
        PlanNode::LookupJoin { input, table, kind, left_keys, right_keys, residual } => {
            PlanNode::LookupJoin { input: Box::new(optimize(*input)), table, kind, left_keys, right_keys, residual }
        }
    };
    Plan { node, schema, updating }
}

#[cfg(test)]
mod tests {
    use crate::session::{Outcome, SqlSession};

    #[test]
    fn projections_through_views_and_subqueries_are_fused_into_one() {
        let mut session = SqlSession::default();
        let outcomes = session
            .execute_script(
                "CREATE TABLE t (a INT, b INT) WITH ('connector' = 'datagen');
                 CREATE VIEW v AS SELECT a + 1 AS c, b FROM t WHERE b > 0;
                 EXPLAIN SELECT c * 2 FROM (SELECT c FROM v WHERE c < 10);",
            )
            .unwrap();
        let Some(Outcome::Explain(plan)) = outcomes.last() else { panic!("an explanation") };
        assert_eq!(plan.matches("Calc(").count(), 1, "{plan}");
    }

    #[test]
    fn a_scan_under_fused_calcs_generates_only_what_the_query_reads() {
        let mut session = SqlSession::default();
        let outcomes = session
            .execute_script(
                "CREATE TABLE t (a INT, b INT, c ROW<x INT, y STRING, z STRING>)
                   WITH ('connector' = 'filesystem', 'path' = '.', 'format' = 'json');
                 CREATE VIEW v AS SELECT a, b, c.x AS x, c.y AS y, c.z AS z FROM t WHERE b > 0;
                 EXPLAIN SELECT a, y FROM v;",
            )
            .unwrap();
        let Some(Outcome::Explain(plan)) = outcomes.last() else { panic!("an explanation") };
        assert!(plan.contains("reads=[a, b, c.{y}]"), "the view's x and z are not generated: {plan}");
    }

    #[test]
    fn an_aggregate_over_a_view_computes_only_the_columns_it_reads() {
        let mut session = SqlSession::default();
        let outcomes = session
            .execute_script(
                "CREATE TABLE t (a INT, b INT, c ROW<x INT, y STRING, z STRING>, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
                   WITH ('connector' = 'filesystem', 'path' = '.', 'format' = 'json');
                 CREATE VIEW v AS SELECT a, b, c.x AS x, c.y AS y, c.z AS z, ts FROM t WHERE b > 0;
                 EXPLAIN SELECT y, COUNT(*), SUM(x) FILTER (WHERE a > 1) FROM v GROUP BY y;
                 EXPLAIN SELECT window_start, y, MAX(a) FROM TABLE(TUMBLE(TABLE v, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
                   GROUP BY window_start, window_end, y;",
            )
            .unwrap();
        let plans: Vec<&String> =
            outcomes.iter().filter_map(|outcome| if let Outcome::Explain(plan) = outcome { Some(plan) } else { None }).collect();
        assert!(plans[0].contains("-> [a, x, y]\n"), "the Calc below the aggregate computes what it reads: {}", plans[0]);
        assert!(plans[0].contains("reads=[a, b, c.{x, y}, ts]"), "the view's z is not generated: {}", plans[0]);
        assert!(plans[1].contains("-> [a, y, ts]\n"), "{}", plans[1]);
        assert!(plans[1].contains("reads=[a, b, c.{y}, ts]"), "{}", plans[1]);
    }

    #[test]
    fn a_join_keeps_only_the_columns_read_above_it_or_by_itself() {
        let mut session = SqlSession::default();
        let outcomes = session
            .execute_script(
                "CREATE TABLE a (id INT, x STRING, y STRING, n INT) WITH ('connector' = 'filesystem', 'path' = '.', 'format' = 'json');
                 CREATE TABLE b (id INT, z STRING, w STRING, m INT) WITH ('connector' = 'filesystem', 'path' = '.', 'format' = 'json');
                 CREATE VIEW va AS SELECT id, x, y, n FROM a WHERE id > 0;
                 EXPLAIN SELECT va.x, b.z FROM va JOIN b ON va.id = b.id AND va.n < b.m;",
            )
            .unwrap();
        let Some(Outcome::Explain(plan)) = outcomes.last() else { panic!("an explanation") };
        assert!(plan.contains("Join(Inner, regular, keys=1, with residual condition) -> [id, x, n, id, z, m]"), "{plan}");
        assert!(plan.contains("-> [id, x, n]\n"), "the view's y is not kept: {plan}");
        // The right side is read whole: a Calc selecting what the join needs fuses with its scan.
        assert!(plan.contains("Calc(select=[id, z, m]) -> [id, z, m]"), "{plan}");
        assert!(plan.contains("reads=[id, z, m]"), "{plan}");
    }
}
