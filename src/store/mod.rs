//! The tracking store: the single source of truth for experiments, trials, observations and
//! their state changes.
//!
//! Everything the engine decides is written here *before* it is acted on: a suggestion becomes
//! a trial row before its process starts, a final state is committed before the next trial is
//! scheduled. A restarted `tuneflow run` therefore rebuilds its whole view from the store, and
//! the algorithms need nothing else (their state is the history).
//!
//! [`Store`] is the interface every backend implements; [`sqlite::SqliteStore`] is the embedded
//! default, [`postgres::PostgresStore`] the one several servers share. [`open`] picks the
//! backend from a store URL. The conformance tests in `tests.rs` state the contract in code and
//! run against every backend (against PostgreSQL when `TUNEFLOW_TEST_POSTGRES` names a
//! server).
//!
//! Every store is also a [`tracking::Tracking`] store: the same experiments and trials seen
//! as MLflow experiments and runs, kept in step in the same transactions (`tracking.rs`
//! explains the mapping; `tracking_tests.rs` is its conformance suite).

mod codec;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod tests;
pub mod tracking;
#[cfg(test)]
mod tracking_tests;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tuneflow_algorithms::Assignment;

use self::tracking::Tracking;
use crate::spec::ExperimentSpec;

/// Microseconds since the Unix epoch, UTC: the store's one time unit.
pub type Micros = i64;

/// The current time in [`Micros`].
pub fn now_micros() -> Micros {
    chrono::Utc::now().timestamp_micros()
}

/// The lifecycle of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExperimentState {
    /// Stored, not started yet.
    Created,
    /// Trials are being suggested and run.
    Running,
    /// Finished normally: max trials, goal reached, or search space exhausted.
    Succeeded,
    /// Finished because too many trials failed.
    Failed,
    /// Stopped by the user (Ctrl-C) or a crash; running it again resumes it.
    Interrupted,
}

/// The lifecycle of a trial (Katib's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrialState {
    /// Stored, not started.
    Pending,
    /// Its process (or client) is working on it.
    Running,
    /// Finished with a value for the objective metric.
    Succeeded,
    /// Its process exited non-zero or could not start.
    Failed,
    /// Finished without reporting the objective metric.
    MetricsUnavailable,
    /// Stopped by an early-stopping rule.
    EarlyStopped,
    /// Stopped by a timeout, the experiment ending, or the user.
    Killed,
}

impl TrialState {
    /// Every state, in lifecycle order.
    pub const ALL: [TrialState; 7] = [
        TrialState::Pending,
        TrialState::Running,
        TrialState::Succeeded,
        TrialState::Failed,
        TrialState::MetricsUnavailable,
        TrialState::EarlyStopped,
        TrialState::Killed,
    ];

    /// True once the trial will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, TrialState::Pending | TrialState::Running)
    }

    /// True for the states Katib counts as failed (Failed and MetricsUnavailable).
    pub fn is_failure(self) -> bool {
        matches!(self, TrialState::Failed | TrialState::MetricsUnavailable)
    }
}

/// Both state enums are stored as their names.
macro_rules! state_names {
    ($ty:ty, $($variant:ident),+) => {
        impl $ty {
            /// The state's name as stored and printed.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => stringify!($variant)),+ }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $(stringify!($variant) => Ok(Self::$variant),)+
                    other => Err(StoreError::Corrupt(format!(
                        "unknown {} `{other}`", stringify!($ty)
                    ))),
                }
            }
        }
    };
}
state_names!(
    ExperimentState,
    Created,
    Running,
    Succeeded,
    Failed,
    Interrupted
);
state_names!(
    TrialState,
    Pending,
    Running,
    Succeeded,
    Failed,
    MetricsUnavailable,
    EarlyStopped,
    Killed
);

/// An experiment as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    /// Store-internal id.
    #[serde(skip)]
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// The validated spec.
    pub spec: ExperimentSpec,
    /// The seed its algorithm uses (`random_state`, or drawn when not set).
    pub seed: u64,
    /// Current state.
    pub state: ExperimentState,
    /// Why it is in that state (e.g. `MaxTrialsReached`).
    pub reason: Option<String>,
    /// Human-readable detail.
    pub message: Option<String>,
    /// When it was stored.
    pub created_at: Micros,
    /// When it last started running.
    pub started_at: Option<Micros>,
    /// When it finished.
    pub completed_at: Option<Micros>,
}

