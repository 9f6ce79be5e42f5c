//! Sockets and the OS: creation and options (socket2), batched receive (recvmmsg via nix),
//! and waiting for readiness (poll). The only module with OS specifics.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg,
    sendmmsg, sendmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};

/// Room for the largest UDP payload (65,527 bytes over IPv6), rounded to a power of two.
pub const DATAGRAM_BUFFER: usize = 65_536;
/// Datagrams per recvmmsg call.
pub const BATCH: usize = 32;
/// What listen asks for as its receive buffer unless told otherwise.
pub const DEFAULT_RECV_BUFFER: usize = 8 << 20;

/// A network interface the user named, by name or by one of its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    /// Its first IPv4 address (IPv4 multicast picks the interface by address).
    pub v4: Option<Ipv4Addr>,
}

/// Looks up `--interface NAME|ADDR`.
pub fn interface(arg: &str) -> anyhow::Result<Interface> {
    let all: Vec<_> = nix::ifaddrs::getifaddrs()
        .map_err(|e| anyhow::anyhow!("--interface {arg}: cannot list interfaces: {e}"))?
        .collect();
    let ip_of = |a: &nix::ifaddrs::InterfaceAddress| {
        a.address.as_ref().and_then(to_socket_addr).map(|s| s.ip())
    };
    let name = match arg.parse::<IpAddr>() {
        Ok(ip) => all
            .iter()
            .find(|a| ip_of(a) == Some(ip))
            .map(|a| a.interface_name.clone())
            .ok_or_else(|| anyhow::anyhow!("--interface {arg}: no interface has this address"))?,
        Err(_) => arg.to_string(),
    };
    let index = nix::net::if_::if_nametoindex(name.as_str())
        .map_err(|_| anyhow::anyhow!("--interface {arg}: no such network interface"))?;
    let v4 = all
        .iter()
        .filter(|a| a.interface_name == name)
        .find_map(|a| match ip_of(a) {
            Some(IpAddr::V4(v4)) => Some(v4),
            _ => None,
        });
    Ok(Interface { name, index, v4 })
}

/// Joins `groups` (those of the socket's family) on `listener`, on `interface` or the one
/// the kernel picks, and stops the socket from receiving groups it did not join
/// (IP_MULTICAST_ALL is on by default on Linux).
pub fn join_groups(
    listener: &Listener,
    groups: &[IpAddr],
    interface: Option<&Interface>,
) -> anyhow::Result<()> {
    let socket = socket2::SockRef::from(&listener.socket);
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
        let off = match listener.local {
            SocketAddr::V4(_) => socket.set_multicast_all_v4(false),
            SocketAddr::V6(_) => socket.set_multicast_all_v6(false),
        };
        off.map_err(|e| {
            anyhow::anyhow!("{}: cannot turn off IP_MULTICAST_ALL: {e}", listener.local)
        })?;
    }
    Ok(())
}

/// Options for a receiving socket.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    pub reuse_port: bool,
    pub recv_buffer: usize,
    /// Ask the kernel for each datagram's arrival time (see [`enable_timestamps`]).
    pub timestamps: bool,
}

/// A bound receiving socket.
#[derive(Debug)]
pub struct Listener {
    pub socket: UdpSocket,
    pub local: SocketAddr,
    /// Bound to a wildcard address: the destination of each datagram comes from IP_PKTINFO.
    pub wildcard: bool,
    /// What the kernel granted for SO_RCVBUF (it reports twice what is usable).
    pub recv_buffer: usize,
}

fn new_socket(addr: &SocketAddr) -> io::Result<Socket> {
    Socket::new(
        Domain::for_address(*addr),
        Type::DGRAM.cloexec(),
        Some(Protocol::UDP),
    )
}

/// Creates, configures and binds a receiving socket.
pub fn bind_listener(addr: SocketAddr, opts: ListenOptions) -> io::Result<Listener> {
    let socket = new_socket(&addr)?;
    let wildcard = addr.ip().is_unspecified();
    if addr.is_ipv6() {
        // [::] is dual-stack on purpose (the system default varies); other IPv6 addresses
        // are IPv6 only.
        socket.set_only_v6(!wildcard)?;
    }
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    let recv_buffer = set_recv_buffer(&socket, opts.recv_buffer);
    if wildcard {
        let fd = socket.as_fd();
        let on = if addr.is_ipv6() {
            // IPv4 datagrams on a dual-stack socket also get IP_PKTINFO, whose spec_dst
            // is the address to answer a broadcast from (best effort).
            let _ = setsockopt(&fd, sockopt::Ipv4PacketInfo, &true);
            setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)
        } else {
            setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)
        };
        on.map_err(io::Error::from)?;
    }
    // Best effort: lets --stats tell drops at this socket from loss in the network.
    let _ = setsockopt(&socket.as_fd(), sockopt::RxqOvfl, &1);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    if opts.timestamps {
        enable_timestamps(&socket);
    }
    let local = socket.local_addr()?;
    Ok(Listener {
        socket,
        local,
        wildcard,
        recv_buffer,
    })
}

