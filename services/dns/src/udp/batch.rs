//! Many datagrams per system call: `recvmmsg(2)` fills up to [`BATCH`] receive buffers at
//! once, and `sendmmsg(2)` sends the replies made from them, each to the address its
//! query came from. Under load a client then also gets its answers in bursts, and wakes
//! up once for several of them.
//!
//! One [`Batch`] per runtime thread, not per listener: a container's listener is idle
//! nearly all the time, and the buffers (128 KiB) are only used between two awaits.

use std::{
    cell::RefCell,
    io, mem,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    os::fd::RawFd,
    ptr,
};

/// Datagrams read, and replies sent, per system call.
pub const BATCH: usize = 32;
/// Longer datagrams are cut to this and then fail to parse, as with hickory's server.
pub const MAX_DATAGRAM: usize = 4096;

thread_local! {
    static BATCH_OF_THIS_THREAD: RefCell<Option<Box<Batch>>> = const { RefCell::new(None) };
}

/// Runs `work` with this thread's batch. `work` must not wait (it cannot: it is not async).
pub fn with_batch<T>(work: impl FnOnce(&mut Batch) -> T) -> T {
    BATCH_OF_THIS_THREAD.with_borrow_mut(|batch| work(batch.get_or_insert_with(Batch::new)))
}

pub struct Batch {
    datagrams: Box<[[u8; MAX_DATAGRAM]; BATCH]>,
    lengths: [usize; BATCH],
    sources: [libc::sockaddr_storage; BATCH],
    source_lengths: [libc::socklen_t; BATCH],
    received: usize,
    /// The reply to each datagram; empty for none (yet).
    replies: [Vec<u8>; BATCH],
}

impl Batch {
    fn new() -> Box<Self> {
        Box::new(Self {
            datagrams: vec![[0; MAX_DATAGRAM]; BATCH]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("BATCH buffers")),
            lengths: [0; BATCH],
            // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
            sources: unsafe { mem::zeroed() },
            source_lengths: [0; BATCH],
            received: 0,
            replies: std::array::from_fn(|_| Vec::with_capacity(512)),
        })
    }

    /// Reads what is queued on `socket`, up to [`BATCH`] datagrams, without waiting.
    /// Returns how many; `WouldBlock` when there were none.
    pub fn receive(&mut self, socket: RawFd) -> io::Result<usize> {
        self.received = 0;
        let datagrams = self.datagrams.as_mut_ptr();
        let sources = self.sources.as_mut_ptr();
        // SAFETY (both arrays): all zeroes is a valid iovec and mmsghdr (null pointers,
        // zero lengths); the pointers set below point into `self`, which outlives the call.
        let mut vectors: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        for (index, (vector, header)) in vectors.iter_mut().zip(&mut headers).enumerate() {
            // SAFETY: index < BATCH, the length of both arrays.
            *vector = libc::iovec {
                iov_base: unsafe { datagrams.add(index) }.cast(),
                iov_len: MAX_DATAGRAM,
            };
            header.msg_hdr.msg_name = unsafe { sources.add(index) }.cast();
            header.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as _;
            header.msg_hdr.msg_iov = vector;
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points to a buffer and an address of the sizes it gives.
        let count = unsafe {
            libc::recvmmsg(
                socket,
                headers.as_mut_ptr(),
                BATCH as _,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        let count = usize::try_from(count).map_err(|_| io::Error::last_os_error())?;
        for (index, header) in headers[..count].iter().enumerate() {
            self.lengths[index] = header.msg_len as usize;
            self.source_lengths[index] = header.msg_hdr.msg_namelen;
            self.replies[index].clear();
        }
        self.received = count;
        Ok(count)
    }

    /// Datagram `index` of those read by [`Batch::receive`], with its sender (None: not
    /// an IP address).
    pub fn datagram(&self, index: usize) -> (&[u8], Option<SocketAddr>) {
        let source = socket_address(&self.sources[index], self.source_lengths[index]);
        (&self.datagrams[index][..self.lengths[index]], source)
    }

    /// Where the reply to datagram `index` is written; left empty, nothing is sent.
    pub fn reply(&mut self, index: usize) -> &mut Vec<u8> {
        &mut self.replies[index]
    }

    /// Sends every reply to where its query came from. A reply the kernel refuses (a
    /// full buffer, an unreachable address) is dropped, as a datagram may be.
    pub fn send_replies(&mut self, socket: RawFd) {
        let sources = self.sources.as_mut_ptr();
        // SAFETY: as in `receive`.
        let mut vectors: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let mut count = 0;
        for (index, reply) in self.replies[..self.received].iter_mut().enumerate() {
            if reply.is_empty() {
                continue;
            }
            vectors[count] =
                libc::iovec { iov_base: reply.as_mut_ptr().cast(), iov_len: reply.len() };
            let header = &mut headers[count].msg_hdr;
            // SAFETY: index < received <= BATCH.
            header.msg_name = unsafe { sources.add(index) }.cast();
            header.msg_namelen = self.source_lengths[index];
            header.msg_iov = &mut vectors[count];
            header.msg_iovlen = 1;
            count += 1;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: headers[sent..count] point to replies and addresses in `self`.
            let result = unsafe {
                libc::sendmmsg(
                    socket,
                    headers[sent..].as_mut_ptr(),
                    (count - sent) as _,
                    libc::MSG_DONTWAIT,
                )
            };
            match usize::try_from(result) {
                Ok(done) => sent += done.max(1),
                Err(_) => {
                    // Only the first message of the call failed; go on after it.
                    let error = io::Error::last_os_error();
                    tracing::debug!(%error, "sending an answer failed");
                    sent += 1;
                }
            }
        }
    }
}

/// The IP address in `storage`, of `length` bytes as the kernel filled it.
fn socket_address(storage: &libc::sockaddr_storage, length: libc::socklen_t) -> Option<SocketAddr> {
    let length = length as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if length >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in here, and storage is aligned for it.
            let address =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr));
            Some(SocketAddrV4::new(ip, u16::from_be(address.sin_port)).into())
        }
        libc::AF_INET6 if length >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a sockaddr_in6.
            let address = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(address.sin6_addr.s6_addr);
            let port = u16::from_be(address.sin6_port);
            let flow = u32::from_be(address.sin6_flowinfo);
            Some(SocketAddrV6::new(ip, port, flow, address.sin6_scope_id).into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_back_from_the_kernels_form() {
        // SAFETY: all zeroes is a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        // SAFETY: storage is large enough and aligned for either form.
        let v4 = unsafe {
            &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
        };
        v4.sin_family = libc::AF_INET as _;
        v4.sin_port = 5353u16.to_be();
        v4.sin_addr.s_addr = u32::from(Ipv4Addr::new(127, 0, 0, 11)).to_be();
        let length = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(socket_address(&storage, length), Some("127.0.0.11:5353".parse().unwrap()));
        assert_eq!(socket_address(&storage, length - 1), None, "cut short");

        // SAFETY: as above.
        storage = unsafe { mem::zeroed() };
        let v6 = unsafe {
            &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
        };
        v6.sin6_family = libc::AF_INET6 as _;
        v6.sin6_port = 53u16.to_be();
        v6.sin6_addr.s6_addr = Ipv6Addr::LOCALHOST.octets();
        let length = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        assert_eq!(socket_address(&storage, length), Some("[::1]:53".parse().unwrap()));

        storage.ss_family = libc::AF_UNIX as _;
        assert_eq!(socket_address(&storage, length), None);
    }
}
