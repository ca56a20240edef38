//! The engine: an experiment's lifecycle, the same for every front door.
//!
//! [`Engine::run`] creates or resumes an experiment, then loops: check whether the experiment
//! is over ([`rules::completion`]); fill free parallel slots, first with trials an interruption
//! left unfinished, then with new suggestions, each recorded in the store *before* it starts;
//! wait for a trial to end and record its final state. Ctrl-C (the cancellation token) kills
//! every running trial's process group, marks those trials Killed and the experiment
//! Interrupted; the next run resumes it, running the interrupted trials again so that the
//! experiment ends with exactly `maxTrialCount` trials, none lost and none repeated.

pub mod ledger;
pub mod rules;
pub mod session;
pub mod stopping;
pub mod trial;

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tuneflow_algorithms::Algorithm;

use crate::collector::Collector;
use crate::executor::{Executor, TrialJob};
use crate::spec::{ExperimentSpec, TrialContext};
use crate::store::{
    Experiment, ExperimentState, NewTrial, Store, StoreError, Trial, TrialOutcome, TrialState,
};
use ledger::Ledger;
use rules::{Completion, Counts, StopCause};
use stopping::Stopper;
use trial::{Execution, TrialRun};

/// Why the engine could not run an experiment.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The store failed; nothing after the failure was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored experiment of this name differs in a way a resume cannot reconcile.
    #[error("experiment `{name}` is already in the store with a different {what}")]
    SpecChanged {
        /// The experiment.
        name: String,
        /// What differs.
        what: String,
    },
    /// Another live process is running this experiment.
    #[error("experiment `{name}` is being run by another process ({owner})")]
    Busy {
        /// The experiment.
        name: String,
        /// Who runs it.
        owner: String,
    },
    /// The experiment has no trial template, so there is nothing to run locally.
    #[error("experiment `{0}` has no trialTemplate command to run")]
    NothingToRun(String),
    /// The executor cannot run this experiment's trials (the message says why).
    #[error("{0}")]
    CannotRun(String),
    /// No trial of this name in the experiment.
    #[error("experiment `{experiment}` has no trial named `{trial}`")]
    TrialNotFound {
        /// The experiment.
        experiment: String,
        /// The trial asked for.
        trial: String,
    },
    /// The trial is in a final state and cannot take observations or another completion.
    #[error("trial `{trial}` is already {state}{}; stop working on it", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TrialFinished {
        /// The trial.
        trial: String,
        /// Its final state.
        state: TrialState,
        /// Its message.
        detail: Option<String>,
    },
    /// The request does not fit the experiment (asking a server-run experiment for
    /// suggestions, completing a trial the server runs itself).
    #[error("{0}")]
    Conflict(String),
    /// A value in the request is not allowed; the message names it.
    #[error("{0}")]
    InvalidInput(String),
    /// An invariant did not hold (a bug); the message says which.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A snapshot of an experiment's progress, for progress displays.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Trials per state.
    pub counts: Counts,
    /// `maxTrialCount`, if set.
    pub max_trials: Option<u32>,
    /// The best trial so far: its name and objective value.
    pub best: Option<(String, f64)>,
}

/// Receives progress while an experiment runs.
pub trait Progress: Send + Sync {
    /// The experiment's counts changed.
    fn update(&self, status: &Status);
    /// A trial reached a final state.
    fn trial_finished(&self, trial: &Trial, status: &Status);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: &Status) {}
    fn trial_finished(&self, _: &Trial, _: &Status) {}
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The validated experiment.
    pub spec: ExperimentSpec,
    /// The document it came from, kept in the store.
    pub document: String,
    /// Directory that relative `workingDir`s and the default working directory resolve
    /// against (the spec file's directory).
    pub base_dir: PathBuf,
    /// Delete a stored experiment of the same name and start over.
    pub fresh: bool,
    /// Later versions of the spec (the operator's edited resource): changes to the trial
    /// limits (`maxTrialCount`, `parallelTrialCount`, `maxFailedTrialCount`) and the trial
    /// template take effect while the experiment runs; a version that changes anything else
    /// is ignored with a warning (the caller checks with [`check_resumable`] first).
    pub updates: Option<tokio::sync::watch::Receiver<SpecUpdate>>,
}

