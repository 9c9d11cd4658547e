//! `cnet up` and `cnet down`: run the cluster's services on this host under the
//! [`Supervisor`], in the foreground or detached, and stop it again. `down` stops only
//! the services: containers keep running, and the next `up` picks them up again.

use std::{
    fs::OpenOptions,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction},
    unistd::Pid,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::print;
use crate::{
    cli::{GlobalArgs, UpArgs},
    supervisor::{
        Policy, Service, Supervisor,
        pidfile::{self, PidFile},
    },
};

/// Start order: the backing services first, the gateway (their only client) last.
/// Services whose binary is missing are skipped, except these.
const SERVICES: [&str; 6] = ["ipam", "bridge", "nat", "dns", "hosts", "gateway"];
const REQUIRED: [&str; 3] = ["ipam", "bridge", "gateway"];

const UP_TIMEOUT: Duration = Duration::from_secs(60);
const DOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of each log shown when `up -d` fails.
const TAIL_LINES: usize = 15;

pub fn up(global: &GlobalArgs, args: &UpArgs) -> anyhow::Result<i32> {
    let pid_path = pid_path(global);
    if let Some(pid) = pidfile::running(&pid_path) {
        anyhow::bail!("cnet is already running (pid {pid})");
    }
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => own_dir()?,
    };
    let services = services(&bin_dir, global)?;
    if args.detach { detach(global, &bin_dir) } else { foreground(global, services, &pid_path) }
}

pub fn down(global: &GlobalArgs) -> anyhow::Result<i32> {
    let pid_path = pid_path(global);
    let Some(pid) = pidfile::running(&pid_path) else {
        pidfile::remove(&pid_path)?;
        print("cnet is not running\n")?;
        return Ok(0);
    };
    let supervisor = Pid::from_raw(pid);
    kill(supervisor, Signal::SIGTERM)?;
    if !wait_for_exit(pid, DOWN_TIMEOUT) {
        tracing::warn!(pid, "cnet up did not stop in time, killing it");
        let _ = kill(supervisor, Signal::SIGKILL);
        wait_for_exit(pid, Duration::from_secs(5));
    }
    pidfile::remove(&pid_path)?;
    print("cnet is down\n")?;
    Ok(0)
}

fn pid_path(global: &GlobalArgs) -> PathBuf {
    global.runtime_dir.join("cnet-up.pid")
}

fn logs_dir(global: &GlobalArgs) -> PathBuf {
    global.state_dir.join("logs")
}

/// The service binaries are installed next to `cnet` itself.
fn own_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// The services found in `bin_dir`, in start order, each told where the cluster lives.
pub fn services(bin_dir: &Path, global: &GlobalArgs) -> anyhow::Result<Vec<Service>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in SERVICES {
        let program = bin_dir.join(format!("cnet-{name}"));
        if is_executable(&program) {
            found.push(Service {
                name: name.to_owned(),
                program,
                args: Vec::new(),
                env: vec![
                    ("CNET_RUNTIME_DIR".into(), global.runtime_dir.display().to_string()),
                    ("CNET_STATE_DIR".into(), global.state_dir.display().to_string()),
                ],
                log_file: logs_dir(global).join(format!("{name}.log")),
            });
        } else if REQUIRED.contains(&name) {
            missing.push(format!("cnet-{name}"));
        }
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "cannot find {} in {} (build the services, or point --bin-dir at them)",
            missing.join(", "),
            bin_dir.display()
        );
    }
    Ok(found)
}

fn is_executable(path: &Path) -> bool {
    path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Set by SIGINT, SIGTERM or SIGHUP; the supervisor polls it.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn foreground(global: &GlobalArgs, services: Vec<Service>, pid_path: &Path) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&global.runtime_dir)?;
    std::fs::create_dir_all(logs_dir(global))?;
    let _pid_file = PidFile::create(pid_path)?;
    let action =
        SigAction::new(SigHandler::Handler(request_stop), SaFlags::SA_RESTART, SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(signal, &action)? };
    }
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    tracing::info!(services = ?names, logs = %logs_dir(global).display(), "cnet up");
    Supervisor::new(services, Policy::default()).run(&STOP);
    tracing::info!("cnet stopped");
    Ok(0)
}

