//! Hyperband as a search algorithm (Katib's `hyperband`): for training programs that take
//! their budget (epochs, iterations) as a parameter instead of being stopped.
//!
//! With `r_l` the largest budget and `eta` the reduction factor, `s_max = ⌊log_eta(r_l)⌋`.
//! Bracket `s` (from `s_max` down to 0) starts `n = ⌈(s_max + 1) / (s + 1) · eta^s⌉` random
//! configurations with budget `r_l · eta^−s`, then reruns the best `⌊n · eta^−i⌋` of rung
//! `i − 1` with budget `r_l · eta^(i−s)`, up to `r_l` (Li et al., 2018). The parameter named
//! by `resource_name` receives each trial's budget. When every bracket has run, the schedule
//! starts again (with new random configurations) until `maxTrialCount`, so no bracket is
//! skipped whatever the parallelism.
//!
//! The schedule is a pure function of the trial index: trial `t` is position
//! `t mod (trials per round)` of it. A promotion needs the results of the rung before it, so
//! while trials of that rung are still running the algorithm suggests nothing more (the
//! engine waits for them); configurations that failed are never promoted, and a rung short of
//! successful configurations is filled with fresh random ones.

use crate::random::RandomSearch;
use crate::settings::{self, Setting};
use crate::space::{Domain, ParameterValue, SearchSpace};
use crate::{Algorithm, AlgorithmError, Assignment, Suggestions, TrialOutcome, TrialRecord};

/// The settings Hyperband accepts besides `random_state`.
pub const SETTINGS: &[&str] = &["resource_name", "eta", "r_l"];

/// One rung of one bracket in the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rung {
    /// Its position in the bracket (0: fresh configurations).
    level: u32,
    /// Trials it runs.
    trials: u64,
    /// The budget each gets.
    resource: f64,
    /// Offset of its first trial in a round.
    first: u64,
}

/// Hyperband over a search space.
#[derive(Debug, Clone)]
pub struct Hyperband {
    random: RandomSearch,
    resource: usize,
    resource_is_int: bool,
    rungs: Vec<Rung>,
    round: u64,
}

