//! The routes the dashboard draws from, made for plots and documented like the rest of the API
//! so that other tools can use them too: trials as columns with a change cursor, every
//! observation of one metric, parameter importance, the document as written, a trial's event
//! log and the tail of its log, and the stop request.
//!
//! Columns rather than rows: 10,000 trials as one object per trial repeat every key 10,000
//! times; as columns the payload is mostly numbers and compresses well. The cursor is a time
//! in the store's clock, taken a little before the answer was read
//! ([`CURSOR_OVERLAP`]), so a change committed while the answer was being read comes again in
//! the next answer; the page merges trials by index, which makes a repeat harmless.
//! See `docs/dashboard.md` for the shapes with examples.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tuneflow_algorithms::importance::{ImportanceSettings, fanova};
use tuneflow_algorithms::{Direction, Distribution, Domain, ParameterValue};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::experiments::{ExperimentView, view};
use super::extract::{Names, Params};
use super::state::AppState;
use crate::engine::{Engine, rules};
use crate::spec::ExperimentSpec;
use crate::store::{
    CurvePoint, Experiment, ExperimentState, Micros, Trial, TrialState, now_micros,
};
use crate::summary;

/// How far before the read each cursor points (see the module's header).
pub const CURSOR_OVERLAP: Micros = 3_000_000;

/// The most trial indices one observations request may name.
const MAX_TRIAL_FILTER: usize = 10_000;

/// The default and the largest number of log lines one request returns.
const LOG_LINES: (usize, usize) = (200, 5_000);

/// How long a computed importance is served before it is computed again when trials have
/// finished since: fANOVA over thousands of trials takes a while, and a live page asks for
/// it every few seconds.
const IMPORTANCE_TTL: Duration = Duration::from_secs(10);

/// `GET /api/v1/info`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// tuneflow's version.
    pub version: &'static str,
    /// True when this server refuses every change (`tuneflow dashboard`).
    pub read_only: bool,
}

/// What the server is: its version, and whether it may change anything.
#[utoipa::path(
    get,
    path = "/api/v1/info",
    tag = "dashboard",
    responses((status = 200, description = "The server", body = Info))
)]
pub async fn info(State(state): State<Arc<AppState>>) -> Json<Info> {
    Json(Info {
        version: env!("CARGO_PKG_VERSION"),
        read_only: state.read_only,
    })
}

/// `?since=CURSOR`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ColumnsQuery {
    /// The `cursor` of an earlier answer: only the trials that changed since then.
    pub since: Option<String>,
}

/// An experiment's state, in each columns answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateView {
    /// `Created`, `Running`, `Succeeded`, `Failed` or `Interrupted`.
    pub state: String,
    /// Why it is in that state.
    pub reason: Option<String>,
    /// Detail.
    pub message: Option<String>,
}

/// The objective.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectiveView {
    /// The objective metric.
    pub metric: String,
    /// `minimize` or `maximize`.
    pub direction: String,
    /// The goal, if any.
    pub goal: Option<f64>,
}

/// One parameter of the search space, described for axes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParameterView {
    /// Its name.
    pub name: String,
    /// `double`, `int`, `discrete` or `categorical`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Lower bound (double, int, discrete).
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
    /// True on a log scale.
    pub log: bool,
    /// The values of a categorical or discrete parameter.
    #[schema(value_type = Option<Vec<Object>>)]
    pub values: Option<Vec<Value>>,
}

/// The trials as columns: entry `i` of every column belongs to the same trial.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct TrialColumns {
    /// Trial indices.
    pub index: Vec<u64>,
    /// Names.
    pub name: Vec<String>,
    /// States.
    pub state: Vec<&'static str>,
    /// Objective values, null until known.
    pub objective: Vec<Option<f64>>,
    /// The last step the objective was reported at, once finished.
    pub step: Vec<Option<i64>>,
    /// When suggested, in milliseconds since the Unix epoch.
    pub created: Vec<i64>,
    /// When last started (ms), if it was.
    pub started: Vec<Option<i64>>,
    /// When finished (ms), if it was.
    pub completed: Vec<Option<i64>>,
    /// Why it is in its state.
    pub message: Vec<Option<String>>,
    /// Per parameter name, the trials' values (numbers, or strings for categoricals).
    #[schema(value_type = Object)]
    pub parameters: serde_json::Map<String, Value>,
}

