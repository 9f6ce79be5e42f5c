//! Linux: batches of 32 messages per system call (recvmmsg, sendmmsg, with no allocation
//! per call), runs of equal-size datagrams as one segmented send (UDP_SEGMENT) and
//! received coalesced (UDP_GRO), split back here; the socket's drop
//! counter on every datagram (SO_RXQ_OVFL) and at exit (/proc/net/udp), arrival times in
//! nanoseconds (SO_TIMESTAMPNS), receive buffers past rmem_max (SO_RCVBUFFORCE), and
//! SO_BINDTODEVICE for `send --interface`.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg, setsockopt, sockopt};
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

/// Segments per UDP_SEGMENT send: the kernel's UDP_MAX_SEGMENTS (64 until Linux 6.1 raised
/// it to 128; the lower bound works everywhere).
const GSO_SEGMENTS: usize = 64;
/// The most one segmented send may carry: an IPv4 datagram's payload limit.
const GSO_BYTES: usize = 65_507;
/// Set when the kernel refused a segmented send (no UDP_SEGMENT before Linux 4.18, a device
/// without checksum offload, a segment over the path's MTU, which the kernel would otherwise
/// fragment): from then on one datagram per message, for the rest of the run.
static GSO_REFUSED: AtomicBool = AtomicBool::new(false);

/// Room for the control messages one received datagram may bring: IP_PKTINFO and
/// IPV6_PKTINFO (a dual-stack socket gets both), SO_RXQ_OVFL, SCM_TIMESTAMPNS and UDP_GRO,
/// each a 16-byte header and its padded data (152 bytes in all).
const CONTROL: usize = 192;

/// A control message buffer, aligned as the kernel writes `cmsghdr`s into it.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Control([u8; CONTROL]);

/// Room for the one control message a send carries: UDP_SEGMENT's 16-bit segment size,
/// after its header and padded (24 bytes on a 64-bit system).
const SEGMENT_CONTROL: usize = cmsg_align(CMSG_HEADER + 2);

/// A send's control buffer (a batch of them is set up on every send call, so small).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct SegmentControl([u8; SEGMENT_CONTROL]);

/// Room for a sender's address (`sockaddr_storage`).
const NAME: usize = 128;

#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Name([u8; NAME]);

/// What recvmmsg said of one message.
#[derive(Clone, Copy, Default)]
struct Got {
    len: usize,
    name_len: usize,
    control_len: usize,
    flags: nix::libc::c_int,
}

/// The buffers recvmmsg fills besides the payloads, allocated once per receiver: reused
/// headers are rebuilt on every call (the kernel shrinks their lengths in place).
pub struct RecvScratch {
    names: Vec<Name>,
    control: Vec<Control>,
    got: Vec<Got>,
}

impl RecvScratch {
    pub fn new() -> Self {
        RecvScratch {
            names: vec![Name([0; NAME]); BATCH],
            control: vec![Control([0; CONTROL]); BATCH],
            got: vec![Got::default(); BATCH],
        }
    }
}

/// Turns on UDP_GRO (Linux 5.0): a run of equal-size datagrams from one sender (a
/// segmented send over loopback, or what the NIC coalesced) arrives as one buffer, split
/// back into its datagrams here by the segment size in its control message. Best effort.
pub fn enable_gro(socket: &Socket) -> bool {
    setsockopt(&socket.as_fd(), sockopt::UdpGroSegment, &true).is_ok()
}

/// One batch system call, on headers built here: the receive or send it carries.
enum Mmsg<'a, 'b> {
    /// recvmmsg into `slots` (DATAGRAM_BUFFER bytes each), one name and control buffer per
    /// slot; what came back goes into `got`.
    Recv {
        slots: &'a mut [u8],
        names: &'a mut [Name],
        control: &'a mut [Control],
        got: &'a mut [Got],
    },
    /// sendmmsg of `msgs`, each a range of `iovs` with the first `control_len` bytes of its
    /// `control` buffer, to `dest` (None: the connected peer).
    Send {
        iovs: &'a [IoSlice<'b>],
        msgs: &'a [SendMsg],
        control: &'a [SegmentControl],
        dest: Option<&'a socket2::SockAddr>,
    },
}

