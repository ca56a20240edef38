//! Run names in MLflow's style, `adjective-noun-NNN`, for runs whose client names none.
//!
//! The words are tuneflow's own lists; the shape (lowercase words joined by dashes, a number
//! from 0 to 1000, at most 20 characters) is MLflow's, so that names look alike whichever
//! server made them.

const ADJECTIVES: &[&str] = &[
    "amber", "bold", "brave", "bright", "calm", "clever", "cool", "crisp", "daring", "eager",
    "fancy", "fast", "gentle", "glad", "grand", "happy", "honest", "keen", "kind", "lively",
    "lucky", "merry", "mighty", "neat", "nimble", "noble", "polite", "proud", "quick", "quiet",
    "rapid", "shiny", "silent", "smart", "steady", "sunny", "swift", "tidy", "vivid", "warm",
    "wise", "witty", "young", "zesty",
];

const NOUNS: &[&str] = &[
    "ant", "bat", "bear", "bee", "bird", "boar", "carp", "cat", "colt", "crab", "crow", "deer",
    "dove", "duck", "eel", "elk", "finch", "fish", "fox", "frog", "goat", "gull", "hare", "hawk",
    "heron", "ibis", "jay", "koi", "lark", "lion", "lynx", "mole", "moth", "newt", "owl", "ox",
    "panda", "pike", "puma", "ram", "seal", "shark", "snail", "swan", "toad", "trout", "wolf",
    "wren", "yak",
];

/// The longest generated name.
const MAX_LENGTH: usize = 20;

/// A name from 64 random bits: `adjective-noun-NNN`.
pub fn run_name(random: u64) -> String {
    let adjective = ADJECTIVES[(random % ADJECTIVES.len() as u64) as usize];
    let rest = random / ADJECTIVES.len() as u64;
    let noun = NOUNS[(rest % NOUNS.len() as u64) as usize];
    let number = (rest / NOUNS.len() as u64) % 1001;
    let mut name = format!("{adjective}-{noun}-{number}");
    name.truncate(MAX_LENGTH);
    name
}

/// A fresh random run name.
pub fn random_run_name() -> String {
    run_name(uuid::Uuid::new_v4().as_u64_pair().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_mlflow_shape() {
        for seed in [0, 1, 7, 12345, u64::MAX, 987_654_321_123] {
            let name = run_name(seed);
            let parts: Vec<&str> = name.split('-').collect();
            assert_eq!(parts.len(), 3, "{name}");
            assert!(
                ADJECTIVES.contains(&parts[0]) && NOUNS.contains(&parts[1]),
                "{name}"
            );
            assert!(parts[2].parse::<u32>().is_ok_and(|n| n <= 1000), "{name}");
            assert!(name.len() <= MAX_LENGTH);
        }
        assert_ne!(random_run_name(), random_run_name());
    }
}
