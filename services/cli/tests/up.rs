//! `cnet up -d`, `cnet up` again and `cnet down` through the real binary, with shell
//! scripts as the services and this test process answering the gateway's health check
//! on `<runtime_dir>/gateway.sock`. No root needed.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

const PATIENCE: Duration = Duration::from_secs(30);

struct Cluster {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    runtime: PathBuf,
    state: PathBuf,
}

impl Cluster {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (bin, runtime, state) =
            (dir.path().join("bin"), dir.path().join("run"), dir.path().join("state"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&runtime).unwrap();
        Self { _dir: dir, bin, runtime, state }
    }

    fn service(&self, name: &str, body: &str) {
        let path = self.bin.join(name);
        let script = format!("#!/bin/sh\necho $$ > \"$CNET_STATE_DIR/{name}.pid\"\n{body}\n");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn cnet(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cnet"))
            .env_remove("CNET_HOST")
            .arg("--runtime-dir")
            .arg(&self.runtime)
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .output()
            .unwrap()
    }

    fn pid_of(&self, file: &str) -> Option<i32> {
        std::fs::read_to_string(self.state.join(file)).ok()?.trim().parse().ok()
    }
}

impl Drop for Cluster {
    /// A failed test must not leave a supervisor and its services behind.
    fn drop(&mut self) {
        let _ = self.cnet(&["down"]);
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    exists && !zombie
}

fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Answers grpc.health.v1 with SERVING for "" on `socket`, as the real gateway does.
fn fake_gateway_health(socket: &Path) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime.block_on(async { UnixListener::bind(socket) }).unwrap();
    runtime.spawn(async move {
        let (_reporter, service) = tonic_health::server::health_reporter();
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await
    });
    runtime
}

#[test]
fn up_detached_supervises_and_down_stops_everything() {
    let cluster = Cluster::new();
    cluster.service("cnet-ipam", "exec sleep 100");
    // Crashes at once, every time: the supervisor must keep restarting it.
    cluster.service("cnet-bridge", "echo run >> \"$CNET_STATE_DIR/bridge-runs\"; exit 1");
    cluster.service("cnet-gateway", "exec sleep 100");
    let _health = fake_gateway_health(&cluster.runtime.join("gateway.sock"));

    let up = cluster.cnet(&["up", "-d", "--bin-dir", cluster.bin.to_str().unwrap()]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    let socket = cluster.runtime.join("gateway.sock");
    assert_eq!(text(&up.stdout), format!("cnet is up (gateway: unix://{})\n", socket.display()));

    let supervisor = cluster_pid(&cluster.runtime.join("cnet-up.pid"));
    assert!(alive(supervisor));
    wait_for("the services", || {
        ["cnet-ipam.pid", "cnet-gateway.pid"].iter().all(|f| cluster.pid_of(f).is_some_and(alive))
    });
    wait_for("bridge restarts", || {
        let runs = std::fs::read_to_string(cluster.state.join("bridge-runs")).unwrap_or_default();
        runs.lines().count() >= 3
    });
    let services =
        [cluster.pid_of("cnet-ipam.pid").unwrap(), cluster.pid_of("cnet-gateway.pid").unwrap()];

    let again = cluster.cnet(&["up", "-d", "--bin-dir", cluster.bin.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(text(&again.stderr), format!("Error: cnet is already running (pid {supervisor})\n"));

    let down = cluster.cnet(&["down"]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert_eq!(text(&down.stdout), "cnet is down\n");
    assert!(!cluster.runtime.join("cnet-up.pid").exists());
    wait_for("the supervisor to go", || !alive(supervisor));
    for pid in services {
        wait_for("the services to go", || !alive(pid));
    }
    let log = std::fs::read_to_string(cluster.state.join("logs/cnet-up.log")).unwrap();
    assert!(log.contains("restarting after backoff"), "{log}");
    assert!(cluster.state.join("logs/gateway.log").exists());

    let down = cluster.cnet(&["down"]);
    assert!(down.status.success());
    assert_eq!(text(&down.stdout), "cnet is not running\n");
}

fn cluster_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

#[test]
fn up_without_the_services_fails_clearly() {
    let cluster = Cluster::new();
    cluster.service("cnet-ipam", "exec sleep 100");
    let up = cluster.cnet(&["up", "-d", "--bin-dir", cluster.bin.to_str().unwrap()]);
    assert_eq!(up.status.code(), Some(1));
    let expected = format!(
        "Error: cannot find cnet-bridge, cnet-gateway in {} (build the services, or point \
         --bin-dir at them)\n",
        cluster.bin.display()
    );
    assert_eq!(text(&up.stderr), expected);
}
