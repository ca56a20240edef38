//! The walk over a whole Experiment document: every rule, every error, one pass.
//!
//! Each part of the document is read by its own function, which reports what is wrong and
//! returns the part of the model it could build. Parts are read even when earlier ones failed,
//! so the user sees every problem at once; only the checks that combine parts (the algorithm
//! against the search space, placeholders against parameters) are skipped when a part they
//! need is missing, to avoid reporting one mistake twice.

use tuneflow_algorithms::Direction;

use super::algorithm;
use super::collector;
use super::document::{Node, Value};
use super::error::SpecError;
use super::model::{ExperimentSpec, Flavor, MetricStrategy, Objective, Strategy};
use super::parameters;
use super::tracking;
use super::trial;
use super::walk::{Fields, Reader, did_you_mean, error_at, index};

const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const METADATA_FIELDS: &[&str] = &["name", "namespace", "labels", "annotations"];
const SPEC_FIELDS: &[&str] = &[
    "objective",
    "algorithm",
    "earlyStopping",
    "parallelTrialCount",
    "maxTrialCount",
    "maxFailedTrialCount",
    "parameters",
    "nasConfig",
    "trialTemplate",
    "metricsCollectorSpec",
    "resumePolicy",
    "trialLeaseSeconds",
    "tracking",
];
const OBJECTIVE_FIELDS: &[&str] = &[
    "type",
    "goal",
    "objectiveMetricName",
    "additionalMetricNames",
    "metricStrategies",
];
const STRATEGY_FIELDS: &[&str] = &["name", "value"];
const API_VERSIONS: &[&str] = &["tuneflow.dev/v1alpha1", "kubeflow.org/v1beta1"];
/// Katib's rule for experiment names (they become label values and name prefixes).
const NAME_MAX_LEN: usize = 40;
/// The longest `trialLeaseSeconds` accepted: 30 days.
const MAX_TRIAL_LEASE_SECONDS: i64 = 30 * 24 * 3600;
/// `parallelTrialCount` when the document does not say (Katib's default).
const DEFAULT_PARALLEL_TRIALS: u32 = 3;

/// Validates a whole document and builds the experiment, or returns every error found.
pub(crate) fn experiment(root: &Node) -> Result<ExperimentSpec, Vec<SpecError>> {
    let mut reader = Reader::default();
    let spec = read_experiment(&mut reader, root);
    match spec {
        Some(spec) if reader.errors.is_empty() => Ok(spec),
        _ => {
            if reader.errors.is_empty() {
                reader.report(SpecError::new("", "the document is not a valid experiment"));
            }
            let mut errors = reader.errors;
            errors
                .sort_by_key(|error| (error.line.unwrap_or(usize::MAX), error.column.unwrap_or(0)));
            Err(errors)
        }
    }
}

