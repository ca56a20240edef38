//! MLflow's search language: filter strings, `order_by` clauses and page tokens, for runs and
//! for experiments, evaluated in Rust over what the store returns.
//!
//! A filter is an AND-only conjunction of comparisons (`metrics.loss < 0.5 and
//! params.opt = 'adam'`). The left side names an entity and a key: `metric(s).`,
//! `param(s).`/`parameter(s).`, `tag(s).`, `attribute(s).`/`attr.`/`run.` (no prefix means
//! an attribute), `dataset(s).`; keys with other characters are quoted with backticks or
//! double quotes (`` metrics.`val loss` ``, `params."a-b"`). What each entity allows follows
//! `mlflow/utils/search_utils.py` and the SQL store of MLflow 3.x:
//!
//! | entity | comparators | value |
//! |---|---|---|
//! | metric | `= != < <= > >=` | a number |
//! | param, tag | `= != LIKE ILIKE IS NULL IS NOT NULL` | a quoted string |
//! | `start_time`, `end_time`, `created` | `= != < <= > >=` | a number (milliseconds) |
//! | `run_id` | `= != LIKE ILIKE IN NOT IN` | a quoted string, or a list for IN |
//! | `run_name`, `status`, `user_id`, `artifact_uri` | `= != LIKE ILIKE` | a quoted string |
//!
//! A run without the metric, param or tag a comparison names never matches it (except `IS
//! NULL`); NaN compares false except with `!=`. `LIKE` is case-sensitive, `ILIKE` is not;
//! `%` matches any run of characters and `_` one character.
//!
//! Results are ordered by the `order_by` clauses (values first, then NaN, then missing values,
//! in both directions, as MLflow's SQL store does), then by start time descending unless
//! `start_time` was ordered on, then by run id. Page tokens are what MLflow sends: base64 of
//! `{"offset": N}`.

use std::cmp::Ordering;

use super::error::{MlflowError, MlflowResult};
use super::wire::millis;
use crate::store::tracking::{KeyValue, Run, TrackingExperiment};

// ---------------------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// An identifier: its parts, split on unquoted dots, unquoted.
    Ident(Vec<String>),
    /// A single-quoted string, without its quotes.
    Single(String),
    /// A double-quoted string (a value, or a quoted identifier), without its quotes.
    Double(String),
    /// A number as written.
    Number(String),
    /// A comparison operator made of symbols.
    Symbol(String),
    LeftParen,
    RightParen,
    Comma,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Ident(parts) => parts.join("."),
            Token::Single(s) => format!("'{s}'"),
            Token::Double(s) => format!("\"{s}\""),
            Token::Number(s) | Token::Symbol(s) => s.clone(),
            Token::LeftParen => "(".into(),
            Token::RightParen => ")".into(),
            Token::Comma => ",".into(),
        }
    }

    /// True for the bare word `word` (any case).
    fn is_word(&self, word: &str) -> bool {
        matches!(self, Token::Ident(parts) if parts.len() == 1 && parts[0].eq_ignore_ascii_case(word))
    }
}

fn invalid(message: impl Into<String>) -> MlflowError {
    MlflowError::invalid(message)
}

/// Reads a quoted run starting after the opening `quote`; returns the inner text (escapes kept
/// as written, as MLflow keeps them) and the index after the closing quote.
fn quoted(chars: &[char], start: usize, quote: char) -> Option<(String, usize)> {
    let mut i = start;
    let mut text = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && quote != '`' && i + 1 < chars.len() {
            text.push(c);
            text.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if c == quote {
            if quote == '\'' && chars.get(i + 1) == Some(&'\'') {
                text.push_str("''");
                i += 2;
                continue;
            }
            return Some((text, i + 1));
        }
        text.push(c);
        i += 1;
    }
    None
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

fn lex(input: &str) -> MlflowResult<Vec<Token>> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                tokens.push(Token::LeftParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RightParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '\'' => {
                let (text, next) = quoted(&chars, i + 1, '\'').ok_or_else(|| {
                    invalid(format!(
                        "Invalid filter '{input}': an unterminated quoted string"
                    ))
                })?;
                tokens.push(Token::Single(text));
                i = next;
            }
            '=' | '!' | '<' | '>' => {
                let mut op = String::from(c);
                if let Some(&next) = chars.get(i + 1)
                    && (next == '=' || (c == '<' && next == '>'))
                {
                    op.push(next);
                }
                i += op.chars().count();
                tokens.push(Token::Symbol(op));
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && chars
                        .get(i + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == '.')) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() {
                    let d = chars[i];
                    let exponent_sign = (d == '-' || d == '+')
                        && matches!(chars[i - 1], 'e' | 'E')
                        && chars[start..i]
                            .iter()
                            .all(|c| !c.is_alphabetic() || *c == 'e' || *c == 'E');
                    if d.is_ascii_digit() || d == '.' || d == 'e' || d == 'E' || exponent_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let text: String = chars[start..i].iter().collect();
                if text.parse::<f64>().is_err() {
                    return Err(invalid(format!(
                        "Invalid filter '{input}': `{text}` is not a number"
                    )));
                }
                tokens.push(Token::Number(text));
            }
            '"' | '`' => {
                // A quoted identifier part (or, for `"`, perhaps a string value).
                let (parts, next, lone_double) = identifier(&chars, i, input)?;
                if lone_double {
                    tokens.push(Token::Double(parts.into_iter().next().unwrap_or_default()));
                } else {
                    tokens.push(Token::Ident(parts));
                }
                i = next;
            }
            c if is_word_char(c) => {
                let (parts, next, _) = identifier(&chars, i, input)?;
                tokens.push(Token::Ident(parts));
                i = next;
            }
            other => {
                return Err(invalid(format!(
                    "Invalid filter '{input}': unexpected character '{other}'"
                )));
            }
        }
    }
    Ok(tokens)
}

/// Reads an identifier from `start`: parts separated by dots, each a bare word or a backtick- or
/// double-quoted run. Returns its parts, the index after it, and whether it was one lone
/// double-quoted part (which may be a string value).
fn identifier(
    chars: &[char],
    start: usize,
    input: &str,
) -> MlflowResult<(Vec<String>, usize, bool)> {
    let mut parts = Vec::new();
    let mut i = start;
    let mut lone_double = false;
    loop {
        let c = chars.get(i).copied();
        match c {
            // A single-quoted part only after a dot (`params.'my key'`); first, it is a value.
            Some(q @ ('"' | '`')) | Some(q @ '\'') if q != '\'' || !parts.is_empty() => {
                let (text, next) = quoted(chars, i + 1, q).ok_or_else(|| {
                    invalid(format!(
                        "Invalid filter '{input}': an unterminated quoted name"
                    ))
                })?;
                lone_double = parts.is_empty() && q == '"';
                parts.push(text);
                i = next;
            }
            Some(c) if is_word_char(c) => {
                let begin = i;
                while chars.get(i).is_some_and(|c| is_word_char(*c)) {
                    i += 1;
                }
                parts.push(chars[begin..i].iter().collect());
            }
            _ => {
                return Err(invalid(format!(
                    "Invalid filter '{input}': a name is missing after '.'"
                )));
            }
        }
        if chars.get(i) == Some(&'.') {
            lone_double = false;
            i += 1;
            continue;
        }
        break;
    }
    if parts.len() > 1 {
        lone_double = false;
    }
    Ok((parts, i, lone_double))
}

// ---------------------------------------------------------------------------------------------
// Parsed comparisons

