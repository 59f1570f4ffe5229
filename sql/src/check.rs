//! Checking a script without running it: every statement is planned as `tethys sql run` would
//! plan it, and every error found is reported with its place.
//!
//! First the names: every table a statement reads or writes must be defined (by `CREATE TABLE`
//! or `CREATE VIEW` before it), every column a simple query names must be one of its table's; a
//! misspelled name gets the nearest defined one as a suggestion. Columns are checked here in
//! queries over one table (`SELECT ... FROM t WHERE ...`, with no subquery), every misspelled
//! one at once.
//!
//! Then each statement runs in a [`SqlSession`], in order: a definition changes its catalog, a
//! `SET` its settings, and an `INSERT` or `SELECT` is planned and built into an engine job that
//! is never started (building a job only defines its graph; the filesystem connector checks that
//! its path exists). So every planning error is found: types, unknown functions, misplaced
//! aggregates, windows over columns without watermarks, updates into append-only sinks, bad
//! connector options. A statement whose names are wrong reports those only (its planning error
//! would repeat the first of them). A statement that fails leaves the catalog as it stands, and
//! checking goes on with the next; a statement that reads a table or view whose definition
//! failed (or which a statement that did not parse may have defined) is not reported again.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, visit_relations, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, SelectItem, SetExpr,
    TableFactor, Visit, Visitor,
};

use crate::ddl::TableDef;
use crate::error::{Position, SqlError};
use crate::function::FunctionRegistry;
use crate::script::{parse_script_partly, Statement, StatementAt};
use crate::session::{Outcome, SqlSession};

/// The tables and views a script defines, by name (without case).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: BTreeMap<String, TableDef>,
    views: BTreeMap<String, String>,
}

impl Catalog {
    /// Table `name`, if defined.
    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.get(&name.to_lowercase())
    }

    /// The defined tables, by name.
    pub fn tables(&self) -> impl Iterator<Item = &TableDef> {
        self.tables.values()
    }

    fn knows(&self, name: &str) -> bool {
        let key = name.to_lowercase();
        self.tables.contains_key(&key) || self.views.contains_key(&key)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.values().map(|table| table.name.as_str()).chain(self.views.values().map(String::as_str))
    }
}

/// The defined name nearest to `name`, if near enough to be a misspelling of it.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = name.to_lowercase();
    let (distance, nearest) =
        known.into_iter().map(|candidate| (strsim::damerau_levenshtein(&wanted, &candidate.to_lowercase()), candidate)).min()?;
    (distance <= (wanted.chars().count() / 3).max(1)).then_some(nearest)
}

fn unknown(kind: &str, name: &str, at: Option<Position>, suggestion: Option<&str>) -> SqlError {
    let hint = suggestion.map(|nearest| format!("; did you mean {nearest}?")).unwrap_or_default();
    SqlError::at(at, format!("no {kind} named {name}{hint}"))
}

fn name_at(name: &ObjectName) -> Option<Position> {
    name.0.first().and_then(|part| part.as_ident()).and_then(|ident| Position::of(ident.span.start))
}

/// Parses and checks a script, calling the built-in functions: its statements and what it
/// defines, or every error found, in the order of the script.
pub fn check_script(sql: &str) -> Result<(Vec<StatementAt>, Catalog), Vec<SqlError>> {
    check_script_with(sql, &FunctionRegistry::default())
}

