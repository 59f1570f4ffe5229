//! The HTTP API's contract: an OpenAPI 3.1 document generated from the Rust types and handlers
//! (utoipa), served at `GET /api/openapi.json` (no token needed: it holds no data). The console's
//! front-end types are generated from the copy kept in `console/openapi.json`, and a test fails
//! when that copy differs from what the types say.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The path.
pub const PATH: &str = "/api/openapi.json";

/// An error's body, as every refusal of the API answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// The gRPC code's name, e.g. `NOT_FOUND`.
    pub code: String,
}

/// The API's document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tethys masters' HTTP API", description = "The cluster and its jobs, as the masters' Control service answers them. Every path but /api/login, /api/logout and this document needs the cluster secret: `Authorization: Bearer <secret>`, or the session cookie /api/login sets."),
    paths(
        super::api::cluster,
        super::api::list_jobs,
        super::api::job_status,
        super::api::submit_job,
        super::api::preview_job,
        super::api::cancel_job,
        super::api::savepoint,
        super::api::rescale,
        super::api::job_live,
        super::api::worker_logs,
        super::api::checkpoint_details,
        super::workbench::check,
        super::workbench::complete,
        super::workbench::format,
        super::workbench::explain,
        super::workbench::functions,
        super::workbench::test_run,
        super::workbench::canvas_compile,
        super::workbench::canvas_preview,
        super::workbench::canvas_from_sql,
        super::drafts::list,
        super::drafts::save,
        super::drafts::version,
        super::drafts::diff,
        super::drafts::delete,
        super::programs::upload,
        super::programs::list,
        super::programs::one,
        super::programs::delete,
        super::events::events,
        super::output::output,
        super::output::stream,
        super::session::login,
        super::session::logout,
    ),
    components(schemas(ErrorBody, super::events::Snapshot)),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "cluster", description = "Masters and workers"),
        (name = "jobs", description = "Submitting and operating jobs"),
        (name = "live", description = "Server-sent events"),
        (name = "programs", description = "Programs of users' own, uploaded to run their jobs"),
        (name = "session", description = "The console's login"),
        (name = "sql", description = "The SQL workbench: checks, completion, formatting, plans, test runs"),
    )
)]
pub struct ApiDoc;

/// The two ways to carry the secret.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(super::session::COOKIE))));
    }
}

/// The document as JSON, pretty-printed (what is served, and what `console/openapi.json` holds).
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().expect("the API's document serializes")
}

/// The document's route.
pub fn router() -> Router {
    Router::new().route(PATH, get(|| async { ([(header::CONTENT_TYPE, "application/json")], document()).into_response() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_route_and_its_types() {
        let document: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let paths = document["paths"].as_object().unwrap();
        for path in [
            "/api/cluster",
            "/api/jobs",
            "/api/jobs/{id}",
            "/api/jobs/{id}/cancel",
            "/api/jobs/{id}/savepoint",
            "/api/jobs/{id}/rescale",
            "/api/events",
            "/api/login",
            "/api/logout",
        ] {
            assert!(paths.contains_key(path), "{path} is missing");
        }
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for schema in ["ClusterView", "JobView", "JobList", "SubmitJob", "Submitted", "ErrorBody", "Snapshot", "RescaleAsk", "Login"] {
            assert!(schemas.contains_key(schema), "{schema} is missing");
        }
        // Doc comments become descriptions.
        assert_eq!(schemas["JobView"]["properties"]["attempt"]["description"], "Its latest attempt (0 before its first deployment).");
    }

    /// The console's front-end types are generated from `console/openapi.json`: it must be what
    /// the types say. `TETHYS_WRITE_OPENAPI=1 cargo test -p tethys-control openapi` rewrites it.
    #[test]
    fn the_console_s_copy_of_the_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/openapi.json");
        let current = document() + "\n";
        if std::env::var_os("TETHYS_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &current).unwrap();
        }
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            kept == current,
            "{} differs from the API's types: run `TETHYS_WRITE_OPENAPI=1 cargo test -p tethys-control openapi`, then rebuild the console (npm run build in console/web) and fix what its type check finds",
            path.display()
        );
    }
}
