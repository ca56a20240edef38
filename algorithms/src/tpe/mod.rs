//! Tree-structured Parzen estimator (TPE): Bayesian optimisation by density ratios.
//!
//! After `n_startup_trials` space-filling trials, each suggestion splits the finished trials
//! into a good group (the best `⌈gamma · n⌉`, at most 25) and the rest, fits a Parzen estimator
//! to each — `l(x)` to the good, `g(x)` to the rest (see [`parzen`]) — draws
//! `n_ei_candidates` candidates from `l` and keeps the one with the largest `l(x) / g(x)`, which
//! maximises expected improvement (Bergstra et al., 2011).
//!
//! By default the parameters are modelled jointly (product kernels, one kernel per trial for
//! all parameters), which Falkner et al. (2018) and Watanabe (2023) found better on correlated
//! problems and which Optuna 5 made its default; Katib's `tpe` runs Optuna's default, so here
//! `tpe` and `multivariate-tpe` are the same algorithm. `multivariate: false` gives the original
//! independent per-parameter estimators (worse on the benchmark: see bench/README.md).
//!
//! The startup trials form a Latin hypercube: on every evenly-distributed axis each of the first
//! `n_startup_trials` trials falls in its own stratum, so ten trials cover a range in ten
//! slices instead of clumping as independent draws do.
//!
//! What the history contributes:
//!
//! - **Completed** trials by their objective value (signed so that smaller is better).
//! - **Pruned** trials by their last observed value: ranked after every completed trial, those
//!   that got further first, then by value — they were stopped for being worse than their
//!   peers at the same step, so they only ever count as good when few trials completed.
//! - **Pending** trials (handed out, not finished) with `constant_liar` (the default): counted
//!   among the bad group at their parameters, so parallel workers are steered away from points
//!   already being tried instead of all receiving the same best guess. Suggestions asked for
//!   in one batch see the earlier ones of the batch the same way.
//! - **Failed** trials are ignored: a crash says nothing about the objective.
//!
//! The algorithm is a pure function of (space, settings, seed, history): each suggestion draws
//! from its own streams of trial `index` (the startup strata from streams of the seed alone).

mod axis;
mod normal;
mod parzen;

use rand::Rng;

use crate::random::RandomSearch;
use crate::rng::trial_rng;
use crate::settings::{self, Setting};
use crate::space::{Assignment, Distribution, Domain, SearchSpace};
use crate::{Algorithm, AlgorithmError, Suggestions, TrialOutcome, TrialRecord};
use axis::Axis;
use parzen::{FitOptions, Mixture};

/// The largest good group, whatever `gamma` says (Optuna's cap).
const MAX_GOOD: usize = 25;

/// The stream TPE draws candidates from, apart from random search's per-parameter streams.
const TPE_STREAM: u64 = 0x7470_6500;

/// The streams of the Latin-hypercube startup.
const LHS_STREAM: u64 = 0x6c68_7300;

/// TPE's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeSettings {
    /// Random trials before the model is used (default 10).
    pub n_startup_trials: usize,
    /// Candidates drawn from `l(x)` per suggestion (default 24).
    pub n_ei_candidates: usize,
    /// The fraction of trials in the good group (default 0.1, at most 25 trials).
    pub gamma: f64,
    /// The prior kernel's weight (default 1).
    pub prior_weight: f64,
    /// Let the outermost observations' bandwidths reach the range's ends (default false).
    pub consider_endpoints: bool,
    /// Model the parameters jointly (default true); false gives independent per-parameter
    /// estimators, the original TPE.
    pub multivariate: bool,
    /// Count pending trials as bad ones (default true).
    pub constant_liar: bool,
}

impl TpeSettings {
    /// The defaults, the same for `tpe` and `multivariate-tpe` (Optuna 5's, which Katib's
    /// `tpe` runs with): a joint model.
    pub fn defaults() -> TpeSettings {
        TpeSettings {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            gamma: 0.1,
            prior_weight: 1.0,
            consider_endpoints: false,
            multivariate: true,
            constant_liar: true,
        }
    }
}

