//! Tests of the whole module: documents in, specs or errors out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tuneflow_algorithms::{Direction, Distribution, Domain, ParameterValue};

use super::*;

/// A small valid tuneflow-native experiment; tests change one thing in it.
const NATIVE: &str = r#"apiVersion: tuneflow.dev/v1alpha1
kind: Experiment
metadata:
  name: quickstart
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
    additionalMetricNames: [accuracy]
  algorithm:
    algorithmName: random
  maxTrialCount: 10
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.01", max: "0.05"}
    - name: layers
      parameterType: int
      feasibleSpace: {min: 1, max: 4}
  trialTemplate:
    command: [./train.sh, "--lr=${parameters.lr}", "--layers=${trialParameters.layers}"]
    trialParameters:
      - name: layers
        reference: layers
    env: {SEED: "1"}
    timeout: 90s
"#;

fn ok(text: &str) -> ExperimentSpec {
    match parse_str(text, "exp.yaml") {
        Ok(spec) => spec,
        Err(errors) => panic!("expected a valid spec, got:\n{errors}"),
    }
}

fn errors(text: &str) -> Vec<SpecError> {
    match parse_str(text, "exp.yaml") {
        Ok(spec) => panic!("expected errors, got {spec:#?}"),
        Err(errors) => {
            assert_eq!(errors.source, "exp.yaml");
            assert!(!errors.errors.is_empty());
            errors.errors
        }
    }
}

/// `NATIVE` with `from` replaced by `to` (which must occur).
fn native_with(from: &str, to: &str) -> String {
    assert!(NATIVE.contains(from), "{from:?} not in NATIVE");
    NATIVE.replacen(from, to, 1)
}

fn paths(errors: &[SpecError]) -> Vec<&str> {
    errors.iter().map(|error| error.path.as_str()).collect()
}

/// `shared/katib` beside the repository: `<clone>/../shared/katib` in CI; found by walking up
/// from the manifest directory so that a scratch crate elsewhere finds it too.
fn katib_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("shared").join("katib"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| manifest.join("../shared/katib"))
}

#[test]
fn the_native_example_validates() {
    let spec = ok(NATIVE);
    assert_eq!(spec.name, "quickstart");
    assert_eq!(spec.flavor, Flavor::Tuneflow);
    assert_eq!(spec.parallel_trial_count, 3);
    assert_eq!(spec.max_trial_count, Some(10));
    assert_eq!(spec.max_failed_trial_count, None);
    assert_eq!(spec.objective.direction, Direction::Minimize);
    assert_eq!(
        spec.objective.metric_strategies,
        [
            MetricStrategy {
                name: "loss".into(),
                strategy: Strategy::Min
            },
            MetricStrategy {
                name: "accuracy".into(),
                strategy: Strategy::Min
            },
        ]
    );
    assert_eq!(
        spec.space.parameters[0].domain,
        Domain::Double {
            min: 0.01,
            max: 0.05,
            step: None,
            distribution: Distribution::Uniform
        }
    );
    assert_eq!(
        spec.space.parameters[1].domain,
        Domain::Int {
            min: 1,
            max: 4,
            step: None,
            distribution: Distribution::Uniform
        }
    );
    let template = spec.trial_template.as_ref().expect("template");
    assert_eq!(template.timeout, Some(Duration::from_secs(90)));
    assert_eq!(
        template.env,
        [EnvVar {
            name: "SEED".into(),
            value: "1".into()
        }]
    );
    assert_eq!(spec.metrics_collector, MetricsCollector::default());
}

#[test]
fn every_katib_example_validates_or_needs_what_is_not_available() {
    let root = katib_dir();
    let must_validate = [
        "random.yaml",
        "grid.yaml",
        "hyperopt-distribution.yaml",
        "file-metrics-collector.yaml",
        "file-metrics-collector-with-json-format.yaml",
        "trial-metadata-substitution.yaml",
        "long-running-resume.yaml",
        "from-volume-resume.yaml",
    ];
    let mut seen = 0;
    let mut validated = Vec::new();
    for dir in [
        "hp-tuning",
        "metrics-collector",
        "early-stopping",
        "trial-template",
        "resume-experiment",
    ] {
        let dir = root.join(dir);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            seen += 1;
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            match parse_file(&path) {
                Ok(spec) => {
                    assert_eq!(spec.flavor, Flavor::Katib);
                    validated.push(file);
                }
                Err(errors) => {
                    assert!(!must_validate.contains(&file.as_str()), "{errors}");
                    for error in &errors.errors {
                        assert!(
                            error
                                .message
                                .contains("is not available in this version of tuneflow"),
                            "{file}: unexpected error:\n{errors}"
                        );
                    }
                }
            }
        }
    }
    assert!(
        seen >= 20,
        "only {seen} example files under {}",
        root.display()
    );
    for file in must_validate {
        assert!(
            validated.iter().any(|v| v == file),
            "{file} did not validate"
        );
    }
}

