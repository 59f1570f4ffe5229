//! `tethys master`: one master of the control plane. It serves the gRPC API (Raft between
//! masters, the control service for workers and the command line) on one address and keeps its
//! Raft log, vote and snapshot in its directory, so a restarted master resumes where it was. The
//! group is formed once, by the master started with `--bootstrap` on a fresh directory. With
//! `--http` it serves the HTTP/JSON API and `/metrics` on a second address, printed as `http
//! <address>` after the `listening` line. With `--tls-cert`, `--tls-key` and `--tls-ca`, its gRPC
//! API (served, and dialled to the other masters and the workers) and the data plane of the jobs it
//! drives are mutual TLS: every master, worker and command-line client then needs a certificate of
//! that CA.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use tethys_control::rpc::server::{MasterNode, MasterOptions};

use super::CliError;

/// Arguments of `tethys master`.
#[derive(Args, Debug)]
pub struct MasterArgs {
    /// This master's id in the group.
    #[arg(long)]
    pub id: u64,
    /// Address to serve on (port 0: any free port, printed as `listening <address>`; then give
    /// the members on standard input).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Every master of the group, this one included: `<id>=<host:port>,...`.
    #[arg(long, conflicts_with = "members_from_stdin")]
    pub members: Option<String>,
    /// Read the members (as for `--members`) from one line of standard input, after printing
    /// where this master listens (what a launcher uses).
    #[arg(long)]
    pub members_from_stdin: bool,
    /// The master's directory: its Raft log, vote and snapshot.
    #[arg(long)]
    pub dir: PathBuf,
    /// Form the group (on one master, the first time; harmless on a group that exists).
    #[arg(long)]
    pub bootstrap: bool,
    /// File holding the cluster secret (default: the environment variable TETHYS_CLUSTER_SECRET).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Where jobs keep their checkpoints (`<dir>/job-<id>`), on storage every master reaches, so a
    /// job restarts from its newest checkpoint after a leader change (default: in memory only).
    #[arg(long)]
    pub checkpoint_root: Option<PathBuf>,
    /// Where uploaded programs are kept, on storage every master reaches (default: `programs`
    /// under the checkpoint root, else under the master's directory).
    #[arg(long)]
    pub program_dir: Option<PathBuf>,
    /// Serve the HTTP/JSON API and `/metrics` on this address too (port 0: any free port,
    /// printed as `http <address>`); every request needs `Authorization: Bearer <secret>`.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Mutual TLS on the gRPC API and the data plane (every master and worker must have it on).
    #[command(flatten)]
    pub tls: super::TlsArgs,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    pub log: tracing::Level,
}

/// Parses `<id>=<host:port>,...`.
pub fn parse_members(line: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut members = BTreeMap::new();
    for entry in line.trim().split(',').filter(|entry| !entry.trim().is_empty()) {
        let (id, addr) = entry.split_once('=').ok_or_else(|| format!("'{entry}' is not <id>=<host:port>"))?;
        let id: u64 = id.trim().parse().map_err(|_| format!("'{id}' is not a master id"))?;
        let addr: SocketAddr = addr.trim().parse().map_err(|_| format!("'{addr}' is not an address (host:port)"))?;
        if members.insert(id, addr.to_string()).is_some() {
            return Err(format!("master {id} is given twice"));
        }
    }
    if members.is_empty() {
        return Err("no masters given".to_string());
    }
    Ok(members)
}

/// Whether this program defines job `name` with `args` at `parallelism` (see `Program::check`).
fn validate_job(name: &str, args: &[String], parallelism: u32) -> Result<tethys_control::submit::JobEstimate, String> {
    let spec = tethys_engine::cluster::protocol::JobSpec { name: name.to_string(), args: args.to_vec() };
    crate::program::installed().check(&spec, parallelism, None)
}

