//! Windows: plain socket calls through std and socket2, one per datagram; no per-datagram
//! destination address, arrival time or drop counter (json `to` is the bound address,
//! `ts` the time udpcat read the datagram, `--stats` drops `unknown`). "Port unreachable"
//! arrives as WSAECONNRESET and is reported as a refusal. stdin cannot be waited on with
//! sockets, so a thread reads it and wakes the event loop.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{self, Receiver, TryRecvError};

use mio::{Registry, Token};
use socket2::Socket;

use crate::net::{DATAGRAM_BUFFER, DatagramSocket, Interface, Meta, Poller};

pub use std::os::windows::io::AsSocket;

pub const SYSTEM: &str = "Windows";

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} is not available on {SYSTEM}"),
    )
}

/// Windows has no SO_REUSEPORT (SO_REUSEADDR there lets any process steal the port).
pub fn set_reuse_port(_socket: &Socket) -> io::Result<()> {
    Err(unsupported("--reuse-port (SO_REUSEPORT)"))
}

pub fn set_recv_buffer(socket: &Socket, size: usize) -> usize {
    let _ = socket.set_recv_buffer_size(size);
    socket.recv_buffer_size().unwrap_or(0)
}

/// The system has no IPv6 (or no ::1): WSAEADDRNOTAVAIL or WSAEAFNOSUPPORT.
pub fn is_no_ipv6(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(10049 | 10047))
}

/// Without WSARecvMsg the destination of each datagram is unknown: records show the bound
/// address, and answers go out the way routing picks.
pub fn enable_packet_info(_socket: &Socket, _v6: bool) -> io::Result<()> {
    Ok(())
}

pub fn enable_drop_counter(_socket: &Socket) {}

pub fn enable_timestamps(_socket: &Socket) {}

pub fn receive_joined_only(_socket: &Socket, _v6: bool) -> io::Result<()> {
    Ok(())
}

pub fn bind_to_interface(_socket: &Socket, _interface: &Interface, _v6: bool) -> io::Result<()> {
    Err(unsupported("--interface for a unicast destination"))
}

/// `--interface` needs an interface name lookup udpcat does not do on Windows.
pub fn interface(arg: &str) -> anyhow::Result<Interface> {
    Err(crate::net::unsupported(
        &format!("--interface {arg}"),
        "udpcat cannot look up interfaces there",
    ))
}

/// Interface names are not looked up on Windows (a scope is given by its number there).
pub fn interface_index(_name: &str) -> Option<u32> {
    None
}

/// Only the limited broadcast address is known without an interface list.
pub fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

/// WSAECONNRESET on a UDP socket is an ICMP "port unreachable": the same as ECONNREFUSED.
fn refused(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::ConnectionReset {
        io::Error::new(io::ErrorKind::ConnectionRefused, "port unreachable")
    } else {
        e
    }
}

/// Receives up to `max` datagrams, one recv_from each, until the socket would block.
pub fn recv_batch(
    watched: &impl DatagramSocket,
    bufs: &mut [u8],
    _scratch: &mut super::RecvScratch,
    max: usize,
    block: bool,
    meta: &mut Vec<Meta>,
) -> io::Result<usize> {
    let socket = socket2::SockRef::from(watched);
    let mut result = Ok(max);
    let mut waited = false;
    while meta.len() < max {
        let i = meta.len();
        if block && waited {
            // Only the first receive may wait; the rest take what is already there.
            socket.set_nonblocking(true)?;
        }
        waited = true;
        let slot = &mut bufs[i * DATAGRAM_BUFFER..(i + 1) * DATAGRAM_BUFFER];
        match watched.io(|| socket.recv_from(as_uninit(slot))) {
            Ok((n, from)) => {
                let from = from
                    .as_socket()
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                let mut m = Meta::new(n, from);
                m.start = i * DATAGRAM_BUFFER;
                meta.push(m);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                result = Ok(meta.len());
                break;
            }
            // Windows reports an earlier answer's "port unreachable" on any UDP socket; only
            // a connected one (send's) has a destination that refused.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && socket.peer_addr().is_err() => {
                continue;
            }
            // What came before the error is delivered; the error comes on the next call.
            Err(_) if i > 0 => break,
            Err(e) => {
                result = Err(refused(e));
                break;
            }
        }
    }
    if block && waited {
        socket.set_nonblocking(false)?;
    }
    result
}

