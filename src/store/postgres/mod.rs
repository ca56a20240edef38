//! The PostgreSQL store: for several tuneflow processes or machines sharing one store.
//!
//! # Connections and transactions
//!
//! A [`PostgresStore`] holds a pool of connections (sqlx). Every [`Store`] method is one
//! transaction on one pooled connection (`retry.rs`): reads run `READ ONLY` at `REPEATABLE
//! READ` (one snapshot for all their statements), writes at PostgreSQL's default `READ
//! COMMITTED`, with explicit row locks where a decision depends on what is stored.
//!
//! # Several writers
//!
//! Unlike SQLite's single writer, many servers may write at once here, so every check that
//! decides a write takes a lock first:
//!
//! - [`Store::create_trials`] locks the experiment's row (`SELECT ... FOR NO KEY UPDATE`),
//!   then counts its trials and checks [`TrialCaps`]. Two servers suggesting for one
//!   experiment therefore take turns; the second sees the first one's trials. A trial index or
//!   name taken anyway (by a writer that did not lock, or a batch that repeats itself) breaks a
//!   unique constraint and becomes [`TrialCaps::taken`]. `NO KEY UPDATE` rather than `UPDATE`:
//!   it does not block the foreign-key checks of concurrent trial and event writes.
//! - [`Store::claim_experiment`] reads the owner under the same row lock, so of two servers
//!   claiming at once exactly one wins.
//! - A duplicate experiment name breaks `experiments_name_unique` and becomes
//!   [`StoreError::AlreadyExists`].
//!
//! # Lost connections
//!
//! A connection lost before a transaction commits is retried for up to [`RETRY_WINDOW`]; one
//! lost *during* COMMIT is resolved by asking the server whether the transaction committed.
//! `retry.rs` explains the rules and why no acknowledged write is lost.
//!
//! # Schema and logs
//!
//! `migrations/postgres/` holds the same schema as the SQLite store (`migrate.rs`). Trial logs
//! are files, and the database has no directory beside it: a PostgreSQL store keeps them in
//! [`LOGS_DIR`] under the current directory.

mod migrate;
mod mirror;
mod retry;
mod rows;
#[cfg(test)]
mod tests;
mod tracking;
mod url;
mod views;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx_core::connection::Connection;
use sqlx_core::query::query;
use sqlx_core::query_as::query_as;
use sqlx_core::query_scalar::query_scalar;
use sqlx_postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};

pub use self::retry::RETRY_WINDOW;
use self::retry::{Access, Work};
use self::rows::{
    Event, experiment_columns, experiment_from_row, insert_observations, observation_columns,
    observation_from_row, trial_columns, trial_from_row, unique_violation,
};
pub use self::url::PostgresUrl;
pub(crate) use self::url::redact;
use super::codec::{RunParams, TrialRow, decode_spec, encode_new_trials, encode_spec};
use super::{
    CurvePoint, Experiment, ExperimentState, Micros, NewTrial, Observation, Store, StoreError,
    Trial, TrialCaps, TrialEvent, TrialOutcome, TrialState, TrialTally, already_finished,
    now_micros,
};
use crate::spec::ExperimentSpec;

/// How long opening a store waits for the server to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where trial logs go with a PostgreSQL store, relative to the current directory (the same
/// place as with the default SQLite store, `.tuneflow/tuneflow.db`).
pub const LOGS_DIR: &str = ".tuneflow/logs";

/// Connections a store's pool opens at most.
const MAX_CONNECTIONS: u32 = 8;