/// A trial as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Store-internal id.
    pub id: i64,
    /// Position in the experiment: 0, 1, 2, ... with no gaps.
    pub index: u64,
    /// Unique name within the experiment.
    pub name: String,
    /// Current state.
    pub state: TrialState,
    /// Parameter values, in the order of the experiment's search space.
    pub assignment: Assignment,
    /// The objective value per the metric strategy, once known.
    pub objective: Option<f64>,
    /// Why it is in its state (exit code, timeout, ...).
    pub message: Option<String>,
    /// How many times it was started (a trial interrupted by a crash is run again).
    pub attempts: u32,
    /// The executor's reference to it while it runs (a process group id for local runs);
    /// cleared when it stops.
    pub handle: Option<String>,
    /// When it was suggested.
    pub created_at: Micros,
    /// When it last started.
    pub started_at: Option<Micros>,
    /// When it reached a final state.
    pub completed_at: Option<Micros>,
    /// The last step it reported its objective at, once finished (how far a trial stopped
    /// early got).
    pub step: Option<i64>,
}

/// A new trial to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrial {
    /// Its index (see [`Trial::index`]).
    pub index: u64,
    /// Its name.
    pub name: String,
    /// Its parameter values.
    pub assignment: Assignment,
    /// Its first state: Pending for trials the engine starts itself, Running (started now,
    /// one attempt) for trials handed straight to a client.
    pub state: TrialState,
}

impl NewTrial {
    /// The trial as [`Store::create_trials`] recorded it, with store id `id`, at `now`.
    pub fn recorded(&self, id: i64, now: Micros) -> Trial {
        let started = self.state == TrialState::Running;
        Trial {
            id,
            index: self.index,
            name: self.name.clone(),
            state: self.state,
            assignment: self.assignment.clone(),
            objective: None,
            message: None,
            attempts: u32::from(started),
            handle: None,
            created_at: now,
            started_at: started.then_some(now),
            completed_at: None,
            step: None,
        }
    }
}

/// One reported value of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Metric name.
    pub metric: String,
    /// Step (epoch, iteration) it was reported at.
    pub step: i64,
    /// The value (always finite).
    pub value: f64,
    /// When it was reported.
    pub timestamp: Micros,
}

/// One observation of one metric with the index of its trial: a point of a learning curve, as
/// [`Store::curves`] reads them for a whole experiment at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The trial's index.
    pub trial: u64,
    /// The step.
    pub step: i64,
    /// The value.
    pub value: f64,
}

/// An entry of a trial's event log: one of its state changes.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialEvent {
    /// When it happened.
    pub timestamp: Micros,
    /// The state the trial entered (`Pending`, `Running`, `Succeeded`, ...).
    pub state: String,
    /// Why, when known.
    pub message: Option<String>,
}

/// What an experiment's trials add up to, as [`Store::tally`] computes it without reading
/// every trial: what an experiment's summary shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrialTally {
    /// How many trials are in each state (states without trials are left out).
    pub states: Vec<(TrialState, u64)>,
    /// The Succeeded trial with the best objective; the lowest index among equals.
    pub best: Option<Trial>,
    /// The steps the EarlyStopped trials did not run, counted up to the last step of the
    /// longest Succeeded trial; `None` without such trials.
    pub steps_saved: Option<u64>,
}

/// The steps EarlyStopped trials did not run, up to the last step of the longest Succeeded
/// trial, and how many such trials there are (none when no Succeeded trial has a step): one
/// statement for both backends (SQLite reads `$1` placeholders too).
const SAVED_STEPS: &str = "SELECT CAST(COALESCE(SUM(CASE WHEN m.full > COALESCE(t.step, 0) \
     THEN m.full - COALESCE(t.step, 0) ELSE 0 END), 0) AS BIGINT), COUNT(*) \
     FROM trials t, (SELECT MAX(step) AS full FROM trials WHERE experiment_id = $1 \
     AND state = 'Succeeded') m \
     WHERE t.experiment_id = $1 AND t.state = 'EarlyStopped' AND m.full IS NOT NULL";

