//! How the store encodes values that have no column type of their own: the spec and a
//! trial's parameter values, as JSON text. Every backend uses these, so a store reads back the
//! same whichever backend wrote it.

use tuneflow_algorithms::{Assignment, ParameterValue};

use crate::spec::ExperimentSpec;
use crate::store::{NewTrial, StoreError, TrialState};

/// A new trial as written: (index, name, first state, parameters as JSON).
pub(crate) type TrialRow = (i64, String, TrialState, String);

/// A trial run's params: each parameter's name and its value as tuneflow writes it.
pub(crate) type RunParams = Vec<(String, String)>;

/// What [`Store::create_trials`](crate::store::Store::create_trials) writes for `trials`: the
/// trial rows and, for each, its run's params.
pub(crate) fn encode_new_trials(
    spec: &ExperimentSpec,
    trials: &[NewTrial],
) -> (Vec<TrialRow>, Vec<RunParams>) {
    trials
        .iter()
        .map(|t| {
            let row = (
                t.index as i64,
                t.name.clone(),
                t.state,
                encode_assignment(spec, &t.assignment),
            );
            let params = spec
                .space
                .parameters
                .iter()
                .zip(&t.assignment)
                .map(|(p, v)| (p.name.clone(), v.to_string()))
                .collect();
            (row, params)
        })
        .unzip()
}

/// Encodes a spec as stored.
pub(crate) fn encode_spec(spec: &ExperimentSpec) -> Result<String, StoreError> {
    serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(format!("cannot encode spec: {e}")))
}

/// Decodes a stored spec.
pub(crate) fn decode_spec(json: &str) -> Result<ExperimentSpec, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("experiment spec: {e}")))
}

/// Encodes an assignment as a JSON object in space order.
pub(crate) fn encode_assignment(spec: &ExperimentSpec, assignment: &Assignment) -> String {
    let object: serde_json::Map<String, serde_json::Value> = spec
        .space
        .parameters
        .iter()
        .zip(assignment)
        .map(|(p, v)| {
            (
                p.name.clone(),
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// Decodes a stored JSON object back into an assignment in space order.
pub(crate) fn decode_assignment(
    spec: &ExperimentSpec,
    json: &str,
) -> Result<Assignment, StoreError> {
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("trial parameters: {e}")))?;
    spec.space
        .parameters
        .iter()
        .map(|p| {
            let value = object.remove(&p.name).ok_or_else(|| {
                StoreError::Corrupt(format!("trial parameters lack `{}`", p.name))
            })?;
            serde_json::from_value::<ParameterValue>(value)
                .map_err(|e| StoreError::Corrupt(format!("trial parameter `{}`: {e}", p.name)))
        })
        .collect()
}