/// Starts `cnet up` again as a daemon (own session, output to `cnet-up.log`) and
/// returns once the gateway reports SERVING, or fails with the logs' last lines.
fn detach(global: &GlobalArgs, bin_dir: &Path) -> anyhow::Result<i32> {
    let logs = logs_dir(global);
    std::fs::create_dir_all(&logs)?;
    let log = OpenOptions::new().create(true).append(true).open(logs.join("cnet-up.log"))?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("--runtime-dir")
        .arg(&global.runtime_dir)
        .arg("--state-dir")
        .arg(&global.state_dir)
        .args(["up", "--bin-dir"])
        .arg(bin_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is a single async-signal-safe syscall.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()?;
            Ok(())
        })
    };
    let mut daemon = command.spawn()?;
    let target = global.gateway_target();
    let tls = global.client_tls()?;
    match wait_until_up(&target, tls.as_ref(), &pid_path(global), &mut daemon) {
        Ok(()) => {
            print(&format!("cnet is up (gateway: {target})\n"))?;
            Ok(0)
        }
        Err(reason) => {
            // A cluster that did not come up is not left half-running.
            stop_daemon(&mut daemon);
            anyhow::bail!("{reason}{}", log_tails(global))
        }
    }
}

/// Up means: the daemon recorded itself in the pid file (so `down` can find it) and
/// the gateway answers SERVING.
fn wait_until_up(
    target: &str,
    tls: Option<&tonic::transport::ClientTlsConfig>,
    pid_path: &Path,
    daemon: &mut Child,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The channel spawns its connection task, so it is made inside the runtime.
    let _entered = runtime.enter();
    let channel = cnet_common::client::channel_with(target, tls).map_err(|e| e.to_string())?;
    let mut health = HealthClient::new(channel);
    let deadline = Instant::now() + UP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = daemon.try_wait() {
            return Err(format!("cnet up exited before the gateway was serving ({status})"));
        }
        let recorded = pidfile::read(pid_path) == Some(daemon.id() as i32);
        if recorded && runtime.block_on(is_serving(&mut health)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the gateway at {target} did not report SERVING within {}s",
                UP_TIMEOUT.as_secs()
            ));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

async fn is_serving(health: &mut HealthClient<tonic::transport::Channel>) -> bool {
    let request = HealthCheckRequest { service: String::new() };
    let answer = tokio::time::timeout(Duration::from_secs(2), health.check(request)).await;
    matches!(answer, Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32)
}

fn stop_daemon(daemon: &mut Child) {
    if matches!(daemon.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = daemon.id() as i32;
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let deadline = Instant::now() + DOWN_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(daemon.try_wait(), Ok(Some(_))) {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// Waits until `pid` (not our child) is gone. Returns whether it went in time.
fn wait_for_exit(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while pidfile::is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The last lines of the supervisor's log and of every service log, for a failed `up`.
fn log_tails(global: &GlobalArgs) -> String {
    let logs = logs_dir(global);
    let files = std::iter::once("cnet-up".to_owned()).chain(SERVICES.map(String::from));
    let mut text = String::new();
    for name in files {
        let path = logs.join(format!("{name}.log"));
        let Ok(content) = std::fs::read_to_string(&path) else { continue };
        let tail = last_lines(&content, TAIL_LINES);
        if !tail.is_empty() {
            text.push_str(&format!("\n--- {} (last lines) ---\n{tail}", path.display()));
        }
    }
    text
}

pub fn last_lines(text: &str, count: usize) -> &str {
    let trimmed = text.trim_end();
    let start = trimmed.rmatch_indices('\n').nth(count.saturating_sub(1)).map_or(0, |(i, _)| i + 1);
    &trimmed[start..]
}

#[cfg(test)]
mod tests;
