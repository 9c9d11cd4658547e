//! The content of a container's /etc/hosts, as Docker 20.10 writes it (FILE-1, LINK-1,
//! DNS-7, HOST-1, NONE-1).
//!
//! Order: the six standard lines, the --add-host entries, the link lines, the own lines.
//! That is Docker's: at sandbox creation it writes the standard lines followed by its
//! "extra hosts", which are the --add-host entries and then one entry per link; the own
//! line is appended when an endpoint joins, one per network in connect order. Docker
//! iterates links in map order (random); cnet keeps the order of the request.

use std::net::IpAddr;

use super::{
    names::{Alias, ContainerName, Hostname},
    spec::{ContainerSpec, Mode},
};

/// The lines every container's hosts file starts with.
pub const STANDARD: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
ff00::0\tip6-mcastprefix\n\
ff02::1\tip6-allnodes\n\
ff02::2\tip6-allrouters\n";

/// One link of the container, resolved against its target's current record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkLine<'a> {
    pub alias: &'a Alias,
    pub address: IpAddr,
    pub hostname: &'a Hostname,
    pub name: &'a ContainerName,
}

/// The hosts file of `spec`. `links` are its links whose targets have an address;
/// `host_hosts` is the host's own hosts file.
pub fn render(spec: &ContainerSpec, links: &[LinkLine<'_>], host_hosts: &[u8]) -> Vec<u8> {
    // Host mode copies the host's file, unless there are extra hosts: then Docker builds
    // the file as for other modes, so that a name of the host's file can be overridden.
    if spec.mode == Mode::Host && spec.extra_hosts.is_empty() {
        return host_hosts.to_vec();
    }
    let mut content = String::from(STANDARD);
    for extra in &spec.extra_hosts {
        content.push_str(&format!("{}\t{}\n", extra.address, extra.hostname));
    }
    // Legacy links write lines only for a container on the default bridge; elsewhere
    // they are DNS aliases (DNS-7).
    if spec.default_bridge_address().is_some() {
        for link in links {
            content.push_str(&format!("{}\t{} {}", link.address, link.alias, link.hostname));
            if link.alias.as_str() != link.name.as_str() {
                content.push_str(&format!(" {}", link.name));
            }
            content.push('\n');
        }
    }
    let own_names = own_names(&spec.hostname);
    for endpoint in &spec.endpoints {
        content.push_str(&format!("{}\t{own_names}\n", endpoint.address));
    }
    content.into_bytes()
}

/// Docker writes a hostname with dots as the full name followed by its first label, so
/// that both resolve.
fn own_names(hostname: &Hostname) -> String {
    match hostname.as_str().split_once('.') {
        Some((first, _)) => format!("{hostname} {first}"),
        None => hostname.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        names::HostEntryName,
        spec::{
            ExtraHost,
            tests::{endpoint, spec},
        },
    };

    const HOST_HOSTS: &[u8] = b"127.0.0.1 localhost\n10.0.0.5 buildhost\n";

    fn text(spec: &ContainerSpec, links: &[LinkLine<'_>]) -> String {
        String::from_utf8(render(spec, links, HOST_HOSTS)).unwrap()
    }

    fn extra(name: &str, address: &str) -> ExtraHost {
        ExtraHost {
            hostname: HostEntryName::parse(name).unwrap(),
            address: address.parse().unwrap(),
        }
    }

    #[test]
    fn flavours() {
        let user = {
            let mut s = spec("centos1", None);
            s.hostname = Hostname::parse("0123456789ab").unwrap();
            s.endpoints.push(endpoint("vswitch01", "172.16.1.0"));
            s
        };
        let multi = {
            let mut s = spec("centosg2", None);
            s.hostname = Hostname::parse("g2").unwrap();
            s.endpoints
                .extend([endpoint("net2", "172.18.0.2"), endpoint("vswitch01", "172.16.1.2")]);
            s
        };
        let fqdn = {
            let mut s = spec("web", None);
            s.hostname = Hostname::parse("web.example.com").unwrap();
            s.endpoints.push(endpoint("vswitch01", "172.16.1.9"));
            s
        };
        let none = {
            let mut s = spec("e1", None);
            s.mode = Mode::None;
            s
        };
        let none_extra = {
            let mut s = none.clone();
            s.extra_hosts.push(extra("db", "10.1.1.1"));
            s
        };
        let host = {
            let mut s = spec("c1", None);
            s.mode = Mode::Host;
            s
        };
        let host_extra = {
            let mut s = host.clone();
            s.extra_hosts.push(extra("buildhost", "10.9.9.9"));
            s
        };
        let add_hosts = {
            let mut s = spec("b1", Some("172.17.0.2"));
            s.extra_hosts.extend([extra("db", "10.1.1.1"), extra("v6", "fd00::1")]);
            s
        };
        let stopped = spec("b2", None);
        let cases: Vec<(&str, &ContainerSpec, &str)> = vec![
            ("user network", &user, "172.16.1.0\t0123456789ab\n"),
            ("several networks, connect order", &multi, "172.18.0.2\tg2\n172.16.1.2\tg2\n"),
            ("hostname with dots", &fqdn, "172.16.1.9\tweb.example.com web\n"),
            ("none: no own line", &none, ""),
            ("none with --add-host", &none_extra, "10.1.1.1\tdb\n"),
            (
                "add-host before own line",
                &add_hosts,
                "10.1.1.1\tdb\nfd00::1\tv6\n172.17.0.2\tb1-host\n",
            ),
            ("no endpoint yet", &stopped, ""),
            ("host with --add-host", &host_extra, "10.9.9.9\tbuildhost\n"),
        ];
        for (case, spec, tail) in cases {
            assert_eq!(text(spec, &[]), format!("{STANDARD}{tail}"), "{case}");
        }
        assert_eq!(render(&host, &[], HOST_HOSTS), HOST_HOSTS, "host mode copies");
        assert_eq!(STANDARD.lines().count(), 6);
    }

    #[test]
    fn link_lines_come_after_add_hosts_and_before_own_lines() {
        let target_name = ContainerName::parse("centos1").unwrap();
        let target_host = Hostname::parse("0123456789ab").unwrap();
        let db_name = ContainerName::parse("centos4").unwrap();
        let db_host = Hostname::parse("dbhost").unwrap();
        let (same, db) = (Alias::parse("centos1").unwrap(), Alias::parse("db").unwrap());
        let links = [
            LinkLine {
                alias: &same,
                address: "172.17.0.2".parse().unwrap(),
                hostname: &target_host,
                name: &target_name,
            },
            LinkLine {
                alias: &db,
                address: "172.17.0.5".parse().unwrap(),
                hostname: &db_host,
                name: &db_name,
            },
        ];
        let mut linker = spec("centos3", Some("172.17.0.4"));
        linker.hostname = Hostname::parse("abcdef012345").unwrap();
        linker.extra_hosts.push(extra("gw", "10.0.0.1"));
        assert_eq!(
            text(&linker, &links),
            format!(
                "{STANDARD}10.0.0.1\tgw\n\
                 172.17.0.2\tcentos1 0123456789ab\n\
                 172.17.0.5\tdb dbhost centos4\n\
                 172.17.0.4\tabcdef012345\n"
            )
        );
        // On a user-defined network a link is a DNS alias only (DNS-7).
        let mut user = spec("centos7", None);
        user.endpoints.push(endpoint("vswitch01", "172.16.1.3"));
        assert_eq!(text(&user, &links), format!("{STANDARD}172.16.1.3\tcentos7-host\n"));
    }
}
