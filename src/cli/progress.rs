//! The live progress display of `tuneflow run`: a bar on a terminal, one line per finished
//! trial otherwise (CI logs, pipes).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{Progress, Status};
use crate::spec::ExperimentSpec;
use crate::store::{Trial, TrialState};
use crate::summary;
use tuneflow_algorithms::ParameterValue;

/// Shows an experiment's progress on stderr.
pub struct Display {
    bar: ProgressBar,
    interactive: bool,
    metric: String,
    names: Vec<String>,
}

impl Display {
    /// A display for `spec`; a bar when stderr is a terminal, plain lines otherwise.
    pub fn new(spec: &ExperimentSpec) -> Display {
        let interactive = std::io::stderr().is_terminal();
        let bar = match spec.max_trial_count {
            Some(max) => ProgressBar::new(u64::from(max)),
            None => ProgressBar::new_spinner(),
        };
        if interactive {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            let template = if spec.max_trial_count.is_some() {
                "{spinner} {prefix} [{bar:30}] {pos}/{len} trials  {msg}  {elapsed}"
            } else {
                "{spinner} {prefix} {pos} trials  {msg}  {elapsed}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        } else {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_prefix(spec.name.clone());
        Display {
            bar,
            interactive,
            metric: spec.objective.metric.clone(),
            names: spec
                .space
                .parameters
                .iter()
                .map(|p| p.name.clone())
                .collect(),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn message(&self, status: &Status) -> String {
        let c = &status.counts;
        let mut text = format!("running {}  failed {}", c.running, c.failures());
        if c.killed > 0 {
            text.push_str(&format!("  killed {}", c.killed));
        }
        if let Some((trial, value)) = &status.best {
            text.push_str(&format!(
                "  best {}={} ({trial})",
                self.metric,
                summary::human(*value)
            ));
        }
        text
    }
}

impl Progress for Display {
    fn update(&self, status: &Status) {
        self.bar.set_position(u64::from(status.counts.finished()));
        self.bar.set_message(self.message(status));
    }

    fn trial_finished(&self, trial: &Trial, status: &Status) {
        self.update(status);
        let parameters: Vec<String> = self
            .names
            .iter()
            .zip(&trial.assignment)
            .map(|(n, v)| match v {
                ParameterValue::Double(x) => format!("{n}={}", summary::human(*x)),
                other => format!("{n}={other}"),
            })
            .collect();
        let detail = match (trial.state, trial.objective) {
            (TrialState::Succeeded, Some(v)) => format!("{}={}", self.metric, summary::human(v)),
            _ => trial.message.clone().unwrap_or_default(),
        };
        let line = format!(
            "{:<24} {:<18} {}  [{}]",
            trial.name,
            trial.state.as_str(),
            detail,
            parameters.join(", ")
        );
        if self.interactive {
            self.bar.println(line);
        } else {
            errln!("{line}");
        }
    }
}
