//! MLflow's error answers: `{"error_code": "...", "message": "..."}` with MLflow's statuses.
//!
//! The MLflow routes answer in MLflow's format, not tuneflow's, because the official clients
//! read `error_code` from the body to build their exceptions (`MlflowException.error_code`).
//! The mapping from store errors lives here and nowhere else. A request never causes a 5xx:
//! only an unreachable store does (503 `TEMPORARILY_UNAVAILABLE`), or data the store cannot
//! read back (500 `INTERNAL_ERROR`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// The MLflow error codes these routes answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A field has a value that is not allowed (400).
    InvalidParameterValue,
    /// The experiment, run or tag does not exist (404).
    ResourceDoesNotExist,
    /// The name is taken (400).
    ResourceAlreadyExists,
    /// The request cannot be read at all (400).
    BadRequest,
    /// The object is in a state that does not allow the change (MLflow answers 500; this
    /// server answers 400, because the request, not the server, is at fault).
    InvalidState,
    /// No such route (404).
    EndpointNotFound,
    /// The store cannot be reached (503).
    TemporarilyUnavailable,
    /// The server failed (500): only for stored data that cannot be read back.
    InternalError,
}

impl ErrorCode {
    /// The code's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            ErrorCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status MLflow pairs with the code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidParameterValue
            | ErrorCode::ResourceAlreadyExists
            | ErrorCode::BadRequest
            | ErrorCode::InvalidState => StatusCode::BAD_REQUEST,
            ErrorCode::ResourceDoesNotExist | ErrorCode::EndpointNotFound => StatusCode::NOT_FOUND,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed MLflow request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlflowError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// A sentence for people, worded as MLflow words it where clients or users match on it.
    pub message: String,
}

/// The result of MLflow handlers and helpers.
pub type MlflowResult<T> = Result<T, MlflowError>;

impl MlflowError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> MlflowError {
        MlflowError {
            code,
            message: message.into(),
        }
    }

    /// `INVALID_PARAMETER_VALUE`.
    pub fn invalid(message: impl Into<String>) -> MlflowError {
        MlflowError::new(ErrorCode::InvalidParameterValue, message)
    }

    /// `RESOURCE_DOES_NOT_EXIST`.
    pub fn missing(message: impl Into<String>) -> MlflowError {
        MlflowError::new(ErrorCode::ResourceDoesNotExist, message)
    }

    /// `RESOURCE_DOES_NOT_EXIST` for a run id, in MLflow's words.
    pub fn no_run(run_id: &str) -> MlflowError {
        MlflowError::missing(format!("Run with id={run_id} not found"))
    }

    /// `RESOURCE_DOES_NOT_EXIST` for an experiment id, in MLflow's words.
    pub fn no_experiment(id: i64) -> MlflowError {
        MlflowError::missing(format!("No Experiment with id={id} exists"))
    }

    /// `ENDPOINT_NOT_FOUND` for a route this server does not implement.
    pub fn no_endpoint(path: &str) -> MlflowError {
        MlflowError::new(
            ErrorCode::EndpointNotFound,
            format!("tuneflow does not implement the MLflow endpoint {path}; see docs/mlflow.md"),
        )
    }
}

impl std::fmt::Display for MlflowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for MlflowError {}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error_code: &'static str,
    message: &'a str,
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        if status.is_server_error() {
            tracing::error!(code = self.code.as_str(), "{}", self.message);
        }
        let body = ErrorBody {
            error_code: self.code.as_str(),
            message: &self.message,
        };
        (status, Json(body)).into_response()
    }
}

impl From<StoreError> for MlflowError {
    fn from(error: StoreError) -> MlflowError {
        match error {
            StoreError::Missing {
                what: "run",
                ref key,
            } => MlflowError::no_run(key),
            StoreError::Missing {
                what: "tracking experiment",
                ref key,
            } => MlflowError::missing(format!("No Experiment with id={key} exists")),
            StoreError::Missing { .. } | StoreError::NotFound(_) => {
                MlflowError::missing(error.to_string())
            }
            StoreError::AlreadyExists(_) => {
                MlflowError::new(ErrorCode::ResourceAlreadyExists, error.to_string())
            }
            StoreError::Conflict(message) => MlflowError::invalid(message),
            StoreError::Corrupt(_) => MlflowError::new(ErrorCode::InternalError, error.to_string()),
            StoreError::Open { .. }
            | StoreError::Url(_)
            | StoreError::Migrate(_)
            | StoreError::Query(_)
            | StoreError::Closed(_) => MlflowError::new(
                ErrorCode::TemporarilyUnavailable,
                format!("{error}; nothing was recorded"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_mlflow_codes() {
        let missing = MlflowError::from(StoreError::Missing {
            what: "run",
            key: "abc".into(),
        });
        assert_eq!(missing.code, ErrorCode::ResourceDoesNotExist);
        assert_eq!(missing.message, "Run with id=abc not found");
        let taken = MlflowError::from(StoreError::AlreadyExists("x".into()));
        assert_eq!(taken.code.status(), StatusCode::BAD_REQUEST);
        assert_eq!(taken.code.as_str(), "RESOURCE_ALREADY_EXISTS");
        let conflict = MlflowError::from(StoreError::Conflict("param".into()));
        assert_eq!(conflict.code, ErrorCode::InvalidParameterValue);
        let closed = MlflowError::from(StoreError::Closed("gone".into()));
        assert_eq!(closed.code.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(closed.code.as_str(), "TEMPORARILY_UNAVAILABLE");
    }
}
