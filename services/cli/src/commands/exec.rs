//! `cnet exec`: run a host command inside a running container's UTS, network and mount
//! namespaces, with our stdio, and exit with its code. This is the one command that
//! bypasses the gateway for the work itself: it needs our terminal and our process,
//! so it must run as root on the gateway's host.

use std::{
    fs::File,
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, RawFd},
        unix::process::{CommandExt, ExitStatusExt},
    },
    process::{Command, ExitStatus},
};

use cnet_common::process::CONTAINER_PATH;
use cnet_proto::gateway::v1::{Container, ContainerState};
use nix::sched::{CloneFlags, setns};

use crate::{Failure, cli::ExecArgs, gateway::Gateway};

/// Docker's codes for "found but cannot run" and "not found".
const CANNOT_EXECUTE: i32 = 126;
const NOT_FOUND: i32 = 127;

pub async fn exec(gateway: &Gateway, args: &ExecArgs) -> anyhow::Result<i32> {
    let container = gateway.inspect_container(&args.container).await?;
    if container.state() != ContainerState::Running || container.pid == 0 {
        return Err(Failure::new(1, format!("container {} is not running", container.id)).into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Failure::new(1, "cnet exec must run as root to enter a container").into());
    }
    let namespaces = Namespaces::open(container.pid)?;
    run_inside(&namespaces, &args.command, &environment(&container, &args.env))
}

/// What `docker exec` gives a command: the container's environment (its `-e` and link
/// variables, over the defaults its own process got), then the exec's own `-e`.
fn environment(container: &Container, extra: &[(String, String)]) -> Vec<(String, String)> {
    let defaults =
        [("PATH", CONTAINER_PATH), ("HOSTNAME", container.hostname.as_str()), ("HOME", "/root")];
    let mut env: Vec<(String, String)> =
        defaults.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
    let own = container.env.iter().map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key.to_owned(), value.to_owned())
    });
    for (key, value) in own.chain(extra.iter().cloned()) {
        env.retain(|(existing, _)| *existing != key);
        env.push((key, value));
    }
    env
}

/// Handles on a process's namespaces. They are opened before forking so that the
/// child only has to call setns, and so that a container that dies meanwhile fails
/// here, with a clear message, rather than in the child.
pub struct Namespaces {
    uts: File,
    net: File,
    mnt: File,
}

impl Namespaces {
    pub fn open(pid: u32) -> anyhow::Result<Self> {
        let open = |kind: &str| {
            let path = format!("/proc/{pid}/ns/{kind}");
            File::open(&path).map_err(|error| {
                Failure::new(
                    1,
                    format!("cannot enter the container (process {pid}): {path}: {error}"),
                )
            })
        };
        Ok(Self { uts: open("uts")?, net: open("net")?, mnt: open("mnt")? })
    }
}

/// Runs `command` in `namespaces` with exactly `env` and returns its exit code (128 +
/// signal if killed).
pub fn run_inside(
    namespaces: &Namespaces,
    command: &[String],
    env: &[(String, String)],
) -> anyhow::Result<i32> {
    let (program, args) = command.split_first().expect("clap requires a command");
    let fds = [
        (namespaces.uts.as_raw_fd(), CloneFlags::CLONE_NEWUTS),
        (namespaces.net.as_raw_fd(), CloneFlags::CLONE_NEWNET),
        // The mount namespace goes last: after it, /proc paths and our view of the
        // host's files are the container's.
        (namespaces.mnt.as_raw_fd(), CloneFlags::CLONE_NEWNS),
    ];
    let mut child = Command::new(program);
    child.args(args).env_clear().envs(env.iter().map(|(key, value)| (key, value)));
    // SAFETY: the closure runs between fork and exec and only makes syscalls (setns,
    // chdir); it allocates nothing and takes no locks.
    unsafe { child.pre_exec(move || enter(&fds)) };
    let mut running = child.spawn().map_err(|error| spawn_failure(program, &error))?;
    // Like system(3): a Ctrl-C belongs to the command, which gets it from the terminal
    // too; we stay to report how it ended.
    let previous = ignore_interrupts();
    let status = running.wait();
    restore_interrupts(previous);
    Ok(exit_code(status?))
}

