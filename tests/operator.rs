//! The operator against the fake API server (crate `tuneflow-fake-kube`): Experiment
//! resources in, Jobs out, simulated pods and logs back, status and events written.
//!
//! Each test starts its own fake API server, store and operator, so they run in parallel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tuneflow::engine::TrackingEndpoint;
use tuneflow::operator::jobs::KubernetesExecutors;
use tuneflow::operator::resource::ExperimentResource;
use tuneflow::operator::{LeaderElection, OperatorConfig, OperatorError};
use tuneflow::store::{self, Store, StoreLocation, TrialState};
use tuneflow_fake_kube::{
    EVENTS_V1, EXPERIMENTS, FakeKube, JOBS, JobScript, LEASES, Outcome, PODS,
};

const NS: &str = "team";
const LIMIT: Duration = Duration::from_secs(30);

/// The objective a simulated trial reports for learning rate `lr`: smallest at 0.05.
fn loss(lr: f64, line: usize) -> f64 {
    (lr - 0.05).powi(2) * 100.0 + 1.0 / (line as f64 + 1.0)
}

/// The learning rate in a Job's primary container arguments (`--lr=X`).
fn lr_of(job: &Value) -> Option<f64> {
    job["spec"]["template"]["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| {
            c["command"]
                .as_array()
                .into_iter()
                .chain(c["args"].as_array())
                .flatten()
        })
        .filter_map(Value::as_str)
        .find_map(|arg| arg.strip_prefix("--lr=")?.parse().ok())
}

/// A script that prints `lines` losses for the Job's learning rate, `delay` apart.
fn script(job: &Value, lines: usize, delay: Duration, outcome: Outcome) -> JobScript {
    let lr = lr_of(job).unwrap_or(1.0);
    JobScript {
        lines: (0..lines)
            .map(|i| (delay, format!("loss={}", loss(lr, i))))
            .collect(),
        container: Some("training".to_string()),
        outcome,
    }
}

fn spec(max_trials: u32, parallel: u32) -> Value {
    json!({
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "7"}]},
        "parallelTrialCount": parallel,
        "maxTrialCount": max_trials,
        "maxFailedTrialCount": 1,
        "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}}],
        "trialTemplate": {
            "primaryContainerName": "training",
            "trialParameters": [{"name": "learningRate", "reference": "lr"}],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {"template": {"spec": {
                    "containers": [
                        {"name": "training", "image": "python:3.11-slim",
                         "command": ["python", "train.py", "--lr=${trialParameters.learningRate}"]},
                        {"name": "sidecar", "image": "busybox", "command": ["sleep", "infinity"]}
                    ],
                    "restartPolicy": "Never"
                }}}
            }
        }
    })
}