/// The event kind of a stop request (see [`Store::request_stop`]).
pub const STOP_REQUESTED: &str = "StopRequested";

/// The final fields of a trial, written in one update.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialOutcome {
    /// The final state.
    pub state: TrialState,
    /// The objective value, if any.
    pub objective: Option<f64>,
    /// Why.
    pub message: Option<String>,
    /// The last step the objective was reported at, if it was.
    pub step: Option<i64>,
}

/// The error a backend's driver reported, kept as the cause of a [`StoreError`]. Boxed so that
/// the error type does not depend on any one driver.
pub type DriverError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The store could not be opened or reached.
    #[error("cannot open store {location}: {source}")]
    Open {
        /// Where it was looked for.
        location: String,
        /// The driver's error.
        #[source]
        source: DriverError,
    },
    /// The store URL is not understood.
    #[error("unsupported store URL `{0}`")]
    Url(String),
    /// Applying the schema migrations failed.
    #[error("cannot migrate store schema: {0}")]
    Migrate(#[source] DriverError),
    /// An experiment with this name exists already.
    #[error("an experiment named `{0}` already exists in the store")]
    AlreadyExists(String),
    /// No experiment with this name.
    #[error("no experiment named `{0}` in the store")]
    NotFound(String),
    /// Something else looked up by its key is not in the store.
    #[error("no {what} `{key}` in the store")]
    Missing {
        /// What was looked for ("run", "tracking experiment", ...).
        what: &'static str,
        /// Its id or name.
        key: String,
    },
    /// The change contradicts what is stored (a param logged again with another value).
    #[error("{0}")]
    Conflict(String),
    /// A stored value could not be read back.
    #[error("the store holds unreadable data: {0}")]
    Corrupt(String),
    /// A query failed (locked database, read-only file, lost connection, ...).
    #[error("store query failed: {0}")]
    Query(#[source] DriverError),
    /// The store's connection is gone (its thread stopped, or the operation failed
    /// unexpectedly and was rolled back); nothing of the operation was recorded.
    #[error("the store is closed: {0}")]
    Closed(String),
}

/// The error for finishing a trial that is final already: one message for every backend.
pub fn already_finished(trial: &str, state: TrialState) -> StoreError {
    StoreError::Conflict(format!(
        "trial `{trial}` is {state} already (finished by another process or request)"
    ))
}

/// The interface every store backend implements.
///
/// Implementations must make each method atomic: a failed call leaves no partial rows.
///
/// Every store is also a [`Tracking`] store, and keeps the MLflow view of its experiments
/// and trials (see [`tracking`]) in the same transactions as the changes below.
#[async_trait]
pub trait Store: Tracking + Send + Sync {
    /// True when several tuneflow processes may serve one experiment through this store at
    /// once (PostgreSQL): client-driven sessions then share the experiment instead of claiming
    /// it, and reload its trials before they decide anything.
    fn is_shared(&self) -> bool {
        false
    }

    /// Records a new experiment in state [`ExperimentState::Created`].
    async fn create_experiment(
        &self,
        spec: &ExperimentSpec,
        document: &str,
        seed: u64,
    ) -> Result<Experiment, StoreError>;

    /// The experiment called `name`, if any.
    async fn experiment(&self, name: &str) -> Result<Option<Experiment>, StoreError>;

    /// Every experiment, oldest first.
    async fn experiments(&self) -> Result<Vec<Experiment>, StoreError>;

    /// Replaces the stored spec and document of an experiment (a resumed run may raise its
    /// trial limits).
    async fn update_spec(
        &self,
        experiment_id: i64,
        spec: &ExperimentSpec,
        document: &str,
    ) -> Result<(), StoreError>;

    /// Deletes an experiment with its trials, observations and events. False if absent.
    async fn delete_experiment(&self, name: &str) -> Result<bool, StoreError>;

    /// Sets an experiment's state, reason and message, stamping start/completion times, and
    /// records an event.
    async fn set_experiment_state(
        &self,
        experiment_id: i64,
        state: ExperimentState,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Marks the experiment as run by `owner` unless another live owner holds it; returns the
    /// current owner when the claim fails. `is_alive` says whether a stored owner still runs.
    async fn claim_experiment(
        &self,
        experiment_id: i64,
        owner: &str,
        is_alive: for<'a> fn(&'a str) -> bool,
    ) -> Result<Option<String>, StoreError>;

    /// Releases the claim made by `owner`.
    async fn release_experiment(&self, experiment_id: i64, owner: &str) -> Result<(), StoreError>;

    /// Records new trials of the experiment with `spec` in their first state (see
    /// [`NewTrial::state`]), all or none.
    ///
    /// This is where several processes sharing one store are kept apart, so the checks run
    /// inside the transaction, with the experiment locked against other writers: it fails
    /// with [`StoreError::Conflict`], writing nothing, if an index or name is taken (another
    /// process recorded trials meanwhile: reload and suggest again), if the experiment would
    /// hold more than `spec.max_trial_count` trials, or more than `spec.parallel_trial_count`
    /// unfinished (Pending or Running) ones.
    async fn create_trials(
        &self,
        experiment_id: i64,
        spec: &ExperimentSpec,
        trials: &[NewTrial],
    ) -> Result<Vec<Trial>, StoreError>;

    /// Every trial of an experiment, by index.
    async fn trials(&self, experiment_id: i64) -> Result<Vec<Trial>, StoreError>;

    /// How many trials an experiment has (indices have no gaps, so also the next index): a
    /// cheap check of whether another process recorded trials.
    async fn trial_count(&self, experiment_id: i64) -> Result<u64, StoreError>;

    /// The trial of an experiment called `name`, if any.
    async fn trial(&self, experiment_id: i64, name: &str) -> Result<Option<Trial>, StoreError>;

    /// Marks a trial Running, counts the attempt and stamps its start.
    async fn start_trial(&self, trial_id: i64, experiment_id: i64) -> Result<(), StoreError>;

    /// Records the executor's reference to a started trial (see [`Trial::handle`]).
    async fn set_trial_handle(&self, trial_id: i64, handle: &str) -> Result<(), StoreError>;

    /// Writes a trial's final state, together with its last `observations` (none for
    /// trials whose observations were already added), in one transaction. A trial that is
    /// final already (another process finished it first) is a [`StoreError::Conflict`] and
    /// stays as it is; see [`already_finished`].
    async fn finish_trial(
        &self,
        trial_id: i64,
        experiment_id: i64,
        outcome: &TrialOutcome,
        observations: &[Observation],
    ) -> Result<(), StoreError>;

    /// Puts an unfinished trial back to Pending and drops its observations, so it can run
    /// again from the start (after a crash or an interruption).
    async fn requeue_trial(&self, trial_id: i64, experiment_id: i64) -> Result<(), StoreError>;

    /// Appends observations to a trial in one transaction.
    async fn add_observations(
        &self,
        trial_id: i64,
        observations: &[Observation],
    ) -> Result<(), StoreError>;

    /// A trial's observations, of one metric or all, ordered by step then time.
    async fn observations(
        &self,
        trial_id: i64,
        metric: Option<&str>,
    ) -> Result<Vec<Observation>, StoreError>;

    /// What the trials of an experiment add up to (see [`TrialTally`]), the best trial by
    /// `direction`, computed in the database.
    async fn tally(
        &self,
        experiment_id: i64,
        direction: tuneflow_algorithms::Direction,
    ) -> Result<TrialTally, StoreError>;

    /// The experiment document as the user wrote it (YAML or JSON text), if the experiment
    /// exists.
    async fn document(&self, experiment_id: i64) -> Result<Option<String>, StoreError>;

    /// The trials of an experiment whose state changed at or after `since` (a trial is in the
    /// answer when its event log has an entry from then on), by index. Observations do not
    /// count as changes: read them with [`Store::curves`].
    async fn trials_changed_since(
        &self,
        experiment_id: i64,
        since: Micros,
    ) -> Result<Vec<Trial>, StoreError>;

    /// Every observation of `metric` in an experiment, or in its trials with the given
    /// indices, ordered by trial index, step, then arrival.
    async fn curves(
        &self,
        experiment_id: i64,
        metric: &str,
        trials: Option<&[u64]>,
    ) -> Result<Vec<CurvePoint>, StoreError>;

    /// A trial's state changes, oldest first.
    async fn trial_events(&self, trial_id: i64) -> Result<Vec<TrialEvent>, StoreError>;

    /// Asks whoever runs the experiment to stop it, keeping its data (`tuneflow stop`, the
    /// dashboard's stop button): records a [`STOP_REQUESTED`] event in its log. The process
    /// that runs it looks for such requests with [`Store::stop_requested`]; this works
    /// across processes and, on PostgreSQL, across machines.
    async fn request_stop(&self, experiment_id: i64, message: &str) -> Result<(), StoreError>;

    /// The time of the newest stop request for the experiment made at or after `since`, if
    /// any.
    async fn stop_requested(
        &self,
        experiment_id: i64,
        since: Micros,
    ) -> Result<Option<Micros>, StoreError>;
}

/// The limits [`Store::create_trials`] enforces, from an experiment's spec: one rule for
/// every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialCaps {
    /// `maxTrialCount`: trials in all.
    pub max_trials: Option<u64>,
    /// `parallelTrialCount`: unfinished trials at once.
    pub parallel: u64,
}