/// What a comparison's left side names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// `metrics.KEY`.
    Metric,
    /// `params.KEY`.
    Param,
    /// `tags.KEY`.
    Tag,
    /// `attributes.KEY` or a bare key.
    Attribute,
    /// `datasets.KEY`.
    Dataset,
}

impl Entity {
    fn name(self) -> &'static str {
        match self {
            Entity::Metric => "metric",
            Entity::Param => "parameter",
            Entity::Tag => "tag",
            Entity::Attribute => "attribute",
            Entity::Dataset => "dataset",
        }
    }

    fn parse(name: &str) -> Option<Entity> {
        Some(match name {
            "metric" | "metrics" => Entity::Metric,
            "parameter" | "parameters" | "param" | "params" => Entity::Param,
            "tag" | "tags" => Entity::Tag,
            "attribute" | "attributes" | "attr" | "run" => Entity::Attribute,
            "dataset" | "datasets" => Entity::Dataset,
            _ => return None,
        })
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `LIKE`.
    Like,
    /// `ILIKE`.
    ILike,
    /// `IN`.
    In,
    /// `NOT IN`.
    NotIn,
    /// `IS NULL`.
    IsNull,
    /// `IS NOT NULL`.
    IsNotNull,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }

    fn is_numeric(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

const NUMERIC_OPS: &str = "{'=', '!=', '<', '<=', '>', '>='}";
const PARAM_TAG_OPS: &str = "{'=', '!=', 'LIKE', 'ILIKE', 'IS NULL', 'IS NOT NULL'}";
const STRING_ATTRIBUTE_OPS: &str = "{'=', '!=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'}";

/// The right side of a comparison.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Number(String),
    Text(String),
    List(Vec<String>),
    Nothing,
}

/// One parsed comparison, before it is checked against what a search allows.
#[derive(Debug, Clone, PartialEq)]
struct Comparison {
    /// The identifier's entity part as written (for messages), if it had one.
    entity_text: Option<String>,
    key: String,
    op: Op,
    value: Literal,
    /// The value token as written (for messages).
    value_text: String,
    value_is_bare: bool,
}

/// Splits an identifier into its entity part (none for a bare key) and its key, as MLflow
/// does: at the first dot, so `metrics.a.b` is the metric `a.b`.
fn split_identifier(parts: &[String]) -> (Option<String>, String) {
    match parts {
        [key] => (None, key.clone()),
        [entity, rest @ ..] => (Some(entity.clone()), rest.join(".")),
        [] => (None, String::new()),
    }
}

/// The longest filter accepted, in bytes. MLflow sets none; this one keeps a search from
/// being made arbitrarily slow (a `LIKE` costs up to pattern × value length per run).
pub const MAX_FILTER_LENGTH: usize = 16 * 1024;

/// The longest `LIKE`/`ILIKE` pattern accepted, in characters (for the same reason).
pub const MAX_PATTERN_LENGTH: usize = 1000;

/// Splits a filter into comparisons (the grammar only; what is allowed is checked per search).
fn comparisons(filter: &str) -> MlflowResult<Vec<Comparison>> {
    if filter.len() > MAX_FILTER_LENGTH {
        return Err(invalid(format!(
            "The filter has {} bytes; at most {MAX_FILTER_LENGTH} are accepted",
            filter.len()
        )));
    }
    let tokens = lex(filter)?;
    let mut result = Vec::new();
    let mut i = 0;
    let bad_clause = |token: &Token| {
        invalid(format!(
            "Invalid clause(s) in filter string: '{}'",
            token.text()
        ))
    };
    // MLflow lets stray ANDs pass (leading, trailing, doubled); so does this parser.
    let is_and = |token: Option<&Token>| token.is_some_and(|t| t.is_word("AND"));
    loop {
        while is_and(tokens.get(i)) {
            i += 1;
        }
        if i >= tokens.len() {
            break;
        }
        // Identifier.
        let parts = match tokens.get(i) {
            Some(Token::Ident(parts)) => parts.clone(),
            Some(Token::Double(text)) => vec![text.clone()],
            Some(other) => return Err(bad_clause(other)),
            None => {
                return Err(invalid(format!(
                    "Invalid filter '{filter}'. Could not be parsed."
                )));
            }
        };
        i += 1;
        let (entity_text, key) = split_identifier(&parts);
        // Operator.
        let op = match tokens.get(i) {
            Some(Token::Symbol(symbol)) => {
                i += 1;
                match symbol.as_str() {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    other => {
                        return Err(invalid(format!(
                            "Invalid comparator '{other}' in filter '{filter}'"
                        )));
                    }
                }
            }
            Some(token) if token.is_word("LIKE") => {
                i += 1;
                Op::Like
            }
            Some(token) if token.is_word("ILIKE") => {
                i += 1;
                Op::ILike
            }
            Some(token) if token.is_word("IN") => {
                i += 1;
                Op::In
            }
            Some(token) if token.is_word("NOT") => {
                if tokens.get(i + 1).is_some_and(|t| t.is_word("IN")) {
                    i += 2;
                    Op::NotIn
                } else {
                    return Err(bad_clause(token));
                }
            }
            Some(token) if token.is_word("IS") => {
                if tokens.get(i + 1).is_some_and(|t| t.is_word("NULL")) {
                    i += 2;
                    Op::IsNull
                } else if tokens.get(i + 1).is_some_and(|t| t.is_word("NOT"))
                    && tokens.get(i + 2).is_some_and(|t| t.is_word("NULL"))
                {
                    i += 3;
                    Op::IsNotNull
                } else {
                    return Err(bad_clause(token));
                }
            }
            Some(other) => return Err(bad_clause(other)),
            None => {
                return Err(invalid(format!(
                    "Invalid comparison clause. Expected 3 tokens found 1 in filter '{filter}'"
                )));
            }
        };
        // Value.
        let (value, value_text, value_is_bare) = if matches!(op, Op::IsNull | Op::IsNotNull) {
            (Literal::Nothing, String::new(), false)
        } else {
            match tokens.get(i) {
                Some(Token::Number(text)) => {
                    i += 1;
                    (Literal::Number(text.clone()), text.clone(), false)
                }
                Some(Token::Single(text)) | Some(Token::Double(text)) => {
                    let written = tokens[i].text();
                    i += 1;
                    (Literal::Text(text.clone()), written, false)
                }
                Some(Token::Ident(parts)) => {
                    let written = parts.join(".");
                    i += 1;
                    (Literal::Text(written.clone()), written, true)
                }
                Some(Token::LeftParen) => {
                    let start = i;
                    i += 1;
                    let mut items = Vec::new();
                    loop {
                        match tokens.get(i) {
                            Some(Token::Single(text)) | Some(Token::Double(text)) => {
                                items.push(text.clone());
                                i += 1;
                            }
                            Some(Token::RightParen) if items.is_empty() => {
                                return Err(invalid(
                                    "While parsing a list in the query, expected a non-empty list of string values, but got empty list",
                                ));
                            }
                            _ => {
                                return Err(invalid(
                                    "While parsing a list in the query, expected string value, punctuation, or whitespace, but got different type in list",
                                ));
                            }
                        }
                        match tokens.get(i) {
                            Some(Token::Comma) => i += 1,
                            Some(Token::RightParen) => {
                                i += 1;
                                break;
                            }
                            _ => {
                                return Err(invalid(
                                    "While parsing a list in the query, expected a non-empty list of string values, but got ill-formed list.",
                                ));
                            }
                        }
                        if tokens.get(i) == Some(&Token::RightParen)
                            && tokens.get(i - 1) == Some(&Token::Comma)
                        {
                            i += 1;
                            break;
                        }
                    }
                    let written: Vec<String> = tokens[start..i].iter().map(Token::text).collect();
                    (Literal::List(items), written.join(""), false)
                }
                Some(other) => return Err(bad_clause(other)),
                None => {
                    return Err(invalid(format!(
                        "Invalid comparison clause. Expected 3 tokens found 2 in filter '{filter}'"
                    )));
                }
            }
        };
        if let (Op::Like | Op::ILike, Literal::Text(pattern)) = (op, &value)
            && pattern.chars().count() > MAX_PATTERN_LENGTH
        {
            return Err(invalid(format!(
                "A LIKE pattern may have at most {MAX_PATTERN_LENGTH} characters"
            )));
        }
        if matches!(op, Op::In | Op::NotIn) != matches!(value, Literal::List(_)) {
            return Err(invalid(format!(
                "Invalid comparison clause in filter '{filter}': IN and NOT IN take a parenthesised list of quoted strings, and only they do"
            )));
        }
        result.push(Comparison {
            entity_text,
            key,
            op,
            value,
            value_text,
            value_is_bare,
        });
        match tokens.get(i) {
            None => break,
            Some(token) if token.is_word("AND") => {}
            Some(other) => return Err(bad_clause(other)),
        }
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// LIKE patterns

/// A compiled `LIKE`/`ILIKE` pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    chars: Vec<char>,
    ignore_case: bool,
}

impl Pattern {
    /// Compiles a pattern: `%` is any run of characters, `_` any one character.
    pub fn new(pattern: &str, ignore_case: bool) -> Pattern {
        let chars = if ignore_case {
            pattern.to_lowercase().chars().collect()
        } else {
            pattern.chars().collect()
        };
        Pattern { chars, ignore_case }
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        if self.ignore_case {
            let lowered: Vec<char> = text.to_lowercase().chars().collect();
            wildcard(&self.chars, &lowered)
        } else {
            let chars: Vec<char> = text.chars().collect();
            wildcard(&self.chars, &chars)
        }
    }
}

/// Greedy wildcard matching with one backtrack point: linear for most patterns.
fn wildcard(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '_' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '%' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == '%' {
        p += 1;
    }
    p == pattern.len()
}

/// A string test.
#[derive(Debug, Clone, PartialEq)]
pub enum TextTest {
    /// Equal.
    Eq(String),
    /// Not equal.
    Ne(String),
    /// `LIKE` or `ILIKE`.
    Like(Pattern),
    /// One of.
    In(Vec<String>),
    /// None of.
    NotIn(Vec<String>),
    /// Numeric-style order on strings (`<`, `>`, ...), used nowhere MLflow forbids it.
    Order(Op, String),
}

impl TextTest {
    fn new(op: Op, value: Literal) -> TextTest {
        match (op, value) {
            (Op::In, Literal::List(items)) => TextTest::In(items),
            (Op::NotIn, Literal::List(items)) => TextTest::NotIn(items),
            (op, Literal::Text(text) | Literal::Number(text)) => match op {
                Op::Eq => TextTest::Eq(text),
                Op::Ne => TextTest::Ne(text),
                Op::Like => TextTest::Like(Pattern::new(&text, false)),
                Op::ILike => TextTest::Like(Pattern::new(&text, true)),
                other => TextTest::Order(other, text),
            },
            (op, _) => TextTest::Order(op, String::new()),
        }
    }

    /// Whether `value` passes.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            TextTest::Eq(expected) => value == expected,
            TextTest::Ne(expected) => value != expected,
            TextTest::Like(pattern) => pattern.matches(value),
            TextTest::In(items) => items.iter().any(|i| i == value),
            TextTest::NotIn(items) => items.iter().all(|i| i != value),
            TextTest::Order(op, expected) => compare(*op, value.cmp(expected.as_str())),
        }
    }
}

