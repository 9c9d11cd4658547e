//! Service tests: the real gRPC server started in-process through `cnet_hosts::run` on a
//! Unix socket in a temp dir, with a temp-dir sled store and state dir and host files
//! from temp files, driven by the generated client. Set `TEST_LOG=1` to see the
//! service's logs.

use std::{
    path::{Path, PathBuf},
    sync::Once,
};

use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Code, transport::Channel};

use cnet_common::{config::ServerConfig, server::Listeners, store::Store};
use cnet_hosts::{Config, SERVICE};
use cnet_proto::hosts::v1::{
    Container, ContainerSpec, Endpoint, ExtraHost, GetContainerRequest, Link,
    ListContainersRequest, NetworkMode, PutContainerRequest, RemoveContainerRequest,
    hosts_client::HostsClient,
};

const STANDARD: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";
const HOST_HOSTS: &str = "127.0.0.1\tlocalhost\n10.0.0.5\tbuildhost\n";
const HOST_RESOLV: &str = "# written by dhclient\nsearch lab.example\nnameserver 10.0.2.3\n";

fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("debug").init();
        }
    });
}

/// One running service; its state lives in `dir`, so a second `Service::start` on the
/// same dir is a restart.
struct Service {
    socket: PathBuf,
    files: PathBuf,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), cnet_hosts::Error>>,
}

impl Service {
    async fn start(dir: &Path) -> Self {
        init_logging();
        let host_hosts = dir.join("host-hosts");
        let host_resolv_conf = dir.join("host-resolv.conf");
        if !host_hosts.exists() {
            std::fs::write(&host_hosts, HOST_HOSTS).unwrap();
            std::fs::write(&host_resolv_conf, HOST_RESOLV).unwrap();
        }
        let server = ServerConfig {
            runtime_dir: dir.join("run"),
            state_dir: dir.join("state"),
            ..ServerConfig::default()
        };
        let config = Config { server, host_hosts, host_resolv_conf };
        let store = Store::open(&config.server.store_dir(SERVICE)).expect("open store");
        let listeners = Listeners::bind(SERVICE, &config.server).await.expect("bind");
        let socket = config.server.socket_path(SERVICE);
        let files = config.files_dir();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            cnet_hosts::run(&config, store, listeners, async {
                let _ = stopped.await;
            })
            .await
        });
        Self { socket, files, stop, task }
    }

    fn client(&self) -> HostsClient<Channel> {
        let target = format!("unix://{}", self.socket.display());
        HostsClient::new(cnet_common::client::channel(&target).unwrap())
    }

    /// Stops the server and waits until it has let go of its store.
    async fn stop(self) {
        self.stop.send(()).expect("service still running");
        self.task.await.expect("service task").expect("service stopped cleanly");
    }
}

/// A 64-hex id made of `byte`, and its 12-hex short form (the default hostname).
fn id(byte: &str) -> String {
    byte.repeat(32)
}

fn short(id: &str) -> &str {
    &id[..12]
}

/// A running default-bridge container with its short id as hostname.
fn bridge(id: &str, name: &str, address: &str) -> ContainerSpec {
    ContainerSpec {
        container_id: id.into(),
        name: name.into(),
        hostname: short(id).into(),
        mode: NetworkMode::Bridge.into(),
        endpoints: vec![Endpoint {
            network: "bridge".into(),
            address: address.into(),
            default_bridge: true,
        }],
        running: true,
        ..ContainerSpec::default()
    }
}

fn link(target: &str, alias: &str) -> Link {
    Link { target_container_id: target.into(), alias: alias.into() }
}

async fn put(client: &mut HostsClient<Channel>, spec: ContainerSpec) -> Container {
    client.put_container(PutContainerRequest { spec: Some(spec) }).await.unwrap().into_inner()
}

