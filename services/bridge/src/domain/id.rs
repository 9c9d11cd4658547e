//! The ids callers choose for networks, sandboxes and endpoints. They end up in interface
//! aliases, store keys and (for sandboxes) file names, so they are restricted to a small,
//! shell- and path-friendly alphabet.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use super::Invalid;

/// Longest id accepted; an alias ("cnet:endpoint:" + id) must stay under IFALIASZ (256).
pub const MAX_ID_LEN: usize = 256;

fn check_id(value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::new("must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(Invalid::new(format!("must be at most {MAX_ID_LEN} bytes")));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.:/-".contains(*c)))
    {
        return Err(Invalid::new(format!(
            "{bad:?} is not allowed (use letters, digits and _ . : / -)"
        )));
    }
    Ok(())
}

/// A sandbox id also names its namespace file `<netns_dir>/<id>`, so it must be one
/// harmless path component.
fn check_sandbox_id(value: &str) -> Result<(), Invalid> {
    check_id(value)?;
    if value.contains('/') {
        return Err(Invalid::new("must not contain '/' (it names the namespace file)"));
    }
    if value.starts_with('.') {
        return Err(Invalid::new("must not start with '.' (it names the namespace file)"));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = Invalid;

            fn from_str(value: &str) -> Result<Self, Invalid> {
                $check(value)?;
                Ok(Self(value.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;

            fn try_from(value: String) -> Result<Self, Invalid> {
                $check(&value)?;
                Ok(Self(value))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// The gateway's id of a network; one bridge per network.
    NetworkId,
    check_id
);
id_type!(
    /// A container's network namespace.
    SandboxId,
    check_sandbox_id
);
id_type!(
    /// One attachment of a sandbox to a network, e.g. "<container id>/<network id>".
    EndpointId,
    check_id
);

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: FromStr<Err = Invalid>>(input: &str, expect: Result<(), &str>) {
        let got = input.parse::<T>().map(|_| ()).map_err(|e| e.0);
        match (got, expect) {
            (Ok(()), Ok(())) => {}
            (Err(reason), Err(part)) => assert!(reason.contains(part), "{input:?}: {reason}"),
            (got, expect) => panic!("{input:?}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn ids() {
        check::<NetworkId>("0123abcd", Ok(()));
        check::<EndpointId>("c0ffee/net-1:x_y.z", Ok(()));
        check::<NetworkId>("", Err("empty"));
        check::<NetworkId>(&"a".repeat(257), Err("at most 256"));
        check::<NetworkId>(&"a".repeat(256), Ok(()));
        check::<NetworkId>("a b", Err("' ' is not allowed"));
        check::<EndpointId>("a\nb", Err("is not allowed"));
        check::<EndpointId>("é", Err("is not allowed"));
    }

    #[test]
    fn sandbox_ids_are_file_names() {
        check::<SandboxId>("c0ffee", Ok(()));
        check::<SandboxId>("a/b", Err("'/'"));
        check::<SandboxId>("..", Err("'.'"));
        check::<SandboxId>(".hidden", Err("'.'"));
    }

    #[test]
    fn ids_survive_serde_and_refuse_bad_records() {
        let id: SandboxId = "abc".parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"abc\"");
        assert_eq!(serde_json::from_str::<SandboxId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<SandboxId>("\"../x\"").is_err());
    }
}