impl TrialCaps {
    /// The caps `spec` sets.
    pub fn of(spec: &ExperimentSpec) -> TrialCaps {
        TrialCaps {
            max_trials: spec.max_trial_count.map(u64::from),
            parallel: u64::from(spec.parallel_trial_count),
        }
    }

    /// Fails when adding `new` trials to `total` stored ones, `unfinished` of them Pending or
    /// Running, would break a cap.
    pub fn check(&self, total: i64, unfinished: i64, new: usize) -> Result<(), StoreError> {
        let new = new as u64;
        let (total, unfinished) = (total.max(0) as u64, unfinished.max(0) as u64);
        if let Some(max) = self.max_trials
            && total + new > max
        {
            return Err(StoreError::Conflict(format!(
                "maxTrialCount ({max}) would be exceeded: {total} trials are recorded and {new} more were asked for"
            )));
        }
        if unfinished + new > self.parallel {
            return Err(StoreError::Conflict(format!(
                "parallelTrialCount ({}) would be exceeded: {unfinished} trials are unfinished and {new} more were asked for",
                self.parallel
            )));
        }
        Ok(())
    }

    /// The error for a trial index or name another writer took first.
    pub fn taken(name: &str) -> StoreError {
        StoreError::Conflict(format!(
            "trial `{name}` (or its index) was recorded by another writer first; reload the trials and suggest again"
        ))
    }
}

