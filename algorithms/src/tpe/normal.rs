//! The normal distribution truncated to an interval: log masses and draws that stay accurate
//! far in the tails.
//!
//! A naive `Φ(b) − Φ(a)` loses every digit when both ends lie in the upper tail (both CDF values
//! round to 1), and a naive inverse-CDF draw there returns infinities. Both are computed here
//! from the complementary error function on the side of the mean where the interval lies, so
//! that the small numbers stay small instead of being differences of numbers near 1.
//!
//! `erfc` comes from `libm` (a port of musl's, accurate to the last bits); statrs' is off by
//! about 1e-11 near 1, which the hand-computed tests below would catch.

use libm::erfc;
use statrs::function::erf::erfc_inv;

/// `ln(√(2π))`.
pub const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// The smallest log mass reported: an interval more than ~38 standard deviations away still
/// has a (tiny) probability, so that ratios of densities stay finite.
const LOG_MASS_FLOOR: f64 = -745.0;

/// `Φ(x)` of the standard normal for `x ≤ 0`, accurate in the lower tail.
fn lower_tail(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Beyond this many standard deviations a tail holds less than half an ulp of 1
/// (`Φ(−8.5) ≈ 9.5·10⁻¹⁸`), so an interval reaching past it on both sides has mass exactly 1.0
/// in `f64`: returning 0 there is not an approximation, it skips four `erfc` calls.
const WHOLE: f64 = 8.5;

/// `ln(Φ(b) − Φ(a))` for the standard normal and `a ≤ b`.
pub fn log_mass(a: f64, b: f64) -> f64 {
    if a <= -WHOLE && b >= WHOLE {
        return 0.0;
    }
    // Reflect an interval in the upper half to the lower half, where Φ is small and exact.
    let (a, b) = if a > 0.0 { (-b, -a) } else { (a, b) };
    let mass = if b <= 0.0 {
        lower_tail(b) - lower_tail(a)
    } else {
        // The interval straddles the mean: 1 − Φ(a) − (1 − Φ(b)), both tails small. A tail
        // beyond WHOLE is below half an ulp of what it is subtracted from: skipping it gives
        // the same f64.
        let tail = |x: f64| if x <= -WHOLE { 0.0 } else { lower_tail(x) };
        1.0 - tail(a) - tail(-b)
    };
    if mass > 0.0 {
        mass.ln().max(LOG_MASS_FLOOR)
    } else {
        // Too far out for f64: a density-times-width estimate at the nearer end.
        let near = if b <= 0.0 { b } else { 0.0 };
        (-0.5 * near * near - LN_SQRT_2PI + (b - a).max(f64::MIN_POSITIVE).ln()).max(LOG_MASS_FLOOR)
    }
}

/// A draw from the standard normal truncated to `[a, b]` (`a ≤ b`), from a uniform `u` in
/// `[0, 1)`, by inverting the CDF on the lower side of the mean.
pub fn truncated_draw(a: f64, b: f64, u: f64) -> f64 {
    if a > 0.0 {
        return -truncated_draw(-b, -a, 1.0 - u);
    }
    let low = lower_tail(a);
    let x = if b <= 0.0 {
        inverse_lower(low + u * (lower_tail(b) - low))
    } else {
        // Straddling the mean: Φ(b) may be close to 1, so work with 1 − Φ(b) for that end.
        let p = low + u * (1.0 - low - lower_tail(-b));
        if p < 0.5 {
            inverse_lower(p)
        } else {
            -inverse_lower(1.0 - p)
        }
    };
    if x.is_finite() {
        x.clamp(a, b)
    } else {
        a.max(b.min(0.0))
    }
}

/// `Φ⁻¹(p)` for `p ≤ 0.5`.
fn inverse_lower(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    -std::f64::consts::SQRT_2 * erfc_inv(2.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_mass_matches_hand_computed_values() {
        // Φ(1) − Φ(−1) = 0.682689492...
        assert!((log_mass(-1.0, 1.0) - 0.682_689_492_137_086_f64.ln()).abs() < 1e-12);
        // Φ(0) − Φ(−∞) = 0.5.
        assert!((log_mass(f64::NEG_INFINITY, 0.0) - 0.5_f64.ln()).abs() < 1e-12);
        // Upper tail: 1 − Φ(10) = 7.619853024160527e-24; a naive difference gives 0.
        let tail = log_mass(10.0, f64::INFINITY);
        assert!(
            (tail - 7.619_853_024_160_527e-24_f64.ln()).abs() < 1e-9,
            "{tail}"
        );
        // Symmetry.
        assert!((log_mass(2.0, 3.0) - log_mass(-3.0, -2.0)).abs() < 1e-12);
        // Beyond f64: finite, and decreasing with distance.
        assert!(log_mass(60.0, 61.0).is_finite());
        assert!(log_mass(40.0, 41.0) >= log_mass(60.0, 61.0));
    }

    #[test]
    fn draws_stay_inside_even_far_in_a_tail() {
        for (a, b) in [
            (-1.0, 1.0),
            (3.0, 4.0),
            (-40.0, -39.0),
            (8.0, 30.0),
            (-0.5, 50.0),
        ] {
            for k in 0..100 {
                let u = f64::from(k) / 100.0;
                let x = truncated_draw(a, b, u);
                assert!((a..=b).contains(&x), "{x} outside [{a}, {b}] for u = {u}");
            }
        }
    }

    #[test]
    fn draws_follow_the_truncated_distribution() {
        // The median of N(0, 1) truncated to [0, ∞) is Φ⁻¹(0.75) = 0.6744897...
        let median = truncated_draw(0.0, f64::INFINITY, 0.5);
        assert!((median - 0.674_489_750_196_081_7).abs() < 1e-9, "{median}");
        // Draws are monotone in u.
        let xs: Vec<f64> = (0..50)
            .map(|k| truncated_draw(-2.0, 0.5, f64::from(k) / 50.0))
            .collect();
        assert!(xs.windows(2).all(|w| w[0] <= w[1]));
    }
}
