//! The Kubernetes executor against the in-process fake API server (`tuneflow-fake-kube`): Jobs
//! created with the trial's values, logs read as lines, success, failure, image pull errors,
//! cancel, retain, timeout, RBAC, an API server that goes away, resume, and one experiment run
//! end to end through the binary.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tuneflow::executor::kubernetes::{KubernetesExecutor, KubernetesSettings};
use tuneflow::executor::{Executor, ExecutorEvent, TrialExit, TrialJob};
use tuneflow::spec::TrialTemplate;
use tuneflow::spec::model::KubernetesTemplate;
use tuneflow_fake_kube::{FakeKube, JOBS, JobScript, Outcome, PODS};

/// A native template running `python train.py` in `python:3.12`.
fn native() -> TrialTemplate {
    TrialTemplate {
        command: vec!["python".into(), "train.py".into()],
        env: vec![],
        working_dir: None,
        timeout: None,
        trial_parameters: vec![],
        primary_container_name: None,
        trial_spec: None,
        retain: false,
        kubernetes: Some(KubernetesTemplate {
            image: Some("python:3.12".into()),
            ..KubernetesTemplate::default()
        }),
        success_condition: None,
        failure_condition: None,
    }
}

/// A Katib-style Job manifest, its `${trialParameters.lr}` already substituted.
fn katib_manifest(lr: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {"template": {"spec": {
            "containers": [{
                "name": "training-container",
                "image": "ghcr.io/kubeflow/katib/pytorch-mnist-cpu:latest",
                "command": ["python3", "/opt/mnist.py", format!("--lr={lr}")]
            }],
            "restartPolicy": "Never"
        }}}
    })
}

struct Bench {
    kube: FakeKube,
    dir: tempfile::TempDir,
}

impl Bench {
    async fn new() -> Bench {
        Bench {
            kube: FakeKube::start().await,
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn executor(&self, tweak: impl FnOnce(&mut KubernetesSettings)) -> KubernetesExecutor {
        let mut settings = KubernetesSettings::new("default");
        tweak(&mut settings);
        KubernetesExecutor::new(self.kube.client("default"), settings)
    }

    fn job(&self, trial: &str, template: TrialTemplate) -> TrialJob {
        TrialJob {
            experiment: "mnist".into(),
            trial_name: trial.into(),
            command: template.command.clone(),
            env: vec![
                ("TUNEFLOW_PARAMETERS".into(), r#"{"lr":0.05}"#.into()),
                ("TUNEFLOW_TRIAL_INDEX".into(), "1".into()),
            ],
            working_dir: PathBuf::from("."),
            timeout: None,
            log_path: self.dir.path().join(format!("{trial}.log")),
            index: 1,
            namespace: None,
            template: Arc::new(template),
            manifest: None,
            resume: false,
        }
    }

    fn jobs(&self, namespace: &str) -> Vec<Value> {
        self.kube.list(&JOBS, Some(namespace))
    }

    fn pods(&self, namespace: &str) -> Vec<Value> {
        self.kube.list(&PODS, Some(namespace))
    }
}

/// Runs a trial to its end, collecting its events.
async fn run(
    executor: &KubernetesExecutor,
    job: TrialJob,
    cancel: CancellationToken,
) -> (TrialExit, Vec<ExecutorEvent>) {
    let (events, mut received) = mpsc::channel(64);
    let collect = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(event) = received.recv().await {
            all.push(event);
        }
        all
    });
    let exit = tokio::time::timeout(Duration::from_secs(60), executor.run(job, events, cancel))
        .await
        .expect("the trial ends within a minute");
    (exit, collect.await.expect("collector"))
}

fn lines(events: &[ExecutorEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ExecutorEvent::Line(line) => Some(line.clone()),
            ExecutorEvent::Started { .. } => None,
        })
        .collect()
}

fn script(lines: &[&str], outcome: Outcome) -> JobScript {
    JobScript {
        lines: lines
            .iter()
            .map(|l| (Duration::from_millis(20), (*l).to_string()))
            .collect(),
        container: None,
        outcome,
    }
}

/// Waits until `condition` holds (checked every 20 ms, for at most 10 s).
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

