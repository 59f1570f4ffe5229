//! The console's session: `POST /api/login` with the cluster secret sets a cookie that stands
//! for it on later requests (a browser's `EventSource` cannot send an `Authorization` header);
//! `POST /api/logout` clears it.
//!
//! The cookie holds an HMAC-SHA256 of a fixed label under the secret, never the secret itself,
//! and is `HttpOnly` (no script reads it) and `SameSite=Strict` (no other site's page sends it).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use tonic::Code;

use super::{Access, ApiError};
use crate::rpc::{constant_time_eq, SecretAuth};

/// The cookie's name.
pub const COOKIE: &str = "tethys_session";

const LOGIN: &str = "/api/login";
const LOGOUT: &str = "/api/logout";

/// The session cookie's value for one cluster secret.
pub(super) struct Session {
    value: String,
}

impl Session {
    pub(super) fn new(auth: &SecretAuth) -> Session {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(auth.secret()).expect("HMAC takes a key of any length");
        mac.update(b"tethys console session v1");
        let value = mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
        Session { value }
    }

    /// Whether a `Cookie` header of `headers` carries this session.
    pub(super) fn carried_by(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|cookies| cookies.split(';'))
            .filter_map(|cookie| cookie.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .any(|given| constant_time_eq(given.as_bytes(), self.value.as_bytes()))
    }

    fn set_cookie(&self) -> HeaderValue {
        HeaderValue::try_from(format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", self.value)).expect("hex is a valid header value")
    }
}

/// Whether `path` needs no credentials: logging in and out, and the API's description (which
/// holds no data).
pub(super) fn is_open(path: &str) -> bool {
    path == LOGIN || path == LOGOUT || path == super::openapi::PATH
}

/// `POST /api/login`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The cluster secret.
    pub token: String,
}

/// The login and logout routes.
pub(super) fn router(access: Arc<Access>) -> Router {
    Router::new().route(LOGIN, post(login)).route(LOGOUT, post(logout)).with_state(access)
}

/// Log in: 204 with the session cookie for the right secret, 401 otherwise.
#[utoipa::path(post, path = "/api/login", tag = "session", request_body = Login,
    responses((status = 204, description = "Logged in: the session cookie is set"),
              (status = 401, description = "Wrong token", body = super::openapi::ErrorBody)))]
pub(super) async fn login(
    axum::extract::State(access): axum::extract::State<Arc<Access>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(super::api::body_error)?;
    let login: Login =
        serde_json::from_slice(&body).map_err(|error| ApiError::new(Code::InvalidArgument, format!("bad login JSON: {error}")))?;
    if !access.auth.accepts(format!("Bearer {}", login.token).as_bytes()) {
        return Err(ApiError::new(Code::Unauthenticated, "wrong token"));
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, access.session.set_cookie())]).into_response())
}

/// Log out: 204, and the session cookie cleared.
#[utoipa::path(post, path = "/api/logout", tag = "session", responses((status = 204, description = "The session cookie is cleared")))]
pub(super) async fn logout() -> Response {
    let cleared = HeaderValue::from_static("tethys_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cleared)]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_stands_for_the_secret_without_holding_it() {
        let session = Session::new(&SecretAuth::new("a-secret-of-the-cluster").unwrap());
        assert!(!session.value.contains("a-secret"));
        assert_eq!(session.value.len(), 64);
        let headers = |cookie: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
            headers
        };
        assert!(session.carried_by(&headers(&format!("theme=dark; {COOKIE}={}", session.value))));
        assert!(!session.carried_by(&headers(&format!("{COOKIE}={}0", session.value))));
        assert!(!session.carried_by(&headers(&format!("other_{COOKIE}={}", session.value))));
        assert!(!session.carried_by(&HeaderMap::new()));
        let other = Session::new(&SecretAuth::new("another-secret-of-a-cluster").unwrap());
        assert!(!other.carried_by(&headers(&format!("{COOKIE}={}", session.value))));
    }
}
