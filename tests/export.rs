//! `--mlflow-uri` without an MLflow server: bad addresses are usage errors, and an MLflow that
//! does not answer costs an experiment nothing. (The export itself is tested against a real
//! MLflow server in tests/mlflow/test_export.py.)

mod common;

use common::{World, text, x_experiment};

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn quick_experiment(world: &World, name: &str) -> std::path::PathBuf {
    world.write("objective.sh", "#!/bin/sh\necho \"epoch=1 loss=$1\"\n");
    world.write(
        &format!("{name}.yaml"),
        &x_experiment(
            name,
            "maxTrialCount: 3\nparallelTrialCount: 1",
            "command: [\"sh\", \"objective.sh\", \"${parameters.x}\"]",
        ),
    )
}

#[test]
fn a_bad_mlflow_uri_is_a_usage_error_naming_the_flag() {
    let world = World::new();
    let file = quick_experiment(&world, "bad-uri");
    for uri in ["localhost:5000", "file:///tmp/mlruns", "http://"] {
        let output = world.run(&["run", file.to_str().expect("path"), "--mlflow-uri", uri]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(stderr.contains("--mlflow-uri"), "{stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
    }
    // Refused before anything ran: the store was not even created.
    assert!(!world.store().exists());

    let output = world
        .tuneflow()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("TUNEFLOW_MLFLOW_URI", "ftp://host")
        .output()
        .expect("run tuneflow serve");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TUNEFLOW_MLFLOW_URI"));
}

#[test]
fn an_mlflow_that_does_not_answer_costs_the_experiment_nothing() {
    let world = World::new();
    let file = quick_experiment(&world, "mlflow-down");
    let uri = format!("http://127.0.0.1:{}", closed_port());
    let started = std::time::Instant::now();
    let output = world.run(&["run", file.to_str().expect("path"), "--mlflow-uri", &uri]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(world.experiment("mlflow-down")["state"], "Succeeded");
    assert!(stderr.contains("MLflow export incomplete"), "{stderr}");
    assert!(stderr.contains("3 trials"), "{stderr}");
    assert!(
        stderr.contains("tuneflow export mlflow-down --mlflow-uri"),
        "{stderr}"
    );

    // `tuneflow export` says the same and fails, leaving the store as it was.
    let output = world.run(&[
        "export",
        "mlflow-down",
        "--mlflow-uri",
        &uri,
        "--timeout",
        "3s",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach MLflow"));
    let output = world.run(&["export", "mlflow-down"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}
