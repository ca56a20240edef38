//! [`FakeKube`], the control handle: starts the server, hands out clients, inspects and changes
//! state behind the API's back, injects faults.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::gvr::{self, Gvr};
use crate::jobs::{self, JobController, JobScript};
use crate::lock;
use crate::logs::Logs;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, DeleteOpts, Deleted, EventType, Store};

/// One request the server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// HTTP method: `GET`, `POST`, ...
    pub method: String,
    /// The path, e.g. `/apis/batch/v1/namespaces/ns/jobs`.
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    /// The plural resource the path names (`"jobs"`), empty for non-resource paths.
    pub resource: String,
    /// The subresource (`"status"`, `"log"`), empty when none.
    pub subresource: String,
    /// The namespace in the path, empty when none.
    pub namespace: String,
    /// Whether this was a watch.
    pub watch: bool,
}

pub(crate) struct Inner {
    pub store: Mutex<Store>,
    pub logs: Logs,
    pub addr: SocketAddr,
    pub unavailable: AtomicBool,
    pub forbidden: Mutex<HashSet<String>>,
    pub user: Mutex<String>,
    /// Bumped to end every open watch.
    pub epoch: watch::Sender<u64>,
    pub open_watches: AtomicUsize,
    pub requests: Mutex<Vec<Request>>,
    pub jobs: JobController,
    pub bookmark_interval: Duration,
    pub runtime: tokio::runtime::Handle,
}

/// A running fake API server and the handle that controls it. Cheap to clone; every clone
/// controls the same server. The server stops when the tokio runtime it was started on stops.
#[derive(Clone)]
pub struct FakeKube {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for FakeKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKube")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

/// Options for [`FakeKube`]: port, status subresources, history size, bookmark interval.
#[derive(Clone, Debug)]
pub struct Builder {
    port: u16,
    status_subresources: HashSet<String>,
    history_limit: usize,
    watch_capacity: usize,
    bookmark_interval: Duration,
    user: String,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            port: 0,
            status_subresources: ["experiments", "jobs", "pods"].map(String::from).into(),
            history_limit: 20_000,
            watch_capacity: 8_192,
            bookmark_interval: Duration::from_secs(5),
            user: "system:serviceaccount:tuneflow:tuneflow".into(),
        }
    }
}

impl Builder {
    /// The port to bind on 127.0.0.1 (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The plural names of the resources that have a `/status` subresource (default:
    /// `experiments`, `jobs`, `pods`).
    pub fn status_subresources<I, S>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.status_subresources = resources.into_iter().map(Into::into).collect();
        self
    }

    /// How many events per resource type watches can resume from (default 20,000). Older
    /// resourceVersions get `410 Expired`.
    pub fn history_limit(mut self, events: usize) -> Self {
        self.history_limit = events;
        self
    }

    /// How many events a watch may fall behind before the server closes it (default 8,192).
    pub fn watch_capacity(mut self, events: usize) -> Self {
        self.watch_capacity = events;
        self
    }

    /// How often watches that asked for bookmarks get one (default 5 s).
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// The user named in 403 messages (default `system:serviceaccount:tuneflow:tuneflow`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// Binds 127.0.0.1 and starts serving on the current tokio runtime.
    pub async fn start(self) -> std::io::Result<FakeKube> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            store: Mutex::new(Store::new(
                self.history_limit,
                self.watch_capacity,
                self.status_subresources,
            )),
            logs: Logs::default(),
            addr,
            unavailable: AtomicBool::new(false),
            forbidden: Mutex::new(HashSet::new()),
            user: Mutex::new(self.user),
            epoch: watch::channel(0).0,
            open_watches: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            jobs: JobController::default(),
            bookmark_interval: self.bookmark_interval,
            runtime: tokio::runtime::Handle::current(),
        });
        let router = crate::server::router(inner.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                eprintln!("fake-kube: server stopped: {e}");
            }
        });
        Ok(FakeKube { inner })
    }
}

