//! The document as a generic tree whose every node knows its line and column.
//!
//! Deserializing straight into typed structs would stop at the first error and, through
//! `untagged` enums or `flatten`, lose the location. Instead the YAML text is read into this
//! small spanned tree ([`Node`]) and the validator walks it by hand, so it can report every
//! problem at once, each with its field path and position.
//!
//! JSON goes through the same parser: YAML 1.2 is a superset of JSON, so one code path gives
//! line and column for both. The parser is serde-saphyr, run with a budget (node count, depth,
//! alias replays) so that an alias bomb or a deeply nested document is refused instead of
//! exhausting memory or the stack. Booleans follow YAML 1.2 (`yes` is a string) and
//! non-finite floats (`.nan`, `.inf`) are kept as strings, which number fields then reject.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::error::SpecError;

/// Most nodes a document may hold (aliases count every time they are replayed).
const MAX_NODES: usize = 100_000;
/// Deepest nesting a document may have.
const MAX_DEPTH: usize = 64;
/// Stack of the parser thread: ample for [`MAX_DEPTH`] levels even in debug builds (only
/// the pages actually touched are committed).
const PARSER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// One node of the document with its 1-based position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// What the node holds.
    pub value: Value,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in an `i64`.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string (quoted or plain).
    Str(String),
    /// A sequence.
    List(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<Entry>),
}

/// One `key: value` pair of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The key, as text (scalar keys such as `1` or `true` are spelled out).
    pub key: String,
    /// 1-based line of the key.
    pub line: usize,
    /// 1-based column of the key.
    pub column: usize,
    /// The value.
    pub value: Node,
}

impl Value {
    /// What kind of value this is, with an article, for "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    /// The scalar as text (`1`, `0.5`, `true`, the string itself), or `None` for null and
    /// collections.
    pub(crate) fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(x) => Some(x.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Null | Value::List(_) | Value::Map(_) => None,
        }
    }
}

impl Node {
    /// The node as JSON, for free-form parts of the document (a Katib `trialSpec`).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(x) => serde_json::Number::from_f64(*x)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::List(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|entry| (entry.key.clone(), entry.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// The entry `key` when this node is a map holding it.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|entry| entry.key == key)
                .map(|entry| &entry.value),
            _ => None,
        }
    }

    /// The string this node holds, if it is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses `text` (YAML or JSON) into its non-empty documents. Empty documents (a file that
/// starts with `---`, a trailing `---`) are skipped. A syntax error becomes one [`SpecError`]
/// with the parser's position and message.
pub(crate) fn parse(text: &str) -> Result<Vec<Node>, SpecError> {
    // The deserializer recurses once per nesting level with large frames (tens of KiB in debug
    // builds), so 64 levels may not fit on a 2 MiB tokio worker or test thread. Parse on a
    // thread of our own with room to spare; the budget bounds the depth.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("spec-parser".to_string())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, || parse_here(text))
            .map_err(|error| SpecError::new("", format!("cannot start the YAML parser: {error}")))?
            .join()
            .unwrap_or_else(|_| Err(SpecError::new("", "the YAML parser failed")))
    })
}

/// [`parse`] on the current thread.
fn parse_here(text: &str) -> Result<Vec<Node>, SpecError> {
    let mut options = serde_saphyr::Options::default();
    options.budget = serde_saphyr::budget! {
        max_nodes: MAX_NODES,
        max_depth: MAX_DEPTH,
    };
    options.alias_limits = serde_saphyr::alias_limits! {
        max_total_replayed_events: MAX_NODES,
    };
    options.strict_booleans = true;
    options.non_finite_float_policy = serde_saphyr::options::NonFiniteFloatPolicy::AsString;
    options.with_snippet = false;
    let documents: Vec<Spanned<Value>> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|error| {
            let mut spec_error = SpecError::new("", syntax_message(&error));
            if let Some(location) = error.location() {
                spec_error = spec_error.at(to_usize(location.line()), to_usize(location.column()));
            }
            spec_error
        })?;
    Ok(documents.into_iter().map(node).collect())
}