/// Parses and checks a script whose queries call `functions`: its statements and what it
/// defines, or every error found, in the order of the script. Nothing runs.
pub fn check_script_with(sql: &str, functions: &FunctionRegistry) -> Result<(Vec<StatementAt>, Catalog), Vec<SqlError>> {
    let (statements, parse_errors) = parse_script_partly(sql);
    let first_unparsed = parse_errors.iter().map(|error| error.at.unwrap_or(Position { line: 0, column: 0 })).min();
    let mut errors: Vec<SqlError> = parse_errors;
    let mut catalog = Catalog::default();
    let mut session = SqlSession::new(functions.clone());
    // Tables and views whose definition failed.
    let mut undefined: BTreeSet<String> = BTreeSet::new();
    for statement in &statements {
        let mut found = Vec::new();
        match &statement.statement {
            Statement::CreateTable(table) => {
                let key = table.name.to_lowercase();
                if catalog.knows(&key) && !table.if_not_exists {
                    found.push(SqlError::at(statement.at, format!("table {} is defined already", table.name)));
                } else {
                    catalog.tables.entry(key).or_insert_with(|| table.as_ref().clone());
                }
            }
            Statement::Other(other) => {
                check_statement(other, &catalog, &mut found);
                if let sqlparser::ast::Statement::CreateView(view) = other.as_ref() {
                    let name = view.name.to_string();
                    catalog.views.insert(name.to_lowercase(), name);
                }
            }
            Statement::StatementSet(inserts) => {
                for insert in inserts {
                    if let Statement::Other(other) = &insert.statement {
                        check_statement(other, &catalog, &mut found);
                    }
                }
            }
        }
        // Whether what it reads may be missing because of an error reported already.
        let after_unparsed = first_unparsed.is_some_and(|unparsed| statement.at.is_none_or(|at| at > unparsed));
        let doubtful = referenced(statement).iter().any(|name| {
            let known = session.catalog().table(name).is_some() || session.catalog().view(name).is_some();
            !known && (after_unparsed || undefined.contains(name))
        });
        let planned = match session.execute(statement) {
            // The job is defined, not started: it is checked as starting it would check it.
            Ok(Outcome::Job(job)) => {
                job.env.plan().map(drop).map_err(|error| SqlError::at(statement.at, format!("the job cannot run: {error}")))
            }
            Ok(_) => Ok(()),
            Err(error) => {
                undefined.extend(defined(statement));
                Err(SqlError { at: error.at.or(statement.at), ..error })
            }
        };
        if doubtful {
            continue;
        }
        if found.is_empty() {
            found.extend(planned.err());
        }
        errors.extend(found);
    }
    // In the order of their places (a table's bad options are where it is defined), each once
    // (two jobs reading that table find them twice).
    errors.sort_by_key(|error| (error.at.is_none(), error.at));
    let mut distinct: Vec<SqlError> = Vec::new();
    for error in errors {
        if !distinct.contains(&error) {
            distinct.push(error);
        }
    }
    match distinct.is_empty() {
        true => Ok((statements, catalog)),
        false => Err(distinct),
    }
}

