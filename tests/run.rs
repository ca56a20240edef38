//! `tuneflow run` end to end: real processes, real store.

mod common;

use std::collections::HashSet;

use common::{World, experiment, text, x_experiment};
use serde_json::Value;

/// A trial program: prints the objective (x - 1)^2 + y after a short pause.
const QUADRATIC: &str = r#"#!/bin/sh
sleep "${DELAY:-0}"
echo "starting $TUNEFLOW_TRIAL_NAME"
awk -v x="$1" -v y="$2" 'BEGIN { printf "epoch=1 loss=%f\n", (x - 1) ^ 2 + y + 1; printf "epoch=2 loss=%f\n", (x - 1) ^ 2 + y }'
"#;

fn quadratic_experiment(name: &str, algorithm: &str, max: u32, parallel: u32) -> String {
    experiment(
        name,
        &format!(
            r#"objective:
  type: minimize
  objectiveMetricName: loss
algorithm:
  algorithmName: {algorithm}
parallelTrialCount: {parallel}
maxTrialCount: {max}
maxFailedTrialCount: 3
parameters:
  - name: x
    parameterType: double
    feasibleSpace: {{min: "-2", max: "4"}}
  - name: y
    parameterType: double
    feasibleSpace: {{min: 0, max: 1}}
trialTemplate:
  command: ["sh", "quadratic.sh", "${{parameters.x}}", "${{parameters.y}}"]
  env:
    - name: DELAY
      value: "0.05"
"#
        ),
    )
}

fn micros(t: &Value, field: &str) -> i64 {
    let text = t[field].as_str().expect("timestamp");
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .timestamp_micros()
}

#[test]
fn random_experiment_stores_every_trial_and_best_is_the_minimum() {
    let world = World::new();
    world.write("quadratic.sh", QUADRATIC);
    let file = world.write("exp.yaml", &quadratic_experiment("rand30", "random", 30, 4));
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("best trial: rand30-"), "{stdout}");

    let trials = world.trials("rand30");
    assert_eq!(trials.len(), 30);
    let names: HashSet<_> = trials
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names.len(), 30, "trial names are unique");
    for trial in &trials {
        assert_eq!(trial["state"], "Succeeded", "{trial}");
        let x = trial["parameters"]["x"].as_f64().expect("x");
        let y = trial["parameters"]["y"].as_f64().expect("y");
        assert!((-2.0..=4.0).contains(&x) && (0.0..=1.0).contains(&y));
        // min strategy over the two reported epochs: the second, smaller value.
        let expected = (x - 1.0).powi(2) + y;
        let objective = trial["objective"].as_f64().expect("objective");
        assert!(
            (objective - expected).abs() < 1e-4,
            "{objective} vs {expected}"
        );
    }

    // Observations are stored with their steps.
    let detail = world.json(&["trial", "rand30", "rand30-0007"]);
    let observations = detail["observations"].as_array().expect("observations");
    let steps: Vec<i64> = observations
        .iter()
        .map(|o| o["step"].as_i64().expect("step"))
        .collect();
    assert_eq!(steps, vec![1, 2]);
    assert!(observations.iter().all(|o| o["metric"] == "loss"));

    // Never more than parallelTrialCount trials at once, and really in parallel.
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for t in &trials {
        edges.push((micros(t, "startedAt"), 1));
        edges.push((micros(t, "completedAt"), -1));
    }
    edges.sort();
    let (mut running, mut peak) = (0, 0);
    for (_, delta) in edges {
        running += delta;
        peak = peak.max(running);
    }
    assert!(peak <= 4, "peak concurrency {peak}");
    assert!(peak >= 2, "trials ran one at a time");

    let best = world.json(&["best", "rand30"]);
    let minimum = trials
        .iter()
        .map(|t| t["objective"].as_f64().expect("objective"))
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best["objective"].as_f64(), Some(minimum));
    let summary = world.experiment("rand30");
    assert_eq!(summary["state"], "Succeeded");
    assert_eq!(summary["reason"], "MaxTrialsReached");
}

