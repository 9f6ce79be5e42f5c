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
use std::time::{Duration, SystemTime};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::addr::{Addr, UnixAddr};

#[cfg(unix)]
pub(crate) use event::SIGNAL as SIGNAL_TOKEN;
pub use event::{Poller, ROLE_TOKENS, Wake};

use sys::RecvScratch;
pub use sys::{
    ABSTRACT_NAMES, AsSocket, Input, SYSTEM, Stdout, UNIX_SOCKETS, has_pending, interface,
    interface_index, is_broadcast, is_no_ipv6, is_too_large, stdin_size, stdout, stdout_kind,
};

/// Room for the largest UDP payload (65,527 bytes over IPv6), rounded to a power of two.
pub const DATAGRAM_BUFFER: usize = 65_536;
/// Datagrams per batch (one recvmmsg or sendmmsg call on Linux).
pub const BATCH: usize = 32;
/// Datagrams send hands to [`send_batch`] at once: enough for whole runs of equal-size
/// records (64 per segmented send on Linux) in every sendmmsg call it makes.
pub const SEND_BATCH: usize = 1024;
/// The page size slots are aligned to (4 KiB; a larger page only costs alignment).
const PAGE: usize = 4096;
/// What listen asks for as its receive buffer unless told otherwise: 32 MiB. The kernel
/// charges only what is queued, so the size is a bound, not an allocation. At 8 MiB,
/// `udpcat send --chunk 65507` into `udpcat listen` on loopback (6-7 GB/s) lost datagrams in
/// 2 of 5 runs (about 120 datagrams, 1.3 ms of sending, fit); 16 MiB lost none in 5, and
/// 32 MiB doubles that margin (about 5 ms of scheduling delay at full speed). Granted past
/// net.core.rmem_max only where the process may (SO_RCVBUFFORCE: root or CAP_NET_ADMIN);
/// `-v` says what it got.
pub const DEFAULT_RECV_BUFFER: usize = 32 << 20;

/// An error for a flag this system cannot honour, naming both (usage, exit 2).
pub fn unsupported(flag: &str, why: &str) -> anyhow::Error {
    crate::exit::usage(format!("{flag} is not available on {SYSTEM} ({why})"))
}

/// What stdout is, for how eagerly output is flushed and what may be watched
/// ([`stdout_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutKind {
    /// /dev/null: nobody can be waiting, so flushing before blocking only costs a call.
    Null,
    /// A regular file.
    File,
    /// A pipe or socket, whose reader going away the event loop watches for.
    Stream,
    /// A terminal or anything else.
    Other,
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
    pub socket: Sock,
    /// Where it listens (the real port for port 0).
    pub local: Addr,
    /// Bound to a wildcard address: the destination of each datagram comes from IP_PKTINFO.
    pub wildcard: bool,
    /// The usable receive buffer the system granted (SO_RCVBUF).
    pub recv_buffer: usize,
    /// Runs of equal-size datagrams may arrive coalesced (UDP_GRO); the receiver splits them.
    pub coalesced: bool,
    /// The socket file to remove at exit (a Unix socket listen created).
    cleanup: Option<std::path::PathBuf>,
}

impl Listener {
    /// The IP address it listens on (for what only IP has: pktinfo, groups).
    pub fn ip(&self) -> Option<SocketAddr> {
        self.local.ip()
    }
}