/// One message of a send: payloads `iovs` of the batch's slices, as one datagram each or,
/// with `segment`, as one segmented send the kernel cuts at that size.
#[derive(Clone, Default)]
struct SendMsg {
    iovs: std::ops::Range<usize>,
    control_len: usize,
}

/// The one unsafe fence of this file: recvmmsg and sendmmsg, which nix offers only with
/// headers allocated on every call and one set of control messages for all of them.
#[allow(unsafe_code)]
fn mmsg(fd: RawFd, batch: Mmsg<'_, '_>, flags: nix::libc::c_int) -> Result<usize, Errno> {
    use nix::libc::{c_uint, iovec, mmsghdr};
    // SAFETY: `mmsghdr` and `iovec` are plain C structs for which all-zero bytes are a valid
    // value. Every pointer put into a header points into a buffer `batch` borrows for the
    // duration of this call, with that buffer's true length: payload slots of
    // DATAGRAM_BUFFER bytes, names of NAME bytes, control buffers of CONTROL bytes for a
    // receive and of SEGMENT_CONTROL bytes for a send (only read; `control_len` is at most
    // that), and `IoSlice`s, which std guarantees have `iovec`'s layout on Unix. At most
    // BATCH headers are used and the count passed to the kernel is the number filled. The
    // kernel writes only within the lengths given, and no pointer outlives the call.
    unsafe {
        let mut hdrs: [mmsghdr; BATCH] = std::mem::zeroed();
        match batch {
            Mmsg::Recv {
                slots,
                names,
                control,
                got,
            } => {
                let mut iovs: [iovec; BATCH] = std::mem::zeroed();
                let n = (slots.len() / DATAGRAM_BUFFER)
                    .min(names.len())
                    .min(control.len())
                    .min(got.len())
                    .min(BATCH);
                let slots = slots.chunks_exact_mut(DATAGRAM_BUFFER);
                for (k, slot) in slots.take(n).enumerate() {
                    iovs[k] = iovec {
                        iov_base: slot.as_mut_ptr().cast(),
                        iov_len: slot.len(),
                    };
                    let h = &mut hdrs[k].msg_hdr;
                    h.msg_name = names[k].0.as_mut_ptr().cast();
                    h.msg_namelen = NAME as _;
                    h.msg_iov = &mut iovs[k];
                    h.msg_iovlen = 1;
                    h.msg_control = control[k].0.as_mut_ptr().cast();
                    h.msg_controllen = CONTROL as _;
                }
                let r = nix::libc::recvmmsg(
                    fd,
                    hdrs.as_mut_ptr(),
                    n as c_uint,
                    flags as _,
                    std::ptr::null_mut(),
                );
                let r = Errno::result(r)? as usize;
                for (g, h) in got.iter_mut().zip(&hdrs).take(r) {
                    *g = Got {
                        len: h.msg_len as usize,
                        name_len: h.msg_hdr.msg_namelen as usize,
                        // (a u32 with musl)
                        #[allow(clippy::unnecessary_cast)]
                        control_len: h.msg_hdr.msg_controllen as usize,
                        flags: h.msg_hdr.msg_flags,
                    };
                }
                Ok(r)
            }
            Mmsg::Send {
                iovs,
                msgs,
                control,
                dest,
            } => {
                let n = msgs.len().min(control.len()).min(BATCH);
                for (k, m) in msgs.iter().take(n).enumerate() {
                    let parts = &iovs[m.iovs.clone()];
                    let h = &mut hdrs[k].msg_hdr;
                    if let Some(d) = dest {
                        h.msg_name = d.as_ptr() as *mut _;
                        h.msg_namelen = d.len();
                    }
                    h.msg_iov = parts.as_ptr() as *mut iovec;
                    h.msg_iovlen = parts.len() as _;
                    if m.control_len > 0 {
                        h.msg_control = control[k].0.as_ptr() as *mut _;
                        h.msg_controllen = m.control_len as _;
                    }
                }
                let r = nix::libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as c_uint, flags as _);
                Ok(Errno::result(r)? as usize)
            }
        }
    }
}