/// A new version of a running experiment's spec, with the document it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecUpdate {
    /// The validated spec.
    pub spec: ExperimentSpec,
    /// Its document, kept in the store.
    pub document: String,
}

/// Drives experiments.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    executor: Arc<dyn Executor>,
    logs_dir: PathBuf,
    tracking: Option<Arc<TrackingEndpoint>>,
    owner_alive: fn(&str) -> bool,
}

/// Where trials with the MLflow collector send their metrics: a tuneflow tracking API over
/// the engine's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingEndpoint {
    /// The server's base URL (`MLFLOW_TRACKING_URI`).
    pub uri: String,
    /// Its bearer token, if it asks for one (`MLFLOW_TRACKING_TOKEN`).
    pub token: Option<String>,
}

impl Engine {
    /// An engine over `store` that runs trials with `executor` and writes trial logs under
    /// `logs_dir/<experiment>/<trial>.log`.
    pub fn new(store: Arc<dyn Store>, executor: Arc<dyn Executor>, logs_dir: PathBuf) -> Engine {
        Engine {
            store,
            executor,
            logs_dir,
            tracking: None,
            owner_alive: owner_is_alive,
        }
    }

    /// The same engine, deciding with `is_alive` whether another runner that holds an
    /// experiment's claim still runs. The operator, which holds the leader lease, passes a
    /// function that says no: whoever ran the experiment before it is gone.
    pub fn with_owner_check(mut self, is_alive: fn(&str) -> bool) -> Engine {
        self.owner_alive = is_alive;
        self
    }

    /// The same engine, with trials of the MLflow collector logging to `endpoint`.
    pub fn with_tracking(mut self, endpoint: TrackingEndpoint) -> Engine {
        self.tracking = Some(Arc::new(endpoint));
        self
    }

    /// The directory of the trials' log files.
    pub fn logs_dir(&self) -> &std::path::Path {
        &self.logs_dir
    }

    /// The log file of a trial.
    pub fn log_path(logs_dir: &std::path::Path, experiment: &str, trial: &str) -> PathBuf {
        logs_dir.join(experiment).join(format!("{trial}.log"))
    }

    /// Runs (or resumes) an experiment until it is over or `cancel` fires; returns the
    /// experiment as stored at the end.
    pub async fn run(
        &self,
        request: RunRequest,
        progress: &dyn Progress,
        cancel: CancellationToken,
    ) -> Result<Experiment, EngineError> {
        let spec = Arc::new(request.spec.clone());
        if spec.trial_template.is_none() {
            return Err(EngineError::NothingToRun(spec.name.clone()));
        }
        self.executor.check(&spec).map_err(EngineError::CannotRun)?;
        let experiment = self.prepare(&request).await?;
        let owner = owner_token();
        if let Some(other) = self
            .store
            .claim_experiment(experiment.id, &owner, self.owner_alive)
            .await?
        {
            return Err(EngineError::Busy {
                name: spec.name.clone(),
                owner: other,
            });
        }
        let result = self
            .drive(&experiment, spec, &request, progress, cancel)
            .await;
        let released = self.store.release_experiment(experiment.id, &owner).await;
        let finished = result?;
        released?;
        Ok(finished)
    }

