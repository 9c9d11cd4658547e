//! Running a container's process: a host command in the container's network namespace,
//! with its own UTS and mount namespaces, its hostname, and the container's hosts,
//! resolv.conf and hostname files bind-mounted over the host's. The process leads its
//! own session so that it outlives the gateway (containers keep running across gateway
//! restarts) and so that stopping it can signal its whole process group.

use std::{
    ffi::CString,
    fs::File,
    io,
    os::{fd::AsRawFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, UNIX_EPOCH},
};

use cnet_common::process::CONTAINER_PATH;
use tokio::io::unix::AsyncFd;

/// Files the gateway keeps for one container, under `<state_dir>/containers/<id>/`.
#[derive(Debug, Clone)]
pub struct ContainerFiles {
    pub dir: PathBuf,
}

impl ContainerFiles {
    pub fn new(state_dir: &Path, container_id: &str) -> Self {
        Self { dir: state_dir.join("containers").join(container_id) }
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }
    /// The pid of the last process started, written by that process before it runs the
    /// command, so that one started by a gateway that died before recording it can be
    /// found ([`kill_unrecorded`]).
    pub fn pid(&self) -> PathBuf {
        self.dir.join("pid")
    }
}

/// The files the hosts service keeps for a container, bind-mounted over the host's.
#[derive(Debug, Clone, Default)]
pub struct MountedFiles {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname: PathBuf,
}

/// How a container gets its /etc files.
pub enum Files<'a> {
    /// Bind-mounted over the host's in a mount namespace of its own. The hosts service
    /// later swaps these mounts in that namespace when the files change.
    Own(&'a MountedFiles),
    /// The mount namespace (`/proc/<pid>/ns/mnt`) of the container it shares them with
    /// (container: mode, CNS-1), so that swaps there reach it too.
    Shared(&'a Path),
}

pub struct Launch<'a> {
    /// Network namespace to enter; `None` stays in the host's (host mode).
    pub netns: Option<&'a Path>,
    /// UTS namespace to join (container mode); otherwise the process gets its own.
    pub uts: Option<&'a Path>,
    /// Hostname to set in its own UTS namespace; `None` keeps the one it has.
    pub hostname: Option<&'a str>,
    /// Where /etc/hosts, /etc/resolv.conf and /etc/hostname come from.
    pub files: Files<'a>,
    /// Where the process writes its pid (see [`ContainerFiles::pid`]).
    pub pid_file: &'a Path,
    pub log: &'a Path,
    pub command: &'a [String],
    pub env: &'a [String],
}

/// A started container process.
pub struct Started {
    pub child: tokio::process::Child,
    pub pid: u32,
    pub start_ticks: u64,
}

/// Everything the forked child needs, prepared before the fork so that the child only
/// makes syscalls.
struct Entry {
    netns: Option<File>,
    uts: Option<File>,
    hostname: Option<CString>,
    /// A mount namespace to join instead of making one with `binds`.
    mnt: Option<File>,
    binds: Vec<(CString, CString)>,
    pid_file: File,
}

pub fn spawn(launch: &Launch<'_>) -> io::Result<Started> {
    let (program, args) = launch
        .command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let open = |path: &Path, what: &str| {
        File::open(path).map_err(|e| {
            io::Error::new(e.kind(), format!("open {what} namespace {}: {e}", path.display()))
        })
    };
    let entry = Entry {
        netns: launch.netns.map(|path| open(path, "network")).transpose()?,
        uts: launch.uts.map(|path| open(path, "UTS")).transpose()?,
        hostname: launch
            .hostname
            .map(|name| CString::new(name).map_err(|_| invalid("hostname contains NUL")))
            .transpose()?,
        mnt: match launch.files {
            Files::Shared(path) => Some(open(path, "mount")?),
            Files::Own(_) => None,
        },
        binds: match launch.files {
            Files::Own(files) => bind_mounts(files)?,
            Files::Shared(_) => Vec::new(),
        },
        pid_file: std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(launch.pid_file)?,
    };
    let log = std::fs::OpenOptions::new().create(true).append(true).open(launch.log)?;

    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", CONTAINER_PATH)
        .env("HOME", "/root")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(false);
    if let Some(hostname) = launch.hostname {
        command.env("HOSTNAME", hostname);
    }
    for pair in launch.env {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        command.env(key, value);
    }
    // SAFETY: the closure runs in the forked child before exec and only makes raw
    // syscalls on data prepared before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || enter_sandbox(&entry));
    }
    let child = command.spawn().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            io::Error::new(
                e.kind(),
                format!("exec: {program:?}: executable file not found in $PATH"),
            )
        } else {
            io::Error::new(e.kind(), format!("start {program:?}: {e}"))
        }
    })?;
    let pid = child.id().ok_or_else(|| io::Error::other("process exited before it was seen"))?;
    let start_ticks = start_ticks(pid).ok_or_else(|| io::Error::other("process exited at once"))?;
    Ok(Started { child, pid, start_ticks })
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_owned())
}

