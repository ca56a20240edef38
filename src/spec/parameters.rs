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
use super::walk::{Fields, Reader, error_at, index};

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
        let error = error_at(
            list,
            space.child("list"),
            format!("a list is not allowed for {type_name} parameters"),
        )
        .with_hint(
            "use parameterType discrete (numbers) or categorical (strings) to pick from a list",
        );
        reader.report(error);
    }
    let min_node = reader.required(space, "min");
    let max_node = reader.required(space, "max");
    // An unknown distribution is reported; the bounds are still checked (as uniform).
    let (distribution, distribution_valid) = match space.get("distribution") {
        Some(node) => match reader.choice(node, &space.child("distribution"), DISTRIBUTIONS) {
            Some("logUniform") => (Distribution::LogUniform, true),
            Some("normal") => (Distribution::Normal, true),
            Some("logNormal") => (Distribution::LogNormal, true),
            Some(_) => (Distribution::Uniform, true),
            None => (Distribution::Uniform, false),
        },
        None => (Distribution::Uniform, true),
    };
    let bounds = Bounds {
        space,
        min: min_node,
        max: max_node,
        step: space.get("step"),
        distribution,
    };
    let domain = if int {
        int_domain(reader, &bounds)
    } else {
        double_domain(reader, &bounds)
    };
    domain.filter(|_| distribution_valid)
}

/// The nodes of a numeric feasible space.
struct Bounds<'a, 'f> {
    space: &'f Fields<'a>,
    min: Option<&'a Node>,
    max: Option<&'a Node>,
    step: Option<&'a Node>,
    distribution: Distribution,
}

impl Bounds<'_, '_> {
    /// Reports a `min` that a log-scale distribution cannot take; false when it did.
    fn check_log_min(&self, reader: &mut Reader, min_positive: bool) -> bool {
        let name = match self.distribution {
            Distribution::LogUniform => "logUniform",
            Distribution::LogNormal => "logNormal",
            Distribution::Uniform | Distribution::Normal => return true,
        };
        match self.min {
            Some(node) if !min_positive => {
                reader.error(
                    node,
                    self.space.child("min"),
                    format!("must be greater than 0 for a {name} distribution"),
                );
                false
            }
            _ => true,
        }
    }

    /// Reports a step that is not positive or exceeds the range; false when it did.
    fn check_step(&self, reader: &mut Reader, positive: bool, fits: bool, range: String) -> bool {
        let Some(node) = self.step else {
            return true;
        };
        let path = self.space.child("step");
        if !positive {
            reader.error(node, path, "must be greater than 0");
            false
        } else if !fits {
            reader.error(node, path, format!("must not exceed max - min ({range})"));
            false
        } else {
            true
        }
    }
}

fn double_domain(reader: &mut Reader, bounds: &Bounds<'_, '_>) -> Option<Domain> {
    let space = bounds.space;
    let mut read = |node: Option<&Node>, key: &str| {
        node.and_then(|node| reader.number(node, &space.child(key)))
    };
    let (min, max, step) = (
        read(bounds.min, "min"),
        read(bounds.max, "max"),
        read(bounds.step, "step"),
    );
    let (min, max) = (min?, max?);
    let mut valid = true;
    if max <= min
        && let Some(node) = bounds.max
    {
        reader.error(
            node,
            space.child("max"),
            format!("must be greater than min ({min})"),
        );
        valid = false;
    }
    valid &= bounds.check_log_min(reader, min > 0.0);
    if let Some(step) = step {
        valid &= bounds.check_step(
            reader,
            step > 0.0,
            min >= max || step <= max - min,
            (max - min).to_string(),
        );
    }
    valid.then_some(Domain::Double {
        min,
        max,
        step,
        distribution: bounds.distribution,
    })
}

fn int_domain(reader: &mut Reader, bounds: &Bounds<'_, '_>) -> Option<Domain> {
    let space = bounds.space;
    let mut read = |node: Option<&Node>, key: &str| {
        node.and_then(|node| reader.integer(node, &space.child(key)))
    };
    let (min, max, step) = (
        read(bounds.min, "min"),
        read(bounds.max, "max"),
        read(bounds.step, "step"),
    );
    let (min, max) = (min?, max?);
    let mut valid = true;
    if max < min
        && let Some(node) = bounds.max
    {
        reader.error(
            node,
            space.child("max"),
            format!("must be greater than or equal to min ({min})"),
        );
        valid = false;
    }
    valid &= bounds.check_log_min(reader, min > 0);
    if let Some(step) = step {
        let range = i128::from(max) - i128::from(min);
        valid &= bounds.check_step(
            reader,
            step > 0,
            range <= 0 || i128::from(step) <= range,
            range.to_string(),
        );
    }
    valid.then_some(Domain::Int {
        min,
        max,
        step,
        distribution: bounds.distribution,
    })
}

/// `discrete` and `categorical`: a non-empty list without duplicates, nothing else.
fn listed(reader: &mut Reader, space: &Fields<'_>, discrete: bool) -> Option<Domain> {
    let type_name = if discrete { "discrete" } else { "categorical" };
    for key in ["min", "max", "step", "distribution"] {
        if let Some(node) = space.get(key) {
            let error = error_at(
                node,
                space.child(key),
                format!("\"{key}\" is not allowed for {type_name} parameters"),
            )
            .with_hint(format!(
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
