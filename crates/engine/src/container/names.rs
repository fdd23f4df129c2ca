//! Generated container names, Docker's way: `adjective_surname`, the
//! surname one of a scientist or engineer, with a number added when the
//! plain name is taken.

const ADJECTIVES: &[&str] = &[
    "admiring", "agile", "amazing", "bold", "brave", "busy", "calm", "charming", "clever", "cool",
    "crisp", "daring", "dazzling", "eager", "elegant", "epic", "fervent", "festive", "focused",
    "friendly", "gallant", "gentle", "happy", "hopeful", "jolly", "keen", "kind", "lucid", "merry",
    "modest", "nifty", "noble", "patient", "quirky", "relaxed", "serene", "sharp", "stoic",
    "tender", "vibrant", "wizardly", "zealous",
];

const SURNAMES: &[&str] = &[
    "agnesi",
    "babbage",
    "bardeen",
    "bohr",
    "borg",
    "cerf",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "fermi",
    "feynman",
    "franklin",
    "galois",
    "gauss",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamarr",
    "lamport",
    "liskov",
    "lovelace",
    "maxwell",
    "meitner",
    "mirzakhani",
    "neumann",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yalow",
];

/// A random `adjective_surname`; `attempt` > 0 appends it as a number, so
/// callers that find the name taken can try again with a different one.
pub(crate) fn generate(attempt: u32) -> String {
    let adjective = ADJECTIVES[rand::random_range(0..ADJECTIVES.len())];
    let surname = SURNAMES[rand::random_range(0..SURNAMES.len())];
    // Docker's one exception: Wozniak is not boring.
    if adjective == "boring" && surname == "wozniak" {
        return generate(attempt);
    }
    if attempt == 0 {
        format!("{adjective}_{surname}")
    } else {
        format!("{adjective}_{surname}{attempt}")
    }
}

/// Docker's rule for `--name`: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub(crate) fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_valid_and_shaped() {
        for attempt in [0, 3] {
            let n = generate(attempt);
            assert!(valid(&n), "{n}");
            let (a, s) = n.split_once('_').unwrap();
            assert!(ADJECTIVES.contains(&a), "{n}");
            let s = s.trim_end_matches(|c: char| c.is_ascii_digit());
            assert!(SURNAMES.contains(&s), "{n}");
            assert_eq!(n.ends_with('3'), attempt == 3);
        }
    }

    #[test]
    fn name_rule_matches_docker() {
        assert!(valid("web-1.a_b"));
        assert!(!valid("a"));
        assert!(!valid("-web"));
        assert!(!valid("we/b"));
        assert!(!valid(""));
    }
}
