//! Showing a new file to a running container at once: the file is written beside the
//! old one and renamed over it, then the bind mount on /etc/hosts (or resolv.conf, or
//! hostname) inside the container's mount namespace is swapped for one of the new file.
//!
//! The swap mounts the new file *beneath* the old mount (`move_mount` with
//! `MOVE_MOUNT_BENEATH`, Linux 6.5) and then detaches the old one, so a path lookup finds
//! the old file or the new one and never anything in between: a reader sees one whole
//! version, never an empty file or a cut line, which no in-place write can promise
//! (readers of the page cache do not wait for writers). A reader that still has the old
//! file open keeps reading the old, complete content.
//!
//! Mount-namespace changes apply to the calling thread for good and are refused to
//! threads that share their filesystem attributes, so each swap runs on a short-lived
//! OS thread that unshares them, enters the container's namespace, looks which mounts
//! show an old file, and only if some do, clones the new files' mounts back in the
//! service's namespace and swaps them in the container's; then the thread ends.
//!
//! The container is found by pid, checked against the process's start time so that a
//! reused pid never leads into someone else's namespace; the service's own mount
//! namespace is refused outright.

use std::{
    ffi::CString,
    fs::File,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::MetadataExt},
    },
    path::Path,
};

use crate::domain::Process;

// From <linux/mount.h>; the libc crate does not export them.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_BENEATH: libc::c_uint = 0x200;

/// A file to show at `target` inside the container, and the file it comes from.
pub struct Swap<'a> {
    pub source: &'a Path,
    pub target: &'static str,
}

/// What a refresh found.
#[derive(Debug, PartialEq, Eq)]
pub enum Refreshed {
    /// The mounts now show the sources; `swapped` of them had to change.
    Done { swapped: usize },
    /// The process is gone (or the pid is someone else's now): nothing to refresh.
    Gone,
}

/// Makes every `target` in the mount namespace of `process` show its `source`, swapping
/// the mounts that show something else. A target that is not a mount point there (the
/// host had no such file when the container started) is left alone.
pub fn refresh(process: Process, swaps: &[Swap<'_>]) -> io::Result<Refreshed> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| refresh_on_this_thread(process, swaps))
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("mount swap thread panicked")))
    })
}

/// Whether this kernel can mount beneath a mount (Linux 6.5+): tried on two files in
/// `scratch` inside a throwaway mount namespace, so nothing outside it ever changes.
pub fn supported(scratch: &Path) -> bool {
    let files = ["probe-top", "probe-new"].map(|name| scratch.join(format!(".{name}")));
    let probe = || -> io::Result<()> {
        for file in &files {
            std::fs::write(file, b"")?;
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> io::Result<()> {
                    // SAFETY: plain syscalls on NUL-terminated paths that outlive them;
                    // unshare affects only this thread, which ends right after.
                    unsafe {
                        check(libc::unshare(libc::CLONE_NEWNS))?;
                        check(libc::mount(
                            std::ptr::null(),
                            c"/".as_ptr(),
                            std::ptr::null(),
                            libc::MS_REC | libc::MS_PRIVATE,
                            std::ptr::null(),
                        ))?;
                        let top = c_path(&files[0])?;
                        check(libc::mount(
                            top.as_ptr(),
                            top.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND,
                            std::ptr::null(),
                        ))?;
                    }
                    let new = open_tree(&files[1])?;
                    move_beneath(&new, &c_path(&files[0])?)
                })
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("probe thread panicked")))
        })
    };
    let result = probe();
    for file in &files {
        let _ = std::fs::remove_file(file);
    }
    match result {
        Ok(()) => true,
        Err(error) => {
            tracing::info!(%error, "cannot mount beneath a mount: files are updated in place");
            false
        }
    }
}

fn refresh_on_this_thread(process: Process, swaps: &[Swap<'_>]) -> io::Result<Refreshed> {
    let namespace = match File::open(format!("/proc/{}/ns/mnt", process.pid)) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Refreshed::Gone),
        Err(error) => return Err(error),
    };
    // Checked after opening: had the pid been reused before the open, the start time
    // read now would differ.
    if !cnet_common::process::is_alive(process.pid, process.start_ticks) {
        return Ok(Refreshed::Gone);
    }
    let own = File::open("/proc/thread-self/ns/mnt")?;
    if same_file(&namespace.metadata()?, &own.metadata()?) {
        return Err(io::Error::other(format!(
            "process {} shares the hosts service's mount namespace",
            process.pid
        )));
    }
    let sources = swaps
        .iter()
        .map(|swap| Ok((std::fs::metadata(swap.source)?, CString::new(swap.target)?)))
        .collect::<io::Result<Vec<_>>>()?;
    // SAFETY: unshare only changes this thread, which ends when this function returns.
    check(unsafe { libc::unshare(libc::CLONE_FS) })?;
    // Look first: cloning a mount and dropping the old one are the costly part, and most
    // calls find at most one file changed (often none).
    enter(&namespace)?;
    let mut stale = Vec::new();
    for (swap, (source, target)) in swaps.iter().zip(&sources) {
        match mount_root(target)? {
            Some(shown) if shown != (source.dev(), source.ino()) => stale.push((swap, target)),
            _ => {}
        }
    }
    if stale.is_empty() {
        return Ok(Refreshed::Done { swapped: 0 });
    }
    // The new files' mounts are cloned in the service's namespace, where their paths are.
    enter(&own)?;
    let trees =
        stale.iter().map(|(swap, _)| open_tree(swap.source)).collect::<io::Result<Vec<_>>>()?;
    enter(&namespace)?;
    for (tree, (_, target)) in trees.iter().zip(&stale) {
        move_beneath(tree, target)?;
        // SAFETY: umount2 on a NUL-terminated path; the top mount is the old file's.
        check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) })?;
    }
    Ok(Refreshed::Done { swapped: stale.len() })
}

/// Moves this thread into the mount namespace `namespace`.
fn enter(namespace: &File) -> io::Result<()> {
    // SAFETY: setns on an open namespace fd; it changes only this thread, which has its
    // own filesystem attributes (unshared) and ends soon.
    check(unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNS) })
}

/// A detached copy of the mount of `path`, to be attached elsewhere.
fn open_tree(path: &Path) -> io::Result<OwnedFd> {
    let path = c_path(path)?;
    // SAFETY: open_tree takes a dirfd, a NUL-terminated path and flags; it returns a new
    // fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd was just returned by open_tree and belongs to nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches `tree` beneath the top mount on `target`.
fn move_beneath(tree: &OwnedFd, target: &CString) -> io::Result<()> {
    // SAFETY: move_mount takes two (dirfd, path) pairs and flags; the paths are
    // NUL-terminated and outlive the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_BENEATH,
        )
    };
    check(result as libc::c_int)
}

/// (device, inode) of what `path` shows, if it is the root of a mount.
fn mount_root(path: &CString) -> io::Result<Option<(u64, u64)>> {
    // SAFETY: statx writes into the zeroed buffer it is given; the path is
    // NUL-terminated.
    let mut stat: libc::statx = unsafe { std::mem::zeroed() };
    let result = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_INO,
            &mut stat,
        )
    };
    match check(result) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other?,
    }
    if stat.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 == 0 {
        return Ok(None);
    }
    let dev = libc::makedev(stat.stx_dev_major, stat.stx_dev_minor);
    Ok(Some((dev, stat.stx_ino)))
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}
