//! The Kubernetes executor: each trial runs as a `batch/v1` Job.
//!
//! - [`job`] builds the Job from a Katib-style `trialSpec` or a native template.
//! - [`lifecycle`] creates it (retrying, never twice), adopts it on resume, deletes or suspends
//!   it.
//! - [`watch`] follows Jobs and pods through one shared pair of watches per namespace.
//! - [`status`] reads success, failure and the primary container's state from them.
//! - [`logs`] follows the primary container's log through the API (no sidecar) into the same
//!   collectors as local trials.
//! - [`connect`] builds the client from the kubeconfig, with errors that say how to fix it.
//!
//! Invariants: one Job per trial; a cancelled or timed-out trial's Job is deleted with its pods
//! (background propagation), or suspended when the template says `retain: true`; a finished
//! Job is deleted once its log has been read, unless retained; the API server being away for
//! a while delays a trial but never ends it.

pub mod connect;
pub mod job;
pub mod lifecycle;
pub mod logs;
pub mod status;
pub mod watch;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Api, Client};
use tokio::sync::{mpsc, watch as channel};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::local::{forward_lines, open_log};
use super::{Executor, ExecutorEvent, TrialExit, TrialJob};
use crate::spec::ExperimentSpec;
use job::BuiltJob;
use lifecycle::LaunchError;
use status::{Conditions, Container, Finished, PodView};

/// Default for [`KubernetesSettings::image_pull_timeout`].
pub const DEFAULT_IMAGE_PULL_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long a finished trial waits for its pod to be seen started, so its log can be read.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(3);
/// How long a finished trial's log may take to be read to its end.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// How long a Job that the watch has not shown yet may go unconfirmed before it is read
/// directly (it may have been deleted before the watch saw it); the pause doubles after each
/// read, up to [`UNSEEN_CHECK_MAX`].
const UNSEEN_CHECK: Duration = Duration::from_secs(2);
/// Longest pause between direct reads of a Job the watch does not show.
const UNSEEN_CHECK_MAX: Duration = Duration::from_secs(30);
/// How long that direct read may take (retries included) before following resumes.
const UNSEEN_READ_LIMIT: Duration = Duration::from_secs(10);

/// How the executor places and owns the trials' Jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSettings {
    /// Namespace of the Jobs when neither the template nor the experiment names one.
    pub default_namespace: String,
    /// Owner reference put on every Job (the operator sets its Experiment resource, with
    /// `controller: true`), so that deleting the owner deletes the Jobs.
    pub owner: Option<OwnerReference>,
    /// How long the primary container may wait with `ErrImagePull`, `ImagePullBackOff`,
    /// `InvalidImageName`, `CreateContainerConfigError` or `CreateContainerError` before the
    /// trial fails.
    pub image_pull_timeout: Duration,
    /// Labels added to every Job and pod besides tuneflow's own.
    pub extra_labels: BTreeMap<String, String>,
}

impl KubernetesSettings {
    /// Settings with Jobs in `default_namespace`, no owner, the default image pull timeout.
    pub fn new(default_namespace: impl Into<String>) -> KubernetesSettings {
        KubernetesSettings {
            default_namespace: default_namespace.into(),
            owner: None,
            image_pull_timeout: DEFAULT_IMAGE_PULL_TIMEOUT,
            extra_labels: BTreeMap::new(),
        }
    }
}

/// The name of a trial's Job: the trial name after its first `.` (the operator names
/// experiments `NAMESPACE.NAME`; experiment names have no dots), else the trial name.
pub fn job_name(trial_name: &str) -> String {
    experiment_label(trial_name).to_string()
}

/// The experiment's name as a label value: without the operator's `NAMESPACE.` prefix.
fn experiment_label(experiment: &str) -> &str {
    experiment
        .split_once('.')
        .map_or(experiment, |(_, name)| name)
}

/// Runs trials as Kubernetes Jobs.
pub struct KubernetesExecutor {
    client: Client,
    settings: KubernetesSettings,
    hub: Arc<watch::Hub>,
}

