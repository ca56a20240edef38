//! Several `tuneflow serve` processes on one PostgreSQL database, serving one client-driven
//! experiment together: workers ask one server and report to it or to the other, and no trial
//! is handed out twice, none is lost, the limits hold across the servers, and the experiment
//! ends when the last trial does, whichever server hears of it.
//!
//! Needs PostgreSQL: `TUNEFLOW_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test`
//! (`.ci/run` sets it). Without it the test says so and passes; with it, an unreachable
//! server fails the test.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::World;
use common::server::{Server, client_experiment};
use serde_json::json;
use sqlx_core::connection::Connection;
use sqlx_core::executor::Executor;
use sqlx_core::sql_str::AssertSqlSafe;
use sqlx_postgres::PgConnection;

/// The PostgreSQL URL the tests may use, if any.
fn postgres_url() -> Option<String> {
    match std::env::var("TUNEFLOW_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("TUNEFLOW_TEST_POSTGRES is not set: skipping the PostgreSQL test");
            None
        }
    }
}

/// A name no earlier run used in the shared database.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A schema of the test's own in the shared database, so that the servers migrate a fresh
/// store and leave nothing behind; dropped at the end of the test.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    async fn create(url: &str, name: &str) -> Schema {
        let mut admin = PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("TUNEFLOW_TEST_POSTGRES={url} cannot be reached: {e}"));
        admin
            .execute(AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .await
            .expect("create the test schema");
        Schema {
            url: url.to_string(),
            name: name.to_string(),
        }
    }

    /// The store URL whose connections work in this schema.
    fn url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.url, self.name
        )
    }

    async fn drop_now(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.url).await {
            let _ = admin
                .execute(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    self.name
                )))
                .await;
        }
    }
}

/// What one worker did.
#[derive(Default)]
struct Work {
    handed_out: Vec<String>,
    races: usize,
}

/// Asks `ask` for one trial at a time and completes it through `tell`, until the experiment
/// is done.
async fn worker(ask: Arc<Server>, tell: Arc<Server>, name: String) -> Work {
    let mut work = Work::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let answer = ask.suggest(&name, 1).await;
        let Some(trial) = answer["trials"].as_array().and_then(|t| t.first()).cloned() else {
            if answer["done"] == json!(true) {
                return work;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let trial_name = trial["name"].as_str().expect("trial name").to_string();
        let x = trial["parameters"]["x"].as_f64().expect("x");
        let (status, body) = tell
            .complete(
                &name,
                &trial_name,
                json!({"metrics": {"loss": (x - 0.3).powi(2)}}),
            )
            .await;
        if status == 409 {
            work.races += 1;
        } else {
            assert_eq!(status, 200, "complete {trial_name}: {body}");
        }
        work.handed_out.push(trial_name);
    }
    panic!("the experiment did not finish in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_and_eight_workers_never_duplicate_or_lose_a_trial() {
    let Some(url) = postgres_url() else {
        return;
    };
    let world = World::new();
    let schema = Schema::create(&url, &unique("tuneflow_shared").replace('-', "_")).await;
    let store = schema.url();
    let a = Arc::new(Server::start(&world, &["--store", &store]));
    let b = Arc::new(Server::start(&world, &["--store", &store]));
    let name = unique("shared");
    let max = 48;
    a.create(client_experiment(
        &name,
        json!({"maxTrialCount": max, "parallelTrialCount": 6,
               "algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "n_startup_trials", "value": "10"}]}}),
    ))
    .await;

    let workers: Vec<_> = (0..8)
        .map(|i| {
            // Half the workers report to the server they asked, half to the other one.
            let (ask, tell) = match i % 4 {
                0 => (a.clone(), b.clone()),
                1 => (b.clone(), a.clone()),
                2 => (a.clone(), a.clone()),
                _ => (b.clone(), b.clone()),
            };
            tokio::spawn(worker(ask, tell, name.clone()))
        })
        .collect();
    let mut handed_out = Vec::new();
    for worker in workers {
        let work = worker.await.expect("worker");
        assert_eq!(work.races, 0, "no completion raced another");
        handed_out.extend(work.handed_out);
    }

    let unique_names: HashSet<String> = handed_out.iter().cloned().collect();
    assert_eq!(
        unique_names.len(),
        handed_out.len(),
        "a trial was handed out twice"
    );
    assert_eq!(handed_out.len(), max, "exactly maxTrialCount trials");
    for server in [&a, &b] {
        let (status, experiment) = server.get(&format!("/api/v1/experiments/{name}")).await;
        assert_eq!(status, 200, "{experiment}");
        assert_eq!(experiment["state"], "Succeeded", "{experiment}");
        let (status, trials) = server
            .get(&format!("/api/v1/experiments/{name}/trials"))
            .await;
        assert_eq!(status, 200, "{trials}");
        let trials = trials["trials"].as_array().expect("trials");
        assert_eq!(trials.len(), max, "no trial lost or added");
        for trial in trials {
            assert_eq!(trial["state"], "Succeeded", "{trial}");
            let trial_name = trial["name"].as_str().unwrap_or("");
            assert!(
                unique_names.contains(trial_name),
                "{trial_name} was never handed out"
            );
        }
    }
    drop((a, b));
    schema.drop_now().await;
}
