//! Metrics collectors: turn what a trial writes into [`Observation`]s.
//!
//! A trial reports metrics the Katib way, as `name=value` pairs on its standard output
//! (`epoch=3 loss=0.41 accuracy=0.87`), optionally behind an RFC 3339 timestamp; or through
//! custom regexes (`metricsFormat`, two groups: name and value); or as JSON lines in a file.
//! [`Collector`] holds the parsing rules of one trial and the per-metric step counters, and is
//! fed one line at a time, by the executor's stdout stream or by [`tail::FileTail`].
//!
//! Steps: a `step`, `epoch` or `global_step` value on the same line is the step of every other
//! value on that line (and is not itself stored as a metric); otherwise a metric's n-th report
//! is step n (from 1). Values that do not parse as finite numbers are ignored.

pub mod tail;

use std::collections::HashMap;

use regex::Regex;

use crate::spec::{CollectorKind, FileFormat, MetricsCollector};
use crate::store::{Micros, Observation, now_micros};

/// Katib's default metrics line format: every `name=value` pair on a line. `\w` is ASCII-only,
/// as in Katib's Go implementation.
pub const DEFAULT_METRICS_FORMAT: &str = r"((?-u:[\w|-])+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)";

/// Names whose value is the step of the other values on the same line.
const STEP_KEYS: [&str; 3] = ["step", "epoch", "global_step"];

/// Longest line the collector looks at; executors cut longer lines to this many bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// How lines are parsed.
#[derive(Debug, Clone)]
enum Format {
    /// Regexes whose captures give (name, value).
    Text(Vec<Regex>),
    /// One JSON object per line.
    JsonLines,
}

/// Parses one trial's output lines into observations. Build one per experiment and clone it
/// per trial: cloning shares the compiled regexes.
#[derive(Debug, Clone)]
pub struct Collector {
    format: Format,
    counts: HashMap<String, i64>,
}

impl Collector {
    /// Builds the collector a spec asks for. `None` when nothing is parsed (Push, None, MLflow).
    ///
    /// The regexes were checked when the spec was validated; a bad one here is reported as an
    /// error all the same.
    pub fn for_spec(spec: &MetricsCollector) -> Result<Option<Collector>, regex::Error> {
        match spec.kind {
            CollectorKind::Push | CollectorKind::None | CollectorKind::MLflow => Ok(None),
            CollectorKind::File
                if spec.file.as_ref().map(|f| f.format) == Some(FileFormat::Json) =>
            {
                Ok(Some(Collector::json_lines()))
            }
            CollectorKind::StdOut | CollectorKind::File => {
                Collector::text(&spec.metrics_format).map(Some)
            }
        }
    }

    /// A text collector with the given regexes (Katib's default when empty).
    pub fn text(formats: &[String]) -> Result<Collector, regex::Error> {
        let regexes = if formats.is_empty() {
            vec![Regex::new(DEFAULT_METRICS_FORMAT)?]
        } else {
            formats
                .iter()
                .map(|f| Regex::new(f))
                .collect::<Result<_, _>>()?
        };
        Ok(Collector {
            format: Format::Text(regexes),
            counts: HashMap::new(),
        })
    }

    /// A JSON-lines collector.
    pub fn json_lines() -> Collector {
        Collector {
            format: Format::JsonLines,
            counts: HashMap::new(),
        }
    }

    /// Parses one line, appending its observations to `out`.
    pub fn observe(&mut self, line: &str, out: &mut Vec<Observation>) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return;
        }
        let (timestamp, pairs) = match &self.format {
            Format::Text(regexes) => parse_text(regexes, line),
            Format::JsonLines => parse_json(line),
        };
        if pairs.is_empty() {
            return;
        }
        let timestamp = timestamp.unwrap_or_else(now_micros);
        let step = pairs
            .iter()
            .find(|(name, _)| STEP_KEYS.contains(&name.as_str()))
            .map(|(_, value)| *value as i64);
        for (metric, value) in pairs {
            if STEP_KEYS.contains(&metric.as_str()) {
                continue;
            }
            let count = self.counts.entry(metric.clone()).or_insert(0);
            *count += 1;
            out.push(Observation {
                step: step.unwrap_or(*count),
                metric,
                value,
                timestamp,
            });
        }
    }
}

