//! `successCondition` and `failureCondition`: when a trial's Kubernetes resource counts as
//! succeeded or failed.
//!
//! Katib writes them as GJSON paths over the resource, and every one of its examples (and its
//! defaults) has one shape: "the resource has a condition of type T whose status is S",
//! `status.conditions.#(type=="T")#|#(status=="S")#`. tuneflow accepts that shape (spaces
//! around `==` allowed); any other path is refused at validation with the form it accepts,
//! rather than being misread when trials end.

use std::fmt;

const PREFIX: &str = "status.conditions.#(";
const MIDDLE: &str = ")#|#(";
const SUFFIX: &str = ")#";

/// A condition on a resource's `status.conditions`: one entry has `type` and `status` equal
/// to these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceCondition {
    /// The condition's `type` (e.g. `Complete`).
    pub type_: String,
    /// The condition's `status` (e.g. `True`).
    pub status: String,
}

/// The form [`ResourceCondition::parse`] accepts, for error messages.
pub const CONDITION_FORM: &str = "status.conditions.#(type==\"TYPE\")#|#(status==\"STATUS\")#";

impl ResourceCondition {
    /// Katib's default success condition: `Complete` is `True`.
    pub fn default_success() -> ResourceCondition {
        ResourceCondition {
            type_: "Complete".to_string(),
            status: "True".to_string(),
        }
    }

    /// Katib's default failure condition: `Failed` is `True`.
    pub fn default_failure() -> ResourceCondition {
        ResourceCondition {
            type_: "Failed".to_string(),
            status: "True".to_string(),
        }
    }

    /// Reads a Katib condition path.
    ///
    /// # Errors
    ///
    /// A sentence naming the supported form when `text` has another shape.
    pub fn parse(text: &str) -> Result<ResourceCondition, String> {
        let refuse = || {
            format!(
                "unsupported condition \"{text}\": tuneflow reads conditions of the form \
                 {CONDITION_FORM}"
            )
        };
        let inner = text
            .trim()
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix(SUFFIX))
            .ok_or_else(refuse)?;
        let (left, right) = inner.split_once(MIDDLE).ok_or_else(refuse)?;
        let type_ = equality(left, "type").ok_or_else(refuse)?;
        let status = equality(right, "status").ok_or_else(refuse)?;
        Ok(ResourceCondition { type_, status })
    }

    /// Whether `conditions` (the resource's `status.conditions`, as `(type, status)` pairs)
    /// hold this condition.
    pub fn holds<'a>(&self, mut conditions: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        conditions.any(|(type_, status)| type_ == self.type_ && status == self.status)
    }
}

impl fmt::Display for ResourceCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "status.conditions.#(type==\"{}\")#|#(status==\"{}\")#",
            self.type_, self.status
        )
    }
}

/// The quoted value of `FIELD=="VALUE"` (spaces allowed around `==`).
fn equality(text: &str, field: &str) -> Option<String> {
    let value = text
        .trim()
        .strip_prefix(field)?
        .trim_start()
        .strip_prefix("==")?;
    let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
    (!value.is_empty() && !value.contains('"')).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn katib_defaults_read_back() {
        let success = ResourceCondition::parse(
            r#"status.conditions.#(type=="Complete")#|#(status=="True")#"#,
        );
        assert_eq!(success, Ok(ResourceCondition::default_success()));
        let failure = ResourceCondition::parse(
            r#"status.conditions.#(type == "Failed")#|#(status == "True")#"#,
        );
        assert_eq!(failure, Ok(ResourceCondition::default_failure()));
        assert_eq!(
            ResourceCondition::parse(&ResourceCondition::default_failure().to_string()),
            Ok(ResourceCondition::default_failure())
        );
    }

    #[test]
    fn other_shapes_are_refused_with_the_form() {
        for text in [
            "status.succeeded",
            r#"status.conditions.#(type=="Complete")#"#,
            r#"status.conditions.#(kind=="Complete")#|#(status=="True")#"#,
            r#"status.conditions.#(type=="")#|#(status=="True")#"#,
        ] {
            let error = ResourceCondition::parse(text).expect_err(text);
            assert!(error.contains(CONDITION_FORM), "{error}");
        }
    }

    #[test]
    fn holds_checks_type_and_status_together() {
        let success = ResourceCondition::default_success();
        assert!(success.holds([("Failed", "False"), ("Complete", "True")].into_iter()));
        assert!(!success.holds([("Complete", "False")].into_iter()));
        assert!(!success.holds(std::iter::empty()));
    }
}
