//! The search space: the parameters an experiment tunes and the values each may take.
//!
//! These types are already validated: the spec module checks the user's document (min < max,
//! non-empty lists, positive steps, positive bounds for log scales) and only then builds a
//! [`SearchSpace`]. Algorithms may rely on those invariants.

use serde::{Deserialize, Serialize};

/// How a numeric parameter's values are distributed when sampled at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Distribution {
    /// Evenly over `[min, max]`.
    #[default]
    Uniform,
    /// Evenly over `[ln min, ln max]`; needs `min > 0`.
    LogUniform,
    /// Normal with mean `(min + max) / 2` and standard deviation `(max - min) / 6`, truncated
    /// to `[min, max]` (Katib's convention, taken from hyperopt).
    Normal,
    /// Log-normal: normal in log space over `[ln min, ln max]`, truncated; needs `min > 0`.
    LogNormal,
}

/// The values one parameter may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Domain {
    /// A real number in `[min, max]`, optionally on the grid `min + k * step`.
    Double {
        /// Lower bound (inclusive).
        min: f64,
        /// Upper bound (inclusive).
        max: f64,
        /// Grid step, if the values are quantised.
        step: Option<f64>,
        /// How values are sampled.
        distribution: Distribution,
    },
    /// An integer in `[min, max]`, optionally on the grid `min + k * step`.
    Int {
        /// Lower bound (inclusive).
        min: i64,
        /// Upper bound (inclusive).
        max: i64,
        /// Grid step (default 1).
        step: Option<i64>,
        /// How values are sampled.
        distribution: Distribution,
    },
    /// One of a list of numbers.
    Discrete {
        /// The allowed values, in the order given.
        values: Vec<f64>,
    },
    /// One of a list of strings.
    Categorical {
        /// The allowed values, in the order given.
        choices: Vec<String>,
    },
}

/// One tuned parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    /// The parameter's name, unique within the space.
    pub name: String,
    /// Its domain.
    pub domain: Domain,
}

/// The parameters of an experiment, in the order the user gave them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SearchSpace {
    /// The parameters.
    pub parameters: Vec<Parameter>,
}

/// The value one parameter takes in one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParameterValue {
    /// An integer (`int` parameters).
    Int(i64),
    /// A real number (`double` and `discrete` parameters).
    Double(f64),
    /// A string (`categorical` parameters).
    Categorical(String),
}

impl std::fmt::Display for ParameterValue {
    /// Formats the value as it is substituted into a trial's command: integers without a
    /// fraction, reals in their shortest exact form, strings as they are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParameterValue::Int(v) => write!(f, "{v}"),
            ParameterValue::Double(v) => write!(f, "{v}"),
            ParameterValue::Categorical(v) => f.write_str(v),
        }
    }
}

/// One value per parameter, in the order of [`SearchSpace::parameters`].
pub type Assignment = Vec<ParameterValue>;

/// Checks the invariants the samplers rely on, which the spec module establishes for documents
/// it validates: finite bounds with `min <= max`, positive steps, positive bounds on log scales,
/// non-empty lists and at least one parameter. Algorithms run this in their constructors as a
/// second line of defence, so that a space built by hand (a custom loop, a test) gets an error
/// rather than out-of-domain values. Returns every problem found.
pub(crate) fn check_space(space: &SearchSpace) -> Vec<crate::AlgorithmError> {
    if space.parameters.is_empty() {
        return vec![crate::AlgorithmError::Space {
            parameter: None,
            message: "the search space has no parameters".to_string(),
        }];
    }
    let mut errors = Vec::new();
    for (index, parameter) in space.parameters.iter().enumerate() {
        if let Err(problem) = check_domain(&parameter.domain) {
            errors.push(crate::AlgorithmError::Space {
                parameter: Some(index),
                message: format!("parameter `{}`: {problem}", parameter.name),
            });
        }
    }
    errors
}

