//! Parameter importance by fANOVA: which parameters the objective depends on, alone.
//!
//! The dashboard answers "which parameters mattered?" the way Optuna's default
//! `FanovaImportanceEvaluator` does, so that numbers agree with what users know from it
//! (Hutter, Hoos and Leyton-Brown 2014, "An Efficient Approach for Assessing Hyperparameter
//! Importance"):
//!
//! 1. Fit a random forest regressor to the finished trials, objective against parameters
//!    (`forest`: scikit-learn's `RandomForestRegressor` as Optuna sets it up: 64 fully grown
//!    trees on bootstrap samples, every feature considered at every split).
//! 2. Decompose each tree's prediction over the search space, functional ANOVA style, and keep
//!    each parameter's main effect: the variance of the tree's average prediction with only
//!    that parameter held fixed, as a share of the tree's total variance (`marginal`).
//! 3. Average the shares over the trees and scale them to sum to 1.
//!
//! A model sits between the trials and the answer because trials are rarely spread evenly:
//! a sampler that found a good region keeps trying it, and a raw correlation would mostly
//! measure where the sampler looked. The forest fills the space with its best guess, and the
//! decomposition integrates that guess over the whole space, weighted as the encoding in
//! `encode` says (log scales in log space, every grid point and every choice equally).
//!
//! Only main effects are computed. The shares of all parameters sum to less than 1 when
//! parameters interact, and the scaling hides that, as Optuna's normalised importances do; an
//! objective made only of interactions (no parameter matters alone) gives all zeros.
//!
//! The answer is a pure function of (space, trials, settings): the bootstrap, the feature
//! orders and the subsample of a large history all come from the settings' seed.

mod encode;
mod forest;
mod marginal;
#[cfg(test)]
mod tests;

use thiserror::Error;

use crate::AlgorithmError;
use crate::rng::{below, trial_rng};
use crate::space::{ParameterValue, SearchSpace};
use encode::Encoder;
use forest::{Dataset, Growth, Tree, TreeBuilder};
use marginal::Decomposition;

/// The stream the subsample of a large history is drawn from.
const SUBSAMPLE_STREAM: u64 = 0x7375_6273_616d;

/// How [`fanova`] fits its forest. The defaults are Optuna's (`FanovaImportanceEvaluator`
/// with scikit-learn's `RandomForestRegressor`), plus a cap on the trials used, which Optuna
/// does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportanceSettings {
    /// Trees in the forest (default 64). More trees steady the estimate; the time grows
    /// linearly.
    pub trees: usize,
    /// Nodes this deep are leaves (default 64, in practice unlimited).
    pub max_depth: usize,
    /// A node needs at least this many distinct trials to be split (default 2).
    pub min_samples_split: usize,
    /// Each side of a split keeps at least this many distinct trials (default 1).
    pub min_samples_leaf: usize,
    /// The most trials the forest learns from (default 4,096). A larger history is
    /// subsampled: this many trials, drawn evenly without replacement with the seed, so that
    /// the time per call stays bounded however long an experiment runs. The time grows a
    /// little faster than linearly with the trials used (about 130 ms for 4,096 trials of 10
    /// parameters, 330 ms for 10,000, in release), while the answer barely moves: on the
    /// timing test's objective, no importance changed by more than 0.006.
    pub max_samples: usize,
    /// The seed of the bootstraps, the feature orders and the subsample (default 0).
    pub seed: u64,
}

impl Default for ImportanceSettings {
    fn default() -> Self {
        ImportanceSettings {
            trees: 64,
            max_depth: 64,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_samples: 4096,
            seed: 0,
        }
    }
}

impl ImportanceSettings {
    /// The first setting out of its range.
    fn check(&self) -> Result<(), ImportanceError> {
        let limits = [
            ("trees", self.trees, 1),
            ("max_depth", self.max_depth, 1),
            ("min_samples_split", self.min_samples_split, 2),
            ("min_samples_leaf", self.min_samples_leaf, 1),
            ("max_samples", self.max_samples, 2),
        ];
        match limits.iter().find(|(_, value, least)| value < least) {
            Some(&(name, value, least)) => Err(ImportanceError::Setting {
                name,
                message: format!("must be at least {least}, got {value}"),
            }),
            None => Ok(()),
        }
    }
}

