//! Client-driven experiments: the engine's side of ask and tell.
//!
//! An experiment without a trial template has no process for the engine to start; its trials
//! are run by clients (a custom training loop, a notebook, a fleet of workers) that ask for
//! suggestions and report observations and results back. A [`Session`] is the live state of one
//! such experiment in the process serving it: the same ledger, algorithm and rules as the run
//! loop, with the trials' leases on top. Every method writes to the store before it changes the
//! in-memory view, so a call that returns `Ok` was committed, and a session loaded after a
//! restart picks up where the last one stopped.
//!
//! A session is not shared between tasks: its owner (the REST API's session registry) holds it
//! behind a mutex, so calls on one experiment are serialised and no trial is handed out twice.
//!
//! # Several servers on one store
//!
//! On a store several processes share ([`Store::is_shared`], PostgreSQL), every server keeps a
//! session for the same experiment. None of them claims it; instead each session reloads the
//! trials the others recorded before it suggests (at most every [`RELOAD_INTERVAL`]), reads a
//! trial it does not know from the store when a client names it, and reloads once no new
//! trial may start, so that whichever server finishes the last trial ends the experiment
//! ([`Session::sync`]). The store itself keeps them apart: `create_trials` enforces
//! `maxTrialCount` and `parallelTrialCount` inside its transaction and refuses taken indices,
//! and `finish_trial` refuses a trial that is final already, so the worst a race costs is a
//! retry. A server watches the leases of the trials it handed out or heard from; a trial
//! another server handed out is only expired by a server its client talks to.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tuneflow_algorithms::Algorithm;
use tuneflow_algorithms::stopping::StopDecision;

use super::ledger::Ledger;
use super::rules::{self, Reduction};
use super::stopping::{Stopper, stopped_message};
use super::{EngineError, build_algorithm, is_exhausted, owner_is_alive, record_suggestions};
use crate::spec::ExperimentSpec;
use crate::store::{
    Experiment, ExperimentState, Observation, Store, StoreError, Trial, TrialOutcome, TrialState,
    now_micros,
};

/// How long a client may hold a trial without reporting when `trialLeaseSeconds` is not set.
pub const DEFAULT_TRIAL_LEASE: Duration = Duration::from_secs(3600);

/// On a shared store, how stale a session's view may be when it suggests: the store enforces
/// the limits either way, so this only bounds how long the algorithm may miss another
/// server's results (and what reloading every trial costs per suggestion).
const RELOAD_INTERVAL: Duration = Duration::from_millis(100);

/// What an observation means for the trial that reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Go on training.
    Continue,
    /// Stop: the trial is EarlyStopped already.
    Prune,
}

/// How a client says a trial ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientOutcome {
    /// Finished; these final metrics are recorded at `step` (default: the last step reported).
    Succeeded {
        /// Final metric values.
        metrics: Vec<(String, f64)>,
        /// Where to record them.
        step: Option<i64>,
    },
    /// The client's work failed.
    Failed {
        /// Why, in the client's words.
        message: Option<String>,
    },
    /// The client stopped the trial early.
    Pruned,
}

/// The answer to a request for suggestions.
#[derive(Debug, Clone)]
pub struct Suggested {
    /// The trials handed out (Running from now on), possibly fewer than asked for.
    pub trials: Vec<Trial>,
    /// True when asking again can never give more trials.
    pub done: bool,
    /// Why fewer trials than asked for came back.
    pub reason: Option<String>,
}

/// A running trial's lease and what it reported so far.
#[derive(Debug, Clone)]
struct Lease {
    deadline: Instant,
    /// The objective metric reduced by its strategy: the value if the trial succeeds.
    objective: Reduction,
    /// The objective metric's latest value: what a trial stopped early is ranked by.
    latest: Reduction,
    /// The last step any metric was reported at.
    last_step: Option<i64>,
}

impl Lease {
    fn new(deadline: Instant, strategy: crate::spec::Strategy) -> Lease {
        Lease {
            deadline,
            objective: Reduction::new(strategy),
            latest: Reduction::new(crate::spec::Strategy::Latest),
            last_step: None,
        }
    }

