//! `deploy/`: the `Experiment` CustomResourceDefinition (generated from the Rust types,
//! structural as apiextensions.k8s.io/v1 requires, equal to `deploy/crd.yaml`), and the
//! operator's manifests checked against the CLI and the API calls the operator makes.

mod common;

use std::path::{Path, PathBuf};

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

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The documents of `deploy/FILE`.
fn manifests(file: &str) -> Vec<Value> {
    let path = deploy_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The one document of `kind` named `name` in `deploy/FILE`.
fn manifest(file: &str, kind: &str, name: &str) -> Value {
    manifests(file)
        .into_iter()
        .find(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/{file}"))
}

fn operator_container() -> Value {
    let deployment = manifest("operator.yaml", "Deployment", "tuneflow-operator");
    deployment["spec"]["template"]["spec"]["containers"][0].clone()
}

#[test]
fn the_deployment_runs_a_command_line_the_cli_accepts() {
    use clap::Parser;
    use tuneflow::cli::{Cli, Command};

    let container = operator_container();
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|arg| arg.as_str().expect("string args").to_string())
        .collect();
    let cli = Cli::try_parse_from(std::iter::once("tuneflow".to_string()).chain(args))
        .unwrap_or_else(|e| panic!("deploy/operator.yaml's args do not parse: {e}"));
    let Command::Operator(operator) = cli.command else {
        panic!("the Deployment does not run `tuneflow operator`");
    };
    assert_eq!(operator.listen.to_string(), "0.0.0.0:8080");
    // The store is on the volume mounted at /var/lib/tuneflow.
    assert!(cli.store.starts_with("/var/lib/tuneflow/"), "{}", cli.store);
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    assert!(mounts.iter().any(|m| m["mountPath"] == "/var/lib/tuneflow"));

    // The environment the operator reads: its identity and namespace from the downward API,
    // the API token from the Secret.
    let env = container["env"].as_array().expect("env");
    let var = |name: &str| {
        env.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no env {name}"))
            .clone()
    };
    assert_eq!(
        var("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        var("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        var("TUNEFLOW_TOKEN")["valueFrom"]["secretKeyRef"]["name"],
        "tuneflow-api-token"
    );
    let port = container["ports"][0]["containerPort"].as_u64();
    assert_eq!(port, Some(8080));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
    }
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    let deployment = manifest("operator.yaml", "Deployment", "tuneflow-operator");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
}

#[test]
fn the_service_reaches_the_operator_pods() {
    let deployment = manifest("operator.yaml", "Deployment", "tuneflow-operator");
    let service = manifest("operator.yaml", "Service", "tuneflow-operator");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&labels[key], value, "selector {key}");
    }
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["metadata"]["namespace"], "tuneflow-system");
}

/// Whether `rules` grant `verb` on `group`/`resource`.
fn grants(rules: &Value, group: &str, resource: &str, verb: &str) -> bool {
    rules.as_array().into_iter().flatten().any(|rule| {
        let has = |key: &str, value: &str| {
            rule[key]
                .as_array()
                .is_some_and(|items| items.iter().any(|item| item == value))
        };
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

#[test]
fn rbac_grants_what_the_operator_calls_and_no_more() {
    let role = manifest("rbac.yaml", "ClusterRole", "tuneflow-operator");
    let rules = &role["rules"];
    let needed: &[(&str, &str, &[&str])] = &[
        (
            "tuneflow.dev",
            "experiments",
            &["get", "list", "watch", "update", "patch"],
        ),
        (
            "tuneflow.dev",
            "experiments/status",
            &["get", "update", "patch"],
        ),
        ("tuneflow.dev", "experiments/finalizers", &["update"]),
        (
            "batch",
            "jobs",
            &["create", "get", "list", "watch", "delete", "patch"],
        ),
        ("", "pods", &["get", "list", "watch"]),
        ("", "pods/log", &["get"]),
        ("events.k8s.io", "events", &["create", "patch"]),
    ];
    for (group, resource, verbs) in needed {
        for verb in *verbs {
            assert!(
                grants(rules, group, resource, verb),
                "{verb} {group}/{resource}"
            );
        }
    }
    // Least privilege: no wildcards, nothing secret, leases only in the operator's namespace.
    for rule in rules.as_array().expect("rules") {
        for key in ["apiGroups", "resources", "verbs"] {
            assert!(
                !rule[key].as_array().expect(key).iter().any(|v| v == "*"),
                "wildcard in {rule}"
            );
        }
        let resources = rule["resources"].as_array().expect("resources");
        assert!(
            !resources.iter().any(|r| r == "secrets" || r == "leases"),
            "{rule}"
        );
    }
    let leases = manifest("rbac.yaml", "Role", "tuneflow-operator-leader-election");
    assert_eq!(leases["metadata"]["namespace"], "tuneflow-system");
    for verb in ["get", "create", "update", "patch"] {
        assert!(
            grants(&leases["rules"], "coordination.k8s.io", "leases", verb),
            "{verb} leases"
        );
    }
    // Both bindings name the Deployment's service account.
    let deployment = manifest("operator.yaml", "Deployment", "tuneflow-operator");
    let account = &deployment["spec"]["template"]["spec"]["serviceAccountName"];
    manifest(
        "rbac.yaml",
        "ServiceAccount",
        account.as_str().expect("account"),
    );
    for (kind, name) in [
        ("ClusterRoleBinding", "tuneflow-operator"),
        ("RoleBinding", "tuneflow-operator-leader-election"),
    ] {
        let subject = &manifest("rbac.yaml", kind, name)["subjects"][0];
        assert_eq!(&subject["name"], account, "{kind}");
        assert_eq!(
            subject["namespace"], deployment["metadata"]["namespace"],
            "{kind}"
        );
    }
}

#[test]
fn the_kustomization_installs_every_manifest() {
    let kustomization = &manifests("kustomization.yaml")[0];
    let resources: Vec<&str> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(resources, ["crd.yaml", "rbac.yaml", "operator.yaml"]);
    for file in resources {
        assert!(deploy_dir().join(file).is_file(), "{file}");
    }
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).expect("Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(dockerfile.contains("USER 65532"));
}
