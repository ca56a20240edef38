//! Reading a trial's state from its Job and pods: whether the Job has finished (by the
//! template's success and failure conditions), and what its primary container is doing.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::spec::condition::ResourceCondition;

/// Waiting reasons that mean the container will not start without a change to the spec, the
/// registry or the cluster; past the executor's `image_pull_timeout` the trial fails.
pub const STUCK_REASONS: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The success and failure conditions of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    /// When the Job counts as succeeded.
    pub success: ResourceCondition,
    /// When the Job counts as failed.
    pub failure: ResourceCondition,
}

impl Conditions {
    /// The template's conditions, Katib's defaults for those not given.
    ///
    /// # Errors
    ///
    /// The condition that does not parse, with the form that is accepted.
    pub fn of(success: Option<&str>, failure: Option<&str>) -> Result<Conditions, String> {
        Ok(Conditions {
            success: success
                .map(ResourceCondition::parse)
                .transpose()
                .map_err(|e| format!("trialTemplate.successCondition: {e}"))?
                .unwrap_or_else(ResourceCondition::default_success),
            failure: failure
                .map(ResourceCondition::parse)
                .transpose()
                .map_err(|e| format!("trialTemplate.failureCondition: {e}"))?
                .unwrap_or_else(ResourceCondition::default_failure),
        })
    }
}

/// How a Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// The success condition holds.
    Succeeded,
    /// The failure condition holds; the reason and message of the Job's failure condition.
    Failed(String),
}

/// Whether `job` has finished, by `conditions` (the failure condition wins when both hold).
pub fn finished(job: &Job, conditions: &Conditions) -> Option<Finished> {
    let list = job.status.as_ref()?.conditions.as_ref()?;
    let pairs = || list.iter().map(|c| (c.type_.as_str(), c.status.as_str()));
    if conditions.failure.holds(pairs()) {
        let failed = list
            .iter()
            .find(|c| c.type_ == conditions.failure.type_ && c.status == conditions.failure.status);
        let reason = failed.and_then(|c| c.reason.clone()).unwrap_or_default();
        let message = failed.and_then(|c| c.message.clone()).unwrap_or_default();
        let text = match (reason.is_empty(), message.is_empty()) {
            (false, false) => format!("{reason}: {message}"),
            (false, true) => reason,
            (true, false) => message,
            (true, true) => format!(
                "the Job's {} condition is {}",
                conditions.failure.type_, conditions.failure.status
            ),
        };
        return Some(Finished::Failed(text));
    }
    conditions
        .success
        .holds(pairs())
        .then_some(Finished::Succeeded)
}

/// What the primary container of a pod is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Container {
    /// No status yet (pod pending, being scheduled).
    Unknown,
    /// Waiting to start, with the kubelet's reason and message.
    Waiting {
        /// E.g. `ContainerCreating`, `ErrImagePull`.
        reason: String,
        /// The kubelet's explanation.
        message: String,
    },
    /// Running.
    Running,
    /// Terminated with this exit code.
    Terminated(i32),
}

impl Container {
    /// The container has started (so it has a log to follow).
    pub fn started(&self) -> bool {
        matches!(self, Container::Running | Container::Terminated(_))
    }

    /// The container waits for a reason that will not resolve by itself.
    pub fn stuck(&self) -> Option<(&str, &str)> {
        match self {
            Container::Waiting { reason, message } if STUCK_REASONS.contains(&reason.as_str()) => {
                Some((reason, message))
            }
            _ => None,
        }
    }
}

/// The pod that runs (or last ran) the trial, and its primary container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// The pod's name.
    pub name: String,
    /// The pod's uid.
    pub uid: String,
    /// Its primary container.
    pub container: Container,
}

/// The newest of `pods` that belongs to the Job with uid `job_uid`, with the state of its
/// container `container`.
pub fn current_pod(pods: &[Arc<Pod>], job_uid: &str, container: &str) -> Option<PodView> {
    pods.iter()
        .filter(|pod| belongs_to(pod, job_uid))
        .max_by(|a, b| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a)
                .cmp(&created(b))
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        })
        .map(|pod| PodView {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            container: container_state(pod, container),
        })
}

/// Whether `pod` was made for the Job with uid `job_uid`: by its owner reference or the Job
/// controller's uid label; a pod with neither is taken to belong to the Job of its trial.
fn belongs_to(pod: &Pod, job_uid: &str) -> bool {
    if let Some(owners) = &pod.metadata.owner_references
        && let Some(job) = owners.iter().find(|o| o.kind == "Job")
    {
        return job.uid == job_uid;
    }
    let labels = pod.metadata.labels.as_ref();
    match labels.and_then(|l| {
        l.get("batch.kubernetes.io/controller-uid")
            .or_else(|| l.get("controller-uid"))
    }) {
        Some(uid) => uid == job_uid,
        None => true,
    }
}

fn container_state(pod: &Pod, container: &str) -> Container {
    let status: Option<&ContainerStatus> = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|list| list.iter().find(|c| c.name == container));
    let Some(state) = status.and_then(|s| s.state.as_ref()) else {
        return Container::Unknown;
    };
    if let Some(terminated) = &state.terminated {
        Container::Terminated(terminated.exit_code)
    } else if state.running.is_some() {
        Container::Running
    } else if let Some(waiting) = &state.waiting {
        Container::Waiting {
            reason: waiting.reason.clone().unwrap_or_default(),
            message: waiting.message.clone().unwrap_or_default(),
        }
    } else {
        Container::Unknown
    }
}