/// Parses a finite number, as written by a trial.
fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Reads a leading RFC 3339 timestamp, if the line has one.
fn leading_timestamp(line: &str) -> Option<Micros> {
    let first = line.split_whitespace().next()?;
    chrono::DateTime::parse_from_rfc3339(first)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn parse_text(regexes: &[Regex], line: &str) -> (Option<Micros>, Vec<(String, f64)>) {
    let mut pairs = Vec::new();
    for regex in regexes {
        for captures in regex.captures_iter(line) {
            let (Some(name), Some(value)) = (captures.get(1), captures.get(2)) else {
                continue;
            };
            if let Some(value) = number(value.as_str()) {
                pairs.push((name.as_str().trim().to_string(), value));
            }
        }
    }
    let timestamp = if pairs.is_empty() {
        None
    } else {
        leading_timestamp(line)
    };
    (timestamp, pairs)
}

fn parse_json(line: &str) -> (Option<Micros>, Vec<(String, f64)>) {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return (None, Vec::new());
    };
    let mut timestamp = None;
    let mut pairs = Vec::new();
    for (key, value) in object {
        if key == "timestamp" {
            timestamp = match &value {
                serde_json::Value::Number(n) => n.as_f64().map(|s| (s * 1e6) as Micros),
                serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|t| t.timestamp_micros())
                    .or_else(|| number(s).map(|secs| (secs * 1e6) as Micros)),
                _ => None,
            };
            continue;
        }
        let parsed = match &value {
            serde_json::Value::Number(n) => n.as_f64().filter(|v| v.is_finite()),
            serde_json::Value::String(s) => number(s),
            _ => None,
        };
        if let Some(v) = parsed {
            pairs.push((key, v));
        }
    }
    (timestamp, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe(collector: &mut Collector, line: &str) -> Vec<(String, i64, f64)> {
        let mut out = Vec::new();
        collector.observe(line, &mut out);
        out.into_iter()
            .map(|o| (o.metric, o.step, o.value))
            .collect()
    }

    #[test]
    fn katib_default_format_reads_every_pair_and_counts_steps() {
        let mut c = Collector::text(&[]).expect("default regex");
        assert_eq!(
            observe(&mut c, "loss=0.5 accuracy = 0.75"),
            vec![("loss".into(), 1, 0.5), ("accuracy".into(), 1, 0.75)]
        );
        assert_eq!(
            observe(&mut c, "loss=1e-3"),
            vec![("loss".into(), 2, 0.001)]
        );
        assert_eq!(
            observe(&mut c, "loss=-2.5E+2"),
            vec![("loss".into(), 3, -250.0)]
        );
    }

    #[test]
    fn names_are_ascii_words_as_in_katib() {
        let mut c = Collector::text(&[]).expect("default regex");
        assert_eq!(
            observe(&mut c, "précision=0.9"),
            vec![("cision".into(), 1, 0.9)]
        );
        assert_eq!(
            observe(&mut c, "val-loss=2"),
            vec![("val-loss".into(), 1, 2.0)]
        );
    }

    #[test]
    fn epoch_on_the_line_is_the_step() {
        let mut c = Collector::text(&[]).expect("default regex");
        assert_eq!(
            observe(&mut c, "epoch=7 loss=0.25"),
            vec![("loss".into(), 7, 0.25)]
        );
    }

    #[test]
    fn garbage_is_ignored() {
        let mut c = Collector::text(&[]).expect("default regex");
        assert!(observe(&mut c, "loading data... done").is_empty());
        assert!(observe(&mut c, "loss=nan").is_empty());
        assert!(observe(&mut c, "loss= ").is_empty());
        assert!(observe(&mut c, "\u{fffd}\u{fffd}==").is_empty());
    }

    #[test]
    fn leading_rfc3339_timestamp_is_the_observation_time() {
        let mut c = Collector::text(&[]).expect("default regex");
        let mut out = Vec::new();
        c.observe("2024-01-02T03:04:05Z loss=0.1", &mut out);
        assert_eq!(out[0].timestamp, 1_704_164_645_000_000);
    }

    #[test]
    fn custom_formats_use_their_two_groups() {
        let format = r"\{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)\}".to_string();
        let mut c = Collector::text(&[format]).expect("regex");
        assert_eq!(
            observe(&mut c, "{metricName: accuracy, metricValue: 0.9}"),
            vec![("accuracy".into(), 1, 0.9)]
        );
        assert!(observe(&mut c, "accuracy=0.9").is_empty());
    }

    #[test]
    fn json_lines_accept_numbers_and_numeric_strings() {
        let mut c = Collector::json_lines();
        let mut out = Vec::new();
        c.observe(
            r#"{"global_step": "3", "loss": "0.22", "accuracy": 0.5, "checkpoint_path": "", "timestamp": 1638422847.5}"#,
            &mut out,
        );
        let mut got: Vec<_> = out
            .iter()
            .map(|o| (o.metric.as_str(), o.step, o.value))
            .collect();
        got.sort_by(|a, b| a.0.cmp(b.0));
        assert_eq!(got, vec![("accuracy", 3, 0.5), ("loss", 3, 0.22)]);
        assert_eq!(out[0].timestamp, 1_638_422_847_500_000);
        assert!(observe(&mut c, "not json").is_empty());
        assert!(observe(&mut c, "[1, 2]").is_empty());
    }
}