#[test]
fn katib_job_runs_the_primary_container_locally() {
    let spec = parse_file(&katib_dir().join("trial-template/trial-metadata-substitution.yaml"))
        .unwrap_or_else(|errors| panic!("{errors}"));
    let template = spec.trial_template.as_ref().expect("template");
    assert_eq!(
        template.command,
        [
            "python3",
            "/opt/pytorch-mnist/mnist.py",
            "--epochs=1",
            "--batch-size=16",
            "--lr=${trialParameters.learningRate}",
            "--momentum=${trialParameters.momentum}",
        ]
    );
    assert_eq!(template.env.len(), 6);
    assert_eq!(
        template.env[0],
        EnvVar {
            name: "TRIAL_NAME".into(),
            value: "${trialParameters.trialName}".into()
        }
    );
    assert_eq!(
        template.primary_container_name.as_deref(),
        Some("training-container")
    );
    assert!(template.trial_spec.is_some());
    assert_eq!(spec.namespace.as_deref(), Some("kubeflow"));

    let assignment = vec![ParameterValue::Double(0.02), ParameterValue::Double(0.7)];
    let trial = TrialContext {
        experiment: &spec.name,
        namespace: spec.namespace.as_deref(),
        trial_name: "trial-metadata-substitution-abc",
        space: &spec.space,
        assignment: &assignment,
    };
    let rendered = spec.render_trial(&trial).expect("renders");
    assert_eq!(rendered.command[4..], ["--lr=0.02", "--momentum=0.7"]);
    let env: Vec<(&str, &str)> = rendered
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("TRIAL_NAME", "trial-metadata-substitution-abc"),
            ("TRIAL_NAMESPACE", "kubeflow"),
            ("TRIAL_KIND", "Job"),
            ("TRIAL_API_VERSION", "batch/v1"),
            ("TRIAL_LABEL_CUSTOM", "custom-label"),
            ("TRIAL_ANNOTATION_CUSTOM", "custom-annotation"),
        ]
    );
    assert_eq!(rendered.metrics_file, None);
    let manifest = spec
        .trial_template
        .as_ref()
        .and_then(|template| template.render_trial_spec(&trial).transpose())
        .expect("manifest")
        .expect("renders");
    assert_eq!(
        manifest["spec"]["template"]["spec"]["containers"][0]["env"][4]["value"],
        "custom-label"
    );
    assert_eq!(
        manifest["spec"]["template"]["spec"]["containers"][0]["command"][4],
        "--lr=0.02"
    );
}

#[test]
fn args_follow_command_and_env_values_are_kept() {
    let text = r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: job}
spec:
  objective: {type: maximize, objectiveMetricName: acc}
  algorithm: {algorithmName: random}
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.1", max: "0.2"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: lr, reference: lr}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                command: [python3]
                args: [train.py, "--lr=${trialParameters.lr}"]
                env:
                  - {name: A, value: "x"}
                  - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
"#;
    let spec = ok(text);
    let template = spec.trial_template.expect("template");
    assert_eq!(
        template.command,
        ["python3", "train.py", "--lr=${trialParameters.lr}"]
    );
    assert_eq!(
        template.env,
        [EnvVar {
            name: "A".into(),
            value: "x".into()
        }]
    );
    assert_eq!(spec.objective.metric_strategies[0].strategy, Strategy::Max);
}

#[test]
fn render_substitutes_both_placeholder_forms() {
    let spec = ok(&native_with(
        "env: {SEED: \"1\"}",
        "env: [{name: RUN, value: \"${trialParameters.trial}-${parameters.layers}\"}]",
    )
    .replace(
        "        reference: layers\n",
        "        reference: layers\n      - name: trial\n        reference: ${trialSpec.Name}\n",
    ));
    let assignment = vec![ParameterValue::Double(0.03), ParameterValue::Int(2)];
    let trial = TrialContext {
        experiment: "quickstart",
        namespace: None,
        trial_name: "quickstart-7",
        space: &spec.space,
        assignment: &assignment,
    };
    let rendered = spec.render_trial(&trial).expect("renders");
    assert_eq!(rendered.command, ["./train.sh", "--lr=0.03", "--layers=2"]);
    assert_eq!(
        rendered.env,
        [("RUN".to_string(), "quickstart-7-2".to_string())]
    );
}

#[test]
fn render_fails_cleanly_on_a_hand_made_template() {
    let spec = ok(NATIVE);
    let mut template = spec.trial_template.clone().expect("template");
    template.command.push("${trialParameters.nope}".into());
    let assignment = vec![ParameterValue::Double(0.03), ParameterValue::Int(2)];
    let trial = TrialContext {
        experiment: "quickstart",
        namespace: None,
        trial_name: "t",
        space: &spec.space,
        assignment: &assignment,
    };
    let error = template.render(&trial).expect_err("undefined");
    assert_eq!(error.message, "undefined trial parameter \"nope\"");
    let short = vec![ParameterValue::Double(0.03)];
    let trial = TrialContext {
        assignment: &short,
        ..trial
    };
    assert!(spec.render_trial(&trial).is_err());
}

#[test]
fn metrics_file_path_is_rendered() {
    let spec = ok(&native_with(
        "  trialTemplate:",
        "  metricsCollectorSpec:\n    collector: {kind: File}\n    source:\n      fileSystemPath: {path: \"out/${parameters.layers}.json\", format: JSON}\n  trialTemplate:",
    ));
    let file = spec.metrics_collector.file.clone().expect("file");
    assert_eq!(file.format, FileFormat::Json);
    let assignment = vec![ParameterValue::Double(0.03), ParameterValue::Int(3)];
    let trial = TrialContext {
        experiment: "quickstart",
        namespace: None,
        trial_name: "t",
        space: &spec.space,
        assignment: &assignment,
    };
    assert_eq!(
        spec.render_trial(&trial)
            .expect("renders")
            .metrics_file
            .as_deref(),
        Some("out/3.json")
    );
}