impl Drop for Listener {
    /// listen removes the socket file it made, however it ends (a second SIGINT aside).
    fn drop(&mut self) {
        if let Some(path) = &self.cleanup {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds a Unix datagram socket for listen (see `sys::bind_unix` for an existing file).
#[cfg(unix)]
pub fn bind_unix_listener(addr: &UnixAddr, recv_buffer: usize) -> anyhow::Result<Listener> {
    let (socket, cleanup) = sys::bind_unix(addr)?;
    let granted = {
        let s = SockRef::from(&socket);
        let _ = s.set_recv_buffer_size(recv_buffer);
        s.recv_buffer_size().unwrap_or(0)
    };
    Ok(Listener {
        socket: Sock::Unix(mio::net::UnixDatagram::from_std(socket)),
        local: Addr::Unix(addr.clone()),
        wildcard: false,
        recv_buffer: granted,
        coalesced: false,
        cleanup,
    })
}

/// Windows has no Unix datagram sockets.
#[cfg(not(unix))]
pub fn bind_unix_listener(addr: &UnixAddr, _recv_buffer: usize) -> anyhow::Result<Listener> {
    Err(crate::exit::usage(format!(
        "{addr}: {SYSTEM} has no Unix datagram sockets"
    )))
}

/// Sends `payload` back to `to` from listen's socket: from the local address `from` for
/// UDP where given (see [`send_from`]), or to a named Unix socket.
pub fn answer(socket: &Sock, payload: &[u8], to: &Addr, from: Option<IpAddr>) -> io::Result<()> {
    match (socket, to) {
        (Sock::Udp(s), Addr::Ip(to)) => send_from(s, payload, *to, from),
        #[cfg(unix)]
        (Sock::Unix(s), Addr::Unix(to)) => sys::unix_send_to(s, payload, to),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot answer {to} from this socket"),
        )),
    }
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
    let coalesced = sys::enable_gro(&socket);
    if opts.timestamps {
        sys::enable_timestamps(&socket);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    let local = socket.local_addr()?;
    Ok(Listener {
        socket: Sock::Udp(mio::net::UdpSocket::from_std(socket)),
        local: Addr::Ip(local),
        wildcard,
        recv_buffer,
        coalesced,
        cleanup: None,
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
    let (Sock::Udp(udp), Some(local)) = (&listener.socket, listener.ip()) else {
        return Ok(());
    };
    let socket = SockRef::from(udp);
    let index = interface.map_or(0, |i| i.index);
    let mut joined = false;
    for group in groups {
        let result = match (group, local) {
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
        sys::receive_joined_only(&socket, local.is_ipv6()).map_err(|e| {
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
#[derive(Debug, Clone)]
pub struct Meta {
    pub len: usize,
    /// The sender, as the socket gave it (IPv4-mapped addresses as they came).
    pub from: Addr,
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
    /// The payload is in the receiver's buffer for large datagrams, not in a slot.
    pub big: bool,
    /// Where the payload starts in the receiver's slots (its slot's start).
    start: usize,
    /// The kernel coalesced datagrams of this size into the message (UDP_GRO; the last may
    /// be shorter); 0: one datagram.
    segment: usize,
}

impl Meta {
    /// IPV6_PKTINFO's address, the same on every system: where the datagram was sent, and
    /// where to answer from (IP_PKTINFO, when it came too, says more for an IPv4 datagram on
    /// a dual-stack socket, so it is not overwritten). Windows reads no control messages.
    #[cfg(unix)]
    fn v6_destination(&mut self, ip: Ipv6Addr) {
        self.to.get_or_insert(IpAddr::V6(ip));
        self.reply_from.get_or_insert(IpAddr::V6(ip));
    }

    fn new(len: usize, from: SocketAddr) -> Self {
        Self::from_addr(len, Addr::Ip(from))
    }

    fn from_addr(len: usize, from: Addr) -> Self {
        Meta {
            len,
            from,
            to: None,
            reply_from: None,
            drops: None,
            at: None,
            truncated: false,
            big: false,
            start: 0,
            segment: 0,
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

/// Something a [`Receiver`] reads datagrams from: a UDP socket (std's, or one the loop
/// watches), or listen's and send's socket of either kind.
pub trait Source {
    /// Fills `rx` with up to `max` messages (at least 1 slot), each one datagram or, where
    /// the kernel coalesced them (UDP_GRO), several; returns how many messages.
    fn fill(&self, rx: &mut Receiver, max: usize, block: bool) -> io::Result<usize>;
}

impl Source for UdpSocket {
    fn fill(&self, rx: &mut Receiver, max: usize, block: bool) -> io::Result<usize> {
        let p = rx.parts();
        sys::recv_batch(self, p.slots, p.scratch, max, block, p.meta)
    }
}

impl Source for mio::net::UdpSocket {
    fn fill(&self, rx: &mut Receiver, max: usize, block: bool) -> io::Result<usize> {
        let p = rx.parts();
        sys::recv_batch(self, p.slots, p.scratch, max, block, p.meta)
    }
}

/// A socket listen receives on: UDP, or (on Unix) a Unix datagram socket.
#[derive(Debug)]
pub enum Sock {
    Udp(mio::net::UdpSocket),
    #[cfg(unix)]
    Unix(mio::net::UnixDatagram),
}

impl Sock {
    /// The UDP socket, where this is one.
    fn udp(&self) -> Option<&mio::net::UdpSocket> {
        match self {
            Sock::Udp(s) => Some(s),
            #[cfg(unix)]
            Sock::Unix(_) => None,
        }
    }

    /// Sends on a connected socket.
    pub fn send(&self, payload: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Udp(s) => s.send(payload),
            #[cfg(unix)]
            Sock::Unix(s) => s.send(payload),
        }
    }

    /// Sends `payloads` on a connected socket in as few system calls as it takes; see
    /// [`send_batch`].
    pub fn send_batch(&self, payloads: &[&[u8]]) -> Result<(), (usize, io::Error)> {
        match self {
            Sock::Udp(s) => send_batch(s, payloads, None),
            #[cfg(unix)]
            Sock::Unix(s) => send_each(&SockRef::from(s), payloads, None),
        }
    }

    /// The socket's own address (a Unix socket that never bound has none).
    pub fn local(&self) -> Addr {
        match self {
            Sock::Udp(s) => s
                .local_addr()
                .map(|a| Addr::Ip(crate::addr::canonical(a)))
                .unwrap_or(Addr::Unix(UnixAddr::Unnamed)),
            #[cfg(unix)]
            Sock::Unix(_) => Addr::Unix(UnixAddr::Unnamed),
        }
    }

    /// A non-blocking socket connected to `dest` on an ephemeral port, for forward. For a
    /// Unix destination it has a name, so that DEST can answer: Linux autobind, elsewhere a
    /// temporary file, removed with the returned [`Cleanup`].
    pub fn connected(dest: &Addr, timestamps: bool) -> io::Result<(Sock, Option<Cleanup>)> {
        match dest {
            Addr::Ip(dest) => {
                let socket = new_socket(dest)?;
                let any = match dest {
                    SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                    SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
                };
                socket.set_nonblocking(true)?;
                socket.bind(&any.into())?;
                socket.connect(&(*dest).into())?;
                let std: UdpSocket = socket.into();
                if timestamps {
                    enable_timestamps(&std);
                }
                Ok((Sock::Udp(mio::net::UdpSocket::from_std(std)), None))
            }
            #[cfg(unix)]
            Addr::Unix(u) => {
                let (socket, _, file) = sys::unix_sender(u, None, true)?;
                let file = file.map(Cleanup);
                socket.set_nonblocking(true)?;
                Ok((Sock::Unix(mio::net::UnixDatagram::from_std(socket)), file))
            }
            #[cfg(not(unix))]
            Addr::Unix(u) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{u}: {SYSTEM} has no Unix datagram sockets"),
            )),
        }
    }
}

impl Source for Sock {
    fn fill(&self, rx: &mut Receiver, max: usize, block: bool) -> io::Result<usize> {
        match self {
            Sock::Udp(s) => s.fill(rx, max, block),
            #[cfg(unix)]
            Sock::Unix(s) => {
                let p = rx.parts();
                sys::recv_unix(s, p.slots, p.big, max, block, p.meta)
            }
        }
    }
}

/// A socket send sends on (blocking, so --reply can wait with SO_RCVTIMEO): UDP, or (on
/// Unix) a Unix datagram socket.
#[derive(Debug)]
pub enum Link {
    Udp(UdpSocket),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixDatagram),
}

impl Link {
    /// Sends on a connected socket.
    pub fn send(&self, payload: &[u8]) -> io::Result<usize> {
        match self {
            Link::Udp(s) => s.send(payload),
            #[cfg(unix)]
            Link::Unix(s) => s.send(payload),
        }
    }

    /// Sends to `dest` (an unconnected UDP socket: broadcast, multicast).
    pub fn send_to(&self, payload: &[u8], dest: &Addr) -> io::Result<usize> {
        match (self, dest) {
            (Link::Udp(s), Addr::Ip(d)) => s.send_to(payload, d),
            _ => self.send(payload),
        }
    }

    /// Sends `payloads` in as few system calls as it takes (see [`send_batch`]).
    pub fn send_batch(
        &self,
        payloads: &[&[u8]],
        dest: Option<SocketAddr>,
    ) -> Result<(), (usize, io::Error)> {
        match self {
            Link::Udp(s) => send_batch(s, payloads, dest),
            #[cfg(unix)]
            Link::Unix(s) => send_each(&SockRef::from(s), payloads, None),
        }
    }

    /// A pending error ("port unreachable" on a connected UDP socket).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Link::Udp(s) => s.take_error(),
            #[cfg(unix)]
            Link::Unix(s) => s.take_error(),
        }
    }

    pub fn set_read_timeout(&self, d: Option<std::time::Duration>) -> io::Result<()> {
        match self {
            Link::Udp(s) => s.set_read_timeout(d),
            #[cfg(unix)]
            Link::Unix(s) => s.set_read_timeout(d),
        }
    }

    /// Whether a datagram (or an error) is waiting, without taking it.
    pub fn has_pending(&self) -> bool {
        match self {
            Link::Udp(s) => has_pending(s),
            #[cfg(unix)]
            Link::Unix(s) => has_pending(s),
        }
    }

    /// The same socket as the event loop can watch it (non-blocking from now on).
    pub fn watched(&self) -> io::Result<Sock> {
        match self {
            Link::Udp(s) => {
                let s = s.try_clone()?;
                s.set_nonblocking(true)?;
                Ok(Sock::Udp(mio::net::UdpSocket::from_std(s)))
            }
            #[cfg(unix)]
            Link::Unix(s) => {
                let s = s.try_clone()?;
                s.set_nonblocking(true)?;
                Ok(Sock::Unix(mio::net::UnixDatagram::from_std(s)))
            }
        }
    }
}

/// A file that goes when this does: the socket file send or forward made to be answerable.
#[derive(Debug)]
pub struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A blocking Unix datagram socket connected to `dest`, named when it must be answerable
/// (`named`, or `bind`): Linux autobind, elsewhere a temporary file removed with the
/// returned [`Cleanup`]. Returns the socket, its name, and that guard.
#[cfg(unix)]
pub fn unix_link(
    dest: &UnixAddr,
    bind: Option<&UnixAddr>,
    named: bool,
) -> io::Result<(Link, Addr, Option<Cleanup>)> {
    let (socket, local, cleanup) = sys::unix_sender(dest, bind, named)?;
    Ok((Link::Unix(socket), Addr::Unix(local), cleanup.map(Cleanup)))
}

/// Windows has no Unix datagram sockets.
#[cfg(not(unix))]
pub fn unix_link(
    dest: &UnixAddr,
    _bind: Option<&UnixAddr>,
    _named: bool,
) -> io::Result<(Link, Addr, Option<Cleanup>)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{dest}: {SYSTEM} has no Unix datagram sockets"),
    ))
}

impl Source for Link {
    fn fill(&self, rx: &mut Receiver, max: usize, block: bool) -> io::Result<usize> {
        match self {
            Link::Udp(s) => s.fill(rx, max, block),
            #[cfg(unix)]
            Link::Unix(s) => {
                let p = rx.parts();
                sys::recv_unix(s, p.slots, p.big, max, block, p.meta)
            }
        }
    }
}

/// One datagram of a receive: which message it came in, and where its payload is.
#[derive(Debug, Clone, Copy)]
struct Item {
    msg: u32,
    start: u32,
    len: u32,
}

/// A [`Receiver`]'s buffers as one receive fills them.
struct Parts<'a> {
    slots: &'a mut [u8],
    #[cfg_attr(not(unix), allow(dead_code))]
    big: &'a mut Vec<u8>,
    scratch: &'a mut RecvScratch,
    meta: &'a mut Vec<Meta>,
}

/// Waiting for datagrams by receiving them: a blocking receive on listen's one UDP socket
/// in place of the event loop's wait and the receive after it, one system call less per
/// wake-up (an echo's round trip is then a receive and a send, as in C). Only where nothing
/// else needs watching: one socket, no role with events of its own, stdout not a pipe or
/// socket whose reader may leave, and a system where a signal interrupts the receive (Unix,
/// with SO_RCVTIMEO set: such receives are never restarted).
#[derive(Debug)]
pub struct DirectWait {
    /// The receive timeout set on the socket now.
    set: std::cell::Cell<Duration>,
}

impl DirectWait {
    /// How long one wait blocks at most: the loop then checks --timeout, and a signal that
    /// arrived just before the receive began (so did not interrupt it) is seen.
    pub const TICK: Duration = Duration::from_millis(100);

    /// Puts `listeners[0]` in blocking mode with a receive timeout of [`Self::TICK`], where
    /// the conditions above hold (`others`: something else must be watched).
    pub fn new(listeners: &[Listener], others: bool) -> io::Result<Option<DirectWait>> {
        let ([l], false, true) = (listeners, others, sys::INTERRUPTIBLE_RECEIVE) else {
            return Ok(None);
        };
        let Some(socket) = l.socket.udp() else {
            return Ok(None);
        };
        if stdout_kind() == StdoutKind::Stream {
            return Ok(None);
        }
        let socket = SockRef::from(socket);
        socket.set_read_timeout(Some(Self::TICK))?;
        socket.set_nonblocking(false)?;
        Ok(Some(DirectWait {
            set: std::cell::Cell::new(Self::TICK),
        }))
    }

    /// Blocks until datagrams arrive on `listener` (kept in `rx` for its next `recv`), a
    /// signal arrives, or [`Self::TICK`] passes, or `limit` if that is sooner.
    pub fn wait(
        &self,
        rx: &mut Receiver,
        listener: &Listener,
        limit: Option<Duration>,
    ) -> io::Result<()> {
        // Never zero: SO_RCVTIMEO 0 waits for ever.
        let tick = limit.map_or(Self::TICK, |l| {
            l.clamp(Duration::from_millis(1), Self::TICK)
        });
        if tick != self.set.get() {
            if let Some(s) = listener.socket.udp() {
                SockRef::from(s).set_read_timeout(Some(tick))?;
            }
            self.set.set(tick);
        }
        rx.prefetch(&listener.socket)
    }
}

/// Buffers for batched receive, allocated once and reused for the whole run.
pub struct Receiver {
    /// One buffer of `batch` slots of DATAGRAM_BUFFER bytes, from `skew` on. One allocation
    /// this large is mapped fresh (zero pages, untouched), so only the pages datagrams land
    /// in count towards memory; 32 separate 64 KiB buffers were zeroed up front (1.5 MiB
    /// resident).
    bufs: Vec<u8>,
    /// Where the first slot starts in `bufs`: on a page boundary, so every slot does (the
    /// kernel's copy into a slot then starts cache-line aligned).
    skew: usize,
    /// A Unix datagram larger than a slot (Linux allows about 200 KiB), alone in its batch.
    big: Vec<u8>,
    batch: usize,
    /// The metadata of each message of the last receive.
    meta: Vec<Meta>,
    /// Every datagram of the last receive, in order: one per message, or several for a
    /// message the kernel coalesced (12 bytes each, where a `Meta` per datagram was 2,048
    /// copies of ~100 bytes per batch of small coalesced datagrams).
    items: Vec<Item>,
    /// The datagrams of `items` handed out so far: `items[first..first + shown]` is what
    /// [`Receiver::get`] indexes; the rest waits for the next call.
    first: usize,
    shown: usize,
    /// The last system call filled every message asked for: more may be waiting.
    full: bool,
    /// A wait by receiving just found the socket empty: the next `recv` knows without asking.
    found_empty: bool,
    scratch: RecvScratch,
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
        let mut rx = Receiver {
            bufs: vec![0u8; batch * DATAGRAM_BUFFER + PAGE],
            skew: 0,
            big: Vec::new(),
            batch,
            meta: Vec::with_capacity(batch),
            items: Vec::with_capacity(batch),
            first: 0,
            shown: 0,
            full: false,
            found_empty: false,
            scratch: RecvScratch::new(),
        };
        rx.skew = rx.bufs.as_ptr().align_offset(PAGE).min(PAGE);
        rx
    }

    /// What a receive fills, borrowed apart.
    fn parts(&mut self) -> Parts<'_> {
        let end = self.skew + self.batch * DATAGRAM_BUFFER;
        Parts {
            slots: &mut self.bufs[self.skew..end],
            big: &mut self.big,
            scratch: &mut self.scratch,
            meta: &mut self.meta,
        }
    }