/// Receives up to `max` messages with one recvmmsg, each into its DATAGRAM_BUFFER slot of
/// `bufs`, and their metadata into `meta`, with the segment size of a UDP_GRO buffer (the
/// receiver splits it). Returns the number of messages.
pub fn recv_batch(
    socket: &impl DatagramSocket,
    bufs: &mut [u8],
    scratch: &mut RecvScratch,
    max: usize,
    block: bool,
    meta: &mut Vec<Meta>,
) -> io::Result<usize> {
    // Blocking: wait for the first message only, then take what is already queued (without
    // MSG_WAITFORONE, recvmmsg waits to fill every slot).
    let flags = if block {
        nix::libc::MSG_WAITFORONE
    } else {
        nix::libc::MSG_DONTWAIT
    };
    let n = max.min(BATCH);
    let batch = Mmsg::Recv {
        slots: &mut bufs[..n * DATAGRAM_BUFFER],
        names: &mut scratch.names,
        control: &mut scratch.control,
        got: &mut scratch.got,
    };
    let r = match mmsg(socket.as_fd().as_raw_fd(), batch, flags) {
        Ok(r) => r,
        // Nothing waiting (or a signal): the caller waits and comes back.
        Err(Errno::EAGAIN | Errno::EINTR) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    for k in 0..r {
        let got = scratch.got[k];
        let name = &scratch.names[k].0[..got.name_len.min(NAME)];
        let from = socket_addr(name).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut m = Meta::new(got.len, from);
        m.start = k * DATAGRAM_BUFFER;
        m.truncated = got.flags & nix::libc::MSG_TRUNC != 0;
        let mut segment = 0;
        for (level, kind, data) in cmsgs(&scratch.control[k].0[..got.control_len.min(CONTROL)]) {
            apply(level, kind, data, &mut m, &mut segment);
        }
        m.segment = segment;
        meta.push(m);
    }
    Ok(r)
}

/// A sender's address from the bytes of its `sockaddr_in` or `sockaddr_in6`.
fn socket_addr(name: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes(name.get(..2)?.try_into().ok()?));
    let port = u16::from_be_bytes(name.get(2..4)?.try_into().ok()?);
    match family {
        nix::libc::AF_INET => {
            let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::from((ip, port)))
        }
        nix::libc::AF_INET6 => {
            let flow = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip.into(),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

/// The size of a `cmsghdr` (a `size_t` length, then level and type), padded as CMSG_ALIGN
/// pads: where each message's data begins.
const CMSG_HEADER: usize = cmsg_align(std::mem::size_of::<usize>() + 8);

const fn cmsg_align(n: usize) -> usize {
    let a = std::mem::size_of::<usize>();
    n.div_ceil(a) * a
}

/// The control messages in `buf` as (level, type, data), read as CMSG_NXTHDR walks them.
fn cmsgs(buf: &[u8]) -> impl Iterator<Item = (i32, i32, &[u8])> {
    let word = std::mem::size_of::<usize>();
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = buf.get(at..at + CMSG_HEADER)?;
        let len = usize::from_ne_bytes(header[..word].try_into().ok()?);
        let level = i32::from_ne_bytes(header[word..word + 4].try_into().ok()?);
        let kind = i32::from_ne_bytes(header[word + 4..word + 8].try_into().ok()?);
        let data = buf.get(at + CMSG_HEADER..at + len.max(CMSG_HEADER))?;
        at += cmsg_align(len.max(CMSG_HEADER));
        Some((level, kind, data))
    })
}

