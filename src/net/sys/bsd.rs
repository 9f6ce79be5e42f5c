//! macOS and FreeBSD: one recvmsg or sendmsg per datagram (no recvmmsg/sendmmsg there),
//! arrival times from SO_TIMESTAMP (microseconds), the destination address from IP_PKTINFO
//! (macOS) or IP_RECVDSTADDR (FreeBSD), IP_BOUND_IF for `send --interface` on macOS. No
//! drop counter: `--stats` says `unknown`.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, sendmsg, setsockopt,
    sockopt,
};
use socket2::Socket;

use crate::net::{AsSocket, DATAGRAM_BUFFER, DatagramSocket, Interface, Meta};

#[cfg(target_vendor = "apple")]
pub const SYSTEM: &str = "macOS";
#[cfg(not(target_vendor = "apple"))]
pub const SYSTEM: &str = "FreeBSD";

pub fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

/// Asks for `size` bytes of receive buffer; returns what the system granted (BSDs report
/// the usable size itself).
pub fn set_recv_buffer(socket: &Socket, size: usize) -> usize {
    let _ = socket.set_recv_buffer_size(size);
    socket.recv_buffer_size().unwrap_or(0)
}

/// The address each datagram was sent to: IP_PKTINFO on macOS, IP_RECVDSTADDR on FreeBSD;
/// IPV6_RECVPKTINFO on both.
pub fn enable_packet_info(socket: &Socket, v6: bool) -> io::Result<()> {
    let fd = socket.as_fd();
    #[cfg(target_vendor = "apple")]
    let v4 = setsockopt(&fd, sockopt::Ipv4PacketInfo, &true);
    #[cfg(not(target_vendor = "apple"))]
    let v4 = setsockopt(&fd, sockopt::Ipv4RecvDstAddr, &true);
    let on = if v6 {
        // Best effort for IPv4 datagrams on a dual-stack socket.
        let _ = v4;
        setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)
    } else {
        v4
    };
    on.map_err(io::Error::from)
}

/// No per-socket drop counter on these systems.
pub fn enable_drop_counter(_socket: &Socket) {}

pub fn enable_timestamps(socket: &Socket) {
    if let Err(e) = setsockopt(&socket.as_fd(), sockopt::ReceiveTimestamp, &true) {
        tracing::debug!("no kernel receive timestamps: {e}");
    }
}

/// BSD sockets receive only the groups they joined: nothing to turn off.
pub fn receive_joined_only(_socket: &Socket, _v6: bool) -> io::Result<()> {
    Ok(())
}

/// `send --interface` for a unicast destination: IP_BOUND_IF on macOS; FreeBSD has no way
/// to pin a socket to an interface.
pub fn bind_to_interface(socket: &Socket, interface: &Interface, v6: bool) -> io::Result<()> {
    #[cfg(target_vendor = "apple")]
    {
        let index = std::num::NonZeroU32::new(interface.index);
        if v6 {
            socket.bind_device_by_index_v6(index)
        } else {
            socket.bind_device_by_index_v4(index)
        }
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        let _ = (socket, v6);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "--interface {} for a unicast destination is not available on {SYSTEM} \
                 (no SO_BINDTODEVICE or IP_BOUND_IF); use --bind with the interface's address",
                interface.name
            ),
        ))
    }
}

/// Receives up to `max` datagrams, one recvmsg each, until the queue is empty.
pub fn recv_batch(
    socket: &impl DatagramSocket,
    bufs: &mut [u8],
    _scratch: &mut super::RecvScratch,
    max: usize,
    block: bool,
    meta: &mut Vec<Meta>,
) -> io::Result<usize> {
    let mut cmsg = nix::cmsg_space!(Ipv6PacketInfoSpace, nix::libc::timeval, [u8; 64]);
    let fd = socket.as_fd().as_raw_fd();
    for (i, slot) in bufs.chunks_mut(DATAGRAM_BUFFER).take(max).enumerate() {
        let flags = if block && i == 0 {
            MsgFlags::empty()
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let mut iov = [IoSliceMut::new(slot)];
        cmsg.clear();
        let msg = match recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), flags) {
            Ok(msg) => msg,
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(i),
            // What came before the error is delivered; the error comes on the next call.
            Err(_) if i > 0 => return Ok(max),
            Err(e) => return Err(e.into()),
        };
        meta.push(meta_of(&msg, i * DATAGRAM_BUFFER));
    }
    Ok(max)
}

