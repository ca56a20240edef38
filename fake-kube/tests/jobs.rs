//! The simulated Job controller and kubelet, seen through kube-rs.

use std::time::Duration;

use futures::{AsyncBufReadExt, FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tuneflow_fake_kube::{FakeKube, JOBS, JobScript, Outcome, PODS};

fn job(name: &str, backoff_limit: i32) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": {
            "metadata": {"labels": {"tuneflow.dev/trial": name}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "trial", "image": "python:3.12"}, {"name": "sidecar", "image": "x"}],
            }}},
    }))
    .expect("a valid Job")
}

fn condition(job: &Job, ty: &str) -> Option<(String, Option<String>)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn wait_for(api: &Api<Job>, name: &str, what: impl Fn(&Job) -> bool) -> Job {
    for _ in 0..300 {
        if let Ok(j) = api.get(name).await
            && what(&j)
        {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {name} never reached the wanted state");
}

#[tokio::test]
async fn simulated_job_succeeds_with_pod_logs_and_conditions() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|job| {
        let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
        JobScript {
            lines: vec![
                (Duration::from_millis(20), format!("start {name}")),
                (Duration::from_millis(20), "loss=0.25".into()),
            ],
            container: Some("trial".into()),
            outcome: Outcome::Succeed,
        }
    });
    let jobs: Api<Job> = Api::namespaced(kube.client("exp"), "exp");
    let pods: Api<Pod> = Api::namespaced(kube.client("exp"), "exp");
    jobs.create(&PostParams::default(), &job("t1", 0))
        .await
        .expect("create");
    let running = wait_for(&jobs, "t1", |j| {
        j.status.as_ref().and_then(|s| s.active) == Some(1)
    })
    .await;
    assert!(
        running
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .is_some()
    );
    let list = pods
        .list(&ListParams::default().labels("job-name=t1"))
        .await
        .expect("pods");
    assert_eq!(list.items.len(), 1);
    let pod = &list.items[0];
    let pod_name = pod.metadata.name.clone().expect("name");
    assert!(
        pod_name.starts_with("t1-") && pod_name.len() == 8,
        "{pod_name}"
    );
    assert_eq!(
        pod.labels().get("tuneflow.dev/trial").map(String::as_str),
        Some("t1")
    );
    assert!(
        pod.labels()
            .contains_key("batch.kubernetes.io/controller-uid")
    );
    // Follow the log from the start to the end.
    let mut lines = loop {
        match pods
            .log_stream(
                &pod_name,
                &LogParams {
                    container: Some("trial".into()),
                    follow: true,
                    ..LogParams::default()
                },
            )
            .await
        {
            Ok(s) => break s.lines(),
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let mut got = Vec::new();
    while let Some(l) = lines.try_next().await.expect("line") {
        got.push(l);
    }
    assert_eq!(got, ["start t1", "loss=0.25"]);
    let done = wait_for(&jobs, "t1", |j| condition(j, "Complete").is_some()).await;
    let st = done.status.as_ref().expect("status");
    assert_eq!(st.succeeded, Some(1));
    assert_eq!(st.active.unwrap_or(0), 0);
    assert!(st.completion_time.is_some());
    assert_eq!(
        condition(&done, "SuccessCriteriaMet").map(|c| c.0),
        Some("True".into())
    );
    let pod = pods.get(&pod_name).await.expect("pod");
    let ps = pod.status.expect("status");
    assert_eq!(ps.phase.as_deref(), Some("Succeeded"));
    let term = ps.container_statuses.expect("statuses")[0]
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("terminated");
    assert_eq!(
        (term.exit_code, term.reason.as_deref()),
        (0, Some("Completed"))
    );
}

#[tokio::test]
async fn failures_retry_up_to_the_backoff_limit() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|_| JobScript {
        lines: vec![(Duration::ZERO, "boom".into())],
        container: None,
        outcome: Outcome::Fail {
            exit_code: 3,
            reason: "Error".into(),
        },
    });
    let jobs: Api<Job> = Api::namespaced(kube.client("exp"), "exp");
    jobs.create(&PostParams::default(), &job("f", 1))
        .await
        .expect("create");
    let failed = wait_for(&jobs, "f", |j| condition(j, "Failed").is_some()).await;
    assert_eq!(
        condition(&failed, "Failed"),
        Some(("True".into(), Some("BackoffLimitExceeded".into())))
    );
    assert_eq!(
        condition(&failed, "FailureTarget").map(|c| c.0),
        Some("True".into())
    );
    assert_eq!(failed.status.as_ref().and_then(|s| s.failed), Some(2));
    let pods = kube.list(&PODS, Some("exp"));
    assert_eq!(pods.len(), 2, "one pod per attempt");
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Failed");
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            3
        );
    }
}

