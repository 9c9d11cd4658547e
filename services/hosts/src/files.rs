//! The files directory, `<state_dir>/hosts/files/<container id>/{hosts,resolv.conf,
//! hostname}`, next to the sled store in `<state_dir>/hosts`. The files are derived
//! state: the store is the truth, and every file is rewritten from it at start, so they
//! are not synced to disk.
//!
//! Container ids are validated file names ([`ContainerId`]), so a path built from one
//! stays inside the directory. The registry's lock serialises writes.
//!
//! How a new version reaches a running container depends on the kernel ([`Update`]):
//! where a mount can be slid beneath another (Linux 6.5+), a file is replaced by a new
//! one and the container's bind mount swapped to it ([`remount`]), so readers see whole
//! versions only; elsewhere it is rewritten in place ([`writer`]), which keeps the inode
//! the container has mounted but lets a racing reader see a mix of two versions.

pub mod remount;
pub mod writer;

use std::{
    collections::HashSet,
    io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use crate::{
    Error,
    domain::{ContainerId, Contents, Process},
    files::remount::{Refreshed, Swap},
};

pub use writer::write_in_place;

/// Where one container's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname: PathBuf,
}

/// How files change under a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// New file, renamed over the old one; the container's mounts are then swapped.
    Swap,
    /// The same file rewritten in place (kernels before 6.5).
    InPlace,
}

#[derive(Debug, Clone)]
pub struct FileTree {
    root: PathBuf,
    update: Update,
}

impl FileTree {
    /// The tree rooted at `root`, which is created when missing. The directories must be
    /// searchable by every user, since containers read the files through bind mounts.
    pub fn open(root: PathBuf) -> Result<Self, Error> {
        std::fs::create_dir_all(&root).map_err(Error::io("create", &root))?;
        set_mode(&root, 0o755)?;
        // The paths handed out are bind-mount sources, so they must be absolute.
        let root = std::fs::canonicalize(&root).map_err(Error::io("resolve", &root))?;
        let update = if remount::supported(&root) { Update::Swap } else { Update::InPlace };
        Ok(Self { root, update })
    }

    pub fn update(&self) -> Update {
        self.update
    }

    pub fn paths(&self, id: &ContainerId) -> Paths {
        let dir = self.dir(id);
        Paths {
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
            hostname: dir.join("hostname"),
        }
    }

    fn dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// Brings the three files of `id` to `contents`; returns whether any changed.
    pub fn write(&self, id: &ContainerId, contents: &Contents) -> Result<bool, Error> {
        let dir = self.dir(id);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
            set_mode(&dir, 0o755)?;
        }
        let paths = self.paths(id);
        let mut changed = false;
        for (path, content) in [
            (&paths.hosts, &contents.hosts),
            (&paths.resolv_conf, &contents.resolv_conf),
            (&paths.hostname, &contents.hostname),
        ] {
            let written = match self.update {
                Update::Swap => replace(path, content),
                Update::InPlace => write_in_place(path, content),
            };
            changed |= written.map_err(Error::io("write", path))?;
        }
        Ok(changed)
    }

    /// Makes the running `process` of `id` see the current files (after [`Self::write`]
    /// replaced them). A process that is gone is not an error: it has nothing to see.
    pub fn show(&self, id: &ContainerId, process: Process) -> Result<(), Error> {
        if self.update == Update::InPlace {
            return Ok(());
        }
        let paths = self.paths(id);
        let swaps = [
            Swap { source: &paths.hosts, target: "/etc/hosts" },
            Swap { source: &paths.resolv_conf, target: "/etc/resolv.conf" },
            Swap { source: &paths.hostname, target: "/etc/hostname" },
        ];
        match remount::refresh(process, &swaps) {
            Ok(Refreshed::Done { swapped }) if swapped > 0 => {
                tracing::debug!(container = %id, pid = process.pid, swapped, "mounts swapped");
            }
            Ok(_) => {}
            Err(error) => {
                let error = io::Error::other(format!("process {}: {error}", process.pid));
                return Err(Error::io("swap the mounts of", &self.dir(id))(error));
            }
        }
        Ok(())
    }

    /// The files of `id` as they are on disk; a missing file reads as empty.
    pub fn read(&self, id: &ContainerId) -> Result<Contents, Error> {
        let paths = self.paths(id);
        let read = |path: &Path| match std::fs::read(path) {
            Ok(bytes) => Ok(bytes),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(Error::io("read", path)(error)),
        };
        Ok(Contents {
            hosts: read(&paths.hosts)?,
            resolv_conf: read(&paths.resolv_conf)?,
            hostname: read(&paths.hostname)?,
        })
    }

    /// Deletes the files of `id`; absent ones are fine. A running container keeps the
    /// inodes it has mounted, so this never pulls a file from under it.
    pub fn remove(&self, id: &ContainerId) -> Result<(), Error> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                Err(Error::io("remove", &dir)(error))
            }
            _ => Ok(()),
        }
    }

    /// Removes the directories of containers not in `known` (left by a crash between
    /// forgetting a container and deleting its files); returns their names. Entries
    /// that are not container directories are left alone.
    pub fn prune(&self, known: &HashSet<&str>) -> Result<Vec<String>, Error> {
        let entries = std::fs::read_dir(&self.root).map_err(Error::io("list", &self.root))?;
        let mut removed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("list", &self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
            if !is_dir || known.contains(name.as_str()) {
                continue;
            }
            let Ok(id) = ContainerId::parse(&name) else { continue };
            self.remove(&id)?;
            removed.push(name);
        }
        Ok(removed)
    }
}

/// Replaces the file at `path` with one holding `content` (rename, so the old inode,
/// which a container may have mounted, is never modified); returns whether it changed.
fn replace(path: &Path, content: &[u8]) -> io::Result<bool> {
    match std::fs::read(path) {
        Ok(old) if old == content => return Ok(false),
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut staged = path.as_os_str().to_owned();
    staged.push(".new");
    std::fs::write(&staged, content)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&staged, path)?;
    Ok(true)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(Error::io("set permissions of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(hosts: &str) -> Contents {
        Contents {
            hosts: hosts.as_bytes().to_vec(),
            resolv_conf: b"nameserver 127.0.0.11\noptions ndots:0\n".to_vec(),
            hostname: b"h\n".to_vec(),
        }
    }

    #[test]
    fn write_read_remove_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let tree = FileTree::open(dir.path().join("files")).unwrap();
        let (a, b) = (ContainerId::parse("a1").unwrap(), ContainerId::parse("b1").unwrap());
        assert!(tree.write(&a, &contents("one\n")).unwrap());
        assert!(!tree.write(&a, &contents("one\n")).unwrap());
        assert!(tree.write(&b, &contents("two\n")).unwrap());
        assert_eq!(tree.read(&a).unwrap(), contents("one\n"));
        assert_eq!(tree.paths(&a).hosts, dir.path().join("files/a1/hosts"));

        std::fs::write(dir.path().join("files/stray-file"), b"x").unwrap();
        let removed = tree.prune(&HashSet::from(["a1"])).unwrap();
        assert_eq!(removed, ["b1"]);
        assert!(dir.path().join("files/stray-file").exists());
        assert_eq!(tree.read(&b).unwrap().hosts, b"");

        tree.remove(&a).unwrap();
        tree.remove(&a).unwrap();
        assert!(!dir.path().join("files/a1").exists());
    }
}
