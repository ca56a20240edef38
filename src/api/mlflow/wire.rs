//! MLflow's JSON on the wire: reading requests the way MLflow's server reads them, and writing
//! experiments, runs and metrics the way its clients expect them.
//!
//! MLflow parses request bodies as protobuf JSON: int64 fields arrive as numbers or as strings,
//! doubles as numbers or as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`, and GET
//! requests carry the same fields as query parameters (repeated fields repeat the parameter).
//! [`Fields`] reads both into one shape and checks each field when a handler asks for it, with
//! MLflow's messages. Ids are strings on the wire, times are milliseconds (the store keeps
//! microseconds), and non-finite metric values are written as those three strings.

use serde::ser::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::error::{MlflowError, MlflowResult};
use crate::store::Micros;
use crate::store::tracking::{KeyValue, MetricPoint, Run, RunInfo, TrackingExperiment};

/// The fields of one request, from its JSON body or its query string.
#[derive(Debug, Default)]
pub struct Fields {
    map: Map<String, Value>,
    /// Query strings carry no JSON arrays, so a lone value stands for a one-item list there;
    /// in a JSON body a string where a list belongs is a type error.
    from_query: bool,
}

/// The hint MLflow appends to every schema error.
const SEE_DOCS: &str = " See the API docs for more information about request parameters.";

impl Fields {
    /// Reads a JSON body. An empty body is no fields; a body that is not a JSON object is
    /// `INVALID_PARAMETER_VALUE` (MLflow reads it as no fields and then misses the required
    /// ones; naming the real problem is kinder). A JSON string holding an object is decoded
    /// again, as MLflow does for old clients that double-encode.
    pub fn from_body(body: &[u8]) -> MlflowResult<Fields> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::default());
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            MlflowError::invalid(format!("The request body is not valid JSON: {e}"))
        })?;
        let value = match value {
            Value::String(text) => serde_json::from_str(&text).map_err(|e| {
                MlflowError::invalid(format!("The request body is not valid JSON: {e}"))
            })?,
            other => other,
        };
        match value {
            Value::Object(map) => Ok(Fields::from_map(map)),
            Value::Null => Ok(Fields::default()),
            other => Err(MlflowError::invalid(format!(
                "The request body must be a JSON object, got {}",
                kind(&other)
            ))),
        }
    }

    /// Reads query parameters; a parameter given twice becomes a list.
    pub fn from_query(pairs: Vec<(String, String)>) -> Fields {
        let mut map = Map::new();
        for (key, value) in pairs {
            match map.get_mut(&key) {
                Some(Value::Array(list)) => list.push(Value::String(value)),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, Value::String(value)]);
                }
                None => {
                    map.insert(key, Value::String(value));
                }
            }
        }
        Fields {
            map,
            from_query: true,
        }
    }

    /// Fields from a JSON object (for tests and nested objects).
    pub fn from_map(map: Map<String, Value>) -> Fields {
        Fields {
            map,
            from_query: false,
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(value) => Some(value),
        }
    }

    /// A field as sent, if present and not null.
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }

    /// A string field, if present. A query parameter given twice counts once (its first
    /// value), as Flask reads it.
    pub fn string(&self, name: &str) -> MlflowResult<Option<&str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(Value::Array(list)) if self.from_query && list.iter().all(Value::is_string) => {
                Ok(list.first().and_then(Value::as_str))
            }
            Some(other) => Err(type_error(name, other)),
        }
    }

    /// A string field that must be present and not empty.
    pub fn required_string(&self, name: &str) -> MlflowResult<&str> {
        match self.string(name)? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(missing_field(name)),
        }
    }

    /// The run id: `run_id`, or the old `run_uuid`, required.
    pub fn run_id(&self) -> MlflowResult<&str> {
        match self.string("run_id")? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => match self.string("run_uuid")? {
                Some(text) if !text.is_empty() => Ok(text),
                _ => Err(missing_field("run_id")),
            },
        }
    }

    /// An int64 field: a JSON integer or a string holding one.
    pub fn int(&self, name: &str) -> MlflowResult<Option<i64>> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        parse_int(value)
            .map(Some)
            .ok_or_else(|| type_error(name, value))
    }

    /// A double field: a JSON number, or a string holding a number, `NaN`, `Infinity` or
    /// `-Infinity`.
    pub fn float(&self, name: &str) -> MlflowResult<Option<f64>> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        parse_float(value)
            .map(Some)
            .ok_or_else(|| type_error(name, value))
    }

    /// A repeated field: a JSON array, or (from a query string) one or more values.
    pub fn list(&self, name: &str) -> MlflowResult<&[Value]> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(list)) => Ok(list),
            Some(value @ Value::String(_)) if self.from_query => Ok(std::slice::from_ref(value)),
            Some(other) => Err(type_error(name, other)),
        }
    }

    /// A repeated string field.
    pub fn strings(&self, name: &str) -> MlflowResult<Vec<&str>> {
        self.list(name)?
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    MlflowError::invalid(format!(
                        "Invalid value {} for parameter '{name}' supplied: every item must be a string.{SEE_DOCS}",
                        compact(v)
                    ))
                })
            })
            .collect()
    }

    /// A repeated `{key, value}` field (tags, params). A missing value is the empty string.
    pub fn key_values(&self, name: &str) -> MlflowResult<Vec<KeyValue>> {
        let list = self.list(name)?;
        let mut pairs = Vec::with_capacity(list.len());
        for (index, item) in list.iter().enumerate() {
            let Value::Object(object) = item else {
                return Err(MlflowError::invalid(format!(
                    "Invalid value {} for parameter '{name}[{index}]' supplied: expected an object with `key` and `value`.{SEE_DOCS}",
                    compact(item)
                )));
            };
            let path = format!("{name}[{index}]");
            let key = match object.get("key") {
                Some(Value::String(key)) if !key.is_empty() => key.clone(),
                None | Some(Value::Null) => return Err(missing_field(&format!("{path}.key"))),
                Some(Value::String(_)) => return Err(missing_field(&format!("{path}.key"))),
                Some(other) => return Err(type_error(&format!("{path}.key"), other)),
            };
            let value = match object.get("value") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(value)) => value.clone(),
                Some(other) => return Err(type_error(&format!("{path}.value"), other)),
            };
            pairs.push(KeyValue { key, value });
        }
        Ok(pairs)
    }
}

