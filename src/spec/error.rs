//! Spec errors: what was wrong, where (field path, line, column), and a hint.
//!
//! Validation never stops at the first problem: every error found in a document is collected
//! into one [`SpecErrors`], so `tuneflow validate` can report them all at once. Each error names
//! the field by its path in the document (`spec.parameters[2].feasibleSpace.max`) because that
//! is how users think about their file, and carries the line and column of the offending node
//! when the document came from text.

use std::fmt;

use serde::Serialize;

/// One problem found in an experiment document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct SpecError {
    /// The field's path, such as `spec.parameters[2].feasibleSpace.max`; empty when the error
    /// concerns the whole document (malformed YAML, several documents).
    pub path: String,
    /// What is wrong, in one sentence without a trailing period.
    pub message: String,
    /// What to do about it, when there is something to suggest.
    pub hint: Option<String>,
    /// 1-based line of the node the error is about, when known.
    pub line: Option<usize>,
    /// 1-based column of the node the error is about, when known.
    pub column: Option<usize>,
}

impl SpecError {
    /// An error about the field at `path`, without a location yet.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            path: path.into(),
            message: message.into(),
            hint: None,
            line: None,
            column: None,
        }
    }

    /// Adds a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the line and column (1-based) the error points at.
    #[must_use]
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    /// Writes `SOURCE:LINE:COL: error: PATH: MESSAGE` and, when there is one, an indented
    /// `hint:` line. Used by [`SpecErrors`]'s `Display`.
    fn write_with_source(&self, source: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(source)?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, ":{line}:{column}")?,
            (Some(line), None) => write!(f, ":{line}")?,
            _ => {}
        }
        write!(f, ": error: {self}")?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl fmt::Display for SpecError {
    /// `PATH: MESSAGE`, or just the message when the error has no path. The hint and the
    /// location are not part of it; [`SpecErrors`] prints the full form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one document, with the name of its source (a file path, `<stdin>`,
/// `request body`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecErrors {
    /// Where the document came from, as printed before each error.
    pub source: String,
    /// The errors, in document order as far as possible. Never empty.
    pub errors: Vec<SpecError>,
}

impl SpecErrors {
    /// A single error about the document from `source`.
    pub fn single(source: impl Into<String>, error: SpecError) -> Self {
        SpecErrors {
            source: source.into(),
            errors: vec![error],
        }
    }
}

// Written by hand: thiserror would take the `source` field for the error's cause.
impl std::error::Error for SpecErrors {}

impl fmt::Display for SpecErrors {
    /// One entry per error, separated by newlines:
    /// `FILE:LINE:COL: error: PATH: MESSAGE` followed by `  hint: ...` when there is a hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.errors.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            error.write_with_source(&self.source, f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_prints_location_path_and_hint() {
        let errors = SpecErrors {
            source: "exp.yaml".to_string(),
            errors: vec![
                SpecError::new(
                    "spec.parameters[2].feasibleSpace.max",
                    "must be greater than min (0.05)",
                )
                .at(14, 14),
                SpecError::new(
                    "spec.paralelTrialCount",
                    "unknown field \"paralelTrialCount\"",
                )
                .with_hint("did you mean \"parallelTrialCount\"?")
                .at(3, 3),
                SpecError::new(
                    "",
                    "exp.yaml holds 2 documents; put one experiment per file",
                ),
            ],
        };
        assert_eq!(
            errors.to_string(),
            "exp.yaml:14:14: error: spec.parameters[2].feasibleSpace.max: must be greater than min (0.05)\n\
             exp.yaml:3:3: error: spec.paralelTrialCount: unknown field \"paralelTrialCount\"\n  \
             hint: did you mean \"parallelTrialCount\"?\n\
             exp.yaml: error: exp.yaml holds 2 documents; put one experiment per file"
        );
    }
}
