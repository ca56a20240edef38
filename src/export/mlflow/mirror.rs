//! What has been sent to MLflow, and one round of sending what is new.
//!
//! A [`Mirror`] keeps, per tuneflow experiment, the MLflow experiment and parent run it maps
//! to and, per trial, its run and which of its observations, params and status MLflow has.
//! A round ([`Mirror::round`]) reads the store and sends the difference; nothing is marked
//! sent before MLflow acknowledged it, so a failed round is simply repeated later.
//!
//! The memory is rebuilt from MLflow after a restart: the first round on an experiment
//! searches its runs by the `tuneflow.*` tags and adopts them, reading the metric history of
//! runs that had not ended, so a restarted exporter sends only what is missing and never
//! creates a second run for a trial. The same search is repeated after any failure, because
//! a `runs/create` that failed in flight may still have created the run.

use std::collections::{HashMap, HashSet};

use url::Url;

use super::batch;
use super::client::{Client, ClientError, KeyValue, Metric, NewRun, Run};
use super::{Pending, Selection};
use crate::spec::ExperimentSpec;
use crate::store::tracking::{PARENT_RUN_TAG, RUN_NAME_TAG, RunStatus};
use crate::store::{Experiment, ExperimentState, Micros, Observation, Store, StoreError, Trial};

/// The tag naming the tuneflow experiment a run mirrors (on the parent and every trial run).
pub const EXPERIMENT_TAG: &str = "tuneflow.experiment";
/// The tag naming the trial a run mirrors.
pub const TRIAL_TAG: &str = "tuneflow.trial";
/// The tag telling apart two tuneflow experiments of the same name (one deleted and created
/// again with `--fresh`): the experiment's creation time in microseconds.
pub const INCARNATION_TAG: &str = "tuneflow.experiment.created";

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The store could not be read.
    #[error("cannot read the store: {0}")]
    Store(#[from] StoreError),
    /// MLflow failed.
    #[error(transparent)]
    Mlflow(#[from] ClientError),
}

impl SyncError {
    /// True when MLflow cannot be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, SyncError::Mlflow(e) if e.is_unreachable())
    }
}

/// The outcome of one round.
#[derive(Debug, Default)]
pub struct Round {
    /// What is still to send after the round.
    pub pending: Pending,
    /// The first failure, if the round did not complete.
    pub error: Option<SyncError>,
}

/// Everything the exporter has sent, by tuneflow experiment id.
pub struct Mirror {
    /// `--mlflow-uri`: where every experiment goes; otherwise each experiment's
    /// `spec.tracking.mlflow.uri`.
    uri_override: Option<Url>,
    clients: HashMap<Url, Client>,
    experiments: HashMap<i64, ExperimentMirror>,
}

impl Mirror {
    /// An empty mirror; `uri_override` sends every experiment to one server.
    pub fn new(uri_override: Option<Url>) -> Mirror {
        Mirror {
            uri_override,
            clients: HashMap::new(),
            experiments: HashMap::new(),
        }
    }

    /// The server an experiment is mirrored to, if any.
    fn target_uri(&self, spec: &ExperimentSpec) -> Option<Url> {
        self.uri_override.clone().or_else(|| {
            spec.tracking
                .mlflow_uri
                .as_deref()
                .and_then(|uri| crate::spec::tracking::mlflow_uri(uri).ok())
        })
    }

