//! An in-process fake Kubernetes API server for tests and benchmarks.
//!
//! tuneflow's Kubernetes executor and operator talk to the API server through kube-rs; no real
//! cluster (nor envtest's apiserver and etcd) can run where tuneflow is built and tested. This
//! crate serves the part of the Kubernetes REST API that kube-rs clients use, over plain HTTP on
//! 127.0.0.1, closely enough that `kube::Api`, `kube::runtime::watcher` and `Controller` cannot
//! tell the difference:
//!
//! - a generic object store (any group/version/resource, objects as JSON), with `create`,
//!   `get`, `list`, `watch`, `replace`, `patch` (merge, strategic-as-merge, JSON patch,
//!   server-side apply as a merge that creates) and `delete` (finalizers, `deletionTimestamp`,
//!   owner-reference cascading), label and field selectors, a global resourceVersion, watch
//!   history with `410 Expired` after [`FakeKube::compact`], bookmarks, and errors as k8s
//!   `Status` objects;
//! - status subresources (`/status`) with their split of `.spec` and `.status` and
//!   `metadata.generation` bumps;
//! - `pods/{name}/log` with `follow`, `timestamps`, `tailLines`, `sinceTime`, `sinceSeconds`;
//! - fault injection: forbidden namespaces (403 like RBAC), unavailability (503), closing every
//!   watch, compacting the history;
//! - a simulated Job controller and kubelet ([`FakeKube::simulate_jobs`]): each Job created
//!   through the API gets a Pod, log lines and a terminal status, scripted per Job.
//!
//! # Use from a test
//!
//! ```no_run
//! use std::time::Duration;
//! use tuneflow_fake_kube::{FakeKube, JobScript, Outcome, JOBS, PODS};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let kube = FakeKube::start().await;
//! kube.simulate_jobs(|_job| JobScript {
//!     lines: vec![(Duration::from_millis(5), "loss=0.5".into())],
//!     container: None,
//!     outcome: Outcome::Succeed,
//! });
//! let client: kube::Client = kube.client("default");
//! // ... hand `client` to the code under test, which creates Jobs ...
//! let jobs = kube.list(&JOBS, Some("default"));
//! let pods = kube.list(&PODS, Some("default"));
//! assert_eq!(kube.count("POST", "jobs"), jobs.len());
//! # let _ = (client, pods);
//! # Ok(()) }
//! ```
//!
//! [`FakeKube::upsert`], [`FakeKube::set_status`], [`FakeKube::update_with`] and
//! [`FakeKube::remove`] change objects without going through HTTP (they still emit watch
//! events); [`FakeKube::append_log`] and [`FakeKube::end_log`] feed container logs;
//! [`FakeKube::requests`] and [`FakeKube::count`] tell what the client sent;
//! [`FakeKube::forbid_namespace`], [`FakeKube::set_unavailable`], [`FakeKube::close_watches`]
//! and [`FakeKube::compact`] inject faults. kube's client retries 503s with backoff: build a
//! client from [`FakeKube::config`] with `default_retry = false` to see them at once.
//!
//! # Semantics worth knowing
//!
//! - Every write bumps one global resourceVersion and emits one watch event; a write that
//!   changes nothing is a no-op (no new resourceVersion, no event), like the real server.
//! - Watches: `resourceVersion` unset or `"0"` starts with `ADDED` for every current object;
//!   otherwise every change after it is replayed from the history (20,000 events per resource by
//!   default), or an `ERROR` event with a `410 Expired` Status is sent when it is older (kube's
//!   watcher then re-lists). `sendInitialEvents=true` (streaming lists) ends the initial events
//!   with the `k8s.io/initial-events-end` bookmark. A watch that falls more than
//!   [`Builder::watch_capacity`] events behind is closed, as the real server does.
//! - Status subresources (default `experiments`, `jobs`, `pods`; see
//!   [`Builder::status_subresources`]): writes to the main resource keep the old `.status`,
//!   writes to `/status` change only `.status`; `metadata.generation` grows when anything but
//!   metadata and status changes. Create drops `.status` (Pods start `Pending`, Jobs `{}`).
//! - Deletion: objects with finalizers get `deletionTimestamp` (202 with the object) and go when
//!   an update empties `metadata.finalizers`. Dependents (by `ownerReferences[].uid`) are deleted
//!   for `Background` and `Foreground` (both at once, foreground is not ordered) and released for
//!   `Orphan`. **batch/v1 Jobs orphan their Pods when no propagation policy is given**, as on a
//!   real cluster: pass `DeleteParams::background()`. Pods and custom resources answer a delete
//!   with the object, other built-in resources with a `Success` Status.
//! - JSON patches are atomic; a failed `test` is 422 `Invalid`; a `test` for `null` passes on a
//!   missing path (the server's library does this and kube-runtime's finalizer helper relies on
//!   it). Strategic merge patches are merge patches (lists are replaced).
//! - Server-side apply merges the applied configuration (creating the object when missing) and
//!   tracks which manager applied which field: applying a different value to a field another
//!   manager owns is a 409 conflict unless `force`; fields changed by other writes with a
//!   `fieldManager` change owner, fields that disappear lose theirs (enough for
//!   kube-lease-manager's leader election). Fields omitted from a later apply are not removed.
//! - Validation: names must be RFC 1123 subdomains (Jobs: at most 63 characters), label values
//!   must be valid, Jobs need containers and `restartPolicy` `Never` or `OnFailure`. Jobs get the
//!   API server's defaults (`backoffLimit` 6, `completions`, `parallelism`, selector and the
//!   `controller-uid`/`job-name` template labels).
//!
//! # The Job simulation
//!
//! Off until [`FakeKube::simulate_jobs`]. Each Job created through the API (not
//! [`FakeKube::upsert`]) gets a Pod `{job}-{5 chars}` (template labels plus `job-name`,
//! `controller-uid` and their `batch.kubernetes.io/` forms, a controller owner reference, the
//! template's spec) that goes Pending → Running, writes the script's lines to its log and ends as
//! scripted; the Job's status follows what Kubernetes 1.33 writes (`active`, `ready`,
//! `startTime`; then `succeeded` with `SuccessCriteriaMet` + `Complete` and `completionTime`, or
//! `failed` with `FailureTarget` + `Failed`/`BackoffLimitExceeded`; `active` is omitted once zero,
//! as the real server omits zero counts). Failed Pods are retried up to `spec.backoffLimit`; a
//! running Pod deleted behind the Job's back counts as failed and is replaced;
//! `activeDeadlineSeconds` fails the Job with `DeadlineExceeded` and deletes its Pod;
//! `ttlSecondsAfterFinished` deletes the finished Job; `spec.suspend` deletes active Pods and sets
//! `Suspended` (resuming runs the script again); deleting the Job stops its script. Without the
//! simulation, [`FakeKube::start_pod_for_job`] and [`FakeKube::finish_job`] drive the same code
//! by hand. [`JobScript::losses`] is the script the `fake-kube` binary uses.
//!
//! # What is not simulated
//!
//! No authentication or authorization (except [`FakeKube::forbid_namespace`]), no admission
//! webhooks, no schema validation (objects are stored as sent, apart from the checks above), no
//! namespace lifecycle (namespaces need not exist), no protobuf, no pagination (`limit` and
//! `continue` are ignored: lists are complete), no `dryRun`, no `managedFields` in objects, no
//! discovery beyond `/api` and `/version`, no graceful Pod termination (Pods go at once), no
//! scheduling or nodes, no events written by the simulated controllers, and the Job simulation
//! runs one Pod at a time (`parallelism`/`completions` other than 1 and indexed Jobs are not
//! honoured; retries have no exponential backoff delay).

mod error;
mod gvr;
mod handle;
mod jobs;
mod logs;
mod selector;
mod server;
mod store;
mod util;

pub use error::ApiError;
pub use gvr::{
    CONFIG_MAPS, EVENTS, EVENTS_V1, EXPERIMENTS, Gvr, JOBS, KNOWN, LEASES, NAMESPACES, PODS,
    SECRETS, SERVICE_ACCOUNTS, SERVICES,
};
pub use handle::{Builder, FakeKube, Request};
pub use jobs::{JobScript, Outcome};
pub use selector::{FieldSelector, LabelSelector};
pub use store::EventType;

/// Locks a mutex, ignoring poisoning (state stays consistent: no lock is held across a panic
/// point that could leave it half-written).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
