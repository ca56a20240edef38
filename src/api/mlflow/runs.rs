//! `runs/*`: create, get, update, delete, restore, search, set-tag and delete-tag.
//!
//! Writes go to active runs only, whatever their status: MLflow checks the lifecycle stage,
//! not whether the run ended, and so does the store (a deleted run is a conflict there,
//! `INVALID_PARAMETER_VALUE` here). Searches read every run of the named experiments from the
//! store and filter, order and page them in Rust ([`search`]).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::Response;
use serde::Serialize;

use super::error::{MlflowError, MlflowResult};
use super::experiments::{ViewType, experiment_id, find, not_active};
use super::names::random_run_name;
use super::search;
use super::validation::{SEARCH_MAX_RESULTS_DEFAULT, validate_max_results, validate_tag};
use super::wire::{Fields, RunInfoWire, RunWire, micros};
use super::{MlflowRequest, empty, ok};
use crate::api::state::AppState;
use crate::store::now_micros;
use crate::store::tracking::{
    DEFAULT_EXPERIMENT_ID, KeyValue, Lifecycle, NewRun, RUN_NAME_TAG, Run, RunStatus, RunUpdate,
    Tracking,
};

#[derive(Serialize)]
struct One<'a> {
    run: RunWire<'a>,
}

#[derive(Serialize)]
struct Updated<'a> {
    run_info: RunInfoWire<'a>,
}

#[derive(Serialize)]
struct Page<'a> {
    runs: Vec<RunWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

/// The run with this id, or `RESOURCE_DOES_NOT_EXIST`.
pub async fn find_run(tracking: &dyn Tracking, run_id: &str) -> MlflowResult<Run> {
    tracking
        .run(run_id)
        .await?
        .ok_or_else(|| MlflowError::no_run(run_id))
}

/// MLflow's error for a write to a deleted run.
pub fn run_not_active(run_id: &str) -> MlflowError {
    MlflowError::invalid(format!(
        "The run {run_id} must be in the 'active' state. Current state is deleted."
    ))
}

/// Reads a run status: its name or its protobuf number.
fn status(fields: &Fields) -> MlflowResult<Option<RunStatus>> {
    let text = match fields.string("status") {
        Ok(text) => text.map(str::to_string),
        Err(_) => fields.int("status")?.map(|n| n.to_string()),
    };
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let parsed = match text.as_str() {
        "1" => Some(RunStatus::Running),
        "2" => Some(RunStatus::Scheduled),
        "3" => Some(RunStatus::Finished),
        "4" => Some(RunStatus::Failed),
        "5" => Some(RunStatus::Killed),
        name => RunStatus::parse(name),
    };
    parsed.map(Some).ok_or_else(|| {
        MlflowError::invalid(format!(
            "Invalid value \"{text}\" for parameter 'status' supplied: expected one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED"
        ))
    })
}

/// `runs/create`: a run in an active experiment (Default when none is named), named by the
/// client (`run_name` or the `mlflow.runName` tag) or in MLflow's style.
pub async fn create(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let experiment = match fields.string("experiment_id")? {
        Some(text) if !text.is_empty() => experiment_id(text)?,
        _ => DEFAULT_EXPERIMENT_ID,
    };
    let user_id = fields.string("user_id")?.unwrap_or("").to_string();
    let start_time = match fields.int("start_time")? {
        Some(ms) => micros(ms, "start_time")?,
        None => now_micros(),
    };
    let run_name = fields.string("run_name")?.filter(|n| !n.is_empty());
    let mut tags = fields.key_values("tags")?;
    for (index, tag) in tags.iter_mut().enumerate() {
        validate_tag(tag, &format!("tags[{index}]"))?;
    }
    let name_tag = tags
        .iter()
        .find(|t| t.key == RUN_NAME_TAG)
        .map(|t| t.value.as_str())
        .filter(|v| !v.is_empty());
    if let (Some(name), Some(tag)) = (run_name, name_tag)
        && name != tag
    {
        return Err(MlflowError::invalid(format!(
            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='{name}', mlflow.runName='{tag}')."
        )));
    }
    let name = run_name
        .or(name_tag)
        .map(str::to_string)
        .unwrap_or_else(random_run_name);
    let tracking: &dyn Tracking = state.store.as_ref();
    let found = find(tracking, experiment).await?;
    if found.lifecycle != Lifecycle::Active {
        return Err(not_active(experiment));
    }
    tags.retain(|t| t.key != RUN_NAME_TAG);
    let new = NewRun {
        experiment_id: experiment,
        name,
        user_id,
        start_time,
        tags,
    };
    let info = tracking.create_run(&new).await?;
    let mut tags = new.tags;
    tags.push(KeyValue::new(RUN_NAME_TAG, info.name.clone()));
    let run = Run {
        info,
        params: Vec::new(),
        tags,
        metrics: Vec::new(),
    };
    ok(One {
        run: RunWire::new(&run),
    })
}

/// `runs/get`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let run_id = fields.run_id()?;
    let run = find_run(state.store.as_ref(), run_id).await?;
    ok(One {
        run: RunWire::new(&run),
    })
}

