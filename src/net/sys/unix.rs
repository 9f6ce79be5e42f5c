//! What every Unix shares: interface lookup (getifaddrs), broadcast addresses, stdin and
//! stdout as file descriptors the event loop can watch, a zero-length peek, and replies
//! sent from a chosen source address.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, SockaddrStorage};
use nix::sys::stat::{SFlag, fstat, stat};

use crate::addr::{Addr, UnixAddr};
use crate::net::{DATAGRAM_BUFFER, Interface, Meta, Poller, StdoutKind};

pub use std::os::fd::AsFd as AsSocket;

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

/// The index of the interface called `name`.
pub fn interface_index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// Whether `ip` is the limited broadcast address or the broadcast address of one of this
/// machine's interfaces (set explicitly, or implied by its netmask).
pub fn is_broadcast(ip: IpAddr) -> bool {
    let IpAddr::V4(v4) = ip else {
        return false;
    };
    if v4.is_broadcast() {
        return true;
    }
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

pub(super) fn to_socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    s.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// A kernel receive timestamp (seconds and nanoseconds since 1970) as a time.
pub(super) fn stamp(secs: i64, nanos: i64) -> Option<std::time::SystemTime> {
    let secs = u64::try_from(secs).ok()?;
    let nanos = u32::try_from(nanos).unwrap_or(0).min(999_999_999);
    Some(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}

/// Whether a datagram is waiting on `socket`, without taking it: a zero-length peek.
pub fn has_pending(socket: &impl AsSocket) -> bool {
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    // A pending error (port unreachable) counts too: the drain that follows reports it.
    !matches!(
        nix::sys::socket::recv(socket.as_fd().as_raw_fd(), &mut [], flags),
        Err(Errno::EAGAIN)
    )
}

/// What stdout is: /dev/null (nobody can be waiting for what goes there), a regular file, a
/// pipe or socket (whose reader may leave, which the event loop watches for), or anything
/// else (a terminal, a device).
pub fn stdout_kind() -> StdoutKind {
    let Ok(ours) = fstat(io::stdout().as_fd()) else {
        return StdoutKind::Other;
    };
    match SFlag::from_bits_truncate(ours.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => StdoutKind::File,
        SFlag::S_IFIFO | SFlag::S_IFSOCK => StdoutKind::Stream,
        SFlag::S_IFCHR if stat("/dev/null").is_ok_and(|null| null.st_rdev == ours.st_rdev) => {
            StdoutKind::Null
        }
        _ => StdoutKind::Other,
    }
}

/// Whether `fd` is a pipe or a socket: what poll and the event loop can watch.
fn is_stream(fd: BorrowedFd<'_>) -> bool {
    fstat(fd).is_ok_and(|st| {
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
    })
}

/// A signal interrupts a blocking receive on a socket with SO_RCVTIMEO (never restarted).
pub const INTERRUPTIBLE_RECEIVE: bool = true;

/// Registers stdout when it is a pipe or socket: its reader going away is an error event.
pub fn watch_stdout(registry: &Registry, token: Token) -> io::Result<()> {
    let out = io::stdout();
    if !is_stream(out.as_fd()) {
        return Ok(());
    }
    let fd = out.as_fd().as_raw_fd();
    // Readable interest on a pipe's write end never fires; its error event does.
    registry.register(&mut SourceFd(&fd), token, Interest::READABLE)
}

/// stdout for the data path: the file descriptor itself (a duplicate), unbuffered, so the
/// loop's own buffer is the only one and a flush really reaches the reader.
#[derive(Debug)]
pub struct Stdout(File);

pub fn stdout() -> io::Result<Stdout> {
    Ok(Stdout(File::from(
        io::stdout().as_fd().try_clone_to_owned()?,
    )))
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The system has no IPv6 (or no ::1): binding it fails this way.
pub fn is_no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EADDRNOTAVAIL | nix::libc::EAFNOSUPPORT)
    )
}

