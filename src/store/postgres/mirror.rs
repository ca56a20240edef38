//! The MLflow view of tuneflow's experiments and trials, written by the [`Store`] methods in
//! their own transactions: the PostgreSQL twin of `sqlite/mirror.rs`, with the same mapping.
//!
//! A tuneflow experiment is a tracking experiment of the same name with one parent run
//! (`runs.parent_of`); a trial is a run (`runs.trial_id`), child of that parent, whose status
//! and times follow the trial's state. The functions here are the only writers of those rows
//! apart from the migration that backfilled them. The runs of a batch of new trials are
//! written with one statement per table (arrays unnested), not one per row.
//!
//! [`Store`]: crate::store::Store

use sqlx_core::query::query;
use sqlx_core::query_as::query_as;
use sqlx_postgres::{PgConnection, Postgres};

use super::rows::unique_violation;
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
    pub(super) async fn insert(&self, connection: &mut PgConnection) -> Result<(), StoreError> {
        query::<Postgres>(
            "INSERT INTO runs (run_uuid, experiment_id, trial_id, parent_of, name, user_id, \
             status, lifecycle, start_time, end_time, artifact_uri) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(self.run_id)
        .bind(self.experiment_id)
        .bind(self.trial_id)
        .bind(self.parent_of)
        .bind(self.name)
        .bind(self.user_id)
        .bind(self.status.as_str())
        .bind(self.lifecycle.as_str())
        .bind(self.start_time)
        .bind(self.end_time)
        .bind(self.artifact_uri)
        .execute(connection)
        .await?;
        Ok(())
    }
}

/// Sets (adds or replaces) a run's tag.
pub(super) async fn set_run_tag(
    connection: &mut PgConnection,
    run_id: &str,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    query::<Postgres>(
        "INSERT INTO run_tags (run_uuid, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
    )
    .bind(run_id)
    .bind(key)
    .bind(value)
    .execute(connection)
    .await?;
    Ok(())
}

/// Sets (adds or replaces) tags of runs: `(run id, key, value)` each, in one statement. A run
/// and key may appear once.
async fn set_run_tags(
    connection: &mut PgConnection,
    tags: &[(&str, &str, &str)],
) -> Result<(), StoreError> {
    let runs: Vec<&str> = tags.iter().map(|t| t.0).collect();
    let keys: Vec<&str> = tags.iter().map(|t| t.1).collect();
    let values: Vec<&str> = tags.iter().map(|t| t.2).collect();
    query::<Postgres>(
        "INSERT INTO run_tags (run_uuid, key, value) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
    )
    .bind(runs)
    .bind(keys)
    .bind(values)
    .execute(connection)
    .await?;
    Ok(())
}

/// Adds a param that the run does not have yet.
pub(super) async fn insert_param(
    connection: &mut PgConnection,
    run_id: &str,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    query::<Postgres>("INSERT INTO run_params (run_uuid, key, value) VALUES ($1, $2, $3)")
        .bind(run_id)
        .bind(key)
        .bind(value)
        .execute(connection)
        .await?;
    Ok(())
}