impl Hyperband {
    /// Hyperband with `settings` over `space`.
    ///
    /// # Errors
    ///
    /// A missing or unknown `resource_name` (it must name an int or double parameter), a
    /// missing `r_l`, bad values, unknown settings, invalid domains.
    pub fn new(
        settings: &[Setting],
        space: &SearchSpace,
    ) -> Result<Hyperband, Vec<AlgorithmError>> {
        let mut resource_name = None;
        let mut eta = 3.0_f64;
        let mut r_l = None;
        let mut errors = settings::read("hyperband", settings, SETTINGS, |setting, value| {
            match setting {
                "resource_name" => resource_name = Some(value.to_string()),
                "eta" => {
                    eta = value
                        .parse()
                        .ok()
                        .filter(|v: &f64| *v >= 2.0 && v.is_finite())
                        .ok_or("a number of at least 2")?;
                }
                "r_l" => {
                    r_l = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|v: &f64| (1.0..=1e9).contains(v))
                            .ok_or("a number from 1 to 10^9 (the largest budget)")?,
                    );
                }
                _ => {}
            }
            Ok(())
        });
        let random = match RandomSearch::new(&settings::random_state_only(settings), space) {
            Ok(random) => Some(random),
            Err(more) => {
                errors.extend(more);
                None
            }
        };
        let resource_index = settings.iter().position(|s| s.name == "resource_name");
        let resource = match resource_name {
            None => {
                errors.push(AlgorithmError::Setting {
                    index: settings.len(),
                    message: "hyperband needs `resource_name`: the parameter that receives each \
                              trial's budget (epochs, iterations)"
                        .to_string(),
                });
                None
            }
            Some(name) => {
                let index = resource_index.unwrap_or(settings.len());
                let found = space.parameters.iter().position(|p| p.name == name);
                match found.map(|i| (i, &space.parameters[i].domain)) {
                    Some((i, Domain::Int { .. })) => Some((i, true)),
                    Some((i, Domain::Double { .. })) => Some((i, false)),
                    Some(_) => {
                        errors.push(AlgorithmError::Setting {
                            index,
                            message: format!(
                                "`resource_name` names `{name}`, which must be an int or double parameter"
                            ),
                        });
                        None
                    }
                    None => {
                        errors.push(AlgorithmError::Setting {
                            index,
                            message: format!(
                                "`resource_name` names `{name}`, which is not a parameter"
                            ),
                        });
                        None
                    }
                }
            }
        };
        if !settings.iter().any(|s| s.name == "r_l") {
            errors.push(AlgorithmError::Setting {
                index: settings.len(),
                message: "hyperband needs `r_l`: the largest budget a trial gets".to_string(),
            });
        }
        match (random, resource, r_l) {
            (Some(random), Some((resource, resource_is_int)), Some(r_l)) if errors.is_empty() => {
                let (rungs, round) = schedule(eta, r_l);
                Ok(Hyperband {
                    random,
                    resource,
                    resource_is_int,
                    rungs,
                    round,
                })
            }
            _ => Err(errors),
        }
    }

    /// The budget value of `resource` as the parameter's type.
    fn budget(&self, resource: f64) -> ParameterValue {
        if self.resource_is_int {
            ParameterValue::Int(resource.round().max(1.0) as i64)
        } else {
            ParameterValue::Double(resource)
        }
    }

    /// The assignment of trial `index`, or `None` while the rung it promotes from still runs.
    /// `history` holds every earlier trial (those of the current batch as pending ones).
    fn assignment(&self, seed: u64, index: u64, history: &[TrialRecord]) -> Option<Assignment> {
        let round_start = index - index % self.round;
        let offset = index % self.round;
        let position = self.rungs.iter().rposition(|r| r.first <= offset)?;
        let rung = self.rungs[position];
        let fresh = || {
            let mut assignment = self.random.assignment(seed, index);
            assignment[self.resource] = self.budget(rung.resource);
            assignment
        };
        if rung.level == 0 {
            return Some(fresh());
        }
        let previous = self.rungs[position - 1];
        let from = round_start + previous.first;
        let members = history
            .get(from as usize..(from + previous.trials) as usize)
            .unwrap_or_default();
        if members.len() < previous.trials as usize
            || members.iter().any(|t| t.outcome == TrialOutcome::Pending)
        {
            return None;
        }
        let mut finished: Vec<(f64, u64, &Assignment)> = members
            .iter()
            .filter_map(|t| match t.outcome {
                TrialOutcome::Completed(v) if v.is_finite() => Some((v, t.index, &t.assignment)),
                _ => None,
            })
            .collect();
        finished.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let k = (offset - rung.first) as usize;
        Some(match finished.get(k) {
            Some((_, _, assignment)) => {
                let mut promoted = (*assignment).clone();
                promoted[self.resource] = self.budget(rung.resource);
                promoted
            }
            None => fresh(),
        })
    }
}

/// Every rung of one round, bracket by bracket from the most aggressive, and the round's
/// length in trials.
fn schedule(eta: f64, r_l: f64) -> (Vec<Rung>, u64) {
    // s_max = ⌊log_eta(r_l)⌋, with a little slack for rounding (log_2(8) must give 3).
    let s_max = ((r_l.ln() / eta.ln()) + 1e-9).floor().max(0.0) as u32;
    let mut rungs = Vec::new();
    let mut first = 0;
    for s in (0..=s_max).rev() {
        let n = ((f64::from(s_max + 1) / f64::from(s + 1)) * eta.powi(s as i32)).ceil();
        for level in 0..=s {
            let trials = (n * eta.powi(-(level as i32))).floor().max(1.0) as u64;
            let resource = r_l * eta.powi(level as i32 - s as i32);
            rungs.push(Rung {
                level,
                trials,
                resource,
                first,
            });
            first += trials;
        }
    }
    (rungs, first)
}

