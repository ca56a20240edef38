//! Stepped values: the points `min + k * step` of a numeric parameter that lie in `[min, max]`.
//!
//! Grid search enumerates these points and random search rounds its draws to them, so both use
//! the same arithmetic, kept here. Two rules make the points trustworthy:
//!
//! - A point is computed as `min + k * step` from its index `k`, never by adding `step` again and
//!   again, so float error does not accumulate along the grid.
//! - The count includes `max` when `max` is a whole number of steps from `min` up to float error
//!   (`0.01..=0.05` by `0.005` has 9 points, not 8), and a point is rounded to 12 significant
//!   digits when that moves it by a negligible fraction of a step, so that `0.01 + 1 * 0.005`
//!   is `0.015` rather than `0.015000000000000001`. Points are then clamped into `[min, max]`,
//!   so no rounding can ever leave the domain.

/// How far past a whole number of steps (in steps) `max` may sit and still count as the last
/// point. Float error in `(max - min) / step` is far below this for any grid with fewer than a
/// million points per parameter.
const COUNT_TOLERANCE: f64 = 1e-9;

/// Significant digits kept when cleaning a point.
const SIGNIFICANT_DIGITS: i32 = 12;

/// How far (in steps) cleaning may move a point; beyond this the raw point is kept, so that
/// points of a fine grid far from zero (`1e6 + k * 1e-9`) stay distinct.
const CLEANING_TOLERANCE: f64 = 1e-6;

/// The powers of ten that `f64` holds exactly.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The stepped points of a `double` parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DoubleSteps {
    min: f64,
    max: f64,
    step: f64,
    /// Index of the last point, a whole number (an `f64` because it may exceed `u64`).
    last: f64,
}

impl DoubleSteps {
    /// The points of `[min, max]` by `step`, or `None` when they cannot be counted in an `f64`
    /// (a step so small against the range that the count overflows), or when the inputs are
    /// not finite with `min <= max` and `step > 0`.
    pub(crate) fn new(min: f64, max: f64, step: f64) -> Option<Self> {
        let valid = min.is_finite() && max.is_finite() && min <= max && step > 0.0;
        if !valid || !step.is_finite() {
            return None;
        }
        let mut steps = (max - min) / step;
        if !steps.is_finite() {
            // max - min overflowed; the difference of the quotients does not.
            steps = max / step - min / step;
        }
        let last = (steps + COUNT_TOLERANCE).floor();
        last.is_finite().then_some(DoubleSteps {
            min,
            max,
            step,
            last,
        })
    }

    /// The number of points, when it fits in a `u64`.
    pub(crate) fn count(&self) -> Option<u64> {
        // 2^64 as f64; every whole f64 below it converts exactly.
        const LIMIT: f64 = 18_446_744_073_709_551_616.0;
        let count = self.last + 1.0;
        (count < LIMIT).then_some(count as u64)
    }

    /// The number of points as an `f64` (a whole number, possibly beyond `u64`).
    pub(crate) fn count_f64(&self) -> f64 {
        self.last + 1.0
    }

    /// Point `k` (clamped to the last point), cleaned and inside `[min, max]`.
    pub(crate) fn at(&self, k: f64) -> f64 {
        let k = k.clamp(0.0, self.last);
        let raw = self.min + k * self.step;
        clean(raw, self.step).clamp(self.min, self.max)
    }

    /// The index of the point nearest to `x`, clamped to the grid.
    pub(crate) fn index_of(&self, x: f64) -> f64 {
        ((x - self.min) / self.step).round().clamp(0.0, self.last)
    }

    /// The point nearest to `x` (the first or last point when `x` is outside the range).
    pub(crate) fn nearest(&self, x: f64) -> f64 {
        self.at(((x - self.min) / self.step).round())
    }
}

