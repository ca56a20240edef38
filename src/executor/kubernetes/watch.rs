//! Following the trials' Jobs and pods: one pair of watches per namespace, shared by every
//! trial the executor runs there.
//!
//! A watch per trial would cost two long-lived connections per running trial (6,000 for 100
//! experiments of 30 parallel trials). Instead each namespace gets one Job watch and one pod
//! watch, both selecting `app.kubernetes.io/managed-by=tuneflow`, that keep a mirror of the
//! objects indexed by trial (the `tuneflow.dev/trial` label). A trial subscribes by name and
//! is woken only by events about its own objects (and by relists, which touch everything).
//!
//! The watches restart with kube-runtime's backoff when the API server goes away; a relist
//! (`Init` … `InitDone`) replaces the mirror atomically, so objects deleted while the watch was
//! down disappear from it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::job::{MANAGED_BY, MANAGED_BY_LABEL, TRIAL_LABEL};

/// The label the Job controller puts on a Job's pods.
const JOB_NAME_LABEL: &str = "job-name";

/// The shared watches of one executor, started per namespace on first use.
pub struct Hub {
    client: Client,
    namespaces: Mutex<HashMap<String, Arc<Namespace>>>,
}

impl Hub {
    /// A hub with no watches yet.
    pub fn new(client: Client) -> Hub {
        Hub {
            client,
            namespaces: Mutex::new(HashMap::new()),
        }
    }

    /// Subscribes to the Job named `trial` in `namespace` and its pods, starting that
    /// namespace's watches if this is its first trial.
    pub fn subscribe(&self, namespace: &str, trial: &str) -> Subscription {
        let space = lock(&self.namespaces)
            .entry(namespace.to_string())
            .or_insert_with(|| Arc::new(Namespace::start(self.client.clone(), namespace)))
            .clone();
        let notify = Arc::new(Notify::new());
        lock(&space.state)
            .subscribers
            .insert(trial.to_string(), notify.clone());
        Subscription {
            space,
            trial: trial.to_string(),
            notify,
        }
    }
}

/// The watches of one namespace and what they have seen.
struct Namespace {
    state: Arc<Mutex<State>>,
    tasks: Vec<AbortHandle>,
}

impl Namespace {
    fn start(client: Client, namespace: &str) -> Namespace {
        let state = Arc::new(Mutex::new(State::default()));
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
        let jobs = tokio::spawn(mirror::<Job>(
            Api::namespaced(client.clone(), namespace),
            selector.clone(),
            state.clone(),
            |state| &mut state.jobs,
            namespace.to_string(),
        ));
        let pods = tokio::spawn(mirror::<Pod>(
            Api::namespaced(client, namespace),
            selector,
            state.clone(),
            |state| &mut state.pods,
            namespace.to_string(),
        ));
        Namespace {
            state,
            tasks: vec![jobs.abort_handle(), pods.abort_handle()],
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Default)]
struct State {
    jobs: Mirror<Job>,
    pods: Mirror<Pod>,
    subscribers: HashMap<String, Arc<Notify>>,
    /// Why a watch is refused (403), while it is.
    forbidden: Option<String>,
}

impl State {
    fn wake(&self, trial: &str) {
        if let Some(notify) = self.subscribers.get(trial) {
            notify.notify_one();
        }
    }

