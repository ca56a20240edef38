//! The experiment's rules, each in one place: how observations reduce to an objective value,
//! which trial is best, what a trial's end means, how many trials may start, and when the
//! experiment is over. Pure functions, shared by every front door.

use serde::Serialize;
use tuneflow_algorithms::{Direction, TrialOutcome as History, TrialRecord};

use crate::executor::TrialExit;
use crate::spec::{ExperimentSpec, Objective, Strategy};
use crate::store::{ExperimentState, Trial, TrialState};

/// How many trials are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Pending trials.
    pub pending: u32,
    /// Running trials.
    pub running: u32,
    /// Succeeded trials.
    pub succeeded: u32,
    /// Failed trials.
    pub failed: u32,
    /// Trials that finished without the objective metric.
    pub metrics_unavailable: u32,
    /// Trials stopped by early stopping.
    pub early_stopped: u32,
    /// Killed trials.
    pub killed: u32,
}

impl Counts {
    /// Counts the states of `trials`.
    pub fn of<'a>(trials: impl IntoIterator<Item = &'a Trial>) -> Counts {
        let mut counts = Counts::default();
        for trial in trials {
            *counts.slot(trial.state) += 1;
        }
        counts
    }

    /// Moves one trial from state `from` (none for a new trial) to state `to`.
    pub fn shift(&mut self, from: Option<TrialState>, to: TrialState) {
        if let Some(from) = from {
            let slot = self.slot(from);
            *slot = slot.saturating_sub(1);
        }
        *self.slot(to) += 1;
    }

    /// The counts of a [`crate::store::TrialTally`]'s states.
    pub fn of_states(states: &[(TrialState, u64)]) -> Counts {
        let mut counts = Counts::default();
        for &(state, count) in states {
            *counts.slot(state) += u32::try_from(count).unwrap_or(u32::MAX);
        }
        counts
    }

    fn slot(&mut self, state: TrialState) -> &mut u32 {
        match state {
            TrialState::Pending => &mut self.pending,
            TrialState::Running => &mut self.running,
            TrialState::Succeeded => &mut self.succeeded,
            TrialState::Failed => &mut self.failed,
            TrialState::MetricsUnavailable => &mut self.metrics_unavailable,
            TrialState::EarlyStopped => &mut self.early_stopped,
            TrialState::Killed => &mut self.killed,
        }
    }

    /// All trials.
    pub fn total(&self) -> u32 {
        self.active() + self.finished()
    }

    /// Pending and running trials.
    pub fn active(&self) -> u32 {
        self.pending + self.running
    }

    /// Trials in a final state.
    pub fn finished(&self) -> u32 {
        self.succeeded + self.failures() + self.early_stopped + self.killed
    }

    /// Failed trials as Katib counts them: Failed plus MetricsUnavailable.
    pub fn failures(&self) -> u32 {
        self.failed + self.metrics_unavailable
    }
}

/// The strategy that reduces `metric` for this objective (default: min when minimizing, max
/// when maximizing).
pub fn strategy_for(objective: &Objective, metric: &str) -> Strategy {
    objective
        .metric_strategies
        .iter()
        .find(|s| s.name == metric)
        .map(|s| s.strategy)
        .unwrap_or(match objective.direction {
            Direction::Minimize => Strategy::Min,
            Direction::Maximize => Strategy::Max,
        })
}

/// Reduces a metric's observations (in step order) to one value.
pub fn reduce(strategy: Strategy, values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values = values.into_iter();
    let first = values.next()?;
    Some(match strategy {
        Strategy::Min => values.fold(first, f64::min),
        Strategy::Max => values.fold(first, f64::max),
        Strategy::Latest => values.last().unwrap_or(first),
    })
}

/// A metric's reduction kept up to date one observation at a time: the same value as
/// [`reduce`] over every observation in (step, arrival) order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reduction {
    strategy: Strategy,
    value: Option<f64>,
    step: i64,
}

impl Reduction {
    /// Nothing observed yet.
    pub fn new(strategy: Strategy) -> Reduction {
        Reduction {
            strategy,
            value: None,
            step: i64::MIN,
        }
    }

