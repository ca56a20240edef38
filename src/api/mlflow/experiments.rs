//! `experiments/*`: create, get, get-by-name, search, update (rename), delete, restore and
//! set-experiment-tag, with MLflow's rules and messages.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use super::error::{ErrorCode, MlflowError, MlflowResult};
use super::search;
use super::validation::{
    SEARCH_MAX_RESULTS_DEFAULT, validate_experiment_name, validate_experiment_tag,
    validate_max_results,
};
use super::wire::{ExperimentWire, Fields};
use super::{MlflowRequest, empty, ok};
use crate::api::state::AppState;
use crate::store::StoreError;
use crate::store::tracking::{KeyValue, Lifecycle, Tracking, TrackingExperiment};

/// Which lifecycle stages a search returns (MLflow's `ViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewType {
    /// Active only (the default).
    ActiveOnly,
    /// Deleted only.
    DeletedOnly,
    /// Both.
    All,
}

impl ViewType {
    /// Reads a view type field: its name or its protobuf number; absent is `ACTIVE_ONLY`.
    pub fn read(fields: &Fields, name: &str) -> MlflowResult<ViewType> {
        let text = match fields.string(name) {
            Ok(text) => text.map(str::to_string),
            Err(_) => fields.int(name)?.map(|n| n.to_string()),
        };
        match text.as_deref() {
            None | Some("") | Some("ACTIVE_ONLY") | Some("1") => Ok(ViewType::ActiveOnly),
            Some("DELETED_ONLY") | Some("2") => Ok(ViewType::DeletedOnly),
            Some("ALL") | Some("3") => Ok(ViewType::All),
            Some(other) => Err(MlflowError::invalid(format!(
                "Invalid value \"{other}\" for parameter '{name}' supplied: expected ACTIVE_ONLY, DELETED_ONLY or ALL"
            ))),
        }
    }

    /// Whether this view shows things in `lifecycle`.
    pub fn shows(self, lifecycle: Lifecycle) -> bool {
        match self {
            ViewType::ActiveOnly => lifecycle == Lifecycle::Active,
            ViewType::DeletedOnly => lifecycle == Lifecycle::Deleted,
            ViewType::All => true,
        }
    }
}

/// Parses an experiment id as MLflow does.
pub fn experiment_id(text: &str) -> MlflowResult<i64> {
    text.trim().parse::<i64>().map_err(|_| {
        MlflowError::invalid(format!(
            "Invalid experiment ID '{text}'. Experiment ID must be a valid integer."
        ))
    })
}

/// The experiment with this id, deleted or not, or `RESOURCE_DOES_NOT_EXIST`.
pub async fn find(tracking: &dyn Tracking, id: i64) -> MlflowResult<TrackingExperiment> {
    tracking
        .tracking_experiment(id)
        .await?
        .ok_or_else(|| MlflowError::no_experiment(id))
}

/// MLflow's error for a change to a deleted experiment.
pub fn not_active(id: i64) -> MlflowError {
    MlflowError::invalid(format!(
        "The experiment {id} must be in the 'active' state. Current state is deleted."
    ))
}

#[derive(Serialize)]
struct Created {
    experiment_id: String,
}

#[derive(Serialize)]
struct One<'a> {
    experiment: ExperimentWire<'a>,
}

#[derive(Serialize)]
struct Page<'a> {
    experiments: Vec<ExperimentWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

/// `experiments/create`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let name = fields.required_string("name")?;
    let artifact_location = fields
        .string("artifact_location")?
        .filter(|a| !a.is_empty());
    let tags = fields.key_values("tags")?;
    validate_experiment_name(name)?;
    for tag in &tags {
        validate_experiment_tag(tag)?;
    }
    if let Some(location) = artifact_location
        && location.starts_with("runs:")
    {
        return Err(MlflowError::invalid(format!(
            "Artifact location cannot be a runs:/ URI. Given: '{location}'"
        )));
    }
    let experiment = state
        .store
        .create_tracking_experiment(name, artifact_location, &tags)
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists(_) => MlflowError::new(
                ErrorCode::ResourceAlreadyExists,
                format!("Experiment(name={name}) already exists."),
            ),
            other => other.into(),
        })?;
    ok(Created {
        experiment_id: experiment.id.to_string(),
    })
}

