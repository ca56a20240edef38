//! The conformance suite on the PostgreSQL store, and what is particular to PostgreSQL:
//! several servers (separate pools) racing on one experiment, lost connections, and opening
//! errors.
//!
//! The server comes from `TUNEFLOW_TEST_POSTGRES` (a URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`). When it is set, these tests need that server
//! and fail if it cannot be reached; when it is not, they print a notice and pass without
//! testing anything. Each fixture works in a schema of its own (a random name, on every pooled
//! connection's `search_path`), dropped when the fixture is, so the tests run in parallel
//! against one database; schemas that a killed run left behind are dropped an hour later.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx_core::connection::Connection;
use sqlx_core::executor::Executor;
use sqlx_core::query::query;
use sqlx_core::query_scalar::query_scalar;
use sqlx_core::sql_str::AssertSqlSafe;
use sqlx_postgres::{PgConnectOptions, PgConnection, PgPoolOptions, Postgres};

use super::retry::{self, Access};
use super::{PostgresStore, PostgresUrl};
use crate::store::tests::{self as conformance, conformance_tests};
use crate::store::tracking_tests::{self, tracking_conformance_tests};
use crate::store::{ExperimentState, Store, StoreError, TrialOutcome, TrialState};

/// The variable naming the test server.
const SERVER_VARIABLE: &str = "TUNEFLOW_TEST_POSTGRES";

/// The prefix of every test schema's name.
const SCHEMA_PREFIX: &str = "tuneflow_test_";

/// Test schemas older than this are taken for leftovers of killed runs and dropped.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The test server's URL, or `None` (with a notice) when the tests are to be skipped.
fn server() -> Option<String> {
    match std::env::var(SERVER_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "notice: {SERVER_VARIABLE} is not set; skipping the PostgreSQL store tests \
                 (set it to a server URL, e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A connection to the test server outside any store, for setting up and inspecting.
async fn admin(url: &str) -> PgConnection {
    let options = PgConnectOptions::from_str(url).unwrap_or_else(|e| {
        panic!(
            "{SERVER_VARIABLE}={} is not a PostgreSQL URL: {e}",
            super::redact(url)
        )
    });
    match tokio::time::timeout(
        Duration::from_secs(10),
        PgConnection::connect_with(&options),
    )
    .await
    {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => panic!(
            "{SERVER_VARIABLE}={}: cannot connect to the PostgreSQL test server: {e}",
            super::redact(url)
        ),
        Err(_) => panic!(
            "{SERVER_VARIABLE}={}: the PostgreSQL test server did not answer within 10 s",
            super::redact(url)
        ),
    }
}

/// A schema of its own for one test, dropped (best effort) when this is dropped.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    /// Creates a schema with a new name, first dropping stale ones.
    async fn new(url: &str) -> Schema {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970");
        let unique = {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(now.as_nanos());
            hasher.write_u32(std::process::id());
            hasher.write_usize(COUNTER.fetch_add(1, Ordering::Relaxed));
            hasher.finish()
        };
        let name = format!("{SCHEMA_PREFIX}{}_{unique:016x}", now.as_secs());
        let mut connection = admin(url).await;
        drop_stale_schemas(&mut connection, now).await;
        connection
            .execute(AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .await
            .expect("create a test schema");
        Schema {
            url: url.to_string(),
            name,
        }
    }

    /// Connect options whose connections work in this schema and are named after it.
    fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url)
            .expect("a valid URL")
            .options([("search_path", self.name.as_str())])
            .application_name(&self.name)
    }

    /// A store on this schema: a pool of its own, as another server would have.
    async fn open(&self) -> PostgresStore {
        PostgresStore::connect(self.options(), format!("test schema {}", self.name), 4)
            .await
            .unwrap_or_else(|e| panic!("open a PostgreSQL store in {}: {e}", self.name))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread with a
        // runtime of its own does the work.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok(options) = PgConnectOptions::from_str(&url) else {
                    return;
                };
                if let Ok(mut connection) = PgConnection::connect_with(&options).await {
                    // Never wait long for a lock: a schema left behind is dropped later.
                    let _ = connection.execute("SET lock_timeout = '5s'").await;
                    let _ = connection
                        .execute(AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                        )))
                        .await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// Drops the test schemas made more than [`STALE_AFTER`] before `now` (their names say when).
