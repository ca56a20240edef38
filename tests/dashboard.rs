//! The dashboard's side of the server, over HTTP against the real binary: the data routes the
//! plots read (columns with a cursor, curves, importance, document, events, logs), the stop
//! request from the API and from `tuneflow stop`, the read-only `tuneflow dashboard` beside a
//! running `tuneflow run`, the page's files and their security headers. What the page draws
//! is tested in a real browser (`tests/browser/`).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::server::{Server, client_experiment};
use common::{World, text, x_experiment};
use reqwest::Method;
use serde_json::{Value, json};

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The values of a JSON array of numbers.
fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

/// Seeds `name` on `server`: `count` trials with 5 observations each of `loss` (falling to
/// `x`) and `acc`, completed with loss = x; the trials at indices in `failed` fail.
async fn seed(server: &Server, name: &str, count: u32, failed: &[usize]) -> Vec<Value> {
    server
        .create(client_experiment(
            name,
            json!({
                "maxTrialCount": 100,
                "parallelTrialCount": 100,
                "objective": {"type": "minimize", "objectiveMetricName": "loss",
                              "additionalMetricNames": ["acc"]},
            }),
        ))
        .await;
    let trials = server.suggest(name, count).await["trials"]
        .as_array()
        .expect("trials")
        .clone();
    for (position, trial) in trials.iter().enumerate() {
        let trial_name = trial["name"].as_str().expect("name");
        let x = trial["parameters"]["x"].as_f64().expect("x");
        for step in 0..5 {
            let (status, body) = server
                .post(
                    &format!("/api/v1/experiments/{name}/trials/{trial_name}/observations"),
                    json!({"step": step, "metrics": {"loss": x + 1.0 / f64::from(step + 1), "acc": 0.1 * f64::from(step)}}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        let body = if failed.contains(&position) {
            json!({"state": "failed", "message": "diverged"})
        } else {
            json!({"metrics": {"loss": x}})
        };
        let (status, body) = server.complete(name, trial_name, body).await;
        assert_eq!(status, 200, "{body}");
    }
    trials
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_curves_importance_and_events_describe_an_experiment() {
    let world = World::new();
    let server = Server::start(&world, &[]);
    let trials = seed(&server, "plots", 30, &[3, 7]).await;

    let (status, columns) = server.get("/api/v1/experiments/plots/columns").await;
    assert_eq!(status, 200, "{columns}");
    assert_eq!(columns["full"], true);
    assert_eq!(columns["metrics"], json!(["loss", "acc"]));
    assert_eq!(columns["objective"]["direction"], "minimize");
    assert_eq!(columns["experiment"]["state"], "Running");
    let parameters = columns["parameters"].as_array().expect("parameters");
    assert_eq!(parameters.len(), 3);
    assert_eq!(parameters[0]["name"], "x");
    assert_eq!(parameters[0]["type"], "double");
    assert_eq!(
        (parameters[0]["min"].as_f64(), parameters[0]["max"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    assert_eq!(parameters[1]["type"], "int");
    assert_eq!(parameters[2]["type"], "categorical");
    assert_eq!(parameters[2]["values"], json!(["adam", "sgd"]));
    let columns_of = &columns["trials"];
    assert_eq!(columns_of["index"].as_array().expect("index").len(), 30);
    let states: Vec<&str> = columns_of["state"]
        .as_array()
        .expect("state")
        .iter()
        .map(|s| s.as_str().expect("state"))
        .collect();
    assert_eq!(states.iter().filter(|s| **s == "Failed").count(), 2);
    assert_eq!(states[3], "Failed");
    assert_eq!(columns_of["message"][3], "diverged");
    // Each column lines up with the trials as suggested.
    for (i, trial) in trials.iter().enumerate() {
        assert_eq!(columns_of["name"][i], trial["name"]);
        assert_eq!(columns_of["parameters"]["x"][i], trial["parameters"]["x"]);
        assert_eq!(
            columns_of["parameters"]["opt"][i],
            trial["parameters"]["opt"]
        );
        if !matches!(i, 3 | 7) {
            assert_eq!(columns_of["objective"][i], trial["parameters"]["x"]);
        }
        let (created, completed) = (
            columns_of["created"][i].as_i64().expect("created ms"),
            columns_of["completed"][i].as_i64().expect("completed ms"),
        );
        assert!(
            created > 1_600_000_000_000 && completed >= created,
            "milliseconds"
        );
    }

    // Every observation of one metric, by trial and step; and of some trials only.
    let (status, curves) = server
        .get("/api/v1/experiments/plots/observations?metric=acc")
        .await;
    assert_eq!(status, 200, "{curves}");
    assert_eq!(curves["value"].as_array().expect("values").len(), 150);
    let (status, curves) = server
        .get("/api/v1/experiments/plots/observations?trials=1,0")
        .await;
    assert_eq!(status, 200, "{curves}");
    assert_eq!(curves["metric"], "loss", "the objective by default");
    // Five reports, and the final value, which counts at the last step reported.
    let expected: Vec<f64> = [0.0; 6].iter().chain(&[1.0; 6]).copied().collect();
    assert_eq!(numbers(&curves["trial"]), expected);
    assert_eq!(
        numbers(&curves["step"])[..6],
        [0.0, 1.0, 2.0, 3.0, 4.0, 4.0]
    );

    // The loss is x: x carries the importance.
    let (status, importance) = server.get("/api/v1/experiments/plots/importance").await;
    assert_eq!(status, 200, "{importance}");
    assert_eq!(importance["method"], "fanova");
    assert_eq!(importance["trials"], 28, "the succeeded trials");
    assert_eq!(importance["parameters"][0]["name"], "x", "{importance}");
    assert!(
        importance["parameters"][0]["importance"]
            .as_f64()
            .expect("share")
            > 0.7,
        "{importance}"
    );
    let total: f64 = importance["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["importance"].as_f64().expect("share"))
        .sum();
    assert!((total - 1.0).abs() < 1e-9, "{importance}");
    let (status, by_acc) = server
        .get("/api/v1/experiments/plots/importance?metric=acc")
        .await;
    assert_eq!(
        (status, &by_acc["metric"]),
        (200, &json!("acc")),
        "{by_acc}"
    );

    // The document as posted, a trial's events, and no log for a client's trial.
    let (status, document) = server.get("/api/v1/experiments/plots/document").await;
    assert_eq!(status, 200);
    let posted: Value =
        serde_json::from_str(document["document"].as_str().expect("text")).expect("JSON as posted");
    assert_eq!(posted["metadata"]["name"], "plots");
    let (status, events) = server
        .get("/api/v1/experiments/plots/trials/plots-0003/events")
        .await;
    assert_eq!(status, 200, "{events}");
    let entered: Vec<&Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["state"])
        .collect();
    assert_eq!(entered, [&json!("Running"), &json!("Failed")]);
    assert_eq!(events["events"][1]["message"], "diverged");
    assert!(
        events["events"][0]["timestamp"]
            .as_str()
            .expect("time")
            .ends_with('Z')
    );
    let (status, log) = server
        .get("/api/v1/experiments/plots/trials/plots-0003/log")
        .await;
    assert_eq!(status, 404, "{log}");
    assert!(
        log["error"]["message"]
            .as_str()
            .expect("message")
            .contains("no log")
    );

    // Bad input names what is wrong.
    for (path, status, needle) in [
        (
            "/api/v1/experiments/plots/columns?since=yesterday",
            400,
            "not a cursor",
        ),
        (
            "/api/v1/experiments/plots/observations?trials=1,x",
            400,
            "`x` is not a trial index",
        ),
        (
            "/api/v1/experiments/plots/observations?colour=red",
            400,
            "colour",
        ),
        ("/api/v1/experiments/nope/columns", 404, "nope"),
        (
            "/api/v1/experiments/plots/trials/plots-9999/events",
            404,
            "plots-9999",
        ),
    ] {
        let (got, body) = server.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{path}: {message}");
    }

    // The cursor: after a quiet moment, only what changes comes back.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (_, quiet) = server.get("/api/v1/experiments/plots/columns").await;
    let cursor = quiet["cursor"].as_str().expect("cursor").to_string();
    let (status, unchanged) = server
        .get(&format!("/api/v1/experiments/plots/columns?since={cursor}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(unchanged["full"], false);
    assert_eq!(unchanged["trials"]["index"], json!([]), "{unchanged}");
    let next = server.suggest("plots", 1).await;
    let (_, changed) = server
        .get(&format!("/api/v1/experiments/plots/columns?since={cursor}"))
        .await;
    assert_eq!(
        changed["trials"]["name"],
        json!([next["trials"][0]["name"]]),
        "{changed}"
    );
    assert_eq!(changed["trials"]["state"], json!(["Running"]));

    // The routes are in the OpenAPI document, and large answers are compressed.
    let (_, openapi) = server.get("/openapi.json").await;
    for route in [
        "/api/v1/info",
        "/api/v1/experiments/{name}/columns",
        "/api/v1/experiments/{name}/observations",
        "/api/v1/experiments/{name}/importance",
        "/api/v1/experiments/{name}/document",
        "/api/v1/experiments/{name}/stop",
        "/api/v1/experiments/{name}/trials/{trial}/events",
        "/api/v1/experiments/{name}/trials/{trial}/log",
    ] {
        assert!(openapi["paths"][route].is_object(), "{route} is documented");
    }
    let response = server
        .request(Method::GET, "/api/v1/experiments/plots/observations")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("send");
    assert_eq!(
        response
            .headers()
            .get("content-encoding")
            .map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_served_experiment_keeps_its_data_and_it_resumes() {
    let world = World::new();
    world.write(
        "trial.sh",
        "echo \"starting x=$1\"\necho loss=$1\nif [ -e hold ]; then sleep 60; fi\necho done\n",
    );
    world.write("hold", "");
    let server = Server::start(&world, &[]);
    let document = x_experiment(
        "served",
        "maxTrialCount: 4\nparallelTrialCount: 2",
        "command: [sh, trial.sh, \"${parameters.x}\"]",
    );
    let response = server
        .request(Method::POST, "/api/v1/experiments")
        .header("content-type", "application/yaml")
        .body(document.clone())
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);

    // Two trials hold; the first one's log shows what it printed.
    eventually(Duration::from_secs(20), "two running trials", || async {
        let (_, columns) = server.get("/api/v1/experiments/served/columns").await;
        let running = columns["trials"]["state"]
            .as_array()?
            .iter()
            .filter(|s| *s == "Running")
            .count();
        (running == 2).then_some(())
    })
    .await;
    let log = eventually(Duration::from_secs(10), "the log's first lines", || async {
        let (status, log) = server
            .get("/api/v1/experiments/served/trials/served-0000/log?lines=1")
            .await;
        (status == 200 && log["lines"].as_array().is_some_and(|l| !l.is_empty())).then_some(log)
    })
    .await;
    assert_eq!(log["source"], "file");
    assert!(
        log["path"]
            .as_str()
            .expect("path")
            .ends_with("served/served-0000.log")
    );
    assert_eq!(log["lines"].as_array().expect("lines").len(), 1, "{log}");

    let (status, stopped) = server
        .post("/api/v1/experiments/served/stop", json!({}))
        .await;
    assert_eq!(status, 202, "{stopped}");
    let ended = eventually(
        Duration::from_secs(10),
        "the experiment to stop",
        || async {
            let (_, experiment) = server.get("/api/v1/experiments/served").await;
            (experiment["state"] == "Interrupted").then_some(experiment)
        },
    )
    .await;
    assert_eq!(ended["reason"], "Stopped", "{ended}");
    assert_eq!(ended["trials"]["running"], 0);
    assert_eq!(ended["trials"]["killed"], 2, "{ended}");
    let (status, again) = server
        .post("/api/v1/experiments/served/stop", json!({}))
        .await;
    assert_eq!(status, 409, "{again}");
    assert!(
        again["error"]["message"]
            .as_str()
            .expect("message")
            .contains("Interrupted")
    );
    drop(server);

    // Running it again resumes it: the stopped trials run again, and it finishes.
    std::fs::remove_file(world.path("hold")).expect("release the trials");
    let file = world.write("served.yaml", &document);
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert!(output.status.success(), "{}", text(&output));
    let experiment = world.experiment("served");
    assert_eq!(experiment["state"], "Succeeded", "{experiment}");
    assert_eq!(experiment["trials"]["succeeded"], 4, "{experiment}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_dashboard_watches_a_run_and_tuneflow_stop_ends_it() {
    let world = World::new();
    world.write("trial.sh", "echo loss=$1\nsleep 60\n");
    let file = world.write(
        "long.yaml",
        &x_experiment(
            "long",
            "maxTrialCount: 6\nparallelTrialCount: 2",
            "command: [sh, trial.sh, \"${parameters.x}\"]",
        ),
    );
    let mut run = world
        .tuneflow()
        .args(["run", file.to_str().expect("path")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tuneflow run");

    let dashboard = Server::dashboard(&world, &[]);
    let (_, info) = dashboard.get("/api/v1/info").await;
    assert_eq!(info["readOnly"], true, "{info}");
    eventually(
        Duration::from_secs(20),
        "the run's trials in the dashboard",
        || async {
            let (status, columns) = dashboard.get("/api/v1/experiments/long/columns").await;
            let running = columns["trials"]["state"]
                .as_array()
                .map(|s| s.iter().filter(|s| *s == "Running").count());
            (status == 200 && running == Some(2)).then_some(())
        },
    )
    .await;

    // Nothing that would change the store is served.
    let (status, refused) = dashboard
        .post(
            "/api/v1/experiments",
            client_experiment("sneaky", json!({})),
        )
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (403, &json!("read_only")),
        "{refused}"
    );
    let (status, _) = dashboard
        .post("/api/v1/experiments/long/stop", json!({}))
        .await;
    assert_eq!(status, 403);
    let (status, _) = dashboard
        .get("/api/2.0/mlflow/experiments/create?name=sneaky")
        .await;
    assert_eq!(
        status, 403,
        "MLflow writes are refused whatever their method"
    );
    let (status, runs) = dashboard
        .post(
            "/api/2.0/mlflow/runs/search",
            json!({"experiment_ids": ["1"]}),
        )
        .await;
    assert_eq!(status, 200, "MLflow searches are reads: {runs}");
    let (status, _) = dashboard.get("/api/v1/experiments/sneaky").await;
    assert_eq!(status, 404, "nothing was created");

    // The page itself, with its security headers.
    let page = dashboard
        .request(Method::GET, "/")
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(
        !csp.split(';')
            .any(|d| d.trim().starts_with("script-src") && d.contains("unsafe-inline")),
        "{csp}"
    );
    let html = page.text().await.expect("html");
    assert!(html.contains("<script type=\"module\""), "{html}");
    assert!(!html.contains("<script>"), "no inline script");
    let (status, _) = dashboard.get("/ui/vendor/echarts.min.js").await;
    assert_eq!(status, 200);
    let (status, _) = dashboard.get("/ui/../Cargo.toml").await;
    assert_eq!(status, 404);

    // `tuneflow stop` from a third process: the run ends Interrupted (130), resumable.
    let stop = world.run(&["stop", "long"]);
    assert!(stop.status.success(), "{}", text(&stop));
    assert!(
        String::from_utf8_lossy(&stop.stdout).contains("experiment long: Interrupted"),
        "{}",
        text(&stop)
    );
    let status = run.wait().expect("the run ends");
    assert_eq!(status.code(), Some(130));
    let experiment = world.experiment("long");
    assert_eq!(experiment["reason"], "Stopped", "{experiment}");
    assert_eq!(experiment["trials"]["running"], 0);
    let again = world.run(&["stop", "long"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not running"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_serves_its_page_to_anyone_and_its_data_to_token_holders() {
    let world = World::new();
    let server = Server::start(&world, &["--token", "s3cret"]);
    server.create(client_experiment("guarded", json!({}))).await;
    let dashboard = Server::dashboard(&world, &["--token", "s3cret"]);
    for base in [&server.url, &dashboard.url] {
        let anonymous = reqwest::Client::new();
        let page = anonymous
            .get(format!("{base}/"))
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), 200, "the page holds no data");
        for path in [
            "/api/v1/info",
            "/api/v1/experiments",
            "/api/v1/experiments/guarded/columns",
            "/api/v1/experiments/guarded/document",
        ] {
            let answer = anonymous
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("send");
            assert_eq!(answer.status(), 401, "{base}{path}");
            let wrong = anonymous
                .get(format!("{base}{path}"))
                .bearer_auth("guess")
                .send()
                .await
                .expect("send");
            assert_eq!(wrong.status(), 401, "{base}{path}");
        }
    }
    let (status, columns) = dashboard.get("/api/v1/experiments/guarded/columns").await;
    assert_eq!(status, 200, "{columns}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuneflow_stop_asks_a_server_with_its_token() {
    let world = World::new();
    let server = Server::start(&world, &["--token", "s3cret"]);
    server.create(client_experiment("remote", json!({}))).await;
    let running = server.suggest("remote", 2).await;
    assert_eq!(running["trials"].as_array().map(Vec::len), Some(2));
    let url = server.url.clone();

    let wrong = world
        .tuneflow()
        .args(["stop", "remote", "--server", &url, "--token", "guess"])
        .env_remove("TUNEFLOW_TOKEN")
        .output()
        .expect("stop");
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("--token"),
        "{}",
        text(&wrong)
    );

    let stop = world
        .tuneflow()
        .args(["stop", "remote", "--server", &url, "--token", "s3cret"])
        .env_remove("TUNEFLOW_TOKEN")
        .output()
        .expect("stop");
    assert!(stop.status.success(), "{}", text(&stop));
    assert!(
        String::from_utf8_lossy(&stop.stdout).contains("experiment remote: Interrupted"),
        "{}",
        text(&stop)
    );
    let (_, experiment) = server.get("/api/v1/experiments/remote").await;
    assert_eq!(experiment["reason"], "Stopped");
    assert_eq!(experiment["trials"]["killed"], 2, "{experiment}");
    // A client that asks again resumes it.
    let resumed = server.suggest("remote", 1).await;
    assert_eq!(
        resumed["trials"].as_array().map(Vec::len),
        Some(1),
        "{resumed}"
    );
    let (_, experiment) = server.get("/api/v1/experiments/remote").await;
    assert_eq!(experiment["state"], "Running");
}
