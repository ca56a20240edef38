//! Importances of objectives whose answer is known, the invariants of every answer, and the
//! errors for bad input.

use proptest::prelude::*;

use super::*;
use crate::random::RandomSearch;
use crate::space::{Assignment, Distribution, Domain};
use crate::test_support::{categorical, domain, double, example_space, int, space};

/// `count` assignments drawn by random search over `space` (evenly, as fANOVA prefers).
fn sample(space: &SearchSpace, count: u64, seed: u64) -> Vec<Assignment> {
    let random = RandomSearch::new(&[], space).expect("valid space");
    (0..count)
        .map(|index| random.assignment(seed, index))
        .collect()
}

/// The importances of `objective` over `assignments`.
fn importances(
    space: &SearchSpace,
    assignments: &[Assignment],
    objective: impl Fn(&[ParameterValue]) -> f64,
    settings: &ImportanceSettings,
) -> Vec<f64> {
    let trials: Vec<(&[ParameterValue], f64)> = assignments
        .iter()
        .map(|assignment| (assignment.as_slice(), objective(assignment)))
        .collect();
    fanova(space, &trials, settings).expect("valid input")
}

fn number(value: &ParameterValue) -> f64 {
    match value {
        ParameterValue::Int(x) => *x as f64,
        ParameterValue::Double(x) => *x,
        ParameterValue::Categorical(_) => f64::NAN,
    }
}

fn unit() -> Domain {
    double(0.0, 1.0, None, Distribution::Uniform)
}

fn assert_near(actual: &[f64], expected: &[f64], tolerance: f64) {
    let far = actual
        .iter()
        .zip(expected)
        .any(|(a, e)| (a - e).abs() > tolerance);
    assert!(
        !far && actual.len() == expected.len(),
        "importances {actual:?}, expected {expected:?} ± {tolerance}"
    );
}

fn assert_distribution(importances: &[f64]) {
    assert!(
        importances.iter().all(|i| (0.0..=1.0).contains(i)),
        "{importances:?}"
    );
    let sum: f64 = importances.iter().sum();
    assert!((sum - 1.0).abs() < 1e-9, "sum {sum} of {importances:?}");
}

#[test]
fn a_single_linear_effect_takes_all_the_importance() {
    let space = space(vec![unit(), unit(), unit()]);
    let assignments = sample(&space, 300, 1);
    let found = importances(
        &space,
        &assignments,
        |a| 10.0 * number(&a[0]) + 0.0 * number(&a[1]),
        &ImportanceSettings::default(),
    );
    assert_distribution(&found);
    assert_near(&found, &[1.0, 0.0, 0.0], 0.02);
}

#[test]
fn additive_effects_share_importance_by_their_variances() {
    // Var(a·x0 + b·x1) = (a² + b²) / 12 for uniform x: shares a² : b² = 4 : 1.
    let space = space(vec![unit(), unit(), unit()]);
    let assignments = sample(&space, 400, 2);
    let found = importances(
        &space,
        &assignments,
        |a| 2.0 * number(&a[0]) + number(&a[1]),
        &ImportanceSettings::default(),
    );
    assert_distribution(&found);
    assert_near(&found, &[0.8, 0.2, 0.0], 0.05);

    // 1 : 1, with the parameters the other way round and negative coefficients.
    let found = importances(
        &space,
        &assignments,
        |a| -3.0 * number(&a[2]) + 3.0 * number(&a[1]),
        &ImportanceSettings::default(),
    );
    assert_near(&found, &[0.0, 0.5, 0.5], 0.05);
}

#[test]
fn a_categorical_that_decides_the_objective_is_all_that_matters() {
    let space = space(vec![unit(), categorical(&["sgd", "adam", "rmsprop"])]);
    let assignments = sample(&space, 200, 3);
    let found = importances(
        &space,
        &assignments,
        |a| match &a[1] {
            ParameterValue::Categorical(choice) if choice == "adam" => 1.0,
            ParameterValue::Categorical(choice) if choice == "rmsprop" => 5.0,
            _ => 0.0,
        },
        &ImportanceSettings::default(),
    );
    assert_distribution(&found);
    assert_near(&found, &[0.0, 1.0], 0.02);
}

