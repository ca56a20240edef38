//! The reads behind the dashboard and the stop request: an experiment's document, the trials
//! that changed since a cursor, whole-experiment curves of one metric, a trial's event log.
//!
//! Each is one statement over an index that exists for it (`events_by_experiment` for the
//! changes, `observations_by_metric` for the curves), so a dashboard polling a live experiment
//! reads what changed, not the whole experiment.

use rusqlite::{OptionalExtension, Transaction, params};

use super::rows::{Event, TRIAL_COLUMNS, trial_from_row};
use super::spec_of;
use std::str::FromStr;

use tuneflow_algorithms::Direction;

use crate::store::{
    CurvePoint, Micros, STOP_REQUESTED, StoreError, Trial, TrialEvent, TrialState, TrialTally,
};

/// See [`crate::store::Store::document`].
pub(super) fn document(
    tx: &Transaction<'_>,
    experiment_id: i64,
) -> Result<Option<String>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT document FROM experiments WHERE id = ?1")?
        .query_row([experiment_id], |row| row.get(0))
        .optional()?)
}

/// See [`crate::store::Store::tally`]: three statements over the `trials_by_state` index.
pub(super) fn tally(
    tx: &Transaction<'_>,
    experiment_id: i64,
    direction: Direction,
) -> Result<TrialTally, StoreError> {
    let mut states = Vec::new();
    {
        let mut statement = tx.prepare_cached(
            "SELECT state, COUNT(*) FROM trials WHERE experiment_id = ?1 GROUP BY state",
        )?;
        let mut rows = statement.query([experiment_id])?;
        while let Some(row) = rows.next()? {
            let state: String = row.get(0)?;
            let count: i64 = row.get(1)?;
            states.push((TrialState::from_str(&state)?, count.max(0) as u64));
        }
    }
    let spec = spec_of(tx, experiment_id)?;
    let order = match direction {
        Direction::Minimize => "ASC",
        Direction::Maximize => "DESC",
    };
    let best = tx
        .prepare_cached(&format!(
            "SELECT {TRIAL_COLUMNS} FROM trials WHERE experiment_id = ?1 AND state = 'Succeeded' \
             AND objective IS NOT NULL ORDER BY objective {order}, idx LIMIT 1"
        ))?
        .query_row([experiment_id], |row| Ok(trial_from_row(&spec, row)))
        .optional()?
        .transpose()?;
    let (saved, stopped): (i64, i64) = tx
        .prepare_cached(crate::store::SAVED_STEPS)?
        .query_row([experiment_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(TrialTally {
        states,
        best,
        steps_saved: (stopped > 0).then_some(saved.max(0) as u64),
    })
}

/// See [`crate::store::Store::trials_changed_since`].
pub(super) fn trials_changed_since(
    tx: &Transaction<'_>,
    experiment_id: i64,
    since: Micros,
) -> Result<Vec<Trial>, StoreError> {
    let spec = spec_of(tx, experiment_id)?;
    let mut statement = tx.prepare_cached(&format!(
        "SELECT {TRIAL_COLUMNS} FROM trials WHERE id IN \
         (SELECT trial_id FROM events WHERE experiment_id = ?1 AND timestamp >= ?2 \
          AND trial_id IS NOT NULL) ORDER BY idx"
    ))?;
    let mut rows = statement.query(params![experiment_id, since])?;
    let mut trials = Vec::new();
    while let Some(row) = rows.next()? {
        trials.push(trial_from_row(&spec, row)?);
    }
    Ok(trials)
}

/// See [`crate::store::Store::curves`]. The trial filter goes in as one JSON array, so one
/// cached statement serves every filter.
pub(super) fn curves(
    tx: &Transaction<'_>,
    experiment_id: i64,
    metric: &str,
    trials: Option<&[u64]>,
) -> Result<Vec<CurvePoint>, StoreError> {
    let filter = trials.map(|t| serde_json::Value::from(t.to_vec()).to_string());
    let mut statement = tx.prepare_cached(
        "SELECT t.idx, o.step, o.value FROM trials t JOIN observations o ON o.trial_id = t.id \
         WHERE t.experiment_id = ?1 AND o.metric = ?2 \
         AND (?3 IS NULL OR t.idx IN (SELECT value FROM json_each(?3))) \
         ORDER BY t.idx, o.step, o.rowid",
    )?;
    let mut rows = statement.query(params![experiment_id, metric, filter])?;
    let mut points = Vec::new();
    while let Some(row) = rows.next()? {
        let trial: i64 = row.get(0)?;
        points.push(CurvePoint {
            trial: u64::try_from(trial)
                .map_err(|_| StoreError::Corrupt(format!("negative trial index {trial}")))?,
            step: row.get(1)?,
            value: row.get(2)?,
        });
    }
    Ok(points)
}

/// See [`crate::store::Store::trial_events`].
pub(super) fn trial_events(
    tx: &Transaction<'_>,
    trial_id: i64,
) -> Result<Vec<TrialEvent>, StoreError> {
    let mut statement = tx.prepare_cached(
        "SELECT timestamp, kind, message FROM events WHERE trial_id = ?1 ORDER BY timestamp, id",
    )?;
    let rows = statement.query_map([trial_id], |row| {
        Ok(TrialEvent {
            timestamp: row.get(0)?,
            state: row.get(1)?,
            message: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The event [`crate::store::Store::request_stop`] records.
pub(super) fn stop_event(experiment_id: i64, message: &str) -> Event {
    Event {
        experiment_id,
        trial_id: None,
        kind: STOP_REQUESTED,
        message: Some(message.to_string()),
    }
}

/// See [`crate::store::Store::stop_requested`].
pub(super) fn stop_requested(
    tx: &Transaction<'_>,
    experiment_id: i64,
    since: Micros,
) -> Result<Option<Micros>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT MAX(timestamp) FROM events WHERE experiment_id = ?1 AND timestamp >= ?2 \
             AND trial_id IS NULL AND kind = ?3",
        )?
        .query_row(params![experiment_id, since, STOP_REQUESTED], |row| {
            row.get(0)
        })?)
}
