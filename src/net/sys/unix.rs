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

use crate::net::{Interface, Poller};

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

/// Whether a datagram is waiting on `socket`, without taking it: a zero-length peek.
pub fn has_pending(socket: &impl AsSocket) -> bool {
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    // A pending error (port unreachable) counts too: the drain that follows reports it.
    !matches!(
        nix::sys::socket::recv(socket.as_fd().as_raw_fd(), &mut [], flags),
        Err(Errno::EAGAIN)
    )
}

/// Whether stdout is /dev/null: nobody can be waiting to read what goes there, so flushing
/// it before blocking only costs a system call per wake-up.
pub fn is_dev_null() -> bool {
    let (Ok(ours), Ok(null)) = (fstat(io::stdout().as_fd()), stat("/dev/null")) else {
        return false;
    };
    let is_char = |mode| SFlag::from_bits_truncate(mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    is_char(ours.st_mode) && is_char(null.st_mode) && ours.st_rdev == null.st_rdev
}

/// Whether `fd` is a pipe or a socket: what poll and the event loop can watch.
fn is_stream(fd: BorrowedFd<'_>) -> bool {
    fstat(fd).is_ok_and(|st| {
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
    })
}

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
