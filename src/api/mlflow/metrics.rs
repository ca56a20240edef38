//! Logging: `runs/log-metric`, `runs/log-parameter`, `runs/log-batch`, `runs/log-inputs`, and
//! `metrics/get-history`.
//!
//! Every write is one store transaction (`log_batch`): all of a batch or none of it. Metric
//! times arrive in milliseconds and are stored in microseconds. A finite value logged to a
//! trial's run becomes one of the trial's observations in the store; when the trial belongs
//! to a client-driven experiment this server is serving, the values are then handed to the
//! experiment's [`Session`](crate::engine::session::Session) too, so that its early-stopping
//! rule judges them as it judges observations posted to tuneflow's own API. A trial the rule
//! stops becomes EarlyStopped and its run KILLED; MLflow clients are not told in the answer
//! (MLflow's API has no place for it) but see the status on the run.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::error::{MlflowError, MlflowResult};
use super::runs::{find_run, run_not_active};
use super::search;
use super::validation::{
    validate_batch_limits, validate_metric, validate_param, validate_param_keys_unique,
    validate_run_id, validate_tag,
};
use super::wire::{MetricWire, micros, missing_field, parse_float, parse_int, type_error};
use super::{MlflowRequest, empty, ok};
use crate::api::state::AppState;
use crate::engine::session::Decision;
use crate::store::tracking::{KeyValue, Lifecycle, MetricPoint, Run, Tracking};

/// A metric of a request: `key`, `value` (a number or `"NaN"`, `"Infinity"`,
/// `"-Infinity"`), `timestamp` (milliseconds, required) and `step` (default 0). `path` is the
/// field's JSON path for messages (`""` for log-metric, `metrics[3]` in a batch).
fn metric(object: &serde_json::Map<String, Value>, path: &str) -> MlflowResult<MetricPoint> {
    let field = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let get = |name: &str| object.get(name).filter(|v| !v.is_null());
    let key = match get("key") {
        Some(Value::String(key)) if !key.is_empty() => key.clone(),
        Some(Value::String(_)) | None => return Err(missing_field(&field("key"))),
        Some(other) => return Err(type_error(&field("key"), other)),
    };
    let value = match get("value") {
        None => return Err(missing_field(&field("value"))),
        Some(value) => parse_float(value).ok_or_else(|| type_error(&field("value"), value))?,
    };
    let timestamp = match get("timestamp") {
        None => return Err(missing_field(&field("timestamp"))),
        Some(value) => parse_int(value).ok_or_else(|| type_error(&field("timestamp"), value))?,
    };
    let step = match get("step") {
        None => 0,
        Some(value) => parse_int(value).ok_or_else(|| type_error(&field("step"), value))?,
    };
    if timestamp < 0 {
        return Err(MlflowError::invalid(format!(
            "Invalid value {timestamp} for parameter '{}' supplied: metric '{key}' (value={value}). Timestamp must be a nonnegative long (64-bit integer) ",
            field("timestamp")
        )));
    }
    let point = MetricPoint {
        key,
        value,
        timestamp: micros(timestamp, &field("timestamp"))?,
        step,
    };
    validate_metric(&point, path)?;
    Ok(point)
}

/// The run to log to: it must exist and be active.
async fn active_run(tracking: &dyn Tracking, run_id: &str) -> MlflowResult<Run> {
    let run = find_run(tracking, run_id).await?;
    if run.info.lifecycle != Lifecycle::Active {
        return Err(run_not_active(run_id));
    }
    Ok(run)
}

/// Refuses params that change a value `run` has, in MLflow's words. The store refuses them too
/// (and decides for trials' runs, whose numeric params compare as numbers).
fn check_params(run: &Run, params: &[KeyValue], single: bool) -> MlflowResult<()> {
    if run.info.trial_id.is_some() {
        return Ok(());
    }
    let changed: Vec<(&KeyValue, &str)> = params
        .iter()
        .filter_map(|param| {
            run.params
                .iter()
                .find(|old| old.key == param.key && old.value != param.value)
                .map(|old| (param, old.value.as_str()))
        })
        .collect();
    let run_id = &run.info.run_id;
    match changed.as_slice() {
        [] => Ok(()),
        [(param, old)] if single => Err(MlflowError::invalid(format!(
            "Changing param values is not allowed. Param with key='{}' was already logged with value='{old}' for run ID='{run_id}'. Attempted logging new value '{}'.",
            param.key, param.value
        ))),
        list => {
            let described: Vec<String> = list
                .iter()
                .map(|(param, old)| {
                    format!(
                        "{{'key': '{}', 'old_value': '{old}', 'new_value': '{}'}}",
                        param.key, param.value
                    )
                })
                .collect();
            Err(MlflowError::invalid(format!(
                "Changing param values is not allowed. Params were already logged='[{}]' for run ID='{run_id}'.",
                described.join(", ")
            )))
        }
    }
}

