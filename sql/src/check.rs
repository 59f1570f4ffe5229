//! Checking a script against what it defines: every table a statement reads or writes must be
//! defined (by `CREATE TABLE` or `CREATE VIEW` before it), every column a simple query names
//! must be one of its table's; a misspelled name gets the nearest defined one as a suggestion.
//!
//! Columns are checked in queries over one table (`SELECT ... FROM t WHERE ...`, with no
//! subquery); joins, window functions and views are checked once the planner knows their
//! schemas.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sqlparser::ast::{visit_expressions, visit_relations, Expr, ObjectName, SelectItem, SetExpr, TableFactor};

use crate::ddl::TableDef;
use crate::error::{Position, SqlError};
use crate::script::{parse_script, Statement, StatementAt};

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

/// Parses and checks a script: its statements and what it defines, or every error found.
pub fn check_script(sql: &str) -> Result<(Vec<StatementAt>, Catalog), Vec<SqlError>> {
    let statements = parse_script(sql)?;
    let mut catalog = Catalog::default();
    let mut errors = Vec::new();
    for statement in &statements {
        match &statement.statement {
            Statement::CreateTable(table) => {
                let key = table.name.to_lowercase();
                if catalog.knows(&key) && !table.if_not_exists {
                    errors.push(SqlError::at(statement.at, format!("table {} is defined already", table.name)));
                } else {
                    catalog.tables.entry(key).or_insert_with(|| table.as_ref().clone());
                }
            }
            Statement::Other(other) => {
                check_statement(other, &catalog, &mut errors);
                if let sqlparser::ast::Statement::CreateView(view) = other.as_ref() {
                    let name = view.name.to_string();
                    catalog.views.insert(name.to_lowercase(), name);
                }
            }
        }
    }
    match errors.is_empty() {
        true => Ok((statements, catalog)),
        false => Err(errors),
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
            format!("{TABLES}INSERT INTO out SELECT auction, price * 2 AS doubled FROM bids WHERE price > 10 AND bids.bidder <> 'x';");
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
    fn suggestions_come_only_for_near_names() {
        assert_eq!(did_you_mean("prise", ["price", "auction"]), Some("price"));
        assert_eq!(did_you_mean("AUCTON", ["price", "auction"]), Some("auction"));
        assert_eq!(did_you_mean("x", ["price", "auction"]), None);
    }
}