fn compare(op: Op, ordering: Ordering) -> bool {
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Ne => ordering != Ordering::Equal,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        _ => false,
    }
}

/// A numeric test; NaN passes only `!=`, as in Python.
fn number_matches(op: Op, lhs: f64, rhs: f64) -> bool {
    match op {
        Op::Eq => lhs == rhs,
        Op::Ne => lhs != rhs,
        Op::Lt => lhs < rhs,
        Op::Le => lhs <= rhs,
        Op::Gt => lhs > rhs,
        Op::Ge => lhs >= rhs,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Runs

/// A run attribute that searches and orderings may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAttribute {
    /// `run_id`.
    RunId,
    /// `run_name` (also `"run name"`).
    RunName,
    /// `status`.
    Status,
    /// `user_id`.
    UserId,
    /// `artifact_uri`.
    ArtifactUri,
    /// `start_time` (also `created`), milliseconds.
    StartTime,
    /// `end_time`, milliseconds.
    EndTime,
}

const RUN_ATTRIBUTE_KEYS: &str = "{'artifact_uri', 'created', 'Created', 'end_time', 'run name', 'Run name', 'Run Name', 'run_id', 'run_name', 'start_time', 'status', 'user_id'}";

impl RunAttribute {
    fn parse(key: &str) -> Option<RunAttribute> {
        Some(match key {
            "run_id" => RunAttribute::RunId,
            "run_name" | "run name" | "Run name" | "Run Name" => RunAttribute::RunName,
            "status" => RunAttribute::Status,
            "user_id" => RunAttribute::UserId,
            "artifact_uri" => RunAttribute::ArtifactUri,
            "start_time" | "created" | "Created" => RunAttribute::StartTime,
            "end_time" => RunAttribute::EndTime,
            _ => return None,
        })
    }

    fn is_numeric(self) -> bool {
        matches!(self, RunAttribute::StartTime | RunAttribute::EndTime)
    }

    fn text(self, run: &Run) -> &str {
        match self {
            RunAttribute::RunId => &run.info.run_id,
            RunAttribute::RunName => &run.info.name,
            RunAttribute::Status => run.info.status.as_str(),
            RunAttribute::UserId => &run.info.user_id,
            RunAttribute::ArtifactUri => &run.info.artifact_uri,
            RunAttribute::StartTime | RunAttribute::EndTime => "",
        }
    }

    fn number(self, run: &Run) -> Option<f64> {
        match self {
            RunAttribute::StartTime => run.info.start_time.map(|t| millis(t) as f64),
            RunAttribute::EndTime => run.info.end_time.map(|t| millis(t) as f64),
            _ => None,
        }
    }
}

/// One checked condition of a run search.
#[derive(Debug, Clone, PartialEq)]
pub enum RunCondition {
    /// The latest value of a metric.
    Metric {
        /// Metric key.
        key: String,
        /// Comparator.
        op: Op,
        /// Right side.
        value: f64,
    },
    /// A param, or (`test` None) its presence.
    Param {
        /// Param key.
        key: String,
        /// The test, or None for IS NULL / IS NOT NULL.
        test: Option<TextTest>,
        /// For IS NULL / IS NOT NULL: whether it must be present.
        present: bool,
    },
    /// A tag, or its presence.
    Tag {
        /// Tag key.
        key: String,
        /// The test, or None for IS NULL / IS NOT NULL.
        test: Option<TextTest>,
        /// For IS NULL / IS NOT NULL: whether it must be present.
        present: bool,
    },
    /// A string attribute.
    Text {
        /// Which.
        attribute: RunAttribute,
        /// The test.
        test: TextTest,
    },
    /// A numeric attribute.
    Number {
        /// Which.
        attribute: RunAttribute,
        /// Comparator.
        op: Op,
        /// Right side (milliseconds).
        value: f64,
    },
    /// A dataset condition: this server stores no datasets, so it matches no run.
    Dataset,
}

fn find<'a>(pairs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

impl RunCondition {
    /// Whether `run` passes.
    pub fn matches(&self, run: &Run) -> bool {
        match self {
            RunCondition::Metric { key, op, value } => run
                .metrics
                .iter()
                .find(|m| m.key == *key)
                .is_some_and(|m| number_matches(*op, m.value, *value)),
            RunCondition::Param { key, test, present } => {
                keyed(find(&run.params, key), test.as_ref(), *present)
            }
            RunCondition::Tag { key, test, present } => {
                keyed(find(&run.tags, key), test.as_ref(), *present)
            }
            RunCondition::Text { attribute, test } => test.matches(attribute.text(run)),
            RunCondition::Number {
                attribute,
                op,
                value,
            } => attribute
                .number(run)
                .is_some_and(|lhs| number_matches(*op, lhs, *value)),
            RunCondition::Dataset => false,
        }
    }
}

fn keyed(value: Option<&str>, test: Option<&TextTest>, present: bool) -> bool {
    match (value, test) {
        (value, None) => value.is_some() == present,
        (None, Some(_)) => false,
        (Some(value), Some(test)) => test.matches(value),
    }
}

/// The entity a run search's identifier names (an attribute when it has no entity part).
fn run_entity(entity_text: Option<&str>) -> MlflowResult<Entity> {
    match entity_text {
        None => Ok(Entity::Attribute),
        Some(text) => Entity::parse(text).ok_or_else(|| {
            invalid(format!(
                "Invalid entity type '{text}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
            ))
        }),
    }
}

fn quoted_value(comparison: &Comparison, entity: Entity) -> MlflowResult<String> {
    match &comparison.value {
        Literal::Text(text) if comparison.value_is_bare => Err(invalid(format!(
            "Parameter value is either not quoted or unidentified quote types used for string value {text}. Use either single or double quotes."
        ))),
        Literal::Text(text) => Ok(text.clone()),
        _ => Err(invalid(format!(
            "Expected a quoted string value for {} (e.g. 'my-value'). Got value {}",
            entity.name(),
            comparison.value_text
        ))),
    }
}

fn numeric_value(comparison: &Comparison, what: &str) -> MlflowResult<f64> {
    match &comparison.value {
        Literal::Number(text) => text.parse::<f64>().map_err(|_| {
            invalid(format!(
                "Expected numeric value type for {what}. Found {text}"
            ))
        }),
        _ => Err(invalid(format!(
            "Expected numeric value type for {what}. Found {}",
            comparison.value_text
        ))),
    }
}

fn bad_op(op: Op, allowed: &str) -> MlflowError {
    invalid(format!(
        "Invalid comparator '{}' not one of '{allowed}'",
        op.text()
    ))
}

/// Parses a run search's filter into conditions, checking each as MLflow does.
pub fn parse_run_filter(filter: &str) -> MlflowResult<Vec<RunCondition>> {
    let mut conditions = Vec::new();
    for comparison in comparisons(filter)? {
        let entity = run_entity(comparison.entity_text.as_deref())?;
        let op = comparison.op;
        let key = comparison.key.clone();
        let condition = match entity {
            Entity::Metric => {
                if !op.is_numeric() {
                    return Err(bad_op(op, NUMERIC_OPS));
                }
                RunCondition::Metric {
                    key,
                    op,
                    value: numeric_value(&comparison, "metric")?,
                }
            }
            Entity::Param | Entity::Tag => {
                let (test, present) = match op {
                    Op::IsNull => (None, false),
                    Op::IsNotNull => (None, true),
                    Op::Eq | Op::Ne | Op::Like | Op::ILike => (
                        Some(TextTest::new(
                            op,
                            Literal::Text(quoted_value(&comparison, entity)?),
                        )),
                        true,
                    ),
                    other => return Err(bad_op(other, PARAM_TAG_OPS)),
                };
                if entity == Entity::Param {
                    RunCondition::Param { key, test, present }
                } else {
                    RunCondition::Tag { key, test, present }
                }
            }
            Entity::Attribute => {
                let attribute = RunAttribute::parse(&key).ok_or_else(|| {
                    invalid(format!(
                        "Invalid attribute key '{key}' specified. Valid keys are '{RUN_ATTRIBUTE_KEYS}'"
                    ))
                })?;
                if matches!(op, Op::IsNull | Op::IsNotNull) {
                    return Err(invalid(format!(
                        "IS NULL / IS NOT NULL is only supported for tags and params, not for 'attribute' '{key}'"
                    )));
                }
                if attribute.is_numeric() {
                    if !op.is_numeric() {
                        return Err(bad_op(op, NUMERIC_OPS));
                    }
                    RunCondition::Number {
                        attribute,
                        op,
                        value: numeric_value(&comparison, &format!("numeric attribute: {key}"))?,
                    }
                } else {
                    let test = match (&comparison.value, op) {
                        (Literal::List(_), _) if attribute != RunAttribute::RunId => {
                            return Err(invalid(
                                "Only ['run_id'] attributes support comparison with a list of quoted string values.",
                            ));
                        }
                        (Literal::List(items), Op::In | Op::NotIn) => {
                            TextTest::new(op, Literal::List(items.clone()))
                        }
                        (_, Op::Eq | Op::Ne | Op::Like | Op::ILike) => {
                            let text = match &comparison.value {
                                Literal::Text(_) if comparison.value_is_bare => {
                                    quoted_value(&comparison, entity)?
                                }
                                Literal::Text(text) => text.clone(),
                                _ => {
                                    return Err(invalid(format!(
                                        "Expected a quoted string value for attributes. Got value {}",
                                        comparison.value_text
                                    )));
                                }
                            };
                            TextTest::new(op, Literal::Text(text))
                        }
                        (_, other) => return Err(bad_op(other, STRING_ATTRIBUTE_OPS)),
                    };
                    RunCondition::Text { attribute, test }
                }
            }
            Entity::Dataset => {
                if !matches!(key.as_str(), "name" | "digest" | "context") {
                    return Err(invalid(format!(
                        "Invalid dataset key '{key}' specified. Valid keys are '{{'name', 'digest', 'context'}}'"
                    )));
                }
                if !matches!(
                    op,
                    Op::Eq | Op::Ne | Op::Like | Op::ILike | Op::In | Op::NotIn
                ) {
                    return Err(bad_op(op, STRING_ATTRIBUTE_OPS));
                }
                RunCondition::Dataset
            }
        };
        conditions.push(condition);
    }
    Ok(conditions)
}

/// What an `order_by` clause of a run search names.
#[derive(Debug, Clone, PartialEq)]
pub enum RunSortKey {
    /// A metric's latest value.
    Metric(String),
    /// A param's value.
    Param(String),
    /// A tag's value.
    Tag(String),
    /// An attribute.
    Attribute(RunAttribute),
}

/// One `order_by` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy<K> {
    /// What to order by.
    pub key: K,
    /// Ascending (the default) or descending.
    pub ascending: bool,
}

