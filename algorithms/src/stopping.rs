//! Early stopping: rules that decide, while a trial runs, whether it is worth finishing.
//!
//! A rule sees the trial's learning curve (its objective metric by step, as losses: smaller is
//! better, the engine negates maximized objectives) and every other trial's curve, and answers
//! [`StopDecision::Continue`] or [`StopDecision::Prune`]. Rules are pure functions of their
//! settings, the experiment's seed and the curves, like the search algorithms.
//!
//! - `medianstop` (Katib's name): from `start_step` on, stop a trial whose best value so far is
//!   worse than the median of the completed trials' best values up to the same step, once at
//!   least `min_trials_required` completed trials reached that step. The median is a true
//!   median; Katib's implementation compares against the mean.
//! - `asha`: asynchronous successive halving. Rungs sit at steps
//!   `min_resource · reduction_factor^(min_early_stopping_rate + k)`. When a trial first reports
//!   at or after a rung, its value there (the first observation at or after the rung's step) is
//!   compared with every trial's value at that rung: it goes on only if it is in the best
//!   `1 / reduction_factor` of them (the best one always goes on).
//! - `hyperband`: brackets of ASHA with early-stopping rates `0 ..= s_max`, where
//!   `s_max = ⌊log_η(max_resource / min_resource)⌋`; each trial belongs to one bracket, chosen
//!   from the seed and its index with the brackets weighted by their budgets, and is compared
//!   only with the trials of its bracket.

use crate::settings::{self, Setting};
use crate::{AlgorithmError, nearest_name};

/// The early-stopping rules this build implements.
pub const AVAILABLE: &[&str] = &["medianstop", "asha", "hyperband"];

/// What became of a trial, as far as a rule needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurveState {
    /// Still running.
    Running,
    /// Finished normally.
    Completed,
    /// Stopped (early stopping, failure, kill).
    Stopped,
}

/// A trial's learning curve: `(step, loss)` by step (and arrival within a step).
#[derive(Debug, Clone, Copy)]
pub struct Curve<'a> {
    /// The trial's index in the experiment.
    pub index: u64,
    /// Its state.
    pub state: CurveState,
    /// Its objective observations, as losses, ordered by step.
    pub points: &'a [(i64, f64)],
}

impl Curve<'_> {
    /// The last step reported.
    pub fn last_step(&self) -> Option<i64> {
        self.points.last().map(|p| p.0)
    }

    /// The first value reported at or after `step`.
    fn at_or_after(&self, step: i64) -> Option<f64> {
        let i = self.points.partition_point(|p| p.0 < step);
        self.points.get(i).map(|p| p.1)
    }

    /// The best value reported up to `step`.
    fn best_up_to(&self, step: i64) -> Option<f64> {
        self.points
            .iter()
            .take_while(|p| p.0 <= step)
            .map(|p| p.1)
            .fold(None, |best: Option<f64>, v| {
                Some(best.map_or(v, |b| b.min(v)))
            })
    }
}

/// A rule's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopDecision {
    /// Go on.
    Continue,
    /// Stop the trial now.
    Prune,
}

/// An early-stopping rule.
pub trait EarlyStopping: Send + Sync + std::fmt::Debug {
    /// The rule's name as used in `earlyStopping.algorithmName`.
    fn name(&self) -> &'static str;

    /// Whether `trial` should stop now, given `others` (every other trial, in any state).
    fn decide(&self, seed: u64, trial: &Curve<'_>, others: &[Curve<'_>]) -> StopDecision;
}

/// Builds the rule `name` with `settings`.
///
/// # Errors
///
/// Every problem: an unknown name (with the nearest known one), unknown settings, bad values.
pub fn build(
    name: &str,
    settings: &[Setting],
) -> Result<Box<dyn EarlyStopping>, Vec<AlgorithmError>> {
    match name {
        "medianstop" => MedianStop::new(settings).map(|r| Box::new(r) as _),
        "asha" => Asha::new(settings).map(|r| Box::new(r) as _),
        "hyperband" => HyperbandPruner::new(settings).map(|r| Box::new(r) as _),
        other => Err(vec![AlgorithmError::Unknown {
            name: other.to_string(),
            suggestion: nearest_name(other, AVAILABLE),
        }]),
    }
}

