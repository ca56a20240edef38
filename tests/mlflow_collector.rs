//! The MLflow collector end to end: `tuneflow run` serves MLflow's tracking API to its trials,
//! points each trial's MLflow client at the trial's own run, and the metrics the trial logs
//! there become its observations, live enough for early stopping.
//!
//! The trial scripts speak MLflow's REST protocol with Python's standard library, as the
//! official client does, so these tests need no MLflow installation; `tests/mlflow/` runs the
//! official client against the same API.

mod common;

use common::{World, experiment, text};
use serde_json::json;

/// A trial that logs `loss = x + 1 / epoch` for eight epochs to its MLflow run, a tenth of a
/// second apart, plus a param and a tag, the way `mlflow.log_metric` would.
const TRAIN: &str = r#"
import json, os, sys, time, urllib.request

base = os.environ["MLFLOW_TRACKING_URI"].rstrip("/") + "/api/2.0/mlflow/"
run_id = os.environ["MLFLOW_RUN_ID"]

def call(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)

# What mlflow.start_run() does with MLFLOW_RUN_ID set: fetch the run, then use it.
run = call("runs/get?run_id=" + run_id)["run"]
assert run["info"]["run_id"] == run_id, run
assert run["data"]["params"], run
x = float(sys.argv[1])
call("runs/set-tag", {"run_id": run_id, "key": "script", "value": "train.py"})
for epoch in range(1, 9):
    call("runs/log-metric", {"run_id": run_id, "key": "loss", "value": x + 1 / epoch,
                             "timestamp": int(time.time() * 1000), "step": epoch})
    time.sleep(0.1)
"#;

fn spec(name: &str, stopping: &str) -> String {
    experiment(
        name,
        &format!(
            r#"objective: {{type: minimize, objectiveMetricName: loss}}
algorithm: {{algorithmName: grid}}
{stopping}
parallelTrialCount: 1
metricsCollectorSpec:
  collector: {{kind: MLflow}}
parameters:
  - {{name: x, parameterType: discrete, feasibleSpace: {{list: ["0.1", "0.2", "0.9", "0.12"]}}}}
trialTemplate:
  command: [python3, train.py, "${{parameters.x}}"]
"#
        ),
    )
}

#[test]
fn metrics_logged_to_the_trials_mlflow_run_are_its_observations() {
    let world = World::new();
    world.write("train.py", TRAIN);
    let file = world.write("mlflow.yaml", &spec("mlflow-collect", ""));
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert!(output.status.success(), "{}", text(&output));
    let trials = world.trials("mlflow-collect");
    assert_eq!(trials.len(), 4, "{trials:#?}");
    for trial in &trials {
        assert_eq!(trial["state"], "Succeeded", "{trial}");
    }
    // Grid order: x = 0.1 first; its final loss is 0.1 + 1/8.
    assert_eq!(trials[0]["objective"], json!(0.1 + 1.0 / 8.0));
    let detail = world.json(&["trial", "mlflow-collect", "mlflow-collect-0000"]);
    let observations = detail["observations"].as_array().expect("observations");
    assert_eq!(observations.len(), 8, "{detail}");
    assert_eq!(observations[0]["step"], 1);
    assert_eq!(observations[0]["value"], json!(1.1));
}

#[test]
fn a_trial_logging_through_mlflow_is_stopped_early_when_it_falls_behind() {
    let world = World::new();
    world.write("train.py", TRAIN);
    let file = world.write(
        "stop.yaml",
        &spec(
            "mlflow-stop",
            r#"earlyStopping:
  algorithmName: medianstop
  algorithmSettings: [{name: min_trials_required, value: "2"}, {name: start_step, value: "2"}]"#,
        ),
    );
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert!(output.status.success(), "{}", text(&output));
    let trials = world.trials("mlflow-stop");
    let states: Vec<&str> = trials
        .iter()
        .map(|t| t["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        states,
        ["Succeeded", "Succeeded", "EarlyStopped", "Succeeded"],
        "{trials:#?}"
    );
    let detail = world.json(&["trial", "mlflow-stop", "mlflow-stop-0002"]);
    let logged = detail["observations"].as_array().map_or(0, Vec::len);
    assert!(
        (2..8).contains(&logged),
        "stopped while it ran, after the rule's start step: {detail}"
    );
}
