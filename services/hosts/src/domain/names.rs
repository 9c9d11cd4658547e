//! Validated names and values. Everything here ends up in a file that resolvers parse
//! line by line and field by field, or (the container id) in a path, so the rules are
//! strict: no whitespace, no line breaks, no '#' or ';' that would start a comment, no
//! '/' or '..' that would leave the files directory.
//!
//! Each newtype is parsed once, at the edge, and deserialises through the same check, so
//! a corrupt store record cannot smuggle a bad value into a file either.

use std::{fmt, net::IpAddr};

use serde::{Deserialize, Serialize};

use super::Error;

/// Defines a string newtype whose only constructor runs `$check`.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, Error> {
                $check(value).map_err(|reason| Error::Invalid {
                    what: $what,
                    value: value.to_owned(),
                    reason,
                })?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self, Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// A container id, also the name of its files directory.
    ContainerId,
    "container id",
    check_id
);
checked_string!(
    /// A container name without the leading '/', Docker's rule.
    ContainerName,
    "container name",
    check_container_name
);
checked_string!(
    /// A container's hostname.
    Hostname,
    "hostname",
    check_hostname
);
checked_string!(
    /// The name a linker gives its link target.
    Alias,
    "link alias",
    check_alias
);
checked_string!(
    /// A network's user-facing name.
    NetworkName,
    "network name",
    check_alias
);
checked_string!(
    /// The name of an --add-host entry.
    HostEntryName,
    "extra host name",
    check_host_entry_name
);
checked_string!(
    /// A --dns-search domain, or "." for none.
    SearchDomain,
    "dns search domain",
    check_search_domain
);
checked_string!(
    /// A --dns-option such as `ndots:2`.
    DnsOption,
    "dns option",
    check_dns_option
);

type Check = Result<(), &'static str>;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn check_id(value: &str) -> Check {
    if value.is_empty() || value.len() > 128 {
        return Err("must be 1 to 128 characters long");
    }
    // A first letter or digit also rules out "." and "..".
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) || !value.chars().all(is_name_char) {
        return Err(
            "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'",
        );
    }
    Ok(())
}

fn check_container_name(value: &str) -> Check {
    if value.len() < 2 || value.len() > 128 {
        return Err("must be 2 to 128 characters long");
    }
    check_alias(value)
}

