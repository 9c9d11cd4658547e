//! What differs between the two real backends in the root tests: which driver the
//! service runs, how the host's FORWARD drop policy is set up, how cnet's rules are read
//! back, the exact lines expected, and how an operator damages or wipes them. The test
//! bodies in `root.rs` are shared and run once per backend.

#![allow(dead_code)]

use cnet_nat::FirewallDriver;

use crate::{netns::Netns, netns::sh, topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Iptables,
    Nftables,
}

/// iptables-save's cnet lines right after EnsureNetwork(br-a, 10.10.1.0/24).
const IPTABLES_NETWORK: &[&str] = &[
    "*filter",
    ":CNET",
    ":CNET-FORWARD",
    ":CNET-ISOLATION-1",
    ":CNET-ISOLATION-2",
    ":CNET-USER",
    "-A FORWARD -j CNET-USER",
    "-A FORWARD -j CNET-FORWARD",
    "-A CNET-FORWARD -j CNET-ISOLATION-1",
    "-A CNET-FORWARD -o br-a -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A CNET-FORWARD -o br-a -j CNET",
    "-A CNET-FORWARD -i br-a ! -o br-a -j ACCEPT",
    "-A CNET-FORWARD -i br-a -o br-a -j ACCEPT",
    "-A CNET-ISOLATION-1 -i br-a ! -o br-a -j CNET-ISOLATION-2",
    "-A CNET-ISOLATION-1 -j RETURN",
    "-A CNET-ISOLATION-2 -o br-a -j DROP",
    "-A CNET-ISOLATION-2 -j RETURN",
    "-A CNET-USER -j RETURN",
    "*nat",
    ":CNET",
    ":CNET-POSTROUTING",
    "-A PREROUTING -m addrtype --dst-type LOCAL -j CNET",
    "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j CNET",
    "-A POSTROUTING -j CNET-POSTROUTING",
    "-A CNET -i br-a -j RETURN",
    "-A CNET-POSTROUTING -s 10.10.1.0/24 ! -o br-a -j MASQUERADE",
];

/// `nft list table ip cnet`, trimmed, right after EnsureNetwork(br-a, 10.10.1.0/24).
const NFT_NETWORK: &[&str] = &[
    "table ip cnet {",
    "chain user {",
    "}",
    "chain forward {",
    "type filter hook forward priority filter - 1; policy accept;",
    "jump user",
    "jump isolation-1",
    "oifname \"br-a\" ct state established,related accept",
    "oifname \"br-a\" jump ports",
    "iifname \"br-a\" oifname != \"br-a\" accept",
    "iifname \"br-a\" oifname \"br-a\" accept",
    "}",
    "chain ports {",
    "}",
    "chain isolation-1 {",
    "iifname \"br-a\" oifname != \"br-a\" jump isolation-2",
    "}",
    "chain isolation-2 {",
    "oifname \"br-a\" drop",
    "}",
    "chain prerouting {",
    "type nat hook prerouting priority dstnat - 1; policy accept;",
    "fib daddr type local jump port-dnat",
    "}",
    "chain output {",
    "type nat hook output priority -101; policy accept;",
    "ip daddr != 127.0.0.0/8 fib daddr type local jump port-dnat",
    "}",
    "chain postrouting {",
    "type nat hook postrouting priority srcnat - 1; policy accept;",
    "ip saddr 10.10.1.0/24 oifname != \"br-a\" masquerade",
    "}",
    "chain port-dnat {",
    "iifname \"br-a\" return",
    "}",
    "}",
];

impl Backend {
    pub fn driver(self) -> FirewallDriver {
        match self {
            Backend::Iptables => FirewallDriver::Iptables,
            Backend::Nftables => FirewallDriver::Nftables,
        }
    }

    /// The host side with FORWARD policy `policy` (see [`topology::host`]). With
    /// nftables, cnet's accepts cannot lift another table's drop, so a DROP host also
    /// gets the operator's part of the deal: accept what leaves a bridge, and what enters
    /// one as a reply or through a DNAT (a published port). cnet's drops still isolate.
    pub fn host(self, policy: &str) -> Netns {
        let outside = topology::host(policy);
        if self == Backend::Nftables && policy == "DROP" {
            sh("iptables -A FORWARD -i br-+ -j ACCEPT \
                && iptables -A FORWARD -o br-+ -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT");
        }
        outside
    }