fn resource(name: &str, spec: Value) -> ExperimentResource {
    serde_json::from_value(json!({
        "apiVersion": "tuneflow.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }))
    .expect("a valid Experiment resource")
}

struct Operator {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), OperatorError>>,
}

impl Operator {
    fn start(kube: &FakeKube, store: Arc<dyn Store>, dir: &std::path::Path) -> Operator {
        Operator::start_with(kube, store, dir, None, Duration::from_secs(300))
    }

    fn start_with(
        kube: &FakeKube,
        store: Arc<dyn Store>,
        dir: &std::path::Path,
        leader_election: Option<LeaderElection>,
        image_pull_timeout: Duration,
    ) -> Operator {
        Operator::start_full(kube, store, dir, leader_election, image_pull_timeout, None)
    }

    fn start_full(
        kube: &FakeKube,
        store: Arc<dyn Store>,
        dir: &std::path::Path,
        leader_election: Option<LeaderElection>,
        image_pull_timeout: Duration,
        tracking: Option<TrackingEndpoint>,
    ) -> Operator {
        init_logs();
        let client = kube.client("default");
        let config = OperatorConfig {
            client: client.clone(),
            store,
            logs_dir: dir.join("logs"),
            namespace: None,
            leader_election,
            executors: Arc::new(KubernetesExecutors::new(client, image_pull_timeout)),
            tracking,
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(tuneflow::operator::run(config, shutdown.clone()));
        Operator { shutdown, task }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(LIMIT, self.task)
            .await
            .expect("the operator stops");
        result
            .expect("the operator task")
            .expect("the operator ends cleanly");
    }
}

/// Logs of the code under test on stderr when `TUNEFLOW_TEST_LOG` holds a filter
/// (`TUNEFLOW_TEST_LOG=tuneflow=debug cargo test --test operator -- --nocapture`).
fn init_logs() {
    if let Ok(filter) = std::env::var("TUNEFLOW_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

async fn open_store(dir: &std::path::Path) -> Arc<dyn Store> {
    let location =
        StoreLocation::parse(&dir.join("tuneflow.db").display().to_string()).expect("a store path");
    Arc::from(store::open(&location).await.expect("the store opens"))
}

/// Polls `check` until it gives a value, or fails the test after `LIMIT` saying `what`.
async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn status(kube: &FakeKube, name: &str) -> Value {
    kube.get(&EXPERIMENTS, NS, name)
        .map(|e| e["status"].clone())
        .unwrap_or(Value::Null)
}

async fn state_is(kube: &FakeKube, name: &str, state: &str) -> Value {
    wait_for(&format!("{name} to be {state}"), || {
        let status = status(kube, name);
        (status["state"] == state).then_some(status)
    })
    .await
}

async fn create(kube: &FakeKube, resource: &ExperimentResource) {
    let api: Api<ExperimentResource> = Api::namespaced(kube.client(NS), NS);
    api.create(&PostParams::default(), resource)
        .await
        .expect("the Experiment is created");
}

fn event_reasons(kube: &FakeKube) -> Vec<String> {
    kube.list(&EVENTS_V1, Some(NS))
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_runs_its_trials_as_jobs_and_reports_the_best() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|job| script(job, 3, Duration::from_millis(5), Outcome::Succeed));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let operator = Operator::start(&kube, store.clone(), dir.path());
    create(&kube, &resource("mnist", spec(4, 2))).await;

    let status = state_is(&kube, "mnist", "Succeeded").await;
    assert_eq!(status["trials"], 4);
    assert_eq!(status["trialsSucceeded"], 4);
    let types: Vec<_> = status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| c["type"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(types, ["Created", "Running", "Succeeded"], "{status:#}");
    assert!(status["completionTime"].is_string(), "{status:#}");

    // One Job per trial, with the trial's own learning rate substituted.
    assert_eq!(kube.count("POST", "jobs"), 4);
    let experiment = store
        .experiment("team.mnist")
        .await
        .expect("the store answers")
        .expect("the experiment is stored under NAMESPACE.NAME");
    let trials = store.trials(experiment.id).await.expect("trials");
    assert_eq!(trials.len(), 4);
    let mut best = f64::INFINITY;
    for trial in &trials {
        assert_eq!(trial.state, TrialState::Succeeded, "{trial:?}");
        let lr: f64 = trial.assignment[0].to_string().parse().expect("a double");
        let expected = loss(lr, 2);
        let objective = trial.objective.expect("an objective from the pod log");
        assert!(
            (objective - expected).abs() < 1e-9,
            "{objective} vs {expected}"
        );
        let observations = store
            .observations(trial.id, Some("loss"))
            .await
            .expect("observations");
        assert_eq!(observations.len(), 3, "every log line once");
        best = best.min(objective);
    }
    assert_eq!(status["bestObjective"].as_f64(), Some(best));
    let optimal = &status["currentOptimalTrial"];
    assert!(
        optimal["bestTrialName"]
            .as_str()
            .is_some_and(|n| n.starts_with("team.mnist-"))
    );
    assert_eq!(optimal["parameterAssignments"][0]["name"], "lr");

    // Finished Jobs are deleted with their pods (retain is off).
    wait_for("the finished Jobs to be deleted", || {
        (kube.list(&JOBS, Some(NS)).is_empty() && kube.list(&PODS, Some(NS)).is_empty())
            .then_some(())
    })
    .await;
    // The status may show the end before the run task reports it; the event follows.
    wait_for(
        "the ExperimentCreated and ExperimentSucceeded events",
        || {
            let reasons = event_reasons(&kube);
            (reasons.iter().any(|r| r == "ExperimentCreated")
                && reasons.iter().any(|r| r == "ExperimentSucceeded"))
            .then_some(())
        },
    )
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_pods_fail_trials_and_then_the_experiment() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|job| {
        script(
            job,
            1,
            Duration::from_millis(5),
            Outcome::Fail {
                exit_code: 3,
                reason: "Error".to_string(),
            },
        )
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let operator = Operator::start(&kube, store.clone(), dir.path());
    create(&kube, &resource("broken", spec(6, 1))).await;

    let status = state_is(&kube, "broken", "Failed").await;
    assert_eq!(status["trialsFailed"], 2, "{status:#}");
    let failed = status["conditions"]
        .as_array()
        .and_then(|c| c.last())
        .expect("a condition");
    assert_eq!(failed["type"], "Failed");
    assert!(!failed["reason"].as_str().unwrap_or_default().is_empty());
    wait_for("a TrialFailed event", || {
        event_reasons(&kube)
            .iter()
            .any(|r| r == "TrialFailed")
            .then_some(())
    })
    .await;
    let experiment = store
        .experiment("team.broken")
        .await
        .expect("store")
        .expect("stored");
    let trials = store.trials(experiment.id).await.expect("trials");
    assert!(
        trials.iter().all(|t| t.state == TrialState::Failed),
        "{trials:?}"
    );
    assert!(
        trials[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains('3'),
        "the exit code is in the message: {:?}",
        trials[0].message
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_experiment_deletes_its_jobs_through_the_finalizer() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|job| script(job, 1, Duration::from_millis(5), Outcome::Hang));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let operator = Operator::start(&kube, store.clone(), dir.path());
    create(&kube, &resource("doomed", spec(10, 3))).await;
    wait_for("three running Jobs", || {
        (kube.list(&PODS, Some(NS)).len() == 3).then_some(())
    })
    .await;
    let finalizers =
        kube.get(&EXPERIMENTS, NS, "doomed").expect("the resource")["metadata"]["finalizers"]
            .clone();
    assert_eq!(finalizers, json!(["tuneflow.dev/trials"]));

    let api: Api<ExperimentResource> = Api::namespaced(kube.client(NS), NS);
    api.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("the resource, its Jobs and pods to be gone", || {
        (kube.get(&EXPERIMENTS, NS, "doomed").is_none()
            && kube.list(&JOBS, Some(NS)).is_empty()
            && kube.list(&PODS, Some(NS)).is_empty())
        .then_some(())
    })
    .await;
    // No new trial started after the deletion, and the store keeps the history.
    assert_eq!(kube.count("POST", "jobs"), 3);
    let experiment = store
        .experiment("team.doomed")
        .await
        .expect("store")
        .expect("kept");
    assert_eq!(store.trials(experiment.id).await.expect("trials").len(), 3);
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_follows_running_jobs_without_launching_them_again() {
    let kube = FakeKube::start().await;
    // Two lines, then the pods keep running until the test finishes their Jobs.
    kube.simulate_jobs(|job| script(job, 2, Duration::from_millis(5), Outcome::Hang));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let first = Operator::start(&kube, store.clone(), dir.path());
    create(&kube, &resource("durable", spec(2, 2))).await;
    wait_for("both trials to log", || {
        let pods = kube.list(&PODS, Some(NS));
        (pods.len() == 2
            && pods.iter().all(|p| {
                let name = p["metadata"]["name"].as_str().unwrap_or_default();
                kube.log_lines(NS, name, "training").len() == 2
            }))
        .then_some(())
    })
    .await;
    // Let the collector store the lines, then stop the operator: the Jobs keep running.
    let experiment = store
        .experiment("team.durable")
        .await
        .expect("store")
        .expect("stored");
    let trials = store.trials(experiment.id).await.expect("trials");
    for trial in &trials {
        wait_for_observations(&store, trial.id, 2).await;
    }
    first.stop().await;
    assert_eq!(
        kube.list(&JOBS, Some(NS)).len(),
        2,
        "stopping the operator leaves Jobs alone"
    );

    let second = Operator::start(&kube, store.clone(), dir.path());
    // The new operator follows the same Jobs; finishing them ends the experiment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for job in kube.list(&JOBS, Some(NS)) {
        let name = job["metadata"]["name"]
            .as_str()
            .expect("a name")
            .to_string();
        let pod = kube.pods_of_job(NS, &name).pop().expect("the job's pod");
        kube.append_log(NS, &pod, "training", "loss=0.001");
        kube.finish_job(NS, &name, true, 0).expect("finish the job");
    }
    let status = state_is(&kube, "durable", "Succeeded").await;
    assert_eq!(status["trialsSucceeded"], 2);
    assert_eq!(kube.count("POST", "jobs"), 2, "no Job was launched twice");
    for trial in store.trials(experiment.id).await.expect("trials") {
        let observations = store
            .observations(trial.id, Some("loss"))
            .await
            .expect("observations");
        assert_eq!(
            observations.len(),
            3,
            "replayed lines are not stored twice: {observations:?}"
        );
        assert_eq!(trial.objective, Some(0.001));
    }
    second.stop().await;
}

async fn wait_for_observations(store: &Arc<dyn Store>, trial: i64, count: usize) {
    let start = Instant::now();
    while store
        .observations(trial, None)
        .await
        .expect("observations")
        .len()
        < count
    {
        assert!(
            start.elapsed() < LIMIT,
            "timed out waiting for observations"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_expired_watches_are_resumed() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|job| script(job, 3, Duration::from_millis(100), Outcome::Succeed));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let operator = Operator::start(&kube, store.clone(), dir.path());
    create(&kube, &resource("flaky", spec(6, 2))).await;
    // Cut every watch a few times while trials run; every other time the history is
    // compacted too, so resuming from the last resourceVersion gets 410 Expired.
    for disruption in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if disruption % 2 == 1 {
            kube.compact();
        }
        kube.close_watches();
    }
    assert_ne!(
        status(&kube, "flaky")["state"],
        "Succeeded",
        "the disruptions came while it ran"
    );
    let ended = wait_for("flaky to end", || {
        let now = status(&kube, "flaky");
        (now["state"] == "Succeeded" || now["state"] == "Failed").then_some(now)
    })
    .await;
    let experiment = store
        .experiment("team.flaky")
        .await
        .expect("store")
        .expect("stored");
    let trials = store.trials(experiment.id).await.expect("trials");
    assert_eq!(ended["state"], "Succeeded", "{trials:#?}");
    let status = ended;
    assert_eq!(status["trialsSucceeded"], 6, "{status:#}");
    assert_eq!(kube.count("POST", "jobs"), 6, "no duplicate Jobs");
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_fails_with_the_field_and_runs_nothing() {
    let kube = FakeKube::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let operator = Operator::start(&kube, store, dir.path());
    let mut bad = spec(4, 2);
    bad["parameters"][0]["feasibleSpace"]["max"] = json!("0.001");
    create(&kube, &resource("bad", bad)).await;
    let status = state_is(&kube, "bad", "Failed").await;
    let failed = status["conditions"]
        .as_array()
        .and_then(|c| c.last())
        .expect("a condition");
    assert_eq!(failed["reason"], "InvalidSpec");
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.parameters[0].feasibleSpace"),
        "{message}"
    );
    assert_eq!(kube.count("POST", "jobs"), 0);
    assert!(event_reasons(&kube).iter().any(|r| r == "InvalidSpec"));

    // A trialSpec that is not a Job cannot run on Kubernetes: said before any trial.
    let mut tfjob = spec(4, 2);
    tfjob["trialTemplate"]["trialSpec"]["kind"] = json!("TFJob");
    tfjob["trialTemplate"]["trialSpec"]["apiVersion"] = json!("kubeflow.org/v1");
    create(&kube, &resource("tfjob", tfjob)).await;
    let status = state_is(&kube, "tfjob", "Failed").await;
    let failed = status["conditions"]
        .as_array()
        .and_then(|c| c.last())
        .expect("a condition");
    assert_eq!(failed["reason"], "CannotRun");
    assert!(
        failed["message"]
            .as_str()
            .unwrap_or_default()
            .contains("TFJob"),
        "{failed}"
    );
    assert_eq!(kube.count("POST", "jobs"), 0);
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_max_trial_count_on_a_live_resource_takes_effect() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|job| script(job, 3, Duration::from_millis(200), Outcome::Succeed));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let operator = Operator::start(&kube, store, dir.path());
    create(&kube, &resource("growing", spec(2, 1))).await;
    wait_for("the first Job", || {
        (kube.count("POST", "jobs") >= 1).then_some(())
    })
    .await;
    let api: Api<ExperimentResource> = Api::namespaced(kube.client(NS), NS);
    api.patch(
        "growing",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxTrialCount": 4, "parallelTrialCount": 2}})),
    )
    .await
    .expect("patch");
    // The edit reaches the running experiment (or, if it finished first, starts it again).
    wait_for("four trials and Succeeded", || {
        let now = status(&kube, "growing");
        (now["trials"] == 4 && now["state"] == "Succeeded").then_some(())
    })
    .await;
    assert_eq!(kube.count("POST", "jobs"), 4);

    // Raising it again on the finished experiment runs the extra trials.
    api.patch(
        "growing",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxTrialCount": 5}})),
    )
    .await
    .expect("patch");
    wait_for("a fifth trial", || {
        let now = status(&kube, "growing");
        (now["trials"] == 5 && now["state"] == "Succeeded").then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_namespaces_and_unpullable_images_fail_trials_with_the_reason() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|_| JobScript {
        lines: Vec::new(),
        container: None,
        outcome: Outcome::ImagePullError,
    });
    kube.forbid_namespace("locked");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let operator = Operator::start_with(
        &kube,
        store.clone(),
        dir.path(),
        None,
        Duration::from_millis(300),
    );

    // A native template (command and image) whose Jobs go to a namespace the operator may
    // not use.
    let mut locked = spec(3, 1);
    locked["trialTemplate"] = json!({
        "command": ["python", "train.py", "--lr=${parameters.lr}"],
        "kubernetes": {"image": "python:3.11-slim", "namespace": "locked"}
    });
    create(&kube, &resource("locked", locked)).await;
    create(&kube, &resource("unpullable", spec(3, 1))).await;
    let locked = state_is(&kube, "locked", "Failed").await;
    state_is(&kube, "unpullable", "Failed").await;
    assert_eq!(locked["trialsFailed"], 2, "{locked:#}");

    let experiment = store
        .experiment("team.locked")
        .await
        .expect("store")
        .expect("stored");
    let message = store.trials(experiment.id).await.expect("trials")[0]
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        message.contains("forbidden") && message.contains("locked"),
        "{message}"
    );
    let experiment = store
        .experiment("team.unpullable")
        .await
        .expect("store")
        .expect("stored");
    let message = store.trials(experiment.id).await.expect("trials")[0]
        .message
        .clone()
        .unwrap_or_default();
    assert!(message.contains("ErrImagePull"), "{message}");
    // The unpullable trials' Jobs were deleted, not left pending.
    wait_for("the unpullable Jobs to go", || {
        kube.list(&JOBS, Some(NS)).is_empty().then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_stopping_deletes_the_pruned_trials_jobs() {
    let kube = FakeKube::start().await;
    // Trials log 8 steps; a learning rate far from 0.05 stays bad at every step.
    kube.simulate_jobs(|job| script(job, 8, Duration::from_millis(40), Outcome::Succeed));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let operator = Operator::start(&kube, store.clone(), dir.path());
    let mut pruning = spec(12, 3);
    pruning["earlyStopping"] = json!({"algorithmName": "medianstop", "algorithmSettings": [
        {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "2"}]});
    create(&kube, &resource("pruning", pruning)).await;
    let status = state_is(&kube, "pruning", "Succeeded").await;
    let stopped = status["trialsEarlyStopped"].as_u64().unwrap_or_default();
    assert!(stopped >= 1, "some trial was stopped early: {status:#}");
    // A pruned trial's run ends without its Job finishing, so only the executor's cancel
    // deletes that Job: none may be left.
    wait_for("all Jobs to go, the pruned trials' too", || {
        kube.list(&JOBS, Some(NS)).is_empty().then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_the_other_takes_over() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|job| script(job, 2, Duration::from_millis(50), Outcome::Succeed));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let election = |identity: &str| LeaderElection {
        lease: "tuneflow-operator".to_string(),
        namespace: "tuneflow-system".to_string(),
        identity: identity.to_string(),
        duration: Duration::from_secs(3),
    };
    let first = Operator::start_with(
        &kube,
        store.clone(),
        dir.path(),
        Some(election("one")),
        Duration::from_secs(60),
    );
    wait_for("the first replica to lead", || {
        let lease = kube.get(&LEASES, "tuneflow-system", "tuneflow-operator")?;
        (lease["spec"]["holderIdentity"] == "one").then_some(())
    })
    .await;
    let second = Operator::start_with(
        &kube,
        store.clone(),
        dir.path(),
        Some(election("two")),
        Duration::from_secs(60),
    );
    create(&kube, &resource("shared", spec(8, 2))).await;
    wait_for("a few trials", || {
        (kube.count("POST", "jobs") >= 2).then_some(())
    })
    .await;
    // The leader steps down; the other replica continues the same experiment.
    first.stop().await;
    state_is(&kube, "shared", "Succeeded").await;
    let lease = kube
        .get(&LEASES, "tuneflow-system", "tuneflow-operator")
        .expect("the lease");
    assert_eq!(lease["spec"]["holderIdentity"], "two");
    assert_eq!(status(&kube, "shared")["trials"], 8);
    second.stop().await;
}

/// The value of environment variable `name` of a Job's primary container.
fn env_of(job: &Value, name: &str) -> Option<String> {
    job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trials_in_pods_push_observations_to_the_operators_api() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|_| JobScript {
        lines: Vec::new(),
        container: Some("training".to_string()),
        outcome: Outcome::Hang,
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let shutdown = CancellationToken::new();
    let (bound, _served) = tuneflow::api::serve_store(
        store.clone(),
        "127.0.0.1:0".parse().expect("an address"),
        Some("secret".to_string()),
        dir.path().join("logs"),
        shutdown.clone(),
    )
    .await
    .expect("the API serves");
    let tracking = TrackingEndpoint {
        uri: format!("http://{bound}"),
        token: Some("secret".to_string()),
    };
    let operator = Operator::start_full(
        &kube,
        store.clone(),
        dir.path(),
        None,
        Duration::from_secs(60),
        Some(tracking),
    );
    let mut pushed = spec(2, 2);
    pushed["metricsCollectorSpec"] = json!({"collector": {"kind": "Push"}});
    create(&kube, &resource("pushed", pushed)).await;
    let jobs = wait_for("two Jobs", || {
        let jobs = kube.list(&JOBS, Some(NS));
        (jobs.len() == 2).then_some(jobs)
    })
    .await;
    let http = reqwest::Client::new();
    for (i, job) in jobs.iter().enumerate() {
        let url = env_of(job, "TUNEFLOW_URL").expect("TUNEFLOW_URL in the trial's env");
        let token = env_of(job, "TUNEFLOW_TOKEN").expect("TUNEFLOW_TOKEN in the trial's env");
        let experiment = env_of(job, "TUNEFLOW_EXPERIMENT").expect("TUNEFLOW_EXPERIMENT");
        let trial = env_of(job, "TUNEFLOW_TRIAL_NAME").expect("TUNEFLOW_TRIAL_NAME");
        let response = http
            .post(format!(
                "{url}/api/v1/experiments/{experiment}/trials/{trial}/observations"
            ))
            .bearer_auth(token)
            .json(&json!({"step": 1, "metrics": {"loss": 0.5 + i as f64}}))
            .send()
            .await
            .expect("the API answers");
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
        let name = job["metadata"]["name"].as_str().expect("a name");
        kube.finish_job(NS, name, true, 0).expect("finish the job");
    }
    let status = state_is(&kube, "pushed", "Succeeded").await;
    assert_eq!(status["trialsSucceeded"], 2, "{status:#}");
    assert_eq!(status["bestObjective"], json!(0.5));
    operator.stop().await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_request_stops_the_experiment_and_it_stays_stopped() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|job| script(job, 1, Duration::from_millis(50), Outcome::Hang));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_store(dir.path()).await;
    let operator = Operator::start(&kube, store.clone(), dir.path());
    create(&kube, &resource("halted", spec(6, 2))).await;
    wait_for("two Jobs", || {
        (kube.list(&JOBS, Some(NS)).len() == 2).then_some(())
    })
    .await;

    // What `tuneflow stop` and the dashboard's stop button (through the operator's API) do.
    let stored = store
        .experiment("team.halted")
        .await
        .expect("read")
        .expect("stored");
    store
        .request_stop(stored.id, "stop requested by the test")
        .await
        .expect("request");
    wait_for("the Jobs to be deleted", || {
        kube.list(&JOBS, Some(NS)).is_empty().then_some(())
    })
    .await;
    let status = wait_for("the Stopped condition", || {
        let now = status(&kube, "halted");
        let stopped = now["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["reason"] == "ExperimentStopped" && c["status"] == "False");
        stopped.then_some(now)
    })
    .await;
    assert_eq!(status["trials"], 2, "{status}");
    let stored = store
        .experiment("team.halted")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        (stored.state.as_str(), stored.reason.as_deref()),
        ("Interrupted", Some("Stopped"))
    );
    // It is not started again behind the user's back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(kube.count("POST", "jobs"), 2);
    assert!(kube.list(&JOBS, Some(NS)).is_empty());
    operator.stop().await;
}