#[test]
fn a_categorical_and_a_double_share_by_their_variances() {
    // Choices worth 0, 0, 3 (variance 2 over equally weighted choices) plus 6·x (variance 3):
    // shares 0.4 : 0.6.
    let space = space(vec![categorical(&["a", "b", "c"]), unit()]);
    let assignments = sample(&space, 400, 4);
    let found = importances(
        &space,
        &assignments,
        |a| {
            let bonus = if a[0] == ParameterValue::Categorical("c".into()) {
                3.0
            } else {
                0.0
            };
            bonus + 6.0 * number(&a[1])
        },
        &ImportanceSettings::default(),
    );
    assert_near(&found, &[0.4, 0.6], 0.05);
}

#[test]
fn a_log_scale_parameter_is_measured_in_log_space() {
    // f = t + x where t = log10(lr) / 4 + 1 runs over [0, 1] as lr runs over [1e-4, 1]. In
    // log space t is uniform like x, so the two share equally; measured linearly, t would be
    // near 1 over almost all of the range and lr would get a small share.
    let space = space(vec![
        double(1e-4, 1.0, None, Distribution::LogUniform),
        unit(),
    ]);
    let assignments = sample(&space, 400, 5);
    let found = importances(
        &space,
        &assignments,
        |a| number(&a[0]).log10() / 4.0 + 1.0 + number(&a[1]),
        &ImportanceSettings::default(),
    );
    assert_near(&found, &[0.5, 0.5], 0.06);
}

#[test]
fn grid_parameters_weigh_every_point_equally() {
    // layers in 1..=4 worth 0, 0, 0, 4 (variance 3 over equal points) plus 6·x (variance 3).
    // Scaled to [min, max] as Optuna does, the end points would weigh half as much and the
    // layers' share would drop to about 0.43.
    let space = space(vec![int(1, 4, None, Distribution::Uniform), unit()]);
    let assignments = sample(&space, 400, 6);
    let found = importances(
        &space,
        &assignments,
        |a| {
            let layers = if a[0] == ParameterValue::Int(4) {
                4.0
            } else {
                0.0
            };
            layers + 6.0 * number(&a[1])
        },
        &ImportanceSettings::default(),
    );
    assert_near(&found, &[0.5, 0.5], 0.05);
}

#[test]
fn the_same_seed_gives_the_same_answer() {
    let space = example_space();
    let assignments = sample(&space, 150, 7);
    let objective = |a: &[ParameterValue]| {
        number(&a[0]).ln() + number(&a[1]) * number(&a[3]) / 64.0
            - f64::from(u8::from(a[4] == ParameterValue::Categorical("adam".into())))
    };
    let settings = ImportanceSettings {
        seed: 11,
        ..ImportanceSettings::default()
    };
    let first = importances(&space, &assignments, objective, &settings);
    let second = importances(&space, &assignments, objective, &settings);
    assert_eq!(first, second);
    assert_distribution(&first);
    let other = importances(
        &space,
        &assignments,
        objective,
        &ImportanceSettings {
            seed: 12,
            ..settings
        },
    );
    assert_ne!(first, other, "the seed drives the bootstrap");
    assert_distribution(&other);
}

#[test]
fn a_subsample_is_deterministic_and_close_to_the_whole() {
    let space = space(vec![unit(), unit()]);
    let assignments = sample(&space, 400, 8);
    let objective = |a: &[ParameterValue]| 2.0 * number(&a[0]) + number(&a[1]);
    let capped = ImportanceSettings {
        max_samples: 200,
        ..ImportanceSettings::default()
    };
    let first = importances(&space, &assignments, objective, &capped);
    assert_eq!(first, importances(&space, &assignments, objective, &capped));
    assert_near(&first, &[0.8, 0.2], 0.06);
    assert_eq!(subsample((0..10).collect(), 4, 3).len(), 4);
    let drawn = subsample((0..10).collect(), 4, 3);
    assert!(drawn.windows(2).all(|w| w[0] < w[1]), "{drawn:?}");
    assert_eq!(subsample((0..3).collect(), 4, 3), [0, 1, 2]);
}