/// Inserts a tracking experiment, its artifact location defaulting to
/// [`default_artifact_location`], and returns its id. A taken name is
/// [`StoreError::AlreadyExists`].
pub(super) async fn insert_tracking_experiment(
    connection: &mut PgConnection,
    name: &str,
    artifact_location: Option<&str>,
    now: Micros,
) -> Result<i64, StoreError> {
    // The default location names the id, which the insert gives out: one statement takes
    // the id from the identity first.
    let inserted = query_as::<Postgres, (i64,)>(
        "WITH id AS (SELECT nextval(pg_get_serial_sequence('tracking_experiments', 'id')) AS id) \
         INSERT INTO tracking_experiments (id, name, artifact_location, created_at, updated_at) \
         SELECT id.id, $1, COALESCE($2, 'mlflow-artifacts:/' || id.id), $3, $3 FROM id \
         RETURNING id",
    )
    .bind(name)
    .bind(artifact_location)
    .bind(now)
    .fetch_one(connection)
    .await;
    match inserted {
        Ok((id,)) => Ok(id),
        Err(e) if unique_violation(&e).is_some() => {
            Err(StoreError::AlreadyExists(name.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Mirrors the new experiment `experiment_id` called `name`: links the tracking experiment of
/// that name when an MLflow client made one (restoring it if it was deleted), or creates one,
/// and adds the experiment's parent run.
pub(super) async fn experiment_created(
    connection: &mut PgConnection,
    experiment_id: i64,
    name: &str,
    now: Micros,
) -> Result<(), StoreError> {
    // Locked: an MLflow client renaming or deleting it meanwhile waits for this link.
    let existing = query_as::<Postgres, (i64, Option<i64>, String)>(
        "SELECT id, experiment_id, artifact_location FROM tracking_experiments \
         WHERE name = $1 FOR NO KEY UPDATE",
    )
    .bind(name)
    .fetch_optional(&mut *connection)
    .await?;
    let (tracking_id, location) = match existing {
        Some((_, Some(_), _)) => return Err(StoreError::AlreadyExists(name.to_string())),
        Some((id, None, location)) => {
            query::<Postgres>(
                "UPDATE tracking_experiments \
                 SET experiment_id = $1, lifecycle = 'active', updated_at = $2 WHERE id = $3",
            )
            .bind(experiment_id)
            .bind(now)
            .bind(id)
            .execute(&mut *connection)
            .await?;
            (id, location)
        }
        None => {
            let id = insert_tracking_experiment(connection, name, None, now).await?;
            query::<Postgres>("UPDATE tracking_experiments SET experiment_id = $1 WHERE id = $2")
                .bind(experiment_id)
                .bind(id)
                .execute(&mut *connection)
                .await?;
            (id, default_artifact_location(id))
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
    .insert(connection)
    .await?;
    set_run_tags(
        connection,
        &[
            (&run_id, RUN_NAME_TAG, name),
            (&run_id, EXPERIMENT_TAG, name),
        ],
    )
    .await
}

/// A trial just recorded, as its run needs it.
pub(super) struct NewTrialRun<'a> {
    /// The trial's id.
    pub trial_id: i64,
    /// Its name.
    pub name: &'a str,
    /// Its first state.
    pub state: TrialState,
    /// Its parameters: name and `Display` text of the value.
    pub params: &'a [(String, String)],
}

/// Adds the runs of trials just recorded in experiment `experiment_id`: children of its parent
/// run, with the trials' parameters as params, in the parent run's tracking experiment (and
/// its lifecycle, so that the trials of a deleted tracking experiment are deleted with it).
pub(super) async fn trials_created(
    connection: &mut PgConnection,
    experiment_id: i64,
    trials: &[NewTrialRun<'_>],
    now: Micros,
) -> Result<(), StoreError> {
    if trials.is_empty() {
        return Ok(());
    }
    let (parent, tracking_id, location, lifecycle) =
        query_as::<Postgres, (String, i64, String, String)>(
            "SELECT r.run_uuid, t.id, t.artifact_location, t.lifecycle \
             FROM runs r JOIN tracking_experiments t ON t.id = r.experiment_id \
             WHERE r.parent_of = $1",
        )
        .bind(experiment_id)
        .fetch_optional(&mut *connection)
        .await?
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "experiment {experiment_id} has no parent run in the tracking tables"
            ))
        })?;
    let lifecycle = Lifecycle::parse(&lifecycle)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown lifecycle `{lifecycle}`")))?;

    let run_ids: Vec<String> = trials.iter().map(|_| new_run_id()).collect();
    let trial_ids: Vec<i64> = trials.iter().map(|t| t.trial_id).collect();
    let names: Vec<&str> = trials.iter().map(|t| t.name).collect();
    let statuses: Vec<&str> = trials
        .iter()
        .map(|t| RunStatus::of_trial(t.state).as_str())
        .collect();
    let started: Vec<bool> = trials
        .iter()
        .map(|t| t.state == TrialState::Running)
        .collect();
    let ended: Vec<bool> = trials
        .iter()
        .map(|t| end_time(RunStatus::of_trial(t.state), now).is_some())
        .collect();
    let uris: Vec<String> = run_ids
        .iter()
        .map(|run_id| run_artifact_uri(&location, run_id))
        .collect();
    query::<Postgres>(
        "INSERT INTO runs (run_uuid, experiment_id, trial_id, parent_of, name, user_id, status, \
         lifecycle, start_time, end_time, artifact_uri) \
         SELECT u.run_uuid, $1, u.trial_id, NULL, u.name, $2, u.status, $3, \
                CASE WHEN u.started THEN $4::int8 END, CASE WHEN u.ended THEN $4::int8 END, u.uri \
         FROM UNNEST($5::text[], $6::int8[], $7::text[], $8::text[], $9::bool[], $10::bool[], \
                     $11::text[]) AS u(run_uuid, trial_id, name, status, started, ended, uri)",
    )
    .bind(tracking_id)
    .bind(TUNEFLOW_USER)
    .bind(lifecycle.as_str())
    .bind(now)
    .bind(&run_ids)
    .bind(trial_ids)
    .bind(names)
    .bind(statuses)
    .bind(started)
    .bind(ended)
    .bind(uris)
    .execute(&mut *connection)
    .await?;

    let mut tags = Vec::with_capacity(trials.len() * 3);
    let mut params: (Vec<&str>, Vec<&str>, Vec<&str>) = Default::default();
    for (trial, run_id) in trials.iter().zip(&run_ids) {
        tags.push((run_id.as_str(), PARENT_RUN_TAG, parent.as_str()));
        tags.push((run_id.as_str(), RUN_NAME_TAG, trial.name));
        tags.push((run_id.as_str(), TRIAL_TAG, trial.name));
        for (key, value) in trial.params {
            params.0.push(run_id);
            params.1.push(key);
            params.2.push(value);
        }
    }
    set_run_tags(connection, &tags).await?;
    if !params.0.is_empty() {
        query::<Postgres>(
            "INSERT INTO run_params (run_uuid, key, value) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])",
        )
        .bind(params.0)
        .bind(params.1)
        .bind(params.2)
        .execute(connection)
        .await?;
    }
    Ok(())
}

/// A trial (re)started at `now`: its run is Running from now.
pub(super) async fn trial_started(
    connection: &mut PgConnection,
    trial_id: i64,
    now: Micros,
) -> Result<(), StoreError> {
    query::<Postgres>(
        "UPDATE runs SET status = $1, start_time = $2, end_time = NULL WHERE trial_id = $3",
    )
    .bind(RunStatus::Running.as_str())
    .bind(now)
    .bind(trial_id)
    .execute(connection)
    .await?;
    Ok(())
}

/// A trial reached its final `state` at `now`.
pub(super) async fn trial_finished(
    connection: &mut PgConnection,
    trial_id: i64,
    state: TrialState,
    now: Micros,
) -> Result<(), StoreError> {
    let status = RunStatus::of_trial(state);
    query::<Postgres>("UPDATE runs SET status = $1, end_time = $2 WHERE trial_id = $3")
        .bind(status.as_str())
        .bind(end_time(status, now))
        .bind(trial_id)
        .execute(connection)
        .await?;
    Ok(())
}

/// A trial went back to Pending, its observations dropped: its run is Scheduled again, with
/// no times and no metrics (the non-finite values logged to it and the latest values go too).
pub(super) async fn trial_requeued(
    connection: &mut PgConnection,
    trial_id: i64,
) -> Result<(), StoreError> {
    query::<Postgres>(
        "UPDATE runs SET status = $1, start_time = NULL, end_time = NULL WHERE trial_id = $2",
    )
    .bind(RunStatus::Scheduled.as_str())
    .bind(trial_id)
    .execute(&mut *connection)
    .await?;
    query::<Postgres>(
        "DELETE FROM run_metrics WHERE run_uuid = (SELECT run_uuid FROM runs WHERE trial_id = $1)",
    )
    .bind(trial_id)
    .execute(&mut *connection)
    .await?;
    query::<Postgres>(
        "DELETE FROM run_latest_metrics \
         WHERE run_uuid = (SELECT run_uuid FROM runs WHERE trial_id = $1)",
    )
    .bind(trial_id)
    .execute(connection)
    .await?;
    Ok(())
}

/// The experiment reached `state` at `now`: its parent run's status follows, and its end time
/// is `now` for a final status, none otherwise.
pub(super) async fn experiment_state_set(
    connection: &mut PgConnection,
    experiment_id: i64,
    state: ExperimentState,
    now: Micros,
) -> Result<(), StoreError> {
    let status = RunStatus::of_experiment(state);
    query::<Postgres>("UPDATE runs SET status = $1, end_time = $2 WHERE parent_of = $3")
        .bind(status.as_str())
        .bind(end_time(status, now))
        .bind(experiment_id)
        .execute(connection)
        .await?;
    Ok(())
}
