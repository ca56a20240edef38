//! `spec.trialTemplate`: what each trial runs.
//!
//! A template is either tuneflow-native (`command`, `env`, `workingDir`, `timeout`) or Katib's
//! (`trialSpec`, a Kubernetes manifest, with `trialParameters`); both may be mixed, in which
//! case an explicit `command` overrides the Job container's for local runs while the manifest
//! is kept for Kubernetes. trialParameter names and references are unique (Katib's rule); the
//! rules on placeholders are in [`super::placeholders`].
//!
//! `kubernetes` (tuneflow only) says how a `command` template runs as a Kubernetes Job (see
//! [`super::kubernetes`]); a `trialSpec` carries its own image and resources, so the two do
//! not mix. `successCondition` and `failureCondition` (Katib's conditions on the trial's
//! resource) must have the one shape [`ResourceCondition::parse`] reads; they are kept for the
//! Kubernetes executor, while the local executor decides success by exit status.

use std::collections::HashMap;
use std::time::Duration;

use super::condition::{CONDITION_FORM, ResourceCondition};
use super::document::{Node, Value};
use super::katib;
use super::kubernetes::kubernetes;
use super::model::{EnvVar, Flavor, TrialParameter, TrialTemplate};
use super::placeholders::{
    TemplateString, check_placeholders, check_reference, env_strings, list_strings,
    manifest_strings,
};
use super::walk::{Fields, Reader, error_at, index, join};

const TEMPLATE_FIELDS: &[&str] = &[
    "command",
    "env",
    "workingDir",
    "timeout",
    "trialParameters",
    "primaryContainerName",
    "trialSpec",
    "configMap",
    "retain",
    "successCondition",
    "failureCondition",
    "kubernetes",
];
const TRIAL_PARAMETER_FIELDS: &[&str] = &["name", "description", "reference"];
const ENV_FIELDS: &[&str] = &["name", "value"];

/// What the template's rules need from the rest of the document.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// Which `apiVersion` the document uses.
    pub flavor: Flavor,
    /// The names of `spec.parameters` as written (even if some parameter is invalid).
    pub parameter_names: &'a [String],
    /// The metrics file path, which may hold placeholders too.
    pub metrics_path: Option<&'a TemplateString<'a>>,
}

/// Reads `spec.trialTemplate` at `path`.
pub(crate) fn trial_template(
    reader: &mut Reader,
    node: &Node,
    path: &str,
    context: Context<'_>,
) -> Option<TrialTemplate> {
    let fields = reader.fields(node, path, TEMPLATE_FIELDS)?;
    let errors_before = reader.errors.len();
    let trial_parameters = trial_parameters(reader, &fields, context.parameter_names);
    let primary = fields.get("primaryContainerName").and_then(|name| {
        let name_path = fields.child("primaryContainerName");
        reader
            .string(name, &name_path)
            .map(|text| (text, name, name_path))
    });
    if let Some(node) = fields.get("workingDir") {
        reader.string(node, &fields.child("workingDir"));
    }
    let success_condition = fields
        .get("successCondition")
        .and_then(|node| condition(reader, node, &fields.child("successCondition")));
    let failure_condition = fields
        .get("failureCondition")
        .and_then(|node| condition(reader, node, &fields.child("failureCondition")));
    let working_dir = fields
        .get("workingDir")
        .and_then(Node::as_str)
        .map(str::to_string);
    let timeout = fields
        .get("timeout")
        .and_then(|node| timeout(reader, node, &fields.child("timeout")));
    let retain = fields
        .get("retain")
        .and_then(|node| reader.boolean(node, &fields.child("retain")))
        .unwrap_or(false);

    let config_map = fields.get("configMap");
    if let Some(config_map) = config_map {
        let mut error = error_at(
            config_map,
            fields.child("configMap"),
            "trialTemplate.configMap is not available in this version of tuneflow",
        );
        error.hint = Some(
            "a template read from a ConfigMap needs a Kubernetes cluster; put the template \
             inline as trialSpec, or give a command"
                .to_string(),
        );
        reader.report(error);
    }

    let spec_path = fields.child("trialSpec");
    let trial_spec = fields.get("trialSpec");
    let kubernetes = fields.get("kubernetes").and_then(|node| {
        let path = fields.child("kubernetes");
        if trial_spec.is_some() {
            reader.report(
                error_at(
                    node,
                    path.as_str(),
                    "give either trialSpec or kubernetes, not both: a trialSpec carries its own \
                     image, resources and namespace",
                )
                .with_hint(
                    "set the image and resources in the trialSpec's container, or drop the \
                     trialSpec and give a command with kubernetes.image",
                ),
            );
        }
        kubernetes(reader, node, &path)
    });
    let mut local = katib::LocalCommand::default();
    if let Some(spec) = trial_spec {
        if config_map.is_some() {
            reader.error(
                spec,
                &spec_path,
                "give either trialSpec or configMap, not both",
            );
        }
        if context.flavor == Flavor::Katib && primary.is_none() {
            reader.missing(&fields, "primaryContainerName");
        }
        if check_manifest(reader, spec, &spec_path) && katib::is_job(spec) {
            let primary = primary
                .as_ref()
                .map(|(name, node, path)| (name.as_str(), *node, path.as_str()));
            local = katib::local_command(reader, spec, &spec_path, primary).unwrap_or_default();
        }
    }

    let command = match fields.get("command") {
        Some(node) => command(reader, node, &fields.child("command")),
        None => {
            if trial_spec.is_none() && config_map.is_none() {
                let mut error = error_at(
                    node,
                    fields.child("command"),
                    "missing required field \"command\"",
                );
                error.hint = Some(
                    "give the program to run as a list, e.g. command: [python3, train.py, \
                     \"--lr=${parameters.lr}\"]"
                        .to_string(),
                );
                reader.report(error);
            }
            Some(local.command)
        }
    };
    let mut env = local.env;
    if let Some(node) = fields.get("env") {
        for var in native_env(reader, node, &fields.child("env")).unwrap_or_default() {
            env.retain(|existing| existing.name != var.name);
            env.push(var);
        }
    }

    // The placeholder rules, over every string that gets substituted.
    let mut strings = Vec::new();
    if let Some(spec) = trial_spec {
        manifest_strings(spec, &spec_path, &mut strings);
    }
    if let Some(node) = fields.get("command") {
        list_strings(node, &fields.child("command"), &mut strings);
    }
    if let Some(node) = fields.get("env") {
        env_strings(node, &fields.child("env"), &mut strings);
    }
    strings.extend(context.metrics_path.cloned());
    let trial_parameters = trial_parameters?;
    check_placeholders(
        reader,
        &strings,
        &trial_parameters,
        &fields,
        context,
        config_map.is_some(),
    );

    let command = command?;
    (reader.errors.len() == errors_before).then(|| TrialTemplate {
        command,
        env,
        working_dir,
        timeout,
        trial_parameters: trial_parameters
            .into_iter()
            .map(|(parameter, _)| parameter)
            .collect(),
        primary_container_name: primary.map(|(name, _, _)| name),
        trial_spec: trial_spec.map(Node::to_json),
        retain,
        kubernetes,
        success_condition,
        failure_condition,
    })
}