impl std::fmt::Debug for KubernetesExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesExecutor")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl KubernetesExecutor {
    /// An executor that submits Jobs through `client`.
    pub fn new(client: Client, settings: KubernetesSettings) -> KubernetesExecutor {
        KubernetesExecutor {
            hub: Arc::new(watch::Hub::new(client.clone())),
            client,
            settings,
        }
    }

    /// An executor with other settings (another owner, namespace, timeout) that shares this
    /// one's client and watches: an operator running many experiments keeps one pair of watches
    /// per namespace instead of one per experiment, each of which would receive every trial's
    /// events.
    pub fn with_settings(&self, settings: KubernetesSettings) -> KubernetesExecutor {
        KubernetesExecutor {
            client: self.client.clone(),
            settings,
            hub: self.hub.clone(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &KubernetesSettings {
        &self.settings
    }
}

/// How following a Job ended.
enum Outcome {
    Finished(Finished),
    Cancelled,
    TimedOut(Duration),
    /// The container could not start, or the trial cannot be followed (its watches are
    /// forbidden); the message says why.
    Stuck(String),
    /// The Job disappeared before it finished.
    Vanished,
}

/// The log being followed: the pod, and the flag that tells its follower the container ended.
struct Followed {
    pod_uid: String,
    done: channel::Sender<bool>,
}

/// One trial being followed.
struct Trial<'a> {
    executor: &'a KubernetesExecutor,
    built: &'a BuiltJob,
    uid: String,
    conditions: Conditions,
    jobs: Api<Job>,
    pods: Api<Pod>,
    lines: mpsc::Sender<Vec<u8>>,
    logs: JoinSet<()>,
    followed: Option<Followed>,
    subscription: watch::Subscription,
}

impl Trial<'_> {
    /// Follows the Job until it finishes, the deadline passes, `cancel` fires, its container
    /// is stuck past the image pull timeout, or it disappears.
    async fn follow(&mut self, timeout: Option<Duration>, cancel: &CancellationToken) -> Outcome {
        let deadline = timeout.map(|limit| Instant::now() + limit);
        let mut stuck_since: Option<Instant> = None;
        let mut seen = false;
        let mut unseen_since = Instant::now();
        let mut unseen_pause = UNSEEN_CHECK;
        loop {
            let snapshot = self.subscription.snapshot();
            if let Some(refused) = snapshot.forbidden {
                // Without its watches the trial cannot be followed: stop it rather than hang.
                return Outcome::Stuck(refused);
            }
            let job = snapshot
                .job
                .filter(|job| job.metadata.uid.as_deref() == Some(self.uid.as_str()));
            let pod = status::current_pod(&snapshot.pods, &self.uid, &self.built.container);
            if let Some(pod) = &pod {
                self.follow_log(pod);
            }
            match &job {
                Some(job) => {
                    seen = true;
                    if let Some(finished) = status::finished(job, &self.conditions) {
                        if self.followed.is_none() {
                            // The pod's whole life passed while the pod watch was down (a
                            // relist shows only the end): read its log from the API.
                            self.follow_listed_pod().await;
                        }
                        return Outcome::Finished(finished);
                    }
                }
                None if seen && snapshot.synced => return Outcome::Vanished,
                None => {}
            }
            let mut stuck_until = None;
            if let Some(pod) = &pod {
                match pod.container.stuck() {
                    Some((reason, message)) => {
                        let since = *stuck_since.get_or_insert_with(Instant::now);
                        let until = since + self.executor.settings.image_pull_timeout;
                        if Instant::now() >= until {
                            return Outcome::Stuck(self.stuck_message(reason, message));
                        }
                        stuck_until = Some(until);
                    }
                    None => stuck_since = None,
                }
            }
            let unseen_check = (!seen && snapshot.synced).then(|| unseen_since + unseen_pause);
            tokio::select! {
                () = self.subscription.changed() => {}
                () = cancel.cancelled() => return Outcome::Cancelled,
                () = sleep_until(deadline) => {
                    return Outcome::TimedOut(timeout.unwrap_or_default());
                }
                () = sleep_until(stuck_until) => {}
                () = sleep_until(unseen_check) => {
                    unseen_since = Instant::now();
                    unseen_pause = (unseen_pause * 2).min(UNSEEN_CHECK_MAX);
                    let read = lifecycle::get(&self.jobs, &self.built.namespace, &self.built.name, cancel);
                    if let Ok(Ok(found)) = tokio::time::timeout(UNSEEN_READ_LIMIT, read).await
                        && found.and_then(|j| j.metadata.uid).as_deref() != Some(self.uid.as_str())
                    {
                        return Outcome::Vanished;
                    }
                }
            }
        }
    }

    /// Starts following the log of `pod`'s primary container once it has started; tells the
    /// follower of an earlier pod, or of this one once its container ended, that no more
    /// output is coming.
    fn follow_log(&mut self, pod: &PodView) {
        let ended = matches!(pod.container, Container::Terminated(_));
        if let Some(followed) = &self.followed {
            if followed.pod_uid == pod.uid {
                if ended {
                    let _ = followed.done.send(true);
                }
                return;
            }
            if !pod.container.started() {
                return;
            }
            let _ = followed.done.send(true);
        }
        if !pod.container.started() {
            return;
        }
        let (done, done_rx) = channel::channel(ended);
        let follower = logs::LogFollow {
            pods: self.pods.clone(),
            pod: pod.name.clone(),
            container: self.built.container.clone(),
            lines: self.lines.clone(),
            done: done_rx,
        };
        self.logs.spawn(follower.run());
        self.followed = Some(Followed {
            pod_uid: pod.uid.clone(),
            done,
        });
    }

    /// Follows the log of the Job's latest pod as listed by the API server (not the watch).
    async fn follow_listed_pod(&mut self) {
        if let Some(pod) = self.listed_pod().await {
            self.follow_log(&pod);
        }
    }

    /// The Job's latest pod as listed by the API server (not the watch, which may lag).
    async fn listed_pod(&self) -> Option<PodView> {
        let selector = format!("job-name={}", self.built.name);
        let listed = self
            .pods
            .list(&kube::api::ListParams::default().labels(&selector))
            .await;
        match listed {
            Ok(list) => {
                let pods: Vec<std::sync::Arc<Pod>> =
                    list.items.into_iter().map(std::sync::Arc::new).collect();
                status::current_pod(&pods, &self.uid, &self.built.container)
            }
            Err(e) => {
                tracing::warn!(
                    "cannot list the pods of Job {}/{}: {e}",
                    self.built.namespace,
                    self.built.name
                );
                None
            }
        }
    }

    fn stuck_message(&self, reason: &str, message: &str) -> String {
        let detail = if message.is_empty() {
            reason.to_string()
        } else {
            format!("{reason}: {message}")
        };
        if reason.starts_with("Create") {
            format!(
                "container \"{}\" of image \"{}\" cannot be created: {detail}",
                self.built.container, self.built.image
            )
        } else {
            format!("image \"{}\" cannot be pulled: {detail}", self.built.image)
        }
    }

    /// Makes sure the log of the pod that ran the trial is being read: the Job's end may be
    /// seen before its pod's (they come through separate watches), and a short trial may
    /// have ended before its container was ever seen running. Waits at most
    /// [`CATCH_UP_LIMIT`] for such a pod to show up; a Job whose pod never started (or was
    /// deleted, as at a deadline) has no more log to read.
    async fn catch_up(&mut self) {
        let deadline = Instant::now() + CATCH_UP_LIMIT;
        loop {
            let snapshot = self.subscription.snapshot();
            if let Some(pod) = status::current_pod(&snapshot.pods, &self.uid, &self.built.container)
            {
                self.follow_log(&pod);
                if self.followed.as_ref().is_some_and(|f| f.pod_uid == pod.uid) {
                    return;
                }
            }
            tokio::select! {
                () = self.subscription.changed() => {}
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Waits (at most [`DRAIN_LIMIT`]) for the log followers to read to the end.
    async fn drain(&mut self) {
        if let Some(followed) = &self.followed {
            let _ = followed.done.send(true);
        }
        let drained = tokio::time::timeout(DRAIN_LIMIT, async {
            while self.logs.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "the log of Job {}/{} was not read to its end within {DRAIN_LIMIT:?}; the last lines may be missing",
                self.built.namespace,
                self.built.name
            );
            self.logs.abort_all();
        }
    }

    /// The primary container's exit code, if its pod says.
    async fn exit_code(&self) -> Option<i32> {
        let snapshot = self.subscription.snapshot();
        let watched = status::current_pod(&snapshot.pods, &self.uid, &self.built.container);
        let pod = match watched {
            Some(pod) if matches!(pod.container, Container::Terminated(_)) => Some(pod),
            // The pod watch may not have caught up with the Job's: ask the API server.
            _ => self.listed_pod().await,
        };
        match pod?.container {
            Container::Terminated(code) => Some(code),
            _ => None,
        }
    }

    /// Deletes the Job with its pods, or suspends it when the template retains trials.
    async fn stop(&self, retain: bool) {
        let (namespace, name) = (&self.built.namespace, &self.built.name);
        if retain {
            lifecycle::suspend(&self.jobs, namespace, name).await;
        } else {
            lifecycle::delete(&self.jobs, namespace, name, &CancellationToken::new()).await;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[async_trait]
impl Executor for KubernetesExecutor {
    async fn run(
        &self,
        job: TrialJob,
        events: mpsc::Sender<ExecutorEvent>,
        cancel: CancellationToken,
    ) -> TrialExit {
        let built = match job::build(&job, &self.settings) {
            Ok(built) => built,
            Err(message) => return TrialExit::SpawnFailed(message),
        };
        let conditions = match Conditions::of(
            job.template.success_condition.as_deref(),
            job.template.failure_condition.as_deref(),
        ) {
            Ok(conditions) => conditions,
            Err(message) => return TrialExit::SpawnFailed(message),
        };
        let log = match open_log(&job.log_path).await {
            Ok(log) => log,
            Err(e) => {
                return TrialExit::SpawnFailed(format!(
                    "cannot create log file {}: {e}",
                    job.log_path.display()
                ));
            }
        };
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &built.namespace);
        let uid = match lifecycle::launch(&jobs, &built, job.resume, &cancel).await {
            Ok(uid) => uid,
            Err(LaunchError::Cancelled) => return TrialExit::Cancelled,
            Err(LaunchError::Refused(message)) => return TrialExit::SpawnFailed(message),
        };
        let _ = events
            .send(ExecutorEvent::Started {
                handle: format!("{}/{}", built.namespace, built.name),
            })
            .await;

        let (lines, lines_rx) = mpsc::channel::<Vec<u8>>(1024);
        let writer = tokio::spawn(forward_lines(lines_rx, log, events));
        let mut trial = Trial {
            executor: self,
            built: &built,
            uid,
            conditions,
            pods: Api::namespaced(self.client.clone(), &built.namespace),
            jobs,
            lines,
            logs: JoinSet::new(),
            followed: None,
            subscription: self.hub.subscribe(&built.namespace, &built.name),
        };
        let retain = job.template.retain;
        let outcome = trial.follow(job.timeout, &cancel).await;
        let exit = match outcome {
            Outcome::Finished(finished) => {
                trial.catch_up().await;
                trial.drain().await;
                let exit = match finished {
                    Finished::Succeeded => TrialExit::Exited(0),
                    // The Job's backstop deadline (the timeout plus a grace) passed first,
                    // as on a resume: the trial timed out.
                    Finished::Failed(reason)
                        if reason.starts_with("DeadlineExceeded") && job.timeout.is_some() =>
                    {
                        TrialExit::TimedOut(job.timeout.unwrap_or_default())
                    }
                    Finished::Failed(reason) => match trial.exit_code().await {
                        Some(code) if code != 0 => TrialExit::Exited(code),
                        _ => TrialExit::Failed(reason),
                    },
                };
                if !retain {
                    trial.stop(false).await;
                }
                exit
            }
            Outcome::Cancelled => {
                trial.logs.abort_all();
                trial.stop(retain).await;
                TrialExit::Cancelled
            }
            Outcome::TimedOut(limit) => {
                trial.logs.abort_all();
                trial.stop(retain).await;
                TrialExit::TimedOut(limit)
            }
            Outcome::Stuck(message) => {
                trial.logs.abort_all();
                trial.stop(retain).await;
                TrialExit::Failed(message)
            }
            Outcome::Vanished => {
                trial.drain().await;
                TrialExit::Failed(format!(
                    "Job {}/{} was deleted before it finished",
                    built.namespace, built.name
                ))
            }
        };
        drop(trial);
        if tokio::time::timeout(DRAIN_LIMIT, writer).await.is_err() {
            tracing::warn!("the trial's log file was not closed within {DRAIN_LIMIT:?}");
        }
        exit
    }

    async fn stop_orphan(&self, experiment: &str, trial_name: &str, handle: &str) -> usize {
        let Some((namespace, name)) = handle.split_once('/') else {
            return 0;
        };
        if name != job_name(trial_name) {
            return 0;
        }
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let never = CancellationToken::new();
        let existing = match tokio::time::timeout(
            lifecycle::STOP_LIMIT,
            lifecycle::get(&jobs, namespace, name, &never),
        )
        .await
        {
            Ok(Ok(Some(existing))) => existing,
            _ => return 0,
        };
        let experiment_matches = existing
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(job::EXPERIMENT_LABEL))
            .is_none_or(|label| label == experiment_label(experiment));
        if !lifecycle::is_trial_job(&existing, name) || !experiment_matches {
            return 0;
        }
        usize::from(lifecycle::delete(&jobs, namespace, name, &never).await)
    }

    fn check(&self, spec: &ExperimentSpec) -> Result<(), String> {
        job::check(spec)
    }

    fn reattaches(&self) -> bool {
        true
    }
}
