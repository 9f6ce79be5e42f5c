//! Linux: batches of 32 datagrams per system call (recvmmsg, sendmmsg), the socket's drop
//! counter on every datagram (SO_RXQ_OVFL) and at exit (/proc/net/udp), arrival times in
//! nanoseconds (SO_TIMESTAMPNS), receive buffers past rmem_max (SO_RCVBUFFORCE), and
//! SO_BINDTODEVICE for `send --interface`.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg,
    sendmmsg, sendmsg, setsockopt, sockopt,
};
use socket2::Socket;

use crate::net::{AsSocket, BATCH, DATAGRAM_BUFFER, DatagramSocket, Interface, Meta};

pub const SYSTEM: &str = "Linux";

pub fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

/// Asks for `size` bytes of receive buffer, past net.core.rmem_max where we are allowed to
/// (SO_RCVBUFFORCE needs CAP_NET_ADMIN). Returns the usable part of what the kernel
/// granted (it reports twice that: it counts its bookkeeping).
pub fn set_recv_buffer(socket: &Socket, size: usize) -> usize {
    let _ = socket.set_recv_buffer_size(size);
    let granted = socket.recv_buffer_size().unwrap_or(0);
    if granted / 2 < size {
        let want = i32::try_from(size).unwrap_or(i32::MAX);
        let _ = setsockopt(&socket.as_fd(), sockopt::RcvBufForce, &(want as usize));
    }
    socket.recv_buffer_size().unwrap_or(granted) / 2
}

/// IP_PKTINFO (and IPV6_RECVPKTINFO): the address each datagram was sent to, and the one
/// to answer from.
pub fn enable_packet_info(socket: &Socket, v6: bool) -> io::Result<()> {
    let fd = socket.as_fd();
    let on = if v6 {
        // IPv4 datagrams on a dual-stack socket also get IP_PKTINFO, whose spec_dst is the
        // address to answer a broadcast from (best effort).
        let _ = setsockopt(&fd, sockopt::Ipv4PacketInfo, &true);
        setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)
    } else {
        setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)
    };
    on.map_err(io::Error::from)
}

/// Best effort: lets --stats tell drops at this socket from loss in the network.
pub fn enable_drop_counter(socket: &Socket) {
    let _ = setsockopt(&socket.as_fd(), sockopt::RxqOvfl, &1);
}

pub fn enable_timestamps(socket: &Socket) {
    if let Err(e) = setsockopt(&socket.as_fd(), sockopt::ReceiveTimestampns, &true) {
        tracing::debug!("no kernel receive timestamps: {e}");
    }
}

/// IP_MULTICAST_ALL is on by default on Linux: a socket on a wildcard address would get
/// every group any socket of the host joined.
pub fn receive_joined_only(socket: &Socket, v6: bool) -> io::Result<()> {
    if v6 {
        socket.set_multicast_all_v6(false)
    } else {
        socket.set_multicast_all_v4(false)
    }
}

/// `send --interface` for a unicast destination: SO_BINDTODEVICE.
pub fn bind_to_interface(socket: &Socket, interface: &Interface, _v6: bool) -> io::Result<()> {
    socket.bind_device(Some(interface.name.as_bytes()))
}

