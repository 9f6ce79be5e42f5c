//! pcap and pcapng containers -> packets (time, link type, bytes), through pcap-parser's
//! streaming readers: a buffer of fixed size refilled from the input, grown only for a record
//! larger than it (up to [`MAX_RECORD`]).

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use circular::Buffer;
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{
    LegacyPcapReader, Linktype, OptionCode, PcapBlockOwned, PcapError, PcapNGReader,
};

use super::packet::{Decoder, Link};
use super::{Counts, Datagram, Error, ErrorKind, Format, Input, Position, epoch_plus};

/// The buffer a reader starts with: room for the largest packet tcpdump captures by default
/// (262,144 bytes) and its record header.
const START_BUFFER: usize = 256 * 1024 + 64;

/// The largest record (pcap packet record or pcapng block) udpcat reads; a larger one is
/// taken as damage rather than grown into.
pub(super) const MAX_RECORD: usize = 16 * 1024 * 1024;

/// Interfaces one pcapng section may describe: enough for any real capture, a bound for a
/// hostile one.
const MAX_INTERFACES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Pcap { nanos: bool, big_endian: bool },
    PcapNg,
}

/// The container whose magic number starts `head` (up to 4 bytes).
pub(super) fn recognise(head: &[u8]) -> Option<Kind> {
    let magic: [u8; 4] = head.try_into().ok()?;
    match u32::from_le_bytes(magic) {
        // The modified (Kuznetzov) format is read by pcap-parser too, little-endian only.
        0xa1b2_c3d4 | 0xa1b2_cd34 => Some(Kind::Pcap {
            nanos: false,
            big_endian: false,
        }),
        0xa1b2_3c4d => Some(Kind::Pcap {
            nanos: true,
            big_endian: false,
        }),
        0xd4c3_b2a1 => Some(Kind::Pcap {
            nanos: false,
            big_endian: true,
        }),
        0x4d3c_b2a1 => Some(Kind::Pcap {
            nanos: true,
            big_endian: true,
        }),
        0x0a0d_0d0a => Some(Kind::PcapNg),
        _ => None,
    }
}

/// A pcapng interface: its link type and how to read its timestamps.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: Option<Link>,
    snaplen: u32,
    /// Timestamp units per second (10^6 by default).
    units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
}

enum Container<R: Read> {
    Pcap(LegacyPcapReader<Input<R>>),
    PcapNg(PcapNGReader<Input<R>>),
}

impl<R: Read> Container<R> {
    fn reader(&mut self) -> &mut dyn PcapReaderIterator {
        match self {
            Container::Pcap(r) => r,
            Container::PcapNg(r) => r,
        }
    }
}

pub(super) struct Capture<R: Read> {
    container: Container<R>,
    state: State,
    kind: Kind,
    decoder: Decoder,
    io_error: Arc<Mutex<Option<std::io::Error>>>,
    /// The reader's buffer size (pcap-parser does not tell).
    capacity: usize,
    /// Packets read so far.
    packets: u64,
    /// The time of the last packet with one (a pcapng simple packet block has none).
    last_time: SystemTime,
}

