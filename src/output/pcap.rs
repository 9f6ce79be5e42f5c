//! `listen -f pcap`: a classic libpcap stream for Wireshark, tshark and tcpdump. Nanosecond
//! timestamps, link type RAW (each packet starts at its IP header), and per datagram an IPv4 or
//! IPv6 header (sender -> the address it arrived on) and a UDP header with the real ports,
//! correct lengths and valid checksums, built by etherparse. Pure: bytes into a `Vec`.

use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use etherparse::PacketBuilder;

/// The pcap magic number for nanosecond timestamps (written little-endian).
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

/// LINKTYPE_RAW: every packet is an IPv4 or IPv6 packet, no link header.
pub const LINKTYPE_RAW: u32 = 101;

/// The snapshot length the header announces: tcpdump's default, above the largest packet a
/// record here can hold.
pub const SNAPLEN: u32 = 262_144;

/// Hop limit of the synthesized IP headers (the real one is not known at the receiver).
const TTL: u8 = 64;

pub use crate::framing::{MAX_PAYLOAD_V4, MAX_PAYLOAD_V6};

/// The 24-byte file header: version 2.4, nanosecond magic, snaplen [`SNAPLEN`], link type RAW.
pub fn pcap_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC_NANOS.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs: 0 (times are UTC).
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
    h
}

/// Appends one packet record to `out`: a 16-byte record header stamped with `at`, then an
/// IP packet `from` -> `to` carrying a UDP datagram with `payload`.
///
/// IPv4-mapped IPv6 addresses are written as IPv4. Two IPv4 addresses give an IPv4 header;
/// anything else an IPv6 one (an IPv4 address then appears in its IPv4-mapped form, so the
/// two ends of a mixed pair are never lost).
///
/// A payload larger than one IP packet can carry ([`MAX_PAYLOAD_V4`], [`MAX_PAYLOAD_V6`];
/// it cannot come from an IP socket, which is the only kind `-f pcap` reads) is written cut
/// to the largest that fits, with the record's original length saying how long it was: the
/// readers then show it as cut short in the capture, like a packet beyond tcpdump's snaplen.
/// The headers and checksums describe the bytes written. Times before 1970 are written as the
/// epoch, after 2106 as the last second pcap can hold.
pub fn pcap_record(
    out: &mut Vec<u8>,
    at: SystemTime,
    from: SocketAddr,
    to: SocketAddr,
    payload: &[u8],
) {
    let (src, dst) = (
        crate::addr::canonical(from).ip(),
        crate::addr::canonical(to).ip(),
    );
    let builder = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), TTL),
        (s, d) => PacketBuilder::ipv6(v6(s), v6(d), TTL),
    }
    .udp(from.port(), to.port());
    let max = if matches!((src, dst), (IpAddr::V4(_), IpAddr::V4(_))) {
        MAX_PAYLOAD_V4
    } else {
        MAX_PAYLOAD_V6
    };
    let kept = &payload[..payload.len().min(max)];
    let captured = builder.size(kept.len());
    let original = captured + (payload.len() - kept.len());

    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, nanos) = match u32::try_from(since.as_secs()) {
        Ok(s) => (s, since.subsec_nanos()),
        Err(_) => (u32::MAX, 999_999_999),
    };
    let start = out.len();
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&nanos.to_le_bytes());
    // Both lengths fit in u32: at most 65,535 + 40 bytes captured, and a payload in memory.
    out.extend_from_slice(&u32::try_from(captured).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&u32::try_from(original).unwrap_or(u32::MAX).to_le_bytes());
    if builder.write_to_vec(out, kept).is_err() {
        // Cannot happen with the payload cut to fit; never leave half a record.
        out.truncate(start);
    }
}

fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use std::time::Duration;

    fn record(from: &str, to: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        pcap_record(
            &mut out,
            at,
            from.parse().unwrap(),
            to.parse().unwrap(),
            payload,
        );
        out
    }

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn header_is_libpcap_nanosecond_raw() {
        let h = pcap_header();
        assert_eq!(&h[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(&h[4..8], &[2, 0, 4, 0]);
        assert_eq!(le32(&h, 16), 262_144);
        assert_eq!(le32(&h, 20), 101);
    }

    #[test]
    fn ipv4_record_has_valid_checksums_and_lengths() {
        let r = record("192.0.2.1:5000", "127.0.0.1:9000", b"hi");
        assert_eq!(le32(&r, 0), 1_700_000_000);
        assert_eq!(le32(&r, 4), 123_456_789);
        assert_eq!(le32(&r, 8), 30);
        assert_eq!(le32(&r, 12), 30);
        let p = SlicedPacket::from_ip(&r[16..]).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        let h = ip.header().to_header();
        assert_eq!(h.total_len, 30);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let Some(TransportSlice::Udp(udp)) = &p.transport else {
            panic!("not UDP")
        };
        assert_eq!((udp.source_port(), udp.destination_port()), (5000, 9000));
        assert_eq!(udp.length(), 10);
        let want = udp
            .to_header()
            .calc_checksum_ipv4(&h, udp.payload())
            .unwrap();
        assert_eq!(udp.checksum(), want);
        assert_eq!(udp.payload(), b"hi");
    }

    #[test]
    fn mapped_addresses_become_ipv4_and_mixed_pairs_ipv6() {
        let r = record("[::ffff:192.0.2.1]:1", "127.0.0.1:2", b"x");
        assert_eq!(r[16] >> 4, 4);
        let r = record("[2001:db8::1]:1", "127.0.0.1:2", b"x");
        assert_eq!(r[16] >> 4, 6);
        let p = SlicedPacket::from_ip(&r[16..]).unwrap();
        let Some(NetSlice::Ipv6(ip)) = &p.net else {
            panic!("not IPv6")
        };
        assert_eq!(
            ip.header().destination_addr(),
            "::ffff:127.0.0.1".parse::<std::net::Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn an_oversize_payload_is_cut_and_says_so() {
        let big = vec![7u8; 70_000];
        let r = record("192.0.2.1:1", "192.0.2.2:2", &big);
        assert_eq!(le32(&r, 8), 65_535);
        assert_eq!(le32(&r, 12), 28 + 70_000);
        assert_eq!(r.len(), 16 + 65_535);
        let r = record("[::1]:1", "[::1]:2", &big);
        assert_eq!(le32(&r, 8), 40 + 65_535);
        assert_eq!(le32(&r, 12), 48 + 70_000);
        // The largest that fits is not cut.
        let r = record("[::1]:1", "[::1]:2", &big[..MAX_PAYLOAD_V6]);
        assert_eq!(le32(&r, 8), le32(&r, 12));
    }

    #[test]
    fn times_outside_pcap_range_are_clamped() {
        let mut out = Vec::new();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let before = SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(5));
        if let Some(before) = before {
            pcap_record(&mut out, before, a, a, b"");
            assert_eq!(le32(&out, 0), 0);
        }
    }
}
