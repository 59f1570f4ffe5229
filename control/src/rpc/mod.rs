//! The masters' gRPC API (proto/control.proto): Raft between masters, and the control service for
//! workers and the command line.
//!
//! Every call carries the cluster secret (`authorization: Bearer <secret>`); a call without it, or
//! with another, is refused with `UNAUTHENTICATED` before it reaches a handler. With a [`GrpcTls`]
//! (`tls.rs`), every connection is mutual TLS as well; without, plain HTTP/2.

pub mod probe;
pub mod raft_network;
pub mod server;
pub mod tls;

pub use tls::GrpcTls;

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The generated messages and services.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("tethys.control");
}

/// Checks (on servers) or adds (on clients) the cluster secret of every call.
#[derive(Clone)]
pub struct SecretAuth {
    header: Arc<MetadataValue<tonic::metadata::Ascii>>,
}

impl SecretAuth {
    /// Authentication with `secret` (printable ASCII).
    pub fn new(secret: &str) -> Result<SecretAuth, String> {
        let header =
            MetadataValue::try_from(format!("Bearer {secret}")).map_err(|_| "the cluster secret must be printable ASCII".to_string())?;
        Ok(SecretAuth { header: Arc::new(header) })
    }

    /// The interceptor of a server: refuses calls without this secret.
    pub fn check(&self) -> CheckSecret {
        CheckSecret { expected: Arc::clone(&self.header) }
    }

    /// Whether `authorization` (a header's value) is `Bearer <this secret>`, compared in constant
    /// time; for servers of other protocols (the HTTP API and `/metrics`).
    pub fn accepts(&self, authorization: &[u8]) -> bool {
        constant_time_eq(authorization, self.header.as_bytes())
    }

    /// The secret itself (to derive other credentials from it, e.g. the console's session).
    pub(crate) fn secret(&self) -> &[u8] {
        &self.header.as_bytes()["Bearer ".len()..]
    }

    /// The interceptor of a client: adds this secret to every call.
    pub fn add(&self) -> AddSecret {
        AddSecret { header: Arc::clone(&self.header), forwarded: false }
    }

    /// The interceptor of a follower forwarding calls to the leader: the secret, and a mark that
    /// the call was forwarded (so it is never forwarded twice).
    pub(crate) fn add_forwarded(&self) -> AddSecret {
        AddSecret { header: Arc::clone(&self.header), forwarded: true }
    }
}

/// The header on a call a follower forwarded.
pub(crate) const FORWARDED_HEADER: &str = "x-tethys-forwarded";

/// A server's check of the cluster secret.
#[derive(Clone)]
pub struct CheckSecret {
    expected: Arc<MetadataValue<tonic::metadata::Ascii>>,
}

impl Interceptor for CheckSecret {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let given = request.metadata().get("authorization").map(|value| value.as_bytes()).unwrap_or_default();
        if constant_time_eq(given, self.expected.as_bytes()) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("missing or wrong cluster secret"))
        }
    }
}

/// A client's cluster secret on every call.
#[derive(Clone)]
pub struct AddSecret {
    header: Arc<MetadataValue<tonic::metadata::Ascii>>,
    forwarded: bool,
}

impl Interceptor for AddSecret {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", (*self.header).clone());
        if self.forwarded {
            request.metadata_mut().insert(FORWARDED_HEADER, MetadataValue::from_static("1"));
        }
        Ok(request)
    }
}

/// Equality that takes the same time wherever the first difference is (the length may show).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |difference, (x, y)| difference | (x ^ y)) == 0
}

/// The endpoint of the master or worker at `addr` (host:port): HTTP/2, no Nagle delay, with the
/// given connection (and TLS handshake) and call timeouts; mutual TLS (`https`) with `tls`, else
/// plain.
pub fn endpoint(
    addr: &str,
    tls: Option<&GrpcTls>,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<tonic::transport::Endpoint, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(|error| format!("bad address {addr}: {error}"))?
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .tcp_nodelay(true);
    match tls {
        Some(tls) => endpoint.tls_config(tls.client_config(connect_timeout)).map_err(|error| format!("TLS to {addr}: {}", chain(&error))),
        None => Ok(endpoint),
    }
}

/// A channel to `addr` (host:port) that connects on first use and again after a failure; over
/// mutual TLS with `tls`.
pub(crate) fn lazy_channel(addr: &str, tls: Option<&GrpcTls>) -> Result<tonic::transport::Channel, String> {
    Ok(endpoint(addr, tls, Duration::from_millis(500), Duration::from_secs(5))?.connect_lazy())
}

/// A server of the gRPC API: plain, or mutual TLS with `tls`.
pub(crate) fn server_builder(tls: Option<&GrpcTls>) -> Result<tonic::transport::Server, String> {
    let server = tonic::transport::Server::builder();
    match tls {
        Some(tls) => server.tls_config(tls.server_config()).map_err(|error| format!("cannot serve TLS: {}", chain(&error))),
        None => Ok(server),
    }
}

/// A failed call's message, and its causes when tonic's transport raised it (a TLS handshake
/// refused: its "transport error" alone says nothing).
pub fn status_reason(status: &Status) -> String {
    with_causes(status.message().to_string(), std::error::Error::source(status))
}

/// An error and its causes (tonic's transport errors say little themselves).
fn chain(error: &dyn std::error::Error) -> String {
    with_causes(error.to_string(), error.source())
}

/// `text`, then each cause from `source` on, `: `-separated (a cause the text ends with already
/// left out).
fn with_causes(mut text: String, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(error) = source {
        let cause = error.to_string();
        if !text.ends_with(&cause) {
            text.push_str(&format!(": {cause}"));
        }
        source = error.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_compared_whole() {
        assert!(constant_time_eq(b"Bearer abc", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer abd", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer ab", b"Bearer abc"));
        assert!(!constant_time_eq(b"", b"Bearer abc"));
    }

    #[test]
    fn a_call_without_the_secret_is_refused() {
        let auth = SecretAuth::new("s3cret").unwrap();
        let mut check = auth.check();
        assert_eq!(check.call(Request::new(())).unwrap_err().code(), tonic::Code::Unauthenticated);
        let forwarded = auth.add_forwarded().call(Request::new(())).unwrap();
        assert!(forwarded.metadata().contains_key(FORWARDED_HEADER));
        let mut add = auth.add();
        let signed = add.call(Request::new(())).unwrap();
        assert!(check.call(signed).is_ok());
        assert!(auth.accepts(b"Bearer s3cret") && !auth.accepts(b"Bearer s3cre") && !auth.accepts(b"s3cret"));
        let other = SecretAuth::new("other").unwrap().add().call(Request::new(())).unwrap();
        assert_eq!(check.call(other).unwrap_err().code(), tonic::Code::Unauthenticated);
        assert!(SecretAuth::new("line\nbreak").is_err());
    }

    #[test]
    fn a_transport_failure_names_its_causes() {
        let mut status = Status::unknown("transport error");
        let cause = std::io::Error::other("received fatal alert: UnknownCA");
        status.set_source(Arc::new(std::io::Error::new(std::io::ErrorKind::InvalidData, cause)));
        assert_eq!(status_reason(&status), "transport error: received fatal alert: UnknownCA");
        assert_eq!(status_reason(&Status::unavailable("no leader")), "no leader");
    }
}
