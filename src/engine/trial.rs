//! Running one trial: the executor's output goes through the collector into the store while
//! the process runs, in batches; at the end the objective is computed from what the store
//! holds. The engine decides the trial's final state from the returned [`Execution`].
//!
//! With the Push and MLflow collectors the trial writes its observations into the store itself
//! (through the REST or the MLflow tracking API, possibly served by another process); the
//! early-stopping rule then learns of them by reading the store at the flush pace.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use tuneflow_algorithms::stopping::StopDecision;

use super::rules;
use super::stopping::Stopper;
use super::{EngineError, TrackingEndpoint};
use crate::collector::Collector;
use crate::collector::tail::FileTail;
use crate::executor::{Executor, ExecutorEvent, TrialExit, TrialJob};
use crate::spec::{CollectorKind, ExperimentSpec};
use crate::store::{Observation, Store};

/// Observations are written when this many are buffered...
const FLUSH_COUNT: usize = 512;
/// ...or this often, whichever comes first; the metrics file is polled at the same pace.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// What a finished trial run produced.
#[derive(Debug)]
pub struct Execution {
    /// How the process ended.
    pub exit: TrialExit,
    /// The objective value per the metric strategy, if the metric was reported.
    pub objective: Option<f64>,
    /// The early-stopping rule stopped it.
    pub pruned: bool,
    /// The last step the objective metric was reported at.
    pub step: Option<i64>,
    /// What a person needs to see why it failed: the end of its output, the metrics it did
    /// report, where its log is.
    pub diagnosis: Diagnosis,
}

/// The evidence a failed or metric-less trial's message quotes (see
/// [`rules::explain`](super::rules::explain)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnosis {
    /// Its last lines of output (stdout and stderr as written), at most
    /// [`OUTPUT_TAIL_LINES`], each cut to [`OUTPUT_TAIL_CHARS`].
    pub output_tail: Vec<String>,
    /// The metric names it reported, sorted (at most [`METRICS_SEEN`]).
    pub metrics_seen: Vec<String>,
    /// Its log file, when it has one.
    pub log_path: Option<PathBuf>,
}

/// How many of a trial's last output lines its failure message quotes.
pub const OUTPUT_TAIL_LINES: usize = 5;

/// How many characters of each such line.
pub const OUTPUT_TAIL_CHARS: usize = 200;

/// How many reported metric names a MetricsUnavailable message lists.
pub const METRICS_SEEN: usize = 10;

impl Diagnosis {
    /// Keeps `line` as the newest of the output's last lines.
    fn push_line(&mut self, line: &str) {
        if self.output_tail.len() == OUTPUT_TAIL_LINES {
            self.output_tail.remove(0);
        }
        let mut kept: String = line.chars().take(OUTPUT_TAIL_CHARS).collect();
        if kept.len() < line.len() {
            kept.push('…');
        }
        self.output_tail.push(kept);
    }

    /// Notes the metric names of `observations`.
    fn saw(&mut self, observations: &[Observation]) {
        for o in observations {
            if self.metrics_seen.len() < METRICS_SEEN && !self.metrics_seen.contains(&o.metric) {
                self.metrics_seen.push(o.metric.clone());
            }
        }
    }
}

impl Execution {
    /// A trial that could not start, for `message`.
    pub fn not_started(message: String) -> Execution {
        Execution {
            exit: TrialExit::SpawnFailed(message),
            objective: None,
            pruned: false,
            step: None,
            diagnosis: Diagnosis::default(),
        }
    }
}

/// The environment that points MLflow's client in a trial at the trial's own run, or why
/// there is none.
async fn mlflow_env(
    store: &dyn Store,
    trial_id: i64,
    tracking: Option<&TrackingEndpoint>,
) -> Result<Result<Vec<(String, String)>, String>, EngineError> {
    let Some(tracking) = tracking else {
        return Ok(Err(
            "the MLflow collector needs tuneflow's tracking API, which this \
                       process does not serve; run the experiment with `tuneflow run` or \
                       `tuneflow serve`"
                .to_string(),
        ));
    };
    let Some(run_id) = store.trial_run_id(trial_id).await? else {
        return Ok(Err("the trial has no MLflow run in the store".to_string()));
    };
    let mut env = vec![
        ("MLFLOW_TRACKING_URI".to_string(), tracking.uri.clone()),
        ("MLFLOW_RUN_ID".to_string(), run_id),
    ];
    if let Some(token) = &tracking.token {
        env.push(("MLFLOW_TRACKING_TOKEN".to_string(), token.clone()));
    }
    Ok(Ok(env))
}

