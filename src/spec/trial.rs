//! `spec.trialTemplate`: what each trial runs, and the placeholder rules.
//!
//! A template is either tuneflow-native (`command`, `env`, `workingDir`, `timeout`) or Katib's
//! (`trialSpec`, a Kubernetes manifest, with `trialParameters`); both may be mixed, in which
//! case an explicit `command` overrides the Job container's for local runs while the manifest
//! is kept for Kubernetes. The placeholder rules are Katib's: every `${trialParameters.X}` in
//! the template is defined, every trialParameter is used somewhere, names and references are
//! unique, and each reference is a parameter or a supported `${trialSpec.*}` key. The shorthand
//! `${parameters.X}` must name a parameter.
//!
//! `successCondition` and `failureCondition` (Katib's conditions on the trial's resource) are
//! read and checked to be strings, but not kept: the local executor decides success by exit
//! status.

use std::collections::HashMap;
use std::time::Duration;

use super::document::{Node, Value};
use super::katib;
use super::model::{EnvVar, Flavor, TrialParameter, TrialTemplate};
use super::template::{META_REFERENCES, MetaReference, Placeholder, meta_reference, placeholders};
use super::walk::{Fields, Reader, did_you_mean, error_at, index, join};

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
];
const TRIAL_PARAMETER_FIELDS: &[&str] = &["name", "description", "reference"];
const ENV_FIELDS: &[&str] = &["name", "value"];

/// A string of the document in which placeholders are substituted.
#[derive(Debug, Clone)]
pub(crate) struct TemplateString<'a> {
    /// Its node (for the position).
    pub node: &'a Node,
    /// Its path.
    pub path: String,
    /// Its text.
    pub text: &'a str,
}

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
    for key in ["successCondition", "failureCondition", "workingDir"] {
        if let Some(node) = fields.get(key) {
            reader.string(node, &fields.child(key));
        }
    }
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
    })
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

/// A reference names a parameter or supported trial metadata.
fn check_reference(
    reader: &mut Reader,
    reference: &str,
    node: &Node,
    path: &str,
    parameter_names: &[String],
) {
    match meta_reference(reference) {
        Some(Ok(_)) => {}
        Some(Err(())) => {
            let mut error = error_at(
                node,
                path,
                format!("unsupported trial metadata reference \"{reference}\""),
            );
            error.hint = Some(format!("supported: {META_REFERENCES}"));
            reader.report(error);
        }
        None if parameter_names.iter().any(|name| name == reference) => {}
        None => {
            let names: Vec<&str> = parameter_names.iter().map(String::as_str).collect();
            let mut error = error_at(
                node,
                path,
                format!(
                    "\"{reference}\" is neither a parameter in spec.parameters nor trial metadata"
                ),
            );
            error.hint = Some(did_you_mean(reference, &names).unwrap_or_else(|| {
                format!(
                    "parameters: {}; trial metadata: {META_REFERENCES}",
                    names.join(", ")
                )
            }));
            reader.report(error);
        }
    }
}

/// Every placeholder is defined, every trial parameter is used, and labels and annotations
/// referenced exist in the trialSpec. With a configMap template the template is unknown, so
/// unused trial parameters cannot be told.
fn check_placeholders(
    reader: &mut Reader,
    strings: &[TemplateString<'_>],
    trial_parameters: &[(TrialParameter, Node)],
    template: &Fields<'_>,
    context: Context<'_>,
    template_unknown: bool,
) {
    let defined: Vec<&str> = trial_parameters
        .iter()
        .map(|(parameter, _)| parameter.name.as_str())
        .collect();
    let parameter_names: Vec<&str> = context.parameter_names.iter().map(String::as_str).collect();
    let mut used = vec![false; trial_parameters.len()];
    for string in strings {
        for placeholder in placeholders(string.text) {
            let (name, known, what, list_name) = match placeholder {
                Placeholder::TrialParameter(name) => {
                    let position = defined.iter().position(|defined| *defined == name);
                    if let Some(position) = position {
                        used[position] = true;
                    }
                    (
                        name,
                        position.is_some(),
                        "trial parameter",
                        "spec.trialTemplate.trialParameters",
                    )
                }
                Placeholder::Parameter(name) => (
                    name,
                    parameter_names.contains(&name),
                    "parameter",
                    "spec.parameters",
                ),
            };
            if !known {
                let candidates = if what == "parameter" {
                    &parameter_names
                } else {
                    &defined
                };
                let mut error = error_at(
                    string.node,
                    string.path.as_str(),
                    format!("undefined {what} \"{name}\""),
                );
                error.hint = Some(
                    did_you_mean(name, candidates)
                        .unwrap_or_else(|| format!("define it in {list_name}")),
                );
                reader.report(error);
            }
        }
    }
    let trial_spec = template.get("trialSpec");
    let trial_parameters_path = template.child("trialParameters");
    for (i, (parameter, node)) in trial_parameters.iter().enumerate() {
        let item_path = index(&trial_parameters_path, i);
        if !used[i] && !template_unknown {
            let name_node = node.get("name").unwrap_or(node);
            let mut error = error_at(
                name_node,
                join(&item_path, "name"),
                format!(
                    "trial parameter \"{}\" is not used in the trial template",
                    parameter.name
                ),
            );
            error.hint = Some(format!(
                "use it as ${{trialParameters.{}}} or remove it",
                parameter.name
            ));
            reader.report(error);
        }
        let (section, key) = match meta_reference(&parameter.reference) {
            Some(Ok(MetaReference::Label(key))) => ("labels", key),
            Some(Ok(MetaReference::Annotation(key))) => ("annotations", key),
            _ => continue,
        };
        let present = trial_spec
            .and_then(|spec| spec.get("metadata"))
            .and_then(|metadata| metadata.get(section))
            .and_then(|map| map.get(key))
            .is_some();
        if !present && !template_unknown {
            let reference_node = node.get("reference").unwrap_or(node);
            let mut error = error_at(
                reference_node,
                join(&item_path, "reference"),
                format!("the trialSpec has no {section} \"{key}\""),
            );
            error.hint = Some(format!(
                "add it under spec.trialTemplate.trialSpec.metadata.{section}"
            ));
            reader.report(error);
        }
    }
}

/// Every string value of a manifest, with its path.
fn manifest_strings<'a>(node: &'a Node, path: &str, out: &mut Vec<TemplateString<'a>>) {
    match &node.value {
        Value::Str(text) => out.push(TemplateString {
            node,
            path: path.to_string(),
            text,
        }),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                manifest_strings(item, &index(path, i), out);
            }
        }
        Value::Map(entries) => {
            for entry in entries {
                manifest_strings(&entry.value, &join(path, &entry.key), out);
            }
        }
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
    }
}

fn list_strings<'a>(node: &'a Node, path: &str, out: &mut Vec<TemplateString<'a>>) {
    if let Value::List(_) = node.value {
        manifest_strings(node, path, out);
    }
}

/// The values of a native `env` (list or map).
fn env_strings<'a>(node: &'a Node, path: &str, out: &mut Vec<TemplateString<'a>>) {
    match &node.value {
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(value) = item.get("value") {
                    manifest_strings(value, &join(&index(path, i), "value"), out);
                }
            }
        }
        Value::Map(_) => manifest_strings(node, path, out),
        _ => {}
    }
}
