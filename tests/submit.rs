//! `tuneflow submit`: experiment files (tuneflow's and Katib's) become `Experiment`
//! resources that the operator validates back to the same experiment.

mod common;

use std::path::{Path, PathBuf};

use tuneflow::operator::resource::{ExperimentResource, SOURCE_API_VERSION, document};
use tuneflow::spec::{self, Flavor};

use common::{World, katib_dir, text};

/// `tuneflow submit --dry-run ARGS... FILE`'s stdout, asserting success.
fn dry_run(world: &World, file: &Path, args: &[&str]) -> String {
    let mut all = vec!["submit", "--dry-run"];
    all.extend(args);
    all.push(file.to_str().expect("UTF-8 path"));
    let output = world.run(&all);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}: {}",
        file.display(),
        text(&output)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// What the API server would say of `value` against the CRD's `schema` (a structural
/// schema): wrong types, values outside an enum or a minimum/maximum, and fields it would
/// prune silently (unknown fields of an object that does not preserve them).
fn schema_violations(
    value: &serde_json::Value,
    schema: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    if value.is_null() {
        if schema["nullable"] != true {
            out.push(format!("{path}: null where the schema does not allow it"));
        }
        return;
    }
    let fits = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        _ => true,
    };
    if !fits {
        out.push(format!("{path}: {value} is not of type {}", schema["type"]));
        return;
    }
    if let Some(choices) = schema["enum"].as_array()
        && !choices.contains(value)
    {
        out.push(format!("{path}: {value} is not one of {choices:?}"));
    }
    if let (Some(x), Some(min)) = (value.as_f64(), schema["minimum"].as_f64())
        && x < min
    {
        out.push(format!("{path}: {x} < minimum {min}"));
    }
    if let (Some(x), Some(max)) = (value.as_f64(), schema["maximum"].as_f64())
        && x > max
    {
        out.push(format!("{path}: {x} > maximum {max}"));
    }
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match schema["properties"].get(key) {
                    Some(child_schema) => {
                        schema_violations(child, child_schema, &format!("{path}.{key}"), out)
                    }
                    None if preserve => {}
                    None => out.push(format!(
                        "{path}.{key}: unknown to the schema, would be pruned"
                    )),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    schema_violations(item, item_schema, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Asserts that the API server would accept `resource`'s spec as it is.
fn assert_fits_the_crd(resource: &ExperimentResource, source: &str) {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(ExperimentResource::crd()).expect("CRD");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let spec = serde_json::to_value(&resource.spec).expect("spec");
    let mut violations = Vec::new();
    schema_violations(&spec, schema, "spec", &mut violations);
    assert!(
        violations.is_empty(),
        "{source}:\n{}",
        violations.join("\n")
    );
}

/// The experiment the operator would read from `resource`.
fn operator_view(resource: &ExperimentResource, source: &str) -> spec::ExperimentSpec {
    spec::parse_str(&document(resource), source)
        .unwrap_or_else(|errors| panic!("{source}: the resource does not validate:\n{errors}"))
}

#[test]
fn every_valid_katib_example_converts_to_a_resource_with_the_same_experiment() {
    let world = World::new();
    let mut converted = Vec::new();
    for dir in [
        "hp-tuning",
        "early-stopping",
        "metrics-collector",
        "resume-experiment",
        "trial-template",
    ] {
        let dir = katib_dir().join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let Ok(original) = spec::parse_file(&file) else {
                // Files that use what tuneflow does not have (sobol, Custom collectors) are
                // refused by submit as by validate; see invalid_files_are_refused_with_the_field.
                continue;
            };
            let source = file.display().to_string();
            let yaml = dry_run(&world, &file, &[]);
            let resource: ExperimentResource = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| {
                panic!("{source}: the printed resource does not parse: {e}\n{yaml}")
            });
            assert_eq!(
                resource.metadata.name.as_deref(),
                Some(original.name.as_str())
            );
            assert_eq!(
                resource
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(SOURCE_API_VERSION))
                    .map(String::as_str),
                Some("kubeflow.org/v1beta1"),
                "{source}"
            );
            assert!(
                yaml.starts_with("apiVersion: tuneflow.dev/v1alpha1\nkind: Experiment\n"),
                "{yaml}"
            );
            assert_eq!(operator_view(&resource, &source), original, "{source}");
            assert_fits_the_crd(&resource, &source);
            converted.push(source);
        }
    }
    let hp_tuning = converted
        .iter()
        .filter(|f| f.contains("/hp-tuning/"))
        .count();
    assert!(
        hp_tuning >= 7,
        "only {hp_tuning} hp-tuning files converted: {converted:#?}"
    );
    assert!(converted.len() >= 15, "{converted:#?}");
}