/// Makes a master check and deploy the jobs of this program (its build id, its validator, its
/// registry), with their checkpoints under `checkpoint_root`.
pub fn run_this_program(options: &mut MasterOptions, checkpoint_root: Option<PathBuf>) {
    options.build_id = tethys_engine::graph::fingerprint::build_id().to_string();
    options.validator = Some(std::sync::Arc::new(validate_job));
    options.deploy = Some(tethys_control::deployer::DeployOptions {
        registry: crate::program::registry(),
        checkpoint_root,
        mesh: tethys_net::MeshOptions::default(),
        restarts_max: RESTARTS_MAX,
        program_processes: Default::default(),
    });
}

/// Restarts a job may make over its life (as Flink's fixed-delay strategy's attempts).
pub const RESTARTS_MAX: u32 = 5;

/// Runs the master until it is killed or interrupted.
pub fn run(args: MasterArgs) -> Result<(), CliError> {
    super::init_logs(args.log);
    let secret = super::read_secret_text(args.secret_file.as_deref())?;
    let tls = args.tls.grpc()?;
    let data_tls = args.tls.files().map(|files| files.load()).transpose()?;
    super::service_runtime()?.block_on(async {
        let listener = super::listen_and_announce(args.listen).await?;
        let local = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
        let http = match args.http {
            Some(addr) => Some(super::listen_http_and_announce(addr).await?),
            None => None,
        };
        let members_line = match (&args.members, args.members_from_stdin) {
            (Some(members), _) => members.clone(),
            (None, true) => {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the members from standard input: {e}"))?;
                line
            }
            (None, false) => return Err::<(), CliError>("give --members or --members-from-stdin".into()),
        };
        let members = parse_members(&members_line).map_err(|e| format!("bad members: {e}"))?;
        match members.get(&args.id) {
            Some(addr) if *addr == local.to_string() => {}
            Some(addr) => return Err(format!("the members give master {} the address {addr}, but it listens on {local}", args.id).into()),
            None => return Err(format!("the members name no address for master {} (this one)", args.id).into()),
        }
        let mut options = MasterOptions::new(args.id, args.dir.clone(), members, secret);
        options.bootstrap = args.bootstrap;
        options.tls = tls;
        run_this_program(&mut options, args.checkpoint_root.clone());
        options.program_dir = args.program_dir.clone().or_else(|| args.checkpoint_root.as_ref().map(|root| root.join("programs")));
        if let Some(deploy) = &mut options.deploy {
            // The jobs' coordinators (node 0 of each attempt's mesh) meet the workers over TLS too,
            // those of uploaded programs' jobs in processes of their own.
            deploy.mesh.connection.tls = data_tls;
            deploy.program_processes.tls = args.tls.files();
        }
        let mut node = MasterNode::start(options, listener).await?;
        if let Some(http) = http {
            node.serve_http_with(http, Some(super::console_pages()))?;
        }
        tokio::signal::ctrl_c().await.map_err(|e| format!("cannot wait for a signal: {e}"))?;
        tracing::info!(master = args.id, "interrupted; stopping");
        node.stop().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_ids_and_addresses() {
        let members = parse_members("0=127.0.0.1:7000, 2=127.0.0.1:7002").unwrap();
        assert_eq!(members, BTreeMap::from([(0, "127.0.0.1:7000".to_string()), (2, "127.0.0.1:7002".to_string())]));
        assert!(parse_members("0=127.0.0.1:7000,0=127.0.0.1:7001").unwrap_err().contains("twice"));
        assert!(parse_members("x=127.0.0.1:1").unwrap_err().contains("not a master id"));
        assert!(parse_members("1=nowhere").unwrap_err().contains("not an address"));
        assert!(parse_members("").is_err());
    }
}

/// Coordinates one attempt of a job of this program for the leader that started this process
/// (the hidden `attempt-driver` command, `tethys_control::programs::driver`), until it ends.
pub fn attempt_driver(args: super::ProgramProcessArgs) -> Result<(), CliError> {
    let options = args.start();
    Ok(tethys_control::programs::driver::run_attempt_driver(args.host, &options, crate::program::registry())?)
}
