//! Tests of `ps` rows and container JSON built from proto messages.

use cnet_proto::gateway::v1::{Container, ContainerState, EndpointSettings};
use serde_json::json;
use time::macros::datetime;

use super::*;

const NOW: OffsetDateTime = datetime!(2024-05-01 12:00:10 UTC);

fn centos1() -> Container {
    Container {
        id: "0123456789ab".repeat(5) + "cdef",
        name: "centos1".into(),
        hostname: "centos1".into(),
        state: ContainerState::Running as i32,
        pid: 4242,
        command: vec!["sleep".into(), "infinity".into()],
        network_mode: "vswitch01".into(),
        networks: [(
            "vswitch01".to_owned(),
            EndpointSettings {
                network_id: "net1".into(),
                network_name: "vswitch01".into(),
                ifname: "eth0".into(),
                ip_address: "172.16.1.0".into(),
                prefix_len: 16,
                gateway: "172.16.1.1".into(),
                mac_address: "02:42:ac:10:01:00".into(),
                ..Default::default()
            },
        )]
        .into(),
        created: "2024-05-01T12:00:00Z".into(),
        started_at: "2024-05-01T12:00:05Z".into(),
        exit_code: 0,
        netns_path: "/run/cnet/netns/0123456789ab".into(),
        ..Default::default()
    }
}

#[test]
fn running_row() {
    assert_eq!(
        list_row(&centos1(), NOW, false),
        [
            "0123456789ab",
            "\"sleep infinity\"",
            "10 seconds ago",
            "Up 5 seconds",
            "vswitch01:172.16.1.0",
            "centos1"
        ]
    );
}

#[test]
fn statuses() {
    let mut container = centos1();
    container.state = ContainerState::Exited as i32;
    container.exit_code = 137;
    container.finished_at = "2024-05-01T12:00:07Z".into();
    assert_eq!(status(&container, NOW), "Exited (137) 3 seconds ago");
    container.finished_at.clear();
    assert_eq!(status(&container, NOW), "Exited (137)");

    container.state = ContainerState::Created as i32;
    assert_eq!(status(&container, NOW), "Created");

    container.state = ContainerState::Running as i32;
    container.started_at = "2024-05-01T12:00:10Z".into();
    assert_eq!(status(&container, NOW), "Up Less than a second");
}

#[test]
fn commands_are_quoted_and_cut_at_20() {
    let words = |text: &str| text.split(' ').map(String::from).collect::<Vec<_>>();
    assert_eq!(command(&words("sleep infinity"), false), "\"sleep infinity\"");
    assert_eq!(command(&words("ping -c 100 172.16.1.200"), false), "\"ping -c 100 172.16.…\"");
    assert_eq!(command(&words("ping -c 100 172.16.1.200"), true), "\"ping -c 100 172.16.1.200\"");
    assert_eq!(command(&words("sh -c \"x\""), false), "\"sh -c \\\"x\\\"\"");
    assert_eq!(command(&[], false), "\"\"");
}

#[test]
fn network_cells() {
    let mut container = centos1();
    container.networks.get_mut("vswitch01").unwrap().ip_address.clear();
    assert_eq!(networks(&container, false), "vswitch01", "a stopped container holds no address");

    container.networks.clear();
    container.network_mode = "host".into();
    assert_eq!(networks(&container, false), "host");
    container.network_mode = format!("container:{}", "ab".repeat(32));
    assert_eq!(networks(&container, false), "container:abababababab");
}

#[test]
fn ps_sorts_newest_first() {
    let mut older = centos1();
    older.name = "older".into();
    let mut newer = centos1();
    newer.name = "newer".into();
    newer.created = "2024-05-01T12:00:09Z".into();
    let mut containers = vec![older, newer];
    sort(&mut containers);
    assert_eq!(containers[0].name, "newer");
}

#[test]
fn inspect_json_has_docker_shape() {
    let value = serde_json::to_value(ContainerJson::from(&centos1())).unwrap();
    assert_eq!(value["Name"], "centos1");
    assert_eq!(value["Path"], "sleep");
    assert_eq!(value["Args"], json!(["infinity"]));
    assert_eq!(
        value["State"],
        json!({"Status": "running", "Running": true, "Pid": 4242, "ExitCode": 0,
               "StartedAt": "2024-05-01T12:00:05Z", "FinishedAt": "0001-01-01T00:00:00Z"})
    );
    assert_eq!(value["Config"]["Hostname"], "centos1");
    assert_eq!(value["HostConfig"]["NetworkMode"], "vswitch01");
    assert_eq!(value["NetworkSettings"]["SandboxKey"], "/run/cnet/netns/0123456789ab");
    assert_eq!(
        value["NetworkSettings"]["Networks"]["vswitch01"],
        json!({"IPAMConfig": null, "NetworkID": "net1", "Gateway": "172.16.1.1",
               "IPAddress": "172.16.1.0", "IPPrefixLen": 16,
               "MacAddress": "02:42:ac:10:01:00", "Aliases": [], "InterfaceName": "eth0"})
    );
}

#[test]
fn static_ip_shows_in_ipam_config() {
    let mut container = centos1();
    container.networks.get_mut("vswitch01").unwrap().static_ip = "172.16.2.7".into();
    let value = serde_json::to_value(ContainerJson::from(&container)).unwrap();
    assert_eq!(
        value["NetworkSettings"]["Networks"]["vswitch01"]["IPAMConfig"],
        json!({"IPv4Address": "172.16.2.7"})
    );
}
