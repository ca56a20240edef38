//! MLflow's rules for names, values and batch sizes, with MLflow's messages.
//!
//! These follow `mlflow/utils/validation.py` of MLflow 3.x: keys of metrics, params and tags
//! may hold letters, digits, `_`, `-`, `.`, ` `, `:` and `/`, must not change when treated as
//! a path (no `..`, no leading `/`, no `//`, no `./`), and have at most 250 characters. Param
//! values longer than 6000 characters and run tag values longer than 8000 are truncated (the
//! MLflow server's default, `MLFLOW_TRUNCATE_LONG_VALUES=true`); experiment tag values longer
//! than 20000 are refused. Lengths count characters, as Python does.

use serde_json::Value;

use super::error::{MlflowError, MlflowResult};
use crate::store::tracking::{KeyValue, MetricPoint};

/// The most metrics one `log-batch` may carry.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// The most params, and the most tags, one `log-batch` may carry.
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
/// The most metrics, params and tags together one `log-batch` may carry.
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// The longest key of a metric, param or tag.
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
/// The longest param value (longer ones are truncated).
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
/// The longest run tag value (longer ones are truncated).
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
/// The longest experiment name.
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
/// The longest experiment tag key.
pub const MAX_EXPERIMENT_TAG_KEY_LENGTH: usize = 250;
/// The longest experiment tag value (refused, not truncated).
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
/// The largest `max_results` of a search.
pub const SEARCH_MAX_RESULTS_THRESHOLD: i64 = 50000;
/// The `max_results` of a search that names none.
pub const SEARCH_MAX_RESULTS_DEFAULT: i64 = 1000;

/// MLflow's `invalid_value` message: the value JSON-quoted, the field path, and why.
pub fn invalid_value(path: &str, value: &str, why: &str) -> MlflowError {
    let quoted = Value::String(value.to_string()).to_string();
    MlflowError::invalid(format!(
        "Invalid value {quoted} for parameter '{path}' supplied: {why}"
    ))
}

fn bad_character_message() -> &'static str {
    "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
}

use crate::spec::names::allowed_character;
pub use crate::spec::names::{normpath, path_not_unique};

/// Checks a metric, param or tag key's characters and path form; `path` names the field.
pub fn validate_key(name: &str, path: &str) -> MlflowResult<()> {
    if !name.chars().all(allowed_character) {
        return Err(invalid_value(path, name, bad_character_message()));
    }
    if path_not_unique(name) {
        return Err(invalid_value(
            path,
            name,
            &format!(
                "Names may be treated as files in certain cases, and must not resolve to other names when treated as such. This name would resolve to '{}'",
                normpath(name)
            ),
        ));
    }
    Ok(())
}

/// MLflow's length check: `entity` names the thing in the message.
pub fn validate_length(entity: &str, limit: usize, value: &str) -> MlflowResult<()> {
    if value.len() > limit && value.chars().count() > limit {
        return Err(MlflowError::invalid(format!(
            "'{entity}' exceeds the maximum length of {limit} characters"
        )));
    }
    Ok(())
}

/// Cuts `value` to `limit` characters, as the MLflow server does with long values.
pub fn truncate(value: &mut String, limit: usize, entity: &str) {
    if value.len() <= limit {
        return;
    }
    if let Some((end, _)) = value.char_indices().nth(limit) {
        tracing::warn!(
            "{entity} of {} characters truncated to {limit} characters to meet the length limit",
            value.chars().count()
        );
        value.truncate(end);
    }
}

/// Appends `field` to a JSON path (`""` + `name` is `name`; `metrics[0]` + `name` is
/// `metrics[0].name`).
fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Checks a metric's name; `path` is `""` for a single metric or `metrics[i]` in a batch.
pub fn validate_metric(metric: &MetricPoint, path: &str) -> MlflowResult<()> {
    validate_key(&metric.key, &join(path, "name"))?;
    if metric.timestamp < 0 {
        return Err(MlflowError::invalid(format!(
            "Invalid value {} for parameter '{}' supplied: metric '{}' (value={}). Timestamp must be a nonnegative long (64-bit integer) ",
            metric.timestamp / 1000,
            join(path, "timestamp"),
            metric.key,
            metric.value
        )));
    }
    validate_length("Metric name", MAX_ENTITY_KEY_LENGTH, &metric.key)
}

