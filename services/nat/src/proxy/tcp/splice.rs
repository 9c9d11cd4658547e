//! Zero-copy relaying of one TCP connection pair with splice(2), as docker-proxy's Go
//! `io.Copy` does on Linux: each direction moves the bytes socket → pipe → socket inside
//! the kernel (the pipe holds references to the received pages, the sending socket takes
//! them over), so nothing is copied through user space.
//!
//! One pipe per direction per connection, of 1 MiB like Go's. Pipes come from a small
//! process-wide pool and go back to it when the connection closes, empty (a pipe with
//! bytes left in it is closed): opening, sizing and closing two pipes would otherwise
//! add eight system calls to every connection. An idle pipe costs about 10 KiB of kernel
//! memory (its slot array), the pool holds at most [`POOL_MAX`], and nothing is kept per
//! published port.
//!
//! Each direction is a loop: splice what the source has into the empty pipe, then splice
//! the pipe into the destination until it is empty. A source at EOF half-closes the
//! destination (`shutdown(SHUT_WR)`), and the other direction goes on until its own EOF,
//! as `copy_bidirectional` and docker-proxy do. An error in either direction ends the
//! relay, and dropping the sockets closes both connections. (A splice into a socket whose
//! peer is gone raises SIGPIPE, which Rust programs ignore: the call fails with EPIPE.)

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    ptr,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use prometheus::IntCounter;
use tokio::{io::Interest, net::TcpStream};

use crate::proxy::traffic::Traffic;

/// Pipe capacity asked for with `F_SETPIPE_SZ` (1 MiB is the kernel's default
/// `fs.pipe-max-size`, and Go's `maxSpliceSize`). A pipe has a slot per page (or per
/// received fragment), and a splice moves at most what fits: the default 16 slots split
/// a fast stream into many small moves, 256 let one call take up to 1 MiB.
const PIPE_SIZE: usize = 1 << 20;
/// Idle pipes kept for reuse.
const POOL_MAX: usize = 64;
const FLAGS: libc::c_uint = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;

static POOL: Mutex<Vec<Ends>> = Mutex::new(Vec::new());

/// A pipe's two ends.
struct Ends {
    read: OwnedFd,
    write: OwnedFd,
}

impl Ends {
    fn open() -> io::Result<Ends> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two file descriptors into the two-element array it is
        // given; nothing else is read or written.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // Best effort: without the privilege to exceed fs.pipe-max-size, or with a
        // smaller one, the default capacity still works, in smaller moves.
        // SAFETY: fcntl on a descriptor owned above; F_SETPIPE_SZ takes an int argument.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
        Ok(Ends { read, write })
    }
}

/// A pipe lent to one direction of one connection, and how many bytes it holds. Back to
/// the pool when dropped empty, closed otherwise.
struct Pipe {
    ends: Option<Ends>,
    held: usize,
}

impl Pipe {
    /// A pipe from the pool, or a new one.
    fn take() -> io::Result<Pipe> {
        let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let ends = match pooled {
            Some(ends) => ends,
            None => Ends::open()?,
        };
        Ok(Pipe { ends: Some(ends), held: 0 })
    }

    fn ends(&self) -> &Ends {
        self.ends.as_ref().expect("a pipe has its ends until dropped")
    }

    /// Moves what `from` has received into the (empty) pipe. `Ok(0)` is EOF.
    fn fill(&mut self, from: RawFd) -> io::Result<usize> {
        let moved = splice(from, self.ends().write.as_raw_fd(), PIPE_SIZE)?;
        self.held += moved;
        Ok(moved)
    }

    /// Moves what the pipe holds, or as much as `to` takes, into `to`.
    fn drain(&mut self, to: RawFd) -> io::Result<usize> {
        let moved = splice(self.ends().read.as_raw_fd(), to, self.held)?;
        if moved == 0 {
            // Only an empty pipe reads as EOF; never loop on it.
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.held -= moved;
        Ok(moved)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let Some(ends) = self.ends.take() else { return };
        if self.held == 0 {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_MAX {
                pool.push(ends);
            }
        }
    }
}

/// One splice(2) call, never blocking: the sockets and pipes are non-blocking and
/// `SPLICE_F_NONBLOCK` covers the pipe side.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are open for the whole call (borrowed from sockets
        // and a pipe that outlive it); null offsets, as neither end is a file.
        let moved = unsafe { libc::splice(from, ptr::null_mut(), to, ptr::null_mut(), len, FLAGS) };
        if moved >= 0 {
            return Ok(moved as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Relays between `client` and `upstream` until both directions have reached EOF, or
/// one fails. Errors with `Unsupported` before moving anything if no pipe can be had, so
/// the caller can copy instead.
pub async fn relay(client: &TcpStream, upstream: &TcpStream, traffic: &Traffic) -> io::Result<()> {
    let (Ok(mut up), Ok(mut down)) = (Pipe::take(), Pipe::take()) else {
        return Err(io::ErrorKind::Unsupported.into());
    };
    let one_done = AtomicBool::new(false);
    tokio::try_join!(
        // The client has often sent its request by the time it is accepted.
        pump(client, upstream, &mut up, true, &one_done, &traffic.inbound),
        pump(upstream, client, &mut down, false, &one_done, &traffic.outbound),
    )?;
    Ok(())
}

/// One direction: `from` → pipe → `to` until `from`'s EOF, passed on as a half-close.
/// `eager`: try the first read before the runtime has seen `from` readable.
async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &mut Pipe,
    mut eager: bool,
    one_done: &AtomicBool,
    moved: &IntCounter,
) -> io::Result<()> {
    let (source, sink) = (from.as_raw_fd(), to.as_raw_fd());
    loop {
        let received = io(from, Interest::READABLE, eager, || pipe.fill(source)).await?;
        moved.inc_by(received as u64);
        if received == 0 {
            if one_done.swap(true, Ordering::Relaxed) {
                // Both directions are done: the caller closes both sockets now, and
                // close sends this FIN (both receive queues are read to their EOF, so
                // it is a FIN, not a reset): one system call fewer per connection.
                return Ok(());
            }
            return shutdown_write(sink);
        }
        eager = false;
        while pipe.held > 0 {
            // A send buffer is nearly always open.
            io(to, Interest::WRITABLE, true, || pipe.drain(sink)).await?;
        }
        // The loop above awaits nothing while both sockets keep up: let other tasks run.
        tokio::task::consume_budget().await;
    }
}

/// Runs the non-blocking `op` on `stream` once it is ready for `interest`. `eager`: if
/// the runtime has not seen the socket ready yet (a new connection, whose readiness
/// comes with the reactor's next turn), try `op` at once anyway.
async fn io<R>(
    stream: &TcpStream,
    interest: Interest,
    eager: bool,
    mut op: impl FnMut() -> io::Result<R>,
) -> io::Result<R> {
    if eager {
        let mut tried = false;
        match stream.try_io(interest, || {
            tried = true;
            op()
        }) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if !tried {
                    match op() {
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                        done => return done,
                    }
                }
            }
            done => return done,
        }
    }
    stream.async_io(interest, op).await
}

fn shutdown_write(socket: RawFd) -> io::Result<()> {
    // SAFETY: shutdown on a socket descriptor that is open for the whole call.
    if unsafe { libc::shutdown(socket, libc::SHUT_WR) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
