//! The default pools an automatic subnet is picked from, in Docker 20.10's order
//! (libnetwork `ipamutils`): 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/20 …
//! 192.168.240.0/20. 172.16.0.0/16 is not among them even though NET-6 speaks of
//! 172.16.0.0/12: Docker's predefined list starts at 172.17 because docker0 takes it.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::cidr::overlaps;

/// Every default subnet, in the order they are tried.
pub fn subnets() -> impl Iterator<Item = Ipv4Net> {
    let class_b = (17..=31).map(|second| Ipv4Addr::new(172, second, 0, 0)).map(|a| (a, 16));
    let class_c = (0..16).map(|block| Ipv4Addr::new(192, 168, block * 16, 0)).map(|a| (a, 20));
    class_b.chain(class_c).map(|(address, prefix)| {
        Ipv4Net::new(address, prefix).expect("default pool prefixes are valid")
    })
}

/// The first default subnet that overlaps none of `taken`.
pub fn first_free(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    subnets().find(|candidate| !taken.iter().any(|used| overlaps(*candidate, *used)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(texts: &[&str]) -> Vec<Ipv4Net> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn defaults_are_in_dockers_order() {
        let all: Vec<String> = subnets().map(|net| net.to_string()).collect();
        assert_eq!(all.len(), 31);
        assert_eq!(all[0], "172.17.0.0/16");
        assert_eq!(all[14], "172.31.0.0/16");
        assert_eq!(all[15], "192.168.0.0/20");
        assert_eq!(all[16], "192.168.16.0/20");
        assert_eq!(all[30], "192.168.240.0/20");
    }

    #[test]
    fn first_free_skips_every_overlap() {
        let all_172: Vec<String> = (17..=31).map(|n| format!("172.{n}.0.0/16")).collect();
        let all_172: Vec<&str> = all_172.iter().map(String::as_str).collect();
        let cases: [(&[&str], Option<&str>); 7] = [
            (&[], Some("172.17.0.0/16")),
            (&["172.17.0.0/16"], Some("172.18.0.0/16")),
            (&["172.17.5.9/32"], Some("172.18.0.0/16")),
            (&["172.16.0.0/12"], Some("192.168.0.0/20")),
            (&all_172, Some("192.168.0.0/20")),
            (&["172.16.0.0/12", "192.168.0.0/24", "192.168.20.0/24"], Some("192.168.32.0/20")),
            (&["0.0.0.0/0"], None),
        ];
        for (taken, expected) in cases {
            let expected = expected.map(|text| text.parse().unwrap());
            assert_eq!(first_free(&nets(taken)), expected, "{taken:?}");
        }
    }
}