/// `GET .../columns`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Columns {
    /// Pass as `since` to get only what changes from now on.
    pub cursor: String,
    /// True when these are every trial; false when only those changed since `since`.
    pub full: bool,
    /// The experiment's state now.
    pub experiment: StateView,
    /// The objective.
    pub objective: ObjectiveView,
    /// The objective metric, then the additional metrics.
    pub metrics: Vec<String>,
    /// The search space.
    pub parameters: Vec<ParameterView>,
    /// The trials.
    pub trials: TrialColumns,
}

/// The trials of an experiment as columns, every one or those changed since a cursor.
#[utoipa::path(
    get,
    path = "/api/v1/experiments/{name}/columns",
    tag = "dashboard",
    params(("name" = String, Path, description = "Experiment name"), ColumnsQuery),
    responses(
        (status = 200, description = "The trials as columns", body = Columns),
        (status = 400, description = "A cursor that is not one", body = ErrorBody),
        (status = 404, description = "No such experiment", body = ErrorBody),
    )
)]
pub async fn columns(
    State(state): State<Arc<AppState>>,
    Names(name): Names<String>,
    Params(query): Params<ColumnsQuery>,
) -> Result<Json<Columns>, ApiError> {
    let since = query
        .since
        .as_deref()
        .map(|cursor| {
            cursor.parse::<Micros>().map_err(|_| {
                ApiError::malformed(format!(
                    "since: `{cursor}` is not a cursor; pass the `cursor` of an earlier answer"
                ))
            })
        })
        .transpose()?;
    let cursor = now_micros() - CURSOR_OVERLAP;
    let experiment = state.experiment(&name).await?;
    let trials = match since {
        Some(since) => {
            state
                .store
                .trials_changed_since(experiment.id, since)
                .await?
        }
        None => state.store.trials(experiment.id).await?,
    };
    let spec = &experiment.spec;
    Ok(Json(Columns {
        cursor: cursor.to_string(),
        full: since.is_none(),
        experiment: StateView {
            state: experiment.state.to_string(),
            reason: experiment.reason.clone(),
            message: experiment.message.clone(),
        },
        objective: ObjectiveView {
            metric: spec.objective.metric.clone(),
            direction: match spec.objective.direction {
                Direction::Minimize => "minimize",
                Direction::Maximize => "maximize",
            }
            .to_string(),
            goal: spec.objective.goal,
        },
        metrics: metrics_of(spec),
        parameters: parameter_views(spec),
        trials: trial_columns(spec, &trials),
    }))
}

/// The objective metric, then the additional metrics.
fn metrics_of(spec: &ExperimentSpec) -> Vec<String> {
    std::iter::once(spec.objective.metric.clone())
        .chain(spec.objective.additional_metrics.iter().cloned())
        .collect()
}

/// The search space described for axes.
fn parameter_views(spec: &ExperimentSpec) -> Vec<ParameterView> {
    let log = |d: &Distribution| matches!(d, Distribution::LogUniform | Distribution::LogNormal);
    spec.space
        .parameters
        .iter()
        .map(|p| {
            let (kind, min, max, is_log, values) = match &p.domain {
                Domain::Double {
                    min,
                    max,
                    distribution,
                    ..
                } => ("double", Some(*min), Some(*max), log(distribution), None),
                Domain::Int {
                    min,
                    max,
                    distribution,
                    ..
                } => (
                    "int",
                    Some(*min as f64),
                    Some(*max as f64),
                    log(distribution),
                    None,
                ),
                Domain::Discrete { values } => (
                    "discrete",
                    values.iter().copied().reduce(f64::min),
                    values.iter().copied().reduce(f64::max),
                    false,
                    Some(values.iter().map(|&v| Value::from(v)).collect()),
                ),
                Domain::Categorical { choices } => (
                    "categorical",
                    None,
                    None,
                    false,
                    Some(choices.iter().map(|c| Value::from(c.as_str())).collect()),
                ),
            };
            ParameterView {
                name: p.name.clone(),
                kind,
                min,
                max,
                log: is_log,
                values,
            }
        })
        .collect()
}

