//! Early stopping end to end: local trials whose learning curve falls behind are killed at
//! once and recorded as EarlyStopped with the step they reached; REST clients get `prune`.

mod common;

use common::server::{Server, client_experiment};
use common::{World, experiment, katib_dir, process_alive, text};
use serde_json::json;

/// A trial script: one line per epoch, `loss = x + 1 / epoch`, a tenth of a second apart;
/// it writes its pid first so the test can check the process is gone.
const CURVE: &str = r#"#!/bin/sh
x="$1"
echo $$ > "pids/$TUNEFLOW_TRIAL_NAME"
for epoch in 1 2 3 4 5 6 7 8; do
  echo "epoch=$epoch loss=$(awk "BEGIN { print $x + 1 / $epoch }")"
  sleep 0.1
done
"#;

#[test]
fn a_local_trial_that_falls_behind_the_median_is_killed_at_once() {
    let world = World::new();
    world.write("curve.sh", CURVE);
    std::fs::create_dir_all(world.path("pids")).expect("pids dir");
    let file = world.write(
        "stop.yaml",
        &experiment(
            "stop",
            r#"objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
earlyStopping:
  algorithmName: medianstop
  algorithmSettings: [{name: min_trials_required, value: "2"}, {name: start_step, value: "2"}]
parallelTrialCount: 1
parameters:
  - {name: x, parameterType: discrete, feasibleSpace: {list: ["0.1", "0.2", "0.9", "0.12"]}}
trialTemplate:
  command: [sh, curve.sh, "${parameters.x}"]
"#,
        ),
    );
    let started = std::time::Instant::now();
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert!(output.status.success(), "{}", text(&output));
    let trials = world.trials("stop");
    let states: Vec<&str> = trials
        .iter()
        .map(|t| t["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        states,
        ["Succeeded", "Succeeded", "EarlyStopped", "Succeeded"],
        "{trials:#?}"
    );
    let stopped = &trials[2];
    assert_eq!(
        stopped["message"], "stopped early by medianstop at step 2",
        "stopped at the first step the rule looks at: {stopped}"
    );
    assert_eq!(stopped["objective"], json!(0.9 + 0.5), "its last value");
    // Three full trials of 0.8 s and one stopped after two lines. Printed, not asserted (a
    // loaded machine is slow): that it was killed at once is checked below by its two
    // observations and its process being gone.
    eprintln!("run took {:?}", started.elapsed());
    // Its observations stay; the process is gone.
    let detail = world.json(&["trial", "stop", "stop-0002"]);
    assert_eq!(
        detail["observations"].as_array().map(Vec::len),
        Some(2),
        "{detail}"
    );
    let pid: u32 = std::fs::read_to_string(world.path("pids/stop-0002"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(!process_alive(pid), "the stopped trial's process is gone");
    assert_eq!(stopped["step"], 2);
    assert_eq!(trials[0]["step"], 8, "a full run reaches epoch 8");
    let summary = world.experiment("stop");
    assert_eq!(summary["trials"]["earlyStopped"], 1, "{summary}");
    assert_eq!(
        summary["stepsSaved"], 6,
        "stopped at 2 of 8 steps: {summary}"
    );
    let table = text(&world.run(&["trials", "stop"]));
    assert!(
        table.contains("STEP") && table.contains("stopped early by medianstop at step 2"),
        "{table}"
    );
}

#[test]
fn katibs_median_stop_example_runs_locally() {
    let world = World::new();
    world.write(
        "mnist.py",
        r#"import sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
lr, momentum = float(args["lr"]), float(args["momentum"])
for epoch in range(1, 5):
    print(f"epoch={epoch} loss={abs(lr - 0.03) + abs(momentum - 0.7) + 1.0 / epoch:.6f}", flush=True)
    time.sleep(0.02)
"#,
    );
    let original = std::fs::read_to_string(katib_dir().join("early-stopping/median-stop.yaml"))
        .expect("median-stop.yaml");
    let local = original.replace(
        "/opt/pytorch-mnist/mnist.py",
        &world.path("mnist.py").display().to_string(),
    );
    let file = world.write("median-stop.yaml", &local);
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert!(output.status.success(), "{}", text(&output));
    let trials = world.trials("median-stop");
    assert!(!trials.is_empty());
    assert!(
        trials
            .iter()
            .all(|t| t["state"] == "Succeeded" || t["state"] == "EarlyStopped"),
        "{trials:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_clients_are_told_to_prune() {
    let world = World::new();
    let server = Server::start(&world, &[]);
    let mut document = client_experiment("pruned", json!({"parallelTrialCount": 3}));
    document["spec"]["earlyStopping"] = json!({
        "algorithmName": "medianstop",
        "algorithmSettings": [
            {"name": "min_trials_required", "value": "2"},
            {"name": "start_step", "value": "1"}
        ]
    });
    server.create(document).await;
    let names: Vec<String> = server.suggest("pruned", 3).await["trials"]
        .as_array()
        .expect("trials")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect();
    let observe = |trial: &str, step: i64, loss: f64| {
        let path = format!("/api/v1/experiments/pruned/trials/{trial}/observations");
        let server = &server;
        async move {
            server
                .post(&path, json!({"step": step, "metrics": {"loss": loss}}))
                .await
        }
    };
    // Two trials finish with good curves.
    for trial in &names[..2] {
        for step in 0..3 {
            let (_, body) = observe(trial, step, 0.5 - 0.1 * step as f64).await;
            assert_eq!(body["decision"], "continue");
        }
        server.complete("pruned", trial, json!({})).await;
    }
    // The third is worse than their median from step 1 on.
    let (_, body) = observe(&names[2], 0, 0.9).await;
    assert_eq!(body["decision"], "continue", "before start_step");
    let (status, body) = observe(&names[2], 1, 0.8).await;
    assert_eq!(
        (status, &body["decision"]),
        (200, &json!("prune")),
        "{body}"
    );
    let (_, trial) = server
        .get(&format!("/api/v1/experiments/pruned/trials/{}", names[2]))
        .await;
    assert_eq!(trial["state"], "EarlyStopped");
    assert_eq!(trial["message"], "stopped early by medianstop at step 1");
    assert_eq!(trial["objective"], 0.8);
    assert_eq!(trial["step"], 1);
    let (status, body) = observe(&names[2], 2, 0.1).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("trial_finished"))
    );
    let (_, experiment) = server.get("/api/v1/experiments/pruned").await;
    assert_eq!(experiment["trials"]["earlyStopped"], 1);
}

#[test]
fn hyperband_as_an_algorithm_runs_every_bracket_whatever_the_parallelism() {
    let world = World::new();
    world.write(
        "train.sh",
        "#!/bin/sh\necho \"loss=$(awk \"BEGIN { print ($1 - 0.3) ^ 2 + 1 / $2 }\")\"\n",
    );
    let file = world.write(
        "hb.yaml",
        &experiment(
            "hb",
            r#"objective: {type: minimize, objectiveMetricName: loss}
algorithm:
  algorithmName: hyperband
  algorithmSettings:
    - {name: resource_name, value: epochs}
    - {name: eta, value: "2"}
    - {name: r_l, value: "4"}
    - {name: random_state, value: "3"}
parallelTrialCount: 2
maxTrialCount: 14
parameters:
  - {name: x, parameterType: double, feasibleSpace: {min: 0, max: 1}}
  - {name: epochs, parameterType: int, feasibleSpace: {min: 1, max: 4}}
trialTemplate:
  command: [sh, train.sh, "${parameters.x}", "${parameters.epochs}"]
"#,
        ),
    );
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert!(output.status.success(), "{}", text(&output));
    let trials = world.trials("hb");
    let epochs: Vec<i64> = trials
        .iter()
        .map(|t| t["parameters"]["epochs"].as_i64().expect("epochs"))
        .collect();
    // eta 2, r_l 4: brackets 4 x 1 -> 2 x 2 -> 1 x 4, then 3 x 2 -> 1 x 4, then 3 x 4.
    assert_eq!(epochs, [1, 1, 1, 1, 2, 2, 4, 2, 2, 2, 4, 4, 4, 4]);
    // The promoted trials rerun the best configurations of the rung before.
    let x = |i: usize| trials[i]["parameters"]["x"].as_f64().expect("x");
    let loss = |i: usize| trials[i]["objective"].as_f64().expect("loss");
    let mut first_rung: Vec<usize> = (0..4).collect();
    first_rung.sort_by(|a, b| loss(*a).total_cmp(&loss(*b)));
    assert_eq!((x(4), x(5)), (x(first_rung[0]), x(first_rung[1])));
    assert!(
        trials.iter().all(|t| t["state"] == "Succeeded"),
        "{trials:#?}"
    );
}
