//! Service tests: the real gRPC server started in-process through `cnet_ipam::run` on a
//! Unix socket in a temp dir, with a temp-dir sled store, driven by the generated client.
//! Set `TEST_LOG=1` to see the service's logs.

use std::{
    collections::HashSet,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::Once,
};

use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use cnet_common::{config::ServerConfig, server::Listeners, store::Store};
use cnet_ipam::{Config, SERVICE};
use cnet_proto::ipam::v1::{
    AllocateRequest, CreatePoolRequest, DeletePoolRequest, GetPoolRequest, ListAllocationsRequest,
    ListPoolsRequest, Pool, ReleaseRequest, ipam_client::IpamClient,
};

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
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), cnet_ipam::Error>>,
}

impl Service {
    async fn start(dir: &Path) -> Self {
        init_logging();
        let server = ServerConfig {
            runtime_dir: dir.join("run"),
            state_dir: dir.join("state"),
            ..ServerConfig::default()
        };
        let config = Config { server };
        let store = open_store(&config.server.store_dir(SERVICE)).await;
        let listeners = Listeners::bind(SERVICE, &config.server).await.expect("bind");
        let socket = config.server.socket_path(SERVICE);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            cnet_ipam::run(&config, store, listeners, async {
                let _ = stopped.await;
            })
            .await
        });
        Self { socket, stop, task }
    }

    fn channel(&self) -> Channel {
        cnet_common::client::channel(&format!("unix://{}", self.socket.display())).unwrap()
    }

    fn client(&self) -> IpamClient<Channel> {
        IpamClient::new(self.channel())
    }

    /// Stops the server and waits until it has let go of its store.
    async fn stop(self) {
        self.stop.send(()).expect("service still running");
        self.task.await.expect("service task").expect("service stopped cleanly");
    }
}

/// Opens the store, waiting while a stopped server's last connection tasks still hold
/// sled's file lock (they go a moment after `run` returns).
async fn open_store(dir: &Path) -> Store {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(dir) {
            Ok(store) => return store,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%error, "store still locked, retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(error) => panic!("open store: {error}"),
        }
    }
}

fn create(id: &str, subnet: &str, ip_range: &str, gateway: &str) -> CreatePoolRequest {
    CreatePoolRequest {
        id: id.into(),
        subnet: subnet.into(),
        ip_range: ip_range.into(),
        gateway: gateway.into(),
        exclude: vec![],
    }
}

fn allocate(pool_id: &str, owner: &str, address: &str) -> AllocateRequest {
    AllocateRequest { pool_id: pool_id.into(), owner: owner.into(), address: address.into() }
}

async fn address(client: &mut IpamClient<Channel>, pool_id: &str, owner: &str) -> String {
    client.allocate(allocate(pool_id, owner, "")).await.unwrap().into_inner().address
}

async fn get_pool(client: &mut IpamClient<Channel>, id: &str) -> Pool {
    client.get_pool(GetPoolRequest { id: id.into() }).await.unwrap().into_inner()
}