async fn drop_stale_schemas(connection: &mut PgConnection, now: Duration) {
    let names: Vec<String> = query_scalar::<Postgres, String>(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, $1)",
    )
    .bind(SCHEMA_PREFIX)
    .fetch_all(&mut *connection)
    .await
    .unwrap_or_default();
    for name in names {
        let made = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if made.is_some_and(|made| made + STALE_AFTER.as_secs() < now.as_secs()) {
            // Another test may be dropping it too: failures do not matter.
            let _ = connection
                .execute(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .await;
        }
    }
}

/// A new store in a schema of its own, or nothing when no test server is set.
struct Fixture {
    ready: Option<(PostgresStore, Schema)>,
}

impl Fixture {
    fn store(&self) -> Option<&dyn Store> {
        self.ready.as_ref().map(|(store, _)| store as &dyn Store)
    }
}

async fn fresh() -> Fixture {
    let Some(url) = server() else {
        return Fixture { ready: None };
    };
    let schema = Schema::new(&url).await;
    let store = schema.open().await;
    Fixture {
        ready: Some((store, schema)),
    }
}

conformance_tests!(fresh);
tracking_conformance_tests!(fresh);

#[tokio::test]
async fn reopening_keeps_everything() {
    let Some(url) = server() else { return };
    let schema = Schema::new(&url).await;
    conformance::reopening_keeps_everything(|| async {
        Box::new(schema.open().await) as Box<dyn Store>
    })
    .await;
}

#[tokio::test]
async fn opening_again_applies_no_migration_twice() {
    let Some(url) = server() else { return };
    let schema = Schema::new(&url).await;
    let first = schema.open().await;
    let second = schema.open().await;
    let applied: i64 =
        query_scalar::<Postgres, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(second.pool())
            .await
            .expect("read the migrations table");
    assert_eq!(applied, super::migrate::latest());
    let experiment = conformance::experiment(&first, "migrated-once").await;
    assert_eq!(
        second
            .experiment("migrated-once")
            .await
            .expect("read")
            .map(|e| e.id),
        Some(experiment.id)
    );
}

/// Two stores with separate pools (two servers, in effect) and four tasks each race to fill
/// an experiment capped at 20 trials, 4 unfinished at a time, finishing trials as they go.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_servers_never_break_the_trial_caps() {
    const MAX_TRIALS: u64 = 20;
    const PARALLEL: u64 = 4;
    let Some(url) = server() else { return };
    let schema = Schema::new(&url).await;
    let servers = [schema.open().await, schema.open().await];
    let mut spec = conformance::spec("race");
    spec.max_trial_count = Some(MAX_TRIALS as u32);
    spec.parallel_trial_count = PARALLEL as u32;
    let experiment = servers[0]
        .create_experiment(&spec, "race", 1)
        .await
        .expect("create");
    let spec = Arc::new(spec);

    let mut tasks = Vec::new();
    for worker in 0..8usize {
        let store = servers[worker % 2].clone();
        let spec = spec.clone();
        let experiment_id = experiment.id;
        tasks.push(tokio::spawn(async move {
            let mut created = 0;
            loop {
                let trials = store.trials(experiment_id).await.expect("trials");
                let unfinished = trials.iter().filter(|t| !t.state.is_final()).count() as u64;
                assert!(unfinished <= PARALLEL, "{unfinished} unfinished trials");
                assert!(trials.len() as u64 <= MAX_TRIALS, "{} trials", trials.len());
                if trials.len() as u64 == MAX_TRIALS {
                    return created;
                }
                let index = trials.len() as u64;
                let state = if worker % 2 == 0 {
                    TrialState::Pending
                } else {
                    TrialState::Running
                };
                let new = [conformance::new_trial("race", index, state)];
                match store.create_trials(experiment_id, &spec, &new).await {
                    Ok(mine) => {
                        created += 1;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        let outcome = TrialOutcome {
                            state: TrialState::Succeeded,
                            objective: Some(index as f64),
                            message: None,
                            step: None,
                        };
                        store
                            .finish_trial(mine[0].id, experiment_id, &outcome, &[])
                            .await
                            .expect("finish");
                    }
                    Err(StoreError::Conflict(_)) => tokio::task::yield_now().await,
                    Err(other) => panic!("create_trials failed: {other}"),
                }
            }
        }));
    }
    let mut created = 0;
    for task in tasks {
        created += tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("the race ends")
            .expect("no task panicked");
    }
    let trials = servers[1].trials(experiment.id).await.expect("trials");
    assert_eq!(created, MAX_TRIALS as usize, "every success is stored");
    assert_eq!(trials.len() as u64, MAX_TRIALS);
    for (position, trial) in trials.iter().enumerate() {
        assert_eq!(trial.index, position as u64, "indices 0..20 without gaps");
        assert_eq!(trial.name, format!("race-{position:04}"), "no name twice");
        assert_eq!(trial.state, TrialState::Succeeded);
    }
}

