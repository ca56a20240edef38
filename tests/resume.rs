//! Stopping `tuneflow run` midway (Ctrl-C or SIGKILL) and running it again finishes the
//! experiment with exactly maxTrialCount trials: none lost, none repeated.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{World, experiment, text};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn slow_experiment(name: &str) -> String {
    experiment(
        name,
        r#"objective: {type: maximize, objectiveMetricName: score}
algorithm:
  algorithmName: random
  algorithmSettings: [{name: random_state, value: "11"}]
parallelTrialCount: 3
maxTrialCount: 12
parameters:
  - {name: x, parameterType: double, feasibleSpace: {min: 0, max: 1}}
trialTemplate:
  command: ["sh", "slow.sh", "${parameters.x}"]
"#,
    )
}

/// Starts a run, waits until `finished` trials are done, then sends `signal`.
fn interrupt_midway(
    world: &World,
    file: &str,
    name: &str,
    signal: Signal,
) -> std::process::ExitStatus {
    let mut child = world
        .tuneflow()
        .args(["run", file])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start tuneflow run");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "trials never finished");
        std::thread::sleep(Duration::from_millis(100));
        let output = world.run(&["trials", name, "-o", "json"]);
        if !output.status.success() {
            continue;
        }
        let trials: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        let done = trials
            .as_array()
            .map(|t| t.iter().filter(|t| t["state"] == "Succeeded").count())
            .unwrap_or(0);
        if done >= 3 {
            break;
        }
    }
    kill(Pid::from_raw(child.id() as i32), signal).expect("signal tuneflow");
    child.wait().expect("wait for tuneflow")
}

fn assert_complete(world: &World, name: &str) {
    let trials = world.trials(name);
    assert_eq!(trials.len(), 12, "{trials:#?}");
    let indices: HashSet<u64> = trials
        .iter()
        .map(|t| t["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(indices, (0..12).collect::<HashSet<u64>>());
    assert!(
        trials.iter().all(|t| t["state"] == "Succeeded"),
        "{trials:#?}"
    );
    let summary = world.experiment(name);
    assert_eq!(summary["state"], "Succeeded");
    assert_eq!(summary["trials"]["succeeded"], 12);
}

#[test]
fn ctrl_c_then_resume_ends_with_exactly_max_trials() {
    let world = World::new();
    world.write("slow.sh", "#!/bin/sh\nsleep 0.4\necho \"score=$1\"\n");
    let file = world.write("exp.yaml", &slow_experiment("resumable"));
    let file = file.to_str().expect("path");
    let status = interrupt_midway(&world, file, "resumable", Signal::SIGINT);
    assert_eq!(status.code(), Some(130));
    let summary = world.experiment("resumable");
    assert_eq!(summary["state"], "Interrupted");
    assert!(
        summary["trials"]["killed"].as_u64().expect("killed") > 0,
        "{summary}"
    );
    assert_eq!(
        summary["trials"]["running"], 0,
        "no trial is left marked running"
    );

    let output = world.run(&["run", file]);
    assert!(output.status.success(), "{}", text(&output));
    assert_complete(&world, "resumable");
    // Interrupted trials ran again: some trial has two attempts.
    let trials = world.trials("resumable");
    assert!(trials.iter().any(|t| t["attempts"] == 2));
}

#[test]
fn sigkill_then_resume_ends_with_exactly_max_trials() {
    let world = World::new();
    world.write("slow.sh", "#!/bin/sh\nsleep 0.4\necho \"score=$1\"\n");
    let file = world.write("exp.yaml", &slow_experiment("crashed"));
    let file = file.to_str().expect("path");
    let status = interrupt_midway(&world, file, "crashed", Signal::SIGKILL);
    assert_eq!(status.code(), None, "killed by a signal");

    let output = world.run(&["run", file]);
    assert!(output.status.success(), "{}", text(&output));
    assert_complete(&world, "crashed");
}

#[test]
fn a_finished_experiment_is_not_run_again_unless_fresh() {
    let world = World::new();
    world.write("slow.sh", "#!/bin/sh\necho \"score=$1\"\n");
    let file = world.write("exp.yaml", &slow_experiment("twice"));
    let file = file.to_str().expect("path");
    assert!(world.run(&["run", file]).status.success());
    let first = world.trials("twice");
    let output = world.run(&["run", file]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(world.trials("twice"), first, "nothing ran again");

    let output = world.run(&["run", file, "--fresh"]);
    assert!(output.status.success(), "{}", text(&output));
    let fresh = world.trials("twice");
    assert_eq!(fresh.len(), 12);
    assert_ne!(fresh[0]["createdAt"], first[0]["createdAt"]);
}

#[test]
fn a_resumed_run_stops_the_processes_a_crashed_run_left_behind() {
    let world = World::new();
    // While the file `hang` exists, a trial starts a grandchild and hangs; then it succeeds.
    world.write("hang", "");
    world.write(
        "hang-once.sh",
        r#"#!/bin/sh
if [ ! -e hang ]; then echo "score=$1"; exit 0; fi
sleep 300 &
echo $! > "grandchild-$TUNEFLOW_TRIAL_NAME.pid"
echo $$ > "leader-$TUNEFLOW_TRIAL_NAME.pid"
sleep 300
"#,
    );
    let file = world.write(
        "exp.yaml",
        &experiment(
            "orphans",
            r#"objective: {type: maximize, objectiveMetricName: score}
algorithm: {algorithmName: random}
parallelTrialCount: 2
maxTrialCount: 4
parameters:
  - {name: x, parameterType: double, feasibleSpace: {min: 0, max: 1}}
trialTemplate:
  command: ["sh", "hang-once.sh", "${parameters.x}"]
"#,
        ),
    );
    let file = file.to_str().expect("path");
    let mut child = world
        .tuneflow()
        .args(["run", file])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start tuneflow run");
    let pid_files = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pid"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while pid_files(world.dir.path()).len() < 4 {
        assert!(Instant::now() < deadline, "the trials never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill tuneflow");
    child.wait().expect("wait");
    let pids: Vec<u32> = pid_files(world.dir.path())
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .expect("pid file")
                .trim()
                .parse()
                .expect("pid")
        })
        .collect();
    assert!(
        pids.iter().all(|pid| common::process_alive(*pid)),
        "the crashed run's trials outlive it until a resume stops them"
    );

    std::fs::remove_file(world.path("hang")).expect("end the hanging phase");
    let started = Instant::now();
    let output = world.run(&["run", file]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(started.elapsed() < Duration::from_secs(60));
    for pid in pids {
        assert!(
            !common::process_alive(pid),
            "process {pid} of the crashed run survived"
        );
    }
    let trials = world.trials("orphans");
    assert_eq!(trials.len(), 4);
    assert!(
        trials.iter().all(|t| t["state"] == "Succeeded"),
        "{trials:#?}"
    );
}
