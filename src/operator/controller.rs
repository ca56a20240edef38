//! The reconciler: one `Experiment` resource at a time, against the store and the run tasks.
//!
//! - A new resource is validated with the spec parser (the CLI's rules and messages); an
//!   invalid one gets a Failed condition and a Warning event, and nothing runs.
//! - A valid one is run by the engine in a task of its own ([`Runs`]), trials as Jobs owned by
//!   the resource. The task resumes the stored experiment if there is one (after an operator
//!   restart, its running Jobs are followed again, never launched twice).
//! - An edit of the trial limits (`maxTrialCount`, `parallelTrialCount`, ...) reaches the
//!   running task; an edit of anything the search depends on is refused with an event.
//! - `.status` is written from the store through the status subresource, only when it
//!   changed.
//! - Deletion goes through a finalizer: the run is cancelled (its Jobs are deleted by the
//!   executor), remaining Jobs with the experiment's label are deleted, then the finalizer is
//!   removed. The store keeps the history.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Resource, ResourceExt};

use super::Context;
use super::resource::{ExperimentResource, ExperimentStatus, document};
use super::runs::Start;
use super::status::{self, CREATED};
use crate::engine::check_resumable;
use crate::spec::{self, ExperimentSpec};
use crate::store::ExperimentState;

/// The finalizer the operator puts on every Experiment it runs.
pub const FINALIZER: &str = "tuneflow.dev/trials";

/// Label every trial Job carries: the experiment's resource name.
pub const EXPERIMENT_LABEL: &str = "tuneflow.dev/experiment";

/// How often a running experiment's status is refreshed without other news.
const REFRESH: Duration = Duration::from_secs(5);

/// The shortest time between two status refreshes of a running experiment.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// What can go wrong reconciling (retried with backoff by [`error_policy`]).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The API server refused or could not be reached.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The resource has no namespace (the CRD is namespaced, so only a broken API does this).
    #[error("the Experiment has no namespace")]
    NoNamespace,
}

/// The store's name for the experiment of a resource: `NAMESPACE.NAME` (experiment names hold
/// no dots, so it cannot collide, and several namespaces may use one name).
pub fn store_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// Reconciles one Experiment.
pub async fn reconcile(
    resource: Arc<ExperimentResource>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let namespace = resource.namespace().ok_or(ReconcileError::NoNamespace)?;
    let api: Api<ExperimentResource> = Api::namespaced(context.client.clone(), &namespace);
    finalizer(&api, FINALIZER, resource, |event| async {
        match event {
            finalizer::Event::Apply(resource) => apply(&resource, &namespace, &context).await,
            finalizer::Event::Cleanup(resource) => cleanup(&resource, &namespace, &context).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
            ReconcileError::Kube(e)
        }
        other => ReconcileError::Finalizer(other.to_string()),
    })
}

/// Retries a failed reconcile with a delay that grows with repeated failures (kube's
/// controller already spaces retries of one object; this sets the base).
pub fn error_policy(
    resource: Arc<ExperimentResource>,
    error: &ReconcileError,
    _context: Arc<Context>,
) -> Action {
    tracing::warn!(
        experiment = %resource.name_any(),
        namespace = ?resource.namespace(),
        "reconcile failed, retrying: {error}"
    );
    Action::requeue(Duration::from_secs(5))
}

