//! The agent's decisions against the recording fake kernel: what it records, which
//! kernel calls it makes, and what it refuses. No root needed.

use std::path::Path;

use cnet_common::store::Store;

use super::*;
use crate::{
    domain::{HostPrefix, Mtu, net::parse_cidr},
    kernel::fake::Fake,
};

pub(crate) struct Setup {
    pub dir: tempfile::TempDir,
    pub agent: Agent<Fake>,
}

impl Setup {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let agent = Self::open(dir.path());
        Self { dir, agent }
    }

    /// An agent on the store under `root`, as after a restart.
    pub fn open(root: &Path) -> Agent<Fake> {
        let store = Store::open(&root.join("state")).expect("store");
        Agent::new(Fake::new(), Records::open(store).expect("records"), root.join("netns"))
    }

    pub fn fake(&self) -> &Fake {
        self.agent.kernel()
    }
}

pub(crate) fn bridge(network: &str, name: &str) -> Bridge {
    Bridge {
        network_id: network.parse().unwrap(),
        name: name.parse().unwrap(),
        gateway: parse_cidr("172.16.1.1/16").unwrap(),
        mtu: Mtu::DEFAULT,
    }
}

pub(crate) fn endpoint(container: &str, address: &str) -> EndpointRequest {
    EndpointRequest {
        id: format!("{container}/n1").parse().unwrap(),
        network_id: "n1".parse().unwrap(),
        sandbox_id: container.parse().unwrap(),
        ifname: None,
        address: parse_cidr(address).unwrap(),
        gateway: Some("172.16.1.1".parse().unwrap()),
        mac: None,
        mtu: None,
        default_route: true,
    }
}

/// A bridge "br-n1" for network "n1" and an owned sandbox "c1".
pub(crate) async fn network_and_sandbox(setup: &Setup) {
    setup.agent.ensure_bridge(bridge("n1", "br-n1")).await.unwrap();
    setup.agent.ensure_sandbox("c1".parse().unwrap(), None).await.unwrap();
    setup.fake().take_calls();
}

#[tokio::test]
async fn bridges_are_recorded_created_and_confirmed() {
    let setup = Setup::new();
    let state = setup.agent.ensure_bridge(bridge("n1", "br-n1")).await.unwrap();
    assert_eq!(setup.fake().take_calls(), ["ensure_bridge br-n1"]);
    assert_eq!(
        setup.agent.records.bridge(&"n1".parse().unwrap()).unwrap(),
        Some(state.bridge.clone())
    );
    let again = setup.agent.ensure_bridge(bridge("n1", "br-n1")).await.unwrap();
    assert_eq!(again, state);
    assert_eq!(setup.agent.bridges().await.unwrap(), [state]);
}

#[tokio::test]
async fn bridge_conflicts_are_refused_without_kernel_calls() {
    let setup = Setup::new();
    setup.fake().add_link("docker0", Some("bridge"), None);
    let taken = setup.agent.ensure_bridge(bridge("n1", "docker0")).await.unwrap_err();
    assert!(matches!(taken, Error::AlreadyExists(_)), "{taken}");
    setup.agent.ensure_bridge(bridge("n1", "br-n1")).await.unwrap();
    setup.fake().take_calls();
    let renamed = setup.agent.ensure_bridge(bridge("n1", "br-other")).await.unwrap_err();
    assert!(matches!(renamed, Error::AlreadyExists(_)), "{renamed}");
    let shared = setup.agent.ensure_bridge(bridge("n2", "br-n1")).await.unwrap_err();
    assert_eq!(shared.to_string(), "bridge \"br-n1\" belongs to network \"n1\"");
    assert_eq!(setup.fake().take_calls(), Vec::<String>::new());
    assert_eq!(setup.agent.records.bridges().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_bridge_leaves_no_record() {
    let setup = Setup::new();
    setup.fake().fail("ensure_bridge");
    setup.agent.ensure_bridge(bridge("n1", "br-n1")).await.unwrap_err();
    assert!(setup.agent.records.bridges().unwrap().is_empty());
}

#[tokio::test]
async fn endpoints_are_made_once_and_refuse_clashes() {
    let setup = Setup::new();
    network_and_sandbox(&setup).await;
    let made = setup.agent.ensure_endpoint(endpoint("c1", "172.16.1.0/16")).await.unwrap();
    assert_eq!(setup.fake().take_calls(), [format!("create_endpoint {}", made.host_ifname)]);
    let host = setup.fake().link(made.host_ifname.as_str()).unwrap();
    assert_eq!(host.master, setup.fake().link("br-n1").map(|bridge| bridge.index));
    let again = setup.agent.ensure_endpoint(endpoint("c1", "172.16.1.0/16")).await.unwrap();
    assert_eq!(again, made);
    assert_eq!(setup.fake().take_calls(), Vec::<String>::new());

    let changed = setup.agent.ensure_endpoint(endpoint("c1", "172.16.1.9/16")).await.unwrap_err();
    assert!(matches!(changed, Error::AlreadyExists(_)), "{changed}");
    let mut same_ifname = endpoint("c1", "172.16.1.3/16");
    same_ifname.id = "other/n1".parse().unwrap();
    let clash = setup.agent.ensure_endpoint(same_ifname).await.unwrap_err();
    assert!(clash.to_string().contains("already has \"eth0\""), "{clash}");
    let missing = setup.agent.ensure_endpoint(endpoint("c9", "172.16.1.3/16")).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound(_)), "{missing}");
    assert_eq!(setup.fake().take_calls(), Vec::<String>::new());
}

