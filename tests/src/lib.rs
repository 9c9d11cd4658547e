//! A throwaway cnet cluster for end-to-end tests.
//!
//! Each [`Cluster`] lives in namespaces of its own, held by `unshare --net --mount --pid
//! --fork sleep infinity`: a network namespace that plays the host (so bridges, veths and
//! routes never touch the real host), a private mount namespace (so namespace bind
//! mounts vanish with it) and a pid namespace whose init is the `sleep`, so that killing
//! it kills every service and container the test started. Commands run inside with
//! `nsenter`, each under `timeout`. Runtime and state dirs are a fresh temp dir.
//!
//! The service binaries come from the cargo target dir (build them first with
//! `cargo build --workspace --bins`) or from `CNET_BIN_DIR`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use cnet_proto::gateway::v1::{
    self as api, container_service_client::ContainerServiceClient,
    network_service_client::NetworkServiceClient,
};
use tonic::transport::Channel;

/// The directory holding `cnet`, `cnet-gateway`, ...
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CNET_BIN_DIR") {
        return dir.into();
    }
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
    assert!(
        dir.join("cnet").exists() && dir.join("cnet-gateway").exists(),
        "cnet binaries not found in {}: run `cargo build --workspace --bins` first or set CNET_BIN_DIR",
        dir.display()
    );
    dir
}

/// What every test cluster's hosts service reads as the host's resolv.conf.
pub const HOST_RESOLV_CONF: &str = "nameserver 10.255.255.53\nsearch lab.test\n";

pub struct Cluster {
    holder: Child,
    /// Host pid of the namespaces' init (`sleep`).
    pub ns_pid: u32,
    pub dir: tempfile::TempDir,
    bins: PathBuf,
    /// Processes a test started in the namespaces (killed and reaped on drop).
    background: std::sync::Mutex<Vec<Child>>,
    /// Extra environment for every command, hence for the services `cnet up` starts.
    env: Vec<(String, String)>,
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Stdout, after asserting success.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self.stdout
    }

    /// Stderr, after asserting failure.
    #[track_caller]
    pub fn err(self) -> String {
        assert_ne!(self.code, 0, "command should have failed: {self:#?}");
        self.stderr
    }
}