    /// Takes in one observation.
    pub fn add(&mut self, step: i64, value: f64) {
        self.value = Some(match (self.value, self.strategy) {
            (None, _) => value,
            (Some(current), Strategy::Min) => current.min(value),
            (Some(current), Strategy::Max) => current.max(value),
            (Some(current), Strategy::Latest) if step < self.step => current,
            (Some(_), Strategy::Latest) => value,
        });
        self.step = self.step.max(step);
    }

    /// The reduced value, once anything was observed.
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// The last step observed, once anything was.
    pub fn step(&self) -> Option<i64> {
        self.value.map(|_| self.step)
    }
}

/// True when `a` is a better objective value than `b`.
pub fn is_better(direction: Direction, a: f64, b: f64) -> bool {
    match direction {
        Direction::Minimize => a < b,
        Direction::Maximize => a > b,
    }
}

/// True when `value` meets the objective's goal.
pub fn goal_reached(objective: &Objective, value: f64) -> bool {
    match (objective.goal, objective.direction) {
        (Some(goal), Direction::Minimize) => value <= goal,
        (Some(goal), Direction::Maximize) => value >= goal,
        (None, _) => false,
    }
}

/// The best succeeded trial (the earliest one among equals).
pub fn best_trial<'a>(spec: &ExperimentSpec, trials: &'a [Trial]) -> Option<&'a Trial> {
    let direction = spec.objective.direction;
    trials
        .iter()
        .filter(|t| t.state == TrialState::Succeeded)
        .filter_map(|t| t.objective.map(|v| (t, v)))
        .fold(None, |best: Option<(&Trial, f64)>, (t, v)| match best {
            Some((_, b)) if !is_better(direction, v, b) => best,
            _ => Some((t, v)),
        })
        .map(|(t, _)| t)
}

/// Succeeded trials sorted best first.
pub fn ranked<'a>(spec: &ExperimentSpec, trials: &'a [Trial]) -> Vec<&'a Trial> {
    let mut ranked: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.state == TrialState::Succeeded && t.objective.is_some())
        .collect();
    let sign = match spec.objective.direction {
        Direction::Minimize => 1.0,
        Direction::Maximize => -1.0,
    };
    ranked.sort_by(|a, b| {
        let (a, b) = (a.objective.unwrap_or(0.0), b.objective.unwrap_or(0.0));
        (sign * a).total_cmp(&(sign * b))
    });
    ranked
}

/// A trial as the algorithm sees it: objective values as losses (negated when maximizing).
pub fn history_record(trial: &Trial, direction: Direction) -> TrialRecord {
    let outcome = match trial.state {
        TrialState::Pending | TrialState::Running => History::Pending,
        TrialState::Succeeded => match trial.objective {
            Some(value) => History::Completed(direction.loss(value)),
            None => History::Failed,
        },
        TrialState::EarlyStopped => History::Pruned {
            value: trial.objective.map(|v| direction.loss(v)),
            step: trial.step,
        },
        TrialState::Failed | TrialState::MetricsUnavailable | TrialState::Killed => History::Failed,
    };
    TrialRecord {
        index: trial.index,
        assignment: trial.assignment.clone(),
        outcome,
    }
}

/// How many new trials may be started now: free parallel slots, capped by what is left of
/// `maxTrialCount` (pending and running trials count as started).
pub fn new_trial_slots(spec: &ExperimentSpec, counts: &Counts) -> u32 {
    let free = spec.parallel_trial_count.saturating_sub(counts.active());
    match spec.max_trial_count {
        Some(max) => free.min(max.saturating_sub(counts.total())),
        None => free,
    }
}

/// Why an experiment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// More than `maxFailedTrialCount` trials failed.
    MaxFailedTrialsReached,
    /// A trial reached the objective's goal.
    GoalReached,
    /// `maxTrialCount` trials finished.
    MaxTrialsReached,
    /// The algorithm has nothing left to suggest and every trial finished.
    SearchSpaceExhausted,
    /// The experiment ran its course (its trials, or its search space) and not one trial
    /// succeeded. Katib calls this Succeeded; a pipeline that gates on the exit code should
    /// not pass an experiment that found nothing.
    NoTrialSucceeded,
}

