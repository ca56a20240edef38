//! MLflow's tracking model in the store: tracking experiments, runs, their params, tags and
//! metric history.
//!
//! Every tuneflow experiment is also a tracking experiment (same name), with one parent run;
//! every trial is a run, child of that parent (`mlflow.parentRunId`), whose params are the
//! trial's parameter values and whose metric history is the trial's observations. Backends keep
//! this mapping as data, written in the same transactions as the experiment and trial changes
//! (so a run's status always matches its trial's state). Runs and experiments created by plain
//! MLflow clients live in the same tables without a trial behind them.
//!
//! Metric values here may be NaN or ±infinity (MLflow allows them); trial observations are
//! always finite, so a non-finite value logged to a trial's run is kept in the run's history
//! but never becomes an observation.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ExperimentState, Micros, StoreError, TrialState};

/// The id of MLflow's "Default" experiment, which every store has.
pub const DEFAULT_EXPERIMENT_ID: i64 = 0;

/// The name of the default experiment.
pub const DEFAULT_EXPERIMENT_NAME: &str = "Default";

/// The tag naming a run's parent run.
pub const PARENT_RUN_TAG: &str = "mlflow.parentRunId";

/// The tag mirroring a run's name.
pub const RUN_NAME_TAG: &str = "mlflow.runName";

/// The tag naming the tuneflow experiment whose parent run a run is.
pub const EXPERIMENT_TAG: &str = "tuneflow.experiment";

/// The tag naming the trial a run is.
pub const TRIAL_TAG: &str = "tuneflow.trial";

/// The user id of the runs the store makes for experiments and trials.
pub const TUNEFLOW_USER: &str = "tuneflow";

/// Whether an experiment or run is in use or in the bin (MLflow's lifecycle stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lifecycle {
    /// In use.
    Active,
    /// Deleted, and restorable.
    Deleted,
}

impl Lifecycle {
    /// The stage's name as MLflow writes it (and the store keeps it).
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Active => "active",
            Lifecycle::Deleted => "deleted",
        }
    }

    /// Parses a stored or requested stage name.
    pub fn parse(name: &str) -> Option<Lifecycle> {
        match name {
            "active" => Some(Lifecycle::Active),
            "deleted" => Some(Lifecycle::Deleted),
            _ => None,
        }
    }
}

/// A run's status (MLflow's `RunStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunStatus {
    /// Working.
    Running,
    /// Waiting to start.
    Scheduled,
    /// Ended normally.
    Finished,
    /// Ended with an error.
    Failed,
    /// Stopped from outside.
    Killed,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Scheduled,
        RunStatus::Finished,
        RunStatus::Failed,
        RunStatus::Killed,
    ];

    /// The status's name as MLflow writes it (and the store keeps it).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }

    /// Parses a stored or requested status name.
    pub fn parse(name: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// True once the run has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Killed
        )
    }

    /// The status of a trial's run.
    pub fn of_trial(state: TrialState) -> RunStatus {
        match state {
            TrialState::Pending => RunStatus::Scheduled,
            TrialState::Running => RunStatus::Running,
            TrialState::Succeeded => RunStatus::Finished,
            TrialState::Failed | TrialState::MetricsUnavailable => RunStatus::Failed,
            TrialState::EarlyStopped | TrialState::Killed => RunStatus::Killed,
        }
    }

    /// The status of an experiment's parent run.
    pub fn of_experiment(state: ExperimentState) -> RunStatus {
        match state {
            ExperimentState::Created => RunStatus::Scheduled,
            ExperimentState::Running => RunStatus::Running,
            ExperimentState::Succeeded => RunStatus::Finished,
            ExperimentState::Failed => RunStatus::Failed,
            ExperimentState::Interrupted => RunStatus::Killed,
        }
    }
}

/// A key and its value: a param or a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl KeyValue {
    /// A pair from anything string-like.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// One logged value of one metric of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// The metric's name.
    pub key: String,
    /// Its value; NaN and ±infinity are allowed.
    pub value: f64,
    /// When it was logged.
    pub timestamp: Micros,
    /// The step it was logged at.
    pub step: i64,
}

impl MetricPoint {
    /// MLflow's order for "the latest value" of a metric: by step, then timestamp, then
    /// value (NaN above every number).
    pub fn latest_order(&self, other: &MetricPoint) -> std::cmp::Ordering {
        self.step
            .cmp(&other.step)
            .then(self.timestamp.cmp(&other.timestamp))
            .then(self.value.total_cmp(&other.value))
    }
}

