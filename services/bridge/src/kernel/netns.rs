//! Network namespaces kept alive as files: a fresh namespace is bind-mounted onto
//! `<netns_dir>/<id>` (as `ip netns add` does), and work inside a namespace happens
//! through a netlink socket opened by a short-lived thread that entered it.
//!
//! A netlink socket belongs to the namespace of the thread that created it, and entering
//! a namespace changes the calling thread for good. So namespaces are only ever entered
//! on a fresh OS thread that ends right after; never on a tokio worker or a
//! blocking-pool thread, which would go on serving other requests from inside.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    path::Path,
};

use nix::{
    errno::Errno,
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, setns, unshare},
};

/// Runs `work` on a new OS thread that exits when it is done.
pub async fn on_fresh_thread<T, F>(name: &str, work: F) -> io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        let _ = done.send(work());
    })?;
    result.await.map_err(|_| io::Error::other(format!("thread {name} panicked")))
}

/// Whether `path` refers to a network namespace (a bind-mounted namespace file or a
/// `/proc/<pid>/ns/net` link).
pub fn is_netns(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    // SAFETY: NS_GET_NSTYPE takes no argument and only inspects the open descriptor; on
    // anything that is not a namespace file it fails with ENOTTY.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), libc::NS_GET_NSTYPE) };
    kind == libc::CLONE_NEWNET
}

/// Creates a new network namespace and bind-mounts it onto `path`.
pub async fn create(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    // The mount needs an existing target file; an empty one left by an earlier attempt
    // (or by a reboot, which empties /run) is simply reused.
    OpenOptions::new().write(true).create(true).truncate(false).mode(0o444).open(path)?;
    let target = path.to_owned();
    let mounted = on_fresh_thread("cnet-netns-new", move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .await
    .and_then(|result| result);
    if mounted.is_err() {
        let _ = fs::remove_file(path);
    }
    mounted
}

/// Unmounts (lazily, so open handles keep working) and removes a namespace file.
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point, e.g. a file whose namespace died with a reboot.
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(errno) => return Err(errno.into()),
    }
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// A netlink connection that works inside the namespace at `path`, driven by the
/// current tokio runtime.
pub async fn connect(path: &Path) -> io::Result<rtnetlink::Handle> {
    let file = File::open(path)?;
    let runtime = tokio::runtime::Handle::current();
    let (connection, handle, _) = on_fresh_thread("cnet-netns-nl", move || {
        setns(&file, CloneFlags::CLONE_NEWNET)?;
        // The socket is created here, in the namespace; entering the runtime only
        // registers it with the runtime's reactor.
        let _entered = runtime.enter();
        rtnetlink::new_connection()
    })
    .await??;
    tokio::spawn(connection);
    Ok(handle)
}