/// Splits `KEY [ASC|DESC]` into the key's identifier parts and the direction.
fn order_clause(clause: &str) -> MlflowResult<(Vec<String>, bool)> {
    let could_not = || {
        invalid(format!(
            "Invalid order_by clause '{clause}'. Could not be parsed."
        ))
    };
    let tokens = lex(clause).map_err(|_| could_not())?;
    let parts = match tokens.first() {
        Some(Token::Ident(parts)) => parts.clone(),
        Some(Token::Double(text)) => vec![text.clone()],
        _ => return Err(could_not()),
    };
    let ascending = match tokens.get(1) {
        None => true,
        Some(token) if token.is_word("ASC") => true,
        Some(token) if token.is_word("DESC") => false,
        Some(Token::Ident(_)) => {
            return Err(invalid(format!(
                "Invalid ordering key in order_by clause '{clause}'."
            )));
        }
        Some(_) => return Err(could_not()),
    };
    if tokens.len() > 2 {
        return Err(could_not());
    }
    Ok((parts, ascending))
}

/// Parses a run search's `order_by` list; a field named twice is refused.
pub fn parse_run_order_by(clauses: &[&str]) -> MlflowResult<Vec<OrderBy<RunSortKey>>> {
    let mut result: Vec<OrderBy<RunSortKey>> = Vec::with_capacity(clauses.len());
    for clause in clauses {
        let (parts, ascending) = order_clause(clause)?;
        let (entity_text, key) = split_identifier(&parts);
        let key = match run_entity(entity_text.as_deref())? {
            Entity::Metric => RunSortKey::Metric(key),
            Entity::Param => RunSortKey::Param(key),
            Entity::Tag => RunSortKey::Tag(key),
            Entity::Attribute => {
                RunSortKey::Attribute(RunAttribute::parse(&key).ok_or_else(|| {
                    invalid(format!(
                        "Invalid attribute key '{key}' specified. Valid keys are '{RUN_ATTRIBUTE_KEYS}'"
                    ))
                })?)
            }
            Entity::Dataset => {
                return Err(invalid(format!(
                    "Invalid order_by entity type 'dataset' in '{clause}'"
                )));
            }
        };
        if result.iter().any(|o| o.key == key) {
            return Err(invalid(format!(
                "`order_by` contains duplicate fields: {clauses:?}"
            )));
        }
        result.push(OrderBy { key, ascending });
    }
    Ok(result)
}

