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
    doc = "An experiment run by the tuneflow operator: spec is a tuneflow (or Katib) experiment spec; status is reported by the operator.",
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
    #[schemars(schema_with = "objective_schema")]
    pub objective: Option<serde_json::Value>,
    /// `algorithm`: the search algorithm and its settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "algorithm_schema")]
    pub algorithm: Option<serde_json::Value>,
    /// `earlyStopping`: the early-stopping rule and its settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "algorithm_schema")]
    pub early_stopping: Option<serde_json::Value>,
    /// `parallelTrialCount`: how many trials run at once (editable on a live resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub parallel_trial_count: Option<i64>,
    /// `maxTrialCount`: how many trials the experiment runs (editable on a live resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_trial_count: Option<i64>,
    /// `maxFailedTrialCount`: the experiment fails when more trials than this fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_failed_trial_count: Option<i64>,
    /// `parameters`: the search space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "parameters_schema")]
    pub parameters: Option<serde_json::Value>,
    /// `nasConfig` (Katib; refused with a clear error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub nas_config: Option<serde_json::Value>,
    /// `trialTemplate`: what each trial runs (a Job `trialSpec`, or a command and image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "trial_template_schema")]
    pub trial_template: Option<serde_json::Value>,
    /// `metricsCollectorSpec`: how metrics are collected (StdOut by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub metrics_collector_spec: Option<serde_json::Value>,
    /// `resumePolicy` (Katib).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Never", "LongRunning", "FromVolume"]))]
    pub resume_policy: Option<String>,
    /// `trialLeaseSeconds`: how long a client-driven trial may stay silent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2_592_000))]
    pub trial_lease_seconds: Option<i64>,
    /// `tracking`: other tracking systems (MLflow) trials are mirrored to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form")]
    pub tracking: Option<serde_json::Value>,
}

// The schemas of the structured parts of the spec. They describe the fields (for
// `kubectl explain` and editors) and type what has one type in every valid document, but each
// object also keeps unknown fields: the API server would otherwise prune a misspelt field
// silently, where the spec parser reports it with its path and the nearest name. Values that
// a valid document may write as a number or a string (bounds, goals, setting values) are left
// untyped. The parser stays the one place that decides what is valid.

/// A schema that accepts any value and keeps it as given.
fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// `objective`.
fn objective_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The metric to optimize and its direction.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "type": {
                "description": "minimize or maximize.",
                "type": "string",
                "enum": ["minimize", "maximize"],
            },
            "goal": {
                "description": "The experiment succeeds as soon as a trial's objective reaches this value.",
                "x-kubernetes-preserve-unknown-fields": true,
            },
            "objectiveMetricName": {
                "description": "The metric the trials report (e.g. `loss=0.3` on stdout).",
                "type": "string",
            },
            "additionalMetricNames": {
                "description": "Other metrics to record.",
                "type": "array",
                "items": { "type": "string" },
            },
            "metricStrategies": {
                "description": "How each metric's observations reduce to one value: min, max or latest.",
                "type": "array",
                "items": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {
                        "name": { "type": "string" },
                        "value": { "type": "string" },
                    },
                },
            },
        },
    })
}

/// `algorithm` and `earlyStopping`.
fn algorithm_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "An algorithm by name (random, grid, tpe, multivariate-tpe, hyperband; medianstop for early stopping) and its settings.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "algorithmName": { "type": "string" },
            "algorithmSettings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {
                        "name": { "type": "string" },
                        "value": {
                            "description": "The setting's value (a string, or a number).",
                            "x-kubernetes-preserve-unknown-fields": true,
                        },
                    },
                },
            },
        },
    })
}

/// `parameters`.
fn parameters_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The search space: one entry per parameter.",
        "type": "array",
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {
                "name": { "type": "string" },
                "parameterType": {
                    "type": "string",
                    "enum": ["double", "int", "discrete", "categorical"],
                },
                "feasibleSpace": {
                    "description": "min, max and step (numbers or strings holding them), or list, and distribution.",
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                },
            },
        },
    })
}