/// The first broken invariant of `domain`, described in the Experiment's field names.
fn check_domain(domain: &Domain) -> Result<(), String> {
    let is_log = |distribution: &Distribution| {
        matches!(
            distribution,
            Distribution::LogUniform | Distribution::LogNormal
        )
    };
    match domain {
        Domain::Double {
            min,
            max,
            step,
            distribution,
        } => {
            if !min.is_finite() || !max.is_finite() {
                return Err(format!(
                    "feasibleSpace.min and feasibleSpace.max must be finite numbers, \
                     got {min} and {max}"
                ));
            }
            if min > max {
                return Err(format!(
                    "feasibleSpace.min ({min}) must not be greater than feasibleSpace.max ({max})"
                ));
            }
            if let Some(step) = step
                && !(step.is_finite() && *step > 0.0)
            {
                return Err(format!(
                    "feasibleSpace.step must be a positive number, got {step}"
                ));
            }
            if is_log(distribution) && *min <= 0.0 {
                return Err(format!(
                    "feasibleSpace.min must be greater than 0 for the {} distribution, got {min}",
                    distribution_name(*distribution)
                ));
            }
        }
        Domain::Int {
            min,
            max,
            step,
            distribution,
        } => {
            if min > max {
                return Err(format!(
                    "feasibleSpace.min ({min}) must not be greater than feasibleSpace.max ({max})"
                ));
            }
            if let Some(step) = step
                && *step < 1
            {
                return Err(format!(
                    "feasibleSpace.step must be a positive integer, got {step}"
                ));
            }
            if is_log(distribution) && *min < 1 {
                return Err(format!(
                    "feasibleSpace.min must be at least 1 for the {} distribution, got {min}",
                    distribution_name(*distribution)
                ));
            }
        }
        Domain::Discrete { values } => {
            if values.is_empty() {
                return Err("feasibleSpace.list must not be empty".to_string());
            }
            if let Some(value) = values.iter().find(|value| !value.is_finite()) {
                return Err(format!(
                    "feasibleSpace.list must hold finite numbers, got {value}"
                ));
            }
        }
        Domain::Categorical { choices } => {
            if choices.is_empty() {
                return Err("feasibleSpace.list must not be empty".to_string());
            }
        }
    }
    Ok(())
}

/// The distribution's name as written in an Experiment.
fn distribution_name(distribution: Distribution) -> &'static str {
    match distribution {
        Distribution::Uniform => "uniform",
        Distribution::LogUniform => "logUniform",
        Distribution::Normal => "normal",
        Distribution::LogNormal => "logNormal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlgorithmError;
    use crate::test_support::space;

    #[test]
    fn a_valid_space_passes() {
        let space = space(vec![
            Domain::Double {
                min: 1e-5,
                max: 1.0,
                step: None,
                distribution: Distribution::LogUniform,
            },
            Domain::Int {
                min: 1,
                max: 1,
                step: Some(2),
                distribution: Distribution::LogNormal,
            },
            Domain::Discrete { values: vec![0.5] },
            Domain::Categorical {
                choices: vec!["a".to_string()],
            },
        ]);
        assert_eq!(check_space(&space), vec![]);
    }

    #[test]
    fn broken_invariants_name_the_parameter_and_field() {
        let space = space(vec![
            Domain::Double {
                min: 0.0,
                max: 1.0,
                step: None,
                distribution: Distribution::LogUniform,
            },
            Domain::Int {
                min: 5,
                max: 1,
                step: None,
                distribution: Distribution::Uniform,
            },
            Domain::Discrete { values: vec![] },
            Domain::Double {
                min: 0.0,
                max: 1.0,
                step: Some(-0.1),
                distribution: Distribution::Uniform,
            },
        ]);
        let errors = check_space(&space);
        let described = errors
            .iter()
            .map(|error| match error {
                AlgorithmError::Space {
                    parameter: Some(index),
                    message,
                } => (*index, message.as_str()),
                other => panic!("unexpected {other:?}"),
            })
            .collect::<Vec<_>>();
        assert_eq!(
            described,
            [
                (
                    0,
                    "parameter `p0`: feasibleSpace.min must be greater than 0 for the \
                     logUniform distribution, got 0"
                ),
                (
                    1,
                    "parameter `p1`: feasibleSpace.min (5) must not be greater than \
                     feasibleSpace.max (1)"
                ),
                (2, "parameter `p2`: feasibleSpace.list must not be empty"),
                (
                    3,
                    "parameter `p3`: feasibleSpace.step must be a positive number, got -0.1"
                ),
            ]
        );
        assert_eq!(
            check_space(&SearchSpace::default()),
            vec![AlgorithmError::Space {
                parameter: None,
                message: "the search space has no parameters".to_string(),
            }]
        );
    }

    #[test]
    fn parameter_values_display_as_substituted() {
        assert_eq!(ParameterValue::Int(-3).to_string(), "-3");
        assert_eq!(ParameterValue::Double(0.015).to_string(), "0.015");
        assert_eq!(ParameterValue::Double(1.0).to_string(), "1");
        assert_eq!(
            ParameterValue::Categorical("adam".into()).to_string(),
            "adam"
        );
    }
}