    /// Receives what is waiting on `socket` (non-blocking), at most `max` datagrams.
    /// Returns how many are ready to [`get`](Self::get); 0 when none was waiting.
    pub fn recv(&mut self, socket: &impl Source, max: usize) -> io::Result<usize> {
        self.recv_with(socket, max, false)
    }

    /// Like `recv`; with `block`, waits for the first datagram as the socket's own timeout
    /// (SO_RCVTIMEO) allows. 0 then means the timeout passed or a signal arrived.
    /// Datagrams of a coalesced buffer past `max` are kept for the next call, which
    /// returns them without a system call.
    pub fn recv_with(
        &mut self,
        socket: &impl Source,
        max: usize,
        block: bool,
    ) -> io::Result<usize> {
        let max = max.max(1);
        self.first += self.shown;
        if std::mem::take(&mut self.found_empty) && self.first >= self.items.len() {
            self.shown = 0;
            return Ok(0);
        }
        if self.first >= self.items.len() {
            self.fill(socket, max.min(self.batch), block)?;
        }
        self.shown = max.min(self.items.len() - self.first);
        Ok(self.shown)
    }

    /// One receive of up to `asked` messages, then the datagrams they hold into `items`.
    fn fill(&mut self, socket: &impl Source, asked: usize, block: bool) -> io::Result<()> {
        self.meta.clear();
        self.items.clear();
        self.first = 0;
        self.shown = 0;
        let messages = socket.fill(self, asked, block)?;
        self.full = messages == asked;
        for (k, m) in self.meta.iter().enumerate() {
            let step = if m.segment > 0 && m.len > m.segment {
                m.segment
            } else {
                m.len.max(1)
            };
            // A zero-length datagram is one item too.
            let mut off = 0;
            loop {
                self.items.push(Item {
                    msg: k as u32,
                    start: (m.start + off) as u32,
                    len: step.min(m.len - off) as u32,
                });
                off += step;
                if off >= m.len {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Blocks (as the socket's own timeout allows) for datagrams and keeps them, unhanded, for
    /// the next [`recv`](Self::recv). Call only when everything received was handed out.
    fn prefetch(&mut self, socket: &impl Source) -> io::Result<()> {
        self.first += self.shown;
        self.shown = 0;
        if self.first < self.items.len() {
            return Ok(());
        }
        self.fill(socket, self.batch, true)?;
        self.found_empty = self.items.is_empty();
        Ok(())
    }

    /// Whether more may be waiting after what the last call returned: datagrams kept from
    /// a coalesced buffer, or a system call that filled every message it asked for. When
    /// false, the socket's queue was empty (what an edge-triggered wait needs).
    pub fn more(&self) -> bool {
        self.first + self.shown < self.items.len() || self.full
    }

    /// Datagram `i` of the last batch, and the metadata of the message it came in (its
    /// sender, arrival time...; `len` there is the message's, the payload's is its own).
    pub fn get(&self, i: usize) -> (&[u8], &Meta) {
        let item = self.items[self.first + i];
        let meta = &self.meta[item.msg as usize];
        let (start, len) = (item.start as usize, item.len as usize);
        if meta.big {
            return (&self.big[..len.min(self.big.len())], meta);
        }
        // Never past the datagram's own slot.
        let slot_end = (start / DATAGRAM_BUFFER + 1) * DATAGRAM_BUFFER;
        let slots = &self.bufs[self.skew..];
        let end = (start + len).min(slot_end).min(slots.len());
        (&slots[start.min(end)..end], meta)
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

/// Sends `payloads` one system call each (where there is no sendmmsg, and on Unix datagram
/// sockets), to `dest` or, for a connected socket, to its peer; stops at the first error,
/// with how many went before it.
pub(crate) fn send_each(
    socket: &Socket,
    payloads: &[&[u8]],
    dest: Option<SocketAddr>,
) -> Result<(), (usize, io::Error)> {
    let dest = dest.map(socket2::SockAddr::from);
    for (done, p) in payloads.iter().enumerate() {
        let sent = match &dest {
            Some(d) => socket.send_to(p, d),
            None => socket.send(p),
        };
        if let Err(e) = sent {
            return Err((done, e));
        }
    }
    Ok(())
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

/// The kernel's count of datagrams it dropped on listen's socket, where the system keeps one
/// (UDP on Linux).
pub fn kernel_drops(socket: &Sock) -> Option<u64> {
    match socket {
        Sock::Udp(s) => sys::kernel_drops(s),
        #[cfg(unix)]
        Sock::Unix(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_starts_on_a_page() {
        for batch in [1, 2, 32] {
            let mut rx = Receiver::new(batch);
            let slots = rx.parts().slots;
            assert_eq!(slots.len(), batch * DATAGRAM_BUFFER);
            assert_eq!(slots.as_ptr() as usize % PAGE, 0);
        }
    }

    #[test]
    fn a_fresh_socket_has_dropped_nothing_or_cannot_tell() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = Sock::Udp(mio::net::UdpSocket::from_std(s));
        assert!(matches!(kernel_drops(&s), Some(0) | None));
    }
}