/// `trialTemplate`.
fn trial_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "What each trial runs: a command with kubernetes settings, or a Katib trialSpec (a Job manifest) with trialParameters and primaryContainerName.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "command": {
                "description": "The program and its arguments (no shell), with ${parameters.NAME} placeholders.",
                "type": "array",
                "items": { "x-kubernetes-preserve-unknown-fields": true },
            },
            "kubernetes": {
                "description": "How a command runs as a Job: image, resources, namespace, serviceAccount, nodeSelector, tolerations.",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "image": { "type": "string" },
                    "namespace": { "type": "string" },
                    "serviceAccount": { "type": "string" },
                },
            },
            "trialSpec": {
                "description": "A Kubernetes manifest (a batch/v1 Job) with ${trialParameters.NAME} placeholders.",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
            },
            "primaryContainerName": { "type": "string" },
            "retain": {
                "description": "Keep finished trials' Jobs and pods (true or false).",
                "x-kubernetes-preserve-unknown-fields": true,
            },
            "successCondition": { "type": "string" },
            "failureCondition": { "type": "string" },
        },
    })
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
        .map_or(Cow::Borrowed(TUNEFLOW_API_VERSION), |v| {
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

/// The `spec` fields whose schema type is integer, which a spec file may also write as
/// strings (`maxTrialCount: "12"`, accepted by the spec parser).
const INTEGER_FIELDS: &[&str] = &[
    "parallelTrialCount",
    "maxTrialCount",
    "maxFailedTrialCount",
    "trialLeaseSeconds",
];

/// The resource for a spec document (a tuneflow or Katib experiment file read as JSON): the
/// inverse of [`document`]. `metadata.name`, `namespace`, `labels` and `annotations` are
/// kept, the `spec` is copied as written (integers written as strings become numbers, so the
/// resource matches its schema), and a Katib document's `apiVersion` is recorded in the
/// [`SOURCE_API_VERSION`] annotation so that [`document`] gives it back.
///
/// # Errors
///
/// A sentence when the document has no `metadata.name` or its `spec` does not have the
/// resource's shape; documents that pass [`crate::spec::parse_str`] always convert.
pub fn from_document(document: &serde_json::Value) -> Result<ExperimentResource, String> {
    use serde_json::Value;
    let metadata = document
        .get("metadata")
        .and_then(Value::as_object)
        .ok_or("the document has no metadata")?;
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .ok_or("the document has no metadata.name")?;
    let mut spec = document
        .get("spec")
        .and_then(Value::as_object)
        .cloned()
        .ok_or("the document has no spec")?;
    // A null field means an absent one to the spec parser; the schema's typed fields do not
    // accept null, so drop them (the manifest in trialSpec is kept as written).
    for (key, value) in spec.iter_mut() {
        if key != "trialTemplate" {
            drop_nulls(value);
        } else if let Some(template) = value.as_object_mut() {
            template.retain(|key, value| key == "trialSpec" || !value.is_null());
            for (key, value) in template.iter_mut() {
                if key != "trialSpec" {
                    drop_nulls(value);
                }
            }
        }
    }
    spec.retain(|_, value| !value.is_null());
    for key in INTEGER_FIELDS {
        if let Some(value) = spec.get_mut(*key)
            && let Some(integer) = integer(value)
        {
            *value = integer.into();
        }
    }
    let spec: ExperimentSpecFields =
        serde_json::from_value(Value::Object(spec)).map_err(|error| format!("spec: {error}"))?;
    let mut resource = ExperimentResource::new(name, spec);
    resource.metadata.namespace = metadata
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    resource.metadata.labels = metadata.get("labels").and_then(string_map);
    let mut annotations = metadata
        .get("annotations")
        .and_then(string_map)
        .unwrap_or_default();
    match document.get("apiVersion").and_then(Value::as_str) {
        Some(api_version) if api_version != TUNEFLOW_API_VERSION => {
            annotations.insert(SOURCE_API_VERSION.to_string(), api_version.to_string());
        }
        _ => {
            annotations.remove(SOURCE_API_VERSION);
        }
    }
    resource.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    Ok(resource)
}

/// Removes the null fields of every map in `value`, at any depth.
fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, value| !value.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// tuneflow's own `apiVersion`.
const TUNEFLOW_API_VERSION: &str = "tuneflow.dev/v1alpha1";

/// An integer written as a number or a string (`"12"`, `12.0`).
fn integer(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::String(text) => text.trim().parse().ok(),
        serde_json::Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|x| x.fract() == 0.0 && x.abs() < 2f64.powi(53))
                .map(|x| x as i64)
        }),
        _ => None,
    }
}

/// Labels or annotations: a map whose scalar values are spelled out as text.
fn string_map(value: &serde_json::Value) -> Option<std::collections::BTreeMap<String, String>> {
    let map = value.as_object()?;
    let pairs = map.iter().map(|(key, value)| {
        let text = match value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        (key.clone(), text)
    });
    Some(pairs.collect())
}

