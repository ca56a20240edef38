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

/// `GET /` and `GET /ui/*`: a file of the page. Every file is revalidated at each use
/// (`no-cache` with an `ETag` from its hash), so a browser never mixes the files of two
/// versions after an upgrade, and an unchanged file costs a 304.
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
    let Some((bytes, etag)) = read(file) else {
        return ApiError::not_found(format!("the dashboard has no file `{file}`")).into_response();
    };
    let unchanged = etag.as_ref().is_some_and(|etag| {
        request
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|given| given.split(',').any(|tag| tag.trim() == etag))
    });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, bytes.into_owned()).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime(file)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        headers.insert(header::ETAG, etag);
    }
    response
}

/// The bytes of one file of the page and its entity tag: from the binary, or from
/// [`DIR_VARIABLE`] (read at each request, without a tag).
fn read(file: &str) -> Option<(Cow<'static, [u8]>, Option<String>)> {
    if file.split('/').any(|part| part == ".." || part.is_empty()) {
        return None;
    }
    match std::env::var_os(DIR_VARIABLE) {
        Some(dir) => std::fs::read(std::path::Path::new(&dir).join(file))
            .ok()
            .map(|bytes| (Cow::Owned(bytes), None)),
        None => Assets::get(file).map(|f| {
            let hash = f.metadata.sha256_hash();
            let tag: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
            (f.data, Some(format!("\"{tag}\"")))
        }),
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

    #[tokio::test]
    async fn files_are_revalidated_by_their_tag() {
        let get = |tag: Option<&str>| {
            let mut request = Request::builder().uri("/ui/app.js");
            if let Some(tag) = tag {
                request = request.header(header::IF_NONE_MATCH, tag);
            }
            page(request.body(axum::body::Body::empty()).expect("request"))
        };
        let first = get(None).await;
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");
        let tag = first.headers()[header::ETAG]
            .to_str()
            .expect("tag")
            .to_string();
        assert_eq!(get(Some(&tag)).await.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(get(Some("\"other\"")).await.status(), StatusCode::OK);
    }

    #[test]
    fn no_path_leaves_the_page() {
        assert!(read("../Cargo.toml").is_none());
        assert!(read("vendor/../../Cargo.toml").is_none());
        assert!(read("/etc/passwd").is_none());
        assert!(read("index.html").is_some());
    }
}
