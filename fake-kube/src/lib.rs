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
//! [`FakeKube::upsert`], [`FakeKube::set_status`] and [`FakeKube::remove`] change objects without
//! going through HTTP (they still emit watch events); [`FakeKube::append_log`] and
//! [`FakeKube::end_log`] feed container logs; [`FakeKube::requests`] and [`FakeKube::count`]
//! tell what the client sent.
//!
//! # What is not simulated
//!
//! No authentication or authorization (except [`FakeKube::forbid_namespace`]), no admission
//! webhooks, no schema validation (objects are stored as sent, apart from name and label checks
//! and Job defaults), no namespaces lifecycle (namespaces need not exist), no protobuf, no
//! pagination (`limit`/`continue` are ignored: lists are complete), no `dryRun`, no managed
//! fields (server-side apply is a merge patch), strategic merge patches replace lists, Pod
//! deletion is immediate (no grace period), and the Job controller runs one Pod at a time
//! (`parallelism`/`completions` other than 1 are not honoured; `backoffLimit` is).

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