/// `successCondition` or `failureCondition`: a condition path of the form Katib's examples
/// use, kept as written.
fn condition(reader: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let text = reader.string(node, path)?;
    match ResourceCondition::parse(&text) {
        Ok(_) => Some(text),
        Err(message) => {
            reader.report(error_at(node, path, message).with_hint(format!(
                "write {CONDITION_FORM}, e.g. status.conditions.#(type==\"Complete\")#|#(status==\"True\")#"
            )));
            None
        }
    }
}

/// `timeout`: a duration such as `90s`, `2h` or `1h30m`, or a number of seconds.
fn timeout(reader: &mut Reader, node: &Node, path: &str) -> Option<Duration> {
    let duration = match &node.value {
        Value::Int(_) | Value::Float(_) => {
            let seconds = reader.number(node, path)?;
            (seconds >= 0.0)
                .then(|| Duration::try_from_secs_f64(seconds).ok())
                .flatten()
        }
        Value::Str(text) => match humantime::parse_duration(text.trim()) {
            Ok(duration) => Some(duration),
            Err(error) => {
                let mut report =
                    error_at(node, path, format!("invalid duration \"{text}\": {error}"));
                report.hint =
                    Some("write a duration such as \"90s\", \"15m\" or \"1h30m\"".to_string());
                reader.report(report);
                return None;
            }
        },
        _ => {
            reader.string(node, path);
            return None;
        }
    };
    match duration {
        Some(duration) if duration > super::model::MAX_TIMEOUT => {
            reader.error(
                node,
                path,
                format!(
                    "must be at most {} (a year); leave it out for no timeout",
                    humantime::format_duration(super::model::MAX_TIMEOUT)
                ),
            );
            None
        }
        Some(duration) if !duration.is_zero() => Some(duration),
        _ => {
            reader.error(node, path, "must be a positive duration");
            None
        }
    }
}

/// Katib's checks on the manifest itself; true when it is a map with `apiVersion` and `kind`.
fn check_manifest(reader: &mut Reader, spec: &Node, path: &str) -> bool {
    if reader.map(spec, path).is_none() {
        return false;
    }
    let mut complete = true;
    for key in ["apiVersion", "kind"] {
        match spec.get(key) {
            Some(node) => complete &= reader.string(node, &join(path, key)).is_some(),
            None => {
                reader.error(
                    spec,
                    join(path, key),
                    format!("missing required field \"{key}\""),
                );
                complete = false;
            }
        }
    }
    if let Some(metadata) = spec.get("metadata") {
        for key in ["name", "namespace"] {
            if let Some(node) = metadata.get(key) {
                let mut error = error_at(
                    node,
                    join(path, &format!("metadata.{key}")),
                    "must be omitted: each trial's resource gets its own name and namespace",
                );
                error.hint = Some(format!("remove metadata.{key} from the trialSpec"));
                reader.report(error);
            }
        }
    }
    complete
}

