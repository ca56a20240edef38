//! The simulated Job controller and kubelet: Pods for Jobs, scripted logs, terminal statuses
//! shaped like Kubernetes 1.33 writes them, suspension and cascading deletion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::error::ApiError;
use crate::gvr::{Gvr, JOBS, PODS};
use crate::handle::FakeKube;
use crate::lock;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, DeleteOpts, EventType, Propagation};
use crate::util::{child_mut, now_rfc3339, obj_mut, random_suffix, random_u64, str_at};

/// How a simulated Job's Pod ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The container exits 0: Pod `Succeeded`, Job `Complete`.
    Succeed,
    /// The container exits with `exit_code`: Pod `Failed`. The Job retries with a new Pod up to
    /// `spec.backoffLimit` times (default 6), running the same script, then becomes `Failed`
    /// with reason `BackoffLimitExceeded`.
    Fail {
        /// The container's exit code.
        exit_code: i32,
        /// The container's termination reason (`Error`, `OOMKilled`, ...).
        reason: String,
    },
    /// The image cannot be pulled: the Pod stays `Pending` with its container waiting
    /// (`ErrImagePull`), the Job stays active forever. No log lines are written.
    ImagePullError,
    /// The container runs (after its lines) until the Job is deleted or suspended.
    Hang,
}

/// What a simulated Job's Pod does: log lines with a delay before each, then an [`Outcome`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobScript {
    /// `(delay before the line, line)`, written to the log of `container`.
    pub lines: Vec<(Duration, String)>,
    /// The container whose log gets the lines; default the Pod's first container.
    pub container: Option<String>,
    /// How the Pod ends after the lines.
    pub outcome: Outcome,
}

impl JobScript {
    /// `n` lines `loss=<value>` `delay` apart, then success; the values are derived from `seed`
    /// (e.g. the Job's name), so the same Job prints the same losses.
    pub fn losses(seed: &str, n: usize, delay: Duration) -> JobScript {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let base = (h % 10_000) as f64 / 10_000.0;
        let lines = (0..n)
            .map(|i| {
                let loss = base / (1.0 + i as f64) + 0.01;
                (delay, format!("loss={loss:.6}"))
            })
            .collect();
        JobScript {
            lines,
            container: None,
            outcome: Outcome::Succeed,
        }
    }
}

type Behaviour = Arc<dyn Fn(&Value) -> JobScript + Send + Sync>;

/// A running Job script.
struct SimTask {
    id: tokio::task::Id,
    abort: AbortHandle,
    /// Woken when the Job's running Pod is deleted behind the script's back.
    pod_gone: Arc<Notify>,
}

/// The simulation's state: the behaviour and the running scripts.
#[derive(Default)]
pub(crate) struct JobController {
    behaviour: Mutex<Option<Behaviour>>,
    tasks: Mutex<HashMap<(String, String), SimTask>>,
    pod_start_delay: Mutex<Duration>,
}

impl JobController {
    pub fn set_behaviour(&self, b: Option<Behaviour>) {
        *lock(&self.behaviour) = b;
    }

    fn behaviour(&self) -> Option<Behaviour> {
        lock(&self.behaviour).clone()
    }

    fn stop(&self, ns: &str, job: &str) {
        if let Some(t) = lock(&self.tasks).remove(&(ns.to_string(), job.to_string())) {
            t.abort.abort();
        }
    }

    pub fn set_pod_start_delay(&self, d: Duration) {
        *lock(&self.pod_start_delay) = d;
    }

    fn pod_start_delay(&self) -> Duration {
        *lock(&self.pod_start_delay)
    }
}

