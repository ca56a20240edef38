//! The generic API through real kube-rs clients: CRUD, patches, status subresources,
//! finalizers, cascading deletion, selectors, watches, logs and fault injection.

use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams, PostParams,
};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tuneflow_fake_kube::{EXPERIMENTS, FakeKube, JOBS, LEASES, PODS};

fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "tuneflow", "trial": name}},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
        }}},
    }))
    .expect("a valid Job")
}

fn lease(name: &str) -> Lease {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"holderIdentity": "a"}}))
        .expect("a valid Lease")
}

fn code(e: &kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("not an API error: {other:?}"),
    }
}

fn experiments(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("tuneflow.dev", "v1alpha1", "Experiment"),
        "experiments",
    );
    Api::namespaced_with(client, ns, &ar)
}

#[tokio::test]
async fn job_crud_and_errors() {
    let kube = FakeKube::start().await;
    let jobs: Api<Job> = Api::namespaced(kube.client("ns1"), "ns1");
    let created = jobs
        .create(&PostParams::default(), &job("a"))
        .await
        .expect("create");
    let md = &created.metadata;
    assert!(md.uid.is_some() && md.creation_timestamp.is_some() && md.resource_version.is_some());
    assert_eq!(md.generation, Some(1));
    assert_eq!(md.namespace.as_deref(), Some("ns1"));
    // Job defaults from the API server.
    let spec = created.spec.as_ref().expect("spec");
    assert_eq!(spec.completions, Some(1));
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .expect("labels");
    assert_eq!(labels.get("job-name").map(String::as_str), Some("a"));

    let e = jobs
        .create(&PostParams::default(), &job("a"))
        .await
        .expect_err("exists");
    assert_eq!(code(&e), (409, "AlreadyExists".into()));
    let e = jobs.get("nope").await.expect_err("missing");
    assert_eq!(code(&e), (404, "NotFound".into()));
    let mut nameless = job("x");
    nameless.metadata.name = None;
    let e = jobs
        .create(&PostParams::default(), &nameless)
        .await
        .expect_err("no name");
    assert_eq!(code(&e), (422, "Invalid".into()));
    let e = jobs
        .create(&PostParams::default(), &job("Upper"))
        .await
        .expect_err("bad name");
    assert_eq!(code(&e), (422, "Invalid".into()));
    let mut generated = job("x");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("trial-".into());
    let g = jobs
        .create(&PostParams::default(), &generated)
        .await
        .expect("generateName");
    let gname = g.metadata.name.expect("a generated name");
    assert!(
        gname.starts_with("trial-") && gname.len() == "trial-".len() + 5,
        "{gname}"
    );

    // list: kind, resourceVersion, selectors
    let list = jobs.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 2);
    assert!(list.metadata.resource_version.is_some());
    let sel = jobs
        .list(&ListParams::default().labels("trial=a"))
        .await
        .expect("list");
    assert_eq!(sel.items.len(), 1);
    let sel = jobs
        .list(&ListParams::default().labels("trial notin (a),app"))
        .await
        .expect("list");
    assert_eq!(sel.items.len(), 1);
    let sel = jobs
        .list(&ListParams::default().fields("metadata.name=a"))
        .await
        .expect("list");
    assert_eq!(sel.items.len(), 1);
    let all: Api<Job> = Api::all(kube.client("default"));
    assert_eq!(
        all.list(&ListParams::default())
            .await
            .expect("list all")
            .items
            .len(),
        2
    );
    let raw = reqwest_get(&kube, "/apis/batch/v1/namespaces/ns1/jobs").await;
    assert_eq!(raw["kind"], "JobList");
    assert_eq!(raw["apiVersion"], "batch/v1");

    // replace with a stale resourceVersion conflicts
    let mut stale = created.clone();
    jobs.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
    )
    .await
    .expect("merge patch");
    stale
        .metadata
        .labels
        .get_or_insert_default()
        .insert("y".into(), "2".into());
    let e = jobs
        .replace("a", &PostParams::default(), &stale)
        .await
        .expect_err("stale");
    assert_eq!(code(&e), (409, "Conflict".into()));
    let mut fresh = jobs.get("a").await.expect("get");
    assert_eq!(
        fresh.metadata.generation,
        Some(1),
        "metadata-only change keeps generation"
    );
    fresh
        .metadata
        .labels
        .get_or_insert_default()
        .insert("y".into(), "2".into());
    let replaced = jobs
        .replace("a", &PostParams::default(), &fresh)
        .await
        .expect("replace");
    assert_eq!(replaced.labels().get("y").map(String::as_str), Some("2"));

    // JSON patch, including a failing test op
    let patched = jobs
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/metadata/labels/y", "value": "2"},
                    {"op": "replace", "path": "/spec/backoffLimit", "value": 3},
                ]))
                .expect("patch"),
            ),
        )
        .await
        .expect("json patch");
    assert_eq!(patched.spec.as_ref().and_then(|s| s.backoff_limit), Some(3));
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "spec change bumps generation"
    );
    let e = jobs
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/metadata/labels/y", "value": "nope"},
                    {"op": "remove", "path": "/metadata/labels/y"},
                ]))
                .expect("patch"),
            ),
        )
        .await
        .expect_err("failed test");
    assert_eq!(code(&e).0, 422);

    // server-side apply creates, then merges
    let applied = jobs
        .patch(
            "b",
            &PatchParams::apply("tuneflow").force(),
            &Patch::Apply(job("b")),
        )
        .await
        .expect("apply creates");
    assert_eq!(applied.metadata.name.as_deref(), Some("b"));
    let applied = jobs
        .patch(
            "b",
            &PatchParams::apply("tuneflow").force(),
            &Patch::Apply(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "b", "labels": {"z": "1"}}})),
        )
        .await
        .expect("apply merges");
    assert_eq!(applied.labels().get("z").map(String::as_str), Some("1"));
    assert_eq!(
        applied.labels().get("app").map(String::as_str),
        Some("tuneflow")
    );

    // delete answers with a Status for Jobs
    let gone = jobs
        .delete("b", &DeleteParams::background())
        .await
        .expect("delete");
    assert!(gone.is_right());
    assert!(kube.get(&JOBS, "ns1", "b").is_none());
    assert!(kube.count("POST", "jobs") >= 4);
}