/// `command`: a non-empty list of arguments (numbers are spelled out).
fn command(reader: &mut Reader, node: &Node, path: &str) -> Option<Vec<String>> {
    if let Value::Str(line) = &node.value {
        let words: Vec<&str> = line.split_whitespace().collect();
        let error = error_at(node, path, "expected a list, found a string").with_hint(format!(
            "trials run without a shell: write the program and its arguments as a list, \
             e.g. [{}]",
            words.join(", ")
        ));
        reader.report(error);
        return None;
    }
    let items = reader.list(node, path)?;
    if items.is_empty() {
        reader.error(node, path, "must hold at least the program to run");
        return None;
    }
    let args: Vec<Option<String>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| reader.text(item, &index(path, i)))
        .collect();
    args.into_iter().collect()
}

/// `env`: a list of `{name, value}` or a map from name to value.
fn native_env(reader: &mut Reader, node: &Node, path: &str) -> Option<Vec<EnvVar>> {
    if let Value::Map(_) = node.value {
        let pairs = reader.string_map(node, path)?;
        return Some(
            pairs
                .into_iter()
                .map(|(name, value, _)| EnvVar { name, value })
                .collect(),
        );
    }
    let Value::List(items) = &node.value else {
        reader.error(
            node,
            path,
            format!("expected a list or a map, found {}", node.value.describe()),
        );
        return None;
    };
    let mut vars = Vec::with_capacity(items.len());
    let mut valid = true;
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(fields) = reader.fields(item, &item_path, ENV_FIELDS) else {
            valid = false;
            continue;
        };
        let name = reader
            .required(&fields, "name")
            .and_then(|name| reader.string(name, &fields.child("name")));
        let value = match fields.get("value") {
            Some(value) => reader.text(value, &fields.child("value")),
            None => Some(String::new()),
        };
        match (name, value) {
            (Some(name), Some(value)) if !name.is_empty() => vars.push(EnvVar { name, value }),
            (Some(_), Some(_)) => {
                reader.error(item, fields.child("name"), "must not be empty");
                valid = false;
            }
            _ => valid = false,
        }
    }
    valid.then_some(vars)
}

/// `trialParameters`, each with the node of its entry. `None` when one is invalid.
fn trial_parameters(
    reader: &mut Reader,
    template: &Fields<'_>,
    parameter_names: &[String],
) -> Option<Vec<(TrialParameter, Node)>> {
    let Some(node) = template.get("trialParameters") else {
        return Some(Vec::new());
    };
    let path = template.child("trialParameters");
    let items = reader.list(node, &path)?;
    let mut parameters: Vec<(TrialParameter, Node)> = Vec::with_capacity(items.len());
    let mut valid = true;
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut references: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index(&path, i);
        let Some(fields) = reader.fields(item, &item_path, TRIAL_PARAMETER_FIELDS) else {
            valid = false;
            continue;
        };
        let read = |reader: &mut Reader, key: &str| -> Option<(String, &Node)> {
            let node = reader.required(&fields, key)?;
            let text = reader.string(node, &fields.child(key))?;
            if text.is_empty() {
                reader.error(node, fields.child(key), "must not be empty");
                return None;
            }
            Some((text, node))
        };
        let name = read(reader, "name");
        let reference = read(reader, "reference");
        let description = fields
            .get("description")
            .and_then(|node| reader.text(node, &fields.child("description")));
        let (Some((name, name_node)), Some((reference, reference_node))) = (name, reference) else {
            valid = false;
            continue;
        };
        let before = reader.errors.len();
        if name.contains(['{', '}']) {
            reader.error(
                name_node,
                fields.child("name"),
                "must not contain '{' or '}'",
            );
        }
        if let Some(first) = names.insert(name.clone(), i) {
            reader.error(
                name_node,
                fields.child("name"),
                format!("duplicate trial parameter name \"{name}\" (also {path}[{first}])"),
            );
        }
        if let Some(first) = references.insert(reference.clone(), i) {
            reader.error(
                reference_node,
                fields.child("reference"),
                format!("duplicate reference \"{reference}\" (also {path}[{first}])"),
            );
        }
        check_reference(
            reader,
            &reference,
            reference_node,
            &fields.child("reference"),
            parameter_names,
        );
        valid &= reader.errors.len() == before;
        parameters.push((
            TrialParameter {
                name,
                description,
                reference,
            },
            item.clone(),
        ));
    }
    valid.then_some(parameters)
}
