//! The in-process service of the tests: the real gRPC server started through
//! `cnet_nat::run` (real iptables or nftables) or `run_with` (a given firewall, e.g. the fake) on a
//! Unix socket in a temp dir, with a temp-dir sled store, and the generated client.
//! Set `TEST_LOG=1` to see the service's logs.

#![allow(dead_code)]

use std::{path::Path, sync::Once};

use cnet_common::{config::ServerConfig, server::Listeners, store::Store};
use cnet_nat::{Config, FirewallDriver, SERVICE, firewall::Firewall};
use cnet_proto::nat::v1::{self as pb, nat_client::NatClient};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("debug").init();
        }
    });
}

/// One run of the service; its state lives in `dir`, so a second start on the same dir
/// is a restart.
pub struct Service {
    pub client: NatClient<Channel>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), cnet_nat::Error>>,
}

pub fn config(dir: &Path, check_interval_secs: u64) -> Config {
    let server = ServerConfig {
        runtime_dir: dir.join("run"),
        state_dir: dir.join("state"),
        ..ServerConfig::default()
    };
    Config { server, check_interval_secs, ..Config::default() }
}

impl Service {
    /// Starts the service with `firewall`, or with real iptables when None.
    pub async fn start(dir: &Path, firewall: Option<Firewall>, check_interval_secs: u64) -> Self {
        Self::start_with(dir, firewall, FirewallDriver::Iptables, check_interval_secs).await
    }

    /// Starts the service on the real backend `driver`.
    pub async fn start_real(dir: &Path, driver: FirewallDriver, check_interval_secs: u64) -> Self {
        Self::start_with(dir, None, driver, check_interval_secs).await
    }

    async fn start_with(
        dir: &Path,
        firewall: Option<Firewall>,
        driver: FirewallDriver,
        check_interval_secs: u64,
    ) -> Self {
        init_logging();
        let config = Config { firewall: driver, ..config(dir, check_interval_secs) };
        let store = Store::open(&config.server.store_dir(SERVICE)).expect("open store");
        let listeners = Listeners::bind(SERVICE, &config.server).await.expect("bind");
        let socket = config.server.socket_path(SERVICE);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            match firewall {
                Some(firewall) => {
                    cnet_nat::run_with(&config, firewall, store, listeners, shutdown).await
                }
                None => cnet_nat::run(&config, store, listeners, shutdown).await,
            }
        });
        let channel =
            cnet_common::client::channel(&format!("unix://{}", socket.display())).expect("channel");
        let mut client = NatClient::new(channel);
        // The socket accepts before the state is loaded; the first answer means the
        // start (rules, proxies) is over.
        client.list_networks(pb::ListNetworksRequest {}).await.expect("service answers");
        Self { client, stop, task }
    }

    /// Stops the server and waits until it has closed its listeners and store.
    pub async fn stop(self) {
        drop(self.client);
        self.stop.send(()).expect("service still running");
        self.task.await.expect("service task").expect("service stopped cleanly");
    }
}

pub fn network(id: &str, bridge: &str, subnet: &str, internal: bool) -> pb::EnsureNetworkRequest {
    pb::EnsureNetworkRequest {
        network_id: id.into(),
        bridge_name: bridge.into(),
        subnet: subnet.into(),
        internal,
    }
}

/// A mapping `host_ip:host_port->container_port/protocol`.
pub fn port(host_ip: &str, host_port: u32, container_port: u32, protocol: &str) -> pb::PortMapping {
    pb::PortMapping {
        host_ip: host_ip.into(),
        host_port,
        host_port_end: 0,
        container_port,
        protocol: protocol.into(),
    }
}

pub fn publish(
    container: &str,
    network: &str,
    ip: &str,
    ports: Vec<pb::PortMapping>,
) -> pb::PublishRequest {
    pb::PublishRequest {
        container_id: container.into(),
        network_id: network.into(),
        container_ip: ip.into(),
        ports,
    }
}

pub fn unpublish(container: &str) -> pb::UnpublishRequest {
    pb::UnpublishRequest { container_id: container.into() }
}

pub async fn mappings(client: &mut NatClient<Channel>, container: &str) -> Vec<pb::Binding> {
    let request = pb::ListMappingsRequest { container_id: container.into() };
    client.list_mappings(request).await.unwrap().into_inner().bindings
}

/// "host_ip:host_port->container_ip:container_port/protocol" of each binding.
pub fn describe(bindings: &[pb::Binding]) -> Vec<String> {
    bindings
        .iter()
        .map(|b| {
            format!(
                "{}:{}->{}:{}/{}",
                b.host_ip, b.host_port, b.container_ip, b.container_port, b.protocol
            )
        })
        .collect()
}
