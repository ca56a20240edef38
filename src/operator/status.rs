//! An `Experiment` resource's `.status`, computed from the store: trial counts per state, the
//! best trial, times, and Katib-style conditions.
//!
//! Conditions accumulate like Katib's: one entry per type (Created, Running, Succeeded,
//! Failed), the newest last; a type whose status or reason changes moves to the end with a
//! new transition time. `state` is the newest condition whose status is "True".

use crate::engine::rules::{Counts, best_trial};
use crate::spec::ExperimentSpec;
use crate::store::{Experiment, ExperimentState, Trial, TrialState};
use crate::summary::{parameters, timestamp};

use super::resource::{
    ExperimentCondition, ExperimentStatus, MetricValue, Observation, OptimalTrial,
    ParameterAssignment,
};

/// Condition type: the operator accepted the resource.
pub const CREATED: &str = "Created";
/// Condition type: trials are being run.
pub const RUNNING: &str = "Running";
/// Condition type: the experiment finished normally.
pub const SUCCEEDED: &str = "Succeeded";
/// Condition type: the experiment failed (invalid spec, too many failed trials, ...).
pub const FAILED: &str = "Failed";

/// The current time as RFC 3339.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Sets condition `type_` in `status`: a change of status or reason moves it to the end
/// with a new transition time; the same values only refresh the message. Keeps `state` in
/// step.
pub fn set_condition(
    status: &mut ExperimentStatus,
    type_: &str,
    truth: bool,
    reason: &str,
    message: &str,
) {
    let truth = if truth { "True" } else { "False" };
    let position = status.conditions.iter().position(|c| c.type_ == type_);
    match position {
        Some(i)
            if status.conditions[i].status == truth && status.conditions[i].reason == reason =>
        {
            status.conditions[i].message = message.to_string();
        }
        _ => {
            if let Some(i) = position {
                status.conditions.remove(i);
            }
            let now = now();
            status.conditions.push(ExperimentCondition {
                type_: type_.to_string(),
                status: truth.to_string(),
                reason: reason.to_string(),
                message: message.to_string(),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now),
            });
        }
    }
    status.state = status
        .conditions
        .iter()
        .rev()
        .find(|c| c.status == "True")
        .map(|c| c.type_.clone());
}

/// Marks the experiment Failed for a reason found before any trial ran (an invalid spec, an
/// executor that cannot run it).
pub fn set_failed(status: &mut ExperimentStatus, reason: &str, message: &str) {
    set_condition(status, RUNNING, false, reason, message);
    set_condition(status, FAILED, true, reason, message);
    if status.completion_time.is_none() {
        status.completion_time = Some(now());
    }
}

/// Folds the stored `experiment` and its `trials` into `status` (keeping its conditions'
/// history).
pub fn update_from_store(status: &mut ExperimentStatus, experiment: &Experiment, trials: &[Trial]) {
    let counts = Counts::of(trials);
    status.trials = trials.len() as u64;
    status.trials_pending = u64::from(counts.pending);
    status.trials_running = u64::from(counts.running);
    status.trials_succeeded = u64::from(counts.succeeded);
    status.trials_failed = u64::from(counts.failed + counts.metrics_unavailable);
    status.trials_killed = u64::from(counts.killed);
    status.trials_early_stopped = u64::from(counts.early_stopped);
    status.start_time = experiment.started_at.map(timestamp);
    let spec = &experiment.spec;
    match best_trial(spec, trials) {
        Some(best) => {
            status.best_objective = best.objective;
            status.current_optimal_trial = Some(optimal(spec, best));
        }
        None => {
            status.best_objective = None;
            status.current_optimal_trial = None;
        }
    }
    let reason = experiment.reason.as_deref().unwrap_or_default();
    let message = experiment.message.as_deref().unwrap_or_default();
    match experiment.state {
        ExperimentState::Created => {}
        ExperimentState::Running => {
            status.completion_time = None;
            set_condition(
                status,
                RUNNING,
                true,
                "ExperimentRunning",
                "the experiment is running",
            );
        }
        ExperimentState::Succeeded => {
            status.completion_time = experiment.completed_at.map(timestamp);
            set_condition(status, RUNNING, false, reason, message);
            set_condition(status, SUCCEEDED, true, reason, message);
        }
        ExperimentState::Failed => {
            status.completion_time = experiment.completed_at.map(timestamp);
            set_condition(status, RUNNING, false, reason, message);
            set_condition(status, FAILED, true, reason, message);
        }
        ExperimentState::Interrupted
            if experiment.reason.as_deref() == Some(crate::engine::rules::STOPPED) =>
        {
            set_condition(
                status,
                RUNNING,
                false,
                "ExperimentStopped",
                "stopped on request (tuneflow stop or the dashboard); change the spec (e.g. raise maxTrialCount) to resume it",
            );
        }
        ExperimentState::Interrupted => {
            set_condition(
                status,
                RUNNING,
                false,
                "ExperimentInterrupted",
                "the operator stopped while the experiment ran; it resumes",
            );
        }
    }
}

/// A note on the most recently finished failed trial (Failed or MetricsUnavailable), for an
/// event: `failed` trials failed in all.
pub fn latest_failure(trials: &[Trial], failed: u64) -> Option<String> {
    let trial = trials
        .iter()
        .filter(|t| matches!(t.state, TrialState::Failed | TrialState::MetricsUnavailable))
        .max_by_key(|t| t.completed_at)?;
    Some(format!(
        "trial {} {}: {} ({failed} failed so far)",
        trial.name,
        trial.state,
        trial.message.as_deref().unwrap_or("no message")
    ))
}

/// Katib's `currentOptimalTrial` for `trial`.
fn optimal(spec: &ExperimentSpec, trial: &Trial) -> OptimalTrial {
    let parameter_assignments = parameters(spec, trial)
        .into_iter()
        .map(|(name, value)| ParameterAssignment {
            name,
            value: match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            },
        })
        .collect();
    OptimalTrial {
        best_trial_name: trial.name.clone(),
        parameter_assignments,
        observation: Observation {
            metrics: trial
                .objective
                .map(|value| MetricValue {
                    name: spec.objective.metric.clone(),
                    latest: value.to_string(),
                })
                .into_iter()
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_move_to_the_end_when_they_change_and_state_follows() {
        let mut status = ExperimentStatus::default();
        set_condition(&mut status, CREATED, true, "ExperimentCreated", "accepted");
        set_condition(&mut status, RUNNING, true, "ExperimentRunning", "running");
        assert_eq!(status.state.as_deref(), Some(RUNNING));
        set_condition(&mut status, RUNNING, true, "ExperimentRunning", "still");
        assert_eq!(status.conditions.len(), 2);
        assert_eq!(status.conditions[1].message, "still");
        set_condition(&mut status, RUNNING, false, "MaxTrialsReached", "done");
        set_condition(&mut status, SUCCEEDED, true, "MaxTrialsReached", "done");
        let types: Vec<_> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [CREATED, RUNNING, SUCCEEDED]);
        assert_eq!(status.state.as_deref(), Some(SUCCEEDED));
    }

    #[test]
    fn a_failure_before_any_trial_sets_failed_with_the_reason() {
        let mut status = ExperimentStatus::default();
        set_condition(&mut status, CREATED, true, "ExperimentCreated", "accepted");
        set_failed(&mut status, "InvalidSpec", "spec.parameters: missing");
        assert_eq!(status.state.as_deref(), Some(FAILED));
        let failed = status.conditions.last().expect("a condition");
        assert_eq!(failed.reason, "InvalidSpec");
        assert!(status.completion_time.is_some());
    }
}
