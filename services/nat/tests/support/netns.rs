//! Throwaway network namespaces for the tests: [`isolated`] runs a test on a thread that
//! unshared its network namespace (so every iptables rule, sysctl, bridge and listener
//! it makes dies with it), and [`Netns`] is a further namespace held by an
//! `unshare -n sleep` child, for "containers" and an outside client. Helpers run a
//! closure, a TCP exchange or a UDP question inside such a namespace.

#![allow(dead_code)]

use std::{
    future::Future,
    io::{self, Read, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::sched::{CloneFlags, setns, unshare};

fn own_netns() -> PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").expect("read own netns")
}

/// Panics unless the calling thread is in a network namespace other than the one the
/// test process started in (its main thread's, which never moves), so no helper can ever
/// touch the host's firewall or interfaces.
pub fn assert_isolated() {
    let host = std::fs::read_link("/proc/self/ns/net").expect("read the main thread's netns");
    assert_ne!(own_netns(), host, "refusing to run outside a throwaway network namespace");
}

/// Runs `test` with a fresh temp dir on a thread in a new network namespace with `lo` up.
/// Every thread the test's runtime starts inherits the namespace.
pub fn isolated<F, Fut>(test: F)
where
    F: FnOnce(PathBuf) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_owned();
    let result = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET): these tests must run as root");
        assert_isolated();
        sh("ip link set lo up");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(test(root));
        runtime.shutdown_timeout(Duration::from_secs(5));
    })
    .join();
    drop(dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Runs a shell script in the current (isolated) namespace; panics on failure.
pub fn sh(script: &str) -> String {
    assert_isolated();
    let output = Command::new("sh").args(["-ec", script]).output().expect("run sh");
    assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The lines of `iptables-save` that mention cnet's chains, comments and counters left
/// out, in order.
pub fn cnet_rules() -> Vec<String> {
    sh("iptables-save")
        .lines()
        .filter(|line| line.contains("CNET") || line.starts_with('*'))
        .map(|line| match line.strip_prefix(':') {
            Some(chain) => format!(":{}", chain.split_whitespace().next().unwrap()),
            None => line.to_owned(),
        })
        .collect()
}

/// A namespace held by an `unshare -n sleep` child; dropping it kills the child.
pub struct Netns {
    child: Child,
    pub path: String,
}

impl Netns {
    pub fn new() -> Self {
        assert_isolated();
        let child = Command::new("unshare")
            .args(["-n", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let path = format!("/proc/{}/ns/net", child.id());
        let ours = own_netns();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(&path).ok().is_none_or(|theirs| theirs == ours) {
            assert!(Instant::now() < deadline, "unshare -n did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        let netns = Netns { child, path };
        netns.sh("ip link set lo up");
        netns
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs a shell script inside this namespace.
    pub fn sh(&self, script: &str) -> String {
        let net = format!("--net={}", self.path);
        let output = Command::new("nsenter")
            .args([net.as_str(), "sh", "-ec", script])
            .output()
            .expect("run nsenter");
        assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// Runs `work` on a thread inside this namespace.
    pub fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(Some(&self.path), work)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `work` on a thread inside the namespace at `path` (or the caller's if None).
pub fn in_netns<T: Send + 'static>(
    path: Option<&str>,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let file = path.map(|path| std::fs::File::open(path).expect("open netns"));
    std::thread::spawn(move || {
        if let Some(file) = file {
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
        }
        work()
    })
    .join()
    .expect("netns thread")
}

/// Connects to `address`, sends `request`, half-closes and reads the reply.
pub fn tcp_exchange(address: SocketAddr, request: &str, timeout: Duration) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(request.as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Sends `question` to `address` over UDP and waits for one answer.
pub fn udp_ask(address: SocketAddr, question: &str, timeout: Duration) -> io::Result<String> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_read_timeout(Some(timeout))?;
    socket.connect(address)?;
    socket.send(question.as_bytes())?;
    let mut buffer = [0u8; 1500];
    let length = socket.recv(&mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer[..length]).into_owned())
}