/// The observations a trial wrote into the store itself, and which of them the
/// early-stopping rule has seen.
struct StoredObservations {
    enabled: bool,
    seen: std::collections::HashSet<(i64, i64, u64)>,
}

impl StoredObservations {
    fn new(enabled: bool) -> StoredObservations {
        StoredObservations {
            enabled,
            seen: std::collections::HashSet::new(),
        }
    }

    /// The observations of `all` not seen before (a client may log out of step order).
    fn fresh(&mut self, all: Vec<Observation>) -> Vec<Observation> {
        all.into_iter()
            .filter(|o| self.seen.insert((o.step, o.timestamp, o.value.to_bits())))
            .collect()
    }
}

/// The observations a re-attached trial stored before its runner stopped: replaying its
/// output from the start produces them again (same metric, step and value), and each is
/// skipped once.
#[derive(Default)]
struct Replay {
    known: std::collections::HashMap<(String, i64, u64), usize>,
}

impl Replay {
    fn of(stored: Vec<Observation>) -> Replay {
        let mut known = std::collections::HashMap::new();
        for o in stored {
            *known
                .entry((o.metric, o.step, o.value.to_bits()))
                .or_insert(0) += 1;
        }
        Replay { known }
    }

    /// Drops from `buffer[from..]` the observations already stored.
    fn skip_known(&mut self, buffer: &mut Vec<Observation>, from: usize) {
        if self.known.is_empty() {
            return;
        }
        let mut position = from;
        while position < buffer.len() {
            let o = &buffer[position];
            let key = (o.metric.clone(), o.step, o.value.to_bits());
            match self.known.get_mut(&key) {
                Some(count) => {
                    *count -= 1;
                    if *count == 0 {
                        self.known.remove(&key);
                    }
                    buffer.remove(position);
                }
                None => position += 1,
            }
        }
    }
}

/// One trial to run.
pub struct TrialRun {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The executor.
    pub executor: Arc<dyn Executor>,
    /// The experiment.
    pub spec: Arc<ExperimentSpec>,
    /// Store id of the experiment.
    pub experiment_id: i64,
    /// Store id of the trial.
    pub trial_id: i64,
    /// The rendered job.
    pub job: TrialJob,
    /// Metrics file to follow (File collector), resolved against the working directory.
    pub metrics_file: Option<PathBuf>,
    /// The experiment's collector (fresh step counters), `None` when nothing is parsed.
    pub collector: Option<Collector>,
    /// Stops the trial.
    pub cancel: CancellationToken,
    /// The experiment's early-stopping rule and this trial's index, when it has one.
    pub stopping: Option<(Arc<Stopper>, u64)>,
    /// The tracking API trials of the MLflow collector log to.
    pub tracking: Option<Arc<TrackingEndpoint>>,
}

