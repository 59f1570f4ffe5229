//! The subcommands of the `tethys` binary, one module each.

pub mod bench;
pub mod demo;
pub mod latency;
pub mod recovery_demo;
pub mod run;
pub mod worker;

/// The TLS files of a cluster node, given together or not at all (`worker` and `run`).
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// The node's TLS certificate chain (PEM); with --tls-key and --tls-ca, every connection is
    /// mutual TLS.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The node's TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// The CA certificates (PEM) that signed every node's certificate.
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
}

/// An error reported to the user at the edge, with its context already in the text.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;