#[test]
fn errors_carry_line_and_column() {
    let errors = errors(&native_with("type: minimize", "type: minimise"));
    assert_eq!(errors.len(), 1);
    let error = &errors[0];
    assert_eq!(error.path, "spec.objective.type");
    assert_eq!((error.line, error.column), (Some(7), Some(11)));
    assert_eq!(error.hint.as_deref(), Some("did you mean \"minimize\"?"));
    let shown = SpecErrors {
        source: "exp.yaml".into(),
        errors: errors.clone(),
    }
    .to_string();
    assert!(
        shown.starts_with(
            "exp.yaml:7:11: error: spec.objective.type: must be \"minimize\" or \"maximize\""
        ),
        "{shown}"
    );
    assert!(
        shown.ends_with("\n  hint: did you mean \"minimize\"?"),
        "{shown}"
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let text = native_with("name: quickstart", "name: Quick_Start")
        .replace(
            "maxTrialCount: 10",
            "maxTrialCount: 10\n  parallelTrialCount: 20\n  paralelTrialCount: 2",
        )
        .replace("max: \"0.05\"", "max: \"0.001\"")
        .replace("timeout: 90s", "timeout: soon");
    let errors = errors(&text);
    assert_eq!(
        paths(&errors),
        [
            "metadata.name",
            "spec.parallelTrialCount",
            "spec.paralelTrialCount",
            "spec.parameters[0].feasibleSpace.max",
            "spec.trialTemplate.timeout",
        ]
    );
    assert_eq!(errors[1].message, "must not exceed maxTrialCount (10)");
    assert_eq!(errors[2].message, "unknown field \"paralelTrialCount\"");
    assert_eq!(
        errors[2].hint.as_deref(),
        Some("did you mean \"parallelTrialCount\"?")
    );
}

#[test]
fn unknown_fields_anywhere_get_a_hint() {
    let errors = errors(&native_with(
        "objectiveMetricName: loss",
        "objectiveMetricName: loss\n    goals: 0.1",
    ));
    assert_eq!(paths(&errors), ["spec.objective.goals"]);
    assert_eq!(errors[0].hint.as_deref(), Some("did you mean \"goal\"?"));
    // Free-form parts are not checked.
    let text = native_with(
        "name: quickstart",
        "name: quickstart\n  labels: {anything: goes}",
    );
    ok(&text);
}

#[test]
fn numbers_may_be_written_as_strings() {
    let spec = ok(
        &native_with("{min: 1, max: 4}", "{min: \"1\", max: \"4\", step: \"1\"}").replace(
            "{min: \"0.01\", max: \"0.05\"}",
            "{min: 1e-3, max: \"1e-1\", distribution: logUniform}",
        ),
    );
    assert_eq!(
        spec.space.parameters[0].domain,
        Domain::Double {
            min: 0.001,
            max: 0.1,
            step: None,
            distribution: Distribution::LogUniform
        }
    );
    assert_eq!(
        spec.space.parameters[1].domain,
        Domain::Int {
            min: 1,
            max: 4,
            step: Some(1),
            distribution: Distribution::Uniform
        }
    );
}

#[test]
fn min_not_below_max_is_an_error_on_max() {
    let errors = errors(&native_with("{min: 1, max: 4}", "{min: 5, max: 4}"));
    assert_eq!(paths(&errors), ["spec.parameters[1].feasibleSpace.max"]);
    assert_eq!(
        errors[0].message,
        "must be greater than or equal to min (5)"
    );
    let errors = self::errors(&native_with("max: \"0.05\"", "max: \"0.01\""));
    assert_eq!(paths(&errors), ["spec.parameters[0].feasibleSpace.max"]);
    assert_eq!(errors[0].message, "must be greater than min (0.01)");
    // A single-valued int range is allowed (Katib's Hyperband example uses one).
    ok(&native_with("{min: 1, max: 4}", "{min: 2, max: 2}"));
}

#[test]
fn feasible_space_rules() {
    let cases = [
        (
            "{min: 1, max: 4}",
            "{min: 1, max: 4, step: 0}",
            "spec.parameters[1].feasibleSpace.step",
            "must be greater than 0",
        ),
        (
            "{min: 1, max: 4}",
            "{min: 1, max: 4, step: 5}",
            "spec.parameters[1].feasibleSpace.step",
            "must not exceed max - min (3)",
        ),
        (
            "{min: 1, max: 4}",
            "{min: 1.5, max: 4}",
            "spec.parameters[1].feasibleSpace.min",
            "expected an integer, found 1.5",
        ),
        (
            "{min: 1, max: 4}",
            "{min: 0, max: 4, distribution: logNormal}",
            "spec.parameters[1].feasibleSpace.min",
            "must be greater than 0 for a logNormal distribution",
        ),
        (
            "{min: 1, max: 4}",
            "{min: 1, max: 4, list: [1, 2]}",
            "spec.parameters[1].feasibleSpace.list",
            "a list is not allowed for int parameters",
        ),
        (
            "{min: 1, max: 4}",
            "{min: 1}",
            "spec.parameters[1].feasibleSpace.max",
            "missing required field \"max\"",
        ),
        (
            "{min: 1, max: 4}",
            "{min: 1, max: 4, distribution: gaussian}",
            "spec.parameters[1].feasibleSpace.distribution",
            "must be \"uniform\", \"logUniform\", \"normal\" or \"logNormal\", found \"gaussian\"",
        ),
        (
            "parameterType: int",
            "parameterType: integer",
            "spec.parameters[1].parameterType",
            "must be \"double\", \"int\", \"discrete\" or \"categorical\", found \"integer\"",
        ),
    ];
    for (from, to, path, message) in cases {
        let errors = errors(&native_with(from, to));
        assert_eq!(paths(&errors), [path], "{to}");
        assert_eq!(errors[0].message, message, "{to}");
    }
}

#[test]
fn discrete_and_categorical_parameters() {
    let text = native_with(
        "  trialTemplate:",
        "    - {name: batch, parameterType: discrete, feasibleSpace: {list: [\"16\", 32, 64]}}\n    - {name: opt, parameterType: categorical, feasibleSpace: {list: [sgd, adam]}}\n  trialTemplate:",
    );
    let spec = ok(&text);
    assert_eq!(
        spec.space.parameters[2].domain,
        Domain::Discrete {
            values: vec![16.0, 32.0, 64.0]
        }
    );
    assert_eq!(
        spec.space.parameters[3].domain,
        Domain::Categorical {
            choices: vec!["sgd".into(), "adam".into()]
        }
    );

    let errors = errors(
        &text
            .replace("[sgd, adam]", "[sgd, sgd]")
            .replace("[\"16\", 32, 64]", "[16, x]"),
    );
    assert_eq!(
        paths(&errors),
        [
            "spec.parameters[2].feasibleSpace.list[1]",
            "spec.parameters[3].feasibleSpace.list[1]"
        ]
    );
    assert_eq!(
        errors[1].message,
        "duplicate value \"sgd\" (also spec.parameters[3].feasibleSpace.list[0])"
    );

    let errors = self::errors(&text.replace("{list: [sgd, adam]}", "{list: [], min: 1}"));
    assert_eq!(
        paths(&errors),
        [
            "spec.parameters[3].feasibleSpace.list",
            "spec.parameters[3].feasibleSpace.min"
        ]
    );
}

#[test]
fn parameters_need_unique_names() {
    let errors = errors(&native_with(
        "name: layers\n      parameterType",
        "name: lr\n      parameterType",
    ));
    assert!(
        paths(&errors).contains(&"spec.parameters[1].name"),
        "{errors:?}"
    );
}

#[test]
fn undefined_trial_parameter() {
    let errors = errors(&native_with(
        "--layers=${trialParameters.layers}",
        "--layers=${trialParameters.layer}",
    ));
    assert_eq!(
        paths(&errors),
        [
            "spec.trialTemplate.command[2]",
            "spec.trialTemplate.trialParameters[0].name"
        ]
    );
    assert_eq!(errors[0].message, "undefined trial parameter \"layer\"");
    assert_eq!(errors[0].hint.as_deref(), Some("did you mean \"layers\"?"));
    assert_eq!(
        errors[1].message,
        "trial parameter \"layers\" is not used in the trial template"
    );
}

#[test]
fn unused_trial_parameter() {
    let errors = errors(&native_with(
        "        reference: layers\n",
        "        reference: layers\n      - name: extra\n        reference: lr\n",
    ));
    assert_eq!(
        paths(&errors),
        ["spec.trialTemplate.trialParameters[1].name"]
    );
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("use it as ${trialParameters.extra} or remove it")
    );
}

