//! `tethys drafts ...`: the drafts of SQL jobs the masters keep (the console's workbench saves
//! them): list them, show or save a version, see what changed between two, delete one.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tethys_control::rpc::proto::{DeleteDraftRequest, GetDraftRequest, ListDraftsRequest, SaveDraftRequest};

use super::cluster::call_any;
use super::{CliError, MastersArgs};

/// `tethys drafts ...`.
#[derive(Subcommand, Debug)]
pub enum DraftCommand {
    /// Every draft with its versions.
    List(MastersArgs),
    /// Print a version's script (default: the newest).
    Show(DraftArgs),
    /// Save a script as a draft's new version.
    Save(SaveArgs),
    /// What changed between two versions of a draft's script (`-` removed, `+` added).
    Diff(DiffArgs),
    /// Remove a draft and its versions.
    Delete(DraftArgs),
}

/// A draft, and a version of it.
#[derive(Args, Debug)]
pub struct DraftArgs {
    #[command(flatten)]
    masters: MastersArgs,
    /// The draft's name.
    name: String,
    /// The version (default: the newest).
    #[arg(long)]
    version: Option<u32>,
}

/// Arguments of `tethys drafts save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    #[command(flatten)]
    masters: MastersArgs,
    /// The draft's name.
    name: String,
    /// The script's file.
    file: PathBuf,
    /// What changed.
    #[arg(long, default_value = "")]
    note: String,
}

/// Arguments of `tethys drafts diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    masters: MastersArgs,
    /// The draft's name.
    name: String,
    /// The older version.
    #[arg(long)]
    from: u32,
    /// The newer version (default: the newest).
    #[arg(long)]
    to: Option<u32>,
}

/// Runs a drafts command.
pub fn run(command: DraftCommand) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start a runtime: {e}"))?;
    let masters = match &command {
        DraftCommand::List(masters) => masters,
        DraftCommand::Show(args) | DraftCommand::Delete(args) => &args.masters,
        DraftCommand::Save(args) => &args.masters,
        DraftCommand::Diff(args) => &args.masters,
    };
    let secret = super::read_secret_text(masters.secret_file.as_deref())?;
    let tls = masters.tls.grpc()?;
    let (addrs, tls) = (masters.masters.as_str(), tls.as_ref());
    let get = |name: &str, version: u32| {
        let request = GetDraftRequest { name: name.to_string(), version };
        runtime.block_on(call_any(addrs, &secret, tls, |mut client| {
            let request = request.clone();
            async move { client.get_draft(request).await }
        }))
    };
    match &command {
        DraftCommand::List(_) => {
            let list = runtime
                .block_on(call_any(addrs, &secret, tls, |mut client| async move { client.list_drafts(ListDraftsRequest {}).await }))?;
            for draft in list.drafts {
                println!("{}", draft.name);
                for version in draft.versions {
                    let note = if version.note.is_empty() { String::new() } else { format!("  {}", version.note) };
                    println!("  v{}  saved at {} ms{note}", version.version, version.saved_at_ms);
                }
            }
        }
        DraftCommand::Show(args) => print!("{}", get(&args.name, args.version.unwrap_or(0))?.script),
        DraftCommand::Save(args) => {
            let script = std::fs::read_to_string(&args.file).map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
            let request = SaveDraftRequest { name: args.name.clone(), script, test_case: String::new(), note: args.note.clone() };
            let saved = runtime.block_on(call_any(addrs, &secret, tls, |mut client| {
                let request = request.clone();
                async move { client.save_draft(request).await }
            }))?;
            println!("saved {} as version {}", saved.name, saved.version);
        }
        DraftCommand::Diff(args) => {
            let (old, new) = (get(&args.name, args.from)?, get(&args.name, args.to.unwrap_or(0))?);
            println!("--- {} v{}\n+++ {} v{}", args.name, old.version, args.name, new.version);
            let diff = similar::TextDiff::from_lines(&old.script, &new.script);
            for change in diff.iter_all_changes() {
                let sign = match change.tag() {
                    similar::ChangeTag::Equal => ' ',
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Insert => '+',
                };
                print!("{sign} {}", change.value());
                if change.missing_newline() {
                    println!();
                }
            }
        }
        DraftCommand::Delete(args) => {
            let request = DeleteDraftRequest { name: args.name.clone() };
            runtime.block_on(call_any(addrs, &secret, tls, |mut client| {
                let request = request.clone();
                async move { client.delete_draft(request).await }
            }))?;
            println!("deleted {}", args.name);
        }
    }
    Ok(())
}