/// A Pod was deleted: if it was the running Pod of a simulated Job, the script learns it (the
/// Job counts a failure and replaces the Pod, like the real controller).
pub(crate) fn on_pod_deleted(k: &FakeKube, pod: &Value) {
    if pod_done(pod) {
        return;
    }
    let (Some(ns), Some(job)) = (
        str_at(pod, "/metadata/namespace"),
        str_at(pod, "/metadata/labels/job-name"),
    ) else {
        return;
    };
    if let Some(t) = lock(&k.inner.jobs.tasks).get(&(ns.to_string(), job.to_string())) {
        t.pod_gone.notify_one();
    }
}

fn invalid(name: &str, msg: &str) -> ApiError {
    ApiError::invalid(&JOBS, name, msg)
}

/// What the API server does to a Job on create: validation and defaults.
pub(crate) fn admit_job(gvr: &Gvr, job: &mut Value) -> Result<(), ApiError> {
    let name = str_at(job, "/metadata/name").unwrap_or("").to_string();
    let uid = str_at(job, "/metadata/uid").unwrap_or("").to_string();
    if name.len() > 63 {
        return Err(ApiError::invalid(
            gvr,
            &name,
            &format!("metadata.name: Invalid value: {name:?}: must be no more than 63 characters"),
        ));
    }
    let containers = job
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if containers == 0 {
        return Err(invalid(
            &name,
            "spec.template.spec.containers: Required value",
        ));
    }
    match str_at(job, "/spec/template/spec/restartPolicy") {
        Some("Never" | "OnFailure") => {}
        None => {
            return Err(invalid(
                &name,
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            ));
        }
        Some(other) => {
            return Err(invalid(
                &name,
                &format!(
                    "spec.template.spec.restartPolicy: Unsupported value: {other:?}: supported values: \"OnFailure\", \"Never\""
                ),
            ));
        }
    }
    let spec = obj_mut(child_mut(job, "spec"));
    spec.entry("backoffLimit").or_insert(json!(6));
    spec.entry("completions").or_insert(json!(1));
    spec.entry("parallelism").or_insert(json!(1));
    spec.entry("completionMode").or_insert(json!("NonIndexed"));
    spec.entry("suspend").or_insert(json!(false));
    spec.entry("manualSelector").or_insert(json!(false));
    spec.entry("podReplacementPolicy")
        .or_insert(json!("TerminatingOrFailed"));
    let uid_label = json!(uid);
    let spec = child_mut(job, "spec");
    let sel = obj_mut(child_mut(child_mut(spec, "selector"), "matchLabels"));
    sel.entry("batch.kubernetes.io/controller-uid")
        .or_insert(uid_label.clone());
    let labels = obj_mut(child_mut(
        child_mut(child_mut(child_mut(job, "spec"), "template"), "metadata"),
        "labels",
    ));
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid_label.clone()),
        ("batch.kubernetes.io/job-name", json!(name)),
        ("controller-uid", uid_label),
        ("job-name", json!(name)),
    ] {
        labels.insert(k.into(), v);
    }
    Ok(())
}

/// A Job was created through the API.
pub(crate) fn on_api_create(k: &FakeKube, job: &Value) {
    let ns = str_at(job, "/metadata/namespace").unwrap_or("").to_string();
    let name = str_at(job, "/metadata/name").unwrap_or("").to_string();
    if job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        suspend(k, &ns, &name);
        return;
    }
    if let Some(b) = k.inner.jobs.behaviour() {
        let script = b(job);
        spawn(k, ns, name, script);
    }
}

/// A Job changed (any write): suspension, resumption, deletion.
pub(crate) fn on_change(k: &FakeKube, c: &Change) {
    let ns = str_at(&c.object, "/metadata/namespace")
        .unwrap_or("")
        .to_string();
    let name = str_at(&c.object, "/metadata/name")
        .unwrap_or("")
        .to_string();
    match c.ty {
        EventType::Added => {}
        EventType::Deleted => k.inner.jobs.stop(&ns, &name),
        EventType::Modified => {
            if finished(&c.object) {
                return;
            }
            let want_suspended =
                c.object.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
            let is_suspended = condition_true(&c.object, "Suspended");
            if want_suspended && !is_suspended {
                suspend(k, &ns, &name);
            } else if !want_suspended && is_suspended {
                resume(k, &ns, &name);
            }
        }
    }
}