    /// Sends everything new of the selected experiments. Stops at the first server that
    /// cannot be reached; other failures are reported and the round goes on with the next
    /// experiment.
    pub async fn round(&mut self, store: &dyn Store, selection: &Selection) -> Round {
        let mut round = Round::default();
        let experiments = match selection {
            Selection::Experiment(name) => store
                .experiment(name)
                .await
                .map(|e| e.into_iter().collect()),
            Selection::All => store.experiments().await,
        };
        let experiments: Vec<Experiment> = match experiments {
            Ok(experiments) => experiments,
            Err(e) => {
                round.error = Some(e.into());
                return round;
            }
        };
        let mut unreachable: HashSet<Url> = HashSet::new();
        for experiment in &experiments {
            let Some(uri) = self.target_uri(&experiment.spec) else {
                continue;
            };
            let mirror = self.experiments.entry(experiment.id).or_default();
            if mirror.done_in == Some(experiment.state) {
                round.pending.add(&mirror.rejected());
                continue;
            }
            let client = match self.clients.get(&uri) {
                Some(client) => client.clone(),
                None => match Client::new(&uri) {
                    Ok(client) => {
                        self.clients.insert(uri.clone(), client.clone());
                        client
                    }
                    Err(e) => {
                        round.error.get_or_insert(e.into());
                        continue;
                    }
                },
            };
            let result = if unreachable.contains(&uri) {
                Err(None)
            } else {
                mirror.sync(&client, store, experiment).await.map_err(Some)
            };
            match result {
                Ok(()) => round.pending.add(&mirror.rejected()),
                Err(error) => {
                    // A failed call may have created a run: look again before creating.
                    mirror.target = None;
                    if let Some(error) = error {
                        if error.is_unreachable() {
                            unreachable.insert(uri);
                        }
                        round.error.get_or_insert(error);
                    }
                    match mirror.pending(store, experiment).await {
                        Ok(pending) => round.pending.add(&pending),
                        Err(e) => {
                            round.error.get_or_insert(e.into());
                        }
                    }
                }
            }
        }
        round
    }
}

/// The MLflow side of one experiment, once looked up.
struct Target {
    experiment_id: String,
    parent_run_id: Option<String>,
    parent_status: Option<RunStatus>,
    /// Runs found by the search and not yet matched to a trial, by trial name.
    found: HashMap<String, Run>,
}

/// What is known about one experiment's mirror.
#[derive(Default)]
struct ExperimentMirror {
    /// `None` until looked up, and again after a failure.
    target: Option<Target>,
    trials: HashMap<i64, TrialMirror>,
    /// The experiment state in which everything was sent; skipped while it stays in it.
    done_in: Option<ExperimentState>,
}

impl ExperimentMirror {
    async fn sync(
        &mut self,
        client: &Client,
        store: &dyn Store,
        experiment: &Experiment,
    ) -> Result<(), SyncError> {
        if self.target.is_none() {
            self.target = Some(Target::look_up(client, experiment).await?);
        }
        let Some(target) = self.target.as_mut() else {
            return Ok(());
        };
        let parent_run_id = match &target.parent_run_id {
            Some(id) => id.clone(),
            None => {
                let id = client
                    .create_run(&NewRun {
                        experiment_id: &target.experiment_id,
                        run_name: &experiment.name,
                        start_time: millis(experiment.started_at.unwrap_or(experiment.created_at)),
                        tags: vec![
                            KeyValue::new(RUN_NAME_TAG, &experiment.name),
                            KeyValue::new(EXPERIMENT_TAG, &experiment.name),
                            KeyValue::new(INCARNATION_TAG, experiment.created_at.to_string()),
                        ],
                    })
                    .await?;
                target.parent_run_id = Some(id.clone());
                target.parent_status = Some(RunStatus::Running);
                id
            }
        };
        // Trials are read before their observations: a trial read in a final state already
        // has all of its observations stored (they are written in one transaction).
        let trials = store.trials(experiment.id).await?;
        let mut all_done = true;
        for trial in &trials {
            if trial.state == crate::store::TrialState::Pending
                && !self.trials.contains_key(&trial.id)
            {
                // Not started: nothing to mirror yet.
                all_done = false;
                continue;
            }
            let mirror = match self.trials.get_mut(&trial.id) {
                Some(mirror) => mirror,
                None => {
                    let mirror = match target.found.remove(&trial.name) {
                        Some(run) => TrialMirror::adopt(client, run, trial).await?,
                        None => {
                            TrialMirror::create(client, target, &parent_run_id, experiment, trial)
                                .await?
                        }
                    };
                    self.trials.entry(trial.id).or_insert(mirror)
                }
            };
            mirror.sync(client, store, &experiment.spec, trial).await?;
            all_done &= mirror.done || mirror.rejected.is_some();
        }
        let status = RunStatus::of_experiment(experiment.state);
        if target.parent_status != Some(status) {
            let end_time = status
                .is_terminal()
                .then_some(experiment.completed_at)
                .flatten()
                .map(millis);
            client
                .update_run(&parent_run_id, status.as_str(), end_time)
                .await?;
            target.parent_status = Some(status);
        }
        let settled = matches!(
            experiment.state,
            ExperimentState::Succeeded | ExperimentState::Failed | ExperimentState::Interrupted
        );
        self.done_in = (settled && all_done).then_some(experiment.state);
        Ok(())
    }

