//! The HTTP side of masters and workers, on a listener of its own: the masters' JSON API (for the
//! console and scripts) and `/metrics` (the Prometheus text format) on masters and workers.
//!
//! - `api`: `GET /api/cluster`, `GET /api/jobs`, `GET /api/jobs/{id}`, `POST /api/jobs`,
//!   `POST /api/jobs/{id}/cancel`. Each handler makes the same call on the masters' `Control`
//!   service as a gRPC client would, in process, so a follower answers and forwards to the leader
//!   exactly as it does over gRPC; its answer is converted to JSON (the structs of `api`).
//! - `metrics`: what `/metrics` shows of a master (Raft, workers, slots, jobs, checkpoints,
//!   submissions, forwarded calls) and of a worker (its id, slots, attempts, registrations,
//!   heartbeats, the term it has seen). Gauges are read from the state when scraped; counters
//!   count where their events happen.
//! - `drafts`: drafts of SQL jobs with versions (`/api/drafts`), in the replicated state, and
//!   the difference between two versions.
//! - `workbench`: the SQL workbench (`/api/sql/*`: check, complete, format, explain, functions;
//!   `POST /api/test-runs`), answered by any master from the SQL crate, nothing replicated; a
//!   test run's sample of a live topic comes from the worker whose process holds the topic.
//! - `programs`: programs of users' own (`/api/programs`): uploaded (up to
//!   `programs::PROGRAM_BYTES_MAX`, not bound by [`BODY_BYTES_MAX`]), listed, deleted.
//! - `output`: a running job's sinks' sampled rows (`/api/jobs/{id}/output`, and streamed), the
//!   console's live results, kept by the leader.
//!
//! Every request under `/api/` and `/metrics` carries the cluster secret as gRPC calls do
//! (`Authorization: Bearer <secret>`, compared in constant time), or the session cookie that
//! `POST /api/login` gives for it (the console's way, as a browser's `EventSource` sends no
//! header); without either the answer is 401 and no data. Only `POST /api/login` and
//! `POST /api/logout` need neither. Other paths are the console's pages when the server has a
//! console ([`Pages`]: its own files, which hold no data), and need the secret when it has none.
//! Bodies over [`BODY_BYTES_MAX`] are refused (413). An error is JSON,
//! `{"error": "<message>", "code": "<gRPC code name>"}`, with the HTTP status of its gRPC code
//! ([`http_status`]).

pub mod api;
pub mod drafts;
pub mod events;
pub mod metrics;
pub mod openapi;
pub mod output;
pub mod programs;
mod session;
pub mod workbench;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use tonic::Code;

use crate::rpc::SecretAuth;

/// The largest request body accepted (1 MiB).
pub const BODY_BYTES_MAX: usize = 1 << 20;

/// Why an HTTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Its listener's address could not be read.
    #[error("cannot read the HTTP listener's address: {0}")]
    Listener(#[source] std::io::Error),
}

/// An HTTP server running on the current tokio runtime; stopped by [`HttpServer::stop`] or when
/// dropped (it stops accepting, ends idle connections and lets requests in flight finish).
pub struct HttpServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Serves `router` on `listener`, with the cluster secret of `auth` required as the module
    /// says, the console's `pages` (if any) on the paths outside the API, and bodies bounded by
    /// [`BODY_BYTES_MAX`].
    pub fn start(
        listener: tokio::net::TcpListener,
        router: Router,
        auth: SecretAuth,
        pages: Option<Pages>,
    ) -> Result<HttpServer, HttpError> {
        let addr = listener.local_addr().map_err(HttpError::Listener)?;
        let access = Arc::new(Access { session: session::Session::new(&auth), auth, console: pages.is_some() });
        let fallback = move |request: Request| {
            let pages = pages.clone();
            async move {
                let path = request.uri().path();
                match pages {
                    Some(pages) if !is_protected(path) => pages(path),
                    _ => ApiError::new(Code::NotFound, "no such path").into_response(),
                }
            }
        };
        let router = router
            .merge(session::router(Arc::clone(&access)))
            .fallback(fallback)
            .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
            .layer(axum::middleware::from_fn_with_state(access, require_secret));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%addr, %error, "the HTTP server stopped");
            }
        });
        tracing::info!(%addr, "serving HTTP");
        Ok(HttpServer { addr, task })
    }

    /// Where it serves.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving (see the type's documentation).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // Dropping the serving future closes the listener and tells every connection to end
        // gracefully.
        self.task.abort();
    }
}

/// The console's pages: the answer for a path outside the API (a file of the console, or its
/// page for any other path, which the page routes itself).
pub type Pages = Arc<dyn Fn(&str) -> Response + Send + Sync>;

/// Who may reach what.
struct Access {
    auth: SecretAuth,
    session: session::Session,
    /// Whether paths outside the API are the console's pages (public) rather than unknown.
    console: bool,
}

/// Whether `path` is the API's or the metrics' (it needs the secret whatever else is served).
fn is_protected(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/metrics"
}

/// Refuses a request without the cluster secret (or the session cookie) where one is needed,
/// before it reaches a handler.
async fn require_secret(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let open = session::is_open(path) || (access.console && !is_protected(path));
    let given = request.headers().get(header::AUTHORIZATION).map(|value| value.as_bytes()).unwrap_or_default();
    if open || access.auth.accepts(given) || access.session.carried_by(request.headers()) {
        next.run(request).await
    } else {
        let mut refused = ApiError::new(Code::Unauthenticated, "missing or wrong cluster secret").into_response();
        refused.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        refused
    }
}

/// An error as the HTTP API answers it: the HTTP status of its gRPC code, and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The gRPC code it stands for.
    pub code: Code,
    /// What went wrong.
    pub message: String,
}

/// The body of an error.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    /// What went wrong.
    error: &'a str,
    /// The gRPC code's name, e.g. `NOT_FOUND`.
    code: &'static str,
}

impl ApiError {
    /// An error of gRPC code `code`, with the HTTP status that code maps to.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { status: http_status(code), code, message: message.into() }
    }

    /// An error with its own HTTP status (a refusal of HTTP itself: the body's size, its syntax).
    pub fn with_status(status: StatusCode, code: Code, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> ApiError {
        ApiError::new(status.code(), status.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: &self.message, code: code_name(self.code) };
        (self.status, axum::Json(body)).into_response()
    }
}

/// The HTTP status of a gRPC code: `INVALID_ARGUMENT` 400, `UNAUTHENTICATED` 401, `NOT_FOUND` 404,
/// `FAILED_PRECONDITION` and `ALREADY_EXISTS` 409, `UNAVAILABLE` 503, any other 500.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::FailedPrecondition | Code::AlreadyExists => StatusCode::CONFLICT,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The name gRPC gives `code` (`NOT_FOUND`, ...).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_http_statuses() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::NotFound, 404),
            (Code::FailedPrecondition, 409),
            (Code::AlreadyExists, 409),
            (Code::Unavailable, 503),
            (Code::Internal, 500),
            (Code::DeadlineExceeded, 500),
        ];
        for (code, status) in cases {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        }
        let error = ApiError::from(tonic::Status::not_found("job 9 does not exist"));
        assert_eq!(
            (error.status, code_name(error.code), error.message.as_str()),
            (StatusCode::NOT_FOUND, "NOT_FOUND", "job 9 does not exist")
        );
    }

    #[test]
    fn an_error_is_json_with_the_code_s_name() {
        let body = ErrorBody { error: "no \"x\"", code: code_name(Code::FailedPrecondition) };
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"error":"no \"x\"","code":"FAILED_PRECONDITION"}"#);
    }
}