fn condition_true(job: &Value, ty: &str) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(ty)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn finished(job: &Value) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

fn set_condition(
    status: &mut Map<String, Value>,
    ty: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let conds = status.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(arr) = conds.as_array_mut() else {
        return;
    };
    let new = json!({
        "type": ty, "status": value, "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": now,
    });
    match arr
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
    {
        Some(c) => {
            let same = c.get("status").and_then(Value::as_str) == Some(value);
            let ltt = c.get("lastTransitionTime").cloned();
            *c = new;
            if same && let Some(ltt) = ltt {
                obj_mut(c).insert("lastTransitionTime".into(), ltt);
            }
        }
        None => arr.push(new),
    }
}

/// Changes a Job's status through the status subresource.
fn update_job_status(
    k: &FakeKube,
    ns: &str,
    job: &str,
    f: impl FnOnce(&mut Map<String, Value>),
) -> Result<(), ApiError> {
    k.apply(|s| {
        s.update(&JOBS, ns, job, Some("status"), true, |cur| {
            let mut v = cur.clone();
            f(obj_mut(child_mut(&mut v, "status")));
            Ok(v)
        })
    })
    .map(|_| ())
}

fn update_pod_status(
    k: &FakeKube,
    ns: &str,
    pod: &str,
    f: impl FnOnce(&Value, &mut Map<String, Value>),
) {
    let _ = k.apply(|s| {
        s.update(&PODS, ns, pod, Some("status"), true, |cur| {
            let mut v = cur.clone();
            let spec = cur.get("spec").unwrap_or(&Value::Null);
            f(spec, obj_mut(child_mut(&mut v, "status")));
            Ok(v)
        })
    });
}

fn container_names(spec: &Value) -> Vec<String> {
    spec.get("containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn container_statuses(spec: &Value, state: impl Fn(&str) -> Value, ready: bool) -> Value {
    let images: HashMap<String, String> = spec
        .get("containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    Some((
                        c.get("name")?.as_str()?.to_string(),
                        c.get("image")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Value::Array(
        container_names(spec)
            .into_iter()
            .map(|name| {
                let image = images.get(&name).cloned().unwrap_or_default();
                json!({
                    "name": name, "image": image, "imageID": "",
                    "containerID": format!("containerd://{:016x}", random_u64()),
                    "ready": ready, "restartCount": 0, "started": ready,
                    "state": state(&name),
                })
            })
            .collect(),
    )
}

/// The Pods of a Job, by its `controller-uid` label.
pub(crate) fn pods_of(k: &FakeKube, ns: &str, job: &str) -> Vec<Value> {
    let Some(j) = k.get_arc(&JOBS, ns, job) else {
        return Vec::new();
    };
    let uid = str_at(&j, "/metadata/uid").unwrap_or("");
    let Ok(sel) = LabelSelector::parse(&format!("batch.kubernetes.io/controller-uid={uid}")) else {
        return Vec::new();
    };
    lock(&k.inner.store)
        .list(&PODS, Some(ns), &sel, &FieldSelector::default())
        .into_iter()
        .map(|v| (*v).clone())
        .collect()
}

fn pod_done(p: &Value) -> bool {
    matches!(str_at(p, "/status/phase"), Some("Succeeded" | "Failed"))
}

/// Creates a Pending Pod for a Job and marks the Job active. Returns the Pod's name.
pub(crate) fn create_pod(k: &FakeKube, ns: &str, job: &str) -> Result<String, ApiError> {
    let j = k
        .get_arc(&JOBS, ns, job)
        .ok_or_else(|| ApiError::not_found(&JOBS, job))?;
    let uid = str_at(&j, "/metadata/uid").unwrap_or("").to_string();
    let template = j.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    let mut labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (key, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &job.to_string()),
        ("controller-uid", &uid),
        ("job-name", &job.to_string()),
    ] {
        labels.insert(key.into(), json!(v));
    }
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    obj_mut(&mut spec).insert("nodeName".into(), json!("fake-node"));
    let now = now_rfc3339();
    let waiting = |_: &str| json!({"waiting": {"reason": "ContainerCreating"}});
    let statuses = container_statuses(&spec, waiting, false);
    let annotations = template.pointer("/metadata/annotations").cloned();
    let created = k.apply(|s| {
        let mut last = None;
        for _ in 0..8 {
            let name = format!("{job}-{}", random_suffix(5));
            let mut pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "generateName": format!("{job}-"),
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [{
                        "apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": uid,
                        "controller": true, "blockOwnerDeletion": true,
                    }],
                },
                "spec": spec,
                "status": {
                    "phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
                    "containerStatuses": statuses,
                    "qosClass": "BestEffort",
                },
            });
            if let Some(a) = &annotations {
                obj_mut(child_mut(&mut pod, "metadata")).insert("annotations".into(), a.clone());
            }
            match s.create(&PODS, ns, pod, false) {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ApiError::already_exists(&PODS, job)))
    })?;
    let pod = str_at(&created, "/metadata/name").unwrap_or("").to_string();
    update_job_status(k, ns, job, |st| {
        st.insert("active".into(), json!(1));
        st.insert("ready".into(), json!(0));
        st.insert("terminating".into(), json!(0));
        st.insert("uncountedTerminatedPods".into(), json!({}));
        st.entry("startTime")
            .or_insert_with(|| json!(now_rfc3339()));
    })?;
    Ok(pod)
}