    /// What is still to send, from the store and this memory alone (no MLflow call).
    async fn pending(
        &self,
        store: &dyn Store,
        experiment: &Experiment,
    ) -> Result<Pending, StoreError> {
        let mut pending = Pending::default();
        for trial in store.trials(experiment.id).await? {
            if trial.state == crate::store::TrialState::Pending {
                continue;
            }
            let mirror = self.trials.get(&trial.id);
            if mirror.is_some_and(|m| m.done && m.attempts == trial.attempts) {
                continue;
            }
            pending.trials += 1;
            let observations = store.observations(trial.id, None).await?;
            pending.observations += observations
                .iter()
                .filter(|o| mirror.is_none_or(|m| !m.sent.contains(&PointKey::of(o))))
                .count();
        }
        Ok(pending)
    }

    /// Trials MLflow refused, counted as pending.
    fn rejected(&self) -> Pending {
        let trials = self
            .trials
            .values()
            .filter(|t| t.rejected.is_some())
            .count();
        Pending {
            trials,
            observations: 0,
        }
    }
}

impl Target {
    /// Gets or creates the MLflow experiment named like the tuneflow one, and finds the runs
    /// that already mirror it.
    async fn look_up(client: &Client, experiment: &Experiment) -> Result<Target, ClientError> {
        let experiment_id = match client.experiment_id_by_name(&experiment.name).await? {
            Some(id) => id,
            None => match client.create_experiment(&experiment.name).await {
                Ok(id) => id,
                // Created meanwhile by someone else (another exporter, a user).
                Err(e) => match client.experiment_id_by_name(&experiment.name).await? {
                    Some(id) => id,
                    None => return Err(e),
                },
            },
        };
        let filter = format!(
            "tags.`{EXPERIMENT_TAG}` = '{}' and tags.`{INCARNATION_TAG}` = '{}'",
            quote(&experiment.name),
            experiment.created_at
        );
        let mut target = Target {
            experiment_id,
            parent_run_id: None,
            parent_status: None,
            found: HashMap::new(),
        };
        for run in client.search_runs(&target.experiment_id, &filter).await? {
            match run.tag(TRIAL_TAG) {
                Some(trial) => {
                    target.found.insert(trial.to_string(), run);
                }
                None if target.parent_run_id.is_none() => {
                    target.parent_status = run.info.status.as_deref().and_then(RunStatus::parse);
                    target.parent_run_id = Some(run.info.run_id);
                }
                None => {}
            }
        }
        Ok(target)
    }
}

/// One point as MLflow identifies it: metric, step, millisecond and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PointKey(String, i64, i64, u64);

impl PointKey {
    fn of(observation: &Observation) -> PointKey {
        PointKey(
            observation.metric.clone(),
            observation.step,
            millis(observation.timestamp),
            observation.value.to_bits(),
        )
    }

    fn of_metric(metric: &Metric) -> PointKey {
        PointKey(
            metric.key.clone(),
            metric.step,
            metric.timestamp,
            metric.value.to_bits(),
        )
    }
}

/// What MLflow has of one trial.
struct TrialMirror {
    run_id: String,
    /// The trial's attempts when last synced: a requeued trial runs again and is synced again.
    attempts: u32,
    /// Params the run has.
    params: HashSet<String>,
    /// Points the run has (emptied once the trial is done).
    sent: HashSet<PointKey>,
    /// The status last set.
    status: Option<RunStatus>,
    /// Final, with every point, param and the status sent.
    done: bool,
    /// MLflow refused the trial's data (a `400`): not retried, reported as pending.
    rejected: Option<String>,
}

