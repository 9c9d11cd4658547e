//! `cnet network create | ls | inspect | rm`.

use cnet_proto::gateway::v1::{ConnectNetworkRequest, CreateNetworkRequest, Network};

use super::{for_each_name, print};
use crate::{
    cli::{ConnectArgs, DisconnectArgs, Format, ListArgs, NetworkCreateArgs},
    gateway::Gateway,
    output::{self, network::NetworkJson},
};

pub async fn create(gateway: &Gateway, args: NetworkCreateArgs) -> anyhow::Result<i32> {
    let network = gateway.create_network(request(args)).await?;
    print(&format!("{}\n", network.id))?;
    Ok(0)
}

/// Flags map one to one onto the request; validation is the gateway's job, so that
/// every client gets the same checks and messages.
pub fn request(args: NetworkCreateArgs) -> CreateNetworkRequest {
    CreateNetworkRequest {
        name: args.name,
        driver: args.driver,
        subnet: args.subnet.unwrap_or_default(),
        ip_range: args.ip_range.unwrap_or_default(),
        gateway: args.gateway.unwrap_or_default(),
        internal: args.internal,
        labels: args.labels.into_iter().collect(),
        options: args.options.into_iter().collect(),
    }
}

/// Prints the removed networks' names, under Docker's heading.
pub async fn prune(gateway: &Gateway) -> anyhow::Result<i32> {
    let removed = gateway.prune_networks().await?;
    if !removed.is_empty() {
        print(&format!("Deleted Networks:\n{}\n", removed.join("\n")))?;
    }
    Ok(0)
}

pub async fn connect(gateway: &Gateway, args: ConnectArgs) -> anyhow::Result<i32> {
    let request = ConnectNetworkRequest {
        network: args.network,
        container: args.container,
        ip: args.ip.unwrap_or_default(),
        aliases: args.aliases,
    };
    gateway.connect_network(request).await?;
    Ok(0)
}

pub async fn disconnect(gateway: &Gateway, args: &DisconnectArgs) -> anyhow::Result<i32> {
    gateway.disconnect_network(&args.network, &args.container).await?;
    Ok(0)
}

pub async fn list(gateway: &Gateway, args: &ListArgs) -> anyhow::Result<i32> {
    let mut networks = gateway.list_networks().await?;
    output::network::sort(&mut networks);
    print(&render_list(&networks, args))?;
    Ok(0)
}

pub fn render_list(networks: &[Network], args: &ListArgs) -> String {
    if args.quiet {
        return networks
            .iter()
            .map(|network| format!("{}\n", output::short_id(&network.id, args.no_trunc)))
            .collect();
    }
    match args.format {
        Format::Json => output::json(&networks.iter().map(NetworkJson::from).collect::<Vec<_>>()),
        Format::Table => {
            let rows: Vec<_> = networks
                .iter()
                .map(|network| output::network::list_row(network, args.no_trunc))
                .collect();
            output::table(&output::network::LIST_HEADERS, &rows)
        }
    }
}

/// Prints the networks that exist as one JSON array, then an error for each that does
/// not, as `docker network inspect` does.
pub async fn inspect(gateway: &Gateway, names: &[String]) -> anyhow::Result<i32> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match gateway.inspect_network(name).await {
            Ok(network) => found.push(NetworkJson::from(&network)),
            Err(error) => errors.push(error),
        }
    }
    print(&output::json(&found))?;
    for error in &errors {
        eprintln!("Error: {error:#}");
    }
    Ok(i32::from(!errors.is_empty()))
}

pub async fn remove(gateway: &Gateway, names: &[String]) -> anyhow::Result<i32> {
    for_each_name(names, async |name| gateway.remove_network(name).await).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, NetworkCommand};

    #[test]
    fn lab_flags_become_the_request() {
        let cli = Cli::try_parse_from([
            "cnet",
            "network",
            "create",
            "--subnet",
            "172.16.1.0/16",
            "--ip-range",
            "172.16.1.0/24",
            "--gateway",
            "172.16.1.1",
            "--label",
            "a=b",
            "-o",
            "mtu=1400",
            "vswitch01",
        ])
        .unwrap();
        let Command::Network(NetworkCommand::Create(args)) = cli.command else { panic!() };
        let request = request(args);
        assert_eq!(request.name, "vswitch01");
        assert_eq!(request.driver, "bridge");
        assert_eq!(request.subnet, "172.16.1.0/16");
        assert_eq!(request.ip_range, "172.16.1.0/24");
        assert_eq!(request.gateway, "172.16.1.1");
        assert_eq!(request.labels["a"], "b");
        assert_eq!(request.options["mtu"], "1400");
    }

    fn networks() -> Vec<Network> {
        let network = |id: &str, name: &str| Network {
            id: id.repeat(16),
            name: name.into(),
            driver: "bridge".into(),
            ..Default::default()
        };
        vec![network("abcd", "bridge"), network("1234", "vswitch01")]
    }

    fn list_args(format: Format, quiet: bool) -> ListArgs {
        ListArgs { format, quiet, no_trunc: false }
    }

    #[test]
    fn list_renders_table_json_and_ids() {
        let table = render_list(&networks(), &list_args(Format::Table, false));
        assert_eq!(
            table,
            "NETWORK ID     NAME        DRIVER    SCOPE\n\
             abcdabcdabcd   bridge      bridge    local\n\
             123412341234   vswitch01   bridge    local\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_list(&networks(), &list_args(Format::Json, false)))
                .unwrap();
        assert_eq!(json[1]["Name"], "vswitch01");
        assert_eq!(json[1]["Id"], "1234".repeat(16));
        let quiet = render_list(&networks(), &list_args(Format::Table, true));
        assert_eq!(quiet, "abcdabcdabcd\n123412341234\n");
    }
}