async fn apply(
    resource: &ExperimentResource,
    namespace: &str,
    context: &Context,
) -> Result<Action, ReconcileError> {
    let uid = resource.uid().unwrap_or_default();
    let generation = resource.metadata.generation.unwrap_or(0);
    let mut status = resource.status.clone().unwrap_or_default();
    if status.conditions.iter().all(|c| c.type_ != CREATED) {
        status::set_condition(
            &mut status,
            CREATED,
            true,
            "ExperimentCreated",
            "the operator accepted the experiment",
        );
        context
            .event(resource, EventType::Normal, "ExperimentCreated", None)
            .await;
    }

    let parsed = parse(resource, namespace);
    let running = context.runs.current(&uid);
    let spec = match parsed {
        Ok(spec) => spec,
        Err(message) => {
            context
                .event(resource, EventType::Warning, "InvalidSpec", Some(&message))
                .await;
            if running.is_none() {
                status::set_failed(&mut status, "InvalidSpec", &message);
                status.observed_generation = Some(generation);
            }
            write_status(context, resource, namespace, status).await?;
            return Ok(if running.is_some() {
                Action::requeue(REFRESH)
            } else {
                Action::await_change()
            });
        }
    };

    if let Some(run) = running {
        if run.generation < generation {
            match check_resumable(&run.spec, &spec) {
                Ok(()) => {
                    context
                        .runs
                        .update(&uid, spec.clone(), document(resource), generation);
                    context
                        .event(
                            resource,
                            EventType::Normal,
                            "SpecUpdated",
                            Some("the new trial limits apply now"),
                        )
                        .await;
                }
                Err(e) => {
                    let message =
                        format!("{e}; delete the Experiment and create it again to change it");
                    context.runs.reject(&uid, generation);
                    context
                        .event(
                            resource,
                            EventType::Warning,
                            "SpecChangeRefused",
                            Some(&message),
                        )
                        .await;
                }
            }
        }
    } else if let Err(message) = context.executor_check(resource, &spec) {
        context
            .event(resource, EventType::Warning, "CannotRun", Some(&message))
            .await;
        status::set_failed(&mut status, "CannotRun", &message);
        status.observed_generation = Some(generation);
        write_status(context, resource, namespace, status).await?;
        return Ok(Action::await_change());
    } else {
        let stored = context.store.experiment(&spec.name).await?;
        // A stored experiment older than this resource belongs to an earlier resource of the
        // same name: this one starts over.
        let fresh = stored
            .as_ref()
            .is_some_and(|s| older_than(s.created_at, resource));
        // Finished, or stopped on request (`tuneflow stop`, the dashboard): nothing runs
        // until the spec changes (a new generation).
        let finished = stored.as_ref().is_some_and(|s| {
            let stopped = s.state == ExperimentState::Interrupted
                && s.reason.as_deref() == Some(crate::engine::rules::STOPPED);
            !fresh
                && (stopped
                    || matches!(
                        s.state,
                        ExperimentState::Succeeded | ExperimentState::Failed
                    ))
                && status.observed_generation.unwrap_or(0) >= generation
        });
        if !finished {
            context.runs.start(
                Start {
                    uid: uid.clone(),
                    resource,
                    spec: spec.clone(),
                    document: document(resource),
                    generation,
                    fresh,
                },
                context,
            )?;
        }
    }

    status.observed_generation = Some(generation);
    let mut active = context.runs.current(&uid).is_some();
    // A running experiment's Jobs change all the time; its status (which reads every trial
    // from the store) is refreshed at most once per STATUS_INTERVAL, and always at the end.
    if active
        && resource.status.as_ref().and_then(|s| s.observed_generation) == Some(generation)
        && let Some(wait) = context.runs.throttle(&uid, STATUS_INTERVAL)
    {
        return Ok(Action::requeue(wait));
    }
    let stored = context.store.experiment(&spec.name).await?;
    if let Some(stored) = stored {
        let trials = context.store.trials(stored.id).await?;
        let failed_before = status.trials_failed;
        status::update_from_store(&mut status, &stored, &trials);
        if status.trials_failed > failed_before
            && let Some(note) = status::latest_failure(&trials, status.trials_failed)
        {
            context
                .event(resource, EventType::Warning, "TrialFailed", Some(&note))
                .await;
        }
        if let Some(ended) = context.runs.take_finished(&uid) {
            active = false;
            if let Err(message) = ended {
                context
                    .event(resource, EventType::Warning, "RunFailed", Some(&message))
                    .await;
                status::set_failed(&mut status, "RunFailed", &message);
            } else if let Some(state) = status.state.as_deref() {
                context
                    .event(
                        resource,
                        EventType::Normal,
                        &format!("Experiment{state}"),
                        stored.message.as_deref(),
                    )
                    .await;
            }
        }
    }
    write_status(context, resource, namespace, status).await?;
    Ok(if active {
        Action::requeue(REFRESH)
    } else {
        Action::await_change()
    })
}

async fn cleanup(
    resource: &ExperimentResource,
    namespace: &str,
    context: &Context,
) -> Result<Action, ReconcileError> {
    let name = resource.name_any();
    let uid = resource.uid().unwrap_or_default();
    context.runs.stop(&uid).await;
    let jobs: Api<Job> = Api::namespaced(context.client.clone(), namespace);
    let selector = format!("{EXPERIMENT_LABEL}={name}");
    let left = jobs
        .list_metadata(&ListParams::default().labels(&selector))
        .await?;
    if !left.items.is_empty() {
        jobs.delete_collection(
            &DeleteParams::background(),
            &ListParams::default().labels(&selector),
        )
        .await?;
        tracing::info!(experiment = %name, %namespace, jobs = left.items.len(), "deleted the experiment's remaining Jobs");
    }
    context
        .event(
            resource,
            EventType::Normal,
            "ExperimentDeleted",
            Some("its trials' Jobs were deleted; the store keeps its history"),
        )
        .await;
    Ok(Action::await_change())
}

/// The resource's spec, validated like a spec file, under its store name.
fn parse(resource: &ExperimentResource, namespace: &str) -> Result<ExperimentSpec, String> {
    let name = resource.name_any();
    let text = super::resource::document(resource);
    let source = format!("Experiment {namespace}/{name}");
    let mut spec = spec::parse_str(&text, &source).map_err(|errors| errors.to_string())?;
    spec.name = store_name(namespace, &name);
    spec.namespace = Some(namespace.to_string());
    Ok(spec)
}

/// Whether a store timestamp is from before the resource was created (whole seconds, as the
/// API server keeps them).
fn older_than(created_micros: i64, resource: &ExperimentResource) -> bool {
    let Some(created) = resource.metadata.creation_timestamp.as_ref() else {
        return false;
    };
    created_micros / 1_000_000 < created.0.as_second()
}

/// Writes `status` through the status subresource when it differs from the resource's.
async fn write_status(
    context: &Context,
    resource: &ExperimentResource,
    namespace: &str,
    status: ExperimentStatus,
) -> Result<(), ReconcileError> {
    if resource.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<ExperimentResource> = Api::namespaced(context.client.clone(), namespace);
    let patch = serde_json::json!({ "status": status });
    api.patch_status(
        &resource.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

impl Context {
    /// Publishes an event about `resource` (failures are logged, never fatal).
    pub(crate) async fn event(
        &self,
        resource: &ExperimentResource,
        type_: EventType,
        reason: &str,
        note: Option<&str>,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: note.map(|n| n.chars().take(1000).collect()),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = self
            .recorder
            .publish(&event, &resource.object_ref(&()))
            .await
        {
            tracing::debug!("cannot publish event {reason}: {e}");
        }
    }
}
