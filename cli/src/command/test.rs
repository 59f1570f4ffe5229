//! `tethys test CASE...`: runs SQL test cases (TOML files: a script, inputs for its tables, the
//! rows expected of its sinks; `tethys_sql::test_run`) on the embedded engine, never touching
//! the script's real sources and sinks. Prints each case's verdict, and for one that fails the
//! rows that differ (`- row` expected and missing, `+ row` produced and not expected); exits 1
//! when any case fails or cannot run, so it works in CI. A directory runs every `*.toml` in it.

use std::path::{Path, PathBuf};

use clap::Args;
use tethys_sql::test_run::{check_case, TestCase, TestReport};

use super::CliError;

/// Arguments of `tethys test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Case files (TOML), or directories of them.
    #[arg(required = true)]
    pub cases: Vec<PathBuf>,
    /// Print what each sink produced, passing or not.
    #[arg(long)]
    pub show_output: bool,
    /// Print the reports as JSON lines instead.
    #[arg(long)]
    pub json: bool,
}

/// The case files `paths` name: files as given, directories' `*.toml` in name order.
fn case_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| file.extension().is_some_and(|ext| ext == "toml"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(format!("{} holds no test case (*.toml)", path.display()).into());
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Runs one case file in a fresh directory under `work`.
fn run_case(file: &Path, work: &Path, index: usize) -> Result<TestReport, String> {
    let case = TestCase::load(file).map_err(|error| error.to_string())?;
    check_case(&case, &work.join(format!("case-{index}"))).map_err(|error| error.to_string())
}

/// Runs the cases; an error when any fails.
pub fn run(args: TestArgs) -> Result<(), CliError> {
    let files = case_files(&args.cases)?;
    let work = std::env::temp_dir().join(format!("tethys-test-{}", std::process::id()));
    let (mut passed, mut failed) = (0, 0);
    for (index, file) in files.iter().enumerate() {
        let outcome = run_case(file, &work, index);
        if args.json {
            let line = match &outcome {
                Ok(report) => serde_json::json!({"file": file, "passed": report.passed(), "report": report}),
                Err(error) => serde_json::json!({"file": file, "passed": false, "error": error}),
            };
            println!("{line}");
        }
        match outcome {
            Ok(report) if report.passed() => {
                passed += 1;
                if !args.json {
                    println!("PASS {} ({})", report.name, file.display());
                }
                if args.show_output && !args.json {
                    print_output(&report);
                }
            }
            Ok(report) => {
                failed += 1;
                if !args.json {
                    println!("FAIL {} ({})", report.name, file.display());
                    for (sink, diff) in report.diffs.iter().filter(|(_, diff)| !diff.passed()) {
                        println!("  {sink} (compared as {:?}):", diff.compare);
                        for line in diff.render().lines() {
                            println!("    {line}");
                        }
                    }
                    if args.show_output {
                        print_output(&report);
                    }
                }
            }
            Err(error) => {
                failed += 1;
                if !args.json {
                    println!("ERROR {}", file.display());
                    for line in error.lines() {
                        println!("  {line}");
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    if !args.json {
        println!("{passed} passed, {failed} failed");
    }
    match failed {
        0 => Ok(()),
        _ => Err(format!("{failed} of {} test cases failed", files.len()).into()),
    }
}

fn print_output(report: &TestReport) {
    for (sink, rows) in &report.output.sinks {
        println!("  {sink} produced {} rows:", rows.len());
        for row in rows {
            println!("    {row}");
        }
    }
}
