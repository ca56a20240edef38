//! The engine: an experiment's lifecycle, the same for every front door.
//!
//! [`Engine::run`] creates or resumes an experiment, then loops: check whether the experiment
//! is over ([`rules::completion`]); fill free parallel slots, first with trials an interruption
//! left unfinished, then with new suggestions, each recorded in the store *before* it starts;
//! wait for a trial to end and record its final state. Ctrl-C (the cancellation token) kills
//! every running trial's process group, marks those trials Killed and the experiment
//! Interrupted; the next run resumes it, running the interrupted trials again so that the
//! experiment ends with exactly `maxTrialCount` trials, none lost and none repeated.

pub mod rules;
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
use rules::{Completion, Counts, StopCause};
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
}

/// Drives experiments.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    executor: Arc<dyn Executor>,
    logs_dir: PathBuf,
}

impl Engine {
    /// An engine over `store` that runs trials with `executor` and writes trial logs under
    /// `logs_dir/<experiment>/<trial>.log`.
    pub fn new(store: Arc<dyn Store>, executor: Arc<dyn Executor>, logs_dir: PathBuf) -> Engine {
        Engine {
            store,
            executor,
            logs_dir,
        }
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
        if spec
            .trial_template
            .as_ref()
            .is_none_or(|t| t.command.is_empty())
        {
            return Err(EngineError::NothingToRun(spec.name.clone()));
        }
        let experiment = self.prepare(&request).await?;
        let owner = owner_token();
        if let Some(other) = self
            .store
            .claim_experiment(experiment.id, &owner, owner_is_alive)
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
        let seed = match tuneflow_algorithms::random_state(&spec.algorithm.settings) {
            Ok(Some(seed)) => seed,
            _ => random_seed(),
        };
        Ok(self
            .store
            .create_experiment(spec, &request.document, seed)
            .await?)
    }

