//! `cnet create | run | ps | inspect | start | stop | rm | logs`.

mod follow;

use std::net::Ipv4Addr;

use cnet_proto::gateway::v1::{Container, ContainerState, CreateContainerRequest};
use time::OffsetDateTime;

use super::{for_each_name, print};
use crate::{
    cli::{CreateArgs, Format, ListArgs, LogsArgs, PsArgs, RmArgs, RunArgs, StopArgs},
    gateway::Gateway,
    output::{self, container::ContainerJson},
};

/// Docker's `run` exit code when the container's own status is unknown.
const UNKNOWN_EXIT: i32 = 125;

pub async fn create(gateway: &Gateway, args: &CreateArgs) -> anyhow::Result<i32> {
    let container = gateway.create_container(request(args, env_var)?).await?;
    print(&format!("{}\n", container.id))?;
    Ok(0)
}

/// `run -d` prints the id; otherwise the container's output is streamed until it
/// exits, and its exit code becomes ours.
pub async fn run(gateway: &Gateway, args: &RunArgs) -> anyhow::Result<i32> {
    let container = gateway.run_container(request(&args.create, env_var)?).await?;
    if args.detach {
        print(&format!("{}\n", container.id))?;
        return Ok(0);
    }
    let finished = follow::until_exit(gateway, &container, &mut std::io::stdout()).await?;
    Ok(exit_code(&finished))
}

fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Builds the request, catching in the CLI what Docker's CLI catches (a malformed
/// `--ip`), so that nothing is created for it. `lookup` reads this shell's environment
/// for `-e KEY`.
pub fn request(
    args: &CreateArgs,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<CreateContainerRequest> {
    if let Some(ip) = &args.ip
        && ip.parse::<Ipv4Addr>().is_err()
    {
        anyhow::bail!("invalid IPv4 address: {ip}");
    }
    let mut ports = Vec::new();
    for spec in &args.publish {
        ports.extend(crate::ports::parse(spec)?);
    }
    if !ports.is_empty() && args.network.as_deref() == Some("host") {
        eprintln!("WARNING: Published ports are discarded when using host network mode");
    }
    let mut env = Vec::new();
    for entry in &args.env {
        match entry.split_once('=') {
            Some(("", _)) => anyhow::bail!("invalid environment variable: {entry}"),
            Some(_) => env.push(entry.clone()),
            // Docker passes `-e KEY` on from the caller's environment, or drops it.
            None => env.extend(lookup(entry).map(|value| format!("{entry}={value}"))),
        }
    }
    Ok(CreateContainerRequest {
        name: args.name.clone().unwrap_or_default(),
        hostname: args.hostname.clone().unwrap_or_default(),
        network: args.network.clone().unwrap_or_default(),
        ip: args.ip.clone().unwrap_or_default(),
        command: args.command.clone(),
        env,
        aliases: args.network_aliases.clone(),
        links: args.links.clone(),
        add_hosts: args.add_hosts.clone(),
        dns: args.dns.clone(),
        dns_search: args.dns_search.clone(),
        dns_options: args.dns_options.clone(),
        ports,
    })
}

/// The container's exit code, or 125 when nobody saw it end (-1).
pub fn exit_code(container: &Container) -> i32 {
    if container.exit_code < 0 { UNKNOWN_EXIT } else { container.exit_code }
}

/// `cnet port NAME`: one line per binding in force.
pub async fn port(gateway: &Gateway, container: &str) -> anyhow::Result<i32> {
    let container = gateway.inspect_container(container).await?;
    let lines: String =
        container.port_bindings.iter().map(|b| crate::ports::describe(b) + "\n").collect();
    print(&lines)?;
    Ok(0)
}

pub async fn list(gateway: &Gateway, args: &PsArgs) -> anyhow::Result<i32> {
    let mut containers = gateway.list_containers(args.all).await?;
    output::container::sort(&mut containers);
    print(&render_list(&containers, &args.list, OffsetDateTime::now_utc()))?;
    Ok(0)
}

pub fn render_list(containers: &[Container], args: &ListArgs, now: OffsetDateTime) -> String {
    if args.quiet {
        return containers
            .iter()
            .map(|container| format!("{}\n", output::short_id(&container.id, args.no_trunc)))
            .collect();
    }
    match args.format {
        Format::Json => {
            output::json(&containers.iter().map(ContainerJson::from).collect::<Vec<_>>())
        }
        Format::Table => {
            let rows: Vec<_> = containers
                .iter()
                .map(|container| output::container::list_row(container, now, args.no_trunc))
                .collect();
            output::table(&output::container::LIST_HEADERS, &rows)
        }
    }
}

/// Prints the containers that exist as one JSON array, then an error for each that
/// does not, as `docker inspect` does.
pub async fn inspect(gateway: &Gateway, names: &[String]) -> anyhow::Result<i32> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match gateway.inspect_container(name).await {
            Ok(container) => found.push(ContainerJson::from(&container)),
            Err(error) => errors.push(error),
        }
    }
    print(&output::json(&found))?;
    for error in &errors {
        eprintln!("Error: {error:#}");
    }
    Ok(i32::from(!errors.is_empty()))
}

