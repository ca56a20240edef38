//! Early stopping in the engine: the experiment's learning curves and its rule, shared by the
//! trials of a run (local processes) and by a client-driven session (REST observations).
//!
//! The curves hold every trial's objective metric by step, as losses (negated when the
//! objective is maximized), which is what the rules in `tuneflow_algorithms::stopping`
//! compare. A decision is taken on each reported value, in memory, so a local trial's process
//! group is stopped as soon as the deciding line is read, not when its observations are next
//! written to the store.

use std::sync::Mutex;

use tuneflow_algorithms::stopping::{self, Curve, CurveState, EarlyStopping, StopDecision};
use tuneflow_algorithms::{AlgorithmError, Direction};

use super::EngineError;
use crate::spec::ExperimentSpec;
use crate::store::{Store, Trial, TrialState};

/// One trial's curve.
#[derive(Debug, Default)]
struct Entry {
    state: Option<CurveState>,
    points: Vec<(i64, f64)>,
}

/// An experiment's early-stopping rule with the curves it decides on.
#[derive(Debug)]
pub struct Stopper {
    rule: Box<dyn EarlyStopping>,
    seed: u64,
    direction: Direction,
    metric: String,
    /// By trial index.
    curves: Mutex<Vec<Entry>>,
}

impl Stopper {
    /// The stopper of `spec`, or `None` when it names no early-stopping rule.
    pub fn for_spec(spec: &ExperimentSpec, seed: u64) -> Result<Option<Stopper>, EngineError> {
        let Some(early) = &spec.early_stopping else {
            return Ok(None);
        };
        let rule = stopping::build(&early.name, &early.settings).map_err(|errors| {
            EngineError::Internal(format!(
                "early stopping `{}` rejected a validated spec: {}",
                early.name,
                errors
                    .iter()
                    .map(AlgorithmError::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        Ok(Some(Stopper {
            rule,
            seed,
            direction: spec.objective.direction,
            metric: spec.objective.metric.clone(),
            curves: Mutex::new(Vec::new()),
        }))
    }

    /// The rule's name.
    pub fn name(&self) -> &'static str {
        self.rule.name()
    }

    /// Loads the curves of stored `trials` (one query per trial).
    pub async fn load(&self, store: &dyn Store, trials: &[Trial]) -> Result<(), EngineError> {
        for trial in trials {
            let observations = store.observations(trial.id, Some(&self.metric)).await?;
            let mut curves = self.lock();
            let entry = entry(&mut curves, trial.index);
            entry.points = observations
                .iter()
                .map(|o| (o.step, self.direction.loss(o.value)))
                .collect();
            entry.state = Some(curve_state(trial.state));
        }
        Ok(())
    }

    /// Records that trial `index` reported `value` of `metric` at `step`; true when it is the
    /// objective metric (and so may change a decision).
    pub fn record(&self, index: u64, metric: &str, step: i64, value: f64) -> bool {
        if metric != self.metric {
            return false;
        }
        let mut curves = self.lock();
        let entry = entry(&mut curves, index);
        entry.state.get_or_insert(CurveState::Running);
        let loss = self.direction.loss(value);
        // Keep the points ordered by step (arrival order within a step).
        let at = entry.points.partition_point(|p| p.0 <= step);
        entry.points.insert(at, (step, loss));
        true
    }

    /// The rule's decision for trial `index` on its curve so far.
    pub fn decide(&self, index: u64) -> StopDecision {
        let curves = self.lock();
        let Some(own) = curves.get(index as usize) else {
            return StopDecision::Continue;
        };
        let trial = Curve {
            index,
            state: CurveState::Running,
            points: &own.points,
        };
        let others: Vec<Curve<'_>> = curves
            .iter()
            .zip(0_u64..)
            .filter(|(e, i)| *i != index && !e.points.is_empty())
            .map(|(e, i)| Curve {
                index: i,
                state: e.state.unwrap_or(CurveState::Running),
                points: &e.points,
            })
            .collect();
        self.rule.decide(self.seed, &trial, &others)
    }

    /// The last step trial `index` reported the objective at, and its value then (as the
    /// user sees it, not as a loss).
    pub fn last(&self, index: u64) -> Option<(i64, f64)> {
        let curves = self.lock();
        let &(step, loss) = curves.get(index as usize)?.points.last()?;
        Some((step, self.direction.loss(loss)))
    }

    /// Records trial `index`'s final state.
    pub fn finish(&self, index: u64, state: TrialState) {
        entry(&mut self.lock(), index).state = Some(curve_state(state));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.curves.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn entry(curves: &mut Vec<Entry>, index: u64) -> &mut Entry {
    let index = index as usize;
    if curves.len() <= index {
        curves.resize_with(index + 1, Entry::default);
    }
    &mut curves[index]
}

fn curve_state(state: TrialState) -> CurveState {
    match state {
        TrialState::Pending | TrialState::Running => CurveState::Running,
        TrialState::Succeeded => CurveState::Completed,
        _ => CurveState::Stopped,
    }
}

/// The message of a trial stopped by `rule` at `step`.
pub fn stopped_message(rule: &str, step: Option<i64>) -> String {
    match step {
        Some(step) => format!("stopped early by {rule} at step {step}"),
        None => format!("stopped early by {rule}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec;

    fn stopper(direction: &str) -> Stopper {
        let text = format!(
            "apiVersion: tuneflow.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: s}}\nspec:\n  \
             objective: {{type: {direction}, objectiveMetricName: acc}}\n  \
             algorithm: {{algorithmName: random}}\n  \
             earlyStopping: {{algorithmName: medianstop, algorithmSettings: \
             [{{name: min_trials_required, value: \"2\"}}, {{name: start_step, value: \"1\"}}]}}\n  \
             parameters: [{{name: x, parameterType: double, feasibleSpace: {{min: 0, max: 1}}}}]\n"
        );
        let spec = spec::parse_str(&text, "s.yaml").expect("valid spec");
        Stopper::for_spec(&spec, 1)
            .expect("builds")
            .expect("has a rule")
    }

    #[test]
    fn the_direction_decides_what_is_worse() {
        for (direction, good, bad) in [("maximize", 0.9, 0.1), ("minimize", 0.1, 0.9)] {
            let stopper = stopper(direction);
            for index in 0..2 {
                stopper.record(index, "acc", 1, 0.5);
                stopper.finish(index, TrialState::Succeeded);
            }
            assert!(
                !stopper.record(2, "loss", 1, bad),
                "other metrics do not count"
            );
            stopper.record(2, "acc", 1, good);
            assert_eq!(stopper.decide(2), StopDecision::Continue, "{direction}");
            stopper.record(3, "acc", 1, bad);
            assert_eq!(stopper.decide(3), StopDecision::Prune, "{direction}");
            assert_eq!(
                stopper.last(3),
                Some((1, bad)),
                "values come back as reported"
            );
        }
    }
}