    async fn drive(
        &self,
        experiment: &Experiment,
        spec: Arc<ExperimentSpec>,
        request: &RunRequest,
        progress: &dyn Progress,
        cancel: CancellationToken,
    ) -> Result<Experiment, EngineError> {
        let algorithm =
            tuneflow_algorithms::build(&spec.algorithm.name, &spec.algorithm.settings, &spec.space)
                .map_err(|errors| {
                    EngineError::Internal(format!(
                        "algorithm `{}` rejected a validated spec: {}",
                        spec.algorithm.name,
                        errors
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ))
                })?;
        let mut trials = self.store.trials(experiment.id).await?;
        for trial in trials.iter_mut() {
            let interrupted = !trial.state.is_final()
                || (trial.state == TrialState::Killed
                    && trial.message.as_deref() == Some(rules::INTERRUPTED));
            if interrupted && trial.state != TrialState::Pending {
                self.store.requeue_trial(trial.id, experiment.id).await?;
                trial.state = TrialState::Pending;
                trial.message = None;
                trial.objective = None;
            }
        }
        self.store
            .set_experiment_state(experiment.id, ExperimentState::Running, None, None)
            .await?;

        let trials_cancel = CancellationToken::new();
        let mut running: JoinSet<(usize, Result<Execution, EngineError>)> = JoinSet::new();
        let mut stop_cause: Option<StopCause> = None;
        let mut exhausted = is_exhausted(algorithm.as_ref(), trials.len());
        let collector = Collector::for_spec(&spec.metrics_collector)
            .map_err(|e| EngineError::Internal(format!("metrics format does not compile: {e}")))?;
        let context = LaunchContext {
            engine: self,
            collector: &collector,
            experiment_id: experiment.id,
            spec: &spec,
            base_dir: &request.base_dir,
            cancel: &trials_cancel,
        };
        let mut failure: Option<EngineError> = None;
        let mut completion: Option<Completion> = None;

        loop {
            let counts = Counts::of(&trials);
            let status = status_of(&spec, &trials, counts);
            progress.update(&status);
            if stop_cause.is_none() && failure.is_none() {
                completion = rules::completion(
                    &spec,
                    &counts,
                    status.best.as_ref().map(|(_, v)| *v),
                    exhausted,
                );
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
                // Fill free slots: interrupted trials first, then new suggestions.
                let mut slots = spec
                    .parallel_trial_count
                    .saturating_sub(running.len() as u32);
                for position in 0..trials.len() {
                    if slots == 0 {
                        break;
                    }
                    if trials[position].state == TrialState::Pending {
                        context.launch(&mut running, &mut trials, position);
                        slots -= 1;
                    }
                }
                let counts = Counts::of(&trials);
                let new = rules::new_trial_slots(&spec, &counts).min(slots);
                if new > 0 && !exhausted {
                    match self
                        .suggest(experiment, &spec, algorithm.as_ref(), &trials, new)
                        .await
                    {
                        Ok((created, now_exhausted)) => {
                            exhausted = now_exhausted;
                            for trial in created {
                                trials.push(trial);
                                let position = trials.len() - 1;
                                context.launch(&mut running, &mut trials, position);
                            }
                        }
                        Err(e) => {
                            failure = Some(e);
                            trials_cancel.cancel();
                        }
                    }
                    if running.is_empty() && failure.is_none() {
                        continue;
                    }
                }
            }
            if running.is_empty() {
                if failure.is_some() || stop_cause.is_some() {
                    break;
                }
                if completion.is_none() {
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
                            let trial = &mut trials[position];
                            let (state, message) = rules::trial_outcome(
                                &execution.exit,
                                execution.objective,
                                &spec.objective.metric,
                                stop_cause.as_ref(),
                            );
                            let outcome = TrialOutcome {
                                state,
                                objective: execution.objective,
                                message: Some(message),
                            };
                            if let Err(e) = self
                                .store
                                .finish_trial(trial.id, experiment.id, &outcome)
                                .await
                            {
                                failure.get_or_insert(e.into());
                                trials_cancel.cancel();
                            }
                            trial.state = outcome.state;
                            trial.objective = outcome.objective;
                            trial.message = outcome.message;
                            let status = status_of(&spec, &trials, Counts::of(&trials));
                            progress.trial_finished(&trials[position], &status);
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
        let counts = Counts::of(&trials);
        match (&stop_cause, completion) {
            (Some(StopCause::Interrupted), _) => {
                self.store
                    .set_experiment_state(
                        experiment.id,
                        ExperimentState::Interrupted,
                        Some("Interrupted"),
                        Some("stopped by the user; run it again to resume"),
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

    /// Asks the algorithm for `count` assignments and records them as Pending trials.
    async fn suggest(
        &self,
        experiment: &Experiment,
        spec: &ExperimentSpec,
        algorithm: &dyn Algorithm,
        trials: &[Trial],
        count: u32,
    ) -> Result<(Vec<Trial>, bool), EngineError> {
        let history: Vec<_> = trials.iter().map(rules::history_record).collect();
        let suggestions = algorithm.suggest(experiment.seed, &history, count as usize);
        let first = trials.len() as u64;
        let new: Vec<NewTrial> = suggestions
            .assignments
            .into_iter()
            .enumerate()
            .map(|(offset, assignment)| {
                let index = first + offset as u64;
                NewTrial {
                    index,
                    name: trial_name(&spec.name, index),
                    assignment,
                }
            })
            .collect();
        let created = self.store.create_trials(experiment.id, &new).await?;
        Ok((created, suggestions.exhausted))
    }
}

/// What launching a trial needs from the run loop.
struct LaunchContext<'a> {
    engine: &'a Engine,
    collector: &'a Option<Collector>,
    experiment_id: i64,
    spec: &'a Arc<ExperimentSpec>,
    base_dir: &'a std::path::Path,
    cancel: &'a CancellationToken,
}

impl LaunchContext<'_> {
    /// Renders the trial's job and starts it on the join set.
    fn launch(
        &self,
        running: &mut JoinSet<(usize, Result<Execution, EngineError>)>,
        trials: &mut [Trial],
        position: usize,
    ) {
        let trial = &mut trials[position];
        trial.state = TrialState::Running;
        let prepared = self.job(trial);
        let store = self.engine.store.clone();
        let executor = self.engine.executor.clone();
        let spec = self.spec.clone();
        let experiment_id = self.experiment_id;
        let trial_id = trial.id;
        let cancel = self.cancel.child_token();
        let collector = self.collector.clone();
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
                    }
                    .execute()
                    .await
                }
                Err(message) => Ok(Execution {
                    exit: crate::executor::TrialExit::SpawnFailed(message),
                    objective: None,
                }),
            };
            (position, result)
        });
    }

    fn job(&self, trial: &Trial) -> Result<(TrialJob, Option<PathBuf>), String> {
        let spec = self.spec.as_ref();
        let template = spec
            .trial_template
            .as_ref()
            .ok_or_else(|| "the experiment has no trialTemplate".to_string())?;
        let rendered = spec
            .render_trial(&TrialContext {
                experiment: &spec.name,
                namespace: spec.namespace.as_deref(),
                trial_name: &trial.name,
                space: &spec.space,
                assignment: &trial.assignment,
            })
            .map_err(|e| format!("cannot render the trial template: {e}"))?;
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
            },
            metrics_file,
        ))
    }
}

/// The name of trial `index` of `experiment`.
pub fn trial_name(experiment: &str, index: u64) -> String {
    format!("{experiment}-{index:04}")
}

fn status_of(spec: &ExperimentSpec, trials: &[Trial], counts: Counts) -> Status {
    Status {
        counts,
        max_trials: spec.max_trial_count,
        best: rules::best_trial(spec, trials)
            .and_then(|t| t.objective.map(|v| (t.name.clone(), v))),
    }
}

fn is_exhausted(algorithm: &dyn Algorithm, suggested: usize) -> bool {
    algorithm
        .capacity()
        .is_some_and(|capacity| suggested as u64 >= capacity)
}

/// Checks that a stored experiment may continue under `new`: only the trial limits and the
/// trial template may change between runs.
fn check_resumable(stored: &ExperimentSpec, new: &ExperimentSpec) -> Result<(), EngineError> {
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
fn owner_token() -> String {
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
    pid.parse::<u32>()
        .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
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