/// Of eight claims racing from two servers, exactly one wins and the others name it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claims_have_one_winner() {
    fn alive(_: &str) -> bool {
        true
    }
    let Some(url) = server() else { return };
    let schema = Schema::new(&url).await;
    let servers = [schema.open().await, schema.open().await];
    let experiment = conformance::experiment(&servers[0], "claim-race").await;
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = servers[worker % 2].clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("host:{worker}");
            let held = store
                .claim_experiment(experiment.id, &owner, alive)
                .await
                .expect("claim");
            (owner, held)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("no task panicked"));
    }
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, held)| held.is_none())
        .map(|(owner, _)| owner)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (_, held) in &results {
        if let Some(holder) = held {
            assert_eq!(holder, winners[0], "every loser names the winner");
        }
    }
}

/// A transaction whose connection an administrator ends while it waits for a lock is run
/// again on a new connection, and the write is recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_mid_transaction_is_retried() {
    let Some(url) = server() else { return };
    let schema = Schema::new(&url).await;
    let store = schema.open().await;
    let experiment = conformance::experiment(&store, "lost").await;

    // Hold the experiment's row so that create_trials waits inside its transaction.
    let mut blocker = admin(&url).await;
    blocker
        .execute(AssertSqlSafe(format!(
            "SET search_path TO \"{}\"",
            schema.name
        )))
        .await
        .expect("search path");
    let mut holding = blocker.begin().await.expect("begin");
    query::<Postgres>("SELECT id FROM experiments WHERE id = $1 FOR UPDATE")
        .bind(experiment.id)
        .execute(&mut *holding)
        .await
        .expect("lock the experiment");

    let waiting = {
        let store = store.clone();
        let spec = experiment.spec.clone();
        tokio::spawn(async move {
            let new = [conformance::new_trial("lost", 0, TrialState::Pending)];
            store.create_trials(experiment.id, &spec, &new).await
        })
    };

    // End the store's backend once it waits on the lock.
    let mut killer = admin(&url).await;
    let mut terminated = false;
    for _ in 0..200 {
        let ended: Vec<bool> = query_scalar::<Postgres, bool>(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&schema.name)
        .fetch_all(&mut killer)
        .await
        .expect("terminate");
        if ended.iter().any(|ended| *ended) {
            terminated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(terminated, "create_trials never waited on the lock");
    holding.rollback().await.expect("release the lock");

    let created = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the retry finishes")
        .expect("no panic")
        .expect("create_trials succeeds on a new connection");
    assert_eq!(created.len(), 1);
    let stored = store.trials(experiment.id).await.expect("trials");
    assert_eq!(stored, created, "recorded once");
}

/// Every pooled connection ended between two operations: the next one still succeeds.
#[tokio::test]
async fn operations_succeed_after_the_pools_connections_are_ended() {
    let Some(url) = server() else { return };
    let schema = Schema::new(&url).await;
    let store = schema.open().await;
    let experiment = conformance::experiment(&store, "restart").await;
    let mut killer = admin(&url).await;
    let ended: Vec<bool> = query_scalar::<Postgres, bool>(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&schema.name)
    .fetch_all(&mut killer)
    .await
    .expect("terminate");
    assert!(!ended.is_empty(), "the pool had connections");
    store
        .set_experiment_state(experiment.id, ExperimentState::Running, None, None)
        .await
        .expect("a write after the connections were ended");
    let read = store
        .experiment("restart")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(read.state, ExperimentState::Running);
}

/// How the outcome of a COMMIT whose answer was lost is found: by the transaction's id.
#[tokio::test]
async fn a_lost_commit_is_resolved_by_its_transaction_id() {
    let Some(url) = server() else { return };
    let schema = Schema::new(&url).await;
    let store = schema.open().await;
    let mut connection = admin(&url).await;
    let marker_of = async |connection: &mut PgConnection, commit: bool| {
        let mut transaction = connection.begin().await.expect("begin");
        let marker: (i64, i64) = sqlx_core::query_as::query_as::<Postgres, (i64, i64)>(
            "SELECT txid_current(), \
             (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::int8",
        )
        .fetch_one(&mut *transaction)
        .await
        .expect("marker");
        if commit {
            transaction.commit().await.expect("commit");
        } else {
            transaction.rollback().await.expect("rollback");
        }
        marker
    };
    let committed = marker_of(&mut connection, true).await;
    let aborted = marker_of(&mut connection, false).await;
    let window = Duration::from_secs(5);
    assert_eq!(
        retry::outcome_for_tests(store.pool(), window, committed).await,
        "committed"
    );
    assert_eq!(
        retry::outcome_for_tests(store.pool(), window, aborted).await,
        "not committed"
    );
    let restarted = (committed.0, committed.1 - 1);
    assert!(
        retry::outcome_for_tests(store.pool(), window, restarted)
            .await
            .starts_with("unknown: the server restarted"),
        "a committed id after a restart proves nothing"
    );
    let future = (committed.0 + 1_000_000_000, committed.1);
    assert_eq!(
        retry::outcome_for_tests(store.pool(), window, future).await,
        "not committed",
        "an id the server never gave out never committed"
    );
}

/// With the server gone, an operation is retried for the window, then fails with a message
/// that says so.
#[tokio::test]
async fn an_unreachable_server_fails_after_the_retry_window() {
    // Port 1 on the loopback: nothing listens, the connection is refused at once.
    let options = PgConnectOptions::from_str("postgres://tuneflow:secret@127.0.0.1:1/nowhere")
        .expect("a valid URL");
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy_with(options);
    let started = std::time::Instant::now();
    let result = retry::transaction(
        &pool,
        Duration::from_secs(1),
        Access::Read,
        "probe",
        &(),
        |connection, ()| {
            Box::pin(async move {
                query::<Postgres>("SELECT 1").execute(connection).await?;
                Ok(())
            })
        },
    )
    .await;
    let error = result.expect_err("nothing listens there");
    let message = error.to_string();
    assert!(matches!(error, StoreError::Query(_)), "{error:?}");
    assert!(message.contains("probe: gave up after"), "{message}");
    assert!(!message.contains("secret"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Opening a store on a server that is not there names the server, not the password.
#[tokio::test]
async fn opening_an_unreachable_server_says_where() {
    let url =
        PostgresUrl::parse("postgres://tuneflow:secret@127.0.0.1:1/nowhere").expect("a valid URL");
    let error = PostgresStore::open(&url)
        .await
        .expect_err("nothing listens there");
    let message = format!("{error}: {:?}", std::error::Error::source(&error));
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(message.contains("nowhere"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}

/// A store written before migration 0004 (the tracking tables) gets them filled in from its
/// experiments, trials and observations, as the SQLite store does; parameter values become
/// params written as tuneflow writes them.
#[tokio::test]
async fn a_store_made_before_the_tracking_tables_gets_them_filled_in() {
    let Some(url) = server() else { return };
    let schema = Schema::new(&url).await;
    {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(schema.options())
            .await
            .expect("connect");
        super::migrate::migrate_to(&pool, 3)
            .await
            .expect("the schema before tracking");
        for name in ["old", "Default"] {
            // Specs refuse "Default" (not a DNS label); the store takes any name.
            let mut spec = conformance::spec("old");
            spec.name = name.to_string();
            query::<Postgres>(
                "INSERT INTO experiments (name, spec, document, seed, state, created_at, \
                 started_at) VALUES ($1, $2, 'doc', 5, 'Interrupted', 1000, 1100)",
            )
            .bind(name)
            .bind(serde_json::to_string(&spec).expect("spec"))
            .execute(&pool)
            .await
            .expect("experiment");
        }
        for statement in [
            "INSERT INTO events (experiment_id, trial_id, timestamp, kind) \
             VALUES (1, NULL, 1900, 'Interrupted')",
            "INSERT INTO trials (experiment_id, idx, name, state, parameters, objective, \
             attempts, created_at, started_at, completed_at, step) VALUES \
             (1, 0, 'old-0000', 'Succeeded', '{\"n\":3,\"x\":1e-05,\"opt\":\"adam\"}', 0.5, 1, \
              1000, 1200, 1300, 2), \
             (1, 1, 'old-0001', 'Pending', '{\"n\":4,\"x\":1.0,\"opt\":\"sgd\"}', NULL, 0, 1000, \
              NULL, NULL, NULL), \
             (2, 0, 'Default-0000', 'EarlyStopped', '{\"n\":5,\"x\":0.25,\"opt\":\"sgd\"}', NULL, \
              1, 1000, 1200, 1400, 1)",
            "INSERT INTO observations (trial_id, metric, step, value, timestamp) VALUES \
             (1, 'loss', 0, 0.9, 1201), (1, 'loss', 2, 0.5, 1203), (1, 'loss', 1, 0.7, 1202), \
             (1, 'loss', 2, 0.4, 1203), (1, 'accuracy', 0, 0.1, 1201), \
             (3, 'loss', 0, 0.8, 1201)",
        ] {
            query::<Postgres>(statement)
                .execute(&pool)
                .await
                .expect("rows");
        }
        pool.close().await;
    }
    let store = schema.open().await;
    tracking_tests::check_backfilled(&store).await;
}

/// Eight batches from two servers log one new param with eight values to one run: the first
/// is written, every other one is a conflict, never a duplicate-key error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_params_have_one_winner() {
    use crate::store::tracking::{DEFAULT_EXPERIMENT_ID, KeyValue, NewRun, Tracking};
    let Some(url) = server() else { return };
    let schema = Schema::new(&url).await;
    let servers = [schema.open().await, schema.open().await];
    let run = servers[0]
        .create_run(&NewRun {
            experiment_id: DEFAULT_EXPERIMENT_ID,
            name: "param-race".to_string(),
            user_id: "test".to_string(),
            start_time: 1,
            tags: Vec::new(),
        })
        .await
        .expect("create run");
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = servers[worker % 2].clone();
        let run_id = run.run_id.clone();
        tasks.push(tokio::spawn(async move {
            let value = format!("v{worker}");
            let logged = store
                .log_batch(&run_id, &[], &[KeyValue::new("lr", &value)], &[])
                .await;
            (value, logged)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("no task panicked") {
            (value, Ok(())) => winners.push(value),
            (_, Err(StoreError::Conflict(_))) => {}
            (_, Err(other)) => panic!("log_batch failed otherwise: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = servers[1]
        .run(&run.run_id)
        .await
        .expect("read")
        .expect("the run");
    assert_eq!(stored.params, [KeyValue::new("lr", &winners[0])]);
}

/// Keys come back in byte order, as from SQLite, whatever the database's collation.
#[tokio::test]
async fn keys_are_listed_in_byte_order() {
    use crate::store::tracking::{DEFAULT_EXPERIMENT_ID, KeyValue, NewRun, Tracking};
    let Some(url) = server() else { return };
    let schema = Schema::new(&url).await;
    let store = schema.open().await;
    let run = store
        .create_run(&NewRun {
            experiment_id: DEFAULT_EXPERIMENT_ID,
            name: "order".to_string(),
            user_id: "test".to_string(),
            start_time: 1,
            tags: Vec::new(),
        })
        .await
        .expect("create run");
    let params: Vec<KeyValue> = ["b", "B", "a", "_x", "Ä"]
        .into_iter()
        .map(|key| KeyValue::new(key, "1"))
        .collect();
    store
        .log_batch(&run.run_id, &[], &params, &[])
        .await
        .expect("log");
    let keys = |run: &crate::store::tracking::Run| -> Vec<String> {
        run.params.iter().map(|p| p.key.clone()).collect()
    };
    let read = store.run(&run.run_id).await.expect("read").expect("run");
    assert_eq!(keys(&read), ["B", "_x", "a", "b", "Ä"]);
    let listed = store.runs(&[DEFAULT_EXPERIMENT_ID]).await.expect("runs");
    assert_eq!(keys(&listed[0]), ["B", "_x", "a", "b", "Ä"]);
}
