//! One transaction per store operation, run again when the connection was lost before it
//! could commit.
//!
//! # What is retried
//!
//! An operation is a closure run inside `BEGIN ... COMMIT` on a pooled connection. When it
//! fails because the connection broke (the server restarted, the network dropped, an
//! administrator ended the backend, the pool could not connect) or because PostgreSQL rolled
//! it back to break a deadlock or a serialisation conflict, nothing of it was committed, so it
//! is run again from the start on another connection, with a growing pause (50 ms doubling up
//! to 2 s) for up to [`RETRY_WINDOW`] (30 s) in all. Each retry is logged with
//! `tracing::warn!`. When the window is spent the caller gets [`StoreError::Query`] saying how
//! long and how often it tried and what the last error was. Any other error (a constraint, a
//! conflict the store reports, bad data) ends the operation at once; its transaction is rolled
//! back.
//!
//! # The COMMIT that got no answer
//!
//! A connection lost *during* `COMMIT` leaves the outcome unknown: the server may have
//! committed and failed to say so, or never received it. Running a write again could record it
//! twice (observations appended twice; trials refused as "taken" by their own first copy);
//! giving up could report a failure for a write that is stored. Neither is acceptable, so each
//! writing transaction first asks for its transaction id (`txid_current()`, which PostgreSQL
//! keeps in the commit log) and the server's start time. After a lost COMMIT the store asks,
//! on a new connection, `txid_status(id)`:
//!
//! - `committed` on the same server run: the write is stored; the operation succeeds with the
//!   result it computed.
//! - `aborted`, or an id "in the future" (a server that crashed before the id reached its
//!   log): nothing was stored; the operation is run again as above.
//! - `in progress`: the old backend is still finishing; asked again after a pause.
//! - `committed` after a server restart, or no answer within the window: the outcome cannot be
//!   known for sure (after a crash PostgreSQL may hand an id that never reached its log to a
//!   new transaction), so the operation fails with [`StoreError::Query`] saying so. It is
//!   never acknowledged without proof, so no acknowledged write is lost.
//!
//! Reads (`BEGIN READ ONLY`) have no such question: they are simply run again.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use sqlx_core::connection::Connection;
use sqlx_core::query_as::query_as;
use sqlx_postgres::{PgConnection, PgPool, Postgres};

use crate::store::StoreError;

/// How long an operation is retried after lost connections before it fails.
pub const RETRY_WINDOW: Duration = Duration::from_secs(30);

/// The first pause between attempts.
const FIRST_DELAY: Duration = Duration::from_millis(50);

/// The longest pause between attempts.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// The future of one run of an operation's work, borrowing its connection and input.
pub(super) type Work<'c, R> = Pin<Box<dyn Future<Output = Result<R, StoreError>> + Send + 'c>>;

/// Whether an operation writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Only reads: a read-only transaction, run again after any lost connection.
    Read,
    /// Writes: its COMMIT's outcome is checked when the connection is lost during it.
    Write,
}

/// The statement that opens a transaction for `access`.
fn begin_statement(access: Access) -> &'static str {
    match access {
        // One snapshot for all of a read's statements.
        Access::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        Access::Write => "BEGIN",
    }
}

/// A write's transaction id and the start time (µs) of the server run that gave it.
#[derive(Debug, Clone, Copy)]
struct Marker {
    xid: i64,
    server_start: i64,
}

/// How one attempt failed.
enum Failure<R> {
    /// Nothing was committed and the cause is passing: try again.
    Transient(StoreError),
    /// The operation failed for good.
    Final(StoreError),
    /// The connection was lost during COMMIT: `value` is the result if it committed.
    Unknown {
        marker: Marker,
        value: R,
        error: StoreError,
    },
}

/// What became of a COMMIT whose answer was lost.
enum Outcome {
    Committed,
    NotCommitted,
    Unknown(String),
}