#[tokio::test]
async fn broken_endpoints_are_rebuilt_and_failures_forget_the_record() {
    let setup = Setup::new();
    network_and_sandbox(&setup).await;
    let made = setup.agent.ensure_endpoint(endpoint("c1", "172.16.1.0/16")).await.unwrap();
    setup.fake().remove_link("br-n1");
    setup.agent.ensure_bridge(bridge("n1", "br-n1")).await.unwrap();
    setup.fake().take_calls();
    // The veth survived the bridge but is no longer on it.
    setup.agent.ensure_endpoint(endpoint("c1", "172.16.1.0/16")).await.unwrap();
    let host = made.host_ifname.to_string();
    assert_eq!(
        setup.fake().take_calls(),
        [format!("delete_link {host}"), format!("create_endpoint {host}")]
    );

    setup.fake().fail("create_endpoint");
    let mut second = endpoint("c1", "172.16.1.2/16");
    (second.id, second.ifname) = ("c1/n2".parse().unwrap(), Some("eth1".parse().unwrap()));
    setup.agent.ensure_endpoint(second.clone()).await.unwrap_err();
    assert_eq!(setup.agent.records.endpoint(&second.id), None);
}

#[tokio::test]
async fn a_bridge_with_endpoints_cannot_go() {
    let setup = Setup::new();
    network_and_sandbox(&setup).await;
    let made = setup.agent.ensure_endpoint(endpoint("c1", "172.16.1.0/16")).await.unwrap();
    setup.fake().take_calls();
    let network = "n1".parse().unwrap();
    let refused = setup.agent.delete_bridge(&network).await.unwrap_err();
    assert!(matches!(refused, Error::FailedPrecondition(_)), "{refused}");
    setup.agent.delete_endpoint(&made.id).await.unwrap();
    setup.agent.delete_endpoint(&made.id).await.unwrap();
    setup.agent.delete_bridge(&network).await.unwrap();
    setup.agent.delete_bridge(&network).await.unwrap();
    let host = made.host_ifname;
    assert_eq!(
        setup.fake().take_calls(),
        [format!("delete_link {host}"), "delete_link br-n1".into()]
    );
    assert_eq!(setup.fake().link_names(), ["lo"]);
}

#[tokio::test]
async fn sandboxes_owned_and_external() {
    let setup = Setup::new();
    let owned = setup.agent.ensure_sandbox("c1".parse().unwrap(), None).await.unwrap();
    assert_eq!(owned.netns_path, setup.dir.path().join("netns/c1"));
    assert_eq!(setup.fake().take_calls(), [format!("create_netns {}", owned.netns_path.display())]);
    setup.agent.ensure_sandbox("c1".parse().unwrap(), None).await.unwrap();
    assert_eq!(setup.fake().take_calls(), Vec::<String>::new());

    let path = setup.dir.path().join("external");
    let refused = setup.agent.ensure_sandbox("c2".parse().unwrap(), Some(path.clone())).await;
    assert_eq!(
        refused.unwrap_err().to_string(),
        format!("netns_path: {} does not exist", path.display())
    );
    setup.fake().add_namespace(&path);
    let external = setup.agent.ensure_sandbox("c2".parse().unwrap(), Some(path.clone())).await;
    assert!(!external.unwrap().owned);
    setup.agent.delete_sandbox(&"c2".parse().unwrap()).await.unwrap();
    setup.agent.delete_sandbox(&"c1".parse().unwrap()).await.unwrap();
    assert_eq!(setup.fake().take_calls(), [format!("delete_netns {}", owned.netns_path.display())]);
    assert_eq!(setup.fake().namespaces(), [path]);
    assert!(setup.agent.sandboxes().unwrap().is_empty());
}

