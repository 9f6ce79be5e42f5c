//! Captures in: the bytes of a capture file -> the UDP datagrams in it, with their times and
//! addresses, for `send --replay`. Pure: no sockets, no clock, no terminal; input comes from
//! any `Read`, a block at a time, so memory stays flat however large the file is.
//!
//! The layers, one file each:
//! - [`capture`]: pcap (microseconds or nanoseconds, either byte order) and pcapng (several
//!   interfaces, each with its own link type and `if_tsresol`) -> packets, through
//!   pcap-parser's streaming readers;
//! - [`json`]: the json lines `udpcat listen -f json` writes -> datagrams;
//! - [`packet`]: a packet's link layer (Ethernet with VLAN tags, RAW, SLL, SLL2, NULL, LOOP,
//!   IPV4, IPV6) -> IP -> UDP, through etherparse, with fragment reassembly in bounded memory.
//!
//! The format is recognised by content (magic bytes, or a leading `{`), never by file name.

mod capture;
mod json;
mod packet;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use packet::MAX_REASSEMBLIES;

/// One UDP datagram found in a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The packet number in the file (1 for the first packet, counting every packet, UDP or
    /// not; for a reassembled datagram the fragment that completed it); in json lines, the
    /// line number.
    pub index: u64,
    /// When it was captured, as the file says (not necessarily increasing: captures from
    /// several interfaces can interleave).
    pub time: SystemTime,
    /// The sender. `None` only in json lines, for a record from a Unix socket.
    pub src: Option<SocketAddr>,
    /// The original destination. `None` only in json lines, for a record from a Unix socket.
    pub dst: Option<SocketAddr>,
    /// The UDP payload, exactly as captured.
    pub payload: Vec<u8>,
}

/// What kind of file the reader recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap; `nanos` for the nanosecond magic.
    Pcap {
        nanos: bool,
        big_endian: bool,
    },
    PcapNg,
    /// The json lines of `udpcat listen -f json`.
    JsonLines,
    /// No bytes at all: no datagrams.
    Empty,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Pcap { nanos: false, .. } => f.write_str("pcap"),
            Format::Pcap { nanos: true, .. } => f.write_str("pcap (nanosecond)"),
            Format::PcapNg => f.write_str("pcapng"),
            Format::JsonLines => f.write_str("json lines"),
            Format::Empty => f.write_str("empty"),
        }
    }
}

/// What the reader passed over, for `-v` and `--stats`. Final once the reader has returned
/// `Ok(None)`: fragmented datagrams still incomplete then are counted at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets (json: records) read.
    pub packets: u64,
    /// UDP datagrams handed out.
    pub datagrams: u64,
    /// Packets of other protocols (TCP, ICMP, ARP, ...).
    pub not_udp: u64,
    /// Packets on an interface whose link type udpcat does not read (pcapng only; in a pcap
    /// file the one link type is checked at the start).
    pub other_link: u64,
    /// Packets cut short in the capture: captured length below the packet's length.
    pub truncated: u64,
    /// Packets whose headers do not parse or disagree with the captured length.
    pub malformed: u64,
    /// Fragmented datagrams given up: never completed by the end of the file, pushed out when
    /// more than [`MAX_REASSEMBLIES`] were in progress, or with fragments that disagree.
    pub incomplete: u64,
}

impl Counts {
    /// Every packet passed over, whatever the reason.
    pub fn skipped(&self) -> u64 {
        self.not_udp + self.other_link + self.truncated + self.malformed
    }
}

/// Where in the file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The file header, before any packet.
    Header,
    /// Packet N (1-based), or the block just before it in a pcapng file.
    Packet(u64),
    /// Line N of json lines (1-based).
    Line(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Header => f.write_str("file header"),
            Position::Packet(n) => write!(f, "packet {n}"),
            Position::Line(n) => write!(f, "line {n}"),
        }
    }
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ErrorKind {
    /// Reading the input failed.
    Io(io::Error),
    /// The input is none of the formats udpcat reads.
    NotACapture,
    /// The file is damaged (or uses something udpcat does not read); the text says what.
    Damaged(String),
}

/// A read that cannot go on: the position and what is wrong. Messages never quote the file's
/// bytes, so they are safe on a terminal.
#[derive(Debug)]
pub struct Error {
    pub position: Position,
    pub kind: ErrorKind,
}