fn positive_int(value: &str) -> Result<i64, String> {
    value
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| "a positive integer".to_string())
}

fn non_negative_int(value: &str) -> Result<i64, String> {
    value
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| "a non-negative integer".to_string())
}

/// Katib's median stopping rule.
#[derive(Debug, Clone)]
pub struct MedianStop {
    min_trials_required: usize,
    start_step: i64,
}

impl MedianStop {
    /// `min_trials_required` (3) and `start_step` (4).
    ///
    /// # Errors
    ///
    /// Unknown settings and values that are not non-negative integers.
    pub fn new(settings: &[Setting]) -> Result<MedianStop, Vec<AlgorithmError>> {
        let mut rule = MedianStop {
            min_trials_required: 3,
            start_step: 4,
        };
        let errors = settings::read(
            "medianstop",
            settings,
            &["min_trials_required", "start_step"],
            |name, value| {
                match name {
                    "min_trials_required" => {
                        rule.min_trials_required = positive_int(value)? as usize
                    }
                    _ => rule.start_step = non_negative_int(value)?,
                }
                Ok(())
            },
        );
        if errors.is_empty() {
            Ok(rule)
        } else {
            Err(errors)
        }
    }
}

impl EarlyStopping for MedianStop {
    fn name(&self) -> &'static str {
        "medianstop"
    }

    fn decide(&self, _seed: u64, trial: &Curve<'_>, others: &[Curve<'_>]) -> StopDecision {
        let Some(step) = trial.last_step().filter(|s| *s >= self.start_step) else {
            return StopDecision::Continue;
        };
        let Some(value) = trial.best_up_to(step) else {
            return StopDecision::Continue;
        };
        let mut peers: Vec<f64> = others
            .iter()
            .filter(|o| o.state == CurveState::Completed && o.last_step() >= Some(step))
            .filter_map(|o| o.best_up_to(step))
            .collect();
        if peers.len() < self.min_trials_required {
            return StopDecision::Continue;
        }
        match median(&mut peers) {
            Some(median) if value > median => StopDecision::Prune,
            _ => StopDecision::Continue,
        }
    }
}

/// The median (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// Asynchronous successive halving.
#[derive(Debug, Clone)]
pub struct Asha {
    min_resource: i64,
    reduction_factor: i64,
    min_early_stopping_rate: u32,
}

impl Asha {
    /// `min_resource` (1), `reduction_factor` (3), `min_early_stopping_rate` (0).
    ///
    /// # Errors
    ///
    /// Unknown settings and bad values (`reduction_factor` must be at least 2).
    pub fn new(settings: &[Setting]) -> Result<Asha, Vec<AlgorithmError>> {
        let mut rule = Asha {
            min_resource: 1,
            reduction_factor: 3,
            min_early_stopping_rate: 0,
        };
        let errors = settings::read(
            "asha",
            settings,
            &[
                "min_resource",
                "reduction_factor",
                "min_early_stopping_rate",
            ],
            |name, value| {
                match name {
                    "min_resource" => rule.min_resource = positive_int(value)?,
                    "reduction_factor" => {
                        rule.reduction_factor = positive_int(value)
                            .ok()
                            .filter(|v| *v >= 2)
                            .ok_or("an integer of at least 2")?;
                    }
                    _ => {
                        rule.min_early_stopping_rate = u32::try_from(non_negative_int(value)?)
                            .ok()
                            .filter(|v| *v <= 30)
                            .ok_or("an integer from 0 to 30")?;
                    }
                }
                Ok(())
            },
        );
        if errors.is_empty() {
            Ok(rule)
        } else {
            Err(errors)
        }
    }

