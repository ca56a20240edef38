//! The operator's trials: Kubernetes Jobs owned by their Experiment resource.

use std::sync::Arc;
use std::time::Duration;

use kube::{Client, Resource, ResourceExt};

use super::ExecutorFactory;
use super::resource::ExperimentResource;
use crate::executor::Executor;
use crate::executor::kubernetes::{KubernetesExecutor, KubernetesSettings};

/// Builds a [`KubernetesExecutor`] per Experiment: Jobs in the resource's namespace (unless
/// the template names another), owned by the resource, so the API server's garbage collector
/// deletes them with it even if the operator is gone. Every executor shares one pair of
/// watches per namespace.
pub struct KubernetesExecutors {
    base: KubernetesExecutor,
    image_pull_timeout: Duration,
}

impl KubernetesExecutors {
    /// Executors over `client`, failing trials whose image cannot be pulled within
    /// `image_pull_timeout`.
    pub fn new(client: Client, image_pull_timeout: Duration) -> KubernetesExecutors {
        KubernetesExecutors {
            base: KubernetesExecutor::new(client, KubernetesSettings::new("default")),
            image_pull_timeout,
        }
    }
}

impl ExecutorFactory for KubernetesExecutors {
    fn executor_for(&self, resource: &ExperimentResource) -> Arc<dyn Executor> {
        let mut settings =
            KubernetesSettings::new(resource.namespace().unwrap_or_else(|| "default".into()));
        settings.owner = resource.controller_owner_ref(&());
        settings.image_pull_timeout = self.image_pull_timeout;
        Arc::new(self.base.with_settings(settings))
    }
}
