//! [`Tracking`] on the PostgreSQL store: MLflow's experiments and runs, in the tables of
//! migration `0004_tracking`, with the rules of the SQLite store (`sqlite/tracking.rs` lists
//! them: only active experiments and runs change, the Default experiment stays, a tuneflow
//! experiment's tracking experiment keeps its name, lifecycles cascade to runs).
//!
//! A trial's run keeps its finite metric values as the trial's observations and the others in
//! `run_metrics`; the history of a metric reads both. NaN and ±infinity are stored as they
//! are. `run_latest_metrics` holds the latest value of every metric of every run, kept by
//! statement triggers on both tables.
//!
//! Text is ordered byte by byte (`COLLATE "C"`), as SQLite orders it, whatever the database's
//! collation: both stores list keys in the same order.
//!
//! Several servers may write at once, so a change that depends on what it reads locks the row
//! first: a run is read `FOR NO KEY UPDATE` before it is logged to (so two batches logging the
//! same new param take turns, and the second sees the first's value), a tracking experiment
//! before it is renamed, tagged, deleted or restored.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx_core::query::query;
use sqlx_core::query_as::query_as;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::row::Row;
use sqlx_postgres::{PgConnection, PgRow, Postgres};

use super::PostgresStore;
use super::mirror::{self, RunRow};
use super::rows::{insert_observations, unique_violation};
use crate::store::tracking::{
    DEFAULT_EXPERIMENT_ID, KeyValue, Lifecycle, MetricPoint, NewRun, RUN_NAME_TAG, Run, RunInfo,
    RunStatus, RunUpdate, Tracking, TrackingExperiment, lifecycle, missing_experiment, missing_run,
    new_run_id, param_conflict, require_active, run_artifact_uri, same_param,
};
use crate::store::{Observation, StoreError, now_micros};

/// The columns [`experiment_from_row`] reads, in its order, as a literal for `concat!`.
macro_rules! experiment_columns {
    () => {
        "id, name, artifact_location, lifecycle, created_at, updated_at, experiment_id"
    };
}

/// The columns [`run_info_from_row`] reads, in its order, as a literal for `concat!`.
macro_rules! run_columns {
    () => {
        "run_uuid, experiment_id, name, user_id, status, lifecycle, start_time, end_time, \
         artifact_uri, trial_id"
    };
}

/// Reads a row of `experiment_columns!()`; its tags are added by the caller.
fn experiment_from_row(row: &PgRow) -> Result<TrackingExperiment, StoreError> {
    let stage: String = row.try_get(3)?;
    Ok(TrackingExperiment {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        artifact_location: row.try_get(2)?,
        lifecycle: lifecycle(&stage)?,
        created_at: row.try_get(4)?,
        updated_at: row.try_get(5)?,
        tags: Vec::new(),
        experiment_id: row.try_get(6)?,
    })
}

/// Reads a row of `run_columns!()`.
fn run_info_from_row(row: &PgRow) -> Result<RunInfo, StoreError> {
    let status: String = row.try_get(4)?;
    let stage: String = row.try_get(5)?;
    Ok(RunInfo {
        run_id: row.try_get(0)?,
        experiment_id: row.try_get(1)?,
        name: row.try_get(2)?,
        user_id: row.try_get(3)?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown run status `{status}`")))?,
        lifecycle: lifecycle(&stage)?,
        start_time: row.try_get(6)?,
        end_time: row.try_get(7)?,
        artifact_uri: row.try_get(8)?,
        trial_id: row.try_get(9)?,
    })
}

/// Reads `key, step, timestamp, value` from column `first` on.
fn metric_from_row(row: &PgRow, first: usize) -> Result<MetricPoint, StoreError> {
    Ok(MetricPoint {
        key: row.try_get(first)?,
        step: row.try_get(first + 1)?,
        timestamp: row.try_get(first + 2)?,
        value: row.try_get(first + 3)?,
    })
}

