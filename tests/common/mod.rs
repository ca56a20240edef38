//! A tiny world for black-box tests: a temporary directory with its own store, experiment
//! files written into it, and the real `tuneflow` binary run against them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A temporary project directory with its own store.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        World {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn store(&self) -> PathBuf {
        self.path("store/tuneflow.db")
    }

    /// Writes a file (and makes `.sh` files executable).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create parent directory");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// A `tuneflow` command with this world's store and working directory.
    pub fn tuneflow(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tuneflow"));
        command
            .current_dir(self.dir.path())
            .env("TUNEFLOW_STORE", self.store())
            .env_remove("TUNEFLOW_LOG");
        command
    }

    /// Runs `tuneflow ARGS...` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.tuneflow().args(args).output().expect("run tuneflow")
    }

    /// Runs `tuneflow ARGS... -o json` and parses stdout, asserting success.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let output = self.run(&all);
        assert!(
            output.status.success(),
            "tuneflow {all:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("stdout is JSON")
    }

    /// The trials of `experiment`, as JSON objects.
    pub fn trials(&self, experiment: &str) -> Vec<Value> {
        self.json(&["trials", experiment])
            .as_array()
            .expect("trials is an array")
            .clone()
    }

    /// The summary of `experiment`.
    pub fn experiment(&self, name: &str) -> Value {
        self.json(&["experiments"])
            .as_array()
            .expect("experiments is an array")
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("experiment {name} not in the store"))
    }
}

/// Stdout and stderr of an output, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A native experiment file: `body` is spliced under `spec:` (indented by 2).
pub fn experiment(name: &str, body: &str) -> String {
    let mut text = format!(
        "apiVersion: tuneflow.dev/v1alpha1\nkind: Experiment\nmetadata:\n  name: {name}\nspec:\n"
    );
    for line in body.lines() {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// An experiment that minimizes `loss` by random search over one double `x` in [0, 1].
/// `limits` holds spec lines such as `maxTrialCount: 3`; `template` the lines of the trial
/// template (`command: [...]`, `timeout: 1s`).
pub fn x_experiment(name: &str, limits: &str, template: &str) -> String {
    let mut body = String::from(
        "objective: {type: minimize, objectiveMetricName: loss}\nalgorithm: {algorithmName: random}\n",
    );
    for line in limits.lines() {
        body.push_str(line.trim());
        body.push('\n');
    }
    body.push_str(
        "parameters:\n  - {name: x, parameterType: double, feasibleSpace: {min: 0, max: 1}}\n",
    );
    body.push_str("trialTemplate:\n");
    for line in template.lines() {
        body.push_str("  ");
        body.push_str(line.trim());
        body.push('\n');
    }
    experiment(name, &body)
}

/// The shared Katib examples (`shared/` beside the repository, or beside one of its
/// ancestors, so that a git worktree elsewhere finds them too).
pub fn katib_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("shared").join("katib"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| manifest.join("../shared/katib"))
}

/// True when a process exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
pub mod server;
