//! `spec.trialTemplate.kubernetes` (tuneflow only): how a native template's `command` runs as
//! a Kubernetes Job — its image, resources, namespace, service account, node selector and
//! tolerations.
//!
//! Only the shape is checked here, with Kubernetes' own rules where they are simple (a
//! namespace is a DNS-1123 label, a quantity looks like `500m` or `2Gi`, a toleration's
//! operator and effect are from a fixed set), so that a mistake is reported with its field
//! path when the file is validated rather than by the API server when the first trial starts.
//! The parts the executor passes on as they are (`resources`, `tolerations`) are kept as JSON
//! in Kubernetes' own field names; quantities written as numbers become strings.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use super::document::{Node, Value};
use super::model::KubernetesTemplate;
use super::walk::{Reader, error_at, index, join};

const KUBERNETES_FIELDS: &[&str] = &[
    "image",
    "resources",
    "namespace",
    "serviceAccount",
    "nodeSelector",
    "tolerations",
];
const RESOURCES_FIELDS: &[&str] = &["requests", "limits"];
const TOLERATION_FIELDS: &[&str] = &["key", "operator", "value", "effect", "tolerationSeconds"];
const TOLERATION_OPERATORS: &[&str] = &["Exists", "Equal"];
const TOLERATION_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Reads `trialTemplate.kubernetes` at `path`; `None` when anything in it is invalid (every
/// problem is reported).
pub(crate) fn kubernetes(
    reader: &mut Reader,
    node: &Node,
    path: &str,
) -> Option<KubernetesTemplate> {
    let fields = reader.fields(node, path, KUBERNETES_FIELDS)?;
    let before = reader.errors.len();
    let image = fields
        .get("image")
        .and_then(|node| image(reader, node, &fields.child("image")));
    let resources = fields
        .get("resources")
        .and_then(|node| resources(reader, node, &fields.child("resources")));
    let namespace = fields.get("namespace").and_then(|node| {
        let path = fields.child("namespace");
        let text = reader.string(node, &path)?;
        check_name(reader, node, &path, &text, NameRule::Label).then_some(text)
    });
    let service_account = fields.get("serviceAccount").and_then(|node| {
        let path = fields.child("serviceAccount");
        let text = reader.string(node, &path)?;
        check_name(reader, node, &path, &text, NameRule::Subdomain).then_some(text)
    });
    let node_selector = fields
        .get("nodeSelector")
        .and_then(|node| reader.string_map(node, &fields.child("nodeSelector")))
        .map(|pairs| {
            pairs
                .into_iter()
                .map(|(key, value, _)| (key, value))
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default();
    let tolerations = fields
        .get("tolerations")
        .and_then(|node| tolerations(reader, node, &fields.child("tolerations")))
        .unwrap_or_default();
    (reader.errors.len() == before).then_some(KubernetesTemplate {
        image,
        resources,
        namespace,
        service_account,
        node_selector,
        tolerations,
    })
}

/// `image`: a non-empty image reference without spaces.
fn image(reader: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let text = reader.string(node, path)?;
    if text.trim().is_empty() {
        reader.report(
            error_at(node, path, "must not be empty")
                .with_hint("name the container image, e.g. image: python:3.11-slim"),
        );
        return None;
    }
    if text.chars().any(char::is_whitespace) {
        reader.error(
            node,
            path,
            format!("\"{text}\" is not an image reference: it contains whitespace"),
        );
        return None;
    }
    Some(text)
}

/// `resources`: `requests` and `limits`, each a map from resource name to quantity.
fn resources(reader: &mut Reader, node: &Node, path: &str) -> Option<Json> {
    let fields = reader.fields(node, path, RESOURCES_FIELDS)?;
    let mut out = Map::new();
    let mut valid = true;
    for key in RESOURCES_FIELDS {
        let Some(node) = fields.get(key) else {
            continue;
        };
        let map_path = fields.child(key);
        let Some(entries) = reader.map(node, &map_path) else {
            valid = false;
            continue;
        };
        let mut quantities = Map::new();
        for entry in entries {
            let entry_path = join(&map_path, &entry.key);
            match quantity(reader, &entry.value, &entry_path) {
                Some(text) => {
                    quantities.insert(entry.key.clone(), Json::String(text));
                }
                None => valid = false,
            }
        }
        out.insert((*key).to_string(), Json::Object(quantities));
    }
    valid.then_some(Json::Object(out))
}

/// A resource quantity: a number, or a string such as `500m`, `1.5`, `2Gi` or `1e3`.
fn quantity(reader: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let text = match &node.value {
        Value::Int(i) if *i >= 0 => return Some(i.to_string()),
        Value::Float(x) if *x >= 0.0 && x.is_finite() => return Some(x.to_string()),
        Value::Str(text) => text.clone(),
        _ => {
            reader.error(
                node,
                path,
                format!(
                    "expected a quantity such as \"500m\" or \"2Gi\", found {}",
                    match &node.value {
                        Value::Int(_) | Value::Float(_) => "a negative number",
                        other => other.describe(),
                    }
                ),
            );
            return None;
        }
    };
    if is_quantity(&text) {
        return Some(text);
    }
    reader.report(
        error_at(node, path, format!("\"{text}\" is not a resource quantity")).with_hint(
            "write a number with an optional suffix: \"500m\" (millicores), \"2\", \
             \"512Mi\", \"4Gi\", \"1G\"",
        ),
    );
    None
}

/// Kubernetes' quantity syntax: a non-negative decimal number followed by a binary suffix
/// (`Ki`..`Ei`), a decimal suffix (`n`, `u`, `m`, `k`, `M`..`E`) or an exponent (`e3`).
fn is_quantity(text: &str) -> bool {
    let text = text.strip_prefix('+').unwrap_or(text);
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    let dots = number.matches('.').count();
    if number.is_empty() || number == "." || dots > 1 {
        return false;
    }
    const SUFFIXES: &[&str] = &[
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    let Some(exponent) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !exponent.is_empty() && exponent.chars().all(|c| c.is_ascii_digit())
}

/// Which of Kubernetes' name rules applies.
#[derive(Debug, Clone, Copy)]
enum NameRule {
    /// RFC 1123 label: namespaces (63 characters, no dots).
    Label,
    /// RFC 1123 subdomain: service accounts (253 characters, dot-separated labels).
    Subdomain,
}

/// Checks a Kubernetes object name; reports and returns false when it breaks `rule`.
fn check_name(reader: &mut Reader, node: &Node, path: &str, name: &str, rule: NameRule) -> bool {
    let (max, what) = match rule {
        NameRule::Label => (63, "a DNS-1123 label"),
        NameRule::Subdomain => (253, "a DNS-1123 subdomain"),
    };
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let valid = name.len() <= max
        && match rule {
            NameRule::Label => label_ok(name),
            NameRule::Subdomain => name.split('.').all(label_ok),
        };
    if !valid {
        reader.report(
            error_at(node, path, format!("\"{name}\" is not {what}")).with_hint(format!(
                "use at most {max} lowercase letters, digits and '-'{}, starting and ending \
                 with a letter or digit",
                if matches!(rule, NameRule::Subdomain) {
                    " (and '.')"
                } else {
                    ""
                }
            )),
        );
    }
    valid
}

/// `tolerations`: a list of Kubernetes `Toleration`s.
fn tolerations(reader: &mut Reader, node: &Node, path: &str) -> Option<Vec<Json>> {
    let items = reader.list(node, path)?;
    let mut out = Vec::with_capacity(items.len());
    let mut valid = true;
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        let before = reader.errors.len();
        let Some(fields) = reader.fields(item, &item_path, TOLERATION_FIELDS) else {
            valid = false;
            continue;
        };
        for key in ["key", "value"] {
            if let Some(node) = fields.get(key) {
                reader.string(node, &fields.child(key));
            }
        }
        let operator = fields
            .get("operator")
            .and_then(|node| reader.choice(node, &fields.child("operator"), TOLERATION_OPERATORS));
        if let Some(node) = fields.get("effect") {
            reader.choice(node, &fields.child("effect"), TOLERATION_EFFECTS);
        }
        if let Some(node) = fields.get("tolerationSeconds") {
            reader.integer(node, &fields.child("tolerationSeconds"));
        }
        if operator == Some("Exists") && fields.get("value").is_some() {
            reader.report(
                error_at(
                    item,
                    fields.child("value"),
                    "must be omitted when operator is \"Exists\"",
                )
                .with_hint("use operator: Equal to match a value"),
            );
        }
        if fields.get("key").is_none() && operator != Some("Exists") {
            reader.report(
                error_at(item, fields.child("key"), "missing required field \"key\"").with_hint(
                    "a toleration without a key must have operator: Exists (it tolerates every taint)",
                ),
            );
        }
        if reader.errors.len() == before {
            out.push(item.to_json());
        } else {
            valid = false;
        }
    }
    valid.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_follow_kubernetes_syntax() {
        for ok in [
            "1",
            "0.5",
            "500m",
            "2Gi",
            "1.5G",
            "1e3",
            "1E-2",
            "+1",
            "128974848",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in [
            "", "Gi", "2 Gi", "2GB", "1..2", "-1", "1e", "abc", ".", "1ki",
        ] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
