//! The placeholder rules of trial templates, checked over every string that gets substituted.
//!
//! They are Katib's: every `${trialParameters.X}` in the template is defined, every
//! trialParameter is used somewhere (in the trialSpec, the command, the environment or the
//! metrics file path), and each `reference` is a parameter or a supported `${trialSpec.*}`
//! key, whose label or annotation exists in the trialSpec. The shorthand `${parameters.X}`
//! must name a parameter.

use super::document::{Node, Value};
use super::model::TrialParameter;
use super::template::{META_REFERENCES, MetaReference, Placeholder, meta_reference, placeholders};
use super::trial::Context;
use super::walk::{Fields, Reader, did_you_mean, error_at, index, join};

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

/// A reference names a parameter or supported trial metadata.
pub(crate) fn check_reference(
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
pub(crate) fn check_placeholders(
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
            let (name, candidates, what, list_name) = match placeholder {
                Placeholder::TrialParameter(name) => (
                    name,
                    &defined,
                    "trial parameter",
                    "spec.trialTemplate.trialParameters",
                ),
                Placeholder::Parameter(name) => {
                    (name, &parameter_names, "parameter", "spec.parameters")
                }
            };
            let position = candidates.iter().position(|candidate| *candidate == name);
            if let (Placeholder::TrialParameter(_), Some(position)) = (placeholder, position) {
                used[position] = true;
            }
            if position.is_none() {
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
pub(crate) fn manifest_strings<'a>(node: &'a Node, path: &str, out: &mut Vec<TemplateString<'a>>) {
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

pub(crate) fn list_strings<'a>(node: &'a Node, path: &str, out: &mut Vec<TemplateString<'a>>) {
    if let Value::List(_) = node.value {
        manifest_strings(node, path, out);
    }
}

/// The values of a native `env` (list or map).
pub(crate) fn env_strings<'a>(node: &'a Node, path: &str, out: &mut Vec<TemplateString<'a>>) {
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