#[test]
fn nothing_to_learn_gives_all_zeros() {
    let space = space(vec![unit(), categorical(&["a", "b"])]);
    let assignments = sample(&space, 50, 9);
    let settings = ImportanceSettings::default();
    // Fewer than two trials.
    assert_eq!(importances(&space, &[], |_| 1.0, &settings), [0.0, 0.0]);
    assert_eq!(
        importances(&space, &assignments[..1], |_| 1.0, &settings),
        [0.0, 0.0]
    );
    // A constant objective, zero or not.
    assert_eq!(
        importances(&space, &assignments, |_| 0.1, &settings),
        [0.0, 0.0]
    );
    assert_eq!(
        importances(&space, &assignments, |_| 0.0, &settings),
        [0.0, 0.0]
    );
    // Only single-valued parameters.
    let fixed = crate::test_support::space(vec![
        double(1.0, 1.0, None, Distribution::Uniform),
        categorical(&["only"]),
    ]);
    let fixed_assignments = sample(&fixed, 20, 9);
    assert_eq!(
        importances(&fixed, &fixed_assignments, |a| number(&a[0]), &settings),
        [0.0, 0.0]
    );
}

#[test]
fn single_valued_parameters_get_zero_and_the_rest_share_everything() {
    let space = space(vec![
        int(5, 5, None, Distribution::Uniform),
        unit(),
        categorical(&["only"]),
    ]);
    let assignments = sample(&space, 100, 10);
    let found = importances(
        &space,
        &assignments,
        |a| number(&a[1]).powi(2),
        &ImportanceSettings::default(),
    );
    assert_eq!(found, [0.0, 1.0, 0.0]);
}

#[test]
fn non_finite_objectives_are_skipped() {
    let space = space(vec![unit(), unit()]);
    let assignments = sample(&space, 120, 11);
    let objective = |a: &[ParameterValue]| number(&a[0]) + 0.5 * number(&a[1]);
    let clean: Vec<(&[ParameterValue], f64)> = assignments
        .iter()
        .map(|a| (a.as_slice(), objective(a)))
        .collect();
    let mut dirty = clean.clone();
    for (position, bad) in [(0, f64::NAN), (40, f64::INFINITY), (120, f64::NEG_INFINITY)] {
        dirty.insert(position, (assignments[position % 120].as_slice(), bad));
    }
    let settings = ImportanceSettings::default();
    assert_eq!(
        fanova(&space, &dirty, &settings),
        fanova(&space, &clean, &settings)
    );
}