async fn reqwest_get(kube: &FakeKube, path: &str) -> Value {
    let client = kube.client("default");
    let req = axum::http::Request::get(path)
        .body(Vec::new())
        .expect("request");
    client.request::<Value>(req).await.expect("raw GET")
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let kube = FakeKube::start().await;
    let api = experiments(kube.client("ns"), "ns");
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tuneflow.dev/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "e1"}, "spec": {"maxTrials": 3}, "status": {"phase": "Ignored"},
    }))
    .expect("object");
    let created = api
        .create(&PostParams::default(), &obj)
        .await
        .expect("create");
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );
    let p = api
        .patch(
            "e1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"maxTrials": 5}, "status": {"phase": "Sneaky"}})),
        )
        .await
        .expect("patch");
    assert_eq!(p.metadata.generation, Some(2));
    assert!(
        p.data.get("status").is_none(),
        "main resource ignores status"
    );
    let s = api
        .patch_status(
            "e1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}, "spec": {"maxTrials": 9}})),
        )
        .await
        .expect("patch status");
    assert_eq!(s.data["status"]["phase"], "Running");
    assert_eq!(
        s.data["spec"]["maxTrials"], 5,
        "status subresource ignores spec"
    );
    assert_eq!(s.metadata.generation, Some(2));
    let mut whole = api.get_status("e1").await.expect("get status");
    whole.data["status"]["phase"] = json!("Done");
    let r = api
        .replace_status("e1", &PostParams::default(), &whole)
        .await
        .expect("replace status");
    assert_eq!(r.data["status"]["phase"], "Done");
    // an unchanged write is a no-op: no new resourceVersion
    let again = api
        .patch_status(
            "e1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Done"}})),
        )
        .await
        .expect("no-op");
    assert_eq!(again.metadata.resource_version, r.metadata.resource_version);
    assert_eq!(
        kube.get(&EXPERIMENTS, "ns", "e1").expect("stored")["status"]["phase"],
        "Done"
    );
    // SSA on the status subresource
    let ssa = api
        .patch_status(
            "e1",
            &PatchParams::apply("op").force(),
            &Patch::Apply(json!({"apiVersion": "tuneflow.dev/v1alpha1", "kind": "Experiment", "status": {"best": 0.1}})),
        )
        .await
        .expect("apply status");
    assert_eq!(ssa.data["status"]["best"], 0.1);
    assert_eq!(ssa.data["status"]["phase"], "Done");
}

