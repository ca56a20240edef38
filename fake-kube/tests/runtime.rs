//! kube-runtime against the fake: a Controller with the finalizer helper, streaming lists,
//! a watcher that falls behind, the event Recorder, and the `fake-kube` binary.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tuneflow_fake_kube::{EVENTS_V1, FakeKube, JOBS, LEASES};

fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}},
    }))
    .expect("a valid Job")
}

#[derive(Debug)]
struct Failure(String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

struct Ctx {
    client: kube::Client,
    applied: AtomicUsize,
    cleaned: AtomicUsize,
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Failure> {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    finalizer(&api, "tuneflow.dev/cleanup", job, |ev| async move {
        match ev {
            Finalizer::Apply(_) => ctx.applied.fetch_add(1, Ordering::SeqCst),
            Finalizer::Cleanup(_) => ctx.cleaned.fetch_add(1, Ordering::SeqCst),
        };
        Ok::<_, Failure>(Action::await_change())
    })
    .await
    .map_err(|e| Failure(e.to_string()))
}

async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn controller_with_finalizer_helper() {
    let kube = FakeKube::start().await;
    let client = kube.client("ns");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "ns");
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        applied: AtomicUsize::new(0),
        cleaned: AtomicUsize::new(0),
    });
    let controller = tokio::spawn(
        Controller::new(jobs.clone(), watcher::Config::default())
            .run(
                reconcile,
                |_, _, _| Action::requeue(Duration::from_millis(50)),
                ctx.clone(),
            )
            .for_each(|_| async {}),
    );
    jobs.create(&PostParams::default(), &job("a"))
        .await
        .expect("create");
    eventually("the finalizer is added and Apply runs", || {
        ctx.applied.load(Ordering::SeqCst) >= 1
            && kube
                .get(&JOBS, "ns", "a")
                .is_some_and(|j| j["metadata"]["finalizers"] == json!(["tuneflow.dev/cleanup"]))
    })
    .await;
    jobs.delete("a", &DeleteParams::background())
        .await
        .expect("delete");
    eventually("Cleanup runs and the Job goes", || {
        ctx.cleaned.load(Ordering::SeqCst) == 1 && kube.get(&JOBS, "ns", "a").is_none()
    })
    .await;
    controller.abort();
}

#[tokio::test]
async fn streaming_list_watcher() {
    let kube = FakeKube::start().await;
    let leases: Api<Lease> = Api::namespaced(kube.client("ns"), "ns");
    kube.upsert(
        &LEASES,
        json!({"metadata": {"name": "a", "namespace": "ns"}}),
    )
    .expect("upsert");
    let mut events = watcher(leases.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut got = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(3), events.next())
            .await
            .expect("no stall")
            .expect("open")
            .expect("ok");
        match ev {
            watcher::Event::InitApply(l) => got.push(l.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(got, ["a"]);
    let params = &kube.requests()[0];
    assert!(
        params.query.contains("sendInitialEvents=true"),
        "{}",
        params.query
    );
}

#[tokio::test]
async fn a_lagging_watch_is_closed_and_resumed() {
    let kube = FakeKube::builder()
        .watch_capacity(16)
        .start()
        .await
        .expect("start");
    let leases: Api<Lease> = Api::namespaced(kube.client("ns"), "ns");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let consumer = tokio::spawn(async move {
        let mut events = watcher(leases, watcher::Config::default()).boxed();
        while let Some(ev) = events.next().await {
            if let Ok(watcher::Event::Apply(l)) = ev
                && tx.send(l.name_any()).is_err()
            {
                return;
            }
        }
    });
    // Wait for the watch to be open, then write far more than it may buffer without yielding
    // (the server cannot send meanwhile).
    eventually("watch open", || kube.open_watches() == 1).await;
    let watches_before = kube.count("WATCH", "leases");
    for i in 0..100 {
        kube.upsert(
            &LEASES,
            json!({"metadata": {"name": format!("l{i}"), "namespace": "ns"}}),
        )
        .expect("upsert");
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 100 {
        match tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
            Ok(Some(name)) => {
                seen.insert(name);
            }
            Ok(None) | Err(_) => panic!("watcher stalled with {} seen", seen.len()),
        }
    }
    consumer.abort();
    assert!(
        kube.count("WATCH", "leases") > watches_before,
        "the lagging watch was closed"
    );
}

#[tokio::test]
async fn event_recorder() {
    let kube = FakeKube::start().await;
    let client = kube.client("ns");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "ns");
    let j = jobs
        .create(&PostParams::default(), &job("a"))
        .await
        .expect("create");
    let reference: ObjectReference = j.object_ref(&());
    let recorder = Recorder::new(client, Reporter::from("tuneflow-operator"));
    let ev = KubeEvent {
        type_: KubeEventType::Normal,
        reason: "TrialStarted".into(),
        note: Some("trial a started".into()),
        action: "Start".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.expect("publish");
    recorder
        .publish(&ev, &reference)
        .await
        .expect("publish again (a series patch)");
    let events = kube.list(&EVENTS_V1, Some("ns"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "TrialStarted");
    assert_eq!(events[0]["series"]["count"], 2);
}

#[tokio::test]
async fn binary_serves_a_kubeconfig_and_simulates_jobs() {
    let path = std::env::temp_dir().join(format!("fake-kube-test-{}.yaml", std::process::id()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fake-kube"))
        .args([
            "--simulate-jobs",
            "--lines",
            "3",
            "--line-delay-ms",
            "1",
            "--kubeconfig",
        ])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn fake-kube");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read");
    assert!(
        line.starts_with("fake-kube listening on http://127.0.0.1:"),
        "{line}"
    );
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    assert_eq!(config.default_namespace, "default");
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        &line.trim()["fake-kube listening on ".len()..]
    );
    let client = kube::Client::try_from(config).expect("client");
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(&PostParams::default(), &job("bin"))
        .await
        .expect("create");
    let mut done = false;
    for _ in 0..300 {
        let j = jobs.get("bin").await.expect("get");
        if j.status.and_then(|s| s.succeeded) == Some(1) {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::default_namespaced(client);
    let pod = pods
        .list(&ListParams::default().labels("job-name=bin"))
        .await
        .expect("pods")
        .items
        .remove(0);
    let logs = pods
        .logs(&pod.name_any(), &LogParams::default())
        .await
        .expect("logs");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
    assert!(done, "the simulated job succeeded");
    assert_eq!(logs.lines().count(), 3);
    assert!(logs.lines().all(|l| l.starts_with("loss=")), "{logs}");
}
