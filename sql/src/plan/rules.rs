//! Rules that rewrite a plan into a cheaper one computing the same rows.
//!
//! - **Projection and filter push-down**: a scan learns which columns (and fields of ROW
//!   columns) the Calc above it reads, and the conjuncts of its filter over physical columns,
//!   so its connector generates no more than that.
//! - **Calc fusion** (Flink's CalcMergeRule): a filter and projection over another one become
//!   one, the upper one's expressions reading the lower one's instead of its columns, and the
//!   filters joined with AND (the lower one's first), so a row is projected once, not once per
//!   view or subquery it passes through.

use crate::catalog::SqlTable;
use crate::expr::Scalar;
use crate::plan::{Plan, PlanNode, ScanPushDown};

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

/// `plan` with every rule applied, bottom up.
pub fn optimize(plan: Plan) -> Plan {
    let Plan { node, schema, updating } = plan;
    let node = match node {
        PlanNode::Calc { input, projection, filter, text } => {
            let input = optimize(*input);
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
        PlanNode::WindowAggregate { input, window, keys, aggregates, window_keys } => {
            PlanNode::WindowAggregate { input: Box::new(optimize(*input)), window, keys, aggregates, window_keys }
        }
        PlanNode::GroupAggregate { input, keys, aggregates, two_phase } => {
            PlanNode::GroupAggregate { input: Box::new(optimize(*input)), keys, aggregates, two_phase }
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
}