/// Why importances could not be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ImportanceError {
    /// A field of [`ImportanceSettings`] is out of its range.
    #[error("importance setting `{name}` {message}")]
    Setting {
        /// The field's name.
        name: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The search space breaks one of its invariants (see [`AlgorithmError::Space`]).
    #[error(transparent)]
    Space(AlgorithmError),
    /// A trial has a different number of values than the space has parameters. `trial` is its
    /// position in the `trials` slice.
    #[error(
        "trial {trial} has {found} parameter values, but the search space has {expected} \
         parameters"
    )]
    AssignmentLength {
        /// Position of the trial in the slice.
        trial: usize,
        /// How many values it has.
        found: usize,
        /// How many parameters the space has.
        expected: usize,
    },
    /// A trial's value cannot be a value of its parameter: a string for a number, a choice
    /// that is not listed, a non-finite number. `trial` is its position in the `trials` slice.
    #[error("trial {trial}: parameter `{parameter}` cannot be `{value}`: expected {expected}")]
    Value {
        /// Position of the trial in the slice.
        trial: usize,
        /// The parameter's name.
        parameter: String,
        /// The value given.
        value: String,
        /// What the parameter accepts.
        expected: &'static str,
    },
}

/// The importance of each parameter of `space` for the objective, by fANOVA over a random
/// forest: one value per parameter, in the space's order, each in `[0, 1]`, summing to 1.
///
/// `trials` pairs each trial's assignment (in the space's order) with its objective value;
/// the direction does not matter. Trials whose objective is not finite (NaN, ±∞) are skipped;
/// their assignments are still checked. A parameter that can take a single value gets 0.
/// All importances are 0 when fewer than two trials remain, when the objective does not vary,
/// or when no parameter has an effect of its own (the objective is pure interaction).
///
/// The space is measured as the samplers see it: log-scale parameters in log space, every
/// point of an `int`, stepped or `discrete` grid and every choice of a `categorical` weighing
/// the same. Numeric values outside their parameter's range are clamped into it and values
/// between grid points go to the nearest point.
///
/// # Errors
///
/// [`ImportanceError::Setting`] for a setting out of range, [`ImportanceError::Space`] for a
/// space that breaks its invariants, and for the first bad trial,
/// [`ImportanceError::AssignmentLength`] or [`ImportanceError::Value`].
pub fn fanova(
    space: &SearchSpace,
    trials: &[(&[ParameterValue], f64)],
    settings: &ImportanceSettings,
) -> Result<Vec<f64>, ImportanceError> {
    settings.check()?;
    if let Some(error) = crate::space::check_space(space).into_iter().next() {
        return Err(ImportanceError::Space(error));
    }
    let parameters = &space.parameters;
    // The informative parameters, each with its encoder: the features.
    let features: Vec<(usize, Encoder<'_>)> = parameters
        .iter()
        .enumerate()
        .filter_map(|(index, parameter)| Some((index, Encoder::new(&parameter.domain)?)))
        .collect();
    let (rows, usable) = encode_trials(space, &features, trials)?;

    let mut importances = vec![0.0; parameters.len()];
    if usable.len() < 2 || features.is_empty() {
        return Ok(importances);
    }
    // The forest indexes trials with 32 bits.
    let limit = settings.max_samples.min(u32::MAX as usize);
    let chosen = subsample(usable, limit, settings.seed);
    let Some(targets) = scaled(chosen.iter().map(|&trial| trials[trial].1)) else {
        return Ok(importances);
    };
    let width = features.len();
    let mut columns = Vec::with_capacity(chosen.len() * width);
    for feature in 0..width {
        columns.extend(chosen.iter().map(|&trial| rows[trial * width + feature]));
    }
    let kinds = features.iter().map(|(_, encoder)| encoder.kind()).collect();
    let data = Dataset::new(kinds, &columns, targets);

    let shares = mean_shares(&data, settings);
    let sum: f64 = shares.iter().sum();
    if sum > 0.0 {
        for ((index, _), share) in features.iter().zip(&shares) {
            importances[*index] = share / sum;
        }
    }
    Ok(importances)
}

/// Every trial's feature values, row by row (`features.len()` per trial, for every trial), and
/// the positions of the trials whose objective is finite.
fn encode_trials(
    space: &SearchSpace,
    features: &[(usize, Encoder<'_>)],
    trials: &[(&[ParameterValue], f64)],
) -> Result<(Vec<f64>, Vec<usize>), ImportanceError> {
    let parameters = &space.parameters;
    let mut rows = Vec::with_capacity(trials.len() * features.len());
    let mut usable = Vec::with_capacity(trials.len());
    for (trial, (assignment, objective)) in trials.iter().enumerate() {
        if assignment.len() != parameters.len() {
            return Err(ImportanceError::AssignmentLength {
                trial,
                found: assignment.len(),
                expected: parameters.len(),
            });
        }
        for (index, encoder) in features {
            let value = &assignment[*index];
            let encoded = encoder
                .encode(value)
                .ok_or_else(|| ImportanceError::Value {
                    trial,
                    parameter: parameters[*index].name.clone(),
                    value: value.to_string(),
                    expected: encoder.expected(),
                })?;
            rows.push(encoded);
        }
        if objective.is_finite() {
            usable.push(trial);
        }
    }
    Ok((rows, usable))
}

/// Each feature's share of the variance, summed over the forest's trees (the mean up to the
/// count of trees, which the final scaling cancels). Trees that predict a constant say nothing
/// and are left out.
fn mean_shares(data: &Dataset, settings: &ImportanceSettings) -> Vec<f64> {
    let growth = Growth {
        max_depth: settings.max_depth,
        min_samples_split: settings.min_samples_split,
        min_samples_leaf: settings.min_samples_leaf,
    };
    let width = data.kinds.len();
    let mut builder = TreeBuilder::new(data, growth);
    let mut decomposition = Decomposition::new(&data.kinds, &data.edges);
    let mut tree = Tree::default();
    let mut shares = vec![0.0; width];
    let mut totals = vec![0.0; width];
    for index in 0..settings.trees {
        builder.grow(settings.seed, index as u64, &mut tree);
        if decomposition.main_effects(&tree, &mut shares) > 0.0 {
            for (total, share) in totals.iter_mut().zip(&shares) {
                *total += share;
            }
        }
    }
    totals
}

/// At most `limit` of the `usable` trial positions: all of them when there are no more, or
/// else `limit` drawn evenly without replacement (a partial Fisher–Yates shuffle on the
/// seed's stream), in their original order.
fn subsample(mut usable: Vec<usize>, limit: usize, seed: u64) -> Vec<usize> {
    if usable.len() <= limit {
        return usable;
    }
    let mut rng = trial_rng(seed, 0, SUBSAMPLE_STREAM);
    let n = usable.len();
    for i in 0..limit {
        let j = i + below(&mut rng, (n - i) as u64) as usize;
        usable.swap(i, j);
    }
    usable.truncate(limit);
    usable.sort_unstable();
    usable
}

/// The objective values centred and scaled so that the largest deviation from their mean is
/// 1, or `None` when they do not vary. Only the shape matters to importances; the scaling
/// keeps sums of squares far from overflow whatever the objective's units.
fn scaled(values: impl Iterator<Item = f64>) -> Option<Vec<f64>> {
    let mut values: Vec<f64> = values.collect();
    // Scale first so that the mean cannot overflow.
    let magnitude = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    if magnitude == 0.0 {
        return None;
    }
    values.iter_mut().for_each(|v| *v /= magnitude);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter_mut().for_each(|v| *v -= mean);
    let spread = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let first = values.first().copied().unwrap_or(0.0);
    if spread == 0.0 || values.iter().all(|v| *v == first) {
        return None;
    }
    values.iter_mut().for_each(|v| *v /= spread);
    Some(values)
}