/// A value to sort on: its rank (0 a value, 1 NaN, 2 missing) and the value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SortValue<'a> {
    Number(f64),
    Text(&'a str),
    NaN,
    Missing,
}

impl SortValue<'_> {
    fn rank(&self) -> u8 {
        match self {
            SortValue::Number(_) | SortValue::Text(_) => 0,
            SortValue::NaN => 1,
            SortValue::Missing => 2,
        }
    }
}

fn sort_value<'a>(run: &'a Run, key: &RunSortKey) -> SortValue<'a> {
    match key {
        RunSortKey::Metric(name) => match run.metrics.iter().find(|m| m.key == *name) {
            Some(m) if m.value.is_nan() => SortValue::NaN,
            Some(m) => SortValue::Number(m.value),
            None => SortValue::Missing,
        },
        RunSortKey::Param(name) => {
            find(&run.params, name).map_or(SortValue::Missing, SortValue::Text)
        }
        RunSortKey::Tag(name) => find(&run.tags, name).map_or(SortValue::Missing, SortValue::Text),
        RunSortKey::Attribute(attribute) if attribute.is_numeric() => attribute
            .number(run)
            .map_or(SortValue::Missing, SortValue::Number),
        RunSortKey::Attribute(attribute) => SortValue::Text(attribute.text(run)),
    }
}

fn compare_values(a: &SortValue<'_>, b: &SortValue<'_>, ascending: bool) -> Ordering {
    let by_rank = a.rank().cmp(&b.rank());
    if by_rank != Ordering::Equal {
        return by_rank;
    }
    let ordering = match (a, b) {
        (SortValue::Number(x), SortValue::Number(y)) => x.total_cmp(y),
        (SortValue::Text(x), SortValue::Text(y)) => x.cmp(y),
        _ => Ordering::Equal,
    };
    if ascending {
        ordering
    } else {
        ordering.reverse()
    }
}

/// Keeps the runs that pass every condition, in search order.
pub fn filter_and_sort<'a>(
    runs: &'a [Run],
    conditions: &[RunCondition],
    order_by: &[OrderBy<RunSortKey>],
    keep: impl Fn(&Run) -> bool,
) -> Vec<&'a Run> {
    let selected: Vec<&Run> = runs
        .iter()
        .filter(|run| keep(run) && conditions.iter().all(|c| c.matches(run)))
        .collect();
    let orders_on_start = order_by
        .iter()
        .any(|o| o.key == RunSortKey::Attribute(RunAttribute::StartTime));
    // Precompute the sort values once per run.
    let mut keyed: Vec<(Vec<SortValue<'a>>, &'a Run)> = selected
        .into_iter()
        .map(|run| {
            (
                order_by.iter().map(|o| sort_value(run, &o.key)).collect(),
                run,
            )
        })
        .collect();
    keyed.sort_by(|(a_values, a), (b_values, b)| {
        for (index, order) in order_by.iter().enumerate() {
            let ordering = compare_values(&a_values[index], &b_values[index], order.ascending);
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        if !orders_on_start {
            let ordering = b.info.start_time.cmp(&a.info.start_time);
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        a.info.run_id.cmp(&b.info.run_id)
    });
    keyed.into_iter().map(|(_, run)| run).collect()
}

// ---------------------------------------------------------------------------------------------
// Experiments

/// An experiment attribute that searches and orderings may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExperimentAttribute {
    /// `name`.
    Name,
    /// `experiment_id`.
    ExperimentId,
    /// `creation_time`, milliseconds.
    CreationTime,
    /// `last_update_time`, milliseconds.
    LastUpdateTime,
}

const EXPERIMENT_ATTRIBUTE_KEYS: &str =
    "{'creation_time', 'experiment_id', 'last_update_time', 'name'}";

impl ExperimentAttribute {
    fn parse(key: &str) -> MlflowResult<ExperimentAttribute> {
        Ok(match key {
            "name" => ExperimentAttribute::Name,
            "experiment_id" => ExperimentAttribute::ExperimentId,
            "creation_time" => ExperimentAttribute::CreationTime,
            "last_update_time" => ExperimentAttribute::LastUpdateTime,
            _ => {
                return Err(invalid(format!(
                    "Invalid attribute key '{key}' specified. Valid keys are '{EXPERIMENT_ATTRIBUTE_KEYS}'"
                )));
            }
        })
    }
}

/// One checked condition of an experiment search.
#[derive(Debug, Clone, PartialEq)]
pub enum ExperimentCondition {
    /// The name.
    Name(TextTest),
    /// The id: `=`, `!=`, `IN`, `NOT IN`.
    Id {
        /// Ids compared.
        ids: Vec<i64>,
        /// True for `!=` and `NOT IN`.
        negated: bool,
    },
    /// A time attribute.
    Time {
        /// Which.
        attribute: ExperimentAttribute,
        /// Comparator.
        op: Op,
        /// Right side (milliseconds).
        value: i64,
    },
    /// A tag, or its presence.
    Tag {
        /// Tag key.
        key: String,
        /// The test, or None for IS NULL / IS NOT NULL.
        test: Option<TextTest>,
        /// For IS NULL / IS NOT NULL: whether it must be present.
        present: bool,
    },
}

fn parse_experiment_id(text: &str) -> MlflowResult<i64> {
    text.trim().parse::<i64>().map_err(|_| {
        invalid(format!(
            "Invalid experiment ID '{text}'. Experiment ID must be a valid integer."
        ))
    })
}

