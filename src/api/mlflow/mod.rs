//! MLflow's tracking REST API, served by `tuneflow serve` beside tuneflow's own.
//!
//! The official MLflow clients (`mlflow.set_experiment`, `start_run`, `log_metric`,
//! `search_runs`, ...) talk to this server when `MLFLOW_TRACKING_URI` points at it. Every
//! route exists under `/api/2.0/mlflow/` and `/ajax-api/2.0/mlflow/`. The store holds the
//! data ([`Tracking`](crate::store::tracking::Tracking)); these modules read requests the way
//! MLflow's server does ([`wire`]), check them with MLflow's rules ([`validation`]), search in
//! Rust over what the store returns ([`search`]) and answer errors in MLflow's shape
//! ([`error`]). Endpoints this server does not implement answer MLflow's 404
//! `ENDPOINT_NOT_FOUND`, never a 5xx. These routes are not in tuneflow's OpenAPI document;
//! `docs/mlflow.md` describes them.
//!
//! Every tuneflow experiment is a tracking experiment and every trial a run, so MLflow
//! clients see tuneflow's trials, and metrics logged to a trial's run through MLflow reach the
//! trial's early-stopping rule when a client-driven experiment is being served ([`metrics`]).

pub mod error;
pub mod experiments;
pub mod metrics;
pub mod names;
pub mod runs;
pub mod search;
pub mod validation;
pub mod wire;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, OriginalUri, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get};
use axum::{Json, Router};
use serde::Serialize;

use super::state::AppState;
use error::{ErrorCode, MlflowError, MlflowResult};
use wire::Fields;

/// The largest MLflow request body: a full `log-batch` (1000 entities with 8000-character
/// tag values) fits.
pub const MLFLOW_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The MLflow version this server answers `GET /version` with: the API it follows.
pub const MLFLOW_VERSION: &str = "3.17.2";

/// The prefixes every MLflow route is served under.
const PREFIXES: [&str; 2] = ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"];

/// The fields of an MLflow request: the query string of a GET that has one, else the JSON
/// body (MLflow's server reads requests the same way).
#[derive(Debug)]
pub struct MlflowRequest(pub Fields);

impl<S: Send + Sync> FromRequest<S> for MlflowRequest {
    type Rejection = MlflowError;

    async fn from_request(request: Request, state: &S) -> Result<Self, MlflowError> {
        if request.method() == Method::GET && request.uri().query().is_some_and(|q| !q.is_empty()) {
            let pairs = Query::<Vec<(String, String)>>::try_from_uri(request.uri())
                .map_err(|e| {
                    MlflowError::invalid(format!("Cannot read the query string: {}", e.body_text()))
                })?
                .0;
            return Ok(MlflowRequest(Fields::from_query(pairs)));
        }
        if matches!(*request.method(), Method::POST | Method::PUT) {
            check_content_type(request.headers())?;
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    MlflowError::new(
                        ErrorCode::BadRequest,
                        format!(
                            "The request body is larger than the limit of {MLFLOW_BODY_LIMIT} bytes"
                        ),
                    )
                } else {
                    MlflowError::new(
                        ErrorCode::BadRequest,
                        format!("Cannot read the request body: {}", rejection.body_text()),
                    )
                }
            })?;
        Ok(MlflowRequest(Fields::from_body(&body)?))
    }
}

/// Refuses a POST whose body is not declared JSON, as MLflow's server does: a browser page
/// cannot send JSON to another origin without a CORS preflight, so this keeps other sites from
/// writing to a server on localhost with plain form posts.
fn check_content_type(headers: &HeaderMap) -> MlflowResult<()> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(MlflowError::invalid(
            "Bad Request. Content-Type header is missing.",
        ));
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(MlflowError::invalid(
            "Bad Request. Content-Type must be one of ['application/json'].",
        ))
    }
}

/// A 200 answer with `value` as its JSON body.
pub fn ok<T: Serialize>(value: T) -> MlflowResult<Response> {
    Ok(Json(value).into_response())
}