#[test]
fn references_and_shorthand_name_parameters() {
    let errors = errors(&native_with("reference: layers", "reference: layer"));
    assert_eq!(
        paths(&errors),
        ["spec.trialTemplate.trialParameters[0].reference"]
    );
    assert_eq!(errors[0].hint.as_deref(), Some("did you mean \"layers\"?"));
    let errors = self::errors(&native_with("${parameters.lr}", "${parameters.rate}"));
    assert_eq!(paths(&errors), ["spec.trialTemplate.command[1]"]);
    assert_eq!(errors[0].message, "undefined parameter \"rate\"");
    let errors = self::errors(&native_with(
        "reference: layers",
        "reference: ${trialSpec.Uid}",
    ));
    assert!(
        errors[0]
            .message
            .starts_with("unsupported trial metadata reference"),
        "{errors:?}"
    );
}

#[test]
fn bad_timeout() {
    let errors = errors(&native_with("timeout: 90s", "timeout: 90 seconds please"));
    assert_eq!(paths(&errors), ["spec.trialTemplate.timeout"]);
    assert!(
        errors[0]
            .message
            .starts_with("invalid duration \"90 seconds please\""),
        "{errors:?}"
    );
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("write a duration such as \"90s\", \"15m\" or \"1h30m\"")
    );
    let spec = ok(&native_with("timeout: 90s", "timeout: 1h30m"));
    assert_eq!(
        spec.trial_template.and_then(|t| t.timeout),
        Some(Duration::from_secs(5400))
    );
    let errors = self::errors(&native_with("timeout: 90s", "timeout: 0s"));
    assert_eq!(errors[0].message, "must be a positive duration");
}

/// Regression (reliability probe): a timeout of u64::MAX seconds validated, was stored, and
/// then panicked every read of the experiment list.
#[test]
fn a_timeout_beyond_a_year_is_refused_and_never_panics_when_read() {
    for huge in [
        "timeout: 18446744073709551615s",
        "timeout: 18446744073709551615",
        "timeout: 400d",
        "timeout: 1e300",
    ] {
        let errors = errors(&native_with("timeout: 90s", huge));
        assert_eq!(paths(&errors), ["spec.trialTemplate.timeout"], "{huge}");
    }
    let year = ok(&native_with("timeout: 90s", "timeout: 365d"));
    assert!(year.trial_template.and_then(|t| t.timeout).is_some());
    // A spec stored before the bound reads back with the bound, not a panic.
    let spec = ok(&native_with("timeout: 90s", "timeout: 90s"));
    let mut stored = serde_json::to_value(&spec).expect("spec as JSON");
    let template = stored
        .as_object_mut()
        .and_then(|s| s.values_mut().find(|v| v.get("timeout").is_some()))
        .expect("the template is stored");
    template["timeout"] = serde_json::json!(1.8446744073709552e19);
    let read: crate::spec::ExperimentSpec =
        serde_json::from_value(stored).expect("the stored spec reads back");
    assert_eq!(
        read.trial_template.and_then(|t| t.timeout),
        Some(crate::spec::model::MAX_TIMEOUT)
    );
}

#[test]
fn native_template_needs_a_command() {
    let errors = errors(&native_with(
        "    command: [./train.sh, \"--lr=${parameters.lr}\", \"--layers=${trialParameters.layers}\"]\n",
        "",
    ));
    assert!(
        paths(&errors).contains(&"spec.trialTemplate.command"),
        "{errors:?}"
    );
    // No trial template at all: a client-driven experiment.
    let start = NATIVE.find("  trialTemplate:").expect("template");
    let spec = ok(&NATIVE[..start]);
    assert!(spec.trial_template.is_none());
}