    /// cnet's rules, line by line: iptables-save's lines about CNET chains (counters left
    /// out) or the listing of `ip cnet` (empty without the table).
    pub fn rules(self) -> Vec<String> {
        match self {
            Backend::Iptables => crate::netns::cnet_rules(),
            Backend::Nftables => sh("nft list table ip cnet 2>/dev/null || true")
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Every rule of the namespace, cnet's or not; with nftables with rule handles, which
    /// change on any rewrite, so that "nothing changed" means nothing was rewritten.
    pub fn snapshot(self) -> String {
        match self {
            Backend::Iptables => sh("iptables-save | grep -v '^#'"),
            Backend::Nftables => sh("nft -a list ruleset"),
        }
    }

    /// Every rule of the namespace, without handles: equal content.
    pub fn dump(self) -> String {
        match self {
            Backend::Iptables => self.snapshot(),
            Backend::Nftables => sh("nft list ruleset"),
        }
    }

    pub fn network_rules(self) -> Vec<String> {
        let lines = match self {
            Backend::Iptables => IPTABLES_NETWORK,
            Backend::Nftables => NFT_NETWORK,
        };
        lines.iter().map(|line| line.to_string()).collect()
    }

    /// The rules of publish(c1 10.10.1.2 on br-a, 8080->80/tcp, 5300->53/udp).
    pub fn published_rules(self) -> &'static [&'static str] {
        match self {
            Backend::Iptables => &[
                "-A CNET -d 10.10.1.2/32 ! -i br-a -o br-a -p tcp -m tcp --dport 80 -j ACCEPT",
                "-A CNET -d 10.10.1.2/32 ! -i br-a -o br-a -p udp -m udp --dport 53 -j ACCEPT",
                "-A CNET ! -i br-a -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.10.1.2:80",
                "-A CNET ! -i br-a -p udp -m udp --dport 5300 -j DNAT --to-destination 10.10.1.2:53",
                "-A CNET-POSTROUTING -s 10.10.1.2/32 -d 10.10.1.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE",
                "-A CNET-POSTROUTING -s 10.10.1.2/32 -d 10.10.1.2/32 -p udp -m udp --dport 53 -j MASQUERADE",
            ],
            Backend::Nftables => &[
                "ip daddr 10.10.1.2 iifname != \"br-a\" oifname \"br-a\" tcp dport 80 accept",
                "ip daddr 10.10.1.2 iifname != \"br-a\" oifname \"br-a\" udp dport 53 accept",
                "iifname != \"br-a\" tcp dport 8080 dnat to 10.10.1.2:80",
                "iifname != \"br-a\" udp dport 5300 dnat to 10.10.1.2:53",
                "ip saddr 10.10.1.2 ip daddr 10.10.1.2 tcp dport 80 masquerade",
                "ip saddr 10.10.1.2 ip daddr 10.10.1.2 udp dport 53 masquerade",
            ],
        }
    }

    /// The rules of the internal network ni (br-i, 10.10.3.0/24).
    pub fn internal_rules(self) -> &'static [&'static str] {
        match self {
            Backend::Iptables => &[
                "-A CNET-FORWARD -i br-i -o br-i -j ACCEPT",
                "-A CNET-ISOLATION-1 ! -s 10.10.3.0/24 -o br-i -j DROP",
                "-A CNET-ISOLATION-1 ! -d 10.10.3.0/24 -i br-i -j DROP",
            ],
            Backend::Nftables => &[
                "iifname \"br-i\" oifname \"br-i\" accept",
                "ip saddr != 10.10.3.0/24 oifname \"br-i\" drop",
                "ip daddr != 10.10.3.0/24 iifname \"br-i\" drop",
            ],
        }
    }

    /// Adds an operator's rule to the user chain; returns its line in [`Self::rules`].
    pub fn add_user_rule(self) -> &'static str {
        match self {
            Backend::Iptables => {
                sh("iptables -A CNET-USER -s 10.10.9.9/32 -j DROP");
                "-A CNET-USER -s 10.10.9.9/32 -j DROP"
            }
            Backend::Nftables => {
                sh("nft add rule ip cnet user ip saddr 10.10.9.9 drop");
                "ip saddr 10.10.9.9 drop"
            }
        }
    }

    /// Removes some of cnet's rules by hand, leaving the user chain alone.
    pub fn damage(self) {
        match self {
            Backend::Iptables => {
                sh("iptables -t nat -F CNET && iptables -F CNET-FORWARD \
                    && iptables -D FORWARD -j CNET-USER");
                sh("iptables -t nat -D POSTROUTING -j CNET-POSTROUTING");
            }
            Backend::Nftables => {
                sh("nft flush chain ip cnet port-dnat \
                    && nft flush chain ip cnet forward && nft flush chain ip cnet postrouting");
            }
        }
    }

    /// Removes everything, the user chain included.
    pub fn wipe(self) {
        match self {
            Backend::Iptables => {
                sh("iptables -F && iptables -X && iptables -t nat -F && iptables -t nat -X");
            }
            Backend::Nftables => {
                sh("nft flush ruleset");
            }
        }
    }

    /// A stale rule added and a wanted one removed while the service is down.
    pub fn corrupt(self) {
        match self {
            Backend::Iptables => {
                sh("iptables -t nat -A CNET -i br-stale -j RETURN");
                sh("iptables -t nat -D CNET-POSTROUTING -s 10.10.1.0/24 ! -o br-a -j MASQUERADE");
            }
            Backend::Nftables => {
                sh("nft 'add rule ip cnet port-dnat iifname \"br-stale\" return' \
                    && nft flush chain ip cnet postrouting");
            }
        }
    }
}