impl Completion {
    /// The experiment's final state.
    pub fn state(self) -> ExperimentState {
        match self {
            Completion::MaxFailedTrialsReached | Completion::NoTrialSucceeded => {
                ExperimentState::Failed
            }
            _ => ExperimentState::Succeeded,
        }
    }

    /// The stored reason (Katib's names without the `Experiment` prefix).
    pub fn reason(self) -> &'static str {
        match self {
            Completion::MaxFailedTrialsReached => "MaxFailedTrialsReached",
            Completion::GoalReached => "GoalReached",
            Completion::MaxTrialsReached => "MaxTrialsReached",
            Completion::SearchSpaceExhausted => "SearchSpaceExhausted",
            Completion::NoTrialSucceeded => "NoTrialSucceeded",
        }
    }

    /// Whether trials still running should be stopped (they can no longer change the result).
    pub fn stops_running_trials(self) -> bool {
        matches!(
            self,
            Completion::MaxFailedTrialsReached | Completion::GoalReached
        )
    }

    /// A sentence for people.
    pub fn message(self, spec: &ExperimentSpec, counts: &Counts) -> String {
        match self {
            Completion::MaxFailedTrialsReached => format!(
                "{} trials failed, more than maxFailedTrialCount ({})",
                counts.failures(),
                spec.max_failed_trial_count.unwrap_or(0)
            ),
            Completion::GoalReached => format!(
                "a trial reached the goal {} {}",
                spec.objective.metric,
                spec.objective
                    .goal
                    .map(|g| g.to_string())
                    .unwrap_or_default()
            ),
            Completion::MaxTrialsReached => format!(
                "maxTrialCount ({}) trials finished",
                spec.max_trial_count.unwrap_or(0)
            ),
            Completion::SearchSpaceExhausted => {
                "search space exhausted: every grid point was tried".to_string()
            }
            Completion::NoTrialSucceeded => format!(
                "no trial succeeded: {} trials finished ({} failed, {} early stopped, {} killed)",
                counts.finished(),
                counts.failures(),
                counts.early_stopped,
                counts.killed
            ),
        }
    }
}

/// Whether the experiment is over, and why. `best` is the best objective so far; `exhausted`
/// says the algorithm can suggest nothing more.
pub fn completion(
    spec: &ExperimentSpec,
    counts: &Counts,
    best: Option<f64>,
    exhausted: bool,
) -> Option<Completion> {
    if let Some(max_failed) = spec.max_failed_trial_count
        && counts.failures() > max_failed
    {
        return Some(Completion::MaxFailedTrialsReached);
    }
    if best.is_some_and(|b| goal_reached(&spec.objective, b)) {
        return Some(Completion::GoalReached);
    }
    let ran_its_course = if let Some(max) = spec.max_trial_count
        && counts.finished() >= max
        && counts.active() == 0
    {
        Completion::MaxTrialsReached
    } else if exhausted && counts.active() == 0 {
        Completion::SearchSpaceExhausted
    } else {
        return None;
    };
    Some(if counts.succeeded == 0 {
        Completion::NoTrialSucceeded
    } else {
        ran_its_course
    })
}

/// Why the engine stopped a trial, for [`trial_outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCause {
    /// The user interrupted the run.
    Interrupted,
    /// The experiment finished while the trial ran.
    ExperimentFinished(String),
}

/// The reason an experiment stopped on request (`tuneflow stop`, the dashboard, `POST
/// .../stop`) ends with. Like an interruption, it leaves the experiment resumable.
pub const STOPPED: &str = "Stopped";

/// The message an experiment stopped on request ends with.
pub const STOPPED_MESSAGE: &str =
    "stopped on request (tuneflow stop, the dashboard or the API); run it again to resume";

/// How often the process running an experiment looks for a stop request in the store.
pub const STOP_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// How far back each look for a stop request reaches beyond the previous look: a request
/// stamped by a transaction that committed a little later (or by another machine's clock) is
/// still found.
pub const STOP_LOOKBACK: crate::store::Micros = 5_000_000;

/// The message stored on trials stopped by an interruption; such trials run again on resume.
pub const INTERRUPTED: &str = "interrupted before it finished";