/// Microseconds to milliseconds.
fn millis(micros: Micros) -> i64 {
    micros.div_euclid(1000)
}

/// `trials` as columns.
fn trial_columns(spec: &ExperimentSpec, trials: &[Trial]) -> TrialColumns {
    let n = trials.len();
    let mut columns = TrialColumns {
        index: Vec::with_capacity(n),
        name: Vec::with_capacity(n),
        state: Vec::with_capacity(n),
        objective: Vec::with_capacity(n),
        step: Vec::with_capacity(n),
        created: Vec::with_capacity(n),
        started: Vec::with_capacity(n),
        completed: Vec::with_capacity(n),
        message: Vec::with_capacity(n),
        parameters: serde_json::Map::new(),
    };
    let mut values: Vec<Vec<Value>> = vec![Vec::with_capacity(n); spec.space.parameters.len()];
    for trial in trials {
        columns.index.push(trial.index);
        columns.name.push(trial.name.clone());
        columns.state.push(trial.state.as_str());
        columns.objective.push(trial.objective);
        columns.step.push(trial.step);
        columns.created.push(millis(trial.created_at));
        columns.started.push(trial.started_at.map(millis));
        columns.completed.push(trial.completed_at.map(millis));
        columns.message.push(trial.message.clone());
        for ((column, parameter), value) in values
            .iter_mut()
            .zip(&spec.space.parameters)
            .zip(&trial.assignment)
        {
            column.push(summary::parameter_value(&parameter.domain, value));
        }
    }
    for (parameter, column) in spec.space.parameters.iter().zip(values) {
        columns
            .parameters
            .insert(parameter.name.clone(), Value::Array(column));
    }
    columns
}

/// `?metric=M&trials=0,3,7`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ObservationsQuery {
    /// The metric (default: the objective metric).
    pub metric: Option<String>,
    /// Comma-separated trial indices: only their observations.
    pub trials: Option<String>,
}

/// `GET .../observations`: one metric's observations as columns.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Curves {
    /// The metric.
    pub metric: String,
    /// Trial indices.
    pub trial: Vec<u64>,
    /// Steps.
    pub step: Vec<i64>,
    /// Values.
    pub value: Vec<f64>,
}

/// Every observation of one metric in an experiment (or in some of its trials), as columns
/// sorted by trial index, then step.
#[utoipa::path(
    get,
    path = "/api/v1/experiments/{name}/observations",
    tag = "dashboard",
    params(("name" = String, Path, description = "Experiment name"), ObservationsQuery),
    responses(
        (status = 200, description = "The observations as columns", body = Curves),
        (status = 400, description = "A trial list that is not one", body = ErrorBody),
        (status = 404, description = "No such experiment", body = ErrorBody),
    )
)]
pub async fn observations(
    State(state): State<Arc<AppState>>,
    Names(name): Names<String>,
    Params(query): Params<ObservationsQuery>,
) -> Result<Json<Curves>, ApiError> {
    let trials = query.trials.as_deref().map(parse_indices).transpose()?;
    let experiment = state.experiment(&name).await?;
    let metric = query
        .metric
        .unwrap_or_else(|| experiment.spec.objective.metric.clone());
    let points = state
        .store
        .curves(experiment.id, &metric, trials.as_deref())
        .await?;
    let mut curves = Curves {
        metric,
        trial: Vec::with_capacity(points.len()),
        step: Vec::with_capacity(points.len()),
        value: Vec::with_capacity(points.len()),
    };
    for point in points {
        curves.trial.push(point.trial);
        curves.step.push(point.step);
        curves.value.push(point.value);
    }
    Ok(Json(curves))
}