/// The tracking experiment `id` with its tags, if any.
async fn experiment(
    connection: &mut PgConnection,
    id: i64,
) -> Result<Option<TrackingExperiment>, StoreError> {
    let Some(row) = query::<Postgres>(concat!(
        "SELECT ",
        experiment_columns!(),
        " FROM tracking_experiments WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *connection)
    .await?
    else {
        return Ok(None);
    };
    let mut experiment = experiment_from_row(&row)?;
    experiment.tags = query_as::<Postgres, (String, String)>(
        "SELECT key, value FROM tracking_experiment_tags WHERE experiment_id = $1 \
         ORDER BY key COLLATE \"C\"",
    )
    .bind(id)
    .fetch_all(connection)
    .await?
    .into_iter()
    .map(|(key, value)| KeyValue { key, value })
    .collect();
    Ok(Some(experiment))
}

/// The lifecycle and link of experiment `id`, locked against other writers; missing is an
/// error.
async fn experiment_state(
    connection: &mut PgConnection,
    id: i64,
) -> Result<(Lifecycle, Option<i64>, String), StoreError> {
    let (stage, linked, name) = query_as::<Postgres, (String, Option<i64>, String)>(
        "SELECT lifecycle, experiment_id, name FROM tracking_experiments WHERE id = $1 \
         FOR NO KEY UPDATE",
    )
    .bind(id)
    .fetch_optional(connection)
    .await?
    .ok_or_else(|| missing_experiment(id))?;
    Ok((lifecycle(&stage)?, linked, name))
}

/// Fails unless experiment `id` exists and is active; `doing` says what was refused. Returns
/// its artifact location.
async fn active_experiment(
    connection: &mut PgConnection,
    id: i64,
    doing: &str,
) -> Result<String, StoreError> {
    let (stage, location) = query_as::<Postgres, (String, String)>(
        "SELECT lifecycle, artifact_location FROM tracking_experiments WHERE id = $1 \
         FOR NO KEY UPDATE",
    )
    .bind(id)
    .fetch_optional(connection)
    .await?
    .ok_or_else(|| missing_experiment(id))?;
    require_active(
        lifecycle(&stage)?,
        &format!("tracking experiment {id}"),
        doing,
    )?;
    Ok(location)
}

/// The info of run `run_id`; missing is an error. `lock` takes the run's row against other
/// writers until the transaction ends.
async fn run_info(
    connection: &mut PgConnection,
    run_id: &str,
    lock: bool,
) -> Result<RunInfo, StoreError> {
    let statement = if lock {
        concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE run_uuid = $1 FOR NO KEY UPDATE"
        )
    } else {
        concat!("SELECT ", run_columns!(), " FROM runs WHERE run_uuid = $1")
    };
    match query::<Postgres>(statement)
        .bind(run_id)
        .fetch_optional(connection)
        .await?
    {
        Some(row) => run_info_from_row(&row),
        None => Err(missing_run(run_id)),
    }
}

/// The info of run `run_id`, which must be active, locked; `doing` says what was refused.
async fn active_run(
    connection: &mut PgConnection,
    run_id: &str,
    doing: &str,
) -> Result<RunInfo, StoreError> {
    let info = run_info(connection, run_id, true).await?;
    require_active(info.lifecycle, &format!("run {run_id}"), doing)?;
    Ok(info)
}

/// Inserts metric values into `run_metrics` in one statement, in order.
async fn insert_run_metrics(
    connection: &mut PgConnection,
    run_id: &str,
    points: &[&MetricPoint],
) -> Result<(), StoreError> {
    if points.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = points.iter().map(|p| p.key.as_str()).collect();
    let steps: Vec<i64> = points.iter().map(|p| p.step).collect();
    let timestamps: Vec<i64> = points.iter().map(|p| p.timestamp).collect();
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    query::<Postgres>(
        "INSERT INTO run_metrics (run_uuid, key, step, timestamp, value) \
         SELECT $1, u.key, u.step, u.timestamp, u.value \
         FROM UNNEST($2::text[], $3::int8[], $4::int8[], $5::float8[]) \
              WITH ORDINALITY AS u(key, step, timestamp, value, position) \
         ORDER BY u.position",
    )
    .bind(run_id)
    .bind(keys)
    .bind(steps)
    .bind(timestamps)
    .bind(values)
    .execute(connection)
    .await?;
    Ok(())
}

/// Sets a run's tag; the `mlflow.runName` tag renames the run, as in MLflow.
async fn set_tag(
    connection: &mut PgConnection,
    run_id: &str,
    tag: &KeyValue,
) -> Result<(), StoreError> {
    mirror::set_run_tag(connection, run_id, &tag.key, &tag.value).await?;
    if tag.key == RUN_NAME_TAG {
        query::<Postgres>("UPDATE runs SET name = $1 WHERE run_uuid = $2")
            .bind(&tag.value)
            .bind(run_id)
            .execute(connection)
            .await?;
    }
    Ok(())
}

/// The runs of the experiments `ids`, by experiment, newest start first, with their params,
/// tags and latest metrics.
async fn experiment_runs(
    connection: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<Run>, StoreError> {
    let mut runs: Vec<Run> = query::<Postgres>(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE experiment_id = ANY($1) \
          ORDER BY experiment_id, start_time DESC NULLS LAST, run_uuid COLLATE \"C\""
    ))
    .bind(ids)
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| {
        Ok(Run {
            info: run_info_from_row(row)?,
            params: Vec::new(),
            tags: Vec::new(),
            metrics: Vec::new(),
        })
    })
    .collect::<Result<_, StoreError>>()?;
    if runs.is_empty() {
        return Ok(runs);
    }
    let index: HashMap<String, usize> = runs
        .iter()
        .enumerate()
        .map(|(i, run)| (run.info.run_id.clone(), i))
        .collect();
    let position = |run_id: &str| -> Result<usize, StoreError> {
        index
            .get(run_id)
            .copied()
            .ok_or_else(|| StoreError::Corrupt(format!("rows of unknown run {run_id}")))
    };
    let params = query_as::<Postgres, (String, String, String)>(
        "SELECT d.run_uuid, d.key, d.value FROM runs r JOIN run_params d ON d.run_uuid = r.run_uuid \
         WHERE r.experiment_id = ANY($1) ORDER BY d.run_uuid COLLATE \"C\", d.key COLLATE \"C\"",
    )
    .bind(ids)
    .fetch_all(&mut *connection)
    .await?;
    for (run_id, key, value) in params {
        runs[position(&run_id)?]
            .params
            .push(KeyValue { key, value });
    }
    let tags = query_as::<Postgres, (String, String, String)>(
        "SELECT d.run_uuid, d.key, d.value FROM runs r JOIN run_tags d ON d.run_uuid = r.run_uuid \
         WHERE r.experiment_id = ANY($1) ORDER BY d.run_uuid COLLATE \"C\", d.key COLLATE \"C\"",
    )
    .bind(ids)
    .fetch_all(&mut *connection)
    .await?;
    for (run_id, key, value) in tags {
        runs[position(&run_id)?].tags.push(KeyValue { key, value });
    }
    let metrics = query::<Postgres>(
        "SELECT m.run_uuid, m.key, m.step, m.timestamp, m.value \
         FROM runs r JOIN run_latest_metrics m ON m.run_uuid = r.run_uuid \
         WHERE r.experiment_id = ANY($1) ORDER BY m.run_uuid COLLATE \"C\", m.key COLLATE \"C\"",
    )
    .bind(ids)
    .fetch_all(connection)
    .await?;
    for row in &metrics {
        let run_id: String = row.try_get(0)?;
        let at = position(&run_id)?;
        runs[at].metrics.push(metric_from_row(row, 1)?);
    }
    Ok(runs)
}

