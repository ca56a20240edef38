//! The MLflow view of tuneflow's experiments and trials, written by the [`Store`] methods in
//! their own transactions.
//!
//! A tuneflow experiment is a tracking experiment of the same name with one parent run
//! (`runs.parent_of`); a trial is a run (`runs.trial_id`), child of that parent, whose status
//! and times follow the trial's state. The functions here are the only writers of those rows
//! apart from the migration that backfilled them, so the mapping lives in one place.
//!
//! [`Store`]: crate::store::Store

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::tracking::{
    EXPERIMENT_TAG, Lifecycle, PARENT_RUN_TAG, RUN_NAME_TAG, RunStatus, TRIAL_TAG, TUNEFLOW_USER,
    default_artifact_location, end_time, new_run_id, run_artifact_uri,
};
use crate::store::{ExperimentState, Micros, StoreError, TrialState};

/// A run's row, to insert.
pub(super) struct RunRow<'a> {
    pub run_id: &'a str,
    pub experiment_id: i64,
    pub trial_id: Option<i64>,
    pub parent_of: Option<i64>,
    pub name: &'a str,
    pub user_id: &'a str,
    pub status: RunStatus,
    pub lifecycle: Lifecycle,
    pub start_time: Option<Micros>,
    pub end_time: Option<Micros>,
    pub artifact_uri: &'a str,
}

impl RunRow<'_> {
    /// Inserts the run.
    pub(super) fn insert(&self, connection: &Connection) -> Result<(), StoreError> {
        connection
            .prepare_cached(
                "INSERT INTO runs (run_uuid, experiment_id, trial_id, parent_of, name, user_id, \
                 status, lifecycle, start_time, end_time, artifact_uri) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                self.run_id,
                self.experiment_id,
                self.trial_id,
                self.parent_of,
                self.name,
                self.user_id,
                self.status.as_str(),
                self.lifecycle.as_str(),
                self.start_time,
                self.end_time,
                self.artifact_uri
            ])?;
        Ok(())
    }
}

/// Sets (adds or replaces) a run's tag.
pub(super) fn set_run_tag(
    connection: &Connection,
    run_id: &str,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO run_tags (run_uuid, key, value) VALUES (?1, ?2, ?3) \
             ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![run_id, key, value])?;
    Ok(())
}

/// Adds a param that the run does not have yet.
pub(super) fn insert_param(
    connection: &Connection,
    run_id: &str,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    connection
        .prepare_cached("INSERT INTO run_params (run_uuid, key, value) VALUES (?1, ?2, ?3)")?
        .execute(params![run_id, key, value])?;
    Ok(())
}

/// Mirrors the new experiment `experiment_id` called `name`: links the tracking experiment of
/// that name when an MLflow client made one (restoring it if it was deleted), or creates one,
/// and adds the experiment's parent run.
pub(super) fn experiment_created(
    connection: &Connection,
    experiment_id: i64,
    name: &str,
    now: Micros,
) -> Result<(), StoreError> {
    let existing: Option<(i64, Option<i64>, String, String)> = connection
        .prepare_cached(
            "SELECT id, experiment_id, artifact_location, lifecycle \
             FROM tracking_experiments WHERE name = ?1",
        )?
        .query_row([name], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    let (tracking_id, location) = match existing {
        Some((_, Some(_), _, _)) => return Err(StoreError::AlreadyExists(name.to_string())),
        Some((id, None, location, _)) => {
            connection
                .prepare_cached(
                    "UPDATE tracking_experiments \
                     SET experiment_id = ?1, lifecycle = 'active', updated_at = ?2 WHERE id = ?3",
                )?
                .execute(params![experiment_id, now, id])?;
            (id, location)
        }
        None => {
            let id = insert_tracking_experiment(connection, name, None, now)?;
            connection
                .prepare_cached("UPDATE tracking_experiments SET experiment_id = ?1 WHERE id = ?2")?
                .execute(params![experiment_id, id])?;
            let location = default_artifact_location(id);
            (id, location)
        }
    };
    let run_id = new_run_id();
    RunRow {
        run_id: &run_id,
        experiment_id: tracking_id,
        trial_id: None,
        parent_of: Some(experiment_id),
        name,
        user_id: TUNEFLOW_USER,
        status: RunStatus::of_experiment(ExperimentState::Created),
        lifecycle: Lifecycle::Active,
        start_time: Some(now),
        end_time: None,
        artifact_uri: &run_artifact_uri(&location, &run_id),
    }
    .insert(connection)?;
    set_run_tag(connection, &run_id, RUN_NAME_TAG, name)?;
    set_run_tag(connection, &run_id, EXPERIMENT_TAG, name)?;
    Ok(())
}

/// Inserts a tracking experiment, its artifact location defaulting to
/// [`default_artifact_location`], and returns its id. A taken name is
/// [`StoreError::AlreadyExists`].
pub(super) fn insert_tracking_experiment(
    connection: &Connection,
    name: &str,
    artifact_location: Option<&str>,
    now: Micros,
) -> Result<i64, StoreError> {
    let inserted = connection
        .prepare_cached(
            "INSERT INTO tracking_experiments (name, artifact_location, created_at, updated_at) \
             VALUES (?1, COALESCE(?2, ''), ?3, ?3)",
        )?
        .execute(params![name, artifact_location, now]);
    match inserted {
        Ok(_) => {}
        Err(e) if super::rows::is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists(name.to_string()));
        }
        Err(e) => return Err(e.into()),
    }
    let id = connection.last_insert_rowid();
    if artifact_location.is_none() {
        connection
            .prepare_cached("UPDATE tracking_experiments SET artifact_location = ?1 WHERE id = ?2")?
            .execute(params![default_artifact_location(id), id])?;
    }
    Ok(id)
}

