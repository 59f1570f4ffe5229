//! `tethys programs upload | list | delete`: programs of one's own on the masters. An uploaded
//! program's jobs are submitted with `tethys submit --program <id> <job> ...`.

use std::io::Read;

use clap::{Args, Subcommand};
use tethys_control::rpc::proto::{ListProgramsRequest, ProgramChunk, ProgramMessage, ProgramRequest};

use super::cluster::{call_any, call_any_within};
use super::{CliError, MastersArgs};

/// How long an upload may take (a debug build of a program is about 200 MB).
const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The program commands.
#[derive(Subcommand, Debug)]
pub enum ProgramCommand {
    /// Upload a program (a binary built on the `tethys` library with jobs of its own).
    Upload(UploadArgs),
    /// List the uploaded programs and their jobs.
    List(MastersArgs),
    /// Remove an uploaded program (refused while a job of it has not ended).
    Delete(DeleteArgs),
}

/// Arguments of `tethys programs upload`.
#[derive(Args, Debug)]
pub struct UploadArgs {
    #[command(flatten)]
    masters: MastersArgs,
    /// The program's executable.
    file: std::path::PathBuf,
}

/// Arguments of `tethys programs delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    masters: MastersArgs,
    /// The program's id (`tethys programs list`).
    id: String,
}

fn describe(program: &ProgramMessage) -> String {
    let jobs: Vec<&str> = program.jobs.iter().filter(|job| !job.builtin).map(|job| job.name.as_str()).collect();
    format!(
        "program {} {} ({} bytes, Tethys {}): jobs {}",
        program.program,
        program.id,
        program.size,
        program.tethys_version,
        if jobs.is_empty() { "(only the built-in ones)".to_string() } else { jobs.join(", ") }
    )
}

fn json(program: &ProgramMessage) -> serde_json::Value {
    serde_json::json!({
        "id": program.id, "program": program.program, "tethys_version": program.tethys_version, "build_id": program.build_id,
        "size": program.size, "uploaded_at_ms": program.uploaded_at_ms,
        "jobs": program.jobs.iter().map(|job| serde_json::json!({"name": job.name, "about": job.about, "builtin": job.builtin})).collect::<Vec<_>>(),
    })
}

/// The pieces of the file at `path`, read as they are sent.
fn chunks_of(path: &std::path::Path) -> Result<impl futures_util::Stream<Item = ProgramChunk> + Send + 'static, CliError> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let path = path.to_path_buf();
    Ok(futures_util::stream::unfold(Some(file), move |file| {
        let path = path.clone();
        async move {
            let mut file = file?;
            let mut data = Vec::with_capacity(tethys_control::programs::CHUNK_BYTES);
            match (&mut file).take(tethys_control::programs::CHUNK_BYTES as u64).read_to_end(&mut data) {
                Ok(0) => None,
                Ok(_) => Some((ProgramChunk { data }, Some(file))),
                Err(error) => {
                    // The upload ends short: the masters keep nothing of it.
                    eprintln!("error: cannot read {}: {error}", path.display());
                    None
                }
            }
        }
    }))
}

/// Runs one program command.
pub fn run(command: ProgramCommand) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start a runtime: {e}"))?;
    match command {
        ProgramCommand::Upload(args) => {
            let secret = super::read_secret_text(args.masters.secret_file.as_deref())?;
            let tls = args.masters.tls.grpc()?;
            // A file that cannot be opened is said before any master is asked.
            std::fs::File::open(&args.file).map_err(|e| format!("cannot open {}: {e}", args.file.display()))?;
            let file = args.file.clone();
            let program =
                runtime.block_on(call_any_within(&args.masters.masters, &secret, tls.as_ref(), UPLOAD_TIMEOUT, |mut client| {
                    let chunks = chunks_of(&file);
                    async move {
                        let chunks = chunks.map_err(|error| tonic::Status::invalid_argument(error.to_string()))?;
                        client.upload_program(chunks).await
                    }
                }))?;
            if args.masters.json {
                println!("{}", json(&program));
            } else {
                println!("uploaded {}", describe(&program));
            }
        }
        ProgramCommand::List(masters) => {
            let secret = super::read_secret_text(masters.secret_file.as_deref())?;
            let tls = masters.tls.grpc()?;
            let reply = runtime.block_on(call_any(&masters.masters, &secret, tls.as_ref(), |mut client| async move {
                client.list_programs(ListProgramsRequest {}).await
            }))?;
            if masters.json {
                println!("{}", serde_json::Value::Array(reply.programs.iter().map(json).collect()));
            } else if reply.programs.is_empty() {
                println!("no programs");
            } else {
                for program in &reply.programs {
                    println!("{}", describe(program));
                }
            }
        }
        ProgramCommand::Delete(args) => {
            let secret = super::read_secret_text(args.masters.secret_file.as_deref())?;
            let tls = args.masters.tls.grpc()?;
            let id = args.id.clone();
            runtime.block_on(call_any(&args.masters.masters, &secret, tls.as_ref(), |mut client| {
                let id = id.clone();
                async move { client.delete_program(ProgramRequest { id }).await }
            }))?;
            println!("deleted program {}", args.id);
        }
    }
    Ok(())
}