/// A 200 answer with `{}`, as MLflow answers writes.
pub fn empty() -> MlflowResult<Response> {
    ok(serde_json::Map::new())
}

/// The MLflow routes that only read, by their path after the prefix: the only ones a
/// read-only server (`tuneflow dashboard`) answers, whatever the method (every MLflow route
/// here takes GET and POST alike).
const READ_ROUTES: [&str; 6] = [
    "/experiments/get",
    "/experiments/get-by-name",
    "/experiments/search",
    "/runs/get",
    "/runs/search",
    "/metrics/get-history",
];

/// True for a path of MLflow's API.
pub fn is_mlflow(path: &str) -> bool {
    PREFIXES.iter().any(|prefix| path.starts_with(prefix))
        || path.starts_with("/api/2.0/mlflow-artifacts/")
        || path.starts_with("/api/3.0/mlflow/")
        || path.starts_with("/ajax-api/3.0/mlflow/")
}

/// True for a path of an MLflow route that only reads (see [`READ_ROUTES`]).
pub fn is_read(path: &str) -> bool {
    PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| READ_ROUTES.contains(&rest))
    })
}

/// A route of either method: MLflow's clients send reads as GET with a query string and
/// writes as POST with a body, but accept either, so both are served.
fn read<H, T>(handler: H) -> MethodRouter<Arc<AppState>>
where
    H: axum::handler::Handler<T, Arc<AppState>> + Clone,
    T: 'static,
{
    get(handler.clone()).post(handler)
}

/// The routes, under both prefixes, with MLflow's 404 for the rest of MLflow's API.
pub fn router() -> Router<Arc<AppState>> {
    let mut router = Router::new();
    for prefix in PREFIXES {
        let at = |path: &str| format!("{prefix}{path}");
        router = router
            .route(&at("/experiments/create"), read(experiments::create))
            .route(&at("/experiments/get"), read(experiments::get))
            .route(
                &at("/experiments/get-by-name"),
                read(experiments::get_by_name),
            )
            .route(&at("/experiments/search"), read(experiments::search))
            .route(&at("/experiments/update"), read(experiments::update))
            .route(&at("/experiments/delete"), read(experiments::delete))
            .route(&at("/experiments/restore"), read(experiments::restore))
            .route(
                &at("/experiments/set-experiment-tag"),
                read(experiments::set_tag),
            )
            .route(&at("/runs/create"), read(runs::create))
            .route(&at("/runs/get"), read(runs::get))
            .route(&at("/runs/update"), read(runs::update))
            .route(&at("/runs/delete"), read(runs::delete))
            .route(&at("/runs/restore"), read(runs::restore))
            .route(&at("/runs/search"), read(runs::search))
            .route(&at("/runs/set-tag"), read(runs::set_tag))
            .route(&at("/runs/delete-tag"), read(runs::delete_tag))
            .route(&at("/runs/log-parameter"), read(metrics::log_param))
            .route(&at("/runs/log-metric"), read(metrics::log_metric))
            .route(&at("/runs/log-batch"), read(metrics::log_batch))
            .route(&at("/runs/log-inputs"), read(metrics::log_inputs))
            .route(&at("/metrics/get-history"), read(metrics::get_history))
            .route(&at("/{*rest}"), any(not_implemented));
    }
    router
        .route("/api/2.0/mlflow-artifacts/{*rest}", any(not_implemented))
        .route("/api/3.0/mlflow/{*rest}", any(not_implemented))
        .route("/ajax-api/3.0/mlflow/{*rest}", any(not_implemented))
        .route("/version", get(version))
        .layer(DefaultBodyLimit::max(MLFLOW_BODY_LIMIT))
}

/// `ENDPOINT_NOT_FOUND` for MLflow endpoints this server does not implement.
async fn not_implemented(OriginalUri(uri): OriginalUri) -> MlflowError {
    MlflowError::no_endpoint(uri.path())
}

/// `GET /version`: the MLflow version whose API this server follows, as plain text.
async fn version() -> &'static str {
    MLFLOW_VERSION
}
