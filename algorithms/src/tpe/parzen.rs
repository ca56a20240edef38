//! Parzen estimators: weighted mixtures of one kernel per observed trial plus a prior kernel.
//!
//! A mixture is fitted to the located values of a group of trials (the good ones for `l(x)`,
//! the rest for `g(x)`). Each kernel has a weight (older trials weigh less once there are more
//! than 25, Optuna's ramp; the prior kernel has `prior_weight`) and, per parameter:
//!
//! - numeric axes: a normal truncated to the axis' range, centred on the trial's coordinate.
//!   Its bandwidth is the larger gap to the neighbouring observations along that axis, clipped
//!   to `[range / min(100, n + 2), range]` (the "magic clip" of Bergstra et al.). Joint
//!   (multivariate) models use the same per-axis bandwidths: Optuna 5 does too, having dropped
//!   the Scott's-rule bandwidth its earlier multivariate TPE used, which a benchmark here found
//!   clearly worse (see bench/README.md). Grid points get the mass of their cell;
//! - categorical axes: the trial's choice gets weight `1 + p/n`, every choice `p/n` (`p` the prior
//!   weight, `n` the number of kernels), normalised.
//!
//! The prior kernel is the whole range: a normal centred on the range with the range as its
//! bandwidth, or uniform over the choices.
//!
//! Densities are evaluated in log space with one exponential per kernel per candidate, into a
//! scratch buffer the caller owns, so scoring candidates allocates nothing.

use rand::Rng;

use super::axis::Axis;
use super::normal::{LN_SQRT_2PI, log_mass, truncated_draw};
use crate::rng::{below, unit};

/// Kernel parameters of one axis.
#[derive(Debug, Clone)]
enum Kernels {
    /// Truncated normals on `[low, high]`; `grid` axes score a point by its cell's mass.
    Numeric {
        mu: Vec<f64>,
        sigma: Vec<f64>,
        inv_sigma: Vec<f64>,
        /// For continuous axes `−ln σ − ln √(2π) − ln Z`; for grid axes `−ln Z`, where `Z` is the
        /// kernel's mass inside the range.
        log_norm: Vec<f64>,
        low: f64,
        high: f64,
        grid: bool,
    },
    /// Smoothed one-hot kernels; `choice` is `None` for the prior kernel.
    Categorical {
        choice: Vec<Option<u32>>,
        log_peak: f64,
        log_base: f64,
        log_uniform: f64,
        peak: f64,
        base: f64,
        count: u32,
    },
}

/// How a mixture is fitted.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    /// Weight of the prior kernel relative to an observation's.
    pub prior_weight: f64,
    /// Whether the outermost observations' bandwidths may reach to the range's ends.
    pub consider_endpoints: bool,
}

/// A fitted Parzen estimator over some axes.
#[derive(Debug, Clone)]
pub struct Mixture {
    log_weights: Vec<f64>,
    cumulative: Vec<f64>,
    axes: Vec<Kernels>,
}

/// Optuna's weights for `n` observations in trial order: equal up to 25, then a linear ramp
/// from `1/n` for the oldest up to 1 for the 25 most recent.
pub fn recency_weights(n: usize) -> Vec<f64> {
    const FLAT: usize = 25;
    if n < FLAT {
        return vec![1.0; n];
    }
    let ramp = n - FLAT;
    let mut weights = Vec::with_capacity(n);
    for i in 0..ramp {
        let t = if ramp > 1 {
            i as f64 / (ramp - 1) as f64
        } else {
            0.0
        };
        weights.push(1.0 / n as f64 + t * (1.0 - 1.0 / n as f64));
    }
    weights.resize(n, 1.0);
    weights
}

impl Mixture {
    /// Fits a mixture over `axes` to `columns`: per axis, the located values of the group's
    /// trials, in trial order (every column as long as the others).
    pub fn fit(axes: &[&Axis], columns: &[Vec<f64>], options: FitOptions) -> Mixture {
        let n = columns.first().map_or(0, Vec::len);
        let mut weights = recency_weights(n);
        weights.push(options.prior_weight);
        let total: f64 = weights.iter().sum();
        let log_weights: Vec<f64> = weights.iter().map(|w| (w / total).ln()).collect();
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut running = 0.0;
        for w in &weights {
            running += w / total;
            cumulative.push(running);
        }
        let fitted = axes
            .iter()
            .zip(columns)
            .map(|(axis, located)| fit_axis(axis, located, options))
            .collect();
        Mixture {
            log_weights,
            cumulative,
            axes: fitted,
        }
    }

    /// The number of kernels (observations plus the prior).
    pub fn kernels(&self) -> usize {
        self.log_weights.len()
    }

