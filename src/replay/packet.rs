//! One captured packet -> its UDP datagram: the link layer (etherparse for Ethernet with
//! VLAN tags and Linux SLL; SLL2, NULL and LOOP by their few fixed bytes here), then IP and
//! UDP through etherparse, with IPv4 and IPv6 fragments put back together in bounded memory.

use std::net::{IpAddr, SocketAddr};

use etherparse::defrag::IpDefragBuf;
use etherparse::{
    EtherType, IpFragOffset, IpNumber, Ipv6ExtensionSlice, NetSlice, SlicedPacket, TransportSlice,
    UdpSlice,
};

use super::Counts;

/// Fragmented datagrams in progress at once. One more pushes out the one touched least
/// recently (counted as incomplete). Each holds at most 64 KiB (etherparse's buffer refuses a
/// fragment that would reach past the largest IP payload), so reassembly never holds more
/// than 4 MiB.
pub const MAX_REASSEMBLIES: usize = 64;

/// The link layers udpcat reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    /// Ethernet II, with 802.1Q / 802.1ad VLAN tags (and MACsec) as etherparse reads them.
    Ethernet,
    /// An IP packet, version by its first nibble (LINKTYPE_RAW, IPV4, IPV6).
    Raw,
    /// Linux cooked capture v1 (16-byte header).
    Sll,
    /// Linux cooked capture v2 (20-byte header), what `tcpdump -i any` writes.
    Sll2,
    /// BSD loopback: a 4-byte address family in the writer's byte order.
    Null,
    /// OpenBSD loopback: the same in network byte order (read either way, as libpcap does).
    Loop,
}

/// A UDP datagram out of a packet.
#[derive(Debug)]
pub(super) struct Udp {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

/// Decodes packets, keeping the fragments of datagrams not yet complete.
#[derive(Debug, Default)]
pub(super) struct Decoder {
    reassemblies: Vec<Reassembly>,
    /// Increases with every fragment: the least recently touched reassembly goes first.
    clock: u64,
}

/// Which datagram a fragment belongs to (RFC 791 / RFC 8200), per capture interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FragKey {
    iface: u32,
    src: IpAddr,
    dst: IpAddr,
    id: u32,
}

#[derive(Debug)]
struct Reassembly {
    key: FragKey,
    /// `None` once its fragments disagreed: later ones are absorbed, and it is counted once
    /// when it goes.
    buf: Option<IpDefragBuf>,
    touched: u64,
}

/// A fragment of a UDP datagram.
struct Fragment<'a> {
    key: FragKey,
    offset: IpFragOffset,
    more: bool,
    data: &'a [u8],
}

impl Decoder {
    /// The UDP datagram in `data` (a packet on link `link`, captured on interface `iface`),
    /// once complete; anything else is counted in `counts` and gives `None`.
    pub(super) fn decode(
        &mut self,
        link: Link,
        iface: u32,
        data: &[u8],
        counts: &mut Counts,
    ) -> Option<Udp> {
        let sliced = match slice(link, data) {
            Ok(Some(s)) => s,
            Ok(None) => {
                counts.not_udp += 1;
                return None;
            }
            Err(()) => {
                counts.malformed += 1;
                return None;
            }
        };
        match fragment(&sliced, iface) {
            Fragmented::No => {}
            Fragmented::NotUdp => {
                counts.not_udp += 1;
                return None;
            }
            Fragmented::Yes(f) => return self.add(f, counts),
        }
        let (src, dst) = match &sliced.net {
            Some(NetSlice::Ipv4(ip)) => (
                IpAddr::V4(ip.header().source_addr()),
                IpAddr::V4(ip.header().destination_addr()),
            ),
            Some(NetSlice::Ipv6(ip)) => (
                IpAddr::V6(ip.header().source_addr()),
                IpAddr::V6(ip.header().destination_addr()),
            ),
            _ => {
                counts.not_udp += 1;
                return None;
            }
        };
        match &sliced.transport {
            Some(TransportSlice::Udp(udp)) => Some(Udp {
                src: SocketAddr::new(src, udp.source_port()),
                dst: SocketAddr::new(dst, udp.destination_port()),
                payload: udp.payload().to_vec(),
            }),
            _ => {
                counts.not_udp += 1;
                None
            }
        }
    }

    /// Adds a fragment; the datagram when it was the last piece missing.
    fn add(&mut self, f: Fragment<'_>, counts: &mut Counts) -> Option<Udp> {
        self.clock += 1;
        let i = match self.reassemblies.iter().position(|r| r.key == f.key) {
            Some(i) => i,
            None => {
                if self.reassemblies.len() >= MAX_REASSEMBLIES {
                    let oldest = self
                        .reassemblies
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, r)| r.touched)
                        .map_or(0, |(i, _)| i);
                    self.reassemblies.swap_remove(oldest);
                    counts.incomplete += 1;
                }
                self.reassemblies.push(Reassembly {
                    key: f.key,
                    buf: Some(IpDefragBuf::new(IpNumber::UDP, Vec::new(), Vec::new())),
                    touched: 0,
                });
                self.reassemblies.len() - 1
            }
        };
        let r = &mut self.reassemblies[i];
        r.touched = self.clock;
        let buf = r.buf.as_mut()?;
        if buf.add(f.offset, f.more, f.data).is_err() {
            r.buf = None;
            return None;
        }
        if !buf.is_complete() {
            return None;
        }
        let r = self.reassemblies.swap_remove(i);
        let (whole, _) = r.buf?.take_bufs();
        match UdpSlice::from_slice(&whole) {
            Ok(udp) => Some(Udp {
                src: SocketAddr::new(f.key.src, udp.source_port()),
                dst: SocketAddr::new(f.key.dst, udp.destination_port()),
                payload: udp.payload().to_vec(),
            }),
            Err(_) => {
                counts.malformed += 1;
                None
            }
        }
    }

    /// Datagrams being reassembled now.
    #[cfg(test)]
    pub(super) fn in_progress(&self) -> usize {
        self.reassemblies.len()
    }

    /// At the end of the file: how many datagrams were never completed. Forgets them.
    pub(super) fn finish(&mut self) -> u64 {
        let n = self.reassemblies.len();
        self.reassemblies.clear();
        u64::try_from(n).unwrap_or(u64::MAX)
    }
}