/// Integers as protobuf JSON accepts them.
pub fn parse_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Value::String(text) => text.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// Doubles as protobuf JSON accepts them.
pub fn parse_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => match text.trim() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" | "+Infinity" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.parse::<f64>().ok(),
        },
        _ => None,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn compact(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    } else {
        text
    }
}

/// MLflow's message for a field of the wrong type.
pub fn type_error(name: &str, value: &Value) -> MlflowError {
    MlflowError::invalid(format!(
        "Invalid value {} for parameter '{name}' supplied:  Hint: Value was of type '{}'.{SEE_DOCS}",
        compact(value),
        kind(value)
    ))
}

/// MLflow's message for a required field that is missing.
pub fn missing_field(name: &str) -> MlflowError {
    MlflowError::invalid(format!(
        "Missing value for required parameter '{name}'.{SEE_DOCS}"
    ))
}

/// Milliseconds on the wire from the store's microseconds.
pub fn millis(micros: Micros) -> i64 {
    micros.div_euclid(1000)
}

/// The store's microseconds from milliseconds on the wire, or `INVALID_PARAMETER_VALUE` when
/// they do not fit.
pub fn micros(millis: i64, field: &str) -> MlflowResult<Micros> {
    millis.checked_mul(1000).ok_or_else(|| {
        MlflowError::invalid(format!(
            "Invalid value {millis} for parameter '{field}' supplied: out of range"
        ))
    })
}

/// A metric value that writes NaN and ±infinity as MLflow does: `"NaN"`, `"Infinity"`,
/// `"-Infinity"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireF64(pub f64);

impl Serialize for WireF64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = self.0;
        if value.is_nan() {
            serializer.serialize_str("NaN")
        } else if value == f64::INFINITY {
            serializer.serialize_str("Infinity")
        } else if value == f64::NEG_INFINITY {
            serializer.serialize_str("-Infinity")
        } else {
            serializer.serialize_f64(value)
        }
    }
}

/// An experiment on the wire.
#[derive(Debug, serde::Serialize)]
pub struct ExperimentWire<'a> {
    experiment_id: String,
    name: &'a str,
    artifact_location: &'a str,
    lifecycle_stage: &'static str,
    last_update_time: i64,
    creation_time: i64,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tags: &'a [KeyValue],
}

impl<'a> ExperimentWire<'a> {
    /// The wire form of a stored experiment.
    pub fn new(experiment: &'a TrackingExperiment) -> ExperimentWire<'a> {
        ExperimentWire {
            experiment_id: experiment.id.to_string(),
            name: &experiment.name,
            artifact_location: &experiment.artifact_location,
            lifecycle_stage: experiment.lifecycle.as_str(),
            last_update_time: millis(experiment.updated_at),
            creation_time: millis(experiment.created_at),
            tags: &experiment.tags,
        }
    }
}

/// A run's info on the wire.
#[derive(Debug, serde::Serialize)]
pub struct RunInfoWire<'a> {
    run_id: &'a str,
    run_uuid: &'a str,
    run_name: &'a str,
    experiment_id: String,
    user_id: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
    artifact_uri: &'a str,
    lifecycle_stage: &'static str,
}

impl<'a> RunInfoWire<'a> {
    /// The wire form of a run's info.
    pub fn new(info: &'a RunInfo) -> RunInfoWire<'a> {
        RunInfoWire {
            run_id: &info.run_id,
            run_uuid: &info.run_id,
            run_name: &info.name,
            experiment_id: info.experiment_id.to_string(),
            user_id: &info.user_id,
            status: info.status.as_str(),
            start_time: info.start_time.map(millis),
            end_time: info.end_time.map(millis),
            artifact_uri: &info.artifact_uri,
            lifecycle_stage: info.lifecycle.as_str(),
        }
    }
}

/// One metric value on the wire.
#[derive(Debug, serde::Serialize)]
pub struct MetricWire<'a> {
    key: &'a str,
    value: WireF64,
    timestamp: i64,
    step: i64,
}

