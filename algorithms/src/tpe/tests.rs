use proptest::prelude::*;

use super::*;
use crate::space::{Distribution, Domain, ParameterValue};
use crate::test_support::{categorical, domain, double, example_space, inside, int, space};
use crate::{Setting, build};

/// Both models: the independent one (`tpe` with `multivariate: false`) and the joint one.
const VARIANTS: [(&str, &str); 2] = [("tpe", "false"), ("multivariate-tpe", "true")];

fn completed(index: u64, assignment: Assignment, value: f64) -> TrialRecord {
    TrialRecord {
        index,
        assignment,
        outcome: TrialOutcome::Completed(value),
    }
}

fn number(value: &ParameterValue) -> f64 {
    match value {
        ParameterValue::Int(x) => *x as f64,
        ParameterValue::Double(x) => *x,
        ParameterValue::Categorical(_) => 0.0,
    }
}

/// Runs `algorithm` sequentially for `trials` trials on `objective`; returns the history.
fn optimise(
    algorithm: &dyn Algorithm,
    seed: u64,
    trials: u64,
    objective: impl Fn(&Assignment) -> f64,
) -> Vec<TrialRecord> {
    let mut history = Vec::new();
    for index in 0..trials {
        let assignment = algorithm.suggest(seed, &history, 1).assignments.remove(0);
        let value = objective(&assignment);
        history.push(completed(index, assignment, value));
    }
    history
}

fn best(history: &[TrialRecord]) -> f64 {
    history
        .iter()
        .filter_map(|t| match t.outcome {
            TrialOutcome::Completed(v) => Some(v),
            _ => None,
        })
        .fold(f64::INFINITY, f64::min)
}

fn sphere(assignment: &Assignment) -> f64 {
    assignment
        .iter()
        .map(|v| (number(v) - 0.3).powi(2))
        .sum::<f64>()
}

fn continuous_space(dimensions: usize) -> SearchSpace {
    space(vec![
        double(-1.0, 1.0, None, Distribution::Uniform);
        dimensions
    ])
}

#[test]
fn built_by_name_with_katib_and_optuna_settings() {
    let tpe = build(
        "tpe",
        &[
            Setting::new("random_state", "3"),
            Setting::new("n_startup_trials", "5"),
            Setting::new("n_EI_candidates", "48"),
            Setting::new("gamma", "0.25"),
            Setting::new("prior_weight", "2"),
            Setting::new("constant_liar", "false"),
        ],
        &example_space(),
    )
    .expect("valid settings");
    assert_eq!(tpe.name(), "tpe");
    let multivariate = build("multivariate-tpe", &[], &example_space()).expect("valid");
    assert_eq!(multivariate.name(), "multivariate-tpe");

    let errors = build(
        "tpe",
        &[
            Setting::new("gamma", "1.5"),
            Setting::new("n_ei_candidates", "0"),
            Setting::new("multivariate", "maybe"),
            Setting::new("n_startup_trial", "3"),
        ],
        &example_space(),
    )
    .expect_err("bad settings");
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`gamma` must be a number in (0, 1]"))
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("did you mean `n_startup_trials`"))
    );
}

#[test]
fn the_startup_trials_form_a_latin_hypercube() {
    let space = space(vec![
        double(0.0, 1.0, None, Distribution::Uniform),
        double(1e-4, 1.0, None, Distribution::LogUniform),
        int(0, 99, None, Distribution::Uniform),
        double(0.0, 1.0, None, Distribution::Normal),
    ]);
    let tpe = Tpe::new("tpe", &[], &space).expect("valid");
    let random = RandomSearch::new(&[], &space).expect("valid");
    for seed in 0..5 {
        let history = optimise(&tpe, seed, 10, |_| 1.0);
        // Every evenly spread axis: one trial per tenth of the (log) range.
        let strata = |to_unit: &dyn Fn(f64) -> f64, p: usize| -> Vec<usize> {
            let mut s: Vec<usize> = history
                .iter()
                .map(|t| (to_unit(number(&t.assignment[p])) * 10.0).floor() as usize)
                .collect();
            s.sort_unstable();
            s
        };
        let all: Vec<usize> = (0..10).collect();
        assert_eq!(strata(&|x| x, 0), all, "seed {seed}: uniform double");
        assert_eq!(
            strata(&|x| (x.ln() - 1e-4f64.ln()) / -(1e-4f64.ln()), 1),
            all,
            "log"
        );
        assert_eq!(strata(&|x| x / 100.0, 2), all, "seed {seed}: int");
        // A normal parameter keeps random search's draws.
        for (index, trial) in history.iter().enumerate() {
            assert_eq!(
                trial.assignment[3],
                random.assignment(seed, index as u64)[3]
            );
        }
    }
}

