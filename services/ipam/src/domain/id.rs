//! The two names IPAM keys its state by: the pool id (normally a network id) and the
//! owner of an allocation (normally "<container id>" or "<container id>/<network id>").
//!
//! Both end up in store keys and log lines, so they must be short and printable. A pool
//! id must not contain '/' because allocations are stored under "<pool>/<owner>" and a
//! prefix scan for one pool must never reach into another.

use std::fmt;

use super::Error;

/// Longest accepted name, in bytes; far above a 64-hex id joined with another.
pub const MAX_NAME_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolId(String);

impl PoolId {
    pub fn parse(text: &str) -> Result<Self, Error> {
        check("pool id", text)?;
        if text.contains('/') {
            return Err(Error::InvalidName {
                kind: "pool id",
                value: text.to_owned(),
                reason: "must not contain '/'",
            });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner(String);

impl Owner {
    pub fn parse(text: &str) -> Result<Self, Error> {
        check("owner", text)?;
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check(kind: &'static str, text: &str) -> Result<(), Error> {
    let reason = if text.is_empty() {
        "must not be empty"
    } else if text.len() > MAX_NAME_LEN {
        "must be at most 256 bytes long"
    } else if text.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName { kind, value: text.to_owned(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        let cases = [
            ("net1", None, None),
            ("", Some("must not be empty"), Some("must not be empty")),
            (
                long.as_str(),
                Some("must be at most 256 bytes long"),
                Some("must be at most 256 bytes long"),
            ),
            (
                "a\nb",
                Some("must not contain control characters"),
                Some("must not contain control characters"),
            ),
            ("c1/net1", Some("must not contain '/'"), None),
        ];
        for (text, pool_error, owner_error) in cases {
            let reason = |result: Result<(), Error>| match result {
                Ok(()) => None,
                Err(Error::InvalidName { reason, .. }) => Some(reason),
                Err(other) => panic!("unexpected {other}"),
            };
            assert_eq!(reason(PoolId::parse(text).map(drop)), pool_error, "{text:?}");
            assert_eq!(reason(Owner::parse(text).map(drop)), owner_error, "{text:?}");
        }
        assert_eq!(
            PoolId::parse("").unwrap_err().to_string(),
            "invalid pool id \"\": must not be empty"
        );
        assert_eq!(Owner::parse(&"b".repeat(MAX_NAME_LEN)).unwrap().as_str().len(), MAX_NAME_LEN);
    }
}
