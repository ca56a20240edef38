//! The bearer token: with `--token`, every request but `GET /healthz` and the dashboard's
//! static files (which hold no data) must carry `Authorization: Bearer TOKEN`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;

/// Middleware: refuses requests without the server's token.
pub async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return next.run(request).await;
    };
    if request.uri().path() == "/healthz" || super::web::is_page(request.uri().path()) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let refusal = match given {
        Some(given) if same(given.trim().as_bytes(), expected.as_bytes()) => {
            return next.run(request).await;
        }
        Some(_) => ApiError::unauthorized("the bearer token is wrong"),
        None => ApiError::unauthorized(
            "this server needs `Authorization: Bearer TOKEN` (the token it was started with)",
        ),
    };
    // Read what the client is still sending (up to the body limit) before answering: a
    // connection closed on an unread body reaches the client as a reset, not as this 401.
    let _ = axum::body::to_bytes(request.into_body(), super::BODY_LIMIT).await;
    refusal.into_response()
}

/// Compares in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn compares_whole_tokens() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }
}