impl Cluster {
    /// Namespaces and dirs only; no service running yet.
    pub fn bare() -> Self {
        let dir = tempfile::Builder::new().prefix("cnet-test-").tempdir().expect("temp dir");
        let holder = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
            ])
            .args(["sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare (util-linux)");
        let ns_pid = wait_for_child(holder.id());
        let cluster = Self {
            holder,
            ns_pid,
            dir,
            bins: bin_dir(),
            background: Default::default(),
            env: Vec::new(),
        };
        // The dns service forwards to the servers in this file, never to the real host's:
        // tests run their own upstream on 127.0.0.1 (see `upstream_dns`).
        std::fs::write(cluster.upstream_resolv_conf(), "nameserver 127.0.0.1\n")
            .expect("resolv.conf");
        // The "host's" resolv.conf that containers on the default bridge copy (FILE-3).
        std::fs::write(cluster.host_resolv_conf(), HOST_RESOLV_CONF).expect("resolv.conf");
        cluster.sh("ip link set lo up").ok();
        cluster
    }

    /// A cluster with every service up (`cnet up -d`).
    pub fn start() -> Self {
        let cluster = Self::bare();
        cluster.up();
        cluster
    }

    /// Like [`Cluster::start`], with `env` set for every command, e.g. to configure the
    /// services' telemetry.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let cluster = Self::bare().with_env(env);
        cluster.up();
        cluster
    }

    /// Sets `env` for every later command (and so for services started afterwards).
    pub fn with_env(mut self, env: &[(&str, &str)]) -> Self {
        self.env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    pub fn up(&self) {
        self.cnet(&["up", "-d"]).ok();
    }

    /// The resolv.conf the cluster's hosts service treats as the host's.
    pub fn host_resolv_conf(&self) -> PathBuf {
        self.dir.path().join("host-resolv.conf")
    }

    /// The resolv.conf the cluster's dns service forwards by.
    pub fn upstream_resolv_conf(&self) -> PathBuf {
        self.dir.path().join("upstream-resolv.conf")
    }

    /// Starts a stand-in upstream DNS server on 127.0.0.1:53 in the cluster's "host"
    /// namespace, answering `records` ("name=ip"), SERVFAIL for `servfail*` and NXDOMAIN
    /// otherwise. Returns the file where it logs each question it receives.
    pub fn upstream_dns(&self, records: &[&str]) -> PathBuf {
        let log = self.dir.path().join("upstream.log");
        std::fs::write(&log, "").expect("upstream log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/upstream_dns.py");
        let mut args = vec![script.display().to_string(), "127.0.0.1".into(), "53".into()];
        args.push(log.display().to_string());
        args.extend(records.iter().map(|r| r.to_string()));
        self.spawn_background("python3", &args);
        eventually("the upstream DNS server to listen", 10, || {
            let listening = self.sh("ss -lun | grep -q '127.0.0.1:53 '").code == 0;
            listening.then_some(())
        });
        log
    }

    /// Starts `program ARGS` in the cluster's "host" namespace and leaves it running
    /// until the cluster goes.
    pub fn spawn_background(&self, program: &str, args: &[String]) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut command = self.command(Path::new(program), &args, 3600);
        let child = command.stdout(Stdio::null()).spawn().expect("start a background process");
        self.background.lock().expect("background list").push(child);
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn command(&self, program: &Path, args: &[&str], seconds: u64) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args(["--target", &self.ns_pid.to_string(), "--net", "--mount", "--pid", "--"])
            .args(["timeout", "--kill-after=5", &seconds.to_string()])
            .arg(program)
            .args(args)
            .env("CNET_RUNTIME_DIR", self.runtime_dir())
            .env("CNET_STATE_DIR", self.state_dir())
            .env("CNET_DNS__RESOLV_CONF", self.upstream_resolv_conf())
            .env("CNET_HOSTS__HOST_RESOLV_CONF", self.host_resolv_conf())
            .env_remove("CNET_HOST")
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null());
        command
    }

    /// Runs `cnet ARGS` inside the cluster's namespaces.
    pub fn cnet(&self, args: &[&str]) -> Run {
        let program = self.bins.join("cnet");
        Run::from(self.command(&program, args, 120).output().expect("run cnet"))
    }

    /// Runs a shell command in the cluster's "host" namespace.
    pub fn sh(&self, script: &str) -> Run {
        Run::from(self.command(Path::new("/bin/sh"), &["-c", script], 60).output().expect("run sh"))
    }

    /// The seed lab's `vswitch01` (step 2): 172.16.1.0/16, range 172.16.1.0/24, gateway .1.
    pub fn lab_network(&self) {
        self.cnet(&[
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            "172.16.1.0/16",
            "--ip-range",
            "172.16.1.0/24",
            "--gateway",
            "172.16.1.1",
            "vswitch01",
        ])
        .ok();
    }

    /// The lab's network with centos1 (172.16.1.0) and centos2 (172.16.1.2) on it.
    pub fn lab(&self) {
        self.lab_network();
        for name in ["centos1", "centos2"] {
            self.cnet(&["run", "-d", "--name", name, "--hostname", name, "--network", "vswitch01"])
                .ok();
        }
    }

    /// The last lines of a service's log (`cnet-up` for the supervisor), for failure messages.
    pub fn log_tail(&self, service: &str) -> String {
        let path = self.state_dir().join("logs").join(format!("{service}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `cnet inspect NAME` as JSON.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.cnet(&["inspect", name]).ok();
        let mut list: Vec<serde_json::Value> =
            serde_json::from_str(&out).expect("inspect prints JSON");
        list.remove(0)
    }

    /// Gateway address for gRPC clients in the test process (a Unix socket path works
    /// across network namespaces).
    pub fn gateway_target(&self) -> String {
        format!("unix://{}", self.runtime_dir().join("gateway.sock").display())
    }

    pub fn service_target(&self, service: &str) -> String {
        format!("unix://{}", self.runtime_dir().join(format!("{service}.sock")).display())
    }

    /// Host pids of the live processes in this cluster whose command name is `name`.
    pub fn pids_of(&self, name: &str) -> Vec<u32> {
        let own_ns = std::fs::read_link(format!("/proc/{}/ns/pid", self.ns_pid)).ok();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
            // Zombies are dead already; the namespace's init (`sleep`) never reaps them.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
            if comm.trim() == name && !zombie && ns.is_some() && ns == own_ns {
                pids.push(pid);
            }
        }
        pids
    }

    /// `kill -9` every process named `name` in the cluster.
    pub fn kill9(&self, name: &str) -> usize {
        self.kill9_all(&[name])
    }

    /// `kill -9` every process with one of `names`, found first and killed together.
    pub fn kill9_all(&self, names: &[&str]) -> usize {
        let pids: Vec<u32> = names.iter().flat_map(|name| self.pids_of(name)).collect();
        for pid in &pids {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        pids.len()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::env::var_os("CNET_TEST_KEEP").is_some() {
            eprintln!("keeping cluster: ns pid {}, dir {}", self.ns_pid, self.dir.path().display());
            return;
        }
        // Killing the pid namespace's init kills everything inside; the network and
        // mount namespaces (with their bridges, veths and mounts) go with the last process.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.ns_pid as i32, libc::SIGKILL) };
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        for mut child in
            self.background.lock().map(|mut list| std::mem::take(&mut *list)).unwrap_or_default()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for the first child of `pid` (the process `unshare --fork` starts).
fn wait_for_child(pid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(child) = children.split_whitespace().next().and_then(|s| s.parse().ok()) {
            return child;
        }
        assert!(Instant::now() < deadline, "unshare did not start its child");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `seconds`.
#[track_caller]
pub fn eventually<T>(what: &str, seconds: u64, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// gRPC clients of a cluster's gateway, for tests that check structured answers.
pub struct Api {
    runtime: tokio::runtime::Runtime,
    pub networks: NetworkServiceClient<Channel>,
    pub containers: ContainerServiceClient<Channel>,
}

impl Api {
    pub fn block<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    /// Enters the runtime, e.g. to make more channels for other services.
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.runtime.enter()
    }

    #[track_caller]
    pub fn network(&self, name: &str) -> api::Network {
        let mut client = self.networks.clone();
        let request = api::InspectNetworkRequest { network: name.into() };
        self.block(client.inspect_network(request)).expect("inspect network").into_inner()
    }

    #[track_caller]
    pub fn container(&self, name: &str) -> api::Container {
        let mut client = self.containers.clone();
        let request = api::InspectContainerRequest { container: name.into() };
        self.block(client.inspect_container(request)).expect("inspect container").into_inner()
    }

    /// The address (no prefix) a container holds on `network`, empty if none.
    #[track_caller]
    pub fn ip(&self, container: &str, network: &str) -> String {
        let container = self.container(container);
        container.networks.get(network).map(|e| e.ip_address.clone()).unwrap_or_default()
    }
}

impl Cluster {
    pub fn api(&self) -> Api {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let channel = {
            let _entered = runtime.enter();
            cnet_common::client::channel(&self.gateway_target()).expect("gateway address")
        };
        Api {
            runtime,
            networks: NetworkServiceClient::new(channel.clone()),
            containers: ContainerServiceClient::new(channel),
        }
    }
}