#[tokio::test]
async fn finalizers_and_kube_runtime_finalizer_patches() {
    let kube = FakeKube::start().await;
    let leases: Api<Lease> = Api::namespaced(kube.client("ns"), "ns");
    leases
        .create(&PostParams::default(), &lease("l"))
        .await
        .expect("create");
    // The finalizer helper's "add" patch: test that /metadata/finalizers is null, then add.
    let add = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["tuneflow.dev/cleanup"]},
    ]);
    leases
        .patch(
            "l",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(add.clone()).expect("patch")),
        )
        .await
        .expect("add finalizer");
    let e = leases
        .patch(
            "l",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(add).expect("patch")),
        )
        .await
        .expect_err("second add fails its test");
    assert_eq!(code(&e).0, 422);
    let pending = leases
        .delete("l", &DeleteParams::default())
        .await
        .expect("delete");
    let obj = pending.left().expect("still there");
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert!(kube.get(&LEASES, "ns", "l").is_some());
    let remove = json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "tuneflow.dev/cleanup"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]);
    leases
        .patch(
            "l",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(remove).expect("patch")),
        )
        .await
        .expect("remove finalizer");
    assert!(
        kube.get(&LEASES, "ns", "l").is_none(),
        "deleted once the finalizers are gone"
    );
}

