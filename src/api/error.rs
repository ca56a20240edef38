//! Errors as the API answers them: a status and `{"error": {"code", "message", "details"}}`.
//!
//! Every failure of a handler becomes an [`ApiError`]; the mapping from engine, store and spec
//! errors to statuses lives here and nowhere else. Bad input is always a 4xx that names what
//! was wrong; a 5xx means the store or the server failed, never the request.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::engine::EngineError;
use crate::spec::SpecErrors;
use crate::store::StoreError;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`not_found`, `invalid_spec`, ...).
    pub code: &'static str,
    /// A sentence for people that names the problem.
    pub message: String,
    /// For `invalid_spec`: every problem with its field path, line, column and hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub details: Option<serde_json::Value>,
}

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 `invalid_input`: a field has a value that is not allowed.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
    }

    /// 400 `malformed_body`.
    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 500 `internal`: something on the server's side failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 403 `read_only`: the server refuses every change (`tuneflow dashboard`).
    pub fn read_only() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this is a read-only dashboard (`tuneflow dashboard`): it changes nothing; stop an experiment with `tuneflow stop EXP --store URL`, or through `tuneflow serve`",
        )
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "{}", self.message);
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<SpecErrors> for ApiError {
    fn from(errors: SpecErrors) -> ApiError {
        let count = errors.errors.len();
        let first = errors
            .errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let message = if count == 1 {
            format!("the experiment is not valid: {first}")
        } else {
            format!("the experiment is not valid ({count} problems; first: {first})")
        };
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_spec",
            message,
            details: serde_json::to_value(&errors.errors).ok(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::AlreadyExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", error.to_string())
            }
            StoreError::NotFound(_) | StoreError::Missing { .. } => {
                ApiError::not_found(error.to_string())
            }
            StoreError::Conflict(_) => ApiError::conflict(error.to_string()),
            StoreError::Corrupt(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                error.to_string(),
            ),
            StoreError::Open { .. }
            | StoreError::Url(_)
            | StoreError::Migrate(_)
            | StoreError::Query(_)
            | StoreError::Closed(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("{error}; nothing was recorded"),
            ),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        match error {
            EngineError::Store(store) => store.into(),
            EngineError::TrialNotFound { .. } => ApiError::not_found(error.to_string()),
            EngineError::TrialFinished { .. } => {
                ApiError::new(StatusCode::CONFLICT, "trial_finished", error.to_string())
            }
            EngineError::Busy { .. }
            | EngineError::SpecChanged { .. }
            | EngineError::NothingToRun(_)
            | EngineError::CannotRun(_)
            | EngineError::Conflict(_) => ApiError::conflict(error.to_string()),
            EngineError::InvalidInput(message) => ApiError::invalid(message),
            EngineError::Internal(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                error.to_string(),
            ),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the body is larger than the limit of {} bytes",
                    super::BODY_LIMIT
                ),
            )
        } else {
            ApiError::malformed(format!("cannot read the body: {}", rejection.body_text()))
        }
    }
}