/// Where a store lives, parsed from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (its URL prints without its password).
    Postgres(postgres::PostgresUrl),
}

impl StoreLocation {
    /// Parses `sqlite://PATH`, `sqlite:PATH`, a plain file path, or a `postgres://` or
    /// `postgresql://` URL (libpq's form: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`
    /// with parameters such as `?sslmode=disable`).
    pub fn parse(url: &str) -> Result<StoreLocation, StoreError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(StoreError::Url(format!(
                    "{url} (no path; write sqlite://path/to/tuneflow.db)"
                )));
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(postgres::PostgresUrl::parse(url)?));
        }
        if url.contains("://") {
            return Err(StoreError::Url(format!(
                "{}: expected sqlite://PATH, a file path, or postgres://USER@HOST/DATABASE",
                postgres::redact(url)
            )));
        }
        Ok(StoreLocation::Sqlite(PathBuf::from(url)))
    }

    /// The directory where trial logs go: beside an SQLite database file; for PostgreSQL,
    /// whose database has no directory here, [`postgres::LOGS_DIR`] under the current
    /// directory.
    pub fn logs_dir(&self) -> PathBuf {
        match self {
            StoreLocation::Postgres(_) => postgres::logs_dir().to_path_buf(),
            StoreLocation::Sqlite(path) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join("logs"),
        }
    }
}

/// Opens (creating and migrating when needed) the store at `location`.
pub async fn open(location: &StoreLocation) -> Result<Box<dyn Store>, StoreError> {
    match location {
        StoreLocation::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(path).await?)),
        StoreLocation::Postgres(url) => Ok(Box::new(postgres::PostgresStore::open(url).await?)),
    }
}
