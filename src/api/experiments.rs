//! `/api/v1/experiments`: create, list, show and delete experiments.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::Names;
use super::state::AppState;
use crate::engine;
use crate::spec::{self, ExperimentSpec};
use crate::store::Experiment;
use crate::summary::ExperimentSummary;

/// An experiment: its status and its spec.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentView {
    /// Name, state, counts and best trial.
    #[serde(flatten)]
    pub summary: ExperimentSummary,
    /// `client` when clients run its trials (no trial template), `server` when the server
    /// runs them.
    pub driver: &'static str,
    /// `parallelTrialCount`.
    pub parallel_trial_count: u32,
    /// The validated spec.
    #[schema(value_type = Object)]
    pub spec: ExperimentSpec,
}

/// Every experiment.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentList {
    /// Oldest first.
    pub experiments: Vec<ExperimentView>,
}

/// Builds the view of a stored experiment (the store adds up its trials).
pub async fn view(state: &AppState, experiment: Experiment) -> Result<ExperimentView, ApiError> {
    let tally = state
        .store
        .tally(experiment.id, experiment.spec.objective.direction)
        .await?;
    let summary = ExperimentSummary::from_tally(&experiment, &tally);
    Ok(ExperimentView {
        summary,
        driver: if experiment.spec.trial_template.is_some() {
            "server"
        } else {
            "client"
        },
        parallel_trial_count: experiment.spec.parallel_trial_count,
        spec: experiment.spec,
    })
}

/// Creates an experiment from a document: the same YAML or JSON as an experiment file.
#[utoipa::path(
    post,
    path = "/api/v1/experiments",
    tag = "experiments",
    request_body(
        description = "An experiment document, as in an experiment file",
        content(
            (Object = "application/json"),
            (String = "application/yaml"),
        )
    ),
    responses(
        (status = 201, description = "Created", body = ExperimentView),
        (status = 400, description = "The body is not valid JSON (declared as JSON) or not UTF-8", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 415, description = "Neither JSON nor YAML", body = ErrorBody),
        (status = 422, description = "The document breaks a rule", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ExperimentView>), ApiError> {
    let body = body?;
    if check_document_type(&headers)? == Format::Json {
        // YAML would read most malformed JSON as some other document; say what is wrong.
        serde_json::from_slice::<serde::de::IgnoredAny>(&body)
            .map_err(|e| ApiError::malformed(format!("the body is not valid JSON: {e}")))?;
    }
    let document = std::str::from_utf8(&body)
        .map_err(|e| {
            ApiError::malformed(format!(
                "the body is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ))
        })?
        .to_string();
    let spec = spec::parse_str(&document, "request body")?;
    let experiment = engine::create(state.store.as_ref(), &spec, &document).await?;
    if experiment.spec.trial_template.is_some() {
        state.start_run(&experiment, document);
    } else {
        // Serve it at once: it becomes Running and its leases start to count.
        state.session(&experiment.name).await?;
    }
    let experiment = state.experiment(&experiment.name).await?;
    Ok((StatusCode::CREATED, Json(view(&state, experiment).await?)))
}

/// How a document body is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `application/json`: must be valid JSON.
    Json,
    /// YAML, or undeclared (`curl --data` sends `application/x-www-form-urlencoded`): read as
    /// YAML, which also reads JSON.
    Yaml,
}

/// Accepts JSON and YAML bodies, and bodies without a meaningful type.
fn check_document_type(headers: &HeaderMap) -> Result<Format, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Format::Yaml);
    };
    let media = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => Ok(Format::Json),
        "application/yaml"
        | "application/x-yaml"
        | "text/yaml"
        | "text/x-yaml"
        | "text/plain"
        | "application/x-www-form-urlencoded" => Ok(Format::Yaml),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "cannot read an experiment from `{other}`: send JSON (application/json) or YAML (application/yaml)"
            ),
        )),
    }
}

/// Lists every experiment with its status.
#[utoipa::path(
    get,
    path = "/api/v1/experiments",
    tag = "experiments",
    responses((status = 200, description = "Every experiment, oldest first", body = ExperimentList))
)]
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<ExperimentList>, ApiError> {
    let mut experiments = Vec::new();
    for experiment in state.store.experiments().await? {
        experiments.push(view(&state, experiment).await?);
    }
    Ok(Json(ExperimentList { experiments }))
}

/// Shows one experiment: spec and status (state, reason, counts per trial state, best trial).
#[utoipa::path(
    get,
    path = "/api/v1/experiments/{name}",
    tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    responses(
        (status = 200, description = "The experiment", body = ExperimentView),
        (status = 404, description = "No such experiment", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Names(name): Names<String>,
) -> Result<Json<ExperimentView>, ApiError> {
    let experiment = state.experiment(&name).await?;
    Ok(Json(view(&state, experiment).await?))
}

/// Stops an experiment's running trials and deletes it with everything it recorded.
#[utoipa::path(
    delete,
    path = "/api/v1/experiments/{name}",
    tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such experiment", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Names(name): Names<String>,
) -> Result<StatusCode, ApiError> {
    if state.delete(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no experiment named `{name}`")))
    }
}
