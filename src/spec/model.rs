//! The validated experiment: what every front door (CLI, REST, operator) hands to the engine.
//!
//! A [`ExperimentSpec`] only exists once a document has passed validation, so the engine,
//! executors and collectors rely on its invariants (known algorithm, consistent bounds, every
//! placeholder defined) instead of checking them again.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tuneflow_algorithms::{Direction, SearchSpace, Setting};

/// Where a document came from: tuneflow's own `apiVersion` or Katib's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Flavor {
    /// `apiVersion: tuneflow.dev/v1alpha1`.
    Tuneflow,
    /// `apiVersion: kubeflow.org/v1beta1`, accepted unchanged.
    Katib,
}

/// A validated experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSpec {
    /// `metadata.name`: unique in a store.
    pub name: String,
    /// `metadata.namespace`, when given (Kubernetes only).
    pub namespace: Option<String>,
    /// Which `apiVersion` the document used.
    pub flavor: Flavor,
    /// `spec.objective`.
    pub objective: Objective,
    /// `spec.algorithm`.
    pub algorithm: AlgorithmSpec,
    /// `spec.earlyStopping`, when given.
    pub early_stopping: Option<AlgorithmSpec>,
    /// `spec.parallelTrialCount` (default 3).
    pub parallel_trial_count: u32,
    /// `spec.maxTrialCount`: trials of any final state counted; unbounded when absent.
    pub max_trial_count: Option<u32>,
    /// `spec.maxFailedTrialCount`: the experiment fails when *more* than this many trials
    /// fail (Failed + MetricsUnavailable).
    pub max_failed_trial_count: Option<u32>,
    /// `spec.parameters`, as a search space.
    pub space: SearchSpace,
    /// `spec.trialTemplate`; absent for client-driven experiments.
    pub trial_template: Option<TrialTemplate>,
    /// `spec.metricsCollectorSpec` (default: StdOut with Katib's line format).
    pub metrics_collector: MetricsCollector,
    /// `spec.trialLeaseSeconds` (tuneflow only): how long a trial handed to a client may go
    /// without an observation or heartbeat before it is failed; a default applies when absent.
    #[serde(default)]
    pub trial_lease_seconds: Option<u64>,
    /// `spec.tracking` (tuneflow only): other tracking systems the trials are mirrored to.
    #[serde(default)]
    pub tracking: Tracking,
}

/// `spec.tracking`: where else the experiment's trials are recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracking {
    /// `mlflow.uri`: an MLflow tracking server (http or https) that every trial is mirrored
    /// to; the `--mlflow-uri` flag overrides it.
    #[serde(default)]
    pub mlflow_uri: Option<String>,
}

/// `spec.objective`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// `type`: minimize or maximize.
    pub direction: Direction,
    /// `goal`: the experiment succeeds as soon as a trial's objective reaches it.
    pub goal: Option<f64>,
    /// `objectiveMetricName`.
    pub metric: String,
    /// `additionalMetricNames`.
    pub additional_metrics: Vec<String>,
    /// `metricStrategies`, one per metric named above (defaults filled in: min for minimize,
    /// max for maximize).
    pub metric_strategies: Vec<MetricStrategy>,
}

/// How a metric's observations reduce to one value for a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The smallest observation.
    Min,
    /// The largest observation.
    Max,
    /// The last observation (by step, then time).
    Latest,
}

/// One entry of `metricStrategies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricStrategy {
    /// The metric's name.
    pub name: String,
    /// How its observations reduce.
    pub strategy: Strategy,
}

/// `spec.algorithm` or `spec.earlyStopping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgorithmSpec {
    /// `algorithmName`.
    pub name: String,
    /// `algorithmSettings`, in order.
    pub settings: Vec<Setting>,
}