impl TrialMirror {
    async fn create(
        client: &Client,
        target: &Target,
        parent_run_id: &str,
        experiment: &Experiment,
        trial: &Trial,
    ) -> Result<TrialMirror, ClientError> {
        let run_id = client
            .create_run(&NewRun {
                experiment_id: &target.experiment_id,
                run_name: &trial.name,
                start_time: millis(trial.started_at.unwrap_or(trial.created_at)),
                tags: vec![
                    KeyValue::new(PARENT_RUN_TAG, parent_run_id),
                    KeyValue::new(RUN_NAME_TAG, &trial.name),
                    KeyValue::new(EXPERIMENT_TAG, &experiment.name),
                    KeyValue::new(TRIAL_TAG, &trial.name),
                    KeyValue::new(INCARNATION_TAG, experiment.created_at.to_string()),
                ],
            })
            .await?;
        Ok(TrialMirror {
            run_id,
            attempts: trial.attempts,
            params: HashSet::new(),
            sent: HashSet::new(),
            status: Some(RunStatus::Running),
            done: false,
            rejected: None,
        })
    }

    /// Takes over a run a previous exporter created. A run that ended with the trial's
    /// status is complete (the status is set last); otherwise its metric history is read so
    /// that only missing points are sent.
    async fn adopt(client: &Client, run: Run, trial: &Trial) -> Result<TrialMirror, ClientError> {
        let status = run.info.status.as_deref().and_then(RunStatus::parse);
        let complete = trial.state.is_final() && status == Some(RunStatus::of_trial(trial.state));
        let mut sent = HashSet::new();
        if !complete {
            let keys: HashSet<&str> = run.data.metrics.iter().map(|m| m.key.as_str()).collect();
            for key in keys {
                for point in client.metric_history(&run.info.run_id, key).await? {
                    sent.insert(PointKey::of_metric(&point));
                }
            }
        }
        Ok(TrialMirror {
            params: run.data.params.iter().map(|p| p.key.clone()).collect(),
            run_id: run.info.run_id,
            attempts: trial.attempts,
            sent,
            status,
            done: complete,
            rejected: None,
        })
    }

    async fn sync(
        &mut self,
        client: &Client,
        store: &dyn Store,
        spec: &ExperimentSpec,
        trial: &Trial,
    ) -> Result<(), SyncError> {
        if trial.attempts != self.attempts {
            self.attempts = trial.attempts;
            self.done = false;
        }
        if self.done || self.rejected.is_some() {
            return Ok(());
        }
        let observations = store.observations(trial.id, None).await?;
        let metrics: Vec<Metric> = observations
            .iter()
            .filter(|o| !self.sent.contains(&PointKey::of(o)))
            .map(|o| Metric {
                key: o.metric.clone(),
                value: o.value,
                timestamp: millis(o.timestamp),
                step: o.step,
            })
            .collect();
        let params: Vec<KeyValue> = spec
            .space
            .parameters
            .iter()
            .zip(&trial.assignment)
            .filter(|(parameter, _)| !self.params.contains(&parameter.name))
            .map(|(parameter, value)| KeyValue::new(&parameter.name, value.to_string()))
            .collect();
        for request in batch::split(metrics, params, Vec::new()) {
            match client.log_batch(&self.run_id, &request).await {
                Ok(()) => {
                    self.sent
                        .extend(request.metrics.iter().map(PointKey::of_metric));
                    self.params
                        .extend(request.params.into_iter().map(|p| p.key));
                }
                Err(e) if !e.is_transient() => {
                    tracing::warn!(
                        trial = %trial.name,
                        "MLflow refused the trial's data, so its run stays incomplete: {e}"
                    );
                    self.rejected = Some(e.to_string());
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
        let status = RunStatus::of_trial(trial.state);
        if self.status != Some(status) {
            let end_time = status
                .is_terminal()
                .then_some(trial.completed_at)
                .flatten()
                .map(millis);
            client
                .update_run(&self.run_id, status.as_str(), end_time)
                .await?;
            self.status = Some(status);
        }
        if trial.state.is_final() {
            self.done = true;
            self.sent = HashSet::new();
        }
        Ok(())
    }
}

/// Microseconds to MLflow's milliseconds.
fn millis(micros: Micros) -> i64 {
    micros.div_euclid(1000)
}

/// A value inside single quotes of MLflow's filter syntax.
fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}