/// A tracking (MLflow) experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackingExperiment {
    /// Its MLflow id ([`DEFAULT_EXPERIMENT_ID`] for "Default").
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// Where its artifacts go.
    pub artifact_location: String,
    /// In use or deleted.
    pub lifecycle: Lifecycle,
    /// When it was created.
    pub created_at: Micros,
    /// When it last changed.
    pub updated_at: Micros,
    /// Its tags, by key.
    pub tags: Vec<KeyValue>,
    /// The tuneflow experiment it mirrors, if any.
    pub experiment_id: Option<i64>,
}

/// What a run is, apart from its data.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// Its id: 32 lowercase hex digits.
    pub run_id: String,
    /// The tracking experiment it belongs to.
    pub experiment_id: i64,
    /// Its name (mirrored in the `mlflow.runName` tag).
    pub name: String,
    /// Who created it.
    pub user_id: String,
    /// Its status.
    pub status: RunStatus,
    /// In use or deleted.
    pub lifecycle: Lifecycle,
    /// When it started.
    pub start_time: Option<Micros>,
    /// When it ended.
    pub end_time: Option<Micros>,
    /// Where its artifacts go.
    pub artifact_uri: String,
    /// The trial it is, if any.
    pub trial_id: Option<i64>,
}

/// A run with its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// What it is.
    pub info: RunInfo,
    /// Its params, by key.
    pub params: Vec<KeyValue>,
    /// Its tags, by key.
    pub tags: Vec<KeyValue>,
    /// The latest value of each metric (see [`MetricPoint::latest_order`]), by key.
    pub metrics: Vec<MetricPoint>,
}

/// A run to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// The tracking experiment it goes in.
    pub experiment_id: i64,
    /// Its name (the caller generates one when the client gave none).
    pub name: String,
    /// Who creates it.
    pub user_id: String,
    /// When it started.
    pub start_time: Micros,
    /// Its first tags (the store adds `mlflow.runName`).
    pub tags: Vec<KeyValue>,
}

/// Changes to a run's info; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunUpdate {
    /// A new status. Ignored for a trial's run, whose status follows the trial.
    pub status: Option<RunStatus>,
    /// A new end time.
    pub end_time: Option<Micros>,
    /// A new name (the `mlflow.runName` tag follows).
    pub name: Option<String>,
}

// The rules both backends follow, written once.

/// A new run id: a random (version 4) UUID as 32 lowercase hex digits, as MLflow writes them.
pub(crate) fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The artifact URI of run `run_id` in an experiment whose artifacts go to `location`.
pub(crate) fn run_artifact_uri(location: &str, run_id: &str) -> String {
    format!("{}/{run_id}/artifacts", location.trim_end_matches('/'))
}

/// `mlflow-artifacts:/<id>`: where an experiment's artifacts go unless it was told otherwise.
pub(crate) fn default_artifact_location(id: i64) -> String {
    format!("mlflow-artifacts:/{id}")
}

/// The end time a run in `status` gets when its status is set at `now`.
pub(crate) fn end_time(status: RunStatus, now: Micros) -> Option<Micros> {
    status.is_terminal().then_some(now)
}

/// Reads a stored lifecycle stage.
pub(crate) fn lifecycle(name: &str) -> Result<Lifecycle, StoreError> {
    Lifecycle::parse(name).ok_or_else(|| StoreError::Corrupt(format!("unknown lifecycle `{name}`")))
}

/// The error for a tracking experiment that is not there.
pub(crate) fn missing_experiment(id: i64) -> StoreError {
    StoreError::Missing {
        what: "tracking experiment",
        key: id.to_string(),
    }
}

/// The error for a run that is not there.
pub(crate) fn missing_run(run_id: &str) -> StoreError {
    StoreError::Missing {
        what: "run",
        key: run_id.to_string(),
    }
}

/// Fails when something in `lifecycle` may not be changed: `what` names it ("run r",
/// "tracking experiment 3"), `doing` says what was refused.
pub(crate) fn require_active(
    lifecycle: Lifecycle,
    what: &str,
    doing: &str,
) -> Result<(), StoreError> {
    match lifecycle {
        Lifecycle::Active => Ok(()),
        Lifecycle::Deleted => Err(StoreError::Conflict(format!(
            "cannot {doing} {what}: it is deleted (restore it first)"
        ))),
    }
}

/// True when a param logged again as `new` is the value `old` already logged: the same text,
/// or, for a trial's run, the same number written another way (`1e-05` and `0.00001`).
pub(crate) fn same_param(trial: bool, old: &str, new: &str) -> bool {
    old == new
        || (trial
            && matches!(
                (old.trim().parse::<f64>(), new.trim().parse::<f64>()),
                (Ok(a), Ok(b)) if a == b
            ))
}

/// The error for a param logged again with another value.
pub(crate) fn param_conflict(run_id: &str, key: &str, old: &str, new: &str) -> StoreError {
    StoreError::Conflict(format!(
        "param `{key}` of run {run_id} was logged as `{old}` and cannot change to `{new}`: \
         params are written once"
    ))
}