/// Receives up to `max` datagrams with one recvmmsg, each into its DATAGRAM_BUFFER slot of
/// `bufs`, and their metadata into `meta`.
pub fn recv_batch(
    socket: &impl DatagramSocket,
    bufs: &mut [u8],
    max: usize,
    block: bool,
    meta: &mut Vec<Meta>,
) -> io::Result<()> {
    // Fresh headers each call: the kernel shrinks msg_controllen and msg_namelen in place,
    // and nix does not reset them, so reused headers would lose control messages.
    // Room for IP_PKTINFO and IPV6_PKTINFO (a dual-stack socket gets both), RXQ_OVFL and
    // the arrival time.
    let cmsg = nix::cmsg_space!(
        nix::libc::in_pktinfo,
        nix::libc::in6_pktinfo,
        u32,
        nix::libc::timespec
    );
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(max, Some(cmsg));
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
        .chunks_mut(DATAGRAM_BUFFER)
        .take(max)
        .map(|b| [IoSliceMut::new(b)])
        .collect();
    let flags = if block {
        MsgFlags::empty()
    } else {
        MsgFlags::MSG_DONTWAIT
    };
    let results = match recvmmsg(
        socket.as_fd().as_raw_fd(),
        &mut headers,
        iovs.iter_mut(),
        flags,
        None,
    ) {
        Ok(r) => r,
        // Nothing waiting (or a signal): the caller waits and comes back.
        Err(Errno::EAGAIN | Errno::EINTR) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    meta.extend(results.map(|msg| super::unix::meta_of(&msg, apply)));
    Ok(())
}

fn apply(c: ControlMessageOwned, meta: &mut Meta) {
    match c {
        ControlMessageOwned::Ipv4PacketInfo(info) => {
            let v4 = |a: nix::libc::in_addr| IpAddr::V4(Ipv4Addr::from(u32::from_be(a.s_addr)));
            meta.to = Some(v4(info.ipi_addr));
            meta.reply_from = Some(v4(info.ipi_spec_dst));
        }
        ControlMessageOwned::Ipv6PacketInfo(info) => super::unix::apply_v6_pktinfo(info, meta),
        ControlMessageOwned::RxqOvfl(n) => meta.drops = Some(n),
        ControlMessageOwned::ScmTimestampns(ts) => {
            meta.at = super::unix::stamp(ts.tv_sec(), ts.tv_nsec());
        }
        _ => {}
    }
}

/// Sends `payloads` with as few sendmmsg calls as it takes.
pub fn send_batch(
    socket: &Socket,
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

/// One sendmsg with the source address in IP_PKTINFO / IPV6_PKTINFO.
pub(super) fn send_with_source(
    fd: RawFd,
    payload: &[u8],
    to: SocketAddr,
    from: IpAddr,
) -> Result<(), Errno> {
    let iov = [IoSlice::new(payload)];
    let dest = SockaddrStorage::from(to);
    let sent = match from {
        IpAddr::V4(ip) => {
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
        IpAddr::V6(ip) => super::unix::send_v6_from(fd, &iov, &dest, ip),
    };
    sent.map(drop)
}

/// The kernel's count of datagrams it dropped on `socket` for lack of receive buffer, read
/// from /proc/net/udp{,6} (the socket's line, found by inode). Unlike SO_RXQ_OVFL, which
/// rides on received datagrams, this includes drops after the last one received.
pub fn kernel_drops(socket: &impl AsSocket) -> Option<u64> {
    let fd = socket.as_fd();
    let inode = nix::sys::stat::fstat(fd).ok()?.st_ino;
    let local = socket2::SockRef::from(socket).local_addr().ok()?;
    let table = if local.is_ipv4() {
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

/// Unix sockets: Linux has abstract names.
pub const ABSTRACT_NAMES: bool = true;

pub(super) fn abstract_name(addr: &nix::sys::socket::UnixAddr) -> Option<Vec<u8>> {
    addr.as_abstract().map(<[u8]>::to_vec)
}

pub(super) fn new_abstract(name: &[u8]) -> io::Result<nix::sys::socket::UnixAddr> {
    nix::sys::socket::UnixAddr::new_abstract(name).map_err(io::Error::from)
}

/// Binds `fd` to a name the kernel picks (an abstract one): so a peer can answer.
pub(super) fn autobind(fd: RawFd) -> io::Result<Option<crate::addr::UnixAddr>> {
    nix::sys::socket::bind(fd, &nix::sys::socket::UnixAddr::new_unnamed())
        .map_err(io::Error::from)?;
    let name: nix::sys::socket::UnixAddr =
        nix::sys::socket::getsockname(fd).map_err(io::Error::from)?;
    Ok(Some(match name.as_abstract() {
        Some(n) => crate::addr::UnixAddr::Abstract(n.to_vec()),
        None => crate::addr::UnixAddr::Unnamed,
    }))
}

/// The size of the next datagram on a Unix socket without taking it (MSG_PEEK|MSG_TRUNC
/// gives the whole length on Linux). `wait` blocks for it (as the socket's timeout allows).
pub(super) fn next_datagram_size(
    fd: RawFd,
    wait: bool,
    _scratch: &mut Vec<u8>,
) -> Result<usize, Errno> {
    let mut flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC;
    if !wait {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    nix::sys::socket::recv(fd, &mut [], flags)
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
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(kernel_drops(&s), Some(0));
    }
}