fn enter(namespaces: &[(RawFd, CloneFlags)]) -> io::Result<()> {
    for &(fd, kind) in namespaces {
        // SAFETY: the fds belong to `Namespaces`, which outlives the fork.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        setns(fd, kind)?;
    }
    // The old working directory belongs to the host's mount namespace.
    // SAFETY: a valid, NUL-terminated path.
    if unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

type Dispositions = [libc::sighandler_t; 2];

fn ignore_interrupts() -> Dispositions {
    // SAFETY: SIG_IGN installs no handler; nothing else in this process uses signals.
    unsafe {
        [libc::signal(libc::SIGINT, libc::SIG_IGN), libc::signal(libc::SIGQUIT, libc::SIG_IGN)]
    }
}

fn restore_interrupts([int, quit]: Dispositions) {
    // SAFETY: puts back exactly what `ignore_interrupts` replaced.
    unsafe {
        libc::signal(libc::SIGINT, int);
        libc::signal(libc::SIGQUIT, quit);
    }
}

pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// Docker's 127 for a missing command and 126 for one that cannot be run.
fn spawn_failure(program: &str, error: &io::Error) -> anyhow::Error {
    let failure = match error.kind() {
        io::ErrorKind::NotFound if program.contains('/') => {
            Failure::new(NOT_FOUND, format!("exec {program:?}: no such file or directory"))
        }
        io::ErrorKind::NotFound => {
            Failure::new(NOT_FOUND, format!("exec {program:?}: executable file not found in $PATH"))
        }
        io::ErrorKind::PermissionDenied => {
            Failure::new(CANNOT_EXECUTE, format!("exec {program:?}: permission denied"))
        }
        _ => Failure::new(CANNOT_EXECUTE, format!("exec {program:?}: {error}")),
    };
    failure.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    fn own_namespaces() -> Namespaces {
        Namespaces::open(std::process::id()).unwrap()
    }

    fn failure_code(error: anyhow::Error) -> i32 {
        error.downcast_ref::<Failure>().expect("a Failure").code
    }

    // Entering one's own namespaces needs the same privileges as entering a
    // container's (root), which CI has; it proves the setns sequence and exit codes.
    #[test]
    fn runs_inside_and_returns_the_exit_code() {
        let namespaces = own_namespaces();
        assert_eq!(run_inside(&namespaces, &words("sh -c true"), &[]).unwrap(), 0);
        let env = [("CNET_X".to_owned(), "7".to_owned())];
        let command = vec!["sh".into(), "-c".into(), "test \"$PWD\" = / && exit $CNET_X".into()];
        assert_eq!(run_inside(&namespaces, &command, &env).unwrap(), 7, "env and chdir(/)");
    }

    #[test]
    fn missing_and_unrunnable_commands() {
        let namespaces = own_namespaces();
        let error = run_inside(&namespaces, &words("no-such-command-cnet"), &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "exec \"no-such-command-cnet\": executable file not found in $PATH"
        );
        assert_eq!(failure_code(error), 127);
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("not-executable");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let command = vec![script.display().to_string()];
        assert_eq!(failure_code(run_inside(&namespaces, &command, &[]).unwrap_err()), 126);
    }

    #[test]
    fn killed_commands_report_128_plus_signal() {
        let namespaces = own_namespaces();
        let command = vec!["sh".into(), "-c".into(), "kill -TERM $$".into()];
        assert_eq!(run_inside(&namespaces, &command, &[]).unwrap(), 128 + 15);
    }

    #[test]
    fn a_vanished_process_fails_clearly() {
        let error = Namespaces::open(u32::MAX).err().unwrap();
        assert_eq!(failure_code(error), 1);
    }
}
