//! Sockets and the OS, behind one portable surface: creating and configuring sockets
//! (socket2), receiving batches with per-datagram metadata, sending batches, the event loop
//! ([`Poller`], on mio), and stdin/stdout as the loops need them. What differs per system
//! lives in `sys/` (Linux: recvmmsg, sendmmsg, SO_RXQ_OVFL, /proc; macOS and FreeBSD:
//! recvmsg/sendmsg loops; Windows: plain sockets), chosen in `sys/mod.rs`. listen.rs and
//! send.rs see only what is here.

mod event;
mod sys;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::SystemTime;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

#[cfg(unix)]
pub(crate) use event::SIGNAL as SIGNAL_TOKEN;
pub use event::{Poller, ROLE_TOKENS, Wake};

pub use sys::{
    AsSocket, Input, SYSTEM, Stdout, has_pending, interface, interface_index, is_broadcast,
    is_dev_null, is_no_ipv6, kernel_drops, stdout,
};

/// Room for the largest UDP payload (65,527 bytes over IPv6), rounded to a power of two.
pub const DATAGRAM_BUFFER: usize = 65_536;
/// Datagrams per batch (one recvmmsg or sendmmsg call on Linux).
pub const BATCH: usize = 32;
/// What listen asks for as its receive buffer unless told otherwise.
pub const DEFAULT_RECV_BUFFER: usize = 8 << 20;

/// An error for a flag this system cannot honour, naming both (usage, exit 2).
pub fn unsupported(flag: &str, why: &str) -> anyhow::Error {
    crate::exit::usage(format!("{flag} is not available on {SYSTEM} ({why})"))
}

/// A network interface the user named, by name or by one of its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    /// Its first IPv4 address (IPv4 multicast picks the interface by address).
    pub v4: Option<Ipv4Addr>,
}

/// Options for a receiving socket.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    pub reuse_port: bool,
    pub recv_buffer: usize,
    /// Ask the kernel for each datagram's arrival time ([`Meta::at`]).
    pub timestamps: bool,
}

/// A bound receiving socket.
#[derive(Debug)]
pub struct Listener {
    pub socket: mio::net::UdpSocket,
    pub local: SocketAddr,
    /// Bound to a wildcard address: the destination of each datagram comes from IP_PKTINFO.
    pub wildcard: bool,
    /// The usable receive buffer the system granted (SO_RCVBUF).
    pub recv_buffer: usize,
}

fn new_socket(addr: &SocketAddr) -> io::Result<Socket> {
    // socket2 makes it close-on-exec (not inherited on Windows) itself.
    Socket::new(Domain::for_address(*addr), Type::DGRAM, Some(Protocol::UDP))
}

/// Creates, configures and binds a receiving socket (non-blocking).
pub fn bind_listener(addr: SocketAddr, opts: ListenOptions) -> io::Result<Listener> {
    let socket = new_socket(&addr)?;
    let wildcard = addr.ip().is_unspecified();
    if addr.is_ipv6() {
        // [::] is dual-stack on purpose (the system default varies); other IPv6 addresses
        // are IPv6 only.
        socket.set_only_v6(!wildcard)?;
    }
    if opts.reuse_port {
        sys::set_reuse_port(&socket)?;
    }
    let recv_buffer = sys::set_recv_buffer(&socket, opts.recv_buffer);
    if wildcard {
        sys::enable_packet_info(&socket, addr.is_ipv6())?;
    }
    sys::enable_drop_counter(&socket);
    if opts.timestamps {
        sys::enable_timestamps(&socket);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    let local = socket.local_addr()?;
    Ok(Listener {
        socket: mio::net::UdpSocket::from_std(socket),
        local,
        wildcard,
        recv_buffer,
    })
}

/// Asks the kernel to stamp each datagram received on `socket` with its arrival time, so a
/// datagram read late, or in a batch, still says when it arrived. Best effort: where the
/// system has no such stamp, [`Meta::at`] stays `None` and callers use the time they read it.
pub fn enable_timestamps(socket: &impl AsSocket) {
    sys::enable_timestamps(&SockRef::from(socket));
}

/// Joins `groups` (those of the socket's family) on `listener`, on `interface` or the one
/// the system picks, and keeps the socket from receiving groups it did not join.
pub fn join_groups(
    listener: &Listener,
    groups: &[IpAddr],
    interface: Option<&Interface>,
) -> anyhow::Result<()> {
    let socket = SockRef::from(&listener.socket);
    let index = interface.map_or(0, |i| i.index);
    let mut joined = false;
    for group in groups {
        let result = match (group, listener.local) {
            (IpAddr::V4(g), SocketAddr::V4(_)) => {
                socket.join_multicast_v4_n(g, &socket2::InterfaceIndexOrAddress::Index(index))
            }
            (IpAddr::V6(g), SocketAddr::V6(local)) => {
                let index = if index == 0 { local.scope_id() } else { index };
                socket.join_multicast_v6(g, index)
            }
            _ => continue,
        };
        let on = interface.map_or(String::new(), |i| format!(" on {}", i.name));
        result.map_err(|e| anyhow::anyhow!("cannot join {group}{on} ({}): {e}", listener.local))?;
        tracing::info!("{}: joined {group}{on}", listener.local);
        joined = true;
    }
    if joined {
        sys::receive_joined_only(&socket, listener.local.is_ipv6()).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot limit the socket to the groups it joined: {e}",
                listener.local
            )
        })?;
    }
    Ok(())
}

