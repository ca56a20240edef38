//! Running a Katib `trialSpec` locally: the primary container of a `batch/v1` Job.
//!
//! A Katib Experiment describes each trial as a Kubernetes manifest. When that manifest is a
//! Job, tuneflow can run the trial on the host instead: the primary container's `command`
//! followed by its `args`, with its `env`. This is what lets a Katib experiment be tried on a
//! laptop before it goes to a cluster. Only the parts a local process can honour are read:
//!
//! - `env` entries with a `value:` are kept; entries with `valueFrom:` (secrets, config maps,
//!   the downward API) have no local meaning and are skipped;
//! - a container with `args` but no `command` runs its image's entrypoint, which does not
//!   exist on the host, so the command is left empty (the local executor refuses to run an
//!   empty command and says why);
//! - image, resources, volumes and the rest of the manifest are kept for the Kubernetes
//!   executor in [`TrialTemplate::trial_spec`](super::model::TrialTemplate::trial_spec) and
//!   otherwise ignored.
//!
//! Manifests of other kinds (TFJob, PyTorchJob, ...) are kept as they are, with no local
//! command.

use super::document::{Node, Value};
use super::model::EnvVar;
use super::walk::{Reader, error_at, index, join};

/// The command and environment of a Job's primary container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LocalCommand {
    /// `command` followed by `args`; empty when the container has no `command`.
    pub command: Vec<String>,
    /// The `env` entries that have a `value`.
    pub env: Vec<EnvVar>,
}

/// Whether the manifest is a `batch/v1` Job.
pub(crate) fn is_job(trial_spec: &Node) -> bool {
    trial_spec.get("apiVersion").and_then(Node::as_str) == Some("batch/v1")
        && trial_spec.get("kind").and_then(Node::as_str) == Some("Job")
}

/// The primary container's command and environment. `primary` is the template's
/// `primaryContainerName` with its node and path, when given; without it the Job must have
/// exactly one container.
pub(crate) fn local_command(
    reader: &mut Reader,
    trial_spec: &Node,
    path: &str,
    primary: Option<(&str, &Node, &str)>,
) -> Option<LocalCommand> {
    let containers_path = join(path, "spec.template.spec.containers");
    let Some(containers) = trial_spec
        .get("spec")
        .and_then(|spec| spec.get("template"))
        .and_then(|template| template.get("spec"))
        .and_then(|spec| spec.get("containers"))
    else {
        reader.error(
            trial_spec,
            path,
            "a Job trialSpec needs spec.template.spec.containers",
        );
        return None;
    };
    let containers = reader.list(containers, &containers_path)?;
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|container| container.get("name").and_then(Node::as_str))
        .collect();
    let chosen = match primary {
        Some((name, name_node, name_path)) => {
            let found = containers
                .iter()
                .position(|container| container.get("name").and_then(Node::as_str) == Some(name));
            if found.is_none() {
                let mut error = error_at(
                    name_node,
                    name_path,
                    format!("no container named \"{name}\" in the trialSpec"),
                );
                error.hint = Some(format!("containers: {}", names.join(", ")));
                reader.report(error);
            }
            found?
        }
        None if containers.len() == 1 => 0,
        None => {
            let mut error = error_at(
                trial_spec,
                containers_path.as_str(),
                format!(
                    "the Job has {} containers and no primaryContainerName says which one runs the trial",
                    containers.len()
                ),
            );
            error.hint = Some("set spec.trialTemplate.primaryContainerName".to_string());
            reader.report(error);
            return None;
        }
    };
    let container_path = index(&containers_path, chosen);
    container(reader, &containers[chosen], &container_path)
}

fn container(reader: &mut Reader, container: &Node, path: &str) -> Option<LocalCommand> {
    reader.map(container, path)?;
    let mut valid = true;
    let mut argv = |reader: &mut Reader, key: &str| -> Vec<String> {
        let Some(node) = container.get(key).filter(|node| node.value != Value::Null) else {
            return Vec::new();
        };
        let list_path = join(path, key);
        let Some(items) = reader.list(node, &list_path) else {
            valid = false;
            return Vec::new();
        };
        let mut args = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match reader.text(item, &index(&list_path, i)) {
                Some(arg) => args.push(arg),
                None => valid = false,
            }
        }
        args
    };
    let mut command = argv(reader, "command");
    let args = argv(reader, "args");
    if !command.is_empty() {
        command.extend(args);
    }
    let env = env(reader, container, path);
    (valid && env.is_some()).then(|| LocalCommand {
        command,
        env: env.unwrap_or_default(),
    })
}

