//! The harness of the root tests: isolation in fresh network and mount namespaces, an
//! in-process agent on a Unix socket, `ip -j` views and a one-shot TCP exchange across
//! namespaces (so no ping binary is needed).

use std::{
    future::Future,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::Once,
    time::Duration,
};

use cnet_bridge::{Config, run};
use cnet_common::{config::ServerConfig, server::Listeners, store::Store};
use cnet_proto::bridge::v1::bridge_agent_client::BridgeAgentClient;
use nix::{
    mount::{MsFlags, mount},
    sched::{CloneFlags, setns, unshare},
};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

pub const NETWORK: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const BRIDGE: &str = "br-0123456789ab";

fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt().with_test_writer().with_env_filter("debug").init();
        }
    });
}

/// Runs `test` with a fresh root dir inside new network and mount namespaces.
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

/// One run of the agent in the current namespaces.
pub struct Agent {
    pub client: BridgeAgentClient<Channel>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), cnet_bridge::Error>>,
}

fn config(root: &Path) -> Config {
    let server = ServerConfig {
        runtime_dir: root.join("run"),
        state_dir: root.join("state"),
        ..ServerConfig::default()
    };
    Config { server, netns_dir: None }
}

impl Agent {
    pub async fn start(root: &Path) -> Agent {
        let config = config(root);
        let store = Store::open(&config.server.store_dir("bridge")).expect("open store");
        let listeners = Listeners::bind("bridge", &config.server).await.expect("bind");
        let socket = config.server.socket_path("bridge");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run(&config, store, listeners, async {
                let _ = stopped.await;
            })
            .await
        });
        let channel =
            cnet_common::client::channel(&format!("unix://{}", socket.display())).expect("channel");
        Agent { client: BridgeAgentClient::new(channel), stop, task }
    }

    pub async fn stop(self) {
        drop(self.client);
        let _ = self.stop.send(());
        self.task.await.expect("agent task").expect("agent run");
    }
}

fn run_command(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// `ip -j ARGS` in the test's namespace.
pub fn ip(args: &[&str]) -> Value {
    let out = run_command(Command::new("ip").arg("-j").args(args));
    serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out }).expect("ip json")
}

/// `ip -j ARGS` inside the namespace at `netns`.
pub fn ip_in(netns: &str, args: &[&str]) -> Value {
    let net = format!("--net={netns}");
    let out = run_command(Command::new("nsenter").args([net.as_str(), "ip", "-j"]).args(args));
    serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out }).expect("ip json")
}

pub fn sh(script: &str) {
    run_command(Command::new("sh").args(["-ec", script]));
}

pub fn link_names(links: &Value) -> Vec<String> {
    let mut names: Vec<String> = links
        .as_array()
        .expect("array")
        .iter()
        .map(|link| link["ifname"].as_str().expect("ifname").to_owned())
        .collect();
    names.sort();
    names
}

pub fn addresses(link: &Value) -> Vec<String> {
    link[0]["addr_info"]
        .as_array()
        .map(|infos| {
            infos
                .iter()
                .filter(|info| info["family"] == "inet")
                .map(|info| format!("{}/{}", info["local"].as_str().unwrap(), info["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `work` on a thread inside the namespace at `netns`.
pub fn in_netns<T: Send + 'static>(netns: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(netns).expect("open netns");
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
        work()
    })
    .join()
    .expect("netns thread")
}

/// Serves one TCP connection on `address` inside `netns` (or here when None); returns
/// once listening.
pub fn serve_once(netns: Option<&str>, address: SocketAddr) -> std::thread::JoinHandle<()> {
    let (ready, listening) = std::sync::mpsc::channel();
    let file = netns.map(|netns| std::fs::File::open(netns).expect("open netns"));
    let handle = std::thread::spawn(move || {
        if let Some(file) = file {
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
        }
        let listener = TcpListener::bind(address).expect("bind");
        ready.send(()).unwrap();
        let (mut stream, _) = listener.accept().expect("accept");
        stream.write_all(b"hello").unwrap();
    });
    listening.recv().expect("listener ready");
    handle
}

pub fn fetch_from(netns: &str, address: SocketAddr) -> String {
    in_netns(netns, move || {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connect to {address}: {e}"));
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("read");
        reply
    })
}

/// Namespace files still mounted under `root`.
pub fn nsfs_mounts(root: &Path) -> Vec<String> {
    // findmnt exits 1 when it finds nothing.
    let output = Command::new("findmnt").args(["-rn", "-t", "nsfs", "-o", "TARGET"]).output();
    let output = output.expect("findmnt");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().filter(|target| Path::new(target).starts_with(root)).map(str::to_owned).collect()
}