#[tokio::test]
async fn cascading_and_orphaning_deletes() {
    let kube = FakeKube::start().await;
    let jobs: Api<Job> = Api::namespaced(kube.client("ns"), "ns");
    let pods: Api<Pod> = Api::namespaced(kube.client("ns"), "ns");
    jobs.create(&PostParams::default(), &job("a"))
        .await
        .expect("create");
    jobs.create(&PostParams::default(), &job("b"))
        .await
        .expect("create");
    let pa = kube.start_pod_for_job("ns", "a").expect("pod");
    let pb = kube.start_pod_for_job("ns", "b").expect("pod");
    let pod = pods.get(&pa).await.expect("pod a");
    let owner = &pod.metadata.owner_references.as_ref().expect("owner refs")[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
    assert_eq!(pod.labels().get("job-name").map(String::as_str), Some("a"));
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    jobs.delete("a", &DeleteParams::background())
        .await
        .expect("delete a");
    assert!(
        kube.get(&PODS, "ns", &pa).is_none(),
        "background deletes the pod"
    );
    // No propagationPolicy: batch/v1 Jobs orphan their pods, like the real server.
    jobs.delete("b", &DeleteParams::default())
        .await
        .expect("delete b");
    let orphan = kube.get(&PODS, "ns", &pb).expect("orphaned pod stays");
    assert_eq!(orphan["metadata"]["ownerReferences"], json!([]));
    let p = pods
        .delete(&pb, &DeleteParams::default())
        .await
        .expect("delete pod");
    assert!(p.is_left(), "pods answer a delete with the object");
}

#[tokio::test]
async fn watcher_recovers_from_closed_watches_and_compaction() {
    let kube = FakeKube::start().await;
    let leases: Api<Lease> = Api::namespaced(kube.client("ns"), "ns");
    leases
        .create(&PostParams::default(), &lease("before"))
        .await
        .expect("create");
    let mut events = watcher(leases.clone(), watcher::Config::default().labels("!skip")).boxed();
    let mut seen = Vec::new();
    let mut next = async || -> watcher::Event<Lease> {
        loop {
            match tokio::time::timeout(Duration::from_secs(3), events.next()).await {
                Ok(Some(Ok(e))) => return e,
                Ok(Some(Err(_))) => continue,
                Ok(None) | Err(_) => panic!("watcher stalled"),
            }
        }
    };
    // initial list
    loop {
        match next().await {
            watcher::Event::InitApply(l) => seen.push(l.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, ["before"]);
    leases
        .create(&PostParams::default(), &lease("live"))
        .await
        .expect("create");
    assert!(
        matches!(next().await, watcher::Event::Apply(l) if l.metadata.name.as_deref() == Some("live"))
    );

    // The server closes every watch; a write lands while the watcher reconnects.
    kube.close_watches();
    leases
        .create(&PostParams::default(), &lease("after-close"))
        .await
        .expect("create");
    assert!(
        matches!(next().await, watcher::Event::Apply(l) if l.metadata.name.as_deref() == Some("after-close"))
    );

    // The watch ends, a write lands and the history is forgotten before the watcher resumes:
    // its resumed watch gets 410 Expired and it re-lists.
    kube.close_watches();
    leases
        .delete("before", &DeleteParams::default())
        .await
        .expect("delete");
    kube.compact();
    let mut relisted = false;
    loop {
        match next().await {
            watcher::Event::Init => relisted = true,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert!(relisted);
    assert!(kube.count("WATCH", "leases") >= 3);
    assert!(kube.count("GET", "leases") >= 2, "listed twice");
}

#[tokio::test]
async fn raw_watch_protocol() {
    let kube = FakeKube::builder()
        .bookmark_interval(Duration::from_millis(50))
        .start()
        .await
        .expect("start");
    let leases: Api<Lease> = Api::namespaced(kube.client("ns"), "ns");
    let created = leases
        .create(&PostParams::default(), &lease("a"))
        .await
        .expect("create");
    let rv = created.metadata.resource_version.expect("rv");
    kube.upsert(
        &LEASES,
        json!({"metadata": {"name": "b", "namespace": "other"}}),
    )
    .expect("upsert");
    leases
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "b"}})),
        )
        .await
        .expect("patch");
    let wp = kube::api::WatchParams::default().timeout(2);
    let mut stream = leases.watch(&wp, &rv).await.expect("watch").boxed();
    let first = stream.try_next().await.expect("event").expect("some");
    assert!(
        matches!(first, kube::api::WatchEvent::Modified(_)),
        "{first:?}"
    );
    let bm = stream.try_next().await.expect("event").expect("some");
    assert!(matches!(bm, kube::api::WatchEvent::Bookmark(_)), "{bm:?}");
    kube.compact();
    let mut old = leases.watch(&wp, &rv).await.expect("watch").boxed();
    match old.try_next().await.expect("event").expect("some") {
        kube::api::WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn pod_logs_follow_and_errors() {
    let kube = FakeKube::start().await;
    let pods: Api<Pod> = Api::namespaced(kube.client("ns"), "ns");
    let jobs: Api<Job> = Api::namespaced(kube.client("ns"), "ns");
    jobs.create(&PostParams::default(), &job("j"))
        .await
        .expect("create");
    let pod = kube.start_pod_for_job("ns", "j").expect("pod");
    kube.append_log("ns", &pod, "main", "loss=1");
    let mut lines = pods
        .log_stream(
            &pod,
            &LogParams {
                follow: true,
                ..LogParams::default()
            },
        )
        .await
        .expect("follow")
        .lines();
    assert_eq!(
        lines.try_next().await.expect("line").as_deref(),
        Some("loss=1")
    );
    kube.append_log("ns", &pod, "main", "loss=0.5");
    assert_eq!(
        lines.try_next().await.expect("line").as_deref(),
        Some("loss=0.5")
    );
    kube.end_log("ns", &pod, "main");
    assert_eq!(lines.try_next().await.expect("end"), None);

    let all = pods
        .logs(
            &pod,
            &LogParams {
                timestamps: true,
                tail_lines: Some(1),
                ..LogParams::default()
            },
        )
        .await
        .expect("logs");
    let (ts, line) = all.trim_end().split_once(' ').expect("timestamp");
    assert_eq!(line, "loss=0.5");
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");

    let e = pods
        .logs(
            &pod,
            &LogParams {
                container: Some("nope".into()),
                ..LogParams::default()
            },
        )
        .await
        .expect_err("unknown container");
    assert_eq!(code(&e).0, 400);
    // Two containers, none named: 400. A waiting container: 400 with the reason.
    kube.upsert(
        &PODS,
        json!({
            "metadata": {"name": "two", "namespace": "ns"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "a", "state": {"waiting": {"reason": "ErrImagePull"}}},
                {"name": "b", "state": {"running": {}}}]},
        }),
    )
    .expect("upsert");
    let e = pods
        .logs("two", &LogParams::default())
        .await
        .expect_err("ambiguous");
    match &e {
        kube::Error::Api(s) => assert!(
            s.message.contains("a container name must be specified"),
            "{}",
            s.message
        ),
        other => panic!("{other:?}"),
    }
    let e = pods
        .logs(
            "two",
            &LogParams {
                container: Some("a".into()),
                ..LogParams::default()
            },
        )
        .await
        .expect_err("waiting");
    match &e {
        kube::Error::Api(s) => assert_eq!(
            s.message,
            "container \"a\" in pod \"two\" is waiting to start: ErrImagePull"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn forbidden_namespace_and_unavailable_server() {
    let kube = FakeKube::start().await;
    kube.forbid_namespace("locked");
    let jobs: Api<Job> = Api::namespaced(kube.client("locked"), "locked");
    let e = jobs
        .create(&PostParams::default(), &job("a"))
        .await
        .expect_err("forbidden");
    match &e {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
            assert_eq!(
                s.message,
                "jobs.batch is forbidden: User \"system:serviceaccount:tuneflow:tuneflow\" cannot create resource \"jobs\" in API group \"batch\" in the namespace \"locked\""
            );
        }
        other => panic!("{other:?}"),
    }
    let open: Api<Job> = Api::namespaced(kube.client("free"), "free");
    open.create(&PostParams::default(), &job("a"))
        .await
        .expect("other namespaces work");

    let mut config = kube.config("free");
    config.default_retry = false;
    let no_retry: Api<Job> =
        Api::namespaced(kube::Client::try_from(config).expect("client"), "free");
    kube.set_unavailable(true);
    let e = no_retry.get("a").await.expect_err("unavailable");
    assert_eq!(code(&e).0, 503);
    // kube's default client retries 503s: it succeeds once the server is back.
    let retrying = {
        let open = open.clone();
        tokio::spawn(async move { open.get("a").await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    kube.set_unavailable(false);
    retrying
        .await
        .expect("join")
        .expect("retried until available");
}

#[tokio::test]
async fn server_side_apply_conflicts_between_managers() {
    // kube-lease-manager relies on these: two replicas applying a free lease at once must not
    // both win.
    let kube = FakeKube::start().await;
    let leases: Api<Lease> = Api::namespaced(kube.client("ns"), "ns");
    let take = |who: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"},
               "spec": {"holderIdentity": who, "leaseDurationSeconds": 15}})
    };
    leases
        .patch(
            "leader",
            &PatchParams::apply("replica-a"),
            &Patch::Apply(take("a")),
        )
        .await
        .expect("a takes the lease");
    let e = leases
        .patch(
            "leader",
            &PatchParams::apply("replica-b"),
            &Patch::Apply(take("b")),
        )
        .await
        .expect_err("b conflicts");
    match &e {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message
                    .contains("conflict with \"replica-a\": .spec.holderIdentity"),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
    // Applying the same values is no conflict; a forced apply takes the fields over.
    leases
        .patch(
            "leader",
            &PatchParams::apply("replica-b"),
            &Patch::Apply(take("a")),
        )
        .await
        .expect("same value");
    leases
        .patch(
            "leader",
            &PatchParams::apply("replica-b").force(),
            &Patch::Apply(take("b")),
        )
        .await
        .expect("forced");
    // Releasing (a strategic patch nulling the fields) frees them for anyone.
    leases
        .patch(
            "leader",
            &PatchParams {
                field_manager: Some("replica-b".into()),
                ..PatchParams::default()
            },
            &Patch::Strategic(json!({"spec": {"holderIdentity": null}})),
        )
        .await
        .expect("release");
    leases
        .patch(
            "leader",
            &PatchParams::apply("replica-a"),
            &Patch::Apply(take("a")),
        )
        .await
        .expect("a takes the released lease");
    assert_eq!(
        kube.get(&LEASES, "ns", "leader").expect("lease")["spec"]["holderIdentity"],
        "a"
    );
}

#[tokio::test]
async fn delete_collection_and_preconditions() {
    let kube = FakeKube::start().await;
    let leases: Api<Lease> = Api::namespaced(kube.client("ns"), "ns");
    for name in ["a", "b", "c"] {
        let mut l = lease(name);
        l.metadata.labels = Some(
            [(
                "group".to_string(),
                if name == "c" { "keep" } else { "drop" }.to_string(),
            )]
            .into(),
        );
        leases
            .create(&PostParams::default(), &l)
            .await
            .expect("create");
    }
    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let e = leases.delete("a", &stale).await.expect_err("precondition");
    assert_eq!(code(&e), (409, "Conflict".into()));
    leases
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("group=drop"),
        )
        .await
        .expect("delete collection");
    let left: Vec<String> = kube
        .list(&LEASES, Some("ns"))
        .iter()
        .map(|l| l["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(left, ["c"]);
    let recorded = kube.requests();
    assert!(recorded.iter().any(|r| r.method == "DELETE"
        && r.path == "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
        && r.query.contains("labelSelector=group%3Ddrop")));
}
