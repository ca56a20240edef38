//! The conformance suite on the SQLite store, and what is particular to SQLite: the event
//! rows, migrations (including stores made by the sqlx-based versions), files that cannot be
//! opened, other connections to the same file, the store thread, and the WAL.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::SqliteStore;
use super::checkpoint::CATCH_UP_FRAMES;
use super::migrate::MIGRATIONS;
use super::thread::Access;
use crate::store::tests::{self as conformance, conformance_tests};
use crate::store::tracking::Tracking;
use crate::store::tracking_tests::{self, tracking_conformance_tests};
use crate::store::{
    ExperimentState, NewTrial, Observation, Store, StoreError, TrialOutcome, TrialState,
};

/// A new store in a temporary directory (removed after the store is closed).
struct Fixture {
    store: SqliteStore,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn path(&self) -> PathBuf {
        store_path(self.dir.path())
    }
}

fn store_path(dir: &Path) -> PathBuf {
    dir.join("store").join("tuneflow.db")
}

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&store_path(dir.path()))
        .await
        .expect("open a new store");
    Fixture { store, dir }
}

conformance_tests!(fresh);
tracking_conformance_tests!(fresh);

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = store_path(dir.path());
    conformance::reopening_keeps_everything(|| async {
        Box::new(SqliteStore::open(&path).await.expect("open")) as Box<dyn Store>
    })
    .await;
}

fn observation(step: i64) -> Observation {
    Observation {
        metric: "loss".to_string(),
        step,
        value: 1.0 / (step as f64 + 1.0),
        timestamp: step,
    }
}

/// The event log, oldest first: (trial index or None, kind, message).
fn events(path: &Path) -> Vec<(Option<i64>, String, Option<String>)> {
    let connection = Connection::open(path).expect("open");
    let mut statement = connection
        .prepare(
            "SELECT t.idx, e.kind, e.message FROM events e LEFT JOIN trials t ON t.id = e.trial_id \
             ORDER BY e.id",
        )
        .expect("prepare");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn every_state_change_is_logged_with_it_and_nothing_else_is() {
    let fixture = fresh().await;
    let store = fixture.store();
    let experiment = conformance::experiment(store, "events").await;
    let id = experiment.id;
    let new = |index: u64, state| conformance::new_trial("events", index, state);
    store
        .set_experiment_state(id, ExperimentState::Running, None, None)
        .await
        .expect("state");
    let pending = store
        .create_trials(id, &experiment.spec, &[new(0, TrialState::Pending)])
        .await
        .expect("create")
        .remove(0);
    store.start_trial(pending.id, id).await.expect("start");
    // No events for these:
    store
        .set_trial_handle(pending.id, "1")
        .await
        .expect("handle");
    store
        .add_observations(pending.id, &[observation(0)])
        .await
        .expect("observe");
    store
        .update_spec(id, &experiment.spec, "doc")
        .await
        .expect("update");
    store
        .claim_experiment(id, "me:1", |_| true)
        .await
        .expect("claim");
    store.release_experiment(id, "me:1").await.expect("release");
    // A failed batch records no event either.
    let failed = store
        .create_trials(
            id,
            &experiment.spec,
            &[new(1, TrialState::Running), new(0, TrialState::Running)],
        )
        .await;
    assert!(failed.is_err());

    store.requeue_trial(pending.id, id).await.expect("requeue");
    let killed = TrialOutcome {
        state: TrialState::Killed,
        objective: None,
        message: Some("stopped: goal reached".to_string()),
        step: None,
    };
    store
        .finish_trial(pending.id, id, &killed, &[observation(1)])
        .await
        .expect("finish");
    let running = store
        .create_trials(id, &experiment.spec, &[new(1, TrialState::Running)])
        .await
        .expect("create")
        .remove(0);
    assert_eq!(running.index, 1);
    store
        .set_experiment_state(
            id,
            ExperimentState::Succeeded,
            Some("GoalReached"),
            Some("the goal was reached"),
        )
        .await
        .expect("state");
    store
        .set_experiment_state(id, ExperimentState::Interrupted, Some("Interrupted"), None)
        .await
        .expect("state");

    let owned = |kind: &str| kind.to_string();
    assert_eq!(
        events(&fixture.path()),
        [
            (None, owned("Created"), None),
            (None, owned("Running"), None),
            (Some(0), owned("Pending"), None),
            (Some(0), owned("Running"), None),
            (
                Some(0),
                owned("Pending"),
                Some(owned("requeued after an interruption"))
            ),
            (
                Some(0),
                owned("Killed"),
                Some(owned("stopped: goal reached"))
            ),
            (Some(1), owned("Running"), None),
            (
                None,
                owned("Succeeded"),
                Some(owned("the goal was reached"))
            ),
            (None, owned("Interrupted"), Some(owned("Interrupted"))),
        ]
    );
}

#[tokio::test]
async fn a_store_in_a_read_only_location_fails_clearly() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let read_only = dir.path().join("read-only");
    std::fs::create_dir(&read_only).expect("create");
    let mut permissions = std::fs::metadata(&read_only)
        .expect("metadata")
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o555);
    std::fs::set_permissions(&read_only, permissions).expect("chmod");
    // Root ignores the directory's permissions; /proc takes no new files from anyone.
    let path = if std::fs::write(read_only.join("probe"), "").is_ok() {
        PathBuf::from("/proc/self/tuneflow.db")
    } else {
        read_only.join("tuneflow.db")
    };
    let error = SqliteStore::open(&path)
        .await
        .expect_err("cannot be created");
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot open store {}: ", path.display())),
        "{message}"
    );
    assert!(
        message.contains("unable to open database file"),
        "{message}"
    );

    let nested = PathBuf::from("/proc/self/no-such-dir/tuneflow.db");
    let error = SqliteStore::open(&nested).await.expect_err("no directory");
    assert!(
        error
            .to_string()
            .starts_with("cannot open store /proc/self/no-such-dir/tuneflow.db: "),
        "{error}"
    );
}

