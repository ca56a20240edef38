//! The embedded SQLite store: one file, WAL journal, migrations applied on open.
//!
//! All work goes through a single connection. SQLite serialises writers anyway, and one
//! connection means no `SQLITE_BUSY` between our own tasks; other processes (a second
//! `tuneflow trials` reading while `tuneflow run` writes) are fine under WAL, and wait up to
//! [`BUSY_TIMEOUT`] for a lock before the query fails with "database is locked".

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use tuneflow_algorithms::{Assignment, ParameterValue};

use super::{
    Experiment, ExperimentState, Micros, NewTrial, Observation, Store, StoreError, Trial,
    TrialOutcome, TrialState, now_micros,
};
use crate::spec::ExperimentSpec;

/// How long a query waits for another process's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows per multi-row observation insert (5 values each, well under SQLite's 32,766 bound
/// parameters per statement).
const OBSERVATIONS_PER_INSERT: usize = 1000;

/// The embedded store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens the database at `path`, creating it (and its directory) when missing, and applies
    /// the migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let location = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                location: location.clone(),
                source: sqlx::Error::Io(e),
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                location: location.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    async fn spec_of(&self, experiment_id: i64) -> Result<ExperimentSpec, StoreError> {
        let row = sqlx::query("SELECT spec FROM experiments WHERE id = $1")
            .bind(experiment_id)
            .fetch_one(&self.pool)
            .await?;
        serde_json::from_str(&row.try_get::<String, _>("spec")?)
            .map_err(|e| StoreError::Corrupt(format!("experiment spec: {e}")))
    }

    /// Records `event` in `tx` and commits: every state change is written together with its
    /// entry in the event log, or not at all.
    async fn commit_with(
        mut tx: Transaction<'_, Sqlite>,
        event: Event<'_>,
    ) -> Result<(), StoreError> {
        event.record(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// One entry of the event log: a state change of an experiment or of one of its trials.
struct Event<'a> {
    experiment_id: i64,
    trial_id: Option<i64>,
    kind: &'a str,
    message: Option<&'a str>,
}

impl Event<'_> {
    async fn record(&self, tx: &mut Transaction<'_, Sqlite>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO events (experiment_id, trial_id, timestamp, kind, message) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.experiment_id)
        .bind(self.trial_id)
        .bind(now_micros())
        .bind(self.kind.to_string())
        .bind(self.message.map(str::to_string))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// Inserts observations with multi-row statements: one per chunk instead of one per row.
async fn insert_observations(
    tx: &mut Transaction<'_, Sqlite>,
    trial_id: i64,
    observations: &[Observation],
) -> Result<(), StoreError> {
    for chunk in observations.chunks(OBSERVATIONS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO observations (trial_id, metric, step, value, timestamp) ",
        );
        insert.push_values(chunk, |mut row, observation| {
            row.push_bind(trial_id)
                .push_bind(observation.metric.clone())
                .push_bind(observation.step)
                .push_bind(observation.value)
                .push_bind(observation.timestamp);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

fn experiment_from_row(row: &SqliteRow) -> Result<Experiment, StoreError> {
    let spec_json: String = row.try_get("spec")?;
    let spec: ExperimentSpec = serde_json::from_str(&spec_json)
        .map_err(|e| StoreError::Corrupt(format!("experiment spec: {e}")))?;
    let seed: i64 = row.try_get("seed")?;
    let state: String = row.try_get("state")?;
    Ok(Experiment {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        spec,
        seed: seed as u64,
        state: ExperimentState::from_str(&state)?,
        reason: row.try_get("reason")?,
        message: row.try_get("message")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

/// Encodes an assignment as a JSON object in space order.
fn encode_assignment(spec: &ExperimentSpec, assignment: &Assignment) -> String {
    let object: serde_json::Map<String, serde_json::Value> = spec
        .space
        .parameters
        .iter()
        .zip(assignment)
        .map(|(p, v)| {
            (
                p.name.clone(),
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// Decodes a stored JSON object back into an assignment in space order.
fn decode_assignment(spec: &ExperimentSpec, json: &str) -> Result<Assignment, StoreError> {
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("trial parameters: {e}")))?;
    spec.space
        .parameters
        .iter()
        .map(|p| {
            let value = object.remove(&p.name).ok_or_else(|| {
                StoreError::Corrupt(format!("trial parameters lack `{}`", p.name))
            })?;
            serde_json::from_value::<ParameterValue>(value)
                .map_err(|e| StoreError::Corrupt(format!("trial parameter `{}`: {e}", p.name)))
        })
        .collect()
}

fn trial_from_row(spec: &ExperimentSpec, row: &SqliteRow) -> Result<Trial, StoreError> {
    let state: String = row.try_get("state")?;
    let parameters: String = row.try_get("parameters")?;
    let index: i64 = row.try_get("idx")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(Trial {
        id: row.try_get("id")?,
        index: index as u64,
        name: row.try_get("name")?,
        state: TrialState::from_str(&state)?,
        assignment: decode_assignment(spec, &parameters)?,
        objective: row.try_get("objective")?,
        message: row.try_get("message")?,
        attempts: attempts as u32,
        handle: row.try_get("handle")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_experiment(
        &self,
        spec: &ExperimentSpec,
        document: &str,
        seed: u64,
    ) -> Result<Experiment, StoreError> {
        let spec_json = serde_json::to_string(spec)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode spec: {e}")))?;
        let now = now_micros();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO experiments (name, spec, document, seed, state, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(spec.name.clone())
        .bind(spec_json)
        .bind(document.to_string())
        .bind(seed as i64)
        .bind(ExperimentState::Created.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await;
        let id = match inserted {
            Ok(result) => result.last_insert_rowid(),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::AlreadyExists(spec.name.clone()));
            }
            Err(e) => return Err(e.into()),
        };
        let event = Event {
            experiment_id: id,
            trial_id: None,
            kind: ExperimentState::Created.as_str(),
            message: None,
        };
        Self::commit_with(tx, event).await?;
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
        let row = sqlx::query("SELECT * FROM experiments WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(experiment_from_row).transpose()
    }

    async fn experiments(&self) -> Result<Vec<Experiment>, StoreError> {
        let rows = sqlx::query("SELECT * FROM experiments ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(experiment_from_row).collect()
    }

    async fn update_spec(
        &self,
        experiment_id: i64,
        spec: &ExperimentSpec,
        document: &str,
    ) -> Result<(), StoreError> {
        let spec_json = serde_json::to_string(spec)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode spec: {e}")))?;
        sqlx::query("UPDATE experiments SET spec = $1, document = $2 WHERE id = $3")
            .bind(spec_json)
            .bind(document.to_string())
            .bind(experiment_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_experiment(&self, name: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM experiments WHERE name = $1")
            .bind(name.to_string())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE experiments SET state = $1, reason = $2, message = $3, \
             started_at = COALESCE($4, started_at), \
             completed_at = CASE WHEN $1 IN ('Succeeded', 'Failed') THEN $5 ELSE NULL END \
             WHERE id = $6",
        )
        .bind(state.as_str())
        .bind(reason.map(str::to_string))
        .bind(message.map(str::to_string))
        .bind(started)
        .bind(completed)
        .bind(experiment_id)
        .execute(&mut *tx)
        .await?;
        let event = Event {
            experiment_id,
            trial_id: None,
            kind: state.as_str(),
            message: message.or(reason),
        };
        Self::commit_with(tx, event).await
    }

    async fn claim_experiment(
        &self,
        experiment_id: i64,
        owner: &str,
        is_alive: for<'a> fn(&'a str) -> bool,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current: Option<String> = sqlx::query("SELECT owner FROM experiments WHERE id = $1")
            .bind(experiment_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("owner")?;
        if let Some(current) = current
            && current != owner
            && is_alive(&current)
        {
            return Ok(Some(current));
        }
        sqlx::query("UPDATE experiments SET owner = $1 WHERE id = $2")
            .bind(owner.to_string())
            .bind(experiment_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(None)
    }

    async fn release_experiment(&self, experiment_id: i64, owner: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE experiments SET owner = NULL WHERE id = $1 AND owner = $2")
            .bind(experiment_id)
            .bind(owner.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_trials(
        &self,
        experiment_id: i64,
        spec: &ExperimentSpec,
        trials: &[NewTrial],
    ) -> Result<Vec<Trial>, StoreError> {
        let now = now_micros();
        let mut tx = self.pool.begin().await?;
        let mut created = Vec::with_capacity(trials.len());
        for trial in trials {
            let started = trial.state == TrialState::Running;
            let values = encode_assignment(spec, &trial.assignment);
            let result = sqlx::query(
                "INSERT INTO trials (experiment_id, idx, name, state, parameters, created_at, started_at, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(experiment_id)
            .bind(trial.index as i64)
            .bind(trial.name.clone())
            .bind(trial.state.as_str())
            .bind(values)
            .bind(now)
            .bind(started.then_some(now))
            .bind(i64::from(started))
            .execute(&mut *tx)
            .await?;
            let id = result.last_insert_rowid();
            Event {
                experiment_id,
                trial_id: Some(id),
                kind: trial.state.as_str(),
                message: None,
            }
            .record(&mut tx)
            .await?;
            created.push(Trial {
                id,
                index: trial.index,
                name: trial.name.clone(),
                state: trial.state,
                assignment: trial.assignment.clone(),
                objective: None,
                message: None,
                attempts: u32::from(started),
                handle: None,
                created_at: now,
                started_at: started.then_some(now),
                completed_at: None,
            });
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn trials(&self, experiment_id: i64) -> Result<Vec<Trial>, StoreError> {
        let spec = self.spec_of(experiment_id).await?;
        let rows = sqlx::query(
            "SELECT id, idx, name, state, parameters, objective, message, attempts, handle, created_at, started_at, completed_at \
             FROM trials WHERE experiment_id = $1 ORDER BY idx",
        )
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| trial_from_row(&spec, row)).collect()
    }

    async fn start_trial(&self, trial_id: i64, experiment_id: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE trials SET state = $1, started_at = $2, attempts = attempts + 1, handle = NULL WHERE id = $3",
        )
        .bind(TrialState::Running.as_str())
        .bind(now_micros())
        .bind(trial_id)
        .execute(&mut *tx)
        .await?;
        let event = Event {
            experiment_id,
            trial_id: Some(trial_id),
            kind: TrialState::Running.as_str(),
            message: None,
        };
        Self::commit_with(tx, event).await
    }

    async fn set_trial_handle(&self, trial_id: i64, handle: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE trials SET handle = $1 WHERE id = $2")
            .bind(handle.to_string())
            .bind(trial_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn finish_trial(
        &self,
        trial_id: i64,
        experiment_id: i64,
        outcome: &TrialOutcome,
        observations: &[Observation],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_observations(&mut tx, trial_id, observations).await?;
        sqlx::query(
            "UPDATE trials SET state = $1, objective = $2, message = $3, completed_at = $4, handle = NULL WHERE id = $5",
        )
        .bind(outcome.state.as_str())
        .bind(outcome.objective)
        .bind(outcome.message.clone())
        .bind(now_micros())
        .bind(trial_id)
        .execute(&mut *tx)
        .await?;
        let event = Event {
            experiment_id,
            trial_id: Some(trial_id),
            kind: outcome.state.as_str(),
            message: outcome.message.as_deref(),
        };
        Self::commit_with(tx, event).await
    }

    async fn requeue_trial(&self, trial_id: i64, experiment_id: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM observations WHERE trial_id = $1")
            .bind(trial_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE trials SET state = $1, objective = NULL, message = NULL, started_at = NULL, completed_at = NULL, handle = NULL WHERE id = $2",
        )
        .bind(TrialState::Pending.as_str())
        .bind(trial_id)
        .execute(&mut *tx)
        .await?;
        let event = Event {
            experiment_id,
            trial_id: Some(trial_id),
            kind: TrialState::Pending.as_str(),
            message: Some("requeued after an interruption"),
        };
        Self::commit_with(tx, event).await
    }

    async fn add_observations(
        &self,
        trial_id: i64,
        observations: &[Observation],
    ) -> Result<(), StoreError> {
        if observations.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        insert_observations(&mut tx, trial_id, observations).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn observations(
        &self,
        trial_id: i64,
        metric: Option<&str>,
    ) -> Result<Vec<Observation>, StoreError> {
        let query = match metric {
            Some(metric) => sqlx::query(
                "SELECT metric, step, value, timestamp FROM observations WHERE trial_id = $1 AND metric = $2 ORDER BY step, timestamp, rowid",
            )
            .bind(trial_id)
            .bind(metric.to_string()),
            None => sqlx::query(
                "SELECT metric, step, value, timestamp FROM observations WHERE trial_id = $1 ORDER BY step, timestamp, rowid",
            )
            .bind(trial_id),
        };
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(Observation {
                    metric: row.try_get("metric")?,
                    step: row.try_get("step")?,
                    value: row.try_get("value")?,
                    timestamp: row.try_get("timestamp")?,
                })
            })
            .collect()
    }
}
