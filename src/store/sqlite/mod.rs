//! The embedded SQLite store: one file, WAL journal, migrations applied on open.
//!
//! # One thread owns the connection
//!
//! All work goes through a single connection, owned by a dedicated OS thread (`thread.rs`).
//! Each [`Store`] method is one job sent to that thread: its statements run there in one
//! transaction (prepared statements are cached), and the caller awaits the answer. An
//! operation therefore costs one hand-off between threads, not one per statement, and no
//! blocking I/O runs on the async threads. SQLite serialises writers anyway; one connection
//! means no `SQLITE_BUSY` between our own tasks. Reads take the same path, so a read sees
//! every write acknowledged before it. Other processes (a `tuneflow trials` reading while
//! `tuneflow run` writes) are fine under WAL, and wait up to [`BUSY_TIMEOUT`] for a lock
//! before the operation fails with "database is locked".
//!
//! # Checkpoints
//!
//! SQLite's automatic WAL checkpoint is off; `checkpoint.rs` copies the WAL back into the
//! database on a second thread with its own connection, so requests do not wait for the
//! copying (that module has the measurements behind the choice).
//!
//! # No group commit
//!
//! Committing several queued write jobs in one transaction (a savepoint each) was considered
//! and left out: there is nothing to group. Each experiment's calls are serialised by its
//! session before they reach the store, and in the ask/tell benchmark (4 workers, 20,000 jobs)
//! the store thread never found more than one job in its queue. A commit costs no fsync
//! under `synchronous=NORMAL` in WAL mode, so grouping would save little even then.
//!
//! # Schema
//!
//! The files in `migrations/sqlite/` are applied on open, counted in `PRAGMA user_version`
//! (`migrate.rs`).

mod checkpoint;
mod migrate;
mod mirror;
mod rows;
#[cfg(test)]
mod tests;
mod thread;
mod tracking;
mod views;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use self::rows::{
    EXPERIMENT_COLUMNS, Event, OBSERVATION_COLUMNS, TRIAL_COLUMNS, decode_spec, encode_spec,
    experiment_from_row, insert_observations, is_unique_violation, observation_from_row,
    trial_from_row,
};
pub use self::thread::BUSY_TIMEOUT;
use self::thread::{Access, StoreThread};
use super::codec::encode_new_trials;
use super::{
    CurvePoint, Experiment, ExperimentState, Micros, NewTrial, Observation, Store, StoreError,
    Trial, TrialCaps, TrialEvent, TrialOutcome, TrialState, TrialTally, already_finished,
    now_micros,
};
use crate::spec::ExperimentSpec;

/// The embedded store. Clones share the one connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    thread: Arc<StoreThread>,
}