/// Moves a Pod to Running (every container running and ready) and counts it as ready in its Job.
pub(crate) fn set_pod_running(k: &FakeKube, ns: &str, pod: &str) {
    let now = now_rfc3339();
    update_pod_status(k, ns, pod, |spec, st| {
        st.insert("phase".into(), json!("Running"));
        st.insert("startTime".into(), json!(now));
        st.insert("hostIP".into(), json!("10.0.0.1"));
        st.insert(
            "podIP".into(),
            json!(format!(
                "10.1.{}.{}",
                random_u64() % 250,
                random_u64() % 250 + 1
            )),
        );
        st.insert(
            "conditions".into(),
            json!([
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ]),
        );
        st.insert(
            "containerStatuses".into(),
            container_statuses(spec, |_| json!({"running": {"startedAt": now}}), true),
        );
    });
    if let Some(job) = k
        .get_arc(&PODS, ns, pod)
        .and_then(|p| str_at(&p, "/metadata/labels/job-name").map(str::to_string))
    {
        let _ = update_job_status(k, ns, &job, |st| {
            st.insert("ready".into(), json!(1));
        });
    }
}

/// Leaves a Pod Pending with `container` waiting (e.g. `ErrImagePull`).
fn set_pod_waiting(k: &FakeKube, ns: &str, pod: &str, container: &str, reason: &str) {
    update_pod_status(k, ns, pod, |spec, st| {
        let image = spec
            .get("containers")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
            })
            .and_then(|c| c.get("image").and_then(Value::as_str))
            .unwrap_or("")
            .to_string();
        let message = format!(
            "failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
        );
        st.insert(
            "containerStatuses".into(),
            container_statuses(
                spec,
                |name| {
                    if name == container {
                        json!({"waiting": {"reason": reason, "message": message}})
                    } else {
                        json!({"waiting": {"reason": "PodInitializing"}})
                    }
                },
                false,
            ),
        );
    });
}

