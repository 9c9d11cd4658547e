//! The in-place writer under a reader that reads the file as fast as it can while the
//! file is rewritten thousands of times with contents of varying length.
//!
//! What is asserted is what the writer guarantees whatever the timing: a reader never
//! sees an empty file, never a size the file did not legitimately have, and never a
//! byte that was not at that offset in one of the contents the file held during the
//! read (or padding). Views that mix old and new bytes inside the changed span are the
//! documented residual window (see `cnet_hosts::files::writer`); they are counted and
//! printed, not failed. Set `TEST_LOG=1` to see the counts.

use std::{
    fs::File,
    io::Read,
    os::unix::fs::MetadataExt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use cnet_hosts::files::write_in_place;

const STANDARD: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// Hosts files of many lengths: no link line, links with short and long addresses,
/// extra hosts, several networks.
fn contents() -> Vec<Vec<u8>> {
    let tails = [
        "172.17.0.4\tabcdef012345\n",
        "172.17.0.2\tcentos1 0123456789ab\n172.17.0.4\tabcdef012345\n",
        "172.17.0.7\tcentos1 0123456789ab\n172.17.0.4\tabcdef012345\n",
        "172.17.0.117\tcentos1 0123456789ab\n172.17.0.4\tabcdef012345\n",
        "10.0.0.1\tgw\n172.17.0.5\tdb dbhost centos4\n172.17.0.4\tabcdef012345\n",
        "172.17.0.4\tabcdef012345\n172.18.0.9\tabcdef012345\n172.19.0.9\tabcdef012345\n",
        "",
    ];
    tails.iter().map(|tail| format!("{STANDARD}{tail}").into_bytes()).collect()
}

/// The content written by iteration `k`: a walk over the contents that mixes growing,
/// shrinking and same-length updates.
fn content_of(all: &[Vec<u8>], k: usize) -> &[u8] {
    &all[(k * 3) % all.len()]
}

#[derive(Debug, Default)]
struct Seen {
    views: usize,
    exact: usize,
    mixed: usize,
    violation: Option<String>,
}

/// Checks one view read while the file went from the content of iteration `first` to
/// that of iteration `last`.
fn check(all: &[Vec<u8>], view: &[u8], first: usize, last: usize, seen: &mut Seen) {
    seen.views += 1;
    let window: Vec<&[u8]> = (first..=last).map(|k| content_of(all, k)).collect();
    let fail = |reason: &str| Some(format!("{reason} (iterations {first}..={last}): {view:?}"));
    if view.is_empty() {
        seen.violation = fail("empty file");
        return;
    }
    if !window.iter().any(|content| content.len() == view.len()) {
        seen.violation = fail("a size the file never had");
        return;
    }
    let is_padding = |b: u8| b == b'\n' || b == 0;
    for (offset, &byte) in view.iter().enumerate() {
        let legitimate =
            is_padding(byte) || window.iter().any(|content| content.get(offset) == Some(&byte));
        if !legitimate {
            seen.violation = fail(&format!("byte {byte:#x} at offset {offset} from nowhere"));
            return;
        }
    }
    let exact = window.iter().any(|content| {
        view.starts_with(content) && view[content.len()..].iter().all(|&b| is_padding(b))
    });
    if exact { seen.exact += 1 } else { seen.mixed += 1 }
}

#[test]
fn a_hammering_reader_never_sees_an_empty_file_or_bytes_from_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    let all = Arc::new(contents());
    write_in_place(&path, content_of(&all, 0)).unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();

    let announced = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (all, path) = (all.clone(), path.clone());
        let (announced, done, stop) = (announced.clone(), done.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = Seen::default();
            let mut buffer = vec![0u8; 64 * 1024];
            while !stop.load(SeqCst) && seen.violation.is_none() {
                let first = done.load(SeqCst);
                // One read() call, as glibc's stdio does for a file smaller than its buffer.
                let length = File::open(&path).unwrap().read(&mut buffer).unwrap();
                let last = announced.load(SeqCst);
                check(&all, &buffer[..length], first, last, &mut seen);
            }
            seen
        })
    };

    let started = Instant::now();
    let mut iterations = 0;
    while iterations < 20_000 && started.elapsed() < Duration::from_secs(2) {
        iterations += 1;
        announced.store(iterations, SeqCst);
        write_in_place(&path, content_of(&all, iterations)).unwrap();
        done.store(iterations, SeqCst);
    }
    stop.store(true, SeqCst);
    let seen = reader.join().unwrap();
    if std::env::var_os("TEST_LOG").is_some() {
        eprintln!("{iterations} rewrites, {seen:?}");
    }
    assert_eq!(seen.violation, None);
    assert!(iterations >= 1_000, "only {iterations} rewrites in 2 s");
    assert!(seen.views >= 100, "the reader only got {} views", seen.views);
    assert_eq!(std::fs::read(&path).unwrap(), content_of(&all, iterations));
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode, "the inode was kept");
}
