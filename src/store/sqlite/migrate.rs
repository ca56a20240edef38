//! The schema migrations of the SQLite store, applied on open.
//!
//! The files in `migrations/sqlite/` are compiled in, in order, and the database remembers how
//! many of them it has in `PRAGMA user_version`. Stores written by tuneflow versions that ran
//! the migrations through sqlx have user_version 0 and a `_sqlx_migrations` table instead: the
//! number of migrations that table records as applied is taken as their version (and written to
//! user_version), so they open and migrate like any other. The sqlx table is left in place.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use tuneflow_algorithms::ParameterValue;

use crate::store::StoreError;

/// Every migration, in the order it is applied: (name, SQL).
pub(super) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        "0002_trial_handle",
        include_str!("../../../migrations/sqlite/0002_trial_handle.sql"),
    ),
    (
        "0003_trial_step",
        include_str!("../../../migrations/sqlite/0003_trial_step.sql"),
    ),
    (
        "0004_tracking",
        include_str!("../../../migrations/sqlite/0004_tracking.sql"),
    ),
];

/// Work a migration needs done in Rust after its SQL, in the same transaction: (name of the
/// migration, the work). Each is frozen with its migration: it may only rely on the schema
/// as that migration leaves it, never on the store's current code.
const AFTER_SQL: &[(&str, AfterSql)] = &[("0004_tracking", fill_trial_params)];

/// Work done in Rust after a migration's SQL.
type AfterSql = fn(&Connection) -> Result<(), StoreError>;

/// The schema version this build writes: the number of migrations it knows.
pub(super) fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the schema up to date. A store that is current is only read (so a store another
/// process holds a write lock on still opens); otherwise the missing migrations and the new
/// version are written in one transaction, after checking the version again under the write
/// lock, so two processes opening a new store at once apply each migration once.
pub(super) fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let (stored, version) = versions(connection)?;
    if stored == version && version == latest() {
        return Ok(());
    }
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed)?;
    let (_, version) = versions(&transaction)?;
    if version > latest() {
        return Err(StoreError::Migrate(
            format!(
                "the store's schema version is {version}, newer than the {} this tuneflow knows; \
                 use a newer tuneflow",
                latest()
            )
            .into(),
        ));
    }
    for (name, sql) in &MIGRATIONS[version as usize..] {
        transaction
            .execute_batch(sql)
            .map_err(|e| StoreError::Migrate(format!("migration {name}: {e}").into()))?;
        for (_, work) in AFTER_SQL.iter().filter(|(after, _)| after == name) {
            work(&transaction)
                .map_err(|e| StoreError::Migrate(format!("migration {name}: {e}").into()))?;
        }
    }
    transaction
        .pragma_update(None, "user_version", latest())
        .map_err(failed)?;
    transaction.commit().map_err(failed)
}

/// The stored `user_version` and the version it stands for: the same, except for a store made
/// by the sqlx migrator, whose version is the number of migrations its table lists as applied.
fn versions(connection: &Connection) -> Result<(i64, i64), StoreError> {
    let stored: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(failed)?;
    if stored != 0 {
        return Ok((stored, stored));
    }
    let sqlx_table: Option<String> = connection
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(failed)?;
    if sqlx_table.is_none() {
        return Ok((0, 0));
    }
    let (applied, highest): (i64, Option<i64>) = connection
        .query_row(
            "SELECT COUNT(*), MAX(version) FROM _sqlx_migrations WHERE success",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(failed)?;
    if highest.unwrap_or(0) != applied {
        return Err(StoreError::Migrate(
            format!(
                "_sqlx_migrations lists {applied} applied migrations but the highest is version \
                 {}; the store was migrated by something other than tuneflow",
                highest.unwrap_or(0)
            )
            .into(),
        ));
    }
    Ok((0, applied))
}

/// Migration 0004: the params of the runs it made for stored trials, one per parameter, its
/// value written as tuneflow writes it (the `Display` text of a [`ParameterValue`], so that a
/// double is `0.00001`, not SQLite's `1.0e-05`).
fn fill_trial_params(connection: &Connection) -> Result<(), StoreError> {
    let mut select = connection.prepare(
        "SELECT r.run_uuid, t.parameters FROM runs r JOIN trials t ON t.id = r.trial_id",
    )?;
    let mut insert = connection
        .prepare("INSERT OR IGNORE INTO run_params (run_uuid, key, value) VALUES (?1, ?2, ?3)")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let run: String = row.get(0)?;
        let parameters: String = row.get(1)?;
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&parameters)
            .map_err(|e| {
                StoreError::Corrupt(format!("parameters of the trial of run {run}: {e}"))
            })?;
        for (key, value) in object {
            let value: ParameterValue = serde_json::from_value(value).map_err(|e| {
                StoreError::Corrupt(format!("parameter `{key}` of the trial of run {run}: {e}"))
            })?;
            insert.execute(rusqlite::params![run, key, value.to_string()])?;
        }
    }
    Ok(())
}

fn failed(error: rusqlite::Error) -> StoreError {
    StoreError::Migrate(Box::new(error))
}