fn experiment_entity(comparison: &Comparison) -> MlflowResult<Entity> {
    match comparison.entity_text.as_deref() {
        None | Some("attribute") => Ok(Entity::Attribute),
        Some("tag") | Some("tags") => Ok(Entity::Tag),
        Some(other) => Err(invalid(format!(
            "Invalid entity type '{other}'. Valid entity types are ('attribute', 'tag', 'tags')"
        ))),
    }
}

/// Parses an experiment search's filter.
pub fn parse_experiment_filter(filter: &str) -> MlflowResult<Vec<ExperimentCondition>> {
    let mut conditions = Vec::new();
    for comparison in comparisons(filter)? {
        let entity = experiment_entity(&comparison)?;
        let op = comparison.op;
        let condition = match entity {
            Entity::Tag => match op {
                Op::IsNull | Op::IsNotNull => ExperimentCondition::Tag {
                    key: comparison.key.clone(),
                    test: None,
                    present: op == Op::IsNotNull,
                },
                Op::Eq | Op::Ne | Op::Like | Op::ILike => ExperimentCondition::Tag {
                    key: comparison.key.clone(),
                    test: Some(TextTest::new(
                        op,
                        Literal::Text(quoted_value(&comparison, Entity::Tag)?),
                    )),
                    present: true,
                },
                other => {
                    return Err(invalid(format!(
                        "Invalid comparator for tag: {}",
                        other.text()
                    )));
                }
            },
            _ => {
                let attribute = ExperimentAttribute::parse(&comparison.key)?;
                if matches!(op, Op::IsNull | Op::IsNotNull) {
                    return Err(invalid(format!(
                        "IS NULL / IS NOT NULL is only supported for tags, not for attribute '{}'",
                        comparison.key
                    )));
                }
                match attribute {
                    ExperimentAttribute::ExperimentId => {
                        let (ids, negated) = match (&comparison.value, op) {
                            (Literal::List(items), Op::In | Op::NotIn) => (
                                items
                                    .iter()
                                    .map(|i| parse_experiment_id(i))
                                    .collect::<MlflowResult<Vec<_>>>()?,
                                op == Op::NotIn,
                            ),
                            (_, Op::Eq | Op::Ne) => (
                                vec![parse_experiment_id(&quoted_value(
                                    &comparison,
                                    Entity::Attribute,
                                )?)?],
                                op == Op::Ne,
                            ),
                            (_, other) => {
                                return Err(invalid(format!(
                                    "Invalid comparator for experiment_id: {}",
                                    other.text()
                                )));
                            }
                        };
                        ExperimentCondition::Id { ids, negated }
                    }
                    ExperimentAttribute::Name => {
                        if !matches!(op, Op::Eq | Op::Ne | Op::Like | Op::ILike) {
                            return Err(invalid(format!(
                                "Invalid comparator for string attribute: {}",
                                op.text()
                            )));
                        }
                        if matches!(comparison.value, Literal::List(_)) {
                            return Err(invalid(
                                "Only ['experiment_id'] attributes support comparison with a list of quoted string values.",
                            ));
                        }
                        ExperimentCondition::Name(TextTest::new(
                            op,
                            Literal::Text(quoted_value(&comparison, Entity::Attribute)?),
                        ))
                    }
                    time => {
                        if !op.is_numeric() {
                            return Err(invalid(format!(
                                "Invalid comparator for numeric attribute: {}",
                                op.text()
                            )));
                        }
                        let value = match &comparison.value {
                            Literal::Number(text) => text.parse::<i64>().map_err(|_| {
                                invalid(format!(
                                    "Invalid value for numeric attribute '{}': '{text}'",
                                    comparison.key
                                ))
                            })?,
                            _ => {
                                return Err(invalid(format!(
                                    "Expected numeric value type for numeric attribute: {}. Found {}",
                                    comparison.key, comparison.value_text
                                )));
                            }
                        };
                        ExperimentCondition::Time {
                            attribute: time,
                            op,
                            value,
                        }
                    }
                }
            }
        };
        conditions.push(condition);
    }
    Ok(conditions)
}

impl ExperimentCondition {
    /// Whether `experiment` passes.
    pub fn matches(&self, experiment: &TrackingExperiment) -> bool {
        match self {
            ExperimentCondition::Name(test) => test.matches(&experiment.name),
            ExperimentCondition::Id { ids, negated } => ids.contains(&experiment.id) != *negated,
            ExperimentCondition::Time {
                attribute,
                op,
                value,
            } => {
                let lhs = match attribute {
                    ExperimentAttribute::CreationTime => millis(experiment.created_at),
                    _ => millis(experiment.updated_at),
                };
                compare(*op, lhs.cmp(value))
            }
            ExperimentCondition::Tag { key, test, present } => {
                keyed(find(&experiment.tags, key), test.as_ref(), *present)
            }
        }
    }
}

/// Parses an experiment search's `order_by` list (attributes only); without one, newest first.
pub fn parse_experiment_order_by(
    clauses: &[&str],
) -> MlflowResult<Vec<OrderBy<ExperimentAttribute>>> {
    let defaults = ["creation_time DESC", "experiment_id ASC"];
    let clauses: &[&str] = if clauses.is_empty() {
        &defaults
    } else {
        clauses
    };
    let mut result = Vec::with_capacity(clauses.len() + 1);
    for clause in clauses {
        let (parts, ascending) = order_clause(clause)?;
        let (entity_text, key) = split_identifier(&parts);
        match entity_text.as_deref() {
            None | Some("attribute") => {}
            Some("tag") | Some("tags") => {
                return Err(invalid("Invalid order_by entity: tag"));
            }
            Some(other) => {
                return Err(invalid(format!(
                    "Invalid entity type '{other}'. Valid entity types are ('attribute', 'tag', 'tags')"
                )));
            }
        }
        result.push(OrderBy {
            key: ExperimentAttribute::parse(&key)?,
            ascending,
        });
    }
    if !result
        .iter()
        .any(|o| o.key == ExperimentAttribute::ExperimentId)
    {
        result.push(OrderBy {
            key: ExperimentAttribute::ExperimentId,
            ascending: false,
        });
    }
    Ok(result)
}

/// Orders experiments by `order_by`.
pub fn sort_experiments(
    experiments: &mut [TrackingExperiment],
    order_by: &[OrderBy<ExperimentAttribute>],
) {
    experiments.sort_by(|a, b| {
        for order in order_by {
            let ordering = match order.key {
                ExperimentAttribute::Name => a.name.cmp(&b.name),
                ExperimentAttribute::ExperimentId => a.id.cmp(&b.id),
                ExperimentAttribute::CreationTime => a.created_at.cmp(&b.created_at),
                ExperimentAttribute::LastUpdateTime => a.updated_at.cmp(&b.updated_at),
            };
            let ordering = if order.ascending {
                ordering
            } else {
                ordering.reverse()
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    });
}

// ---------------------------------------------------------------------------------------------
// Page tokens

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(BASE64[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !clean.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        let mut padding = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let value = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' | b'-' => 62,
                b'/' | b'_' => 63,
                b'=' if i >= 2 => {
                    padding += 1;
                    0
                }
                _ => return None,
            };
            if padding > 0 && c != b'=' {
                return None;
            }
            n = (n << 6) | u32::from(value);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - padding]);
    }
    Some(out)
}

/// The page token for results from `offset` on: base64 of `{"offset": N}`, as MLflow makes it.
pub fn page_token(offset: usize) -> String {
    base64_encode(format!("{{\"offset\": {offset}}}").as_bytes())
}

