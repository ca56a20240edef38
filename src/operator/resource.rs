//! The `Experiment` custom resource (`tuneflow.dev/v1alpha1`): its spec is a tuneflow
//! experiment spec, as in a spec file; its status is what the operator reports back.
//!
//! The spec is validated by the same parser as a file ([`crate::spec::parse_str`]) after
//! [`document`] turns the resource back into a spec document, so the rules and error messages
//! are the ones the CLI gives. The CRD schema only describes the shape; it is structural
//! (apiextensions.k8s.io/v1), with free-form parts (`trialSpec`, settings) marked
//! `x-kubernetes-preserve-unknown-fields`.
//!
//! Trial history lives in the operator's store, never in the resource: the status holds counts
//! and the best trial only, so it stays small whatever the number of trials.

use std::borrow::Cow;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation that records the `apiVersion` a converted document had (`tuneflow submit` of a
/// Katib file), so the operator validates it by that flavour's rules.
pub const SOURCE_API_VERSION: &str = "tuneflow.dev/source-api-version";

/// The spec of an `Experiment` resource: the `spec` of a tuneflow (or Katib) experiment file.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tuneflow.dev",
    version = "v1alpha1",
    kind = "Experiment",
    plural = "experiments",
    singular = "experiment",
    shortname = "tfx",
    root = "ExperimentResource",
    namespaced,
    status = "ExperimentStatus",
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Trials","type":"integer","jsonPath":".status.trials"}"#,
    printcolumn = r#"{"name":"Succeeded","type":"integer","jsonPath":".status.trialsSucceeded"}"#,
    printcolumn = r#"{"name":"Best","type":"number","jsonPath":".status.bestObjective"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSpecFields {
    /// `objective`: the metric to optimize and its direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub objective: Option<serde_json::Value>,
    /// `algorithm`: the search algorithm and its settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub algorithm: Option<serde_json::Value>,
    /// `earlyStopping`: the early-stopping rule and its settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub early_stopping: Option<serde_json::Value>,
    /// `parallelTrialCount`: how many trials run at once (editable on a live resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_trial_count: Option<i64>,
    /// `maxTrialCount`: how many trials the experiment runs (editable on a live resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trial_count: Option<i64>,
    /// `maxFailedTrialCount`: the experiment fails when more trials than this fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_trial_count: Option<i64>,
    /// `parameters`: the search space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub parameters: Option<serde_json::Value>,
    /// `nasConfig` (Katib; refused with a clear error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub nas_config: Option<serde_json::Value>,
    /// `trialTemplate`: what each trial runs (a Job `trialSpec`, or a command and image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub trial_template: Option<serde_json::Value>,
    /// `metricsCollectorSpec`: how metrics are collected (StdOut by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub metrics_collector_spec: Option<serde_json::Value>,
    /// `resumePolicy` (Katib).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_policy: Option<String>,
    /// `trialLeaseSeconds`: how long a client-driven trial may stay silent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_lease_seconds: Option<i64>,
    /// `tracking`: other tracking systems (MLflow) trials are mirrored to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub tracking: Option<serde_json::Value>,
}

/// A schema that accepts any value and keeps it as given.
fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// What the operator reports on an `Experiment` (`.status`, written through the status
/// subresource).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// The latest condition's type: Created, Running, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Katib-style conditions, one per type, the latest last.
    #[serde(default)]
    pub conditions: Vec<ExperimentCondition>,
    /// When the operator started the experiment (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the experiment ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Trials created, of every state.
    #[serde(default)]
    pub trials: u64,
    /// Trials pending (created, not started).
    #[serde(default)]
    pub trials_pending: u64,
    /// Trials running.
    #[serde(default)]
    pub trials_running: u64,
    /// Trials succeeded.
    #[serde(default)]
    pub trials_succeeded: u64,
    /// Trials failed (Failed and MetricsUnavailable).
    #[serde(default)]
    pub trials_failed: u64,
    /// Trials killed.
    #[serde(default)]
    pub trials_killed: u64,
    /// Trials stopped early.
    #[serde(default)]
    pub trials_early_stopped: u64,
    /// The best objective value so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_objective: Option<f64>,
    /// The best trial so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_optimal_trial: Option<OptimalTrial>,
    /// The `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One condition of an experiment (Katib's `ExperimentCondition`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentCondition {
    /// Created, Running, Succeeded or Failed.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True" or "False".
    pub status: String,
    /// A CamelCase word saying why (ExperimentCreated, GoalReached, InvalidSpec, ...).
    #[serde(default)]
    pub reason: String,
    /// A sentence for people.
    #[serde(default)]
    pub message: String,
    /// When the condition was last updated (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// The best trial so far (Katib's `currentOptimalTrial`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptimalTrial {
    /// The trial's name.
    pub best_trial_name: String,
    /// Its parameter values, as strings (Katib's format).
    #[serde(default)]
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// Its objective metric.
    #[serde(default)]
    pub observation: Observation,
}

/// One parameter value of a trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ParameterAssignment {
    /// The parameter's name.
    pub name: String,
    /// Its value, as text.
    pub value: String,
}

/// The metrics of a trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Observation {
    /// One entry per metric.
    #[serde(default)]
    pub metrics: Vec<MetricValue>,
}

/// One metric of a trial: its objective value (the reduced one) and latest value, as text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricValue {
    /// The metric's name.
    pub name: String,
    /// The value the metric strategy picked, as text.
    pub latest: String,
}

/// The spec document of `resource`, as a spec file would hold it, for [`crate::spec::parse_str`].
/// `apiVersion` is the one recorded by [`SOURCE_API_VERSION`] when the resource was converted
/// from a Katib file, so its rules apply.
pub fn document(resource: &ExperimentResource) -> String {
    let api_version: Cow<'_, str> = resource
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SOURCE_API_VERSION))
        .map_or(Cow::Borrowed("tuneflow.dev/v1alpha1"), |v| {
            Cow::Owned(v.clone())
        });
    let mut metadata = serde_json::Map::new();
    if let Some(name) = &resource.metadata.name {
        metadata.insert("name".into(), name.clone().into());
    }
    if let Some(namespace) = &resource.metadata.namespace {
        metadata.insert("namespace".into(), namespace.clone().into());
    }
    serde_json::json!({
        "apiVersion": api_version,
        "kind": "Experiment",
        "metadata": metadata,
        "spec": resource.spec,
    })
    .to_string()
}