/// Runs `work` in one transaction on `pool`, retrying as the module documentation says.
/// `what` names the operation in logs and errors; `input` is handed to every attempt.
pub(super) async fn transaction<I, R, F>(
    pool: &PgPool,
    window: Duration,
    access: Access,
    what: &'static str,
    input: &I,
    work: F,
) -> Result<R, StoreError>
where
    I: Sync,
    R: Send,
    F: for<'c> Fn(&'c mut PgConnection, &'c I) -> Work<'c, R> + Sync,
{
    let started = Instant::now();
    let mut delay = FIRST_DELAY;
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let remaining = window.saturating_sub(started.elapsed());
        let error = match attempt(pool, remaining, access, input, &work).await {
            Ok(value) => return Ok(value),
            Err(Failure::Final(error)) => return Err(error),
            Err(Failure::Transient(error)) => error,
            Err(Failure::Unknown {
                marker,
                value,
                error,
            }) => match outcome(pool, window, started, marker).await {
                Outcome::Committed => {
                    tracing::warn!(
                        operation = what,
                        %error,
                        "PostgreSQL store: the connection was lost during COMMIT; the server \
                         confirms the transaction committed"
                    );
                    return Ok(value);
                }
                Outcome::NotCommitted => error,
                Outcome::Unknown(why) => {
                    return Err(StoreError::Query(
                        format!(
                            "{what}: the connection to PostgreSQL was lost while committing \
                             ({error}), and whether the change was recorded is unknown: {why}; \
                             check the store before repeating it"
                        )
                        .into(),
                    ));
                }
            },
        };
        let elapsed = started.elapsed();
        if elapsed + delay > window {
            return Err(StoreError::Query(
                format!(
                    "{what}: gave up after {attempts} attempts over {:.1} s; \
                     the PostgreSQL server could not be used: {error}",
                    elapsed.as_secs_f64()
                )
                .into(),
            ));
        }
        tracing::warn!(
            operation = what,
            attempt = attempts,
            %error,
            "PostgreSQL store: lost connection or transient failure, nothing was committed; \
             retrying in {delay:?}"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// One attempt: a connection from the pool (waiting at most `remaining`, the rest of the
/// window), the transaction, and the commit. A connection whose attempt failed on a
/// connection error is closed instead of going back to the pool. Only the wait for a
/// connection is bounded here: cutting a transaction short could leave its COMMIT unresolved.
async fn attempt<I, R, F>(
    pool: &PgPool,
    remaining: Duration,
    access: Access,
    input: &I,
    work: &F,
) -> Result<R, Failure<R>>
where
    I: Sync,
    R: Send,
    F: for<'c> Fn(&'c mut PgConnection, &'c I) -> Work<'c, R> + Sync,
{
    let mut connection = match tokio::time::timeout(remaining, pool.acquire()).await {
        Ok(acquired) => acquired.map_err(|e| before_commit(StoreError::from(e)))?,
        Err(_) => return Err(Failure::Transient(sqlx_core::Error::PoolTimedOut.into())),
    };
    let result = run(&mut connection, access, input, work).await;
    if matches!(result, Err(Failure::Transient(_) | Failure::Unknown { .. })) {
        connection.close_on_drop();
    }
    result
}

/// Begins, works and commits on `connection`.
async fn run<I, R, F>(
    connection: &mut PgConnection,
    access: Access,
    input: &I,
    work: &F,
) -> Result<R, Failure<R>>
where
    I: Sync,
    R: Send,
    F: for<'c> Fn(&'c mut PgConnection, &'c I) -> Work<'c, R> + Sync,
{
    let mut transaction = connection
        .begin_with(begin_statement(access))
        .await
        .map_err(|e| before_commit(e.into()))?;
    let marker = match access {
        Access::Read => None,
        Access::Write => {
            let (xid, server_start): (i64, i64) = query_as::<Postgres, (i64, i64)>(
                "SELECT txid_current(), \
                 (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::int8",
            )
            .fetch_one(&mut *transaction)
            .await
            .map_err(|e| before_commit(e.into()))?;
            Some(Marker { xid, server_start })
        }
    };
    let value = match work(&mut transaction, input).await {
        Ok(value) => value,
        Err(error) => {
            // Rolled back here rather than when the connection next goes back to the pool
            // (sqlx's default, from a spawned task), so that its locks are gone when the
            // caller hears of the error. A failure to roll back changes nothing: the server
            // rolls back a transaction whose connection is gone.
            let _ = transaction.rollback().await;
            return Err(before_commit(error));
        }
    };
    match transaction.commit().await {
        Ok(()) => Ok(value),
        Err(error) if rejected(&error) => Err(before_commit(error.into())),
        Err(error) => match marker {
            None => Err(Failure::Transient(error.into())),
            Some(marker) => Err(Failure::Unknown {
                marker,
                value,
                error: error.into(),
            }),
        },
    }
}

/// Classifies an error raised before COMMIT was sent: nothing was committed.
fn before_commit<R>(error: StoreError) -> Failure<R> {
    if is_transient(&error) {
        Failure::Transient(error)
    } else {
        Failure::Final(error)
    }
}

/// True for an error that a new attempt may not meet: a lost or refused connection, or a
/// transaction PostgreSQL rolled back to resolve a conflict.
pub(super) fn is_transient(error: &StoreError) -> bool {
    match error {
        StoreError::Query(source) => source
            .downcast_ref::<sqlx_core::Error>()
            .is_some_and(transient),
        _ => false,
    }
}

/// See [`is_transient`].
fn transient(error: &sqlx_core::Error) -> bool {
    match error {
        sqlx_core::Error::Io(_)
        | sqlx_core::Error::Tls(_)
        | sqlx_core::Error::PoolTimedOut
        | sqlx_core::Error::WorkerCrashed => true,
        sqlx_core::Error::Database(database) => {
            database.code().is_some_and(|code| transient_state(&code))
        }
        _ => false,
    }
}

/// SQLSTATEs after which running the transaction again is safe and may succeed.
fn transient_state(code: &str) -> bool {
    lost_connection_state(code)
        || matches!(
            code,
            "40001" // serialization_failure
            | "40P01" // deadlock_detected
            | "53300" // too_many_connections
            | "57P03" // cannot_connect_now: the server is starting up
        )
}

/// SQLSTATEs that mean the session is gone: connection exceptions (class 08) and the server
/// ending the backend (admin_shutdown, crash_shutdown).
fn lost_connection_state(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02")
}

/// True when the server answered COMMIT with an error: the transaction is rolled back, for
/// sure, and the error says why.
fn rejected(error: &sqlx_core::Error) -> bool {
    match error {
        sqlx_core::Error::Database(database) => !database
            .code()
            .is_some_and(|code| lost_connection_state(&code)),
        _ => false,
    }
}

/// Asks the server what became of the transaction `marker` names, until it can tell or the
/// window since `started` is spent.
async fn outcome(pool: &PgPool, window: Duration, started: Instant, marker: Marker) -> Outcome {
    let mut delay = FIRST_DELAY;
    loop {
        let asked = async {
            let mut connection = pool.acquire().await?;
            query_as::<Postgres, (Option<String>, i64)>(
                "SELECT txid_status($1), \
                 (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::int8",
            )
            .bind(marker.xid)
            .fetch_one(&mut *connection)
            .await
        }
        .await;
        let pending = match asked {
            Ok((status, server_start)) => {
                let restarted = server_start != marker.server_start;
                match (status.as_deref(), restarted) {
                    (Some("committed"), false) => return Outcome::Committed,
                    (Some("aborted"), _) => return Outcome::NotCommitted,
                    (Some("in progress"), false) => "the transaction is still in progress".into(),
                    (Some("committed"), true) => {
                        return Outcome::Unknown(
                            "the server restarted, and after a restart a committed transaction \
                             id may belong to another transaction"
                                .into(),
                        );
                    }
                    (status, _) => {
                        return Outcome::Unknown(format!(
                            "the server reports its transaction as {}",
                            status.unwrap_or("forgotten")
                        ));
                    }
                }
            }
            // "transaction ID ... is in the future": the server restarted without the id in
            // its log, so the transaction never committed.
            Err(sqlx_core::Error::Database(database))
                if database.code().as_deref() == Some("22023") =>
            {
                return Outcome::NotCommitted;
            }
            Err(error) if transient(&error) => error.to_string(),
            Err(error) => return Outcome::Unknown(format!("asking the server failed: {error}")),
        };
        if started.elapsed() + delay > window {
            return Outcome::Unknown(format!(
                "no answer within {} s ({pending})",
                window.as_secs()
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// [`outcome`] for a transaction id and server start time, as text (for the tests).
#[cfg(test)]
pub(super) async fn outcome_for_tests(
    pool: &PgPool,
    window: Duration,
    (xid, server_start): (i64, i64),
) -> String {
    match outcome(pool, window, Instant::now(), Marker { xid, server_start }).await {
        Outcome::Committed => "committed".to_string(),
        Outcome::NotCommitted => "not committed".to_string(),
        Outcome::Unknown(why) => format!("unknown: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_states_are_transient_and_constraints_are_not() {
        for code in [
            "08006", "08001", "57P01", "57P02", "57P03", "40001", "40P01",
        ] {
            assert!(transient_state(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "22023"] {
            assert!(!transient_state(code), "{code}");
        }
        assert!(is_transient(&StoreError::from(
            sqlx_core::Error::PoolTimedOut
        )));
        assert!(is_transient(&StoreError::from(sqlx_core::Error::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset)
        ))));
        assert!(!is_transient(&StoreError::Conflict("taken".into())));
        assert!(!is_transient(&StoreError::from(
            sqlx_core::Error::PoolClosed
        )));
    }
}
