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

/// The host's resolv.conf, byte for byte (FILE-3). Embedded DNS (127.0.0.11) on
/// user-defined networks arrives with the dns service.
pub fn resolv_conf(host_resolv_conf: &str) -> String {
    host_resolv_conf.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lists_localhost_then_own_address() {
        let content = hosts("centos1", &[Ipv4Addr::new(172, 16, 1, 0)]);
        let lines: Vec<_> = content.lines().collect();
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert_eq!(lines[6], "172.16.1.0\tcentos1");
    }
}
