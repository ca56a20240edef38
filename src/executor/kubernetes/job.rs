//! Building a trial's `batch/v1` Job: from a Katib-style `trialSpec` manifest (placeholders
//! already substituted by the engine) or from a native template's `command` plus
//! `trialTemplate.kubernetes`.
//!
//! Both paths end the same way: the trial's labels on the Job and its pod template, the
//! `TUNEFLOW_*` environment (and the engine's variables) on the primary container,
//! `restartPolicy: Never` and `backoffLimit: 0` unless the manifest chose otherwise, and the
//! owner reference from the executor's settings.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, PodSpec, PodTemplateSpec, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{KubernetesSettings, experiment_label, job_name};
use crate::executor::TrialJob;
use crate::spec::{CollectorKind, ExperimentSpec, TrialTemplate};

/// Label naming the experiment (its name without the operator's `NAMESPACE.` prefix).
pub const EXPERIMENT_LABEL: &str = "tuneflow.dev/experiment";
/// Label naming the trial (the Job's name).
pub const TRIAL_LABEL: &str = "tuneflow.dev/trial";
/// Label every Job and pod tuneflow creates carries; the executor's watches select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "tuneflow";
/// Annotation with a token unique to one launch of a trial: a Job found after a lost create
/// response is adopted only when it carries the token of this launch.
pub const LAUNCH_ANNOTATION: &str = "tuneflow.dev/launch";
/// How long past the trial's timeout the Job's own `activeDeadlineSeconds` lets it run: the
/// executor deletes a timed-out Job itself; the deadline stops it in the cluster when no
/// tuneflow is around to do so.
pub const DEADLINE_GRACE_SECONDS: i64 = 60;
/// The container name of Jobs built from native templates.
pub const NATIVE_CONTAINER: &str = "trial";

/// A Job ready to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltJob {
    /// The Job's namespace.
    pub namespace: String,
    /// The Job's name.
    pub name: String,
    /// The primary container's name (the one whose log is followed).
    pub container: String,
    /// The primary container's image, for error messages.
    pub image: String,
    /// The Job.
    pub job: Job,
}

/// Builds the Job that runs `job`.
///
/// # Errors
///
/// A sentence naming what is wrong (not a Job, no primary container, no image, a field that
/// does not read as its Kubernetes type) and how to fix it.
pub fn build(job: &TrialJob, settings: &KubernetesSettings) -> Result<BuiltJob, String> {
    let template = job.template.as_ref();
    let name = job_name(&job.trial_name);
    let (mut manifest, container) = match &job.manifest {
        Some(manifest) => katib_job(manifest, template)?,
        None => native_job(job, template)?,
    };
    let namespace = template
        .kubernetes
        .as_ref()
        .and_then(|k| k.namespace.clone())
        .or_else(|| manifest.metadata.namespace.clone())
        .or_else(|| job.namespace.clone())
        .unwrap_or_else(|| settings.default_namespace.clone());

    let mut labels = BTreeMap::new();
    labels.insert(
        EXPERIMENT_LABEL.to_string(),
        experiment_label(&job.experiment).to_string(),
    );
    labels.insert(TRIAL_LABEL.to_string(), name.clone());
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    for (key, value) in &settings.extra_labels {
        labels.insert(key.clone(), value.clone());
    }

    let metadata = &mut manifest.metadata;
    metadata.name = Some(name.clone());
    metadata.generate_name = None;
    metadata.namespace = Some(namespace.clone());
    metadata.resource_version = None;
    metadata.uid = None;
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels.clone());
    if let Some(owner) = &settings.owner {
        let owners = metadata.owner_references.get_or_insert_with(Vec::new);
        if !owners.iter().any(|o| o.uid == owner.uid) {
            owners.push(owner.clone());
        }
    }

    let spec = manifest.spec.get_or_insert_with(JobSpec::default);
    spec.backoff_limit.get_or_insert(0);
    if let Some(timeout) = job.timeout {
        let seconds = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX / 2);
        spec.active_deadline_seconds
            .get_or_insert(seconds.saturating_add(1 + DEADLINE_GRACE_SECONDS));
    }
    let pod_metadata = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    pod_metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels);
    let pod = spec.template.spec.get_or_insert_with(PodSpec::default);
    pod.restart_policy
        .get_or_insert_with(|| "Never".to_string());
    let primary = pod
        .containers
        .iter_mut()
        .find(|c| c.name == container)
        .ok_or_else(|| format!("the Job has no container named \"{container}\""))?;
    set_env(primary, job);
    let image = primary.image.clone().unwrap_or_default();
    Ok(BuiltJob {
        namespace,
        name,
        container,
        image,
        job: manifest,
    })
}

/// The Job of a Katib-style template and its primary container's name.
fn katib_job(manifest: &Value, template: &TrialTemplate) -> Result<(Job, String), String> {
    require_job_kind(manifest)?;
    let job: Job = from_json(manifest.clone(), "trialTemplate.trialSpec")?;
    let names: Vec<&str> = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let container = primary_container(&names, template.primary_container_name.as_deref())?;
    Ok((job, container))
}