/// Options for a sending socket.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    pub bind: Option<SocketAddr>,
    pub broadcast: bool,
    pub ttl: Option<u32>,
    pub interface: Option<Interface>,
    pub multicast_loop: bool,
}

/// A blocking socket to send to `dest`, connected unless answers come from other addresses
/// than the destination (a group, a broadcast): then "port unreachable" comes back as an
/// error (even with --broadcast), and only the destination's replies are taken.
pub fn sender(dest: SocketAddr, opts: &SendOptions) -> io::Result<(UdpSocket, bool)> {
    let socket = new_socket(&dest)?;
    if opts.broadcast {
        socket.set_broadcast(true)?;
    }
    if let Some(ttl) = opts.ttl {
        match dest {
            SocketAddr::V4(_) => {
                socket.set_ttl_v4(ttl)?;
                socket.set_multicast_ttl_v4(ttl)?;
            }
            SocketAddr::V6(_) => {
                socket.set_unicast_hops_v6(ttl)?;
                socket.set_multicast_hops_v6(ttl)?;
            }
        }
    }
    match (dest, &opts.interface) {
        (SocketAddr::V4(d), iface) if d.ip().is_multicast() => {
            socket.set_multicast_loop_v4(opts.multicast_loop)?;
            if let Some(i) = iface {
                let addr = i.v4.ok_or_else(|| {
                    io::Error::other(format!("interface {} has no IPv4 address", i.name))
                })?;
                socket.set_multicast_if_v4(&addr)?;
            }
        }
        (SocketAddr::V6(d), iface) if d.ip().is_multicast() => {
            socket.set_multicast_loop_v6(opts.multicast_loop)?;
            let index = iface.as_ref().map_or(d.scope_id(), |i| i.index);
            if index != 0 {
                socket.set_multicast_if_v6(index)?;
            }
        }
        (_, Some(i)) => sys::bind_to_interface(&socket, i, dest.is_ipv6())?,
        (_, None) => {}
    }
    let local = opts.bind.unwrap_or(match dest {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    });
    socket.bind(&local.into())?;
    // Only with --broadcast can the destination be a broadcast address (without it, connect
    // fails there with "permission denied", which names the flag); asking the interfaces
    // costs a netlink dump (100-150 us), so only then.
    let may_be_broadcast = opts.broadcast && !dest.ip().is_loopback() && is_broadcast(dest.ip());
    let connect = !dest.ip().is_multicast() && !may_be_broadcast;
    if connect {
        socket.connect(&dest.into())?;
    }
    Ok((socket.into(), connect))
}

/// Metadata of one received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub len: usize,
    pub from: SocketAddr,
    /// Destination address from IP_PKTINFO (or IP_RECVDSTADDR), where the socket asked for it.
    pub to: Option<IpAddr>,
    /// The local address to answer from (IP_PKTINFO's spec_dst: for a broadcast or a
    /// multicast, the receiving interface's address rather than the destination).
    pub reply_from: Option<IpAddr>,
    /// The socket's cumulative drop counter (SO_RXQ_OVFL), where the kernel attaches it.
    pub drops: Option<u32>,
    /// When the datagram arrived, from the kernel, where it was asked for and the system
    /// has it.
    pub at: Option<SystemTime>,
    pub truncated: bool,
}