#[test]
fn grid_runs_every_point_once_then_reports_exhaustion() {
    let world = World::new();
    world.write("echo.sh", "#!/bin/sh\necho \"loss=$1\"\n");
    let file = world.write(
        "grid.yaml",
        &experiment(
            "grid12",
            r#"objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
parallelTrialCount: 3
maxTrialCount: 50
parameters:
  - name: a
    parameterType: discrete
    feasibleSpace: {list: ["16", "32", "64"]}
  - name: b
    parameterType: categorical
    feasibleSpace: {list: [w, x, y, z]}
trialTemplate:
  command: ["sh", "echo.sh", "${parameters.a}", "${parameters.b}"]
"#,
        ),
    );
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert!(output.status.success(), "{}", text(&output));
    let trials = world.trials("grid12");
    assert_eq!(trials.len(), 12);
    let points: HashSet<String> = trials
        .iter()
        .map(|t| format!("{}/{}", t["parameters"]["a"], t["parameters"]["b"]))
        .collect();
    assert_eq!(points.len(), 12, "every grid point exactly once");
    // Discrete values written as integers stay integers, in the output and in the trial.
    assert!(
        trials.iter().all(|t| t["parameters"]["a"].is_i64()),
        "{trials:?}"
    );
    assert!(
        trials
            .iter()
            .all(|t| [16.0, 32.0, 64.0].contains(&t["objective"].as_f64().expect("objective")))
    );
    let summary = world.experiment("grid12");
    assert_eq!(summary["state"], "Succeeded");
    assert_eq!(summary["reason"], "SearchSpaceExhausted");
}

#[test]
fn too_many_failures_fail_the_experiment() {
    let world = World::new();
    world.write("fail.sh", "#!/bin/sh\necho 'loss=1'\nexit 3\n");
    let file = world.write(
        "fail.yaml",
        &x_experiment(
            "failing",
            "parallelTrialCount: 1\nmaxTrialCount: 10\nmaxFailedTrialCount: 2",
            r#"command: ["sh", "fail.sh", "${parameters.x}"]"#,
        ),
    );
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let summary = world.experiment("failing");
    assert_eq!(summary["state"], "Failed");
    assert_eq!(summary["reason"], "MaxFailedTrialsReached");
    let trials = world.trials("failing");
    assert_eq!(trials.len(), 3, "stops at the third failure");
    assert!(trials.iter().all(|t| t["state"] == "Failed"));
    // The message quotes the exit code, the end of the output and the log's path.
    let message = trials[0]["message"].as_str().expect("message");
    assert!(
        message.starts_with("exited with code 3; last output: "),
        "{message}"
    );
    assert!(
        message.ends_with("/store/logs/failing/failing-0000.log"),
        "{message}"
    );
    let detail = world.json(&["trial", "failing", "failing-0000"]);
    assert_eq!(detail["message"], trials[0]["message"]);
}

