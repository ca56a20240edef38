//! What the server keeps between requests: the store, the live sessions of client-driven
//! experiments, and the runs of experiments it executes itself.
//!
//! The store stays the truth. A [`Session`] is loaded from it on first use (or at start-up)
//! and sits behind its own mutex, so the calls on one experiment are serialised while
//! different experiments proceed in parallel. Server-run experiments are [`Engine::run`] tasks
//! with a cancellation token each.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::metrics::Metrics;
use crate::engine::session::Session;
use crate::engine::{Engine, NoProgress, RunRequest};
use crate::store::{Experiment, ExperimentState, Micros, Store, now_micros};

/// How often expired trial leases are looked for.
pub const LEASE_SWEEP_INTERVAL: Duration = Duration::from_millis(500);

/// A session shared between requests.
pub type SharedSession = Arc<Mutex<Session>>;

/// An experiment the server runs with its own executor.
struct ServerRun {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// The server's state, shared by every handler.
pub struct AppState {
    /// The tracking store.
    pub store: Arc<dyn Store>,
    /// Runs experiments that have a trial template.
    pub engine: Engine,
    /// Request and engine counters for `/metrics`.
    pub metrics: Metrics,
    /// The bearer token every request must carry, if any.
    pub token: Option<String>,
    /// Where relative working directories of server-run trials resolve.
    pub base_dir: PathBuf,
    /// True for `tuneflow dashboard`: every route that would change the store is refused.
    pub read_only: bool,
    /// Parameter importance computed lately, per experiment and metric (see
    /// `api::dashboard`).
    pub importance: super::dashboard::ImportanceCache,
    owner: String,
    sessions: Mutex<HashMap<String, SharedSession>>,
    runs: std::sync::Mutex<HashMap<String, ServerRun>>,
    /// Stop requests made before this are handled already (see [`AppState::check_stops`]).
    stops_checked: std::sync::Mutex<Micros>,
}

impl AppState {
    /// A server state over `store`.
    pub fn new(
        store: Arc<dyn Store>,
        engine: Engine,
        token: Option<String>,
        base_dir: PathBuf,
    ) -> AppState {
        AppState {
            store,
            engine,
            metrics: Metrics::new(),
            token,
            base_dir,
            read_only: false,
            importance: Default::default(),
            owner: crate::engine::owner_token(),
            sessions: Mutex::new(HashMap::new()),
            runs: std::sync::Mutex::new(HashMap::new()),
            stops_checked: std::sync::Mutex::new(0),
        }
    }

    /// The same state, refusing every change (`tuneflow dashboard`).
    pub fn read_only(mut self) -> AppState {
        self.read_only = true;
        self
    }

    /// Asks whoever runs `experiment` to stop it, keeping its data: records the request in
    /// the store, where the process running it (this one, another `serve`, a `tuneflow run`,
    /// the operator) finds it within a second or so; a client-driven experiment this server
    /// serves is stopped at once.
    pub async fn stop(&self, experiment: &Experiment, origin: &str) -> Result<(), ApiError> {
        self.store
            .request_stop(experiment.id, &format!("stop requested {origin}"))
            .await?;
        self.stop_session(&experiment.name).await
    }

    /// Stops the live session of `name`, if this server serves it, and lets it go: a client
    /// that asks for trials again loads it anew, which resumes it.
    async fn stop_session(&self, name: &str) -> Result<(), ApiError> {
        let Some(session) = self.sessions.lock().await.remove(name) else {
            return Ok(());
        };
        let mut session = session.lock().await;
        session.stop(self.store.as_ref()).await?;
        session.release(self.store.as_ref()).await?;
        tracing::info!(experiment = %name, "stopped on request");
        Ok(())
    }

