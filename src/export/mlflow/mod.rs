//! Mirroring experiments to an external MLflow tracking server.
//!
//! With `--mlflow-uri URL` (or `spec.tracking.mlflow.uri`), every trial of an experiment also
//! appears in MLflow: one MLflow experiment per tuneflow experiment (same name), one parent
//! run per experiment, and one nested run per trial (`mlflow.parentRunId`) with the trial's
//! parameter values as params, its observations as metric history and a status that follows
//! the trial's state ([`RunStatus::of_trial`](crate::store::tracking::RunStatus::of_trial)).
//!
//! The [`Exporter`] is a background task driven by the store, never by the engine: about once
//! a second it reads the selected experiments' trials and observations and sends what MLflow
//! does not have yet ([`mirror`]). The run loop and the REST API never wait for it, so MLflow
//! being down or slow cannot block or fail an experiment; the exporter warns that it is
//! falling behind, retries with a growing pause, and catches up when MLflow answers again.
//! [`Exporter::flush`] lets `tuneflow run` wait a bounded time for the last trials.

pub mod batch;
pub mod client;
pub mod mirror;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::store::Store;
use mirror::Mirror;

/// How often the store is read for news while MLflow keeps up.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The longest pause between rounds while MLflow fails.
pub const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(10);
/// A round slower than this means MLflow cannot keep up with the experiment.
const SLOW_ROUND: Duration = Duration::from_secs(10);

/// Which experiments an exporter mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The one experiment of this name (`tuneflow run`, `tuneflow export`).
    Experiment(String),
    /// Every experiment in the store, including ones created later (`tuneflow serve`).
    All,
}

/// What is not in MLflow yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    /// Trials whose run is missing, incomplete or has an outdated status.
    pub trials: usize,
    /// Observations not logged yet.
    pub observations: usize,
}

impl Pending {
    /// True when nothing is left to send.
    pub fn is_empty(&self) -> bool {
        self.trials == 0 && self.observations == 0
    }

    fn add(&mut self, other: &Pending) {
        self.trials += other.trials;
        self.observations += other.observations;
    }
}

impl std::fmt::Display for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} trial{} ({} observation{})",
            self.trials,
            if self.trials == 1 { "" } else { "s" },
            self.observations,
            if self.observations == 1 { "" } else { "s" }
        )
    }
}

/// The outcome of the exporter's last round.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The highest flush request the round started after.
    covers: u64,
    /// Rounds completed so far.
    pub rounds: u64,
    /// What was still to send after it.
    pub pending: Pending,
    /// Why it did not complete, if it did not.
    pub error: Option<String>,
    /// True when MLflow could not be reached at all.
    pub unreachable: bool,
}

impl Report {
    /// True when the round sent everything.
    pub fn is_complete(&self) -> bool {
        self.rounds > 0 && self.error.is_none() && self.pending.is_empty()
    }
}

/// A running exporter; [`stop`](Exporter::stop) ends it.
pub struct Exporter {
    nudge: Arc<Notify>,
    requested: Arc<AtomicU64>,
    reports: watch::Receiver<Report>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Exporter {
    /// Starts mirroring the `selection` of `store`: to `uri_override` when given, else to
    /// each experiment's `spec.tracking.mlflow.uri` (experiments with neither are skipped).
    pub fn spawn(
        store: Arc<dyn Store>,
        selection: Selection,
        uri_override: Option<Url>,
    ) -> Exporter {
        let nudge = Arc::new(Notify::new());
        let requested = Arc::new(AtomicU64::new(0));
        let (sender, reports) = watch::channel(Report::default());
        let cancel = CancellationToken::new();
        let worker = Worker {
            mirror: Mirror::new(uri_override),
            store,
            selection,
            nudge: nudge.clone(),
            requested: requested.clone(),
            reports: sender,
        };
        let task = tokio::spawn(worker.run(cancel.clone()));
        Exporter {
            nudge,
            requested,
            reports,
            cancel,
            task,
        }
    }

    /// Asks for a round now and waits, at most `timeout`, until one that started after this
    /// call has sent everything. Returns early, with the failure, when MLflow cannot be
    /// reached (waiting would not help); a server answering errors is retried until the
    /// deadline. The returned report says what is still missing.
    pub async fn flush(&mut self, timeout: Duration) -> Report {
        let wanted = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.nudge.notify_one();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let report = self.reports.borrow_and_update();
                if report.covers >= wanted {
                    if report.error.is_none() || report.unreachable {
                        return report.clone();
                    }
                    // A transient failure: ask for another round at once.
                    self.nudge.notify_one();
                }
            }
            match tokio::time::timeout_at(deadline, self.reports.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return self.reports.borrow().clone(),
            }
        }
    }

    /// The last round's report.
    pub fn report(&self) -> Report {
        self.reports.borrow().clone()
    }

    /// Stops the exporter (a round in flight is abandoned; the next exporter redoes it).
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// The exporter's task.
struct Worker {
    mirror: Mirror,
    store: Arc<dyn Store>,
    selection: Selection,
    nudge: Arc<Notify>,
    requested: Arc<AtomicU64>,
    reports: watch::Sender<Report>,
}

impl Worker {
    async fn run(mut self, cancel: CancellationToken) {
        let mut pause = POLL_INTERVAL;
        let mut behind_since: Option<Instant> = None;
        let mut rounds = 0;
        loop {
            // The first round waits too: `tuneflow run --fresh` deletes the stored
            // experiment of the same name in its first milliseconds.
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.nudge.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
            let covers = self.requested.load(Ordering::SeqCst);
            let started = Instant::now();
            let round = tokio::select! {
                round = self.mirror.round(self.store.as_ref(), &self.selection) => round,
                () = cancel.cancelled() => return,
            };
            rounds += 1;
            match &round.error {
                None => {
                    pause = POLL_INTERVAL;
                    if let Some(since) = behind_since.take() {
                        tracing::info!(
                            "MLflow export caught up after {}",
                            humantime::format_duration(Duration::from_secs(
                                since.elapsed().as_secs()
                            ))
                        );
                    } else if started.elapsed() > SLOW_ROUND {
                        tracing::warn!(
                            "MLflow export is falling behind: one round took {}s",
                            started.elapsed().as_secs()
                        );
                    }
                }
                Some(error) => {
                    if behind_since.is_none() {
                        behind_since = Some(started);
                        tracing::warn!(
                            "MLflow export is falling behind ({} to send): {error}; the experiment is not affected and the export catches up when MLflow answers again",
                            round.pending
                        );
                    } else {
                        tracing::debug!("MLflow export still failing: {error}");
                    }
                    pause = (pause * 2).min(MAX_RETRY_INTERVAL);
                }
            }
            self.reports.send_replace(Report {
                covers,
                rounds,
                pending: round.pending,
                unreachable: round.error.as_ref().is_some_and(|e| e.is_unreachable()),
                error: round.error.map(|e| e.to_string()),
            });
        }
    }
}
