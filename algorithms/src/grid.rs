//! Grid search: every combination of every parameter's values, each tried once.
//!
//! Each parameter contributes a list of values: the stepped points of a `double` (which must
//! have a `step`; the distribution is ignored), the stepped points of an `int` (step 1 by
//! default), or the list of a `discrete` or `categorical` parameter. The grid is their cartesian
//! product, enumerated like nested loops with the first parameter outermost: trial `n` gets
//! combination `n` read as a mixed-radix number, the last parameter's value changing fastest.
//!
//! Nothing is materialised: a combination is computed from its index in O(parameters), so a
//! grid of a billion points costs no more memory than one of four. The grid's position is the
//! length of the history (the next trial's index), which keeps the algorithm pure: a restarted
//! engine continues the grid where it stopped. The seed is not used; `random_state` is accepted
//! so that an experiment can switch between random and grid search without editing settings.

use crate::space::{Domain, ParameterValue, SearchSpace};
use crate::steps::{DoubleSteps, IntSteps};
use crate::{Algorithm, AlgorithmError, Assignment, Setting, Suggestions, TrialRecord};

/// Grid search over a [`SearchSpace`]. Built by [`crate::build`] as `grid`, or directly with
/// [`GridSearch::new`].
#[derive(Debug, Clone)]
pub struct GridSearch {
    axes: Vec<Axis>,
    total: u64,
}