    /// Creates the experiment, or checks that a stored one may be resumed with this spec.
    async fn prepare(&self, request: &RunRequest) -> Result<Experiment, EngineError> {
        let spec = &request.spec;
        let stored = self.store.experiment(&spec.name).await?;
        if let Some(stored) = stored {
            if request.fresh {
                self.store.delete_experiment(&spec.name).await?;
            } else {
                check_resumable(&stored.spec, spec)?;
                if stored.spec != *spec {
                    self.store
                        .update_spec(stored.id, spec, &request.document)
                        .await?;
                }
                return Ok(Experiment {
                    spec: spec.clone(),
                    ..stored
                });
            }
        }
        Ok(create(self.store.as_ref(), spec, &request.document).await?)
    }

    async fn drive(
        &self,
        experiment: &Experiment,
        spec: Arc<ExperimentSpec>,
        request: &RunRequest,
        progress: &dyn Progress,
        cancel: CancellationToken,
    ) -> Result<Experiment, EngineError> {
        let algorithm = build_algorithm(&spec)?;
        let mut experiment = experiment.clone();
        let mut spec = spec;
        let mut updates = request.updates.clone();
        let mut stored = self.store.trials(experiment.id).await?;
        let mut reattach = Vec::new();
        for (position, trial) in stored.iter_mut().enumerate() {
            if self.reclaim(&experiment, trial).await? {
                reattach.push(position);
            }
        }
        let stopper = match Stopper::for_spec(&spec, experiment.seed)? {
            Some(stopper) => {
                stopper.load(self.store.as_ref(), &stored).await?;
                Some(Arc::new(stopper))
            }
            None => None,
        };
        let mut ledger = Ledger::new(stored, spec.objective.direction);
        self.store
            .set_experiment_state(experiment.id, ExperimentState::Running, None, None)
            .await?;

        let trials_cancel = CancellationToken::new();
        let mut running: JoinSet<(usize, Result<Execution, EngineError>)> = JoinSet::new();
        let mut stop_cause: Option<StopCause> = None;
        // Stop requests (`tuneflow stop`, the dashboard) made since this run started.
        let run_started = crate::store::now_micros();
        let mut stop_checked = run_started;
        let mut stop_requested = false;
        let mut stop_poll = tokio::time::interval(rules::STOP_POLL);
        stop_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut exhausted = is_exhausted(algorithm.as_ref(), ledger.trials().len());
        let collector = Collector::for_spec(&spec.metrics_collector)
            .map_err(|e| EngineError::Internal(format!("metrics format does not compile: {e}")))?;
        let mut context = LaunchContext {
            engine: self,
            collector: &collector,
            experiment_id: experiment.id,
            spec: spec.clone(),
            base_dir: &request.base_dir,
            cancel: &trials_cancel,
            stopper: stopper.as_ref(),
        };
        let mut failure: Option<EngineError> = None;
        let mut completion: Option<Completion> = None;
        for position in reattach {
            tracing::info!(trial = %ledger.trial(position).name, "following a trial the previous run left running");
            context.launch(&mut running, ledger.trial(position), position, true);
        }

        loop {
            let counts = ledger.counts();
            let was_exhausted = exhausted;
            progress.update(&ledger.status(&spec));
            if stop_cause.is_none() && failure.is_none() {
                let best = ledger.best().and_then(|t| t.objective);
                completion = rules::completion(&spec, &counts, best, exhausted);
                if let Some(done) = completion {
                    if !done.stops_running_trials() && !running.is_empty() {
                        // Wait for the running trials; they still count.
                    } else {
                        if !running.is_empty() {
                            stop_cause =
                                Some(StopCause::ExperimentFinished(done.message(&spec, &counts)));
                            trials_cancel.cancel();
                        }
                        if running.is_empty() {
                            break;
                        }
                    }
                }
            }
            if stop_cause.is_none() && failure.is_none() && completion.is_none() {
                // Fill free slots: trials an interruption left unfinished first, then new
                // suggestions, each recorded as Pending before it starts.
                context.start_pending(&mut running, &mut ledger);
                let new = rules::new_trial_slots(&spec, &ledger.counts());
                if new > 0 && !exhausted {
                    match record_suggestions(
                        self.store.as_ref(),
                        &experiment,
                        algorithm.as_ref(),
                        &ledger,
                        new,
                        TrialState::Pending,
                    )
                    .await
                    {
                        Ok((created, now_exhausted)) => {
                            exhausted = now_exhausted;
                            created.into_iter().for_each(|trial| ledger.push(trial));
                            context.start_pending(&mut running, &mut ledger);
                        }
                        Err(e) => {
                            failure = Some(e.into());
                            trials_cancel.cancel();
                        }
                    }
                }
            }
            if running.is_empty() {
                if failure.is_some() || stop_cause.is_some() {
                    break;
                }
                if completion.is_none() && ledger.counts() == counts && exhausted == was_exhausted {
                    // Nothing runs and nothing can start: only possible if the rules disagree.
                    return Err(EngineError::Internal(format!(
                        "experiment `{}` cannot make progress: no trial runs, none may start, and it is not complete",
                        spec.name
                    )));
                }
                continue;
            }
            tokio::select! {
                joined = running.join_next() => {
                    let Some(joined) = joined else { continue };
                    let (position, execution) = joined.map_err(|e| {
                        EngineError::Internal(format!("a trial task panicked: {e}"))
                    })?;
                    match execution {
                        Ok(execution) => {
                            let index = ledger.trial(position).index;
                            let outcome = match stopper.as_deref() {
                                Some(stopper) if execution.pruned => {
                                    let last = stopper.last(index);
                                    TrialOutcome {
                                        state: TrialState::EarlyStopped,
                                        objective: last.map(|(_, v)| v),
                                        message: Some(stopping::stopped_message(
                                            stopper.name(),
                                            last.map(|(s, _)| s),
                                        )),
                                        step: last.map(|(s, _)| s),
                                    }
                                }
                                _ => {
                                    let (state, message) = rules::trial_outcome(
                                        &execution.exit,
                                        execution.objective,
                                        &spec.objective.metric,
                                        stop_cause.as_ref(),
                                    );
                                    TrialOutcome {
                                        state,
                                        objective: execution.objective,
                                        message: Some(rules::explain(
                                            state,
                                            message,
                                            &execution.diagnosis,
                                        )),
                                        step: execution.step,
                                    }
                                }
                            };
                            if let Some(stopper) = &stopper {
                                stopper.finish(index, outcome.state);
                            }
                            let trial_id = ledger.trial(position).id;
                            if let Err(e) = self
                                .store
                                .finish_trial(trial_id, experiment.id, &outcome, &[])
                                .await
                            {
                                failure.get_or_insert(e.into());
                                trials_cancel.cancel();
                            }
                            ledger.update(
                                position,
                                outcome.state,
                                outcome.objective,
                                outcome.message,
                                outcome.step,
                            );
                            progress.trial_finished(ledger.trial(position), &ledger.status(&spec));
                        }
                        Err(e) => {
                            failure.get_or_insert(e);
                            trials_cancel.cancel();
                        }
                    }
                }
                () = cancel.cancelled(), if stop_cause.is_none() => {
                    stop_cause = Some(StopCause::Interrupted);
                    trials_cancel.cancel();
                }
                _ = stop_poll.tick(), if stop_cause.is_none() => {
                    let now = crate::store::now_micros();
                    match self.store.stop_requested(experiment.id, stop_checked).await {
                        Ok(Some(_)) => {
                            tracing::info!(experiment = %spec.name, "stopping on request");
                            stop_requested = true;
                            stop_cause = Some(StopCause::Interrupted);
                            trials_cancel.cancel();
                        }
                        Ok(None) => {
                            stop_checked = (now - rules::STOP_LOOKBACK).max(run_started);
                        }
                        Err(e) => tracing::warn!(
                            experiment = %spec.name,
                            "cannot look for stop requests: {e}"
                        ),
                    }
                }
                update = next_update(&mut updates), if updates.is_some() => {
                    let Some(update) = update else {
                        updates = None;
                        continue;
                    };
                    if let Err(e) = check_update(&spec, &update.spec) {
                        tracing::warn!(experiment = %spec.name, "ignoring a spec change: {e}");
                    } else if *spec != update.spec {
                        if let Err(e) = self
                            .store
                            .update_spec(experiment.id, &update.spec, &update.document)
                            .await
                        {
                            failure.get_or_insert(e.into());
                            trials_cancel.cancel();
                            continue;
                        }
                        tracing::info!(
                            experiment = %spec.name,
                            max_trial_count = ?update.spec.max_trial_count,
                            parallel_trial_count = update.spec.parallel_trial_count,
                            "the experiment's spec changed"
                        );
                        spec = Arc::new(update.spec);
                        experiment.spec = (*spec).clone();
                        context.spec = spec.clone();
                    }
                }
            }
        }

        if let Some(e) = failure {
            let _ = self
                .store
                .set_experiment_state(
                    experiment.id,
                    ExperimentState::Interrupted,
                    Some("StoreError"),
                    Some(&e.to_string()),
                )
                .await;
            return Err(e);
        }
        let counts = ledger.counts();
        match (&stop_cause, completion) {
            (Some(StopCause::Interrupted), _) => {
                let (reason, message) = if stop_requested {
                    (rules::STOPPED, rules::STOPPED_MESSAGE)
                } else {
                    ("Interrupted", "stopped by the user; run it again to resume")
                };
                self.store
                    .set_experiment_state(
                        experiment.id,
                        ExperimentState::Interrupted,
                        Some(reason),
                        Some(message),
                    )
                    .await?;
            }
            (_, Some(done)) => {
                self.store
                    .set_experiment_state(
                        experiment.id,
                        done.state(),
                        Some(done.reason()),
                        Some(&done.message(&spec, &counts)),
                    )
                    .await?;
            }
            (_, None) => {
                return Err(EngineError::Internal(
                    "the run loop ended without a reason".to_string(),
                ));
            }
        }
        self.store
            .experiment(&spec.name)
            .await?
            .ok_or_else(|| StoreError::NotFound(spec.name.clone()).into())
    }