impl<R: Read> Capture<R> {
    /// Reads the file header (`head` is what was already read of it) and sets up the reader.
    pub(super) fn new(mut input: Input<R>, head: &[u8], kind: Kind) -> Result<Self, Error> {
        let io_error = input.error_slot();
        let header_error = |e: PcapError<&[u8]>| match e {
            PcapError::ReadError => Error {
                position: Position::Header,
                kind: ErrorKind::Io(super::take_io_error(&io_error)),
            },
            _ => Error::damaged(Position::Header, "the file header is damaged"),
        };
        let io = |e: std::io::Error| Error {
            position: Position::Header,
            kind: ErrorKind::Io(e),
        };
        // The whole file header goes into the buffer first: pcap-parser parses it from what a
        // single read returns, and a pipe may return less.
        let mut buffer = Buffer::with_capacity(START_BUFFER);
        let header_len = match kind {
            Kind::Pcap { .. } => 24,
            Kind::PcapNg => {
                let mut first = [0u8; 12];
                first[..4].copy_from_slice(head);
                let n = 4 + input.read_up_to(&mut first[4..]).map_err(io)?;
                if n < 12 {
                    return Err(Error::damaged(
                        Position::Header,
                        "the file ends inside the section header",
                    ));
                }
                let len = if first[8..12] == [0x4d, 0x3c, 0x2b, 0x1a] {
                    u32::from_le_bytes([first[4], first[5], first[6], first[7]])
                } else {
                    u32::from_be_bytes([first[4], first[5], first[6], first[7]])
                };
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if !(28..=START_BUFFER).contains(&len) {
                    return Err(Error::damaged(
                        Position::Header,
                        format!("the section header's length ({len} bytes) is not possible"),
                    ));
                }
                buffer.space()[..12].copy_from_slice(&first);
                buffer.fill(12);
                len
            }
        };
        if buffer.available_data() == 0 {
            buffer.space()[..head.len()].copy_from_slice(head);
            buffer.fill(head.len());
        }
        let have = buffer.available_data();
        let n = input
            .read_up_to(&mut buffer.space()[..header_len - have])
            .map_err(io)?;
        buffer.fill(n);
        if have + n < header_len {
            return Err(Error::damaged(
                Position::Header,
                "the file ends inside the file header",
            ));
        }
        let (container, state) = match kind {
            Kind::Pcap { nanos, .. } => {
                let mut reader =
                    LegacyPcapReader::from_buffer(buffer, input).map_err(header_error)?;
                // The first block is the file header, not yet consumed.
                let (offset, linktype) = match reader.next() {
                    Ok((offset, PcapBlockOwned::LegacyHeader(h))) => (offset, h.network),
                    _ => {
                        return Err(Error::damaged(
                            Position::Header,
                            "the file header is damaged",
                        ));
                    }
                };
                reader.consume(offset);
                let link = Link::from_linktype(linktype).ok_or_else(|| {
                    Error::damaged(
                        Position::Header,
                        format!(
                            "link type {} is not one udpcat reads ({})",
                            linktype.0,
                            Link::SUPPORTED
                        ),
                    )
                })?;
                (Container::Pcap(reader), State::Pcap { link, nanos })
            }
            Kind::PcapNg => (
                Container::PcapNg(PcapNGReader::from_buffer(buffer, input).map_err(header_error)?),
                State::PcapNg {
                    interfaces: Vec::new(),
                    big_endian: false,
                },
            ),
        };
        Ok(Capture {
            container,
            state,
            kind,
            decoder: Decoder::default(),
            io_error,
            capacity: START_BUFFER,
            packets: 0,
            last_time: SystemTime::UNIX_EPOCH,
        })
    }

    pub(super) fn format(&self) -> Format {
        match self.kind {
            Kind::Pcap { nanos, big_endian } => Format::Pcap { nanos, big_endian },
            Kind::PcapNg => Format::PcapNg,
        }
    }

    /// The next UDP datagram, reading as many packets as it takes.
    pub(super) fn next_datagram(&mut self, counts: &mut Counts) -> Result<Option<Datagram>, Error> {
        loop {
            let position = Position::Packet(self.packets + 1);
            let reader = self.container.reader();
            if let State::PcapNg { big_endian, .. } = self.state {
                if let Some(len) = impossible_block_length(reader.data(), big_endian) {
                    return Err(Error::damaged(
                        position,
                        format!("a block's length ({len} bytes) is not possible"),
                    ));
                }
            }
            let step = match reader.next() {
                Ok((offset, block)) => Step::Block(
                    offset,
                    handle_block(
                        block,
                        &mut self.state,
                        &mut self.decoder,
                        &mut self.packets,
                        &mut self.last_time,
                        counts,
                    ),
                ),
                Err(PcapError::Eof) => Step::End,
                Err(PcapError::Incomplete(_)) => Step::Refill,
                Err(PcapError::BufferTooSmall) => Step::Grow,
                Err(PcapError::UnexpectedEof) => {
                    Step::Fail(Error::damaged(position, "the file ends inside it"))
                }
                Err(PcapError::ReadError) => Step::Fail(Error {
                    position,
                    kind: ErrorKind::Io(super::take_io_error(&self.io_error)),
                }),
                Err(_) => Step::Fail(Error::damaged(
                    position,
                    match self.kind {
                        Kind::Pcap { .. } => "the packet record is damaged",
                        Kind::PcapNg => "a block is damaged (its type or length is not possible)",
                    },
                )),
            };
            let reader = self.container.reader();
            match step {
                Step::Block(offset, found) => {
                    reader.consume(offset);
                    if let Some(d) = found? {
                        return Ok(Some(d));
                    }
                }
                Step::End => {
                    counts.incomplete += self.decoder.finish();
                    return Ok(None);
                }
                Step::Refill => {
                    let before = reader.data().len();
                    if reader.refill().is_err() {
                        return Err(Error {
                            position,
                            kind: ErrorKind::Io(super::take_io_error(&self.io_error)),
                        });
                    }
                    // A full buffer that still holds only part of a record: make room.
                    if reader.data().len() == before
                        && !reader.reader_exhausted()
                        && !grow(reader, &mut self.capacity)
                    {
                        return Err(too_large(position));
                    }
                }
                Step::Grow => {
                    if !grow(reader, &mut self.capacity) {
                        return Err(too_large(position));
                    }
                }
                Step::Fail(e) => return Err(e),
            }
        }
    }
}

