//! Random search: every trial's values drawn independently from the parameters' distributions.
//!
//! Random search is the baseline every other algorithm must beat, and often a hard one to beat
//! in high dimensions. It ignores the history except for its length, which gives the index of
//! the next trial; the values of trial `n` come from a generator derived from
//! `(seed, n, parameter index)`, so they do not depend on how suggestions were batched or on how
//! many times the engine restarted. It is never exhausted: `suggest` returns exactly as many
//! assignments as asked for, so the caller bounds `count` (by its parallelism).
//!
//! How each [`Domain`] is sampled:
//!
//! | domain | uniform | logUniform | normal | logNormal |
//! | --- | --- | --- | --- | --- |
//! | double | even on `[min, max]` | even on `[ln min, ln max]` | mean `(min+max)/2`, sd `(max-min)/6`, truncated to `[min, max]` | the same in log space |
//! | double with step | even over the stepped points | drawn as without step, then rounded to the nearest point | ditto | ditto |
//! | int | even over `min, min+step, ..., <= max` | even on `[ln(min-½), ln(max+½)]`, rounded to the nearest point | normal on `[min, max]`, rounded | log-normal, rounded |
//!
//! Truncation is by rejection (at most [`NORMAL_TRIES`] draws, then the last one is clamped).
//! `discrete` and `categorical` parameters take each listed value with equal probability.
//! Every value lies inside its domain; `int` parameters give [`ParameterValue::Int`], `double`
//! and `discrete` ones [`ParameterValue::Double`], categorical ones
//! [`ParameterValue::Categorical`].

use rand::Rng;

use crate::rng::{self, below, below_wide, standard_normal, unit};
use crate::space::{Distribution, Domain, ParameterValue, SearchSpace};
use crate::steps::{DoubleSteps, IntSteps};
use crate::{Algorithm, AlgorithmError, Assignment, Setting, Suggestions, TrialRecord};

/// How many normal draws a truncated-normal sample tries before it clamps the last one. Draws
/// fall outside mean ± 3 sd with probability 0.27%, so running out happens about once in
/// 10⁴¹ samples.
pub const NORMAL_TRIES: u32 = 16;

/// Random search over a [`SearchSpace`]. Built by [`crate::build`] as `random`, or directly with
/// [`RandomSearch::new`].
#[derive(Debug, Clone)]
pub struct RandomSearch {
    samplers: Vec<Sampler>,
}

impl RandomSearch {
    /// The settings random search accepts besides `random_state`: none.
    pub const SETTINGS: &'static [&'static str] = &[];

    /// Random search over `space`. The only setting accepted is `random_state`, which the
    /// engine reads as the experiment's seed.
    ///
    /// # Errors
    ///
    /// Every unknown or malformed setting ([`AlgorithmError::Setting`]) and every parameter
    /// whose domain breaks the space's invariants ([`AlgorithmError::Space`]).
    pub fn new(settings: &[Setting], space: &SearchSpace) -> Result<Self, Vec<AlgorithmError>> {
        let mut errors = crate::settings::check("random", settings, Self::SETTINGS);
        errors.extend(crate::space::check_space(space));
        if !errors.is_empty() {
            return Err(errors);
        }
        let samplers = space
            .parameters
            .iter()
            .map(|parameter| Sampler::new(&parameter.domain))
            .collect();
        Ok(RandomSearch { samplers })
    }

    /// The assignment of trial `trial_index` in the experiment seeded with `seed`.
    pub fn assignment(&self, seed: u64, trial_index: u64) -> Assignment {
        self.samplers
            .iter()
            .zip(0_u64..)
            .map(|(sampler, stream)| {
                let mut rng = rng::trial_rng(seed, trial_index, stream);
                sampler.sample(&mut rng)
            })
            .collect()
    }
}

impl Algorithm for RandomSearch {
    fn name(&self) -> &'static str {
        "random"
    }

    fn suggest(&self, seed: u64, history: &[TrialRecord], count: usize) -> Suggestions {
        let first = history.len() as u64;
        let assignments = (first..)
            .take(count)
            .map(|trial_index| self.assignment(seed, trial_index))
            .collect();
        Suggestions {
            assignments,
            exhausted: false,
        }
    }
}

