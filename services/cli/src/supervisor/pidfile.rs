//! The pid file of `cnet up` (`<runtime_dir>/cnet-up.pid`): how `up` knows the cluster
//! is already running and how `down` finds the supervisor. It is created exclusively,
//! so two `cnet up` racing each other cannot both win.

use std::{
    fs::OpenOptions,
    io::{self, Write},
    path::{Path, PathBuf},
};

use nix::{errno::Errno, sys::signal::kill, unistd::Pid};

#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("cnet is already running (pid {0})")]
    AlreadyRunning(i32),
    #[error("pid file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The pid recorded in `path`, if the file exists and holds a number.
pub fn read(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The pid in `path` if that process is still alive.
pub fn running(path: &Path) -> Option<i32> {
    read(path).filter(|&pid| is_alive(pid))
}

/// Whether `pid` names a live process. A zombie counts as dead: it has exited and only
/// waits for its parent to collect the status.
pub fn is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    state == Some("Z")
}

/// This process's pid file; removed again when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: i32,
}

impl PidFile {
    /// Records our pid in `path`, replacing a stale file left by a dead process.
    pub fn create(path: &Path) -> Result<Self, PidFileError> {
        let pid = std::process::id() as i32;
        let io_error = |source| PidFileError::Io { path: path.to_owned(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error)?;
        }
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    writeln!(file, "{pid}").map_err(io_error)?;
                    return Ok(Self { path: path.to_owned(), pid });
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    if let Some(other) = running(path) {
                        return Err(PidFileError::AlreadyRunning(other));
                    }
                    remove(path).map_err(io_error)?;
                }
                Err(error) => return Err(io_error(error)),
            }
        }
        Err(PidFileError::Io {
            path: path.to_owned(),
            source: io::Error::other("another cnet up keeps recreating it"),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own record: a later `cnet up` may have replaced it already.
        if read(&self.path) == Some(self.pid) {
            let _ = remove(&self.path);
        }
    }
}

/// Removes `path`; a file that is already gone is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_refuses_a_live_owner_and_replaces_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/cnet-up.pid");
        let ours = PidFile::create(&path).unwrap();
        assert_eq!(running(&path), Some(std::process::id() as i32));
        let error = PidFile::create(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cnet is already running (pid {})", std::process::id())
        );
        drop(ours);
        assert!(!path.exists(), "removed on drop");

        // A pid file left by a process that is gone (pid of a reaped child).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(&path, format!("{dead}\n")).unwrap();
        assert_eq!(running(&path), None);
        let _ours = PidFile::create(&path).unwrap();
        assert_eq!(read(&path), Some(std::process::id() as i32));
    }

    #[test]
    fn zombies_are_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Not waited for: it stays a zombie until `child` is reaped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while is_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!is_alive(pid));
        assert!(is_alive(std::process::id() as i32));
        assert!(!is_alive(0) && !is_alive(-5));
        child.wait().unwrap();
    }

    #[test]
    fn garbage_is_not_a_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cnet-up.pid");
        assert_eq!(read(&path), None);
        std::fs::write(&path, "not a pid").unwrap();
        assert_eq!(running(&path), None);
    }
}
