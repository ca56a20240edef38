//! Algorithm settings: Katib's `algorithmSettings`, a list of name/value strings.
//!
//! Settings arrive as strings because that is how Katib spells them in an Experiment; each
//! algorithm says which names it accepts and parses the values it cares about. This module holds
//! what every algorithm shares: the [`Setting`] type, the check that rejects unknown names (with a
//! "did you mean" hint found by edit distance, see [`nearest_name`]) and the parser of
//! `random_state`, the one setting every algorithm accepts.
//!
//! `random_state` is not a knob of any one algorithm: it is the experiment's seed. The engine
//! reads it with [`random_state`] and passes it to [`Algorithm::suggest`](crate::Algorithm::suggest);
//! when it is absent the engine draws a seed and stores it, so a restarted experiment continues
//! with the same random stream.

use serde::{Deserialize, Serialize};

use crate::AlgorithmError;

/// The name of the setting that fixes the experiment's seed.
pub const RANDOM_STATE: &str = "random_state";

/// One entry of Katib's `algorithmSettings`: a name and a value, both strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// The setting's name, e.g. `random_state`.
    pub name: String,
    /// Its value as written in the Experiment, e.g. `"42"`.
    pub value: String,
}

impl Setting {
    /// Makes a setting from a name and a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Setting {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Reads the `random_state` setting: `Ok(None)` when it is absent, `Ok(Some(seed))` when it is a
/// non-negative integer that fits in 64 bits.
///
/// # Errors
///
/// [`AlgorithmError::Setting`] when the value is not such an integer, or when the setting is
/// given more than once (which one would win is not obvious, so neither does).
pub fn random_state(settings: &[Setting]) -> Result<Option<u64>, AlgorithmError> {
    let mut found: Option<(usize, u64)> = None;
    for (index, setting) in settings.iter().enumerate() {
        if setting.name != RANDOM_STATE {
            continue;
        }
        if let Some((first, _)) = found {
            return Err(AlgorithmError::Setting {
                index,
                message: format!(
                    "setting `{RANDOM_STATE}` is given twice (first at algorithmSettings[{first}])"
                ),
            });
        }
        let value = setting.value.trim();
        let seed = value.parse::<u64>().map_err(|_| AlgorithmError::Setting {
            index,
            message: format!(
                "setting `{RANDOM_STATE}` must be a non-negative integer between 0 and {}, \
                 got `{}`",
                u64::MAX,
                setting.value
            ),
        })?;
        found = Some((index, seed));
    }
    Ok(found.map(|(_, seed)| seed))
}

/// Checks `settings` for algorithm `algorithm`, which accepts the names in `known`: every
/// unknown name is an error (with the nearest known name as a hint), and `random_state`, which
/// every algorithm accepts, must parse. Returns every problem found.
pub(crate) fn check(algorithm: &str, settings: &[Setting], known: &[&str]) -> Vec<AlgorithmError> {
    let mut errors = Vec::new();
    for (index, setting) in settings.iter().enumerate() {
        let name = setting.name.as_str();
        if name == RANDOM_STATE || known.contains(&name) {
            continue;
        }
        let accepted = std::iter::once(RANDOM_STATE)
            .chain(known.iter().copied())
            .collect::<Vec<_>>();
        let hint = match nearest_name(name, accepted.iter()) {
            Some(nearest) => format!("did you mean `{nearest}`?"),
            None => format!("it accepts: {}", accepted.join(", ")),
        };
        errors.push(AlgorithmError::Setting {
            index,
            message: format!("unknown setting `{name}` for algorithm `{algorithm}`; {hint}"),
        });
    }
    if let Err(error) = random_state(settings) {
        errors.push(error);
    }
    errors
}

/// Checks `settings` as [`check`] does, then hands each known setting's trimmed value to
/// `apply`, which parses and stores it or returns what was expected (`"a positive integer"`);
/// every failure becomes an error naming the setting and its value. The one reader of every
/// algorithm's and early-stopping rule's settings.
pub(crate) fn read(
    algorithm: &str,
    settings: &[Setting],
    known: &[&str],
    mut apply: impl FnMut(&str, &str) -> Result<(), String>,
) -> Vec<AlgorithmError> {
    let mut errors = check(algorithm, settings, known);
    for (index, setting) in settings.iter().enumerate() {
        if !known.contains(&setting.name.as_str()) {
            continue;
        }
        if let Err(expected) = apply(&setting.name, setting.value.trim()) {
            errors.push(AlgorithmError::Setting {
                index,
                message: format!(
                    "setting `{}` must be {expected}, got `{}`",
                    setting.name, setting.value
                ),
            });
        }
    }
    errors
}

/// The `random_state` entries of `settings`: what an algorithm passes on to random search.
pub(crate) fn random_state_only(settings: &[Setting]) -> Vec<Setting> {
    settings
        .iter()
        .filter(|s| s.name == RANDOM_STATE)
        .cloned()
        .collect()
}

/// The candidate closest to `name` by edit distance, when it is close enough to be a likely
/// typo: at most `max(2, len / 3)` single-character edits, where `len` is the length of `name`,
/// and fewer edits than the candidate has characters (so that a short name does not "suggest"
/// an unrelated short word). Letter case is ignored. Ties go to the earliest candidate.
///
/// This is the "did you mean" hint for unknown algorithm names and settings; the spec module
/// uses it for unknown fields too.
pub fn nearest_name<I, S>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let name_chars = name
        .chars()
        .flat_map(char::to_lowercase)
        .collect::<Vec<_>>();
    let limit = (name_chars.len() / 3).max(2);
    let mut best: Option<(usize, String)> = None;
    for candidate in candidates {
        let candidate = candidate.as_ref();
        let candidate_chars = candidate
            .chars()
            .flat_map(char::to_lowercase)
            .collect::<Vec<_>>();
        let distance = levenshtein(&name_chars, &candidate_chars);
        let close = distance <= limit && distance < candidate_chars.len();
        let better = best.as_ref().is_none_or(|(best, _)| distance < *best);
        if close && better {
            best = Some((distance, candidate.to_string()));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// [`nearest_name`] over the name lists this crate keeps (`&[&str]` iterators).
pub(crate) fn nearest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a &'a str>,
) -> Option<String> {
    nearest_name(name, candidates.into_iter().copied())
}

/// The Levenshtein distance between two character sequences: the fewest single-character
/// insertions, deletions and substitutions that turn one into the other. One row of the
/// dynamic-programming table at a time.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut row = (0..=b.len()).collect::<Vec<_>>();
    for (i, &a_char) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &b_char) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(a_char != b_char);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: &str, b: &str) -> usize {
        let a = a.chars().collect::<Vec<_>>();
        let b = b.chars().collect::<Vec<_>>();
        levenshtein(&a, &b)
    }

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("grdi", "grid"), 2);
        assert_eq!(distance("randm_state", "random_state"), 1);
        assert_eq!(distance("flaw", "lawn"), 2);
    }

    #[test]
    fn nearest_name_finds_typos_and_ignores_strangers() {
        let names = ["random", "grid", "tpe", "hyperband"];
        assert_eq!(nearest_name("grdi", names), Some("grid".to_string()));
        assert_eq!(nearest_name("Random", names), Some("random".to_string()));
        assert_eq!(
            nearest_name("hyperbnad", names),
            Some("hyperband".to_string())
        );
        assert_eq!(nearest_name("genetic-algorithm", names), None);
        assert_eq!(nearest_name("xyz", names), None);
        assert_eq!(nearest_name("anything", Vec::<String>::new()), None);
    }

    #[test]
    fn random_state_absent_present_and_bad() {
        assert_eq!(random_state(&[]), Ok(None));
        let settings = [
            Setting::new("other", "x"),
            Setting::new("random_state", " 42 "),
        ];
        assert_eq!(random_state(&settings), Ok(Some(42)));
        assert_eq!(
            random_state(&[Setting::new("random_state", "18446744073709551615")]),
            Ok(Some(u64::MAX))
        );
        for bad in ["-1", "4.2", "abc", "", "18446744073709551616"] {
            let settings = [Setting::new("x", "1"), Setting::new("random_state", bad)];
            match random_state(&settings) {
                Err(AlgorithmError::Setting { index, message }) => {
                    assert_eq!(index, 1);
                    assert!(message.contains("non-negative integer"), "{message}");
                    assert!(message.contains(&format!("`{bad}`")), "{message}");
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn random_state_twice_is_an_error() {
        let settings = [
            Setting::new("random_state", "1"),
            Setting::new("random_state", "1"),
        ];
        assert!(matches!(
            random_state(&settings),
            Err(AlgorithmError::Setting { index: 1, .. })
        ));
    }

    #[test]
    fn unknown_setting_names_the_nearest_known_one() {
        let errors = check("random", &[Setting::new("randm_state", "3")], &[]);
        assert_eq!(
            errors,
            vec![AlgorithmError::Setting {
                index: 0,
                message: "unknown setting `randm_state` for algorithm `random`; \
                          did you mean `random_state`?"
                    .to_string(),
            }]
        );
        let errors = check("grid", &[Setting::new("n_startup_trials", "3")], &[]);
        assert!(
            matches!(&errors[..], [AlgorithmError::Setting { message, .. }]
                if message.ends_with("it accepts: random_state")),
            "{errors:?}"
        );
    }

    #[test]
    fn check_reports_every_problem() {
        let settings = [
            Setting::new("a", "1"),
            Setting::new("random_state", "x"),
            Setting::new("b", "2"),
        ];
        let indices = check("random", &settings, &[])
            .into_iter()
            .map(|error| match error {
                AlgorithmError::Setting { index, .. } => index,
                other => panic!("unexpected {other:?}"),
            })
            .collect::<Vec<_>>();
        assert_eq!(indices, vec![0, 2, 1]);
    }

    #[test]
    fn setting_round_trips_through_json() {
        let setting = Setting::new("random_state", "7");
        let json = serde_json::to_string(&setting).expect("serialises");
        assert_eq!(json, r#"{"name":"random_state","value":"7"}"#);
        let back: Setting = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, setting);
    }
}
