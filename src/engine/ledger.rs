//! The run loop's view of an experiment's trials, kept in step with the store.
//!
//! The store is the truth; the ledger mirrors what the run loop itself wrote there, so that
//! each turn of the loop costs the same however many trials the experiment has: counts, the
//! best trial and the algorithm's history are updated as trials change instead of being
//! recomputed over every trial, and the trials waiting to start sit in a queue.

use std::collections::VecDeque;

use tuneflow_algorithms::{Direction, TrialRecord};

use super::Status;
use super::rules::{self, Counts};
use crate::spec::ExperimentSpec;
use crate::store::{Trial, TrialState};

/// The trials of one run, with their counts, best trial, history and start queue.
#[derive(Debug)]
pub struct Ledger {
    trials: Vec<Trial>,
    history: Vec<TrialRecord>,
    counts: Counts,
    best: Option<usize>,
    pending: VecDeque<usize>,
    direction: Direction,
    next_index: u64,
}

impl Ledger {
    /// A ledger of `trials` (ordered by index) for an experiment optimising in `direction`.
    pub fn new(trials: Vec<Trial>, direction: Direction) -> Ledger {
        let mut ledger = Ledger {
            trials: Vec::with_capacity(trials.len()),
            history: Vec::with_capacity(trials.len()),
            counts: Counts::default(),
            best: None,
            pending: VecDeque::new(),
            direction,
            next_index: 0,
        };
        for trial in trials {
            ledger.push(trial);
        }
        ledger
    }

    /// Adds a trial; a Pending one joins the start queue.
    pub fn push(&mut self, trial: Trial) {
        let position = self.trials.len();
        self.next_index = self.next_index.max(trial.index + 1);
        self.counts.shift(None, trial.state);
        self.history
            .push(rules::history_record(&trial, self.direction));
        if trial.state == TrialState::Pending {
            self.pending.push_back(position);
        }
        self.trials.push(trial);
        self.consider_best(position);
    }

    /// The index a new trial takes: one past the highest known (on a shared store the ledger
    /// may know a trial before the ones other servers recorded just ahead of it).
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The next trial waiting to start, removed from the queue.
    pub fn next_pending(&mut self) -> Option<usize> {
        self.pending.pop_front()
    }

    /// Records a trial's new state (and, for final states, its objective, message and the
    /// step it reached).
    pub fn update(
        &mut self,
        position: usize,
        state: TrialState,
        objective: Option<f64>,
        message: Option<String>,
        step: Option<i64>,
    ) {
        let Some(trial) = self.trials.get_mut(position) else {
            return;
        };
        self.counts.shift(Some(trial.state), state);
        if state.is_final() && !trial.state.is_final() {
            trial.completed_at = Some(crate::store::now_micros());
        }
        trial.state = state;
        trial.objective = objective;
        trial.message = message;
        trial.step = step;
        self.history[position] = rules::history_record(trial, self.direction);
        self.consider_best(position);
    }

    fn consider_best(&mut self, position: usize) {
        let trial = &self.trials[position];
        let Some(value) = trial
            .objective
            .filter(|_| trial.state == TrialState::Succeeded)
        else {
            return;
        };
        let better = match self
            .best
            .and_then(|b| self.trials[b].objective.map(|v| (b, v)))
        {
            None => true,
            Some((best, best_value)) => {
                rules::is_better(self.direction, value, best_value)
                    || (value == best_value && trial.index < self.trials[best].index)
            }
        };
        if better {
            self.best = Some(position);
        }
    }

    /// Every trial, by index.
    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    /// The trial at `position`.
    pub fn trial(&self, position: usize) -> &Trial {
        &self.trials[position]
    }

    /// The history as the algorithm sees it, by index.
    pub fn history(&self) -> &[TrialRecord] {
        &self.history
    }

    /// Trials per state.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The best succeeded trial (the earliest among equals), as [`rules::best_trial`] picks it.
    pub fn best(&self) -> Option<&Trial> {
        self.best.map(|b| &self.trials[b])
    }

    /// The progress snapshot for displays.
    pub fn status(&self, spec: &ExperimentSpec) -> Status {
        Status {
            counts: self.counts,
            max_trials: spec.max_trial_count,
            best: self
                .best()
                .and_then(|t| t.objective.map(|v| (t.name.clone(), v))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tuneflow_algorithms::ParameterValue;

    fn trial(index: u64, state: TrialState, objective: Option<f64>) -> Trial {
        Trial {
            id: index as i64,
            index,
            name: format!("t-{index}"),
            state,
            assignment: vec![ParameterValue::Double(index as f64)],
            objective,
            message: None,
            attempts: 0,
            handle: None,
            created_at: 0,
            started_at: None,
            completed_at: None,
            step: None,
        }
    }

    #[test]
    fn counts_best_and_queue_follow_every_change() {
        let mut ledger = Ledger::new(
            vec![
                trial(0, TrialState::Succeeded, Some(2.0)),
                trial(1, TrialState::Pending, None),
                trial(2, TrialState::Failed, None),
            ],
            Direction::Minimize,
        );
        assert_eq!(ledger.counts(), Counts::of(ledger.trials()));
        assert_eq!(ledger.best().map(|t| t.index), Some(0));
        assert_eq!(ledger.next_pending(), Some(1));
        assert_eq!(ledger.next_pending(), None);

        ledger.update(1, TrialState::Running, None, None, None);
        assert_eq!(ledger.counts().running, 1);
        ledger.update(
            1,
            TrialState::Succeeded,
            Some(1.0),
            Some("ok".into()),
            Some(3),
        );
        ledger.push(trial(3, TrialState::Pending, None));
        assert_eq!(ledger.counts(), Counts::of(ledger.trials()));
        assert_eq!(ledger.best().map(|t| t.index), Some(1));
        assert_eq!(ledger.next_pending(), Some(3));
        ledger.update(3, TrialState::Succeeded, Some(1.0), None, None);
        assert_eq!(
            ledger.best().map(|t| t.index),
            Some(1),
            "earliest among equals"
        );
        let expected: Vec<_> = ledger
            .trials()
            .iter()
            .map(|t| rules::history_record(t, Direction::Minimize))
            .collect();
        assert_eq!(ledger.history(), expected.as_slice());
    }

    #[test]
    fn maximizing_keeps_the_largest() {
        let mut ledger = Ledger::new(Vec::new(), Direction::Maximize);
        ledger.push(trial(0, TrialState::Succeeded, Some(0.5)));
        ledger.push(trial(1, TrialState::Succeeded, Some(0.9)));
        ledger.push(trial(2, TrialState::Succeeded, Some(0.7)));
        assert_eq!(ledger.best().map(|t| t.index), Some(1));
    }
}