fn apply(level: i32, kind: i32, data: &[u8], meta: &mut Meta, segment: &mut usize) {
    use nix::libc;
    let u32_at = |i: usize| Some(u32::from_ne_bytes(data.get(i..i + 4)?.try_into().ok()?));
    let v4_at = |i: usize| -> Option<IpAddr> {
        let b: [u8; 4] = data.get(i..i + 4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(b)))
    };
    match (level, kind) {
        (libc::SOL_IP, libc::IP_PKTINFO) => {
            // in_pktinfo: ifindex, spec_dst, addr.
            meta.to = v4_at(8);
            meta.reply_from = v4_at(4);
        }
        (libc::SOL_IPV6, libc::IPV6_PKTINFO) => {
            if let Some(ip) = data.get(..16).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
                meta.v6_destination(ip.into());
            }
        }
        (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => meta.drops = u32_at(0),
        (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
            // A timespec: two 64-bit fields, or two 32-bit ones on a 32-bit system.
            let half = data.len() / 2;
            let field = |b: &[u8]| match b.len() {
                8 => b.try_into().ok().map(i64::from_ne_bytes),
                4 => b.try_into().ok().map(i32::from_ne_bytes).map(i64::from),
                _ => None,
            };
            if let (Some(s), Some(ns)) = (field(&data[..half]), field(&data[half..])) {
                meta.at = super::unix::stamp(s, ns);
            }
        }
        (libc::SOL_UDP, libc::UDP_GRO) => {
            *segment = u32_at(0).map_or(0, |n| n as usize);
        }
        _ => {}
    }
}

/// Sends `payloads` with as few sendmmsg calls as it takes. A run of equal-size datagrams
/// (and one shorter after it) goes out as one UDP_SEGMENT message, which the kernel cuts
/// back into those datagrams: one trip down the stack for up to 64 of them.
pub fn send_batch(
    socket: &Socket,
    payloads: &[&[u8]],
    dest: Option<SocketAddr>,
) -> Result<(), (usize, io::Error)> {
    let dest = dest.map(socket2::SockAddr::from);
    let iovs: Vec<IoSlice<'_>> = payloads.iter().map(|p| IoSlice::new(p)).collect();
    let mut control = [SegmentControl([0; SEGMENT_CONTROL]); BATCH];
    let mut msgs: [SendMsg; BATCH] = Default::default();
    let mut done = 0;
    while done < payloads.len() {
        let gso = !GSO_REFUSED.load(Ordering::Relaxed);
        let mut n = 0;
        let mut at = done;
        while n < BATCH && at < payloads.len() {
            let run = if gso { segment_run(&payloads[at..]) } else { 1 };
            msgs[n] = SendMsg {
                iovs: at..at + run,
                control_len: if run > 1 {
                    put_segment_size(&mut control[n], payloads[at].len())
                } else {
                    0
                },
            };
            at += run;
            n += 1;
        }
        let batch = Mmsg::Send {
            iovs: &iovs,
            msgs: &msgs[..n],
            control: &control,
            dest: dest.as_ref(),
        };
        match mmsg(socket.as_raw_fd(), batch, 0) {
            Ok(0) => return Err((done, io::ErrorKind::WriteZero.into())),
            Ok(sent) => done = msgs[..sent].last().map_or(done, |m| m.iovs.end),
            Err(Errno::EINTR) => {}
            // A real error of a datagram comes again, and is reported, without segmenting.
            Err(
                Errno::EINVAL
                | Errno::EIO
                | Errno::EMSGSIZE
                | Errno::ENOPROTOOPT
                | Errno::EOPNOTSUPP,
            ) if gso && msgs[..n].iter().any(|m| m.control_len > 0) => {
                tracing::debug!("segmented sends refused; one datagram per message from now on");
                GSO_REFUSED.store(true, Ordering::Relaxed);
            }
            Err(e) => return Err((done, e.into())),
        }
    }
    Ok(())
}

/// How many of `payloads` (from the first) one segmented send can carry: those of the
/// first's size, then at most one shorter and not empty, within the kernel's limits.
/// 1 when there is no run (an empty datagram, or a single one).
fn segment_run(payloads: &[&[u8]]) -> usize {
    let size = payloads[0].len();
    if size == 0 {
        return 1;
    }
    let most = GSO_SEGMENTS.min(GSO_BYTES / size);
    let mut run = 1;
    while run < most && run < payloads.len() && payloads[run].len() == size {
        run += 1;
    }
    let last = payloads.get(run).map_or(0, |p| p.len());
    if run < GSO_SEGMENTS && last > 0 && last < size && run * size + last <= GSO_BYTES {
        run += 1;
    }
    run
}

