//! The subcommands of the `tethys` binary, one module each.

pub mod bench;
pub mod cluster;
pub mod demo;
pub mod drafts;
pub mod failover;
pub mod jobs;
pub mod latency;
pub mod master;
pub mod programs;
pub mod recovery_demo;
pub mod run;
pub mod sql;
pub mod test;
pub mod up;
pub mod worker;

use tethys_control::logs::LogBook;
use tethys_net::launcher::SECRET_ENV;

/// The cluster secret's text: from `file` when given, else from the environment variable
/// TETHYS_CLUSTER_SECRET (never from a command line, where other users could read it).
pub fn read_secret_text(file: Option<&std::path::Path>) -> Result<String, CliError> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?,
        None => std::env::var(SECRET_ENV).map_err(|_| format!("no cluster secret: set {SECRET_ENV} or give --secret-file"))?,
    };
    Ok(text.trim().to_string())
}

/// Starts logging to standard error at `level` (colours only on a terminal), and into the process's
/// log book (`tethys_control::logs`) at info or finer. openraft's own
/// events show from `debug` on: at the levels below it repeats an unreachable peer every half
/// second, which the masters report once themselves.
pub fn init_logs(level: tracing::Level) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let openraft = if level >= tracing::Level::DEBUG {
        tracing_subscriber::filter::LevelFilter::from_level(level)
    } else {
        tracing_subscriber::filter::LevelFilter::OFF
    };
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::filter::Targets::new().with_default(level).with_target("openraft", openraft);
    let format = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(ansi).with_filter(filter);
    // The process's log book (searched from the console and `tethys logs`) keeps info and up even
    // when standard error shows less.
    let kept = level.max(tracing::Level::INFO);
    let book_filter = tracing_subscriber::filter::Targets::new().with_default(kept).with_target("openraft", openraft);
    let book = LogBook::install(LogBook::new(tethys_control::logs::LOG_LINES_KEPT)).with_filter(book_filter);
    tracing_subscriber::registry().with(format).with(book).init();
}

/// The TLS files of a cluster's process, given together or not at all: the data plane's
/// connections (`worker`, `run`) and the gRPC API of the masters and workers (`master`, `worker
/// --masters`, and the commands that ask the masters) are then mutual TLS.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// This process's TLS certificate chain (PEM, naming `tethys-node`); with --tls-key and
    /// --tls-ca, every connection is mutual TLS.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<std::path::PathBuf>,
    /// This process's TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// The CA certificates (PEM) that signed every process's certificate.
    #[arg(long, requires = "tls_cert")]
    pub tls_ca: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The files, if TLS was asked for.
    pub fn files(&self) -> Option<tethys_net::tls::TlsFiles> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(chain), Some(key), Some(ca)) => {
                Some(tethys_net::tls::TlsFiles { chain: chain.clone(), key: key.clone(), ca: ca.clone() })
            }
            _ => None,
        }
    }

    /// The gRPC API's TLS from the files, if TLS was asked for (a bad file is named).
    pub fn grpc(&self) -> Result<Option<tethys_control::rpc::GrpcTls>, CliError> {
        Ok(self.files().map(|files| tethys_control::rpc::GrpcTls::load(&files)).transpose()?)
    }
}

/// What a process of this program started for a job by a worker or the leader is told (the
/// hidden `attempt-worker` and `attempt-driver` commands; `tethys_control::programs::process`).
#[derive(clap::Args, Debug)]
pub struct ProgramProcessArgs {
    /// The host its data plane listens on.
    #[arg(long)]
    pub host: std::net::IpAddr,
    /// Keep every connection on TCP.
    #[arg(long)]
    pub no_shared_memory: bool,
    /// Mutual TLS on the data plane.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Log level.
    #[arg(long, default_value = "info")]
    pub log: tracing::Level,
}

impl ProgramProcessArgs {
    /// Starts the process's logging; the data plane's options it was given.
    pub fn start(&self) -> tethys_control::programs::process::ChildOptions {
        init_logs(self.log);
        tethys_control::programs::process::ChildOptions { tls: self.tls.files(), no_shared_memory: self.no_shared_memory }
    }
}

/// An error reported to the user at the edge, with its context already in the text.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// The runtime of a long-running service process (a master, a worker under the masters).
pub fn service_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?)
}

/// Listens on `addr` and prints `listening <address>` (what a launcher reads; port 0 takes any).
pub async fn listen_and_announce(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, CliError> {
    listen_and_print(addr, tethys_net::launcher::LISTENING_PREFIX).await
}

/// The start of the line that says where a process serves HTTP (`--http`), printed after the
/// `listening` line: `http <address>`.
pub use tethys_control::launcher::HTTP_PREFIX;

/// The web console's pages, as the masters' HTTP server serves them.
pub fn console_pages() -> tethys_control::http::Pages {
    std::sync::Arc::new(tethys_console::page)
}

/// Listens for HTTP (the API and `/metrics`) on `addr` and prints `http <address>`.
pub async fn listen_http_and_announce(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, CliError> {
    listen_and_print(addr, HTTP_PREFIX).await
}

async fn listen_and_print(addr: std::net::SocketAddr, prefix: &str) -> Result<tokio::net::TcpListener, CliError> {
    use std::io::Write;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
    println!("{prefix}{local}");
    std::io::stdout().flush().map_err(|e| format!("cannot write to standard output: {e}"))?;
    Ok(listener)
}

/// Where the masters are, the secret, and the form of the answers (the commands that ask them).
#[derive(clap::Args, Debug)]
pub struct MastersArgs {
    /// Masters to ask, `host:port,...` (any one answers).
    #[arg(long)]
    pub masters: String,
    /// File holding the cluster secret (default: the environment variable TETHYS_CLUSTER_SECRET).
    #[arg(long)]
    pub secret_file: Option<std::path::PathBuf>,
    /// Print answers as JSON.
    #[arg(long)]
    pub json: bool,
    /// Mutual TLS to the masters (when they serve it).
    #[command(flatten)]
    pub tls: TlsArgs,
}
