//! # tuneflow-algorithms
//!
//! Search spaces and the search algorithms that explore them. This crate is **pure**: no I/O, no
//! async, no clocks and no global random state. Every suggestion is a function of
//! `(space, settings, seed, history)`, so the same inputs always give the same outputs. That is
//! what lets the service restart from its store alone (the history is all the state there is),
//! and what makes algorithms testable and benchmarkable in microseconds.
//!
//! The entry point is [`build`], which turns an algorithm name and its settings into a boxed
//! [`Algorithm`] after checking both against the [`SearchSpace`].
//!
//! Randomness comes only from a seed the caller passes in: the engine takes it from the
//! `random_state` setting (read with [`random_state`]) or draws one and stores it. Each trial's
//! random values come from their own named-PRNG stream derived from `(seed, trial index)`, so
//! they do not depend on how suggestions were batched.
//!
//! Modules:
//!
//! - [`space`]: the search space the algorithms explore.
//! - [`random`]: [`random::RandomSearch`], independent draws from each parameter's distribution.
//! - [`grid`]: [`grid::GridSearch`], every combination of the parameters' values, in order.
//! - [`tpe`]: [`tpe::Tpe`], the tree-structured Parzen estimator (`tpe`, `multivariate-tpe`).
//! - [`hyperband`]: [`hyperband::Hyperband`], Katib's Hyperband, budgets as a parameter.
//! - [`stopping`]: early-stopping rules (`medianstop`, `asha`, `hyperband`).
//! - [`importance`]: [`importance::fanova`], parameter importance by fANOVA over a random forest.

pub mod grid;
pub mod hyperband;
pub mod importance;
pub mod random;
pub mod space;
pub mod stopping;
pub mod tpe;

mod rng;
mod settings;
mod steps;
#[cfg(test)]
mod test_support;

pub use settings::{RANDOM_STATE, Setting, nearest_name, random_state};
pub use space::{Assignment, Distribution, Domain, Parameter, ParameterValue, SearchSpace};

use thiserror::Error;

/// The algorithms this build of tuneflow implements, by their Katib `algorithmName`.
pub const AVAILABLE: &[&str] = &["random", "grid", "tpe", "multivariate-tpe", "hyperband"];

/// The algorithm names Katib knows that tuneflow does not implement (yet). Asking for one gives
/// [`AlgorithmError::NotAvailable`] rather than [`AlgorithmError::Unknown`].
pub const KNOWN_ELSEWHERE: &[&str] = &[
    "bayesianoptimization",
    "cmaes",
    "sobol",
    "pbt",
    "enas",
    "darts",
];

/// What became of a trial, as far as an algorithm needs to know.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialOutcome {
    /// Suggested and not finished yet (pending or running).
    Pending,
    /// Finished with this objective value, signed so that smaller is better: the engine
    /// negates the values of experiments that maximize (see [`Direction::loss`]).
    Completed(f64),
    /// Stopped early; the last objective value observed (signed as for `Completed`), if any,
    /// and the step it was seen at.
    Pruned {
        /// Last observed objective value.
        value: Option<f64>,
        /// Step of that observation.
        step: Option<i64>,
    },
    /// Failed, killed, or finished without the objective metric: nothing to learn from.
    Failed,
}

/// One trial of the history an algorithm learns from.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    /// The trial's position in the experiment: 0 for the first trial ever suggested, 1 for the
    /// next, with no gaps. Algorithms may derive their own state (a grid position) from it.
    pub index: u64,
    /// The parameter values, in the order of the [`SearchSpace`]'s parameters.
    pub assignment: Assignment,
    /// What became of it.
    pub outcome: TrialOutcome,
}

/// Whether smaller or larger objective values are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Smaller is better.
    Minimize,
    /// Larger is better.
    Maximize,
}

impl Direction {
    /// `value` as a loss (smaller is better): itself when minimizing, negated when
    /// maximizing. Algorithms always minimize.
    pub fn loss(self, value: f64) -> f64 {
        match self {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }
}

/// The answer to one call of [`Algorithm::suggest`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Suggestions {
    /// New assignments, at most as many as asked for. Fewer (or none) when `exhausted`, or
    /// when the next trials depend on trials still running (Hyperband's promotions): asking
    /// again once they finish gives more.
    pub assignments: Vec<Assignment>,
    /// True when the algorithm has nothing more to suggest after these (a finished grid).
    pub exhausted: bool,
}

/// A search algorithm: decides the next parameter assignments from the history.
///
/// Implementations hold only what was fixed at construction (space, settings); everything that
/// changes lives in the `history` argument.
pub trait Algorithm: Send + Sync + std::fmt::Debug {
    /// The algorithm's name as used in `algorithmName`.
    fn name(&self) -> &'static str;

