//! Ids and names: 64-hex ids with 12-hex short forms, Docker's name rules, and lookup by
//! name, full id or unambiguous id prefix.

use rand::Rng;

/// A fresh 64-hex-digit id.
pub fn new_id() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Docker's rule for container and network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok
        && name.len() >= 2
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
pub fn is_valid_hostname(hostname: &str) -> bool {
    !hostname.is_empty()
        && hostname.len() <= 253
        && hostname.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A `--network-alias`: a DNS name of labels of letters, digits, '_' and '-' (the dns
/// service checks the same at its boundary; checked here so that a container is never
/// stored with an alias that would make every start fail).
pub fn check_alias(alias: &str) -> Result<(), String> {
    let reason = if alias.is_empty() || alias.len() > 253 {
        "must be 1 to 253 characters long"
    } else if alias.split('.').any(|label| label.is_empty() || label.len() > 63) {
        "dot-separated labels must be 1 to 63 characters long"
    } else if !alias.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        "may only contain letters, digits, '_', '-' and dots between labels"
    } else {
        return Ok(());
    };
    Err(format!("invalid network alias {alias:?}: {reason}"))
}

/// A generated container name in Docker's `adjective_noun` shape; from the `attempt`
/// after the first few, with a number appended, as Docker's name generator does once
/// the plain names collide (there are only a few hundred of them).
pub fn generated_name(attempt: usize) -> String {
    const ADJECTIVES: &[&str] = &[
        "brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "proud", "quirky", "silly", "tender", "vivid", "wise", "zen",
    ];
    const NOUNS: &[&str] = &[
        "babbage", "curie", "darwin", "euler", "fermat", "galois", "hopper", "kepler", "lovelace",
        "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak",
    ];
    let mut rng = rand::rng();
    let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let noun = NOUNS[rng.random_range(0..NOUNS.len())];
    if attempt < 8 {
        format!("{adjective}_{noun}")
    } else {
        format!("{adjective}_{noun}{}", rng.random_range(1..1_000_000))
    }
}

/// How a reference (name, id or id prefix) matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    Missing,
    Ambiguous,
}

impl<T> Lookup<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Lookup<U> {
        match self {
            Lookup::Found(item) => Lookup::Found(f(item)),
            Lookup::Missing => Lookup::Missing,
            Lookup::Ambiguous => Lookup::Ambiguous,
        }
    }
}

/// Finds the one item `reference` names: an exact name or id wins, then a unique id
/// prefix, as Docker resolves references.
pub fn lookup<T>(
    items: impl IntoIterator<Item = T>,
    reference: &str,
    key: impl Fn(&T) -> (&str, &str),
) -> Lookup<T> {
    let mut by_prefix = Vec::new();
    for item in items {
        let (id, name) = key(&item);
        if id == reference || name == reference {
            return Lookup::Found(item);
        }
        if !reference.is_empty() && id.starts_with(reference) {
            by_prefix.push(item);
        }
    }
    match by_prefix.len() {
        0 => Lookup::Missing,
        1 => Lookup::Found(by_prefix.pop().expect("one item")),
        _ => Lookup::Ambiguous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_valid_and_get_a_number_once_plain_ones_run_out() {
        let plain = generated_name(0);
        assert!(is_valid_name(&plain) && !plain.chars().any(|c| c.is_ascii_digit()), "{plain}");
        let numbered = generated_name(8);
        assert!(is_valid_name(&numbered), "{numbered}");
        assert!(numbered.ends_with(|c: char| c.is_ascii_digit()), "{numbered}");
    }

    #[test]
    fn names_follow_dockers_rule() {
        for good in ["centos1", "vswitch01", "a_b.c-d", "9x"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "x", "-x", "_x", "a b", "a/b", "caf\u{e9}"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn hostnames_follow_rfc_1123() {
        for good in ["centos1", "host3", "a.b-c.d"] {
            assert!(is_valid_hostname(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a..b", "a_b", &"x".repeat(64)] {
            assert!(!is_valid_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn lookup_prefers_exact_matches_then_unique_prefixes() {
        fn key<'x>(item: &'x &(&'static str, &'static str)) -> (&'x str, &'x str) {
            (item.0, item.1)
        }
        let items = [("abc123", "web"), ("abd456", "db"), ("web999", "other")];
        assert_eq!(lookup(&items, "web", key), Lookup::Found(&items[0]));
        assert_eq!(lookup(&items, "abd", key), Lookup::Found(&items[1]));
        assert_eq!(lookup(&items, "ab", key), Lookup::Ambiguous);
        assert_eq!(lookup(&items, "zzz", key), Lookup::Missing);
        assert_eq!(lookup(&items, "", key), Lookup::Missing);
    }

    #[test]
    fn ids_are_64_hex_digits() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(short_id(&id).len(), 12);
    }
}