/// `spec.trialTemplate`, reduced to what running a trial needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialTemplate {
    /// The argv to run (no shell), with `${trialParameters.X}` / `${parameters.X}`
    /// placeholders still in it. For Katib Job templates: the primary container's
    /// `command` followed by its `args`.
    pub command: Vec<String>,
    /// Extra environment variables (placeholders allowed in values).
    pub env: Vec<EnvVar>,
    /// Working directory; relative paths are relative to the spec file's directory.
    pub working_dir: Option<String>,
    /// Wall-clock limit for one trial; the trial is killed (state Killed) when it is exceeded.
    #[serde(with = "duration_secs")]
    pub timeout: Option<Duration>,
    /// `trialParameters`: names usable as `${trialParameters.NAME}`.
    pub trial_parameters: Vec<TrialParameter>,
    /// `primaryContainerName` (Katib Job templates).
    pub primary_container_name: Option<String>,
    /// The Katib `trialSpec` manifest as given, kept for the Kubernetes executor.
    pub trial_spec: Option<serde_json::Value>,
    /// `retain`: keep finished trials' resources (Kubernetes).
    pub retain: bool,
    /// `kubernetes` (tuneflow only): how a native template's `command` runs as a Kubernetes
    /// Job (image, resources, ...). Absent for Katib `trialSpec` templates, which carry
    /// their own manifest.
    #[serde(default)]
    pub kubernetes: Option<KubernetesTemplate>,
    /// `successCondition`: when the trial's Job counts as succeeded (Katib's GJSON-style
    /// condition on the resource); `None` means Katib's default (a `Complete` condition with
    /// status `True`).
    #[serde(default)]
    pub success_condition: Option<String>,
    /// `failureCondition`: when the trial's Job counts as failed; `None` means Katib's
    /// default (a `Failed` condition with status `True`).
    #[serde(default)]
    pub failure_condition: Option<String>,
}

/// `trialTemplate.kubernetes`: the cluster settings of a native (command) template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubernetesTemplate {
    /// `image`: the container image the command runs in (required to run on Kubernetes).
    pub image: Option<String>,
    /// `resources`: the container's `ResourceRequirements` (requests, limits), as given.
    #[serde(default)]
    pub resources: Option<serde_json::Value>,
    /// `namespace`: where the trials' Jobs go (default: the experiment's namespace, then
    /// the client's default namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `serviceAccount`: the pods' service account.
    #[serde(default)]
    pub service_account: Option<String>,
    /// `nodeSelector`: labels a node must have.
    #[serde(default)]
    pub node_selector: std::collections::BTreeMap<String, String>,
    /// `tolerations`: the pods' `Toleration`s, as given.
    #[serde(default)]
    pub tolerations: Vec<serde_json::Value>,
}

/// One environment variable of a trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Value, placeholders allowed.
    pub value: String,
}

/// One entry of `trialParameters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialParameter {
    /// The name used in `${trialParameters.NAME}`.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// What it stands for: a parameter's name, or trial metadata such as `${trialSpec.Name}`.
    pub reference: String,
}

/// `spec.metricsCollectorSpec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsCollector {
    /// `collector.kind`.
    pub kind: CollectorKind,
    /// `source.fileSystemPath`, for the File collector.
    pub file: Option<FileSource>,
    /// `source.filter.metricsFormat`: regexes with two groups (name, value). Empty means
    /// Katib's default `name=value` format. Braces that Go's regexp reads as literals (Katib's
    /// examples use them) are already escaped, so `regex::Regex::new` accepts each one.
    pub metrics_format: Vec<String>,
}

impl Default for MetricsCollector {
    fn default() -> Self {
        MetricsCollector {
            kind: CollectorKind::StdOut,
            file: None,
            metrics_format: Vec::new(),
        }
    }
}

/// `collector.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CollectorKind {
    /// Parse the trial's standard output.
    StdOut,
    /// Parse a file the trial writes.
    File,
    /// Nothing is parsed: observations arrive through the API.
    Push,
    /// No metrics at all (Katib's `None`).
    None,
    /// The trial logs with MLflow's client (`mlflow.log_metric`) to tuneflow's tracking API,
    /// into its own run (`MLFLOW_TRACKING_URI` and `MLFLOW_RUN_ID` are set for it).
    #[serde(rename = "MLflow")]
    MLflow,
}

/// `source.fileSystemPath`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSource {
    /// The file's path (placeholders allowed).
    pub path: String,
    /// How its lines are written.
    pub format: FileFormat,
}

/// `fileSystemPath.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileFormat {
    /// Lines parsed like standard output.
    Text,
    /// One JSON object per line.
    Json,
}

/// The longest trial timeout accepted: a year. Longer ones are refused by validation (and
/// would overflow the clocks that enforce them).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    /// Reads what [`serialize`] wrote. A value beyond [`super::MAX_TIMEOUT`] (stored before
    /// validation bounded timeouts) reads as that bound rather than failing every read of
    /// the experiment.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let secs = Option::<f64>::deserialize(d)?;
        Ok(secs.filter(|s| s.is_finite() && *s >= 0.0).map(|s| {
            Duration::try_from_secs_f64(s)
                .unwrap_or(super::MAX_TIMEOUT)
                .min(super::MAX_TIMEOUT)
        }))
    }
}
