//! How the forest sees each parameter: a coordinate in `[0, 1]`, or a choice among `k`.
//!
//! fANOVA measures a parameter's importance as the share of the objective's variance that its
//! marginal explains *over the search space*, so the measure the space is given decides the
//! answer as much as the data does. The encoding below chooses that measure to match how the
//! user declared each parameter, the same view the samplers take:
//!
//! - A continuous `double` is its interval `[min, max]` scaled to `[0, 1]`, in log space for
//!   `logUniform`/`logNormal`, so that `lr` over `1e-5..1` weighs each decade equally.
//! - A stepped `double`, an `int` and a `discrete` list are ordered grids of points, and every
//!   point owns an equal cell: point `k` of `n` sits at `(k + ½) / n`. A grid's end points then
//!   weigh as much as its inner ones (Optuna scales an `int` to `[low, high]`, which gives the two
//!   end values half a cell each). A log grid places its points at their logarithms instead,
//!   with cells between geometric midpoints and half a gap added beyond each end. A `discrete`
//!   list is ordinal: its sorted values by rank, as TPE reads it.
//! - A `categorical` stays a set of `k` unordered choices, each weighing `1 / k`, and the trees
//!   split it into two subsets of choices, as the original fANOVA's forest does. Optuna one-hot
//!   encodes choices instead, which puts most of the volume of its unit box on vectors that are
//!   no choice at all (two ones, or none) and costs a column per choice; a native split has
//!   neither problem and keeps a parameter one feature.
//!
//! A parameter that can take a single value carries no information and gets no feature (its
//! importance is 0). Numeric trial values outside the domain are clamped into it and values
//! between grid points go to the nearest point, so that a value the engine stored is never
//! refused for a rounding difference; a value of the wrong kind (a string for a number, a
//! choice that is not listed, a non-finite number) is an error.

use crate::space::{Distribution, Domain, ParameterValue};
use crate::steps::{DoubleSteps, IntSteps, Points};

/// What kind of feature a parameter becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A coordinate in `[0, 1]`, split by thresholds.
    Numeric,
    /// A choice index in `0..choices`, split by subsets.
    Categorical {
        /// The number of choices.
        choices: usize,
    },
}

/// Turns one parameter's values into its feature's values.
#[derive(Debug, Clone)]
pub(super) enum Encoder<'a> {
    /// A real interval of the coordinate (`ln x` when `log`).
    Interval {
        /// Lower end of the coordinate.
        low: f64,
        /// Upper end of the coordinate.
        high: f64,
        /// Whether the coordinate is `ln x`.
        log: bool,
    },
    /// Evenly weighted grid points by index: point `k` of `count` at `(k + ½) / count`.
    Ranked {
        /// The points.
        points: Points,
        /// How many there are.
        count: f64,
    },
    /// Grid points at their logarithms, on `[low, high]` (the outer cells' edges).
    LogGrid {
        /// The points.
        points: Points,
        /// Lower edge of the first point's cell, in log space.
        low: f64,
        /// Upper edge of the last point's cell, in log space.
        high: f64,
    },
    /// Unordered choices.
    Categorical {
        /// The choices, in the order of the domain.
        choices: &'a [String],
    },
}

