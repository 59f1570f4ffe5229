//! Mutual TLS on the gRPC API (masters' and workers'), switched on by certificates.
//!
//! Off by default: calls carry the cluster secret over plain HTTP/2. With a [`GrpcTls`] in a
//! master's or a worker's options, and given to the command line's clients, every gRPC connection
//! is mutual TLS (tonic's rustls, ring provider): a server presents its certificate and requires a
//! client certificate signed by the cluster's CA; a client checks the server's certificate against
//! the same CA and presents its own. The cluster secret is still checked on every call, inside TLS.
//! A client without a certificate, with one another CA signed, or without TLS fails at the
//! connection, before any call reaches a handler.
//!
//! The files are the data plane's ([`TlsFiles`]: certificate chain, private key, CA, in PEM;
//! `tethys_net::tls`), and so is the name: every certificate names [`NODE_NAME`], which clients
//! check instead of the address they dial (processes are told apart by the secret and the masters'
//! state, not by certificates), so one certificate serves a process wherever it listens.
//! [`GrpcTls::load`] reads and checks the files once: a file that cannot be read or holds nothing
//! usable, or a key that is not the certificate's, is an error naming the file.

use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

pub use tethys_net::tls::{TlsFiles, NODE_NAME};

/// How long a server waits for a client's TLS handshake.
const SERVER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A process's mutual TLS on the gRPC API: its certificate and key, and the CA that signed every
/// process's certificate (see the module documentation).
#[derive(Clone)]
pub struct GrpcTls {
    identity: Identity,
    ca: Certificate,
}

impl std::fmt::Debug for GrpcTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrpcTls(mutual TLS, ring)")
    }
}

/// Why the gRPC API's TLS could not be set up from its files.
#[derive(Debug, thiserror::Error)]
pub enum GrpcTlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("gRPC TLS: cannot read {what} from {path}: {reason}")]
    File {
        /// What was read.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The private key cannot sign for the certificate (another certificate's, or a kind rustls
    /// does not support).
    #[error("gRPC TLS: the private key {key} does not fit the certificate {chain}: {reason}")]
    KeyMismatch {
        /// The certificate chain's file.
        chain: String,
        /// The key's file.
        key: String,
        /// Why.
        reason: String,
    },
}

const CHAIN: &str = "the certificate chain";
const KEY: &str = "the private key";
const CA: &str = "the CA";

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> GrpcTlsError {
    GrpcTlsError::File { what, path: path.display().to_string(), reason: reason.to_string() }
}

/// The certificates of the PEM file `path` holding `pem`: at least one.
fn certificates(what: &'static str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, GrpcTlsError> {
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|error| file_error(what, path, error))?;
    if certificates.is_empty() {
        return Err(file_error(what, path, "no certificate in it"));
    }
    Ok(certificates)
}

impl GrpcTls {
    /// Reads and checks `files`: the chain holds a certificate, the key is its key, the CA holds
    /// certificates rustls accepts as trust anchors.
    pub fn load(files: &TlsFiles) -> Result<GrpcTls, GrpcTlsError> {
        let read = |what: &'static str, path: &Path| std::fs::read(path).map_err(|error| file_error(what, path, error));
        let chain_pem = read(CHAIN, &files.chain)?;
        let key_pem = read(KEY, &files.key)?;
        let ca_pem = read(CA, &files.ca)?;
        let chain = certificates(CHAIN, &files.chain, &chain_pem)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| file_error(KEY, &files.key, error))?;
        let mut roots = rustls::RootCertStore::empty();
        for certificate in certificates(CA, &files.ca, &ca_pem)? {
            roots.add(certificate).map_err(|error| file_error(CA, &files.ca, error))?;
        }
        rustls::sign::CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider()).map_err(|error| {
            GrpcTlsError::KeyMismatch {
                chain: files.chain.display().to_string(),
                key: files.key.display().to_string(),
                reason: error.to_string(),
            }
        })?;
        Ok(GrpcTls { identity: Identity::from_pem(chain_pem, key_pem), ca: Certificate::from_pem(ca_pem) })
    }

    /// A server's TLS: this certificate, and a client certificate the CA signed required.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone()).client_ca_root(self.ca.clone()).timeout(SERVER_HANDSHAKE_TIMEOUT)
    }

    /// A client's TLS: the server's certificate checked against the CA for [`NODE_NAME`], this
    /// certificate presented, the handshake given up after `handshake_timeout`.
    pub fn client_config(&self, handshake_timeout: Duration) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(NODE_NAME)
            .timeout(handshake_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_file(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../net/tests/tls").join(name)
    }

    fn files(chain: &str, key: &str, ca: &str) -> TlsFiles {
        TlsFiles { chain: test_file(chain), key: test_file(key), ca: test_file(ca) }
    }

    #[test]
    fn the_test_certificates_load() {
        GrpcTls::load(&files("node.pem", "node.key", "ca.pem")).unwrap();
        // A stranger's certificate loads too: that its CA is not the cluster's shows at the
        // handshake (tests/tls.rs).
        GrpcTls::load(&files("stranger.pem", "stranger.key", "ca.pem")).unwrap();
    }

    #[test]
    fn a_bad_file_is_named() {
        let missing = GrpcTls::load(&files("node.pem", "node.key", "no-such-ca.pem")).unwrap_err().to_string();
        assert!(missing.contains("the CA") && missing.contains("no-such-ca.pem"), "{missing}");
        // A key where the certificates should be: no certificate in it.
        let no_certificate = GrpcTls::load(&files("node.key", "node.key", "ca.pem")).unwrap_err().to_string();
        assert!(no_certificate.contains("the certificate chain") && no_certificate.contains("node.key"), "{no_certificate}");
        let no_key = GrpcTls::load(&files("node.pem", "node.pem", "ca.pem")).unwrap_err().to_string();
        assert!(no_key.contains("the private key") && no_key.contains("node.pem"), "{no_key}");
        let no_ca = GrpcTls::load(&files("node.pem", "node.key", "stranger.key")).unwrap_err().to_string();
        assert!(no_ca.contains("the CA") && no_ca.contains("stranger.key"), "{no_ca}");
    }

    #[test]
    fn another_certificates_key_is_refused() {
        let error = GrpcTls::load(&files("node.pem", "stranger.key", "ca.pem")).unwrap_err();
        assert!(matches!(error, GrpcTlsError::KeyMismatch { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains("stranger.key") && text.contains("node.pem"), "{text}");
    }
}