/// Rounds `x` to [`SIGNIFICANT_DIGITS`] significant digits, unless that would move it by more
/// than [`CLEANING_TOLERANCE`] steps (or it is zero or not finite), in which case `x` is returned
/// as it is.
fn clean(x: f64, step: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let exponent = x.abs().log10().floor() as i32;
    let power = SIGNIFICANT_DIGITS - 1 - exponent;
    let Some(&scale) = POWERS_OF_TEN.get(power.unsigned_abs() as usize) else {
        return x;
    };
    // Scale to an integer of at most 12 digits, round, scale back: each operation is correctly
    // rounded and the power of ten is exact, so the result is the double nearest the decimal.
    let rounded = if power >= 0 {
        (x * scale).round() / scale
    } else {
        (x / scale).round() * scale
    };
    if (rounded - x).abs() <= step * CLEANING_TOLERANCE {
        rounded
    } else {
        x
    }
}

/// The stepped points of an `int` parameter (step 1 when none is given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IntSteps {
    min: i64,
    max: i64,
    step: i64,
    /// Index of the last point (up to 2⁶⁴ - 1, for the full `i64` range by 1).
    last: u128,
}

impl IntSteps {
    /// The points of `[min, max]` by `step`, or `None` unless `min <= max` and `step >= 1`.
    pub(crate) fn new(min: i64, max: i64, step: i64) -> Option<Self> {
        if min > max || step < 1 {
            return None;
        }
        let span = i128::from(max) - i128::from(min);
        let last = u128::try_from(span / i128::from(step)).ok()?;
        Some(IntSteps {
            min,
            max,
            step,
            last,
        })
    }

    /// The number of points (at most 2⁶⁴).
    pub(crate) fn count(&self) -> u128 {
        self.last + 1
    }

    /// The index of the point nearest to `x`, clamped to the grid (an `f64`, since it may
    /// exceed `u64`).
    pub(crate) fn index_of(&self, x: f64) -> f64 {
        ((x - self.min as f64) / self.step as f64)
            .round()
            .clamp(0.0, self.last as f64)
    }

    /// Point `k` (clamped to the last point).
    pub(crate) fn at(&self, k: u128) -> i64 {
        let k = k.min(self.last);
        // k <= last <= 2^64 - 1 and step <= 2^63 - 1, so the product fits in an i128, and the
        // point lies in [min, max] by the definition of `last`.
        let offset = i128::try_from(k).unwrap_or(i128::MAX) * i128::from(self.step);
        i64::try_from(i128::from(self.min) + offset).unwrap_or(self.max)
    }

    /// The point nearest to `x` (the first or last point when `x` is outside the range).
    pub(crate) fn nearest(&self, x: f64) -> i64 {
        let k = ((x - self.min as f64) / self.step as f64).round();
        // A float-to-integer `as` cast saturates (and maps NaN to 0), so this cannot wrap.
        self.at(k.max(0.0) as u128)
    }
}

/// The points of a grid: what the TPE axes and the importance encoding both walk.
#[derive(Debug, Clone)]
pub(crate) enum Points {
    /// `min + k * step` integers.
    Int(IntSteps),
    /// `min + k * step` reals.
    Double(DoubleSteps),
    /// A `discrete` list's values, sorted, without duplicates.
    List(Vec<f64>),
}

impl Points {
    /// The number of points, as an `f64` (it may exceed `u64` for a stepped `double`).
    pub(crate) fn count(&self) -> f64 {
        match self {
            Points::Int(steps) => steps.count() as f64,
            Points::Double(steps) => steps.count_f64(),
            Points::List(values) => values.len() as f64,
        }
    }

    /// The index of the point nearest to `x`, clamped to the grid.
    pub(crate) fn index_of(&self, x: f64) -> f64 {
        match self {
            Points::Int(steps) => steps.index_of(x),
            Points::Double(steps) => steps.index_of(x),
            Points::List(values) => nearest_in(values, x),
        }
    }

    /// The value of point `k` (a whole number within the grid).
    pub(crate) fn value(&self, k: f64) -> f64 {
        match self {
            Points::Int(steps) => steps.at(k.max(0.0) as u128) as f64,
            Points::Double(steps) => steps.at(k),
            Points::List(values) => {
                let index = (k.max(0.0) as usize).min(values.len().saturating_sub(1));
                values.get(index).copied().unwrap_or(0.0)
            }
        }
    }
}