#[tokio::test]
async fn lab_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path()).await;
    let mut client = service.client();

    let request = create("vswitch01", "172.16.1.0/16", "172.16.1.0/24", "172.16.1.1");
    let pool = client.create_pool(request.clone()).await.unwrap().into_inner();
    let expected = Pool {
        id: "vswitch01".into(),
        subnet: "172.16.1.0/16".into(),
        network: "172.16.0.0/16".into(),
        ip_range: "172.16.1.0/24".into(),
        gateway: "172.16.1.1".into(),
        auto_subnet: false,
        auto_gateway: false,
        allocated: 0,
        free: 255,
    };
    assert_eq!(pool, expected);
    // Repeating the request is harmless.
    assert_eq!(client.create_pool(request).await.unwrap().into_inner(), expected);

    for (owner, expected) in
        [("centos1", "172.16.1.0"), ("centos2", "172.16.1.2"), ("centos3", "172.16.1.3")]
    {
        let allocation = client.allocate(allocate("vswitch01", owner, "")).await.unwrap();
        let allocation = allocation.into_inner();
        assert_eq!(allocation.address, expected, "{owner}");
        assert_eq!((allocation.prefix_len, allocation.gateway.as_str()), (16, "172.16.1.1"));
        assert!(!allocation.is_static);
    }
    // Allocate is idempotent per owner.
    assert_eq!(address(&mut client, "vswitch01", "centos2").await, "172.16.1.2");

    let static_ip = client.allocate(allocate("vswitch01", "static", "172.16.2.7")).await.unwrap();
    assert!(static_ip.get_ref().is_static);
    assert_eq!(static_ip.get_ref().address, "172.16.2.7");

    let release = ReleaseRequest { pool_id: "vswitch01".into(), owner: "centos1".into() };
    let released = client.release(release.clone()).await.unwrap().into_inner();
    assert_eq!(released.address, "172.16.1.0");
    assert_eq!(client.release(release).await.unwrap().into_inner().address, "");
    assert_eq!(address(&mut client, "vswitch01", "centos4").await, "172.16.1.0");
    assert_eq!(address(&mut client, "vswitch01", "centos5").await, "172.16.1.4");

    let pool = get_pool(&mut client, "vswitch01").await;
    assert_eq!((pool.allocated, pool.free), (5, 251));
    let listed = client
        .list_allocations(ListAllocationsRequest { pool_id: "vswitch01".into() })
        .await
        .unwrap()
        .into_inner()
        .allocations;
    let listed: Vec<_> = listed.iter().map(|a| format!("{}={}", a.owner, a.address)).collect();
    assert_eq!(
        listed,
        [
            "centos4=172.16.1.0",
            "centos2=172.16.1.2",
            "centos3=172.16.1.3",
            "centos5=172.16.1.4",
            "static=172.16.2.7"
        ]
    );

    let auto = client.create_pool(create("auto", "", "", "")).await.unwrap().into_inner();
    assert_eq!(
        (auto.subnet.as_str(), auto.network.as_str(), auto.gateway.as_str()),
        ("172.17.0.0/16", "172.17.0.0/16", "172.17.0.1")
    );
    assert!(auto.auto_subnet && auto.auto_gateway);
    let mut excluding = create("auto2", "", "", "");
    excluding.exclude = vec!["172.18.0.1/16".into(), "10.0.0.1".into()];
    let auto2 = client.create_pool(excluding).await.unwrap().into_inner();
    assert_eq!(auto2.subnet, "172.19.0.0/16");
    let pools = client.list_pools(ListPoolsRequest {}).await.unwrap().into_inner().pools;
    let ids: Vec<_> = pools.iter().map(|pool| pool.id.as_str()).collect();
    assert_eq!(ids, ["auto", "auto2", "vswitch01"]);

    drop(client);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_allocations_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path()).await;
    let mut client = service.client();
    client.create_pool(create("busy", "10.50.0.0/24", "", "")).await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..200 {
        let mut client = client.clone();
        tasks.spawn(async move { address(&mut client, "busy", &format!("owner{index}")).await });
    }
    let mut addresses = HashSet::new();
    while let Some(address) = tasks.join_next().await {
        let address: Ipv4Addr = address.unwrap().parse().unwrap();
        assert_eq!(address.octets()[..3], [10, 50, 0], "{address}");
        assert!((2..=254).contains(&address.octets()[3]), "{address}");
        assert!(addresses.insert(address), "{address} handed out twice");
    }
    assert_eq!(addresses.len(), 200);
    // Lowest-free-first with no gaps: exactly .2 through .201.
    let expected: HashSet<_> = (2..=201).map(|host| Ipv4Addr::new(10, 50, 0, host)).collect();
    assert_eq!(addresses, expected);
    let pool = get_pool(&mut client, "busy").await;
    assert_eq!((pool.allocated, pool.free), (200, 53));

    drop(client);
    service.stop().await;
}