/// How many bytes stdin has left to read when it is a regular file (its size from the
/// current offset on); `None` for a pipe, terminal or socket, whose size nobody knows.
pub fn stdin_size() -> Option<u64> {
    use std::io::Seek;
    let file = File::from(io::stdin().as_fd().try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let at = (&file).stream_position().ok()?;
    Some(meta.len().saturating_sub(at))
}

/// stdin for `send`: read straight from the file descriptor (no buffer of std's in
/// between, so what poll says is what `read` gets). Watched by the event loop when it is a
/// pipe, socket or terminal; a file or /dev/null is always ready.
#[derive(Debug)]
pub struct Input {
    file: File,
    watched: bool,
}

impl Input {
    pub fn stdin(poller: &mut Poller) -> io::Result<Input> {
        let file = File::from(io::stdin().as_fd().try_clone_to_owned()?);
        let fd = file.as_raw_fd();
        let kind = fstat(file.as_fd())
            .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
            .unwrap_or(SFlag::S_IFREG);
        let watched = matches!(kind, SFlag::S_IFIFO | SFlag::S_IFSOCK | SFlag::S_IFCHR)
            && poller
                .registry()
                .register(
                    &mut SourceFd(&fd),
                    crate::net::event::INPUT,
                    Interest::READABLE,
                )
                .is_ok();
        Ok(Input { file, watched })
    }

    /// Whether a read would return at once (data, end of input or an error). Asked of the
    /// system each time (a zero-timeout poll), level-triggered: a terminal hands out one
    /// line per read, so a short read does not mean nothing is left.
    pub fn ready(&mut self) -> bool {
        if !self.watched {
            return true;
        }
        let mut fds = [nix::poll::PollFd::new(
            self.file.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
            Ok(n) => n > 0,
            // Let the read report it.
            Err(_) => true,
        }
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

/// Sends `payload` to `to` from the local address `from` (IP_PKTINFO; IP_SENDSRCADDR on
/// FreeBSD), falling back to a routed send when the system will not send from there.
pub fn send_from(
    socket: &socket2::Socket,
    payload: &[u8],
    to: SocketAddr,
    from: IpAddr,
) -> io::Result<()> {
    match super::send_with_source(socket.as_raw_fd(), payload, to, from) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL | Errno::ENETUNREACH | Errno::EADDRNOTAVAIL) => {
            socket.send_to(payload, &to.into()).map(drop)
        }
        Err(e) => Err(e.into()),
    }
}

// ---- Unix datagram sockets ---------------------------------------------------------------

/// Our name for the address nix reports.
fn unix_name(addr: Option<&nix::sys::socket::UnixAddr>) -> UnixAddr {
    let Some(addr) = addr else {
        return UnixAddr::Unnamed;
    };
    if let Some(path) = addr.path() {
        return UnixAddr::Path(path.to_path_buf());
    }
    match super::abstract_name(addr) {
        Some(name) => UnixAddr::Abstract(name),
        None => UnixAddr::Unnamed,
    }
}

/// nix's address for our name; `None` for a nameless socket.
pub(crate) fn nix_unix_addr(addr: &UnixAddr) -> io::Result<Option<nix::sys::socket::UnixAddr>> {
    match addr {
        UnixAddr::Path(p) => Ok(Some(
            nix::sys::socket::UnixAddr::new(p.as_path()).map_err(io::Error::from)?,
        )),
        UnixAddr::Abstract(name) => super::new_abstract(name).map(Some),
        UnixAddr::Unnamed => Ok(None),
    }
}

/// Receives up to `max` datagrams from a Unix datagram socket, each whole: its size is
/// asked first, and one larger than a slot goes into `big`, alone in its batch. Returns how
/// many it took, or `max` when it stopped with more perhaps waiting (a large datagram, an
/// error for the next call).
pub fn recv_unix(
    socket: &impl AsFd,
    bufs: &mut [u8],
    big: &mut Vec<u8>,
    max: usize,
    block: bool,
    meta: &mut Vec<Meta>,
) -> io::Result<usize> {
    let fd = socket.as_fd().as_raw_fd();
    while meta.len() < max {
        let wait = block && meta.is_empty();
        let size = match super::next_datagram_size(fd, wait, big) {
            Ok(size) => size,
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(meta.len()),
            // What came before the error is delivered; the error comes on the next call.
            Err(_) if !meta.is_empty() => return Ok(max),
            Err(e) => return Err(e.into()),
        };
        let into_big = size > DATAGRAM_BUFFER;
        if into_big && !meta.is_empty() {
            return Ok(max);
        }
        let i = meta.len();
        let buf: &mut [u8] = if into_big {
            big.resize(size, 0);
            big.as_mut_slice()
        } else {
            &mut bufs[i * DATAGRAM_BUFFER..(i + 1) * DATAGRAM_BUFFER]
        };
        let (n, from) = nix::sys::socket::recvfrom::<nix::sys::socket::UnixAddr>(fd, buf)
            .map_err(io::Error::from)?;
        let mut m = Meta::from_addr(n, Addr::Unix(unix_name(from.as_ref())));
        m.big = into_big;
        m.start = if into_big { 0 } else { i * DATAGRAM_BUFFER };
        meta.push(m);
        if into_big {
            return Ok(max);
        }
    }
    Ok(meta.len())
}

/// Sends `payload` to the Unix socket `to` from `socket`.
pub fn unix_send_to(socket: &impl AsFd, payload: &[u8], to: &UnixAddr) -> io::Result<()> {
    let Some(addr) = nix_unix_addr(to)? else {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "the sender's socket has no name, so nothing can be sent back to it",
        ));
    };
    nix::sys::socket::sendto(
        socket.as_fd().as_raw_fd(),
        payload,
        &addr,
        MsgFlags::empty(),
    )
    .map(drop)
    .map_err(io::Error::from)
}