/// How one parameter is sampled, prepared once from its [`Domain`].
#[derive(Debug, Clone)]
enum Sampler {
    /// A real number; `steps` when it is quantised and the points can be counted.
    Double {
        min: f64,
        max: f64,
        steps: Option<DoubleSteps>,
        distribution: Distribution,
    },
    /// An integer on its stepped points, `steps` absent only if the domain was invalid.
    Int {
        min: i64,
        max: i64,
        steps: Option<IntSteps>,
        distribution: Distribution,
    },
    Discrete(Vec<f64>),
    Categorical(Vec<String>),
}

impl Sampler {
    fn new(domain: &Domain) -> Self {
        match domain {
            Domain::Double {
                min,
                max,
                step,
                distribution,
            } => Sampler::Double {
                min: *min,
                max: *max,
                // A step too fine to count the points in an f64 is no step at all.
                steps: step.and_then(|step| DoubleSteps::new(*min, *max, step)),
                distribution: *distribution,
            },
            Domain::Int {
                min,
                max,
                step,
                distribution,
            } => Sampler::Int {
                min: *min,
                max: *max,
                steps: IntSteps::new(*min, *max, step.unwrap_or(1)),
                distribution: *distribution,
            },
            Domain::Discrete { values } => Sampler::Discrete(values.clone()),
            Domain::Categorical { choices } => Sampler::Categorical(choices.clone()),
        }
    }

    fn sample(&self, rng: &mut impl Rng) -> ParameterValue {
        match self {
            Sampler::Double {
                min,
                max,
                steps,
                distribution,
            } => ParameterValue::Double(sample_double(
                rng,
                *min,
                *max,
                steps.as_ref(),
                *distribution,
            )),
            Sampler::Int {
                min,
                max,
                steps,
                distribution,
            } => ParameterValue::Int(match steps {
                Some(steps) => sample_int(rng, *min, *max, steps, *distribution),
                // Unreachable for a checked space; the bound is still inside the domain.
                None => *min,
            }),
            Sampler::Discrete(values) => {
                ParameterValue::Double(pick(rng, values).copied().unwrap_or_default())
            }
            Sampler::Categorical(choices) => {
                ParameterValue::Categorical(pick(rng, choices).cloned().unwrap_or_default())
            }
        }
    }
}

/// A real number from `[min, max]`, on `steps` when given.
fn sample_double(
    rng: &mut impl Rng,
    min: f64,
    max: f64,
    steps: Option<&DoubleSteps>,
    distribution: Distribution,
) -> f64 {
    let drawn = match distribution {
        Distribution::Uniform => match steps {
            // Every point equally likely (rounding a continuous draw would halve the ends).
            Some(steps) => return steps.at((unit(rng) * steps.count_f64()).floor()),
            None => lerp(min, max, unit(rng)),
        },
        Distribution::LogUniform => lerp(min.ln(), max.ln(), unit(rng)).exp(),
        Distribution::Normal => truncated_normal(rng, min, max),
        Distribution::LogNormal => truncated_normal(rng, min.ln(), max.ln()).exp(),
    };
    match steps {
        Some(steps) => steps.nearest(drawn),
        None => drawn.clamp(min, max),
    }
}

/// An integer on the points of `steps`, which span `[min, max]`.
fn sample_int(
    rng: &mut impl Rng,
    min: i64,
    max: i64,
    steps: &IntSteps,
    distribution: Distribution,
) -> i64 {
    let (low, high) = (min as f64, max as f64);
    let drawn = match distribution {
        Distribution::Uniform => return steps.at(below_wide(rng, steps.count())),
        // Half a unit beyond each bound, so that rounding gives the end points their share.
        Distribution::LogUniform => lerp((low - 0.5).ln(), (high + 0.5).ln(), unit(rng)).exp(),
        Distribution::Normal => truncated_normal(rng, low, high),
        Distribution::LogNormal => truncated_normal(rng, low.ln(), high.ln()).exp(),
    };
    steps.nearest(drawn)
}