#[test]
fn json_documents_are_accepted() {
    let json = r#"{
  "apiVersion": "tuneflow.dev/v1alpha1",
  "kind": "Experiment",
  "metadata": {"name": "json"},
  "spec": {
    "objective": {"type": "maximize", "objectiveMetricName": "acc"},
    "algorithm": {"algorithmName": "grid"},
    "parameters": [
      {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "step": "0.25"}}
    ],
    "trialTemplate": {"command": ["echo", "${parameters.x}"]}
  }
}"#;
    let spec = ok(json);
    assert_eq!(spec.algorithm.name, "grid");
    let errors = errors(&json.replace("\"max\": \"1\"", "\"max\": \"-1\""));
    assert_eq!(paths(&errors), ["spec.parameters[0].feasibleSpace.max"]);
    assert_eq!((errors[0].line, errors[0].column), (Some(9), Some(85)));
}

#[test]
fn one_experiment_per_file() {
    let errors = errors(&format!("{NATIVE}---\n{NATIVE}"));
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        "exp.yaml holds 2 documents; put one experiment per file"
    );
    assert_eq!(errors[0].line, Some(28));
    // Empty leading documents are fine.
    ok(&format!("---\n---\n{NATIVE}"));
    let empty = self::errors("# nothing here\n");
    assert!(
        empty[0].message.contains("holds no experiment"),
        "{empty:?}"
    );
}

#[test]
fn malformed_yaml_is_one_error_with_a_position() {
    let errors = errors(&native_with("type: minimize", "type: [minimize"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.starts_with("malformed YAML"),
        "{errors:?}"
    );
    assert!(errors[0].line.is_some());
    assert_eq!(errors[0].path, "");
}

#[test]
fn wrong_types_are_named() {
    let errors = errors(&native_with(
        "additionalMetricNames: [accuracy]",
        "additionalMetricNames: accuracy",
    ));
    assert_eq!(errors[0].message, "expected a list, found a string");
    let errors = self::errors(&native_with("maxTrialCount: 10", "maxTrialCount: [10]"));
    assert_eq!(errors[0].message, "expected a number, found a list");
}

#[test]
fn algorithm_errors_point_at_their_field() {
    let errors = errors(&native_with(
        "algorithmName: random",
        "algorithmName: randm",
    ));
    assert_eq!(paths(&errors), ["spec.algorithm.algorithmName"]);
    assert_eq!(errors[0].message, "unknown algorithm \"randm\"");
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("did you mean \"random\"? available: random, grid, tpe, multivariate-tpe, hyperband")
    );

    let errors = self::errors(&native_with(
        "algorithmName: random",
        "algorithmName: cmaes",
    ));
    assert_eq!(
        errors[0].message,
        "algorithm \"cmaes\" is not available in this version of tuneflow"
    );
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("available: random, grid, tpe, multivariate-tpe, hyperband")
    );

    // Grid needs a step for doubles: the algorithm blames parameter 0.
    let errors = self::errors(&native_with("algorithmName: random", "algorithmName: grid"));
    assert_eq!(paths(&errors), ["spec.parameters[0]"]);

    let errors = self::errors(&native_with(
        "algorithmName: random",
        "algorithmName: random\n    algorithmSettings: [{name: random_state, value: \"-1\"}]",
    ));
    assert_eq!(paths(&errors), ["spec.algorithm.algorithmSettings[0]"]);
    let spec = ok(&native_with(
        "algorithmName: random",
        "algorithmName: random\n    algorithmSettings: [{name: random_state, value: 42}]",
    ));
    assert_eq!(spec.algorithm.settings[0].value, "42");
}

#[test]
fn early_stopping_rules_are_checked_by_building_them() {
    let spec = ok(&native_with(
        "  maxTrialCount: 10",
        "  maxTrialCount: 10\n  earlyStopping: {algorithmName: medianstop, algorithmSettings: [{name: start_step, value: \"2\"}]}",
    ));
    assert_eq!(
        spec.early_stopping.map(|e| e.name).as_deref(),
        Some("medianstop")
    );
    let errors = errors(&native_with(
        "  maxTrialCount: 10",
        "  maxTrialCount: 10\n  earlyStopping: {algorithmName: asha, algorithmSettings: [{name: reduction_factor, value: \"1\"}]}",
    ));
    assert_eq!(paths(&errors), ["spec.earlyStopping.algorithmSettings[0]"]);
    assert!(
        errors[0].message.contains("at least 2"),
        "{}",
        errors[0].message
    );
    let errors = self::errors(&native_with(
        "  maxTrialCount: 10",
        "  maxTrialCount: 10\n  earlyStopping: {algorithmName: hyperband}",
    ));
    assert_eq!(paths(&errors), ["spec.earlyStopping.algorithmSettings"]);
    assert!(
        errors[0].message.contains("max_resource"),
        "{}",
        errors[0].message
    );
    let errors = self::errors(&native_with(
        "  maxTrialCount: 10",
        "  maxTrialCount: 10\n  earlyStopping: {algorithmName: medianstp}",
    ));
    assert_eq!(
        errors[0].message,
        "unknown early stopping algorithm \"medianstp\""
    );
    assert!(
        errors[0]
            .hint
            .as_deref()
            .unwrap_or_default()
            .starts_with("did you mean \"medianstop\"?")
    );
}