/// The container's `env` entries with a `value` (`valueFrom` entries are skipped).
fn env(reader: &mut Reader, container: &Node, path: &str) -> Option<Vec<EnvVar>> {
    let Some(node) = container
        .get("env")
        .filter(|node| node.value != Value::Null)
    else {
        return Some(Vec::new());
    };
    let env_path = join(path, "env");
    let items = reader.list(node, &env_path)?;
    let mut vars = Vec::with_capacity(items.len());
    let mut valid = true;
    for (i, item) in items.iter().enumerate() {
        let item_path = index(&env_path, i);
        if reader.map(item, &item_path).is_none() {
            valid = false;
            continue;
        }
        let name = match item.get("name") {
            Some(name) => reader.string(name, &join(&item_path, "name")),
            None => {
                reader.error(
                    item,
                    join(&item_path, "name"),
                    "missing required field \"name\"",
                );
                None
            }
        };
        let value = match item.get("value").filter(|value| value.value != Value::Null) {
            Some(value) => reader.text(value, &join(&item_path, "value")).map(Some),
            None if item.get("valueFrom").is_some() => Some(None),
            None => Some(Some(String::new())),
        };
        match (name, value) {
            (Some(name), Some(Some(value))) => vars.push(EnvVar { name, value }),
            (Some(_), Some(None)) => {}
            _ => valid = false,
        }
    }
    valid.then_some(vars)
}

#[cfg(test)]
mod tests {
    use super::super::document::parse;
    use super::*;

    fn job(containers: &str) -> Node {
        let text = format!(
            "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      containers:\n{containers}"
        );
        parse(&text).expect("parses").remove(0)
    }

    #[test]
    fn command_args_and_env_of_the_primary_container() {
        let spec = job(concat!(
            "        - name: sidecar\n          command: [sleep, \"1000\"]\n",
            "        - name: main\n          command: [python3, train.py]\n",
            "          args: [\"--lr=${trialParameters.lr}\", 3]\n",
            "          env:\n            - name: A\n              value: \"1\"\n",
            "            - name: B\n              valueFrom:\n                fieldRef: {fieldPath: metadata.name}\n",
            "            - name: C\n              value: 2\n",
        ));
        assert!(is_job(&spec));
        let mut reader = Reader::default();
        let name = Node {
            value: Value::Str("main".into()),
            line: 1,
            column: 1,
        };
        let command = local_command(&mut reader, &spec, "t", Some(("main", &name, "p")));
        assert_eq!(reader.errors, []);
        let command = command.expect("command");
        assert_eq!(
            command.command,
            ["python3", "train.py", "--lr=${trialParameters.lr}", "3"]
        );
        let env: Vec<(&str, &str)> = command
            .env
            .iter()
            .map(|var| (var.name.as_str(), var.value.as_str()))
            .collect();
        assert_eq!(env, [("A", "1"), ("C", "2")]);
    }

    #[test]
    fn a_single_container_needs_no_name_but_several_do() {
        let mut reader = Reader::default();
        let one = job("        - name: only\n          command: [\"true\"]\n");
        let command = local_command(&mut reader, &one, "t", None).expect("command");
        assert_eq!(command.command, ["true"]);
        let two = job("        - name: a\n        - name: b\n");
        assert_eq!(local_command(&mut reader, &two, "t", None), None);
        assert_eq!(reader.errors.len(), 1);
        assert_eq!(reader.errors[0].path, "t.spec.template.spec.containers");
    }

    #[test]
    fn unknown_primary_container_is_reported() {
        let mut reader = Reader::default();
        let spec = job("        - name: a\n");
        let name = Node {
            value: Value::Str("b".into()),
            line: 9,
            column: 5,
        };
        assert_eq!(
            local_command(&mut reader, &spec, "t", Some(("b", &name, "p"))),
            None
        );
        assert_eq!(reader.errors[0].path, "p");
        assert_eq!(reader.errors[0].line, Some(9));
        assert_eq!(reader.errors[0].hint.as_deref(), Some("containers: a"));
    }

    #[test]
    fn args_without_command_give_no_local_command() {
        let mut reader = Reader::default();
        let spec = job("        - name: a\n          args: [x]\n");
        let command = local_command(&mut reader, &spec, "t", None).expect("valid");
        assert!(command.command.is_empty());
    }
}