impl<'a> MetricWire<'a> {
    /// The wire form of a logged value.
    pub fn new(point: &'a MetricPoint) -> MetricWire<'a> {
        MetricWire {
            key: &point.key,
            value: WireF64(point.value),
            timestamp: millis(point.timestamp),
            step: point.step,
        }
    }
}

/// A run's data on the wire.
#[derive(Debug, serde::Serialize)]
pub struct RunDataWire<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<MetricWire<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    params: &'a [KeyValue],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tags: &'a [KeyValue],
}

/// A run's inputs on the wire: none are stored.
#[derive(Debug, serde::Serialize)]
pub struct RunInputsWire {}

/// A run on the wire.
#[derive(Debug, serde::Serialize)]
pub struct RunWire<'a> {
    info: RunInfoWire<'a>,
    data: RunDataWire<'a>,
    inputs: RunInputsWire,
}

impl<'a> RunWire<'a> {
    /// The wire form of a run with its data.
    pub fn new(run: &'a Run) -> RunWire<'a> {
        RunWire {
            info: RunInfoWire::new(&run.info),
            data: RunDataWire {
                metrics: run.metrics.iter().map(MetricWire::new).collect(),
                params: &run.params,
                tags: &run.tags,
            },
            inputs: RunInputsWire {},
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn non_finite_values_are_strings() {
        let text = serde_json::to_string(&[
            WireF64(f64::NAN),
            WireF64(f64::INFINITY),
            WireF64(f64::NEG_INFINITY),
            WireF64(0.5),
        ])
        .expect("serialise");
        assert_eq!(text, r#"["NaN","Infinity","-Infinity",0.5]"#);
    }

    #[test]
    fn floats_are_read_like_protobuf_json() {
        assert!(parse_float(&json!("NaN")).is_some_and(f64::is_nan));
        assert_eq!(parse_float(&json!("Infinity")), Some(f64::INFINITY));
        assert_eq!(parse_float(&json!("-Infinity")), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float(&json!("1.5")), Some(1.5));
        assert_eq!(parse_float(&json!(2)), Some(2.0));
        assert_eq!(parse_float(&json!(true)), None);
        assert_eq!(parse_float(&json!("x")), None);
    }

    #[test]
    fn ints_accept_numbers_and_strings() {
        assert_eq!(parse_int(&json!(5)), Some(5));
        assert_eq!(parse_int(&json!("17")), Some(17));
        assert_eq!(parse_int(&json!(3.0)), Some(3));
        assert_eq!(parse_int(&json!(3.5)), None);
        assert_eq!(parse_int(&json!("x")), None);
    }

    #[test]
    fn bodies_and_queries_read_alike() {
        let body = Fields::from_body(br#"{"run_id": "abc", "max_results": "3"}"#).expect("body");
        assert_eq!(body.run_id().expect("run id"), "abc");
        assert_eq!(body.int("max_results").expect("int"), Some(3));
        let query = Fields::from_query(vec![
            ("experiment_ids".into(), "1".into()),
            ("experiment_ids".into(), "2".into()),
            ("run_uuid".into(), "r".into()),
        ]);
        assert_eq!(query.strings("experiment_ids").expect("list"), ["1", "2"]);
        assert_eq!(query.run_id().expect("run id"), "r");
        let single = Fields::from_query(vec![("order_by".into(), "name".into())]);
        assert_eq!(single.strings("order_by").expect("list"), ["name"]);
    }

    #[test]
    fn bad_bodies_are_invalid_parameter_values() {
        let error = Fields::from_body(b"{not json").expect_err("malformed");
        assert_eq!(
            error.code,
            super::super::error::ErrorCode::InvalidParameterValue
        );
        assert!(Fields::from_body(b"[1]").is_err());
        let twice = Fields::from_body(br#""{\"name\": \"x\"}""#).expect("double encoded");
        assert_eq!(twice.required_string("name").expect("name"), "x");
        let empty = Fields::from_body(b"").expect("empty");
        let error = empty.required_string("name").expect_err("missing");
        assert!(
            error
                .message
                .starts_with("Missing value for required parameter 'name'")
        );
        let typed = Fields::from_body(br#"{"name": 3}"#).expect("body");
        assert!(typed.required_string("name").is_err());
    }

    #[test]
    fn key_values_need_keys() {
        let fields = Fields::from_body(br#"{"tags": [{"key": "a", "value": "b"}, {"key": "c"}]}"#)
            .expect("body");
        let tags = fields.key_values("tags").expect("tags");
        assert_eq!(tags, [KeyValue::new("a", "b"), KeyValue::new("c", "")]);
        let fields = Fields::from_body(br#"{"tags": [{"value": "b"}]}"#).expect("body");
        let error = fields.key_values("tags").expect_err("no key");
        assert!(error.message.contains("tags[0].key"), "{}", error.message);
    }
}
