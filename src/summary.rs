//! Read-only views of stored experiments and trials, shaped for people and scripts alike:
//! the CLI prints them as tables or JSON (and the REST API will serve the same shapes).

use serde::Serialize;
use serde_json::{Map, Value};
use tuneflow_algorithms::{Assignment, Domain, ParameterValue};

use crate::engine::rules::{self, Counts};
use crate::spec::ExperimentSpec;
use crate::store::{Experiment, Micros, Trial, TrialTally};

/// Formats a store timestamp as RFC 3339 with microseconds, UTC.
pub fn timestamp(micros: Micros) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

fn timestamp_opt(micros: Option<Micros>) -> Option<String> {
    micros.map(timestamp)
}

/// A trial's parameters as a JSON object in space order.
pub fn parameters(spec: &ExperimentSpec, trial: &Trial) -> Map<String, Value> {
    parameters_of(spec, &trial.assignment)
}

/// An assignment as a JSON object in space order: numbers for int, double and discrete
/// parameters (a discrete value written as an integer stays an integer: `32`, not `32.0`),
/// strings for categorical ones.
pub fn parameters_of(spec: &ExperimentSpec, assignment: &Assignment) -> Map<String, Value> {
    spec.space
        .parameters
        .iter()
        .zip(assignment)
        .map(|(p, v)| (p.name.clone(), parameter_value(&p.domain, v)))
        .collect()
}

/// One parameter's value as JSON: numbers for double, int and discrete parameters (a
/// discrete value that is whole as an integer), strings for categorical ones.
pub fn parameter_value(domain: &Domain, value: &ParameterValue) -> Value {
    match (domain, value) {
        (Domain::Discrete { .. }, ParameterValue::Double(x))
            if x.fract() == 0.0 && x.abs() < 9.0e15 =>
        {
            Value::from(*x as i64)
        }
        (_, ParameterValue::Int(i)) => Value::from(*i),
        (_, ParameterValue::Double(x)) => {
            serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number)
        }
        (_, ParameterValue::Categorical(c)) => Value::from(c.as_str()),
    }
}

/// One trial.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialSummary {
    /// Trial name.
    pub name: String,
    /// Position in the experiment.
    pub index: u64,
    /// State name.
    pub state: String,
    /// Objective value, if known.
    pub objective: Option<f64>,
    /// Parameter values.
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    /// Why it is in its state.
    pub message: Option<String>,
    /// Times it was started.
    pub attempts: u32,
    /// The last step it reported its objective at, once finished: how far a trial stopped
    /// early got.
    pub step: Option<i64>,
    /// When it was suggested.
    pub created_at: String,
    /// When it last started.
    pub started_at: Option<String>,
    /// When it finished.
    pub completed_at: Option<String>,
    /// Run time in seconds, once finished.
    pub duration_seconds: Option<f64>,
}

impl TrialSummary {
    /// The view of `trial`.
    pub fn new(spec: &ExperimentSpec, trial: &Trial) -> TrialSummary {
        TrialSummary {
            name: trial.name.clone(),
            index: trial.index,
            state: trial.state.to_string(),
            objective: trial.objective,
            parameters: parameters(spec, trial),
            message: trial.message.clone(),
            attempts: trial.attempts,
            step: trial.step,
            created_at: timestamp(trial.created_at),
            started_at: timestamp_opt(trial.started_at),
            completed_at: timestamp_opt(trial.completed_at),
            duration_seconds: trial
                .started_at
                .zip(trial.completed_at)
                .map(|(s, c)| (c - s) as f64 / 1e6),
        }
    }
}

/// The best trial of an experiment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BestTrial {
    /// Experiment name.
    pub experiment: String,
    /// Trial name.
    pub trial: String,
    /// Objective metric name.
    pub metric: String,
    /// Objective direction: `minimize` or `maximize`.
    #[schema(value_type = String)]
    pub direction: tuneflow_algorithms::Direction,
    /// Its objective value.
    pub objective: f64,
    /// Its parameters.
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
}

impl BestTrial {
    /// The best succeeded trial, if any.
    pub fn of(experiment: &Experiment, trials: &[Trial]) -> Option<BestTrial> {
        BestTrial::from_trial(experiment, rules::best_trial(&experiment.spec, trials)?)
    }

    /// The summary of `best`, known to be the best succeeded trial of `experiment`.
    pub fn from_trial(experiment: &Experiment, best: &Trial) -> Option<BestTrial> {
        let spec = &experiment.spec;
        Some(BestTrial {
            experiment: experiment.name.clone(),
            trial: best.name.clone(),
            metric: spec.objective.metric.clone(),
            direction: spec.objective.direction,
            objective: best.objective?,
            parameters: parameters(spec, best),
        })
    }
}

