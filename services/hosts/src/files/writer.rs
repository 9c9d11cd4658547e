//! Rewriting a file in place, for files that are bind-mounted into containers.
//!
//! A bind mount pins the inode it was made from, so the usual write-to-temp-and-rename
//! would leave the container reading the old inode forever; the file must be changed in
//! place. Truncating and then writing (what Docker does) lets a reader see an empty or
//! half-written file. Instead an update is at most two system calls:
//!
//! - growing: first append newlines up to the new length, then write the new content
//!   from the first byte that changes (so the size never changes while visible bytes do);
//! - same length: write only the span between the common prefix and suffix;
//! - shrinking: write the new content from the first byte that changes, padded with
//!   newlines to the old length, then truncate to the new length.
//!
//! Guarantee: between these system calls the file holds the old content or the new
//! content, possibly followed by newlines, which every reader of hosts, resolv.conf and
//! hostname files skips as blank lines. It is never empty (unless the new content is)
//! and never shorter than the shorter of the two contents.
//!
//! Residual window: Linux does not serialise a buffered `read` against a `write` to the
//! same page on ext4 or tmpfs (XFS does), so a `read` that overlaps the write of the
//! changed span can copy a byte-wise mix of old and new bytes within that span, and a
//! `read` that took the file size just before a growing update can return new bytes cut
//! at the old length. Only the changed span is exposed, for the microseconds of one
//! system call; a one-byte change (an address 172.17.0.2 becoming 172.17.0.7) is
//! atomic. A reader that reads a file in several `read` calls (a file larger than its
//! buffer) can also combine parts from before and after an update. Beyond a read that
//! overlaps the update, a reader may see NUL bytes where the padding was truncated.
//! Closing this window would take cooperation from the readers (a lock they honour),
//! which glibc's resolver does not offer.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read},
    os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// The padding byte: a blank line to every parser of these files.
const PAD: u8 = b'\n';

/// One system call of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `pwrite(bytes, offset)`.
    Write { offset: u64, bytes: Vec<u8> },
    /// `ftruncate(len)`.
    Truncate { len: u64 },
}

/// The system calls that turn a file holding `old` into one holding `new`.
pub fn plan(old: &[u8], new: &[u8]) -> Vec<Step> {
    if old == new {
        return Vec::new();
    }
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let offset = prefix as u64;
    if new.len() > old.len() {
        vec![
            Step::Write { offset: old.len() as u64, bytes: vec![PAD; new.len() - old.len()] },
            Step::Write { offset, bytes: new[prefix..].to_vec() },
        ]
    } else if new.len() == old.len() {
        let suffix = old[prefix..].iter().rev().zip(new[prefix..].iter().rev());
        let suffix = suffix.take_while(|(a, b)| a == b).count();
        vec![Step::Write { offset, bytes: new[prefix..new.len() - suffix].to_vec() }]
    } else {
        let mut bytes = new[prefix..].to_vec();
        bytes.resize(old.len() - prefix, PAD);
        vec![Step::Write { offset, bytes }, Step::Truncate { len: new.len() as u64 }]
    }
}

/// Makes `path` hold `content`, in place if the file exists (keeping its inode), else by
/// creating it whole under a temporary name and renaming it into place, so that nobody
/// sees it half-written. Returns whether anything changed. Callers serialise writes to
/// one path.
pub fn write_in_place(path: &Path, content: &[u8]) -> io::Result<bool> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            create_whole(path, content)?;
            return Ok(true);
        }
        Err(error) => return Err(error),
    };
    let mut old = Vec::new();
    (&file).read_to_end(&mut old)?;
    let steps = plan(&old, content);
    for step in &steps {
        apply(&file, step)?;
    }
    Ok(!steps.is_empty())
}

fn apply(file: &File, step: &Step) -> io::Result<()> {
    match step {
        Step::Write { offset, bytes } => file.write_all_at(bytes, *offset),
        Step::Truncate { len } => file.set_len(*len),
    }
}

fn create_whole(path: &Path, content: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(".new");
    let temporary = path.with_file_name(temporary_name);
    let file =
        OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&temporary)?;
    // Readable by every user in the container, whatever the service's umask.
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.write_all_at(content, 0)?;
    drop(file);
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    const STANDARD: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

    /// Contents of many lengths and relations: prefixes of each other, equal lengths,
    /// one-byte changes, empty.
    fn contents() -> Vec<Vec<u8>> {
        let tails = [
            "",
            "172.17.0.2\tcentos1 0123456789ab\n172.17.0.4\tabcdef012345\n",
            "172.17.0.7\tcentos1 0123456789ab\n172.17.0.4\tabcdef012345\n",
            "172.17.0.117\tcentos1 0123456789ab\n172.17.0.4\tabcdef012345\n",
            "172.17.0.4\tabcdef012345\n",
            "172.17.0.4\tabcdef012345\n172.18.0.9\tabcdef012345\n",
            "10.0.0.1\tgw\n172.17.0.5\tdb dbhost centos4\n172.17.0.4\tabcdef012345\n",
        ];
        let mut all: Vec<Vec<u8>> =
            tails.iter().map(|tail| format!("{STANDARD}{tail}").into_bytes()).collect();
        all.push(Vec::new());
        all.push(b"x".to_vec());
        all
    }

    /// `state` is `content` followed by nothing but padding.
    fn is_padded(state: &[u8], content: &[u8]) -> bool {
        state.len() >= content.len()
            && state.starts_with(content)
            && state[content.len()..].iter().all(|&b| b == PAD)
    }

    #[test]
    fn every_state_between_steps_is_old_or_new_plus_blank_lines() {
        for old in contents() {
            for new in contents() {
                let steps = plan(&old, &new);
                assert!(steps.len() <= 2);
                let mut state = old.clone();
                for step in &steps {
                    match step {
                        Step::Write { offset, bytes } => {
                            let end = *offset as usize + bytes.len();
                            if state.len() < end {
                                state.resize(end, 0);
                            }
                            state[*offset as usize..end].copy_from_slice(bytes);
                        }
                        Step::Truncate { len } => state.truncate(*len as usize),
                    }
                    assert!(
                        is_padded(&state, &old) || is_padded(&state, &new),
                        "{old:?} -> {new:?}: intermediate {state:?}"
                    );
                    assert!(!state.is_empty() || new.is_empty());
                    assert!(state.len() >= old.len().min(new.len()));
                }
                assert_eq!(state, new, "{old:?} -> {new:?}");
            }
        }
    }

    #[test]
    fn only_the_changed_span_is_written() {
        let old = format!("{STANDARD}172.17.0.2\tcentos1\n");
        let new = format!("{STANDARD}172.17.0.7\tcentos1\n");
        let offset = (STANDARD.len() + 9) as u64;
        assert_eq!(
            plan(old.as_bytes(), new.as_bytes()),
            [Step::Write { offset, bytes: b"7".to_vec() }]
        );
        assert_eq!(plan(old.as_bytes(), old.as_bytes()), []);
    }

    #[test]
    fn updates_keep_the_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        assert!(write_in_place(&path, b"first\n").unwrap());
        let inode = std::fs::metadata(&path).unwrap().ino();
        for content in contents() {
            write_in_place(&path, &content).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), content);
            assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        }
        assert!(!write_in_place(&path, contents().last().unwrap()).unwrap(), "no change");
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["hosts"], "no temporary file left");
    }
}