impl FakeKube {
    /// Starts a server on 127.0.0.1 with a free port and default options.
    ///
    /// # Panics
    ///
    /// When 127.0.0.1 cannot be bound (use [`FakeKube::builder`] to handle that).
    pub async fn start() -> FakeKube {
        Builder::default()
            .start()
            .await
            .expect("binding 127.0.0.1:0 for the fake Kubernetes API server")
    }

    /// Options for a server; finish with [`Builder::start`].
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// A kube client configuration for this server with `namespace` as the default namespace.
    /// Tweak it (e.g. `default_retry = false`, so 503s are not retried) and build a client with
    /// `kube::Client::try_from(config)`.
    pub fn config(&self, namespace: &str) -> kube::Config {
        let url = self
            .url()
            .parse::<axum::http::Uri>()
            .expect("http://127.0.0.1:PORT is a valid URI");
        let mut config = kube::Config::new(url);
        config.default_namespace = namespace.to_string();
        config
    }

    /// A kube client for this server with `namespace` as the default namespace.
    ///
    /// kube retries `503`, `429` and `504` answers with exponential backoff (up to 15 times);
    /// use [`FakeKube::config`] with `default_retry = false` to see them at once.
    pub fn client(&self, namespace: &str) -> kube::Client {
        install_crypto_provider();
        kube::Client::try_from(self.config(namespace))
            .expect("a kube client for a plain-http URL builds")
    }