/// The index of the value of the sorted `values` nearest to `x`.
fn nearest_in(values: &[f64], x: f64) -> f64 {
    let after = values.partition_point(|v| *v < x);
    let before = after.saturating_sub(1);
    let nearest = match (values.get(after), values.get(before)) {
        (Some(a), Some(b)) if (a - x).abs() < (x - b).abs() => after,
        (Some(_), None) => after,
        _ => before,
    };
    nearest as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(steps: &DoubleSteps) -> Vec<f64> {
        let count = steps.count().expect("small grid");
        (0..count).map(|k| steps.at(k as f64)).collect()
    }

    #[test]
    fn double_steps_include_max_and_print_clean() {
        let steps = DoubleSteps::new(0.01, 0.05, 0.005).expect("valid");
        let printed = points(&steps)
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>();
        assert_eq!(
            printed,
            [
                "0.01", "0.015", "0.02", "0.025", "0.03", "0.035", "0.04", "0.045", "0.05"
            ]
        );
        let steps = DoubleSteps::new(0.0, 1.0, 0.1).expect("valid");
        assert_eq!(points(&steps).len(), 11);
        assert_eq!(points(&steps)[3], 0.3);
        assert_eq!(points(&steps)[7], 0.7);
    }

    #[test]
    fn double_steps_stop_below_max_when_it_is_not_on_the_grid() {
        let steps = DoubleSteps::new(0.0, 1.0, 0.3).expect("valid");
        assert_eq!(points(&steps), [0.0, 0.3, 0.6, 0.9]);
        let steps = DoubleSteps::new(1.0, 1.5, 2.0).expect("valid");
        assert_eq!(points(&steps), [1.0]);
    }

    #[test]
    fn double_steps_snap_to_the_nearest_point() {
        let steps = DoubleSteps::new(-1.0, 1.0, 0.25).expect("valid");
        assert_eq!(steps.nearest(0.1), 0.0);
        assert_eq!(steps.nearest(0.13), 0.25);
        assert_eq!(steps.nearest(-7.0), -1.0);
        assert_eq!(steps.nearest(7.0), 1.0);
    }

    #[test]
    fn fine_grids_far_from_zero_stay_distinct() {
        let steps = DoubleSteps::new(1e6, 1e6 + 1e-6, 1e-9).expect("valid");
        let points = points(&steps);
        assert!(points.len() >= 1000);
        assert!(points.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn double_steps_reject_what_cannot_be_counted() {
        assert_eq!(DoubleSteps::new(1.0, 0.0, 0.1), None);
        assert_eq!(DoubleSteps::new(0.0, 1.0, 0.0), None);
        assert_eq!(DoubleSteps::new(0.0, f64::NAN, 0.1), None);
        assert_eq!(DoubleSteps::new(-1e308, 1e308, 1e-300), None);
        // max - min overflows, but the count (2e307 points) is an f64, if not a u64.
        let huge = DoubleSteps::new(-1e308, 1e308, 10.0).expect("countable in f64");
        assert_eq!(huge.count(), None);
        assert!(huge.at(1e300) <= 1e308);
        assert_eq!(huge.at(0.0), -1e308);
        assert_eq!(huge.nearest(f64::MAX), 1e308);
    }

    #[test]
    fn int_steps_cover_the_range() {
        let steps = IntSteps::new(1, 10, 3).expect("valid");
        assert_eq!(steps.count(), 4);
        assert_eq!(
            (0..4).map(|k| steps.at(k)).collect::<Vec<_>>(),
            [1, 4, 7, 10]
        );
        assert_eq!(steps.at(99), 10);
        assert_eq!(steps.nearest(5.4), 4);
        assert_eq!(steps.nearest(6.0), 7);
        assert_eq!(steps.nearest(-1e300), 1);
        assert_eq!(steps.nearest(f64::NAN), 1);

        let full = IntSteps::new(i64::MIN, i64::MAX, 1).expect("valid");
        assert_eq!(full.count(), 1 << 64);
        assert_eq!(full.at(0), i64::MIN);
        assert_eq!(full.at(u128::MAX), i64::MAX);
        assert_eq!(full.nearest(1e300), i64::MAX);
        assert_eq!(IntSteps::new(2, 1, 1), None);
        assert_eq!(IntSteps::new(1, 2, 0), None);
    }
}
