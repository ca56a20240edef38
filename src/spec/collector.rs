//! `spec.metricsCollectorSpec`: how a trial's metrics are read.
//!
//! Katib's collector kinds are all recognised; StdOut (the default), File, Push and None run
//! here, and so does tuneflow's own MLflow (the trial logs through MLflow's client to
//! tuneflow's tracking API, into its own run); the others (TensorFlowEvent, PrometheusMetric, Custom) need Katib's sidecars and are
//! reported as not available. Katib's rules apply: the File collector needs
//! `source.fileSystemPath` with `kind: File`; a JSON metrics file takes no `filter`; every
//! `metricsFormat` is a regular expression with at least two groups (metric name, value).
//!
//! Katib compiles `metricsFormat` with Go's regexp, which reads a `{` that does not start a
//! repetition (`{2}`, `{2,}`, `{2,5}`) as a literal brace; Rust's `regex` rejects it. Katib's
//! own example uses such braces, so the formats are translated once here (those braces
//! escaped) and [`MetricsCollector::metrics_format`] holds regexes that `regex` compiles.
//!
//! Unlike Katib, a relative metrics file path is accepted: local trials run in a working
//! directory, and the path is taken relative to it.

use super::document::{Node, Value};
use super::model::{CollectorKind, FileFormat, FileSource, MetricsCollector};
use super::placeholders::TemplateString;
use super::walk::{Fields, Reader, error_at, index};

const SPEC_FIELDS: &[&str] = &["collector", "source"];
const COLLECTOR_FIELDS: &[&str] = &["kind", "customCollector"];
const SOURCE_FIELDS: &[&str] = &["fileSystemPath", "filter", "httpGet"];
const FILE_SYSTEM_PATH_FIELDS: &[&str] = &["path", "kind", "format"];
const FILTER_FIELDS: &[&str] = &["metricsFormat"];
const KINDS: &[&str] = &[
    "StdOut",
    "File",
    "Push",
    "None",
    "MLflow",
    "TensorFlowEvent",
    "PrometheusMetric",
    "Custom",
];

/// What [`metrics_collector`] read: the model, and the metrics file path as a template string
/// (it may hold placeholders, which the trial template's rules check).
#[derive(Debug)]
pub(crate) struct Collector<'a> {
    /// The collector, when valid.
    pub collector: Option<MetricsCollector>,
    /// `source.fileSystemPath.path` of a File collector.
    pub metrics_path: Option<TemplateString<'a>>,
}

/// Reads `spec.metricsCollectorSpec` (absent: StdOut with Katib's default line format).
pub(crate) fn metrics_collector<'a>(
    reader: &mut Reader,
    node: Option<&'a Node>,
    path: &str,
) -> Collector<'a> {
    let Some(node) = node else {
        return Collector {
            collector: Some(MetricsCollector::default()),
            metrics_path: None,
        };
    };
    let before = reader.errors.len();
    let Some(fields) = reader.fields(node, path, SPEC_FIELDS) else {
        return Collector {
            collector: None,
            metrics_path: None,
        };
    };
    let collector_path = fields.child("collector");
    let collector = fields
        .get("collector")
        .and_then(|node| reader.fields(node, &collector_path, COLLECTOR_FIELDS));
    let kind_path = format!("{collector_path}.kind");
    let kind = match collector
        .as_ref()
        .and_then(|collector| collector.get("kind"))
    {
        Some(node) => reader.choice(node, &kind_path, KINDS).and_then(|kind| {
            let kind = match kind {
                "StdOut" => CollectorKind::StdOut,
                "File" => CollectorKind::File,
                "Push" => CollectorKind::Push,
                "None" => CollectorKind::None,
                "MLflow" => CollectorKind::MLflow,
                other => {
                    let mut error = error_at(
                        node,
                        &kind_path,
                        format!(
                            "collector kind {other} is not available in this version of tuneflow"
                        ),
                    );
                    error.hint = Some("use StdOut, File, Push or MLflow".to_string());
                    reader.report(error);
                    return None;
                }
            };
            Some(kind)
        }),
        None => Some(CollectorKind::StdOut),
    };

    let source_path = fields.child("source");
    let source = fields
        .get("source")
        .and_then(|node| reader.fields(node, &source_path, SOURCE_FIELDS));
    let filter_node = source.as_ref().and_then(|source| source.get("filter"));
    let metrics_format = filter_node
        .and_then(|node| metrics_format(reader, node, &format!("{source_path}.filter")))
        .unwrap_or_default();

    let mut file = None;
    let mut metrics_path = None;
    if kind == Some(CollectorKind::File) {
        match source
            .as_ref()
            .and_then(|source| source.get("fileSystemPath"))
        {
            Some(node) => {
                let file_path = format!("{source_path}.fileSystemPath");
                if let Some(fs) = reader.fields(node, &file_path, FILE_SYSTEM_PATH_FIELDS) {
                    let (source, path_string) = file_source(reader, &fs);
                    if let (Some(source), Some(filter)) = (&source, filter_node)
                        && source.format == FileFormat::Json
                    {
                        let mut error = error_at(
                            filter,
                            format!("{source_path}.filter"),
                            "must be omitted when the metrics file format is JSON",
                        );
                        error.hint = Some(
                            "JSON metrics files hold one object per line; the filter only applies to TEXT"
                                .to_string(),
                        );
                        reader.report(error);
                    }
                    file = source;
                    metrics_path = path_string;
                }
            }
            None => {
                let anchor = source.as_ref().map_or(fields.node, |source| source.node);
                let mut error = error_at(
                    anchor,
                    format!("{source_path}.fileSystemPath"),
                    "the File collector needs source.fileSystemPath",
                );
                error.hint = Some(
                    "e.g. source: {fileSystemPath: {path: metrics.log, kind: File, format: TEXT}}"
                        .to_string(),
                );
                reader.report(error);
            }
        }
    }
    let valid = reader.errors.len() == before;
    Collector {
        collector: kind.filter(|_| valid).map(|kind| MetricsCollector {
            kind,
            file,
            metrics_format,
        }),
        metrics_path,
    }
}