    pub(crate) fn apply<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let (r, changes) = {
            let mut s = lock(&self.inner.store);
            let r = f(&mut s);
            (r, s.take_changes())
        };
        self.after(changes);
        r
    }

    /// Runs the controller hooks for writes that just happened.
    pub(crate) fn after(&self, changes: Vec<Change>) {
        for c in changes {
            if c.key == gvr::PODS.key() && c.ty == EventType::Deleted {
                let ns = crate::util::str_at(&c.object, "/metadata/namespace").unwrap_or("");
                let name = crate::util::str_at(&c.object, "/metadata/name").unwrap_or("");
                self.inner.logs.drop_pod(ns, name);
                jobs::on_pod_deleted(self, &c.object);
            }
            if c.key == gvr::JOBS.key() {
                jobs::on_change(self, &c);
            }
        }
    }

    /// The stored object, shared (no copy).
    pub(crate) fn get_arc(&self, gvr: &Gvr, namespace: &str, name: &str) -> Option<Arc<Value>> {
        lock(&self.inner.store).get(gvr, namespace, name)
    }

    /// An object, or `None`.
    pub fn get(&self, gvr: &Gvr, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.inner.store)
            .get(gvr, namespace, name)
            .map(|v| (*v).clone())
    }

    /// Every object of a resource type in a namespace (or all), ordered by namespace and name.
    pub fn list(&self, gvr: &Gvr, namespace: Option<&str>) -> Vec<Value> {
        self.list_selected(gvr, namespace, "")
            .expect("the empty label selector is valid")
    }

    /// Objects whose labels match a label selector (`"app=x,tier in (a,b)"`).
    pub fn list_selected(
        &self,
        gvr: &Gvr,
        namespace: Option<&str>,
        labels: &str,
    ) -> Result<Vec<Value>, String> {
        let sel = LabelSelector::parse(labels)?;
        Ok(lock(&self.inner.store)
            .list(gvr, namespace, &sel, &FieldSelector::default())
            .into_iter()
            .map(|v| (*v).clone())
            .collect())
    }

    /// Creates or replaces an object as given (status included), bypassing the API's rules;
    /// the namespace comes from `metadata.namespace`. Emits `ADDED` or `MODIFIED`. Does not
    /// start the Job simulation (only Jobs created through the API are simulated).
    pub fn upsert(&self, gvr: &Gvr, obj: Value) -> Result<Value, ApiError> {
        let ns = crate::util::str_at(&obj, "/metadata/namespace")
            .unwrap_or("")
            .to_string();
        let name = crate::util::str_at(&obj, "/metadata/name")
            .unwrap_or("")
            .to_string();
        self.apply(|s| {
            if s.get(gvr, &ns, &name).is_some() {
                s.update(gvr, &ns, &name, None, false, |_| {
                    let mut o = obj;
                    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                    }
                    Ok(o)
                })
            } else {
                s.create(gvr, &ns, obj, false)
            }
        })
        .map(|v| (*v).clone())
    }

    /// Creates an object with the API server's rules (uid, generation, validation, Job
    /// defaults, status reset), as a `POST` would, but without HTTP. Jobs created this way are
    /// simulated like Jobs created through the API.
    pub fn create(&self, gvr: &Gvr, namespace: &str, obj: Value) -> Result<Value, ApiError> {
        self.create_arc(gvr, namespace, obj).map(|v| (*v).clone())
    }

    pub(crate) fn create_arc(
        &self,
        gvr: &Gvr,
        namespace: &str,
        obj: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let created = self.apply(|s| s.create(gvr, namespace, obj, true))?;
        if *gvr == gvr::JOBS {
            jobs::on_api_create(self, &created);
        }
        Ok(created)
    }

    /// Replaces an object's `.status` (emits `MODIFIED` unless unchanged).
    pub fn set_status(
        &self,
        gvr: &Gvr,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Result<Value, ApiError> {
        self.update_with(gvr, namespace, name, |obj| {
            crate::util::obj_mut(obj).insert("status".into(), status);
        })
    }

    /// Changes an object through a closure (test control: no status-subresource rules, no
    /// resourceVersion check). Emits `MODIFIED` unless nothing changed; an object with
    /// `deletionTimestamp` whose finalizers become empty is deleted.
    pub fn update_with(
        &self,
        gvr: &Gvr,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        self.apply(|s| {
            s.update(gvr, namespace, name, None, false, |cur| {
                let mut v = cur.clone();
                f(&mut v);
                if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                Ok(v)
            })
        })
        .map(|v| (*v).clone())
    }

    /// Deletes an object like a `DELETE` with background propagation would (finalizers respected,
    /// dependents deleted). Returns the object's state afterwards (with `deletionTimestamp` when
    /// finalizers remain).
    pub fn delete(&self, gvr: &Gvr, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let opts = DeleteOpts {
            propagation: Some(crate::store::Propagation::Background),
            ..DeleteOpts::default()
        };
        match self.apply(|s| s.delete(gvr, namespace, name, &opts))? {
            Deleted::Pending(v) | Deleted::Gone(v) => Ok((*v).clone()),
        }
    }

    /// Removes an object at once, ignoring finalizers and dependents. Emits `DELETED`.
    pub fn remove(&self, gvr: &Gvr, namespace: &str, name: &str) -> Option<Value> {
        self.apply(|s| s.remove(gvr, namespace, name))
            .map(|v| (*v).clone())
    }

    /// Appends a line to a container's log (followers receive it at once). Reading it through
    /// the API needs the Pod to exist with that container not waiting (its
    /// `status.containerStatuses` entry running or terminated), as on a real kubelet;
    /// [`FakeKube::start_pod_for_job`] and the Job simulation set that up.
    pub fn append_log(&self, namespace: &str, pod: &str, container: &str, line: &str) {
        self.inner.logs.append(namespace, pod, container, line);
    }

    /// Ends a container's log: following streams close after the last line.
    pub fn end_log(&self, namespace: &str, pod: &str, container: &str) {
        self.inner.logs.end(namespace, pod, container);
    }

    /// The lines of a container's log so far.
    pub fn log_lines(&self, namespace: &str, pod: &str, container: &str) -> Vec<String> {
        let (lines, _) = self.inner.logs.buf(namespace, pod, container).read_from(0);
        lines.into_iter().map(|(_, l)| l).collect()
    }

    /// Makes every request that touches `namespace` fail with 403 Forbidden, like RBAC without a
    /// RoleBinding there.
    pub fn forbid_namespace(&self, namespace: &str) {
        lock(&self.inner.forbidden).insert(namespace.to_string());
    }

    /// Undoes [`FakeKube::forbid_namespace`].
    pub fn allow_namespace(&self, namespace: &str) {
        lock(&self.inner.forbidden).remove(namespace);
    }

    /// While `true`, every request gets 503 Service Unavailable, and open watches are closed.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.inner.unavailable.store(unavailable, Ordering::SeqCst);
        if unavailable {
            self.close_watches();
        }
    }

    /// Ends every open watch stream (clients must re-watch from their last resourceVersion).
    pub fn close_watches(&self) {
        self.inner.epoch.send_modify(|e| *e += 1);
    }

    /// Forgets the watch history: a watch from a resourceVersion older than now gets an
    /// `ERROR` event with a `410 Expired` Status (clients re-list). Open watches are not closed.
    pub fn compact(&self) {
        lock(&self.inner.store).compact();
    }

    /// How many watch streams are open.
    pub fn open_watches(&self) -> usize {
        self.inner.open_watches.load(Ordering::SeqCst)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.inner.store).resource_version()
    }

    /// Sets which resources (plural names) have a `/status` subresource.
    pub fn set_status_subresources<I, S>(&self, resources: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        lock(&self.inner.store)
            .set_status_subresources(resources.into_iter().map(Into::into).collect());
    }

    /// Makes a resource type's kind known (for lists of a resource nobody created yet).
    pub fn register(&self, gvr: &Gvr) {
        lock(&self.inner.store).register(gvr);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.inner.requests).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.inner.requests).clear();
    }

    /// How many requests with this method touched this resource (plural name), e.g.
    /// `count("POST", "jobs")`. A `GET` watch counts as method `"WATCH"`.
    pub fn count(&self, method: &str, resource: &str) -> usize {
        lock(&self.inner.requests)
            .iter()
            .filter(|r| {
                r.resource == resource
                    && if method == "WATCH" {
                        r.watch
                    } else {
                        r.method == method && !(method == "GET" && r.watch)
                    }
            })
            .count()
    }

    /// Turns on the Job simulation: every Job created through the API from now on gets a Pod
    /// that runs `script(job)`. See [`JobScript`].
    pub fn simulate_jobs(&self, script: impl Fn(&Value) -> JobScript + Send + Sync + 'static) {
        self.inner.jobs.set_behaviour(Some(Arc::new(script)));
    }

    /// How long simulated Pods stay Pending (containers waiting with `ContainerCreating`, logs
    /// answering 400) before they run. Default 0.
    pub fn set_pod_start_delay(&self, delay: Duration) {
        self.inner.jobs.set_pod_start_delay(delay);
    }

    /// Turns the Job simulation off (running scripts continue).
    pub fn stop_simulating_jobs(&self) {
        self.inner.jobs.set_behaviour(None);
    }

    /// Creates a running Pod for a Job (as the Job controller and kubelet would) and marks the Job
    /// active; returns the Pod's name.
    pub fn start_pod_for_job(&self, namespace: &str, job: &str) -> Result<String, ApiError> {
        let pod = jobs::create_pod(self, namespace, job)?;
        jobs::set_pod_running(self, namespace, &pod);
        Ok(pod)
    }

    /// Finishes a Job: its active Pods terminate with `exit_code` (logs end) and the Job gets
    /// the terminal status the real controller writes (`Complete` or `Failed` with
    /// `BackoffLimitExceeded`).
    pub fn finish_job(
        &self,
        namespace: &str,
        job: &str,
        succeeded: bool,
        exit_code: i32,
    ) -> Result<(), ApiError> {
        jobs::finish(
            self,
            namespace,
            job,
            succeeded,
            exit_code,
            if succeeded { "Completed" } else { "Error" },
        )
    }

    /// The names of the Pods that belong to a Job (by the `controller-uid` label).
    pub fn pods_of_job(&self, namespace: &str, job: &str) -> Vec<String> {
        jobs::pods_of(self, namespace, job)
            .into_iter()
            .filter_map(|p| crate::util::str_at(&p, "/metadata/name").map(str::to_string))
            .collect()
    }
}

/// Installs rustls's ring provider as the process default (once; later calls do nothing).
pub(crate) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