#[test]
fn native_files_keep_metadata_and_the_namespace_flag_wins() {
    let world = World::new();
    let file = world.write(
        "exp.yaml",
        r#"apiVersion: tuneflow.dev/v1alpha1
kind: Experiment
metadata:
  name: native
  namespace: from-file
  labels: {team: ml, tier: 2}
  annotations: {note: hello}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  maxTrialCount: "4"
  parallelTrialCount: 2
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: 1}}
  trialTemplate:
    command: [python3, -c, "print('loss=${parameters.x}')"]
    kubernetes:
      image: python:3.11-slim
      resources: {limits: {cpu: 1, memory: 128Mi}}
"#,
    );
    let original = spec::parse_file(&file).expect("valid");
    let yaml = dry_run(&world, &file, &[]);
    let resource: ExperimentResource = serde_saphyr::from_str(&yaml).expect("parses");
    assert_eq!(resource.metadata.namespace.as_deref(), Some("from-file"));
    let labels = resource.metadata.labels.clone().expect("labels");
    assert_eq!(labels.get("team").map(String::as_str), Some("ml"));
    assert_eq!(labels.get("tier").map(String::as_str), Some("2"));
    let annotations = resource.metadata.annotations.clone().expect("annotations");
    assert_eq!(annotations.get("note").map(String::as_str), Some("hello"));
    assert!(!annotations.contains_key(SOURCE_API_VERSION));
    // An integer written as a string becomes a number, as the schema says.
    assert_eq!(resource.spec.max_trial_count, Some(4));
    let view = operator_view(&resource, "exp.yaml");
    assert_eq!(view, original);
    assert_fits_the_crd(&resource, "exp.yaml");
    assert_eq!(view.flavor, Flavor::Tuneflow);
    assert_eq!(
        view.trial_template
            .and_then(|t| t.kubernetes)
            .and_then(|k| k.image)
            .as_deref(),
        Some("python:3.11-slim")
    );

    let json = dry_run(
        &world,
        &file,
        &["--namespace", "tuning", "--output", "json"],
    );
    let resource: ExperimentResource = serde_json::from_str(&json).expect("JSON parses");
    assert_eq!(resource.metadata.namespace.as_deref(), Some("tuning"));
}

#[test]
fn the_kubernetes_examples_convert() {
    let world = World::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes");
    for (file, flavor) in [
        ("experiment.yaml", Flavor::Tuneflow),
        ("katib-job.yaml", Flavor::Katib),
    ] {
        let file = dir.join(file);
        let original = spec::parse_file(&file).unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(original.flavor, flavor);
        let yaml = dry_run(&world, &file, &[]);
        let resource: ExperimentResource = serde_saphyr::from_str(&yaml).expect("parses");
        assert_eq!(operator_view(&resource, "example"), original);
        assert_fits_the_crd(&resource, "example");
        // Both run in a cluster: a command with an image, or a Job trialSpec.
        let template = original.trial_template.expect("template");
        assert!(
            template.kubernetes.and_then(|k| k.image).is_some()
                || template
                    .trial_spec
                    .is_some_and(|s| s["kind"] == "Job" && s["apiVersion"] == "batch/v1"),
            "{}",
            file.display()
        );
    }
}