fn env_of(job: &Value, name: &str) -> Option<String> {
    job.pointer("/spec/template/spec/containers/0/env")?
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_katib_trial_runs_as_a_job_and_its_log_arrives_as_lines() {
    let bench = Bench::new().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    bench.kube.simulate_jobs(move |job| {
        record.lock().expect("lock").push(job.clone());
        script(&["epoch=1 loss=0.5", "epoch=2 loss=0.25"], Outcome::Succeed)
    });
    let executor = bench.executor(|_| {});
    let mut template = native();
    template.kubernetes = None;
    template.primary_container_name = Some("training-container".into());
    template.trial_spec = Some(katib_manifest("${trialParameters.lr}"));
    let mut job = bench.job("team-a.mnist-0001", template);
    job.experiment = "team-a.mnist".into();
    job.manifest = Some(katib_manifest("0.05"));
    job.namespace = Some("team-a".into());
    let log_path = job.log_path.clone();

    let (exit, events) = run(&executor, job, CancellationToken::new()).await;
    assert_eq!(exit, TrialExit::Exited(0));
    assert_eq!(
        events.first(),
        Some(&ExecutorEvent::Started {
            handle: "team-a/mnist-0001".into()
        })
    );
    assert_eq!(lines(&events), ["epoch=1 loss=0.5", "epoch=2 loss=0.25"]);
    let log = std::fs::read_to_string(log_path).expect("log file");
    assert_eq!(log, "epoch=1 loss=0.5\nepoch=2 loss=0.25\n");

    let created = seen.lock().expect("lock").clone();
    assert_eq!(created.len(), 1, "one Job");
    let created = &created[0];
    assert_eq!(created["metadata"]["name"], "mnist-0001");
    assert_eq!(created["metadata"]["namespace"], "team-a");
    assert_eq!(
        created["metadata"]["labels"]["tuneflow.dev/experiment"],
        "mnist"
    );
    assert_eq!(
        created["metadata"]["labels"]["tuneflow.dev/trial"],
        "mnist-0001"
    );
    assert_eq!(
        created.pointer("/spec/template/spec/containers/0/command/2"),
        Some(&json!("--lr=0.05"))
    );
    assert_eq!(
        env_of(created, "TUNEFLOW_TRIAL_NAME").as_deref(),
        Some("team-a.mnist-0001")
    );
    assert_eq!(
        env_of(created, "TUNEFLOW_PARAMETERS").as_deref(),
        Some(r#"{"lr":0.05}"#)
    );
    assert_eq!(created["spec"]["backoffLimit"], 0);
    // Finished and not retained: the Job and its pod are gone.
    until("the Job is deleted", || bench.jobs("team-a").is_empty()).await;
    until("its pod is deleted", || bench.pods("team-a").is_empty()).await;
    assert_eq!(bench.kube.count("POST", "jobs"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_container_gives_its_exit_code() {
    let bench = Bench::new().await;
    bench.kube.simulate_jobs(|_| {
        script(
            &["starting", "Traceback: out of data"],
            Outcome::Fail {
                exit_code: 3,
                reason: "Error".into(),
            },
        )
    });
    // Log readers first meet the container waiting in ContainerCreating.
    bench.kube.set_pod_start_delay(Duration::from_millis(300));
    let executor = bench.executor(|_| {});
    let (exit, events) = run(
        &executor,
        bench.job("mnist-0002", native()),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(exit, TrialExit::Exited(3));
    assert_eq!(lines(&events), ["starting", "Traceback: out of data"]);
    until("the failed Job is deleted", || {
        bench.jobs("default").is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_fails_the_trial_after_the_timeout() {
    let bench = Bench::new().await;
    bench
        .kube
        .simulate_jobs(|_| script(&[], Outcome::ImagePullError));
    let executor = bench.executor(|s| s.image_pull_timeout = Duration::from_millis(300));
    let (exit, _) = run(
        &executor,
        bench.job("mnist-0003", native()),
        CancellationToken::new(),
    )
    .await;
    let TrialExit::Failed(message) = exit else {
        panic!("expected a failure, got {exit:?}");
    };
    assert!(
        message.starts_with("image \"python:3.12\" cannot be pulled: ErrImagePull"),
        "{message}"
    );
    until("the Job is deleted", || bench.jobs("default").is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_deletes_the_job_and_its_pods() {
    let bench = Bench::new().await;
    bench
        .kube
        .simulate_jobs(|_| script(&["loss=0.9"], Outcome::Hang));
    let executor = Arc::new(bench.executor(|_| {}));
    let cancel = CancellationToken::new();
    let running = tokio::spawn({
        let (executor, job, cancel) = (
            executor.clone(),
            bench.job("mnist-0004", native()),
            cancel.clone(),
        );
        async move { run(&executor, job, cancel).await }
    });
    until("the pod runs", || bench.pods("default").len() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let (exit, events) = running.await.expect("run");
    assert_eq!(exit, TrialExit::Cancelled);
    assert_eq!(lines(&events), ["loss=0.9"]);
    assert!(bench.jobs("default").is_empty(), "the Job is deleted");
    until("its pod is deleted", || bench.pods("default").is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_jobs_are_kept_and_a_cancelled_one_is_suspended() {
    let bench = Bench::new().await;
    bench.kube.simulate_jobs(|job| {
        if job["metadata"]["name"] == "mnist-0005" {
            script(&["loss=0.1"], Outcome::Succeed)
        } else {
            script(&[], Outcome::Hang)
        }
    });
    let executor = bench.executor(|_| {});
    let mut template = native();
    template.retain = true;
    let (exit, _) = run(
        &executor,
        bench.job("mnist-0005", template.clone()),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(exit, TrialExit::Exited(0));
    assert!(bench.kube.get(&JOBS, "default", "mnist-0005").is_some());

    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let pods = || bench.kube.pods_of_job("default", "mnist-0006").len();
    let (result, ()) = tokio::join!(
        run(&executor, bench.job("mnist-0006", template), cancel),
        async {
            until("the pod runs", || pods() == 1).await;
            stop.cancel();
        }
    );
    assert_eq!(result.0, TrialExit::Cancelled);
    let kept = bench
        .kube
        .get(&JOBS, "default", "mnist-0006")
        .expect("the cancelled Job is kept");
    assert_eq!(kept["spec"]["suspend"], true);
    until("the suspended Job's pod stops", || pods() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_past_its_timeout_is_deleted() {
    let bench = Bench::new().await;
    bench.kube.simulate_jobs(|_| script(&[], Outcome::Hang));
    let executor = bench.executor(|_| {});
    let mut job = bench.job("mnist-0007", native());
    job.timeout = Some(Duration::from_millis(500));
    let (exit, _) = run(&executor, job, CancellationToken::new()).await;
    assert_eq!(exit, TrialExit::TimedOut(Duration::from_millis(500)));
    assert!(bench.jobs("default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_namespace_says_what_to_grant() {
    let bench = Bench::new().await;
    bench.kube.forbid_namespace("locked");
    let executor = bench.executor(|_| {});
    let mut template = native();
    if let Some(k) = template.kubernetes.as_mut() {
        k.namespace = Some("locked".into());
    }
    let (exit, events) = run(
        &executor,
        bench.job("mnist-0008", template),
        CancellationToken::new(),
    )
    .await;
    let TrialExit::SpawnFailed(message) = exit else {
        panic!("expected a refusal, got {exit:?}");
    };
    assert!(
        message.contains("\"locked\"") && message.contains("Role"),
        "{message}"
    );
    assert!(events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_away_for_a_while_delays_the_trial_and_makes_one_job() {
    let bench = Bench::new().await;
    bench
        .kube
        .simulate_jobs(|_| script(&["loss=0.3"], Outcome::Succeed));
    let executor = bench.executor(|_| {});
    let mut template = native();
    template.retain = true;
    bench.kube.set_unavailable(true);
    let back = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        bench.kube.set_unavailable(false);
    };
    let ((exit, events), ()) = tokio::join!(
        run(
            &executor,
            bench.job("mnist-0009", template),
            CancellationToken::new()
        ),
        back
    );
    assert_eq!(exit, TrialExit::Exited(0));
    assert_eq!(lines(&events), ["loss=0.3"]);
    assert_eq!(bench.jobs("default").len(), 1, "exactly one Job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_that_close_are_resumed() {
    let bench = Bench::new().await;
    bench.kube.simulate_jobs(|_| JobScript {
        lines: vec![
            (Duration::from_millis(10), "loss=0.8".into()),
            (Duration::from_millis(600), "loss=0.4".into()),
        ],
        container: None,
        outcome: Outcome::Succeed,
    });
    let executor = bench.executor(|_| {});
    let closer = async {
        until("the pod runs", || bench.pods("default").len() == 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        bench.kube.close_watches();
    };
    let ((exit, events), ()) = tokio::join!(
        run(
            &executor,
            bench.job("mnist-0010", native()),
            CancellationToken::new()
        ),
        closer
    );
    assert_eq!(exit, TrialExit::Exited(0));
    assert_eq!(lines(&events), ["loss=0.8", "loss=0.4"]);
}

/// A Job as an earlier runner left it: created, its pod running.
fn leftover(bench: &Bench, name: &str) {
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default", "labels": {
            "tuneflow.dev/trial": name, "tuneflow.dev/experiment": "mnist",
            "app.kubernetes.io/managed-by": "tuneflow"
        }},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"labels": {
                "tuneflow.dev/trial": name, "app.kubernetes.io/managed-by": "tuneflow"
            }},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "trial", "image": "python:3.12"}]}
        }}
    });
    bench
        .kube
        .create(&JOBS, "default", job)
        .expect("leftover Job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_trial_adopts_its_running_job() {
    let bench = Bench::new().await;
    leftover(&bench, "mnist-0011");
    let pod = bench
        .kube
        .start_pod_for_job("default", "mnist-0011")
        .expect("pod");
    bench.kube.append_log("default", &pod, "trial", "loss=0.7");
    let executor = bench.executor(|_| {});
    let mut job = bench.job("mnist-0011", native());
    job.resume = true;
    let finisher = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        bench.kube.append_log("default", &pod, "trial", "loss=0.2");
        tokio::time::sleep(Duration::from_millis(200)).await;
        bench
            .kube
            .finish_job("default", "mnist-0011", true, 0)
            .expect("finish");
    };
    let ((exit, events), ()) =
        tokio::join!(run(&executor, job, CancellationToken::new()), finisher);
    assert_eq!(exit, TrialExit::Exited(0));
    assert_eq!(lines(&events), ["loss=0.7", "loss=0.2"]);
    assert_eq!(bench.kube.count("POST", "jobs"), 0, "no second Job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_trial_replaces_a_leftover_job_and_orphans_are_stopped() {
    let bench = Bench::new().await;
    bench
        .kube
        .simulate_jobs(|_| script(&["loss=0.6"], Outcome::Succeed));
    leftover(&bench, "mnist-0012");
    let old_uid = bench.jobs("default")[0]["metadata"]["uid"].clone();
    let executor = bench.executor(|_| {});
    let mut template = native();
    template.retain = true;
    let (exit, events) = run(
        &executor,
        bench.job("mnist-0012", template),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(exit, TrialExit::Exited(0));
    assert_eq!(lines(&events), ["loss=0.6"]);
    let jobs = bench.jobs("default");
    assert_eq!(jobs.len(), 1);
    assert_ne!(
        jobs[0]["metadata"]["uid"], old_uid,
        "a new Job replaced the leftover"
    );

    // stop_orphan deletes the trial's Job, and nothing that is not the trial's.
    assert_eq!(
        executor
            .stop_orphan("mnist", "mnist-0099", "default/mnist-0012")
            .await,
        0
    );
    assert_eq!(
        executor
            .stop_orphan("mnist", "mnist-0012", "default/mnist-0012")
            .await,
        1
    );
    until("the orphan is gone", || bench.jobs("default").is_empty()).await;
}

/// Katib's `random` example, with four trials.
const KATIB_EXPERIMENT: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: random
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: random
  parallelTrialCount: 3
  maxTrialCount: 4
  maxFailedTrialCount: 3
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace:
        min: "0.01"
        max: "0.05"
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: learningRate
        description: Learning rate for the training model
        reference: lr
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training-container
                image: ghcr.io/kubeflow/katib/pytorch-mnist-cpu:latest
                command:
                  - "python3"
                  - "/opt/pytorch-mnist/mnist.py"
                  - "--lr=${trialParameters.learningRate}"
            restartPolicy: Never
"#;

/// A kubeconfig for the fake server.
fn kubeconfig(kube: &FakeKube) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
         users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    \
         cluster: fake\n    user: fake\n    namespace: trials\ncurrent-context: fake\n",
        kube.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuneflow_run_with_the_kubernetes_executor_runs_an_experiment_in_the_cluster() {
    let bench = Bench::new().await;
    // The "training": the loss is the distance of lr to 0.03, read from the Job's command.
    bench.kube.simulate_jobs(|job| {
        let command = job
            .pointer("/spec/template/spec/containers/0/command")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let lr = command
            .iter()
            .filter_map(Value::as_str)
            .find_map(|a| a.strip_prefix("--lr="))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(1.0);
        script(
            &[
                &format!("epoch=1 loss={:.6}", (lr - 0.03).abs() + 0.5),
                &format!("epoch=2 loss={:.6}", (lr - 0.03).abs() + 0.1),
            ],
            Outcome::Succeed,
        )
    });
    let world = common::World::new();
    let small = KATIB_EXPERIMENT;
    let file = world.write("random.yaml", small);
    let config = world.write("kubeconfig", &kubeconfig(&bench.kube));
    let mut command = world.tuneflow();
    command
        .args([
            "run",
            file.to_str().expect("path"),
            "--executor",
            "kubernetes",
        ])
        .env("KUBECONFIG", &config);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run tuneflow"))
        .await
        .expect("join");
    assert!(output.status.success(), "{}", common::text(&output));
    let experiment = world.experiment("random");
    assert_eq!(experiment["state"], "Succeeded", "{experiment:#}");
    let trials = world.trials("random");
    assert_eq!(trials.len(), 4);
    for trial in &trials {
        assert_eq!(trial["state"], "Succeeded", "{trial:#}");
        let objective = trial["objective"].as_f64().expect("objective");
        let lr = trial["parameters"]["lr"].as_f64().expect("lr");
        assert!(
            (objective - ((lr - 0.03).abs() + 0.1)).abs() < 1e-5,
            "{trial:#}"
        );
    }
    // The Jobs ran in the kubeconfig context's namespace and were deleted when done.
    assert_eq!(bench.kube.count("POST", "jobs"), 4);
    assert!(bench.jobs("trials").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_trials_of_several_experiments_share_two_watches_per_namespace() {
    let bench = Bench::new().await;
    bench.kube.simulate_jobs(|job| {
        let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
        JobScript {
            lines: vec![
                (Duration::from_millis(200), format!("{name} loss=0.5")),
                (Duration::from_millis(200), format!("{name} loss=0.4")),
            ],
            container: None,
            outcome: Outcome::Succeed,
        }
    });
    let first = Arc::new(bench.executor(|_| {}));
    let second = Arc::new(first.with_settings(KubernetesSettings::new("default")));
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..12 {
        let executor = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let job = bench.job(&format!("mnist-{i:04}"), native());
        runs.spawn(async move {
            let name = job.trial_name.clone();
            let (exit, events) = run(&executor, job, CancellationToken::new()).await;
            (name, exit, lines(&events))
        });
    }
    let mut most_watches = 0;
    let mut done = Vec::new();
    while done.len() < 12 {
        most_watches = most_watches.max(bench.kube.open_watches());
        tokio::select! {
            finished = runs.join_next() => done.push(finished.expect("a run").expect("join")),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    for (name, exit, lines) in done {
        assert_eq!(exit, TrialExit::Exited(0), "{name}");
        assert_eq!(
            lines,
            [format!("{name} loss=0.5"), format!("{name} loss=0.4")]
        );
    }
    assert!(
        most_watches <= 2,
        "{most_watches} watches for one namespace"
    );
    assert_eq!(bench.kube.count("POST", "jobs"), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_own_deadline_counts_as_the_trials_timeout() {
    let bench = Bench::new().await;
    bench.kube.simulate_jobs(|_| script(&[], Outcome::Hang));
    let executor = bench.executor(|_| {});
    let mut manifest = katib_manifest("0.05");
    manifest["spec"]["activeDeadlineSeconds"] = json!(1);
    let mut template = native();
    template.kubernetes = None;
    let mut job = bench.job("mnist-0013", template);
    job.manifest = Some(manifest);
    job.timeout = Some(Duration::from_secs(30));
    let (exit, _) = run(&executor, job, CancellationToken::new()).await;
    assert_eq!(exit, TrialExit::TimedOut(Duration::from_secs(30)));
    until("the Job is deleted", || bench.jobs("default").is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deleted_behind_the_executors_back_fails_the_trial() {
    let bench = Bench::new().await;
    bench
        .kube
        .simulate_jobs(|_| script(&["loss=0.9"], Outcome::Hang));
    let executor = bench.executor(|_| {});
    let deleter = async {
        until("the pod runs", || bench.pods("default").len() == 1).await;
        bench
            .kube
            .delete(&JOBS, "default", "mnist-0014")
            .expect("delete");
    };
    let ((exit, _), ()) = tokio::join!(
        run(
            &executor,
            bench.job("mnist-0014", native()),
            CancellationToken::new()
        ),
        deleter
    );
    assert_eq!(
        exit,
        TrialExit::Failed("Job default/mnist-0014 was deleted before it finished".into())
    );
}

/// The Branin function, as the example's one-liner computes it.
fn branin(x: f64, y: f64) -> f64 {
    let pi = std::f64::consts::PI;
    let (b, c, t) = (5.1 / (4.0 * pi * pi), 5.0 / pi, 1.0 / (8.0 * pi));
    (y - b * x * x + c * x - 6.0).powi(2) + 10.0 * (1.0 - t) * x.cos() + 10.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_kubernetes_example_runs_through_the_binary() {
    let bench = Bench::new().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    // The simulated pod runs the example's one-liner: argv after the script is x, y.
    bench.kube.simulate_jobs(move |job| {
        record.lock().expect("lock").push(job.clone());
        let argv: Vec<f64> = job
            .pointer("/spec/template/spec/containers/0/command")
            .and_then(Value::as_array)
            .map(|argv| {
                argv.iter()
                    .skip(3)
                    .filter_map(|a| a.as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        match argv[..] {
            [x, y] => script(&[&format!("loss={:.6}", branin(x, y))], Outcome::Succeed),
            _ => script(
                &["usage: x y"],
                Outcome::Fail {
                    exit_code: 2,
                    reason: "Error".into(),
                },
            ),
        }
    });
    let world = common::World::new();
    let file = world.write(
        "experiment.yaml",
        include_str!("../examples/kubernetes/experiment.yaml"),
    );
    let config = world.write("kubeconfig", &kubeconfig(&bench.kube));
    let mut command = world.tuneflow();
    command
        .args(["run", file.to_str().expect("path")])
        .args(["--executor", "kubernetes", "--namespace", "ml"])
        .env("KUBECONFIG", &config);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run tuneflow"))
        .await
        .expect("join");
    assert!(output.status.success(), "{}", common::text(&output));
    assert_eq!(world.experiment("branin-k8s")["state"], "Succeeded");
    let trials = world.trials("branin-k8s");
    assert_eq!(trials.len(), 6);
    for trial in &trials {
        assert_eq!(trial["state"], "Succeeded", "{trial:#}");
        let (x, y) = (
            trial["parameters"]["x"].as_f64().expect("x"),
            trial["parameters"]["y"].as_f64().expect("y"),
        );
        let objective = trial["objective"].as_f64().expect("objective");
        assert!((objective - branin(x, y)).abs() < 1e-5, "{trial:#}");
    }
    // --namespace placed the Jobs; the template's resources and timeout reached them.
    let jobs = seen.lock().expect("lock").clone();
    assert_eq!(jobs.len(), 6);
    for job in &jobs {
        assert_eq!(job["metadata"]["namespace"], "ml");
        assert_eq!(
            job["metadata"]["labels"]["tuneflow.dev/experiment"],
            "branin-k8s"
        );
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "python:3.11-slim");
        assert_eq!(container["resources"]["limits"]["memory"], "128Mi");
        assert_eq!(job["spec"]["activeDeadlineSeconds"], 300 + 1 + 60);
    }
    assert!(bench.jobs("ml").is_empty(), "finished Jobs are deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_rbac_refuses_fails_the_trial_instead_of_hanging() {
    let bench = Bench::new().await;
    bench.kube.simulate_jobs(|_| script(&[], Outcome::Hang));
    let executor = bench.executor(|_| {});
    let revoke = async {
        until("the pod runs", || bench.pods("default").len() == 1).await;
        bench.kube.forbid_namespace("default");
        bench.kube.close_watches();
    };
    let ((exit, _), ()) = tokio::join!(
        run(
            &executor,
            bench.job("mnist-0015", native()),
            CancellationToken::new()
        ),
        revoke
    );
    let TrialExit::Failed(message) = exit else {
        panic!("expected a failure, got {exit:?}");
    };
    assert!(
        message.contains("may not list and watch") && message.contains("\"default\""),
        "{message}"
    );
}