/// Checks a param's key and truncates its value; `path` is `""` or `params[i]`.
pub fn validate_param(param: &mut KeyValue, path: &str) -> MlflowResult<()> {
    validate_key(&param.key, &join(path, "key"))?;
    validate_length("Param key", MAX_ENTITY_KEY_LENGTH, &param.key)?;
    truncate(&mut param.value, MAX_PARAM_VAL_LENGTH, "Param value");
    Ok(())
}

/// Checks a run tag's key and truncates its value; `path` is `""` or `tags[i]`.
pub fn validate_tag(tag: &mut KeyValue, path: &str) -> MlflowResult<()> {
    validate_key(&tag.key, &join(path, "key"))?;
    validate_length(&join(path, "key"), MAX_ENTITY_KEY_LENGTH, &tag.key)?;
    truncate(&mut tag.value, MAX_TAG_VAL_LENGTH, &join(path, "value"));
    Ok(())
}

/// Checks an experiment tag (nothing is truncated).
pub fn validate_experiment_tag(tag: &KeyValue) -> MlflowResult<()> {
    validate_key(&tag.key, "key")?;
    validate_length("key", MAX_EXPERIMENT_TAG_KEY_LENGTH, &tag.key)?;
    validate_length("value", MAX_EXPERIMENT_TAG_VAL_LENGTH, &tag.value)
}

/// Checks an experiment name.
pub fn validate_experiment_name(name: &str) -> MlflowResult<()> {
    if name.is_empty() {
        return Err(MlflowError::invalid("Invalid experiment name: ''"));
    }
    validate_length("name", MAX_EXPERIMENT_NAME_LENGTH, name)
}

/// Checks a run id's form: a letter or digit, then up to 255 letters, digits, `_` or `-`.
pub fn validate_run_id(run_id: &str) -> MlflowResult<()> {
    let mut chars = run_id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok =
        run_id.chars().count() <= 256 && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if first_ok && rest_ok {
        Ok(())
    } else {
        let quoted = Value::String(run_id.to_string()).to_string();
        Err(MlflowError::invalid(format!(
            "Invalid value {quoted} for parameter 'run_id' supplied."
        )))
    }
}

fn batch_limit(entity: &str, limit: usize, length: usize) -> MlflowResult<()> {
    if length > limit {
        return Err(MlflowError::invalid(format!(
            "A batch logging request can contain at most {limit} {entity}. Got {length} {entity}. Please split up {entity} across multiple requests and try again."
        )));
    }
    Ok(())
}

/// Checks the sizes of a `log-batch`.
pub fn validate_batch_limits(metrics: usize, params: usize, tags: usize) -> MlflowResult<()> {
    batch_limit("metrics", MAX_METRICS_PER_BATCH, metrics)?;
    batch_limit("params", MAX_PARAMS_TAGS_PER_BATCH, params)?;
    batch_limit("tags", MAX_PARAMS_TAGS_PER_BATCH, tags)?;
    batch_limit(
        "metrics, params, and tags",
        MAX_ENTITIES_PER_BATCH,
        metrics + params + tags,
    )
}

/// Refuses a batch that logs one param key twice.
pub fn validate_param_keys_unique(params: &[KeyValue]) -> MlflowResult<()> {
    let mut seen = std::collections::HashSet::with_capacity(params.len());
    let mut duplicates = Vec::new();
    for param in params {
        if !seen.insert(param.key.as_str()) {
            duplicates.push(format!("'{}'", param.key));
        }
    }
    if duplicates.is_empty() {
        Ok(())
    } else {
        Err(MlflowError::invalid(format!(
            "Duplicate parameter keys have been submitted: [{}]. Please ensure the request contains only one param value per param key.",
            duplicates.join(", ")
        )))
    }
}