/// Asks for `size` bytes of receive buffer, past net.core.rmem_max where we are allowed to
/// (SO_RCVBUFFORCE needs CAP_NET_ADMIN). Returns what the kernel granted.
fn set_recv_buffer(socket: &Socket, size: usize) -> usize {
    let _ = socket.set_recv_buffer_size(size);
    let granted = socket.recv_buffer_size().unwrap_or(0);
    // The kernel doubles the request for its bookkeeping; half of it is usable payload room.
    if granted / 2 < size {
        let want = i32::try_from(size).unwrap_or(i32::MAX);
        let _ = setsockopt(&socket.as_fd(), sockopt::RcvBufForce, &(want as usize));
    }
    socket.recv_buffer_size().unwrap_or(granted)
}

/// Asks the kernel to stamp each datagram with its arrival time (SO_TIMESTAMPNS), so a
/// datagram read late, or in a batch, still says when it arrived ([`Meta::at`]). Best
/// effort: where the kernel declines, `at` stays `None` and callers use the time they read it.
pub fn enable_timestamps(socket: &UdpSocket) {
    if let Err(e) = setsockopt(&socket.as_fd(), sockopt::ReceiveTimestampns, &true) {
        tracing::debug!("no kernel receive timestamps: {e}");
    }
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

/// A socket to send to `dest`, connected when `dest` is unicast so that "port unreachable"
/// comes back as ECONNREFUSED, and only the destination's replies are taken.
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
        (_, Some(i)) => socket.bind_device(Some(i.name.as_bytes()))?,
        (_, None) => {}
    }
    let local = opts.bind.unwrap_or(match dest {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    });
    socket.bind(&local.into())?;
    // Connected unless answers come from other addresses than the destination (a group, a
    // broadcast): then a unicast destination reports "port unreachable" even with --broadcast.
    let connect = !dest.ip().is_multicast() && !is_broadcast(dest.ip());
    if connect {
        socket.connect(&dest.into())?;
    }
    Ok((socket.into(), connect))
}

/// Whether `ip` is the limited broadcast address or the broadcast address of one of this
/// machine's interfaces.
pub fn is_broadcast(ip: IpAddr) -> bool {
    let IpAddr::V4(v4) = ip else {
        return false;
    };
    if v4.is_broadcast() {
        return true;
    }
    // An interface's broadcast address is set explicitly (`brd`), or implied by its netmask.
    let v4_of = |a: &Option<SockaddrStorage>| match a.as_ref().and_then(to_socket_addr) {
        Some(SocketAddr::V4(a)) => Some(u32::from(*a.ip())),
        _ => None,
    };
    nix::ifaddrs::getifaddrs().is_ok_and(|mut all| {
        all.any(|a| {
            let implied = match (v4_of(&a.address), v4_of(&a.netmask)) {
                (Some(addr), Some(mask)) if mask.count_ones() <= 30 => Some(addr | !mask),
                _ => None,
            };
            v4_of(&a.broadcast) == Some(u32::from(v4)) || implied == Some(u32::from(v4))
        })
    })
}