#[tokio::test]
async fn a_file_that_is_no_database_fails_clearly() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("notes.db");
    std::fs::write(&path, "these are my notes, not a database ".repeat(100)).expect("write");
    let error = SqliteStore::open(&path).await.expect_err("not a database");
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert!(
        error.to_string().contains("file is not a database"),
        "{error}"
    );
}

/// The migrations the last sqlx-based tuneflow knew (0001 and 0002).
const SQLX_ERA_MIGRATIONS: usize = 2;

/// The table sqlx's migrator keeps.
const SQLX_MIGRATIONS: &str = "CREATE TABLE _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
);";

/// Writes a store as the sqlx-based tuneflow left it after applying the first `applied`
/// migrations: their schema, the sqlx table listing them, user_version 0, and one experiment
/// with a trial and an observation.
fn write_sqlx_store(path: &Path, applied: usize) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
    let connection = Connection::open(path).expect("open");
    connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        .expect("wal");
    connection
        .execute_batch(SQLX_MIGRATIONS)
        .expect("sqlx table");
    for (number, (name, sql)) in MIGRATIONS[..applied].iter().enumerate() {
        connection.execute_batch(sql).expect("migration");
        connection
            .execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, TRUE, X'00', 1000)",
                rusqlite::params![number as i64 + 1, name],
            )
            .expect("record migration");
    }
    let spec = serde_json::to_string(&conformance::spec("old")).expect("spec");
    connection
        .execute(
            "INSERT INTO experiments (name, spec, document, seed, state, created_at) \
             VALUES ('old', ?1, 'doc', 5, 'Succeeded', 1000)",
            [spec],
        )
        .expect("experiment");
    connection
        .execute_batch(
            "INSERT INTO trials (experiment_id, idx, name, state, parameters, objective, attempts, created_at) \
               VALUES (1, 0, 'old-0000', 'Succeeded', '{\"n\":3,\"x\":0.5,\"opt\":\"adam\"}', 0.5, 1, 1000);
             INSERT INTO observations (trial_id, metric, step, value, timestamp) VALUES (1, 'loss', 0, 0.5, 1001);
             INSERT INTO events (experiment_id, trial_id, timestamp, kind) VALUES (1, NULL, 1000, 'Created');",
        )
        .expect("rows");
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("user_version");
    assert_eq!(version, 0);
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .expect("open")
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("user_version")
}