/// The tables and views a statement reads or writes (without case), not those its `WITH`
/// defines.
fn referenced(statement: &StatementAt) -> BTreeSet<String> {
    struct Names(BTreeSet<String>);
    impl Visitor for Names {
        type Break = ();

        fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
            self.0.insert(relation.to_string().to_lowercase());
            ControlFlow::Continue(())
        }

        // A window function's table: `TABLE(TUMBLE(t, ...))` as the script parser passes it.
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::TableFunction { expr: Expr::Function(function), .. } = factor {
                if let FunctionArguments::List(list) = &function.args {
                    for argument in &list.args {
                        let (FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))
                        | FunctionArg::Named { arg: FunctionArgExpr::Expr(expr), .. }) = argument
                        else {
                            continue;
                        };
                        if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                            self.0.insert(expr.to_string().to_lowercase());
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    if let Statement::StatementSet(inserts) = &statement.statement {
        return inserts.iter().flat_map(referenced).collect();
    }
    let Statement::Other(ast) = &statement.statement else { return BTreeSet::new() };
    let mut names = Names(BTreeSet::new());
    let _ = match ast.as_ref() {
        sqlparser::ast::Statement::CreateView(view) => view.query.visit(&mut names),
        other => other.visit(&mut names),
    };
    if let sqlparser::ast::Statement::Drop { names: dropped, .. } = ast.as_ref() {
        names.0.extend(dropped.iter().map(|name| name.to_string().to_lowercase()));
    }
    if let sqlparser::ast::Statement::Query(query) = ast.as_ref() {
        for cte in query.with.iter().flat_map(|with| &with.cte_tables) {
            names.0.remove(&cte.alias.name.value.to_lowercase());
        }
    }
    names.0
}

/// The table or view a statement defines (without case), if it defines one.
fn defined(statement: &StatementAt) -> Option<String> {
    match &statement.statement {
        Statement::CreateTable(table) => Some(table.name.to_lowercase()),
        Statement::Other(ast) => match ast.as_ref() {
            sqlparser::ast::Statement::CreateView(view) => Some(view.name.to_string().to_lowercase()),
            _ => None,
        },
        Statement::StatementSet(_) => None,
    }
}

fn check_statement(statement: &sqlparser::ast::Statement, catalog: &Catalog, errors: &mut Vec<SqlError>) {
    // Names a WITH clause defines are tables of the statement too.
    let mut local: Vec<String> = Vec::new();
    if let sqlparser::ast::Statement::Query(query) = statement {
        if let Some(with) = &query.with {
            local.extend(with.cte_tables.iter().map(|cte| cte.alias.name.value.to_lowercase()));
        }
    }
    let mut check_relation = |relation: &ObjectName| {
        let name = relation.to_string();
        if !catalog.knows(&name) && !local.contains(&name.to_lowercase()) {
            errors.push(unknown("table", &name, name_at(relation), did_you_mean(&name, catalog.names())));
        }
        ControlFlow::<()>::Continue(())
    };
    // A view's own name is what it defines: only its query reads tables.
    let _ = match statement {
        sqlparser::ast::Statement::CreateView(view) => visit_relations(&view.query, &mut check_relation),
        _ => visit_relations(statement, &mut check_relation),
    };
    let query = match statement {
        sqlparser::ast::Statement::Query(query) => Some(query.as_ref()),
        sqlparser::ast::Statement::Insert(insert) => insert.source.as_deref(),
        _ => None,
    };
    if let Some(SetExpr::Select(select)) = query.map(|query| query.body.as_ref()) {
        // One plain table, no join: its columns are all a name can be.
        let [from] = select.from.as_slice() else { return };
        let TableFactor::Table { name, alias, .. } = &from.relation else { return };
        let Some(table) = catalog.table(&name.to_string()) else { return };
        if !from.joins.is_empty() {
            return;
        }
        let qualifiers: Vec<String> =
            [Some(table.name.to_lowercase()), alias.as_ref().map(|alias| alias.name.value.to_lowercase())].into_iter().flatten().collect();
        let aliases: Vec<String> = select
            .projection
            .iter()
            .filter_map(|item| match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_lowercase()),
                _ => None,
            })
            .collect();
        let mut exprs: Vec<&Expr> = select
            .projection
            .iter()
            .filter_map(|item| match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => Some(expr),
                _ => None,
            })
            .collect();
        exprs.extend(select.selection.as_ref());
        // A subquery (it names a table of its own) has names of its own.
        let has_subquery = exprs.iter().any(|expr| visit_relations(*expr, |_| ControlFlow::Break(())).is_break());
        if has_subquery {
            return;
        }
        let columns = || table.columns.iter().map(|column| column.name.as_str());
        for expr in exprs {
            let _ = visit_expressions(expr, |inner| {
                let ident = match inner {
                    Expr::Identifier(ident) => Some(ident),
                    Expr::CompoundIdentifier(parts) if parts.len() == 2 && qualifiers.contains(&parts[0].value.to_lowercase()) => {
                        Some(&parts[1])
                    }
                    _ => None,
                };
                if let Some(ident) = ident {
                    let known = table.column(&ident.value).is_some() || aliases.contains(&ident.value.to_lowercase());
                    if !known {
                        let at = Position::of(ident.span.start);
                        let message = format!("{} of table {}", ident.value, table.name);
                        errors.push(unknown("column", &message, at, did_you_mean(&ident.value, columns())));
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: &str = "CREATE TABLE bids (auction BIGINT, price DECIMAL(10, 2), bidder STRING) WITH ('connector' = 'datagen');\n\
                          CREATE TABLE out (auction BIGINT, price DECIMAL(10, 2)) WITH ('connector' = 'print');\n";

    fn errors(statements: &str) -> Vec<String> {
        let script = format!("{TABLES}{statements}");
        check_script(&script).expect_err("refused").iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_script_whose_names_are_all_defined_passes() {
        let script =
            format!("{TABLES}INSERT INTO out SELECT auction, CAST(price * 2 AS DECIMAL(10, 2)) AS doubled FROM bids WHERE price > 10 AND bids.bidder <> 'x';");
        let (statements, catalog) = check_script(&script).unwrap();
        assert_eq!(statements.len(), 3);
        assert_eq!(catalog.tables().count(), 2);
        // A WITH clause's names and a view are tables too.
        let script = format!(
            "{TABLES}WITH cheap AS (SELECT * FROM bids) SELECT * FROM cheap;\nCREATE VIEW v AS SELECT * FROM bids;\nSELECT * FROM v;"
        );
        check_script(&script).unwrap();
    }

    #[test]
    fn misspelled_tables_and_columns_are_refused_where_they_are_with_the_nearest_name() {
        assert_eq!(errors("INSERT INTO outt SELECT auction FROM bids;"), ["line 3, column 13: no table named outt; did you mean out?"]);
        assert_eq!(errors("SELECT auction FROM bidz;"), ["line 3, column 21: no table named bidz; did you mean bids?"]);
        assert_eq!(
            errors("SELECT auction, prise FROM bids WHERE bider = 'a';"),
            [
                "line 3, column 17: no column named prise of table bids; did you mean price?",
                "line 3, column 39: no column named bider of table bids; did you mean bidder?"
            ]
        );
        assert_eq!(errors("SELECT nothing_like_it FROM bids;"), ["line 3, column 8: no column named nothing_like_it of table bids"]);
        assert_eq!(errors("CREATE TABLE bids (a INT);"), ["line 3, column 1: table bids is defined already"]);
    }

    #[test]
    fn every_statement_is_planned_and_each_failing_one_reported_where_it_fails() {
        let found = errors("SELECT auction + bidder FROM bids;\nSELECT UPPR(bidder) FROM bids;\nSELECT auction FROM bids;");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0], "line 3, column 8: operator + does not take BIGINT and STRING");
        assert!(found[1].starts_with("line 4, column 8: no function named UPPR; did you mean UPPER?"), "{found:?}");
    }

    #[test]
    fn planning_errors_of_every_kind_are_found_without_running_anything() {
        let script = format!(
            "{TABLES}CREATE TABLE clicks (url STRING, ts TIMESTAMP(3)) WITH ('connector' = 'datagen', 'rows-per-secnd' = '5');\n\
             CREATE TABLE files (auction BIGINT, n BIGINT) WITH ('connector' = 'filesystem', 'path' = 'out/', 'format' = 'csv');\n\
             SELECT auction FROM bids WHERE COUNT(*) > 1;\n\
             SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end;\n\
             INSERT INTO files SELECT auction, COUNT(*) FROM bids GROUP BY auction;\n\
             INSERT INTO out SELECT auction, price FROM bids;\n\
             SELECT url FROM clicks;"
        );
        let found: Vec<String> = check_script(&script).expect_err("refused").iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 4, "{found:?}");
        // The bad option is where its table is defined; an updating query into a table that takes
        // no updates, at the INSERT that writes it.
        assert!(found[0].starts_with("line 3, column 1: table clicks: the datagen connector has no option 'rows-per-secnd'"), "{found:?}");
        assert_eq!(found[1], "line 5, column 32: aggregate function COUNT is not allowed here");
        assert!(found[2].starts_with("line 6, column 74: TUMBLE needs an event-time column, and ts is not one"), "{found:?}");
        assert!(found[3].starts_with("line 7, column 1: table files (filesystem) takes only inserts"), "{found:?}");
    }

    #[test]
    fn a_failed_definition_is_reported_once_and_checking_goes_on() {
        let found = errors(
            "CREATE TABLE broken (a INT, b AS NO_SUCH(a)) WITH ('connector' = 'datagen');\n\
             CREATE VIEW v AS SELECT a FROM broken;\nSELECT * FROM v;\nSELECT a FROM broken;\nSELECT prise FROM bids;",
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("line 3, ") && found[0].contains("NO_SUCH"), "{found:?}");
        assert!(found[1].starts_with("line 7, column 8: no column named prise"), "{found:?}");
        // Nor is a name that a statement that did not parse may define.
        let found =
            errors("CREATE TABLE later (a INT WITH ('connector' = 'datagen');\nSELECT a FROM later;\nSELECT UPPR(bidder) FROM bids;");
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("line 3, ") && found[1].starts_with("line 5, column 8: no function named UPPR"), "{found:?}");
    }

    #[test]
    fn suggestions_come_only_for_near_names() {
        assert_eq!(did_you_mean("prise", ["price", "auction"]), Some("price"));
        assert_eq!(did_you_mean("AUCTON", ["price", "auction"]), Some("auction"));
        assert_eq!(did_you_mean("x", ["price", "auction"]), None);
    }
}
