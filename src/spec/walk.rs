//! Reading the spanned tree by hand: typed getters that report instead of failing.
//!
//! Every getter takes the node and its field path, returns `Some(value)` when the node has the
//! expected shape, and otherwise records a [`SpecError`] (with the node's line and column) in
//! the [`Reader`] and returns `None`. Callers go on with what they could read, so one pass over
//! the document finds every problem. Fields whose value is `null` count as absent, as they do
//! in Kubernetes.

use super::document::{Entry, Node, Value};
use super::error::SpecError;

/// Collects errors while the document is read.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    /// Every error found so far.
    pub errors: Vec<SpecError>,
}

/// A map whose keys were checked against the fields the model knows.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    /// The map node itself (its position is used for missing fields).
    pub node: &'a Node,
    /// Its path.
    pub path: String,
    entries: &'a [Entry],
}

impl<'a> Fields<'a> {
    /// The value of `key`, unless it is absent or null.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| &entry.value)
            .filter(|node| node.value != Value::Null)
    }

    /// The path of the field `key` of this map.
    pub(crate) fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

/// `parent.key`, or `key` at the root.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `path[index]`.
pub(crate) fn index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// An error about `node` at `path`, positioned on the node.
pub(crate) fn error_at(
    node: &Node,
    path: impl Into<String>,
    message: impl Into<String>,
) -> SpecError {
    SpecError::new(path, message).at(node.line, node.column)
}

/// `did you mean "X"?` when one of `candidates` is close to `word`.
pub(crate) fn did_you_mean(word: &str, candidates: &[&str]) -> Option<String> {
    tuneflow_algorithms::nearest_name(word, candidates.iter().copied())
        .map(|name| format!("did you mean \"{name}\"?"))
}