/// Reads `0,3,7` (an empty list is allowed).
fn parse_indices(list: &str) -> Result<Vec<u64>, ApiError> {
    let indices = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                ApiError::malformed(format!(
                    "trials: `{s}` is not a trial index; write indices separated by commas, e.g. trials=0,3,7"
                ))
            })
        })
        .collect::<Result<Vec<u64>, ApiError>>()?;
    if indices.len() > MAX_TRIAL_FILTER {
        return Err(ApiError::malformed(format!(
            "trials: {} indices given, at most {MAX_TRIAL_FILTER} are accepted; leave it out for every trial",
            indices.len()
        )));
    }
    Ok(indices)
}

/// `?metric=M`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportanceQuery {
    /// The metric (default: the objective metric).
    pub metric: Option<String>,
}

/// One parameter's importance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ParameterImportance {
    /// The parameter.
    pub name: String,
    /// Its share of the variance of the metric, in [0, 1].
    pub importance: f64,
}

/// `GET .../importance`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Importance {
    /// The metric.
    pub metric: String,
    /// `fanova`.
    pub method: &'static str,
    /// How many trials it was computed from.
    pub trials: usize,
    /// Most important first; the importances sum to 1 (empty with fewer than two trials).
    pub parameters: Vec<ParameterImportance>,
}

/// Importance computed lately, per experiment id and metric.
pub type ImportanceCache = std::sync::Mutex<HashMap<(i64, String), (Instant, Arc<Importance>)>>;

/// Parameter importance by fANOVA over a random forest, for the objective or another metric.
#[utoipa::path(
    get,
    path = "/api/v1/experiments/{name}/importance",
    tag = "dashboard",
    params(("name" = String, Path, description = "Experiment name"), ImportanceQuery),
    responses(
        (status = 200, description = "Importance per parameter", body = Importance),
        (status = 404, description = "No such experiment", body = ErrorBody),
    )
)]
pub async fn importance(
    State(state): State<Arc<AppState>>,
    Names(name): Names<String>,
    Params(query): Params<ImportanceQuery>,
) -> Result<Json<Importance>, ApiError> {
    let experiment = state.experiment(&name).await?;
    let metric = query
        .metric
        .unwrap_or_else(|| experiment.spec.objective.metric.clone());
    let key = (experiment.id, metric.clone());
    let cached = state
        .importance
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    // Within its time to live a result is served without reading the store: a live page
    // asks every few seconds, and reading 10,000 trials each time is the cost to avoid.
    if let Some((at, importance)) = &cached
        && at.elapsed() < IMPORTANCE_TTL
    {
        return Ok(Json(importance.as_ref().clone()));
    }
    let trials = state.store.trials(experiment.id).await?;
    let values = metric_values(&state, &experiment, &metric, &trials).await?;
    if let Some((_, importance)) = cached
        && importance.trials == values.len()
    {
        // Nothing finished since: the same answer, kept for another while.
        state
            .importance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (Instant::now(), importance.clone()));
        return Ok(Json(importance.as_ref().clone()));
    }
    let space = experiment.spec.space.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let points: Vec<(&[ParameterValue], f64)> = values
            .iter()
            .map(|(trial, value)| (trials[*trial].assignment.as_slice(), *value))
            .collect();
        let settings = ImportanceSettings {
            seed: experiment.seed,
            ..ImportanceSettings::default()
        };
        fanova(&space, &points, &settings).map(|shares| (shares, points.len()))
    })
    .await
    .map_err(|e| ApiError::internal(format!("the importance computation failed: {e}")))?
    .map_err(|e| ApiError::invalid(format!("cannot compute importance: {e}")))?;
    let (shares, used) = computed;
    let mut parameters: Vec<ParameterImportance> = if used < 2 {
        Vec::new()
    } else {
        experiment
            .spec
            .space
            .parameters
            .iter()
            .zip(shares)
            .map(|(p, importance)| ParameterImportance {
                name: p.name.clone(),
                importance,
            })
            .collect()
    };
    parameters.sort_by(|a, b| b.importance.total_cmp(&a.importance));
    let importance = Arc::new(Importance {
        metric,
        method: "fanova",
        trials: used,
        parameters,
    });
    state
        .importance
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, (Instant::now(), importance.clone()));
    Ok(Json(importance.as_ref().clone()))
}

