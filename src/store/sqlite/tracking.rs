//! [`Tracking`] on the SQLite store: MLflow's experiments and runs, in the tables of migration
//! `0004_tracking`.
//!
//! A trial's run keeps its finite metric values as the trial's observations and the others in
//! `run_metrics`; the history of a metric reads both. The latest value of every metric of
//! every run is a row of `run_latest_metrics`, kept by triggers on both tables, so listing
//! runs costs one row per metric however long the histories are. Listing runs reads four
//! indexed queries per experiment (runs, params, tags, latest metrics) and joins them in
//! memory.
//!
//! The rules the trait states (active-only changes, the Default experiment, write-once
//! params) are checked here, inside each method's transaction. `runs` lists each
//! experiment's runs newest start first (runs not started yet last).

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::mirror::{self, RunRow};
use super::rows::{insert_observations, is_unique_violation};
use crate::store::tracking::{
    DEFAULT_EXPERIMENT_ID, KeyValue, Lifecycle, MetricPoint, NewRun, RUN_NAME_TAG, Run, RunInfo,
    RunStatus, RunUpdate, Tracking, TrackingExperiment, lifecycle, missing_experiment, missing_run,
    new_run_id, param_conflict, require_active, run_artifact_uri, same_param,
};
use crate::store::{Observation, StoreError, now_micros};

/// The columns [`experiment_from_row`] reads, in its order.
const EXPERIMENT_COLUMNS: &str =
    "id, name, artifact_location, lifecycle, created_at, updated_at, experiment_id";

/// The columns [`run_info_from_row`] reads, in its order.
const RUN_COLUMNS: &str = "run_uuid, experiment_id, name, user_id, status, lifecycle, \
     start_time, end_time, artifact_uri, trial_id";

/// Reads a row of [`EXPERIMENT_COLUMNS`]; its tags are added by the caller.
fn experiment_from_row(row: &Row<'_>) -> Result<TrackingExperiment, StoreError> {
    let stage: String = row.get(3)?;
    Ok(TrackingExperiment {
        id: row.get(0)?,
        name: row.get(1)?,
        artifact_location: row.get(2)?,
        lifecycle: lifecycle(&stage)?,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
        tags: Vec::new(),
        experiment_id: row.get(6)?,
    })
}

/// Reads a row of [`RUN_COLUMNS`].
fn run_info_from_row(row: &Row<'_>) -> Result<RunInfo, StoreError> {
    let status: String = row.get(4)?;
    let stage: String = row.get(5)?;
    Ok(RunInfo {
        run_id: row.get(0)?,
        experiment_id: row.get(1)?,
        name: row.get(2)?,
        user_id: row.get(3)?,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown run status `{status}`")))?,
        lifecycle: lifecycle(&stage)?,
        start_time: row.get(6)?,
        end_time: row.get(7)?,
        artifact_uri: row.get(8)?,
        trial_id: row.get(9)?,
    })
}

/// Reads `key, step, timestamp, value, is_nan` from column `first` on.
fn metric_from_row(row: &Row<'_>, first: usize) -> Result<MetricPoint, StoreError> {
    let value: Option<f64> = row.get(first + 3)?;
    let is_nan: bool = row.get(first + 4)?;
    Ok(MetricPoint {
        key: row.get(first)?,
        step: row.get(first + 1)?,
        timestamp: row.get(first + 2)?,
        value: if is_nan {
            f64::NAN
        } else {
            value.unwrap_or(f64::NAN)
        },
    })
}

/// The tracking experiment `id` with its tags, if any.
fn experiment(connection: &Connection, id: i64) -> Result<Option<TrackingExperiment>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM tracking_experiments WHERE id = ?1"
    ))?;
    let mut rows = statement.query([id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let mut experiment = experiment_from_row(row)?;
    experiment.tags = key_values(
        connection,
        "SELECT key, value FROM tracking_experiment_tags WHERE experiment_id = ?1 ORDER BY key",
        id,
    )?;
    Ok(Some(experiment))
}

/// The pairs `sql` selects with one parameter.
fn key_values(
    connection: &Connection,
    sql: &str,
    parameter: impl rusqlite::ToSql,
) -> Result<Vec<KeyValue>, StoreError> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query([parameter])?;
    let mut pairs = Vec::new();
    while let Some(row) = rows.next()? {
        pairs.push(KeyValue {
            key: row.get(0)?,
            value: row.get(1)?,
        });
    }
    Ok(pairs)
}

