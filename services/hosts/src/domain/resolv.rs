//! The content of a container's /etc/resolv.conf, as Docker 20.10 writes it (FILE-2,
//! FILE-3, HOST-1, NONE-1).
//!
//! Docker builds the file in up to three steps, and so does [`render`]:
//! 1. sandbox setup: host mode without DNS settings copies the host's file; otherwise
//!    DNS settings build a file (each list falling back to the host file's), and without
//!    them the host file is filtered (loopback nameservers removed);
//! 2. joining a network without embedded DNS filters again, now also removing IPv6
//!    nameservers (IPv6 is off), unless DNS settings were given;
//! 3. joining a user-defined network starts the embedded DNS, which rebuilds the file
//!    around `nameserver 127.0.0.11` and `ndots:0`.
//!
//! The parsing uses Docker's own regular expressions (from libnetwork's resolvconf
//! package, with Go's `\s` spelled out), so odd host files come out the same.

use std::sync::LazyLock;

use regex::bytes::{NoExpand, Regex};

use super::{
    names::parse_ndots,
    spec::{ContainerSpec, Dns, Mode},
};

/// The embedded DNS server's address inside every container on a user-defined network.
pub const EMBEDDED_DNS: &str = "127.0.0.11";

/// What Docker falls back to when filtering leaves no nameserver (Google Public DNS).
const DEFAULT_IPV4_DNS: [&str; 2] = ["nameserver 8.8.8.8", "nameserver 8.8.4.4"];
const DEFAULT_IPV6_DNS: [&str; 2] =
    ["nameserver 2001:4860:4860::8888", "nameserver 2001:4860:4860::8844"];

/// Go's `\s`.
const S: &str = r"[\t\n\f\r ]";
const IPV4_BLOCK: &str = "(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)";
/// Docker's deliberately loose IPv6 pattern (a superset, with an optional zone).
const IPV6: &str = r"([0-9A-Fa-f]{0,4}:){2,7}([0-9A-Fa-f]{0,4})(%\w+)?";
const LOCALHOST: &str = r"((127\.([0-9]{1,3}\.){2}[0-9]{1,3})|(::1)$)";

fn regex(pattern: String) -> Regex {
    Regex::new(&format!("(?-u){pattern}")).expect("Docker's resolv.conf patterns compile")
}

static LOCALHOST_NAMESERVER: LazyLock<Regex> =
    LazyLock::new(|| regex(format!(r"(?m)^nameserver{S}+{LOCALHOST}{S}*\n*")));
static IPV6_NAMESERVER_LINE: LazyLock<Regex> =
    LazyLock::new(|| regex(format!(r"(?m)^nameserver{S}+{IPV6}{S}*\n*")));
static NAMESERVER: LazyLock<Regex> = LazyLock::new(|| {
    let ipv4 = format!(r"({IPV4_BLOCK}\.){{3}}{IPV4_BLOCK}");
    regex(format!(r"^{S}*nameserver{S}*(({ipv4})|({IPV6})){S}*$"))
});
static IPV6_NAMESERVER: LazyLock<Regex> =
    LazyLock::new(|| regex(format!(r"^{S}*nameserver{S}*(({IPV6})){S}*$")));
static SEARCH: LazyLock<Regex> =
    LazyLock::new(|| regex(format!(r"^{S}*search{S}*(([^\t\n\f\r ]+{S}*)*)$")));
static OPTIONS: LazyLock<Regex> =
    LazyLock::new(|| regex(format!(r"^{S}*options{S}*(([^\t\n\f\r ]+{S}*)*)$")));

/// The resolv.conf of `spec`, given the host's resolv.conf.
pub fn render(spec: &ContainerSpec, host_resolv_conf: &[u8]) -> Vec<u8> {
    if spec.mode == Mode::Host && !spec.dns.is_set() {
        return host_resolv_conf.to_vec();
    }
    let base = if spec.dns.is_set() {
        from_settings(&spec.dns, host_resolv_conf)
    } else {
        filter(host_resolv_conf, true)
    };
    if spec.mode == Mode::Bridge && spec.uses_embedded_dns() {
        embedded(&base)
    } else if spec.dns.is_set() || spec.mode == Mode::Host {
        base
    } else {
        filter(&base, false)
    }
}

/// A file from the user's DNS settings; each list not given comes from the host file.
fn from_settings(dns: &Dns, host: &[u8]) -> Vec<u8> {
    let or_host =
        |given: Vec<String>, host: Vec<String>| if given.is_empty() { host } else { given };
    build(
        &or_host(dns.servers.iter().map(ToString::to_string).collect(), nameservers(host, false)),
        &or_host(dns.search.iter().map(ToString::to_string).collect(), search_domains(host)),
        &or_host(dns.options.iter().map(ToString::to_string).collect(), options(host)),
    )
}