#[test]
fn trial_counts_follow_katib() {
    let spec = ok(&native_with("maxTrialCount: 10", "maxTrialCount: 2"));
    assert_eq!(spec.parallel_trial_count, 2);
    let errors = errors(&native_with(
        "maxTrialCount: 10",
        "maxTrialCount: 10\n  maxFailedTrialCount: -1\n  parallelTrialCount: 0",
    ));
    assert_eq!(
        paths(&errors),
        ["spec.maxFailedTrialCount", "spec.parallelTrialCount"]
    );
    assert_eq!(errors[0].message, "must not be negative");
    assert_eq!(errors[1].message, "must be at least 1");
    // More allowed failures than trials is harmless (the limit is never reached), and
    // Katib's own simple-pbt example has it.
    let spec = ok(&native_with(
        "maxTrialCount: 10",
        "maxTrialCount: 2\n  maxFailedTrialCount: 3",
    ));
    assert_eq!(spec.max_failed_trial_count, Some(3));
    let errors = self::errors(&native_with("maxTrialCount: 10", "maxTrialCount: -1"));
    assert_eq!(errors[0].message, "must be at least 1");
    let errors = self::errors(&native_with(
        "maxTrialCount: 10",
        "maxTrialCount: 5000000000",
    ));
    assert_eq!(errors[0].message, "must be at most 4294967295");
}

#[test]
fn metric_strategies_override_defaults() {
    let spec = ok(&native_with(
        "additionalMetricNames: [accuracy]",
        "additionalMetricNames: [accuracy]\n    metricStrategies: [{name: accuracy, value: max}, {name: loss, value: latest}]",
    ));
    let strategies: Vec<Strategy> = spec
        .objective
        .metric_strategies
        .iter()
        .map(|s| s.strategy)
        .collect();
    assert_eq!(strategies, [Strategy::Latest, Strategy::Max]);
    let errors = errors(&native_with(
        "additionalMetricNames: [accuracy]",
        "additionalMetricNames: [accuracy, loss]\n    metricStrategies: [{name: acuracy, value: max}]",
    ));
    assert_eq!(
        paths(&errors),
        [
            "spec.objective.additionalMetricNames[1]",
            "spec.objective.metricStrategies[0].name"
        ]
    );
}

#[test]
fn collector_rules() {
    let with = |collector: &str| {
        native_with(
            "  trialTemplate:",
            &format!("  metricsCollectorSpec:\n{collector}  trialTemplate:"),
        )
    };
    let errors = errors(&with("    collector: {kind: TensorFlowEvent}\n"));
    assert_eq!(
        errors[0].message,
        "collector kind TensorFlowEvent is not available in this version of tuneflow"
    );
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("use StdOut, File, Push or MLflow")
    );
    let errors = self::errors(&with("    collector: {kind: File}\n"));
    assert_eq!(
        paths(&errors),
        ["spec.metricsCollectorSpec.source.fileSystemPath"]
    );
    let errors = self::errors(&with(
        "    collector: {kind: File}\n    source:\n      fileSystemPath: {path: m.json, format: JSON}\n      filter: {metricsFormat: [\"(a)(b)\"]}\n",
    ));
    assert_eq!(paths(&errors), ["spec.metricsCollectorSpec.source.filter"]);
    let errors = self::errors(&with(
        "    source:\n      filter: {metricsFormat: [\"(\\\\w+)=\", \"([a-z\"]}\n",
    ));
    assert_eq!(
        paths(&errors),
        [
            "spec.metricsCollectorSpec.source.filter.metricsFormat[0]",
            "spec.metricsCollectorSpec.source.filter.metricsFormat[1]"
        ]
    );
    let spec = ok(&with("    collector: {kind: Push}\n"));
    assert_eq!(spec.metrics_collector.kind, CollectorKind::Push);
}

#[test]
fn config_map_templates_need_a_cluster() {
    let errors = errors(&native_with(
        "    command: [./train.sh, \"--lr=${parameters.lr}\", \"--layers=${trialParameters.layers}\"]\n",
        "    configMap: {configMapName: t, configMapNamespace: k, templatePath: p}\n",
    ));
    assert_eq!(paths(&errors), ["spec.trialTemplate.configMap"]);
    assert!(
        errors[0]
            .message
            .contains("is not available in this version of tuneflow")
    );
}

#[test]
fn api_version_and_kind() {
    let errors = errors(&native_with("tuneflow.dev/v1alpha1", "kubeflow.org/v1"));
    assert_eq!(
        errors[0].message,
        "must be \"tuneflow.dev/v1alpha1\" or \"kubeflow.org/v1beta1\", found \"kubeflow.org/v1\""
    );
    let errors = self::errors(&native_with("kind: Experiment", "kind: Trial"));
    assert_eq!(paths(&errors), ["kind"]);
}

#[test]
fn unreadable_files_are_spec_errors() {
    let errors = parse_file(Path::new("/nonexistent/exp.yaml")).expect_err("missing");
    assert_eq!(
        errors.to_string(),
        "/nonexistent/exp.yaml: error: cannot read /nonexistent/exp.yaml: No such file or directory"
    );
}

#[test]
fn errors_serialize_for_json_output() {
    let errors = errors(&native_with("type: minimize", "type: up"));
    let json = serde_json::to_value(&errors[0]).expect("serializes");
    assert_eq!(json["path"], "spec.objective.type");
    assert_eq!(json["line"], 7);
}

