//! Contents of the files bind-mounted into a container: /etc/hosts, /etc/resolv.conf and
//! /etc/hostname, as Docker writes them (FILE-1 to FILE-3). The hosts service will take
//! these over; until then the gateway writes this basic form.

use std::net::Ipv4Addr;

const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
ff00::0\tip6-mcastprefix\n\
ff02::1\tip6-allnodes\n\
ff02::2\tip6-allrouters\n";

/// The six standard lines, then `<address>\t<hostname>` per network in connect order.
pub fn hosts(hostname: &str, addresses: &[Ipv4Addr]) -> String {
    let mut content = String::from(HOSTS_HEADER);
    for address in addresses {
        content.push_str(&format!("{address}\t{hostname}\n"));
    }
    content
}

/// With embedded DNS (user-defined networks, FILE-2): `nameserver 127.0.0.11`, the
/// host's search domains, `options ndots:0`. Otherwise the host's file byte for byte
/// (FILE-3).
pub fn resolv_conf(host_resolv_conf: &str, embedded_dns: bool) -> String {
    if !embedded_dns {
        return host_resolv_conf.to_owned();
    }
    let mut content = String::from("nameserver 127.0.0.11\n");
    for line in host_resolv_conf.lines() {
        let mut words = line.split_whitespace();
        if matches!(words.next(), Some("search" | "domain")) {
            let domains: Vec<&str> = words.collect();
            if !domains.is_empty() {
                content = format!("{content}search {}\n", domains.join(" "));
            }
        }
    }
    content.push_str("options ndots:0\n");
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_points_at_the_embedded_server_only_on_user_networks() {
        let host = "nameserver 10.0.0.53\nsearch example.com lab\noptions edns0\n";
        assert_eq!(resolv_conf(host, false), host);
        assert_eq!(
            resolv_conf(host, true),
            "nameserver 127.0.0.11\nsearch example.com lab\noptions ndots:0\n"
        );
        assert_eq!(
            resolv_conf("nameserver 1.1.1.1\n", true),
            "nameserver 127.0.0.11\noptions ndots:0\n"
        );
    }

    #[test]
    fn hosts_lists_localhost_then_own_address() {
        let content = hosts("centos1", &[Ipv4Addr::new(172, 16, 1, 0)]);
        let lines: Vec<_> = content.lines().collect();
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert_eq!(lines[6], "172.16.1.0\tcentos1");
    }
}