    /// Picks a kernel by weight.
    pub fn sample_kernel(&self, rng: &mut impl Rng) -> usize {
        let u = unit(rng);
        self.cumulative
            .partition_point(|c| *c <= u)
            .min(self.cumulative.len() - 1)
    }

    /// Draws axis `d`'s located value from kernel `k`.
    pub fn sample(&self, axis: &Axis, d: usize, k: usize, rng: &mut impl Rng) -> f64 {
        match &self.axes[d] {
            Kernels::Numeric {
                mu,
                sigma,
                low,
                high,
                grid,
                ..
            } => {
                let (m, s) = (mu[k], sigma[k]);
                let z = truncated_draw((low - m) / s, (high - m) / s, unit(rng));
                let t = (m + s * z).clamp(*low, *high);
                if *grid { axis.point_at(t) } else { t }
            }
            Kernels::Categorical {
                choice,
                peak,
                base,
                count,
                ..
            } => match choice[k] {
                None => below(rng, u64::from(*count)) as f64,
                Some(c) => {
                    let u = unit(rng);
                    let extra = peak - base;
                    if u < extra {
                        f64::from(c)
                    } else {
                        (((u - extra) / base).floor()).min(f64::from(count - 1))
                    }
                }
            },
        }
    }

    /// Adds `ln p_k(x)` of axis `d` to every kernel's entry of `scratch` (`cell` is the grid
    /// cell of `x` on grid axes).
    fn accumulate(&self, d: usize, x: f64, cell: (f64, f64), scratch: &mut [f64]) {
        match &self.axes[d] {
            Kernels::Numeric {
                mu,
                inv_sigma,
                log_norm,
                grid: false,
                ..
            } => {
                for (((acc, m), r), c) in scratch.iter_mut().zip(mu).zip(inv_sigma).zip(log_norm) {
                    let z = (x - m) * r;
                    *acc += c - 0.5 * z * z;
                }
            }
            Kernels::Numeric {
                mu,
                inv_sigma,
                log_norm,
                grid: true,
                ..
            } => {
                for (((acc, m), r), c) in scratch.iter_mut().zip(mu).zip(inv_sigma).zip(log_norm) {
                    *acc += c + log_mass((cell.0 - m) * r, (cell.1 - m) * r);
                }
            }
            Kernels::Categorical {
                choice,
                log_peak,
                log_base,
                log_uniform,
                ..
            } => {
                for (acc, c) in scratch.iter_mut().zip(choice) {
                    *acc += match c {
                        None => *log_uniform,
                        Some(c) if f64::from(*c) == x => *log_peak,
                        Some(_) => *log_base,
                    };
                }
            }
        }
    }

    /// `ln` of the mixture's density of axis `d` alone at located value `x`.
    pub fn log_marginal(&self, axis: &Axis, d: usize, x: f64, scratch: &mut Vec<f64>) -> f64 {
        scratch.clear();
        scratch.extend_from_slice(&self.log_weights);
        self.accumulate(d, x, axis.cell(x), scratch);
        log_sum_exp(scratch)
    }

    /// `ln` of the mixture's joint density at located values `xs` (one per axis).
    pub fn log_joint(&self, axes: &[&Axis], xs: &[f64], scratch: &mut Vec<f64>) -> f64 {
        scratch.clear();
        scratch.extend_from_slice(&self.log_weights);
        for (d, (axis, x)) in axes.iter().zip(xs).enumerate() {
            self.accumulate(d, *x, axis.cell(*x), scratch);
        }
        log_sum_exp(scratch)
    }
}

/// Terms this far (in log space) below the largest are left out of a sum: `e^−40 ≈ 4·10⁻¹⁸`
/// is below half an ulp of the sum (which is at least 1), and skipping them avoids `exp`'s slow
/// underflow path for the many kernels far from a candidate.
const NEGLIGIBLE: f64 = -40.0;

/// `ln Σ exp(v)`, stable for large and very negative terms.
fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    let sum: f64 = values
        .iter()
        .map(|v| v - max)
        .filter(|d| *d > NEGLIGIBLE)
        .map(f64::exp)
        .sum();
    max + sum.ln()
}

