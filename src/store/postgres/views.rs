//! The reads behind the dashboard and the stop request, as in the SQLite store (see
//! `sqlite/views.rs`): the same statements, with PostgreSQL's arrays for the trial filter.

use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::row::Row;
use sqlx_postgres::{PgConnection, Postgres};

use super::rows::{Event, trial_columns, trial_from_row};
use super::spec_of;
use std::str::FromStr;

use tuneflow_algorithms::Direction;

use crate::store::{
    CurvePoint, Micros, STOP_REQUESTED, StoreError, Trial, TrialEvent, TrialState, TrialTally,
};

/// See [`crate::store::Store::document`].
pub(super) async fn document(
    connection: &mut PgConnection,
    experiment_id: i64,
) -> Result<Option<String>, StoreError> {
    Ok(
        query_scalar::<Postgres, String>("SELECT document FROM experiments WHERE id = $1")
            .bind(experiment_id)
            .fetch_optional(connection)
            .await?,
    )
}

/// See [`crate::store::Store::tally`]; the same statements as the SQLite store's.
pub(super) async fn tally(
    connection: &mut PgConnection,
    experiment_id: i64,
    direction: Direction,
) -> Result<TrialTally, StoreError> {
    let mut states = Vec::new();
    for row in query::<Postgres>(
        "SELECT state, COUNT(*) FROM trials WHERE experiment_id = $1 GROUP BY state ORDER BY state",
    )
    .bind(experiment_id)
    .fetch_all(&mut *connection)
    .await?
    {
        let state: String = row.try_get(0)?;
        let count: i64 = row.try_get(1)?;
        states.push((TrialState::from_str(&state)?, count.max(0) as u64));
    }
    let spec = spec_of(connection, experiment_id).await?;
    let statement = match direction {
        Direction::Minimize => concat!(
            "SELECT ",
            trial_columns!(),
            " FROM trials WHERE experiment_id = $1 AND state = 'Succeeded' \
             AND objective IS NOT NULL ORDER BY objective ASC, idx LIMIT 1"
        ),
        Direction::Maximize => concat!(
            "SELECT ",
            trial_columns!(),
            " FROM trials WHERE experiment_id = $1 AND state = 'Succeeded' \
             AND objective IS NOT NULL ORDER BY objective DESC, idx LIMIT 1"
        ),
    };
    let best = query::<Postgres>(statement)
        .bind(experiment_id)
        .fetch_optional(&mut *connection)
        .await?
        .map(|row| trial_from_row(&spec, &row))
        .transpose()?;
    let row = query::<Postgres>(crate::store::SAVED_STEPS)
        .bind(experiment_id)
        .fetch_one(connection)
        .await?;
    let saved: i64 = row.try_get(0)?;
    let stopped: i64 = row.try_get(1)?;
    Ok(TrialTally {
        states,
        best,
        steps_saved: (stopped > 0).then_some(saved.max(0) as u64),
    })
}

/// See [`crate::store::Store::trials_changed_since`].
pub(super) async fn trials_changed_since(
    connection: &mut PgConnection,
    experiment_id: i64,
    since: Micros,
) -> Result<Vec<Trial>, StoreError> {
    let spec = spec_of(connection, experiment_id).await?;
    query::<Postgres>(concat!(
        "SELECT ",
        trial_columns!(),
        " FROM trials WHERE id IN (SELECT trial_id FROM events WHERE experiment_id = $1 \
         AND timestamp >= $2 AND trial_id IS NOT NULL) ORDER BY idx"
    ))
    .bind(experiment_id)
    .bind(since)
    .fetch_all(connection)
    .await?
    .iter()
    .map(|row| trial_from_row(&spec, row))
    .collect()
}

/// See [`crate::store::Store::curves`].
pub(super) async fn curves(
    connection: &mut PgConnection,
    experiment_id: i64,
    metric: &str,
    trials: Option<&[u64]>,
) -> Result<Vec<CurvePoint>, StoreError> {
    let filter: Option<Vec<i64>> = trials.map(|t| {
        t.iter()
            .map(|&i| i64::try_from(i).unwrap_or(i64::MAX))
            .collect()
    });
    query::<Postgres>(
        "SELECT t.idx, o.step, o.value FROM trials t JOIN observations o ON o.trial_id = t.id \
         WHERE t.experiment_id = $1 AND o.metric = $2 \
         AND ($3::bigint[] IS NULL OR t.idx = ANY($3)) \
         ORDER BY t.idx, o.step, o.id",
    )
    .bind(experiment_id)
    .bind(metric)
    .bind(filter)
    .fetch_all(connection)
    .await?
    .iter()
    .map(|row| {
        let trial: i64 = row.try_get(0)?;
        Ok(CurvePoint {
            trial: u64::try_from(trial)
                .map_err(|_| StoreError::Corrupt(format!("negative trial index {trial}")))?,
            step: row.try_get(1)?,
            value: row.try_get(2)?,
        })
    })
    .collect()
}

/// See [`crate::store::Store::trial_events`].
pub(super) async fn trial_events(
    connection: &mut PgConnection,
    trial_id: i64,
) -> Result<Vec<TrialEvent>, StoreError> {
    query::<Postgres>(
        "SELECT timestamp, kind, message FROM events WHERE trial_id = $1 ORDER BY timestamp, id",
    )
    .bind(trial_id)
    .fetch_all(connection)
    .await?
    .iter()
    .map(|row| {
        Ok(TrialEvent {
            timestamp: row.try_get(0)?,
            state: row.try_get(1)?,
            message: row.try_get(2)?,
        })
    })
    .collect()
}

/// See [`crate::store::Store::request_stop`].
pub(super) async fn request_stop(
    connection: &mut PgConnection,
    experiment_id: i64,
    message: &str,
) -> Result<(), StoreError> {
    spec_of(connection, experiment_id).await?;
    Event {
        experiment_id,
        trial_id: None,
        kind: STOP_REQUESTED,
        message: Some(message.to_string()),
    }
    .record(connection)
    .await
}

/// See [`crate::store::Store::stop_requested`].
pub(super) async fn stop_requested(
    connection: &mut PgConnection,
    experiment_id: i64,
    since: Micros,
) -> Result<Option<Micros>, StoreError> {
    Ok(query_scalar::<Postgres, Option<i64>>(
        "SELECT MAX(timestamp) FROM events WHERE experiment_id = $1 AND timestamp >= $2 \
         AND trial_id IS NULL AND kind = $3",
    )
    .bind(experiment_id)
    .bind(since)
    .bind(STOP_REQUESTED)
    .fetch_one(connection)
    .await?)
}