#[test]
fn invalid_files_are_refused_with_the_field() {
    let world = World::new();
    let file = katib_dir().join("hp-tuning/sobol.yaml");
    let output = world.run(&["submit", "--dry-run", file.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(output.stdout.is_empty(), "nothing printed on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("spec.algorithm.algorithmName"), "{stderr}");
    assert!(stderr.contains("nothing was submitted"), "{stderr}");

    let bad = world.write(
        "bad.yaml",
        &common::x_experiment(
            "bad",
            "maxTrialCount: 2",
            "command: [\"true\"]\nkubernetes: {image: python, namespace: Bad_NS}",
        ),
    );
    // Without --dry-run too: an invalid file never reaches for the cluster.
    let output = world
        .tuneflow()
        .args(["submit", bad.to_str().expect("path")])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("spec.trialTemplate.kubernetes.namespace"),
        "{stderr}"
    );
    assert!(!stderr.contains("Kubernetes client"), "{stderr}");
}

#[test]
fn without_a_cluster_configuration_the_error_says_how_to_fix_it() {
    let world = World::new();
    let file = world.write(
        "ok.yaml",
        &common::x_experiment("ok", "maxTrialCount: 2", "command: [\"true\"]"),
    );
    let output = world
        .tuneflow()
        .args(["submit", file.to_str().expect("path")])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot configure a Kubernetes client"),
        "{stderr}"
    );
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
    assert!(stderr.contains("--dry-run"), "{stderr}");
}

/// A kubeconfig whose current context ("fake", namespace `team`) points at `url`.
fn kubeconfig(world: &World, url: &str) -> PathBuf {
    world.write(
        "kubeconfig",
        &format!(
            r#"apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster: {{server: "{url}"}}
users:
  - name: tester
    user: {{}}
contexts:
  - name: fake
    context: {{cluster: fake, user: tester, namespace: team}}
current-context: fake
"#
        ),
    )
}

/// Runs `tuneflow ARGS...` with `KUBECONFIG` set, off the async runtime the fake serves on.
async fn submit(world: &World, kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    let mut command = world.tuneflow();
    command
        .arg("submit")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST");
    tokio::task::spawn_blocking(move || command.output().expect("run tuneflow"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_applies_to_the_api_server_and_reapplies() {
    use tuneflow_fake_kube::{EXPERIMENTS, FakeKube};

    let kube = FakeKube::start().await;
    let world = World::new();
    let config = kubeconfig(&world, &kube.url());
    let katib = katib_dir().join("hp-tuning/random.yaml");
    let katib = katib.to_str().expect("path");

    // The file's namespace (kubeflow) is overridden by --namespace.
    let output = submit(&world, &config, &["--namespace", "team", katib]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "experiment.tuneflow.dev/random created\n"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("kubectl get experiments -n team -w"),
        "{}",
        text(&output)
    );
    let stored = kube.get(&EXPERIMENTS, "team", "random").expect("stored");
    assert_eq!(stored["apiVersion"], "tuneflow.dev/v1alpha1");
    assert_eq!(
        stored["metadata"]["annotations"][SOURCE_API_VERSION],
        "kubeflow.org/v1beta1"
    );
    assert_eq!(stored["spec"]["maxTrialCount"], 12);
    // What the server stored is what the operator reads: the same experiment.
    let resource: ExperimentResource = serde_json::from_value(stored).expect("a resource");
    let original = spec::parse_file(Path::new(katib)).expect("valid");
    let view = operator_view(&resource, katib);
    assert_eq!(view.namespace.as_deref(), Some("team"));
    assert_eq!(
        spec::ExperimentSpec {
            namespace: original.namespace.clone(),
            ..view
        },
        original
    );
    let patches: Vec<_> = kube
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.resource == "experiments")
        .collect();
    assert_eq!(patches.len(), 1, "one server-side apply");

    // A native file without a namespace goes to the context's namespace; applying it again
    // after an edit configures the same resource.
    let file = world.write(
        "native.yaml",
        &common::x_experiment("native", "maxTrialCount: 2", "command: [\"true\"]"),
    );
    let file = file.to_str().expect("path");
    let output = submit(&world, &config, &[file]).await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "experiment.tuneflow.dev/native created\n",
        "{}",
        text(&output)
    );
    std::fs::write(
        file,
        common::x_experiment("native", "maxTrialCount: 5", "command: [\"true\"]"),
    )
    .expect("edit");
    let output = submit(&world, &config, &[file]).await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "experiment.tuneflow.dev/native configured\n",
        "{}",
        text(&output)
    );
    let stored = kube.get(&EXPERIMENTS, "team", "native").expect("stored");
    assert_eq!(stored["spec"]["maxTrialCount"], 5);
    assert!(kube.get(&EXPERIMENTS, "kubeflow", "random").is_none());

    // -o json prints what the server stored.
    let output = submit(&world, &config, &["-o", "json", file]).await;
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(printed["metadata"]["namespace"], "team");
    assert!(printed["metadata"]["resourceVersion"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_namespace_is_reported_with_the_cluster_and_the_fix() {
    use tuneflow_fake_kube::FakeKube;

    let kube = FakeKube::start().await;
    kube.forbid_namespace("locked");
    let world = World::new();
    let config = kubeconfig(&world, &kube.url());
    let file = world.write(
        "exp.yaml",
        &common::x_experiment("exp", "maxTrialCount: 2", "command: [\"true\"]"),
    );
    let output = submit(
        &world,
        &config,
        &["-n", "locked", file.to_str().expect("path")],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("context \"fake\""), "{stderr}");
    assert!(stderr.contains("experiments.tuneflow.dev"), "{stderr}");
    assert!(stderr.contains("namespace \"locked\""), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn the_schema_check_sees_what_the_api_server_would_refuse() {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 1.0},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        }
    });
    let value = serde_json::json!({"n": 0, "kind": "c", "free": {"x": 1}, "other": true});
    let mut violations = Vec::new();
    schema_violations(&value, &schema, "spec", &mut violations);
    assert_eq!(
        violations,
        [
            "spec.n: 0 < minimum 1",
            "spec.kind: \"c\" is not one of [String(\"a\"), String(\"b\")]",
            "spec.other: unknown to the schema, would be pruned",
        ]
    );
}