    /// Takes in one observation of `metric` (`objective` names the objective metric).
    fn observe(&mut self, metric: &str, objective: &str, step: i64, value: f64) {
        if metric == objective {
            self.objective.add(step, value);
            self.latest.add(step, value);
        }
        self.last_step = self.last_step.max(Some(step));
    }
}

/// The live state of one client-driven experiment.
pub struct Session {
    experiment: Experiment,
    algorithm: Box<dyn Algorithm>,
    ledger: Ledger,
    exhausted: bool,
    positions: HashMap<String, usize>,
    leases: HashMap<usize, Lease>,
    lease: Duration,
    owner: String,
    stopper: Option<Stopper>,
    /// True on a shared store: see the module documentation.
    shared: bool,
    /// When the trials were last reloaded from a shared store.
    reloaded: Option<Instant>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("experiment", &self.experiment.name)
            .field("counts", &self.ledger.counts())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Takes over serving `experiment`: claims it for `owner` (so that no other live process
    /// hands out its trials; on a shared store it shares it instead), rebuilds the ledger from
    /// the store, gives every running trial a fresh lease and settles an experiment whose end
    /// was not recorded yet.
    pub async fn load(
        store: &dyn Store,
        experiment: Experiment,
        owner: &str,
    ) -> Result<Session, EngineError> {
        let spec = &experiment.spec;
        if spec.trial_template.is_some() {
            return Err(EngineError::Conflict(format!(
                "experiment `{}` has a trialTemplate: the server runs its trials itself, so it \
                 takes no suggestions or completions from clients",
                experiment.name
            )));
        }
        let shared = store.is_shared();
        if !shared
            && let Some(other) = store
                .claim_experiment(experiment.id, owner, owner_is_alive)
                .await?
        {
            return Err(EngineError::Busy {
                name: experiment.name.clone(),
                owner: other,
            });
        }
        let algorithm = build_algorithm(spec)?;
        let trials = store.trials(experiment.id).await?;
        let exhausted = is_exhausted(algorithm.as_ref(), trials.len());
        let lease = lease_of(spec);
        let strategy = rules::strategy_for(&spec.objective, &spec.objective.metric);
        let mut leases = HashMap::new();
        let mut positions = HashMap::with_capacity(trials.len());
        for (position, trial) in trials.iter().enumerate() {
            positions.insert(trial.name.clone(), position);
            if trial.state.is_final() {
                continue;
            }
            let mut running = Lease::new(Instant::now() + lease, strategy);
            for o in store.observations(trial.id, None).await? {
                running.observe(&o.metric, &spec.objective.metric, o.step, o.value);
            }
            leases.insert(position, running);
        }
        let stopper = Stopper::for_spec(spec, experiment.seed)?;
        if let Some(stopper) = &stopper {
            stopper.load(store, &trials).await?;
        }
        let ledger = Ledger::new(trials, spec.objective.direction);
        let mut session = Session {
            experiment,
            algorithm,
            ledger,
            exhausted,
            positions,
            leases,
            lease,
            owner: owner.to_string(),
            stopper,
            shared,
            reloaded: None,
        };
        if session.experiment.state == ExperimentState::Created
            || session.experiment.state == ExperimentState::Interrupted
        {
            session
                .set_state(store, ExperimentState::Running, None, None)
                .await?;
        }
        session.settle(store).await?;
        Ok(session)
    }

    /// The experiment as this session knows it.
    pub fn experiment(&self) -> &Experiment {
        &self.experiment
    }

    /// Gives up the claim on the experiment (when the server stops).
    pub async fn release(&self, store: &dyn Store) -> Result<(), EngineError> {
        if self.shared {
            return Ok(());
        }
        Ok(store
            .release_experiment(self.experiment.id, &self.owner)
            .await?)
    }

    /// On a shared store, takes in what other processes recorded since this session last
    /// looked: the experiment's state and spec, new trials, and trials they finished. Does
    /// nothing on a store this process has to itself.
    pub async fn sync(&mut self, store: &dyn Store) -> Result<(), EngineError> {
        if !self.shared {
            return Ok(());
        }
        self.reload(store).await?;
        self.settle(store).await
    }

    /// The reading half of [`Session::sync`], which does not settle the experiment.
    async fn reload(&mut self, store: &dyn Store) -> Result<(), EngineError> {
        let current = store
            .experiment(&self.experiment.name)
            .await?
            .filter(|e| e.id == self.experiment.id)
            .ok_or_else(|| StoreError::NotFound(self.experiment.name.clone()))?;
        self.experiment = current;
        let trials = store.trials(self.experiment.id).await?;
        let changed: Vec<Trial> = trials.into_iter().filter(|t| self.take_in(t)).collect();
        if let Some(stopper) = &self.stopper {
            stopper.load(store, &changed).await?;
        }
        self.exhausted |= is_exhausted(self.algorithm.as_ref(), self.ledger.trials().len());
        self.reloaded = Some(Instant::now());
        Ok(())
    }

    /// Takes in a trial as another process stored it: a new one joins the ledger, a known one
    /// that another process finished is finished here too. True when anything changed.
    fn take_in(&mut self, trial: &Trial) -> bool {
        let Some(&position) = self.positions.get(&trial.name) else {
            self.positions
                .insert(trial.name.clone(), self.ledger.trials().len());
            self.ledger.push(trial.clone());
            return true;
        };
        let known = self.ledger.trial(position);
        if known.state == trial.state || known.state.is_final() {
            return false;
        }
        if trial.state.is_final() {
            self.leases.remove(&position);
        }
        self.ledger.update(
            position,
            trial.state,
            trial.objective,
            trial.message.clone(),
            trial.step,
        );
        true
    }

    /// [`Session::sync`] when the last reload is not recent (see [`RELOAD_INTERVAL`]) or
    /// another process recorded trials since: a new suggestion needs the next free index.
    async fn refresh(&mut self, store: &dyn Store) -> Result<(), EngineError> {
        if !self.shared {
            return Ok(());
        }
        let recent = self
            .reloaded
            .is_some_and(|at| at.elapsed() < RELOAD_INTERVAL);
        if recent && store.trial_count(self.experiment.id).await? <= self.ledger.next_index() {
            return Ok(());
        }
        self.sync(store).await
    }

    /// The position of trial `name`. On a shared store, a trial this session does not know
    /// may have been handed out by another server: it is read from the store and taken in.
    async fn locate(&mut self, store: &dyn Store, trial: &str) -> Result<usize, EngineError> {
        if self.shared
            && !self.positions.contains_key(trial)
            && let Some(stored) = store.trial(self.experiment.id, trial).await?
        {
            self.take_in(&stored);
            if let Some(stopper) = &self.stopper {
                stopper.load(store, std::slice::from_ref(&stored)).await?;
            }
        }
        self.position(trial)
    }

    /// Settles the experiment after a trial ended. On a shared store the ledger may not know
    /// yet that other servers finished their last trials; once no new trial may start, it
    /// reloads before deciding, so that whichever server finishes last ends the experiment.
    async fn conclude(&mut self, store: &dyn Store) -> Result<(), EngineError> {
        self.settle(store).await?;
        if self.shared
            && self.experiment.state == ExperimentState::Running
            && self.limit().is_some_and(|(done, _)| done)
        {
            self.sync(store).await?;
        }
        Ok(())
    }

    /// Hands out up to `count` new trials, recorded as Running before this returns.
    pub async fn suggest(
        &mut self,
        store: &dyn Store,
        count: u32,
    ) -> Result<Suggested, EngineError> {
        self.refresh(store).await?;
        let mut trials = Vec::new();
        if let Some((created, exhausted)) = self.record(store, count).await? {
            self.exhausted |= exhausted
                || is_exhausted(
                    self.algorithm.as_ref(),
                    self.ledger.trials().len() + created.len(),
                );
            let deadline = Instant::now() + self.lease;
            let strategy = self.objective_strategy();
            for trial in created {
                let position = self.ledger.trials().len();
                self.positions.insert(trial.name.clone(), position);
                self.leases.insert(position, Lease::new(deadline, strategy));
                trials.push(trial.clone());
                self.ledger.push(trial);
            }
            if trials.is_empty() {
                // The algorithm had nothing left: the experiment may be over now.
                self.settle(store).await?;
            }
        }
        let (done, reason) = if trials.len() < count as usize {
            match self.limit() {
                Some((done, reason)) => (done, Some(reason)),
                None => (
                    false,
                    Some(format!(
                        "{} needs the results of running trials before it can suggest more; \
                         complete them and ask again",
                        self.algorithm.name()
                    )),
                ),
            }
        } else {
            (false, None)
        };
        Ok(Suggested {
            trials,
            done,
            reason,
        })
    }

    /// Records up to `count` new suggestions as Running trials: `None` when no slot is free,
    /// else the trials and whether the algorithm ran out. On a shared store, another server
    /// may take the slots or the indices first; the session then reloads and tries again.
    async fn record(
        &mut self,
        store: &dyn Store,
        count: u32,
    ) -> Result<Option<(Vec<Trial>, bool)>, EngineError> {
        const ATTEMPTS: usize = 8;
        for attempt in 1..=ATTEMPTS {
            let slots = match self.limit() {
                Some(_) => 0,
                None => rules::new_trial_slots(self.spec(), &self.ledger.counts()).min(count),
            };
            if slots == 0 {
                return Ok(None);
            }
            match record_suggestions(
                store,
                &self.experiment,
                self.algorithm.as_ref(),
                &self.ledger,
                slots,
                TrialState::Running,
            )
            .await
            {
                Ok(recorded) => return Ok(Some(recorded)),
                Err(StoreError::Conflict(why)) if self.shared && attempt < ATTEMPTS => {
                    tracing::debug!(experiment = %self.experiment.name, %why, "suggestion raced another server; reloading");
                    self.sync(store).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(None)
    }

    /// Why no new trial may start now, if so: `(done, reason)`, where `done` says that none
    /// ever will.
    fn limit(&self) -> Option<(bool, String)> {
        let spec = self.spec();
        if matches!(
            self.experiment.state,
            ExperimentState::Succeeded | ExperimentState::Failed
        ) {
            let why = self
                .experiment
                .message
                .clone()
                .or_else(|| self.experiment.reason.clone())
                .unwrap_or_default();
            return Some((
                true,
                format!("the experiment is {}: {why}", self.experiment.state),
            ));
        }
        if self.exhausted {
            return Some((
                true,
                "the search space is exhausted: every point was handed out".to_string(),
            ));
        }
        let counts = self.ledger.counts();
        if let Some(max) = spec.max_trial_count
            && counts.total() >= max
        {
            return Some((
                true,
                format!(
                    "maxTrialCount ({max}) trials were handed out; {} still running",
                    counts.active()
                ),
            ));
        }
        if counts.active() >= spec.parallel_trial_count {
            return Some((
                false,
                format!(
                    "parallelTrialCount ({}) trials are running; complete one and ask again",
                    spec.parallel_trial_count
                ),
            ));
        }
        None
    }

    /// Records observations of a running trial at `step` and renews its lease.
    pub async fn observe(
        &mut self,
        store: &dyn Store,
        trial: &str,
        step: i64,
        metrics: &[(String, f64)],
    ) -> Result<Decision, EngineError> {
        self.locate(store, trial).await?;
        let position = self.running(trial)?;
        check_metrics(metrics, step)?;
        if metrics.is_empty() {
            return Err(EngineError::InvalidInput(
                "metrics: name at least one metric and its value".to_string(),
            ));
        }
        let observations = observations_at(metrics, step);
        let trial_id = self.ledger.trial(position).id;
        store.add_observations(trial_id, &observations).await?;
        self.judge(store, position, step, metrics).await
    }

    /// The name of the trial whose store id is `trial_id`, if this experiment has it.
    pub fn trial_name(&self, trial_id: i64) -> Option<&str> {
        self.ledger
            .trials()
            .iter()
            .find(|trial| trial.id == trial_id)
            .map(|trial| trial.name.as_str())
    }

    /// Judges values of a running trial that are in the store already (logged to the trial's
    /// run through the MLflow API): renews its lease and asks the early-stopping rule, as
    /// [`Session::observe`] does once it has stored its values.
    pub async fn observed(
        &mut self,
        store: &dyn Store,
        trial: &str,
        step: i64,
        metrics: &[(String, f64)],
    ) -> Result<Decision, EngineError> {
        self.locate(store, trial).await?;
        let position = self.running(trial)?;
        self.judge(store, position, step, metrics).await
    }

    /// Renews the lease of the trial at `position` and asks the early-stopping rule about its
    /// new values at `step`; a trial the rule stops is finished as EarlyStopped.
    async fn judge(
        &mut self,
        store: &dyn Store,
        position: usize,
        step: i64,
        metrics: &[(String, f64)],
    ) -> Result<Decision, EngineError> {
        self.renew(position);
        let metric = &self.experiment.spec.objective.metric;
        if let Some(lease) = self.leases.get_mut(&position) {
            for (name, value) in metrics {
                lease.observe(name, metric, step, *value);
            }
        }
        let index = self.ledger.trial(position).index;
        let Some(stopper) = &self.stopper else {
            return Ok(Decision::Continue);
        };
        let mut changed = false;
        for (name, value) in metrics {
            changed |= stopper.record(index, name, step, *value);
        }
        if !changed || stopper.decide(index) == StopDecision::Continue {
            return Ok(Decision::Continue);
        }
        let (reached, value) = stopper
            .last(index)
            .map_or((None, None), |(s, v)| (Some(s), Some(v)));
        let outcome = TrialOutcome {
            state: TrialState::EarlyStopped,
            objective: value,
            message: Some(stopped_message(stopper.name(), reached)),
            step: reached,
        };
        self.finish(store, position, outcome, &[]).await?;
        self.conclude(store).await?;
        Ok(Decision::Prune)
    }

    /// Renews a running trial's lease.
    pub async fn heartbeat(&mut self, store: &dyn Store, trial: &str) -> Result<(), EngineError> {
        self.locate(store, trial).await?;
        let position = self.running(trial)?;
        self.renew(position);
        Ok(())
    }

    /// Starts a running trial's lease over (taking it on when another server handed it out).
    fn renew(&mut self, position: usize) {
        let deadline = Instant::now() + self.lease;
        let strategy = self.objective_strategy();
        self.leases
            .entry(position)
            .or_insert_with(|| Lease::new(deadline, strategy))
            .deadline = deadline;
    }

    /// Ends a trial as the client says. A trial that is already EarlyStopped or Killed stays
    /// as it is (the client may not have heard yet); any other final trial is a conflict.
    pub async fn complete(
        &mut self,
        store: &dyn Store,
        trial: &str,
        outcome: ClientOutcome,
    ) -> Result<Trial, EngineError> {
        let position = self.locate(store, trial).await?;
        let current = self.ledger.trial(position);
        if matches!(current.state, TrialState::EarlyStopped | TrialState::Killed) {
            return Ok(current.clone());
        }
        let position = self.running(trial)?;
        let lease = self
            .leases
            .get(&position)
            .cloned()
            .unwrap_or_else(|| Lease::new(Instant::now(), self.objective_strategy()));
        let metric = self.experiment.spec.objective.metric.clone();
        let (outcome, observations) = match outcome {
            ClientOutcome::Succeeded { metrics, step } => {
                let step = step.or(lease.last_step).unwrap_or(0);
                check_metrics(&metrics, step)?;
                let mut finished = lease;
                for (name, value) in &metrics {
                    finished.observe(name, &metric, step, *value);
                }
                let outcome = match finished.objective.value() {
                    Some(value) => TrialOutcome {
                        state: TrialState::Succeeded,
                        objective: Some(value),
                        message: Some(format!("{metric} = {value}")),
                        step: finished.latest.step(),
                    },
                    None => TrialOutcome {
                        state: TrialState::MetricsUnavailable,
                        objective: None,
                        message: Some(format!(
                            "completed without reporting the objective metric `{metric}`"
                        )),
                        step: None,
                    },
                };
                (outcome, observations_at(&metrics, step))
            }
            ClientOutcome::Failed { message } => (
                TrialOutcome {
                    state: TrialState::Failed,
                    objective: None,
                    message: Some(
                        message
                            .filter(|m| !m.trim().is_empty())
                            .unwrap_or_else(|| "the client reported a failure".to_string()),
                    ),
                    step: lease.latest.step(),
                },
                Vec::new(),
            ),
            ClientOutcome::Pruned => (
                TrialOutcome {
                    state: TrialState::EarlyStopped,
                    objective: lease.latest.value(),
                    step: lease.latest.step(),
                    message: Some(match lease.last_step {
                        Some(step) => format!("stopped early by the client at step {step}"),
                        None => "stopped early by the client".to_string(),
                    }),
                },
                Vec::new(),
            ),
        };
        if let Some(stopper) = &self.stopper {
            let index = self.ledger.trial(position).index;
            for o in &observations {
                stopper.record(index, &o.metric, o.step, o.value);
            }
        }
        self.finish(store, position, outcome, &observations).await?;
        self.conclude(store).await?;
        Ok(self.ledger.trial(position).clone())
    }

    /// Fails every running trial whose lease ran out by `now`; returns how many.
    pub async fn expire_leases(
        &mut self,
        store: &dyn Store,
        now: Instant,
    ) -> Result<usize, EngineError> {
        let mut expired: Vec<usize> = self
            .leases
            .iter()
            .filter(|(_, lease)| lease.deadline <= now)
            .map(|(&position, _)| position)
            .collect();
        expired.sort_unstable();
        let message = format!(
            "lease expired: no observation or heartbeat for {}",
            humantime::format_duration(self.lease)
        );
        for &position in &expired {
            let outcome = TrialOutcome {
                state: TrialState::Failed,
                objective: None,
                message: Some(message.clone()),
                step: self.reached(position),
            };
            self.finish(store, position, outcome, &[]).await?;
        }
        if !expired.is_empty() {
            self.conclude(store).await?;
        }
        Ok(expired.len())
    }

    /// The earliest lease deadline of a running trial, if any runs.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.leases.values().map(|lease| lease.deadline).min()
    }

    /// Writes a trial's final state, then mirrors it.
    async fn finish(
        &mut self,
        store: &dyn Store,
        position: usize,
        outcome: TrialOutcome,
        observations: &[Observation],
    ) -> Result<(), EngineError> {
        let trial_id = self.ledger.trial(position).id;
        let finished = store
            .finish_trial(trial_id, self.experiment.id, &outcome, observations)
            .await;
        if let Err(StoreError::Conflict(why)) = &finished
            && self.shared
        {
            // Another server ended it first: take in its verdict and say so.
            let why = why.clone();
            self.reload(store).await?;
            let current = self.ledger.trial(position);
            return Err(EngineError::TrialFinished {
                trial: current.name.clone(),
                state: current.state,
                detail: current.message.clone().or(Some(why)),
            });
        }
        finished?;
        self.leases.remove(&position);
        if let Some(stopper) = &self.stopper {
            stopper.finish(self.ledger.trial(position).index, outcome.state);
        }
        self.ledger.update(
            position,
            outcome.state,
            outcome.objective,
            outcome.message,
            outcome.step,
        );
        Ok(())
    }

    /// Stops the experiment on request (see [`crate::store::Store::request_stop`]): its
    /// running trials are Killed (their clients learn it at their next report) and it ends
    /// Interrupted with reason [`rules::STOPPED`]. Loading the session again resumes it.
    pub async fn stop(&mut self, store: &dyn Store) -> Result<(), EngineError> {
        if matches!(
            self.experiment.state,
            ExperimentState::Succeeded | ExperimentState::Failed
        ) {
            return Ok(());
        }
        let mut running: Vec<usize> = self.leases.keys().copied().collect();
        running.sort_unstable();
        for position in running {
            let outcome = TrialOutcome {
                state: TrialState::Killed,
                objective: None,
                message: Some("stopped: the experiment was stopped on request".to_string()),
                step: self.reached(position),
            };
            self.finish(store, position, outcome, &[]).await?;
        }
        self.set_state(
            store,
            ExperimentState::Interrupted,
            Some(rules::STOPPED),
            Some(rules::STOPPED_MESSAGE),
        )
        .await
    }

    /// Ends the experiment when a rule says it is over; when the rule makes running trials
    /// pointless (goal reached, too many failures), they are Killed first.
    async fn settle(&mut self, store: &dyn Store) -> Result<(), EngineError> {
        if self.experiment.state != ExperimentState::Running {
            return Ok(());
        }
        let best = self.ledger.best().and_then(|t| t.objective);
        let counts = self.ledger.counts();
        let Some(done) = rules::completion(self.spec(), &counts, best, self.exhausted) else {
            return Ok(());
        };
        if done.stops_running_trials() {
            let message = format!("stopped: {}", done.message(self.spec(), &counts));
            let mut running: Vec<usize> = self.leases.keys().copied().collect();
            running.sort_unstable();
            for position in running {
                let outcome = TrialOutcome {
                    state: TrialState::Killed,
                    objective: None,
                    message: Some(message.clone()),
                    step: self.reached(position),
                };
                self.finish(store, position, outcome, &[]).await?;
            }
        }
        let counts = self.ledger.counts();
        let message = done.message(self.spec(), &counts);
        self.set_state(store, done.state(), Some(done.reason()), Some(&message))
            .await
    }

    async fn set_state(
        &mut self,
        store: &dyn Store,
        state: ExperimentState,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> Result<(), EngineError> {
        store
            .set_experiment_state(self.experiment.id, state, reason, message)
            .await?;
        let now = now_micros();
        let experiment = &mut self.experiment;
        if state == ExperimentState::Running {
            experiment.started_at = Some(now);
        } else {
            experiment.completed_at = Some(now);
        }
        experiment.state = state;
        experiment.reason = reason.map(str::to_string);
        experiment.message = message.map(str::to_string);
        Ok(())
    }

    /// The last step a running trial reported its objective at.
    fn reached(&self, position: usize) -> Option<i64> {
        self.leases.get(&position).and_then(|l| l.latest.step())
    }

    fn spec(&self) -> &ExperimentSpec {
        &self.experiment.spec
    }

    fn objective_strategy(&self) -> crate::spec::Strategy {
        let objective = &self.experiment.spec.objective;
        rules::strategy_for(objective, &objective.metric)
    }

    fn position(&self, trial: &str) -> Result<usize, EngineError> {
        self.positions
            .get(trial)
            .copied()
            .ok_or_else(|| EngineError::TrialNotFound {
                experiment: self.experiment.name.clone(),
                trial: trial.to_string(),
            })
    }

    /// The position of a trial that must still be running.
    fn running(&self, trial: &str) -> Result<usize, EngineError> {
        let position = self.position(trial)?;
        let current = self.ledger.trial(position);
        if current.state.is_final() {
            return Err(EngineError::TrialFinished {
                trial: trial.to_string(),
                state: current.state,
                detail: current.message.clone(),
            });
        }
        Ok(position)
    }
}

/// The lease of a client-driven experiment's trials.
pub fn lease_of(spec: &ExperimentSpec) -> Duration {
    spec.trial_lease_seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TRIAL_LEASE)
}

/// Refuses non-finite values, bad metric names and negative steps, naming the metric.
pub fn check_metrics(metrics: &[(String, f64)], step: i64) -> Result<(), EngineError> {
    if step < 0 {
        return Err(EngineError::InvalidInput(format!(
            "step: must not be negative (got {step})"
        )));
    }
    for (name, value) in metrics {
        if let Err(e) = crate::spec::names::check_metric_name(name) {
            return Err(EngineError::InvalidInput(format!(
                "metrics: {}: {e}",
                serde_json::Value::from(name.as_str())
            )));
        }
        if !value.is_finite() {
            return Err(EngineError::InvalidInput(format!(
                "metrics.{name}: {value} is not a finite number; report a diverged trial as \
                 failed instead"
            )));
        }
    }
    Ok(())
}

/// Observations of `metrics` at `step`, stamped now.
pub fn observations_at(metrics: &[(String, f64)], step: i64) -> Vec<Observation> {
    let timestamp = now_micros();
    metrics
        .iter()
        .map(|(metric, value)| Observation {
            metric: metric.clone(),
            step,
            value: *value,
            timestamp,
        })
        .collect()
}