/// One experiment with its trial counts and best trial.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSummary {
    /// Name.
    pub name: String,
    /// State name.
    pub state: String,
    /// Why it is in that state.
    pub reason: Option<String>,
    /// Detail.
    pub message: Option<String>,
    /// Algorithm name.
    pub algorithm: String,
    /// Seed the algorithm uses.
    pub seed: u64,
    /// Trials per state.
    pub trials: Counts,
    /// Steps early stopping saved: for each stopped trial, the steps between where it stopped
    /// and the last step of the longest succeeded trial (`None` until a trial was stopped
    /// and one succeeded with steps).
    pub steps_saved: Option<u64>,
    /// `maxTrialCount`, if set.
    pub max_trial_count: Option<u32>,
    /// The best trial.
    pub best: Option<BestTrial>,
    /// When it was stored.
    pub created_at: String,
    /// When it last started.
    pub started_at: Option<String>,
    /// When it finished.
    pub completed_at: Option<String>,
}

impl ExperimentSummary {
    /// The view of `experiment` with its `trials`.
    pub fn new(experiment: &Experiment, trials: &[Trial]) -> ExperimentSummary {
        ExperimentSummary {
            name: experiment.name.clone(),
            state: experiment.state.to_string(),
            reason: experiment.reason.clone(),
            message: experiment.message.clone(),
            algorithm: experiment.spec.algorithm.name.clone(),
            seed: experiment.seed,
            trials: Counts::of(trials),
            steps_saved: steps_saved(trials),
            max_trial_count: experiment.spec.max_trial_count,
            best: BestTrial::of(experiment, trials),
            created_at: timestamp(experiment.created_at),
            started_at: timestamp_opt(experiment.started_at),
            completed_at: timestamp_opt(experiment.completed_at),
        }
    }

    /// The view of `experiment` from what the store added up of its trials (see
    /// [`crate::store::Store::tally`]): the same as [`ExperimentSummary::new`] without
    /// reading every trial.
    pub fn from_tally(experiment: &Experiment, tally: &TrialTally) -> ExperimentSummary {
        ExperimentSummary {
            trials: Counts::of_states(&tally.states),
            steps_saved: tally.steps_saved,
            best: tally
                .best
                .as_ref()
                .and_then(|best| BestTrial::from_trial(experiment, best)),
            ..ExperimentSummary::new(experiment, &[])
        }
    }
}

/// Steps early stopping saved (see [`ExperimentSummary::steps_saved`]).
fn steps_saved(trials: &[Trial]) -> Option<u64> {
    use crate::store::TrialState;
    let full = trials
        .iter()
        .filter(|t| t.state == TrialState::Succeeded)
        .filter_map(|t| t.step)
        .max()?;
    let stopped: Vec<i64> = trials
        .iter()
        .filter(|t| t.state == TrialState::EarlyStopped)
        .map(|t| t.step.unwrap_or(0))
        .collect();
    (!stopped.is_empty()).then(|| {
        stopped
            .iter()
            .map(|s| u64::try_from(full - s).unwrap_or(0))
            .sum()
    })
}

/// Formats a JSON parameter value for a table cell: strings without quotes, numbers as
/// [`human`] writes them.
pub fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => n.as_f64().map(human).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// A number for people: six significant digits, trailing zeros dropped, exponent notation
/// only for very small or very large magnitudes (`0.000123457`, `1.5e-7`, `2.5e+9`).
/// Tables and progress lines use it; `-o json` keeps full precision.
pub fn human(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return value.to_string();
    }
    let magnitude = value.abs().log10().floor() as i32;
    if (-4..9).contains(&magnitude) {
        let decimals = (5 - magnitude).max(0) as usize;
        let text = format!("{value:.decimals$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    } else {
        let text = format!("{value:.5e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) => {
                let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
                let exponent = exponent.parse::<i32>().unwrap_or_default();
                format!("{mantissa}e{exponent:+}")
            }
            None => text,
        }
    }
}

/// [`human`] for an optional number, `-` when absent.
pub fn human_opt(value: Option<f64>) -> String {
    value.map(human).unwrap_or_else(|| "-".to_string())
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn numbers_for_people_have_six_significant_digits() {
        assert_eq!(human(0.45167998004569476), "0.45168");
        assert_eq!(human(8.784790852930343e-6), "8.78479e-6");
        assert_eq!(human(0.000123456789), "0.000123457");
        assert_eq!(human(12.5), "12.5");
        assert_eq!(human(-3.0), "-3");
        assert_eq!(human(123456.0), "123456");
        assert_eq!(human(2.5e9), "2.5e+9");
        assert_eq!(human(0.0), "0");
    }
}