impl<'a> Encoder<'a> {
    /// The encoder of `domain`, or `None` when it holds a single value. The domain must have
    /// passed the space's checks (finite bounds, `min <= max`, positive log bounds).
    pub fn new(domain: &'a Domain) -> Option<Encoder<'a>> {
        let is_log =
            |d: &Distribution| matches!(d, Distribution::LogUniform | Distribution::LogNormal);
        let encoder = match domain {
            Domain::Double {
                min,
                max,
                step,
                distribution,
            } => match step.and_then(|step| DoubleSteps::new(*min, *max, step)) {
                Some(steps) => Encoder::grid(Points::Double(steps), is_log(distribution)),
                None if is_log(distribution) => Encoder::Interval {
                    low: min.ln(),
                    high: max.ln(),
                    log: true,
                },
                None => Encoder::Interval {
                    low: *min,
                    high: *max,
                    log: false,
                },
            },
            Domain::Int {
                min,
                max,
                step,
                distribution,
            } => Encoder::grid(
                Points::Int(IntSteps::new(*min, *max, step.unwrap_or(1))?),
                is_log(distribution),
            ),
            Domain::Discrete { values } => {
                let mut sorted = values.clone();
                sorted.sort_by(f64::total_cmp);
                sorted.dedup();
                Encoder::grid(Points::List(sorted), false)
            }
            Domain::Categorical { choices } => Encoder::Categorical { choices },
        };
        let informative = match &encoder {
            Encoder::Interval { low, high, .. } => high > low,
            Encoder::Ranked { count, .. } => *count >= 2.0,
            Encoder::LogGrid { points, .. } => points.count() >= 2.0,
            Encoder::Categorical { choices } => choices.len() >= 2,
        };
        informative.then_some(encoder)
    }

    /// A grid encoder: by rank, or at the points' logarithms when `log`.
    fn grid(points: Points, log: bool) -> Encoder<'a> {
        let count = points.count();
        if !log || count < 2.0 {
            return Encoder::Ranked { points, count };
        }
        let last = count - 1.0;
        let ln = |k: f64| points.value(k).ln();
        let low = ln(0.0) - (ln(1.0) - ln(0.0)) / 2.0;
        let high = ln(last) + (ln(last) - ln(last - 1.0)) / 2.0;
        if !(low.is_finite() && high.is_finite() && high > low) {
            // Points too close for their logarithms to differ: rank them instead.
            return Encoder::Ranked { points, count };
        }
        Encoder::LogGrid { points, low, high }
    }

    /// The kind of feature this encoder makes.
    pub fn kind(&self) -> Kind {
        match self {
            Encoder::Categorical { choices } => Kind::Categorical {
                choices: choices.len(),
            },
            _ => Kind::Numeric,
        }
    }

    /// The feature value of `value`: a coordinate in `[0, 1]` or a choice index. `None` when
    /// the value is of the wrong kind, not finite, or not one of the choices.
    pub fn encode(&self, value: &ParameterValue) -> Option<f64> {
        if let Encoder::Categorical { choices } = self {
            let position = match value {
                ParameterValue::Categorical(choice) => choices.iter().position(|c| c == choice),
                // A number stored for a choice spelled as that number ("32").
                number => {
                    let spelled = number.to_string();
                    choices.iter().position(|c| *c == spelled)
                }
            };
            return position.map(|index| index as f64);
        }
        let x = match value {
            ParameterValue::Int(x) => *x as f64,
            ParameterValue::Double(x) if x.is_finite() => *x,
            _ => return None,
        };
        let coordinate = match self {
            Encoder::Interval { low, high, log } => {
                let t = if *log { x.ln() } else { x };
                // A non-positive value on a log scale lies below the domain: its lower end.
                let t = if t.is_nan() { *low } else { t };
                (t - low) / (high - low)
            }
            Encoder::Ranked { points, count } => (points.index_of(x) + 0.5) / count,
            Encoder::LogGrid { points, low, high } => {
                let t = points.value(points.index_of(x)).ln();
                (t - low) / (high - low)
            }
            Encoder::Categorical { .. } => return None,
        };
        Some(coordinate.clamp(0.0, 1.0))
    }