fn read_experiment(reader: &mut Reader, root: &Node) -> Option<ExperimentSpec> {
    if !matches!(root.value, Value::Map(_)) {
        let error = error_at(
            root,
            "",
            format!(
                "expected an Experiment (a map with apiVersion, kind, metadata and spec), \
                 found {}",
                root.value.describe()
            ),
        );
        reader.report(error);
        return None;
    }
    let root = reader.fields(root, "", ROOT_FIELDS)?;
    let flavor = match reader.required(&root, "apiVersion") {
        Some(node) => match reader.choice(node, "apiVersion", API_VERSIONS) {
            Some("kubeflow.org/v1beta1") => Some(Flavor::Katib),
            Some(_) => Some(Flavor::Tuneflow),
            None => None,
        },
        None => None,
    };
    if let Some(node) = reader.required(&root, "kind") {
        reader.choice(node, "kind", &["Experiment"]);
    }
    let (name, namespace) = match reader.required(&root, "metadata") {
        Some(node) => metadata(reader, node),
        None => (None, None),
    };
    let spec_node = reader.required(&root, "spec")?;
    let spec = reader.fields(spec_node, "spec", SPEC_FIELDS)?;

    let objective = reader
        .required(&spec, "objective")
        .and_then(|node| objective(reader, node, "spec.objective"));
    let (parallel, max_trials, max_failed) = counts(reader, &spec);
    let trial_lease = trial_lease(reader, &spec);
    let tracking = match spec.get("tracking") {
        Some(node) => tracking::tracking(reader, node, &spec.child("tracking")),
        None => Some(Default::default()),
    };
    if let Some(node) = spec.get("resumePolicy") {
        reader.choice(
            node,
            "spec.resumePolicy",
            &["Never", "LongRunning", "FromVolume"],
        );
    }
    let nas = spec.get("nasConfig");
    if let Some(node) = nas {
        let mut error = error_at(
            node,
            "spec.nasConfig",
            "neural architecture search (nasConfig) is not available in this version of tuneflow",
        );
        error.hint = Some("tune hyperparameters with spec.parameters".to_string());
        reader.report(error);
    }
    let parameters_node = spec.get("parameters");
    let space = match parameters_node {
        Some(node) => parameters::search_space(reader, node, "spec.parameters"),
        None if nas.is_some() => None,
        None => {
            reader.missing(&spec, "parameters");
            None
        }
    };
    let algorithm = reader
        .required(&spec, "algorithm")
        .and_then(|node| algorithm::algorithm(reader, node, space.as_ref(), parameters_node));
    let early_stopping = spec
        .get("earlyStopping")
        .and_then(|node| algorithm::early_stopping(reader, node));

    let collector = collector::metrics_collector(
        reader,
        spec.get("metricsCollectorSpec"),
        "spec.metricsCollectorSpec",
    );
    let parameter_names = raw_parameter_names(parameters_node);
    let trial_template = match spec.get("trialTemplate") {
        Some(node) => {
            let context = trial::Context {
                flavor: flavor.unwrap_or(Flavor::Tuneflow),
                parameter_names: &parameter_names,
                metrics_path: collector.metrics_path.as_ref(),
            };
            Some(trial::trial_template(
                reader,
                node,
                "spec.trialTemplate",
                context,
            )?)
        }
        None => None,
    };

    Some(ExperimentSpec {
        name: name?,
        namespace,
        flavor: flavor?,
        objective: objective?,
        algorithm: algorithm?,
        early_stopping: early_stopping.flatten(),
        parallel_trial_count: parallel?,
        max_trial_count: max_trials?,
        max_failed_trial_count: max_failed?,
        space: space?,
        trial_template,
        metrics_collector: collector.collector?,
        trial_lease_seconds: trial_lease?,
        tracking: tracking?,
    })
}

/// `name` when it follows the one rule for metric names (`spec::names`): a metric that could
/// never be reported is refused here rather than at the trial's first report.
fn metric_name(reader: &mut Reader, node: &Node, path: &str, name: String) -> Option<String> {
    match super::names::check_metric_name(&name) {
        Ok(()) => Some(name),
        Err(e) => {
            reader.error(node, path, format!("\"{}\": {e}", name.escape_debug()));
            None
        }
    }
}

/// `trialLeaseSeconds` (a tuneflow extension): how long a client-driven trial may go without
/// an observation or heartbeat before it is failed.
fn trial_lease(reader: &mut Reader, spec: &Fields<'_>) -> Option<Option<u64>> {
    let Some(node) = spec.get("trialLeaseSeconds") else {
        return Some(None);
    };
    let path = spec.child("trialLeaseSeconds");
    let value = reader.integer(node, &path)?;
    if !(1..=MAX_TRIAL_LEASE_SECONDS).contains(&value) {
        reader.error(
            node,
            path,
            format!("must be between 1 and {MAX_TRIAL_LEASE_SECONDS} seconds (30 days)"),
        );
        return None;
    }
    Some(u64::try_from(value).ok())
}

