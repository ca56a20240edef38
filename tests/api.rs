//! The REST API, driven over HTTP against a real `tuneflow serve`: ask, tell, list; errors
//! and authentication; leases; restarts; many concurrent workers.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::World;
use common::server::{Server, client_experiment};
use reqwest::Method;
use serde_json::{Value, json};

fn names(suggestion: &Value) -> Vec<String> {
    suggestion["trials"]
        .as_array()
        .expect("trials is an array")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_observe_complete_and_list() {
    let world = World::new();
    let server = Server::start(&world, &[]);
    let created = server
        .create(client_experiment(
            "ask-tell",
            json!({"maxTrialCount": 3, "parallelTrialCount": 2}),
        ))
        .await;
    assert_eq!(created["state"], "Running");
    assert_eq!(created["driver"], "client");

    let first = server.suggest("ask-tell", 5).await;
    let handed = names(&first);
    assert_eq!(handed, ["ask-tell-0000", "ask-tell-0001"], "{first}");
    assert_eq!(first["done"], false);
    assert!(
        first["reason"]
            .as_str()
            .is_some_and(|r| r.contains("parallelTrialCount (2)")),
        "{first}"
    );
    let parameters = &first["trials"][0]["parameters"];
    assert!(parameters["x"].is_f64());
    assert!(
        parameters["layers"].is_i64(),
        "int parameters are integers: {parameters}"
    );
    assert!(parameters["opt"].is_string());

    for (step, loss) in [(0, 0.9), (1, 0.5), (2, 0.7)] {
        let (status, body) = server
            .post(
                "/api/v1/experiments/ask-tell/trials/ask-tell-0000/observations",
                json!({"step": step, "metrics": {"loss": loss, "acc": 0.5}}),
            )
            .await;
        assert_eq!(
            (status, &body["decision"]),
            (200, &json!("continue")),
            "{body}"
        );
    }
    // The objective is the minimum over every observation plus the final metrics.
    let (status, done) = server
        .complete(
            "ask-tell",
            "ask-tell-0000",
            json!({"metrics": {"loss": 0.6}}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "Succeeded");
    assert_eq!(done["objective"], 0.5);

    let (status, failed) = server
        .complete(
            "ask-tell",
            "ask-tell-0001",
            json!({"state": "failed", "message": "CUDA out of memory"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(failed["state"], "Failed");
    assert_eq!(failed["message"], "CUDA out of memory");

    let last = server.suggest("ask-tell", 2).await;
    assert_eq!(names(&last), ["ask-tell-0002"]);
    assert_eq!(last["done"], true, "maxTrialCount reached: {last}");
    for (step, loss) in [(0, 0.3), (1, 0.45)] {
        server
            .post(
                "/api/v1/experiments/ask-tell/trials/ask-tell-0002/observations",
                json!({"step": step, "metrics": {"loss": loss}}),
            )
            .await;
    }
    let (_, pruned) = server
        .complete("ask-tell", "ask-tell-0002", json!({"state": "pruned"}))
        .await;
    assert_eq!(pruned["state"], "EarlyStopped");
    // A stopped trial counts by its last value (what the model ranks it by), not its best.
    assert_eq!(pruned["objective"], 0.45);

    let (_, experiment) = server.get("/api/v1/experiments/ask-tell").await;
    assert_eq!(experiment["state"], "Succeeded", "{experiment}");
    assert_eq!(experiment["reason"], "MaxTrialsReached");
    assert_eq!(experiment["trials"]["succeeded"], 1);
    assert_eq!(experiment["trials"]["failed"], 1);
    assert_eq!(experiment["trials"]["earlyStopped"], 1);
    assert_eq!(experiment["best"]["trial"], "ask-tell-0000");
    assert_eq!(experiment["best"]["objective"], 0.5);
    assert_eq!(experiment["best"]["parameters"], *parameters);

    let after = server.suggest("ask-tell", 1).await;
    assert_eq!(after["trials"], json!([]));
    assert_eq!(after["done"], true);
    assert!(
        after["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Succeeded"))
    );

    let (_, trials) = server.get("/api/v1/experiments/ask-tell/trials").await;
    assert_eq!(trials["trials"].as_array().map(Vec::len), Some(3));
    let (_, trial) = server
        .get("/api/v1/experiments/ask-tell/trials/ask-tell-0000")
        .await;
    let observations = trial["observations"].as_array().expect("observations");
    assert_eq!(
        observations.len(),
        7,
        "3 steps x 2 metrics + the final loss"
    );
    assert_eq!(
        observations[6]["step"], 2,
        "final metrics go at the last step"
    );

    // The CLI reads the same store.
    let listed = world.trials("ask-tell");
    assert_eq!(listed.len(), 3);

    let (status, _) = server
        .send(Method::DELETE, "/api/v1/experiments/ask-tell", None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server.get("/api/v1/experiments/ask-tell").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let world = World::new();
    let server = Server::start(&world, &[]);
    server
        .create(client_experiment("strict", json!({"maxTrialCount": 5})))
        .await;
    let trial = names(&server.suggest("strict", 1).await).remove(0);
    let observe = format!("/api/v1/experiments/strict/trials/{trial}/observations");

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str, &str)> = vec![
        (
            "malformed JSON",
            server.request(Method::POST, &observe).body("{\"step\": 1,"),
            400,
            "malformed_body",
            "not valid JSON",
        ),
        (
            "NaN",
            server
                .request(Method::POST, &observe)
                .body("{\"step\": 1, \"metrics\": {\"loss\": NaN}}"),
            400,
            "malformed_body",
            "finite",
        ),
        (
            "non-numeric metric",
            server
                .request(Method::POST, &observe)
                .json(&json!({"step": 1, "metrics": {"loss": "low"}})),
            422,
            "invalid_input",
            "metrics.loss",
        ),
        (
            "negative step",
            server
                .request(Method::POST, &observe)
                .json(&json!({"step": -1, "metrics": {"loss": 1.0}})),
            422,
            "invalid_input",
            "step",
        ),
        (
            "missing step",
            server
                .request(Method::POST, &observe)
                .json(&json!({"metrics": {"loss": 1.0}})),
            422,
            "invalid_input",
            "step",
        ),
        (
            "unknown field",
            server
                .request(Method::POST, &observe)
                .json(&json!({"step": 1, "metrix": {}})),
            422,
            "invalid_input",
            "metrix",
        ),
        (
            "unknown experiment",
            server
                .request(Method::POST, "/api/v1/experiments/nope/suggestions")
                .json(&json!({})),
            404,
            "not_found",
            "nope",
        ),
        (
            "unknown trial",
            server
                .request(
                    Method::POST,
                    "/api/v1/experiments/strict/trials/strict-9999/observations",
                )
                .json(&json!({"step": 0, "metrics": {"loss": 1.0}})),
            404,
            "not_found",
            "strict-9999",
        ),
        (
            "a name that is not UTF-8",
            server.request(Method::GET, "/api/v1/experiments/%FF"),
            400,
            "malformed_body",
            "path",
        ),
        (
            "count out of range",
            server
                .request(Method::POST, "/api/v1/experiments/strict/suggestions")
                .json(&json!({"count": 0})),
            422,
            "invalid_input",
            "count",
        ),
        (
            "invalid spec",
            server
                .request(Method::POST, "/api/v1/experiments")
                .json(&client_experiment("bad", json!({"parallelTrialCount": 0}))),
            422,
            "invalid_spec",
            "parallelTrialCount",
        ),
        (
            "duplicate name",
            server
                .request(Method::POST, "/api/v1/experiments")
                .json(&client_experiment("strict", json!({}))),
            409,
            "already_exists",
            "strict",
        ),
        (
            "an experiment that is not JSON",
            server
                .request(Method::POST, "/api/v1/experiments")
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "malformed_body",
            "not valid JSON",
        ),
        (
            "wrong media type",
            server
                .request(Method::POST, "/api/v1/experiments")
                .header("content-type", "image/png")
                .body("x"),
            415,
            "unsupported_media_type",
            "image/png",
        ),
    ];
    for (what, request, status, code, mentions) in cases {
        let response = request.send().await.expect("send");
        assert_eq!(response.status().as_u16(), status, "{what}");
        let body: Value = response.json().await.expect("JSON error body");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(mentions), "{what}: {message}");
    }

    // A body over the limit is refused; the server closes that connection, so it gets a
    // client of its own.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/experiments", server.url))
        .body(vec![b' '; 1024 * 1024 + 1])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "payload_too_large");

    // A spec error lists every problem with its path and position.
    let (_, body) = server
        .post(
            "/api/v1/experiments",
            client_experiment("bad", json!({"parallelTrialCount": 0, "maxTrialCount": -1})),
        )
        .await;
    let details = body["error"]["details"].as_array().expect("details");
    assert_eq!(details.len(), 2, "{body}");
    assert!(
        details
            .iter()
            .all(|d| d["line"].is_u64() && d["path"].is_string())
    );

    // Nothing was half-written: one trial, no observations, experiment still running.
    let (_, trial_view) = server
        .get(&format!("/api/v1/experiments/strict/trials/{trial}"))
        .await;
    assert_eq!(trial_view["observations"], json!([]));
    assert_eq!(trial_view["state"], "Running");
    let (_, list) = server.get("/api/v1/experiments").await;
    assert_eq!(list["experiments"].as_array().map(Vec::len), Some(1));

    // Completing twice: the second is a conflict; a YAML document is accepted too.
    let (status, _) = server
        .complete("strict", &trial, json!({"metrics": {"loss": 0.3}}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = server
        .complete("strict", &trial, json!({"metrics": {"loss": 0.3}}))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("trial_finished"))
    );
    let (status, body) = server
        .post(&observe, json!({"step": 9, "metrics": {"loss": 0.1}}))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("trial_finished"))
    );

    let yaml = "apiVersion: tuneflow.dev/v1alpha1\nkind: Experiment\nmetadata: {name: from-yaml}\n\
                spec:\n  objective: {type: maximize, objectiveMetricName: acc}\n  algorithm: {algorithmName: grid}\n  \
                parameters:\n    - {name: n, parameterType: int, feasibleSpace: {min: '1', max: '2'}}\n";
    let response = server
        .request(Method::POST, "/api/v1/experiments")
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 201);
    // A grid of two points: the third ask says the space is exhausted.
    assert_eq!(names(&server.suggest("from-yaml", 5).await).len(), 2);
    let exhausted = server.suggest("from-yaml", 1).await;
    assert_eq!(exhausted["done"], true);
    assert!(
        exhausted["reason"]
            .as_str()
            .is_some_and(|r| r.contains("exhausted"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_route_but_health() {
    let world = World::new();
    let server = Server::start(&world, &["--token", "s3cret"]);
    let anonymous = reqwest::Client::new();
    let response = anonymous
        .get(format!("{}/api/v1/experiments", server.url))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = anonymous
        .get(format!("{}/api/v1/experiments", server.url))
        .bearer_auth("s3cre7")
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status().as_u16(), 401);
    let health = anonymous
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("send");
    assert_eq!(health.status().as_u16(), 200);
    let (status, _) = server.get("/api/v1/experiments").await;
    assert_eq!(status, 200);

    // Beyond loopback without a token: refused before listening.
    let refused = world.run(&["serve", "--addr", "0.0.0.0:0"]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("without a token") && stderr.contains("--token"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_ask_and_complete_loses_nothing() {
    let world = World::new();
    let server = Server::start(&world, &[]);
    server
        .create(client_experiment(
            "durable",
            json!({"maxTrialCount": 3, "parallelTrialCount": 3}),
        ))
        .await;
    let handed = names(&server.suggest("durable", 2).await);
    let (status, _) = server
        .post(
            &format!(
                "/api/v1/experiments/durable/trials/{}/observations",
                handed[0]
            ),
            json!({"step": 4, "metrics": {"loss": 0.25}}),
        )
        .await;
    assert_eq!(status, 200);
    server.crash();

    let server = Server::start(&world, &[]);
    let (status, first) = server
        .complete("durable", &handed[0], json!({"metrics": {"acc": 0.9}}))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["objective"], 0.25,
        "the observation before the crash counts"
    );
    let (status, _) = server
        .complete("durable", &handed[1], json!({"metrics": {"loss": 0.5}}))
        .await;
    assert_eq!(status, 200);
    let next = names(&server.suggest("durable", 5).await);
    assert_eq!(next, ["durable-0002"], "no name handed out twice");
    let (_, experiment) = server.get("/api/v1/experiments/durable").await;
    assert_eq!(experiment["trials"]["succeeded"], 2);
    assert_eq!(experiment["trials"]["running"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_trial_fails_when_its_lease_runs_out() {
    let world = World::new();
    let server = Server::start(&world, &[]);
    server
        .create(client_experiment(
            "leased",
            json!({"maxTrialCount": 4, "parallelTrialCount": 1, "trialLeaseSeconds": 1}),
        ))
        .await;
    let abandoned = names(&server.suggest("leased", 1).await).remove(0);
    let blocked = server.suggest("leased", 1).await;
    assert_eq!(blocked["trials"], json!([]));
    assert_eq!(blocked["done"], false);

    // A heartbeat keeps a trial alive past its lease.
    let kept = tokio::time::Instant::now();
    while kept.elapsed() < Duration::from_millis(1600) {
        let (status, _) = server
            .post(
                &format!("/api/v1/experiments/leased/trials/{abandoned}/heartbeat"),
                json!({}),
            )
            .await;
        assert_eq!(status, 204);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (_, alive) = server
        .get(&format!("/api/v1/experiments/leased/trials/{abandoned}"))
        .await;
    assert_eq!(alive["state"], "Running");

    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (_, trial) = server
        .get(&format!("/api/v1/experiments/leased/trials/{abandoned}"))
        .await;
    assert_eq!(trial["state"], "Failed", "{trial}");
    assert!(
        trial["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("lease expired")),
        "{trial}"
    );
    let (status, body) = server
        .complete("leased", &abandoned, json!({"metrics": {"loss": 0.1}}))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("trial_finished"))
    );
    assert_eq!(
        names(&server.suggest("leased", 1).await).len(),
        1,
        "the slot is free again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaching_the_goal_stops_the_other_clients_trials() {
    let world = World::new();
    let server = Server::start(&world, &[]);
    let mut document = client_experiment("goal", json!({"parallelTrialCount": 3}));
    document["spec"]["objective"]["goal"] = json!(0.1);
    server.create(document).await;
    let handed = names(&server.suggest("goal", 3).await);
    let (_, winner) = server
        .complete("goal", &handed[0], json!({"metrics": {"loss": 0.05}}))
        .await;
    assert_eq!(winner["state"], "Succeeded");
    let (_, experiment) = server.get("/api/v1/experiments/goal").await;
    assert_eq!(experiment["state"], "Succeeded");
    assert_eq!(experiment["reason"], "GoalReached");
    assert_eq!(experiment["trials"]["killed"], 2);
    // The other clients hear it when they report; completing a Killed trial changes nothing.
    let (status, body) = server
        .post(
            &format!("/api/v1/experiments/goal/trials/{}/observations", handed[1]),
            json!({"step": 1, "metrics": {"loss": 0.5}}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("trial_finished"))
    );
    let (status, body) = server
        .complete("goal", &handed[2], json!({"metrics": {"loss": 0.01}}))
        .await;
    assert_eq!((status, &body["state"]), (200, &json!("Killed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_workers_share_one_experiment_without_duplicates() {
    const WORKERS: usize = 8;
    const ATTEMPTS: usize = 200;
    const MAX: usize = 1500;
    let world = World::new();
    let server = std::sync::Arc::new(Server::start(&world, &[]));
    server
        .create(client_experiment(
            "crowd",
            json!({"maxTrialCount": MAX, "parallelTrialCount": WORKERS}),
        ))
        .await;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let server = server.clone();
        workers.spawn(async move {
            let mut mine = Vec::new();
            for attempt in 0..ATTEMPTS {
                let answer = server.suggest("crowd", 1).await;
                let Some(name) = names(&answer).pop() else {
                    assert_eq!(
                        answer["done"], true,
                        "only the end stops a worker: {answer}"
                    );
                    break;
                };
                let loss = (worker * ATTEMPTS + attempt) as f64;
                let (status, body) = server
                    .complete("crowd", &name, json!({"metrics": {"loss": loss}}))
                    .await;
                assert_eq!(status, 200, "{body}");
                mine.push((name, loss));
            }
            mine
        });
    }
    let mut completed = Vec::new();
    while let Some(result) = workers.join_next().await {
        completed.extend(result.expect("worker"));
    }
    let unique: HashSet<&String> = completed.iter().map(|(name, _)| name).collect();
    assert_eq!(
        unique.len(),
        completed.len(),
        "a trial was handed out twice"
    );
    assert_eq!(completed.len(), MAX, "exactly maxTrialCount trials ran");

    let (_, trials) = server.get("/api/v1/experiments/crowd/trials").await;
    let stored = trials["trials"].as_array().expect("trials");
    assert_eq!(stored.len(), MAX);
    for (name, loss) in &completed {
        let trial = stored
            .iter()
            .find(|t| t["name"] == json!(name))
            .expect("every completion is stored");
        assert_eq!(trial["state"], "Succeeded");
        assert_eq!(trial["objective"], json!(loss));
    }
    let (_, experiment) = server.get("/api/v1/experiments/crowd").await;
    assert_eq!(experiment["state"], "Succeeded");
    assert_eq!(experiment["trials"]["succeeded"], MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_experiments_with_a_template_and_stops_them_on_delete() {
    let world = World::new();
    let server = Server::start(&world, &[]);
    let mut quick = client_experiment(
        "templated",
        json!({"maxTrialCount": 3, "parallelTrialCount": 3}),
    );
    quick["spec"]["trialTemplate"] = json!({"command": ["sh", "-c", "echo loss=${parameters.x}"]});
    let created = server.create(quick).await;
    assert_eq!(created["driver"], "server");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, experiment) = server.get("/api/v1/experiments/templated").await;
        if experiment["state"] == "Succeeded" {
            assert_eq!(experiment["trials"]["succeeded"], 3, "{experiment}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never finished: {experiment}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = server
        .post("/api/v1/experiments/templated/suggestions", json!({}))
        .await;
    assert_eq!((status, &body["error"]["code"]), (409, &json!("conflict")));

    let pid_file = world.path("hung.pid");
    let mut hung = client_experiment("hung", json!({"maxTrialCount": 1, "parallelTrialCount": 1}));
    hung["spec"]["trialTemplate"] = json!({
        "command": ["sh", "-c", format!("echo $$ > {}; exec sleep 60", pid_file.display())]
    });
    server.create(hung).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the trial never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(common::process_alive(pid));
    let (status, _) = server
        .send(Method::DELETE, "/api/v1/experiments/hung", None)
        .await;
    assert_eq!(status, 204);
    assert!(
        !common::process_alive(pid),
        "DELETE stops the running trial"
    );
    let (status, _) = server.get("/api/v1/experiments/hung").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_health_and_metrics_describe_the_server() {
    let world = World::new();
    let server = Server::start(&world, &[]);
    let (status, openapi) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        openapi["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    for path in [
        "/api/v1/experiments",
        "/api/v1/experiments/{name}",
        "/api/v1/experiments/{name}/suggestions",
        "/api/v1/experiments/{name}/trials",
        "/api/v1/experiments/{name}/trials/{trial}",
        "/api/v1/experiments/{name}/trials/{trial}/observations",
        "/api/v1/experiments/{name}/trials/{trial}/complete",
        "/api/v1/experiments/{name}/trials/{trial}/heartbeat",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} is documented");
    }
    // The document says what the server does (reliability probe: `400 malformed_body` was
    // undocumented, `step` required though optional in the schema, `count` unbounded).
    for (path, method) in [
        ("/api/v1/experiments", "post"),
        ("/api/v1/experiments/{name}/suggestions", "post"),
        (
            "/api/v1/experiments/{name}/trials/{trial}/observations",
            "post",
        ),
        ("/api/v1/experiments/{name}/trials/{trial}/complete", "post"),
    ] {
        assert!(
            openapi["paths"][path][method]["responses"]["400"].is_object(),
            "{method} {path} documents 400"
        );
    }
    let schemas = &openapi["components"]["schemas"];
    assert!(
        schemas["ObservationRequest"]["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("step"))),
        "{}",
        schemas["ObservationRequest"]
    );
    let count = &schemas["SuggestionRequest"]["properties"]["count"];
    assert_eq!(
        (&count["minimum"], &count["maximum"]),
        (&json!(1), &json!(1000)),
        "{count}"
    );
    let (status, health) = server.get("/healthz").await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")));

    server.create(client_experiment("counted", json!({}))).await;
    let name = names(&server.suggest("counted", 1).await).remove(0);
    server
        .complete("counted", &name, json!({"metrics": {"loss": 1.0}}))
        .await;
    let text = server
        .request(Method::GET, "/metrics")
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(text.contains("tuneflow_suggestions_total 1"), "{text}");
    assert!(
        text.contains("tuneflow_trials_completed_total{state=\"Succeeded\"} 1"),
        "{text}"
    );
    assert!(text.contains(
        "tuneflow_http_requests_total{route=\"/api/v1/experiments/{name}/suggestions\",method=\"POST\",status=\"200\"} 1"
    ), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_tpe_suggestions_are_distinct_and_spread_out() {
    let world = World::new();
    let server = std::sync::Arc::new(Server::start(&world, &[]));
    let mut document = client_experiment("tpe-crowd", json!({"parallelTrialCount": 8}));
    document["spec"]["algorithm"] = json!({
        "algorithmName": "tpe",
        "algorithmSettings": [{"name": "random_state", "value": "5"}]
    });
    server.create(document).await;
    // Past the random startup: twelve trials told, the loss lowest near x = 0.3.
    for _ in 0..12 {
        let answer = server.suggest("tpe-crowd", 1).await;
        let trial = &answer["trials"][0];
        let x = trial["parameters"]["x"].as_f64().expect("x");
        let name = trial["name"].as_str().expect("name");
        let (status, _) = server
            .complete(
                "tpe-crowd",
                name,
                json!({"metrics": {"loss": (x - 0.3).powi(2)}}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let mut asks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let server = server.clone();
        asks.spawn(async move { server.suggest("tpe-crowd", 1).await });
    }
    let mut points = Vec::new();
    let mut names = HashSet::new();
    while let Some(answer) = asks.join_next().await {
        let answer = answer.expect("ask");
        let trial = &answer["trials"][0];
        assert!(names.insert(trial["name"].as_str().expect("name").to_string()));
        let p = &trial["parameters"];
        points.push((
            p["x"].as_f64().expect("x"),
            p["layers"].as_i64().expect("layers"),
            p["opt"].as_str().expect("opt").to_string(),
        ));
    }
    assert_eq!(names.len(), 8);
    let distinct: HashSet<String> = points.iter().map(|p| format!("{p:?}")).collect();
    assert_eq!(distinct.len(), 8, "duplicates among {points:?}");
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    let closest = sorted
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min);
    assert!(closest > 1e-3, "x values nearly coincide: {xs:?}");
    let mean = xs.iter().sum::<f64>() / 8.0;
    let spread = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 8.0).sqrt();
    assert!(spread > 0.05, "all eight crowd one point: {xs:?}");
}

/// Regression (reliability probe): a whitespace-only `--token` passed the guard against
/// listening beyond loopback without one, after which no client could authenticate.
#[test]
fn a_blank_token_is_refused_and_a_padded_one_is_trimmed() {
    let world = World::new();
    for command in [
        vec!["serve", "--addr", "0.0.0.0:0", "--token", "   "],
        vec!["dashboard", "--addr", "0.0.0.0:0", "--token", "\t"],
    ] {
        let output = world
            .tuneflow()
            .args(&command)
            .env_remove("TUNEFLOW_TOKEN")
            .output()
            .expect("run");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{command:?}: {}",
            common::text(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("the token is blank"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_read_with_its_newline_still_authenticates() {
    let world = World::new();
    let mut server = Server::start(&world, &["--token", "s3cret\n"]);
    server.token = Some("s3cret".to_string());
    let (status, body) = server.get("/api/v1/experiments").await;
    assert_eq!(status, 200, "{body}");
}

/// An unauthenticated POST with a large body gets its 401 whole (the reliability probe saw
/// resets "sometimes"; the server now reads the body before refusing). This does not
/// reproduce the probe's failure on demand: it passes here without the fix too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_post_gets_its_401_not_a_reset() {
    use std::io::{Read, Write};
    let world = World::new();
    let server = Server::start(&world, &["--token", "s3cret"]);
    let address = server.url.trim_start_matches("http://").to_string();
    let body = format!("{{\"pad\": \"{}\"}}", "x".repeat(900 * 1024));
    for _ in 0..5 {
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        let request = format!(
            "POST /api/v1/experiments HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .expect("the whole request is taken");
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buffer[..n]);
                    if String::from_utf8_lossy(&answer).contains("\"message\":") {
                        break;
                    }
                }
                Err(e) => panic!("the answer was cut: {e}"),
            }
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    }
}

/// Regression (reliability probe): connections that never finished their headers were held
/// forever, and 1,100 of them made `/healthz` time out, with no token needed. Now each has
/// `HEADER_READ_TIMEOUT` (10 s) to send its headers, and the server keeps answering others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_send_their_headers_are_closed() {
    use std::io::{Read, Write};
    let world = World::new();
    let server = Server::start(&world, &[]);
    let address = server.url.trim_start_matches("http://").to_string();
    let mut idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(&address).expect("connect"))
        .collect();
    let mut trickle = std::net::TcpStream::connect(&address).expect("connect");
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
        .expect("half a request");
    let started = std::time::Instant::now();
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "healthz took {:?} beside 301 idle connections",
        started.elapsed()
    );
    // Within the header timeout (and some slack), the server closes them all.
    idle.push(trickle);
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
    }
    let closed = tokio::task::spawn_blocking(move || {
        idle.iter()
            .filter(|stream| {
                let mut stream: &std::net::TcpStream = stream;
                let mut buffer = [0u8; 512];
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) => return true,
                        Ok(_) => continue,
                        Err(e) => {
                            return e.kind() != std::io::ErrorKind::WouldBlock
                                && e.kind() != std::io::ErrorKind::TimedOut;
                        }
                    }
                }
            })
            .count()
    })
    .await
    .expect("readers");
    assert_eq!(
        closed, 301,
        "every silent connection is closed by the server"
    );
    assert!(started.elapsed() < Duration::from_secs(25));
}

/// Regression (reliability probe): REST observations accepted metric names that MLflow
/// refuses (NUL, `../`, newline), which the tracking view then could not serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_names_follow_one_rule_everywhere() {
    let world = World::new();
    let server = Server::start(&world, &[]);
    server
        .create(client_experiment("names", json!({"parallelTrialCount": 2})))
        .await;
    let trial = names(&server.suggest("names", 1).await).remove(0);
    let path = format!("/api/v1/experiments/names/trials/{trial}/observations");
    for bad in ["lo\u{0}ss", "../loss", "lo\nss", "/loss", " "] {
        let (status, body) = server
            .post(&path, json!({"step": 0, "metrics": {bad: 0.5}}))
            .await;
        assert_eq!(status, 422, "{bad:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_input");
    }
    let (status, body) = server
        .post(
            &path,
            json!({"step": 0, "metrics": {"val/loss": 0.5, "top-1 acc": 0.9}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, trial) = server
        .get(&format!("/api/v1/experiments/names/trials/{trial}"))
        .await;
    assert_eq!(
        trial["observations"].as_array().map(Vec::len),
        Some(2),
        "{trial}"
    );
}
