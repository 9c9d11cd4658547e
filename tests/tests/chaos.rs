//! The fault test (bounded in time): containers are run, connected and removed from
//! several threads while a chaos loop `kill -9`s a random service again and again. After
//! a settle, nothing is lost, leaked or duplicated: every running container holds its
//! own addresses and answers by address and by name, every kernel object has an owner,
//! and `cnet system check` finds no drift.

use std::{
    collections::HashSet,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use cnet_tests::{Cluster, eventually};

const SERVICES: &[&str] =
    &["cnet-ipam", "cnet-bridge", "cnet-nat", "cnet-dns", "cnet-hosts", "cnet-gateway"];
const CONTAINERS: usize = 200;
const WORKERS: usize = 4;

#[test]
fn kill_9_under_load_loses_leaks_and_duplicates_nothing() {
    let cluster = Cluster::start();
    cluster.lab_network();
    cluster.cnet(&["network", "create", "--subnet", "10.77.0.0/24", "side"]).ok();
    let created = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let kills = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(240);

    std::thread::scope(|scope| {
        for worker in 0..WORKERS {
            let (cluster, created) = (&cluster, &created);
            scope.spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let n = created.fetch_add(1, Ordering::SeqCst);
                    if n >= CONTAINERS || Instant::now() > deadline {
                        break;
                    }
                    let name = format!("c{n}");
                    // Failures while a service restarts are fine; what they leave is not.
                    if cluster.cnet(&["run", "-d", "--name", &name, "--network", "vswitch01"]).code
                        == 0
                    {
                        mine.push(name.clone());
                        if n % 3 == 0 {
                            cluster.cnet(&["network", "connect", "side", &name]);
                        }
                    }
                    if n % 4 == worker % 4 && mine.len() > 2 {
                        let victim = mine.remove(0);
                        cluster.cnet(&["rm", "-f", &victim]);
                    }
                }
            });
        }
        let (cluster, done, kills) = (&cluster, &done, &kills);
        scope.spawn(move || {
            let mut turn = 0;
            while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(700));
                let service = SERVICES[turn % SERVICES.len()];
                turn += 1;
                if cluster.kill9(service) > 0 {
                    kills.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        // Stop the chaos once the workers are through.
        while created.load(Ordering::SeqCst) < CONTAINERS + WORKERS && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        done.store(true, Ordering::SeqCst);
    });
    assert!(kills.load(Ordering::SeqCst) >= 6, "the chaos loop killed services");

    // Settle: every service back and serving.
    let settled = Instant::now() + Duration::from_secs(60);
    while !SERVICES.iter().all(|s| cluster.pids_of(s).len() == 1) {
        if Instant::now() > settled {
            let state: Vec<_> = SERVICES.iter().map(|s| (s, cluster.pids_of(s))).collect();
            panic!("services did not come back: {state:?}\n{}", cluster.log_tail("cnet-up"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eventually("the gateway to answer", 60, || (cluster.cnet(&["ps"]).code == 0).then_some(()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let check = loop {
        let check = cluster.cnet(&["system", "check"]);
        if check.code == 0 {
            break check.stdout;
        }
        assert!(
            Instant::now() < deadline,
            "no clean system check within 60 s; the last one:\n{}{}\ngateway log:\n{}",
            check.stdout,
            check.stderr,
            cluster.log_tail("cnet-gateway")
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(check.contains("no drift"), "{check}");

    // No address held twice; every veth has an owner.
    let api = cluster.api();
    let containers = api.block(
        api.containers
            .clone()
            .list_containers(cnet_proto::gateway::v1::ListContainersRequest { all: false }),
    );
    let running = containers.expect("list containers").into_inner().containers;
    assert!(running.len() > 20, "enough containers survived to check: {}", running.len());
    let mut addresses = HashSet::new();
    let mut endpoints = 0;
    for container in &running {
        for endpoint in container.networks.values() {
            assert!(!endpoint.ip_address.is_empty(), "{} lacks an address", container.name);
            let key = (endpoint.network_id.clone(), endpoint.ip_address.clone());
            assert!(addresses.insert(key), "{} is held twice", endpoint.ip_address);
            endpoints += 1;
        }
    }
    let veths = cluster.sh("ip -o link show type veth").ok().lines().count();
    assert_eq!(veths, endpoints, "one veth per endpoint, none without an owner");

    // Every running container answers by address and by name.
    cluster.cnet(&["run", "-d", "--name", "probe", "--network", "vswitch01"]).ok();
    for container in &running {
        let Some(endpoint) = container.networks.get("vswitch01") else { continue };
        cluster.cnet(&["exec", "probe", "--", "ping", "-c1", "-W2", &endpoint.ip_address]).ok();
        let name = cluster.cnet(&["exec", "probe", "--", "getent", "hosts", &container.name]).ok();
        assert!(
            name.starts_with(&format!("{} ", endpoint.ip_address)),
            "{}: {name}",
            container.name
        );
    }
}
