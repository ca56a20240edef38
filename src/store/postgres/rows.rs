//! Reading rows into the store's types, and the writes several operations share: events and
//! observations.
//!
//! Values are encoded as the SQLite store encodes them (the spec and parameters as JSON text,
//! the u64 seed as the i64 with the same bits), through the same functions, so a store moved
//! between backends reads back the same.

use std::str::FromStr;

use sqlx_core::error::ErrorKind;
use sqlx_core::query::query;
use sqlx_core::row::Row;
use sqlx_postgres::{PgConnection, PgRow, Postgres};

use crate::spec::ExperimentSpec;
use crate::store::codec::{decode_assignment, decode_spec};
use crate::store::{
    Experiment, ExperimentState, Observation, StoreError, Trial, TrialState, now_micros,
};

impl From<sqlx_core::Error> for StoreError {
    fn from(error: sqlx_core::Error) -> StoreError {
        match error {
            sqlx_core::Error::PoolClosed => {
                StoreError::Closed("the PostgreSQL connection pool was closed".to_string())
            }
            other => StoreError::Query(Box::new(other)),
        }
    }
}

/// The name of the constraint a unique violation broke, if `error` is one.
pub(super) fn unique_violation(error: &sqlx_core::Error) -> Option<&str> {
    match error {
        sqlx_core::Error::Database(database) if database.kind() == ErrorKind::UniqueViolation => {
            Some(database.constraint().unwrap_or(""))
        }
        _ => None,
    }
}

/// One entry of the event log: a state change of an experiment or of one of its trials.
#[derive(Debug)]
pub(super) struct Event {
    /// The experiment.
    pub experiment_id: i64,
    /// The trial, for a trial's state change.
    pub trial_id: Option<i64>,
    /// The new state.
    pub kind: &'static str,
    /// Why.
    pub message: Option<String>,
}

impl Event {
    /// Writes the event, stamped now, in the caller's transaction.
    pub(super) async fn record(&self, connection: &mut PgConnection) -> Result<(), StoreError> {
        query::<Postgres>(
            "INSERT INTO events (experiment_id, trial_id, timestamp, kind, message) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.experiment_id)
        .bind(self.trial_id)
        .bind(now_micros())
        .bind(self.kind)
        .bind(self.message.as_deref())
        .execute(connection)
        .await?;
        Ok(())
    }
}

/// Inserts observations in one statement, whatever their number: the columns go as arrays and
/// are unnested in order, so ids (the arrival order) follow the batch's order.
pub(super) async fn insert_observations(
    connection: &mut PgConnection,
    trial_id: i64,
    observations: &[Observation],
) -> Result<(), StoreError> {
    if observations.is_empty() {
        return Ok(());
    }
    let metrics: Vec<&str> = observations.iter().map(|o| o.metric.as_str()).collect();
    let steps: Vec<i64> = observations.iter().map(|o| o.step).collect();
    let values: Vec<f64> = observations.iter().map(|o| o.value).collect();
    let timestamps: Vec<i64> = observations.iter().map(|o| o.timestamp).collect();
    query::<Postgres>(
        "INSERT INTO observations (trial_id, metric, step, value, timestamp) \
         SELECT $1, u.metric, u.step, u.value, u.timestamp \
         FROM UNNEST($2::text[], $3::int8[], $4::float8[], $5::int8[]) \
              WITH ORDINALITY AS u(metric, step, value, timestamp, position) \
         ORDER BY u.position",
    )
    .bind(trial_id)
    .bind(metrics)
    .bind(steps)
    .bind(values)
    .bind(timestamps)
    .execute(connection)
    .await?;
    Ok(())
}

/// The columns [`experiment_from_row`] reads, in its order, as a literal for `concat!` (so
/// statements stay `&'static str`, which sqlx's `query` takes).
macro_rules! experiment_columns {
    () => {
        "id, name, spec, seed, state, reason, message, created_at, started_at, completed_at"
    };
}
pub(super) use experiment_columns;

/// Reads a row of `experiment_columns!()`.
pub(super) fn experiment_from_row(row: &PgRow) -> Result<Experiment, StoreError> {
    let spec: String = row.try_get(2)?;
    let seed: i64 = row.try_get(3)?;
    let state: String = row.try_get(4)?;
    Ok(Experiment {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        spec: decode_spec(&spec)?,
        seed: seed as u64,
        state: ExperimentState::from_str(&state)?,
        reason: row.try_get(5)?,
        message: row.try_get(6)?,
        created_at: row.try_get(7)?,
        started_at: row.try_get(8)?,
        completed_at: row.try_get(9)?,
    })
}

/// The columns [`trial_from_row`] reads, in its order, as a literal for `concat!`.
macro_rules! trial_columns {
    () => {
        "id, idx, name, state, parameters, objective, message, attempts, handle, created_at, \
         started_at, completed_at, step"
    };
}
pub(super) use trial_columns;

/// Reads a row of `trial_columns!()` of a trial of an experiment with `spec`.
pub(super) fn trial_from_row(spec: &ExperimentSpec, row: &PgRow) -> Result<Trial, StoreError> {
    let index: i64 = row.try_get(1)?;
    let state: String = row.try_get(3)?;
    let parameters: String = row.try_get(4)?;
    let attempts: i64 = row.try_get(7)?;
    Ok(Trial {
        id: row.try_get(0)?,
        index: u64::try_from(index)
            .map_err(|_| StoreError::Corrupt(format!("trial index {index}")))?,
        name: row.try_get(2)?,
        state: TrialState::from_str(&state)?,
        assignment: decode_assignment(spec, &parameters)?,
        objective: row.try_get(5)?,
        message: row.try_get(6)?,
        attempts: u32::try_from(attempts)
            .map_err(|_| StoreError::Corrupt(format!("trial attempts {attempts}")))?,
        handle: row.try_get(8)?,
        created_at: row.try_get(9)?,
        started_at: row.try_get(10)?,
        completed_at: row.try_get(11)?,
        step: row.try_get(12)?,
    })
}

/// The columns [`observation_from_row`] reads, in its order, as a literal for `concat!`.
macro_rules! observation_columns {
    () => {
        "metric, step, value, timestamp"
    };
}
pub(super) use observation_columns;

/// Reads a row of `observation_columns!()`.
pub(super) fn observation_from_row(row: &PgRow) -> Result<Observation, StoreError> {
    Ok(Observation {
        metric: row.try_get(0)?,
        step: row.try_get(1)?,
        value: row.try_get(2)?,
        timestamp: row.try_get(3)?,
    })
}