/// `message` with the evidence a person needs for a Failed or MetricsUnavailable trial: the
/// metrics it did report (a misspelt `objectiveMetricName` shows at once), the last lines of
/// its output, and where its log is. Other states keep their message.
pub fn explain(
    state: TrialState,
    message: String,
    diagnosis: &crate::engine::trial::Diagnosis,
) -> String {
    let mut message = message;
    if state == TrialState::MetricsUnavailable {
        if diagnosis.metrics_seen.is_empty() {
            message.push_str("; it reported no metric");
        } else {
            message.push_str(&format!(
                "; it reported {} (check objectiveMetricName and the metrics format)",
                diagnosis.metrics_seen.join(", ")
            ));
        }
    }
    if !matches!(state, TrialState::Failed | TrialState::MetricsUnavailable) {
        return message;
    }
    if state == TrialState::Failed && !diagnosis.output_tail.is_empty() {
        message.push_str("; last output: ");
        message.push_str(&diagnosis.output_tail.join(" | "));
    }
    if let Some(path) = &diagnosis.log_path {
        message.push_str(&format!("; log: {}", path.display()));
    }
    message
}

/// The final state of a trial from how its run ended and its objective value.
pub fn trial_outcome(
    exit: &TrialExit,
    objective: Option<f64>,
    metric: &str,
    cause: Option<&StopCause>,
) -> (TrialState, String) {
    match exit {
        TrialExit::Exited(0) => match objective {
            Some(value) => (TrialState::Succeeded, format!("{metric} = {value}")),
            None => (
                TrialState::MetricsUnavailable,
                format!("exited 0 without reporting the objective metric `{metric}`"),
            ),
        },
        TrialExit::Exited(code) => (TrialState::Failed, format!("exited with code {code}")),
        TrialExit::Signaled(signal) => (TrialState::Failed, format!("killed by signal {signal}")),
        TrialExit::TimedOut(limit) => (
            TrialState::Killed,
            format!("timed out after {}", humantime::format_duration(*limit)),
        ),
        TrialExit::Cancelled => match cause {
            Some(StopCause::ExperimentFinished(why)) => {
                (TrialState::Killed, format!("stopped: {why}"))
            }
            Some(StopCause::Interrupted) | None => (TrialState::Killed, INTERRUPTED.to_string()),
        },
        TrialExit::SpawnFailed(why) | TrialExit::Failed(why) => (TrialState::Failed, why.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec;

    fn spec(max: Option<u32>, max_failed: Option<u32>, goal: Option<f64>) -> ExperimentSpec {
        let text = format!(
            "apiVersion: tuneflow.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: rules}}\nspec:\n  objective: {{type: minimize, objectiveMetricName: loss{}}}\n  algorithm: {{algorithmName: random}}\n  parallelTrialCount: 3\n{}{}  parameters:\n    - {{name: x, parameterType: double, feasibleSpace: {{min: 0, max: 1}}}}\n",
            goal.map(|g| format!(", goal: {g}")).unwrap_or_default(),
            max.map(|m| format!("  maxTrialCount: {m}\n"))
                .unwrap_or_default(),
            max_failed
                .map(|m| format!("  maxFailedTrialCount: {m}\n"))
                .unwrap_or_default(),
        );
        spec::parse_str(&text, "rules.yaml").expect("valid spec")
    }

    fn counts(running: u32, succeeded: u32, failed: u32) -> Counts {
        Counts {
            running,
            succeeded,
            failed,
            ..Counts::default()
        }
    }

    #[test]
    fn reduction_matches_reduce_in_step_order() {
        let observations = [(2, 0.5), (0, 0.9), (3, 0.7), (1, 0.4), (3, 0.8)];
        let mut sorted = observations;
        sorted.sort_by_key(|&(step, _)| step);
        for strategy in [Strategy::Min, Strategy::Max, Strategy::Latest] {
            let mut reduction = Reduction::new(strategy);
            observations
                .iter()
                .for_each(|&(step, value)| reduction.add(step, value));
            assert_eq!(
                reduction.value(),
                reduce(strategy, sorted.iter().map(|&(_, v)| v)),
                "{strategy:?}"
            );
        }
        assert_eq!(Reduction::new(Strategy::Min).value(), None);
    }

    #[test]
    fn slots_respect_parallelism_and_the_trial_budget() {
        let s = spec(Some(10), None, None);
        assert_eq!(new_trial_slots(&s, &counts(0, 0, 0)), 3);
        assert_eq!(new_trial_slots(&s, &counts(2, 5, 0)), 1);
        assert_eq!(new_trial_slots(&s, &counts(2, 7, 0)), 1);
        assert_eq!(new_trial_slots(&s, &counts(1, 9, 0)), 0);
        assert_eq!(
            new_trial_slots(&spec(None, None, None), &counts(1, 900, 0)),
            2
        );
    }

    #[test]
    fn max_trials_waits_for_running_trials() {
        let s = spec(Some(4), None, None);
        assert_eq!(completion(&s, &counts(1, 3, 0), None, false), None);
        assert_eq!(
            completion(&s, &counts(0, 3, 1), None, false),
            Some(Completion::MaxTrialsReached)
        );
    }

    #[test]
    fn an_experiment_without_a_succeeded_trial_fails() {
        let s = spec(Some(3), None, None);
        let none = Counts {
            killed: 2,
            ..counts(0, 0, 1)
        };
        let done = completion(&s, &none, None, false);
        assert_eq!(done, Some(Completion::NoTrialSucceeded));
        let done = done.expect("complete");
        assert_eq!(done.state(), ExperimentState::Failed);
        assert_eq!(done.reason(), "NoTrialSucceeded");
        assert!(
            done.message(&s, &none)
                .starts_with("no trial succeeded: 3 trials finished")
        );
        assert_eq!(
            completion(&spec(None, None, None), &none, None, true),
            Some(Completion::NoTrialSucceeded),
            "an exhausted space too"
        );
        assert_eq!(
            completion(&s, &counts(0, 1, 2), None, false),
            Some(Completion::MaxTrialsReached),
            "one success is enough"
        );
    }

    #[test]
    fn failures_beyond_the_limit_fail_the_experiment_first() {
        let s = spec(Some(10), Some(1), Some(0.5));
        let c = Counts {
            metrics_unavailable: 1,
            ..counts(1, 1, 1)
        };
        assert_eq!(
            completion(&s, &c, Some(0.1), false),
            Some(Completion::MaxFailedTrialsReached)
        );
        assert_eq!(
            Completion::MaxFailedTrialsReached.state(),
            ExperimentState::Failed
        );
        assert_eq!(completion(&s, &counts(1, 1, 1), None, false), None);
    }

    #[test]
    fn the_goal_ends_the_experiment_in_the_objective_direction() {
        let s = spec(Some(10), None, Some(0.5));
        assert_eq!(completion(&s, &counts(2, 1, 0), Some(0.6), false), None);
        assert_eq!(
            completion(&s, &counts(2, 1, 0), Some(0.5), false),
            Some(Completion::GoalReached)
        );
        assert!(Completion::GoalReached.stops_running_trials());
    }

    #[test]
    fn exhaustion_ends_the_experiment_once_nothing_runs() {
        let s = spec(None, None, None);
        assert_eq!(completion(&s, &counts(1, 5, 0), None, true), None);
        assert_eq!(
            completion(&s, &counts(0, 6, 0), None, true),
            Some(Completion::SearchSpaceExhausted)
        );
    }

    #[test]
    fn strategies_reduce_observations() {
        let values = [3.0, 1.0, 2.0];
        assert_eq!(reduce(Strategy::Min, values), Some(1.0));
        assert_eq!(reduce(Strategy::Max, values), Some(3.0));
        assert_eq!(reduce(Strategy::Latest, values), Some(2.0));
        assert_eq!(reduce(Strategy::Min, []), None);
    }

    #[test]
    fn trial_outcomes_follow_katib_states() {
        let exit0 = TrialExit::Exited(0);
        assert_eq!(
            trial_outcome(&exit0, Some(1.0), "loss", None).0,
            TrialState::Succeeded
        );
        assert_eq!(
            trial_outcome(&exit0, None, "loss", None).0,
            TrialState::MetricsUnavailable
        );
        assert_eq!(
            trial_outcome(&TrialExit::Exited(2), Some(1.0), "loss", None).0,
            TrialState::Failed
        );
        let (state, message) = trial_outcome(&TrialExit::Cancelled, None, "loss", None);
        assert_eq!((state, message.as_str()), (TrialState::Killed, INTERRUPTED));
    }
}