impl SqliteStore {
    /// Opens the database at `path`, creating it (and its directory) when missing, and applies
    /// the migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Ok(SqliteStore {
            thread: Arc::new(StoreThread::start(path).await?),
        })
    }

    /// Runs a read-only job.
    async fn read<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
    {
        self.thread.call(Access::Read, work).await
    }

    /// Runs a job that writes.
    async fn write<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
    {
        self.thread.call(Access::Write, work).await
    }

    /// Runs a state change and records the events it returns in the same transaction: every
    /// state change is written together with its entries in the event log, or not at all.
    async fn change<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<(R, Vec<Event>), StoreError> + Send + 'static,
    {
        self.write(move |tx| {
            let (value, events) = work(tx)?;
            for event in &events {
                event.record(tx)?;
            }
            Ok(value)
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_experiment(
        &self,
        spec: &ExperimentSpec,
        document: &str,
        seed: u64,
    ) -> Result<Experiment, StoreError> {
        let spec_json = encode_spec(spec)?;
        let name = spec.name.clone();
        let document = document.to_string();
        let now = now_micros();
        let id = self
            .change(move |tx| {
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO experiments (name, spec, document, seed, state, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        name,
                        spec_json,
                        document,
                        seed as i64,
                        ExperimentState::Created.as_str(),
                        now
                    ]);
                match inserted {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        return Err(StoreError::AlreadyExists(name));
                    }
                    Err(e) => return Err(e.into()),
                }
                let id = tx.last_insert_rowid();
                mirror::experiment_created(tx, id, &name, now)?;
                let event = Event {
                    experiment_id: id,
                    trial_id: None,
                    kind: ExperimentState::Created.as_str(),
                    message: None,
                };
                Ok((id, vec![event]))
            })
            .await?;
        Ok(Experiment {
            id,
            name: spec.name.clone(),
            spec: spec.clone(),
            seed,
            state: ExperimentState::Created,
            reason: None,
            message: None,
            created_at: now,
            started_at: None,
            completed_at: None,
        })
    }

    async fn experiment(&self, name: &str) -> Result<Option<Experiment>, StoreError> {
        let name = name.to_string();
        self.read(move |tx| {
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = ?1"
            ))?;
            let mut rows = statement.query([&name])?;
            rows.next()?.map(experiment_from_row).transpose()
        })
        .await
    }

    async fn experiments(&self) -> Result<Vec<Experiment>, StoreError> {
        self.read(|tx| {
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY created_at, id"
            ))?;
            let mut rows = statement.query([])?;
            let mut experiments = Vec::new();
            while let Some(row) = rows.next()? {
                experiments.push(experiment_from_row(row)?);
            }
            Ok(experiments)
        })
        .await
    }

    async fn update_spec(
        &self,
        experiment_id: i64,
        spec: &ExperimentSpec,
        document: &str,
    ) -> Result<(), StoreError> {
        let spec_json = encode_spec(spec)?;
        let document = document.to_string();
        self.write(move |tx| {
            tx.prepare_cached("UPDATE experiments SET spec = ?1, document = ?2 WHERE id = ?3")?
                .execute(params![spec_json, document, experiment_id])?;
            Ok(())
        })
        .await
    }

    async fn delete_experiment(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |tx| {
            let deleted = tx
                .prepare_cached("DELETE FROM experiments WHERE name = ?1")?
                .execute([&name])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn set_experiment_state(
        &self,
        experiment_id: i64,
        state: ExperimentState,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_micros();
        let (started, completed): (Option<Micros>, Option<Micros>) = match state {
            ExperimentState::Running => (Some(now), None),
            ExperimentState::Succeeded | ExperimentState::Failed => (None, Some(now)),
            _ => (None, None),
        };
        let reason = reason.map(str::to_string);
        let message = message.map(str::to_string);
        self.change(move |tx| {
            tx.prepare_cached(
                "UPDATE experiments SET state = ?1, reason = ?2, message = ?3, \
                 started_at = COALESCE(?4, started_at), completed_at = ?5 WHERE id = ?6",
            )?
            .execute(params![
                state.as_str(),
                reason,
                message,
                started,
                completed,
                experiment_id
            ])?;
            mirror::experiment_state_set(tx, experiment_id, state, now)?;
            let event = Event {
                experiment_id,
                trial_id: None,
                kind: state.as_str(),
                message: message.or(reason),
            };
            Ok(((), vec![event]))
        })
        .await
    }

    async fn claim_experiment(
        &self,
        experiment_id: i64,
        owner: &str,
        is_alive: for<'a> fn(&'a str) -> bool,
    ) -> Result<Option<String>, StoreError> {
        let owner = owner.to_string();
        self.write(move |tx| {
            let current: Option<String> = tx
                .prepare_cached("SELECT owner FROM experiments WHERE id = ?1")?
                .query_row([experiment_id], |row| row.get(0))
                .optional()?
                .ok_or_else(|| missing_experiment(experiment_id))?;
            if let Some(current) = current
                && current != owner
                && is_alive(&current)
            {
                return Ok(Some(current));
            }
            tx.prepare_cached("UPDATE experiments SET owner = ?1 WHERE id = ?2")?
                .execute(params![owner, experiment_id])?;
            Ok(None)
        })
        .await
    }

    async fn release_experiment(&self, experiment_id: i64, owner: &str) -> Result<(), StoreError> {
        let owner = owner.to_string();
        self.write(move |tx| {
            tx.prepare_cached("UPDATE experiments SET owner = NULL WHERE id = ?1 AND owner = ?2")?
                .execute(params![experiment_id, owner])?;
            Ok(())
        })
        .await
    }

    async fn create_trials(
        &self,
        experiment_id: i64,
        spec: &ExperimentSpec,
        trials: &[NewTrial],
    ) -> Result<Vec<Trial>, StoreError> {
        let now = now_micros();
        let (rows, params) = encode_new_trials(spec, trials);
        let caps = TrialCaps::of(spec);
        let ids = self
            .change(move |tx| {
                let (total, unfinished): (i64, i64) = tx
                    .prepare_cached(
                        // Both read an index range, not every trial of the experiment:
                        // indices have no gaps, so the highest + 1 is the total.
                        "SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM trials WHERE experiment_id = ?1), \
                         (SELECT COUNT(*) FROM trials WHERE experiment_id = ?1 \
                          AND state IN ('Pending', 'Running'))",
                    )?
                    .query_row([experiment_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
                caps.check(total, unfinished, rows.len())?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO trials \
                     (experiment_id, idx, name, state, parameters, created_at, started_at, attempts) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                let mut ids = Vec::with_capacity(rows.len());
                let mut events = Vec::with_capacity(rows.len());
                let mut runs = Vec::with_capacity(rows.len());
                for ((index, name, state, parameters), params) in rows.iter().zip(params) {
                    let started = *state == TrialState::Running;
                    let inserted = insert.execute(params![
                        experiment_id,
                        index,
                        name,
                        state.as_str(),
                        parameters,
                        now,
                        started.then_some(now),
                        i64::from(started)
                    ]);
                    match inserted {
                        Ok(_) => {}
                        Err(e) if is_unique_violation(&e) => {
                            return Err(TrialCaps::taken(name));
                        }
                        Err(e) => return Err(e.into()),
                    }
                    let id = tx.last_insert_rowid();
                    ids.push(id);
                    runs.push(mirror::NewTrialRun {
                        trial_id: id,
                        name: name.clone(),
                        state: *state,
                        params,
                    });
                    events.push(Event {
                        experiment_id,
                        trial_id: Some(id),
                        kind: state.as_str(),
                        message: None,
                    });
                }
                mirror::trials_created(tx, experiment_id, &runs, now)?;
                Ok((ids, events))
            })
            .await?;
        Ok(trials
            .iter()
            .zip(ids)
            .map(|(trial, id)| trial.recorded(id, now))
            .collect())
    }

    async fn trial_count(&self, experiment_id: i64) -> Result<u64, StoreError> {
        let count: i64 = self
            .read(move |tx| {
                Ok(tx
                    .prepare_cached(
                        "SELECT COALESCE(MAX(idx) + 1, 0) FROM trials WHERE experiment_id = ?1",
                    )?
                    .query_row([experiment_id], |row| row.get(0))?)
            })
            .await?;
        Ok(count.max(0) as u64)
    }

    async fn trial(&self, experiment_id: i64, name: &str) -> Result<Option<Trial>, StoreError> {
        let name = name.to_string();
        self.read(move |tx| {
            let spec = spec_of(tx, experiment_id)?;
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {TRIAL_COLUMNS} FROM trials WHERE experiment_id = ?1 AND name = ?2"
            ))?;
            let mut rows = statement.query(params![experiment_id, name])?;
            match rows.next()? {
                Some(row) => Ok(Some(trial_from_row(&spec, row)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn trials(&self, experiment_id: i64) -> Result<Vec<Trial>, StoreError> {
        self.read(move |tx| {
            let spec = spec_of(tx, experiment_id)?;
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {TRIAL_COLUMNS} FROM trials WHERE experiment_id = ?1 ORDER BY idx"
            ))?;
            let mut rows = statement.query([experiment_id])?;
            let mut trials = Vec::new();
            while let Some(row) = rows.next()? {
                trials.push(trial_from_row(&spec, row)?);
            }
            Ok(trials)
        })
        .await
    }

    async fn start_trial(&self, trial_id: i64, experiment_id: i64) -> Result<(), StoreError> {
        let now = now_micros();
        self.change(move |tx| {
            tx.prepare_cached(
                "UPDATE trials SET state = ?1, started_at = ?2, attempts = attempts + 1, \
                 handle = NULL WHERE id = ?3",
            )?
            .execute(params![TrialState::Running.as_str(), now, trial_id])?;
            mirror::trial_started(tx, trial_id, now)?;
            let event = Event {
                experiment_id,
                trial_id: Some(trial_id),
                kind: TrialState::Running.as_str(),
                message: None,
            };
            Ok(((), vec![event]))
        })
        .await
    }

    async fn set_trial_handle(&self, trial_id: i64, handle: &str) -> Result<(), StoreError> {
        let handle = handle.to_string();
        self.write(move |tx| {
            tx.prepare_cached("UPDATE trials SET handle = ?1 WHERE id = ?2")?
                .execute(params![handle, trial_id])?;
            Ok(())
        })
        .await
    }

    async fn finish_trial(
        &self,
        trial_id: i64,
        experiment_id: i64,
        outcome: &TrialOutcome,
        observations: &[Observation],
    ) -> Result<(), StoreError> {
        let outcome = outcome.clone();
        let observations = observations.to_vec();
        let now = now_micros();
        self.change(move |tx| {
            let (name, state): (String, String) = tx
                .prepare_cached("SELECT name, state FROM trials WHERE id = ?1")?
                .query_row([trial_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?
                .ok_or_else(|| StoreError::Missing {
                    what: "trial",
                    key: trial_id.to_string(),
                })?;
            let state: TrialState = state.parse()?;
            if state.is_final() {
                return Err(already_finished(&name, state));
            }
            insert_observations(tx, trial_id, &observations)?;
            tx.prepare_cached(
                "UPDATE trials SET state = ?1, objective = ?2, message = ?3, completed_at = ?4, \
                 handle = NULL, step = ?5 WHERE id = ?6",
            )?
            .execute(params![
                outcome.state.as_str(),
                outcome.objective,
                outcome.message,
                now,
                outcome.step,
                trial_id
            ])?;
            mirror::trial_finished(tx, trial_id, outcome.state, now)?;
            let event = Event {
                experiment_id,
                trial_id: Some(trial_id),
                kind: outcome.state.as_str(),
                message: outcome.message,
            };
            Ok(((), vec![event]))
        })
        .await
    }

    async fn requeue_trial(&self, trial_id: i64, experiment_id: i64) -> Result<(), StoreError> {
        self.change(move |tx| {
            tx.prepare_cached("DELETE FROM observations WHERE trial_id = ?1")?
                .execute([trial_id])?;
            tx.prepare_cached(
                "UPDATE trials SET state = ?1, objective = NULL, message = NULL, \
                 started_at = NULL, completed_at = NULL, handle = NULL, step = NULL WHERE id = ?2",
            )?
            .execute(params![TrialState::Pending.as_str(), trial_id])?;
            mirror::trial_requeued(tx, trial_id)?;
            let event = Event {
                experiment_id,
                trial_id: Some(trial_id),
                kind: TrialState::Pending.as_str(),
                message: Some("requeued after an interruption".to_string()),
            };
            Ok(((), vec![event]))
        })
        .await
    }

    async fn add_observations(
        &self,
        trial_id: i64,
        observations: &[Observation],
    ) -> Result<(), StoreError> {
        if observations.is_empty() {
            return Ok(());
        }
        let observations = observations.to_vec();
        self.write(move |tx| insert_observations(tx, trial_id, &observations))
            .await
    }

    async fn observations(
        &self,
        trial_id: i64,
        metric: Option<&str>,
    ) -> Result<Vec<Observation>, StoreError> {
        let metric = metric.map(str::to_string);
        self.read(move |tx| {
            let mut statement;
            let mut rows = match &metric {
                Some(metric) => {
                    statement = tx.prepare_cached(&format!(
                        "SELECT {OBSERVATION_COLUMNS} FROM observations \
                         WHERE trial_id = ?1 AND metric = ?2 ORDER BY step, timestamp, rowid"
                    ))?;
                    statement.query(params![trial_id, metric])?
                }
                None => {
                    statement = tx.prepare_cached(&format!(
                        "SELECT {OBSERVATION_COLUMNS} FROM observations \
                         WHERE trial_id = ?1 ORDER BY step, timestamp, rowid"
                    ))?;
                    statement.query([trial_id])?
                }
            };
            let mut observations = Vec::new();
            while let Some(row) = rows.next()? {
                observations.push(observation_from_row(row)?);
            }
            Ok(observations)
        })
        .await
    }

    async fn tally(
        &self,
        experiment_id: i64,
        direction: tuneflow_algorithms::Direction,
    ) -> Result<TrialTally, StoreError> {
        self.read(move |tx| views::tally(tx, experiment_id, direction))
            .await
    }

    async fn document(&self, experiment_id: i64) -> Result<Option<String>, StoreError> {
        self.read(move |tx| views::document(tx, experiment_id))
            .await
    }

    async fn trials_changed_since(
        &self,
        experiment_id: i64,
        since: Micros,
    ) -> Result<Vec<Trial>, StoreError> {
        self.read(move |tx| views::trials_changed_since(tx, experiment_id, since))
            .await
    }

    async fn curves(
        &self,
        experiment_id: i64,
        metric: &str,
        trials: Option<&[u64]>,
    ) -> Result<Vec<CurvePoint>, StoreError> {
        let metric = metric.to_string();
        let trials = trials.map(<[u64]>::to_vec);
        self.read(move |tx| views::curves(tx, experiment_id, &metric, trials.as_deref()))
            .await
    }

    async fn trial_events(&self, trial_id: i64) -> Result<Vec<TrialEvent>, StoreError> {
        self.read(move |tx| views::trial_events(tx, trial_id)).await
    }

    async fn request_stop(&self, experiment_id: i64, message: &str) -> Result<(), StoreError> {
        let event = views::stop_event(experiment_id, message);
        self.change(move |tx| {
            spec_of(tx, experiment_id)?;
            Ok(((), vec![event]))
        })
        .await
    }

    async fn stop_requested(
        &self,
        experiment_id: i64,
        since: Micros,
    ) -> Result<Option<Micros>, StoreError> {
        self.read(move |tx| views::stop_requested(tx, experiment_id, since))
            .await
    }
}

/// The error for an experiment id that is not in the store.
/// The decoded spec of experiment `experiment_id`.
fn spec_of(tx: &Transaction<'_>, experiment_id: i64) -> Result<ExperimentSpec, StoreError> {
    let spec: String = tx
        .prepare_cached("SELECT spec FROM experiments WHERE id = ?1")?
        .query_row([experiment_id], |row| row.get(0))
        .optional()?
        .ok_or_else(|| missing_experiment(experiment_id))?;
    decode_spec(&spec)
}

fn missing_experiment(experiment_id: i64) -> StoreError {
    StoreError::Query(format!("no experiment with id {experiment_id} in the store").into())
}
