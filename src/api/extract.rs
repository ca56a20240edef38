//! Extractors that answer bad requests with the API's JSON errors instead of axum's plain
//! text: path segments, query strings and JSON bodies.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Path parameters (`{name}`, `{trial}`), or 400 `malformed_body` naming the problem.
#[derive(Debug)]
pub struct Names<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Names<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(names)) => Ok(Names(names)),
            Err(rejection) => Err(ApiError::malformed(format!(
                "cannot read the names in the path: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// A query string (`?since=...`), or 400 `malformed_body` naming the problem.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(params)) => Ok(Params(params)),
            Err(rejection) => Err(ApiError::malformed(format!(
                "cannot read the query string: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// Reads a JSON body into `T`; an empty body is `T::default()`. Syntax errors are 400
/// `malformed_body`, a wrong shape is 422 `invalid_input`, both with serde's position and field.
pub fn json_body<T: DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::invalid(format!("the body does not have the expected fields: {e}"))
        }
        _ => {
            let text = String::from_utf8_lossy(&body);
            let hint = if ["NaN", "Infinity"].iter().any(|w| text.contains(w)) {
                " (JSON has no NaN or Infinity: metric values must be finite numbers; complete a diverged trial as failed)"
            } else {
                ""
            };
            ApiError::malformed(format!("the body is not valid JSON: {e}{hint}"))
        }
    })
}