    /// Stops the sessions whose experiment got a stop request from another process since
    /// the last look (server-run experiments look for themselves, in the engine).
    pub async fn check_stops(&self) {
        let now = now_micros();
        let checked = *self.stops_checked.lock().unwrap_or_else(|e| e.into_inner());
        let sessions: Vec<(String, SharedSession)> = self
            .sessions
            .lock()
            .await
            .iter()
            .map(|(name, session)| (name.clone(), session.clone()))
            .collect();
        let mut failed = false;
        for (name, session) in sessions {
            let (id, since) = {
                let session = session.lock().await;
                let experiment = session.experiment();
                if experiment.state != ExperimentState::Running {
                    continue;
                }
                let started = experiment.started_at.unwrap_or(experiment.created_at);
                (experiment.id, checked.max(started))
            };
            match self.store.stop_requested(id, since).await {
                Ok(Some(_)) => {
                    if let Err(e) = self.stop_session(&name).await {
                        tracing::error!(experiment = %name, "cannot stop it: {}", e.message());
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    failed = true;
                    tracing::warn!(experiment = %name, "cannot look for stop requests: {e}");
                }
            }
        }
        if !failed {
            *self.stops_checked.lock().unwrap_or_else(|e| e.into_inner()) =
                now - crate::engine::rules::STOP_LOOKBACK;
        }
    }

    /// The stored experiment called `name`, or 404.
    pub async fn experiment(&self, name: &str) -> Result<Experiment, ApiError> {
        self.store
            .experiment(name)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no experiment named `{name}`")))
    }

    /// The live session of `name`, if it is loaded already.
    pub async fn cached_session(&self, name: &str) -> Option<SharedSession> {
        self.sessions.lock().await.get(name).cloned()
    }

    /// The live session of the client-driven experiment `name`, loading it on first use.
    pub async fn session(&self, name: &str) -> Result<SharedSession, ApiError> {
        let mut sessions = self.sessions.lock().await;
        if let Some(session) = sessions.get(name) {
            return Ok(session.clone());
        }
        let experiment = self.experiment(name).await?;
        let session = Session::load(self.store.as_ref(), experiment, &self.owner).await?;
        let session = Arc::new(Mutex::new(session));
        sessions.insert(name.to_string(), session.clone());
        Ok(session)
    }

    /// Starts running a server-run experiment (stored already) in the background.
    pub fn start_run(self: &Arc<Self>, experiment: &Experiment, document: String) {
        let cancel = CancellationToken::new();
        let name = experiment.name.clone();
        let state = Arc::clone(self);
        let request = RunRequest {
            spec: experiment.spec.clone(),
            document,
            base_dir: self.base_dir.clone(),
            fresh: false,
            updates: None,
        };
        let token = cancel.clone();
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let task = tokio::spawn(async move {
            match state.engine.run(request, &NoProgress, token).await {
                Ok(done) => tracing::info!(
                    experiment = %done.name,
                    state = %done.state,
                    "experiment finished"
                ),
                Err(e) => tracing::error!(experiment = %name, "experiment run failed: {e}"),
            }
            state
                .runs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
        });
        runs.insert(experiment.name.clone(), ServerRun { cancel, task });
    }

    /// Removes an experiment: stops its run or drops its session first, then deletes it from
    /// the store. False when it does not exist.
    pub async fn delete(&self, name: &str) -> Result<bool, ApiError> {
        let run = self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(run) = run {
            run.cancel.cancel();
            let _ = run.task.await;
        }
        let session = self.sessions.lock().await.remove(name);
        if let Some(session) = session {
            // Wait for calls in flight on it to finish before the rows go.
            drop(session.lock().await);
        }
        Ok(self.store.delete_experiment(name).await?)
    }

    /// At start-up: serves every unfinished client-driven experiment (so that its leases run)
    /// and resumes every unfinished experiment that has a trial template.
    pub async fn adopt(self: &Arc<Self>) -> Result<(), ApiError> {
        for experiment in self.store.experiments().await? {
            if matches!(
                experiment.state,
                ExperimentState::Succeeded | ExperimentState::Failed
            ) {
                continue;
            }
            if experiment.spec.trial_template.is_some() {
                let document = serde_json::to_string(&experiment.spec).unwrap_or_default();
                tracing::info!(experiment = %experiment.name, "resuming experiment");
                self.start_run(&experiment, document);
            } else if let Err(e) = self.session(&experiment.name).await {
                tracing::warn!(experiment = %experiment.name, "not serving it: {}", e.message());
            }
        }
        Ok(())
    }

    /// Fails the trials whose lease ran out, in every live session.
    pub async fn expire_leases(&self) {
        let sessions: Vec<SharedSession> = self.sessions.lock().await.values().cloned().collect();
        let now = tokio::time::Instant::now();
        for session in sessions {
            let mut session = session.lock().await;
            if session
                .next_deadline()
                .is_none_or(|deadline| deadline > now)
            {
                continue;
            }
            match session.expire_leases(self.store.as_ref(), now).await {
                Ok(0) => {}
                Ok(expired) => {
                    self.metrics.leases_expired.inc_by(expired as u64);
                    tracing::warn!(
                        experiment = %session.experiment().name,
                        "{expired} trial(s) failed: lease expired"
                    );
                }
                Err(e) => tracing::error!(
                    experiment = %session.experiment().name,
                    "cannot expire leases: {e}"
                ),
            }
        }
    }

    /// On shutdown: interrupts server runs (their trials are Killed, the experiments
    /// Interrupted, resumed at the next start) and releases the sessions' claims.
    pub async fn shutdown(&self) {
        let runs: Vec<ServerRun> = self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, run)| run)
            .collect();
        for run in &runs {
            run.cancel.cancel();
        }
        for run in runs {
            let _ = run.task.await;
        }
        let sessions: Vec<SharedSession> =
            self.sessions.lock().await.drain().map(|(_, s)| s).collect();
        for session in sessions {
            let session = session.lock().await;
            if let Err(e) = session.release(self.store.as_ref()).await {
                tracing::warn!("cannot release {}: {e}", session.experiment().name);
            }
        }
    }

    /// Whether the server runs `name` itself.
    pub fn is_running(&self, name: &str) -> bool {
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }
}