/// A store in a PostgreSQL database. Clones share the connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// How long operations are retried after lost connections.
    retry_window: Duration,
    /// Where it is, without password: for messages.
    location: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (waiting up to [`CONNECT_TIMEOUT`]) and applies the
    /// migrations.
    pub async fn open(url: &PostgresUrl) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(url.connect_options()?, url.redacted(), MAX_CONNECTIONS).await
    }

    /// Connects with `options` (whose `search_path`, say, a caller may have set), with at most
    /// `max_connections` connections, and applies the migrations. `location` names the store
    /// in errors, without its password.
    pub(crate) async fn connect(
        options: PgConnectOptions,
        location: String,
        max_connections: u32,
    ) -> Result<PostgresStore, StoreError> {
        let target = describe(&options);
        // Named, so that an administrator sees whose connections these are.
        let options = match options.get_application_name() {
            Some(_) => options,
            None => options.application_name("tuneflow"),
        };
        let unreachable = |reason: String| StoreError::Open {
            location: location.clone(),
            source: format!("cannot connect to the PostgreSQL server at {target}: {reason}").into(),
        };
        // One connection first, on its own: the pool would retry a refused connection until
        // its timeout and then report only that it timed out, not why.
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(error)) => return Err(unreachable(url::redact(&error.to_string()))),
            Ok(Ok(connection)) => {
                // Only a check: the pool opens its own connections.
                let _ = connection.close().await;
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|error| unreachable(url::redact(&error.to_string())))?;
        migrate::migrate(&pool).await?;
        Ok(PostgresStore {
            pool,
            retry_window: RETRY_WINDOW,
            location,
        })
    }

    /// The connection pool (tests inspect and break its connections).
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool's connections; later operations fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `work` in a read-only transaction.
    async fn read<I, R, F>(&self, what: &'static str, input: &I, work: F) -> Result<R, StoreError>
    where
        I: Sync,
        R: Send,
        F: for<'c> Fn(&'c mut PgConnection, &'c I) -> Work<'c, R> + Sync,
    {
        retry::transaction(
            &self.pool,
            self.retry_window,
            Access::Read,
            what,
            input,
            work,
        )
        .await
    }

    /// Runs `work` in a writing transaction.
    async fn write<I, R, F>(&self, what: &'static str, input: &I, work: F) -> Result<R, StoreError>
    where
        I: Sync,
        R: Send,
        F: for<'c> Fn(&'c mut PgConnection, &'c I) -> Work<'c, R> + Sync,
    {
        retry::transaction(
            &self.pool,
            self.retry_window,
            Access::Write,
            what,
            input,
            work,
        )
        .await
    }
}

/// The server and database `options` point at, for messages (never the password).
fn describe(options: &PgConnectOptions) -> String {
    let place = match options.get_socket() {
        Some(socket) => format!("socket {}", socket.display()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    format!(
        "{place} (database `{}`, user `{}`)",
        options.get_database().unwrap_or(options.get_username()),
        options.get_username()
    )
}

/// Records `events` in the caller's transaction.
async fn record(connection: &mut PgConnection, events: &[Event]) -> Result<(), StoreError> {
    for event in events {
        event.record(connection).await?;
    }
    Ok(())
}

/// The error for an experiment id that is not in the store.
fn missing_experiment(experiment_id: i64) -> StoreError {
    StoreError::Query(format!("no experiment with id {experiment_id} in the store").into())
}

/// The decoded spec of experiment `experiment_id`.
async fn spec_of(
    connection: &mut PgConnection,
    experiment_id: i64,
) -> Result<ExperimentSpec, StoreError> {
    let spec: String =
        query_scalar::<Postgres, String>("SELECT spec FROM experiments WHERE id = $1")
            .bind(experiment_id)
            .fetch_optional(connection)
            .await?
            .ok_or_else(|| missing_experiment(experiment_id))?;
    decode_spec(&spec)
}

#[async_trait]
impl Store for PostgresStore {
    /// Several servers may share a PostgreSQL store.
    fn is_shared(&self) -> bool {
        true
    }

    async fn create_experiment(
        &self,
        spec: &ExperimentSpec,
        document: &str,
        seed: u64,
    ) -> Result<Experiment, StoreError> {
        let spec_json = encode_spec(spec)?;
        let now = now_micros();
        let input = (spec.name.as_str(), spec_json, document, seed as i64, now);
        let id = self
            .write(
                "create_experiment",
                &input,
                |connection, (name, spec_json, document, seed, now)| {
                    Box::pin(async move {
                        let inserted = query_scalar::<Postgres, i64>(
                            "INSERT INTO experiments (name, spec, document, seed, state, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                        )
                        .bind(*name)
                        .bind(spec_json)
                        .bind(*document)
                        .bind(*seed)
                        .bind(ExperimentState::Created.as_str())
                        .bind(*now)
                        .fetch_one(&mut *connection)
                        .await;
                        let id = match inserted {
                            Ok(id) => id,
                            Err(e) if unique_violation(&e).is_some() => {
                                return Err(StoreError::AlreadyExists(name.to_string()));
                            }
                            Err(e) => return Err(e.into()),
                        };
                        mirror::experiment_created(connection, id, name, *now).await?;
                        let event = Event {
                            experiment_id: id,
                            trial_id: None,
                            kind: ExperimentState::Created.as_str(),
                            message: None,
                        };
                        event.record(connection).await?;
                        Ok(id)
                    })
                },
            )
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
        self.read("experiment", &name, |connection, name| {
            Box::pin(async move {
                query::<Postgres>(concat!(
                    "SELECT ",
                    experiment_columns!(),
                    " FROM experiments WHERE name = $1"
                ))
                .bind(*name)
                .fetch_optional(connection)
                .await?
                .as_ref()
                .map(experiment_from_row)
                .transpose()
            })
        })
        .await
    }

    async fn experiments(&self) -> Result<Vec<Experiment>, StoreError> {
        self.read("experiments", &(), |connection, ()| {
            Box::pin(async move {
                query::<Postgres>(concat!(
                    "SELECT ",
                    experiment_columns!(),
                    " FROM experiments ORDER BY created_at, id"
                ))
                .fetch_all(connection)
                .await?
                .iter()
                .map(experiment_from_row)
                .collect()
            })
        })
        .await
    }

    async fn update_spec(
        &self,
        experiment_id: i64,
        spec: &ExperimentSpec,
        document: &str,
    ) -> Result<(), StoreError> {
        let input = (encode_spec(spec)?, document, experiment_id);
        self.write(
            "update_spec",
            &input,
            |connection, (spec_json, document, experiment_id)| {
                Box::pin(async move {
                    query::<Postgres>(
                        "UPDATE experiments SET spec = $1, document = $2 WHERE id = $3",
                    )
                    .bind(spec_json)
                    .bind(*document)
                    .bind(*experiment_id)
                    .execute(connection)
                    .await?;
                    Ok(())
                })
            },
        )
        .await
    }

    async fn delete_experiment(&self, name: &str) -> Result<bool, StoreError> {
        self.write("delete_experiment", &name, |connection, name| {
            Box::pin(async move {
                let deleted = query::<Postgres>("DELETE FROM experiments WHERE name = $1")
                    .bind(*name)
                    .execute(connection)
                    .await?;
                Ok(deleted.rows_affected() > 0)
            })
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
        let input = (
            experiment_id,
            state,
            reason,
            message,
            started,
            completed,
            now,
        );
        self.write(
            "set_experiment_state",
            &input,
            |connection, (experiment_id, state, reason, message, started, completed, now)| {
                Box::pin(async move {
                    query::<Postgres>(
                        "UPDATE experiments SET state = $1, reason = $2, message = $3, \
                         started_at = COALESCE($4, started_at), completed_at = $5 WHERE id = $6",
                    )
                    .bind(state.as_str())
                    .bind(*reason)
                    .bind(*message)
                    .bind(*started)
                    .bind(*completed)
                    .bind(*experiment_id)
                    .execute(&mut *connection)
                    .await?;
                    mirror::experiment_state_set(connection, *experiment_id, *state, *now).await?;
                    let event = Event {
                        experiment_id: *experiment_id,
                        trial_id: None,
                        kind: state.as_str(),
                        message: message.or(*reason).map(str::to_string),
                    };
                    event.record(connection).await
                })
            },
        )
        .await
    }

    async fn claim_experiment(
        &self,
        experiment_id: i64,
        owner: &str,
        is_alive: for<'a> fn(&'a str) -> bool,
    ) -> Result<Option<String>, StoreError> {
        let input = (experiment_id, owner, is_alive);
        self.write(
            "claim_experiment",
            &input,
            |connection, (experiment_id, owner, is_alive)| {
                Box::pin(async move {
                    // The row lock makes the read and the write one step for every other
                    // claimer: of two racing claims, the second reads the first's owner.
                    let current: Option<String> = query_scalar::<Postgres, Option<String>>(
                        "SELECT owner FROM experiments WHERE id = $1 FOR NO KEY UPDATE",
                    )
                    .bind(*experiment_id)
                    .fetch_optional(&mut *connection)
                    .await?
                    .ok_or_else(|| missing_experiment(*experiment_id))?;
                    if let Some(current) = current
                        && current != *owner
                        && is_alive(&current)
                    {
                        return Ok(Some(current));
                    }
                    query::<Postgres>("UPDATE experiments SET owner = $1 WHERE id = $2")
                        .bind(*owner)
                        .bind(*experiment_id)
                        .execute(connection)
                        .await?;
                    Ok(None)
                })
            },
        )
        .await
    }

    async fn release_experiment(&self, experiment_id: i64, owner: &str) -> Result<(), StoreError> {
        self.write(
            "release_experiment",
            &(experiment_id, owner),
            |connection, (experiment_id, owner)| {
                Box::pin(async move {
                    query::<Postgres>(
                        "UPDATE experiments SET owner = NULL WHERE id = $1 AND owner = $2",
                    )
                    .bind(*experiment_id)
                    .bind(*owner)
                    .execute(connection)
                    .await?;
                    Ok(())
                })
            },
        )
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
        let input = (experiment_id, TrialCaps::of(spec), rows, params, now);
        let ids = self
            .write(
                "create_trials",
                &input,
                |connection, (experiment_id, caps, rows, params, now)| {
                    Box::pin(async move {
                        insert_trials(connection, *experiment_id, *caps, rows, params, *now).await
                    })
                },
            )
            .await?;
        Ok(trials
            .iter()
            .zip(ids)
            .map(|(trial, id)| trial.recorded(id, now))
            .collect())
    }

    async fn trials(&self, experiment_id: i64) -> Result<Vec<Trial>, StoreError> {
        self.read("trials", &experiment_id, |connection, experiment_id| {
            Box::pin(async move {
                let spec = spec_of(connection, *experiment_id).await?;
                query::<Postgres>(concat!(
                    "SELECT ",
                    trial_columns!(),
                    " FROM trials WHERE experiment_id = $1 ORDER BY idx"
                ))
                .bind(*experiment_id)
                .fetch_all(connection)
                .await?
                .iter()
                .map(|row| trial_from_row(&spec, row))
                .collect()
            })
        })
        .await
    }

    async fn trial_count(&self, experiment_id: i64) -> Result<u64, StoreError> {
        let count: i64 = self
            .read(
                "trial_count",
                &experiment_id,
                |connection, experiment_id| {
                    Box::pin(async move {
                        Ok(query_scalar::<Postgres, i64>(
                            "SELECT COALESCE(MAX(idx) + 1, 0) FROM trials WHERE experiment_id = $1",
                        )
                        .bind(*experiment_id)
                        .fetch_one(connection)
                        .await?)
                    })
                },
            )
            .await?;
        Ok(count.max(0) as u64)
    }

    async fn trial(&self, experiment_id: i64, name: &str) -> Result<Option<Trial>, StoreError> {
        self.read(
            "trial",
            &(experiment_id, name),
            |connection, (experiment_id, name)| {
                Box::pin(async move {
                    let spec = spec_of(connection, *experiment_id).await?;
                    query::<Postgres>(concat!(
                        "SELECT ",
                        trial_columns!(),
                        " FROM trials WHERE experiment_id = $1 AND name = $2"
                    ))
                    .bind(*experiment_id)
                    .bind(*name)
                    .fetch_optional(connection)
                    .await?
                    .map(|row| trial_from_row(&spec, &row))
                    .transpose()
                })
            },
        )
        .await
    }

    async fn start_trial(&self, trial_id: i64, experiment_id: i64) -> Result<(), StoreError> {
        let input = (trial_id, experiment_id, now_micros());
        self.write(
            "start_trial",
            &input,
            |connection, (trial_id, experiment_id, now)| {
                Box::pin(async move {
                    query::<Postgres>(
                        "UPDATE trials SET state = $1, started_at = $2, attempts = attempts + 1, \
                         handle = NULL WHERE id = $3",
                    )
                    .bind(TrialState::Running.as_str())
                    .bind(*now)
                    .bind(*trial_id)
                    .execute(&mut *connection)
                    .await?;
                    mirror::trial_started(connection, *trial_id, *now).await?;
                    let event = Event {
                        experiment_id: *experiment_id,
                        trial_id: Some(*trial_id),
                        kind: TrialState::Running.as_str(),
                        message: None,
                    };
                    event.record(connection).await
                })
            },
        )
        .await
    }

    async fn set_trial_handle(&self, trial_id: i64, handle: &str) -> Result<(), StoreError> {
        self.write(
            "set_trial_handle",
            &(trial_id, handle),
            |connection, (trial_id, handle)| {
                Box::pin(async move {
                    query::<Postgres>("UPDATE trials SET handle = $1 WHERE id = $2")
                        .bind(*handle)
                        .bind(*trial_id)
                        .execute(connection)
                        .await?;
                    Ok(())
                })
            },
        )
        .await
    }

    async fn finish_trial(
        &self,
        trial_id: i64,
        experiment_id: i64,
        outcome: &TrialOutcome,
        observations: &[Observation],
    ) -> Result<(), StoreError> {
        let input = (trial_id, experiment_id, outcome, observations, now_micros());
        self.write(
            "finish_trial",
            &input,
            |connection, (trial_id, experiment_id, outcome, observations, now)| {
                Box::pin(async move {
                    // Locked: of two processes ending the trial at once, the second waits and
                    // then sees the first one's final state.
                    let (name, state) = query_as::<Postgres, (String, String)>(
                        "SELECT name, state FROM trials WHERE id = $1 FOR NO KEY UPDATE",
                    )
                    .bind(*trial_id)
                    .fetch_optional(&mut *connection)
                    .await?
                    .ok_or_else(|| StoreError::Missing {
                        what: "trial",
                        key: trial_id.to_string(),
                    })?;
                    let state: TrialState = state.parse()?;
                    if state.is_final() {
                        return Err(already_finished(&name, state));
                    }
                    insert_observations(connection, *trial_id, observations).await?;
                    query::<Postgres>(
                        "UPDATE trials SET state = $1, objective = $2, message = $3, \
                         completed_at = $4, handle = NULL, step = $5 WHERE id = $6",
                    )
                    .bind(outcome.state.as_str())
                    .bind(outcome.objective)
                    .bind(outcome.message.as_deref())
                    .bind(*now)
                    .bind(outcome.step)
                    .bind(*trial_id)
                    .execute(&mut *connection)
                    .await?;
                    mirror::trial_finished(connection, *trial_id, outcome.state, *now).await?;
                    let event = Event {
                        experiment_id: *experiment_id,
                        trial_id: Some(*trial_id),
                        kind: outcome.state.as_str(),
                        message: outcome.message.clone(),
                    };
                    event.record(connection).await
                })
            },
        )
        .await
    }

    async fn requeue_trial(&self, trial_id: i64, experiment_id: i64) -> Result<(), StoreError> {
        self.write(
            "requeue_trial",
            &(trial_id, experiment_id),
            |connection, (trial_id, experiment_id)| {
                Box::pin(async move {
                    query::<Postgres>("DELETE FROM observations WHERE trial_id = $1")
                        .bind(*trial_id)
                        .execute(&mut *connection)
                        .await?;
                    query::<Postgres>(
                        "UPDATE trials SET state = $1, objective = NULL, message = NULL, \
                         started_at = NULL, completed_at = NULL, handle = NULL, step = NULL \
                         WHERE id = $2",
                    )
                    .bind(TrialState::Pending.as_str())
                    .bind(*trial_id)
                    .execute(&mut *connection)
                    .await?;
                    mirror::trial_requeued(connection, *trial_id).await?;
                    let event = Event {
                        experiment_id: *experiment_id,
                        trial_id: Some(*trial_id),
                        kind: TrialState::Pending.as_str(),
                        message: Some("requeued after an interruption".to_string()),
                    };
                    event.record(connection).await
                })
            },
        )
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
        self.write(
            "add_observations",
            &(trial_id, observations),
            |connection, (trial_id, observations)| {
                Box::pin(insert_observations(connection, *trial_id, observations))
            },
        )
        .await
    }

    async fn observations(
        &self,
        trial_id: i64,
        metric: Option<&str>,
    ) -> Result<Vec<Observation>, StoreError> {
        self.read(
            "observations",
            &(trial_id, metric),
            |connection, (trial_id, metric)| {
                Box::pin(async move {
                    // `$2 IS NULL` keeps one statement (one cached plan) for both cases.
                    query::<Postgres>(concat!(
                    "SELECT ",
                    observation_columns!(),
                    " FROM observations WHERE trial_id = $1 AND ($2::text IS NULL OR metric = $2) \
                     ORDER BY step, timestamp, id"
                ))
                        .bind(*trial_id)
                        .bind(*metric)
                        .fetch_all(connection)
                        .await?
                        .iter()
                        .map(observation_from_row)
                        .collect()
                })
            },
        )
        .await
    }

    async fn tally(
        &self,
        experiment_id: i64,
        direction: tuneflow_algorithms::Direction,
    ) -> Result<TrialTally, StoreError> {
        self.read(
            "tally",
            &(experiment_id, direction),
            |connection, (id, direction)| Box::pin(views::tally(connection, *id, *direction)),
        )
        .await
    }

    async fn document(&self, experiment_id: i64) -> Result<Option<String>, StoreError> {
        self.read("document", &experiment_id, |connection, id| {
            Box::pin(views::document(connection, *id))
        })
        .await
    }

    async fn trials_changed_since(
        &self,
        experiment_id: i64,
        since: Micros,
    ) -> Result<Vec<Trial>, StoreError> {
        self.read(
            "trials_changed_since",
            &(experiment_id, since),
            |connection, (id, since)| {
                Box::pin(views::trials_changed_since(connection, *id, *since))
            },
        )
        .await
    }

    async fn curves(
        &self,
        experiment_id: i64,
        metric: &str,
        trials: Option<&[u64]>,
    ) -> Result<Vec<CurvePoint>, StoreError> {
        self.read(
            "curves",
            &(experiment_id, metric, trials),
            |connection, (id, metric, trials)| {
                Box::pin(views::curves(connection, *id, metric, *trials))
            },
        )
        .await
    }

    async fn trial_events(&self, trial_id: i64) -> Result<Vec<TrialEvent>, StoreError> {
        self.read("trial_events", &trial_id, |connection, id| {
            Box::pin(views::trial_events(connection, *id))
        })
        .await
    }

    async fn request_stop(&self, experiment_id: i64, message: &str) -> Result<(), StoreError> {
        self.write(
            "request_stop",
            &(experiment_id, message),
            |connection, (id, message)| Box::pin(views::request_stop(connection, *id, message)),
        )
        .await
    }

    async fn stop_requested(
        &self,
        experiment_id: i64,
        since: Micros,
    ) -> Result<Option<Micros>, StoreError> {
        self.read(
            "stop_requested",
            &(experiment_id, since),
            |connection, (id, since)| Box::pin(views::stop_requested(connection, *id, *since)),
        )
        .await
    }
}

/// The body of [`Store::create_trials`]: lock, check the caps, insert, record events.
async fn insert_trials(
    connection: &mut PgConnection,
    experiment_id: i64,
    caps: TrialCaps,
    rows: &[TrialRow],
    params: &[RunParams],
    now: Micros,
) -> Result<Vec<i64>, StoreError> {
    // Every writer of this experiment's trials takes this lock first, so the counts below
    // stay true until this transaction commits.
    query_scalar::<Postgres, i64>("SELECT id FROM experiments WHERE id = $1 FOR NO KEY UPDATE")
        .bind(experiment_id)
        .fetch_optional(&mut *connection)
        .await?
        .ok_or_else(|| missing_experiment(experiment_id))?;
    // Both read an index range, not every trial of the experiment: indices have no gaps, so
    // the highest + 1 is the total.
    let (total, unfinished): (i64, i64) = query_as::<Postgres, (i64, i64)>(
        "SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM trials WHERE experiment_id = $1), \
         (SELECT COUNT(*) FROM trials WHERE experiment_id = $1 AND state IN ('Pending', 'Running'))",
    )
    .bind(experiment_id)
    .fetch_one(&mut *connection)
    .await?;
    caps.check(total, unfinished, rows.len())?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut events = Vec::with_capacity(rows.len());
    for (index, name, state, parameters) in rows {
        let started = *state == TrialState::Running;
        let inserted = query_scalar::<Postgres, i64>(
            "INSERT INTO trials \
             (experiment_id, idx, name, state, parameters, created_at, started_at, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(experiment_id)
        .bind(*index)
        .bind(name.as_str())
        .bind(state.as_str())
        .bind(parameters.as_str())
        .bind(now)
        .bind(started.then_some(now))
        .bind(i64::from(started))
        .fetch_one(&mut *connection)
        .await;
        let id = match inserted {
            Ok(id) => id,
            Err(e) if unique_violation(&e).is_some() => return Err(TrialCaps::taken(name)),
            Err(e) => return Err(e.into()),
        };
        ids.push(id);
        events.push(Event {
            experiment_id,
            trial_id: Some(id),
            kind: state.as_str(),
            message: None,
        });
    }
    let runs: Vec<mirror::NewTrialRun<'_>> = rows
        .iter()
        .zip(params)
        .zip(&ids)
        .map(|(((_, name, state, _), params), id)| mirror::NewTrialRun {
            trial_id: *id,
            name,
            state: *state,
            params,
        })
        .collect();
    mirror::trials_created(connection, experiment_id, &runs, now).await?;
    record(connection, &events).await?;
    Ok(ids)
}

/// The logs directory of a PostgreSQL store: [`LOGS_DIR`] under the current directory.
pub fn logs_dir() -> &'static Path {
    Path::new(LOGS_DIR)
}
