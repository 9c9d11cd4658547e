//! Supervisor tests with tiny shell-script "services" in a temp dir (no root needed).
//! Delays are asserted on the events the supervisor reports, not on wall-clock time,
//! so a loaded machine cannot make them flaky; only the waits are timed, generously.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use super::*;

const PATIENCE: Duration = Duration::from_secs(20);

fn fast_policy() -> Policy {
    Policy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(80),
        reset_after: Duration::from_secs(60),
        stop_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(5),
    }
}

fn sh(dir: &Path, name: &str, script: &str) -> Service {
    Service {
        name: name.into(),
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        env: vec![("CNET_TEST_DIR".into(), dir.display().to_string())],
        log_file: dir.join(format!("logs/{name}.log")),
    }
}

/// A supervisor whose events are collected for the test to read.
fn supervisor(services: Vec<Service>, policy: Policy) -> (Supervisor, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let supervisor = Supervisor::new(services, policy)
        .with_observer(move |e| sink.lock().unwrap().push(e.clone()));
    (supervisor, events)
}

/// Ticks until `done` holds for the events so far.
fn tick_until(
    supervisor: &mut Supervisor,
    events: &Mutex<Vec<Event>>,
    done: impl Fn(&[Event]) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    while !done(&events.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out; events: {:?}", events.lock().unwrap());
        supervisor.tick(Instant::now());
        thread::sleep(Duration::from_millis(5));
    }
}

fn delays(events: &[Event]) -> Vec<u64> {
    let delays = events.iter().filter_map(|event| match event {
        Event::RestartScheduled { delay, .. } => Some(delay.as_millis() as u64),
        _ => None,
    });
    delays.collect()
}

fn count_starts(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Started { .. })).count()
}

#[test]
fn crashing_service_restarts_with_doubling_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let service = sh(dir.path(), "crasher", "echo run >> \"$CNET_TEST_DIR/runs\"; exit 3");
    let (mut supervisor, events) = supervisor(vec![service], fast_policy());
    supervisor.start();
    tick_until(&mut supervisor, &events, |events| delays(events).len() >= 5);
    supervisor.stop();

    let events = events.lock().unwrap();
    assert_eq!(delays(&events)[..5], [20, 40, 80, 80, 80], "doubling, capped at the max");
    assert!(events.iter().any(|e| matches!(e,
        Event::Exited { service, status, .. } if service == "crasher" && status.contains('3'))));
    let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
    assert!(runs.lines().count() >= 5, "it really ran again: {runs:?}");
}

#[test]
fn backoff_resets_after_a_healthy_run() {
    let dir = tempfile::tempdir().unwrap();
    // Two quick crashes, then runs that last longer than `reset_after`.
    let script = "n=$(cat \"$CNET_TEST_DIR/n\" 2>/dev/null || echo 0); \
                  echo $((n + 1)) > \"$CNET_TEST_DIR/n\"; \
                  if [ \"$n\" -ge 2 ]; then sleep 0.3; fi; exit 1";
    let policy = Policy { reset_after: Duration::from_millis(200), ..fast_policy() };
    let (mut supervisor, events) = supervisor(vec![sh(dir.path(), "flaky", script)], policy);
    supervisor.start();
    tick_until(&mut supervisor, &events, |events| delays(events).len() >= 3);
    supervisor.stop();
    assert_eq!(delays(&events.lock().unwrap())[..3], [20, 40, 20]);
}

#[test]
fn stop_is_clean_and_in_reverse_order() {
    let dir = tempfile::tempdir().unwrap();
    let services =
        vec![sh(dir.path(), "first", "exec sleep 100"), sh(dir.path(), "second", "exec sleep 100")];
    let (mut supervisor, events) = supervisor(services, fast_policy());
    supervisor.start();
    let pids = supervisor.pids();
    assert_eq!(pids.len(), 2);
    supervisor.stop();

    let events = events.lock().unwrap();
    let stopped: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Stopped { service, killed } => Some((service.as_str(), *killed)),
            _ => None,
        })
        .collect();
    assert_eq!(stopped, [("second", false), ("first", false)]);
    assert_eq!(count_starts(&events), 2, "nothing restarted during stop");
    for (name, pid) in pids {
        assert!(!pidfile::is_alive(pid as i32), "{name} still runs");
    }
    assert!(supervisor.pids().is_empty());
}

#[test]
fn service_ignoring_sigterm_is_killed_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = "trap '' TERM; touch \"$CNET_TEST_DIR/ready\"; while :; do sleep 0.05; done";
    let policy = Policy { stop_timeout: Duration::from_millis(300), ..fast_policy() };
    let (mut supervisor, events) = supervisor(vec![sh(dir.path(), "stubborn", script)], policy);
    supervisor.start();
    let deadline = Instant::now() + PATIENCE;
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the service never got ready");
        thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    supervisor.stop();
    assert!(started.elapsed() >= Duration::from_millis(300), "SIGKILL came too early");
    let events = events.lock().unwrap();
    assert_eq!(events.last(), Some(&Event::Stopped { service: "stubborn".into(), killed: true }));
}

#[test]
fn run_returns_once_asked_to_stop() {
    let dir = tempfile::tempdir().unwrap();
    let service =
        sh(dir.path(), "echoer", "echo \"out $CNET_TEST_DIR\"; echo err >&2; exec sleep 100");
    let (mut supervisor, events) = supervisor(vec![service], fast_policy());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let runner = thread::spawn(move || supervisor.run(&flag));
    let log = dir.path().join("logs/echoer.log");
    let deadline = Instant::now() + PATIENCE;
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("err") {
        assert!(Instant::now() < deadline, "no log output");
        thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    runner.join().unwrap();

    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains(&format!("out {}", dir.path().display())), "stdout and env: {log}");
    let events = events.lock().unwrap();
    assert_eq!(events.last(), Some(&Event::Stopped { service: "echoer".into(), killed: false }));
}

#[test]
fn missing_program_is_retried_like_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = sh(dir.path(), "ghost", "");
    service.program = dir.path().join("no-such-binary");
    let (mut supervisor, events) = supervisor(vec![service], fast_policy());
    supervisor.start();
    tick_until(&mut supervisor, &events, |events| delays(events).len() >= 2);
    supervisor.stop();
    let events = events.lock().unwrap();
    assert!(matches!(&events[0], Event::SpawnFailed { service, .. } if service == "ghost"));
    assert_eq!(delays(&events)[..2], [20, 40]);
}

#[test]
fn next_delay_policy() {
    let policy = Policy::default();
    let mut backoff = policy.initial_backoff;
    let quick = Duration::from_millis(10);
    let delays: Vec<_> =
        (0..8).map(|_| next_delay(&mut backoff, quick, &policy).as_millis()).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    assert_eq!(next_delay(&mut backoff, Duration::from_secs(30), &policy).as_millis(), 100);
}