impl Error {
    fn damaged(position: Position, what: impl Into<String>) -> Self {
        Error {
            position,
            kind: ErrorKind::Damaged(what.into()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "{}: read failed: {e}", self.position),
            ErrorKind::NotACapture => f.write_str(
                "not a capture udpcat reads (pcap, pcapng, or the json lines of `udpcat listen -f json`)",
            ),
            ErrorKind::Damaged(what) => write!(f, "{}: {what}", self.position),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads the UDP datagrams of a capture, one at a time.
///
/// ```no_run
/// # fn main() -> Result<(), udpcat::replay::Error> {
/// let file = std::fs::File::open("trace.pcap").map_err(|e| udpcat::replay::Error {
///     position: udpcat::replay::Position::Header,
///     kind: udpcat::replay::ErrorKind::Io(e),
/// })?;
/// let mut reader = udpcat::replay::Reader::new(file)?;
/// while let Some(d) = reader.next_datagram()? {
///     println!("{} bytes to {:?}", d.payload.len(), d.dst);
/// }
/// eprintln!("skipped {}", reader.counts().skipped());
/// # Ok(())
/// # }
/// ```
pub struct Reader<R: Read> {
    inner: Inner<R>,
    counts: Counts,
    /// After an error or the end, nothing more is read.
    done: bool,
}

enum Inner<R: Read> {
    Empty,
    Capture(Box<capture::Capture<R>>),
    Json(json::Lines<R>),
}

impl<R: Read> Reader<R> {
    /// Reads the start of `input` to recognise the format (and, for pcap and pcapng, the
    /// file header). An empty input is a capture with no datagrams.
    pub fn new(input: R) -> Result<Self, Error> {
        let mut input = Input::new(input);
        let mut head = [0u8; 4];
        let n = input.read_up_to(&mut head).map_err(|e| Error {
            position: Position::Header,
            kind: ErrorKind::Io(e),
        })?;
        let head = &head[..n];
        let inner = if head.is_empty() {
            Inner::Empty
        } else if let Some(kind) = capture::recognise(head) {
            Inner::Capture(Box::new(capture::Capture::new(input, head, kind)?))
        } else if json::looks_like_json(head) {
            Inner::Json(json::Lines::new(input, head))
        } else {
            return Err(Error {
                position: Position::Header,
                kind: ErrorKind::NotACapture,
            });
        };
        Ok(Reader {
            inner,
            counts: Counts::default(),
            done: false,
        })
    }

    /// The format recognised.
    pub fn format(&self) -> Format {
        match &self.inner {
            Inner::Empty => Format::Empty,
            Inner::Capture(c) => c.format(),
            Inner::Json(_) => Format::JsonLines,
        }
    }

    /// The next UDP datagram; `Ok(None)` at the end. After an error (or the end) it returns
    /// `Ok(None)`: everything before the damage was handed out, nothing after it.
    pub fn next_datagram(&mut self) -> Result<Option<Datagram>, Error> {
        if self.done {
            return Ok(None);
        }
        let next = match &mut self.inner {
            Inner::Empty => Ok(None),
            Inner::Capture(c) => c.next_datagram(&mut self.counts),
            Inner::Json(j) => j.next_datagram(&mut self.counts),
        };
        match &next {
            Ok(Some(_)) => self.counts.datagrams += 1,
            Ok(None) | Err(_) => self.done = true,
        }
        next
    }

    /// What was read and skipped so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<Datagram, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_datagram().transpose()
    }
}

/// The input, with EINTR retried and the last I/O error kept: pcap-parser reports a failed
/// read only as `ReadError`, so the reader takes the real error from here.
struct Input<R> {
    inner: R,
    error: Arc<Mutex<Option<io::Error>>>,
}

impl<R: Read> Input<R> {
    fn new(inner: R) -> Self {
        Input {
            inner,
            error: Arc::new(Mutex::new(None)),
        }
    }

    /// Reads until `buf` is full or the input ends; the number of bytes read.
    fn read_up_to(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }

    /// A handle on the last read error, for the layer that only learns that one happened.
    fn error_slot(&self) -> Arc<Mutex<Option<io::Error>>> {
        Arc::clone(&self.error)
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    if let Ok(mut slot) = self.error.lock() {
                        *slot = Some(e);
                    }
                    return Err(copy);
                }
                Ok(n) => return Ok(n),
            }
        }
    }
}

/// The error kept in `slot`, or a generic one.
fn take_io_error(slot: &Mutex<Option<io::Error>>) -> io::Error {
    slot.lock()
        .ok()
        .and_then(|mut s| s.take())
        .unwrap_or_else(|| io::Error::other("read failed"))
}

/// A time `secs` + `nanos` after the epoch (`secs` may be negative), or the epoch when the
/// system cannot represent it.
fn epoch_plus(secs: i64, nanos: u32) -> SystemTime {
    use std::time::Duration;
    let t = if secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), 0))
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(Duration::new(secs.unsigned_abs(), 0))
    };
    t.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}