async fn check_old_store(path: &Path) {
    let store = SqliteStore::open(path).await.expect("an old store opens");
    assert_eq!(user_version(path), MIGRATIONS.len() as i64);
    let experiment = store
        .experiment("old")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(experiment.state, ExperimentState::Succeeded);
    assert_eq!(experiment.seed, 5);
    let trials = store.trials(experiment.id).await.expect("trials");
    assert_eq!(trials.len(), 1);
    assert_eq!(trials[0].objective, Some(0.5));
    assert_eq!(trials[0].handle, None);
    store
        .set_trial_handle(trials[0].id, "77")
        .await
        .expect("the column of migration 0002 is there");
    assert_eq!(
        store
            .observations(trials[0].id, None)
            .await
            .expect("read")
            .len(),
        1
    );
    let tracking = store
        .tracking_experiment_by_name("old")
        .await
        .expect("read")
        .expect("the experiment got its tracking experiment");
    assert_eq!(tracking.experiment_id, Some(experiment.id));
    let run_id = store
        .trial_run_id(trials[0].id)
        .await
        .expect("read")
        .expect("the trial got its run");
    let history = store
        .metric_history(&run_id, "loss")
        .await
        .expect("history");
    assert_eq!(
        history.len(),
        1,
        "its observation is the run's metric history"
    );
    drop(store);
    // And it opens again as a store of this version.
    let store = SqliteStore::open(path).await.expect("reopen");
    let trials = store.trials(experiment.id).await.expect("trials");
    assert_eq!(trials[0].handle.as_deref(), Some("77"));
}

#[tokio::test]
async fn a_store_made_by_the_sqlx_migrator_opens_as_it_is() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = store_path(dir.path());
    write_sqlx_store(&path, SQLX_ERA_MIGRATIONS);
    check_old_store(&path).await;
}

#[tokio::test]
async fn a_store_made_by_the_sqlx_migrator_gets_the_migrations_it_lacks() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = store_path(dir.path());
    write_sqlx_store(&path, 1);
    check_old_store(&path).await;
}

#[tokio::test]
async fn a_store_of_a_newer_schema_is_refused() {
    let fixture = fresh().await;
    let path = fixture.path();
    drop(fixture.store);
    Connection::open(&path)
        .expect("open")
        .pragma_update(None, "user_version", 99)
        .expect("user_version");
    let error = SqliteStore::open(&path).await.expect_err("too new");
    assert!(matches!(error, StoreError::Migrate(_)), "{error:?}");
    assert!(error.to_string().contains("newer"), "{error}");
}

#[test]
fn every_migration_file_is_applied_in_order() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("migrations directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let compiled: Vec<String> = MIGRATIONS
        .iter()
        .map(|(name, _)| format!("{name}.sql"))
        .collect();
    assert_eq!(files, compiled);
}

#[tokio::test]
async fn other_connections_read_while_the_store_writes() {
    let fixture = fresh().await;
    let store = fixture.store();
    let experiment = conformance::experiment(store, "readers").await;
    // Another process's reader holds a snapshot across the store's writes.
    let reader = Connection::open(fixture.path()).expect("open");
    reader.execute_batch("BEGIN").expect("begin");
    let count = |connection: &Connection| -> i64 {
        connection
            .query_row("SELECT COUNT(*) FROM experiments", [], |row| row.get(0))
            .expect("count")
    };
    assert_eq!(count(&reader), 1);
    conformance::experiment(store, "readers-two").await;
    assert_eq!(count(&reader), 1, "the reader keeps its snapshot");
    reader.execute_batch("COMMIT").expect("commit");
    assert_eq!(count(&reader), 2, "and sees the write afterwards");

    // A second store on the same file (another `tuneflow` process) reads and writes too.
    let second = SqliteStore::open(&fixture.path())
        .await
        .expect("open again");
    assert_eq!(second.experiments().await.expect("list").len(), 2);
    store
        .set_experiment_state(experiment.id, ExperimentState::Running, None, None)
        .await
        .expect("write");
    let seen = second
        .experiment("readers")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(seen.state, ExperimentState::Running);
    second
        .delete_experiment("readers-two")
        .await
        .expect("delete");
    assert_eq!(store.experiments().await.expect("list").len(), 1);
}

#[tokio::test]
async fn a_job_that_panics_is_rolled_back_and_the_store_goes_on() {
    let fixture = fresh().await;
    let result: Result<(), StoreError> = fixture
        .store
        .thread
        .call(Access::Write, |tx| {
            tx.execute(
                "INSERT INTO experiments (name, spec, document, seed, state, created_at) \
                 VALUES ('ghost', '{}', '', 0, 'Created', 0)",
                [],
            )?;
            panic!("a bug in a store operation");
        })
        .await;
    let error = result.expect_err("the job panicked");
    assert!(matches!(error, StoreError::Closed(_)), "{error:?}");
    assert!(error.to_string().contains("rolled back"), "{error}");
    let store = fixture.store();
    assert!(store.experiments().await.expect("list").is_empty());
    conformance::experiment(store, "after-panic").await;
    assert_eq!(store.experiments().await.expect("list").len(), 1);
}