/// The value of `metric` for each Succeeded trial that has one, as (position in `trials`,
/// value): the objective as stored, another metric reduced by its metric strategy.
async fn metric_values(
    state: &AppState,
    experiment: &Experiment,
    metric: &str,
    trials: &[Trial],
) -> Result<Vec<(usize, f64)>, ApiError> {
    let succeeded = |t: &Trial| t.state == TrialState::Succeeded;
    if metric == experiment.spec.objective.metric {
        return Ok(trials
            .iter()
            .enumerate()
            .filter(|(_, t)| succeeded(t))
            .filter_map(|(i, t)| t.objective.filter(|v| v.is_finite()).map(|v| (i, v)))
            .collect());
    }
    let strategy = rules::strategy_for(&experiment.spec.objective, metric);
    let points = state.store.curves(experiment.id, metric, None).await?;
    let position: HashMap<u64, usize> = trials
        .iter()
        .enumerate()
        .filter(|(_, t)| succeeded(t))
        .map(|(i, t)| (t.index, i))
        .collect();
    let mut values = Vec::new();
    for group in points.chunk_by(|a: &CurvePoint, b: &CurvePoint| a.trial == b.trial) {
        if let Some(&i) = position.get(&group[0].trial)
            && let Some(value) = rules::reduce(strategy, group.iter().map(|p| p.value))
        {
            values.push((i, value));
        }
    }
    Ok(values)
}

/// `GET .../document`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    /// The experiment document as the user wrote it.
    pub document: String,
}

/// The experiment document as the user wrote it (YAML or JSON text).
#[utoipa::path(
    get,
    path = "/api/v1/experiments/{name}/document",
    tag = "dashboard",
    params(("name" = String, Path, description = "Experiment name")),
    responses(
        (status = 200, description = "The document", body = DocumentView),
        (status = 404, description = "No such experiment", body = ErrorBody),
    )
)]
pub async fn document(
    State(state): State<Arc<AppState>>,
    Names(name): Names<String>,
) -> Result<Json<DocumentView>, ApiError> {
    let experiment = state.experiment(&name).await?;
    let document = state
        .store
        .document(experiment.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no experiment named `{name}`")))?;
    Ok(Json(DocumentView { document }))
}

/// Stops an experiment and keeps its data: no new trial starts, running trials are stopped,
/// and it ends Interrupted (reason `Stopped`), from where running it again resumes it.
#[utoipa::path(
    post,
    path = "/api/v1/experiments/{name}/stop",
    tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    responses(
        (status = 202, description = "The stop is requested; the experiment as it is now", body = ExperimentView),
        (status = 403, description = "A read-only dashboard", body = ErrorBody),
        (status = 404, description = "No such experiment", body = ErrorBody),
        (status = 409, description = "It is not running", body = ErrorBody),
    )
)]
pub async fn stop(
    State(state): State<Arc<AppState>>,
    Names(name): Names<String>,
) -> Result<(StatusCode, Json<ExperimentView>), ApiError> {
    let experiment = state.experiment(&name).await?;
    if !matches!(
        experiment.state,
        ExperimentState::Running | ExperimentState::Created
    ) {
        return Err(ApiError::conflict(format!(
            "experiment `{name}` is {}, not running: there is nothing to stop",
            experiment.state
        )));
    }
    state.stop(&experiment, "through the API").await?;
    let experiment = state.experiment(&name).await?;
    Ok((StatusCode::ACCEPTED, Json(view(&state, experiment).await?)))
}

