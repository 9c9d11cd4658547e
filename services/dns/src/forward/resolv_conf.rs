//! The host's upstream servers: the `nameserver` lines of a resolv.conf file (normally
//! /etc/resolv.conf), read at start and again whenever the file changes. The check is a
//! `stat` per forwarded query, which costs far less than the query itself and needs no
//! watcher task that could miss a rename.

use std::{fs, os::unix::fs::MetadataExt, path::PathBuf, sync::Mutex, time::SystemTime};

use crate::domain::Upstream;

pub struct ResolvConf {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Default)]
struct Loaded {
    /// None before the first read, Some(None) while the file is missing.
    stamp: Option<Option<Stamp>>,
    servers: Vec<Upstream>,
}

/// What changes when the file is rewritten in place or replaced by a rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    dev: u64,
    ino: u64,
}

impl ResolvConf {
    /// Reads `path` once right away, so that the servers in use are logged at start.
    pub fn new(path: PathBuf) -> Self {
        let resolv_conf = Self { path, loaded: Mutex::new(Loaded::default()) };
        resolv_conf.servers();
        resolv_conf
    }

    /// The current servers, re-read if the file changed since the last call.
    pub fn servers(&self) -> Vec<Upstream> {
        let stamp = fs::metadata(&self.path).ok().map(|metadata| Stamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            dev: metadata.dev(),
            ino: metadata.ino(),
        });
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if loaded.stamp != Some(stamp) {
            loaded.servers = match fs::read_to_string(&self.path) {
                Ok(text) => parse(&text),
                Err(error) => {
                    tracing::warn!(%error, path = %self.path.display(), "cannot read resolv.conf");
                    Vec::new()
                }
            };
            let servers: Vec<String> = loaded.servers.iter().map(ToString::to_string).collect();
            tracing::info!(path = %self.path.display(), ?servers, "host upstream servers");
            loaded.stamp = Some(stamp);
        }
        loaded.servers.clone()
    }
}

/// The servers of `nameserver` lines, in order. Lines that are not usable (a scoped
/// IPv6 address, garbage) are skipped, as the C library skips them.
pub fn parse(text: &str) -> Vec<Upstream> {
    let mut servers = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(address) = words.next() else { continue };
        match Upstream::parse(address) {
            Ok(upstream) if !servers.contains(&upstream) => servers.push(upstream),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "skipping a resolv.conf nameserver"),
        }
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_in_order() {
        let text = "# generated\nsearch example.org\nnameserver 127.0.0.53\n\
                    nameserver   10.0.0.1 # office\n;nameserver 1.1.1.1\nnameserver ::1\n\
                    nameserver fe80::1%eth0\nnameserver\noptions edns0\nnameserver 10.0.0.1\n";
        let servers: Vec<String> = parse(text).iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["127.0.0.53:53", "10.0.0.1:53", "[::1]:53"]);
    }

    #[test]
    fn changes_are_picked_up_and_a_missing_file_means_no_servers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        let resolv_conf = ResolvConf::new(path.clone());
        assert!(resolv_conf.servers().is_empty());
        fs::write(&path, "nameserver 10.0.0.1\n").unwrap();
        assert_eq!(resolv_conf.servers().len(), 1);
        // A replacement by rename, as resolvconf and NetworkManager do.
        let next = dir.path().join("resolv.conf.new");
        fs::write(&next, "nameserver 10.0.0.2\nnameserver 10.0.0.3\n").unwrap();
        fs::rename(&next, &path).unwrap();
        assert_eq!(resolv_conf.servers()[0].to_string(), "10.0.0.2:53");
        fs::remove_file(&path).unwrap();
        assert!(resolv_conf.servers().is_empty());
    }
}