enum Step {
    Block(usize, Result<Option<Datagram>, Error>),
    End,
    Refill,
    Grow,
    Fail(Error),
}

/// What a block is read against: the pcap file's link type, or the pcapng interfaces.
enum State {
    Pcap {
        link: Link,
        nanos: bool,
    },
    PcapNg {
        interfaces: Vec<Interface>,
        big_endian: bool,
    },
}

/// The length of the pcapng block starting `data` when it cannot be right: below the 12 bytes
/// of a block's type and two lengths, or not a multiple of 4. pcap-parser does not check this
/// for every block type (a process information block shorter than 12 bytes makes it subtract
/// past zero), so it is checked here first. A section header carries its own byte order and is
/// left to pcap-parser.
fn impossible_block_length(data: &[u8], big_endian: bool) -> Option<u32> {
    let head: [u8; 8] = data.get(..8)?.try_into().ok()?;
    if head[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        return None;
    }
    let len = [head[4], head[5], head[6], head[7]];
    let len = if big_endian {
        u32::from_be_bytes(len)
    } else {
        u32::from_le_bytes(len)
    };
    (len < 12 || len % 4 != 0).then_some(len)
}

/// Doubles the reader's buffer, up to [`MAX_RECORD`]; false when it is that large already.
fn grow(reader: &mut dyn PcapReaderIterator, capacity: &mut usize) -> bool {
    let size = *capacity * 2;
    if size > 2 * MAX_RECORD || !reader.grow(size) {
        return false;
    }
    *capacity = size;
    true
}

fn too_large(position: Position) -> Error {
    Error::damaged(
        position,
        format!(
            "a record larger than {} MiB: the file is damaged",
            MAX_RECORD / (1024 * 1024)
        ),
    )
}