/// `metadata`: the name (Katib's pattern and length) and namespace.
fn metadata(reader: &mut Reader, node: &Node) -> (Option<String>, Option<String>) {
    let Some(fields) = reader.fields(node, "metadata", METADATA_FIELDS) else {
        return (None, None);
    };
    let name = reader.required(&fields, "name").and_then(|node| {
        let name = reader.string(node, "metadata.name")?;
        if valid_name(&name) {
            Some(name)
        } else {
            let mut error = error_at(
                node,
                "metadata.name",
                format!(
                    "\"{name}\" is not a valid experiment name: use lower-case letters, digits and '-', \
                     start with a letter, end with a letter or digit, at most {NAME_MAX_LEN} characters"
                ),
            );
            error.hint = Some("e.g. \"mnist-random\"".to_string());
            reader.report(error);
            None
        }
    });
    let namespace = fields
        .get("namespace")
        .and_then(|node| reader.string(node, "metadata.namespace"));
    for key in ["labels", "annotations"] {
        if let Some(node) = fields.get(key) {
            reader.string_map(node, &fields.child(key));
        }
    }
    (name, namespace)
}

/// `^[a-z]([-a-z0-9]*[a-z0-9])?$`, at most [`NAME_MAX_LEN`] characters.
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    bytes.len() <= NAME_MAX_LEN
        && first.is_ascii_lowercase()
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn objective(reader: &mut Reader, node: &Node, path: &str) -> Option<Objective> {
    let fields = reader.fields(node, path, OBJECTIVE_FIELDS)?;
    let before = reader.errors.len();
    let direction = reader
        .required(&fields, "type")
        .and_then(|node| reader.choice(node, &fields.child("type"), &["minimize", "maximize"]))
        .map(|kind| {
            if kind == "maximize" {
                Direction::Maximize
            } else {
                Direction::Minimize
            }
        });
    let goal = fields
        .get("goal")
        .and_then(|node| reader.number(node, &fields.child("goal")));
    let metric = reader
        .required(&fields, "objectiveMetricName")
        .and_then(|node| {
            let path = fields.child("objectiveMetricName");
            let name = non_empty_string(reader, node, &path)?;
            metric_name(reader, node, &path, name)
        });
    let additional_path = fields.child("additionalMetricNames");
    let additional = match fields.get("additionalMetricNames") {
        Some(node) => reader
            .strings(node, &additional_path)
            .map(|names| (names, Some(node))),
        None => Some((Vec::new(), None)),
    };
    if let Some((names, Some(list))) = &additional {
        let items = match &list.value {
            Value::List(items) => items.as_slice(),
            _ => &[],
        };
        for (i, (name, item)) in names.iter().zip(items).enumerate() {
            let item_path = index(&additional_path, i);
            if metric_name(reader, item, &item_path, name.clone()).is_none() {
                continue;
            }
            if metric.as_ref() == Some(name) {
                reader.error(
                    item,
                    item_path,
                    format!("\"{name}\" is the objective metric; list only other metrics here"),
                );
            } else if let Some(first) = names[..i].iter().position(|other| other == name) {
                reader.error(
                    item,
                    item_path,
                    format!("duplicate metric name \"{name}\" (also {additional_path}[{first}])"),
                );
            }
        }
    }
    let (Some(direction), Some(metric), Some((additional, _))) = (direction, metric, additional)
    else {
        return None;
    };
    let default = match direction {
        Direction::Minimize => Strategy::Min,
        Direction::Maximize => Strategy::Max,
    };
    let mut metric_strategies: Vec<MetricStrategy> = std::iter::once(&metric)
        .chain(&additional)
        .map(|name| MetricStrategy {
            name: name.clone(),
            strategy: default,
        })
        .collect();
    if let Some(node) = fields.get("metricStrategies") {
        strategies(
            reader,
            node,
            &fields.child("metricStrategies"),
            &mut metric_strategies,
        );
    }
    (reader.errors.len() == before).then_some(Objective {
        direction,
        goal,
        metric,
        additional_metrics: additional,
        metric_strategies,
    })
}