#[test]
fn no_input_makes_it_panic() {
    // Every prefix of a valid document, and the document without each of its lines: each
    // gives a spec or errors, never a panic.
    let katib = std::fs::read_to_string(
        katib_dir().join("trial-template/trial-metadata-substitution.yaml"),
    )
    .expect("example");
    for text in [NATIVE, katib.as_str()] {
        let boundaries: Vec<usize> = (0..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .step_by(5)
            .collect();
        for end in boundaries {
            let _ = parse_str(&text[..end], "prefix.yaml");
        }
        let lines: Vec<&str> = text.lines().collect();
        for skip in 0..lines.len() {
            let mut without = lines.clone();
            without.remove(skip);
            let _ = parse_str(&without.join("\n"), "line.yaml");
        }
    }
    for text in [
        "[]",
        "42",
        "\"x\"",
        "null",
        "spec: 1",
        "{apiVersion: 1, kind: [], metadata: x, spec: []}",
    ] {
        let errors = errors(text);
        assert!(
            errors.iter().all(|error| !error.message.is_empty()),
            "{errors:?}"
        );
    }
}

#[test]
fn large_int_bounds_are_exact() {
    let spec = ok(&native_with(
        "{min: 1, max: 4}",
        "{min: 9007199254740993, max: \"9007199254740995\"}",
    ));
    assert_eq!(
        spec.space.parameters[1].domain,
        Domain::Int {
            min: 9_007_199_254_740_993,
            max: 9_007_199_254_740_995,
            step: None,
            distribution: Distribution::Uniform
        }
    );
}

#[test]
fn tracking_mlflow_uri_is_read_and_checked() {
    let with = |uri: &str| {
        native_with(
            "  maxTrialCount: 10\n",
            &format!("  maxTrialCount: 10\n  tracking:\n    mlflow:\n      uri: {uri}\n"),
        )
    };
    assert_eq!(ok(NATIVE).tracking.mlflow_uri, None);
    assert_eq!(
        ok(&with("http://127.0.0.1:5000"))
            .tracking
            .mlflow_uri
            .as_deref(),
        Some("http://127.0.0.1:5000/")
    );
    let errors = errors(&with("localhost:5000"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "spec.tracking.mlflow.uri");
    assert!(
        errors[0].message.contains("scheme"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0]
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("http://"))
    );
    assert!(errors[0].line.is_some());
    let errors = errors_of_native_with_tracking("    mlfow:\n      uri: http://x\n");
    assert_eq!(errors[0].path, "spec.tracking.mlfow");
}

fn errors_of_native_with_tracking(body: &str) -> Vec<SpecError> {
    errors(&native_with(
        "  maxTrialCount: 10\n",
        &format!("  maxTrialCount: 10\n  tracking:\n{body}"),
    ))
}

/// `NATIVE` with `body` (indented for the trialTemplate) added after its `timeout`.
fn native_with_template(body: &str) -> String {
    native_with("    timeout: 90s\n", &format!("    timeout: 90s\n{body}"))
}

#[test]
fn kubernetes_settings_of_a_native_template_are_kept() {
    let spec = ok(&native_with_template(concat!(
        "    kubernetes:\n",
        "      image: python:3.11-slim\n",
        "      namespace: tuning\n",
        "      serviceAccount: trainer.sa\n",
        "      resources:\n",
        "        requests: {cpu: 500m, memory: 256Mi}\n",
        "        limits: {cpu: 2, nvidia.com/gpu: \"1\", memory: 1.5Gi}\n",
        "      nodeSelector: {pool: cpu, tier: 2}\n",
        "      tolerations:\n",
        "        - {key: dedicated, operator: Equal, value: tuning, effect: NoSchedule}\n",
        "        - {operator: Exists}\n",
    )));
    let kubernetes = spec
        .trial_template
        .as_ref()
        .and_then(|template| template.kubernetes.clone())
        .expect("kubernetes settings");
    assert_eq!(kubernetes.image.as_deref(), Some("python:3.11-slim"));
    assert_eq!(kubernetes.namespace.as_deref(), Some("tuning"));
    assert_eq!(kubernetes.service_account.as_deref(), Some("trainer.sa"));
    assert_eq!(
        kubernetes.resources,
        Some(serde_json::json!({
            "requests": {"cpu": "500m", "memory": "256Mi"},
            "limits": {"cpu": "2", "nvidia.com/gpu": "1", "memory": "1.5Gi"},
        }))
    );
    let selector: Vec<(&str, &str)> = kubernetes
        .node_selector
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(selector, [("pool", "cpu"), ("tier", "2")]);
    assert_eq!(
        kubernetes.tolerations,
        [
            serde_json::json!({"key": "dedicated", "operator": "Equal", "value": "tuning", "effect": "NoSchedule"}),
            serde_json::json!({"operator": "Exists"}),
        ]
    );
    // Without the block, there are no Kubernetes settings and no conditions.
    let template = ok(NATIVE).trial_template.expect("template");
    assert_eq!(template.kubernetes, None);
    assert_eq!(template.success_condition, None);
}

#[test]
fn kubernetes_settings_are_checked_field_by_field() {
    let errors = errors(&native_with_template(concat!(
        "    kubernetes:\n",
        "      image: \"\"\n",
        "      namespace: Tuning_NS\n",
        "      serviceAccount: -sa\n",
        "      imagePullPolicy: Always\n",
        "      resources:\n",
        "        requests: {cpu: 2 cores, memory: -1}\n",
        "        limit: {cpu: 1}\n",
        "      nodeSelector: [pool]\n",
        "      tolerations:\n",
        "        - {key: a, operator: Exist}\n",
        "        - {operator: Exists, value: x}\n",
        "        - {effect: NoSchedule}\n",
    )));
    assert_eq!(
        paths(&errors),
        [
            "spec.trialTemplate.kubernetes.image",
            "spec.trialTemplate.kubernetes.namespace",
            "spec.trialTemplate.kubernetes.serviceAccount",
            "spec.trialTemplate.kubernetes.imagePullPolicy",
            "spec.trialTemplate.kubernetes.resources.requests.cpu",
            "spec.trialTemplate.kubernetes.resources.requests.memory",
            "spec.trialTemplate.kubernetes.resources.limit",
            "spec.trialTemplate.kubernetes.nodeSelector",
            "spec.trialTemplate.kubernetes.tolerations[0].operator",
            "spec.trialTemplate.kubernetes.tolerations[1].value",
            "spec.trialTemplate.kubernetes.tolerations[2].key",
        ],
        "{errors:#?}"
    );
    let message = |path: &str| {
        errors
            .iter()
            .find(|error| error.path == path)
            .map(|error| {
                (
                    error.message.clone(),
                    error.hint.clone().unwrap_or_default(),
                )
            })
            .expect(path)
    };
    assert_eq!(
        message("spec.trialTemplate.kubernetes.resources.limit").1,
        "did you mean \"limits\"?"
    );
    let (text, hint) = message("spec.trialTemplate.kubernetes.resources.requests.cpu");
    assert_eq!(text, "\"2 cores\" is not a resource quantity");
    assert!(hint.contains("500m"), "{hint}");
    let (text, _) = message("spec.trialTemplate.kubernetes.namespace");
    assert_eq!(text, "\"Tuning_NS\" is not a DNS-1123 label");
    let (text, _) = message("spec.trialTemplate.kubernetes.tolerations[0].operator");
    assert_eq!(text, "must be \"Exists\" or \"Equal\", found \"Exist\"");
}

#[test]
fn kubernetes_settings_do_not_mix_with_a_trial_spec() {
    let text =
        std::fs::read_to_string(katib_dir().join("hp-tuning/random.yaml")).expect("random.yaml");
    let text = text.replacen(
        "    trialSpec:",
        "    kubernetes: {image: python:3.11-slim}\n    trialSpec:",
        1,
    );
    let errors = errors(&text);
    assert_eq!(paths(&errors), ["spec.trialTemplate.kubernetes"]);
    assert!(
        errors[0]
            .message
            .contains("give either trialSpec or kubernetes")
    );
}

#[test]
fn success_and_failure_conditions_are_kept_when_katib_shaped() {
    let spec = ok(&native_with_template(concat!(
        "    successCondition: status.conditions.#(type==\"Complete\")#|#(status==\"True\")#\n",
        "    failureCondition: 'status.conditions.#(type == \"Failed\")#|#(status == \"True\")#'\n",
    )));
    let template = spec.trial_template.expect("template");
    assert_eq!(
        template.success_condition.as_deref(),
        Some("status.conditions.#(type==\"Complete\")#|#(status==\"True\")#")
    );
    let failure = template.failure_condition.as_deref().expect("failure");
    assert_eq!(
        condition::ResourceCondition::parse(failure),
        Ok(condition::ResourceCondition::default_failure())
    );

    let errors = errors(&native_with_template(concat!(
        "    successCondition: status.succeeded\n",
        "    failureCondition: 3\n",
    )));
    assert_eq!(
        paths(&errors),
        [
            "spec.trialTemplate.successCondition",
            "spec.trialTemplate.failureCondition"
        ]
    );
    assert!(
        errors[0]
            .message
            .starts_with("unsupported condition \"status.succeeded\"")
    );
    assert!(
        errors[0]
            .hint
            .as_deref()
            .is_some_and(|hint| hint.contains(condition::CONDITION_FORM)),
        "{:?}",
        errors[0].hint
    );
    assert_eq!(errors[1].message, "expected a string, found a number");
}

/// A Katib experiment whose trialSpec is `manifest` (indented for `trialSpec:`).
fn katib_with_trial_spec(primary: &str, manifest: &str) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: k}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random}}
  parameters:
    - {{name: lr, parameterType: double, feasibleSpace: {{min: "0.01", max: "0.1"}}}}
  trialTemplate:
    primaryContainerName: {primary}
    trialParameters:
      - {{name: lr, reference: lr}}
    trialSpec:
{manifest}"#
    )
}