/// The embedded DNS's file: its address plus the IPv6 servers (which it cannot proxy),
/// the search domains and options, and `ndots:0` unless the options set ndots.
fn embedded(base: &[u8]) -> Vec<u8> {
    let mut servers = vec![EMBEDDED_DNS.to_owned()];
    servers.extend(nameservers(base, true));
    let mut options = options(base);
    let ndots_set = options
        .iter()
        .find(|option| option.contains("ndots"))
        .and_then(|o| parse_ndots(o))
        .is_some();
    if !ndots_set {
        options.push("ndots:0".to_owned());
    }
    build(&servers, &search_domains(base), &options)
}

/// Docker's `FilterResolvDNS`: removes loopback nameserver lines (and IPv6 ones unless
/// `ipv6_enabled`), then adds Google's servers if no nameserver is left.
pub fn filter(content: &[u8], ipv6_enabled: bool) -> Vec<u8> {
    let mut cleaned = LOCALHOST_NAMESERVER.replace_all(content, NoExpand(b"")).into_owned();
    if !ipv6_enabled {
        cleaned = IPV6_NAMESERVER_LINE.replace_all(&cleaned, NoExpand(b"")).into_owned();
    }
    if nameservers(&cleaned, false).is_empty() {
        let mut defaults = DEFAULT_IPV4_DNS.to_vec();
        if ipv6_enabled {
            defaults.extend(DEFAULT_IPV6_DNS);
        }
        cleaned.push(b'\n');
        cleaned.extend_from_slice(defaults.join("\n").as_bytes());
    }
    cleaned
}

/// Docker's `Build`: search line, nameserver lines, options line.
pub fn build(servers: &[String], search: &[String], options: &[String]) -> Vec<u8> {
    let mut content = String::new();
    let search = search.join(" ");
    if !search.is_empty() && search.trim_matches(' ') != "." {
        content.push_str(&format!("search {search}\n"));
    }
    for server in servers {
        content.push_str(&format!("nameserver {server}\n"));
    }
    let options = options.join(" ");
    if !options.trim_matches(' ').is_empty() {
        content.push_str(&format!("options {options}\n"));
    }
    content.into_bytes()
}

/// Lines with everything from '#' on removed, as Docker's `getLines` gives them.
fn lines(content: &[u8]) -> impl Iterator<Item = &[u8]> {
    content.split(|&b| b == b'\n').map(|line| match line.iter().position(|&b| b == b'#') {
        Some(comment) => &line[..comment],
        None => line,
    })
}

/// The nameserver addresses, all of them or only the IPv6 ones.
pub fn nameservers(content: &[u8], ipv6_only: bool) -> Vec<String> {
    let pattern: &Regex = if ipv6_only { &IPV6_NAMESERVER } else { &NAMESERVER };
    lines(content)
        .filter_map(|line| pattern.captures(line))
        .map(|captures| String::from_utf8_lossy(&captures[1]).into_owned())
        .collect()
}

/// The search domains of the last search line.
pub fn search_domains(content: &[u8]) -> Vec<String> {
    last_fields(content, &SEARCH)
}

/// The options of the last options line.
pub fn options(content: &[u8]) -> Vec<String> {
    last_fields(content, &OPTIONS)
}