#[test]
fn same_inputs_same_suggestions() {
    let space = example_space();
    for (name, joint) in VARIANTS {
        let tpe = build(name, &[Setting::new("multivariate", joint)], &space).expect("valid");
        let objective = |a: &Assignment| number(&a[0]).ln().abs() + number(&a[1]);
        let first = optimise(tpe.as_ref(), 4, 30, objective);
        let second = optimise(tpe.as_ref(), 4, 30, objective);
        assert_eq!(first, second, "{name}");
        let other = optimise(tpe.as_ref(), 5, 30, objective);
        assert_ne!(first, other, "{name}: another seed, other suggestions");
        // A batch gives the same first suggestion as a single ask.
        let batch = tpe.suggest(4, &first, 3);
        assert_eq!(
            batch.assignments[0],
            tpe.suggest(4, &first, 1).assignments[0]
        );
    }
}

#[test]
fn beats_random_search_on_a_sphere() {
    let space = continuous_space(3);
    let random = RandomSearch::new(&[], &space).expect("valid");
    for (name, joint) in VARIANTS {
        let tpe = build(name, &[Setting::new("multivariate", joint)], &space).expect("valid");
        let (mut tpe_total, mut random_total) = (0.0, 0.0);
        for seed in 0..8 {
            tpe_total += best(&optimise(tpe.as_ref(), seed, 60, sphere));
            random_total += best(&optimise(&random, seed, 60, sphere));
        }
        assert!(
            tpe_total < 0.5 * random_total,
            "{name}: mean best {} vs random's {}",
            tpe_total / 8.0,
            random_total / 8.0
        );
    }
}

#[test]
fn learns_integer_and_categorical_parameters() {
    let space = space(vec![
        int(1, 64, None, Distribution::Uniform),
        categorical(&["sgd", "adam", "rmsprop", "adagrad"]),
        Domain::Discrete {
            values: vec![128.0, 16.0, 32.0, 64.0],
        },
    ]);
    let objective = |a: &Assignment| {
        let optimiser = match &a[1] {
            ParameterValue::Categorical(c) if c == "adam" => 0.0,
            _ => 1.0,
        };
        (number(&a[0]) - 40.0).abs() / 10.0 + optimiser + (number(&a[2]) - 32.0).abs() / 32.0
    };
    let random = RandomSearch::new(&[], &space).expect("valid");
    for (name, joint) in VARIANTS {
        let tpe = build(name, &[Setting::new("multivariate", joint)], &space).expect("valid");
        let (mut tpe_total, mut random_total, mut adam) = (0.0, 0.0, 0);
        for seed in 0..6 {
            let history = optimise(tpe.as_ref(), seed, 80, objective);
            tpe_total += best(&history);
            random_total += best(&optimise(&random, seed, 80, objective));
            adam += history[60..]
                .iter()
                .filter(|t| t.assignment[1] == ParameterValue::Categorical("adam".into()))
                .count();
        }
        // Random search would pick adam a quarter of the time.
        assert!(
            adam >= 6 * 10,
            "{name}: {adam} of the last 6 x 20 trials use adam"
        );
        assert!(
            tpe_total < random_total,
            "{name}: mean best {} vs random's {}",
            tpe_total / 6.0,
            random_total / 6.0
        );
    }
}