/// The settings TPE accepts besides `random_state`. `n_EI_candidates` is hyperopt's spelling,
/// which Katib's older examples use.
pub const SETTINGS: &[&str] = &[
    "n_startup_trials",
    "n_ei_candidates",
    "n_EI_candidates",
    "gamma",
    "prior_weight",
    "consider_endpoints",
    "multivariate",
    "constant_liar",
];

/// TPE over a search space.
#[derive(Debug, Clone)]
pub struct Tpe {
    name: &'static str,
    settings: TpeSettings,
    random: RandomSearch,
    /// Every parameter's axis (`None` for single-valued parameters), by parameter index.
    axes: Vec<Option<Axis>>,
    /// Whether each parameter's values are spread evenly over its axis (not normal).
    even: Vec<bool>,
}

impl Tpe {
    /// TPE named `name` (`tpe` or `multivariate-tpe`) with `settings` over `space`.
    ///
    /// # Errors
    ///
    /// Every unknown or malformed setting and every invalid parameter domain.
    pub fn new(
        name: &'static str,
        settings: &[Setting],
        space: &SearchSpace,
    ) -> Result<Tpe, Vec<AlgorithmError>> {
        let (parsed, mut errors) = parse_settings(name, settings);
        let random = match RandomSearch::new(&settings::random_state_only(settings), space) {
            Ok(random) => Some(random),
            Err(more) => {
                errors.extend(more);
                None
            }
        };
        match random {
            Some(random) if errors.is_empty() => Ok(Tpe {
                name,
                settings: parsed,
                random,
                axes: space
                    .parameters
                    .iter()
                    .map(|p| Axis::new(&p.domain))
                    .collect(),
                even: space
                    .parameters
                    .iter()
                    .map(|p| match &p.domain {
                        Domain::Double { distribution, .. } | Domain::Int { distribution, .. } => {
                            matches!(
                                distribution,
                                Distribution::Uniform | Distribution::LogUniform
                            )
                        }
                        _ => true,
                    })
                    .collect(),
            }),
            _ => Err(errors),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &TpeSettings {
        &self.settings
    }

    /// The assignment of trial `index`, given the history and the assignments suggested before
    /// it in the same batch (`batch`, pending).
    fn suggest_one(
        &self,
        seed: u64,
        index: u64,
        history: &[TrialRecord],
        batch: &[Assignment],
    ) -> Assignment {
        let mut assignment = self.random.assignment(seed, index);
        let mut ranked = informative(history);
        let n = ranked.len();
        if n < self.settings.n_startup_trials.max(1) {
            self.stratify(seed, index, &mut assignment);
            return assignment;
        }
        let good = ((self.settings.gamma * n as f64).ceil() as usize)
            .clamp(1, MAX_GOOD)
            .min(n);
        let active: Vec<usize> = (0..self.axes.len())
            .filter(|i| self.axes[*i].is_some())
            .collect();
        if active.is_empty() {
            return assignment;
        }
        let axes: Vec<&Axis> = active
            .iter()
            .filter_map(|i| self.axes[*i].as_ref())
            .collect();

        // The best `good` trials, found in linear time (no full sort), then both groups in
        // trial order, which the recency weights follow.
        if good < n {
            ranked.select_nth_unstable_by(good - 1, order);
        }
        let mut group = vec![Group::None; history.len()];
        for (rank, r) in ranked.iter().enumerate() {
            group[r.position] = if rank < good { Group::Good } else { Group::Bad };
        }
        let liar = self.settings.constant_liar;
        let mut below: Vec<&Assignment> = Vec::with_capacity(good);
        let mut above: Vec<&Assignment> = Vec::with_capacity(history.len() + batch.len());
        for (trial, group) in history.iter().zip(&group) {
            match group {
                Group::Good => below.push(&trial.assignment),
                Group::Bad => above.push(&trial.assignment),
                Group::None if liar && trial.outcome == TrialOutcome::Pending => {
                    above.push(&trial.assignment)
                }
                Group::None => {}
            }
        }
        if liar {
            above.extend(batch);
        }
        // Per axis, the located values of a group's trials (trials with a value outside the
        // space are left out).
        let located = |group: &[&Assignment]| -> Vec<Vec<f64>> {
            let mut columns = vec![Vec::with_capacity(group.len()); active.len()];
            let mut row = vec![0.0; active.len()];
            for assignment in group {
                let complete =
                    active
                        .iter()
                        .zip(&axes)
                        .zip(row.iter_mut())
                        .all(|((i, axis), slot)| {
                            match assignment.get(*i).and_then(|v| axis.locate(v)) {
                                Some(x) => {
                                    *slot = x;
                                    true
                                }
                                None => false,
                            }
                        });
                if complete {
                    columns.iter_mut().zip(&row).for_each(|(c, x)| c.push(*x));
                }
            }
            columns
        };
        let options = FitOptions {
            prior_weight: self.settings.prior_weight,
            consider_endpoints: self.settings.consider_endpoints,
        };
        let l = Mixture::fit(&axes, &located(&below), options);
        let g = Mixture::fit(&axes, &located(&above), options);
        let mut rng = trial_rng(seed, index, TPE_STREAM);
        let chosen = if self.settings.multivariate {
            self.joint_choice(&axes, &l, &g, &mut rng)
        } else {
            (0..axes.len())
                .map(|d| self.marginal_choice(axes[d], d, &l, &g, &mut rng))
                .collect()
        };
        for ((i, axis), x) in active.iter().zip(&axes).zip(chosen) {
            assignment[*i] = axis.value(x);
        }
        assignment
    }

    /// Latin-hypercube startup: trial `index < n_startup_trials` takes, on each axis whose
    /// values are spread evenly (uniform or log-uniform numbers, lists, choices), a random point
    /// of its own stratum, the strata dealt out by a per-axis permutation drawn from the seed.
    fn stratify(&self, seed: u64, index: u64, assignment: &mut Assignment) {
        let n = self.settings.n_startup_trials as u64;
        if index >= n || n < 2 {
            return;
        }
        for (i, axis) in self.axes.iter().enumerate() {
            let Some(axis) = axis else { continue };
            if !self.even[i] {
                continue;
            }
            let mut perm_rng = trial_rng(seed, u64::MAX - i as u64, LHS_STREAM);
            let mut strata: Vec<u64> = (0..n).collect();
            for k in (1..strata.len()).rev() {
                let j = crate::rng::below(&mut perm_rng, k as u64 + 1) as usize;
                strata.swap(k, j);
            }
            let stratum = strata[index as usize] as f64;
            let mut rng = trial_rng(seed, index, LHS_STREAM + 1 + i as u64);
            let u = (stratum + crate::rng::unit(&mut rng)) / n as f64;
            let (low, high) = axis.bounds();
            let t = low + u * (high - low);
            let located = match axis {
                Axis::Continuous { .. } => t,
                Axis::Grid { .. } => axis.point_at(t),
                Axis::Categorical { .. } => t.floor().min(high - 1.0),
            };
            assignment[i] = axis.value(located);
        }
    }

    /// The best of `n_ei_candidates` joint draws from `l` by `ln l − ln g`.
    fn joint_choice(
        &self,
        axes: &[&Axis],
        l: &Mixture,
        g: &Mixture,
        rng: &mut impl Rng,
    ) -> Vec<f64> {
        let mut scratch = Vec::with_capacity(l.kernels().max(g.kernels()));
        let mut candidate = vec![0.0; axes.len()];
        let mut best = (f64::NEG_INFINITY, candidate.clone());
        for _ in 0..self.settings.n_ei_candidates {
            let k = l.sample_kernel(rng);
            for (d, axis) in axes.iter().enumerate() {
                candidate[d] = l.sample(axis, d, k, rng);
            }
            let score = l.log_joint(axes, &candidate, &mut scratch)
                - g.log_joint(axes, &candidate, &mut scratch);
            if score > best.0 {
                best = (score, candidate.clone());
            }
        }
        best.1
    }

    /// The best of `n_ei_candidates` draws of one parameter from `l` by `ln l − ln g`.
    fn marginal_choice(
        &self,
        axis: &Axis,
        d: usize,
        l: &Mixture,
        g: &Mixture,
        rng: &mut impl Rng,
    ) -> f64 {
        let mut scratch = Vec::with_capacity(l.kernels().max(g.kernels()));
        let mut best = (f64::NEG_INFINITY, f64::NAN);
        for _ in 0..self.settings.n_ei_candidates {
            let k = l.sample_kernel(rng);
            let x = l.sample(axis, d, k, rng);
            let score =
                l.log_marginal(axis, d, x, &mut scratch) - g.log_marginal(axis, d, x, &mut scratch);
            if score > best.0 || best.1.is_nan() {
                best = (score, x);
            }
        }
        best.1
    }
}

impl Algorithm for Tpe {
    fn name(&self) -> &'static str {
        self.name
    }

    fn suggest(&self, seed: u64, history: &[TrialRecord], count: usize) -> Suggestions {
        let first = history.len() as u64;
        let mut batch: Vec<Assignment> = Vec::with_capacity(count);
        for index in (first..).take(count) {
            let next = self.suggest_one(seed, index, history, &batch);
            batch.push(next);
        }
        Suggestions {
            assignments: batch,
            exhausted: false,
        }
    }
}

/// A trial that informs the model, with its rank key.
#[derive(Debug, Clone, Copy)]
struct Ranked {
    position: usize,
    index: u64,
    /// 0 for completed trials, 1 for pruned ones.
    group: u8,
    /// Minus the step a pruned trial reached (further is better), 0 for completed.
    step: i64,
    value: f64,
}

/// Which group a history entry falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// Among the best: fits `l(x)`.
    Good,
    /// Informative, not among the best: fits `g(x)`.
    Bad,
    /// Not informative (pending, failed).
    None,
}