#[tokio::test]
async fn image_pull_errors_suspension_and_deletion() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|job| {
        let outcome = if job["metadata"]["name"] == "pull" {
            Outcome::ImagePullError
        } else {
            Outcome::Hang
        };
        JobScript {
            lines: vec![],
            container: None,
            outcome,
        }
    });
    let jobs: Api<Job> = Api::namespaced(kube.client("exp"), "exp");
    let pods: Api<Pod> = Api::namespaced(kube.client("exp"), "exp");
    jobs.create(&PostParams::default(), &job("pull", 0))
        .await
        .expect("create");
    let mut waiting = None;
    for _ in 0..200 {
        let list = kube
            .list_selected(&PODS, Some("exp"), "job-name=pull")
            .expect("selector");
        if let Some(w) = list.first().and_then(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]
                .as_object()
                .cloned()
        }) && w.get("reason").and_then(|r| r.as_str()) == Some("ErrImagePull")
        {
            waiting = Some((
                list[0]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                w,
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (pod, w) = waiting.expect("the pod waits on its image");
    assert!(
        w["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("failed to pull image \"python:3.12\""))
    );
    let e = pods
        .logs(
            &pod,
            &LogParams {
                container: Some("trial".into()),
                ..LogParams::default()
            },
        )
        .await
        .expect_err("waiting container");
    match e {
        kube::Error::Api(s) => assert_eq!(
            s.message,
            format!("container \"trial\" in pod \"{pod}\" is waiting to start: ErrImagePull")
        ),
        other => panic!("{other:?}"),
    }

    // Suspending a running Job deletes its pod.
    jobs.create(&PostParams::default(), &job("hang", 0))
        .await
        .expect("create");
    wait_for(&jobs, "hang", |j| {
        j.status.as_ref().and_then(|s| s.ready) == Some(1)
    })
    .await;
    jobs.patch(
        "hang",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true}})),
    )
    .await
    .expect("suspend");
    let suspended = wait_for(&jobs, "hang", |j| condition(j, "Suspended").is_some()).await;
    assert_eq!(suspended.status.as_ref().and_then(|s| s.active), None);
    assert!(kube.pods_of_job("exp", "hang").is_empty());
    // Resuming runs it again; deleting it (background) removes its pod and stops the script.
    jobs.patch(
        "hang",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .expect("resume");
    wait_for(&jobs, "hang", |j| {
        j.status.as_ref().and_then(|s| s.active) == Some(1)
    })
    .await;
    assert_eq!(kube.pods_of_job("exp", "hang").len(), 1);
    jobs.delete("hang", &DeleteParams::background())
        .await
        .expect("delete");
    assert!(kube.get(&JOBS, "exp", "hang").is_none());
    assert!(
        kube.list_selected(&PODS, Some("exp"), "job-name=hang")
            .expect("sel")
            .is_empty()
    );
}

#[tokio::test]
async fn manual_control_without_simulation() {
    let kube = FakeKube::start().await;
    let jobs: Api<Job> = Api::namespaced(kube.client("exp"), "exp");
    jobs.create(&PostParams::default(), &job("m", 0))
        .await
        .expect("create");
    assert!(
        kube.pods_of_job("exp", "m").is_empty(),
        "nothing runs without simulation"
    );
    let pod = kube.start_pod_for_job("exp", "m").expect("pod");
    kube.append_log("exp", &pod, "trial", "loss=1");
    kube.finish_job("exp", "m", false, 137).expect("finish");
    let j = jobs.get("m").await.expect("job");
    assert_eq!(condition(&j, "Failed").map(|c| c.0), Some("True".into()));
    let p = kube.get(&PODS, "exp", &pod).expect("pod");
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );
    assert_eq!(kube.log_lines("exp", &pod, "trial"), ["loss=1"]);
}