impl Meta {
    fn new(len: usize, from: SocketAddr) -> Self {
        Meta {
            len,
            from,
            to: None,
            reply_from: None,
            drops: None,
            at: None,
            truncated: false,
        }
    }
}

/// A socket the batch calls read: a plain std socket, or one the event loop watches, whose
/// reads must let the loop know when they would block (mio re-arms Windows' readiness
/// only through its own calls; epoll and kqueue need nothing).
pub trait DatagramSocket: AsSocket {
    /// Runs one read on the socket.
    fn io<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        f()
    }
}

impl DatagramSocket for UdpSocket {}

impl DatagramSocket for mio::net::UdpSocket {
    fn io<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        self.try_io(f)
    }
}

/// Buffers for batched receive, allocated once and reused for the whole run.
pub struct Receiver {
    /// One buffer of `batch` slots of DATAGRAM_BUFFER bytes. One allocation this large is
    /// mapped fresh (zero pages, untouched), so only the pages datagrams land in count
    /// towards memory; 32 separate 64 KiB buffers were zeroed up front (1.5 MiB resident).
    bufs: Vec<u8>,
    batch: usize,
    meta: Vec<Meta>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("batch", &self.batch)
            .finish()
    }
}

impl Receiver {
    pub fn new(batch: usize) -> Self {
        Receiver {
            bufs: vec![0u8; batch * DATAGRAM_BUFFER],
            batch,
            meta: Vec::with_capacity(batch),
        }
    }

    /// Receives what is waiting on `socket` (non-blocking), at most `max` datagrams (and at
    /// most one batch). Returns how many arrived; 0 when none was waiting. Fewer than `max`
    /// means the socket's queue is empty now (what an edge-triggered wait needs).
    pub fn recv(&mut self, socket: &impl DatagramSocket, max: usize) -> io::Result<usize> {
        self.recv_with(socket, max, false)
    }

    /// Like `recv`; with `block`, waits for the first datagram as the socket's own timeout
    /// (SO_RCVTIMEO) allows. 0 then means the timeout passed or a signal arrived.
    pub fn recv_with(
        &mut self,
        socket: &impl DatagramSocket,
        max: usize,
        block: bool,
    ) -> io::Result<usize> {
        self.meta.clear();
        let max = max.clamp(1, self.batch);
        sys::recv_batch(socket, &mut self.bufs, max, block, &mut self.meta)?;
        Ok(self.meta.len())
    }

    /// Datagram `i` of the last batch.
    pub fn get(&self, i: usize) -> (&[u8], &Meta) {
        let meta = &self.meta[i];
        let start = i * DATAGRAM_BUFFER;
        (
            &self.bufs[start..start + meta.len.min(DATAGRAM_BUFFER)],
            meta,
        )
    }
}

/// Sends `payloads` as datagrams with as few system calls as it takes, to `dest` or, for a
/// connected socket (`dest` None), to its peer. Returns how many went out before an error,
/// with the error; `Ok` means all of them.
pub fn send_batch(
    socket: &impl AsSocket,
    payloads: &[&[u8]],
    dest: Option<SocketAddr>,
) -> Result<(), (usize, io::Error)> {
    sys::send_batch(&SockRef::from(socket), payloads, dest)
}

/// Sends `payload` to `to`, from the local address `from` when given and the system lets
/// us choose (IP_PKTINFO): a wildcard socket then answers from the address the peer sent
/// to, not whatever the routing table picks, so a peer with a connected socket accepts it.
pub fn send_from(
    socket: &impl AsSocket,
    payload: &[u8],
    to: SocketAddr,
    from: Option<IpAddr>,
) -> io::Result<()> {
    let socket = SockRef::from(socket);
    // An IPv6 socket takes its source as IPv6, IPv4 ones as IPv4-mapped.
    let from = match (from, to) {
        (Some(IpAddr::V4(v4)), SocketAddr::V6(_)) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        _ => from,
    };
    match from.filter(|ip| !ip.is_multicast() && !ip.is_unspecified()) {
        None => socket.send_to(payload, &to.into()).map(drop),
        Some(ip) => sys::send_from(&socket, payload, to, ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_socket_has_dropped_nothing_or_cannot_tell() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(matches!(kernel_drops(&s), Some(0) | None));
    }
}