/// Metadata of one received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub len: usize,
    pub from: SocketAddr,
    /// Destination address from IP_PKTINFO, where the socket asked for it.
    pub to: Option<IpAddr>,
    /// The local address to answer from (IP_PKTINFO's spec_dst: for a broadcast or a
    /// multicast, the receiving interface's address rather than the destination).
    pub reply_from: Option<IpAddr>,
    /// The socket's cumulative drop counter (SO_RXQ_OVFL), when the kernel attached it.
    pub drops: Option<u32>,
    /// When the datagram arrived, from the kernel (SO_TIMESTAMPNS), where it was asked for.
    pub at: Option<SystemTime>,
    pub truncated: bool,
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
    /// most one batch). Returns how many arrived; 0 when none was waiting.
    pub fn recv(&mut self, socket: &UdpSocket, max: usize) -> io::Result<usize> {
        self.recv_with(socket, max, false)
    }

    /// Like `recv`; with `block`, waits for the first datagram as the socket's own timeout
    /// (SO_RCVTIMEO) allows. 0 then means the timeout passed or a signal arrived.
    pub fn recv_with(&mut self, socket: &UdpSocket, max: usize, block: bool) -> io::Result<usize> {
        self.meta.clear();
        // Fresh headers each call: the kernel shrinks msg_controllen and msg_namelen in
        // place, and nix does not reset them, so reused headers would lose control messages.
        // Room for IP_PKTINFO and IPV6_PKTINFO (a dual-stack socket gets both), RXQ_OVFL and
        // the arrival time.
        let cmsg = nix::cmsg_space!(
            nix::libc::in_pktinfo,
            nix::libc::in6_pktinfo,
            u32,
            nix::libc::timespec
        );
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(self.batch, Some(cmsg));
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .chunks_mut(DATAGRAM_BUFFER)
            .take(max.max(1))
            .map(|b| [IoSliceMut::new(b)])
            .collect();
        let results = match recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            iovs.iter_mut(),
            if block {
                MsgFlags::empty()
            } else {
                MsgFlags::MSG_DONTWAIT
            },
            None,
        ) {
            Ok(r) => r,
            // Nothing waiting (or a signal): the caller polls and comes back.
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        for msg in results {
            let mut meta = Meta {
                len: msg.bytes,
                from: msg
                    .address
                    .as_ref()
                    .and_then(to_socket_addr)
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                to: None,
                reply_from: None,
                drops: None,
                at: None,
                truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
            };
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::Ipv4PacketInfo(info) => {
                            let v4 = |a: nix::libc::in_addr| {
                                IpAddr::V4(Ipv4Addr::from(u32::from_be(a.s_addr)))
                            };
                            meta.to = Some(v4(info.ipi_addr));
                            meta.reply_from = Some(v4(info.ipi_spec_dst));
                        }
                        ControlMessageOwned::Ipv6PacketInfo(info) => {
                            let ip = IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                            // IP_PKTINFO, when it came too, says more for IPv4 datagrams.
                            meta.to.get_or_insert(ip);
                            meta.reply_from.get_or_insert(ip);
                        }
                        ControlMessageOwned::RxqOvfl(n) => meta.drops = Some(n),
                        ControlMessageOwned::ScmTimestampns(ts) => {
                            meta.at = u64::try_from(ts.tv_sec()).ok().map(|secs| {
                                SystemTime::UNIX_EPOCH
                                    + Duration::new(secs, ts.tv_nsec().clamp(0, 999_999_999) as u32)
                            });
                        }
                        _ => {}
                    }
                }
            }
            self.meta.push(meta);
        }
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

fn to_socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    s.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// What ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// At least one of the watched fds is readable (or has an error to read).
    Ready,
    Timeout,
    Signal,
    /// The watched output fd reports an error: the reader of our stdout pipe went away.
    OutputGone,
}

