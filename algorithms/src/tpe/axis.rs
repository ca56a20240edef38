//! How TPE sees each parameter: a coordinate on which kernels are placed.
//!
//! - A continuous `double` is a real interval, in log space for `logUniform`/`logNormal`.
//! - A stepped `double`, an `int` and a `discrete` list are ordered grids of points. Each point
//!   owns a cell of the coordinate (half-way to its neighbours), and a kernel gives a point the
//!   probability mass of its cell, so rounding a continuous draw to the nearest point and the
//!   density used to score it agree. Linear grids use the point's index as coordinate (cells of
//!   width one, Optuna's `±q/2`); log grids use the logarithm of the value, with cells between
//!   geometric midpoints. A `discrete` list is ordinal: its sorted values by index.
//! - A `categorical` is a set of choices with no order.
//!
//! Nothing here allocates per point: grid cells are computed from the point's index, so a grid
//! of 2⁶⁴ integers costs the same as one of ten.

use crate::space::{Distribution, Domain, ParameterValue};
use crate::steps::{DoubleSteps, IntSteps, Points};

/// One parameter as a coordinate.
#[derive(Debug, Clone)]
pub(crate) enum Axis {
    /// A real interval `[low, high]` of the coordinate (already in log space when `log`).
    Continuous {
        /// Lower end of the coordinate.
        low: f64,
        /// Upper end.
        high: f64,
        /// Whether the coordinate is `ln(value)`.
        log: bool,
        /// The parameter's bounds, which values are clamped to.
        min: f64,
        /// Upper bound of the parameter.
        max: f64,
    },
    /// An ordered grid of `count` points.
    Grid {
        /// The points.
        points: Points,
        /// Whether the coordinate is `ln(value)` (otherwise the point's index).
        log: bool,
    },
    /// Unordered choices.
    Categorical {
        /// The choices.
        choices: Vec<String>,
    },
}

/// The parameter value of grid point `k`: an integer on an `int` grid, a real otherwise.
fn parameter_value(points: &Points, k: f64) -> ParameterValue {
    match points {
        Points::Int(steps) => ParameterValue::Int(steps.at(k.max(0.0) as u128)),
        _ => ParameterValue::Double(points.value(k)),
    }
}

impl Axis {
    /// The axis of a domain, or `None` for a domain with a single value (nothing to learn).
    pub fn new(domain: &Domain) -> Option<Axis> {
        let is_log =
            |d: &Distribution| matches!(d, Distribution::LogUniform | Distribution::LogNormal);
        let axis = match domain {
            Domain::Double {
                min,
                max,
                step,
                distribution,
            } => match step.and_then(|step| DoubleSteps::new(*min, *max, step)) {
                Some(steps) => Axis::Grid {
                    points: Points::Double(steps),
                    log: is_log(distribution),
                },
                None => {
                    let log = is_log(distribution);
                    let (low, high) = if log {
                        (min.ln(), max.ln())
                    } else {
                        (*min, *max)
                    };
                    Axis::Continuous {
                        low,
                        high,
                        log,
                        min: *min,
                        max: *max,
                    }
                }
            },
            Domain::Int {
                min,
                max,
                step,
                distribution,
            } => Axis::Grid {
                points: Points::Int(IntSteps::new(*min, *max, step.unwrap_or(1))?),
                log: is_log(distribution),
            },
            Domain::Discrete { values } => {
                let mut sorted = values.clone();
                sorted.sort_by(f64::total_cmp);
                sorted.dedup();
                Axis::Grid {
                    points: Points::List(sorted),
                    log: false,
                }
            }
            Domain::Categorical { choices } => Axis::Categorical {
                choices: choices.clone(),
            },
        };
        let trivial = match &axis {
            Axis::Continuous { low, high, .. } => {
                high.partial_cmp(low) != Some(std::cmp::Ordering::Greater)
            }
            Axis::Grid { points, .. } => points.count() < 2.0,
            Axis::Categorical { choices } => choices.len() < 2,
        };
        (!trivial).then_some(axis)
    }