/// Run `run_id` with its params, tags and latest metrics, if any.
async fn full_run(connection: &mut PgConnection, run_id: &str) -> Result<Option<Run>, StoreError> {
    let info = match run_info(connection, run_id, false).await {
        Ok(info) => info,
        Err(StoreError::Missing { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let pairs = |rows: Vec<(String, String)>| -> Vec<KeyValue> {
        rows.into_iter()
            .map(|(key, value)| KeyValue { key, value })
            .collect()
    };
    let params = pairs(
        query_as::<Postgres, (String, String)>(
            "SELECT key, value FROM run_params WHERE run_uuid = $1 ORDER BY key COLLATE \"C\"",
        )
        .bind(run_id)
        .fetch_all(&mut *connection)
        .await?,
    );
    let tags = pairs(
        query_as::<Postgres, (String, String)>(
            "SELECT key, value FROM run_tags WHERE run_uuid = $1 ORDER BY key COLLATE \"C\"",
        )
        .bind(run_id)
        .fetch_all(&mut *connection)
        .await?,
    );
    let metrics = query::<Postgres>(
        "SELECT key, step, timestamp, value FROM run_latest_metrics \
         WHERE run_uuid = $1 ORDER BY key COLLATE \"C\"",
    )
    .bind(run_id)
    .fetch_all(connection)
    .await?
    .iter()
    .map(|row| metric_from_row(row, 0))
    .collect::<Result<_, _>>()?;
    Ok(Some(Run {
        info,
        params,
        tags,
        metrics,
    }))
}

/// Sets (adds or replaces) a tag of tracking experiment `id`.
async fn set_experiment_tag(
    connection: &mut PgConnection,
    id: i64,
    tag: &KeyValue,
) -> Result<(), StoreError> {
    query::<Postgres>(
        "INSERT INTO tracking_experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(id)
    .bind(&tag.key)
    .bind(&tag.value)
    .execute(connection)
    .await?;
    Ok(())
}

#[async_trait]
impl Tracking for PostgresStore {
    async fn create_tracking_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<TrackingExperiment, StoreError> {
        let input = (name, artifact_location, tags, now_micros());
        self.write(
            "create_tracking_experiment",
            &input,
            |connection, (name, artifact_location, tags, now)| {
                Box::pin(async move {
                    let id = mirror::insert_tracking_experiment(
                        connection,
                        name,
                        *artifact_location,
                        *now,
                    )
                    .await?;
                    for tag in *tags {
                        set_experiment_tag(connection, id, tag).await?;
                    }
                    experiment(connection, id)
                        .await?
                        .ok_or_else(|| missing_experiment(id))
                })
            },
        )
        .await
    }

    async fn tracking_experiment(&self, id: i64) -> Result<Option<TrackingExperiment>, StoreError> {
        self.read("tracking_experiment", &id, |connection, id| {
            Box::pin(experiment(connection, *id))
        })
        .await
    }

    async fn tracking_experiment_by_name(
        &self,
        name: &str,
    ) -> Result<Option<TrackingExperiment>, StoreError> {
        self.read("tracking_experiment_by_name", &name, |connection, name| {
            Box::pin(async move {
                let id = query_scalar::<Postgres, i64>(
                    "SELECT id FROM tracking_experiments WHERE name = $1",
                )
                .bind(*name)
                .fetch_optional(&mut *connection)
                .await?;
                match id {
                    Some(id) => experiment(connection, id).await,
                    None => Ok(None),
                }
            })
        })
        .await
    }

    async fn tracking_experiments(&self) -> Result<Vec<TrackingExperiment>, StoreError> {
        self.read("tracking_experiments", &(), |connection, ()| {
            Box::pin(async move {
                let mut experiments: Vec<TrackingExperiment> = query::<Postgres>(concat!(
                    "SELECT ",
                    experiment_columns!(),
                    " FROM tracking_experiments ORDER BY id"
                ))
                .fetch_all(&mut *connection)
                .await?
                .iter()
                .map(experiment_from_row)
                .collect::<Result<_, _>>()?;
                let index: HashMap<i64, usize> = experiments
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (e.id, i))
                    .collect();
                let tags = query_as::<Postgres, (i64, String, String)>(
                    "SELECT experiment_id, key, value FROM tracking_experiment_tags \
                     ORDER BY experiment_id, key COLLATE \"C\"",
                )
                .fetch_all(connection)
                .await?;
                for (id, key, value) in tags {
                    if let Some(&at) = index.get(&id) {
                        experiments[at].tags.push(KeyValue { key, value });
                    }
                }
                Ok(experiments)
            })
        })
        .await
    }

    async fn rename_tracking_experiment(&self, id: i64, name: &str) -> Result<(), StoreError> {
        let input = (id, name, now_micros());
        self.write(
            "rename_tracking_experiment",
            &input,
            |connection, (id, name, now)| {
                Box::pin(async move {
                    let (stage, linked, current) = experiment_state(connection, *id).await?;
                    require_active(stage, &format!("tracking experiment {id}"), "rename")?;
                    if current == *name {
                        return Ok(());
                    }
                    if linked.is_some() {
                        return Err(StoreError::Conflict(format!(
                            "cannot rename tracking experiment {id}: it is tuneflow experiment \
                             `{current}`, which keeps its name"
                        )));
                    }
                    let renamed = query::<Postgres>(
                        "UPDATE tracking_experiments SET name = $1, updated_at = $2 WHERE id = $3",
                    )
                    .bind(*name)
                    .bind(*now)
                    .bind(*id)
                    .execute(connection)
                    .await;
                    match renamed {
                        Ok(_) => Ok(()),
                        Err(e) if unique_violation(&e).is_some() => {
                            Err(StoreError::AlreadyExists(name.to_string()))
                        }
                        Err(e) => Err(e.into()),
                    }
                })
            },
        )
        .await
    }

    async fn set_tracking_experiment_lifecycle(
        &self,
        id: i64,
        lifecycle: Lifecycle,
    ) -> Result<(), StoreError> {
        let input = (id, lifecycle, now_micros());
        self.write(
            "set_tracking_experiment_lifecycle",
            &input,
            |connection, (id, lifecycle, now)| {
                Box::pin(async move {
                    let (current, _, _) = experiment_state(connection, *id).await?;
                    if current == *lifecycle {
                        return Ok(());
                    }
                    if *id == DEFAULT_EXPERIMENT_ID && *lifecycle == Lifecycle::Deleted {
                        return Err(StoreError::Conflict(format!(
                            "the Default experiment (id {DEFAULT_EXPERIMENT_ID}) cannot be \
                             deleted: runs that name no experiment go there"
                        )));
                    }
                    query::<Postgres>(
                        "UPDATE tracking_experiments SET lifecycle = $1, updated_at = $2 \
                         WHERE id = $3",
                    )
                    .bind(lifecycle.as_str())
                    .bind(*now)
                    .bind(*id)
                    .execute(&mut *connection)
                    .await?;
                    query::<Postgres>("UPDATE runs SET lifecycle = $1 WHERE experiment_id = $2")
                        .bind(lifecycle.as_str())
                        .bind(*id)
                        .execute(connection)
                        .await?;
                    Ok(())
                })
            },
        )
        .await
    }

    async fn set_tracking_experiment_tag(&self, id: i64, tag: &KeyValue) -> Result<(), StoreError> {
        self.write(
            "set_tracking_experiment_tag",
            &(id, tag),
            |connection, (id, tag)| {
                Box::pin(async move {
                    active_experiment(connection, *id, "tag").await?;
                    set_experiment_tag(connection, *id, tag).await
                })
            },
        )
        .await
    }

    async fn create_run(&self, run: &NewRun) -> Result<RunInfo, StoreError> {
        self.write("create_run", &run, |connection, run| {
            Box::pin(async move {
                let location =
                    active_experiment(connection, run.experiment_id, "create a run in").await?;
                let run_id = new_run_id();
                RunRow {
                    run_id: &run_id,
                    experiment_id: run.experiment_id,
                    trial_id: None,
                    parent_of: None,
                    name: &run.name,
                    user_id: &run.user_id,
                    status: RunStatus::Running,
                    lifecycle: Lifecycle::Active,
                    start_time: Some(run.start_time),
                    end_time: None,
                    artifact_uri: &run_artifact_uri(&location, &run_id),
                }
                .insert(connection)
                .await?;
                for tag in run.tags.iter().filter(|tag| tag.key != RUN_NAME_TAG) {
                    mirror::set_run_tag(connection, &run_id, &tag.key, &tag.value).await?;
                }
                mirror::set_run_tag(connection, &run_id, RUN_NAME_TAG, &run.name).await?;
                run_info(connection, &run_id, false).await
            })
        })
        .await
    }

    async fn run(&self, run_id: &str) -> Result<Option<Run>, StoreError> {
        self.read("run", &run_id, |connection, run_id| {
            Box::pin(full_run(connection, run_id))
        })
        .await
    }

    async fn runs(&self, experiment_ids: &[i64]) -> Result<Vec<Run>, StoreError> {
        let mut ids = experiment_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.read("runs", &ids, |connection, ids| {
            Box::pin(experiment_runs(connection, ids))
        })
        .await
    }

    async fn update_run(&self, run_id: &str, update: &RunUpdate) -> Result<RunInfo, StoreError> {
        self.write(
            "update_run",
            &(run_id, update),
            |connection, (run_id, update)| {
                Box::pin(async move {
                    let info = active_run(connection, run_id, "update").await?;
                    let status = update.status.filter(|_| info.trial_id.is_none());
                    query::<Postgres>(
                        "UPDATE runs SET status = COALESCE($1, status), \
                         end_time = COALESCE($2, end_time), name = COALESCE($3, name) \
                         WHERE run_uuid = $4",
                    )
                    .bind(status.map(RunStatus::as_str))
                    .bind(update.end_time)
                    .bind(update.name.as_deref())
                    .bind(*run_id)
                    .execute(&mut *connection)
                    .await?;
                    if let Some(name) = &update.name {
                        mirror::set_run_tag(connection, run_id, RUN_NAME_TAG, name).await?;
                    }
                    run_info(connection, run_id, false).await
                })
            },
        )
        .await
    }

    async fn set_run_lifecycle(
        &self,
        run_id: &str,
        lifecycle: Lifecycle,
    ) -> Result<(), StoreError> {
        self.write(
            "set_run_lifecycle",
            &(run_id, lifecycle),
            |connection, (run_id, lifecycle)| {
                Box::pin(async move {
                    let updated =
                        query::<Postgres>("UPDATE runs SET lifecycle = $1 WHERE run_uuid = $2")
                            .bind(lifecycle.as_str())
                            .bind(*run_id)
                            .execute(connection)
                            .await?;
                    if updated.rows_affected() == 0 {
                        return Err(missing_run(run_id));
                    }
                    Ok(())
                })
            },
        )
        .await
    }

    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[MetricPoint],
        params: &[KeyValue],
        tags: &[KeyValue],
    ) -> Result<(), StoreError> {
        self.write(
            "log_batch",
            &(run_id, metrics, params, tags),
            |connection, (run_id, metrics, params, tags)| {
                Box::pin(log_batch(connection, run_id, metrics, params, tags))
            },
        )
        .await
    }

    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<bool, StoreError> {
        self.write(
            "delete_run_tag",
            &(run_id, key),
            |connection, (run_id, key)| {
                Box::pin(async move {
                    active_run(connection, run_id, "delete a tag of").await?;
                    let deleted =
                        query::<Postgres>("DELETE FROM run_tags WHERE run_uuid = $1 AND key = $2")
                            .bind(*run_id)
                            .bind(*key)
                            .execute(connection)
                            .await?;
                    Ok(deleted.rows_affected() > 0)
                })
            },
        )
        .await
    }

    async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
    ) -> Result<Vec<MetricPoint>, StoreError> {
        self.read(
            "metric_history",
            &(run_id, key),
            |connection, (run_id, key)| {
                Box::pin(async move {
                    let info = run_info(connection, run_id, false).await?;
                    query::<Postgres>(
                        "SELECT key, step, timestamp, value, 0 AS source, id FROM run_metrics \
                         WHERE run_uuid = $1 AND key = $2 \
                         UNION ALL \
                         SELECT metric, step, timestamp, value, 1, id FROM observations \
                         WHERE trial_id = $3 AND metric = $2 \
                         ORDER BY 2, 3, 5, 6",
                    )
                    .bind(*run_id)
                    .bind(*key)
                    .bind(info.trial_id)
                    .fetch_all(connection)
                    .await?
                    .iter()
                    .map(|row| metric_from_row(row, 0))
                    .collect()
                })
            },
        )
        .await
    }

    async fn trial_run_id(&self, trial_id: i64) -> Result<Option<String>, StoreError> {
        self.read("trial_run_id", &trial_id, |connection, trial_id| {
            Box::pin(async move {
                Ok(query_scalar::<Postgres, String>(
                    "SELECT run_uuid FROM runs WHERE trial_id = $1",
                )
                .bind(*trial_id)
                .fetch_optional(connection)
                .await?)
            })
        })
        .await
    }
}

/// The body of [`Tracking::log_batch`].
async fn log_batch(
    connection: &mut PgConnection,
    run_id: &str,
    metrics: &[MetricPoint],
    params: &[KeyValue],
    tags: &[KeyValue],
) -> Result<(), StoreError> {
    // The lock makes the params' check and insert one step for other writers of this run.
    let info = active_run(connection, run_id, "log to").await?;
    let trial = info.trial_id.is_some();
    // Params first: a conflict fails the batch before anything is written.
    let mut new_params: Vec<&KeyValue> = Vec::new();
    for param in params {
        if let Some(earlier) = new_params.iter().find(|p| p.key == param.key) {
            if same_param(trial, &earlier.value, &param.value) {
                continue;
            }
            return Err(StoreError::Conflict(format!(
                "param `{}` is given twice in the batch for run {run_id}, as `{}` and `{}`",
                param.key, earlier.value, param.value
            )));
        }
        let stored = query_scalar::<Postgres, String>(
            "SELECT value FROM run_params WHERE run_uuid = $1 AND key = $2",
        )
        .bind(run_id)
        .bind(&param.key)
        .fetch_optional(&mut *connection)
        .await?;
        match stored {
            Some(old) if same_param(trial, &old, &param.value) => {}
            Some(old) => return Err(param_conflict(run_id, &param.key, &old, &param.value)),
            None => new_params.push(param),
        }
    }
    for param in new_params {
        mirror::insert_param(connection, run_id, &param.key, &param.value).await?;
    }
    for tag in tags {
        set_tag(connection, run_id, tag).await?;
    }
    match info.trial_id {
        Some(trial_id) => {
            let observations: Vec<Observation> = metrics
                .iter()
                .filter(|point| point.value.is_finite())
                .map(|point| Observation {
                    metric: point.key.clone(),
                    step: point.step,
                    value: point.value,
                    timestamp: point.timestamp,
                })
                .collect();
            insert_observations(connection, trial_id, &observations).await?;
            let others: Vec<&MetricPoint> = metrics
                .iter()
                .filter(|point| !point.value.is_finite())
                .collect();
            insert_run_metrics(connection, run_id, &others).await
        }
        None => {
            let all: Vec<&MetricPoint> = metrics.iter().collect();
            insert_run_metrics(connection, run_id, &all).await
        }
    }
}