pub async fn start(gateway: &Gateway, names: &[String]) -> anyhow::Result<i32> {
    for_each_name(names, async |name| gateway.start_container(name).await.map(drop)).await
}

pub async fn stop(gateway: &Gateway, args: &StopArgs) -> anyhow::Result<i32> {
    let names = &args.names.names;
    for_each_name(names, async |name| gateway.stop_container(name, args.timeout).await.map(drop))
        .await
}

pub async fn remove(gateway: &Gateway, args: &RmArgs) -> anyhow::Result<i32> {
    for_each_name(&args.names.names, async |name| gateway.remove_container(name, args.force).await)
        .await
}

/// Prints what the container wrote so far; with `-f`, keeps printing until it exits.
pub async fn logs(gateway: &Gateway, args: &LogsArgs) -> anyhow::Result<i32> {
    let container = gateway.inspect_container(&args.container).await?;
    let mut stdout = std::io::stdout();
    if args.follow && container.state() == ContainerState::Running {
        follow::until_exit(gateway, &container, &mut stdout).await?;
    } else {
        follow::LogTail::new(&container.log_path).pump(&mut stdout)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn create_args(line: &str) -> CreateArgs {
        match Cli::try_parse_from(line.split_whitespace()).unwrap().command {
            Command::Create(args) => args,
            Command::Run(args) => args.create,
            _ => panic!("{line}"),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn run_flags_become_the_request() {
        let args = create_args(
            "cnet run -d --name centos1 --hostname centos1 --network vswitch01 \
             --ip 172.16.2.7 -e A=1 ping -c1 x",
        );
        let request = request(&args, no_env).unwrap();
        assert_eq!(request.name, "centos1");
        assert_eq!(request.hostname, "centos1");
        assert_eq!(request.network, "vswitch01");
        assert_eq!(request.ip, "172.16.2.7");
        assert_eq!(request.env, ["A=1"]);
        assert_eq!(request.command, ["ping", "-c1", "x"]);
    }

    #[test]
    fn defaults_are_left_to_the_gateway() {
        let request = request(&create_args("cnet create"), no_env).unwrap();
        assert_eq!(request, CreateContainerRequest::default());
    }

    #[test]
    fn malformed_ip_is_refused_before_anything_is_created() {
        let error = request(&create_args("cnet run --ip 300.1.1.1"), no_env).unwrap_err();
        assert_eq!(error.to_string(), "invalid IPv4 address: 300.1.1.1");
        assert!(request(&create_args("cnet run --ip 172.16.1.0/24"), no_env).is_err());
    }

    #[test]
    fn bare_env_keys_come_from_the_caller() {
        let lookup = |key: &str| (key == "HOME").then(|| "/root".to_owned());
        let request = request(&create_args("cnet run -e HOME -e UNSET -e B=2"), lookup).unwrap();
        assert_eq!(request.env, ["HOME=/root", "B=2"]);
        assert!(super::request(&create_args("cnet run -e =x"), no_env).is_err());
    }

    #[test]
    fn unknown_exit_is_125() {
        let container = |exit_code| Container { exit_code, ..Default::default() };
        assert_eq!(exit_code(&container(3)), 3);
        assert_eq!(exit_code(&container(0)), 0);
        assert_eq!(exit_code(&container(-1)), 125);
    }

    #[test]
    fn ps_quiet_and_json() {
        let containers = vec![Container {
            id: "ab".repeat(32),
            name: "centos1".into(),
            state: ContainerState::Created as i32,
            ..Default::default()
        }];
        let now = OffsetDateTime::now_utc();
        let quiet = ListArgs { format: Format::Table, quiet: true, no_trunc: false };
        assert_eq!(render_list(&containers, &quiet, now), "abababababab\n");
        let json = ListArgs { format: Format::Json, quiet: false, no_trunc: false };
        let value: serde_json::Value =
            serde_json::from_str(&render_list(&containers, &json, now)).unwrap();
        assert_eq!(value[0]["State"]["Status"], "created");
        let table = ListArgs { format: Format::Table, quiet: false, no_trunc: false };
        let text = render_list(&containers, &table, now);
        assert!(
            text.starts_with("CONTAINER ID   COMMAND   CREATED   STATUS    NETWORKS   NAMES\n")
        );
        assert!(text.contains("Created"), "{text}");
    }
}
