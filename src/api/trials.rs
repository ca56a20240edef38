//! Ask and tell: suggestions, observations and completions, and the trials' views.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Names, json_body};
use super::state::AppState;
use crate::engine::EngineError;
use crate::engine::session::{self, ClientOutcome, Decision};
use crate::store::{Experiment, Trial, TrialState};
use crate::summary::{self, TrialSummary};

/// The most trials one request may ask for.
const MAX_SUGGESTIONS: u32 = 1000;

/// `POST .../suggestions`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestionRequest {
    /// How many trials to hand out (1 to 1000; default 1).
    #[schema(minimum = 1, maximum = 1000)]
    pub count: Option<u32>,
}

/// A trial handed out: its name and the parameters to train with.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestedTrial {
    /// The trial's name, for its observations and completion.
    pub name: String,
    /// Numbers for double, int and discrete parameters; strings for categorical ones.
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
}

/// The answer to a request for suggestions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionResponse {
    /// The trials handed out, possibly fewer than asked for (possibly none).
    pub trials: Vec<SuggestedTrial>,
    /// True when asking again can never give more trials.
    pub done: bool,
    /// Why fewer trials than asked for came back.
    pub reason: Option<String>,
}

/// `POST .../observations`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationRequest {
    /// The step (epoch, iteration) the values belong to; not negative. Required: it is an
    /// `Option` only so that its absence gets a message naming it.
    #[schema(required = true, minimum = 0)]
    pub step: Option<i64>,
    /// Metric name to value (finite numbers).
    #[schema(value_type = Object)]
    pub metrics: Map<String, Value>,
}

/// What the client should do next.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionResponse {
    /// `continue`, or `prune`: the trial is EarlyStopped; stop working on it.
    #[schema(value_type = String)]
    pub decision: Decision,
}

/// How a trial ended, in a completion.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompletionState {
    /// Finished: record the final metrics (the default).
    #[default]
    Succeeded,
    /// The work failed.
    Failed,
    /// The client stopped it early.
    Pruned,
}

/// `POST .../complete`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionRequest {
    /// How it ended (default `succeeded`).
    #[serde(default)]
    pub state: CompletionState,
    /// Final metrics of a succeeded trial.
    #[schema(value_type = Option<Object>)]
    pub metrics: Option<Map<String, Value>>,
    /// The step the final metrics belong to (default: the last step reported, or 0).
    pub step: Option<i64>,
    /// Why a failed trial failed.
    pub message: Option<String>,
}

/// A trial with its observations.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrialDetail {
    /// The trial.
    #[serde(flatten)]
    pub trial: TrialSummary,
    /// Every observation, by step then time.
    pub observations: Vec<ObservationView>,
}

/// One observation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObservationView {
    /// Metric name.
    pub metric: String,
    /// Step.
    pub step: i64,
    /// Value.
    pub value: f64,
    /// When it was recorded (RFC 3339).
    pub timestamp: String,
}

/// The trials of an experiment.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrialList {
    /// By index.
    pub trials: Vec<TrialSummary>,
}

