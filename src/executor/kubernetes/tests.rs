//! Unit tests of the Kubernetes executor: building Jobs, reading their state.

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};

use super::job::{self, BuiltJob};
use super::status::{self, Conditions, Container, Finished};
use super::{KubernetesSettings, job_name};
use crate::executor::TrialJob;
use crate::spec::model::KubernetesTemplate;
use crate::spec::{EnvVar, TrialTemplate};

fn template() -> TrialTemplate {
    TrialTemplate {
        command: vec![
            "python".into(),
            "train.py".into(),
            "--lr=${trialParameters.lr}".into(),
        ],
        env: vec![],
        working_dir: None,
        timeout: None,
        trial_parameters: vec![],
        primary_container_name: None,
        trial_spec: None,
        retain: false,
        kubernetes: None,
        success_condition: None,
        failure_condition: None,
    }
}

fn native() -> TrialTemplate {
    TrialTemplate {
        kubernetes: Some(KubernetesTemplate {
            image: Some("python:3.12-slim".into()),
            resources: Some(json!({"limits": {"cpu": "1", "memory": "512Mi"}})),
            namespace: None,
            service_account: Some("trainer".into()),
            node_selector: [("gpu".to_string(), "none".to_string())].into(),
            tolerations: vec![json!({"key": "spot", "operator": "Exists", "effect": "NoSchedule"})],
        }),
        ..template()
    }
}

/// A Katib-style trialSpec with the trial's values already substituted.
fn katib_manifest() -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"labels": {"team": "vision"}},
        "spec": {
            "template": {
                "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": {
                    "containers": [
                        {
                            "name": "training-container",
                            "image": "docker.io/kubeflowkatib/pytorch-mnist:latest",
                            "command": ["python3", "/opt/mnist.py", "--lr=0.01"],
                            "env": [{"name": "MODE", "value": "katib"}, {"name": "TUNEFLOW_TRIAL_INDEX", "value": "stale"}]
                        },
                        {"name": "helper", "image": "busybox"}
                    ],
                    "restartPolicy": "OnFailure"
                }
            }
        }
    })
}

fn trial(template: TrialTemplate, manifest: Option<Value>) -> TrialJob {
    TrialJob {
        experiment: "team-a.mnist".into(),
        trial_name: "team-a.mnist-0003".into(),
        command: vec!["python".into(), "train.py".into(), "--lr=0.01".into()],
        env: vec![
            ("TUNEFLOW_PARAMETERS".into(), r#"{"lr":0.01}"#.into()),
            ("TUNEFLOW_TRIAL_INDEX".into(), "3".into()),
        ],
        working_dir: PathBuf::from("."),
        timeout: None,
        log_path: PathBuf::from("trial.log"),
        index: 3,
        namespace: None,
        template: Arc::new(template),
        manifest,
        resume: false,
    }
}

fn settings() -> KubernetesSettings {
    KubernetesSettings::new("fallback")
}

fn env_of(built: &BuiltJob) -> Vec<(String, String)> {
    let pod = built
        .job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let container = pod
        .containers
        .iter()
        .find(|c| c.name == built.container)
        .expect("primary");
    container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

fn label<'a>(
    labels: Option<&'a std::collections::BTreeMap<String, String>>,
    key: &str,
) -> Option<&'a str> {
    labels.and_then(|l| l.get(key)).map(String::as_str)
}

#[test]
fn job_names_drop_the_operators_namespace_prefix() {
    assert_eq!(job_name("team-a.mnist-0003"), "mnist-0003");
    assert_eq!(job_name("mnist-0003"), "mnist-0003");
}