type Ipv6PacketInfoSpace = nix::libc::in6_pktinfo;

/// The metadata of one received message in the slot at `start`: its sender, size and
/// truncation, and what its control messages say.
fn meta_of(msg: &nix::sys::socket::RecvMsg<'_, '_, SockaddrStorage>, start: usize) -> Meta {
    let from = msg
        .address
        .as_ref()
        .and_then(super::unix::to_socket_addr)
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut m = Meta::new(msg.bytes, from);
    m.truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
    m.start = start;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            apply(c, &mut m);
        }
    }
    m
}

fn apply(c: ControlMessageOwned, meta: &mut Meta) {
    match c {
        #[cfg(target_vendor = "apple")]
        ControlMessageOwned::Ipv4PacketInfo(info) => {
            let v4 = |a: nix::libc::in_addr| {
                IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(a.s_addr)))
            };
            meta.to = Some(v4(info.ipi_addr));
            meta.reply_from = Some(v4(info.ipi_spec_dst));
        }
        #[cfg(not(target_vendor = "apple"))]
        ControlMessageOwned::Ipv4RecvDstAddr(addr) => {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(addr.s_addr)));
            meta.to = Some(ip);
            meta.reply_from = Some(ip);
        }
        ControlMessageOwned::Ipv6PacketInfo(info) => {
            meta.v6_destination(info.ipi6_addr.s6_addr.into());
        }
        ControlMessageOwned::ScmTimestamp(tv) => {
            use nix::sys::time::TimeValLike;
            let micros = tv.num_microseconds();
            meta.at = super::unix::stamp(
                micros.div_euclid(1_000_000),
                micros.rem_euclid(1_000_000) * 1000,
            );
        }
        _ => {}
    }
}

/// Sends `payloads`, one system call each.
pub fn send_batch(
    socket: &Socket,
    payloads: &[&[u8]],
    dest: Option<SocketAddr>,
) -> Result<(), (usize, io::Error)> {
    crate::net::send_each(socket, payloads, dest)
}

/// One sendmsg with the source address: IP_PKTINFO on macOS, IP_SENDSRCADDR on FreeBSD,
/// IPV6_PKTINFO on both.
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
            #[cfg(target_vendor = "apple")]
            {
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
            #[cfg(not(target_vendor = "apple"))]
            {
                let addr = nix::libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                };
                let cmsg = [ControlMessage::Ipv4SendSrcAddr(&addr)];
                sendmsg(fd, &iov, &cmsg, MsgFlags::empty(), Some(&dest))
            }
        }
        IpAddr::V6(ip) => super::unix::send_v6_from(fd, &iov, &dest, ip),
    };
    sent.map(drop)
}

/// These systems keep no per-socket drop count that udpcat can read.
pub fn kernel_drops(_socket: &impl AsSocket) -> Option<u64> {
    None
}

/// Unix sockets: no abstract names on macOS or FreeBSD.
pub const ABSTRACT_NAMES: bool = false;

pub(super) fn abstract_name(_addr: &nix::sys::socket::UnixAddr) -> Option<Vec<u8>> {
    None
}

pub(super) fn new_abstract(_name: &[u8]) -> io::Result<nix::sys::socket::UnixAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("abstract Unix socket names are Linux only, not on {SYSTEM}"),
    ))
}

/// No autobind here: the caller binds a file in the temporary directory.
pub(super) fn autobind(_fd: RawFd) -> io::Result<Option<crate::addr::UnixAddr>> {
    Ok(None)
}

/// The size of the next datagram on a Unix socket without taking it: peeked into a
/// growing buffer until it is no longer cut short.
pub(super) fn next_datagram_size(
    fd: RawFd,
    wait: bool,
    scratch: &mut Vec<u8>,
) -> Result<usize, Errno> {
    if scratch.len() < DATAGRAM_BUFFER {
        scratch.resize(DATAGRAM_BUFFER, 0);
    }
    loop {
        let mut flags = MsgFlags::MSG_PEEK;
        if !wait {
            flags |= MsgFlags::MSG_DONTWAIT;
        }
        let mut iov = [IoSliceMut::new(scratch.as_mut_slice())];
        let msg = recvmsg::<()>(fd, &mut iov, None, flags)?;
        let (n, cut) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC));
        if !cut {
            return Ok(n);
        }
        let grown = scratch.len() * 2;
        scratch.resize(grown, 0);
    }
}