#[test]
fn a_batch_with_constant_liar_is_distinct_and_spread_out() {
    let space = continuous_space(2);
    let tpe = Tpe::new("tpe", &[], &space).expect("valid");
    let mut history = optimise(&tpe, 2, 20, sphere);
    let batch = tpe.suggest(2, &history, 8).assignments;
    let points: Vec<(f64, f64)> = batch
        .iter()
        .map(|a| (number(&a[0]), number(&a[1])))
        .collect();
    let mut closest = f64::INFINITY;
    for (i, p) in points.iter().enumerate() {
        for q in &points[i + 1..] {
            closest = closest.min(((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt());
        }
    }
    assert!(
        closest > 1e-3,
        "two suggestions of the batch nearly coincide: {points:?}"
    );

    // The same holds when the other seven are pending trials of parallel workers.
    for (offset, assignment) in batch.iter().take(7).enumerate() {
        history.push(TrialRecord {
            index: 20 + offset as u64,
            assignment: assignment.clone(),
            outcome: TrialOutcome::Pending,
        });
    }
    let next = tpe.suggest(2, &history, 1).assignments.remove(0);
    assert!(!batch[..7].contains(&next));
}

#[test]
fn pending_trials_count_as_bad_points_only_with_constant_liar() {
    // Twenty workers hold the best point found so far, where TPE concentrates; with constant
    // liar the next suggestion (the same candidates: l is unchanged) must be chosen knowing
    // that, and without it the pending trials must change nothing.
    let space = continuous_space(2);
    let mut changed = 0;
    for seed in 0..10 {
        let liar = Tpe::new("tpe", &[], &space).expect("valid");
        let honest =
            Tpe::new("tpe", &[Setting::new("constant_liar", "false")], &space).expect("valid");
        let mut history = optimise(&liar, seed, 30, sphere);
        let plain = honest.suggest(seed, &history, 1);
        assert_eq!(
            liar.suggest(seed, &history, 1),
            plain,
            "no pending trial, no difference"
        );
        let target = history
            .iter()
            .min_by(|a, b| match (&a.outcome, &b.outcome) {
                (TrialOutcome::Completed(x), TrialOutcome::Completed(y)) => x.total_cmp(y),
                _ => std::cmp::Ordering::Equal,
            })
            .map(|t| t.assignment.clone())
            .expect("trials");
        for offset in 0..20 {
            history.push(TrialRecord {
                index: 30 + offset,
                assignment: target.clone(),
                outcome: TrialOutcome::Pending,
            });
        }
        let with_liar = liar.suggest(seed, &history, 1).assignments.remove(0);
        let without = honest.suggest(seed, &history, 1).assignments.remove(0);
        if with_liar != without {
            changed += 1;
        }
        assert_ne!(
            with_liar, target,
            "seed {seed}: a held point is not handed out again"
        );
    }
    assert!(
        changed >= 5,
        "pending trials changed the choice in only {changed} of 10 seeds"
    );
}

#[test]
fn ranking_uses_completed_then_pruned_and_ignores_failures() {
    let a = vec![ParameterValue::Double(0.0)];
    let history = vec![
        completed(0, a.clone(), 3.0),
        TrialRecord {
            index: 1,
            assignment: a.clone(),
            outcome: TrialOutcome::Pruned {
                value: Some(0.5),
                step: Some(2),
            },
        },
        TrialRecord {
            index: 2,
            assignment: a.clone(),
            outcome: TrialOutcome::Failed,
        },
        completed(3, a.clone(), 1.0),
        TrialRecord {
            index: 4,
            assignment: a.clone(),
            outcome: TrialOutcome::Pruned {
                value: Some(0.9),
                step: Some(7),
            },
        },
        TrialRecord {
            index: 5,
            assignment: a.clone(),
            outcome: TrialOutcome::Pending,
        },
        TrialRecord {
            index: 6,
            assignment: a,
            outcome: TrialOutcome::Pruned {
                value: None,
                step: None,
            },
        },
    ];
    let mut ranked = informative(&history);
    ranked.sort_by(order);
    let indices: Vec<u64> = ranked.iter().map(|r| r.index).collect();
    assert_eq!(indices, vec![3, 0, 4, 1]);
}

#[test]
fn single_valued_parameters_keep_their_value() {
    let space = space(vec![
        double(0.0, 1.0, None, Distribution::Uniform),
        int(5, 5, None, Distribution::Uniform),
        categorical(&["only"]),
    ]);
    let tpe = Tpe::new("multivariate-tpe", &[], &space).expect("valid");
    let history = optimise(&tpe, 1, 25, sphere);
    for trial in &history {
        assert_eq!(trial.assignment[1], ParameterValue::Int(5));
        assert_eq!(
            trial.assignment[2],
            ParameterValue::Categorical("only".into())
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_suggestion_lies_inside_its_domain(
        domains in prop::collection::vec(domain(), 1..4),
        seed in any::<u64>(),
        multivariate in any::<bool>(),
    ) {
        let space = space(domains);
        let name = if multivariate { "multivariate-tpe" } else { "tpe" };
        let tpe = build(name, &[Setting::new("n_startup_trials", "3")], &space)
            .map_err(|errors| TestCaseError::fail(format!("{errors:?}")))?;
        // Objective: a hash of the values, so the model has something (arbitrary) to fit.
        let objective = |a: &Assignment| {
            a.iter().map(|v| number(v).sin()).sum::<f64>()
        };
        let history = optimise(tpe.as_ref(), seed, 12, objective);
        for trial in &history {
            for (parameter, value) in space.parameters.iter().zip(&trial.assignment) {
                prop_assert!(inside(&parameter.domain, value), "{:?} gave {:?}", parameter.domain, value);
            }
        }
    }
}