#[test]
fn a_katib_manifest_becomes_the_trials_job() {
    let mut template = template();
    template.primary_container_name = Some("training-container".into());
    template.trial_spec = Some(katib_manifest());
    let built = job::build(&trial(template, Some(katib_manifest())), &settings()).expect("builds");
    assert_eq!(built.name, "mnist-0003");
    assert_eq!(built.container, "training-container");
    assert_eq!(built.namespace, "fallback");
    assert_eq!(built.image, "docker.io/kubeflowkatib/pytorch-mnist:latest");
    let meta = &built.job.metadata;
    assert_eq!(meta.name.as_deref(), Some("mnist-0003"));
    assert_eq!(meta.namespace.as_deref(), Some("fallback"));
    let labels = meta.labels.as_ref();
    assert_eq!(label(labels, "team"), Some("vision"));
    assert_eq!(label(labels, job::EXPERIMENT_LABEL), Some("mnist"));
    assert_eq!(label(labels, job::TRIAL_LABEL), Some("mnist-0003"));
    let spec = built.job.spec.as_ref().expect("spec");
    assert_eq!(spec.backoff_limit, Some(0));
    let pod_meta = spec.template.metadata.as_ref().expect("pod metadata");
    assert_eq!(
        label(pod_meta.labels.as_ref(), job::TRIAL_LABEL),
        Some("mnist-0003")
    );
    assert_eq!(
        label(pod_meta.labels.as_ref(), job::MANAGED_BY_LABEL),
        Some("tuneflow")
    );
    assert!(
        pod_meta
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("sidecar.istio.io/inject"))
    );
    let pod = spec.template.spec.as_ref().expect("pod");
    // The manifest's own restartPolicy is kept.
    assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
    assert_eq!(
        pod.containers[0].command.as_ref().expect("command"),
        &["python3", "/opt/mnist.py", "--lr=0.01"]
    );
    let env = env_of(&built);
    let get = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(get("MODE"), Some("katib"));
    assert_eq!(get("TUNEFLOW_EXPERIMENT"), Some("team-a.mnist"));
    assert_eq!(get("TUNEFLOW_TRIAL_NAME"), Some("team-a.mnist-0003"));
    assert_eq!(
        get("TUNEFLOW_TRIAL_INDEX"),
        Some("3"),
        "the engine's value replaces the manifest's"
    );
    assert_eq!(
        env.iter()
            .filter(|(n, _)| n == "TUNEFLOW_TRIAL_INDEX")
            .count(),
        1
    );
    // The helper container gets nothing.
    assert!(pod.containers[1].env.is_none());
}