enum Fragmented<'a> {
    No,
    /// A fragment of something other than UDP.
    NotUdp,
    Yes(Fragment<'a>),
}

/// Whether the IP packet carries a fragment, and of what.
fn fragment<'a>(sliced: &SlicedPacket<'a>, iface: u32) -> Fragmented<'a> {
    match &sliced.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            if !h.is_fragmenting_payload() {
                return Fragmented::No;
            }
            if ip.payload().ip_number != IpNumber::UDP {
                return Fragmented::NotUdp;
            }
            Fragmented::Yes(Fragment {
                key: FragKey {
                    iface,
                    src: IpAddr::V4(h.source_addr()),
                    dst: IpAddr::V4(h.destination_addr()),
                    id: u32::from(h.identification()),
                },
                offset: h.fragments_offset(),
                more: h.more_fragments(),
                data: ip.payload().payload,
            })
        }
        Some(NetSlice::Ipv6(ip)) => {
            if !ip.is_payload_fragmented() {
                return Fragmented::No;
            }
            let frag = ip.extensions().clone().into_iter().find_map(|e| match e {
                Ipv6ExtensionSlice::Fragment(f) if f.is_fragmenting_payload() => Some(f),
                _ => None,
            });
            let Some(frag) = frag else {
                return Fragmented::No;
            };
            if ip.payload().ip_number != IpNumber::UDP {
                return Fragmented::NotUdp;
            }
            let h = ip.header();
            Fragmented::Yes(Fragment {
                key: FragKey {
                    iface,
                    src: IpAddr::V6(h.source_addr()),
                    dst: IpAddr::V6(h.destination_addr()),
                    id: frag.identification(),
                },
                offset: frag.fragment_offset(),
                more: frag.more_fragments(),
                data: ip.payload().payload,
            })
        }
        _ => Fragmented::No,
    }
}

/// ARPHRD_NETLINK: a cooked capture of netlink messages, whose protocol is no EtherType.
const ARPHRD_NETLINK: u16 = 824;

/// A Linux cooked capture (SLL or SLL2): the packet after a `header`-byte header whose
/// protocol field (an EtherType) is at `proto_at` and ARPHRD type at `arphrd_at`.
fn cooked(
    data: &[u8],
    header: usize,
    proto_at: usize,
    arphrd_at: usize,
) -> Result<Option<SlicedPacket<'_>>, ()> {
    let field = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (Some(proto), Some(arphrd), Some(rest)) =
        (field(proto_at), field(arphrd_at), data.get(header..))
    else {
        return Err(());
    };
    if arphrd == ARPHRD_NETLINK {
        return Ok(None);
    }
    SlicedPacket::from_ether_type(EtherType(proto), rest)
        .map(Some)
        .map_err(|_| ())
}

/// AF_INET, and AF_INET6 as Linux, the BSDs and macOS number it.
const AF_INET: u32 = 2;
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// The packet sliced by etherparse: `Ok(None)` when its link layer carries no IP at all,
/// `Err` when the headers do not parse.
fn slice(link: Link, data: &[u8]) -> Result<Option<SlicedPacket<'_>>, ()> {
    let sliced = match link {
        Link::Ethernet => SlicedPacket::from_ethernet(data),
        // SLL: packet type, ARPHRD type, address length, 8 address bytes, protocol. SLL2:
        // protocol, 2 reserved, interface index, ARPHRD type, packet type, address length,
        // 8 address bytes. By hand: etherparse's SLL refuses ARPHRD types other than a few
        // (loopback, tun and PPP among them), where the protocol is an EtherType all the same.
        Link::Sll => return cooked(data, 16, 14, 2),
        Link::Sll2 => return cooked(data, 20, 0, 8),
        Link::Raw => match data.first().map(|b| b >> 4) {
            Some(4 | 6) => SlicedPacket::from_ip(data),
            Some(_) => return Ok(None),
            None => return Err(()),
        },
        Link::Null | Link::Loop => {
            let (Some(&[a, b, c, d]), Some(rest)) = (data.get(..4), data.get(4..)) else {
                return Err(());
            };
            let family = |v: u32| match v {
                AF_INET => Some(EtherType::IPV4),
                v if AF_INET6.contains(&v) => Some(EtherType::IPV6),
                _ => None,
            };
            // NULL is in the byte order of the host that wrote it, LOOP in network order;
            // the values cannot be mistaken for one another either way round.
            match family(u32::from_le_bytes([a, b, c, d]))
                .or_else(|| family(u32::from_be_bytes([a, b, c, d])))
            {
                Some(t) => SlicedPacket::from_ether_type(t, rest),
                None => return Ok(None),
            }
        }
    };
    sliced.map(Some).map_err(|_| ())
}
