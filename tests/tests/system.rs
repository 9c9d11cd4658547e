//! `cnet system check`: drift between the gateway's records and the other services is
//! shown, and removed with `--repair`, without touching anything that is wanted.

use cnet_proto::{bridge::v1 as bridge, ipam::v1 as ipam};
use cnet_tests::Cluster;

#[test]
fn check_finds_leftovers_and_repair_removes_only_them() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.lab();
    assert_eq!(
        cluster.cnet(&["system", "check"]).ok().trim(),
        "no drift: every service agrees with the gateway's records"
    );

    // Leftovers a crash half-way through an operation would leave: an address held by a
    // container that does not exist and a network namespace nobody uses.
    let pool_id = api.network("vswitch01").id;
    let ipam_channel = {
        let _entered = api.enter();
        cnet_common::client::channel(&cluster.service_target("ipam")).unwrap()
    };
    let bridge_channel = {
        let _entered = api.enter();
        cnet_common::client::channel(&cluster.service_target("bridge")).unwrap()
    };
    let mut ipam = ipam::ipam_client::IpamClient::new(ipam_channel);
    let mut bridge = bridge::bridge_agent_client::BridgeAgentClient::new(bridge_channel);
    let ghost = ipam::AllocateRequest { pool_id, owner: "ghost".into(), address: String::new() };
    let held = api.block(ipam.allocate(ghost)).unwrap().into_inner().address;
    let sandbox = bridge::EnsureSandboxRequest { id: "ghost-ns".into(), netns_path: String::new() };
    api.block(bridge.ensure_sandbox(sandbox)).unwrap();

    let check = cluster.cnet(&["system", "check"]);
    assert_eq!(check.code, 1, "{check:#?}");
    assert!(
        check.stdout.contains(&format!("address {held}")) && check.stdout.contains("held by ghost"),
        "{}",
        check.stdout
    );
    assert!(check.stdout.contains("network namespace ghost-ns"), "{}", check.stdout);

    let repair = cluster.cnet(&["system", "check", "--repair"]);
    assert_eq!(repair.code, 0, "{repair:#?}");
    assert_eq!(repair.stdout.matches("repaired").count(), 2, "{}", repair.stdout);
    cluster.cnet(&["system", "check"]).ok();

    // What is wanted is untouched: the lab's containers still talk, and the address
    // the ghost held is handed out again.
    cluster.cnet(&["exec", "centos1", "--", "ping", "-c1", "-W2", "centos2"]).ok();
    cluster.cnet(&["run", "-d", "--name", "centos3", "--network", "vswitch01"]).ok();
    assert_eq!(api.ip("centos3", "vswitch01"), held);
}