#[tokio::test]
async fn restart_keeps_pools_and_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path()).await;
    let mut client = service.client();
    client.create_pool(create("a", "10.10.0.0/24", "10.10.0.128/25", "")).await.unwrap();
    client.create_pool(create("b", "", "", "")).await.unwrap();
    client.create_pool(create("gone", "10.20.0.0/24", "", "")).await.unwrap();
    for owner in ["c1", "c2", "c3"] {
        address(&mut client, "a", owner).await;
    }
    client.allocate(allocate("a", "fixed", "10.10.0.5")).await.unwrap();
    address(&mut client, "gone", "c1").await;
    let release = ReleaseRequest { pool_id: "a".into(), owner: "c2".into() };
    client.release(release).await.unwrap();
    let delete = DeletePoolRequest { id: "gone".into(), force: true };
    client.delete_pool(delete).await.unwrap();
    let pools_before = client.list_pools(ListPoolsRequest {}).await.unwrap().into_inner();
    let all = ListAllocationsRequest { pool_id: String::new() };
    let allocations_before = client.list_allocations(all.clone()).await.unwrap().into_inner();
    drop(client);
    service.stop().await;

    let service = Service::start(dir.path()).await;
    let mut client = service.client();
    let pools_after = client.list_pools(ListPoolsRequest {}).await.unwrap().into_inner();
    assert_eq!(pools_after, pools_before);
    let allocations_after = client.list_allocations(all).await.unwrap().into_inner();
    assert_eq!(allocations_after, allocations_before);
    let held: Vec<_> = allocations_after.allocations.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(held, ["10.10.0.5", "10.10.0.128", "10.10.0.130"]);

    // Owners keep their address, the released one is handed out again, and new ones are
    // fresh.
    assert_eq!(address(&mut client, "a", "c3").await, "10.10.0.130");
    assert_eq!(address(&mut client, "a", "c4").await, "10.10.0.129");
    assert_eq!(address(&mut client, "a", "c5").await, "10.10.0.131");
    let fixed = client.allocate(allocate("a", "other", "10.10.0.5")).await.unwrap_err();
    assert_eq!(fixed.code(), Code::AlreadyExists);
    // The deleted pool's subnet is free again and its allocations are gone.
    client.create_pool(create("gone", "10.20.0.0/24", "", "")).await.unwrap();
    assert_eq!(address(&mut client, "gone", "c9").await, "10.20.0.2");

    drop(client);
    service.stop().await;
}