/// `runs/update`: status, end time and name of an active run.
pub async fn update(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let run_id = fields.run_id()?;
    let update = RunUpdate {
        status: status(&fields)?,
        end_time: match fields.int("end_time")? {
            Some(ms) => Some(micros(ms, "end_time")?),
            None => None,
        },
        name: fields
            .string("run_name")?
            .filter(|n| !n.is_empty())
            .map(str::to_string),
    };
    let tracking: &dyn Tracking = state.store.as_ref();
    let run = find_run(tracking, run_id).await?;
    if run.info.lifecycle != Lifecycle::Active {
        return Err(run_not_active(run_id));
    }
    let info = tracking.update_run(run_id, &update).await?;
    ok(Updated {
        run_info: RunInfoWire::new(&info),
    })
}

/// `runs/delete`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let run_id = fields.run_id()?;
    state
        .store
        .set_run_lifecycle(run_id, Lifecycle::Deleted)
        .await?;
    empty()
}

/// `runs/restore`.
pub async fn restore(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let run_id = fields.run_id()?;
    state
        .store
        .set_run_lifecycle(run_id, Lifecycle::Active)
        .await?;
    empty()
}

/// The most distinct experiments one `runs/search` may name.
pub const MAX_SEARCH_EXPERIMENTS: usize = 1000;

/// `runs/search`: the runs of some experiments, filtered, ordered and paged.
pub async fn search(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let started = Instant::now();
    let mut experiment_ids = fields
        .strings("experiment_ids")?
        .into_iter()
        .map(experiment_id)
        .collect::<MlflowResult<Vec<i64>>>()?;
    // Each id once, and a bounded number of them: a request that repeats one id a million
    // times held the store for 17 s (reliability probe).
    experiment_ids.sort_unstable();
    experiment_ids.dedup();
    if experiment_ids.len() > MAX_SEARCH_EXPERIMENTS {
        return Err(MlflowError::invalid(format!(
            "experiment_ids names {} experiments; search at most {MAX_SEARCH_EXPERIMENTS} at once",
            experiment_ids.len()
        )));
    }
    let view = ViewType::read(&fields, "run_view_type")?;
    let max_results = fields
        .int("max_results")?
        .unwrap_or(SEARCH_MAX_RESULTS_DEFAULT);
    validate_max_results(max_results)?;
    let conditions = search::parse_run_filter(fields.string("filter")?.unwrap_or(""))?;
    let order_by = search::parse_run_order_by(&fields.strings("order_by")?)?;
    let offset = search::parse_page_token(fields.string("page_token")?)?;
    let runs = if experiment_ids.is_empty() {
        Vec::new()
    } else {
        state.store.runs(&experiment_ids).await?
    };
    let read = started.elapsed();
    let selected = search::filter_and_sort(&runs, &conditions, &order_by, |run| {
        view.shows(run.info.lifecycle)
    });
    let (page, next_page_token) =
        search::paginate(&selected, offset, usize::try_from(max_results).unwrap_or(1));
    let mut response = ok(Page {
        runs: page.iter().map(|run| RunWire::new(run)).collect(),
        next_page_token,
    })?;
    let total = started.elapsed();
    tracing::debug!(
        runs = runs.len(),
        matched = selected.len(),
        store_ms = read.as_secs_f64() * 1e3,
        total_ms = total.as_secs_f64() * 1e3,
        "mlflow runs/search"
    );
    // Where the time went, for clients and benchmarks (the W3C Server-Timing header).
    let timing = format!(
        "store;dur={:.3}, total;dur={:.3}",
        read.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3
    );
    if let Ok(value) = HeaderValue::from_str(&timing) {
        response.headers_mut().insert("server-timing", value);
    }
    Ok(response)
}

/// `runs/set-tag`; `mlflow.runName` renames the run.
pub async fn set_tag(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let run_id = fields.run_id()?;
    let mut tag = KeyValue::new(
        fields.required_string("key")?,
        fields.string("value")?.unwrap_or(""),
    );
    validate_tag(&mut tag, "")?;
    let tracking: &dyn Tracking = state.store.as_ref();
    let run = find_run(tracking, run_id).await?;
    if run.info.lifecycle != Lifecycle::Active {
        return Err(run_not_active(run_id));
    }
    if tag.key == RUN_NAME_TAG && tag.value.is_empty() {
        // MLflow renames only to a name: an empty `mlflow.runName` changes nothing.
        return empty();
    }
    tracking
        .log_batch(run_id, &[], &[], std::slice::from_ref(&tag))
        .await?;
    empty()
}

/// `runs/delete-tag`.
pub async fn delete_tag(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let run_id = fields.run_id()?;
    let key = fields.required_string("key")?;
    let tracking: &dyn Tracking = state.store.as_ref();
    let run = find_run(tracking, run_id).await?;
    if run.info.lifecycle != Lifecycle::Active {
        return Err(run_not_active(run_id));
    }
    if !tracking.delete_run_tag(run_id, key).await? {
        return Err(MlflowError::missing(format!(
            "No tag with name: {key} in run with id {run_id}"
        )));
    }
    empty()
}