impl GridSearch {
    /// The settings grid search accepts besides `random_state`: none.
    pub const SETTINGS: &'static [&'static str] = &[];

    /// Grid search over `space`.
    ///
    /// # Errors
    ///
    /// Every unknown or malformed setting ([`AlgorithmError::Setting`]); every parameter whose
    /// domain breaks the space's invariants, every `double` parameter without a `step` and
    /// every parameter with more than 2⁶⁴ - 1 values ([`AlgorithmError::Space`], naming the
    /// parameter); and a grid whose total size does not fit in a `u64`
    /// ([`AlgorithmError::Space`] without a parameter).
    pub fn new(settings: &[Setting], space: &SearchSpace) -> Result<Self, Vec<AlgorithmError>> {
        let mut errors = crate::settings::check("grid", settings, Self::SETTINGS);
        let space_errors = crate::space::check_space(space);
        if !space_errors.is_empty() {
            errors.extend(space_errors);
            return Err(errors);
        }
        let mut axes = Vec::with_capacity(space.parameters.len());
        for (index, parameter) in space.parameters.iter().enumerate() {
            match Axis::new(&parameter.domain) {
                Ok(axis) => axes.push(axis),
                Err(problem) => errors.push(AlgorithmError::Space {
                    parameter: Some(index),
                    message: format!("parameter `{}`: {problem}", parameter.name),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let total = axes
            .iter()
            .try_fold(1_u64, |total, axis| total.checked_mul(axis.len()))
            .ok_or_else(|| {
                let sizes = axes
                    .iter()
                    .map(|axis| axis.len().to_string())
                    .collect::<Vec<_>>()
                    .join(" × ");
                vec![AlgorithmError::Space {
                    parameter: None,
                    message: format!(
                        "the grid has too many points to count ({sizes}); \
                         use larger steps or fewer values"
                    ),
                }]
            })?;
        if total == 0 {
            return Err(vec![AlgorithmError::Space {
                parameter: None,
                message: "the grid is empty: a parameter has no values".to_string(),
            }]);
        }
        Ok(GridSearch { axes, total })
    }

    /// The number of points in the grid: the product of the parameters' value counts.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The combination tried by trial `trial_index`, or `None` past the end of the grid.
    pub fn assignment(&self, trial_index: u64) -> Option<Assignment> {
        if trial_index >= self.total {
            return None;
        }
        // Peel off digits from the last (fastest) parameter to the first.
        let mut rest = trial_index;
        let mut digits = vec![0_u64; self.axes.len()];
        for (digit, axis) in digits.iter_mut().zip(&self.axes).rev() {
            let radix = axis.len();
            *digit = rest % radix;
            rest /= radix;
        }
        Some(
            self.axes
                .iter()
                .zip(digits)
                .map(|(axis, digit)| axis.value(digit))
                .collect(),
        )
    }
}

impl Algorithm for GridSearch {
    fn name(&self) -> &'static str {
        "grid"
    }

    fn suggest(&self, _seed: u64, history: &[TrialRecord], count: usize) -> Suggestions {
        let first = (history.len() as u64).min(self.total);
        let end = first
            .saturating_add(u64::try_from(count).unwrap_or(u64::MAX))
            .min(self.total);
        let assignments = (first..end)
            .filter_map(|trial_index| self.assignment(trial_index))
            .collect();
        Suggestions {
            assignments,
            exhausted: end == self.total,
        }
    }

    fn capacity(&self) -> Option<u64> {
        Some(self.total)
    }
}

/// One parameter's list of values, computed on demand.
#[derive(Debug, Clone)]
enum Axis {
    Double { steps: DoubleSteps, len: u64 },
    Int { steps: IntSteps, len: u64 },
    Discrete(Vec<f64>),
    Categorical(Vec<String>),
}

impl Axis {
    /// The axis of a checked domain, or why the domain cannot be a grid axis.
    fn new(domain: &Domain) -> Result<Self, String> {
        let too_many = "has more grid values than can be counted; use a larger step";
        match domain {
            Domain::Double {
                min,
                max,
                step: None,
                ..
            } => Err(format!(
                "grid search needs feasibleSpace.step for double parameters \
                 (a range {min}..{max} without a step has no list of values to try)"
            )),
            Domain::Double {
                min,
                max,
                step: Some(step),
                ..
            } => {
                let steps = DoubleSteps::new(*min, *max, *step)
                    .ok_or_else(|| format!("feasibleSpace {min}..{max} by {step} {too_many}"))?;
                let len = steps
                    .count()
                    .ok_or_else(|| format!("feasibleSpace {min}..{max} by {step} {too_many}"))?;
                Ok(Axis::Double { steps, len })
            }
            Domain::Int { min, max, step, .. } => {
                let step = step.unwrap_or(1);
                let steps = IntSteps::new(*min, *max, step)
                    .ok_or_else(|| format!("feasibleSpace {min}..{max} by {step} is invalid"))?;
                let len = u64::try_from(steps.count())
                    .map_err(|_| format!("feasibleSpace {min}..{max} by {step} {too_many}"))?;
                Ok(Axis::Int { steps, len })
            }
            Domain::Discrete { values } => Ok(Axis::Discrete(values.clone())),
            Domain::Categorical { choices } => Ok(Axis::Categorical(choices.clone())),
        }
    }

    /// The number of values.
    fn len(&self) -> u64 {
        match self {
            Axis::Double { len, .. } | Axis::Int { len, .. } => *len,
            Axis::Discrete(values) => values.len() as u64,
            Axis::Categorical(choices) => choices.len() as u64,
        }
    }

    /// Value `k` of the axis (`k < self.len()`; larger `k` gives the last value).
    fn value(&self, k: u64) -> ParameterValue {
        let index = usize::try_from(k).unwrap_or(usize::MAX);
        match self {
            Axis::Double { steps, .. } => ParameterValue::Double(steps.at(k as f64)),
            Axis::Int { steps, .. } => ParameterValue::Int(steps.at(u128::from(k))),
            Axis::Discrete(values) => ParameterValue::Double(
                values
                    .get(index)
                    .or(values.last())
                    .copied()
                    .unwrap_or_default(),
            ),
            Axis::Categorical(choices) => ParameterValue::Categorical(
                choices
                    .get(index)
                    .or(choices.last())
                    .cloned()
                    .unwrap_or_default(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Distribution;
    use crate::test_support::{self, categorical, double, space};
    use crate::{TrialOutcome, build};

    fn int(min: i64, max: i64, step: Option<i64>) -> Domain {
        test_support::int(min, max, step, Distribution::Uniform)
    }

    fn history(count: usize) -> Vec<TrialRecord> {
        (0..count as u64)
            .map(|index| TrialRecord {
                index,
                assignment: Vec::new(),
                outcome: TrialOutcome::Completed(0.0),
            })
            .collect()
    }

    fn grid(space: &SearchSpace) -> GridSearch {
        GridSearch::new(&[], space).expect("a valid grid")
    }

    fn printed(assignment: &Assignment) -> String {
        assignment
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn three_by_four_gives_twelve_combinations_then_exhausted() {
        let space = space(vec![categorical(&["a", "b", "c"]), int(1, 4, None)]);
        let algorithm =
            build("grid", &[Setting::new("random_state", "3")], &space).expect("builds");
        assert_eq!(algorithm.name(), "grid");
        assert_eq!(algorithm.capacity(), Some(12));

        let first = algorithm.suggest(0, &[], 5);
        assert_eq!(first.assignments.len(), 5);
        assert!(!first.exhausted);
        let rest = algorithm.suggest(0, &history(5), 100);
        assert_eq!(rest.assignments.len(), 7);
        assert!(rest.exhausted);

        let all = first
            .assignments
            .iter()
            .chain(&rest.assignments)
            .map(printed)
            .collect::<Vec<_>>();
        // Nested-loop order: the first parameter changes slowest.
        assert_eq!(
            all,
            [
                "a,1", "a,2", "a,3", "a,4", "b,1", "b,2", "b,3", "b,4", "c,1", "c,2", "c,3", "c,4"
            ]
        );
        let distinct = all.iter().collect::<std::collections::HashSet<_>>();
        assert_eq!(distinct.len(), 12);

        let after = algorithm.suggest(0, &history(12), 3);
        assert_eq!(
            after,
            Suggestions {
                assignments: vec![],
                exhausted: true
            }
        );
    }

    #[test]
    fn exactly_reaching_the_end_is_exhausted() {
        let space = space(vec![int(0, 2, None)]);
        let grid = grid(&space);
        let suggestions = grid.suggest(0, &history(1), 2);
        assert_eq!(suggestions.assignments.len(), 2);
        assert!(suggestions.exhausted);
        let none_asked = grid.suggest(0, &history(1), 0);
        assert!(none_asked.assignments.is_empty());
        assert!(!none_asked.exhausted);
        assert!(grid.suggest(0, &[], usize::MAX).exhausted);
    }

    #[test]
    fn the_seed_does_not_matter() {
        let space = space(vec![int(0, 9, Some(3)), categorical(&["x", "y"])]);
        let grid = grid(&space);
        assert_eq!(grid.suggest(1, &[], 8), grid.suggest(2, &[], 8));
    }

    #[test]
    fn double_steps_give_clean_decimals() {
        let space = space(vec![double(0.01, 0.05, Some(0.005), Distribution::Uniform)]);
        let grid = grid(&space);
        assert_eq!(grid.total(), 9);
        let values = grid
            .suggest(0, &[], 20)
            .assignments
            .iter()
            .map(printed)
            .collect::<Vec<_>>();
        assert_eq!(
            values,
            [
                "0.01", "0.015", "0.02", "0.025", "0.03", "0.035", "0.04", "0.045", "0.05"
            ]
        );
    }

    #[test]
    fn stepped_doubles_ignore_the_distribution() {
        let space = space(vec![double(0.1, 0.4, Some(0.1), Distribution::LogUniform)]);
        let values = grid(&space)
            .suggest(0, &[], 20)
            .assignments
            .iter()
            .map(printed)
            .collect::<Vec<_>>();
        assert_eq!(values, ["0.1", "0.2", "0.3", "0.4"]);
    }

    #[test]
    fn ints_discretes_and_steps() {
        let space = space(vec![
            int(-3, 3, Some(2)),
            Domain::Discrete {
                values: vec![0.5, 2.0],
            },
        ]);
        let values = grid(&space)
            .suggest(0, &[], 20)
            .assignments
            .iter()
            .map(printed)
            .collect::<Vec<_>>();
        assert_eq!(
            values,
            [
                "-3,0.5", "-3,2", "-1,0.5", "-1,2", "1,0.5", "1,2", "3,0.5", "3,2"
            ]
        );
        assert_eq!(
            grid(&space).assignment(2),
            Some(vec![ParameterValue::Int(-1), ParameterValue::Double(0.5)])
        );
        assert_eq!(grid(&space).assignment(8), None);
    }

    #[test]
    fn a_double_without_step_names_the_parameter() {
        let space = space(vec![
            categorical(&["a"]),
            double(0.0, 1.0, None, Distribution::Uniform),
        ]);
        let errors = GridSearch::new(&[], &space).expect_err("no step");
        match &errors[..] {
            [
                AlgorithmError::Space {
                    parameter: Some(1),
                    message,
                },
            ] => {
                assert!(message.contains("`p1`"), "{message}");
                assert!(
                    message.contains("grid search needs feasibleSpace.step for double parameters"),
                    "{message}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn huge_grids_are_counted_lazily_or_refused() {
        // 10^6 × 10^6 × 10^6 = 10^18 points: fine, nothing is materialised.
        let big = space(vec![int(1, 1_000_000, None); 3]);
        let grid = grid(&big);
        assert_eq!(grid.total(), 1_000_000_000_000_000_000);
        assert_eq!(
            grid.assignment(grid.total() - 1),
            Some(vec![ParameterValue::Int(1_000_000); 3])
        );
        // 10^24 points do not fit in a u64.
        let too_big = space(vec![int(1, 1_000_000, None); 4]);
        let errors = GridSearch::new(&[], &too_big).expect_err("overflows");
        assert!(
            matches!(&errors[..], [AlgorithmError::Space { parameter: None, message }]
                if message.contains("too many points")),
            "{errors:?}"
        );
        // The full i64 range by 1 has 2^64 values, one more than a u64 counts.
        let full = space(vec![int(i64::MIN, i64::MAX, None)]);
        let errors = GridSearch::new(&[], &full).expect_err("overflows");
        assert!(
            matches!(
                &errors[..],
                [AlgorithmError::Space {
                    parameter: Some(0),
                    ..
                }]
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_settings_are_refused_with_a_hint() {
        let space = space(vec![int(1, 2, None)]);
        let errors = GridSearch::new(&[Setting::new("random_stat", "1")], &space)
            .expect_err("unknown setting");
        assert!(
            matches!(&errors[..], [AlgorithmError::Setting { index: 0, message }]
                if message == "unknown setting `random_stat` for algorithm `grid`; \
                               did you mean `random_state`?"),
            "{errors:?}"
        );
    }
}