    /// The step of rung `k`, if it fits in an `i64`.
    fn rung(&self, k: u32) -> Option<i64> {
        self.reduction_factor
            .checked_pow(self.min_early_stopping_rate.checked_add(k)?)?
            .checked_mul(self.min_resource)
    }

    /// The decision for `trial` against the peers it competes with.
    fn decide_among(&self, trial: &Curve<'_>, peers: &[&Curve<'_>]) -> StopDecision {
        let Some(last) = trial.last_step() else {
            return StopDecision::Continue;
        };
        let previous = trial.points.len().checked_sub(2).map(|i| trial.points[i].0);
        // The rung this observation reached first, if any: decisions are taken on arrival.
        let mut reached = None;
        for k in 0.. {
            let Some(step) = self.rung(k) else { break };
            if step > last {
                break;
            }
            if previous.is_none_or(|p| p < step) {
                reached = Some(step);
            }
        }
        let Some(step) = reached else {
            return StopDecision::Continue;
        };
        let Some(value) = trial.at_or_after(step) else {
            return StopDecision::Continue;
        };
        let mut competing: Vec<f64> = peers
            .iter()
            .filter_map(|p| p.at_or_after(step))
            .chain(std::iter::once(value))
            .collect();
        competing.sort_by(f64::total_cmp);
        let promoted = (competing.len() / self.reduction_factor as usize).max(1);
        if value <= competing[promoted - 1] {
            StopDecision::Continue
        } else {
            StopDecision::Prune
        }
    }
}

impl EarlyStopping for Asha {
    fn name(&self) -> &'static str {
        "asha"
    }

    fn decide(&self, _seed: u64, trial: &Curve<'_>, others: &[Curve<'_>]) -> StopDecision {
        let peers: Vec<&Curve<'_>> = others.iter().collect();
        self.decide_among(trial, &peers)
    }
}

/// Hyperband as an early-stopping rule: ASHA brackets.
#[derive(Debug, Clone)]
pub struct HyperbandPruner {
    brackets: Vec<Asha>,
    /// The step a full run reaches: a trial there is done, and stopping it saves nothing.
    max_resource: i64,
    /// Cumulative bracket weights (budgets), for the deterministic assignment.
    cumulative: Vec<f64>,
}