/// Checks a `max_results` of a search: 1 to 50000.
pub fn validate_max_results(max_results: i64) -> MlflowResult<()> {
    if max_results < 1 {
        return Err(MlflowError::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be a positive integer"
        )));
    }
    if max_results > SEARCH_MAX_RESULTS_THRESHOLD {
        return Err(MlflowError::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be at most {SEARCH_MAX_RESULTS_THRESHOLD}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normpath_matches_python() {
        for (input, expected) in [
            ("", "."),
            ("a", "a"),
            ("a/b", "a/b"),
            ("a//b", "a/b"),
            ("a/./b", "a/b"),
            ("a/", "a"),
            ("./a", "a"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("/a", "/a"),
            ("//a", "//a"),
            ("///a", "/a"),
            ("/..", "/"),
            ("..", ".."),
            ("a/..", "."),
        ] {
            assert_eq!(normpath(input), expected, "normpath({input:?})");
        }
    }

    #[test]
    fn keys_follow_mlflow_rules() {
        for good in [
            "loss", "val/loss", "a.b", "a b", "a-b_c:d", "épsilon", "a..b",
        ] {
            assert!(validate_key(good, "key").is_ok(), "{good}");
        }
        for bad in [
            "a!b", "a\"b", "/abs", "../up", "a/../b", "a//b", "a/", "", ".",
        ] {
            assert!(validate_key(bad, "key").is_err(), "{bad:?}");
        }
        let error = validate_key("a!", "metrics[3].name").expect_err("bad");
        assert!(
            error
                .message
                .starts_with("Invalid value \"a!\" for parameter 'metrics[3].name' supplied:"),
            "{}",
            error.message
        );
    }

    #[test]
    fn lengths_count_characters() {
        let key = "k".repeat(250);
        assert!(validate_length("Param key", 250, &key).is_ok());
        let error = validate_length("Param key", 250, &format!("{key}k")).expect_err("long");
        assert_eq!(
            error.message,
            "'Param key' exceeds the maximum length of 250 characters"
        );
        assert!(validate_length("x", 3, "ééé").is_ok());
        let mut value = "é".repeat(6001);
        truncate(&mut value, MAX_PARAM_VAL_LENGTH, "Param value");
        assert_eq!(value.chars().count(), 6000);
    }

    #[test]
    fn params_truncate_values_and_check_keys() {
        let mut param = KeyValue::new("lr", "x".repeat(7000));
        validate_param(&mut param, "params[0]").expect("valid");
        assert_eq!(param.value.len(), MAX_PARAM_VAL_LENGTH);
        let mut param = KeyValue::new("k".repeat(251), "v");
        assert!(validate_param(&mut param, "").is_err());
        let mut tag = KeyValue::new("t", "y".repeat(9000));
        validate_tag(&mut tag, "").expect("valid");
        assert_eq!(tag.value.len(), MAX_TAG_VAL_LENGTH);
        assert!(validate_experiment_tag(&KeyValue::new("t", "y".repeat(20001))).is_err());
    }

    #[test]
    fn batch_limits() {
        assert!(validate_batch_limits(1000, 0, 0).is_ok());
        let error = validate_batch_limits(1001, 0, 0).expect_err("too many");
        assert!(
            error
                .message
                .contains("at most 1000 metrics. Got 1001 metrics")
        );
        assert!(validate_batch_limits(0, 101, 0).is_err());
        assert!(validate_batch_limits(0, 0, 101).is_err());
        let error = validate_batch_limits(900, 100, 1).expect_err("total");
        assert!(error.message.contains("metrics, params, and tags"));
        let params = [KeyValue::new("a", "1"), KeyValue::new("a", "2")];
        assert!(validate_param_keys_unique(&params).is_err());
    }

    #[test]
    fn run_ids_and_names() {
        assert!(validate_run_id("0123abcdef").is_ok());
        assert!(validate_run_id("a-b_c").is_ok());
        assert!(validate_run_id("").is_err());
        assert!(validate_run_id("-a").is_err());
        assert!(validate_run_id("a/b").is_err());
        assert!(validate_experiment_name("").is_err());
        assert!(validate_experiment_name(&"n".repeat(501)).is_err());
        assert!(validate_max_results(0).is_err());
        assert!(validate_max_results(50001).is_err());
        assert!(validate_max_results(50000).is_ok());
    }
}