/// The one unsafe fence of this file: socket2 receives into `MaybeUninit` buffers, and ours
/// is an initialised `[u8]`.
#[allow(unsafe_code)]
fn as_uninit(slot: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and socket2 only ever writes
    // initialised bytes into the buffer, so the slice stays initialised for later reads.
    unsafe { &mut *(slot as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// Sends `payloads`, one system call each.
pub fn send_batch(
    socket: &Socket,
    payloads: &[&[u8]],
    dest: Option<SocketAddr>,
) -> Result<(), (usize, io::Error)> {
    crate::net::send_each(socket, payloads, dest).map_err(|(n, e)| (n, refused(e)))
}

/// No source address control without WSASendMsg: answers go the way routing picks.
pub fn send_from(socket: &Socket, payload: &[u8], to: SocketAddr, _from: IpAddr) -> io::Result<()> {
    socket.send_to(payload, &to.into()).map(drop)
}

/// Whether a datagram (or an error) is waiting on the blocking `socket`, without taking it.
pub fn has_pending(socket: &impl AsSocket) -> bool {
    let socket = socket2::SockRef::from(socket);
    if socket.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let peeked = socket.peek_from(as_uninit(&mut byte));
    let _ = socket.set_nonblocking(false);
    !matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Windows keeps no per-socket drop count that udpcat can read.
pub fn kernel_drops(_socket: &impl AsSocket) -> Option<u64> {
    None
}

/// Output is flushed as it comes here, whatever stdout is (`NUL` cannot be told from a file
/// cheaply, and flushing into it is harmless; nothing watches a pipe's reader).
pub fn stdout_kind() -> crate::net::StdoutKind {
    crate::net::StdoutKind::Other
}

/// A reader going away shows at the next write (ERROR_NO_DATA, a broken pipe).
pub fn watch_stdout(_registry: &Registry, _token: Token) -> io::Result<()> {
    Ok(())
}

/// Ctrl-C is handled on another thread, which wakes the event loop, not a blocking receive:
/// listen always waits in the loop here.
pub const INTERRUPTIBLE_RECEIVE: bool = false;

/// stdout for the data path: std's console writer on a console (it converts UTF-8 for the
/// console), the handle itself otherwise.
pub enum Stdout {
    Console(io::Stdout),
    File(std::fs::File),
}

impl std::fmt::Debug for Stdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stdout")
    }
}

pub fn stdout() -> io::Result<Stdout> {
    use std::io::IsTerminal;
    use std::os::windows::io::AsHandle;
    let out = io::stdout();
    if out.is_terminal() {
        return Ok(Stdout::Console(out));
    }
    let handle = out.as_handle().try_clone_to_owned()?;
    Ok(Stdout::File(std::fs::File::from(handle)))
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stdout::Console(c) => c.write(buf),
            Stdout::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stdout::Console(c) => c.flush(),
            Stdout::File(_) => Ok(()),
        }
    }
}

/// How many bytes stdin has left to read when it is a regular file (its size from the
/// current offset on); `None` for a pipe or console, whose size nobody knows.
pub fn stdin_size() -> Option<u64> {
    use std::io::Seek;
    use std::os::windows::io::AsHandle;
    let file = std::fs::File::from(io::stdin().as_handle().try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let at = (&file).stream_position().ok()?;
    Some(meta.len().saturating_sub(at))
}

/// stdin for `send`: a thread reads it in blocks and wakes the event loop, since Windows
/// cannot wait on a console or pipe together with sockets.
pub struct Input {
    blocks: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    /// End of input or an error was seen: `read` reports it (again) at once.
    ended: Option<io::Result<()>>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Input")
    }
}

impl Input {
    pub fn stdin(poller: &mut Poller) -> io::Result<Input> {
        let waker = poller.waker()?;
        let (tx, blocks) = mpsc::sync_channel(4);
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                let mut stdin = io::stdin().lock();
                loop {
                    let mut block = vec![0u8; 64 * 1024];
                    let result = match stdin.read(&mut block) {
                        Ok(n) => {
                            block.truncate(n);
                            Ok(block)
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => Err(e),
                    };
                    let last = !matches!(&result, Ok(b) if !b.is_empty());
                    if tx.send(result).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                    if last {
                        return;
                    }
                }
            })?;
        Ok(Input {
            blocks,
            current: Vec::new(),
            at: 0,
            ended: None,
        })
    }

    /// Whether a read would return at once (data, end of input or an error).
    pub fn ready(&mut self) -> bool {
        if self.at < self.current.len() || self.ended.is_some() {
            return true;
        }
        match self.blocks.try_recv() {
            Ok(Ok(block)) if block.is_empty() => self.ended = Some(Ok(())),
            Ok(Ok(block)) => {
                self.current = block;
                self.at = 0;
            }
            Ok(Err(e)) => self.ended = Some(Err(e)),
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => self.ended = Some(Ok(())),
        }
        true
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.ready() {
            // Only reached when the caller reads without asking `ready` first.
            match self.blocks.recv() {
                Ok(Ok(block)) if block.is_empty() => self.ended = Some(Ok(())),
                Ok(Ok(block)) => {
                    self.current = block;
                    self.at = 0;
                }
                Ok(Err(e)) => self.ended = Some(Err(e)),
                Err(_) => self.ended = Some(Ok(())),
            }
        }
        if self.at < self.current.len() {
            let n = buf.len().min(self.current.len() - self.at);
            buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        match &self.ended {
            Some(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
            _ => Ok(0),
        }
    }
}

/// Windows has no Unix datagram sockets.
pub const ABSTRACT_NAMES: bool = false;

/// The datagram was larger than the socket takes (EMSGSIZE).
pub fn is_too_large(e: &io::Error) -> bool {
    e.raw_os_error() == Some(10040)
}

/// Whether the system has Unix datagram sockets.
pub const UNIX_SOCKETS: bool = false;
