//! Name rules: what a container name, alias, hostname and network name may look like,
//! how a queried name is compared (ASCII case-insensitively, trailing dot ignored), and
//! the `in-addr.arpa` names of PTR queries.

use std::net::Ipv4Addr;

/// The longest name DNS can carry in presentation form, without the final dot.
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// Docker's rule for container and network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_docker_name(value: &str) -> Result<(), &'static str> {
    let mut chars = value.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or digit");
    }
    if value.len() < 2 || value.len() > 128 {
        return Err("must be 2 to 128 characters long");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err("may only contain letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

/// A network alias or link alias: a DNS name of letters, digits, '_' and '-' labels.
/// Docker accepts any string, but one that cannot be queried would only confuse.
pub fn check_alias(value: &str) -> Result<(), &'static str> {
    if value.is_empty() || value.len() > MAX_NAME_LEN {
        return Err("must be 1 to 253 characters long");
    }
    for label in value.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err("dot-separated labels must be 1 to 63 characters long");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
            return Err("may only contain letters, digits, '_', '-' and dots between labels");
        }
    }
    Ok(())
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
pub fn is_valid_hostname(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_NAME_LEN
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The form names are compared in: lower-case, without the root's trailing dot.
pub fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The address a normalised `d.c.b.a.in-addr.arpa` name asks about; None for anything
/// else (IPv6 reverse names, partial reverse names, ordinary names).
pub fn reverse_ipv4(normalised: &str) -> Option<Ipv4Addr> {
    let digits = normalised.strip_suffix(".in-addr.arpa")?;
    let mut octets = [0u8; 4];
    let mut labels = digits.split('.');
    for octet in octets.iter_mut().rev() {
        let label = labels.next()?;
        // Leading zeros are not a canonical reverse name; nobody asks for them.
        if label.len() > 1 && label.starts_with('0') {
            return None;
        }
        *octet = label.parse().ok()?;
    }
    labels.next().is_none().then(|| Ipv4Addr::from(octets))
}

/// The `in-addr.arpa` name of `address`, without the trailing dot.
pub fn reverse_name(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names() {
        for good in ["centos1", "web_1", "a.b-c", "0x"] {
            assert_eq!(check_docker_name(good), Ok(()), "{good}");
        }
        for bad in ["", "a", "-web", "_x", "we b", "wé", &"x".repeat(129)] {
            assert!(check_docker_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aliases_are_queryable_names() {
        for good in ["web", "db_1", "a.b", "X-Y"] {
            assert_eq!(check_alias(good), Ok(()), "{good}");
        }
        for bad in ["", ".web", "web.", "a..b", "we b", "a/b", &"x".repeat(64)] {
            assert!(check_alias(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostnames() {
        assert!(is_valid_hostname("host3"));
        assert!(is_valid_hostname("a.example-1.org"));
        for bad in ["", "-a", "a-", "a_b", "a..b"] {
            assert!(!is_valid_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn names_compare_without_case_and_root() {
        assert_eq!(normalise("CentOS3.VSwitch01."), "centos3.vswitch01");
        assert_eq!(normalise("web"), "web");
    }

    #[test]
    fn reverse_names_round_trip() {
        let address = Ipv4Addr::new(172, 16, 1, 3);
        assert_eq!(reverse_name(address), "3.1.16.172.in-addr.arpa");
        assert_eq!(reverse_ipv4("3.1.16.172.in-addr.arpa"), Some(address));
        for other in
            ["1.16.172.in-addr.arpa", "0.3.1.16.172.in-addr.arpa", "03.1.16.172.in-addr.arpa"]
        {
            assert_eq!(reverse_ipv4(other), None, "{other}");
        }
        assert_eq!(reverse_ipv4("300.1.16.172.in-addr.arpa"), None);
        assert_eq!(reverse_ipv4("web"), None);
    }
}