fn fit_axis(axis: &Axis, located: &[f64], options: FitOptions) -> Kernels {
    let n = located.len();
    let kernels = n + 1;
    if let Axis::Categorical { choices } = axis {
        let count = choices.len() as u32;
        let smoothing = options.prior_weight / kernels as f64;
        let row = f64::from(count) * smoothing + 1.0;
        let (peak, base) = ((1.0 + smoothing) / row, smoothing / row);
        let mut choice: Vec<Option<u32>> = located.iter().map(|x| Some(*x as u32)).collect();
        choice.push(None);
        return Kernels::Categorical {
            choice,
            log_peak: peak.ln(),
            log_base: base.ln(),
            log_uniform: -f64::from(count).ln(),
            peak,
            base,
            count,
        };
    }
    let grid = matches!(axis, Axis::Grid { .. });
    let (low, high) = axis.bounds();
    let range = high - low;
    let mut mu: Vec<f64> = located.iter().map(|x| axis.centre(*x)).collect();
    let mut sigma = neighbour_gaps(&mu, low, high, options.consider_endpoints);
    let min_sigma = range / (kernels as f64 + 1.0).min(100.0);
    for s in &mut sigma {
        *s = s.clamp(min_sigma, range);
    }
    mu.push(low + range / 2.0);
    sigma.push(range);
    // Most kernels of a large group sit at the clip: their logarithm is taken once.
    let ln_min_sigma = min_sigma.ln();
    let log_norm = mu
        .iter()
        .zip(&sigma)
        .map(|(m, s)| {
            let log_z = log_mass((low - m) / s, (high - m) / s);
            if grid {
                -log_z
            } else {
                let ln_sigma = if *s == min_sigma {
                    ln_min_sigma
                } else {
                    s.ln()
                };
                -ln_sigma - LN_SQRT_2PI - log_z
            }
        })
        .collect();
    Kernels::Numeric {
        inv_sigma: sigma.iter().map(|s| 1.0 / s).collect(),
        mu,
        sigma,
        log_norm,
        low,
        high,
        grid,
    }
}

/// Each observation's bandwidth: the larger of the gaps to its neighbours in sorted order,
/// where the range's ends count as neighbours of the outermost observations only with
/// `consider_endpoints` (otherwise those use their inner gap, as Optuna does).
fn neighbour_gaps(mu: &[f64], low: f64, high: f64, consider_endpoints: bool) -> Vec<f64> {
    let n = mu.len();
    let sorted = sorted_keys(mu, low, high);
    let at = |rank: usize| -> f64 {
        match rank {
            0 => low,
            r if r > n => high,
            r => mu[sorted[r - 1].1 as usize],
        }
    };
    let mut sigma = vec![0.0; n];
    for (rank, &(_, i)) in sorted.iter().enumerate() {
        let i = i as usize;
        // Ranks shifted by one: 0 is `low`, n + 1 is `high`.
        let left = at(rank + 1) - at(rank);
        let right = at(rank + 2) - at(rank + 1);
        sigma[i] = left.max(right);
    }
    if !consider_endpoints && n >= 2 {
        sigma[sorted[0].1 as usize] = at(2) - at(1);
        sigma[sorted[n - 1].1 as usize] = at(n) - at(n - 1);
    }
    sigma
}

/// `(order key, position)` of every value, sorted: a bucket sort over `[low, high]` (one bucket
/// per value on average, each bucket sorted on its own), so the usual cost is linear. Buckets
/// are a monotone function of the value, so the result is exactly the fully sorted order
/// (ties by position).
fn sorted_keys(values: &[f64], low: f64, high: f64) -> Vec<(u64, u32)> {
    let n = values.len();
    let buckets = n.max(1);
    let scale = if high > low {
        buckets as f64 / (high - low)
    } else {
        0.0
    };
    // NaN and values outside the range land in the end buckets; `as` saturates.
    let bucket = |x: f64| (((x - low) * scale) as usize).min(buckets - 1);
    let mut starts = vec![0_usize; buckets + 1];
    for x in values {
        starts[bucket(*x) + 1] += 1;
    }
    for b in 0..buckets {
        starts[b + 1] += starts[b];
    }
    let mut next = starts.clone();
    let mut sorted = vec![(0_u64, 0_u32); n];
    for (x, position) in values.iter().zip(0_u32..) {
        let b = bucket(*x);
        sorted[next[b]] = (order_key(*x), position);
        next[b] += 1;
    }
    for b in 0..buckets {
        let bucket = &mut sorted[starts[b]..starts[b + 1]];
        if bucket.len() > 1 {
            bucket.sort_unstable();
        }
    }
    sorted
}

