//! A small process supervisor for `cnet up`: starts services in order, restarts any that
//! exits with exponential backoff, and stops them in reverse order. It is synchronous on
//! purpose: every child is spawned from the one thread that supervises, which is what
//! makes the parent-death signal (see [`spawn`]) reliable.

pub mod pidfile;

use std::{
    fs::OpenOptions,
    io,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// One supervised program.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Its stdout and stderr are appended here.
    pub log_file: PathBuf,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Delay before the first restart; it doubles with each quick exit.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A service that ran this long before exiting restarts after `initial_backoff`
    /// again: it was healthy, so its next crash is news, not a crash loop.
    pub reset_after: Duration,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub stop_timeout: Duration,
    pub poll_interval: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            reset_after: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(50),
        }
    }
}

/// What the supervisor did, for its log (and for tests, which assert on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started { service: String, pid: u32 },
    SpawnFailed { service: String, error: String },
    Exited { service: String, status: String, uptime: Duration },
    RestartScheduled { service: String, delay: Duration },
    Stopped { service: String, killed: bool },
}

type Observer = Box<dyn FnMut(&Event) + Send>;

pub struct Supervisor {
    slots: Vec<Slot>,
    policy: Policy,
    observer: Observer,
}

struct Slot {
    service: Service,
    child: Option<Child>,
    started: Instant,
    /// The delay the next restart will use.
    backoff: Duration,
    restart_at: Option<Instant>,
}

impl Supervisor {
    /// A supervisor that logs its events on stderr.
    pub fn new(services: Vec<Service>, policy: Policy) -> Self {
        let slots = services
            .into_iter()
            .map(|service| Slot {
                service,
                child: None,
                started: Instant::now(),
                backoff: policy.initial_backoff,
                restart_at: None,
            })
            .collect();
        Self { slots, policy, observer: Box::new(log_event) }
    }

    pub fn with_observer(mut self, observer: impl FnMut(&Event) + Send + 'static) -> Self {
        self.observer = Box::new(observer);
        self
    }

    /// Starts every service, in order, until `stop` is set; then stops them all.
    pub fn run(&mut self, stop: &AtomicBool) {
        self.start();
        while !stop.load(Ordering::SeqCst) {
            self.tick(Instant::now());
            thread::sleep(self.policy.poll_interval);
        }
        self.stop();
    }

    /// Starts every service in order. One that cannot be spawned is retried like one
    /// that exited.
    pub fn start(&mut self) {
        let now = Instant::now();
        for index in 0..self.slots.len() {
            self.launch(index, now);
        }
    }

    /// Reaps services that exited, schedules their restart, and restarts those due.
    pub fn tick(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            if let Some(child) = &mut slot.child {
                let status = match child.try_wait() {
                    Ok(None) => continue,
                    Ok(Some(status)) => status.to_string(),
                    Err(error) => format!("unknown status ({error})"),
                };
                slot.child = None;
                let uptime = now.saturating_duration_since(slot.started);
                let service = slot.service.name.clone();
                self.emit(Event::Exited { service, status, uptime });
                self.schedule_restart(index, now, uptime);
            } else if slot.restart_at.is_some_and(|at| now >= at) {
                self.launch(index, now);
            }
        }
    }

    /// Stops every service in reverse order: SIGTERM, then SIGKILL after the timeout.
    /// Only the service's own process is signalled, never its group: the gateway's
    /// containers must outlive it.
    pub fn stop(&mut self) {
        for index in (0..self.slots.len()).rev() {
            let slot = &mut self.slots[index];
            slot.restart_at = None;
            let Some(child) = slot.child.take() else { continue };
            let killed = terminate(child, self.policy.stop_timeout);
            let service = slot.service.name.clone();
            self.emit(Event::Stopped { service, killed });
        }
    }

    /// Pids of the services running now, by name (for tests and status output).
    pub fn pids(&self) -> Vec<(String, u32)> {
        let running = self.slots.iter().filter_map(|slot| {
            slot.child.as_ref().map(|child| (slot.service.name.clone(), child.id()))
        });
        running.collect()
    }

    fn launch(&mut self, index: usize, now: Instant) {
        let slot = &mut self.slots[index];
        slot.restart_at = None;
        slot.started = now;
        let service = slot.service.name.clone();
        match spawn(&slot.service) {
            Ok(child) => {
                let pid = child.id();
                slot.child = Some(child);
                self.emit(Event::Started { service, pid });
            }
            Err(error) => {
                self.emit(Event::SpawnFailed { service, error: error.to_string() });
                self.schedule_restart(index, now, Duration::ZERO);
            }
        }
    }

    fn schedule_restart(&mut self, index: usize, now: Instant, uptime: Duration) {
        let slot = &mut self.slots[index];
        let delay = next_delay(&mut slot.backoff, uptime, &self.policy);
        slot.restart_at = Some(now + delay);
        let service = slot.service.name.clone();
        self.emit(Event::RestartScheduled { service, delay });
    }

    fn emit(&mut self, event: Event) {
        (self.observer)(&event);
    }
}

/// The delay before the next restart, advancing `backoff` for the one after.
pub fn next_delay(backoff: &mut Duration, uptime: Duration, policy: &Policy) -> Duration {
    if uptime >= policy.reset_after {
        *backoff = policy.initial_backoff;
    }
    let delay = *backoff;
    *backoff = (delay * 2).min(policy.max_backoff);
    delay
}

/// Spawns `service` with its output appended to its log file, in its own process group
/// so that a Ctrl-C on `cnet up` reaches the supervisor alone (which then stops the
/// services in order), and with SIGTERM as its parent-death signal so that services
/// never outlive a supervisor that was killed.
fn spawn(service: &Service) -> io::Result<Child> {
    if let Some(dir) = service.log_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = OpenOptions::new().create(true).append(true).open(&service.log_file)?;
    let mut command = Command::new(&service.program);
    command
        .args(&service.args)
        .envs(service.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    // SAFETY: prctl is a single async-signal-safe syscall.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
            Ok(())
        })
    };
    command.spawn()
}

/// SIGTERM, wait up to `timeout`, then SIGKILL. Returns whether it had to kill.
fn terminate(mut child: Child, timeout: Duration) -> bool {
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return false,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    true
}

fn log_event(event: &Event) {
    match event {
        Event::Started { service, pid } => tracing::info!(service, pid, "started"),
        Event::SpawnFailed { service, error } => tracing::error!(service, error, "cannot start"),
        Event::Exited { service, status, uptime } => {
            tracing::warn!(service, status, uptime = ?uptime, "exited")
        }
        Event::RestartScheduled { service, delay } => {
            tracing::info!(service, delay = ?delay, "restarting after backoff")
        }
        Event::Stopped { service, killed: false } => tracing::info!(service, "stopped"),
        Event::Stopped { service, killed: true } => {
            tracing::warn!(service, "did not stop in time, killed")
        }
    }
}

#[cfg(test)]
mod tests;