/// Terminates every container of a Pod with `exit_code` and ends its logs.
fn terminate_pod(k: &FakeKube, ns: &str, pod: &str, succeeded: bool, exit_code: i32, reason: &str) {
    let now = now_rfc3339();
    let mut names = Vec::new();
    update_pod_status(k, ns, pod, |spec, st| {
        names = container_names(spec);
        let started = st.get("startTime").cloned().unwrap_or_else(|| json!(now));
        st.insert(
            "phase".into(),
            json!(if succeeded { "Succeeded" } else { "Failed" }),
        );
        if let Some(conds) = st.get_mut("conditions").and_then(Value::as_array_mut) {
            for c in conds.iter_mut() {
                if matches!(
                    c.get("type").and_then(Value::as_str),
                    Some("Ready" | "ContainersReady")
                ) {
                    let m = obj_mut(c);
                    m.insert("status".into(), json!("False"));
                    m.insert("reason".into(), json!("PodCompleted"));
                    m.insert("lastTransitionTime".into(), json!(now));
                }
            }
        }
        st.insert(
            "containerStatuses".into(),
            container_statuses(
                spec,
                |_| {
                    json!({"terminated": {
                        "exitCode": exit_code, "reason": reason,
                        "startedAt": started, "finishedAt": now,
                    }})
                },
                false,
            ),
        );
    });
    for c in names {
        k.end_log(ns, pod, &c);
    }
}

/// Ends a Job: its active Pods terminate, the Job gets its terminal status.
pub(crate) fn finish(
    k: &FakeKube,
    ns: &str,
    job: &str,
    succeeded: bool,
    exit_code: i32,
    reason: &str,
) -> Result<(), ApiError> {
    if k.get_arc(&JOBS, ns, job).is_none() {
        return Err(ApiError::not_found(&JOBS, job));
    }
    for p in pods_of(k, ns, job).iter().filter(|p| !pod_done(p)) {
        if let Some(name) = str_at(p, "/metadata/name") {
            terminate_pod(k, ns, name, succeeded, exit_code, reason);
        }
    }
    let now = now_rfc3339();
    update_job_status(k, ns, job, |st| {
        st.remove("active");
        st.insert("ready".into(), json!(0));
        st.insert("terminating".into(), json!(0));
        st.insert("uncountedTerminatedPods".into(), json!({}));
        st.entry("startTime").or_insert_with(|| json!(now));
        if succeeded {
            let n = st.get("succeeded").and_then(Value::as_i64).unwrap_or(0);
            st.insert("succeeded".into(), json!(n + 1));
            st.insert("completionTime".into(), json!(now));
            let msg = "Reached expected number of succeeded pods";
            set_condition(
                st,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                msg,
                &now,
            );
            set_condition(st, "Complete", "True", "CompletionsReached", msg, &now);
        } else {
            let n = st.get("failed").and_then(Value::as_i64).unwrap_or(0);
            st.insert("failed".into(), json!(n + 1));
            let msg = "Job has reached the specified backoff limit";
            set_condition(
                st,
                "FailureTarget",
                "True",
                "BackoffLimitExceeded",
                msg,
                &now,
            );
            set_condition(st, "Failed", "True", "BackoffLimitExceeded", msg, &now);
        }
    })
}

/// A failed attempt with retries left: the Pod fails, the Job counts it and stays active.
fn fail_attempt(k: &FakeKube, ns: &str, job: &str, pod: &str, exit_code: i32, reason: &str) {
    terminate_pod(k, ns, pod, false, exit_code, reason);
    let _ = update_job_status(k, ns, job, |st| {
        let n = st.get("failed").and_then(Value::as_i64).unwrap_or(0);
        st.insert("failed".into(), json!(n + 1));
        st.remove("active");
        st.insert("ready".into(), json!(0));
    });
}

