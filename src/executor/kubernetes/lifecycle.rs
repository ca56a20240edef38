//! Creating, adopting, suspending and deleting a trial's Job, with retries.
//!
//! Invariant: never two Jobs for one trial. A create whose response was lost is retried, and
//! the `409 AlreadyExists` that follows is resolved by reading the Job back and adopting it
//! when it carries this launch's token. A resumed trial adopts the Job it finds instead of
//! creating one; a trial started afresh first removes a Job of its name left by an earlier
//! run (`--fresh`), and waits until it is gone.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::job::{BuiltJob, LAUNCH_ANNOTATION, TRIAL_LABEL};

/// First pause before retrying a call the API server could not answer; doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a leftover Job may take to disappear after it was deleted.
const GONE_LIMIT: Duration = Duration::from_secs(120);
/// How long stopping a Job (delete or suspend) keeps retrying before it gives up and says so.
pub const STOP_LIMIT: Duration = Duration::from_secs(30);

/// Why a Job could not be launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchError {
    /// The trial was cancelled while the API server was being retried.
    Cancelled,
    /// The API server refused, for a reason that retrying will not change.
    Refused(String),
}

/// Exponential backoff between retries.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: FIRST_BACKOFF,
        }
    }
}

impl Backoff {
    /// Waits for the next pause; false when `cancel` fired first.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        tokio::select! {
            () = tokio::time::sleep(pause) => true,
            () = cancel.cancelled() => false,
        }
    }
}

/// Whether an error may go away by itself (the API server unreachable, overloaded,
/// restarting), so the call should be retried.
pub fn transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429 || status.code == 408,
        kube::Error::HyperError(_)
        | kube::Error::Service(_)
        | kube::Error::ReadEvents(_)
        | kube::Error::HttpError(_) => true,
        _ => false,
    }
}

fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn status_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// The message for a `403 Forbidden` in `namespace`.
pub fn forbidden(namespace: &str, error: &kube::Error) -> String {
    format!(
        "tuneflow may not manage Jobs in namespace \"{namespace}\" (403 Forbidden: {}): grant \
         the account it runs as a Role there allowing jobs (create, get, list, watch, delete, \
         patch) and pods, pods/log (get, list, watch) — see deploy/ — or run the trials in a \
         namespace it may use (trialTemplate.kubernetes.namespace, metadata.namespace or \
         --namespace)",
        status_message(error)
    )
}

/// Whether `job` is a trial Job of `name` (its `tuneflow.dev/trial` label).
pub fn is_trial_job(job: &Job, name: &str) -> bool {
    job.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(TRIAL_LABEL))
        .is_some_and(|trial| trial == name)
}

fn launch_token(job: &Job) -> Option<&str> {
    job.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LAUNCH_ANNOTATION))
        .map(String::as_str)
}