/// A trial just recorded, as its run needs it.
pub(super) struct NewTrialRun {
    /// The trial's id.
    pub trial_id: i64,
    /// Its name.
    pub name: String,
    /// Its first state.
    pub state: TrialState,
    /// Its parameters: name and `Display` text of the value.
    pub params: Vec<(String, String)>,
}

/// Adds the runs of trials just recorded in experiment `experiment_id`: children of its parent
/// run, with the trials' parameters as params, in the parent run's tracking experiment (and
/// its lifecycle, so that the trials of a deleted tracking experiment are deleted with it).
pub(super) fn trials_created(
    connection: &Connection,
    experiment_id: i64,
    trials: &[NewTrialRun],
    now: Micros,
) -> Result<(), StoreError> {
    if trials.is_empty() {
        return Ok(());
    }
    let (parent, tracking_id, location, lifecycle): (String, i64, String, String) = connection
        .prepare_cached(
            "SELECT r.run_uuid, t.id, t.artifact_location, t.lifecycle \
             FROM runs r JOIN tracking_experiments t ON t.id = r.experiment_id \
             WHERE r.parent_of = ?1",
        )?
        .query_row([experiment_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "experiment {experiment_id} has no parent run in the tracking tables"
            ))
        })?;
    let lifecycle = Lifecycle::parse(&lifecycle)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown lifecycle `{lifecycle}`")))?;
    for trial in trials {
        let run_id = new_run_id();
        let started = trial.state == TrialState::Running;
        RunRow {
            run_id: &run_id,
            experiment_id: tracking_id,
            trial_id: Some(trial.trial_id),
            parent_of: None,
            name: &trial.name,
            user_id: TUNEFLOW_USER,
            status: RunStatus::of_trial(trial.state),
            lifecycle,
            start_time: started.then_some(now),
            end_time: end_time(RunStatus::of_trial(trial.state), now),
            artifact_uri: &run_artifact_uri(&location, &run_id),
        }
        .insert(connection)?;
        set_run_tag(connection, &run_id, PARENT_RUN_TAG, &parent)?;
        set_run_tag(connection, &run_id, RUN_NAME_TAG, &trial.name)?;
        set_run_tag(connection, &run_id, TRIAL_TAG, &trial.name)?;
        for (key, value) in &trial.params {
            insert_param(connection, &run_id, key, value)?;
        }
    }
    Ok(())
}

/// A trial (re)started at `now`: its run is Running from now.
pub(super) fn trial_started(
    connection: &Connection,
    trial_id: i64,
    now: Micros,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE runs SET status = ?1, start_time = ?2, end_time = NULL WHERE trial_id = ?3",
        )?
        .execute(params![RunStatus::Running.as_str(), now, trial_id])?;
    Ok(())
}

/// A trial reached its final `state` at `now`.
pub(super) fn trial_finished(
    connection: &Connection,
    trial_id: i64,
    state: TrialState,
    now: Micros,
) -> Result<(), StoreError> {
    let status = RunStatus::of_trial(state);
    connection
        .prepare_cached("UPDATE runs SET status = ?1, end_time = ?2 WHERE trial_id = ?3")?
        .execute(params![status.as_str(), end_time(status, now), trial_id])?;
    Ok(())
}

/// A trial went back to Pending, its observations dropped: its run is Scheduled again, with
/// no times and no metrics (the non-finite values logged to it and the latest values go too).
pub(super) fn trial_requeued(connection: &Connection, trial_id: i64) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE runs SET status = ?1, start_time = NULL, end_time = NULL WHERE trial_id = ?2",
        )?
        .execute(params![RunStatus::Scheduled.as_str(), trial_id])?;
    for table in ["run_metrics", "run_latest_metrics"] {
        connection
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE run_uuid = (SELECT run_uuid FROM runs WHERE trial_id = ?1)"
            ))?
            .execute([trial_id])?;
    }
    Ok(())
}

/// The experiment reached `state` at `now`: its parent run's status follows, and its end time
/// is `now` for a final status, none otherwise.
pub(super) fn experiment_state_set(
    connection: &Connection,
    experiment_id: i64,
    state: ExperimentState,
    now: Micros,
) -> Result<(), StoreError> {
    let status = RunStatus::of_experiment(state);
    connection
        .prepare_cached("UPDATE runs SET status = ?1, end_time = ?2 WHERE parent_of = ?3")?
        .execute(params![
            status.as_str(),
            end_time(status, now),
            experiment_id
        ])?;
    Ok(())
}
