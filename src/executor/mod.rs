//! Executors run a trial somewhere and stream its output back.
//!
//! The engine hands an executor a [`TrialJob`] (the rendered command, environment, limits) and
//! a channel; the executor reports [`ExecutorEvent`]s (the process started, a line of output)
//! as they happen and returns how the trial ended as a [`TrialExit`]. Deciding what that means
//! (Succeeded, Failed, MetricsUnavailable, ...) is the engine's job, not the executor's.
//!
//! [`local::LocalExecutor`] runs trials as child processes on this machine;
//! [`kubernetes::KubernetesExecutor`] runs them as Kubernetes Jobs.

pub mod kubernetes;
pub mod local;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::spec::{ExperimentSpec, TrialTemplate};

/// Moves the next piece of a line from `buffer` into `line`, keeping at most `cap` bytes of
/// the line (the rest of an overlong line is dropped). Returns how many bytes of `buffer` it
/// used, the newline included, and whether the line is complete. The one line-cutting rule of
/// both executors' output readers.
pub(crate) fn take_line(buffer: &[u8], line: &mut Vec<u8>, cap: usize) -> (usize, bool) {
    let (piece, complete) = match buffer.iter().position(|b| *b == b'\n') {
        Some(end) => (&buffer[..end], true),
        None => (buffer, false),
    };
    let room = cap.saturating_sub(line.len());
    line.extend_from_slice(&piece[..piece.len().min(room)]);
    (piece.len() + usize::from(complete), complete)
}

/// Everything needed to run one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialJob {
    /// The experiment's name (exported as `TUNEFLOW_EXPERIMENT`).
    pub experiment: String,
    /// The trial's name (exported as `TUNEFLOW_TRIAL_NAME`).
    pub trial_name: String,
    /// The argv, placeholders already substituted. Never run through a shell.
    pub command: Vec<String>,
    /// Environment variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Directory the trial runs in.
    pub working_dir: PathBuf,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
    /// File that receives the trial's stdout and stderr.
    pub log_path: PathBuf,
    /// The trial's index in its experiment.
    pub index: u64,
    /// The experiment's namespace (Kubernetes), when it has one.
    pub namespace: Option<String>,
    /// The trial template the job was rendered from (the Kubernetes executor reads its
    /// cluster settings, `retain` and the success and failure conditions).
    pub template: Arc<TrialTemplate>,
    /// The template's `trialSpec` manifest with the trial's values substituted, if it has one.
    pub manifest: Option<serde_json::Value>,
    /// The trial was running when the experiment's previous runner stopped: an executor that
    /// [re-attaches](Executor::reattaches) follows what is still running instead of starting
    /// the trial again.
    pub resume: bool,
}

/// What an executor reports while a trial runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorEvent {
    /// The trial started; `handle` is the executor's reference to it (for local runs, the
    /// process group id), kept in the store so that [`Executor::stop_orphan`] can find it
    /// after a crash.
    Started {
        /// The executor's reference to the running trial.
        handle: String,
    },
    /// One line the trial wrote (stdout or stderr), without its newline, cut to
    /// [`crate::collector::MAX_LINE_BYTES`].
    Line(String),
}

/// How a trial's run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialExit {
    /// The process exited with this code.
    Exited(i32),
    /// The process was killed by this signal (not by us).
    Signaled(i32),
    /// The timeout passed; the process group was killed.
    TimedOut(Duration),
    /// The run was cancelled (experiment ended, user interrupt); the process group was killed.
    Cancelled,
    /// The process could not be started.
    SpawnFailed(String),
    /// The trial failed without an exit code to show for it (a Kubernetes Job that reached
    /// its backoff limit or deadline, an image that cannot be pulled); the message says why.
    Failed(String),
}

/// Runs trials.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Runs `job` to its end, sending events to `events` while it runs. Cancelling `cancel`
    /// stops the trial (and everything it started) and returns [`TrialExit::Cancelled`].
    async fn run(
        &self,
        job: TrialJob,
        events: mpsc::Sender<ExecutorEvent>,
        cancel: CancellationToken,
    ) -> TrialExit;

    /// Stops whatever is still running of a trial that an earlier, crashed run of the
    /// experiment started (`handle` as sent in [`ExecutorEvent::Started`]). Must not touch
    /// anything that does not belong to that trial. Returns how many processes (or other
    /// resources) it stopped.
    async fn stop_orphan(&self, experiment: &str, trial_name: &str, handle: &str) -> usize;

    /// Whether this executor can run the experiment's trials at all; the message says why
    /// not and how to fix the spec. The default asks for a command to run.
    fn check(&self, spec: &ExperimentSpec) -> Result<(), String> {
        match &spec.trial_template {
            Some(template) if !template.command.is_empty() => Ok(()),
            _ => Err(format!(
                "experiment `{}` has no command to run: give spec.trialTemplate.command, or a \
                 trialSpec Job whose primary container has a command",
                spec.name
            )),
        }
    }

    /// Whether a trial left running by a stopped runner can be followed again (its resources
    /// outlive the runner, as a Kubernetes Job does) rather than stopped and queued anew.
    fn reattaches(&self) -> bool {
        false
    }
}
