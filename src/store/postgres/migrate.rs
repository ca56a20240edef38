//! The schema migrations of the PostgreSQL store, applied on open.
//!
//! The files in `migrations/postgres/` are compiled in and applied by sqlx's migrator, which
//! records them in `_sqlx_migrations` (in the first schema of the connection's `search_path`)
//! and holds an advisory lock while it works, so several servers opening a new store at once
//! apply each migration once. A migration file that changed after it was applied is refused
//! (its checksum no longer matches): published migrations are never edited, only added.

use std::borrow::Cow;

use sqlx_core::migrate::{Migration, MigrationType, Migrator};
use sqlx_core::sql_str::SqlSafeStr;
use sqlx_postgres::PgPool;

use crate::store::StoreError;

/// Every migration, in the order it is applied: (version, name, SQL). Versions follow the
/// SQLite store's numbering: the same number is the same schema change.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "trial handle",
        include_str!("../../../migrations/postgres/0002_trial_handle.sql"),
    ),
    (
        3,
        "trial step",
        include_str!("../../../migrations/postgres/0003_trial_step.sql"),
    ),
    (
        4,
        "tracking",
        include_str!("../../../migrations/postgres/0004_tracking.sql"),
    ),
];

/// The migrator over [`MIGRATIONS`].
fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Brings the schema up to date.
pub(super) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    migrator()
        .run(pool)
        .await
        .map_err(|error| StoreError::Migrate(Box::new(error)))
}

/// The number of migrations this build knows (the schema version it writes).
#[cfg(test)]
pub(super) fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies the migrations up to and including `version` only (tests make stores of earlier
/// schemas with it).
#[cfg(test)]
pub(super) async fn migrate_to(pool: &PgPool, version: i64) -> Result<(), StoreError> {
    migrator()
        .run_to(version, pool)
        .await
        .map_err(|error| StoreError::Migrate(Box::new(error)))
}