/// Hands out new trials of a client-driven experiment.
#[utoipa::path(
    post,
    path = "/api/v1/experiments/{name}/suggestions",
    tag = "trials",
    params(("name" = String, Path, description = "Experiment name")),
    request_body(content = SuggestionRequest, description = "Optional; `{}` asks for one trial"),
    responses(
        (status = 200, description = "Trials to run, recorded as Running", body = SuggestionResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "No such experiment", body = ErrorBody),
        (status = 409, description = "The server runs this experiment's trials itself", body = ErrorBody),
        (status = 422, description = "A count out of range", body = ErrorBody),
    )
)]
pub async fn suggest(
    State(state): State<Arc<AppState>>,
    Names(name): Names<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SuggestionResponse>, ApiError> {
    let request: SuggestionRequest = json_body(body)?;
    let count = request.count.unwrap_or(1);
    if !(1..=MAX_SUGGESTIONS).contains(&count) {
        return Err(ApiError::invalid(format!(
            "count: must be between 1 and {MAX_SUGGESTIONS} (got {count})"
        )));
    }
    let session = state.session(&name).await?;
    let mut session = session.lock().await;
    let suggested = session.suggest(state.store.as_ref(), count).await?;
    state
        .metrics
        .suggestions
        .inc_by(suggested.trials.len() as u64);
    let spec = &session.experiment().spec;
    Ok(Json(SuggestionResponse {
        trials: suggested
            .trials
            .iter()
            .map(|trial| SuggestedTrial {
                name: trial.name.clone(),
                parameters: summary::parameters(spec, trial),
            })
            .collect(),
        done: suggested.done,
        reason: suggested.reason,
    }))
}

/// Records a running trial's metrics at a step and says whether it should go on.
#[utoipa::path(
    post,
    path = "/api/v1/experiments/{name}/trials/{trial}/observations",
    tag = "trials",
    params(
        ("name" = String, Path, description = "Experiment name"),
        ("trial" = String, Path, description = "Trial name"),
    ),
    request_body = ObservationRequest,
    responses(
        (status = 200, description = "Recorded", body = DecisionResponse),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "No such experiment or trial", body = ErrorBody),
        (status = 409, description = "The trial is final already", body = ErrorBody),
        (status = 422, description = "A missing step, or a value that is not a finite number", body = ErrorBody),
    )
)]
pub async fn observe(
    State(state): State<Arc<AppState>>,
    Names((name, trial)): Names<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DecisionResponse>, ApiError> {
    let request: ObservationRequest = json_body(body)?;
    let step = request
        .step
        .ok_or_else(|| ApiError::invalid("step: required (the epoch or iteration, from 0)"))?;
    let metrics = metric_values(&request.metrics, "metrics")?;
    // A served (client-driven) experiment needs no store read to know it is one.
    let session = match state.cached_session(&name).await {
        Some(session) => session,
        None => {
            let experiment = state.experiment(&name).await?;
            if experiment.spec.trial_template.is_some() {
                let decision = push(&state, &experiment, &trial, step, &metrics).await?;
                state.metrics.observations.inc_by(metrics.len() as u64);
                return Ok(Json(DecisionResponse { decision }));
            }
            state.session(&name).await?
        }
    };
    let decision = session
        .lock()
        .await
        .observe(state.store.as_ref(), &trial, step, &metrics)
        .await?;
    state.metrics.observations.inc_by(metrics.len() as u64);
    Ok(Json(DecisionResponse { decision }))
}

/// Observations pushed for a trial the server runs itself (Katib's Push collector).
async fn push(
    state: &AppState,
    experiment: &Experiment,
    trial: &str,
    step: i64,
    metrics: &[(String, f64)],
) -> Result<Decision, ApiError> {
    let trial = find_trial(state, experiment, trial).await?;
    if trial.state != TrialState::Running {
        return Err(EngineError::TrialFinished {
            trial: trial.name,
            state: trial.state,
            detail: trial.message,
        }
        .into());
    }
    session::check_metrics(metrics, step)?;
    let observations = session::observations_at(metrics, step);
    state
        .store
        .add_observations(trial.id, &observations)
        .await?;
    Ok(Decision::Continue)
}

/// Ends a trial: succeeded with its final metrics, failed, or pruned.
#[utoipa::path(
    post,
    path = "/api/v1/experiments/{name}/trials/{trial}/complete",
    tag = "trials",
    params(
        ("name" = String, Path, description = "Experiment name"),
        ("trial" = String, Path, description = "Trial name"),
    ),
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "The trial as it is now", body = TrialSummary),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "No such experiment or trial", body = ErrorBody),
        (status = 409, description = "The trial is final already", body = ErrorBody),
        (status = 422, description = "A value that is not a finite number", body = ErrorBody),
    )
)]
pub async fn complete(
    State(state): State<Arc<AppState>>,
    Names((name, trial)): Names<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TrialSummary>, ApiError> {
    let request: CompletionRequest = json_body(body)?;
    let outcome = match request.state {
        CompletionState::Succeeded => {
            if request.message.is_some() {
                return Err(ApiError::invalid(
                    "message: only a failed completion takes a message",
                ));
            }
            ClientOutcome::Succeeded {
                metrics: match &request.metrics {
                    Some(metrics) => metric_values(metrics, "metrics")?,
                    None => Vec::new(),
                },
                step: request.step,
            }
        }
        CompletionState::Failed => ClientOutcome::Failed {
            message: request.message,
        },
        CompletionState::Pruned => ClientOutcome::Pruned,
    };
    if !matches!(request.state, CompletionState::Succeeded)
        && (request.metrics.is_some() || request.step.is_some())
    {
        return Err(ApiError::invalid(
            "metrics: only a succeeded completion takes metrics; report them as observations first",
        ));
    }
    let session = state.session(&name).await?;
    let mut session = session.lock().await;
    let trial = session
        .complete(state.store.as_ref(), &trial, outcome)
        .await?;
    state
        .metrics
        .completed
        .get_or_create(&super::metrics::StateLabels {
            state: trial.state.to_string(),
        })
        .inc();
    Ok(Json(TrialSummary::new(&session.experiment().spec, &trial)))
}

/// Renews a running trial's lease without reporting anything.
#[utoipa::path(
    post,
    path = "/api/v1/experiments/{name}/trials/{trial}/heartbeat",
    tag = "trials",
    params(
        ("name" = String, Path, description = "Experiment name"),
        ("trial" = String, Path, description = "Trial name"),
    ),
    responses(
        (status = 204, description = "Lease renewed"),
        (status = 404, description = "No such experiment or trial", body = ErrorBody),
        (status = 409, description = "The trial is final already", body = ErrorBody),
    )
)]
pub async fn heartbeat(
    State(state): State<Arc<AppState>>,
    Names((name, trial)): Names<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let session = state.session(&name).await?;
    session
        .lock()
        .await
        .heartbeat(state.store.as_ref(), &trial)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists an experiment's trials.
#[utoipa::path(
    get,
    path = "/api/v1/experiments/{name}/trials",
    tag = "trials",
    params(("name" = String, Path, description = "Experiment name")),
    responses(
        (status = 200, description = "Its trials by index", body = TrialList),
        (status = 404, description = "No such experiment", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Names(name): Names<String>,
) -> Result<Json<TrialList>, ApiError> {
    let experiment = state.experiment(&name).await?;
    let trials = state.store.trials(experiment.id).await?;
    Ok(Json(TrialList {
        trials: trials
            .iter()
            .map(|t| TrialSummary::new(&experiment.spec, t))
            .collect(),
    }))
}

/// Shows one trial with its observations.
#[utoipa::path(
    get,
    path = "/api/v1/experiments/{name}/trials/{trial}",
    tag = "trials",
    params(
        ("name" = String, Path, description = "Experiment name"),
        ("trial" = String, Path, description = "Trial name"),
    ),
    responses(
        (status = 200, description = "The trial", body = TrialDetail),
        (status = 404, description = "No such experiment or trial", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Names((name, trial)): Names<(String, String)>,
) -> Result<Json<TrialDetail>, ApiError> {
    let experiment = state.experiment(&name).await?;
    let trial = find_trial(&state, &experiment, &trial).await?;
    let observations = state.store.observations(trial.id, None).await?;
    Ok(Json(TrialDetail {
        trial: TrialSummary::new(&experiment.spec, &trial),
        observations: observations
            .into_iter()
            .map(|o| ObservationView {
                metric: o.metric,
                step: o.step,
                value: o.value,
                timestamp: summary::timestamp(o.timestamp),
            })
            .collect(),
    }))
}

/// The trial of `experiment` called `name`, or 404.
pub(crate) async fn find_trial(
    state: &AppState,
    experiment: &Experiment,
    name: &str,
) -> Result<Trial, ApiError> {
    state
        .store
        .trial(experiment.id, name)
        .await?
        .ok_or_else(|| {
            EngineError::TrialNotFound {
                experiment: experiment.name.clone(),
                trial: name.to_string(),
            }
            .into()
        })
}

/// The numbers of a `metrics` object, in the order given; anything else is 422 naming the
/// metric.
fn metric_values(
    metrics: &Map<String, Value>,
    field: &str,
) -> Result<Vec<(String, f64)>, ApiError> {
    metrics
        .iter()
        .map(|(name, value)| match value.as_f64() {
            Some(number) => Ok((name.clone(), number)),
            None => Err(ApiError::invalid(format!(
                "{field}.{name}: expected a number, found {value}"
            ))),
        })
        .collect()
}
