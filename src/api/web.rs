//! The dashboard's page: the files of `web/`, embedded in the binary at build time, served
//! at `/` (`index.html`) and `/ui/...`, without a token since they hold no data (every data
//! route they call needs it).
//!
//! Every answer carries a Content-Security-Policy that allows scripts from this server only
//! (no inline script, no `eval`), so a string that slipped into the page as HTML could still
//! run nothing. `TUNEFLOW_DASHBOARD_DIR` serves the files from a directory instead, read at
//! each request, for working on the page without rebuilding.

use std::borrow::Cow;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::error::ApiError;

/// The page's files.
#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

/// The policy every answer carries: scripts, styles, images and requests from this server
/// only; inline styles (set by the plotting library) are the one exception.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The environment variable that serves the page from a directory (for development).
pub const DIR_VARIABLE: &str = "TUNEFLOW_DASHBOARD_DIR";

/// True for the paths of the page's files, which are served without a token.
pub fn is_page(path: &str) -> bool {
    path == "/" || path == "/index.html" || path.starts_with("/ui/")
}

/// `GET /` and `GET /ui/*`: a file of the page.
pub async fn page(request: Request) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the dashboard's files are only read (GET)",
        )
        .into_response();
    }
    let path = request.uri().path();
    let file = match path {
        "/" | "/index.html" => "index.html",
        other => other.trim_start_matches("/ui/"),
    };
    match read(file) {
        Some(bytes) => {
            let mut response = (StatusCode::OK, bytes.into_owned()).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime(file)));
            // index.html names the other files; it must not be cached past an upgrade.
            let cache = if file == "index.html" {
                "no-cache"
            } else {
                "public, max-age=300"
            };
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            response
        }
        None => ApiError::not_found(format!("the dashboard has no file `{file}`")).into_response(),
    }
}

/// The bytes of one file of the page, from the binary or from [`DIR_VARIABLE`].
fn read(file: &str) -> Option<Cow<'static, [u8]>> {
    if file.split('/').any(|part| part == ".." || part.is_empty()) {
        return None;
    }
    match std::env::var_os(DIR_VARIABLE) {
        Some(dir) => std::fs::read(std::path::Path::new(&dir).join(file))
            .ok()
            .map(Cow::Owned),
        None => Assets::get(file).map(|f| f.data),
    }
}

/// The media type of a file of the page, by its extension.
fn mime(file: &str) -> &'static str {
    match file.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

/// Middleware: the security headers on every answer.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_paths_and_types() {
        assert!(is_page("/"));
        assert!(is_page("/ui/app.js"));
        assert!(!is_page("/api/v1/experiments"));
        assert!(!is_page("/uix"));
        assert_eq!(
            mime("vendor/echarts.min.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(mime("index.html"), "text/html; charset=utf-8");
    }

    #[test]
    fn no_path_leaves_the_page() {
        assert!(read("../Cargo.toml").is_none());
        assert!(read("vendor/../../Cargo.toml").is_none());
        assert!(read("/etc/passwd").is_none());
        assert!(read("index.html").is_some());
    }
}