    /// Puts a trial that a crash or an interruption left unfinished back in the queue,
    /// first stopping whatever of it still runs from the crashed run. Returns true, and
    /// changes nothing, for a trial left Running that the executor can follow again (see
    /// [`Executor::reattaches`]).
    async fn reclaim(
        &self,
        experiment: &Experiment,
        trial: &mut Trial,
    ) -> Result<bool, EngineError> {
        let interrupted = !trial.state.is_final()
            || (trial.state == TrialState::Killed
                && trial.message.as_deref() == Some(rules::INTERRUPTED));
        if !interrupted || trial.state == TrialState::Pending {
            return Ok(false);
        }
        if trial.state == TrialState::Running
            && trial.handle.is_some()
            && self.executor.reattaches()
        {
            return Ok(true);
        }
        if let Some(handle) = &trial.handle {
            let stopped = self
                .executor
                .stop_orphan(&experiment.name, &trial.name, handle)
                .await;
            if stopped > 0 {
                tracing::warn!(
                    trial = %trial.name,
                    "stopped {stopped} process(es) left running by an earlier run"
                );
            }
        }
        self.store.requeue_trial(trial.id, experiment.id).await?;
        trial.state = TrialState::Pending;
        trial.message = None;
        trial.objective = None;
        trial.handle = None;
        Ok(false)
    }
}