/// `fileSystemPath` of a File collector.
fn file_source<'a>(
    reader: &mut Reader,
    fs: &Fields<'a>,
) -> (Option<FileSource>, Option<TemplateString<'a>>) {
    let path_node = reader.required(fs, "path");
    let path = path_node.and_then(|node| reader.string(node, &fs.child("path")));
    if let (Some(path), Some(node)) = (&path, path_node)
        && path.trim().is_empty()
    {
        reader.error(node, fs.child("path"), "must not be empty");
    }
    if let Some(kind) = fs.get("kind")
        && let Some(value) = reader.choice(kind, &fs.child("kind"), &["File", "Directory"])
        && value == "Directory"
    {
        reader.error(
            kind,
            fs.child("kind"),
            "must be \"File\" for the File collector",
        );
    }
    let format = match fs.get("format") {
        Some(node) => match reader.choice(node, &fs.child("format"), &["TEXT", "JSON"]) {
            Some("JSON") => Some(FileFormat::Json),
            Some(_) => Some(FileFormat::Text),
            None => None,
        },
        None => Some(FileFormat::Text),
    };
    let template = match (path_node, path_node.and_then(Node::as_str)) {
        (Some(node), Some(text)) => Some(TemplateString {
            node,
            path: fs.child("path"),
            text,
        }),
        _ => None,
    };
    let source = match (path, format) {
        (Some(path), Some(format)) if !path.trim().is_empty() => Some(FileSource { path, format }),
        _ => None,
    };
    (source, template)
}

/// `filter.metricsFormat`: regexes with at least two groups.
fn metrics_format(reader: &mut Reader, node: &Node, path: &str) -> Option<Vec<String>> {
    let fields = reader.fields(node, path, FILTER_FIELDS)?;
    let list_path = fields.child("metricsFormat");
    let formats = reader.strings(fields.get("metricsFormat")?, &list_path)?;
    let items = match &fields.get("metricsFormat")?.value {
        Value::List(items) => items,
        _ => return None,
    };
    let mut valid = true;
    let formats: Vec<String> = formats
        .iter()
        .map(|format| literal_braces(format))
        .collect();
    for (i, (format, item)) in formats.iter().zip(items).enumerate() {
        let item_path = index(&list_path, i);
        match regex::Regex::new(format) {
            Ok(regex) if regex.captures_len() >= 3 => {}
            Ok(_) => {
                let mut error = error_at(
                    item,
                    item_path,
                    "needs two groups: the metric name, then its value",
                );
                error.hint = Some(
                    "e.g. \"([\\\\w|-]+)\\\\s*=\\\\s*([+-]?\\\\d*(\\\\.\\\\d+)?([Ee][+-]?\\\\d+)?)\"".to_string(),
                );
                reader.report(error);
                valid = false;
            }
            Err(error) => {
                let message = error.to_string();
                let last = message
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                reader.error(
                    item,
                    item_path,
                    format!("invalid regular expression: {last}"),
                );
                valid = false;
            }
        }
    }
    valid.then_some(formats)
}

/// `pattern` with every brace that Go's regexp reads as a literal escaped, so that Rust's
/// `regex` reads it the same way. Escapes and character classes are copied as they are.
pub(crate) fn literal_braces(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut class_depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                out.push(c);
                if let Some(next) = chars.get(i + 1) {
                    out.push(*next);
                }
                i += 2;
                continue;
            }
            '[' => {
                // `[[:alpha:]]` nests; a `]` right after the opening `[` (or `[^`) is literal.
                class_depth += 1;
                out.push(c);
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push(']');
                    i += 1;
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(c);
            }
            '{' if class_depth == 0 => match repetition_end(&chars, i) {
                Some(end) => {
                    out.extend(&chars[i..=end]);
                    i = end + 1;
                    continue;
                }
                None => out.push_str("\\{"),
            },
            '}' if class_depth == 0 => out.push_str("\\}"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// The index of the `}` closing a repetition `{n}`, `{n,}` or `{n,m}` that opens at `start`.
fn repetition_end(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    let digits = |i: &mut usize| {
        let from = *i;
        while chars.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        *i > from
    };
    if !digits(&mut i) {
        return None;
    }
    if chars.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    (chars.get(i) == Some(&'}')).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_literal_braces_are_escaped() {
        let katib = "{metricName: ([\\w|-]+), metricValue: ((-?\\d+)(\\.\\d+)?)}";
        let translated = literal_braces(katib);
        assert_eq!(
            translated,
            "\\{metricName: ([\\w|-]+), metricValue: ((-?\\d+)(\\.\\d+)?)\\}"
        );
        let regex = regex::Regex::new(&translated).expect("compiles");
        let captures = regex
            .captures("{metricName: accuracy, metricValue: 0.9}")
            .expect("matches");
        assert_eq!((&captures[1], &captures[2]), ("accuracy", "0.9"));
        assert_eq!(literal_braces("a{2}b{1,}c{1,3}"), "a{2}b{1,}c{1,3}");
        assert_eq!(literal_braces("[{}]\\{x"), "[{}]\\{x");
        assert_eq!(literal_braces("[]{]{a"), "[]{]\\{a");
    }
}
