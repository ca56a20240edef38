//! `spec.algorithm` and `spec.earlyStopping`.
//!
//! The algorithm is checked by building it with `tuneflow_algorithms::build` over the search
//! space, so the algorithm crate stays the one place that knows which settings and spaces
//! each algorithm accepts; its errors are mapped back to document paths here. Setting values
//! may be YAML strings (as Katib writes them) or numbers, and are kept as strings.
//!
//! Early stopping is checked the same way, by building the rule.

use tuneflow_algorithms::{AVAILABLE, AlgorithmError, SearchSpace, Setting};

use super::document::{Node, Value};
use super::model::AlgorithmSpec;
use super::validate::non_empty_string;
use super::walk::{Fields, Reader, did_you_mean, error_at, index, one_of};

const ALGORITHM_FIELDS: &[&str] = &["algorithmName", "algorithmSettings"];
const SETTING_FIELDS: &[&str] = &["name", "value"];
/// Early-stopping rules tuneflow implements.
const EARLY_STOPPING: &[&str] = tuneflow_algorithms::stopping::AVAILABLE;

/// `spec.algorithm`, checked by building it over the search space.
pub(crate) fn algorithm(
    reader: &mut Reader,
    node: &Node,
    space: Option<&SearchSpace>,
    parameters: Option<&Node>,
) -> Option<AlgorithmSpec> {
    let path = "spec.algorithm";
    let (name, settings, fields) = algorithm_fields(reader, node, path)?;
    let name_node = fields.get("algorithmName").unwrap_or(node);
    let settings_nodes: &[Node] = match fields.get("algorithmSettings").map(|node| &node.value) {
        Some(Value::List(items)) => items,
        _ => &[],
    };
    let empty = SearchSpace::default();
    let Err(errors) = tuneflow_algorithms::build(&name, &settings, space.unwrap_or(&empty)) else {
        return Some(AlgorithmSpec { name, settings });
    };
    let available = AVAILABLE.join(", ");
    for error in errors {
        let report = match error {
            AlgorithmError::Unknown { name, suggestion } => {
                let hint = match suggestion {
                    Some(suggestion) => {
                        format!("did you mean \"{suggestion}\"? available: {available}")
                    }
                    None => format!("available: {available}"),
                };
                error_at(
                    name_node,
                    fields.child("algorithmName"),
                    format!("unknown algorithm \"{name}\""),
                )
                .with_hint(hint)
            }
            AlgorithmError::NotAvailable { name } => error_at(
                name_node,
                fields.child("algorithmName"),
                format!("algorithm \"{name}\" is not available in this version of tuneflow"),
            )
            .with_hint(format!("available: {available}")),
            AlgorithmError::Setting { index: i, message } => {
                let at = settings_nodes.get(i).unwrap_or(node);
                error_at(at, index(&fields.child("algorithmSettings"), i), message)
            }
            // Without a valid space the algorithm was checked against an empty one: its
            // complaints about the space are not the user's problem yet.
            AlgorithmError::Space { .. } if space.is_none() => continue,
            AlgorithmError::Space { parameter, message } => {
                let items: &[Node] = match parameters.map(|node| &node.value) {
                    Some(Value::List(items)) => items,
                    _ => &[],
                };
                match parameter {
                    Some(i) => error_at(
                        items.get(i).or(parameters).unwrap_or(node),
                        index("spec.parameters", i),
                        message,
                    ),
                    None => error_at(parameters.unwrap_or(node), "spec.parameters", message),
                }
            }
        };
        reader.report(report);
    }
    None
}

/// `algorithmName` and `algorithmSettings` of `spec.algorithm` or `spec.earlyStopping`.
fn algorithm_fields<'a>(
    reader: &mut Reader,
    node: &'a Node,
    path: &str,
) -> Option<(String, Vec<Setting>, Fields<'a>)> {
    let fields = reader.fields(node, path, ALGORITHM_FIELDS)?;
    let name = reader
        .required(&fields, "algorithmName")
        .and_then(|node| non_empty_string(reader, node, &fields.child("algorithmName")));
    let settings = match fields.get("algorithmSettings") {
        Some(node) => settings(reader, node, &fields.child("algorithmSettings")),
        None => Some(Vec::new()),
    };
    Some((name?, settings?, fields))
}

/// `algorithmSettings`: `{name, value}` pairs; values may be strings or numbers.
fn settings(reader: &mut Reader, node: &Node, path: &str) -> Option<Vec<Setting>> {
    let items = reader.list(node, path)?;
    let mut settings = Vec::with_capacity(items.len());
    let mut valid = true;
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let Some(fields) = reader.fields(item, &item_path, SETTING_FIELDS) else {
            valid = false;
            continue;
        };
        let name = reader
            .required(&fields, "name")
            .and_then(|node| non_empty_string(reader, node, &fields.child("name")));
        let value = match fields.get("value") {
            Some(node) => reader.text(node, &fields.child("value")),
            None => Some(String::new()),
        };
        match (name, value) {
            (Some(name), Some(value)) => settings.push(Setting { name, value }),
            _ => valid = false,
        }
    }
    valid.then_some(settings)
}

/// `spec.earlyStopping`, checked by building the rule (`tuneflow_algorithms::stopping`).
pub(crate) fn early_stopping(reader: &mut Reader, node: &Node) -> Option<Option<AlgorithmSpec>> {
    let path = "spec.earlyStopping";
    let (name, settings, fields) = algorithm_fields(reader, node, path)?;
    let name_node = fields.get("algorithmName").unwrap_or(node);
    let settings_nodes: &[Node] = match fields.get("algorithmSettings").map(|node| &node.value) {
        Some(Value::List(items)) => items,
        _ => &[],
    };
    let Err(errors) = tuneflow_algorithms::stopping::build(&name, &settings) else {
        return Some(Some(AlgorithmSpec { name, settings }));
    };
    let known = one_of(EARLY_STOPPING);
    for error in errors {
        let report = match error {
            AlgorithmError::Setting { index: i, message } => {
                let at = settings_nodes.get(i).unwrap_or(node);
                let at_path = if i < settings.len() {
                    index(&fields.child("algorithmSettings"), i)
                } else {
                    fields.child("algorithmSettings")
                };
                error_at(at, at_path, message)
            }
            _ => {
                let hint = match did_you_mean(&name, EARLY_STOPPING) {
                    Some(hint) => format!("{hint} known: {known}"),
                    None => format!("known: {known}"),
                };
                error_at(
                    name_node,
                    fields.child("algorithmName"),
                    format!("unknown early stopping algorithm \"{name}\""),
                )
                .with_hint(hint)
            }
        };
        reader.report(report);
    }
    None
}