/// The offset a page token stands for; no token is offset 0.
pub fn parse_page_token(token: Option<&str>) -> MlflowResult<usize> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let decoded = base64_decode(token)
        .ok_or_else(|| invalid("Invalid page token, could not base64-decode"))?;
    let parsed: serde_json::Value = serde_json::from_slice(&decoded).map_err(|_| {
        invalid(format!(
            "Invalid page token, decoded value={}",
            String::from_utf8_lossy(&decoded)
        ))
    })?;
    let offset = parsed.get("offset").filter(|v| match v {
        serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Null => false,
        _ => true,
    });
    let Some(offset) = offset else {
        return Err(invalid(format!(
            "Invalid page token, parsed value={parsed}"
        )));
    };
    let number = match offset {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    number
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid(format!("Invalid page token, not stringable {offset}")))
}

/// One page of `items` from `offset`, and the token of the next page if there are more.
pub fn paginate<T>(items: &[T], offset: usize, max_results: usize) -> (&[T], Option<String>) {
    let start = offset.min(items.len());
    let end = start.saturating_add(max_results).min(items.len());
    let next = (end < items.len()).then(|| page_token(end));
    (&items[start..end], next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tracking::{Lifecycle, MetricPoint, RunInfo, RunStatus};

    fn run(id: &str, start: i64, metrics: &[(&str, f64)], params: &[(&str, &str)]) -> Run {
        Run {
            info: RunInfo {
                run_id: id.to_string(),
                experiment_id: 0,
                name: format!("name-{id}"),
                user_id: "me".into(),
                status: RunStatus::Finished,
                lifecycle: Lifecycle::Active,
                start_time: Some(start * 1_000_000),
                end_time: None,
                artifact_uri: format!("mlflow-artifacts:/0/{id}/artifacts"),
                trial_id: None,
            },
            params: params.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect(),
            tags: vec![KeyValue::new("mlflow.runName", format!("name-{id}"))],
            metrics: metrics
                .iter()
                .map(|(k, v)| MetricPoint {
                    key: k.to_string(),
                    value: *v,
                    timestamp: 0,
                    step: 0,
                })
                .collect(),
        }
    }

    fn ids(runs: &[&Run]) -> Vec<String> {
        runs.iter().map(|r| r.info.run_id.clone()).collect()
    }

    fn search(runs: &[Run], filter: &str, order: &[&str]) -> Vec<String> {
        let conditions = parse_run_filter(filter).expect("filter parses");
        let order = parse_run_order_by(order).expect("order parses");
        ids(&filter_and_sort(runs, &conditions, &order, |_| true))
    }

    fn runs() -> Vec<Run> {
        vec![
            run(
                "a",
                1,
                &[("loss", 0.5), ("acc", 0.9)],
                &[("opt", "adam"), ("lr", "0.1")],
            ),
            run("b", 2, &[("loss", 0.2)], &[("opt", "sgd"), ("lr", "0.01")]),
            run("c", 3, &[("loss", f64::NAN)], &[("opt", "Adam")]),
            run("d", 4, &[], &[]),
        ]
    }

    #[test]
    fn filters_parse_like_mlflow() {
        let conditions =
            parse_run_filter("metrics.acc > 0.5 and params.lr = '0.1'").expect("parses");
        assert_eq!(conditions.len(), 2);
        assert!(parse_run_filter("").expect("empty").is_empty());
        for ok in [
            "attributes.run_id IN ('a','b')",
            "params.`a b` = 'x'",
            "metrics.\"a-b\" >= 1e-3",
            "tags.t LIKE '%x'",
            "status = 'FINISHED'",
            "run_name != 'x'",
            "metrics.a > -1",
            "created > 5",
            "attribute.start_time >= 1.5",
            "params.p IS NULL",
            "params.p is not null",
            "params.lr = \"0.1\"",
            "`metrics`.loss < 1",
            "metric.loss<1 AND param.opt='adam'",
            "run_id NOT IN ('a')",
            "datasets.name = 'x'",
            "metrics.a.b = 2",
            "params.lr = '0.1' AND",
            "AND params.lr = '0.1' and and metrics.a > 1",
            "params.'my key' = 'a'",
        ] {
            assert!(
                parse_run_filter(ok).is_ok(),
                "{ok}: {:?}",
                parse_run_filter(ok)
            );
        }
    }

    #[test]
    fn bad_filters_are_invalid_parameter_values() {
        for (bad, fragment) in [
            (
                "params.p = 1",
                "Expected a quoted string value for parameter",
            ),
            (
                "metrics.x = 1 OR metrics.y = 2",
                "Invalid clause(s) in filter string: 'OR'",
            ),
            (
                "metrics.a < 'x'",
                "Expected numeric value type for metric. Found 'x'",
            ),
            ("metrics.a LIKE '1'", "Invalid comparator 'LIKE'"),
            ("params.a > 'x'", "Invalid comparator '>'"),
            ("loss > 1", "Invalid attribute key 'loss'"),
            ("foo.loss > 1", "Invalid entity type 'foo'"),
            ("status IN ('x')", "Only ['run_id'] attributes"),
            (
                "start_time = 'x'",
                "Expected numeric value type for numeric attribute",
            ),
            ("metrics.a > ", "Expected 3 tokens"),
            ("metrics.a", "Expected 3 tokens"),
            ("params.a = 'x", "unterminated"),
            ("params.a = x", "not quoted"),
            ("run_id IN ()", "empty list"),
            ("metrics.a IS NULL", "Invalid comparator 'IS NULL'"),
            ("status IS NULL", "only supported for tags and params"),
            ("(metrics.a > 1)", "Invalid clause"),
            ("metrics.a ~ 1", "unexpected character"),
        ] {
            let error = parse_run_filter(bad).expect_err(bad);
            assert_eq!(
                error.code,
                super::super::error::ErrorCode::InvalidParameterValue
            );
            assert!(error.message.contains(fragment), "{bad}: {}", error.message);
        }
    }

    #[test]
    fn long_filters_and_patterns_are_refused() {
        let pattern = format!("params.a LIKE '{}'", "%a".repeat(600));
        let error = parse_run_filter(&pattern).expect_err("long pattern");
        assert!(
            error.message.contains("at most 1000 characters"),
            "{}",
            error.message
        );
        let long = format!("params.a = '{}'", "x".repeat(20_000));
        let error = parse_run_filter(&long).expect_err("long filter");
        assert!(error.message.contains("at most 16384"), "{}", error.message);
        assert!(parse_experiment_filter(&long).is_err());
    }

    #[test]
    fn filters_select_runs() {
        let runs = runs();
        assert_eq!(search(&runs, "metrics.loss < 0.3", &[]), ["b"]);
        assert_eq!(search(&runs, "metrics.loss != 0.5", &[]), ["c", "b"]);
        assert_eq!(search(&runs, "params.opt = 'adam'", &[]), ["a"]);
        assert_eq!(search(&runs, "params.opt ILIKE 'adam'", &[]), ["c", "a"]);
        assert_eq!(search(&runs, "params.opt LIKE 'a%'", &[]), ["a"]);
        assert_eq!(search(&runs, "params.opt LIKE '_gd'", &[]), ["b"]);
        assert_eq!(search(&runs, "params.lr IS NULL", &[]), ["d", "c"]);
        assert_eq!(search(&runs, "params.lr IS NOT NULL", &[]), ["b", "a"]);
        assert_eq!(search(&runs, "params.lr != '0.1'", &[]), ["b"]);
        assert_eq!(
            search(&runs, "attributes.run_id IN ('a', 'd')", &[]),
            ["d", "a"]
        );
        assert_eq!(search(&runs, "run_id NOT IN ('a', 'd')", &[]), ["c", "b"]);
        assert_eq!(
            search(&runs, "attributes.start_time >= 3000", &[]),
            ["d", "c"]
        );
        assert_eq!(search(&runs, "end_time > 0", &[]), Vec::<String>::new());
        assert_eq!(
            search(&runs, "status = 'FINISHED' and metrics.acc > 0", &[]),
            ["a"]
        );
        assert_eq!(
            search(&runs, "tags.`mlflow.runName` = 'name-b'", &[]),
            ["b"]
        );
        assert_eq!(search(&runs, "run_name LIKE '%-c'", &[]), ["c"]);
        assert_eq!(
            search(&runs, "datasets.name = 'x'", &[]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn order_by_puts_nan_then_missing_last_both_ways() {
        let runs = runs();
        assert_eq!(search(&runs, "", &[]), ["d", "c", "b", "a"]);
        assert_eq!(search(&runs, "", &["metrics.loss"]), ["b", "a", "c", "d"]);
        assert_eq!(
            search(&runs, "", &["metrics.loss DESC"]),
            ["a", "b", "c", "d"]
        );
        assert_eq!(search(&runs, "", &["params.opt asc"]), ["c", "a", "b", "d"]);
        assert_eq!(
            search(&runs, "", &["attributes.start_time ASC"]),
            ["a", "b", "c", "d"]
        );
        assert_eq!(search(&runs, "", &["run_name DESC"]), ["d", "c", "b", "a"]);
        assert_eq!(
            search(&runs, "", &["params.lr", "metrics.loss DESC"]),
            ["b", "a", "c", "d"]
        );
        assert_eq!(
            search(&runs, "", &["`metrics`.`loss` ASC"]),
            ["b", "a", "c", "d"]
        );
    }

    #[test]
    fn bad_order_by_is_refused() {
        for (bad, fragment) in [
            ("metrics.loss UP", "Invalid ordering key"),
            ("metrics.loss ASC DESC", "Could not be parsed"),
            ("", "Could not be parsed"),
            ("loss", "Invalid attribute key 'loss'"),
            ("bad.loss", "Invalid entity type 'bad'"),
        ] {
            let error = parse_run_order_by(&[bad]).expect_err(bad);
            assert!(error.message.contains(fragment), "{bad}: {}", error.message);
        }
        let error = parse_run_order_by(&["metrics.a", "metrics.a DESC"]).expect_err("dup");
        assert!(error.message.contains("duplicate"));
    }

    #[test]
    fn like_patterns() {
        let cases = [
            ("abc", "abc", true),
            ("a%", "abc", true),
            ("%c", "abc", true),
            ("%b%", "abc", true),
            ("a_c", "abc", true),
            ("a_c", "abbc", false),
            ("a%c", "abbbc", true),
            ("a%c", "abbbd", false),
            ("%", "", true),
            ("_", "", false),
            ("%a%a%", "banana", true),
            ("A%", "abc", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                Pattern::new(pattern, false).matches(text),
                expected,
                "{pattern} {text}"
            );
        }
        assert!(Pattern::new("A%", true).matches("abc"));
    }

    #[test]
    fn page_tokens_round_trip_and_match_python() {
        // base64.b64encode(json.dumps({"offset": 1000}).encode())
        assert_eq!(page_token(1000), "eyJvZmZzZXQiOiAxMDAwfQ==");
        assert_eq!(page_token(5), "eyJvZmZzZXQiOiA1fQ==");
        for offset in [1, 2, 3, 10, 999, 123_456] {
            assert_eq!(
                parse_page_token(Some(&page_token(offset))).expect("parses"),
                offset
            );
        }
        assert_eq!(parse_page_token(None).expect("none"), 0);
        assert_eq!(parse_page_token(Some("")).expect("empty"), 0);
        for bad in [
            "!!!",
            "abc",
            "bm90IGpzb24=",
            "eyJvZmZzZXQiOiAwfQ==",
            "eyJ4IjogMX0=",
        ] {
            let error = parse_page_token(Some(bad)).expect_err(bad);
            assert!(
                error.message.starts_with("Invalid page token"),
                "{bad}: {}",
                error.message
            );
        }
        let items: Vec<u32> = (0..5).collect();
        let (page, next) = paginate(&items, 0, 2);
        assert_eq!(page, [0, 1]);
        let next = parse_page_token(next.as_deref()).expect("token");
        let (page, next) = paginate(&items, next, 2);
        assert_eq!(page, [2, 3]);
        let (page, last) = paginate(&items, parse_page_token(next.as_deref()).expect("t"), 2);
        assert_eq!(page, [4]);
        assert!(last.is_none());
        let (page, none) = paginate(&items, 10, 2);
        assert!(page.is_empty() && none.is_none());
    }

    fn experiment(id: i64, name: &str, created: i64, tags: &[(&str, &str)]) -> TrackingExperiment {
        TrackingExperiment {
            id,
            name: name.into(),
            artifact_location: String::new(),
            lifecycle: Lifecycle::Active,
            created_at: created * 1_000_000,
            updated_at: created * 1_000_000,
            tags: tags.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect(),
            experiment_id: None,
        }
    }

    #[test]
    fn experiment_search() {
        let mut experiments = vec![
            experiment(0, "Default", 1, &[]),
            experiment(1, "alpha", 2, &[("team", "x")]),
            experiment(2, "beta", 2, &[("team", "y")]),
        ];
        let pick = |filter: &str, experiments: &[TrackingExperiment]| -> Vec<i64> {
            let conditions = parse_experiment_filter(filter).expect("parses");
            experiments
                .iter()
                .filter(|e| conditions.iter().all(|c| c.matches(e)))
                .map(|e| e.id)
                .collect()
        };
        assert_eq!(pick("name = 'alpha'", &experiments), [1]);
        assert_eq!(pick("name LIKE '%a'", &experiments), [1, 2]);
        assert_eq!(pick("tags.team = 'y'", &experiments), [2]);
        assert_eq!(pick("tags.team IS NULL", &experiments), [0]);
        assert_eq!(pick("experiment_id IN ('0', '2')", &experiments), [0, 2]);
        assert_eq!(pick("experiment_id != '0'", &experiments), [1, 2]);
        assert_eq!(pick("creation_time > 1000", &experiments), [1, 2]);
        assert!(parse_experiment_filter("params.a = 'x'").is_err());
        assert!(parse_experiment_filter("name IN ('a')").is_err());
        assert!(parse_experiment_filter("experiment_id = 'x'").is_err());
        assert!(parse_experiment_filter("creation_time > 1.5").is_err());
        let order = parse_experiment_order_by(&[]).expect("default");
        sort_experiments(&mut experiments, &order);
        assert_eq!(
            experiments.iter().map(|e| e.id).collect::<Vec<_>>(),
            [1, 2, 0]
        );
        let order = parse_experiment_order_by(&["name DESC"]).expect("name");
        sort_experiments(&mut experiments, &order);
        // Byte order, as SQLite compares: "Default" sorts before "alpha".
        assert_eq!(
            experiments.iter().map(|e| e.id).collect::<Vec<_>>(),
            [2, 1, 0]
        );
        assert!(parse_experiment_order_by(&["tags.team"]).is_err());
    }
}