#[test]
fn bad_input_is_refused_with_a_message_that_says_where() {
    let space = space(vec![unit(), categorical(&["sgd", "adam"])]);
    let good = vec![
        ParameterValue::Double(0.5),
        ParameterValue::Categorical("sgd".into()),
    ];
    let short = vec![ParameterValue::Double(0.5)];
    let settings = ImportanceSettings::default();
    let error = fanova(&space, &[(&good, 1.0), (&short, 2.0)], &settings).expect_err("short");
    assert_eq!(
        error.to_string(),
        "trial 1 has 1 parameter values, but the search space has 2 parameters"
    );

    let unlisted = vec![
        ParameterValue::Double(0.5),
        ParameterValue::Categorical("adamw".into()),
    ];
    let error = fanova(&space, &[(&unlisted, 1.0)], &settings).expect_err("unlisted");
    assert_eq!(
        error.to_string(),
        "trial 0: parameter `p1` cannot be `adamw`: expected one of the parameter's choices"
    );

    let not_a_number = vec![
        ParameterValue::Double(f64::NAN),
        ParameterValue::Categorical("sgd".into()),
    ];
    // Checked even when the objective is skipped.
    let error = fanova(
        &space,
        &[(&good, 1.0), (&not_a_number, f64::NAN)],
        &settings,
    )
    .expect_err("NaN parameter");
    assert!(
        matches!(&error, ImportanceError::Value { trial: 1, parameter, .. } if parameter == "p0"),
        "{error:?}"
    );

    let no_trees = ImportanceSettings {
        trees: 0,
        ..settings
    };
    let error = fanova(&space, &[(&good, 1.0)], &no_trees).expect_err("no trees");
    assert_eq!(
        error.to_string(),
        "importance setting `trees` must be at least 1, got 0"
    );

    let broken = crate::test_support::space(vec![double(0.0, 1.0, None, Distribution::LogUniform)]);
    let error = fanova(&broken, &[], &settings).expect_err("log scale from 0");
    assert!(
        matches!(
            &error,
            ImportanceError::Space(AlgorithmError::Space {
                parameter: Some(0),
                ..
            })
        ),
        "{error:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the space and the objective, importances are a distribution over the
    /// parameters (or all zero), and single-valued parameters get none of it.
    #[test]
    fn importances_are_a_distribution(
        domains in prop::collection::vec(domain(), 1..5),
        seed in any::<u64>(),
        count in 0_u64..40,
        coefficients in prop::collection::vec(-10.0..10.0_f64, 5),
    ) {
        let space = space(domains);
        let assignments = sample(&space, count, seed);
        let settings = ImportanceSettings { trees: 8, seed, ..ImportanceSettings::default() };
        let found = importances(&space, &assignments, |a| {
            a.iter()
                .zip(&coefficients)
                .map(|(value, c)| match value {
                    ParameterValue::Categorical(choice) => c * choice.len() as f64,
                    number => c * match number {
                        ParameterValue::Int(x) => (*x as f64).abs().ln_1p(),
                        ParameterValue::Double(x) => x.abs().ln_1p(),
                        ParameterValue::Categorical(_) => 0.0,
                    },
                })
                .sum()
        }, &settings);
        prop_assert_eq!(found.len(), space.parameters.len());
        prop_assert!(found.iter().all(|i| (0.0..=1.0).contains(i)), "{:?}", found);
        let sum: f64 = found.iter().sum();
        prop_assert!(sum == 0.0 || (sum - 1.0).abs() < 1e-9, "sum {}", sum);
        for (parameter, importance) in space.parameters.iter().zip(&found) {
            if encode::Encoder::new(&parameter.domain).is_none() {
                prop_assert_eq!(*importance, 0.0);
            }
        }
    }
}

/// Times the dashboard's large case: 10,000 trials of 10 parameters. Run it in release:
/// `cargo test --release -p tuneflow-algorithms importance::tests::timing -- --ignored --nocapture`
#[test]
#[ignore = "a timing, not a check; run in release"]
fn timing_ten_thousand_trials_of_ten_parameters() {
    let mut domains = vec![
        double(1e-5, 1.0, None, Distribution::LogUniform),
        int(1, 8, None, Distribution::Uniform),
        categorical(&["sgd", "adam", "rmsprop", "adagrad"]),
        Domain::Discrete {
            values: vec![16.0, 32.0, 64.0, 128.0],
        },
    ];
    domains.extend((0..6).map(|_| unit()));
    let space = space(domains);
    let assignments = sample(&space, 10_000, 42);
    let objective = |a: &[ParameterValue]| {
        number(&a[0]).ln().powi(2) / 10.0
            + number(&a[1])
            + f64::from(u8::from(a[2] == ParameterValue::Categorical("adam".into())))
            + a[4..].iter().map(|v| number(v).sin()).sum::<f64>()
    };
    let trials: Vec<(&[ParameterValue], f64)> = assignments
        .iter()
        .map(|a| (a.as_slice(), objective(a)))
        .collect();
    let capped = ImportanceSettings::default();
    let uncapped = ImportanceSettings {
        max_samples: trials.len(),
        ..capped
    };
    for (label, settings) in [
        ("default, 4,096 used", capped),
        ("all 10,000 used", uncapped),
    ] {
        let cpu_before = thread_cpu_time();
        let started = std::time::Instant::now();
        let found = fanova(&space, &trials, &settings).expect("valid input");
        let elapsed = started.elapsed();
        let cpu = thread_cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        println!("fanova, 10,000 trials x 10 parameters ({label}): {elapsed:?} wall, {cpu:?} CPU");
        println!("importances: {found:.4?}");
        assert_distribution(&found);
    }
}

/// The CPU time this thread has used (Linux), which a busy machine does not inflate as it
/// does wall time.
fn thread_cpu_time() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(nanos))
}
