//! The one rule for metric names (and MLflow's param and tag keys), wherever they arrive: the
//! REST API's observations and completions, MLflow's logging routes, and what collectors
//! record.
//!
//! It is MLflow's rule (`mlflow/utils/validation.py`), since every metric is also an MLflow
//! metric of the trial's run and a name MLflow refuses would break the tracking view: letters,
//! digits, `_`, `-`, `.`, ` `, `:` and `/`, at most [`MAX_NAME_LENGTH`] characters, and no
//! name that changes when treated as a path (no `..`, no leading `/`, no `//`, no `./`).
//! NUL, newlines and `../` are therefore refused everywhere.

/// The longest name, in characters.
pub const MAX_NAME_LENGTH: usize = 250;

/// What is wrong with a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but whitespace, or nothing.
    #[error("a name must not be empty")]
    Empty,
    /// Longer than [`MAX_NAME_LENGTH`] characters.
    #[error("a name has at most {MAX_NAME_LENGTH} characters (this one has {0})")]
    TooLong(usize),
    /// A character outside the allowed set.
    #[error(
        "{0:?} is not allowed in a name: names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)"
    )]
    Character(char),
    /// The name would resolve to another one as a path.
    #[error("a name must not change when read as a path; this one reads as `{0}`")]
    Path(String),
}

/// True for the characters names may hold.
pub fn allowed_character(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':')
}

/// Python's `posixpath.normpath`, which MLflow applies to names.
pub fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let leading = path.len() - path.trim_start_matches('/').len();
    let prefix = match leading {
        0 => "",
        2 => "//",
        _ => "/",
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if prefix.is_empty() {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = format!("{prefix}{}", parts.join("/"));
    if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// True when a name would resolve to another name (or outside) when treated as a path.
pub fn path_not_unique(name: &str) -> bool {
    let norm = normpath(name);
    norm != name || norm == "." || norm.starts_with("..") || norm.starts_with('/')
}

/// Checks a metric name against the rule.
///
/// # Errors
///
/// The first thing wrong with it.
pub fn check_metric_name(name: &str) -> Result<(), NameError> {
    if name.trim().is_empty() {
        return Err(NameError::Empty);
    }
    let length = name.chars().count();
    if length > MAX_NAME_LENGTH {
        return Err(NameError::TooLong(length));
    }
    if let Some(c) = name.chars().find(|c| !allowed_character(*c)) {
        return Err(NameError::Character(c));
    }
    if path_not_unique(name) {
        return Err(NameError::Path(normpath(name)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_mlflow() {
        for good in ["loss", "val/acc", "top-1 acc", "epoch:time", "a.b_c"] {
            assert_eq!(check_metric_name(good), Ok(()), "{good}");
        }
        assert_eq!(check_metric_name(" "), Err(NameError::Empty));
        assert_eq!(check_metric_name("a\0b"), Err(NameError::Character('\0')));
        assert_eq!(check_metric_name("a\nb"), Err(NameError::Character('\n')));
        assert_eq!(
            check_metric_name("../etc"),
            Err(NameError::Path("../etc".to_string()))
        );
        assert_eq!(
            check_metric_name("a//b"),
            Err(NameError::Path("a/b".to_string()))
        );
        assert_eq!(
            check_metric_name("/abs"),
            Err(NameError::Path("/abs".to_string()))
        );
        assert_eq!(
            check_metric_name(&"x".repeat(251)),
            Err(NameError::TooLong(251))
        );
        assert_eq!(normpath("a/./b/../c"), "a/c");
    }
}
