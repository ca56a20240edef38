//! Reading rows into the store's types and writing the rows that several operations share:
//! events and observations.

use std::str::FromStr;

use rusqlite::{Connection, Row, Statement, params};

use crate::spec::ExperimentSpec;
use crate::store::codec::decode_assignment;
pub(super) use crate::store::codec::{decode_spec, encode_spec};
use crate::store::{
    Experiment, ExperimentState, Observation, StoreError, Trial, TrialState, now_micros,
};

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        StoreError::Query(Box::new(error))
    }
}

/// True when `error` is a violated UNIQUE (or primary key) constraint.
pub(super) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error().map(|e| e.extended_code),
        Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}

/// Rows per multi-row observation insert (5 values each, well under SQLite's 32,766 bound
/// parameters per statement).
const OBSERVATIONS_PER_INSERT: usize = 1000;

/// Observation inserts of up to this many rows are kept prepared (the usual batches: the
/// metrics of one report); larger ones are prepared when needed so that they do not push the
/// fixed statements out of the cache.
const CACHED_INSERT_ROWS: usize = 16;

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
    pub(super) fn record(&self, connection: &Connection) -> Result<(), StoreError> {
        connection
            .prepare_cached(
                "INSERT INTO events (experiment_id, trial_id, timestamp, kind, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                self.experiment_id,
                self.trial_id,
                now_micros(),
                self.kind,
                self.message
            ])?;
        Ok(())
    }
}

/// Inserts observations with multi-row statements: one per chunk instead of one per row.
pub(super) fn insert_observations(
    connection: &Connection,
    trial_id: i64,
    observations: &[Observation],
) -> Result<(), StoreError> {
    for chunk in observations.chunks(OBSERVATIONS_PER_INSERT) {
        let mut sql = String::with_capacity(80 + 12 * chunk.len());
        sql.push_str("INSERT INTO observations (trial_id, metric, step, value, timestamp) VALUES ");
        for row in 0..chunk.len() {
            sql.push_str(if row == 0 {
                "(?,?,?,?,?)"
            } else {
                ",(?,?,?,?,?)"
            });
        }
        let bind = |statement: &mut Statement<'_>| -> rusqlite::Result<usize> {
            for (row, observation) in chunk.iter().enumerate() {
                let first = row * 5 + 1;
                statement.raw_bind_parameter(first, trial_id)?;
                statement.raw_bind_parameter(first + 1, &observation.metric)?;
                statement.raw_bind_parameter(first + 2, observation.step)?;
                statement.raw_bind_parameter(first + 3, observation.value)?;
                statement.raw_bind_parameter(first + 4, observation.timestamp)?;
            }
            statement.raw_execute()
        };
        if chunk.len() <= CACHED_INSERT_ROWS {
            bind(&mut *connection.prepare_cached(&sql)?)?;
        } else {
            bind(&mut connection.prepare(&sql)?)?;
        }
    }
    Ok(())
}

/// The columns [`experiment_from_row`] reads, in its order.
pub(super) const EXPERIMENT_COLUMNS: &str =
    "id, name, spec, seed, state, reason, message, created_at, started_at, completed_at";

/// Reads a row of [`EXPERIMENT_COLUMNS`].
pub(super) fn experiment_from_row(row: &Row<'_>) -> Result<Experiment, StoreError> {
    let spec: String = row.get(2)?;
    let seed: i64 = row.get(3)?;
    let state: String = row.get(4)?;
    Ok(Experiment {
        id: row.get(0)?,
        name: row.get(1)?,
        spec: decode_spec(&spec)?,
        seed: seed as u64,
        state: ExperimentState::from_str(&state)?,
        reason: row.get(5)?,
        message: row.get(6)?,
        created_at: row.get(7)?,
        started_at: row.get(8)?,
        completed_at: row.get(9)?,
    })
}

/// The columns [`trial_from_row`] reads, in its order.
pub(super) const TRIAL_COLUMNS: &str = "id, idx, name, state, parameters, objective, message, \
     attempts, handle, created_at, started_at, completed_at, step";

/// Reads a row of [`TRIAL_COLUMNS`] of a trial of an experiment with `spec`.
pub(super) fn trial_from_row(spec: &ExperimentSpec, row: &Row<'_>) -> Result<Trial, StoreError> {
    let index: i64 = row.get(1)?;
    let state: String = row.get(3)?;
    let parameters: String = row.get(4)?;
    let attempts: i64 = row.get(7)?;
    Ok(Trial {
        id: row.get(0)?,
        index: index as u64,
        name: row.get(2)?,
        state: TrialState::from_str(&state)?,
        assignment: decode_assignment(spec, &parameters)?,
        objective: row.get(5)?,
        message: row.get(6)?,
        attempts: attempts as u32,
        handle: row.get(8)?,
        created_at: row.get(9)?,
        started_at: row.get(10)?,
        completed_at: row.get(11)?,
        step: row.get(12)?,
    })
}

/// The columns [`observation_from_row`] reads, in its order.
pub(super) const OBSERVATION_COLUMNS: &str = "metric, step, value, timestamp";

/// Reads a row of [`OBSERVATION_COLUMNS`].
pub(super) fn observation_from_row(row: &Row<'_>) -> Result<Observation, StoreError> {
    Ok(Observation {
        metric: row.get(0)?,
        step: row.get(1)?,
        value: row.get(2)?,
        timestamp: row.get(3)?,
    })
}