/// An integer whose order is the order of `x` (`f64::total_cmp`'s).
fn order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn continuous() -> Axis {
        Axis::Continuous {
            low: 0.0,
            high: 10.0,
            log: false,
            min: 0.0,
            max: 10.0,
        }
    }

    const OPTIONS: FitOptions = FitOptions {
        prior_weight: 1.0,
        consider_endpoints: false,
    };

    #[test]
    fn recency_weights_ramp_after_25() {
        assert_eq!(recency_weights(3), vec![1.0; 3]);
        let w = recency_weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-12);
        assert!((w[4] - 1.0).abs() < 1e-12);
        assert!(w[..5].windows(2).all(|p| p[0] < p[1]));
        assert!(w[5..].iter().all(|x| *x == 1.0));
    }

    #[test]
    fn bucket_sort_gives_the_full_sort() {
        let mut state = 7_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1_u64 << 53) as f64
        };
        for n in [0, 1, 2, 5, 100, 1000] {
            // Uniform, clustered, and with exact duplicates.
            let values: Vec<f64> = (0..n)
                .map(|i| match i % 3 {
                    0 => next() * 10.0,
                    1 => 3.0 + next() * 1e-9,
                    _ => 7.0,
                })
                .collect();
            let mut expected: Vec<(u64, u32)> =
                values.iter().map(|x| order_key(*x)).zip(0..).collect();
            expected.sort_unstable();
            assert_eq!(sorted_keys(&values, 0.0, 10.0), expected, "n = {n}");
        }
    }

    #[test]
    fn neighbour_gaps_by_hand() {
        // Sorted 1, 2, 6 in [0, 10]: gaps (1,1), (1,4), (4,4); the ends use the inner gap.
        let s = neighbour_gaps(&[6.0, 1.0, 2.0], 0.0, 10.0, false);
        assert_eq!(s, vec![4.0, 1.0, 4.0]);
        let s = neighbour_gaps(&[6.0, 1.0, 2.0], 0.0, 10.0, true);
        assert_eq!(s, vec![4.0, 1.0, 4.0]);
        let s = neighbour_gaps(&[9.0, 1.0], 0.0, 10.0, true);
        assert_eq!(s, vec![8.0, 8.0]);
    }

    #[test]
    fn density_matches_a_hand_computed_mixture() {
        // One observation at 5: bandwidth 5, the larger gap to the range's ends (inside the
        // clip [10/3, 10]); prior N(5, 10). Weights 1/2 each, both truncated to [0, 10].
        let axis = continuous();
        let mixture = Mixture::fit(&[&axis], &[vec![5.0]], OPTIONS);
        let phi = |z: f64| 0.5 * (1.0 + libm::erf(z / 2f64.sqrt()));
        let pdf = |x: f64, m: f64, s: f64| {
            (-0.5 * ((x - m) / s).powi(2)).exp()
                / (s * (2.0 * std::f64::consts::PI).sqrt())
                / (phi((10.0 - m) / s) - phi((0.0 - m) / s))
        };
        let x = 3.0;
        let expected = 0.5 * pdf(x, 5.0, 5.0) + 0.5 * pdf(x, 5.0, 10.0);
        let mut scratch = Vec::new();
        let got = mixture.log_marginal(&axis, 0, x, &mut scratch).exp();
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn grid_masses_sum_to_one() {
        let axis = Axis::new(&crate::space::Domain::Int {
            min: 1,
            max: 6,
            step: None,
            distribution: crate::space::Distribution::Uniform,
        })
        .expect("a real axis");
        let mixture = Mixture::fit(&[&axis], &[vec![0.0, 4.0, 5.0]], OPTIONS);
        let mut scratch = Vec::new();
        let total: f64 = (0..6)
            .map(|k| {
                mixture
                    .log_marginal(&axis, 0, f64::from(k), &mut scratch)
                    .exp()
            })
            .sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
    }

    #[test]
    fn categorical_kernels_by_hand() {
        let axis = Axis::Categorical {
            choices: vec!["a".into(), "b".into(), "c".into()],
        };
        // Two observations of "a": kernels n+1 = 3, smoothing 1/3, row 2; each observation
        // gives a 2/3, others 1/6; the prior 1/3 each. Weights 1/3 per kernel.
        let mixture = Mixture::fit(&[&axis], &[vec![0.0, 0.0]], OPTIONS);
        let mut scratch = Vec::new();
        let p = |x: f64, scratch: &mut Vec<f64>| mixture.log_marginal(&axis, 0, x, scratch).exp();
        let a = 2.0 / 3.0 * (2.0 / 3.0) + 1.0 / 9.0;
        let b = 2.0 / 3.0 * (1.0 / 6.0) + 1.0 / 9.0;
        assert!((p(0.0, &mut scratch) - a).abs() < 1e-12);
        assert!((p(1.0, &mut scratch) - b).abs() < 1e-12);
        assert!((p(0.0, &mut scratch) + 2.0 * p(1.0, &mut scratch) - 1.0).abs() < 1e-12);
    }
}