#[tokio::test]
async fn the_wal_is_checkpointed_and_bounded_and_removed_on_close() {
    let fixture = fresh().await;
    let path = fixture.path();
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let store = fixture.store();
    let experiment = conformance::experiment(store, "wal").await;
    let trials = store
        .create_trials(
            experiment.id,
            &experiment.spec,
            &(0..4)
                .map(|index| NewTrial {
                    index,
                    name: format!("wal-{index}"),
                    assignment: vec![
                        tuneflow_algorithms::ParameterValue::Int(1),
                        tuneflow_algorithms::ParameterValue::Double(0.5),
                        tuneflow_algorithms::ParameterValue::Categorical("sgd".to_string()),
                    ],
                    state: TrialState::Running,
                })
                .collect::<Vec<_>>(),
        )
        .await
        .expect("create");
    // Small commits, each adding a few frames to the WAL: well over three times the frames
    // after which the WAL must start over.
    let page = 4096;
    let mut high_water = 0;
    for step in 0..(3 * CATCH_UP_FRAMES as i64) {
        let trial = &trials[step as usize % trials.len()];
        store
            .add_observations(trial.id, &[observation(step)])
            .await
            .expect("observe");
        high_water = high_water.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    // Busy enough that the store thread is never idle (a loaded CI machine), the WAL is
    // caught up only at the 2 x CATCH_UP_FRAMES fallback, and on a machine loaded by other
    // work the restart after it may be a few commits late. Without checkpoints, the 3 x
    // CATCH_UP_FRAMES commits of at least two frames each would leave 6 x CATCH_UP_FRAMES.
    let limit = (4 * CATCH_UP_FRAMES as u64) * (page + 24);
    assert!(
        high_water < limit,
        "the WAL grew to {high_water} bytes (limit {limit})"
    );
    assert!(
        std::fs::metadata(&path).expect("database").len() > 100 * page,
        "checkpoints copied the pages into the database"
    );
    drop(fixture.store);
    assert!(!wal.exists(), "closing the store removes the WAL");
    let store = SqliteStore::open(&path).await.expect("reopen");
    let read = store.observations(trials[0].id, None).await.expect("read");
    assert_eq!(read.len(), 3 * CATCH_UP_FRAMES as usize / 4);
}

/// The migrations a store made before the tracking tables has.
const BEFORE_TRACKING: usize = 3;

/// Writes a store as the tuneflow before the tracking tables left it: migrations 0001-0003,
/// user_version 3, two experiments (one called "Default", like MLflow's, which a spec would
/// not allow but the store does) with trials and
/// observations.
fn write_store_before_tracking(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
    let connection = Connection::open(path).expect("open");
    for (_, sql) in &MIGRATIONS[..BEFORE_TRACKING] {
        connection.execute_batch(sql).expect("migration");
    }
    connection
        .pragma_update(None, "user_version", BEFORE_TRACKING as i64)
        .expect("user_version");
    for name in ["old", "Default"] {
        // Specs refuse "Default" (not a DNS label); the store takes any name.
        let mut spec = conformance::spec("old");
        spec.name = name.to_string();
        let spec = serde_json::to_string(&spec).expect("spec");
        connection
            .execute(
                "INSERT INTO experiments (name, spec, document, seed, state, created_at, started_at) \
                 VALUES (?1, ?2, 'doc', 5, 'Interrupted', 1000, 1100)",
                rusqlite::params![name, spec],
            )
            .expect("experiment");
    }
    connection
        .execute_batch(
            "INSERT INTO events (experiment_id, trial_id, timestamp, kind) VALUES (1, NULL, 1900, 'Interrupted');
             INSERT INTO trials (experiment_id, idx, name, state, parameters, objective, attempts, created_at, started_at, completed_at, step)
               VALUES (1, 0, 'old-0000', 'Succeeded', '{\"n\":3,\"x\":1e-05,\"opt\":\"adam\"}', 0.5, 1, 1000, 1200, 1300, 2),
                      (1, 1, 'old-0001', 'Pending', '{\"n\":4,\"x\":1.0,\"opt\":\"sgd\"}', NULL, 0, 1000, NULL, NULL, NULL),
                      (2, 0, 'Default-0000', 'EarlyStopped', '{\"n\":5,\"x\":0.25,\"opt\":\"sgd\"}', NULL, 1, 1000, 1200, 1400, 1);
             INSERT INTO observations (trial_id, metric, step, value, timestamp) VALUES
               (1, 'loss', 0, 0.9, 1201), (1, 'loss', 2, 0.5, 1203), (1, 'loss', 1, 0.7, 1202),
               (1, 'loss', 2, 0.4, 1203), (1, 'accuracy', 0, 0.1, 1201), (3, 'loss', 0, 0.8, 1201);",
        )
        .expect("rows");
}

#[tokio::test]
async fn a_store_made_before_the_tracking_tables_gets_them_filled_in() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = store_path(dir.path());
    write_store_before_tracking(&path);
    let store = SqliteStore::open(&path).await.expect("an old store opens");
    assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
    tracking_tests::check_backfilled(&store).await;
    drop(store);
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(store.runs(&[1]).await.expect("runs").len(), 3);
}