#[test]
fn a_native_template_becomes_a_one_container_job() {
    let mut settings = settings();
    settings.owner = Some(OwnerReference {
        api_version: "tuneflow.dev/v1alpha1".into(),
        kind: "Experiment".into(),
        name: "mnist".into(),
        uid: "1234".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    });
    settings.extra_labels.insert("env".into(), "ci".into());
    let mut job = trial(native(), None);
    job.namespace = Some("team-a".into());
    let built = job::build(&job, &settings).expect("builds");
    assert_eq!(built.namespace, "team-a");
    assert_eq!(built.container, "trial");
    let owners = built.job.metadata.owner_references.as_ref().expect("owner");
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].uid, "1234");
    assert_eq!(label(built.job.metadata.labels.as_ref(), "env"), Some("ci"));
    let spec = built.job.spec.as_ref().expect("spec");
    assert_eq!(spec.backoff_limit, Some(0));
    let pod = spec.template.spec.as_ref().expect("pod");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some("trainer"));
    assert_eq!(
        pod.node_selector
            .as_ref()
            .and_then(|n| n.get("gpu"))
            .map(String::as_str),
        Some("none")
    );
    assert_eq!(pod.tolerations.as_ref().map(Vec::len), Some(1));
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("python:3.12-slim"));
    assert_eq!(container.command.as_ref().expect("argv"), &job.command);
    assert!(container.args.is_none());
    let limits = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("512Mi"));
    let env = env_of(&built);
    assert!(env.contains(&("TUNEFLOW_PARAMETERS".into(), r#"{"lr":0.01}"#.into())));
    assert_eq!(
        spec.active_deadline_seconds, None,
        "no timeout, no deadline"
    );

    let mut timed = trial(native(), None);
    timed.timeout = Some(std::time::Duration::from_millis(90_500));
    let built = job::build(&timed, &settings).expect("builds");
    let deadline = built
        .job
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds);
    assert_eq!(deadline, Some(91 + job::DEADLINE_GRACE_SECONDS));
}

#[test]
fn namespaces_follow_template_then_manifest_then_experiment_then_default() {
    let mut native = native();
    let mut job = trial(native.clone(), None);
    job.namespace = Some("experiment-ns".into());
    assert_eq!(
        job::build(&job, &settings()).expect("builds").namespace,
        "experiment-ns"
    );
    if let Some(k) = native.kubernetes.as_mut() {
        k.namespace = Some("template-ns".into());
    }
    job.template = Arc::new(native);
    assert_eq!(
        job::build(&job, &settings()).expect("builds").namespace,
        "template-ns"
    );

    let mut manifest = katib_manifest();
    manifest["metadata"]["namespace"] = json!("manifest-ns");
    let mut katib = template();
    katib.primary_container_name = Some("training-container".into());
    let mut job = trial(katib, Some(manifest));
    job.namespace = Some("experiment-ns".into());
    assert_eq!(
        job::build(&job, &settings()).expect("builds").namespace,
        "manifest-ns"
    );
}

#[test]
fn bad_templates_are_refused_with_what_to_fix() {
    // Not a Job.
    let tfjob = json!({"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "spec": {}});
    let error = job::build(&trial(template(), Some(tfjob)), &settings()).expect_err("TFJob");
    assert_eq!(
        error,
        "trialSpec is a TFJob; the Kubernetes executor runs batch/v1 Jobs only"
    );

    // Two containers, no primary named.
    let error =
        job::build(&trial(template(), Some(katib_manifest())), &settings()).expect_err("ambiguous");
    assert!(error.contains("training-container, helper"), "{error}");

    // A primary container that does not exist.
    let mut named = template();
    named.primary_container_name = Some("trainer".into());
    let error =
        job::build(&trial(named, Some(katib_manifest())), &settings()).expect_err("missing");
    assert!(
        error.contains("\"trainer\"") && error.contains("training-container, helper"),
        "{error}"
    );

    // A native template without an image.
    let mut no_image = native();
    if let Some(k) = no_image.kubernetes.as_mut() {
        k.image = None;
    }
    let error = job::build(&trial(no_image, None), &settings()).expect_err("no image");
    assert!(error.contains("trialTemplate.kubernetes.image"), "{error}");
    let error =
        job::build(&trial(template(), None), &settings()).expect_err("no kubernetes at all");
    assert!(error.contains("trialTemplate.kubernetes.image"), "{error}");

    // A field of the wrong type names its path.
    let mut manifest = katib_manifest();
    manifest["spec"]["backoffLimit"] = json!("three");
    let mut katib = template();
    katib.primary_container_name = Some("training-container".into());
    let error = job::build(&trial(katib, Some(manifest)), &settings()).expect_err("bad field");
    assert!(
        error.starts_with("trialTemplate.trialSpec.spec.backoffLimit"),
        "{error}"
    );

    // Bad resources in a native template.
    let mut bad = native();
    if let Some(k) = bad.kubernetes.as_mut() {
        k.resources = Some(json!({"limits": "lots"}));
    }
    let error = job::build(&trial(bad, None), &settings()).expect_err("bad resources");
    assert!(
        error.starts_with("trialTemplate.kubernetes.resources.limits"),
        "{error}"
    );
}

fn spec_with(template: TrialTemplate) -> crate::spec::ExperimentSpec {
    let text = r#"
apiVersion: tuneflow.dev/v1alpha1
kind: Experiment
metadata: {name: mnist}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  maxTrialCount: 2
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.1"}}
  trialTemplate:
    command: [python, train.py, "--lr=${parameters.lr}"]
"#;
    let mut spec = crate::spec::parse_str(text, "test.yaml").expect("valid spec");
    spec.trial_template = Some(template);
    spec
}

#[test]
fn check_looks_at_the_template_before_any_trial() {
    assert_eq!(job::check(&spec_with(native())), Ok(()));
    let error = job::check(&spec_with(template())).expect_err("no image");
    assert!(error.contains("trialTemplate.kubernetes.image"), "{error}");

    let mut katib = template();
    katib.trial_spec = Some(json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob"}));
    let error = job::check(&spec_with(katib.clone())).expect_err("not a Job");
    assert!(error.contains("PyTorchJob"), "{error}");
    katib.trial_spec = Some(katib_manifest());
    katib.primary_container_name = Some("nope".into());
    let error = job::check(&spec_with(katib.clone())).expect_err("no such container");
    assert!(error.contains("\"nope\""), "{error}");
    katib.primary_container_name = Some("helper".into());
    assert_eq!(job::check(&spec_with(katib.clone())), Ok(()));

    katib.success_condition = Some("status.succeeded".into());
    let error = job::check(&spec_with(katib)).expect_err("bad condition");
    assert!(
        error.starts_with("trialTemplate.successCondition"),
        "{error}"
    );

    let mut file = spec_with(native());
    file.metrics_collector.kind = crate::spec::CollectorKind::File;
    let error = job::check(&file).expect_err("file collector");
    assert!(error.contains("File metrics collector"), "{error}");
}

fn job_with_conditions(conditions: Value) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": "mnist-0003", "uid": "job-uid"},
        "status": {"conditions": conditions}
    }))
    .expect("job")
}