/// Writes a UDP_SEGMENT control message of segment size `size` into `c`; returns its length.
fn put_segment_size(c: &mut SegmentControl, size: usize) -> usize {
    let word = std::mem::size_of::<usize>();
    let len = CMSG_HEADER + 2;
    c.0[..word].copy_from_slice(&len.to_ne_bytes());
    c.0[word..word + 4].copy_from_slice(&nix::libc::SOL_UDP.to_ne_bytes());
    c.0[word + 4..word + 8].copy_from_slice(&nix::libc::UDP_SEGMENT.to_ne_bytes());
    let size = u16::try_from(size).unwrap_or(u16::MAX);
    c.0[CMSG_HEADER..len].copy_from_slice(&size.to_ne_bytes());
    cmsg_align(len)
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
    fn runs_are_equal_sizes_then_one_shorter_within_the_limits() {
        let p = |sizes: &[usize]| -> Vec<Vec<u8>> { sizes.iter().map(|&n| vec![0; n]).collect() };
        let run = |sizes: &[usize]| {
            let v = p(sizes);
            let refs: Vec<&[u8]> = v.iter().map(Vec::as_slice).collect();
            segment_run(&refs)
        };
        assert_eq!(run(&[5, 5, 5, 3, 3]), 4, "equal ones, then one shorter");
        assert_eq!(run(&[5, 5, 7]), 2, "a longer one starts a new run");
        assert_eq!(run(&[5, 5, 0]), 2, "an empty one is never a segment");
        assert_eq!(run(&[0, 0]), 1);
        assert_eq!(run(&[9]), 1);
        assert_eq!(run(&[1; 100]), GSO_SEGMENTS);
        // 44 x 1472 = 64,768 fits in 65,507; a 45th does not, nor a shorter one of 800.
        assert_eq!(run(&[1472; 50]), 44);
        let mut v = vec![1472; 44];
        v.push(800);
        assert_eq!(run(&v), 44);
        v[44] = 700;
        assert_eq!(run(&v), 45);
    }

    #[test]
    fn control_messages_are_walked_as_the_kernel_lays_them_out() {
        let mut c = SegmentControl([0; SEGMENT_CONTROL]);
        let len = put_segment_size(&mut c, 1472);
        assert_eq!(len, cmsg_align(CMSG_HEADER + 2));
        let all: Vec<_> = cmsgs(&c.0[..len]).collect();
        assert_eq!(
            all,
            vec![(
                nix::libc::SOL_UDP,
                nix::libc::UDP_SEGMENT,
                &1472u16.to_ne_bytes()[..]
            )]
        );
        // A truncated or garbled buffer ends the walk instead of reading past it.
        assert_eq!(cmsgs(&c.0[..CMSG_HEADER - 1]).count(), 0);
        let mut bad = c;
        bad.0[..8].copy_from_slice(&1000usize.to_ne_bytes()[..8]);
        assert_eq!(cmsgs(&bad.0[..len]).count(), 0);
    }

    #[test]
    fn sender_addresses_are_read_from_their_bytes() {
        let mut v4 = (nix::libc::AF_INET as u16).to_ne_bytes().to_vec();
        v4.extend(5353u16.to_be_bytes());
        v4.extend([192, 0, 2, 7]);
        v4.extend([0; 8]);
        assert_eq!(socket_addr(&v4), Some("192.0.2.7:5353".parse().unwrap()));
        let mut v6 = (nix::libc::AF_INET6 as u16).to_ne_bytes().to_vec();
        v6.extend(9u16.to_be_bytes());
        v6.extend(0u32.to_be_bytes());
        v6.extend(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets());
        v6.extend(3u32.to_ne_bytes());
        assert_eq!(socket_addr(&v6), Some("[fe80::1%3]:9".parse().unwrap()));
        assert_eq!(socket_addr(&v6[..20]), None, "cut short");
        assert_eq!(socket_addr(&[0; 16]), None, "no family");
    }

    #[test]
    fn a_fresh_socket_has_dropped_nothing() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(kernel_drops(&s), Some(0));
    }
}