/// A draw from the normal distribution with mean `(low + high) / 2` and standard deviation
/// `(high - low) / 6`, truncated to `[low, high]`.
fn truncated_normal(rng: &mut impl Rng, low: f64, high: f64) -> f64 {
    // Halves first, so that neither the sum nor the difference overflows.
    let mean = low / 2.0 + high / 2.0;
    let deviation = (high / 2.0 - low / 2.0) / 3.0;
    let mut drawn = mean;
    for _ in 0..NORMAL_TRIES {
        drawn = mean + deviation * standard_normal(rng);
        if (low..=high).contains(&drawn) {
            return drawn;
        }
    }
    drawn.clamp(low, high)
}

/// The point a fraction `t` of the way from `low` to `high`, without overflow.
fn lerp(low: f64, high: f64, t: f64) -> f64 {
    let span = high - low;
    let point = if span.is_finite() {
        low + span * t
    } else {
        low * (1.0 - t) + high * t
    };
    point.clamp(low, high)
}

/// One of `items`, each equally likely (`None` only for an empty slice).
fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> Option<&'a T> {
    let index = below(rng, items.len() as u64);
    items.get(usize::try_from(index).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Parameter;
    use crate::test_support::{domain, double, example_space, inside, int};
    use crate::{TrialOutcome, build};
    use proptest::prelude::*;

    fn parameter(name: &str, domain: Domain) -> Parameter {
        Parameter {
            name: name.to_string(),
            domain,
        }
    }

    fn random_search(space: &SearchSpace) -> RandomSearch {
        RandomSearch::new(&[], space).expect("a valid space")
    }

    fn history(assignments: &[Assignment]) -> Vec<TrialRecord> {
        assignments
            .iter()
            .zip(0..)
            .map(|(assignment, index)| TrialRecord {
                index,
                assignment: assignment.clone(),
                outcome: TrialOutcome::Pending,
            })
            .collect()
    }

    #[test]
    fn built_by_name_and_never_exhausted() {
        let algorithm = build(
            "random",
            &[Setting::new("random_state", "5")],
            &example_space(),
        )
        .expect("builds");
        assert_eq!(algorithm.name(), "random");
        assert_eq!(algorithm.capacity(), None);
        let suggestions = algorithm.suggest(5, &[], 3);
        assert_eq!(suggestions.assignments.len(), 3);
        assert!(!suggestions.exhausted);
        assert!(algorithm.suggest(5, &[], 0).assignments.is_empty());
    }

    #[test]
    fn same_inputs_same_output_other_seed_other_output() {
        let search = random_search(&example_space());
        let first = search.suggest(7, &[], 4);
        assert_eq!(first, search.suggest(7, &[], 4));
        assert_ne!(first, search.suggest(8, &[], 4));
        // Every trial of a batch is different from the others.
        for (i, a) in first.assignments.iter().enumerate() {
            for b in &first.assignments[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn batching_does_not_change_the_values() {
        let search = random_search(&example_space());
        let at_once = search.suggest(11, &[], 5).assignments;
        let mut one_by_one: Vec<Assignment> = Vec::new();
        for _ in 0..5 {
            let mut next = search.suggest(11, &history(&one_by_one), 1).assignments;
            assert_eq!(next.len(), 1);
            one_by_one.append(&mut next);
        }
        assert_eq!(at_once, one_by_one);
        let later = search.suggest(11, &history(&at_once[..2]), 3).assignments;
        assert_eq!(later, at_once[2..]);
    }

    #[test]
    fn adding_a_parameter_keeps_the_others_values() {
        let space = example_space();
        let mut bigger = space.clone();
        bigger
            .parameters
            .push(parameter("extra", int(0, 9, None, Distribution::Uniform)));
        let small = random_search(&space).suggest(3, &[], 4).assignments;
        let large = random_search(&bigger).suggest(3, &[], 4).assignments;
        for (small, large) in small.iter().zip(&large) {
            assert_eq!(small[..], large[..small.len()]);
        }
    }

    /// Pins the first values of a fixed seed: a change to the PRNG, the stream derivation or a
    /// sampler shows up here. Update the expected values only for a deliberate change, and say
    /// so in the changelog, since it changes what existing seeds suggest.
    #[test]
    fn fixed_seed_snapshot() {
        let search = random_search(&example_space());
        let printed = search
            .suggest(42, &[], 3)
            .assignments
            .iter()
            .map(|assignment| format!("{assignment:?}"))
            .collect::<Vec<_>>();
        assert_eq!(
            printed,
            [
                r#"[Double(0.0073348763492158695), Int(3), Double(0.87), Double(32.0), Categorical("sgd")]"#,
                r#"[Double(1.1193491743440397e-5), Int(2), Double(0.88), Double(16.0), Categorical("rmsprop")]"#,
                r#"[Double(0.2005038726336775), Int(3), Double(0.85), Double(64.0), Categorical("adam")]"#,
            ]
        );
    }

    #[test]
    fn every_kind_and_distribution_stays_inside() {
        let distributions = [
            Distribution::Uniform,
            Distribution::LogUniform,
            Distribution::Normal,
            Distribution::LogNormal,
        ];
        let mut parameters = Vec::new();
        for distribution in distributions {
            parameters.push(parameter("d", double(0.001, 5.0, None, distribution)));
            parameters.push(parameter("ds", double(0.001, 5.0, Some(0.7), distribution)));
            parameters.push(parameter("i", int(1, 50, None, distribution)));
            parameters.push(parameter("is", int(2, 50, Some(4), distribution)));
        }
        let space = SearchSpace { parameters };
        let search = random_search(&space);
        for seed in 0..5 {
            for trial in 0..400 {
                let assignment = search.assignment(seed, trial);
                for (parameter, value) in space.parameters.iter().zip(&assignment) {
                    assert!(
                        inside(&parameter.domain, value),
                        "{parameter:?} gave {value:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn steps_are_respected() {
        let space = SearchSpace {
            parameters: vec![
                parameter("a", double(0.1, 1.0, Some(0.15), Distribution::Uniform)),
                parameter(
                    "b",
                    double(0.001, 10.0, Some(0.001), Distribution::LogUniform),
                ),
                parameter("c", int(3, 100, Some(7), Distribution::Uniform)),
                parameter("d", int(1, 1000, Some(10), Distribution::LogUniform)),
            ],
        };
        let search = random_search(&space);
        let mut seen_a = std::collections::BTreeSet::new();
        for trial in 0..2000 {
            let assignment = search.assignment(1, trial);
            for (parameter, value) in space.parameters.iter().zip(&assignment) {
                assert!(
                    inside(&parameter.domain, value),
                    "{} = {value:?}",
                    parameter.name
                );
            }
            if let ParameterValue::Double(a) = assignment[0] {
                seen_a.insert(a.to_string());
            }
        }
        let expected = ["0.1", "0.25", "0.4", "0.55", "0.7", "0.85", "1"];
        assert_eq!(seen_a.into_iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn uniform_steps_give_every_point_its_share() {
        let space = SearchSpace {
            parameters: vec![parameter(
                "a",
                double(0.0, 1.0, Some(0.25), Distribution::Uniform),
            )],
        };
        let search = random_search(&space);
        let mut counts = [0_u32; 5];
        for trial in 0..5000 {
            if let [ParameterValue::Double(x)] = search.assignment(2, trial)[..] {
                counts[(x * 4.0).round() as usize] += 1;
            }
        }
        assert!(
            counts.iter().all(|&c| (850..1150).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn log_uniform_spreads_across_decades() {
        let space = SearchSpace {
            parameters: vec![parameter(
                "lr",
                double(1e-5, 1.0, None, Distribution::LogUniform),
            )],
        };
        let search = random_search(&space);
        let mut logs = (0..4001)
            .filter_map(|trial| match search.assignment(9, trial)[..] {
                [ParameterValue::Double(x)] => Some(x.log10()),
                _ => None,
            })
            .collect::<Vec<_>>();
        logs.sort_by(f64::total_cmp);
        let median = logs[logs.len() / 2];
        assert!((median + 2.5).abs() < 0.15, "median decade {median}");
        // Each of the five decades holds about a fifth of the draws.
        for decade in -5..0 {
            let share = logs
                .iter()
                .filter(|&&l| (f64::from(decade)..f64::from(decade + 1)).contains(&l))
                .count();
            assert!((650..950).contains(&share), "decade {decade}: {share}");
        }
    }

    #[test]
    fn normal_concentrates_around_the_middle() {
        let space = SearchSpace {
            parameters: vec![
                parameter("x", double(0.0, 6.0, None, Distribution::Normal)),
                parameter("n", int(0, 60, None, Distribution::Normal)),
            ],
        };
        let search = random_search(&space);
        let samples = (0..4000)
            .map(|trial| search.assignment(4, trial))
            .collect::<Vec<_>>();
        let within_one_sd = samples
            .iter()
            .filter(|a| matches!(a[0], ParameterValue::Double(x) if (2.0..=4.0).contains(&x)))
            .count();
        // About 68% of a normal lies within one standard deviation of the mean.
        assert!((2550..2900).contains(&within_one_sd), "{within_one_sd}");
        let mean_n = samples
            .iter()
            .filter_map(|a| match a[1] {
                ParameterValue::Int(n) => Some(n as f64),
                _ => None,
            })
            .sum::<f64>()
            / 4000.0;
        assert!((mean_n - 30.0).abs() < 0.5, "{mean_n}");
    }

    #[test]
    fn extreme_domains_stay_inside() {
        let space = SearchSpace {
            parameters: vec![
                parameter("a", double(-1e308, 1e308, None, Distribution::Uniform)),
                parameter("b", double(-1e308, 1e308, None, Distribution::Normal)),
                parameter("c", double(1e-300, 1e300, None, Distribution::LogNormal)),
                parameter("d", int(i64::MIN, i64::MAX, None, Distribution::Uniform)),
                parameter("e", int(i64::MIN, i64::MAX, None, Distribution::Normal)),
                parameter("f", int(1, i64::MAX, Some(3), Distribution::LogUniform)),
                parameter("g", double(2.5, 2.5, Some(1.0), Distribution::LogNormal)),
                parameter("h", int(-4, -4, None, Distribution::Normal)),
                parameter("i", double(0.0, 1.0, Some(1e-320), Distribution::Uniform)),
            ],
        };
        let search = random_search(&space);
        for trial in 0..500 {
            let assignment = search.assignment(0, trial);
            for (parameter, value) in space.parameters.iter().zip(&assignment) {
                let on_domain = match (&parameter.domain, value) {
                    // A step below float resolution cannot be honoured; the bounds can.
                    (Domain::Double { min, max, .. }, ParameterValue::Double(x))
                        if parameter.name == "i" =>
                    {
                        (*min..=*max).contains(x)
                    }
                    (domain, value) => inside(domain, value),
                };
                assert!(on_domain, "{} = {value:?}", parameter.name);
            }
        }
    }

    #[test]
    fn bad_settings_and_spaces_are_reported_together() {
        let space = SearchSpace {
            parameters: vec![parameter(
                "lr",
                double(0.0, 1.0, None, Distribution::LogUniform),
            )],
        };
        let errors = RandomSearch::new(&[Setting::new("randm_state", "1")], &space)
            .expect_err("two problems");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            matches!(&errors[0], AlgorithmError::Setting { index: 0, message }
            if message.contains("did you mean `random_state`?"))
        );
        assert!(matches!(
            &errors[1],
            AlgorithmError::Space {
                parameter: Some(0),
                ..
            }
        ));
    }

    proptest! {
        #[test]
        fn every_value_lies_inside_its_domain(
            domains in prop::collection::vec(domain(), 1..5),
            seed in any::<u64>(),
            first_trial in 0..1_000_000_u64,
        ) {
            let space = SearchSpace {
                parameters: domains
                    .into_iter()
                    .enumerate()
                    .map(|(index, domain)| parameter(&format!("p{index}"), domain))
                    .collect(),
            };
            let search = RandomSearch::new(&[], &space).map_err(|errors| {
                TestCaseError::fail(format!("{errors:?}"))
            })?;
            for trial in first_trial..first_trial + 20 {
                let assignment = search.assignment(seed, trial);
                prop_assert_eq!(assignment.len(), space.parameters.len());
                for (parameter, value) in space.parameters.iter().zip(&assignment) {
                    prop_assert!(
                        inside(&parameter.domain, value),
                        "{:?} gave {:?}", parameter.domain, value
                    );
                }
            }
        }
    }
}