fn suspend(k: &FakeKube, ns: &str, job: &str) {
    k.inner.jobs.stop(ns, job);
    for p in pods_of(k, ns, job).iter().filter(|p| !pod_done(p)) {
        if let Some(name) = str_at(p, "/metadata/name") {
            let opts = DeleteOpts {
                propagation: Some(Propagation::Background),
                ..DeleteOpts::default()
            };
            let _ = k.apply(|s| s.delete(&PODS, ns, name, &opts));
        }
    }
    let now = now_rfc3339();
    let _ = update_job_status(k, ns, job, |st| {
        st.remove("active");
        st.remove("startTime");
        st.insert("ready".into(), json!(0));
        set_condition(
            st,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            &now,
        );
    });
}

fn resume(k: &FakeKube, ns: &str, job: &str) {
    let now = now_rfc3339();
    let _ = update_job_status(k, ns, job, |st| {
        set_condition(st, "Suspended", "False", "JobResumed", "Job resumed", &now);
    });
    if let (Some(b), Some(j)) = (k.inner.jobs.behaviour(), k.get_arc(&JOBS, ns, job)) {
        let script = b(&j);
        spawn(k, ns.to_string(), job.to_string(), script);
    }
}

fn spawn(k: &FakeKube, ns: String, job: String, script: JobScript) {
    let key = (ns.clone(), job.clone());
    // Hold the task map while spawning so the task cannot finish (and unregister) before it is
    // registered.
    let mut tasks = lock(&k.inner.jobs.tasks);
    let k2 = k.clone();
    let pod_gone = Arc::new(Notify::new());
    let gone = pod_gone.clone();
    let handle = k.inner.runtime.spawn(async move {
        simulate(&k2, &ns, &job, script, &gone).await;
        let id = tokio::task::id();
        let mut tasks = lock(&k2.inner.jobs.tasks);
        if tasks
            .get(&(ns.clone(), job.clone()))
            .is_some_and(|t| t.id == id)
        {
            tasks.remove(&(ns, job));
        }
    });
    let task = SimTask {
        id: handle.id(),
        abort: handle.abort_handle(),
        pod_gone,
    };
    if let Some(old) = tasks.insert(key, task) {
        old.abort.abort();
    }
}

async fn simulate(k: &FakeKube, ns: &str, job: &str, script: JobScript, pod_gone: &Notify) {
    let spec = k
        .get_arc(&JOBS, ns, job)
        .and_then(|j| j.get("spec").cloned())
        .unwrap_or(Value::Null);
    let seconds = |field: &str| {
        spec.get(field)
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
    };
    let deadline = seconds("activeDeadlineSeconds");
    let ttl = seconds("ttlSecondsAfterFinished");
    let backoff_limit = spec
        .get("backoffLimit")
        .and_then(Value::as_i64)
        .unwrap_or(6);
    let run = run_attempts(k, ns, job, &script, backoff_limit, pod_gone);
    match deadline {
        Some(d) => {
            tokio::select! {
                () = run => {}
                () = tokio::time::sleep(d) => deadline_exceeded(k, ns, job),
            }
        }
        None => run.await,
    }
    if let Some(ttl) = ttl {
        tokio::time::sleep(ttl).await;
        let opts = DeleteOpts {
            propagation: Some(Propagation::Background),
            ..DeleteOpts::default()
        };
        let _ = k.apply(|s| s.delete(&JOBS, ns, job, &opts));
    }
}

/// `activeDeadlineSeconds` passed: active Pods are deleted, the Job fails with
/// `DeadlineExceeded`.
fn deadline_exceeded(k: &FakeKube, ns: &str, job: &str) {
    let active: Vec<String> = pods_of(k, ns, job)
        .iter()
        .filter(|p| !pod_done(p))
        .filter_map(|p| str_at(p, "/metadata/name").map(str::to_string))
        .collect();
    for name in &active {
        let opts = DeleteOpts {
            propagation: Some(Propagation::Background),
            ..DeleteOpts::default()
        };
        let _ = k.apply(|s| s.delete(&PODS, ns, name, &opts));
    }
    let now = now_rfc3339();
    let _ = update_job_status(k, ns, job, |st| {
        let n = st.get("failed").and_then(Value::as_i64).unwrap_or(0);
        st.insert("failed".into(), json!(n + active.len() as i64));
        st.remove("active");
        st.insert("ready".into(), json!(0));
        let msg = "Job was active longer than specified deadline";
        set_condition(st, "FailureTarget", "True", "DeadlineExceeded", msg, &now);
        set_condition(st, "Failed", "True", "DeadlineExceeded", msg, &now);
    });
}