/// (source, target) pairs; a target the host lacks is skipped rather than failing.
fn bind_mounts(files: &MountedFiles) -> io::Result<Vec<(CString, CString)>> {
    let pairs = [
        (&files.hosts, "/etc/hosts"),
        (&files.resolv_conf, "/etc/resolv.conf"),
        (&files.hostname, "/etc/hostname"),
    ];
    let mut binds = Vec::new();
    for (source, target) in pairs {
        if Path::new(target).exists() && source.exists() {
            let source = CString::new(source.as_os_str().as_bytes())
                .map_err(|_| invalid("path contains NUL"))?;
            binds.push((source, CString::new(target).expect("static path")));
        }
    }
    Ok(binds)
}

fn enter_sandbox(entry: &Entry) -> io::Result<()> {
    fn check(result: libc::c_int) -> io::Result<()> {
        if result < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
    // SAFETY: plain syscalls on valid fds and NUL-terminated buffers that outlive them.
    unsafe {
        let (digits, len) = decimal(libc::getpid() as u32);
        if libc::write(entry.pid_file.as_raw_fd(), digits.as_ptr().cast(), len) != len as isize {
            return Err(io::Error::last_os_error());
        }
        if let Some(netns) = &entry.netns {
            check(libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET))?;
        }
        match &entry.uts {
            Some(uts) => check(libc::setns(uts.as_raw_fd(), libc::CLONE_NEWUTS))?,
            None => check(libc::unshare(libc::CLONE_NEWUTS))?,
        }
        if let Some(hostname) = &entry.hostname {
            check(libc::sethostname(hostname.as_ptr(), hostname.as_bytes().len()))?;
        }
        if let Some(mnt) = &entry.mnt {
            check(libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS))?;
        } else {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Private propagation keeps the bind mounts below out of the host's mount table.
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
        }
        for (source, target) in &entry.binds {
            check(libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
        }
        check(libc::setsid())?;
    }
    Ok(())
}

pub use cnet_common::process::{is_alive, start_ticks};

/// `n` in decimal, without allocating (it runs between fork and exec).
fn decimal(mut n: u32) -> ([u8; 10], usize) {
    let mut reversed = [0u8; 10];
    let mut len = 0;
    loop {
        reversed[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut digits = [0u8; 10];
    for i in 0..len {
        digits[i] = reversed[len - 1 - i];
    }
    (digits, len)
}

/// Kills the process a pid file names if it is still the one that wrote it (it started
/// no later than the file was written: a later process reusing the pid did not), with
/// its process group. Returns whether there was one to kill.
pub fn kill_unrecorded(pid_file: &Path) -> bool {
    let Ok(metadata) = std::fs::metadata(pid_file) else { return false };
    let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|s| s.trim().parse().ok())
    else {
        return false;
    };
    let written = metadata.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let (Some(written), Some(started)) = (written, started_at(pid)) else { return false };
    // Boot time is known to the second only.
    if started > written + Duration::from_secs(1) {
        return false;
    }
    signal(pid, libc::SIGKILL);
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    true
}

/// When a live process started, as time since the epoch.
fn started_at(pid: u32) -> Option<Duration> {
    let ticks = start_ticks(pid)?;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: u64 = stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz =
        u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|&hz| hz > 0)?;
    Some(Duration::from_secs(boot) + Duration::from_millis(ticks * 1000 / hz))
}

/// Signals the container's whole process group (it leads its own session).
pub fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// Waits until a process that is not our child exits, with a pidfd (no polling).
pub async fn wait_foreign(pid: u32) -> io::Result<()> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        let error = io::Error::last_os_error();
        return if error.raw_os_error() == Some(libc::ESRCH) { Ok(()) } else { Err(error) };
    }
    // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd moves into the AsyncFd, which keeps it open until dropped.
    let pidfd = unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    let _ready = pidfd.readable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits() {
        for n in [0, 7, 10, 4_194_304, u32::MAX] {
            let (digits, len) = decimal(n);
            assert_eq!(&digits[..len], n.to_string().as_bytes());
        }
    }

    #[test]
    fn an_unrecorded_process_is_killed_but_a_later_one_with_its_pid_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&pid_file, child.id().to_string()).unwrap();
        assert!(kill_unrecorded(&pid_file));
        assert!(!child.wait().unwrap().success());

        // A file written before the process started names an earlier holder of the pid.
        let mut later = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&pid_file, later.id().to_string()).unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        File::options().write(true).open(&pid_file).unwrap().set_modified(old).unwrap();
        assert!(!kill_unrecorded(&pid_file));
        later.kill().unwrap();
        later.wait().unwrap();
    }

    #[tokio::test]
    async fn waits_for_a_foreign_process_to_exit() {
        let mut child = std::process::Command::new("sleep").arg("0.2").spawn().unwrap();
        let pid = child.id();
        let waiter = tokio::spawn(wait_foreign(pid));
        // Reap on another thread so that the pidfd sees the exit like a foreign one.
        std::thread::spawn(move || child.wait());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