fn hosts_path(container: &Container) -> PathBuf {
    container.files.as_ref().unwrap().hosts_path.clone().into()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// The lab's link scenario at the file level (LINK-1, LINK-3).
#[tokio::test]
async fn links_follow_their_target() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path()).await;
    let mut client = service.client();
    let (centos1, centos3) = (id("c1"), id("c3"));

    put(&mut client, bridge(&centos1, "centos1", "172.17.0.2")).await;
    let mut spec3 = bridge(&centos3, "centos3", "172.17.0.4");
    spec3.links.push(link(&centos1, "centos1"));
    let linker = put(&mut client, spec3).await;

    let path = hosts_path(&linker);
    assert_eq!(path, service.files.canonicalize().unwrap().join(&centos3).join("hosts"));
    let expected = |address: &str| {
        format!(
            "{STANDARD}{address}\tcentos1 {}\n172.17.0.4\t{}\n",
            short(&centos1),
            short(&centos3)
        )
    };
    assert_eq!(read(&path), expected("172.17.0.2"));
    assert_eq!(linker.files.as_ref().unwrap().hosts, expected("172.17.0.2").as_bytes());
    let files = linker.files.as_ref().unwrap();
    assert_eq!(read(Path::new(&files.resolv_conf_path)), HOST_RESOLV, "default bridge: host copy");
    assert_eq!(read(Path::new(&files.hostname_path)), format!("{}\n", short(&centos3)));

    // centos1 stops: the line stays.
    let mut stopped = bridge(&centos1, "centos1", "172.17.0.2");
    stopped.endpoints.clear();
    stopped.running = false;
    let target = put(&mut client, stopped).await;
    assert_eq!(target.link_address, "172.17.0.2");
    assert_eq!(target.linked_by.len(), 1);
    assert_eq!(target.linked_by[0].container_id, centos3);
    assert_eq!(read(&path), expected("172.17.0.2"));

    // centos1 starts with another address: the linker's file shows it when the call
    // returns (a new file: the linker's process, had it one, would get its mount
    // swapped; tests/tests/links.rs checks that from inside a container).
    put(&mut client, bridge(&centos1, "centos1", "172.17.0.7")).await;
    assert_eq!(read(&path), expected("172.17.0.7"));

    // Putting the same description again writes nothing.
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    put(&mut client, bridge(&centos1, "centos1", "172.17.0.7")).await;
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), modified);

    // centos1 is removed: its line goes, its files go.
    let removed = client
        .remove_container(RemoveContainerRequest { container_id: centos1.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(removed.removed);
    assert_eq!(removed.rewritten_container_ids, std::slice::from_ref(&centos3));
    assert_eq!(read(&path), format!("{STANDARD}172.17.0.4\t{}\n", short(&centos3)));
    assert!(!service.files.join(&centos1).exists());
    let missing = client.get_container(GetContainerRequest { container_id: centos1.clone() }).await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
    let again = client
        .remove_container(RemoveContainerRequest { container_id: centos1 })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.removed, "removing twice is fine");
    service.stop().await;
}

