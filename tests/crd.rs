//! The `Experiment` CustomResourceDefinition: generated from the Rust types, structural as
//! apiextensions.k8s.io/v1 requires, and equal to `deploy/crd.yaml`.

mod common;

use std::path::Path;

use kube::CustomResourceExt;
use serde_json::Value;
use tuneflow::operator::resource::ExperimentResource;

use common::{World, text};

/// Keys whose value is a map of property name to schema.
const SCHEMA_MAPS: &[&str] = &["properties", "patternProperties"];
/// Keywords a structural schema may not hold (they would need types inside them, or refer
/// to definitions elsewhere).
const FORBIDDEN: &[&str] = &[
    "$ref",
    "definitions",
    "$defs",
    "$schema",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
];

/// Every violation of Kubernetes' structural-schema rules under `node` at `path`.
fn structural_violations(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(map) = node.as_object() else {
        out.push(format!("{path}: a schema must be an object, found {node}"));
        return;
    };
    for key in FORBIDDEN {
        if map.contains_key(*key) {
            out.push(format!("{path}: has {key}"));
        }
    }
    let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let kind = match map.get("type") {
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(other) => {
            out.push(format!("{path}: type must be one string, found {other}"));
            None
        }
        None => None,
    };
    if kind.is_none() && !preserve && !int_or_string {
        out.push(format!(
            "{path}: no type (and neither x-kubernetes-preserve-unknown-fields nor x-kubernetes-int-or-string)"
        ));
    }
    if let Some(kind) = kind
        && !["object", "array", "string", "integer", "number", "boolean"].contains(&kind)
    {
        out.push(format!("{path}: unknown type {kind}"));
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        out.push(format!("{path}: both properties and additionalProperties"));
    }
    if map.contains_key("properties") && kind != Some("object") {
        out.push(format!("{path}: properties on a node of type {kind:?}"));
    }
    if let Some(Value::Bool(true)) = map.get("nullable")
        && kind.is_none()
        && !preserve
    {
        out.push(format!("{path}: nullable without a type"));
    }
    for key in SCHEMA_MAPS {
        if let Some(children) = map.get(*key) {
            let Some(children) = children.as_object() else {
                out.push(format!("{path}.{key}: must be a map"));
                continue;
            };
            for (name, child) in children {
                structural_violations(child, &format!("{path}.{name}"), out);
            }
        }
    }
    if let Some(items) = map.get("items") {
        if kind != Some("array") {
            out.push(format!("{path}: items on a node of type {kind:?}"));
        }
        structural_violations(items, &format!("{path}[]"), out);
    } else if kind == Some("array") && !preserve {
        out.push(format!("{path}: an array needs items"));
    }
    if let Some(additional) = map.get("additionalProperties")
        && additional.is_object()
    {
        structural_violations(additional, &format!("{path}.*"), out);
    }
}

fn crd_json() -> Value {
    serde_json::to_value(ExperimentResource::crd()).expect("the CRD serializes")
}

#[test]
fn the_schema_is_structural() {
    let crd = crd_json();
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1);
    let schema = &versions[0]["schema"]["openAPIV3Schema"];
    let mut violations = Vec::new();
    structural_violations(schema, "openAPIV3Schema", &mut violations);
    assert!(
        violations.is_empty(),
        "not structural:\n{}",
        violations.join("\n")
    );
    // The root, spec and status are objects; the spec's free-form parts keep unknown fields
    // (so the spec parser, not the API server's pruning, reports a misspelt field).
    assert_eq!(schema["type"], "object");
    let spec = &schema["properties"]["spec"];
    assert_eq!(spec["type"], "object");
    assert_eq!(schema["properties"]["status"]["type"], "object");
    for field in ["trialTemplate", "parameters", "objective", "algorithm"] {
        assert!(
            spec["properties"][field].is_object(),
            "spec.{field} is described"
        );
    }
    assert_eq!(
        spec["properties"]["trialTemplate"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
}

#[test]
fn the_checker_finds_what_is_not_structural() {
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "b": {"type": ["string", "null"]},
            "c": {"$ref": "#/definitions/C"},
            "d": {"type": "array"},
            "e": {"description": "no type"},
        }
    });
    let mut violations = Vec::new();
    structural_violations(&bad, "root", &mut violations);
    for expected in [
        "root.a: has anyOf",
        "root.b: type must be",
        "root.c: has $ref",
        "root.d: an array needs items",
        "root.e: no type",
    ] {
        assert!(
            violations.iter().any(|v| v.starts_with(expected)),
            "{expected} not in {violations:#?}"
        );
    }
}

#[test]
fn names_scope_subresource_and_printer_columns() {
    let crd = crd_json();
    assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["name"], "experiments.tuneflow.dev");
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "tuneflow.dev");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "Experiment");
    assert_eq!(spec["names"]["plural"], "experiments");
    assert_eq!(spec["names"]["singular"], "experiment");
    let version = &spec["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["served"], true);
    assert_eq!(version["storage"], true);
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    let columns: Vec<(&str, &str)> = version["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default(),
                c["jsonPath"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    for (name, path) in [
        ("State", ".status.state"),
        ("Trials", ".status.trials"),
        ("Best", ".status.bestObjective"),
        ("Age", ".metadata.creationTimestamp"),
    ] {
        assert!(
            columns.contains(&(name, path)),
            "{name} column in {columns:?}"
        );
    }
    // Every column's path exists in the schema (a typo would show an empty column).
    let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    for (_, path) in columns {
        if let Some(field) = path.strip_prefix(".status.") {
            assert!(status[field].is_object(), "{path} is not a status field");
        }
    }
}

#[test]
fn deploy_crd_yaml_is_what_tuneflow_crd_prints() {
    let output = World::new().run(&["crd"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crd.yaml");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == printed,
        "{} is out of date with the Rust types: run `cargo run -- crd > deploy/crd.yaml`",
        path.display()
    );
    // It parses back to the same definition.
    let parsed: Value = serde_saphyr::from_str(&printed).expect("the YAML parses");
    assert_eq!(parsed, crd_json());
}