/// Drops metric values logged twice in one request, as MLflow does.
fn dedup(metrics: &mut Vec<MetricPoint>) {
    if metrics.len() < 2 {
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(metrics.len());
    metrics.retain(|m| seen.insert((m.key.clone(), m.timestamp, m.step, m.value.to_bits())));
}

/// Writes a batch to `run` and hands a trial's new values to its live session.
async fn write(
    state: &AppState,
    run: &Run,
    metrics: &[MetricPoint],
    params: &[KeyValue],
    tags: &[KeyValue],
) -> MlflowResult<()> {
    let tracking: &dyn Tracking = state.store.as_ref();
    tracking
        .log_batch(&run.info.run_id, metrics, params, tags)
        .await?;
    if run.info.trial_id.is_some() && metrics.iter().any(|m| m.value.is_finite()) {
        judge(state, run, metrics).await;
    }
    Ok(())
}

/// Hands finite values logged to a trial's run to the session serving its experiment, step by
/// step, so that its early-stopping rule judges them. The values are stored already: nothing
/// here can fail the request, so problems are only logged.
async fn judge(state: &AppState, run: &Run, metrics: &[MetricPoint]) {
    let Some(trial_id) = run.info.trial_id else {
        return;
    };
    let experiment = match state
        .store
        .tracking_experiment(run.info.experiment_id)
        .await
    {
        Ok(Some(experiment)) if experiment.experiment_id.is_some() => experiment,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(
                "cannot find the experiment of trial run {}: {e}",
                run.info.run_id
            );
            return;
        }
    };
    // Only experiments this server serves have a session; the engine of a server-run
    // experiment reads the store itself.
    let Some(session) = state.cached_session(&experiment.name).await else {
        return;
    };
    let mut session = session.lock().await;
    if session.trial_name(trial_id).is_none() {
        // On a shared store another server may have handed the trial out.
        if let Err(e) = session.sync(state.store.as_ref()).await {
            tracing::debug!("cannot reload the trials of {}: {e}", experiment.name);
        }
    }
    let Some(trial) = session.trial_name(trial_id).map(str::to_string) else {
        return;
    };
    let mut by_step: BTreeMap<i64, Vec<(String, f64)>> = BTreeMap::new();
    for point in metrics.iter().filter(|m| m.value.is_finite()) {
        by_step
            .entry(point.step)
            .or_default()
            .push((point.key.clone(), point.value));
    }
    for (step, values) in by_step {
        match session
            .observed(state.store.as_ref(), &trial, step, &values)
            .await
        {
            Ok(Decision::Continue) => {}
            Ok(Decision::Prune) => {
                tracing::info!(
                    experiment = %experiment.name,
                    trial = %trial,
                    "trial stopped early on values logged through the MLflow API"
                );
                return;
            }
            Err(e) => {
                tracing::debug!(trial = %trial, "values logged through MLflow not judged: {e}");
                return;
            }
        }
    }
}

/// `runs/log-metric`.
pub async fn log_metric(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let run_id = fields.run_id()?.to_string();
    let mut object = serde_json::Map::new();
    for name in ["key", "value", "timestamp", "step"] {
        if let Some(value) = fields.raw(name) {
            object.insert(name.to_string(), value.clone());
        }
    }
    let point = metric(&object, "")?;
    let run = active_run(state.store.as_ref(), &run_id).await?;
    write(&state, &run, std::slice::from_ref(&point), &[], &[]).await?;
    empty()
}

/// `runs/log-parameter`.
pub async fn log_param(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let run_id = fields.run_id()?;
    let mut param = KeyValue::new(
        fields.required_string("key")?,
        fields.string("value")?.unwrap_or(""),
    );
    validate_param(&mut param, "")?;
    let run = active_run(state.store.as_ref(), run_id).await?;
    check_params(&run, std::slice::from_ref(&param), true)?;
    write(&state, &run, &[], std::slice::from_ref(&param), &[]).await?;
    empty()
}

/// `runs/log-batch`: up to 1000 metrics, 100 params and 100 tags (1000 in all), all or none.
pub async fn log_batch(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let run_id = fields.run_id()?;
    let listed = fields.list("metrics")?;
    let mut metrics = Vec::with_capacity(listed.len());
    for (index, item) in listed.iter().enumerate() {
        let path = format!("metrics[{index}]");
        let Value::Object(object) = item else {
            return Err(type_error(&path, item));
        };
        metrics.push(metric(object, &path)?);
    }
    let mut params = fields.key_values("params")?;
    let mut tags = fields.key_values("tags")?;
    validate_run_id(run_id)?;
    for (index, param) in params.iter_mut().enumerate() {
        validate_param(param, &format!("params[{index}]"))?;
    }
    for (index, tag) in tags.iter_mut().enumerate() {
        validate_tag(tag, &format!("tags[{index}]"))?;
    }
    validate_batch_limits(metrics.len(), params.len(), tags.len())?;
    validate_param_keys_unique(&params)?;
    dedup(&mut metrics);
    let run = active_run(state.store.as_ref(), run_id).await?;
    check_params(&run, &params, false)?;
    write(&state, &run, &metrics, &params, &tags).await?;
    empty()
}