/// One container per flavour, the files they get, and a restart that rewrites them all
/// from the store.
#[tokio::test]
async fn restart_regenerates_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path()).await;
    let mut client = service.client();
    let (user, linker, host, none) = (id("a1"), id("b2"), id("c3"), id("d4"));

    let mut user_spec = bridge(&user, "centos1", "172.16.1.0");
    user_spec.endpoints[0] = Endpoint {
        network: "vswitch01".into(),
        address: "172.16.1.0".into(),
        default_bridge: false,
    };
    user_spec.dns_servers.push("172.17.0.1".into());
    let user_files = put(&mut client, user_spec).await.files.unwrap();
    assert_eq!(user_files.hosts, format!("{STANDARD}172.16.1.0\t{}\n", short(&user)).as_bytes());
    assert_eq!(
        user_files.resolv_conf,
        b"search lab.example\nnameserver 127.0.0.11\noptions ndots:0\n"
    );

    let mut linker_spec = bridge(&linker, "centos5", "172.17.0.6");
    linker_spec.hostname = "web.example.com".into();
    linker_spec.extra_hosts.push(ExtraHost { hostname: "gw".into(), address: "10.0.0.1".into() });
    linker_spec.dns_servers.push("172.17.0.1".into());
    linker_spec.dns_options.push("ndots:2".into());
    let target = id("e5");
    let mut target_spec = bridge(&target, "centos4", "172.17.0.5");
    target_spec.hostname = "dbhost".into();
    put(&mut client, target_spec).await;
    linker_spec.links.push(link(&target, "db"));
    let linker_files = put(&mut client, linker_spec).await.files.unwrap();
    assert_eq!(
        linker_files.hosts,
        format!(
            "{STANDARD}10.0.0.1\tgw\n172.17.0.5\tdb dbhost centos4\n172.17.0.6\tweb.example.com web\n"
        )
        .as_bytes()
    );
    assert_eq!(
        linker_files.resolv_conf,
        b"search lab.example\nnameserver 172.17.0.1\noptions ndots:2\n"
    );
    assert_eq!(linker_files.hostname, b"web.example.com\n");

    let host_spec = ContainerSpec {
        container_id: host.clone(),
        name: "centosC".into(),
        hostname: "buildhost".into(),
        mode: NetworkMode::Host.into(),
        running: true,
        ..ContainerSpec::default()
    };
    let host_files = put(&mut client, host_spec).await.files.unwrap();
    assert_eq!(host_files.hosts, HOST_HOSTS.as_bytes());
    assert_eq!(host_files.resolv_conf, HOST_RESOLV.as_bytes());

    let none_spec = ContainerSpec {
        container_id: none.clone(),
        name: "centosE".into(),
        hostname: short(&none).into(),
        mode: NetworkMode::None.into(),
        running: true,
        ..ContainerSpec::default()
    };
    let none_files = put(&mut client, none_spec).await.files.unwrap();
    assert_eq!(none_files.hosts, STANDARD.as_bytes());
    assert_eq!(none_files.resolv_conf, HOST_RESOLV.as_bytes());

    let snapshot = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for container in std::fs::read_dir(dir).unwrap() {
            let container = container.unwrap().path();
            for file in std::fs::read_dir(&container).unwrap() {
                let file = file.unwrap().path();
                let name = file.strip_prefix(dir).unwrap().display().to_string();
                files.push((name, std::fs::read(&file).unwrap()));
            }
        }
        files.sort();
        files
    };
    let before = snapshot(&service.files);
    assert_eq!(before.len(), 15);
    let listed = client.list_containers(ListContainersRequest {}).await.unwrap().into_inner();
    let ids: Vec<_> =
        listed.containers.iter().map(|c| c.spec.as_ref().unwrap().container_id.clone()).collect();
    assert_eq!(ids, [user.clone(), linker.clone(), host.clone(), none.clone(), target.clone()]);
    let files_dir = service.files.clone();
    service.stop().await;

    // A reboot loses files, someone edits one, a crash leaves a stray directory.
    std::fs::remove_file(files_dir.join(&user).join("hosts")).unwrap();
    std::fs::remove_dir_all(files_dir.join(&none)).unwrap();
    std::fs::write(files_dir.join(&linker).join("hosts"), "edited\n").unwrap();
    std::fs::create_dir(files_dir.join(id("f6"))).unwrap();

    let service = Service::start(dir.path()).await;
    let mut client = service.client();
    // The first answer comes once the files are rewritten.
    client.list_containers(ListContainersRequest {}).await.unwrap();
    assert_eq!(snapshot(&service.files), before);
    let linker_view = client
        .get_container(GetContainerRequest { container_id: linker.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(linker_view.files.unwrap().hosts, linker_files.hosts, "read back from disk");
    let target_view = client
        .get_container(GetContainerRequest { container_id: target })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(target_view.linked_by.len(), 1);
    assert_eq!(target_view.linked_by[0].container_id, linker);
    assert_eq!(target_view.linked_by[0].alias, "db");
    service.stop().await;
}

/// Malformed or contradictory requests are refused with INVALID_ARGUMENT, and nothing is
/// stored or written.
#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path()).await;
    let mut client = service.client();
    let good = || bridge(&id("a1"), "centos1", "172.17.0.2");
    type Change = fn(&mut ContainerSpec);
    let cases: &[(&str, Change)] = &[
        ("container id", |s| s.container_id = "../etc".into()),
        ("container id", |s| s.container_id = "a/b".into()),
        ("container id", |s| s.container_id = String::new()),
        ("container name", |s| s.name = "centos 1".into()),
        ("hostname", |s| s.hostname = "a b".into()),
        ("hostname", |s| s.hostname = "host\n10.0.0.1 evil".into()),
        ("network mode", |s| s.mode = NetworkMode::Unspecified.into()),
        ("network mode", |s| s.mode = 42),
        ("endpoint address", |s| s.endpoints[0].address = "172.17.0.300".into()),
        ("endpoint address", |s| s.endpoints[0].address = "0.0.0.0".into()),
        ("network name", |s| s.endpoints[0].network = "net\nwork".into()),
        ("extra host name", |s| {
            s.extra_hosts.push(ExtraHost { hostname: "a b".into(), address: "10.0.0.1".into() })
        }),
        ("extra host address", |s| {
            s.extra_hosts.push(ExtraHost { hostname: "a".into(), address: "10.0.0.1 b".into() })
        }),
        ("dns server", |s| s.dns_servers.push("1.1.1.1\nnameserver 6.6.6.6".into())),
        ("dns search domain", |s| s.dns_search.push("lab\nnameserver 6.6.6.6".into())),
        ("dns option", |s| s.dns_options.push("ndots:x".into())),
        ("dns option", |s| s.dns_options.push("rotate #".into())),
        ("link alias", |s| s.links.push(link(&id("b2"), "db\n10.0.0.1"))),
        ("container id", |s| s.links.push(link("..", "db"))),
        ("cannot link to itself", |s| s.links.push(link(&id("a1"), "me"))),
        ("used twice", |s| s.links.extend([link(&id("b2"), "db"), link(&id("c3"), "db")])),
        ("only allowed in bridge mode", |s| s.mode = NetworkMode::Host.into()),
        ("can't be used with links", |s| {
            s.endpoints.clear();
            s.mode = NetworkMode::Host.into();
            s.links.push(link(&id("b2"), "db"));
        }),
        ("two endpoints on network bridge", |s| {
            let again = s.endpoints[0].clone();
            s.endpoints.push(again);
        }),
    ];
    for (expected, change) in cases {
        let mut spec = good();
        change(&mut spec);
        let status = client
            .put_container(PutContainerRequest { spec: Some(spec.clone()) })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{spec:?}: {status:?}");
        assert!(
            status.message().contains(expected),
            "{:?} should mention {expected:?}",
            status.message()
        );
    }
    let status = client.put_container(PutContainerRequest { spec: None }).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::InvalidArgument, "spec is required"));
    let status = client
        .get_container(GetContainerRequest { container_id: "../x".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let listed = client.list_containers(ListContainersRequest {}).await.unwrap().into_inner();
    assert!(listed.containers.is_empty());
    assert_eq!(std::fs::read_dir(&service.files).unwrap().count(), 0, "no file written");
    assert!(!dir.path().join("state/hosts/etc").exists());
    // And the good one goes through.
    put(&mut client, good()).await;
    service.stop().await;
}