impl Algorithm for Hyperband {
    fn name(&self) -> &'static str {
        "hyperband"
    }

    fn suggest(&self, seed: u64, history: &[TrialRecord], count: usize) -> Suggestions {
        let mut working: Vec<TrialRecord> = Vec::new();
        let mut assignments = Vec::with_capacity(count);
        for index in (history.len() as u64..).take(count) {
            let seen: Vec<TrialRecord>;
            let all: &[TrialRecord] = if working.is_empty() {
                history
            } else {
                seen = history.iter().chain(&working).cloned().collect();
                &seen
            };
            let Some(assignment) = self.assignment(seed, index, all) else {
                break;
            };
            working.push(TrialRecord {
                index,
                assignment: assignment.clone(),
                outcome: TrialOutcome::Pending,
            });
            assignments.push(assignment);
        }
        Suggestions {
            assignments,
            exhausted: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Distribution, Parameter};

    fn space() -> SearchSpace {
        SearchSpace {
            parameters: vec![
                Parameter {
                    name: "lr".into(),
                    domain: Domain::Double {
                        min: 0.0,
                        max: 1.0,
                        step: None,
                        distribution: Distribution::Uniform,
                    },
                },
                Parameter {
                    name: "epochs".into(),
                    domain: Domain::Int {
                        min: 1,
                        max: 1,
                        step: None,
                        distribution: Distribution::Uniform,
                    },
                },
            ],
        }
    }

    fn hyperband(eta: &str, r_l: &str) -> Hyperband {
        Hyperband::new(
            &[
                Setting::new("resource_name", "epochs"),
                Setting::new("eta", eta),
                Setting::new("r_l", r_l),
            ],
            &space(),
        )
        .expect("valid")
    }

    #[test]
    fn the_schedule_follows_li_et_al() {
        // eta 3, R 27: s_max 3; brackets start 27, 12 (rounded up from 11.25?), 6, 4 configs.
        let (rungs, round) = schedule(3.0, 27.0);
        let shape: Vec<(u32, u64, f64)> = rungs
            .iter()
            .map(|r| (r.level, r.trials, r.resource))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 27, 1.0),
                (1, 9, 3.0),
                (2, 3, 9.0),
                (3, 1, 27.0),
                (0, 12, 3.0),
                (1, 4, 9.0),
                (2, 1, 27.0),
                (0, 6, 9.0),
                (1, 2, 27.0),
                (0, 4, 27.0),
            ]
        );
        assert_eq!(round, 27 + 9 + 3 + 1 + 12 + 4 + 1 + 6 + 2 + 4);
        // Katib's example: eta 2, r_l 2.
        let (rungs, round) = schedule(2.0, 2.0);
        assert_eq!(rungs.len(), 3);
        assert_eq!(round, 2 + 1 + 2);
    }

    #[test]
    fn rungs_wait_for_their_predecessors_then_promote_the_best() {
        let hb = hyperband("2", "2");
        // Round: bracket 1 runs 2 configs with 1 epoch, then the best with 2; bracket 0 runs
        // 2 configs with 2 epochs.
        let first = hb.suggest(1, &[], 5).assignments;
        assert_eq!(first.len(), 2, "the promotion waits for the first rung");
        assert!(first.iter().all(|a| a[1] == ParameterValue::Int(1)));
        let mut history: Vec<TrialRecord> = first
            .iter()
            .zip(0..)
            .map(|(a, i)| TrialRecord {
                index: i,
                assignment: a.clone(),
                outcome: TrialOutcome::Pending,
            })
            .collect();
        assert!(
            hb.suggest(1, &history, 1).assignments.is_empty(),
            "still running"
        );
        history[0].outcome = TrialOutcome::Completed(0.7);
        history[1].outcome = TrialOutcome::Completed(0.2);
        let next = hb.suggest(1, &history, 3).assignments;
        assert_eq!(next.len(), 3, "the promotion and the whole next bracket");
        assert_eq!(next[0][0], first[1][0], "the better configuration goes on");
        assert_eq!(next[0][1], ParameterValue::Int(2));
        assert!(next[1..].iter().all(|a| a[1] == ParameterValue::Int(2)));
    }

    #[test]
    fn failed_configurations_are_replaced_and_rounds_repeat() {
        let hb = hyperband("2", "2");
        let mut history: Vec<TrialRecord> = Vec::new();
        for index in 0..12_u64 {
            let a = hb.suggest(3, &history, 1).assignments.remove(0);
            history.push(TrialRecord {
                index,
                assignment: a,
                outcome: TrialOutcome::Failed,
            });
        }
        // Round two starts at trial 5 with budget 1 again.
        assert_eq!(history[5].assignment[1], ParameterValue::Int(1));
        assert_ne!(history[5].assignment[0], history[0].assignment[0]);
        // Trial 2 promotes from two failures: a fresh configuration instead.
        assert_ne!(history[2].assignment[0], history[0].assignment[0]);
        assert_ne!(history[2].assignment[0], history[1].assignment[0]);
    }

    #[test]
    fn settings_are_checked() {
        let errors =
            Hyperband::new(&[Setting::new("resource_name", "lr2")], &space()).expect_err("bad");
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            messages.iter().any(|m| m.contains("not a parameter")),
            "{messages:?}"
        );
        assert!(messages.iter().any(|m| m.contains("`r_l`")), "{messages:?}");
        assert!(Hyperband::new(&[Setting::new("r_l", "9")], &space()).is_err());
    }
}