/// `runs/log-inputs`: datasets and models used by a run are checked and accepted, not stored.
pub async fn log_inputs(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let run_id = fields.run_id()?;
    validate_run_id(run_id)?;
    for (index, input) in fields.list("datasets")?.iter().enumerate() {
        let path = format!("datasets[{index}]");
        let dataset = input
            .get("dataset")
            .ok_or_else(|| missing_field(&format!("{path}.dataset")))?;
        for required in ["name", "digest"] {
            match dataset.get(required) {
                Some(Value::String(text)) if !text.is_empty() => {}
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    return Err(missing_field(&format!("{path}.dataset.{required}")));
                }
                Some(other) => {
                    return Err(type_error(&format!("{path}.dataset.{required}"), other));
                }
            }
        }
    }
    fields.list("models")?;
    active_run(state.store.as_ref(), run_id).await?;
    empty()
}

#[derive(Serialize)]
struct History<'a> {
    metrics: Vec<MetricWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

/// `metrics/get-history`: every value of one metric of a run, by timestamp, step and value;
/// paged when `max_results` is given.
pub async fn get_history(
    State(state): State<Arc<AppState>>,
    MlflowRequest(fields): MlflowRequest,
) -> MlflowResult<Response> {
    let run_id = fields.run_id()?;
    let key = fields.required_string("metric_key")?;
    let max_results = fields.int("max_results")?;
    if let Some(max) = max_results
        && max <= 0
    {
        return Err(MlflowError::invalid(format!(
            "Invalid value {max} for parameter 'max_results' supplied. It must be a positive integer."
        )));
    }
    let offset = search::parse_page_token(fields.string("page_token")?)?;
    let mut history = state.store.metric_history(run_id, key).await?;
    history.sort_by(|a, b| {
        a.timestamp
            .cmp(&b.timestamp)
            .then(a.step.cmp(&b.step))
            .then(a.value.total_cmp(&b.value))
    });
    let (page, next_page_token) = match max_results {
        Some(max) => search::paginate(&history, offset, usize::try_from(max).unwrap_or(usize::MAX)),
        None => (&history[offset.min(history.len())..], None),
    };
    ok(History {
        metrics: page.iter().map(MetricWire::new).collect(),
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> serde_json::Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    #[test]
    fn metrics_read_nan_and_milliseconds() {
        let point = metric(
            &object(
                json!({"key": "loss", "value": "NaN", "timestamp": "1700000000000", "step": 3}),
            ),
            "",
        )
        .expect("valid");
        assert!(point.value.is_nan());
        assert_eq!(point.timestamp, 1_700_000_000_000_000);
        assert_eq!(point.step, 3);
        let point = metric(
            &object(json!({"key": "a", "value": "-Infinity", "timestamp": 0})),
            "",
        )
        .expect("valid");
        assert_eq!(point.value, f64::NEG_INFINITY);
        assert_eq!(point.step, 0);
    }

    #[test]
    fn bad_metrics_name_the_field() {
        for (value, fragment) in [
            (json!({"value": 1, "timestamp": 0}), "'metrics[2].key'"),
            (json!({"key": "a", "timestamp": 0}), "'metrics[2].value'"),
            (json!({"key": "a", "value": 1}), "'metrics[2].timestamp'"),
            (
                json!({"key": "a", "value": true, "timestamp": 0}),
                "'metrics[2].value'",
            ),
            (
                json!({"key": "a", "value": "x", "timestamp": 0}),
                "'metrics[2].value'",
            ),
            (
                json!({"key": "a", "value": 1, "timestamp": -1}),
                "Timestamp must be a nonnegative",
            ),
            (
                json!({"key": "a", "value": 1, "timestamp": 0, "step": 1.5}),
                "'metrics[2].step'",
            ),
            (
                json!({"key": "../a", "value": 1, "timestamp": 0}),
                "'metrics[2].name'",
            ),
            (
                json!({"key": "a", "value": 1, "timestamp": i64::MAX}),
                "out of range",
            ),
        ] {
            let error = metric(&object(value.clone()), "metrics[2]").expect_err("invalid");
            assert!(
                error.message.contains(fragment),
                "{value}: {}",
                error.message
            );
        }
    }

    #[test]
    fn duplicate_values_are_dropped() {
        let point = |value: f64| MetricPoint {
            key: "a".into(),
            value,
            timestamp: 1,
            step: 0,
        };
        let mut metrics = vec![
            point(1.0),
            point(1.0),
            point(2.0),
            point(f64::NAN),
            point(f64::NAN),
        ];
        dedup(&mut metrics);
        assert_eq!(metrics.len(), 3);
    }
}