fn check_alias(value: &str) -> Check {
    if value.is_empty() || value.len() > 128 {
        return Err("must be 1 to 128 characters long");
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) || !value.chars().all(is_name_char) {
        return Err("only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

fn check_hostname(value: &str) -> Check {
    if value.is_empty() || value.len() > 253 {
        return Err("must be 1 to 253 characters long");
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    };
    if !value.split('.').all(label_ok) {
        return Err("must be dot-separated labels of 1 to 63 letters, digits, '_' and inner '-'");
    }
    Ok(())
}

fn check_host_entry_name(value: &str) -> Check {
    if value.is_empty() || value.len() > 253 {
        return Err("must be 1 to 253 characters long");
    }
    if value.starts_with(['-', '.']) || !value.chars().all(is_name_char) {
        return Err("must contain only letters, digits, '_', '.' and '-', not first '-' or '.'");
    }
    Ok(())
}

/// Docker's `ValidateDNSSearch`: "." or a domain name, trailing dot allowed.
fn check_search_domain(value: &str) -> Check {
    if value == "." {
        return Ok(());
    }
    if value.is_empty() || value.len() > 255 {
        return Err("must be 1 to 255 characters long");
    }
    let domain = value.strip_suffix('.').unwrap_or(value);
    let label_ok = |label: &str| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !domain.split('.').all(label_ok) {
        return Err(
            "must be a domain name (letters, digits and inner '-', dot-separated) or \".\"",
        );
    }
    Ok(())
}

/// A resolv.conf option token. Docker refuses to start a container whose ndots option is
/// not `ndots:<n>` with n >= 0; refusing it here gives the error at once.
fn check_dns_option(value: &str) -> Check {
    if value.is_empty() || value.len() > 64 {
        return Err("must be 1 to 64 characters long");
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':')) {
        return Err("must contain only letters, digits, '_', '.', '-' and ':'");
    }
    if value.contains("ndots") && parse_ndots(value).is_none() {
        return Err("an ndots option must be ndots:<n> with n a non-negative number");
    }
    Ok(())
}

/// The n of an `ndots:<n>` option, as Docker reads it.
pub fn parse_ndots(option: &str) -> Option<u32> {
    let (key, number) = option.split_once(':')?;
    if !key.contains("ndots") || number.contains(':') {
        return None;
    }
    number.parse().ok()
}

/// An IPv4 or IPv6 address in its usual text form; the unspecified address is refused
/// where it cannot mean anything (`allow_unspecified` false).
pub fn parse_address(
    what: &'static str,
    value: &str,
    allow_unspecified: bool,
) -> Result<IpAddr, Error> {
    let invalid = |reason| Error::Invalid { what, value: value.to_owned(), reason };
    let address: IpAddr = value.parse().map_err(|_| invalid("not an IPv4 or IPv6 address"))?;
    if !allow_unspecified && address.is_unspecified() {
        return Err(invalid("the unspecified address cannot be a container's address"));
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(parse: fn(&str) -> bool, good: &[&str], bad: &[&str]) {
        for value in good {
            assert!(parse(value), "{value:?} should be accepted");
        }
        for value in bad {
            assert!(!parse(value), "{value:?} should be refused");
        }
    }

    #[test]
    fn container_ids_are_safe_file_names() {
        check(
            |v| ContainerId::parse(v).is_ok(),
            &["0123456789ab", &"f".repeat(64), "c1", "a.b_c-d"],
            &["", ".", "..", "../x", "a/b", "-a", ".hidden", "a b", "a\n", &"f".repeat(129)],
        );
    }

    #[test]
    fn names_and_aliases_follow_docker() {
        check(
            |v| ContainerName::parse(v).is_ok(),
            &["centos1", "my_db.1-a"],
            &["a", "_x", "a b", "a/b"],
        );
        check(
            |v| Alias::parse(v).is_ok(),
            &["db", "x", "web.1"],
            &["", "-db", "d b", "d#b", "d\tb"],
        );
    }

    #[test]
    fn hostnames_cannot_inject_lines_or_fields() {
        check(
            |v| Hostname::parse(v).is_ok(),
            &["host3", "0123456789ab", "web.example.com", "my_host", "a-b"],
            &["", "a b", "a\nb", "a\tb", "a#b", "-a", "a-", "a..b", ".a", "a.", &"a".repeat(64)],
        );
        check(
            |v| HostEntryName::parse(v).is_ok(),
            &["host.docker.internal", "db", "_svc.x"],
            &["", "a b", "a\nb", "-x", ".x", "a:b", "a#b"],
        );
    }

    #[test]
    fn dns_values_follow_docker() {
        check(
            |v| SearchDomain::parse(v).is_ok(),
            &[".", "example.com", "example.com.", "a-b.c"],
            &["", "..", "a..b", "-a.com", "a b", "a\nsearch b", "a_b.com"],
        );
        check(
            |v| DnsOption::parse(v).is_ok(),
            &["ndots:2", "ndots:0", "rotate", "timeout:1", "single-request-reopen", "edns0"],
            &["", "ndots", "ndots:-1", "ndots:x", "ndots:1:2", "a b", "a\noptions b", "a#"],
        );
        assert_eq!(parse_ndots("ndots:5"), Some(5));
        assert_eq!(parse_ndots("rotate"), None);
    }

    #[test]
    fn addresses_are_ip_addresses() {
        assert_eq!(parse_address("a", "172.17.0.2", false).unwrap().to_string(), "172.17.0.2");
        assert_eq!(parse_address("a", "fd00::1", false).unwrap().to_string(), "fd00::1");
        assert!(parse_address("a", "0.0.0.0", false).is_err());
        assert!(parse_address("a", "0.0.0.0", true).is_ok());
        for bad in ["", "172.17.0.2/16", "300.1.1.1", "host", "1.2.3.4\n"] {
            assert!(parse_address("a", bad, true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserialising_checks_too() {
        let id: Result<ContainerId, _> = serde_json::from_str("\"../etc\"");
        assert!(id.is_err());
        let id: ContainerId = serde_json::from_str("\"c1\"").unwrap();
        assert_eq!(id.as_str(), "c1");
    }
}