#[test]
fn job_conditions_decide_success_and_failure() {
    let defaults = Conditions::of(None, None).expect("defaults");
    let running = job_with_conditions(json!([]));
    assert_eq!(status::finished(&running, &defaults), None);
    let complete = job_with_conditions(json!([{"type": "Complete", "status": "True"}]));
    assert_eq!(
        status::finished(&complete, &defaults),
        Some(Finished::Succeeded)
    );
    let failed = job_with_conditions(json!([{
        "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit"
    }]));
    assert_eq!(
        status::finished(&failed, &defaults),
        Some(Finished::Failed(
            "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
        ))
    );
    // Custom conditions.
    let custom = Conditions::of(
        Some(r#"status.conditions.#(type=="Done")#|#(status=="True")#"#),
        None,
    )
    .expect("custom");
    assert_eq!(status::finished(&complete, &custom), None);
    let done = job_with_conditions(json!([{"type": "Done", "status": "True"}]));
    assert_eq!(status::finished(&done, &custom), Some(Finished::Succeeded));
    assert!(Conditions::of(None, Some("status.failed")).is_err());
}

fn pod(name: &str, owner_uid: &str, created: &str, state: Value) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "uid": format!("{name}-uid"), "creationTimestamp": created,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "mnist-0003", "uid": owner_uid}]
            },
            "status": {"containerStatuses": [{
                "name": "trial", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": state
            }]}
        }))
        .expect("pod"),
    )
}

#[test]
fn the_newest_pod_of_the_job_is_followed() {
    let pods = vec![
        pod(
            "old",
            "job-uid",
            "2026-01-01T00:00:00Z",
            json!({"terminated": {"exitCode": 3}}),
        ),
        pod(
            "new",
            "job-uid",
            "2026-01-01T00:01:00Z",
            json!({"running": {}}),
        ),
        pod(
            "stale",
            "earlier-job",
            "2026-01-01T00:02:00Z",
            json!({"running": {}}),
        ),
    ];
    let view = status::current_pod(&pods, "job-uid", "trial").expect("a pod");
    assert_eq!(view.name, "new");
    assert_eq!(view.container, Container::Running);
    let waiting = vec![pod(
        "p",
        "job-uid",
        "2026-01-01T00:00:00Z",
        json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}),
    )];
    let view = status::current_pod(&waiting, "job-uid", "trial").expect("a pod");
    assert_eq!(
        view.container.stuck(),
        Some(("ImagePullBackOff", "Back-off pulling image"))
    );
    assert!(!view.container.started());
    assert!(status::current_pod(&waiting, "other", "trial").is_none());
}

#[test]
fn env_vars_of_the_template_are_not_lost() {
    // The engine passes template env through `job.env`; it lands on the container.
    let mut template = native();
    template.env = vec![EnvVar {
        name: "A".into(),
        value: "1".into(),
    }];
    let mut job = trial(template, None);
    job.env.push(("A".into(), "1".into()));
    let built = job::build(&job, &settings()).expect("builds");
    assert!(env_of(&built).contains(&("A".into(), "1".into())));
}
