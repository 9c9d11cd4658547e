//! Streaming a container's log file (a host file the gateway names in `log_path`) while
//! it runs. The gateway has no streaming RPC; the CLI runs on the same host, so it
//! reads the file directly and polls the container's state to know when to stop.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom, Write},
    path::PathBuf,
    time::Duration,
};

use cnet_proto::gateway::v1::{Container, ContainerState};

use crate::gateway::Gateway;

const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Copies `container`'s output to `out` as it grows and returns the container as it
/// was once it stopped running.
pub async fn until_exit(
    gateway: &Gateway,
    container: &Container,
    out: &mut impl Write,
) -> anyhow::Result<Container> {
    let mut tail = LogTail::new(&container.log_path);
    loop {
        tail.pump(out)?;
        let current = gateway.inspect_container(&container.id).await?;
        if current.state() != ContainerState::Running {
            // Whatever the process wrote before it ended is in the file by now.
            tail.pump(out)?;
            return Ok(current);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A reader that remembers how far into a growing file it got.
pub struct LogTail {
    path: PathBuf,
    file: Option<File>,
    offset: u64,
}

impl LogTail {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), file: None, offset: 0 }
    }

    /// Copies everything new to `out`. A file that does not exist yet is empty; a file
    /// that shrank was rewritten (a restarted container), so it is read again from the
    /// start.
    pub fn pump(&mut self, out: &mut impl Write) -> anyhow::Result<()> {
        let path = self.path.display().to_string();
        let read = |error: io::Error| anyhow::anyhow!("read log file {path}: {error}");
        if self.file.is_none() {
            if self.path.as_os_str().is_empty() {
                return Ok(());
            }
            match File::open(&self.path) {
                Ok(file) => self.file = Some(file),
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(error) => return Err(read(error)),
            }
        }
        let file = self.file.as_mut().expect("opened above");
        if file.metadata().map_err(read)?.len() < self.offset {
            self.offset = 0;
        }
        file.seek(SeekFrom::Start(self.offset)).map_err(read)?;
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk).map_err(read)?;
        self.offset += chunk.len() as u64;
        out.write_all(&chunk)?;
        out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_follows_growth_and_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut tail = LogTail::new(&path);
        let mut out = Vec::new();
        tail.pump(&mut out).unwrap();
        assert!(out.is_empty(), "a missing file is empty");

        std::fs::write(&path, "one\n").unwrap();
        tail.pump(&mut out).unwrap();
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"two\n").unwrap();
        tail.pump(&mut out).unwrap();
        tail.pump(&mut out).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\n");

        std::fs::write(&path, "new\n").unwrap();
        tail.pump(&mut out).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\nnew\n");
    }

    #[test]
    fn no_log_path_prints_nothing() {
        let mut out = Vec::new();
        LogTail::new("").pump(&mut out).unwrap();
        assert!(out.is_empty());
    }
}