#[tokio::test]
async fn errors_carry_their_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path()).await;
    let mut client = service.client();
    client
        .create_pool(create("lab", "172.16.1.0/16", "172.16.1.0/24", "172.16.1.1"))
        .await
        .unwrap();
    client.create_pool(create("small", "10.123.9.0/29", "", "")).await.unwrap();
    for owner in ["c1", "c2", "c3", "c4", "c5"] {
        address(&mut client, "small", owner).await;
    }
    address(&mut client, "lab", "centos1").await;

    let create_cases = [
        (
            create("x", "172.16.0.0/12", "", ""),
            Code::AlreadyExists,
            "pool overlaps with other one on this address space",
        ),
        (
            create("x", "172.16.5.0/24", "", ""),
            Code::AlreadyExists,
            "pool overlaps with other one on this address space",
        ),
        (
            create("x", "172.16.0.0/16", "", ""),
            Code::AlreadyExists,
            "pool overlaps with other one on this address space",
        ),
        (
            create("x", "10.123.1.0/24", "", "10.123.2.1"),
            Code::InvalidArgument,
            "no matching subnet for gateway 10.123.2.1",
        ),
        (
            create("x", "10.123.1.0/24", "10.123.2.0/24", ""),
            Code::InvalidArgument,
            "no matching subnet for range 10.123.2.0/24",
        ),
        (
            create("x", "", "10.123.2.0/24", ""),
            Code::InvalidArgument,
            "every ip-range or gateway must have a corresponding subnet",
        ),
        (
            create("x", "", "", "10.123.2.1"),
            Code::InvalidArgument,
            "every ip-range or gateway must have a corresponding subnet",
        ),
        (
            create("x", "10.123.1.0/33", "", ""),
            Code::InvalidArgument,
            "invalid subnet 10.123.1.0/33: invalid CIDR address: 10.123.1.0/33",
        ),
        (
            create("x", "300.1.1.0/24", "", ""),
            Code::InvalidArgument,
            "invalid subnet 300.1.1.0/24: invalid CIDR address: 300.1.1.0/24",
        ),
        (
            create("x", "foo", "", ""),
            Code::InvalidArgument,
            "invalid subnet foo: invalid CIDR address: foo",
        ),
        (
            create("x", "10.123.1.0", "", ""),
            Code::InvalidArgument,
            "invalid subnet 10.123.1.0: invalid CIDR address: 10.123.1.0",
        ),
        (
            create("x", "10.123.1.0/24", "10.123.1.0/40", ""),
            Code::InvalidArgument,
            "invalid ip-range 10.123.1.0/40: invalid CIDR address: 10.123.1.0/40",
        ),
        (
            create("x", "10.123.1.0/24", "", "10.123.1.0"),
            Code::AlreadyExists,
            "failed to allocate gateway (10.123.1.0): Address already in use",
        ),
        (
            create("x", "10.123.1.0/24", "", "10.123.1.255"),
            Code::AlreadyExists,
            "failed to allocate gateway (10.123.1.255): Address already in use",
        ),
        (create("x", "10.123.1.0/31", "", ""), Code::InvalidArgument, "is too small"),
        (
            create("x", "fd00::/64", "", ""),
            Code::InvalidArgument,
            "IPv6 subnets are not supported yet",
        ),
        (
            create("lab", "172.16.1.0/16", "", ""),
            Code::AlreadyExists,
            "pool lab already exists with different parameters",
        ),
        (
            create("", "10.1.0.0/16", "", ""),
            Code::InvalidArgument,
            "invalid pool id \"\": must not be empty",
        ),
        (create("a/b", "10.1.0.0/16", "", ""), Code::InvalidArgument, "must not contain '/'"),
    ];
    for (request, code, message) in create_cases {
        let status = client.create_pool(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
        assert!(status.message().contains(message), "{request:?}: {status:?}");
    }
    let mut bad_exclude = create("x", "", "", "");
    bad_exclude.exclude = vec!["bogus".into()];
    let status = client.create_pool(bad_exclude).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let long_owner = "o".repeat(257);
    let allocate_cases = [
        (allocate("lab", "s1", "172.16.1.0"), Code::AlreadyExists, "Address already in use"),
        (allocate("lab", "s1", "172.16.1.1"), Code::AlreadyExists, "Address already in use"),
        (
            allocate("lab", "s1", "10.9.9.9"),
            Code::InvalidArgument,
            "Invalid address 10.9.9.9: It does not belong to any of this network's subnets",
        ),
        (
            allocate("lab", "s1", "300.1.1.1"),
            Code::InvalidArgument,
            "invalid IPv4 address: 300.1.1.1",
        ),
        (
            allocate("lab", "centos1", "172.16.1.9"),
            Code::AlreadyExists,
            "owner centos1 already holds 172.16.1.0 in pool lab",
        ),
        (allocate("lab", "", ""), Code::InvalidArgument, "invalid owner \"\": must not be empty"),
        (
            allocate("lab", "a\u{7}b", ""),
            Code::InvalidArgument,
            "must not contain control characters",
        ),
        (allocate("lab", &long_owner, ""), Code::InvalidArgument, "must be at most 256 bytes long"),
        (allocate("nope", "c1", ""), Code::NotFound, "pool nope not found"),
        (
            allocate("small", "c6", ""),
            Code::ResourceExhausted,
            "no available IPv4 addresses on this network's address pools: small",
        ),
    ];
    for (request, code, message) in allocate_cases {
        let status = client.allocate(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
        assert!(status.message().contains(message), "{request:?}: {status:?}");
    }

    let status = client.get_pool(GetPoolRequest { id: "nope".into() }).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::NotFound, "pool nope not found"));
    let list = ListAllocationsRequest { pool_id: "nope".into() };
    assert_eq!(client.list_allocations(list).await.unwrap_err().code(), Code::NotFound);

    let delete = DeletePoolRequest { id: "small".into(), force: false };
    let status = client.delete_pool(delete).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::FailedPrecondition, "pool small still has 5 allocations")
    );
    client.delete_pool(DeletePoolRequest { id: "small".into(), force: true }).await.unwrap();
    client.delete_pool(DeletePoolRequest { id: "small".into(), force: false }).await.unwrap();
    let release = ReleaseRequest { pool_id: "small".into(), owner: "c1".into() };
    assert_eq!(client.release(release).await.unwrap().into_inner().address, "");
    assert_eq!(
        client.get_pool(GetPoolRequest { id: "small".into() }).await.unwrap_err().code(),
        Code::NotFound
    );

    // Default pools run out: 15 /16s and 16 /20s.
    for index in 0..31 {
        client.create_pool(create(&format!("auto{index}"), "", "", "")).await.unwrap();
    }
    let status = client.create_pool(create("auto31", "", "", "")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("could not find an available, non-overlapping IPv4 address pool")
    );

    drop(client);
    service.stop().await;
}

#[tokio::test]
async fn health_is_serving() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path()).await;
    let mut health = HealthClient::new(service.channel());
    for name in ["", "cnet.ipam.v1.Ipam"] {
        let request = HealthCheckRequest { service: name.into() };
        let response = health.check(request).await.unwrap().into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{name:?}");
    }
    drop(health);
    service.stop().await;
}