/// `"a", "b" or "c"`.
pub(crate) fn one_of(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices
        .iter()
        .map(|choice| format!("\"{choice}\""))
        .collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

impl Reader {
    /// Records an error.
    pub(crate) fn report(&mut self, error: SpecError) {
        self.errors.push(error);
    }

    /// Records an error positioned on `node`.
    pub(crate) fn error(
        &mut self,
        node: &Node,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.report(error_at(node, path, message));
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        self.error(
            node,
            path,
            format!("expected {expected}, found {}", node.value.describe()),
        );
    }

    /// Checks that `node` is a map whose keys are all in `known`; every other key is reported
    /// as an unknown field, with the nearest known name as a hint.
    pub(crate) fn fields<'a>(
        &mut self,
        node: &'a Node,
        path: &str,
        known: &[&str],
    ) -> Option<Fields<'a>> {
        let Value::Map(entries) = &node.value else {
            self.wrong_type(node, path, "a map");
            return None;
        };
        for entry in entries {
            if !known.contains(&entry.key.as_str()) {
                let mut error = SpecError::new(
                    join(path, &entry.key),
                    format!("unknown field \"{}\"", entry.key),
                )
                .at(entry.line, entry.column);
                error.hint = Some(
                    did_you_mean(&entry.key, known)
                        .unwrap_or_else(|| format!("known fields here: {}", known.join(", "))),
                );
                self.report(error);
            }
        }
        Some(Fields {
            node,
            path: path.to_string(),
            entries,
        })
    }

    /// Checks that `node` is a map without constraining its keys (free-form maps such as
    /// labels); returns its entries.
    pub(crate) fn map<'a>(&mut self, node: &'a Node, path: &str) -> Option<&'a [Entry]> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            _ => {
                self.wrong_type(node, path, "a map");
                None
            }
        }
    }

    /// Reports that the required field `key` of `fields` is missing.
    pub(crate) fn missing(&mut self, fields: &Fields<'_>, key: &str) {
        self.error(
            fields.node,
            fields.child(key),
            format!("missing required field \"{key}\""),
        );
    }

    /// The field `key`, reporting it as missing when absent.
    pub(crate) fn required<'a>(&mut self, fields: &Fields<'a>, key: &str) -> Option<&'a Node> {
        let node = fields.get(key);
        if node.is_none() {
            self.missing(fields, key);
        }
        node
    }

    /// `node` as a string (quoted or plain); numbers and booleans are type errors.
    pub(crate) fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(node, path, "a string");
                None
            }
        }
    }

    /// `node` as text: a string, or a number or boolean spelled out (Katib writes setting
    /// values and environment values as strings, YAML users often do not).
    pub(crate) fn text(&mut self, node: &Node, path: &str) -> Option<String> {
        let text = node.value.scalar_text();
        if text.is_none() {
            self.wrong_type(node, path, "a string");
        }
        text
    }

    /// `node` as a finite number: a YAML number or a string holding one (`"0.01"`, `"1e-3"`).
    pub(crate) fn number(&mut self, node: &Node, path: &str) -> Option<f64> {
        let number = match &node.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            Value::Str(s) => match s.trim().parse::<f64>() {
                Ok(x) => Some(x),
                Err(_) => {
                    self.error(node, path, format!("expected a number, found \"{s}\""));
                    return None;
                }
            },
            _ => {
                self.wrong_type(node, path, "a number");
                return None;
            }
        };
        match number {
            Some(x) if x.is_finite() => Some(x),
            _ => {
                self.error(node, path, "must be a finite number");
                None
            }
        }
    }

    /// `node` as an integer: a YAML integer, an integral number, or a string holding one.
    pub(crate) fn integer(&mut self, node: &Node, path: &str) -> Option<i64> {
        if let Value::Int(i) = node.value {
            return Some(i);
        }
        if let Value::Str(s) = &node.value
            && let Ok(i) = s.trim().parse::<i64>()
        {
            return Some(i);
        }
        let x = self.number(node, path)?;
        if x.fract() == 0.0 && x >= -(2f64.powi(63)) && x < 2f64.powi(63) {
            Some(x as i64)
        } else {
            self.error(node, path, format!("expected an integer, found {x}"));
            None
        }
    }

    /// `node` as a boolean (`true`/`false`, or those words quoted).
    pub(crate) fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if s == "true" => Some(true),
            Value::Str(s) if s == "false" => Some(false),
            _ => {
                self.wrong_type(node, path, "true or false");
                None
            }
        }
    }

    /// `node` as a list.
    pub(crate) fn list<'a>(&mut self, node: &'a Node, path: &str) -> Option<&'a [Node]> {
        match &node.value {
            Value::List(items) => Some(items),
            _ => {
                self.wrong_type(node, path, "a list");
                None
            }
        }
    }

    /// `node` as one of `choices` (exact spelling), reporting any other string with the
    /// nearest choice as a hint.
    pub(crate) fn choice(
        &mut self,
        node: &Node,
        path: &str,
        choices: &[&'static str],
    ) -> Option<&'static str> {
        let value = self.string(node, path)?;
        if let Some(choice) = choices.iter().find(|choice| **choice == value) {
            return Some(choice);
        }
        let mut error = error_at(
            node,
            path,
            format!("must be {}, found \"{value}\"", one_of(choices)),
        );
        error.hint = did_you_mean(&value, choices);
        self.report(error);
        None
    }

    /// A list of strings (such as metric names).
    pub(crate) fn strings(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let items = self.list(node, path)?;
        let mut strings = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &index(path, i)) {
                Some(s) => strings.push(s),
                None => ok = false,
            }
        }
        ok.then_some(strings)
    }

    /// A map of string to string (labels, annotations, an `env` map): values may be any scalar.
    pub(crate) fn string_map(
        &mut self,
        node: &Node,
        path: &str,
    ) -> Option<Vec<(String, String, Node)>> {
        let entries = self.map(node, path)?;
        let mut pairs = Vec::with_capacity(entries.len());
        for entry in entries {
            let child = join(path, &entry.key);
            let value = if entry.value.value == Value::Null {
                Some(String::new())
            } else {
                self.text(&entry.value, &child)
            };
            if let Some(value) = value {
                pairs.push((entry.key.clone(), value, entry.value.clone()));
            }
        }
        Some(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::super::document::parse;
    use super::*;

    fn doc(text: &str) -> Node {
        parse(text).expect("parses").remove(0)
    }

    #[test]
    fn unknown_fields_get_the_nearest_name() {
        let root = doc("spec:\n  paralelTrialCount: 3\n");
        let spec = root.get("spec").expect("spec");
        let mut reader = Reader::default();
        let fields = reader.fields(spec, "spec", &["parallelTrialCount", "maxTrialCount"]);
        assert!(fields.is_some());
        let error = &reader.errors[0];
        assert_eq!(error.path, "spec.paralelTrialCount");
        assert_eq!(error.message, "unknown field \"paralelTrialCount\"");
        assert_eq!(
            error.hint.as_deref(),
            Some("did you mean \"parallelTrialCount\"?")
        );
        assert_eq!((error.line, error.column), (Some(2), Some(3)));
    }

    #[test]
    fn numbers_may_be_strings() {
        let root = doc("a: \"0.01\"\nb: 1e-3\nc: \"1e-3\"\nd: abc\ne: \"7\"\nf: 2.0\ng: 2.5\n");
        let mut reader = Reader::default();
        let get = |key: &str| root.get(key).expect("field").clone();
        assert_eq!(reader.number(&get("a"), "a"), Some(0.01));
        assert_eq!(reader.number(&get("b"), "b"), Some(0.001));
        assert_eq!(reader.number(&get("c"), "c"), Some(0.001));
        assert_eq!(reader.number(&get("d"), "d"), None);
        assert_eq!(reader.integer(&get("e"), "e"), Some(7));
        assert_eq!(reader.integer(&get("f"), "f"), Some(2));
        assert_eq!(reader.integer(&get("g"), "g"), None);
        let messages: Vec<&str> = reader.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "expected a number, found \"abc\"",
                "expected an integer, found 2.5"
            ]
        );
    }

    #[test]
    fn wrong_types_say_what_was_found() {
        let root = doc("a: [1]\n");
        let mut reader = Reader::default();
        let a = root.get("a").expect("a");
        assert_eq!(reader.string(a, "a"), None);
        assert_eq!(reader.errors[0].message, "expected a string, found a list");
    }

    #[test]
    fn choices_hint_at_the_nearest() {
        let root = doc("type: minimise\n");
        let mut reader = Reader::default();
        let node = root.get("type").expect("type");
        assert_eq!(reader.choice(node, "type", &["minimize", "maximize"]), None);
        assert_eq!(
            reader.errors[0].message,
            "must be \"minimize\" or \"maximize\", found \"minimise\""
        );
        assert_eq!(
            reader.errors[0].hint.as_deref(),
            Some("did you mean \"minimize\"?")
        );
    }
}
