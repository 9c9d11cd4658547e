//! Docker's `-p` grammar: `[ip:][hostPort[-end]:]containerPort[-end][/proto]`, parsed
//! into the gateway's port mappings. Ranges on both sides are expanded here, one mapping
//! per port, as Docker's CLI does (PUB-7); the gateway checks the result again.

use cnet_proto::gateway::v1::PortMapping;

pub fn parse(spec: &str) -> anyhow::Result<Vec<PortMapping>> {
    let (addresses, protocol) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let parts: Vec<&str> = addresses.rsplitn(3, ':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [container] => ("", "", *container),
        [container, host] => ("", *host, *container),
        [container, host, ip] => (*ip, *host, *container),
        _ => anyhow::bail!("invalid port specification: {spec:?}"),
    };
    let (container_start, container_end) = range(container, "containerPort")?;
    let (host_start, host_end) = if host.is_empty() { (0, 0) } else { range(host, "hostPort")? };
    let mapping = |host_port: u32, host_port_end: u32, container_port: u32| PortMapping {
        host_ip: host_ip.to_owned(),
        host_port,
        host_port_end,
        container_port,
        protocol: protocol.to_owned(),
    };
    let container_count = container_end - container_start;
    let host_count = host_end - host_start;
    if container_count == 0 {
        // One container port: a host range means "the first free port in it".
        let end = if host_count > 0 { host_end } else { 0 };
        return Ok(vec![mapping(host_start, end, container_start)]);
    }
    if host_start != 0 && host_count != container_count {
        anyhow::bail!(
            "invalid ranges specified for container and host Ports: {container} and {host}"
        );
    }
    Ok((0..=container_count)
        .map(|offset| {
            let host_port = if host_start == 0 { 0 } else { host_start + offset };
            mapping(host_port, 0, container_start + offset)
        })
        .collect())
}

fn range(text: &str, what: &str) -> anyhow::Result<(u32, u32)> {
    let port = |p: &str| -> anyhow::Result<u32> {
        p.parse::<u32>()
            .ok()
            .filter(|port| (1..=65535).contains(port))
            .ok_or_else(|| anyhow::anyhow!("invalid {what}: {p}"))
    };
    match text.split_once('-') {
        Some((start, end)) => {
            let (start, end) = (port(start)?, port(end)?);
            anyhow::ensure!(start <= end, "invalid {what}: {text}");
            Ok((start, end))
        }
        None => port(text).map(|p| (p, p)),
    }
}

/// `cnet port` lines: `80/tcp -> 0.0.0.0:8080`.
pub fn describe(binding: &cnet_proto::gateway::v1::PortBinding) -> String {
    let host_ip = if binding.host_ip.is_empty() { "0.0.0.0" } else { &binding.host_ip };
    format!("{}/{} -> {host_ip}:{}", binding.container_port, binding.protocol, binding.host_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(spec: &str) -> Vec<(String, u32, u32, u32, String)> {
        parse(spec)
            .unwrap()
            .into_iter()
            .map(|m| (m.host_ip, m.host_port, m.host_port_end, m.container_port, m.protocol))
            .collect()
    }

    #[test]
    fn the_grammar_docker_accepts() {
        let tcp = || "tcp".to_owned();
        assert_eq!(short("8080:80"), [(String::new(), 8080, 0, 80, tcp())]);
        assert_eq!(short("127.0.0.1:8081:80"), [("127.0.0.1".into(), 8081, 0, 80, tcp())]);
        assert_eq!(short("80"), [(String::new(), 0, 0, 80, tcp())]);
        assert_eq!(short("5300:53/udp"), [(String::new(), 5300, 0, 53, "udp".into())]);
        assert_eq!(
            short("8082-8084:80-82"),
            [
                (String::new(), 8082, 0, 80, tcp()),
                (String::new(), 8083, 0, 81, tcp()),
                (String::new(), 8084, 0, 82, tcp())
            ]
        );
        assert_eq!(short("8090-8092:80"), [(String::new(), 8090, 8092, 80, tcp())]);
    }

    #[test]
    fn bad_specifications_read_as_docker_words_them() {
        let error = |spec: &str| parse(spec).unwrap_err().to_string();
        assert_eq!(
            error("8085-8087:80-81"),
            "invalid ranges specified for container and host Ports: 80-81 and 8085-8087"
        );
        assert_eq!(error("70000:80"), "invalid hostPort: 70000");
        assert_eq!(error("8080:0"), "invalid containerPort: 0");
    }
}