/// The `CustomResourceDefinition` of [`ExperimentResource`] as YAML (`tuneflow crd`, and
/// `deploy/crd.yaml`).
///
/// # Errors
///
/// When the definition cannot be written as YAML (it always can; the error is passed on
/// rather than unwrapped).
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    use kube::CustomResourceExt;
    let yaml = serde_saphyr::to_string(&ExperimentResource::crd())?;
    Ok(format!(
        "# The Experiment CustomResourceDefinition, generated from src/operator/resource.rs \
         by `tuneflow crd`.\n# Do not edit: run `cargo run -- crd > deploy/crd.yaml`.\n{yaml}"
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn katib_document() -> serde_json::Value {
        json!({
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": "k", "namespace": "ns", "labels": {"tier": 2},
                         "annotations": {"note": true}},
            "spec": {
                "objective": {"type": "minimize", "goal": null, "objectiveMetricName": "loss"},
                "algorithm": {"algorithmName": "random"},
                "maxTrialCount": "4",
                "parallelTrialCount": 2.0,
                "resumePolicy": null,
                "parameters": [{"name": "lr", "parameterType": "double",
                                "feasibleSpace": {"min": "0.01", "max": "0.1", "step": null}}],
                "trialTemplate": {
                    "primaryContainerName": "main",
                    "retain": null,
                    "trialParameters": [{"name": "lr", "reference": "lr"}],
                    "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                        "containers": [{"name": "main", "image": "python", "resources": null,
                                        "command": ["python", "--lr=${trialParameters.lr}"]}],
                        "restartPolicy": "Never"}}}}
                }
            }
        })
    }

    #[test]
    fn a_document_becomes_a_resource_and_back() {
        let resource = from_document(&katib_document()).expect("converts");
        assert_eq!(resource.metadata.name.as_deref(), Some("k"));
        assert_eq!(resource.metadata.namespace.as_deref(), Some("ns"));
        let labels = resource.metadata.labels.clone().expect("labels");
        assert_eq!(labels.get("tier").map(String::as_str), Some("2"));
        let annotations = resource.metadata.annotations.clone().expect("annotations");
        assert_eq!(annotations.get("note").map(String::as_str), Some("true"));
        assert_eq!(
            annotations.get(SOURCE_API_VERSION).map(String::as_str),
            Some("kubeflow.org/v1beta1")
        );
        // Integers written otherwise become integers; nulls go, except in the manifest.
        assert_eq!(resource.spec.max_trial_count, Some(4));
        assert_eq!(resource.spec.parallel_trial_count, Some(2));
        assert_eq!(resource.spec.resume_policy, None);
        let objective = resource.spec.objective.clone().expect("objective");
        assert!(objective.get("goal").is_none());
        let template = resource.spec.trial_template.clone().expect("template");
        assert!(template.get("retain").is_none());
        assert!(
            template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["resources"]
                .is_null()
        );
        assert!(
            template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
                .as_object()
                .is_some_and(|c| c.contains_key("resources"))
        );

        let back: serde_json::Value = serde_json::from_str(&document(&resource)).expect("JSON");
        assert_eq!(back["apiVersion"], "kubeflow.org/v1beta1");
        assert_eq!(back["metadata"], json!({"name": "k", "namespace": "ns"}));
        assert_eq!(back["spec"]["maxTrialCount"], 4);
    }

    #[test]
    fn a_native_document_drops_a_stale_source_annotation() {
        let mut document = katib_document();
        document["apiVersion"] = "tuneflow.dev/v1alpha1".into();
        document["metadata"]["annotations"] = json!({SOURCE_API_VERSION: "kubeflow.org/v1beta1"});
        let resource = from_document(&document).expect("converts");
        assert_eq!(resource.metadata.annotations, None);
        assert!(self::document(&resource).contains("\"apiVersion\":\"tuneflow.dev/v1alpha1\""));
    }

    #[test]
    fn documents_without_a_name_or_spec_are_refused() {
        let mut document = katib_document();
        document["metadata"] = json!({"namespace": "ns"});
        assert_eq!(
            from_document(&document).err().as_deref(),
            Some("the document has no metadata.name")
        );
        let mut document = katib_document();
        document["spec"] = json!([1]);
        assert_eq!(
            from_document(&document).err().as_deref(),
            Some("the document has no spec")
        );
    }
}