/// One entry of a trial's event log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// When (RFC 3339).
    pub timestamp: String,
    /// The state the trial entered.
    pub state: String,
    /// Why.
    pub message: Option<String>,
}

/// `GET .../events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// Oldest first.
    pub events: Vec<EventView>,
}

/// A trial's state changes, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/experiments/{name}/trials/{trial}/events",
    tag = "dashboard",
    params(
        ("name" = String, Path, description = "Experiment name"),
        ("trial" = String, Path, description = "Trial name"),
    ),
    responses(
        (status = 200, description = "The event log", body = EventList),
        (status = 404, description = "No such experiment or trial", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<Arc<AppState>>,
    Names((name, trial)): Names<(String, String)>,
) -> Result<Json<EventList>, ApiError> {
    let experiment = state.experiment(&name).await?;
    let trial = super::trials::find_trial(&state, &experiment, &trial).await?;
    let events = state.store.trial_events(trial.id).await?;
    Ok(Json(EventList {
        events: events
            .into_iter()
            .map(|e| EventView {
                timestamp: summary::timestamp(e.timestamp),
                state: e.state,
                message: e.message,
            })
            .collect(),
    }))
}

/// `?lines=N`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// How many of the last lines (default 200, at most 5,000).
    pub lines: Option<usize>,
}

/// `GET .../log`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogTail {
    /// `file`: the local log file.
    pub source: &'static str,
    /// Where the log is.
    pub path: String,
    /// The last lines, oldest first (invalid UTF-8 replaced).
    pub lines: Vec<String>,
    /// True when the log has more lines than these.
    pub truncated: bool,
}

/// The last lines of a trial's log.
#[utoipa::path(
    get,
    path = "/api/v1/experiments/{name}/trials/{trial}/log",
    tag = "dashboard",
    params(
        ("name" = String, Path, description = "Experiment name"),
        ("trial" = String, Path, description = "Trial name"),
        LogQuery,
    ),
    responses(
        (status = 200, description = "The log's last lines", body = LogTail),
        (status = 404, description = "No such experiment or trial, or it has no log", body = ErrorBody),
    )
)]
pub async fn log(
    State(state): State<Arc<AppState>>,
    Names((name, trial)): Names<(String, String)>,
    Params(query): Params<LogQuery>,
) -> Result<Json<LogTail>, ApiError> {
    let lines = query.lines.unwrap_or(LOG_LINES.0).clamp(1, LOG_LINES.1);
    let experiment = state.experiment(&name).await?;
    let trial = super::trials::find_trial(&state, &experiment, &trial).await?;
    let path = Engine::log_path(state.engine.logs_dir(), &experiment.name, &trial.name);
    let shown = path.display().to_string();
    let read = tokio::task::spawn_blocking(move || crate::engine::log_tail(&path, lines))
        .await
        .map_err(|e| ApiError::internal(format!("reading the log failed: {e}")))?;
    match read {
        Ok((lines, truncated)) => Ok(Json(LogTail {
            source: "file",
            path: shown,
            lines,
            truncated,
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::not_found(format!(
            "trial `{}` has no log here (looked for {shown}); client-driven trials keep their own",
            trial.name
        ))),
        Err(e) => Err(ApiError::internal(format!("cannot read {shown}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_parse_and_are_bounded() {
        assert_eq!(parse_indices("0, 3,7,").expect("list"), vec![0, 3, 7]);
        assert_eq!(parse_indices("").expect("empty"), Vec::<u64>::new());
        let error = parse_indices("1,x").expect_err("not a number");
        assert!(error.message().contains("`x` is not a trial index"));
        let long = vec!["1"; MAX_TRIAL_FILTER + 1].join(",");
        assert!(parse_indices(&long).is_err());
    }

    #[test]
    fn milliseconds_round_down() {
        assert_eq!(millis(1_733_360_000_123_456), 1_733_360_000_123);
        assert_eq!(millis(-1), -1);
    }
}