fn last_fields(content: &[u8], pattern: &Regex) -> Vec<String> {
    lines(content).filter_map(|line| pattern.captures(line)).last().map_or_else(Vec::new, |c| {
        c[1].split(|b| b.is_ascii_whitespace())
            .filter(|field| !field.is_empty())
            .map(|field| String::from_utf8_lossy(field).into_owned())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        names::{DnsOption, SearchDomain},
        spec::tests::{endpoint, spec},
    };

    const PLAIN: &str = "nameserver 10.0.2.3\n";
    const COMMENTED: &str = "# Generated by dhclient\ndomain lan\nsearch lan corp.example\nnameserver 10.0.2.3\noptions rotate\n";
    const RESOLVED: &str = "# stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n";
    const WITH_V6: &str = "nameserver 10.0.2.3\nnameserver fd00::53\n";

    fn user(dns: Dns) -> ContainerSpec {
        let mut s = spec("uu", None);
        s.endpoints.push(endpoint("vswitch01", "172.16.1.2"));
        s.dns = dns;
        s
    }

    fn bridge(dns: Dns) -> ContainerSpec {
        let mut s = spec("bb", Some("172.17.0.2"));
        s.dns = dns;
        s
    }

    fn mode(mode: Mode, dns: Dns) -> ContainerSpec {
        let mut s = spec("mm", None);
        s.mode = mode;
        s.dns = dns;
        s
    }

    fn dns(servers: &[&str], search: &[&str], options: &[&str]) -> Dns {
        Dns {
            servers: servers.iter().map(|s| s.parse().unwrap()).collect(),
            search: search.iter().map(|s| SearchDomain::parse(s).unwrap()).collect(),
            options: options.iter().map(|s| DnsOption::parse(s).unwrap()).collect(),
        }
    }

    #[test]
    fn flavours() {
        let none = Dns::default();
        let cases: Vec<(&str, ContainerSpec, &str, &str)> = vec![
            (
                "user network: exactly two lines",
                user(none.clone()),
                PLAIN,
                "nameserver 127.0.0.11\noptions ndots:0\n",
            ),
            (
                "user network ignores --dns",
                user(dns(&["172.17.0.1"], &[], &[])),
                PLAIN,
                "nameserver 127.0.0.11\noptions ndots:0\n",
            ),
            (
                "user network keeps host search and options",
                user(none.clone()),
                COMMENTED,
                "search lan corp.example\nnameserver 127.0.0.11\noptions rotate ndots:0\n",
            ),
            (
                "user network keeps IPv6 servers",
                user(none.clone()),
                WITH_V6,
                "nameserver 127.0.0.11\nnameserver fd00::53\noptions ndots:0\n",
            ),
            (
                "user ndots wins",
                user(dns(&[], &[], &["ndots:3"])),
                PLAIN,
                "nameserver 127.0.0.11\noptions ndots:3\n",
            ),
            (
                "user --dns-search",
                user(dns(&[], &["example.com"], &[])),
                COMMENTED,
                "search example.com\nnameserver 127.0.0.11\noptions rotate ndots:0\n",
            ),
            ("default bridge copies the host file", bridge(none.clone()), COMMENTED, COMMENTED),
            (
                "default bridge drops loopback servers",
                bridge(none.clone()),
                RESOLVED,
                "# stub\noptions edns0 trust-ad\nsearch .\n\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n",
            ),
            ("default bridge drops IPv6 servers", bridge(none.clone()), WITH_V6, PLAIN),
            (
                "default bridge --dns",
                bridge(dns(&["172.17.0.1"], &[], &[])),
                PLAIN,
                "nameserver 172.17.0.1\n",
            ),
            (
                "--dns keeps host search and options",
                bridge(dns(&["172.17.0.1"], &[], &[])),
                COMMENTED,
                "search lan corp.example\nnameserver 172.17.0.1\noptions rotate\n",
            ),
            (
                "--dns-search . removes search",
                bridge(dns(&[], &["."], &[])),
                COMMENTED,
                "nameserver 10.0.2.3\noptions rotate\n",
            ),
            (
                "--dns-option replaces options",
                bridge(dns(&["1.1.1.1", "fd00::1"], &["a.example"], &["ndots:2", "timeout:1"])),
                COMMENTED,
                "search a.example\nnameserver 1.1.1.1\nnameserver fd00::1\noptions ndots:2 timeout:1\n",
            ),
            ("none copies the host file", mode(Mode::None, none.clone()), COMMENTED, COMMENTED),
            (
                "host copies even loopback servers",
                mode(Mode::Host, none.clone()),
                RESOLVED,
                RESOLVED,
            ),
            (
                "host with --dns builds",
                mode(Mode::Host, dns(&["1.1.1.1"], &[], &[])),
                RESOLVED,
                "nameserver 1.1.1.1\noptions edns0 trust-ad\n",
            ),
            (
                "missing host file",
                bridge(none.clone()),
                "",
                "\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n",
            ),
            ("missing host file, host mode", mode(Mode::Host, none), "", ""),
        ];
        for (case, spec, host, expected) in cases {
            let rendered = String::from_utf8(render(&spec, host.as_bytes())).unwrap();
            assert_eq!(rendered, expected, "{case}");
        }
    }

    #[test]
    fn parsing_follows_docker() {
        let content =
            b"  nameserver 1.2.3.4  # main\nnameserver fe80::1%eth0\nnameserver 999.1.1.1\n\
                        search a b\nsearch c\n#search d\noptions  x  y\n";
        assert_eq!(nameservers(content, false), ["1.2.3.4", "fe80::1%eth0"]);
        assert_eq!(nameservers(content, true), ["fe80::1%eth0"]);
        assert_eq!(search_domains(content), ["c"]);
        assert_eq!(options(content), ["x", "y"]);
        assert_eq!(
            filter(b"nameserver 127.0.0.1\nnameserver 127.1.2.3\n\nnameserver ::1\nnameserver 10.0.0.1\n", false),
            b"nameserver 10.0.0.1\n"
        );
    }
}