#[test]
fn a_trial_spec_of_another_kind_is_valid_without_a_local_command() {
    let spec = ok(&katib_with_trial_spec(
        "pytorch",
        r#"      apiVersion: kubeflow.org/v1
      kind: PyTorchJob
      spec:
        pytorchReplicaSpecs:
          Master:
            replicas: 1
            template:
              spec:
                containers:
                  - name: pytorch
                    image: docker.io/kubeflowkatib/pytorch-mnist:latest
                    command: [python3, mnist.py, "--lr=${trialParameters.lr}"]
"#,
    ));
    let template = spec.trial_template.expect("template");
    assert!(template.command.is_empty());
    assert_eq!(
        template
            .trial_spec
            .as_ref()
            .and_then(|s| s["kind"].as_str()),
        Some("PyTorchJob")
    );
}

#[test]
fn a_job_primary_container_name_must_name_one_of_its_containers() {
    let errors = errors(&katib_with_trial_spec(
        "trainer",
        r#"      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training-container
                image: python:3.11-slim
                command: [python3, train.py, "--lr=${trialParameters.lr}"]
            restartPolicy: Never
"#,
    ));
    assert_eq!(paths(&errors), ["spec.trialTemplate.primaryContainerName"]);
    assert_eq!(
        errors[0].message,
        "no container named \"trainer\" in the trialSpec"
    );
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("containers: training-container")
    );
}

/// Metric names follow the one rule observations are held to (`spec::names`), so that a
/// declared metric can always be reported.
#[test]
fn metric_names_that_could_never_be_reported_are_refused() {
    let text = native_with(
        "objectiveMetricName: loss",
        "objectiveMetricName: \"../loss\"",
    );
    let errors = errors(&native_with_text(
        &text,
        "additionalMetricNames: [accuracy]",
        "additionalMetricNames: [\"acc<b>\", ok-name]",
    ));
    assert_eq!(
        paths(&errors),
        [
            "spec.objective.objectiveMetricName",
            "spec.objective.additionalMetricNames[0]"
        ],
        "{errors:?}"
    );
    assert!(
        errors[1].message.contains("'<' is not allowed"),
        "{errors:?}"
    );
    let text = native_with(
        "objectiveMetricName: loss",
        "objectiveMetricName: \"val/loss\"",
    );
    ok(&native_with_text(
        &text,
        "additionalMetricNames: [accuracy]",
        "additionalMetricNames: [\"top-1 acc\"]",
    ));
}

/// `text` with `from` replaced by `to`, which must be there.
fn native_with_text(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from} is not in the document");
    text.replace(from, to)
}
