//! TLS between the processes of a cluster, switched on by giving every node a certificate.
//!
//! Off by default: connections are authenticated by the cluster secret ([`auth`](crate::auth))
//! but not encrypted. With a [`TlsConfig`] in the connection options, every connection is mutual
//! TLS (rustls, ring provider) before the handshake of the cluster secret runs inside it: each
//! node presents its certificate chain and checks the peer's against the cluster's CA; a
//! certificate must name [`NODE_NAME`] (all nodes share it: nodes are told apart by the secret's
//! handshake, not by their certificates). A peer without TLS, or with a certificate the CA did not
//! sign, fails the connection before any message.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::error::NetError;

/// The name every node's certificate carries (as a DNS subject alternative name).
pub const NODE_NAME: &str = "tethys-node";

/// The PEM files of a node's TLS: its certificate chain, its private key, the cluster's CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This node's certificate chain.
    pub chain: std::path::PathBuf,
    /// This node's private key.
    pub key: std::path::PathBuf,
    /// The CA certificates that signed every node's.
    pub ca: std::path::PathBuf,
}

impl TlsFiles {
    /// The configuration they make.
    pub fn load(&self) -> Result<TlsConfig, TlsError> {
        TlsConfig::from_pem_files(&self.chain, &self.key, &self.ca)
    }

    /// The options of `tethys worker` that give it these files.
    pub fn worker_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        for (flag, path) in [("--tls-cert", &self.chain), ("--tls-key", &self.key), ("--tls-ca", &self.ca)] {
            args.push(flag.into());
            args.push(path.clone().into_os_string());
        }
        args
    }
}

/// What TLS needs: this node's certificate and key, and the CA that signed every node's.
#[derive(Clone)]
pub struct TlsConfig {
    connector: tokio_rustls::TlsConnector,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig(mutual TLS, ring)")
    }
}

/// Why TLS could not be set up from its files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("TLS: cannot read {what} from {path}: {reason}")]
    Pem {
        /// What was read.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificates or key.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from the CA.
    #[error("TLS: the CA cannot verify peers: {0}")]
    Verifier(String),
}

impl TlsConfig {
    /// Mutual TLS with this node's certificate chain and private key (PEM files) and the CA
    /// certificates (PEM) that signed every node's.
    pub fn from_pem_files(chain: &Path, key: &Path, ca: &Path) -> Result<TlsConfig, TlsError> {
        let pem = |what: &'static str, path: &Path, reason: String| TlsError::Pem { what, path: path.display().to_string(), reason };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
            .map_err(|error| pem("the certificate chain", chain, error.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|error| pem("the certificate chain", chain, error.to_string()))?;
        if chain.is_empty() {
            return Err(pem("the certificate chain", Path::new(""), "no certificate in it".to_string()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|error| pem("the private key", key, error.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|error| pem("the CA", ca, error.to_string()))? {
            roots.add(cert.map_err(|error| pem("the CA", ca, error.to_string()))?)?;
        }
        if roots.is_empty() {
            return Err(pem("the CA", ca, "no certificate in it".to_string()));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .build()
            .map_err(|error| TlsError::Verifier(error.to_string()))?;
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(TlsConfig {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        })
    }
}

/// A connection's byte stream: plain TCP, or TLS over it.
pub(crate) enum NetStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl NetStream {
    /// The dialer's side: TLS over `stream` if `tls` is set.
    pub(crate) async fn dialed(stream: TcpStream, addr: std::net::SocketAddr, tls: Option<&TlsConfig>) -> Result<NetStream, NetError> {
        let Some(tls) = tls else { return Ok(NetStream::Plain(stream)) };
        let name = ServerName::try_from(NODE_NAME).expect("a valid DNS name");
        let stream = tls.connector.connect(name, stream).await.map_err(|source| NetError::Tls { addr, source })?;
        Ok(NetStream::Tls(Box::new(tokio_rustls::TlsStream::Client(stream))))
    }

    /// The acceptor's side: TLS over `stream` if `tls` is set.
    pub(crate) async fn accepted(stream: TcpStream, addr: std::net::SocketAddr, tls: Option<&TlsConfig>) -> Result<NetStream, NetError> {
        let Some(tls) = tls else { return Ok(NetStream::Plain(stream)) };
        let stream = tls.acceptor.accept(stream).await.map_err(|source| NetError::Tls { addr, source })?;
        Ok(NetStream::Tls(Box::new(tokio_rustls::TlsStream::Server(stream))))
    }
}

impl AsyncRead for NetStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            NetStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NetStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NetStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            NetStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NetStream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            NetStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            NetStream::Plain(stream) => stream.is_write_vectored(),
            NetStream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            NetStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            NetStream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