/// `metricStrategies`: each names a metric of the objective and overrides its default.
fn strategies(reader: &mut Reader, node: &Node, path: &str, strategies: &mut [MetricStrategy]) {
    let Some(items) = reader.list(node, path) else {
        return;
    };
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(fields) = reader.fields(item, &item_path, STRATEGY_FIELDS) else {
            continue;
        };
        let name_node = reader.required(&fields, "name");
        let name = name_node.and_then(|node| reader.string(node, &fields.child("name")));
        let value = reader.required(&fields, "value").and_then(|node| {
            reader.choice(node, &fields.child("value"), &["min", "max", "latest"])
        });
        let (Some(name), Some(name_node)) = (name, name_node) else {
            continue;
        };
        if let Some((_, first)) = seen.iter().find(|(seen, _)| *seen == name) {
            reader.error(
                name_node,
                fields.child("name"),
                format!("duplicate strategy for metric \"{name}\" (also {path}[{first}])"),
            );
            continue;
        }
        seen.push((name.clone(), i));
        let known: Vec<String> = strategies
            .iter()
            .map(|strategy| strategy.name.clone())
            .collect();
        let Some(target) = strategies.iter_mut().find(|strategy| strategy.name == name) else {
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let mut error = error_at(
                name_node,
                fields.child("name"),
                format!("\"{name}\" is neither the objective metric nor an additional metric"),
            );
            error.hint = did_you_mean(&name, &known).or(Some(
                "add it to spec.objective.additionalMetricNames".to_string(),
            ));
            reader.report(error);
            continue;
        };
        target.strategy = match value {
            Some("max") => Strategy::Max,
            Some("latest") => Strategy::Latest,
            Some(_) => Strategy::Min,
            None => continue,
        };
    }
}

/// `parallelTrialCount`, `maxTrialCount`, `maxFailedTrialCount`. Without an explicit
/// `parallelTrialCount` the default (3) is lowered to `maxTrialCount` when that is smaller.
///
/// Katib's webhook also rejects `maxFailedTrialCount > maxTrialCount`, yet its own
/// `simple-pbt` example has it; since such a limit is merely never reached, tuneflow accepts
/// it so that Katib's examples validate unchanged.
fn counts(
    reader: &mut Reader,
    spec: &Fields<'_>,
) -> (Option<u32>, Option<Option<u32>>, Option<Option<u32>>) {
    let mut read = |key: &str, minimum: u32| -> Option<Option<(u32, &Node)>> {
        let Some(node) = spec.get(key) else {
            return Some(None);
        };
        let path = spec.child(key);
        let value = reader.integer(node, &path)?;
        let message = if value < i64::from(minimum) {
            if minimum == 0 {
                "must not be negative".to_string()
            } else {
                format!("must be at least {minimum}")
            }
        } else {
            match u32::try_from(value) {
                Ok(value) => return Some(Some((value, node))),
                Err(_) => format!("must be at most {}", u32::MAX),
            }
        };
        reader.error(node, path, message);
        None
    };
    let parallel = read("parallelTrialCount", 1);
    let max_trials = read("maxTrialCount", 1);
    let max_failed = read("maxFailedTrialCount", 0);
    if let (Some(Some((max, _))), Some(Some((parallel, node)))) = (max_trials, parallel)
        && parallel > max
    {
        reader.error(
            node,
            spec.child("parallelTrialCount"),
            format!("must not exceed maxTrialCount ({max})"),
        );
    }
    let max_value = max_trials.map(|max| max.map(|(max, _)| max));
    let parallel = match (parallel, max_value) {
        (Some(Some((parallel, _))), _) => Some(parallel),
        (Some(None), Some(Some(max))) => Some(DEFAULT_PARALLEL_TRIALS.min(max)),
        (Some(None), _) => Some(DEFAULT_PARALLEL_TRIALS),
        (None, _) => None,
    };
    (
        parallel,
        max_value,
        max_failed.map(|failed| failed.map(|(failed, _)| failed)),
    )
}

pub(crate) fn non_empty_string(reader: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let text = reader.string(node, path)?;
    if text.trim().is_empty() {
        reader.error(node, path, "must not be empty");
        return None;
    }
    Some(text)
}

/// The `name` of every entry of `spec.parameters`, as written, for placeholder checks.
fn raw_parameter_names(parameters: Option<&Node>) -> Vec<String> {
    match parameters.map(|node| &node.value) {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|item| item.get("name").and_then(Node::as_str))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}