impl HyperbandPruner {
    /// `min_resource` (1), `max_resource` (required), `reduction_factor` (3).
    ///
    /// # Errors
    ///
    /// A missing `max_resource`, unknown settings and bad values.
    pub fn new(settings: &[Setting]) -> Result<HyperbandPruner, Vec<AlgorithmError>> {
        let (mut min_resource, mut max_resource, mut eta) = (1_i64, None, 3_i64);
        let mut errors = settings::read(
            "hyperband",
            settings,
            &["min_resource", "max_resource", "reduction_factor"],
            |name, value| {
                match name {
                    "min_resource" => min_resource = positive_int(value)?,
                    "max_resource" => max_resource = Some(positive_int(value)?),
                    _ => {
                        eta = positive_int(value)
                            .ok()
                            .filter(|v| *v >= 2)
                            .ok_or("an integer of at least 2")?;
                    }
                }
                Ok(())
            },
        );
        let Some(max_resource) = max_resource else {
            errors.push(AlgorithmError::Setting {
                index: settings.len(),
                message: "hyperband needs `max_resource`: the step a full training run reaches"
                    .to_string(),
            });
            return Err(errors);
        };
        if max_resource < min_resource {
            errors.push(AlgorithmError::Setting {
                index: settings.len(),
                message: format!(
                    "`max_resource` ({max_resource}) must be at least `min_resource` ({min_resource})"
                ),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // s_max = floor(log_eta(max / min)), computed exactly on integers.
        let mut s_max = 0_u32;
        while min_resource
            .checked_mul(eta.pow(s_max + 1))
            .is_some_and(|r| r <= max_resource)
        {
            s_max += 1;
        }
        let brackets: Vec<Asha> = (0..=s_max)
            .map(|s| Asha {
                min_resource,
                reduction_factor: eta,
                min_early_stopping_rate: s,
            })
            .collect();
        // Bracket b halves s = s_max − b times and starts ⌈(s_max + 1) · η^s / (s + 1)⌉ trials
        // (Li et al.): the brackets are weighted by those counts.
        let mut cumulative = Vec::with_capacity(brackets.len());
        let mut total = 0.0;
        for b in 0..=s_max {
            let s = s_max - b;
            total += (f64::from(s_max + 1) * (eta as f64).powi(s as i32) / f64::from(s + 1)).ceil();
            cumulative.push(total);
        }
        for c in &mut cumulative {
            *c /= total;
        }
        Ok(HyperbandPruner {
            brackets,
            max_resource,
            cumulative,
        })
    }

    /// The bracket of trial `index` in the experiment seeded with `seed`.
    pub fn bracket(&self, seed: u64, index: u64) -> usize {
        let mut rng = crate::rng::trial_rng(seed, index, BRACKET_STREAM);
        let u = crate::rng::unit(&mut rng);
        self.cumulative
            .partition_point(|c| *c <= u)
            .min(self.brackets.len() - 1)
    }
}

/// The stream bracket assignments are drawn from.
const BRACKET_STREAM: u64 = 0x6862_0000;

impl EarlyStopping for HyperbandPruner {
    fn name(&self) -> &'static str {
        "hyperband"
    }

    fn decide(&self, seed: u64, trial: &Curve<'_>, others: &[Curve<'_>]) -> StopDecision {
        // A rung at the full budget would stop a trial that has nothing left to run.
        if trial.last_step().is_some_and(|s| s >= self.max_resource) {
            return StopDecision::Continue;
        }
        let bracket = self.bracket(seed, trial.index);
        let peers: Vec<&Curve<'_>> = others
            .iter()
            .filter(|o| self.bracket(seed, o.index) == bracket)
            .collect();
        self.brackets[bracket].decide_among(trial, &peers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(index: u64, state: CurveState, points: &[(i64, f64)]) -> Curve<'_> {
        Curve {
            index,
            state,
            points,
        }
    }

    #[test]
    fn median_stop_by_hand() {
        let rule = MedianStop::new(&[]).expect("defaults");
        let done = [
            vec![(1, 5.0), (4, 3.0), (5, 2.0)],
            vec![(1, 4.0), (4, 2.0)],
            vec![(1, 6.0), (4, 4.0), (6, 1.0)],
            vec![(1, 1.0)], // never reached step 4: not counted
        ];
        let others: Vec<Curve<'_>> = done
            .iter()
            .zip(0..)
            .map(|(p, i)| curve(i, CurveState::Completed, p))
            .collect();
        // Best up to step 4 of the others: 3, 2, 4 → median 3.
        let worse = [(1, 9.0), (4, 3.5)];
        let equal = [(1, 9.0), (4, 3.0)];
        let early = [(1, 9.0), (3, 9.0)];
        assert_eq!(
            rule.decide(0, &curve(9, CurveState::Running, &worse), &others),
            StopDecision::Prune
        );
        assert_eq!(
            rule.decide(0, &curve(9, CurveState::Running, &equal), &others),
            StopDecision::Continue
        );
        assert_eq!(
            rule.decide(0, &curve(9, CurveState::Running, &early), &others),
            StopDecision::Continue
        );
        // An even count takes the mean of the middle two: best values 3, 2, 4, 1 at step 4.
        let mut more = others.clone();
        let extra = [(4, 1.0)];
        more.push(curve(5, CurveState::Completed, &extra));
        let between = [(4, 2.6)];
        assert_eq!(
            rule.decide(0, &curve(9, CurveState::Running, &between), &more),
            StopDecision::Prune
        );
        let below = [(4, 2.5)];
        assert_eq!(
            rule.decide(0, &curve(9, CurveState::Running, &below), &more),
            StopDecision::Continue
        );
        // Running trials do not count; too few completed ones means no decision.
        let running: Vec<Curve<'_>> = others
            .iter()
            .map(|c| Curve {
                state: CurveState::Running,
                ..*c
            })
            .collect();
        assert_eq!(
            rule.decide(0, &curve(9, CurveState::Running, &worse), &running),
            StopDecision::Continue
        );
    }

    #[test]
    fn asha_promotes_the_best_third_at_each_rung() {
        let rule = Asha::new(&[Setting::new("reduction_factor", "3")]).expect("valid");
        // Rungs at steps 1, 3, 9, ...; six peers reported at step 1.
        let peers: Vec<Vec<(i64, f64)>> = (0..6).map(|i| vec![(1, f64::from(i))]).collect();
        let others: Vec<Curve<'_>> = peers
            .iter()
            .zip(0..)
            .map(|(p, i)| curve(i, CurveState::Running, p))
            .collect();
        // Seven values at rung 1: the best 7 / 3 = 2 go on (values 0 and 1, or better).
        let good = [(1, 0.5)];
        let bad = [(1, 1.5)];
        assert_eq!(
            rule.decide(0, &curve(9, CurveState::Running, &good), &others),
            StopDecision::Continue
        );
        assert_eq!(
            rule.decide(0, &curve(9, CurveState::Running, &bad), &others),
            StopDecision::Prune
        );
        // Between rungs nothing is decided; the next rung (3) decides again.
        let between = [(1, 0.5), (2, 9.0)];
        assert_eq!(
            rule.decide(0, &curve(9, CurveState::Running, &between), &others),
            StopDecision::Continue
        );
        // The first trial at a rung is always promoted.
        let alone = [(1, 100.0), (3, 100.0)];
        assert_eq!(
            rule.decide(0, &curve(9, CurveState::Running, &alone), &others),
            StopDecision::Continue
        );
        // A rung value is the first observation at or after the rung's step.
        let skipped = [(2, 5.0)];
        assert_eq!(
            rule.decide(0, &curve(9, CurveState::Running, &skipped), &others),
            StopDecision::Prune
        );
    }

    #[test]
    fn hyperband_assigns_brackets_deterministically_and_compares_within_them() {
        let rule = HyperbandPruner::new(&[
            Setting::new("max_resource", "27"),
            Setting::new("reduction_factor", "3"),
        ])
        .expect("valid");
        assert_eq!(rule.brackets.len(), 4, "s_max = log3(27) = 3");
        let brackets: Vec<usize> = (0..200).map(|i| rule.bracket(5, i)).collect();
        assert_eq!(
            brackets,
            (0..200).map(|i| rule.bracket(5, i)).collect::<Vec<_>>()
        );
        assert!(
            (0..4).all(|b| brackets.contains(&b)),
            "every bracket gets trials"
        );
        // Bracket 0 (the most aggressive) gets the largest budget share.
        let zero = brackets.iter().filter(|b| **b == 0).count();
        assert!(zero > brackets.iter().filter(|b| **b == 3).count());
        // A trial is never compared with trials of other brackets.
        let mine = (0..200)
            .find(|i| rule.bracket(5, *i) == 0)
            .expect("bracket 0");
        let others_points = [(1, 0.0)];
        let others: Vec<Curve<'_>> = (0..200)
            .filter(|i| rule.bracket(5, *i) != 0)
            .map(|i| curve(i, CurveState::Running, &others_points))
            .collect();
        let bad = [(1, 50.0)];
        assert_eq!(
            rule.decide(5, &curve(mine, CurveState::Running, &bad), &others),
            StopDecision::Continue
        );
        assert!(
            HyperbandPruner::new(&[]).is_err(),
            "max_resource is required"
        );
    }

    #[test]
    fn settings_are_checked() {
        let errors = MedianStop::new(&[
            Setting::new("start_step", "-1"),
            Setting::new("min_trial_required", "3"),
        ])
        .expect_err("bad");
        assert_eq!(errors.len(), 2);
        assert!(Asha::new(&[Setting::new("reduction_factor", "1")]).is_err());
        assert!(build("median", &[]).is_err());
        assert_eq!(build("asha", &[]).expect("asha").name(), "asha");
    }
}