#[tokio::test]
async fn many_jobs_scale() {
    // FAKE_KUBE_SCALE=100x30 runs the benchmark's shape (namespaces x jobs); the default keeps
    // the test fast.
    let scale = std::env::var("FAKE_KUBE_SCALE").unwrap_or_else(|_| "5x20".into());
    let (namespaces, per_ns) = scale
        .split_once('x')
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .expect("FAKE_KUBE_SCALE is NxM");
    let total = namespaces * per_ns;
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|job| {
        JobScript::losses(
            job["metadata"]["name"].as_str().unwrap_or(""),
            2,
            Duration::from_millis(1),
        )
    });
    let client = kube.client("default");
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for e in 0..namespaces {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let ns = format!("exp-{e}");
            let jobs: Api<Job> = Api::namespaced(client, &ns);
            for t in 0..per_ns {
                jobs.create(&PostParams::default(), &job(&format!("trial-{t}"), 0))
                    .await
                    .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    let created = start.elapsed();
    let succeeded = |kube: &FakeKube| {
        kube.list(&JOBS, None)
            .iter()
            .filter(|j| j["status"]["succeeded"] == 1)
            .count()
    };
    for _ in 0..(total * 10).max(500) {
        if succeeded(&kube) == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "{total} jobs: created in {created:?}, all succeeded after {:?}",
        start.elapsed()
    );
    assert_eq!(succeeded(&kube), total);
    assert_eq!(kube.list(&PODS, None).len(), total);
    assert_eq!(kube.count("POST", "jobs"), total);
}

#[tokio::test]
async fn active_deadline_and_ttl_after_finished() {
    let kube = FakeKube::start().await;
    kube.simulate_jobs(|_| JobScript {
        lines: vec![],
        container: None,
        outcome: Outcome::Hang,
    });
    let jobs: Api<Job> = Api::namespaced(kube.client("exp"), "exp");
    let mut j = job("slow", 0);
    let spec = j.spec.as_mut().expect("spec");
    spec.active_deadline_seconds = Some(1);
    spec.ttl_seconds_after_finished = Some(0);
    jobs.create(&PostParams::default(), &j)
        .await
        .expect("create");
    wait_for(&jobs, "slow", |j| {
        j.status.as_ref().and_then(|s| s.active) == Some(1)
    })
    .await;
    let pod = kube.pods_of_job("exp", "slow").pop().expect("a pod");
    // The deadline fails the Job and deletes its pod; the TTL of 0 then deletes the Job.
    let mut failed = None;
    let mut watch =
        kube::runtime::watcher(jobs.clone(), kube::runtime::watcher::Config::default()).boxed();
    while let Ok(Some(Ok(ev))) = tokio::time::timeout(
        Duration::from_secs(3),
        watch.try_next().map(|r| r.transpose()),
    )
    .await
    {
        if let kube::runtime::watcher::Event::Apply(j) = ev
            && let Some(c) = condition(&j, "Failed")
        {
            failed = Some(c);
        }
        if failed.is_some() && kube.get(&JOBS, "exp", "slow").is_none() {
            break;
        }
    }
    assert_eq!(
        failed,
        Some(("True".into(), Some("DeadlineExceeded".into())))
    );
    assert!(kube.get(&PODS, "exp", &pod).is_none());
    assert!(
        kube.get(&JOBS, "exp", "slow").is_none(),
        "ttlSecondsAfterFinished deleted it"
    );
}

#[tokio::test]
async fn a_deleted_pod_is_counted_and_replaced() {
    let kube = FakeKube::start().await;
    kube.set_pod_start_delay(Duration::from_millis(30));
    kube.simulate_jobs(|_| JobScript {
        lines: vec![],
        container: None,
        outcome: Outcome::Hang,
    });
    let jobs: Api<Job> = Api::namespaced(kube.client("exp"), "exp");
    let pods: Api<Pod> = Api::namespaced(kube.client("exp"), "exp");
    jobs.create(&PostParams::default(), &job("evicted", 1))
        .await
        .expect("create");
    let first = loop {
        if let Some(p) = kube.pods_of_job("exp", "evicted").pop() {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    // Pending: the container is still being created.
    let e = pods
        .logs(
            &first,
            &LogParams {
                container: Some("trial".into()),
                ..LogParams::default()
            },
        )
        .await
        .expect_err("not started");
    match e {
        kube::Error::Api(s) => assert!(
            s.message
                .ends_with("is waiting to start: ContainerCreating"),
            "{}",
            s.message
        ),
        other => panic!("{other:?}"),
    }
    wait_for(&jobs, "evicted", |j| {
        j.status.as_ref().and_then(|s| s.ready) == Some(1)
    })
    .await;
    pods.delete(&first, &DeleteParams::default())
        .await
        .expect("delete pod");
    let j = wait_for(&jobs, "evicted", |j| {
        j.status.as_ref().and_then(|s| s.failed) == Some(1)
            && j.status.as_ref().and_then(|s| s.active) == Some(1)
    })
    .await;
    assert!(condition(&j, "Failed").is_none());
    let second = kube.pods_of_job("exp", "evicted");
    assert_eq!(second.len(), 1);
    assert_ne!(second[0], first);
    // Over the backoff limit, the Job fails.
    wait_for(&jobs, "evicted", |j| {
        j.status.as_ref().and_then(|s| s.ready) == Some(1)
    })
    .await;
    pods.delete(&second[0], &DeleteParams::default())
        .await
        .expect("delete pod");
    let j = wait_for(&jobs, "evicted", |j| condition(j, "Failed").is_some()).await;
    assert_eq!(j.status.as_ref().and_then(|s| s.failed), Some(2));
}
