//! Tiny servers the tests start inside a namespace: a TCP server that answers each
//! request (read until the client's half-close) with "<name> saw <peer ip>: <request>",
//! and a UDP server that answers each datagram the same way. Telling the peer address
//! shows which path a connection took: the proxy (peer = the bridge gateway), a DNAT
//! (peer = the real client) or a MASQUERADE (peer = the host's address).

#![allow(dead_code)]

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use nix::sched::{CloneFlags, setns};

/// A running server; dropping it stops it and waits for its thread.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `serve` on a thread inside `netns` (or the caller's namespace).
fn spawn(netns: Option<&str>, serve: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> Server {
    let file = netns.map(|path| std::fs::File::open(path).expect("open netns"));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::spawn({
        let stop = stop.clone();
        move || {
            if let Some(file) = file {
                setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            }
            serve(stop)
        }
    });
    Server { stop, thread: Some(thread) }
}

pub fn tcp(netns: Option<&str>, address: SocketAddr, name: &'static str) -> Server {
    let (bound, wait) = std::sync::mpsc::channel();
    let server = spawn(netns, move |stop| {
        let listener = TcpListener::bind(address).expect("bind tcp server");
        listener.set_nonblocking(true).unwrap();
        bound.send(()).unwrap();
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                    let mut request = String::new();
                    if stream.read_to_string(&mut request).is_ok() {
                        let reply = format!("{name} saw {}: {request}", peer.ip());
                        let _ = stream.write_all(reply.as_bytes());
                    }
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(error) => panic!("tcp server accept: {error}"),
            }
        }
    });
    wait.recv().expect("tcp server bound");
    server
}

pub fn udp(netns: Option<&str>, address: SocketAddr, name: &'static str) -> Server {
    let (bound, wait) = std::sync::mpsc::channel();
    let server = spawn(netns, move |stop| {
        let socket = UdpSocket::bind(address).expect("bind udp server");
        socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        bound.send(()).unwrap();
        let mut buffer = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            match socket.recv_from(&mut buffer) {
                Ok((length, peer)) => {
                    let text = String::from_utf8_lossy(&buffer[..length]);
                    let reply = format!("{name} saw {}: {text}", peer.ip());
                    let _ = socket.send_to(reply.as_bytes(), peer);
                }
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(error) => panic!("udp server receive: {error}"),
            }
        }
    });
    wait.recv().expect("udp server bound");
    server
}