    /// Suggests up to `count` new assignments. `history` holds every trial of the experiment so
    /// far (in any state), ordered by [`TrialRecord::index`]; the new assignments will become
    /// trials `history.len()`, `history.len() + 1`, ...
    fn suggest(&self, seed: u64, history: &[TrialRecord], count: usize) -> Suggestions;

    /// How many distinct assignments the algorithm can ever suggest, when it is finite
    /// (grid). `None` for unbounded algorithms.
    fn capacity(&self) -> Option<u64> {
        None
    }
}

/// Why an algorithm could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AlgorithmError {
    /// The name is not an algorithm tuneflow or Katib knows.
    #[error("unknown algorithm `{name}`")]
    Unknown {
        /// The name given.
        name: String,
        /// The nearest available name, when one is close.
        suggestion: Option<String>,
    },
    /// The name is a Katib algorithm this build does not implement.
    #[error("algorithm `{name}` is not available in this version of tuneflow")]
    NotAvailable {
        /// The name given.
        name: String,
    },
    /// A setting is unknown or has a bad value. `index` is its position in `algorithmSettings`.
    #[error("{message}")]
    Setting {
        /// Position of the setting in the list.
        index: usize,
        /// What was wrong.
        message: String,
    },
    /// The search space does not suit the algorithm. `parameter` is the index of the offending
    /// parameter, when one is to blame.
    #[error("{message}")]
    Space {
        /// Index of the parameter, if one is to blame.
        parameter: Option<usize>,
        /// What was wrong.
        message: String,
    },
}

/// Builds the algorithm `name` with `settings` over `space`, checking that every setting is
/// known and well-formed and that the space suits the algorithm.
///
/// # Errors
///
/// Every problem found, not just the first: [`AlgorithmError::Unknown`] (with the nearest
/// known name, when one is close) or [`AlgorithmError::NotAvailable`] for the name, then the
/// algorithm's [`AlgorithmError::Setting`] and [`AlgorithmError::Space`] errors.
pub fn build(
    name: &str,
    settings: &[Setting],
    space: &SearchSpace,
) -> Result<Box<dyn Algorithm>, Vec<AlgorithmError>> {
    match name {
        "random" => random::RandomSearch::new(settings, space).map(|a| Box::new(a) as _),
        "grid" => grid::GridSearch::new(settings, space).map(|a| Box::new(a) as _),
        "tpe" => tpe::Tpe::new("tpe", settings, space).map(|a| Box::new(a) as _),
        "hyperband" => hyperband::Hyperband::new(settings, space).map(|a| Box::new(a) as _),
        "multivariate-tpe" => {
            tpe::Tpe::new("multivariate-tpe", settings, space).map(|a| Box::new(a) as _)
        }
        other if KNOWN_ELSEWHERE.contains(&other) => Err(vec![AlgorithmError::NotAvailable {
            name: other.to_string(),
        }]),
        other => Err(vec![AlgorithmError::Unknown {
            name: other.to_string(),
            suggestion: settings::nearest(other, AVAILABLE.iter().chain(KNOWN_ELSEWHERE)),
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> SearchSpace {
        SearchSpace {
            parameters: vec![Parameter {
                name: "layers".to_string(),
                domain: Domain::Int {
                    min: 1,
                    max: 3,
                    step: None,
                    distribution: Distribution::Uniform,
                },
            }],
        }
    }

    #[test]
    fn builds_every_available_algorithm() {
        for name in AVAILABLE {
            // Hyperband needs to know which parameter is the budget, and the largest one.
            let settings = match *name {
                "hyperband" => vec![
                    Setting::new("resource_name", &space().parameters[0].name),
                    Setting::new("r_l", "9"),
                ],
                _ => Vec::new(),
            };
            let algorithm = build(name, &settings, &space()).expect("builds");
            assert_eq!(algorithm.name(), *name);
        }
    }

    #[test]
    fn unknown_algorithm_suggests_the_nearest_name() {
        let errors = build("grdi", &[], &space()).expect_err("unknown");
        assert_eq!(
            errors,
            vec![AlgorithmError::Unknown {
                name: "grdi".to_string(),
                suggestion: Some("grid".to_string()),
            }]
        );
        let errors = build("simulated-annealing", &[], &space()).expect_err("unknown");
        assert!(
            matches!(
                &errors[..],
                [AlgorithmError::Unknown {
                    suggestion: None,
                    ..
                }]
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn katib_algorithms_not_implemented_are_not_available() {
        for name in KNOWN_ELSEWHERE {
            let errors = build(name, &[], &space()).expect_err("not available");
            assert_eq!(
                errors,
                vec![AlgorithmError::NotAvailable {
                    name: name.to_string()
                }]
            );
        }
        let message = build("cmaes", &[], &space()).expect_err("not available")[0].to_string();
        assert_eq!(
            message,
            "algorithm `cmaes` is not available in this version of tuneflow"
        );
    }
}
