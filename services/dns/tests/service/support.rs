//! The harness of the service tests: isolation in fresh network and mount namespaces,
//! sandboxes (namespace files with `lo` up) and the service in-process on a Unix socket.

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::Command,
    sync::Once,
    time::Duration,
};

use cnet_common::{config::ServerConfig, server::Listeners, store::Store};
use cnet_dns::{Config, SERVICE};
use cnet_proto::dns::v1::{self as pb, dns_client::DnsClient};
use nix::{
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, setns, unshare},
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt().with_test_writer().with_env_filter("debug").init();
        }
    });
}

/// Runs `test` with a fresh root dir (a tmpfs) inside new network and mount namespaces,
/// with `lo` up so that fake upstreams can listen on 127.0.0.1.
pub fn isolated<F, Fut>(test: F)
where
    F: FnOnce(PathBuf) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    init_tracing();
    let outer = tempfile::tempdir().expect("tempdir");
    let root = outer.path().to_owned();
    let result = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)
            .expect("unshare(CLONE_NEWNET | CLONE_NEWNS): these tests must run as root");
        // Nothing mounted from here on may leak to the host's mount namespace.
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
            .expect("make / private");
        mount(Some("tmpfs"), &root, Some("tmpfs"), MsFlags::empty(), None::<&str>)
            .expect("mount tmpfs");
        loopback_up();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(test(root));
        runtime.shutdown_timeout(Duration::from_secs(5));
    })
    .join();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// `ip link set lo up` in the calling thread's network namespace (a child process starts
/// in the namespaces of the thread that forks it).
fn loopback_up() {
    let output = Command::new("ip").args(["link", "set", "lo", "up"]).output().expect("run ip");
    assert!(output.status.success(), "ip link set lo up: {output:?}");
}

/// Runs `work` on a new OS thread that enters the namespace at `netns` first.
pub fn in_netns<T: Send + 'static>(netns: &Path, work: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(netns).expect("open netns");
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
        work()
    })
    .join()
    .expect("thread in netns")
}

/// A network namespace kept alive by a bind mount at `<root>/netns/<name>`, `lo` up:
/// what the bridge agent makes for a container.
pub fn sandbox(root: &Path, name: &str) -> PathBuf {
    let dir = root.join("netns");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap();
    let target = path.clone();
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare netns");
        loopback_up();
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind-mount netns");
    })
    .join()
    .expect("sandbox thread");
    path
}

/// Ends a sandbox: its namespace goes away with the last reference.
pub fn remove_sandbox(path: &Path) {
    umount2(path, MntFlags::MNT_DETACH).expect("umount netns");
    std::fs::remove_file(path).expect("remove netns file");
}

/// One run of the service; its state lives under `root`, so a second start on the same
/// root is a restart.
pub struct Service {
    pub client: DnsClient<Channel>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), cnet_dns::Error>>,
}

pub fn config(root: &Path) -> Config {
    let server = ServerConfig {
        runtime_dir: root.join("run"),
        state_dir: root.join("state"),
        ..ServerConfig::default()
    };
    Config { server, resolv_conf: root.join("resolv.conf"), cache_size: 64, ..Config::default() }
}

/// Opens the store, waiting a little while it is still locked: the tasks of a service
/// stopped in this process may hold it for a moment after `stop` returns (a real restart
/// is a new process, whose predecessor's lock the kernel drops when it exits).
async fn open_store(dir: &Path) -> Store {
    let mut attempts = 0;
    loop {
        match Store::open(dir) {
            Ok(store) => return store,
            Err(error) if attempts < 50 && error.to_string().contains("could not acquire lock") => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(error) => panic!("open store: {error}"),
        }
    }
}

impl Service {
    pub async fn start(config: Config) -> Service {
        let store = open_store(&config.server.store_dir(SERVICE)).await;
        let listeners = Listeners::bind(SERVICE, &config.server).await.expect("bind");
        let socket = config.server.socket_path(SERVICE);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            cnet_dns::run(&config, store, listeners, async {
                let _ = stopped.await;
            })
            .await
        });
        let channel =
            cnet_common::client::channel(&format!("unix://{}", socket.display())).expect("channel");
        let mut client = DnsClient::new(channel);
        // gRPC is served only once every stored container's listener is back, so the
        // first answered request means the service is ready.
        let ready = client.list_containers(pb::ListContainersRequest {});
        tokio::time::timeout(Duration::from_secs(10), ready)
            .await
            .expect("service ready in time")
            .expect("service answers");
        Service { client, stop, task }
    }

    /// Stops the service and waits until it has let go of its store and sockets.
    pub async fn stop(self) {
        drop(self.client);
        let _ = self.stop.send(());
        self.task.await.expect("service task").expect("service stopped cleanly");
    }
}

/// The real `cnet-dns` binary, started in the test's namespaces (a child process starts
/// in the namespaces of the thread that spawns it). Killed with SIGKILL when dropped.
pub struct Process {
    pub client: DnsClient<Channel>,
    child: std::process::Child,
}

impl Process {
    pub async fn start(root: &Path) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cnet-dns"));
        command
            .arg("--runtime-dir")
            .arg(root.join("run"))
            .arg("--state-dir")
            .arg(root.join("state"))
            .env("CNET_DNS__RESOLV_CONF", root.join("resolv.conf"))
            .env("RUST_LOG", if std::env::var_os("TEST_LOG").is_some() { "debug" } else { "warn" });
        let child = command.spawn().expect("start cnet-dns");
        let socket = root.join("run").join(format!("{SERVICE}.sock"));
        let channel =
            cnet_common::client::channel(&format!("unix://{}", socket.display())).expect("channel");
        let mut client = DnsClient::new(channel);
        let started = std::time::Instant::now();
        while client.list_containers(pb::ListContainersRequest {}).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "cnet-dns did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Process { client, child }
    }

    /// `kill -9`: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().expect("kill cnet-dns");
        self.child.wait().expect("reap cnet-dns");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 64-hex container id made of `n`.
pub fn container_id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

pub fn endpoint(network: &str, address: &str, aliases: &[&str]) -> pb::Endpoint {
    pb::Endpoint {
        network_id: format!("{network}-id"),
        network_name: network.into(),
        address: address.into(),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        internal: false,
    }
}

pub fn registration(
    n: u8,
    name: &str,
    netns: &Path,
    endpoints: Vec<pb::Endpoint>,
) -> pb::RegisterContainerRequest {
    pb::RegisterContainerRequest {
        container_id: container_id(n),
        name: name.into(),
        netns_path: netns.to_string_lossy().into_owned(),
        endpoints,
        ..Default::default()
    }
}