/// `experiments/get`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let id = experiment_id(fields.required_string("experiment_id")?)?;
    let experiment = find(state.store.as_ref(), id).await?;
    ok(One {
        experiment: ExperimentWire::new(&experiment),
    })
}

/// `experiments/get-by-name`.
pub async fn get_by_name(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let name = fields.required_string("experiment_name")?;
    let experiment = state
        .store
        .tracking_experiment_by_name(name)
        .await?
        .ok_or_else(|| {
            MlflowError::missing(format!("Could not find experiment with name '{name}'"))
        })?;
    ok(One {
        experiment: ExperimentWire::new(&experiment),
    })
}

/// `experiments/search`: filter, order, page.
pub async fn search(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let view = ViewType::read(&fields, "view_type")?;
    let max_results = fields
        .int("max_results")?
        .unwrap_or(SEARCH_MAX_RESULTS_DEFAULT);
    validate_max_results(max_results)?;
    let conditions = search::parse_experiment_filter(fields.string("filter")?.unwrap_or(""))?;
    let order_by = search::parse_experiment_order_by(&fields.strings("order_by")?)?;
    let offset = search::parse_page_token(fields.string("page_token")?)?;
    let mut experiments: Vec<TrackingExperiment> = state
        .store
        .tracking_experiments()
        .await?
        .into_iter()
        .filter(|e| view.shows(e.lifecycle) && conditions.iter().all(|c| c.matches(e)))
        .collect();
    search::sort_experiments(&mut experiments, &order_by);
    let (page, next_page_token) = search::paginate(
        &experiments,
        offset,
        usize::try_from(max_results).unwrap_or(1),
    );
    ok(Page {
        experiments: page.iter().map(ExperimentWire::new).collect(),
        next_page_token,
    })
}

/// `experiments/update`: renames an active experiment.
pub async fn update(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let id = experiment_id(fields.required_string("experiment_id")?)?;
    let new_name = fields.required_string("new_name")?;
    validate_experiment_name(new_name)?;
    let experiment = find(state.store.as_ref(), id).await?;
    if experiment.lifecycle != Lifecycle::Active {
        return Err(MlflowError::new(
            ErrorCode::InvalidState,
            "Cannot rename a non-active experiment.",
        ));
    }
    state
        .store
        .rename_tracking_experiment(id, new_name)
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists(_) => MlflowError::new(
                ErrorCode::ResourceAlreadyExists,
                format!("Experiment(name={new_name}) already exists."),
            ),
            other => other.into(),
        })?;
    empty()
}

/// Moves an experiment (and its runs) from one lifecycle stage to the other; the experiment
/// must be in the other stage now, as MLflow requires.
async fn set_lifecycle(
    state: &AppState,
    fields: &Fields,
    from: Lifecycle,
    to: Lifecycle,
) -> MlflowResult<Response> {
    let id = experiment_id(fields.required_string("experiment_id")?)?;
    let experiment = find(state.store.as_ref(), id).await?;
    if experiment.lifecycle != from {
        return Err(MlflowError::no_experiment(id));
    }
    state
        .store
        .set_tracking_experiment_lifecycle(id, to)
        .await?;
    empty()
}

/// `experiments/delete`: deletes an active experiment and its runs.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    set_lifecycle(&state, &fields, Lifecycle::Active, Lifecycle::Deleted).await
}

/// `experiments/restore`: restores a deleted experiment and its runs.
pub async fn restore(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    set_lifecycle(&state, &fields, Lifecycle::Deleted, Lifecycle::Active).await
}

/// `experiments/set-experiment-tag`.
pub async fn set_tag(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let id = experiment_id(fields.required_string("experiment_id")?)?;
    let tag = KeyValue::new(
        fields.required_string("key")?,
        fields.string("value")?.unwrap_or(""),
    );
    validate_experiment_tag(&tag)?;
    let experiment = find(state.store.as_ref(), id).await?;
    if experiment.lifecycle != Lifecycle::Active {
        return Err(not_active(id));
    }
    state.store.set_tracking_experiment_tag(id, &tag).await?;
    empty()
}