/// Reads the Job `name`, retrying while the API server is unreachable.
///
/// # Errors
///
/// [`LaunchError::Cancelled`] when `cancel` fires; [`LaunchError::Refused`] for answers that
/// retrying will not change (403, ...).
pub async fn get(
    jobs: &Api<Job>,
    namespace: &str,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Option<Job>, LaunchError> {
    let mut backoff = Backoff::default();
    loop {
        match jobs.get_opt(name).await {
            Ok(job) => return Ok(job),
            Err(e) if status_code(&e) == Some(403) => {
                return Err(LaunchError::Refused(forbidden(namespace, &e)));
            }
            Err(e) if transient(&e) => {
                tracing::warn!("cannot read Job {namespace}/{name}, retrying: {e}");
                if !backoff.wait(cancel).await {
                    return Err(LaunchError::Cancelled);
                }
            }
            Err(e) => {
                return Err(LaunchError::Refused(format!(
                    "cannot read Job {namespace}/{name}: {}",
                    status_message(&e)
                )));
            }
        }
    }
}

/// Creates the trial's Job, or adopts the one that exists when the trial is resumed; returns
/// the uid of the Job that runs the trial.
///
/// # Errors
///
/// As [`get`]; also when a Job of that name exists that does not belong to the trial.
pub async fn launch(
    jobs: &Api<Job>,
    built: &BuiltJob,
    resume: bool,
    cancel: &CancellationToken,
) -> Result<String, LaunchError> {
    let (namespace, name) = (built.namespace.as_str(), built.name.as_str());
    if let Some(existing) = get(jobs, namespace, name, cancel).await? {
        if !is_trial_job(&existing, name) {
            return Err(LaunchError::Refused(format!(
                "a Job named {namespace}/{name} exists that tuneflow did not create for this \
                 trial (its {TRIAL_LABEL} label differs); delete or rename it"
            )));
        }
        if resume {
            tracing::info!("trial Job {namespace}/{name} is still there: following it again");
            return Ok(existing.metadata.uid.unwrap_or_default());
        }
        tracing::info!("deleting Job {namespace}/{name}, left by an earlier run of the experiment");
        let uid = existing.metadata.uid.clone().unwrap_or_default();
        if !delete(jobs, namespace, name, cancel).await {
            return Err(if cancel.is_cancelled() {
                LaunchError::Cancelled
            } else {
                LaunchError::Refused(format!(
                    "cannot delete Job {namespace}/{name} left by an earlier run"
                ))
            });
        }
        wait_gone(jobs, namespace, name, &uid, cancel).await?;
    }
    create(jobs, built, cancel).await
}

/// Creates the Job, retrying while the API server is unreachable; a Job found after a lost
/// response is adopted when it is this launch's.
async fn create(
    jobs: &Api<Job>,
    built: &BuiltJob,
    cancel: &CancellationToken,
) -> Result<String, LaunchError> {
    let (namespace, name) = (built.namespace.as_str(), built.name.as_str());
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut job = built.job.clone();
    job.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(LAUNCH_ANNOTATION.to_string(), token.clone());
    let mut backoff = Backoff::default();
    let mut attempted = false;
    loop {
        if cancel.is_cancelled() {
            if attempted {
                remove_if_launched(jobs, namespace, name, &token).await;
            }
            return Err(LaunchError::Cancelled);
        }
        attempted = true;
        let error = match jobs.create(&PostParams::default(), &job).await {
            Ok(created) => return Ok(created.metadata.uid.unwrap_or_default()),
            Err(e) => e,
        };
        match status_code(&error) {
            Some(409) => match get(jobs, namespace, name, cancel).await? {
                Some(existing) if launch_token(&existing) == Some(token.as_str()) => {
                    tracing::warn!(
                        "the answer to creating Job {namespace}/{name} was lost; it exists, so \
                         it is followed rather than created again"
                    );
                    return Ok(existing.metadata.uid.unwrap_or_default());
                }
                Some(_) => {
                    return Err(LaunchError::Refused(format!(
                        "Job {namespace}/{name} was created by someone else while this trial \
                         was starting; not creating a second one"
                    )));
                }
                // Deleted again in between: create it.
                None => continue,
            },
            Some(403) => return Err(LaunchError::Refused(forbidden(namespace, &error))),
            _ if transient(&error) => {
                tracing::warn!("cannot create Job {namespace}/{name}, retrying: {error}");
                if !backoff.wait(cancel).await {
                    remove_if_launched(jobs, namespace, name, &token).await;
                    return Err(LaunchError::Cancelled);
                }
            }
            _ => {
                return Err(LaunchError::Refused(format!(
                    "the API server refused Job {namespace}/{name}: {}",
                    status_message(&error)
                )));
            }
        }
    }
}

/// After a launch was cancelled between retries: deletes the Job if a create whose answer
/// was lost made it after all (it carries `token`), so that nothing runs untracked. Best
/// effort, for at most [`STOP_LIMIT`].
async fn remove_if_launched(jobs: &Api<Job>, namespace: &str, name: &str, token: &str) {
    let never = CancellationToken::new();
    let found = tokio::time::timeout(STOP_LIMIT, get(jobs, namespace, name, &never)).await;
    if let Ok(Ok(Some(job))) = found
        && launch_token(&job) == Some(token)
    {
        delete(jobs, namespace, name, &never).await;
    }
}

/// Waits until the Job `name` with uid `uid` is gone (a new one of the same name does not
/// count), for at most [`GONE_LIMIT`].
async fn wait_gone(
    jobs: &Api<Job>,
    namespace: &str,
    name: &str,
    uid: &str,
    cancel: &CancellationToken,
) -> Result<(), LaunchError> {
    let deadline = Instant::now() + GONE_LIMIT;
    loop {
        match get(jobs, namespace, name, cancel).await? {
            None => return Ok(()),
            Some(job) if job.metadata.uid.as_deref() != Some(uid) => return Ok(()),
            Some(_) if Instant::now() >= deadline => {
                return Err(LaunchError::Refused(format!(
                    "Job {namespace}/{name}, left by an earlier run, is still there {}s after \
                     it was deleted (a finalizer?); delete it by hand",
                    GONE_LIMIT.as_secs()
                )));
            }
            Some(_) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    () = cancel.cancelled() => return Err(LaunchError::Cancelled),
                }
            }
        }
    }
}

/// Deletes the Job with background propagation (its pods go too), retrying transient errors
/// for at most [`STOP_LIMIT`] or until `cancel`; true when it is deleted or was gone already.
pub async fn delete(
    jobs: &Api<Job>,
    namespace: &str,
    name: &str,
    cancel: &CancellationToken,
) -> bool {
    let deadline = Instant::now() + STOP_LIMIT;
    let mut backoff = Backoff::default();
    loop {
        match jobs.delete(name, &DeleteParams::background()).await {
            Ok(_) => return true,
            Err(e) if status_code(&e) == Some(404) => return true,
            Err(e) if transient(&e) && Instant::now() < deadline => {
                tracing::warn!("cannot delete Job {namespace}/{name}, retrying: {e}");
                if !backoff.wait(cancel).await {
                    return false;
                }
            }
            Err(e) => {
                tracing::warn!(
                    "cannot delete Job {namespace}/{name}: {e}; delete it with `kubectl delete \
                     job -n {namespace} {name}`"
                );
                return false;
            }
        }
    }
}

/// Suspends the Job (`spec.suspend: true`: its running pods are stopped, the Job is kept),
/// retrying transient errors for at most [`STOP_LIMIT`]; true when it is suspended.
pub async fn suspend(jobs: &Api<Job>, namespace: &str, name: &str) -> bool {
    let deadline = Instant::now() + STOP_LIMIT;
    let never = CancellationToken::new();
    let mut backoff = Backoff::default();
    let patch = serde_json::json!({ "spec": { "suspend": true } });
    loop {
        match jobs
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return true,
            Err(e) if status_code(&e) == Some(404) => return true,
            Err(e) if transient(&e) && Instant::now() < deadline => {
                tracing::warn!("cannot suspend Job {namespace}/{name}, retrying: {e}");
                backoff.wait(&never).await;
            }
            Err(e) => {
                tracing::warn!(
                    "cannot suspend Job {namespace}/{name}: {e}; its pods may still run \
                     (`kubectl delete job -n {namespace} {name}` stops them)"
                );
                return false;
            }
        }
    }
}
