//! The CLI's handling of bad input and its Katib compatibility.

mod common;

use common::{World, experiment, katib_dir, text, x_experiment};

#[test]
fn validate_reports_every_error_with_its_field_and_position() {
    let world = World::new();
    let file = world.write(
        "bad.yaml",
        &experiment(
            "bad",
            r#"objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: randon}
paralelTrialCount: 2
parameters:
  - name: lr
    parameterType: double
    feasibleSpace: {min: "0.1", max: "0.01"}
trialTemplate:
  command: ["train", "${parameters.lr}"]
"#,
        ),
    );
    let output = world.run(&["validate", file.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("spec.algorithm.algorithmName"), "{stderr}");
    assert!(
        stderr.contains("random"),
        "hint names the nearest algorithm: {stderr}"
    );
    assert!(
        stderr.contains("paralelTrialCount") && stderr.contains("parallelTrialCount"),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.parameters[0].feasibleSpace.max"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.yaml:"),
        "errors carry the file and position: {stderr}"
    );

    let report = world.run(&["validate", file.to_str().expect("path"), "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).expect("json");
    let errors = report[0]["errors"].as_array().expect("errors");
    assert!(errors.len() >= 3, "{errors:?}");
    assert!(
        errors.iter().all(|e| e["line"].as_u64().is_some()),
        "{errors:?}"
    );
}

#[test]
fn run_refuses_an_invalid_file_without_touching_the_store() {
    let world = World::new();
    let file = world.write(
        "broken.yaml",
        "apiVersion: tuneflow.dev/v1alpha1\nkind: Experiment\nspec: [unclosed\n",
    );
    let output = world.run(&["run", file.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        !world.store().exists(),
        "no store was created for an invalid file"
    );
    let output = world.run(&["run", "does-not-exist.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does-not-exist.yaml"));
}

#[test]
fn every_katib_example_validates_or_names_what_is_not_available() {
    let world = World::new();
    let mut checked = 0;
    for dir in ["hp-tuning", "metrics-collector"] {
        for entry in std::fs::read_dir(katib_dir().join(dir)).expect("katib examples") {
            let path = entry.expect("entry").path();
            let output = world.run(&["validate", path.to_str().expect("path"), "-o", "json"]);
            let report: serde_json::Value = serde_json::from_slice(&output.stdout)
                .unwrap_or_else(|_| panic!("{}", text(&output)));
            let report = &report[0];
            if report["valid"] == true {
                assert!(output.status.success());
            } else {
                for error in report["errors"].as_array().expect("errors") {
                    let message = error["message"].as_str().expect("message");
                    assert!(
                        message.contains("not available"),
                        "{}: {message}",
                        path.display()
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} example files found");
    for valid in [
        "hp-tuning/random.yaml",
        "hp-tuning/grid.yaml",
        "hp-tuning/tpe.yaml",
        "hp-tuning/multivariate-tpe.yaml",
        "hp-tuning/hyperband.yaml",
        "early-stopping/median-stop.yaml",
        "metrics-collector/file-metrics-collector.yaml",
    ] {
        let output = world.run(&["validate", katib_dir().join(valid).to_str().expect("path")]);
        assert!(output.status.success(), "{valid}: {}", text(&output));
    }
}

#[test]
fn a_katib_experiment_runs_locally_with_its_container_command_replaced() {
    let world = World::new();
    world.write(
        "mnist.py",
        r#"import sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
lr, momentum = float(args["lr"]), float(args["momentum"])
for epoch in range(1, 3):
    print(f"epoch={epoch} loss={abs(lr - 0.03) + abs(momentum - 0.7) + 1.0 / epoch:.6f}")
"#,
    );
    for (example, name, count) in [
        ("random.yaml", "random", 12),
        ("tpe.yaml", "tpe", 12),
        ("multivariate-tpe.yaml", "multivariate-tpe", 12),
        ("hyperband.yaml", "hyperband", 2),
    ] {
        let original = std::fs::read_to_string(katib_dir().join("hp-tuning").join(example))
            .expect("katib example");
        let local = original.replace(
            "/opt/pytorch-mnist/mnist.py",
            &world.path("mnist.py").display().to_string(),
        );
        let file = world.write(example, &local);
        let output = world.run(&["run", file.to_str().expect("path")]);
        assert!(output.status.success(), "{example}: {}", text(&output));
        let trials = world.trials(name);
        assert_eq!(trials.len(), count, "{example}");
        assert!(
            trials.iter().all(|t| t["state"] == "Succeeded"),
            "{example}: {trials:#?}"
        );
    }
}

#[test]
fn queries_of_unknown_experiments_and_stores_say_so() {
    let world = World::new();
    let output = world.run(&["experiments"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no store at"));
    world.write("echo.sh", "#!/bin/sh\necho \"loss=$1\"\n");
    let file = world.write(
        "e.yaml",
        &x_experiment(
            "one",
            "parallelTrialCount: 1\nmaxTrialCount: 1",
            r#"command: ["sh", "echo.sh", "${parameters.x}"]"#,
        ),
    );
    assert!(
        world
            .run(&["run", file.to_str().expect("path")])
            .status
            .success()
    );
    let output = world.run(&["best", "nope"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no experiment named `nope`") && stderr.contains("hint:"),
        "{stderr}"
    );
}

fn one_trial_experiment(world: &World) -> String {
    world.write("echo.sh", "#!/bin/sh\necho \"loss=$1\"\n");
    let file = world.write(
        "e.yaml",
        &x_experiment(
            "store-trouble",
            "maxTrialCount: 3",
            r#"command: ["sh", "echo.sh", "${parameters.x}"]"#,
        ),
    );
    file.to_str().expect("path").to_string()
}

#[test]
fn a_store_that_cannot_be_created_gives_a_clear_error() {
    let world = World::new();
    let file = one_trial_experiment(&world);
    world.write("not-a-dir", "a file where a directory should be");
    let output = world
        .tuneflow()
        .args(["run", &file, "--store", "not-a-dir/tuneflow.db"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open store not-a-dir/tuneflow.db"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_locked_store_gives_a_clear_error_and_stays_consistent() {
    let world = World::new();
    let file = one_trial_experiment(&world);
    assert!(world.run(&["run", &file]).status.success());
    // Another process takes an exclusive lock on the store and keeps it.
    let mut locker = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(60)",
            world.store().to_str().expect("path"),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(locker.stdout.as_mut().expect("stdout")),
        &mut line,
    )
    .expect("read");
    assert_eq!(line.trim(), "locked");
    let output = world.run(&["run", &file, "--fresh"]);
    let _ = locker.kill();
    let _ = locker.wait();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("locked"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    // The earlier results are intact.
    assert_eq!(world.trials("store-trouble").len(), 3);
}

#[test]
fn katib_file_collectors_follow_the_metrics_file_in_text_and_json() {
    let world = World::new();
    // A stand-in for Katib's mnist.py that writes its metrics to --log-path.
    world.write(
        "mnist.py",
        r#"import json, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if "=" in a)
lr, path = float(args["lr"]), args["log-path"]
with open(path, "w") as log:
    for epoch in range(1, 4):
        accuracy = 0.5 + epoch * lr
        if path.endswith(".json"):
            log.write(json.dumps({"global_step": str(epoch), "accuracy": str(accuracy), "loss": 1 - accuracy}) + "\n")
        else:
            log.write("{metricName: accuracy, metricValue: %.4f}\n" % accuracy)
        log.flush()
print("accuracy=0.0001 on stdout is not the metrics source")
"#,
    );
    for (example, extension) in [
        ("file-metrics-collector-with-json-format.yaml", "json"),
        ("file-metrics-collector.yaml", "log"),
    ] {
        let original = std::fs::read_to_string(katib_dir().join("metrics-collector").join(example))
            .expect("example");
        let log = world.path(&format!(
            "metrics-${{trialParameters.learningRate}}.{extension}"
        ));
        let local = original
            .replace(
                "/opt/pytorch-mnist/mnist.py",
                &world.path("mnist.py").display().to_string(),
            )
            .replace(
                &format!("/katib/mnist.{extension}"),
                &log.display().to_string(),
            )
            .replace("maxTrialCount: 12", "maxTrialCount: 4");
        let file = world.write(example, &local);
        let output = world.run(&["run", file.to_str().expect("path")]);
        assert!(output.status.success(), "{example}: {}", text(&output));
        let name = example.trim_end_matches(".yaml");
        let trials = world.trials(name);
        assert_eq!(trials.len(), 4);
        for trial in &trials {
            assert_eq!(trial["state"], "Succeeded", "{example}: {trial}");
            let lr = trial["parameters"]["lr"].as_f64().expect("lr");
            let objective = trial["objective"].as_f64().expect("objective");
            assert!(
                (objective - (0.5 + 3.0 * lr)).abs() < 1e-3,
                "{example}: {objective} for lr {lr}"
            );
        }
    }
}

/// Regression (reliability probe): a stderr that cannot be written (a full disk) made `run`
/// exit 101 and leave a trial Running; `experiments` and the rest panicked the same way.
#[test]
fn an_unwritable_stderr_or_a_closed_stdout_is_no_panic() {
    let world = World::new();
    world.write("trial.sh", "echo loss=$1\n");
    let file = world.write(
        "full.yaml",
        &x_experiment(
            "full",
            "maxTrialCount: 3\nparallelTrialCount: 1",
            "command: [sh, trial.sh, \"${parameters.x}\"]",
        ),
    );
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let run = world
        .tuneflow()
        .args(["run", file.to_str().expect("path")])
        .stderr(full)
        .output()
        .expect("run");
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let experiment = world.experiment("full");
    assert_eq!(experiment["state"], "Succeeded", "{experiment}");
    assert_eq!(experiment["trials"]["running"], 0);

    // A reader that goes away before the answer (`tuneflow trials full | head -0`).
    for args in [vec!["experiments"], vec!["trials", "full", "-o", "json"]] {
        let mut child = world
            .tuneflow()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("wait");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output));
        assert!(
            !String::from_utf8_lossy(&output.stderr).contains("panicked"),
            "{}",
            text(&output)
        );
    }
}

/// Completions and the man page come from the command-line definition itself.
#[test]
fn completions_and_the_man_page_cover_every_command() {
    let world = World::new();
    for shell in ["bash", "zsh", "fish"] {
        let output = world.run(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {}", text(&output));
        let script = String::from_utf8_lossy(&output.stdout);
        for command in ["dashboard", "stop", "logs", "serve"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
    let man = world.run(&["man"]);
    assert!(man.status.success(), "{}", text(&man));
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH tuneflow"),
        "{page}"
    );
    assert!(page.contains("dashboard"), "{page}");
    let bad = world.run(&["completions", "cmd.exe"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}