/// How one Pod of a Job ended.
enum Attempt {
    Succeeded,
    Failed {
        exit_code: i32,
        reason: String,
    },
    /// The Pod was deleted while it ran.
    Deleted,
    /// The Pod could not be created (the Job is gone).
    NoPod,
}

/// Runs one Pod: start, log lines, outcome. Never returns for `Hang` and `ImagePullError`.
async fn attempt(k: &FakeKube, ns: &str, script: &JobScript, pod: &str) -> Attempt {
    let container = script
        .container
        .clone()
        .or_else(|| {
            k.get_arc(&PODS, ns, pod)
                .and_then(|p| p.get("spec").map(container_names))
                .and_then(|names| names.into_iter().next())
        })
        .unwrap_or_default();
    let delay = k.inner.jobs.pod_start_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if script.outcome == Outcome::ImagePullError {
        set_pod_waiting(k, ns, pod, &container, "ErrImagePull");
        std::future::pending::<()>().await;
    }
    set_pod_running(k, ns, pod);
    for (delay, line) in &script.lines {
        if !delay.is_zero() {
            tokio::time::sleep(*delay).await;
        }
        k.append_log(ns, pod, &container, line);
    }
    match &script.outcome {
        Outcome::Succeed => Attempt::Succeeded,
        Outcome::Fail { exit_code, reason } => Attempt::Failed {
            exit_code: *exit_code,
            reason: reason.clone(),
        },
        Outcome::Hang | Outcome::ImagePullError => std::future::pending().await,
    }
}

/// Runs Pods for a Job until one succeeds or more than `backoff_limit` have failed. Returns
/// when the Job is finished (never for `Hang` and `ImagePullError`).
async fn run_attempts(
    k: &FakeKube,
    ns: &str,
    job: &str,
    script: &JobScript,
    backoff_limit: i64,
    pod_gone: &Notify,
) {
    let mut failures = 0;
    loop {
        let result = match create_pod(k, ns, job) {
            Err(_) => Attempt::NoPod,
            Ok(pod) => {
                tokio::select! {
                    r = attempt(k, ns, script, &pod) => {
                        if let Attempt::Failed { exit_code, reason } = &r
                            && failures < backoff_limit
                        {
                            fail_attempt(k, ns, job, &pod, *exit_code, reason);
                        }
                        r
                    }
                    () = pod_gone.notified() => Attempt::Deleted,
                }
            }
        };
        match result {
            Attempt::NoPod => return,
            Attempt::Succeeded => {
                let _ = finish(k, ns, job, true, 0, "Completed");
                return;
            }
            Attempt::Failed { exit_code, reason } => {
                failures += 1;
                if failures > backoff_limit {
                    let _ = finish(k, ns, job, false, exit_code, &reason);
                    return;
                }
            }
            Attempt::Deleted => {
                failures += 1;
                if failures > backoff_limit {
                    let _ = finish(k, ns, job, false, 137, "Error");
                    return;
                }
                let _ = update_job_status(k, ns, job, |st| {
                    let n = st.get("failed").and_then(Value::as_i64).unwrap_or(0);
                    st.insert("failed".into(), json!(n + 1));
                    st.remove("active");
                    st.insert("ready".into(), json!(0));
                });
            }
        }
        // The real controller backs off (10 s, doubling); a short pause keeps the retries
        // visible without slowing tests down.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
