//! `tethys sql`: Tethys's SQL tooling on the command line.
//!
//! `tethys sql check FILE` parses and checks a script (`-` reads standard input), planning every
//! statement as `run` would without running a job: every error with its line, column and a caret
//! under it (a misspelled table, column or function with the nearest defined name; a type error;
//! a window over a column without a watermark...), or what the script defines. `tethys sql
//! complete FILE --line L --column C` lists what may be typed there, best first (a function with
//! its signature and what it does). `tethys sql fmt FILE [--write]` formats it.
//! `tethys sql run FILE` runs it on the embedded engine: definitions and settings in order,
//! each `INSERT` as a job, each `SELECT`'s rows shown as a changelog table as they come (the
//! first `--max-rows`, then a sample each second), until every job ends or `--duration` passes.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tethys_sql::{check_script, complete, format_script, Outcome, Position, SqlJob, SqlSession, Statement};

use super::CliError;

/// `tethys sql ...`.
#[derive(Subcommand, Debug)]
pub enum SqlCommand {
    /// Check a SQL script without running it: every error with its line and column, or what it defines.
    Check(CheckArgs),
    /// What may be typed at a place in a SQL script, best first: `label<TAB>kind<TAB>detail`, then
    /// `<TAB>documentation` where there is some (what a function does).
    Complete(CompleteArgs),
    /// Format a SQL script (comments kept): to standard output, or in place with --write.
    Fmt(FmtArgs),
    /// Run a SQL script on the embedded engine, showing each query's rows as they come.
    Run(RunArgs),
}

/// Arguments of `tethys sql run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The script (`-`: standard input).
    pub file: PathBuf,
    /// Rows of a query shown one by one; after them, a sample and the count each second.
    #[arg(long, default_value_t = 200)]
    pub max_rows: u64,
    /// Stop every job after this many seconds (for unbounded sources); default: run until they end.
    #[arg(long)]
    pub duration: Option<f64>,
}

/// Arguments of `tethys sql fmt`.
#[derive(Args, Debug)]
pub struct FmtArgs {
    /// The script (`-`: standard input).
    pub file: PathBuf,
    /// Write the formatted script back to the file instead of printing it.
    #[arg(long)]
    pub write: bool,
}

/// Arguments of `tethys sql complete`.
#[derive(Args, Debug)]
pub struct CompleteArgs {
    /// The script (`-`: standard input).
    pub file: PathBuf,
    /// The cursor's line, from 1.
    #[arg(long)]
    pub line: u64,
    /// The cursor's column, from 1 (the completion replaces the word that ends there).
    #[arg(long)]
    pub column: u64,
}

/// Arguments of `tethys sql check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The script (`-`: standard input).
    pub file: PathBuf,
}

/// Runs a `tethys sql` command.
pub fn run(command: SqlCommand) -> Result<(), CliError> {
    match command {
        SqlCommand::Check(args) => check(&args),
        SqlCommand::Run(args) => run_script(&args),
        SqlCommand::Fmt(args) => {
            let sql = read_script(&args.file)?;
            let formatted = format_script(&sql).map_err(|errors| {
                let shown: Vec<String> = errors.iter().map(|error| error.render(&sql)).collect();
                format!("{} is not formatted:\n{}", args.file.display(), shown.join("\n\n"))
            })?;
            if args.write && args.file.as_os_str() != "-" {
                std::fs::write(&args.file, formatted).map_err(|error| format!("cannot write {}: {error}", args.file.display()))?;
            } else {
                print!("{formatted}");
            }
            Ok(())
        }
        SqlCommand::Complete(args) => {
            let sql = read_script(&args.file)?;
            if args.line == 0 || args.column == 0 {
                return Err("--line and --column count from 1".into());
            }
            for completion in complete(&sql, Position { line: args.line, column: args.column }) {
                let one_line = |text: &str| text.replace(['\t', '\n'], " ");
                let mut line = format!("{}\t{:?}\t{}", completion.label, completion.kind, one_line(&completion.detail));
                if !completion.documentation.is_empty() {
                    line = format!("{line}\t{}", one_line(&completion.documentation));
                }
                println!("{line}");
            }
            Ok(())
        }
    }
}

fn read_script(file: &std::path::Path) -> Result<String, CliError> {
    if file.as_os_str() == "-" {
        return Ok(std::io::read_to_string(std::io::stdin()).map_err(|error| format!("cannot read standard input: {error}"))?);
    }
    Ok(std::fs::read_to_string(file).map_err(|error| format!("cannot read {}: {error}", file.display()))?)
}

fn check(args: &CheckArgs) -> Result<(), CliError> {
    let sql = read_script(&args.file)?;
    match check_script(&sql) {
        Ok((statements, _catalog)) => {
            for statement in &statements {
                let at = statement.at.map(|at| format!("line {}", at.line)).unwrap_or_default();
                match &statement.statement {
                    Statement::CreateTable(table) => {
                        let connector = table.option("connector").unwrap_or("no connector");
                        println!("{at}: table {} ({} columns, {connector})", table.name, table.columns.len());
                    }
                    Statement::StatementSet(inserts) => println!("{at}: a statement set of {} inserts", inserts.len()),
                    Statement::Other(other) => {
                        let text = other.to_string();
                        let first: String = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                        println!("{at}: {first} ...");
                    }
                }
            }
            println!("ok: {} statements", statements.len());
            Ok(())
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("{}\n", error.render(&sql));
            }
            let count = match errors.len() {
                1 => "1 error".to_string(),
                n => format!("{n} errors"),
            };
            Err(format!("{}: {count}", args.file.display()).into())
        }
    }
}

