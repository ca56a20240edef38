//! `spec.parameters`: from the document's feasible spaces to a [`SearchSpace`].
//!
//! The rules are Katib's webhook rules plus the ones its suggestion services enforce later
//! (and that tuneflow prefers to report up front): double and int parameters need `min` and
//! `max` and no `list`; discrete and categorical ones need a non-empty `list` and no bounds or
//! step; steps are positive and fit in the range; log-scale distributions need `min > 0`.
//! Numbers may be YAML numbers or strings, since Katib writes them as strings.
//!
//! An int range may be a single value (`min == max`): Katib's own Hyperband example uses one.
//! A double range must not be empty (`min < max`).

use std::collections::HashMap;

use tuneflow_algorithms::{Distribution, Domain, Parameter, SearchSpace};

use super::document::Node;
use super::walk::{Fields, Reader, index};

const PARAMETER_FIELDS: &[&str] = &["name", "parameterType", "feasibleSpace"];
const FEASIBLE_SPACE_FIELDS: &[&str] = &["min", "max", "step", "list", "distribution"];
const PARAMETER_TYPES: &[&str] = &["double", "int", "discrete", "categorical"];
const DISTRIBUTIONS: &[&str] = &["uniform", "logUniform", "normal", "logNormal"];

/// Reads `spec.parameters` (the list node at `path`). Returns the search space only when
/// every parameter is valid.
pub(crate) fn search_space(reader: &mut Reader, node: &Node, path: &str) -> Option<SearchSpace> {
    let items = reader.list(node, path)?;
    if items.is_empty() {
        reader.error(node, path, "must hold at least one parameter");
        return None;
    }
    let mut parameters = Vec::with_capacity(items.len());
    let mut all_valid = true;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let parameter = parameter(reader, item, &item_path);
        if let Some(parameter) = &parameter {
            if let Some(first) = seen.get(&parameter.name) {
                let name_node = item.get("name").unwrap_or(item);
                reader.error(
                    name_node,
                    format!("{item_path}.name"),
                    format!(
                        "duplicate parameter name \"{}\" (also {path}[{first}])",
                        parameter.name
                    ),
                );
                all_valid = false;
            } else {
                seen.insert(parameter.name.clone(), i);
            }
        }
        match parameter {
            Some(parameter) => parameters.push(parameter),
            None => all_valid = false,
        }
    }
    all_valid.then_some(SearchSpace { parameters })
}

fn parameter(reader: &mut Reader, node: &Node, path: &str) -> Option<Parameter> {
    let fields = reader.fields(node, path, PARAMETER_FIELDS)?;
    let name = reader
        .required(&fields, "name")
        .and_then(|name| reader.string(name, &fields.child("name")));
    if let (Some(name), Some(node)) = (&name, fields.get("name"))
        && name.trim().is_empty()
    {
        reader.error(node, fields.child("name"), "must not be empty");
    }
    let kind = reader
        .required(&fields, "parameterType")
        .and_then(|kind| reader.choice(kind, &fields.child("parameterType"), PARAMETER_TYPES));
    let space_path = fields.child("feasibleSpace");
    let space = reader.required(&fields, "feasibleSpace");
    let space = space.and_then(|space| reader.fields(space, &space_path, FEASIBLE_SPACE_FIELDS));
    let domain = match (kind, space) {
        (Some(kind @ ("double" | "int")), Some(space)) => numeric(reader, &space, kind == "int"),
        (Some(kind), Some(space)) => listed(reader, &space, kind == "discrete"),
        _ => None,
    }?;
    let name = name.filter(|name| !name.trim().is_empty())?;
    Some(Parameter { name, domain })
}