#[tokio::test]
async fn sandbox_teardown_goes_on_past_failures() {
    let setup = Setup::new();
    network_and_sandbox(&setup).await;
    let made = setup.agent.ensure_endpoint(endpoint("c1", "172.16.1.0/16")).await.unwrap();
    setup.fake().take_calls();
    setup.fake().fail("delete_link");
    let sandbox = "c1".parse().unwrap();
    let error = setup.agent.delete_sandbox(&sandbox).await.unwrap_err();
    assert!(matches!(error, Error::Teardown(ref errors) if errors.len() == 1), "{error}");
    let path = setup.dir.path().join("netns/c1");
    let host = made.host_ifname;
    let calls = [format!("delete_link {host}"), format!("delete_netns {}", path.display())];
    assert_eq!(setup.fake().take_calls(), calls);
    // The record stays so that a retry (or reconcile) can finish.
    assert!(setup.agent.records.sandbox(&sandbox).unwrap().is_some());
}

#[tokio::test]
async fn host_prefixes_leave_out_our_bridges() {
    let setup = Setup::new();
    setup.agent.ensure_bridge(bridge("n1", "br-n1")).await.unwrap();
    let docker0 = setup.fake().add_link("docker0", Some("bridge"), None);
    let prefix = |cidr: &str, ifindex| HostPrefix { prefix: cidr.parse().unwrap(), ifindex };
    setup.fake().set_host_prefixes(vec![
        prefix("172.17.0.0/16", Some(docker0)),
        prefix("192.168.1.0/24", Some(1)),
        prefix("192.168.1.0/24", None),
        prefix("10.1.2.0/24", None),
    ]);
    let prefixes = setup.agent.host_prefixes().await.unwrap();
    let prefixes: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
    assert_eq!(prefixes, ["10.1.2.0/24", "172.17.0.0/16", "192.168.1.0/24"]);
}

#[tokio::test]
async fn the_endpoint_index_follows_every_change_and_a_restart() {
    let setup = Setup::new();
    network_and_sandbox(&setup).await;
    setup.agent.ensure_sandbox("c2".parse().unwrap(), None).await.unwrap();
    let first = setup.agent.ensure_endpoint(endpoint("c1", "172.16.1.2/16")).await.unwrap();
    let second = setup.agent.ensure_endpoint(endpoint("c2", "172.16.1.3/16")).await.unwrap();
    let (c1, c2) = ("c1".parse().unwrap(), "c2".parse().unwrap());

    setup.agent.delete_sandbox(&c1).await.unwrap();
    let records = &setup.agent.records;
    assert_eq!(records.endpoints_in_sandbox(&c1), []);
    assert_eq!(records.endpoints_in_sandbox(&c2), std::slice::from_ref(&second));
    assert_eq!(records.endpoints_on_network(&"n1".parse().unwrap()), std::slice::from_ref(&second));
    assert_eq!(records.endpoint_with_host_ifname(&first.host_ifname), None);

    // The index is rebuilt from the store: the same answers after a restart, and a name
    // freed by the deletion can be taken again.
    let Setup { dir, agent } = setup;
    drop(agent);
    let restarted = Setup::open(dir.path());
    assert_eq!(restarted.records.endpoints(), std::slice::from_ref(&second));
    assert_eq!(restarted.records.endpoint_with_host_ifname(&second.host_ifname), Some(second));
    // (A fresh fake kernel: the bridge is made again from its record.)
    restarted.ensure_bridge(bridge("n1", "br-n1")).await.unwrap();
    restarted.ensure_sandbox(c1.clone(), None).await.unwrap();
    let again = restarted.ensure_endpoint(endpoint("c1", "172.16.1.2/16")).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(restarted.records.endpoints_in_sandbox(&c1), [first]);
}