/// The parser's message, on one line, without its own position suffix (the position is
/// reported separately) and without advice about parser options that users cannot set.
fn syntax_message(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    if first.contains("budget breached: Depth") {
        return format!("the document is nested more than {MAX_DEPTH} levels deep");
    }
    if first.contains("budget breached") || first.contains("alias replay limit") {
        return format!(
            "the document is too large: more than {MAX_NODES} nodes (aliases count each time \
             they are used)"
        );
    }
    if let Some(rest) = first.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(", set ").next().unwrap_or(rest);
        return format!("duplicate key \"{key}\"");
    }
    let message = match first.find(" at line ") {
        Some(at) => first[..at].trim_end_matches([',', ':', ' ']),
        None => first,
    };
    if message.is_empty() {
        "malformed YAML".to_string()
    } else {
        format!("malformed YAML: {message}")
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn node(spanned: Spanned<Value>) -> Node {
    Node {
        value: spanned.value,
        line: to_usize(spanned.referenced.line()),
        column: to_usize(spanned.referenced.column()),
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Value, E> {
        Err(E::custom("binary values are not supported"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(node(item));
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Value>>()? {
            let key = node(key);
            let Some(text) = key.value.scalar_text() else {
                return Err(de::Error::custom(format!(
                    "mapping keys must be scalars, found {}",
                    key.value.describe()
                )));
            };
            let value = node(map.next_value::<Spanned<Value>>()?);
            entries.push(Entry {
                key: text,
                line: key.line,
                column: key.column,
                value,
            });
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut documents = parse(text).expect("parses");
        assert_eq!(documents.len(), 1);
        documents.remove(0)
    }

    #[test]
    fn nodes_carry_their_positions() {
        let root = one("a: 1\nb:\n  - x\n  - \"0.5\"\n");
        let Value::Map(entries) = &root.value else {
            panic!("expected a map: {root:?}");
        };
        assert_eq!(
            (entries[1].key.as_str(), entries[1].line, entries[1].column),
            ("b", 2, 1)
        );
        let Value::List(items) = &entries[1].value.value else {
            panic!("expected a list");
        };
        assert_eq!((items[1].line, items[1].column), (4, 5));
        assert_eq!(items[1].value, Value::Str("0.5".to_string()));
        assert_eq!(entries[0].value.value, Value::Int(1));
    }

    #[test]
    fn json_is_yaml() {
        let root = one("{\n  \"a\": [1, 2.5, true, null],\n  \"b\": {\"c\": \"d\"}\n}\n");
        assert_eq!(
            root.get("b")
                .and_then(|b| b.get("c"))
                .and_then(Node::as_str),
            Some("d")
        );
        assert_eq!(
            root.to_json(),
            serde_json::json!({"a": [1, 2.5, true, null], "b": {"c": "d"}})
        );
        let b = root.get("b").expect("b");
        assert_eq!((b.line, b.column), (3, 8));
    }

    #[test]
    fn yaml_1_2_booleans_and_non_finite_floats() {
        let root = one("a: yes\nb: .nan\nc: true\n");
        assert_eq!(
            root.get("a").map(|n| &n.value),
            Some(&Value::Str("yes".into()))
        );
        assert!(matches!(
            root.get("b").map(|n| &n.value),
            Some(Value::Str(_))
        ));
        assert_eq!(root.get("c").map(|n| &n.value), Some(&Value::Bool(true)));
    }

    #[test]
    fn empty_documents_are_skipped() {
        assert_eq!(parse("---\n---\na: 1\n").expect("parses").len(), 1);
        assert_eq!(parse("a: 1\n---\nb: 2\n").expect("parses").len(), 2);
        assert_eq!(parse("").expect("parses").len(), 0);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let error = parse("a: 1\nb: [1, 2\nc: 3\n").expect_err("malformed");
        assert!(error.message.starts_with("malformed YAML"), "{error:?}");
        assert!(error.line.is_some(), "{error:?}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let error = parse("a: 1\na: 2\n").expect_err("duplicate");
        assert_eq!(error.line, Some(2), "{error:?}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let prev = level - 1;
            text.push_str(&format!(
                "a{level}: &a{level} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        assert!(parse(&text).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        for depth in [65, 100, 500, 5000] {
            let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            assert!(parse(&text).is_err(), "{depth}");
        }
        let mut block = String::new();
        for level in 0..100 {
            block.push_str(&format!("{}k{level}:\n", "  ".repeat(level)));
        }
        assert!(parse(&block).is_err());
        let text = format!("{}1{}", "[".repeat(60), "]".repeat(60));
        assert_eq!(parse(&text).map(|d| d.len()), Ok(1));
    }
}
