//! The Kubernetes operator: `Experiment` resources (`tuneflow.dev/v1alpha1`) run by the
//! engine, with trials as Jobs.
//!
//! One process does what Katib spreads over a controller, a suggestion Deployment per
//! experiment, a database, a db-manager and a sidecar per trial: it watches Experiments (and
//! their Jobs) with kube's controller runtime, runs each experiment's engine in a task, follows
//! trial logs through the API server, and keeps the whole history in its store (SQLite on a
//! volume, or PostgreSQL), never in the resource. Several replicas may run: a
//! `coordination.k8s.io` Lease elects the one that works; losing the lease ends the process so
//! that the next leader takes over from the store.

pub mod controller;
pub mod jobs;
pub mod resource;
pub mod runs;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::engine::TrackingEndpoint;
use crate::executor::Executor;
use crate::spec::ExperimentSpec;
use crate::store::Store;
use controller::{EXPERIMENT_LABEL, error_policy, reconcile};
use resource::ExperimentResource;
use runs::Runs;

/// Builds the executor that runs one Experiment's trials (Jobs owned by the resource).
pub trait ExecutorFactory: Send + Sync {
    /// The executor for `resource`'s trials.
    fn executor_for(&self, resource: &ExperimentResource) -> Arc<dyn Executor>;
}

/// What the reconciler works with.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The store: the whole trial history.
    pub store: Arc<dyn Store>,
    /// Where trial logs are written.
    pub logs_dir: PathBuf,
    /// Publishes events about Experiments.
    pub recorder: Recorder,
    /// The running experiments.
    pub runs: Runs,
    /// Builds each experiment's executor.
    pub executors: Arc<dyn ExecutorFactory>,
    /// The tracking API trials of the MLflow collector log to.
    pub tracking: Option<TrackingEndpoint>,
}

impl Context {
    /// Whether `resource`'s trials can run (see [`Executor::check`]).
    pub fn executor_check(
        &self,
        resource: &ExperimentResource,
        spec: &ExperimentSpec,
    ) -> Result<(), String> {
        self.executors.executor_for(resource).check(spec)
    }
}

/// Leader election settings.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// The Lease's name.
    pub lease: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long the lease holds without renewal.
    pub duration: Duration,
}

/// How to run the operator.
pub struct OperatorConfig {
    /// The API client.
    pub client: Client,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Where trial logs are written.
    pub logs_dir: PathBuf,
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// Elect a leader among replicas (no election when `None`: a single replica).
    pub leader_election: Option<LeaderElection>,
    /// Builds each experiment's executor.
    pub executors: Arc<dyn ExecutorFactory>,
    /// The tracking API for trials of the MLflow collector.
    pub tracking: Option<TrackingEndpoint>,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// Another replica took the lease.
    #[error("lost the leader lease {0}; exiting so that the new leader takes over")]
    LostLeadership(String),
    /// Leader election failed.
    #[error("leader election on lease {lease}: {message}")]
    Election {
        /// The Lease.
        lease: String,
        /// What failed.
        message: String,
    },
}

/// Runs the operator until `shutdown` fires (or the lease is lost). Running trials are left
/// alone when it stops: the next operator follows them again.
pub async fn run(config: OperatorConfig, shutdown: CancellationToken) -> Result<(), OperatorError> {
    let Some(election) = config.leader_election.clone() else {
        run_controller(config, shutdown).await;
        return Ok(());
    };
    let manager =
        kube_lease_manager::LeaseManagerBuilder::new(config.client.clone(), &election.lease)
            .with_namespace(&election.namespace)
            .with_identity(&election.identity)
            .with_duration(election.duration.as_secs().max(2))
            .with_grace((election.duration.as_secs() / 3).max(1))
            .build()
            .await
            .map_err(|e| OperatorError::Election {
                lease: election.lease.clone(),
                message: e.to_string(),
            })?;
    let (mut leading, manager_task) = manager.watch().await;
    tracing::info!(lease = %election.lease, identity = %election.identity, "waiting to lead");
    loop {
        if *leading.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() {
                return Err(OperatorError::Election {
                    lease: election.lease.clone(),
                    message: "the lease manager stopped".to_string(),
                });
            },
            () = shutdown.cancelled() => return Ok(()),
        }
    }
    tracing::info!(lease = %election.lease, identity = %election.identity, "leading");
    let lost = CancellationToken::new();
    let stop = CancellationToken::new();
    {
        let (lost, stop, shutdown) = (lost.clone(), stop.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = leading.changed() => {
                        if changed.is_err() || !*leading.borrow_and_update() {
                            lost.cancel();
                            stop.cancel();
                            return;
                        }
                    }
                    () = shutdown.cancelled() => {
                        stop.cancel();
                        // Dropping the receiver ends the manager, which releases the lease.
                        return;
                    }
                }
            }
        });
    }
    run_controller(config, stop).await;
    // The watcher task dropped its receiver, so the manager releases the lease and ends.
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(5), manager_task).await {
        tracing::debug!("cannot release the lease: {e}");
    }
    if lost.is_cancelled() {
        return Err(OperatorError::LostLeadership(election.lease));
    }
    Ok(())
}

/// Reconciles Experiments until `stop` fires.
async fn run_controller(config: OperatorConfig, stop: CancellationToken) {
    let (wake, woken) = futures::channel::mpsc::unbounded();
    let context = Arc::new(Context {
        client: config.client.clone(),
        store: config.store,
        logs_dir: config.logs_dir,
        recorder: Recorder::new(
            config.client.clone(),
            Reporter {
                controller: "tuneflow-operator".to_string(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        runs: Runs::new(wake),
        executors: config.executors,
        tracking: config.tracking,
    });
    let (experiments, jobs): (Api<ExperimentResource>, Api<Job>) = match &config.namespace {
        Some(namespace) => (
            Api::namespaced(config.client.clone(), namespace),
            Api::namespaced(config.client.clone(), namespace),
        ),
        None => (
            Api::all(config.client.clone()),
            Api::all(config.client.clone()),
        ),
    };
    tracing::info!(namespace = ?config.namespace, "watching Experiments");
    Controller::new(experiments, watcher::Config::default())
        .owns(jobs, watcher::Config::default().labels(EXPERIMENT_LABEL))
        .reconcile_on(woken)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, error_policy, context.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("reconcile: {e}");
            }
        })
        .await;
    context.runs.detach_all();
    tracing::info!("stopped watching Experiments");
}