/// A Unix datagram socket bound to `addr`, for listen. An existing file at a path: a socket
/// nobody listens on (stale) is replaced; a live socket or any other file is an error
/// naming the path, and the file is left alone. Returns the socket and the file to remove
/// at exit.
pub fn bind_unix(
    addr: &UnixAddr,
) -> anyhow::Result<(std::os::unix::net::UnixDatagram, Option<std::path::PathBuf>)> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::net::UnixDatagram;
    let Some(nix_addr) = nix_unix_addr(addr)? else {
        anyhow::bail!("cannot listen on {addr}: a socket to listen on needs a name");
    };
    let mut cleanup = None;
    if let UnixAddr::Path(path) = addr {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                let probe = UnixDatagram::unbound()?;
                match probe.connect(path) {
                    Ok(()) => anyhow::bail!(
                        "cannot listen on {addr}: another process listens on this socket \
                         (stop it, or choose another path)"
                    ),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        // A socket file left by a process that is gone: replace it.
                        std::fs::remove_file(path).map_err(|e| {
                            anyhow::anyhow!("cannot replace the stale socket {addr}: {e}")
                        })?;
                        tracing::info!("{addr}: replaced a stale socket file");
                    }
                    Err(e) => anyhow::bail!("cannot listen on {addr}: {e}"),
                }
            }
            Ok(_) => anyhow::bail!(
                "cannot listen on {addr}: the file exists and is not a socket (udpcat leaves \
                 it alone; choose another path)"
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("cannot listen on {addr}: {e}"),
        }
        cleanup = Some(path.clone());
    }
    let socket = UnixDatagram::unbound()?;
    nix::sys::socket::bind(socket.as_raw_fd(), &nix_addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {}", io::Error::from(e)))?;
    socket.set_nonblocking(true)?;
    Ok((socket, cleanup))
}

/// A blocking Unix datagram socket connected to `dest`, for send. It gets a name only when
/// an answer must be able to come back (`named`, or `bind`): Linux's autobind (an abstract
/// name the kernel picks), elsewhere a fresh file in the temporary directory. Returns the
/// socket, its name, and a file to remove at exit.
pub fn unix_sender(
    dest: &UnixAddr,
    bind: Option<&UnixAddr>,
    named: bool,
) -> io::Result<(
    std::os::unix::net::UnixDatagram,
    UnixAddr,
    Option<std::path::PathBuf>,
)> {
    use std::os::unix::net::UnixDatagram;
    let socket = UnixDatagram::unbound()?;
    let fd = socket.as_raw_fd();
    let mut cleanup = None;
    let local = match bind {
        Some(b) => {
            if let Some(a) = nix_unix_addr(b)? {
                nix::sys::socket::bind(fd, &a).map_err(io::Error::from)?;
            }
            if let UnixAddr::Path(p) = b {
                cleanup = Some(p.clone());
            }
            b.clone()
        }
        None if named => match super::autobind(fd)? {
            Some(name) => name,
            None => {
                let path = temp_socket_path();
                let a = nix::sys::socket::UnixAddr::new(path.as_path()).map_err(io::Error::from)?;
                nix::sys::socket::bind(fd, &a).map_err(io::Error::from)?;
                cleanup = Some(path.clone());
                UnixAddr::Path(path)
            }
        },
        None => UnixAddr::Unnamed,
    };
    let Some(to) = nix_unix_addr(dest)? else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a destination socket needs a name",
        ));
    };
    if let Err(e) = nix::sys::socket::connect(fd, &to) {
        if let Some(p) = &cleanup {
            let _ = std::fs::remove_file(p);
        }
        return Err(e.into());
    }
    Ok((socket, local, cleanup))
}

/// A fresh path for a socket that must have a file: the temporary directory, the process
/// id and a counter.
fn temp_socket_path() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "udpcat-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

/// The datagram was larger than the socket takes (EMSGSIZE).
pub fn is_too_large(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::EMSGSIZE)
}

/// Whether the system has Unix datagram sockets.
pub const UNIX_SOCKETS: bool = true;

/// One sendmsg to `dest` from the IPv6 address `ip` (IPV6_PKTINFO, the same on every Unix).
pub(super) fn send_v6_from(
    fd: std::os::fd::RawFd,
    iov: &[std::io::IoSlice<'_>],
    dest: &SockaddrStorage,
    ip: std::net::Ipv6Addr,
) -> Result<usize, Errno> {
    let info = nix::libc::in6_pktinfo {
        ipi6_addr: nix::libc::in6_addr {
            s6_addr: ip.octets(),
        },
        ipi6_ifindex: 0,
    };
    let cmsg = [nix::sys::socket::ControlMessage::Ipv6PacketInfo(&info)];
    nix::sys::socket::sendmsg(fd, iov, &cmsg, MsgFlags::empty(), Some(dest))
}
