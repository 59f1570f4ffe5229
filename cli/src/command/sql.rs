//! `tethys sql`: Tethys's SQL tooling on the command line.
//!
//! `tethys sql check FILE` parses and checks a script (`-` reads standard input): every error
//! with its line, column and a caret under it (a misspelled table or column with the nearest
//! defined name), or what the script defines. `tethys sql complete FILE --line L --column C`
//! lists what may be typed there, best first. `tethys sql fmt FILE [--write]` formats it.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tethys_sql::{check_script, complete, format_script, Position, Statement};

use super::CliError;

/// `tethys sql ...`.
#[derive(Subcommand, Debug)]
pub enum SqlCommand {
    /// Check a SQL script: every error with its line and column, or what it defines.
    Check(CheckArgs),
    /// What may be typed at a place in a SQL script, best first: `label<TAB>kind<TAB>detail`.
    Complete(CompleteArgs),
    /// Format a SQL script (comments kept): to standard output, or in place with --write.
    Fmt(FmtArgs),
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
                println!("{}\t{:?}\t{}", completion.label, completion.kind, completion.detail);
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