    /// What the parameter accepts, for error messages.
    pub fn expected(&self) -> &'static str {
        match self {
            Encoder::Categorical { .. } => "one of the parameter's choices",
            _ => "a finite number",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{categorical, double, int};

    fn encoded(domain: &Domain, values: &[ParameterValue]) -> Vec<f64> {
        let encoder = Encoder::new(domain).expect("informative");
        values
            .iter()
            .map(|value| encoder.encode(value).expect("valid value"))
            .collect()
    }

    fn close(actual: &[f64], expected: &[f64]) -> bool {
        actual.len() == expected.len()
            && actual
                .iter()
                .zip(expected)
                .all(|(a, e)| (a - e).abs() < 1e-12)
    }

    #[test]
    fn intervals_scale_to_the_unit_interval_in_their_own_space() {
        let linear = double(-1.0, 3.0, None, Distribution::Uniform);
        let values = [-1.0, 1.0, 3.0, 7.0].map(ParameterValue::Double);
        assert!(close(&encoded(&linear, &values), &[0.0, 0.5, 1.0, 1.0]));
        let log = double(1e-4, 1.0, None, Distribution::LogUniform);
        let values = [1e-4, 1e-2, 1.0, 0.0].map(ParameterValue::Double);
        assert!(close(&encoded(&log, &values), &[0.0, 0.5, 1.0, 0.0]));
    }

    #[test]
    fn grid_points_own_equal_cells() {
        let layers = int(1, 4, None, Distribution::Uniform);
        let values = [1, 2, 3, 4].map(ParameterValue::Int);
        assert!(close(
            &encoded(&layers, &values),
            &[0.125, 0.375, 0.625, 0.875]
        ));
        // A double given for an int, between points, goes to the nearest point.
        assert!(close(
            &encoded(&layers, &[ParameterValue::Double(2.2)]),
            &[0.375]
        ));
        let batch = Domain::Discrete {
            values: vec![64.0, 16.0, 32.0, 16.0],
        };
        let values = [16.0, 32.0, 64.0].map(ParameterValue::Double);
        assert!(close(
            &encoded(&batch, &values),
            &[1.0 / 6.0, 0.5, 5.0 / 6.0]
        ));
    }

    #[test]
    fn log_grids_place_points_at_their_logarithms() {
        // 1, 10, 100 by step 1 on a log scale: ln 1 and ln 100 are the outer points, and the
        // outer cells reach half the neighbouring gap beyond them.
        let counts = int(1, 100, None, Distribution::LogUniform);
        let values = [1, 10, 100].map(ParameterValue::Int);
        let low = -(2.0_f64.ln()) / 2.0;
        let high = 100.0_f64.ln() + (100.0_f64.ln() - 99.0_f64.ln()) / 2.0;
        let expected = [1.0_f64, 10.0, 100.0].map(|x| (x.ln() - low) / (high - low));
        assert!(close(&encoded(&counts, &values), &expected));
    }

    #[test]
    fn categoricals_are_choice_indices() {
        let optimizer = categorical(&["sgd", "adam", "32"]);
        let values = [
            ParameterValue::Categorical("adam".into()),
            ParameterValue::Categorical("sgd".into()),
            ParameterValue::Int(32),
        ];
        assert_eq!(encoded(&optimizer, &values), [1.0, 0.0, 2.0]);
        let encoder = Encoder::new(&optimizer).expect("informative");
        assert_eq!(encoder.kind(), Kind::Categorical { choices: 3 });
        assert_eq!(
            encoder.encode(&ParameterValue::Categorical("adamw".into())),
            None
        );
    }

    #[test]
    fn wrong_kinds_and_single_values_are_recognised() {
        let rate = double(0.0, 1.0, None, Distribution::Uniform);
        let encoder = Encoder::new(&rate).expect("informative");
        assert_eq!(encoder.encode(&ParameterValue::Double(f64::NAN)), None);
        assert_eq!(
            encoder.encode(&ParameterValue::Categorical("x".into())),
            None
        );
        assert!(Encoder::new(&double(2.0, 2.0, None, Distribution::Uniform)).is_none());
        assert!(Encoder::new(&int(3, 5, Some(10), Distribution::Uniform)).is_none());
        assert!(Encoder::new(&categorical(&["only"])).is_none());
        assert!(
            Encoder::new(&Domain::Discrete {
                values: vec![4.0, 4.0]
            })
            .is_none()
        );
    }
}
