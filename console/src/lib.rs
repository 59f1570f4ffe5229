//! The web console: a single-page app (its source in `web/`, built into `dist/` by
//! `npm run build`), embedded in the binary so that the binary is the whole product, and served
//! by the masters' HTTP server on every path outside the API ([`page`]).
//!
//! A build made before the front end was built embeds nothing; it then answers every page with
//! one saying how to build the front end ([`NOT_BUILT`]), and everything else still works.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The built front end.
#[derive(rust_embed::Embed)]
#[folder = "dist/"]
struct Assets;

/// The page a build without the front end shows.
pub const NOT_BUILT: &str = "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tethys console: not built</title></head>
<body style=\"font-family: sans-serif; max-width: 44em; margin: 3em auto\">
<h1>The console's front end is not in this build</h1>
<p>This <code>tethys</code> binary was built before the console's front end. Build the front end,
then the binary again (the binary embeds it):</p>
<pre>cd console/web &amp;&amp; npm ci &amp;&amp; npm run build &amp;&amp; cd ../.. &amp;&amp; cargo build --release -p tethys</pre>
<p>The HTTP API under <code>/api/</code> works without it (see <code>/api/openapi.json</code>).</p>
</body></html>
";

/// Whether this build embeds the front end.
pub fn is_built() -> bool {
    Assets::get("index.html").is_some()
}

/// The embedded files' paths (for checks and tests).
pub fn files() -> Vec<String> {
    Assets::iter().map(|path| path.into_owned()).filter(|path| path != ".gitkeep").collect()
}

/// The answer for `path` (outside the API): the file at that path; for any other path without a
/// file extension, the app's page (it routes itself: `/jobs/3` is the app); 404 for a missing
/// file; and the [`NOT_BUILT`] page when the front end is not in this build.
pub fn page(path: &str) -> Response {
    if !is_built() {
        return (StatusCode::SERVICE_UNAVAILABLE, html_headers(), NOT_BUILT).into_response();
    }
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if let Some(file) = Assets::get(path).filter(|_| path != ".gitkeep") {
        // Bundles are named by their content's hash: a browser may keep them for good.
        let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
        let headers = [(header::CONTENT_TYPE, content_type(path)), (header::CACHE_CONTROL, HeaderValue::from_static(cache))];
        return (headers, file.data.into_owned()).into_response();
    }
    let last = path.rsplit('/').next().unwrap_or(path);
    if last.contains('.') {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    }
    let index = Assets::get("index.html").expect("is_built checked it");
    (html_headers(), index.data.into_owned()).into_response()
}

fn html_headers() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

/// The content type of a file the build writes, by its extension.
fn content_type(path: &str) -> HeaderValue {
    let extension = path.rsplit_once('.').map_or("", |(_, extension)| extension);
    HeaderValue::from_static(match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_extensions() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("assets/app-1f2e.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("assets/app-1f2e.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }

    /// `.ci/run` builds the front end first and sets `TETHYS_CONSOLE_REQUIRED`: there the build
    /// must embed it. Elsewhere either state is served sensibly.
    #[test]
    fn pages_are_the_app_or_say_how_to_build_it() {
        let required = std::env::var_os("TETHYS_CONSOLE_REQUIRED").is_some();
        if required {
            assert!(is_built(), "the front end is not embedded: was `npm run build` run in console/web before cargo?");
        }
        if is_built() {
            assert!(files().iter().any(|file| file.starts_with("assets/") && file.ends_with(".js")), "{:?}", files());
            for path in ["/", "/jobs/3", "/cluster"] {
                let page = page(path);
                assert_eq!(page.status(), StatusCode::OK, "{path}");
                assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
            }
            assert_eq!(page("/missing.js").status(), StatusCode::NOT_FOUND);
            assert_eq!(page("/.gitkeep").status(), StatusCode::NOT_FOUND);
        } else {
            let page = page("/jobs/3");
            assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
    }
}