/// Prints how long listing 1,000 runs takes (10 params, 5 tags and 3 metrics of 100 steps
/// each): half of them trials' runs whose metrics are observations, half plain MLflow runs.
/// A measurement, not a check: run it with `--ignored --nocapture`, in release for figures
/// that mean something.
#[tokio::test]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn time_listing_a_thousand_runs() {
    use crate::store::tracking::{KeyValue, MetricPoint, NewRun};
    use std::time::Instant;
    let fixture = fresh().await;
    let store = fixture.store();
    let experiment = conformance::experiment(store, "timing").await;
    let tracking_id = store
        .tracking_experiment_by_name("timing")
        .await
        .expect("read")
        .expect("mirrored")
        .id;
    let setup = Instant::now();
    let new: Vec<NewTrial> = (0..500)
        .map(|index| conformance::new_trial("timing", index, TrialState::Running))
        .collect();
    let trials = store
        .create_trials(experiment.id, &experiment.spec, &new)
        .await
        .expect("trials");
    let mut run_ids = Vec::new();
    for trial in &trials {
        run_ids.push(
            store
                .trial_run_id(trial.id)
                .await
                .expect("read")
                .expect("run"),
        );
    }
    for index in 0..500 {
        let info = store
            .create_run(&NewRun {
                experiment_id: tracking_id,
                name: format!("plain-{index}"),
                user_id: "alice".to_string(),
                start_time: index,
                tags: Vec::new(),
            })
            .await
            .expect("run");
        run_ids.push(info.run_id);
    }
    for (index, run_id) in run_ids.iter().enumerate() {
        // Trial runs have 3 params (n, x, opt) and 3 tags already; plain runs 1 tag.
        let params: Vec<KeyValue> = (0..10)
            .map(|p| KeyValue::new(format!("p{p}"), format!("{}", index * p)))
            .take(if index < 500 { 7 } else { 10 })
            .collect();
        let tags: Vec<KeyValue> = (0..if index < 500 { 2 } else { 4 })
            .map(|t| KeyValue::new(format!("t{t}"), "value"))
            .collect();
        let metrics: Vec<MetricPoint> = (0..100)
            .flat_map(|step| {
                ["loss", "accuracy", "lr"].map(|key| MetricPoint {
                    key: key.to_string(),
                    value: 1.0 / (step as f64 + 1.0),
                    timestamp: 1_000 + step,
                    step,
                })
            })
            .collect();
        store
            .log_batch(run_id, &metrics, &params, &tags)
            .await
            .expect("log");
    }
    println!("setup: {:?}", setup.elapsed());
    let mut times = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let runs = store.runs(&[tracking_id]).await.expect("runs");
        times.push(start.elapsed());
        assert_eq!(runs.len(), 1001);
        let run = runs
            .iter()
            .find(|r| r.info.run_id == run_ids[0])
            .expect("run");
        assert_eq!(
            (run.params.len(), run.tags.len(), run.metrics.len()),
            (10, 5, 3)
        );
        let run = runs
            .iter()
            .find(|r| r.info.run_id == run_ids[999])
            .expect("run");
        assert_eq!(
            (run.params.len(), run.tags.len(), run.metrics.len()),
            (10, 5, 3)
        );
    }
    times.sort();
    println!(
        "runs() over 1,001 runs: best {:?}, median {:?}, worst {:?}",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
}
