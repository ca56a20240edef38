//! The engine runs behind Experiment resources: one task per resource (by uid), with a
//! channel for live spec changes and a token to cancel it when the resource is deleted.
//!
//! A run that ends wakes its resource's reconciler, which reports the end once. A run that
//! ended in an error is not started again for the same `metadata.generation`: an edit (a new
//! generation) or an operator restart tries again, so a broken run cannot loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::controller::ReconcileError;
use super::resource::ExperimentResource;
use crate::engine::{Engine, NoProgress, RunRequest, SpecUpdate};
use crate::spec::ExperimentSpec;

/// How long a deleted resource's run may take to stop its trials.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// What starting a run needs.
pub struct Start<'a> {
    /// The resource's uid.
    pub uid: String,
    /// The resource.
    pub resource: &'a ExperimentResource,
    /// Its validated spec, under its store name.
    pub spec: ExperimentSpec,
    /// The document it came from.
    pub document: String,
    /// Its `metadata.generation`.
    pub generation: i64,
    /// Delete a stored experiment of the same name first.
    pub fresh: bool,
}

/// A run as the reconciler sees it.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The spec it runs with.
    pub spec: ExperimentSpec,
    /// The generation that spec came from (or the latest one refused).
    pub generation: i64,
}

struct Entry {
    refreshed: Option<std::time::Instant>,
    spec: ExperimentSpec,
    generation: i64,
    updates: watch::Sender<SpecUpdate>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    outcome: Arc<Mutex<Option<Result<(), String>>>>,
    reported: bool,
}

/// The runs of one operator.
pub struct Runs {
    entries: Mutex<HashMap<String, Entry>>,
    wake: UnboundedSender<ObjectRef<ExperimentResource>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Runs {
    /// No runs yet; a run that ends sends its resource to `wake`.
    pub fn new(wake: UnboundedSender<ObjectRef<ExperimentResource>>) -> Runs {
        Runs {
            entries: Mutex::new(HashMap::new()),
            wake,
        }
    }

    /// The run of resource `uid`, if one is still going.
    pub fn current(&self, uid: &str) -> Option<RunInfo> {
        let entries = lock(&self.entries);
        let entry = entries.get(uid)?;
        lock(&entry.outcome).is_none().then(|| RunInfo {
            spec: entry.spec.clone(),
            generation: entry.generation,
        })
    }

    /// How many runs are going.
    pub fn active(&self) -> usize {
        lock(&self.entries)
            .values()
            .filter(|e| lock(&e.outcome).is_none())
            .count()
    }

    /// Hands a new spec version to the running run of `uid`.
    pub fn update(&self, uid: &str, spec: ExperimentSpec, document: String, generation: i64) {
        if let Some(entry) = lock(&self.entries).get_mut(uid) {
            entry.spec = spec.clone();
            entry.generation = generation;
            entry.updates.send_replace(SpecUpdate { spec, document });
        }
    }

    /// `None` when the status of the run of `uid` may be refreshed now (and notes that it
    /// is), else how long until it may: at most once per `interval`.
    pub fn throttle(&self, uid: &str, interval: Duration) -> Option<Duration> {
        let mut entries = lock(&self.entries);
        let entry = entries.get_mut(uid)?;
        let now = std::time::Instant::now();
        if let Some(last) = entry.refreshed {
            let since = now.duration_since(last);
            if since < interval {
                return Some(interval - since);
            }
        }
        entry.refreshed = Some(now);
        None
    }

    /// Notes that `generation` of `uid` was refused, so it is not refused again.
    pub fn reject(&self, uid: &str, generation: i64) {
        if let Some(entry) = lock(&self.entries).get_mut(uid) {
            entry.generation = generation;
        }
    }

    /// Starts the run of a resource, unless one runs or the last one failed at this
    /// generation.
    pub fn start(&self, start: Start<'_>, context: &Context) -> Result<(), ReconcileError> {
        let mut entries = lock(&self.entries);
        if let Some(entry) = entries.get(&start.uid) {
            let outcome = lock(&entry.outcome).clone();
            match outcome {
                None => return Ok(()),
                Some(Err(_)) if entry.generation >= start.generation => return Ok(()),
                Some(_) => {}
            }
        }
        let executor = context.executors.executor_for(start.resource);
        let mut engine = Engine::new(context.store.clone(), executor, context.logs_dir.clone())
            // The operator holds the leader lease: whoever claimed the experiment before it
            // is gone.
            .with_owner_check(|_| false);
        if let Some(tracking) = &context.tracking {
            engine = engine.with_tracking(tracking.clone());
        }
        let update = SpecUpdate {
            spec: start.spec.clone(),
            document: start.document.clone(),
        };
        let (updates, receiver) = watch::channel(update);
        let request = RunRequest {
            spec: start.spec.clone(),
            document: start.document,
            base_dir: context.logs_dir.clone(),
            fresh: start.fresh,
            updates: Some(receiver),
        };
        let cancel = CancellationToken::new();
        let outcome = Arc::new(Mutex::new(None));
        let wake = self.wake.clone();
        let reference = ObjectRef::from_obj(start.resource);
        let task = {
            let cancel = cancel.clone();
            let outcome = outcome.clone();
            let name = start.spec.name.clone();
            tokio::spawn(async move {
                tracing::info!(experiment = %name, "run started");
                let result = engine.run(request, &NoProgress, cancel).await;
                match &result {
                    Ok(done) => {
                        tracing::info!(experiment = %name, state = %done.state, "run ended");
                    }
                    Err(e) => tracing::warn!(experiment = %name, "run failed: {e}"),
                }
                *lock(&outcome) = Some(result.map(|_| ()).map_err(|e| e.to_string()));
                let _ = wake.unbounded_send(reference);
            })
        };
        entries.insert(
            start.uid,
            Entry {
                refreshed: None,
                spec: start.spec,
                generation: start.generation,
                updates,
                cancel,
                task: Some(task),
                outcome,
                reported: false,
            },
        );
        Ok(())
    }

    /// The end of the run of `uid`, once: `Ok` when it ended normally.
    pub fn take_finished(&self, uid: &str) -> Option<Result<(), String>> {
        let mut entries = lock(&self.entries);
        let entry = entries.get_mut(uid)?;
        if entry.reported {
            return None;
        }
        let outcome = lock(&entry.outcome).clone()?;
        entry.reported = true;
        Some(outcome)
    }

    /// Drops every run without stopping its trials: their Jobs keep running, and the next
    /// leader follows them from the store. Used when this operator stops or loses the lease.
    pub fn detach_all(&self) {
        for entry in lock(&self.entries).values_mut() {
            if let Some(task) = entry.task.take() {
                task.abort();
            }
        }
    }

    /// Cancels the run of `uid` (its trials are stopped) and waits for it, bounded.
    pub async fn stop(&self, uid: &str) {
        let entry = lock(&self.entries).remove(uid);
        let Some(mut entry) = entry else { return };
        entry.cancel.cancel();
        if let Some(task) = entry.task.take()
            && tokio::time::timeout(STOP_LIMIT, task).await.is_err()
        {
            tracing::warn!(
                experiment = %entry.spec.name,
                "the run did not stop within {STOP_LIMIT:?}; its remaining Jobs are deleted by label"
            );
        }
    }
}