/// A text table: a header row, a rule, the rows; columns as wide as their widest cell.
fn text_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        format!("| {} |", padded.join(" | "))
    };
    let rule = format!("+{}+", widths.iter().map(|width| "-".repeat(width + 2)).collect::<Vec<_>>().join("+"));
    let mut out = vec![rule.clone(), line(header), rule.clone()];
    out.extend(rows.iter().map(|row| line(row)));
    out.push(rule);
    out.join("\n")
}

fn run_script(args: &RunArgs) -> Result<(), CliError> {
    let sql = read_script(&args.file)?;
    let statements = tethys_sql::parse_script(&sql).map_err(|errors| {
        let shown: Vec<String> = errors.iter().map(|error| error.render(&sql)).collect();
        format!("{}:\n{}", args.file.display(), shown.join("\n\n"))
    })?;
    let deadline = args.duration.map(|seconds| std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds));
    let mut session = SqlSession::default();
    let mut inserts = Vec::new();
    for statement in &statements {
        match session.execute(statement).map_err(|error| error.render(&sql))? {
            Outcome::Done(message) => eprintln!("[INFO] {message}"),
            Outcome::Table { header, rows } => println!("{}", text_table(&header, &rows)),
            Outcome::Explain(plan) => println!("{plan}"),
            Outcome::Job(job) if job.results.is_some() => show_query(*job, args.max_rows, deadline)?,
            Outcome::Job(job) => {
                eprintln!("[INFO] job {} started", job.name);
                let name = job.name.clone();
                let client = job.env.execute_async(&job.name).map_err(|error| format!("job {name}: {error}"))?;
                inserts.push((name, client));
            }
        }
    }
    for (name, client) in inserts {
        while !client.is_finished() && deadline.is_none_or(|deadline| std::time::Instant::now() < deadline) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let result = if client.is_finished() { client.wait() } else { client.cancel() };
        let result = result.map_err(|error| format!("job {name}: {error}"))?;
        let written: u64 =
            result.operators.iter().filter(|operator| operator.name.starts_with("Sink: ")).map(|operator| operator.records_in).sum();
        eprintln!("[INFO] job {name} ended after {:.1} s: {written} rows written", result.elapsed.as_secs_f64());
    }
    Ok(())
}

/// Widest column of a query's result table, in characters (Flink's SQL client's
/// `sql-client.display.max-column-width` default).
const RESULT_COLUMN_WIDTH_MAX: usize = 30;

/// `cell` if it fits `width` characters, else its start and "..." in `width` characters.
fn cut_to_width(cell: &str, width: usize) -> std::borrow::Cow<'_, str> {
    if cell.chars().count() <= width {
        return std::borrow::Cow::Borrowed(cell);
    }
    let kept: String = cell.chars().take(width.saturating_sub(3)).collect();
    std::borrow::Cow::Owned(format!("{kept}..."))
}

/// Shows a query's rows as a changelog table while its job runs.
fn show_query(job: SqlJob, max_rows: u64, deadline: Option<std::time::Instant>) -> Result<(), CliError> {
    let (schema, receiver) = job.results.as_ref().expect("a query's job has results");
    let header: Vec<String> = std::iter::once("op".to_string()).chain(schema.names().map(str::to_string)).collect();
    let cells = |row: &tethys_sql::value::Row| -> Vec<String> {
        std::iter::once(row.kind.short().to_string()).chain(row.values.iter().map(ToString::to_string)).collect()
    };
    // Rows come while the job runs, so columns are as wide as their types' values can be (text
    // up to a bound), as in Flink's SQL client; a longer value is cut, ending in "...".
    let column_width = |field: &tethys_sql::types::Field| {
        let width = field.data_type.display_width().unwrap_or(RESULT_COLUMN_WIDTH_MAX);
        width.clamp("NULL".len(), RESULT_COLUMN_WIDTH_MAX).max(field.name.chars().count())
    };
    let widths: Vec<usize> = std::iter::once("op".len()).chain(schema.fields.iter().map(column_width)).collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(cell, &width)| format!("{:>width$}", cut_to_width(cell, width))).collect();
        format!("| {} |", padded.join(" | "))
    };
    let rule = format!("+{}+", widths.iter().map(|width| "-".repeat(width + 2)).collect::<Vec<_>>().join("+"));
    println!("{rule}\n{}\n{rule}", line(header.clone()));
    let client = job.env.execute_async(&job.name).map_err(|error| format!("query: {error}"))?;
    let (mut shown, mut seen, mut last_sample) = (0u64, 0u64, std::time::Instant::now());
    let mut latest = None;
    loop {
        match receiver.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(row) => {
                seen += 1;
                if shown < max_rows {
                    println!("{}", line(cells(&row)));
                    shown += 1;
                } else {
                    latest = Some(row);
                }
            }
            Err(_) if client.is_finished() => break,
            Err(_) => {}
        }
        if deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
            break;
        }
        if latest.is_some() && last_sample.elapsed() >= std::time::Duration::from_secs(1) {
            let row = latest.take().expect("checked");
            println!("{}   (sample; {seen} rows so far)", line(cells(&row)));
            last_sample = std::time::Instant::now();
        }
    }
    let result = if client.is_finished() { client.wait() } else { client.cancel() };
    while let Ok(row) = receiver.try_recv() {
        seen += 1;
        if shown < max_rows {
            println!("{}", line(cells(&row)));
            shown += 1;
        }
    }
    println!("{rule}");
    result.map_err(|error| format!("query: {error}"))?;
    println!("{seen} rows{}", if seen > shown { format!(" ({shown} shown)") } else { String::new() });
    Ok(())
}