/// The lifecycle and link of experiment `id`; missing is an error.
fn experiment_state(
    connection: &Connection,
    id: i64,
) -> Result<(Lifecycle, Option<i64>), StoreError> {
    let (stage, linked): (String, Option<i64>) = connection
        .prepare_cached("SELECT lifecycle, experiment_id FROM tracking_experiments WHERE id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .ok_or_else(|| missing_experiment(id))?;
    Ok((lifecycle(&stage)?, linked))
}

/// Fails unless experiment `id` exists and is active; `doing` says what was refused.
fn active_experiment(connection: &Connection, id: i64, doing: &str) -> Result<(), StoreError> {
    require_active(
        experiment_state(connection, id)?.0,
        &format!("tracking experiment {id}"),
        doing,
    )
}

/// The info of run `run_id`; missing is an error.
fn run_info(connection: &Connection, run_id: &str) -> Result<RunInfo, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE run_uuid = ?1"
    ))?;
    let mut rows = statement.query([run_id])?;
    match rows.next()? {
        Some(row) => run_info_from_row(row),
        None => Err(missing_run(run_id)),
    }
}

/// The info of run `run_id`, which must be active; `doing` says what was refused.
fn active_run(connection: &Connection, run_id: &str, doing: &str) -> Result<RunInfo, StoreError> {
    let info = run_info(connection, run_id)?;
    require_active(info.lifecycle, &format!("run {run_id}"), doing)?;
    Ok(info)
}

/// Inserts a metric value into `run_metrics`, NaN as `is_nan` (SQLite would store a NaN REAL
/// as NULL).
fn insert_run_metric(
    connection: &Connection,
    run_id: &str,
    point: &MetricPoint,
) -> Result<(), StoreError> {
    let is_nan = point.value.is_nan();
    connection
        .prepare_cached(
            "INSERT INTO run_metrics (run_uuid, key, step, timestamp, value, is_nan) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            run_id,
            point.key,
            point.step,
            point.timestamp,
            (!is_nan).then_some(point.value),
            is_nan
        ])?;
    Ok(())
}

/// Sets a run's tag; the `mlflow.runName` tag renames the run, as in MLflow.
fn set_tag(connection: &Connection, run_id: &str, tag: &KeyValue) -> Result<(), StoreError> {
    mirror::set_run_tag(connection, run_id, &tag.key, &tag.value)?;
    if tag.key == RUN_NAME_TAG {
        connection
            .prepare_cached("UPDATE runs SET name = ?1 WHERE run_uuid = ?2")?
            .execute(params![tag.value, run_id])?;
    }
    Ok(())
}

/// The runs of `experiment_id`, newest start first, with their params, tags and latest
/// metrics, appended to `runs`.
fn experiment_runs(
    connection: &Connection,
    experiment_id: i64,
    runs: &mut Vec<Run>,
) -> Result<(), StoreError> {
    let first = runs.len();
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE experiment_id = ?1 \
         ORDER BY start_time DESC, run_uuid"
    ))?;
    let mut rows = statement.query([experiment_id])?;
    while let Some(row) = rows.next()? {
        runs.push(Run {
            info: run_info_from_row(row)?,
            params: Vec::new(),
            tags: Vec::new(),
            metrics: Vec::new(),
        });
    }
    if runs.len() == first {
        return Ok(());
    }
    let index: HashMap<String, usize> = runs[first..]
        .iter()
        .enumerate()
        .map(|(i, run)| (run.info.run_id.clone(), first + i))
        .collect();
    let position = |row: &Row<'_>| -> Result<usize, StoreError> {
        let run_id = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        index
            .get(run_id)
            .copied()
            .ok_or_else(|| StoreError::Corrupt(format!("rows of unknown run {run_id}")))
    };
    for (table, is_params) in [("run_params", true), ("run_tags", false)] {
        let mut statement = connection.prepare_cached(&format!(
            "SELECT d.run_uuid, d.key, d.value FROM runs r JOIN {table} d ON d.run_uuid = r.run_uuid \
             WHERE r.experiment_id = ?1"
        ))?;
        let mut rows = statement.query([experiment_id])?;
        while let Some(row) = rows.next()? {
            let run = &mut runs[position(row)?];
            let pair = KeyValue {
                key: row.get(1)?,
                value: row.get(2)?,
            };
            if is_params {
                run.params.push(pair);
            } else {
                run.tags.push(pair);
            }
        }
    }
    let mut statement = connection.prepare_cached(
        "SELECT m.run_uuid, m.key, m.step, m.timestamp, m.value, m.is_nan \
         FROM runs r JOIN run_latest_metrics m ON m.run_uuid = r.run_uuid \
         WHERE r.experiment_id = ?1",
    )?;
    let mut rows = statement.query([experiment_id])?;
    while let Some(row) = rows.next()? {
        let at = position(row)?;
        runs[at].metrics.push(metric_from_row(row, 1)?);
    }
    // The joins read each run's rows in key order (primary keys); this keeps the promise
    // whatever plan SQLite picks.
    for run in &mut runs[first..] {
        if !run.params.is_sorted_by(|a, b| a.key <= b.key) {
            run.params.sort_by(|a, b| a.key.cmp(&b.key));
        }
        if !run.tags.is_sorted_by(|a, b| a.key <= b.key) {
            run.tags.sort_by(|a, b| a.key.cmp(&b.key));
        }
        if !run.metrics.is_sorted_by(|a, b| a.key <= b.key) {
            run.metrics.sort_by(|a, b| a.key.cmp(&b.key));
        }
    }
    Ok(())
}