/// `double` and `int`: bounds, optional step and distribution.
fn numeric(reader: &mut Reader, space: &Fields<'_>, int: bool) -> Option<Domain> {
    let type_name = if int { "int" } else { "double" };
    if let Some(list) = space.get("list") {
        let mut error = super::walk::error_at(
            list,
            space.child("list"),
            format!("a list is not allowed for {type_name} parameters"),
        );
        error.hint = Some(
            "use parameterType discrete (numbers) or categorical (strings) to pick from a list"
                .to_string(),
        );
        reader.report(error);
    }
    let read = |reader: &mut Reader, key: &str| -> Option<f64> {
        let node = space.get(key)?;
        if int {
            reader.integer(node, &space.child(key)).map(|i| i as f64)
        } else {
            reader.number(node, &space.child(key))
        }
    };
    let min_node = reader.required(space, "min");
    let max_node = reader.required(space, "max");
    let min = min_node.and_then(|_| read(reader, "min"));
    let max = max_node.and_then(|_| read(reader, "max"));
    let step = read(reader, "step");
    let distribution = match space.get("distribution") {
        Some(node) => match reader.choice(node, &space.child("distribution"), DISTRIBUTIONS)? {
            "logUniform" => Distribution::LogUniform,
            "normal" => Distribution::Normal,
            "logNormal" => Distribution::LogNormal,
            _ => Distribution::Uniform,
        },
        None => Distribution::Uniform,
    };
    let (min, max) = (min?, max?);
    let mut valid = true;
    if let Some(max_node) = max_node {
        if int && max < min {
            reader.error(
                max_node,
                space.child("max"),
                format!("must be greater than or equal to min ({min})"),
            );
            valid = false;
        } else if !int && max <= min {
            reader.error(
                max_node,
                space.child("max"),
                format!("must be greater than min ({min})"),
            );
            valid = false;
        }
    }
    if matches!(
        distribution,
        Distribution::LogUniform | Distribution::LogNormal
    ) && min <= 0.0
        && let Some(min_node) = min_node
    {
        let name = if distribution == Distribution::LogUniform {
            "logUniform"
        } else {
            "logNormal"
        };
        reader.error(
            min_node,
            space.child("min"),
            format!("must be greater than 0 for a {name} distribution"),
        );
        valid = false;
    }
    if let (Some(step), Some(step_node)) = (step, space.get("step")) {
        if step <= 0.0 {
            reader.error(step_node, space.child("step"), "must be greater than 0");
            valid = false;
        } else if min < max && step > max - min {
            reader.error(
                step_node,
                space.child("step"),
                format!("must not exceed max - min ({})", max - min),
            );
            valid = false;
        }
    }
    if !valid {
        return None;
    }
    Some(if int {
        Domain::Int {
            min: min as i64,
            max: max as i64,
            step: step.map(|step| step as i64),
            distribution,
        }
    } else {
        Domain::Double {
            min,
            max,
            step,
            distribution,
        }
    })
}

/// `discrete` and `categorical`: a non-empty list without duplicates, nothing else.
fn listed(reader: &mut Reader, space: &Fields<'_>, discrete: bool) -> Option<Domain> {
    let type_name = if discrete { "discrete" } else { "categorical" };
    for key in ["min", "max", "step", "distribution"] {
        if let Some(node) = space.get(key) {
            let mut error = super::walk::error_at(
                node,
                space.child(key),
                format!("\"{key}\" is not allowed for {type_name} parameters"),
            );
            error.hint = Some(format!(
                "a {type_name} parameter takes its values from \"list\"; use parameterType \
                 double or int for a range"
            ));
            reader.report(error);
        }
    }
    let list_path = space.child("list");
    let list = reader.required(space, "list")?;
    let items = reader.list(list, &list_path)?;
    if items.is_empty() {
        reader.error(list, &list_path, "must hold at least one value");
        return None;
    }
    let mut valid = true;
    // (position in the list, value) of every readable item, for duplicate reports.
    let mut texts: Vec<(usize, String)> = Vec::with_capacity(items.len());
    let mut numbers: Vec<(usize, f64)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_path = index(&list_path, i);
        let duplicate = if discrete {
            let Some(x) = reader.number(item, &item_path) else {
                valid = false;
                continue;
            };
            let duplicate = numbers.iter().find(|(_, y)| *y == x).map(|(at, _)| *at);
            numbers.push((i, x));
            duplicate.map(|at| (at, x.to_string()))
        } else {
            let Some(text) = reader.text(item, &item_path) else {
                valid = false;
                continue;
            };
            let duplicate = texts.iter().find(|(_, t)| *t == text).map(|(at, _)| *at);
            texts.push((i, text.clone()));
            duplicate.map(|at| (at, format!("\"{text}\"")))
        };
        if let Some((first, shown)) = duplicate {
            reader.error(
                item,
                item_path,
                format!("duplicate value {shown} (also {list_path}[{first}])"),
            );
            valid = false;
        }
    }
    if !valid {
        return None;
    }
    Some(if discrete {
        Domain::Discrete {
            values: numbers.into_iter().map(|(_, x)| x).collect(),
        }
    } else {
        Domain::Categorical {
            choices: texts.into_iter().map(|(_, t)| t).collect(),
        }
    })
}