/// The next spec version from `updates`, or `None` once its sender is gone.
async fn next_update(
    updates: &mut Option<tokio::sync::watch::Receiver<SpecUpdate>>,
) -> Option<SpecUpdate> {
    let receiver = updates.as_mut()?;
    receiver.changed().await.ok()?;
    Some(receiver.borrow_and_update().clone())
}

/// Asks the algorithm for `count` assignments and records them as trials in `first_state`
/// (Pending for trials the engine starts, Running for trials handed to a client). Returns the
/// recorded trials and whether the algorithm has nothing more to suggest.
///
/// On a shared store another server may take the next index between this process's last look
/// and its insert; the same suggestions are then numbered from the store's count and recorded
/// again (a few times at most), rather than asking the algorithm anew while the other server
/// races ahead. A refusal for any other reason (a full cap) is returned.
async fn record_suggestions(
    store: &dyn Store,
    experiment: &Experiment,
    algorithm: &dyn Algorithm,
    ledger: &Ledger,
    count: u32,
    first_state: TrialState,
) -> Result<(Vec<Trial>, bool), StoreError> {
    const RENUMBERINGS: usize = 16;
    let suggestions = algorithm.suggest(experiment.seed, ledger.history(), count as usize);
    if suggestions.assignments.is_empty() {
        return Ok((Vec::new(), suggestions.exhausted));
    }
    let mut first = ledger.next_index();
    let mut attempt = 0;
    loop {
        let new: Vec<NewTrial> = suggestions
            .assignments
            .iter()
            .enumerate()
            .map(|(offset, assignment)| {
                let index = first + offset as u64;
                NewTrial {
                    index,
                    name: trial_name(&experiment.name, index),
                    assignment: assignment.clone(),
                    state: first_state,
                }
            })
            .collect();
        match store
            .create_trials(experiment.id, &experiment.spec, &new)
            .await
        {
            Ok(created) => return Ok((created, suggestions.exhausted)),
            Err(StoreError::Conflict(why)) if store.is_shared() && attempt < RENUMBERINGS => {
                let stored = store.trial_count(experiment.id).await?;
                if stored == first {
                    // The index was free: a cap refused them.
                    return Err(StoreError::Conflict(why));
                }
                first = stored;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Records a new experiment, with its seed (`random_state`, or drawn from the system's
/// randomness when not set). Fails with [`StoreError::AlreadyExists`] if the name is taken.
pub async fn create(
    store: &dyn Store,
    spec: &ExperimentSpec,
    document: &str,
) -> Result<Experiment, StoreError> {
    let seed = match tuneflow_algorithms::random_state(&spec.algorithm.settings) {
        Ok(Some(seed)) => seed,
        _ => random_seed(),
    };
    store.create_experiment(spec, document, seed).await
}

/// What launching a trial needs from the run loop.
struct LaunchContext<'a> {
    engine: &'a Engine,
    collector: &'a Option<Collector>,
    experiment_id: i64,
    spec: Arc<ExperimentSpec>,
    base_dir: &'a std::path::Path,
    cancel: &'a CancellationToken,
    stopper: Option<&'a Arc<Stopper>>,
}

impl LaunchContext<'_> {
    /// Starts queued trials while parallel slots are free.
    fn start_pending(
        &self,
        running: &mut JoinSet<(usize, Result<Execution, EngineError>)>,
        ledger: &mut Ledger,
    ) {
        while (running.len() as u32) < self.spec.parallel_trial_count {
            let Some(position) = ledger.next_pending() else {
                break;
            };
            ledger.update(position, TrialState::Running, None, None, None);
            self.launch(running, ledger.trial(position), position, false);
        }
    }

    /// Renders the trial's job and starts it on the join set; `resume` follows a trial the
    /// previous run left running.
    fn launch(
        &self,
        running: &mut JoinSet<(usize, Result<Execution, EngineError>)>,
        trial: &Trial,
        position: usize,
        resume: bool,
    ) {
        let prepared = self.job(trial, resume);
        let store = self.engine.store.clone();
        let executor = self.engine.executor.clone();
        let spec = self.spec.clone();
        let experiment_id = self.experiment_id;
        let trial_id = trial.id;
        let cancel = self.cancel.child_token();
        let collector = self.collector.clone();
        let stopping = self.stopper.map(|s| (Arc::clone(s), trial.index));
        let tracking = self.engine.tracking.clone();
        running.spawn(async move {
            let result = match prepared {
                Ok((job, metrics_file)) => {
                    TrialRun {
                        store,
                        executor,
                        spec,
                        experiment_id,
                        trial_id,
                        job,
                        metrics_file,
                        collector,
                        cancel,
                        stopping,
                        tracking,
                    }
                    .execute()
                    .await
                }
                Err(message) => Ok(Execution::not_started(message)),
            };
            (position, result)
        });
    }

    fn job(&self, trial: &Trial, resume: bool) -> Result<(TrialJob, Option<PathBuf>), String> {
        let spec = self.spec.as_ref();
        let template = spec
            .trial_template
            .as_ref()
            .ok_or_else(|| "the experiment has no trialTemplate".to_string())?;
        let context = TrialContext {
            experiment: &spec.name,
            namespace: spec.namespace.as_deref(),
            trial_name: &trial.name,
            space: &spec.space,
            assignment: &trial.assignment,
        };
        let rendered = spec
            .render_trial(&context)
            .map_err(|e| format!("cannot render the trial template: {e}"))?;
        let manifest = template
            .render_trial_spec(&context)
            .map_err(|e| format!("cannot render the trial template's trialSpec: {e}"))?;
        let working_dir = match &template.working_dir {
            Some(dir) => self.base_dir.join(dir),
            None => self.base_dir.to_path_buf(),
        };
        let metrics_file = rendered.metrics_file.map(|f| working_dir.join(f));
        let mut env = rendered.env;
        env.push((
            "TUNEFLOW_PARAMETERS".to_string(),
            serde_json::Value::Object(crate::summary::parameters_of(spec, &trial.assignment))
                .to_string(),
        ));
        env.push(("TUNEFLOW_TRIAL_INDEX".to_string(), trial.index.to_string()));
        Ok((
            TrialJob {
                experiment: spec.name.clone(),
                trial_name: trial.name.clone(),
                command: rendered.command,
                env,
                working_dir,
                timeout: template.timeout,
                log_path: Engine::log_path(&self.engine.logs_dir, &spec.name, &trial.name),
                index: trial.index,
                namespace: spec.namespace.clone(),
                template: Arc::new(template.clone()),
                manifest,
                resume,
            },
            metrics_file,
        ))
    }
}

/// The name of trial `index` of `experiment`.
pub fn trial_name(experiment: &str, index: u64) -> String {
    format!("{experiment}-{index:04}")
}

/// The experiment's search algorithm (the spec was validated against it already).
fn build_algorithm(spec: &ExperimentSpec) -> Result<Box<dyn Algorithm>, EngineError> {
    tuneflow_algorithms::build(&spec.algorithm.name, &spec.algorithm.settings, &spec.space).map_err(
        |errors| {
            EngineError::Internal(format!(
                "algorithm `{}` rejected a validated spec: {}",
                spec.algorithm.name,
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        },
    )
}

fn is_exhausted(algorithm: &dyn Algorithm, suggested: usize) -> bool {
    algorithm
        .capacity()
        .is_some_and(|capacity| suggested as u64 >= capacity)
}

/// Checks that a running experiment may take `new` as its spec: the name stays, and what
/// [`check_resumable`] allows may change.
fn check_update(running: &ExperimentSpec, new: &ExperimentSpec) -> Result<(), EngineError> {
    if running.name != new.name {
        return Err(EngineError::SpecChanged {
            name: running.name.clone(),
            what: format!("name (now `{}`)", new.name),
        });
    }
    check_resumable(running, new)
}

/// Checks that a stored experiment may continue under `new`: only the trial limits and the
/// trial template may change between runs.
pub fn check_resumable(stored: &ExperimentSpec, new: &ExperimentSpec) -> Result<(), EngineError> {
    let differs = |what: &str| EngineError::SpecChanged {
        name: new.name.clone(),
        what: what.to_string(),
    };
    if stored.space != new.space {
        return Err(differs("search space (spec.parameters)"));
    }
    if stored.algorithm != new.algorithm {
        return Err(differs("algorithm (spec.algorithm)"));
    }
    if stored.objective != new.objective {
        return Err(differs("objective (spec.objective)"));
    }
    Ok(())
}

/// Identifies this process as the runner of an experiment: `host:pid`.
pub fn owner_token() -> String {
    format!("{}:{}", host_name(), std::process::id())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Whether the process named by an owner token still runs (tokens of other hosts are
/// assumed alive).
fn owner_is_alive(owner: &str) -> bool {
    let Some((host, pid)) = owner.rsplit_once(':') else {
        return false;
    };
    if host != host_name() {
        return true;
    }
    pid.parse::<u32>().is_ok_and(process_runs)
}

/// True when process `pid` exists and is not a zombie: a killed server that its parent has
/// not reaped yet still has a `/proc` entry, but holds nothing any more (reliability probe).
fn process_runs(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold any
        // character: read it after the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !matches!(rest.trim_start().chars().next(), Some('Z' | 'X'))),
        Err(_) => false,
    }
}

/// The most bytes read from the end of a log file for its last lines.
pub const LOG_TAIL_BYTES: u64 = 4 * 1024 * 1024;

/// The last `lines` lines of a trial's log file at `path` (see [`Engine::log_path`]), reading at most [`LOG_TAIL_BYTES`] from its
/// end, and whether there were more. Invalid UTF-8 is replaced; the first line read from the
/// middle of a file is dropped, since it is most likely cut.
///
/// # Errors
///
/// Reading the file failed (`NotFound` when the trial has no log).
pub fn log_tail(path: &std::path::Path, lines: usize) -> std::io::Result<(Vec<String>, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let start = size.saturating_sub(LOG_TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((size - start) as usize);
    file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut all: Vec<&str> = text.lines().collect();
    if start > 0 && !all.is_empty() {
        // The first line read is most likely cut.
        all.remove(0);
    }
    let truncated = start > 0 || all.len() > lines;
    let first = all.len().saturating_sub(lines);
    Ok((
        all[first..].iter().map(|l| (*l).to_string()).collect(),
        truncated,
    ))
}

/// A seed from the operating system's randomness (through the standard library's hasher
/// keys), for experiments without `random_state`.
fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish() >> 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_the_last_lines() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.log");
        let text: String = (0..10).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).expect("write");
        let (lines, truncated) = log_tail(&path, 3).expect("tail");
        assert_eq!(lines, vec!["line 7", "line 8", "line 9"]);
        assert!(truncated);
        let (lines, truncated) = log_tail(&path, 50).expect("tail");
        assert_eq!(lines.len(), 10);
        assert!(!truncated);
        assert_eq!(
            log_tail(&dir.path().join("missing.log"), 3)
                .expect_err("missing")
                .kind(),
            std::io::ErrorKind::NotFound
        );
    }

    /// Regression (reliability probe): a killed but unreaped server kept its claim on an
    /// experiment, because its zombie still had a `/proc` entry.
    #[test]
    fn a_zombie_owner_is_dead() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        // Not waited for: once it exits it is a zombie until reaped.
        let owner = format!("{}:{pid}", host_name());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while owner_is_alive(&owner) {
            assert!(
                std::time::Instant::now() < deadline,
                "a zombie still counts as alive"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the zombie is still there, unreaped"
        );
        child.wait().expect("reap");
        assert!(owner_is_alive(&format!(
            "{}:{}",
            host_name(),
            std::process::id()
        )));
        assert!(!owner_is_alive("no-colon"));
    }
}