    fn wake_all(&self) {
        for notify in self.subscribers.values() {
            notify.notify_one();
        }
    }
}

/// The objects of one kind, by trial, then by object name.
struct Mirror<K> {
    live: HashMap<String, BTreeMap<String, Arc<K>>>,
    /// Objects of a relist in progress; they replace `live` at `InitDone`.
    relist: Option<HashMap<String, BTreeMap<String, Arc<K>>>>,
    /// A first list has completed.
    synced: bool,
}

impl<K> Default for Mirror<K> {
    fn default() -> Self {
        Mirror {
            live: HashMap::new(),
            relist: None,
            synced: false,
        }
    }
}

impl<K: Resource> Mirror<K> {
    fn of(&self, trial: &str) -> Vec<Arc<K>> {
        self.live
            .get(trial)
            .map(|objects| objects.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// The trial an object belongs to: its `tuneflow.dev/trial` label, else the Job controller's
/// `job-name` label (pods), else its name (Jobs).
fn trial_of<K: Resource>(object: &K) -> String {
    let labels = object.meta().labels.as_ref();
    labels
        .and_then(|l| l.get(TRIAL_LABEL).or_else(|| l.get(JOB_NAME_LABEL)))
        .cloned()
        .unwrap_or_else(|| object.meta().name.clone().unwrap_or_default())
}

/// Keeps `pick(state)` in step with the objects of `api` that carry `selector`.
async fn mirror<K>(
    api: Api<K>,
    selector: String,
    state: Arc<Mutex<State>>,
    pick: fn(&mut State) -> &mut Mirror<K>,
    namespace: String,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let kind = K::kind(&()).to_string();
    let config = watcher::Config::default().labels(&selector);
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut failing = false;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => {
                if failing {
                    tracing::info!("watching {kind}s in namespace {namespace} again");
                    failing = false;
                    lock(&state).forbidden = None;
                }
                event
            }
            Err(e) if forbidden(&e).is_some() => {
                let message = format!(
                    "tuneflow may not list and watch {kind}s in namespace \"{namespace}\" (403 \
                     Forbidden: {}): grant the account it runs as get, list and watch on them \
                     there (see deploy/rbac.yaml)",
                    forbidden(&e).unwrap_or_default()
                );
                if !failing {
                    tracing::warn!("{message}");
                    failing = true;
                }
                let mut guard = lock(&state);
                guard.forbidden = Some(message);
                guard.wake_all();
                continue;
            }
            Err(e) => {
                // Logged once per outage; the watcher retries with backoff.
                if !failing {
                    tracing::warn!(
                        "watching {kind}s in namespace {namespace} failed, retrying: {e}"
                    );
                    failing = true;
                } else {
                    tracing::debug!("watching {kind}s in namespace {namespace}: {e}");
                }
                continue;
            }
        };
        let event = match event {
            Event::Apply(object) => Event::Apply(slim(object)),
            Event::InitApply(object) => Event::InitApply(slim(object)),
            other => other,
        };
        let mut guard = lock(&state);
        let state = &mut *guard;
        match event {
            Event::Apply(object) => {
                let trial = trial_of(&object);
                let name = object.name_any();
                pick(state)
                    .live
                    .entry(trial.clone())
                    .or_default()
                    .insert(name, Arc::new(object));
                state.wake(&trial);
            }
            Event::Delete(object) => {
                let trial = trial_of(&object);
                let name = object.name_any();
                let mirror = pick(state);
                if let Some(objects) = mirror.live.get_mut(&trial) {
                    objects.remove(&name);
                    if objects.is_empty() {
                        mirror.live.remove(&trial);
                    }
                }
                state.wake(&trial);
            }
            Event::Init => pick(state).relist = Some(HashMap::new()),
            Event::InitApply(object) => {
                let trial = trial_of(&object);
                let name = object.name_any();
                pick(state)
                    .relist
                    .get_or_insert_with(HashMap::new)
                    .entry(trial)
                    .or_default()
                    .insert(name, Arc::new(object));
            }
            Event::InitDone => {
                let mirror = pick(state);
                mirror.live = mirror.relist.take().unwrap_or_default();
                mirror.synced = true;
                state.wake_all();
            }
        }
    }
}

/// The API server's message when a watch error is a `403 Forbidden`.
fn forbidden(error: &watcher::Error) -> Option<String> {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
            if status.code == 403 =>
        {
            Some(status.message.clone())
        }
        watcher::Error::WatchError(status) if status.code == 403 => Some(status.message.clone()),
        _ => None,
    }
}

/// Drops what the executor never reads and a mirror of thousands of pods would keep for
/// nothing: the field managers' bookkeeping.
fn slim<K: Resource>(mut object: K) -> K {
    object.meta_mut().managed_fields = None;
    object
}

/// One trial's view of the shared watches; unsubscribes when dropped.
pub struct Subscription {
    space: Arc<Namespace>,
    trial: String,
    notify: Arc<Notify>,
}

/// What the watches know of a trial at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The trial's Job, if the watch has it.
    pub job: Option<Arc<Job>>,
    /// The trial's pods.
    pub pods: Vec<Arc<Pod>>,
    /// Both watches have listed the namespace at least once.
    pub synced: bool,
    /// Why a watch of the namespace is refused (RBAC), while it is.
    pub forbidden: Option<String>,
}

impl Subscription {
    /// What the watches know now.
    pub fn snapshot(&self) -> Snapshot {
        let state = lock(&self.space.state);
        let job = state
            .jobs
            .live
            .get(&self.trial)
            .and_then(|jobs| jobs.get(&self.trial))
            .cloned();
        Snapshot {
            job,
            pods: state.pods.of(&self.trial),
            synced: state.jobs.synced && state.pods.synced,
            forbidden: state.forbidden.clone(),
        }
    }

    /// Waits until something about the trial may have changed since the last call.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    /// A waker another task can use to look at the trial again.
    pub fn waker(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = lock(&self.space.state);
        if state
            .subscribers
            .get(&self.trial)
            .is_some_and(|n| Arc::ptr_eq(n, &self.notify))
        {
            state.subscribers.remove(&self.trial);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