/// One block: a packet becomes a datagram (or is counted as skipped); an interface or section
/// header updates the state; anything else is passed over.
fn handle_block(
    block: PcapBlockOwned<'_>,
    state: &mut State,
    decoder: &mut Decoder,
    packets: &mut u64,
    last_time: &mut SystemTime,
    counts: &mut Counts,
) -> Result<Option<Datagram>, Error> {
    let next = Position::Packet(*packets + 1);
    let (link, iface, time, data, orig_len) = match (block, state) {
        (PcapBlockOwned::Legacy(b), State::Pcap { link, nanos }) => {
            let nanos = if *nanos {
                u64::from(b.ts_usec)
            } else {
                u64::from(b.ts_usec) * 1000
            };
            let time = epoch_plus(i64::from(b.ts_sec), 0)
                .checked_add(std::time::Duration::from_nanos(nanos))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (Some(*link), 0, time, b.data, b.origlen)
        }
        (
            PcapBlockOwned::NG(block),
            State::PcapNg {
                interfaces,
                big_endian,
            },
        ) => match block {
            Block::SectionHeader(shb) => {
                // A new section starts afresh: its own byte order and interfaces.
                *big_endian = shb.big_endian();
                interfaces.clear();
                return Ok(None);
            }
            Block::InterfaceDescription(idb) => {
                if interfaces.len() >= MAX_INTERFACES {
                    return Err(Error::damaged(
                        next,
                        format!("more than {MAX_INTERFACES} interfaces in one section"),
                    ));
                }
                interfaces.push(interface(&idb, *big_endian, next)?);
                return Ok(None);
            }
            Block::EnhancedPacket(epb) => {
                let Some(i) = usize::try_from(epb.if_id)
                    .ok()
                    .and_then(|i| interfaces.get(i))
                else {
                    *packets += 1;
                    return Err(Error::damaged(
                        next,
                        format!("interface {} was never described", epb.if_id),
                    ));
                };
                let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let secs = ts / i.units;
                let frac = ts % i.units;
                // frac < units <= 2^63, so frac * 1e9 fits in u128.
                let nanos = u32::try_from(u128::from(frac) * 1_000_000_000 / u128::from(i.units))
                    .unwrap_or(0);
                let secs = i64::try_from(secs)
                    .unwrap_or(i64::MAX)
                    .saturating_add(i.offset);
                let caplen = usize::try_from(epb.caplen).unwrap_or(usize::MAX);
                let data = &epb.data[..caplen.min(epb.data.len())];
                (
                    i.link,
                    epb.if_id,
                    epoch_plus(secs, nanos),
                    data,
                    epb.origlen,
                )
            }
            Block::SimplePacket(spb) => {
                let Some(i) = interfaces.first() else {
                    *packets += 1;
                    return Err(Error::damaged(next, "interface 0 was never described"));
                };
                // The block holds min(original length, snaplen) bytes and padding; it has no
                // timestamp, so it takes the previous packet's.
                let mut caplen = usize::try_from(spb.origlen).unwrap_or(usize::MAX);
                if i.snaplen != 0 {
                    caplen = caplen.min(usize::try_from(i.snaplen).unwrap_or(usize::MAX));
                }
                let data = &spb.data[..caplen.min(spb.data.len())];
                (i.link, 0, *last_time, data, spb.origlen)
            }
            // Statistics, name resolution, secrets, custom and unknown blocks say nothing
            // about the datagrams.
            _ => return Ok(None),
        },
        // pcap-parser's legacy reader yields only legacy blocks and its pcapng reader only
        // pcapng ones; the header was consumed at the start.
        _ => return Ok(None),
    };
    *packets += 1;
    counts.packets += 1;
    *last_time = time;
    let Some(link) = link else {
        counts.other_link += 1;
        return Ok(None);
    };
    if u64::try_from(data.len()).unwrap_or(u64::MAX) < u64::from(orig_len) {
        counts.truncated += 1;
        return Ok(None);
    }
    Ok(decoder
        .decode(link, iface, data, counts)
        .map(|udp| Datagram {
            index: *packets,
            time,
            src: Some(udp.src),
            dst: Some(udp.dst),
            payload: udp.payload,
        }))
}

/// An interface description: its link type, snaplen and timestamp resolution and offset.
fn interface(
    idb: &pcap_parser::InterfaceDescriptionBlock<'_>,
    big_endian: bool,
    next: Position,
) -> Result<Interface, Error> {
    let mut resol = 6u8;
    let mut offset = 0i64;
    for opt in &idb.options {
        let value = opt.value();
        if opt.code == OptionCode::IfTsresol {
            if let Some(&r) = value.first() {
                resol = r;
            }
        } else if opt.code == OptionCode::IfTsoffset {
            if let Some(b) = value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                offset = if big_endian {
                    i64::from_be_bytes(b)
                } else {
                    i64::from_le_bytes(b)
                };
            }
        }
    }
    // The high bit says a power of 2, else a power of 10 (pcapng, if_tsresol).
    let units = if resol & 0x80 != 0 {
        1u64.checked_shl(u32::from(resol & 0x7f))
            .filter(|_| resol & 0x7f <= 63)
    } else {
        10u64.checked_pow(u32::from(resol))
    };
    let Some(units) = units else {
        return Err(Error::damaged(
            next,
            format!("an interface's timestamp resolution (if_tsresol {resol}) is not possible"),
        ));
    };
    Ok(Interface {
        link: Link::from_linktype(idb.linktype),
        snaplen: idb.snaplen,
        units,
        offset,
    })
}

impl Link {
    /// The link types udpcat reads, as an error message lists them.
    pub(super) const SUPPORTED: &'static str =
        "Ethernet, RAW, Linux SLL and SLL2, NULL, LOOP, IPV4, IPV6";

    /// The link layer of a pcap link type.
    pub(super) fn from_linktype(t: Linktype) -> Option<Link> {
        Some(match t.0 {
            1 => Link::Ethernet,
            101 => Link::Raw,
            113 => Link::Sll,
            276 => Link::Sll2,
            0 => Link::Null,
            108 => Link::Loop,
            228 => Link::Raw,
            229 => Link::Raw,
            _ => return None,
        })
    }
}