/// Run `run_id` with its params, tags and latest metrics, if any.
fn full_run(connection: &Connection, run_id: &str) -> Result<Option<Run>, StoreError> {
    let info = match run_info(connection, run_id) {
        Ok(info) => info,
        Err(StoreError::Missing { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let params = key_values(
        connection,
        "SELECT key, value FROM run_params WHERE run_uuid = ?1 ORDER BY key",
        run_id,
    )?;
    let tags = key_values(
        connection,
        "SELECT key, value FROM run_tags WHERE run_uuid = ?1 ORDER BY key",
        run_id,
    )?;
    let mut statement = connection.prepare_cached(
        "SELECT key, step, timestamp, value, is_nan FROM run_latest_metrics \
         WHERE run_uuid = ?1 ORDER BY key",
    )?;
    let mut rows = statement.query([run_id])?;
    let mut metrics = Vec::new();
    while let Some(row) = rows.next()? {
        metrics.push(metric_from_row(row, 0)?);
    }
    Ok(Some(Run {
        info,
        params,
        tags,
        metrics,
    }))
}

#[async_trait]
impl Tracking for SqliteStore {
    async fn create_tracking_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<TrackingExperiment, StoreError> {
        let name = name.to_string();
        let artifact_location = artifact_location.map(str::to_string);
        let tags = tags.to_vec();
        let now = now_micros();
        self.write(move |tx| {
            let id =
                mirror::insert_tracking_experiment(tx, &name, artifact_location.as_deref(), now)?;
            for tag in &tags {
                tx.prepare_cached(
                    "INSERT INTO tracking_experiment_tags (experiment_id, key, value) \
                     VALUES (?1, ?2, ?3) \
                     ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![id, tag.key, tag.value])?;
            }
            experiment(tx, id)?.ok_or_else(|| missing_experiment(id))
        })
        .await
    }

    async fn tracking_experiment(&self, id: i64) -> Result<Option<TrackingExperiment>, StoreError> {
        self.read(move |tx| experiment(tx, id)).await
    }

    async fn tracking_experiment_by_name(
        &self,
        name: &str,
    ) -> Result<Option<TrackingExperiment>, StoreError> {
        let name = name.to_string();
        self.read(move |tx| {
            let id: Option<i64> = tx
                .prepare_cached("SELECT id FROM tracking_experiments WHERE name = ?1")?
                .query_row([&name], |row| row.get(0))
                .optional()?;
            match id {
                Some(id) => experiment(tx, id),
                None => Ok(None),
            }
        })
        .await
    }

    async fn tracking_experiments(&self) -> Result<Vec<TrackingExperiment>, StoreError> {
        self.read(|tx| {
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM tracking_experiments ORDER BY id"
            ))?;
            let mut rows = statement.query([])?;
            let mut experiments = Vec::new();
            let mut index = HashMap::new();
            while let Some(row) = rows.next()? {
                let experiment = experiment_from_row(row)?;
                index.insert(experiment.id, experiments.len());
                experiments.push(experiment);
            }
            let mut statement = tx.prepare_cached(
                "SELECT experiment_id, key, value FROM tracking_experiment_tags \
                 ORDER BY experiment_id, key",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                if let Some(&at) = index.get(&id) {
                    experiments[at].tags.push(KeyValue {
                        key: row.get(1)?,
                        value: row.get(2)?,
                    });
                }
            }
            Ok(experiments)
        })
        .await
    }

    async fn rename_tracking_experiment(&self, id: i64, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        let now = now_micros();
        self.write(move |tx| {
            let (stage, linked) = experiment_state(tx, id)?;
            require_active(stage, &format!("tracking experiment {id}"), "rename")?;
            let current: String = tx
                .prepare_cached("SELECT name FROM tracking_experiments WHERE id = ?1")?
                .query_row([id], |row| row.get(0))?;
            if current == name {
                return Ok(());
            }
            if linked.is_some() {
                return Err(StoreError::Conflict(format!(
                    "cannot rename tracking experiment {id}: it is tuneflow experiment \
                     `{current}`, which keeps its name"
                )));
            }
            let renamed = tx
                .prepare_cached(
                    "UPDATE tracking_experiments SET name = ?1, updated_at = ?2 WHERE id = ?3",
                )?
                .execute(params![name, now, id]);
            match renamed {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists(name)),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn set_tracking_experiment_lifecycle(
        &self,
        id: i64,
        lifecycle: Lifecycle,
    ) -> Result<(), StoreError> {
        let now = now_micros();
        self.write(move |tx| {
            let (current, _) = experiment_state(tx, id)?;
            if current == lifecycle {
                return Ok(());
            }
            if id == DEFAULT_EXPERIMENT_ID && lifecycle == Lifecycle::Deleted {
                return Err(StoreError::Conflict(format!(
                    "the Default experiment (id {DEFAULT_EXPERIMENT_ID}) cannot be deleted: \
                     runs that name no experiment go there"
                )));
            }
            tx.prepare_cached(
                "UPDATE tracking_experiments SET lifecycle = ?1, updated_at = ?2 WHERE id = ?3",
            )?
            .execute(params![lifecycle.as_str(), now, id])?;
            tx.prepare_cached("UPDATE runs SET lifecycle = ?1 WHERE experiment_id = ?2")?
                .execute(params![lifecycle.as_str(), id])?;
            Ok(())
        })
        .await
    }

    async fn set_tracking_experiment_tag(&self, id: i64, tag: &KeyValue) -> Result<(), StoreError> {
        let tag = tag.clone();
        self.write(move |tx| {
            active_experiment(tx, id, "tag")?;
            tx.prepare_cached(
                "INSERT INTO tracking_experiment_tags (experiment_id, key, value) \
                 VALUES (?1, ?2, ?3) \
                 ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![id, tag.key, tag.value])?;
            Ok(())
        })
        .await
    }

    async fn create_run(&self, run: &NewRun) -> Result<RunInfo, StoreError> {
        let run = run.clone();
        self.write(move |tx| {
            active_experiment(tx, run.experiment_id, "create a run in")?;
            let location: String = tx
                .prepare_cached("SELECT artifact_location FROM tracking_experiments WHERE id = ?1")?
                .query_row([run.experiment_id], |row| row.get(0))?;
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
            .insert(tx)?;
            for tag in run.tags.iter().filter(|tag| tag.key != RUN_NAME_TAG) {
                mirror::set_run_tag(tx, &run_id, &tag.key, &tag.value)?;
            }
            mirror::set_run_tag(tx, &run_id, RUN_NAME_TAG, &run.name)?;
            run_info(tx, &run_id)
        })
        .await
    }

    async fn run(&self, run_id: &str) -> Result<Option<Run>, StoreError> {
        let run_id = run_id.to_string();
        self.read(move |tx| full_run(tx, &run_id)).await
    }

    async fn runs(&self, experiment_ids: &[i64]) -> Result<Vec<Run>, StoreError> {
        let mut ids = experiment_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        self.read(move |tx| {
            let mut runs = Vec::new();
            for id in ids {
                experiment_runs(tx, id, &mut runs)?;
            }
            Ok(runs)
        })
        .await
    }

    async fn update_run(&self, run_id: &str, update: &RunUpdate) -> Result<RunInfo, StoreError> {
        let run_id = run_id.to_string();
        let update = update.clone();
        self.write(move |tx| {
            let info = active_run(tx, &run_id, "update")?;
            let status = update.status.filter(|_| info.trial_id.is_none());
            tx.prepare_cached(
                "UPDATE runs SET status = COALESCE(?1, status), end_time = COALESCE(?2, end_time), \
                 name = COALESCE(?3, name) WHERE run_uuid = ?4",
            )?
            .execute(params![
                status.map(RunStatus::as_str),
                update.end_time,
                update.name,
                run_id
            ])?;
            if let Some(name) = &update.name {
                mirror::set_run_tag(tx, &run_id, RUN_NAME_TAG, name)?;
            }
            run_info(tx, &run_id)
        })
        .await
    }

    async fn set_run_lifecycle(
        &self,
        run_id: &str,
        lifecycle: Lifecycle,
    ) -> Result<(), StoreError> {
        let run_id = run_id.to_string();
        self.write(move |tx| {
            let updated = tx
                .prepare_cached("UPDATE runs SET lifecycle = ?1 WHERE run_uuid = ?2")?
                .execute(params![lifecycle.as_str(), run_id])?;
            if updated == 0 {
                return Err(missing_run(&run_id));
            }
            Ok(())
        })
        .await
    }

    async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[MetricPoint],
        params: &[KeyValue],
        tags: &[KeyValue],
    ) -> Result<(), StoreError> {
        let run_id = run_id.to_string();
        let metrics = metrics.to_vec();
        let params = params.to_vec();
        let tags = tags.to_vec();
        self.write(move |tx| {
            let info = active_run(tx, &run_id, "log to")?;
            let trial = info.trial_id.is_some();
            // Params first: a conflict fails the batch before anything is written (the
            // transaction would roll it back anyway).
            let mut new_params: Vec<&KeyValue> = Vec::new();
            for param in &params {
                if let Some(earlier) = new_params.iter().find(|p| p.key == param.key) {
                    if same_param(trial, &earlier.value, &param.value) {
                        continue;
                    }
                    return Err(StoreError::Conflict(format!(
                        "param `{}` is given twice in the batch for run {run_id}, as `{}` and `{}`",
                        param.key, earlier.value, param.value
                    )));
                }
                let stored: Option<String> = tx
                    .prepare_cached(
                        "SELECT value FROM run_params WHERE run_uuid = ?1 AND key = ?2",
                    )?
                    .query_row(params![run_id, param.key], |row| row.get(0))
                    .optional()?;
                match stored {
                    Some(old) if same_param(trial, &old, &param.value) => {}
                    Some(old) => {
                        return Err(param_conflict(&run_id, &param.key, &old, &param.value));
                    }
                    None => new_params.push(param),
                }
            }
            for param in new_params {
                mirror::insert_param(tx, &run_id, &param.key, &param.value)?;
            }
            for tag in &tags {
                set_tag(tx, &run_id, tag)?;
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
                    insert_observations(tx, trial_id, &observations)?;
                    for point in metrics.iter().filter(|point| !point.value.is_finite()) {
                        insert_run_metric(tx, &run_id, point)?;
                    }
                }
                None => {
                    for point in &metrics {
                        insert_run_metric(tx, &run_id, point)?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<bool, StoreError> {
        let run_id = run_id.to_string();
        let key = key.to_string();
        self.write(move |tx| {
            active_run(tx, &run_id, "delete a tag of")?;
            let deleted = tx
                .prepare_cached("DELETE FROM run_tags WHERE run_uuid = ?1 AND key = ?2")?
                .execute(params![run_id, key])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
    ) -> Result<Vec<MetricPoint>, StoreError> {
        let run_id = run_id.to_string();
        let key = key.to_string();
        self.read(move |tx| {
            let info = run_info(tx, &run_id)?;
            let mut statement = tx.prepare_cached(
                "SELECT key, step, timestamp, value, is_nan, 0 AS source, rowid FROM run_metrics \
                 WHERE run_uuid = ?1 AND key = ?2 \
                 UNION ALL \
                 SELECT metric, step, timestamp, value, 0, 1, rowid FROM observations \
                 WHERE trial_id = ?3 AND metric = ?2 \
                 ORDER BY 2, 3, 6, 7",
            )?;
            let mut rows = statement.query(params![run_id, key, info.trial_id])?;
            let mut points = Vec::new();
            while let Some(row) = rows.next()? {
                points.push(metric_from_row(row, 0)?);
            }
            Ok(points)
        })
        .await
    }

    async fn trial_run_id(&self, trial_id: i64) -> Result<Option<String>, StoreError> {
        self.read(move |tx| {
            Ok(tx
                .prepare_cached("SELECT run_uuid FROM runs WHERE trial_id = ?1")?
                .query_row([trial_id], |row| row.get(0))
                .optional()?)
        })
        .await
    }
}
