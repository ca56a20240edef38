//! The one place randomness is made.
//!
//! Every random draw of every algorithm comes from a generator built here by [`trial_rng`] from
//! three numbers: the experiment's seed, the index of the trial being suggested and a stream
//! number (the parameter's position, for samplers that draw parameter by parameter). The three
//! are mixed through SplitMix64 into the state of a xoshiro256++ generator, a *named* PRNG whose
//! output is fixed by its published algorithm, unlike `StdRng`, which may change between `rand`
//! releases.
//!
//! Deriving a fresh generator per (seed, trial, stream) rather than advancing one long stream is
//! what makes suggestions independent of batching: trial 7 gets the same values whether it was
//! asked for alone or as the third of a batch of five, and a restarted engine needs nothing but
//! the seed and the trial count to continue. Keeping parameters on their own streams also means
//! that adding a parameter to a space does not reshuffle the values of the others.
//!
//! The sampling primitives ([`unit()`], [`below`], [`standard_normal`]) are written here, a few
//! lines each, instead of taken from `rand`'s distributions, so that the values an experiment
//! sees depend only on this file and the xoshiro256++ algorithm. The fixed-seed snapshot test in
//! [`crate::random`] notices any change.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The SplitMix64 output function applied to `state + γ`: a bijection on `u64` that scatters
/// nearby inputs (0, 1, 2, ...) to unrelated outputs.
fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator for `stream` of trial `trial_index` in the experiment seeded with `seed`.
///
/// The inputs are chained through [`splitmix64`] (each step a bijection, so for a fixed seed
/// distinct trials, and for a fixed trial distinct streams, get distinct keys), and the key is
/// expanded by four more SplitMix64 steps into the 256-bit xoshiro256++ state.
pub(crate) fn trial_rng(seed: u64, trial_index: u64, stream: u64) -> impl Rng {
    let key = splitmix64(splitmix64(splitmix64(seed) ^ trial_index) ^ stream);
    let mut bytes = [0_u8; 32];
    let mut counter = key;
    for chunk in bytes.chunks_exact_mut(8) {
        counter = counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
        chunk.copy_from_slice(&splitmix64(counter).to_le_bytes());
    }
    Xoshiro256PlusPlus::from_seed(bytes)
}

/// A real number drawn evenly from `[0, 1)`, with 53 random bits (every value is a multiple of
/// 2⁻⁵³).
pub(crate) fn unit(rng: &mut impl Rng) -> f64 {
    const SCALE: f64 = 1.0 / (1_u64 << 53) as f64;
    (rng.next_u64() >> 11) as f64 * SCALE
}

/// An integer drawn evenly from `0..n` (0 when `n` is 0), without modulo bias: Lemire's
/// multiply-and-reject method, which almost never needs a second draw.
pub(crate) fn below(rng: &mut impl Rng, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut product = u128::from(rng.next_u64()) * u128::from(n);
    if (product as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (product as u64) < threshold {
            product = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (product >> 64) as u64
}

/// An integer drawn evenly from `0..n` for counts up to 2⁶⁴ (the size of the full `i64` range).
pub(crate) fn below_wide(rng: &mut impl Rng, n: u128) -> u128 {
    match u64::try_from(n) {
        Ok(n) => u128::from(below(rng, n)),
        // Only 2^64 itself is larger than u64::MAX among the counts callers pass, and every
        // u64 is an even draw from 0..2^64.
        Err(_) => u128::from(rng.next_u64()),
    }
}

/// A draw from the standard normal distribution (mean 0, standard deviation 1), by the
/// Box–Muller transform.
pub(crate) fn standard_normal(rng: &mut impl Rng) -> f64 {
    // 1 - unit lies in (0, 1], so the logarithm is finite.
    let radius = (-2.0 * (1.0 - unit(rng)).ln()).sqrt();
    let angle = std::f64::consts::TAU * unit(rng);
    radius * angle.cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs of the reference SplitMix64 generator seeded with 0
        // (state advanced by γ before each output).
        let mut state = 0_u64;
        let mut outputs = Vec::new();
        for _ in 0..3 {
            outputs.push(splitmix64(state));
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        }
        assert_eq!(
            outputs,
            vec![
                0xE220_A839_7B1D_CDAF,
                0x6E78_9E6A_A1B9_65F4,
                0x06C4_5D18_8009_454F
            ]
        );
    }

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let first = |seed, trial, stream| trial_rng(seed, trial, stream).next_u64();
        assert_eq!(first(1, 2, 3), first(1, 2, 3));
        let mut seen = std::collections::HashSet::new();
        for seed in 0..4 {
            for trial in 0..16 {
                for stream in 0..4 {
                    assert!(seen.insert(first(seed, trial, stream)));
                }
            }
        }
    }

    #[test]
    fn unit_stays_in_the_half_open_interval() {
        let mut rng = trial_rng(0, 0, 0);
        let draws = (0..10_000).map(|_| unit(&mut rng)).collect::<Vec<_>>();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut rng = trial_rng(9, 0, 0);
        assert_eq!(below(&mut rng, 0), 0);
        assert_eq!(below(&mut rng, 1), 0);
        let mut counts = [0_u32; 7];
        for _ in 0..7_000 {
            let k = below(&mut rng, 7);
            counts[usize::try_from(k).expect("k < 7")] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        for _ in 0..100 {
            assert!(below(&mut rng, u64::MAX) < u64::MAX);
            assert!(below_wide(&mut rng, 1 << 64) < 1 << 64);
        }
    }

    #[test]
    fn standard_normal_has_mean_zero_and_unit_variance() {
        let mut rng = trial_rng(3, 1, 4);
        let n = 20_000;
        let draws = (0..n)
            .map(|_| standard_normal(&mut rng))
            .collect::<Vec<_>>();
        assert!(draws.iter().all(|z| z.is_finite()));
        let mean = draws.iter().sum::<f64>() / f64::from(n);
        let variance = draws.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / f64::from(n);
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((variance - 1.0).abs() < 0.05, "variance {variance}");
    }
}