impl TrialRun {
    /// Marks the trial Running, runs it, collects its metrics and computes its objective.
    pub async fn execute(self) -> Result<Execution, EngineError> {
        let TrialRun {
            store,
            executor,
            spec,
            experiment_id,
            trial_id,
            mut job,
            metrics_file,
            collector,
            cancel,
            stopping,
            tracking,
        } = self;
        if spec.metrics_collector.kind == CollectorKind::MLflow {
            match mlflow_env(store.as_ref(), trial_id, tracking.as_deref()).await? {
                Ok(env) => job.env.extend(env),
                Err(message) => return Ok(Execution::not_started(message)),
            }
        }
        // Push trials report through the REST API: the Python client reads these.
        if spec.metrics_collector.kind == CollectorKind::Push
            && let Some(tracking) = tracking.as_deref()
        {
            job.env
                .push(("TUNEFLOW_URL".to_string(), tracking.uri.clone()));
            if let Some(token) = &tracking.token {
                job.env.push(("TUNEFLOW_TOKEN".to_string(), token.clone()));
            }
        }
        let stdout_collector = spec.metrics_collector.kind == CollectorKind::StdOut;
        let mut stored = StoredObservations::new(
            matches!(
                spec.metrics_collector.kind,
                CollectorKind::Push | CollectorKind::MLflow
            ) && stopping.is_some(),
        );
        let mut collector = collector;
        let mut tail = match (&metrics_file, spec.metrics_collector.kind) {
            (Some(path), CollectorKind::File) => {
                // A file left by an earlier trial must not be read as this one's metrics.
                match tokio::fs::remove_file(path).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Ok(Execution::not_started(format!(
                            "cannot clear the metrics file {}: {e}",
                            path.display()
                        )));
                    }
                }
                Some(FileTail::new(path.clone()))
            }
            _ => None,
        };

        // A trial the previous runner left running keeps its start and attempt count; its
        // output is replayed from the start, so what the store already holds is skipped.
        let mut replay = if job.resume {
            Replay::of(store.observations(trial_id, None).await?)
        } else {
            store.start_trial(trial_id, experiment_id).await?;
            Replay::default()
        };
        let mut diagnosis = Diagnosis {
            log_path: Some(job.log_path.clone()),
            ..Diagnosis::default()
        };
        let (events_tx, mut events) = mpsc::channel(1024);
        // A prune stops the process through its own token, so that the cause is known.
        let stop = cancel.child_token();
        let run = executor.run(job, events_tx, stop.clone());
        let mut pruned = false;
        let mut judge = |new: &[Observation]| {
            if let Some((stopper, index)) = &stopping
                && !pruned
            {
                let mut changed = false;
                for o in new {
                    changed |= stopper.record(*index, &o.metric, o.step, o.value);
                }
                if changed && stopper.decide(*index) == StopDecision::Prune {
                    pruned = true;
                    stop.cancel();
                }
            }
        };
        tokio::pin!(run);
        let mut ticker = tokio::time::interval(FLUSH_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buffer: Vec<Observation> = Vec::new();
        let mut exit = None;
        let mut events_open = true;
        while exit.is_none() || events_open {
            tokio::select! {
                finished = &mut run, if exit.is_none() => exit = Some(finished),
                event = events.recv(), if events_open => match event {
                    Some(ExecutorEvent::Line(line)) if stdout_collector => {
                        diagnosis.push_line(&line);
                        if let Some(c) = collector.as_mut() {
                            let before = buffer.len();
                            c.observe(&line, &mut buffer);
                            replay.skip_known(&mut buffer, before);
                            judge(&buffer[before..]);
                        }
                        if buffer.len() >= FLUSH_COUNT {
                            store.add_observations(trial_id, &buffer).await?;
                            buffer.clear();
                        }
                    }
                    Some(ExecutorEvent::Started { handle }) => {
                        store.set_trial_handle(trial_id, &handle).await?;
                    }
                    Some(ExecutorEvent::Line(line)) => diagnosis.push_line(&line),
                    None => events_open = false,
                },
                _ = ticker.tick() => {
                    if let (Some(tail), Some(c)) = (tail.as_mut(), collector.as_mut()) {
                        let before = buffer.len();
                        for line in tail.poll().await.unwrap_or_default() {
                            c.observe(&line, &mut buffer);
                        }
                        replay.skip_known(&mut buffer, before);
                        judge(&buffer[before..]);
                    }
                    store.add_observations(trial_id, &buffer).await?;
                    buffer.clear();
                    if stored.enabled {
                        let metric = &spec.objective.metric;
                        let all = store.observations(trial_id, Some(metric)).await?;
                        judge(&stored.fresh(all));
                    }
                }
            }
        }
        if let (Some(tail), Some(c)) = (tail.as_mut(), collector.as_mut()) {
            match tail.finish().await {
                Ok(lines) => {
                    let before = buffer.len();
                    lines.iter().for_each(|line| c.observe(line, &mut buffer));
                    replay.skip_known(&mut buffer, before);
                    judge(&buffer[before..]);
                }
                Err(e) => tracing::warn!("cannot read metrics file {}: {e}", tail.path().display()),
            }
        }
        store.add_observations(trial_id, &buffer).await?;

        let metric = &spec.objective.metric;
        let values = store.observations(trial_id, Some(metric)).await?;
        let objective = rules::reduce(
            rules::strategy_for(&spec.objective, metric),
            values.iter().map(|o| o.value),
        );
        if objective.is_none() {
            // Which metrics it did report: a misspelt objective shows here.
            diagnosis.saw(&store.observations(trial_id, None).await?);
            diagnosis.metrics_seen.sort();
        }
        Ok(Execution {
            exit: exit.unwrap_or(TrialExit::Cancelled),
            objective,
            pruned,
            step: values.last().map(|o| o.step),
            diagnosis,
        })
    }
}