/// The trials that inform the model (completed ones, and pruned ones with a value), in
/// history order.
fn informative(history: &[TrialRecord]) -> Vec<Ranked> {
    history
        .iter()
        .enumerate()
        .filter_map(|(position, t)| {
            let (group, step, value) = match t.outcome {
                TrialOutcome::Completed(v) => (0, 0, v),
                TrialOutcome::Pruned {
                    value: Some(v),
                    step,
                } => (1, -step.unwrap_or(0), v),
                _ => return None,
            };
            value.is_finite().then_some(Ranked {
                position,
                index: t.index,
                group,
                step,
                value,
            })
        })
        .collect()
}

/// Best first: completed trials by value, then pruned ones by step reached (further first) and
/// value; ties by trial index.
fn order(a: &Ranked, b: &Ranked) -> std::cmp::Ordering {
    (a.group, a.step)
        .cmp(&(b.group, b.step))
        .then(a.value.total_cmp(&b.value))
        .then(a.index.cmp(&b.index))
}

/// TPE's settings over the defaults, with every problem found.
fn parse_settings(name: &str, settings: &[Setting]) -> (TpeSettings, Vec<AlgorithmError>) {
    let mut parsed = TpeSettings::defaults();
    let errors = settings::read(name, settings, SETTINGS, |setting, value| {
        let boolean = || parse_bool(value).ok_or("true or false");
        match setting {
            "n_startup_trials" => {
                parsed.n_startup_trials = value.parse().map_err(|_| "a non-negative integer")?;
            }
            "n_ei_candidates" | "n_EI_candidates" => {
                parsed.n_ei_candidates = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or("an integer between 1 and 10000")?;
            }
            "gamma" => {
                parsed.gamma = value
                    .parse()
                    .ok()
                    .filter(|g: &f64| *g > 0.0 && *g <= 1.0)
                    .ok_or("a number in (0, 1]")?;
            }
            "prior_weight" => {
                parsed.prior_weight = value
                    .parse()
                    .ok()
                    .filter(|w: &f64| *w > 0.0 && w.is_finite())
                    .ok_or("a positive number")?;
            }
            "consider_endpoints" => parsed.consider_endpoints = boolean()?,
            "multivariate" => parsed.multivariate = boolean()?,
            "constant_liar" => parsed.constant_liar = boolean()?,
            _ => {}
        }
        Ok(())
    });
    (parsed, errors)
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