/// The tracking half of the store: MLflow's experiments and runs.
///
/// Every method is atomic. Missing experiments and runs are [`StoreError::Missing`] (`what`
/// is `"tracking experiment"` or `"run"`, `key` the id asked for); a name that is taken is
/// [`StoreError::AlreadyExists`]; a param logged again with a different value is
/// [`StoreError::Conflict`] and nothing of that batch is written.
///
/// Rules every backend keeps (the tracking conformance suite checks them):
///
/// - As in MLflow, only an active experiment is renamed, tagged or gets new runs, and only an
///   active run is updated, logged to or untagged; otherwise it is a
///   [`StoreError::Conflict`] saying it is deleted.
/// - The Default experiment cannot be deleted ([`StoreError::Conflict`]): clients that name no
///   experiment log to it. MLflow's file store refuses this too ("an internally reserved
///   experiment"); its SQL store allows it, after which those clients fail.
/// - The tracking experiment of a tuneflow experiment cannot be renamed
///   ([`StoreError::Conflict`]): the two share their name, and the store finds one by the
///   other's.
/// - A tuneflow experiment whose name an MLflow client took first takes that tracking
///   experiment over (restoring it if it was deleted) instead of failing.
/// - Deleting or restoring an experiment deletes or restores every run of it, as MLflow does.
///   Setting the lifecycle something already has changes nothing (MLflow answers "not
///   found" to deleting a deleted experiment; the API may check the lifecycle first to do
///   the same).
/// - Setting the `mlflow.runName` tag renames the run, as in MLflow.
/// - Timestamps are [`Micros`] like everywhere in the store (MLflow's REST API speaks
///   milliseconds: the API converts).
#[async_trait]
pub trait Tracking: Send + Sync {
    /// Creates a tracking experiment (with its tags); its artifact location defaults to
    /// `mlflow-artifacts:/<id>`.
    async fn create_tracking_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<TrackingExperiment, StoreError>;

    /// The tracking experiment with this id, deleted or not.
    async fn tracking_experiment(&self, id: i64) -> Result<Option<TrackingExperiment>, StoreError>;

    /// The tracking experiment with this name, deleted or not.
    async fn tracking_experiment_by_name(
        &self,
        name: &str,
    ) -> Result<Option<TrackingExperiment>, StoreError>;

    /// Every tracking experiment, deleted or not, by id.
    async fn tracking_experiments(&self) -> Result<Vec<TrackingExperiment>, StoreError>;

    /// Renames a tracking experiment.
    async fn rename_tracking_experiment(&self, id: i64, name: &str) -> Result<(), StoreError>;

    /// Deletes or restores a tracking experiment, and its runs with it.
    async fn set_tracking_experiment_lifecycle(
        &self,
        id: i64,
        lifecycle: Lifecycle,
    ) -> Result<(), StoreError>;

    /// Sets (adds or replaces) a tag of a tracking experiment.
    async fn set_tracking_experiment_tag(&self, id: i64, tag: &KeyValue) -> Result<(), StoreError>;

    /// Creates a run with a new id, status Running.
    async fn create_run(&self, run: &NewRun) -> Result<RunInfo, StoreError>;

    /// The run with this id, deleted or not.
    async fn run(&self, run_id: &str) -> Result<Option<Run>, StoreError>;

    /// Every run of these tracking experiments, deleted or not (the caller filters and
    /// sorts); ids of missing experiments add nothing.
    async fn runs(&self, experiment_ids: &[i64]) -> Result<Vec<Run>, StoreError>;

    /// Changes a run's status, end time or name, and returns the new info. A trial's run keeps
    /// the status of its trial.
    async fn update_run(&self, run_id: &str, update: &RunUpdate) -> Result<RunInfo, StoreError>;

    /// Deletes or restores a run.
    async fn set_run_lifecycle(&self, run_id: &str, lifecycle: Lifecycle)
    -> Result<(), StoreError>;

    /// Logs metrics, params and tags to a run, all or none. Finite metrics of a trial's run
    /// become the trial's observations. A param already logged with the same value is
    /// accepted; with a different value (for a trial's param: a different number or text) it
    /// is a [`StoreError::Conflict`].
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[MetricPoint],
        params: &[KeyValue],
        tags: &[KeyValue],
    ) -> Result<(), StoreError>;

    /// Deletes a run's tag; false if it had none with this key.
    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<bool, StoreError>;

    /// Every logged value of one metric of a run, by step then timestamp (for a trial's run:
    /// its observations of that metric and the non-finite values logged to it).
    async fn metric_history(&self, run_id: &str, key: &str)
    -> Result<Vec<MetricPoint>, StoreError>;

    /// The id of a trial's run.
    async fn trial_run_id(&self, trial_id: i64) -> Result<Option<String>, StoreError>;
}