/// The Job of a native template: one container named [`NATIVE_CONTAINER`] running the
/// rendered command.
fn native_job(job: &TrialJob, template: &TrialTemplate) -> Result<(Job, String), String> {
    let settings = template.kubernetes.clone().unwrap_or_default();
    let image = native_image(template)?;
    if job.command.is_empty() {
        return Err("the trial command is empty: give trialTemplate.command".to_string());
    }
    let resources: Option<ResourceRequirements> = settings
        .resources
        .map(|r| from_json(r, "trialTemplate.kubernetes.resources"))
        .transpose()?;
    let tolerations: Vec<Toleration> = settings
        .tolerations
        .into_iter()
        .enumerate()
        .map(|(i, t)| from_json(t, &format!("trialTemplate.kubernetes.tolerations[{i}]")))
        .collect::<Result<_, _>>()?;
    let container = Container {
        name: NATIVE_CONTAINER.to_string(),
        image: Some(image),
        command: Some(job.command.clone()),
        resources,
        ..Container::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".to_string()),
        service_account_name: settings.service_account,
        node_selector: (!settings.node_selector.is_empty()).then_some(settings.node_selector),
        tolerations: (!tolerations.is_empty()).then_some(tolerations),
        ..PodSpec::default()
    };
    let built = Job {
        metadata: ObjectMeta::default(),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    };
    Ok((built, NATIVE_CONTAINER.to_string()))
}

/// The image of a native template, or the error that asks for it.
fn native_image(template: &TrialTemplate) -> Result<String, String> {
    template
        .kubernetes
        .as_ref()
        .and_then(|k| k.image.clone())
        .filter(|image| !image.trim().is_empty())
        .ok_or_else(|| {
            "the Kubernetes executor needs a container image for the trials: add \
             trialTemplate.kubernetes.image (for example `image: python:3.12-slim`)"
                .to_string()
        })
}

/// Refuses manifests that are not `batch/v1` Jobs.
fn require_job_kind(manifest: &Value) -> Result<(), String> {
    let api_version = manifest.get("apiVersion").and_then(Value::as_str);
    let kind = manifest.get("kind").and_then(Value::as_str);
    if api_version == Some("batch/v1") && kind == Some("Job") {
        return Ok(());
    }
    let what = match (api_version, kind) {
        (_, Some(kind)) if kind != "Job" => format!("a {kind}"),
        (Some(api_version), Some(kind)) => format!("a {kind} of {api_version}"),
        _ => "a manifest without apiVersion and kind".to_string(),
    };
    Err(format!(
        "trialSpec is {what}; the Kubernetes executor runs batch/v1 Jobs only"
    ))
}

/// The primary container among `names`: the one named `wanted`, or the only one.
fn primary_container(names: &[&str], wanted: Option<&str>) -> Result<String, String> {
    let listed = if names.is_empty() {
        "it has none".to_string()
    } else {
        format!("it has {}", names.join(", "))
    };
    match wanted {
        Some(wanted) if names.contains(&wanted) => Ok(wanted.to_string()),
        Some(wanted) => Err(format!(
            "trialTemplate.primaryContainerName is \"{wanted}\" but the trialSpec Job has no \
             container of that name in spec.template.spec.containers ({listed})"
        )),
        None => match names {
            [only] => Ok((*only).to_string()),
            _ => Err(format!(
                "the trialSpec Job must have exactly one container or name its primary one in \
                 trialTemplate.primaryContainerName ({listed})"
            )),
        },
    }
}

/// Sets the trial's environment on its primary container: the manifest's own entries, then
/// `TUNEFLOW_EXPERIMENT`, `TUNEFLOW_TRIAL_NAME` and the engine's variables, each replacing an
/// entry of the same name.
fn set_env(container: &mut Container, job: &TrialJob) {
    let env = container.env.get_or_insert_with(Vec::new);
    let ours = [
        ("TUNEFLOW_EXPERIMENT", job.experiment.as_str()),
        ("TUNEFLOW_TRIAL_NAME", job.trial_name.as_str()),
    ]
    .into_iter()
    .chain(job.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for (name, value) in ours {
        let entry = EnvVar {
            name: name.to_string(),
            value: Some(value.to_string()),
            value_from: None,
        };
        match env.iter_mut().find(|e| e.name == name) {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    }
}

/// Reads `value` as `T`, naming the failing field under `at` (`at.spec.template...`).
fn from_json<T: DeserializeOwned>(value: Value, at: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            at.to_string()
        } else {
            format!("{at}.{path}")
        };
        format!("{field}: {}", e.inner())
    })
}

/// Whether the experiment's trials can run as Jobs, judged from the template before any trial
/// is rendered.
///
/// # Errors
///
/// The first problem found, as a sentence that says how to fix the spec.
pub fn check(spec: &ExperimentSpec) -> Result<(), String> {
    let Some(template) = &spec.trial_template else {
        return Err(format!(
            "experiment `{}` has no trialTemplate to run on Kubernetes",
            spec.name
        ));
    };
    if spec.metrics_collector.kind == CollectorKind::File {
        return Err(
            "the File metrics collector reads a file on this machine, which a trial running \
             in a Kubernetes pod cannot write: print the metrics to stdout (collector kind \
             StdOut) or push them through the REST API (kind Push)"
                .to_string(),
        );
    }
    for (field, condition) in [
        ("successCondition", &template.success_condition),
        ("failureCondition", &template.failure_condition),
    ] {
        if let Some(text) = condition {
            crate::spec::condition::ResourceCondition::parse(text)
                .map_err(|e| format!("trialTemplate.{field}: {e}"))?;
        }
    }
    match &template.trial_spec {
        Some(manifest) => {
            require_job_kind(manifest)?;
            let containers = manifest
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array);
            let names: Vec<&str> = containers
                .map(|list| {
                    list.iter()
                        .filter_map(|c| c.get("name").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            primary_container(&names, template.primary_container_name.as_deref()).map(|_| ())
        }
        None => {
            native_image(template)?;
            if template.command.is_empty() {
                return Err(format!(
                    "experiment `{}` has no command to run: give spec.trialTemplate.command",
                    spec.name
                ));
            }
            Ok(())
        }
    }
}