/// A trial that reports other metrics than the objective says which, so that a misspelt
/// `objectiveMetricName` shows at once.
#[test]
fn a_metrics_unavailable_trial_names_the_metrics_it_reported() {
    let world = World::new();
    world.write(
        "typo.sh",
        "echo 'los=0.5'
echo 'accuracy=0.9'
",
    );
    let file = world.write(
        "typo.yaml",
        &x_experiment(
            "typo",
            "parallelTrialCount: 1\nmaxTrialCount: 1",
            r#"command: ["sh", "typo.sh"]"#,
        ),
    );
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let trial = &world.trials("typo")[0];
    assert_eq!(trial["state"], "MetricsUnavailable");
    let message = trial["message"].as_str().expect("message");
    assert!(
        message.starts_with(
            "exited 0 without reporting the objective metric `loss`; it reported accuracy, los (check objectiveMetricName"
        ),
        "{message}"
    );
    assert!(message.contains("; log: "), "{message}");
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let world = World::new();
    // The trial starts a grandchild that would outlive a plain kill of the child.
    world.write(
        "hang.sh",
        "#!/bin/sh\nsleep 300 &\necho $! > \"grandchild-$TUNEFLOW_TRIAL_NAME.pid\"\necho 'loss=1'\nsleep 300\n",
    );
    let file = world.write(
        "hang.yaml",
        &x_experiment(
            "hanging",
            "parallelTrialCount: 2\nmaxTrialCount: 2",
            "command: [sh, hang.sh, \"${parameters.x}\"]\ntimeout: 1s",
        ),
    );
    let started = std::time::Instant::now();
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert!(
        started.elapsed().as_secs() < 30,
        "the timeout was not enforced"
    );
    let trials = world.trials("hanging");
    assert_eq!(trials.len(), 2, "{}", text(&output));
    for trial in &trials {
        assert_eq!(trial["state"], "Killed", "{trial}");
        assert!(
            trial["message"]
                .as_str()
                .expect("message")
                .contains("timed out")
        );
        let name = trial["name"].as_str().expect("name");
        let pid: u32 = std::fs::read_to_string(world.path(&format!("grandchild-{name}.pid")))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        assert!(
            !common::process_alive(pid),
            "grandchild {pid} of {name} survived"
        );
    }
    // As in Katib, killed trials count toward maxTrialCount, so the experiment ends; unlike
    // Katib, with no trial succeeded it ends Failed, and `run` exits 1.
    let experiment = world.experiment("hanging");
    assert_eq!(
        (&experiment["state"], &experiment["reason"]),
        (
            &serde_json::json!("Failed"),
            &serde_json::json!("NoTrialSucceeded")
        ),
        "{experiment}"
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
}

#[test]
fn trials_without_the_objective_or_with_a_missing_command_are_reported() {
    let world = World::new();
    world.write("noisy.sh", "#!/bin/sh\necho 'garbage ==== 12abc'\nhead -c 300000 /dev/zero | tr '\\0' 'x'\necho\necho 'accuracy=0.5'\n");
    let file = world.write(
        "noisy.yaml",
        &x_experiment(
            "noisy",
            "parallelTrialCount: 1\nmaxTrialCount: 2\nmaxFailedTrialCount: 2",
            r#"command: ["sh", "noisy.sh", "${parameters.x}"]"#,
        ),
    );
    let output = world.run(&["run", file.to_str().expect("path")]);
    // No trial reported the objective, so none succeeded: the experiment fails.
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert_eq!(world.experiment("noisy")["reason"], "NoTrialSucceeded");
    let trials = world.trials("noisy");
    assert!(
        trials.iter().all(|t| t["state"] == "MetricsUnavailable"),
        "{trials:?}"
    );
    let detail = world.json(&["trial", "noisy", "noisy-0000"]);
    assert_eq!(detail["observations"][0]["metric"], "accuracy");

    let file = world.write(
        "missing.yaml",
        &x_experiment(
            "missing",
            "parallelTrialCount: 1\nmaxTrialCount: 3\nmaxFailedTrialCount: 0",
            r#"command: ["./no-such-program", "${parameters.x}"]"#,
        ),
    );
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let trials = world.trials("missing");
    assert_eq!(trials.len(), 1);
    let message = trials[0]["message"].as_str().expect("message");
    assert!(
        message.contains("cannot start `./no-such-program`"),
        "{message}"
    );
}

#[test]
fn a_trial_that_floods_its_output_keeps_every_observation() {
    let world = World::new();
    // 50,000 metric lines as fast as the trial can write them, plus noise on stderr.
    world.write(
        "flood.sh",
        "#!/bin/sh\nseq 1 50000 | awk '{ print \"loss=\" 1 / $1 }'\nseq 1 20000 >&2\n",
    );
    let file = world.write(
        "flood.yaml",
        &x_experiment(
            "flood",
            "parallelTrialCount: 2\nmaxTrialCount: 2",
            r#"command: ["sh", "flood.sh", "${parameters.x}"]"#,
        ),
    );
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert!(output.status.success(), "{}", text(&output));
    for trial in world.trials("flood") {
        assert_eq!(trial["state"], "Succeeded");
        assert_eq!(trial["objective"].as_f64(), Some(1.0 / 50000.0));
        let name = trial["name"].as_str().expect("name");
        let detail = world.json(&["trial", "flood", name]);
        let observations = detail["observations"].as_array().expect("observations");
        let losses = observations
            .iter()
            .filter(|o| o["metric"] == "loss")
            .count();
        assert_eq!(losses, 50000);
        let log = std::fs::read_to_string(world.path(&format!("store/logs/flood/{name}.log")))
            .expect("trial log");
        assert_eq!(
            log.lines().count(),
            70000,
            "stdout and stderr are both logged"
        );
    }
}

/// `tuneflow logs` prints a trial's log, its last lines, or follows it until the trial ends.
#[test]
fn logs_prints_and_follows_a_trials_output() {
    let world = World::new();
    world.write(
        "talk.sh",
        "echo \"first x=$1\"\nsleep 1\necho 'second'\necho 'loss=0.5'\n",
    );
    let file = world.write(
        "talk.yaml",
        &x_experiment(
            "talk",
            "parallelTrialCount: 1\nmaxTrialCount: 1",
            r#"command: ["sh", "talk.sh", "${parameters.x}"]"#,
        ),
    );
    let mut run = world
        .tuneflow()
        .args(["run", file.to_str().expect("path")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run");
    // Follow from while it runs: the command returns once the trial has ended.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let followed = loop {
        let output = world.run(&["logs", "talk", "talk-0000", "-f"]);
        if output.status.success() {
            break output;
        }
        assert!(std::time::Instant::now() < deadline, "{}", text(&output));
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let followed = String::from_utf8_lossy(&followed.stdout).to_string();
    assert!(
        followed.contains("first x=") && followed.ends_with("second\nloss=0.5\n"),
        "{followed}"
    );
    assert!(run.wait().expect("run ends").success());

    let all = world.run(&["logs", "talk", "talk-0000"]);
    assert_eq!(String::from_utf8_lossy(&all.stdout), followed);
    let last = world.run(&["logs", "talk", "talk-0000", "--tail", "1"]);
    assert_eq!(String::from_utf8_lossy(&last.stdout), "loss=0.5\n");
    let unknown = world.run(&["logs", "talk", "talk-0009"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no trial named `talk-0009`"));
}