/// Blocks until one of `inputs` is readable, a signal arrives, `output` (if any) reports
/// an error, or `timeout` passes.
pub fn wait(
    inputs: &[BorrowedFd<'_>],
    output: Option<BorrowedFd<'_>>,
    signal: BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> io::Result<Wake> {
    let mut fds: Vec<PollFd<'_>> = inputs
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    fds.push(PollFd::new(signal, PollFlags::POLLIN));
    if let Some(out) = output {
        fds.push(PollFd::new(out, PollFlags::empty()));
    }
    let timeout = match timeout {
        None => PollTimeout::NONE,
        // Round up so a wait never ends a hair early and spins.
        Some(d) => {
            PollTimeout::try_from(d + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX)
        }
    };
    let n = match nix::poll::poll(&mut fds, timeout) {
        Ok(n) => n,
        Err(Errno::EINTR) => return Ok(Wake::Signal),
        Err(e) => return Err(e.into()),
    };
    if n == 0 {
        return Ok(Wake::Timeout);
    }
    let fired = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
    if fired(&fds[inputs.len()]) {
        return Ok(Wake::Signal);
    }
    if output.is_some() && fds.last().is_some_and(fired) {
        return Ok(Wake::OutputGone);
    }
    Ok(Wake::Ready)
}

/// Sends `payloads` as datagrams with as few sendmmsg calls as it takes, to `dest` or, for a
/// connected socket (`dest` None), to its peer. Returns how many went out before an error,
/// with the error; `Ok` means all of them.
pub fn send_batch(
    socket: &UdpSocket,
    payloads: &[&[u8]],
    dest: Option<SocketAddr>,
) -> Result<(), (usize, io::Error)> {
    let addr = dest.map(SockaddrStorage::from);
    let mut done = 0;
    while done < payloads.len() {
        let rest = &payloads[done..payloads.len().min(done + BATCH)];
        let slices: Vec<[IoSlice<'_>; 1]> = rest.iter().map(|p| [IoSlice::new(p)]).collect();
        let addrs = vec![addr; rest.len()];
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(rest.len(), None);
        match sendmmsg(
            socket.as_raw_fd(),
            &mut headers,
            &slices,
            &addrs,
            [],
            MsgFlags::empty(),
        ) {
            Ok(results) => done += results.count(),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err((done, e.into())),
        }
    }
    Ok(())
}

/// Sends `payload` to `to`, from the local address `from` when given (IP_PKTINFO): a
/// wildcard socket then answers from the address the peer sent to, not whatever the
/// routing table picks, so a peer with a connected socket accepts the answer.
pub fn send_from(
    socket: &UdpSocket,
    payload: &[u8],
    to: SocketAddr,
    from: Option<IpAddr>,
) -> io::Result<()> {
    let iov = [IoSlice::new(payload)];
    let dest = SockaddrStorage::from(to);
    let fd = socket.as_raw_fd();
    // An IPv6 socket takes its source as IPv6, IPv4 ones as IPv4-mapped.
    let from = match (from, to) {
        (Some(IpAddr::V4(v4)), SocketAddr::V6(_)) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        _ => from,
    };
    let sent = match from.filter(|ip| !ip.is_multicast() && !ip.is_unspecified()) {
        None => return socket.send_to(payload, to).map(drop),
        Some(IpAddr::V4(ip)) => {
            let info = nix::libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: nix::libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                ipi_addr: nix::libc::in_addr { s_addr: 0 },
            };
            let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
            sendmsg(fd, &iov, &cmsg, MsgFlags::empty(), Some(&dest))
        }
        Some(IpAddr::V6(ip)) => {
            let info = nix::libc::in6_pktinfo {
                ipi6_addr: nix::libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                ipi6_ifindex: 0,
            };
            let cmsg = [ControlMessage::Ipv6PacketInfo(&info)];
            sendmsg(fd, &iov, &cmsg, MsgFlags::empty(), Some(&dest))
        }
    };
    match sent {
        Ok(_) => Ok(()),
        // The kernel would not send from that address: let routing choose instead.
        Err(Errno::EINVAL | Errno::ENETUNREACH | Errno::EADDRNOTAVAIL) => {
            socket.send_to(payload, to).map(drop)
        }
        Err(e) => Err(e.into()),
    }
}

/// The kernel's count of datagrams it dropped on `socket` for lack of receive buffer, read
/// from /proc/net/udp{,6} (the socket's line, found by inode). Unlike SO_RXQ_OVFL, which
/// rides on received datagrams, this includes drops after the last one received.
pub fn kernel_drops(socket: &UdpSocket) -> Option<u64> {
    let inode = nix::sys::stat::fstat(socket.as_fd()).ok()?.st_ino;
    let table = if socket.local_addr().ok()?.is_ipv4() {
        "/proc/net/udp"
    } else {
        "/proc/net/udp6"
    };
    let text = std::fs::read_to_string(table).ok()?;
    drops_for_inode(&text, inode)
}

/// Finds the `drops` column of the line whose `inode` column matches.
pub fn drops_for_inode(table: &str, inode: u64) -> Option<u64> {
    let header: Vec<&str> = table.lines().next()?.split_whitespace().collect();
    // "tx_queue rx_queue" and "tr tm->when" are two headings over one column each.
    let col = |name: &str| {
        let i = header.iter().position(|h| *h == name)?;
        Some(
            i - header[..i]
                .iter()
                .filter(|h| **h == "rx_queue" || **h == "tm->when")
                .count(),
        )
    };
    let (inode_col, drops_col) = (col("inode")?, col("drops")?);
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(inode_col)?.parse::<u64>().ok()? == inode)
            .then(|| fields.get(drops_col)?.parse().ok())
            .flatten()
    })
}

/// Whether `fd` is /dev/null: nobody can be waiting to read what goes there, so flushing
/// it before blocking only costs a system call per wake-up.
pub fn is_dev_null(fd: BorrowedFd<'_>) -> bool {
    use nix::sys::stat::{SFlag, fstat, stat};
    let (Ok(ours), Ok(null)) = (fstat(fd), stat("/dev/null")) else {
        return false;
    };
    let is_char = |mode| SFlag::from_bits_truncate(mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    is_char(ours.st_mode) && is_char(null.st_mode) && ours.st_rdev == null.st_rdev
}

/// Whether a datagram is waiting on `socket`, without taking it: a zero-length peek, one
/// cheap system call with nothing to allocate.
pub fn has_pending(socket: &UdpSocket) -> bool {
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    // A pending error (port unreachable) counts too: the drain that follows reports it.
    !matches!(
        nix::sys::socket::recv(socket.as_raw_fd(), &mut [], flags),
        Err(Errno::EAGAIN)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_column_is_found_by_inode() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            \n\
  59: 0100007F:AC12 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 120372 2 00000000d8c826dc 0        \n\
 2169: 0100007F:B450 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 120514 2 00000000561e73ad 1234     \n";
        assert_eq!(drops_for_inode(table, 120514), Some(1234));
        assert_eq!(drops_for_inode(table, 120372), Some(0));
        assert_eq!(drops_for_inode(table, 7), None);
    }

    #[test]
    fn a_fresh_socket_has_dropped_nothing() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(kernel_drops(&s), Some(0));
    }
}