    /// The range of the coordinate that kernels are truncated to.
    pub fn bounds(&self) -> (f64, f64) {
        match self {
            Axis::Continuous { low, high, .. } => (*low, *high),
            Axis::Grid { points, .. } => {
                let last = points.count() - 1.0;
                (self.cell(0.0).0, self.cell(last).1)
            }
            Axis::Categorical { choices } => (0.0, choices.len() as f64),
        }
    }

    /// The coordinate of grid point `k`.
    fn grid_coordinate(&self, k: f64) -> f64 {
        match self {
            Axis::Grid { points, log: true } => points.value(k).ln(),
            _ => k,
        }
    }

    /// The cell `[lower, upper]` of grid point `k` on the coordinate.
    pub fn cell(&self, k: f64) -> (f64, f64) {
        match self {
            Axis::Grid { points, log: true } => {
                let last = points.count() - 1.0;
                let here = self.grid_coordinate(k);
                let below = (k > 0.0).then(|| self.grid_coordinate(k - 1.0));
                let above = (k < last).then(|| self.grid_coordinate(k + 1.0));
                let lower = match (below, above) {
                    (Some(b), _) => (b + here) / 2.0,
                    (None, Some(a)) => here - (a - here) / 2.0,
                    (None, None) => here - 0.5,
                };
                let upper = match (above, below) {
                    (Some(a), _) => (here + a) / 2.0,
                    (None, Some(b)) => here + (here - b) / 2.0,
                    (None, None) => here + 0.5,
                };
                (lower, upper)
            }
            _ => (k - 0.5, k + 0.5),
        }
    }

    /// Where a trial's value sits: the coordinate (continuous), the point's index (grid) or
    /// the choice's index (categorical). `None` for a value outside the domain.
    pub fn locate(&self, value: &ParameterValue) -> Option<f64> {
        match (self, value) {
            (Axis::Continuous { low, high, log, .. }, ParameterValue::Double(x)) => {
                let t = if *log { log_of(*x) } else { *x };
                t.is_finite().then(|| t.clamp(*low, *high))
            }
            (Axis::Grid { points, .. }, ParameterValue::Int(x)) => Some(points.index_of(*x as f64)),
            (Axis::Grid { points, .. }, ParameterValue::Double(x)) if x.is_finite() => {
                Some(points.index_of(*x))
            }
            (Axis::Categorical { choices }, ParameterValue::Categorical(c)) => choices
                .iter()
                .position(|choice| choice == c)
                .map(|i| i as f64),
            _ => None,
        }
    }

    /// The coordinate a kernel is centred on for a located value.
    pub fn centre(&self, located: f64) -> f64 {
        match self {
            Axis::Grid { .. } => self.grid_coordinate(located),
            _ => located,
        }
    }

    /// The grid point whose cell holds coordinate `t`.
    pub fn point_at(&self, t: f64) -> f64 {
        let Axis::Grid { points, log } = self else {
            return t;
        };
        let last = points.count() - 1.0;
        if !*log {
            return t.round().clamp(0.0, last);
        }
        // Start from the nearest point in value space, then move to the cell that holds t.
        let mut k = points.index_of(t.exp()).clamp(0.0, last);
        for _ in 0..2 {
            let (lower, upper) = self.cell(k);
            if t < lower && k > 0.0 {
                k -= 1.0;
            } else if t > upper && k < last {
                k += 1.0;
            }
        }
        k
    }

    /// The parameter value of a located coordinate (continuous), point index (grid) or choice
    /// index (categorical).
    pub fn value(&self, located: f64) -> ParameterValue {
        match self {
            Axis::Continuous {
                low,
                high,
                log,
                min,
                max,
            } => {
                let t = located.clamp(*low, *high);
                let x = if *log { t.exp() } else { t };
                ParameterValue::Double(x.clamp(*min, *max))
            }
            Axis::Grid { points, .. } => parameter_value(points, located),
            Axis::Categorical { choices } => ParameterValue::Categorical(
                choices[(located as usize).min(choices.len() - 1)].clone(),
            ),
        }
    }
}

/// `ln x`, out of line: inlined, the optimiser computes it for linear axes too (a logarithm
/// has no side effects, so it may be evaluated before the branch that needs it), which cost a
/// tenth of a suggestion's time.
#[inline(never)]
fn log_of(x: f64) -> f64 {
    x.ln()
}
