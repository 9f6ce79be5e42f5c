//! The reader against captures built here byte by byte (every container variant, link type
//! and reassembly case), against the pcap writer, and against a reader fed one byte at a time.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use etherparse::{
    IpFragOffset, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6FragmentHeader, Ipv6Header,
    LinuxSllPacketType, PacketBuilder, VlanId,
};
use proptest::prelude::*;

use super::*;

// ---- building captures -------------------------------------------------------------------

fn put16(out: &mut Vec<u8>, v: u16, be: bool) {
    out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

fn put32(out: &mut Vec<u8>, v: u32, be: bool) {
    out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

/// A classic pcap file: (seconds, fraction, packet, original length).
fn pcap(link: u32, nanos: bool, be: bool, packets: &[(u32, u32, &[u8], u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    put32(&mut out, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }, be);
    put16(&mut out, 2, be);
    put16(&mut out, 4, be);
    put32(&mut out, 0, be);
    put32(&mut out, 0, be);
    put32(&mut out, 262_144, be);
    put32(&mut out, link, be);
    for &(s, f, data, orig) in packets {
        put32(&mut out, s, be);
        put32(&mut out, f, be);
        put32(&mut out, data.len() as u32, be);
        put32(&mut out, orig, be);
        out.extend_from_slice(data);
    }
    out
}

/// pcapng blocks, in either byte order.
struct Ng {
    out: Vec<u8>,
    be: bool,
}

impl Ng {
    fn new(be: bool) -> Self {
        let mut ng = Ng {
            out: Vec::new(),
            be,
        };
        ng.shb();
        ng
    }

    fn block(&mut self, kind: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = 12 + body.len() as u32;
        put32(&mut self.out, kind, self.be);
        put32(&mut self.out, len, self.be);
        self.out.extend_from_slice(&body);
        put32(&mut self.out, len, self.be);
    }

    fn shb(&mut self) {
        let mut b = Vec::new();
        put32(&mut b, 0x1a2b_3c4d, self.be);
        put16(&mut b, 1, self.be);
        put16(&mut b, 0, self.be);
        b.extend_from_slice(&[0xff; 8]);
        self.block(0x0a0d_0d0a, &b);
    }

    /// An interface; `tsresol` as the option's byte, `None` for the default (microseconds).
    fn idb(&mut self, link: u16, snaplen: u32, tsresol: Option<u8>, tsoffset: Option<i64>) {
        let mut b = Vec::new();
        put16(&mut b, link, self.be);
        put16(&mut b, 0, self.be);
        put32(&mut b, snaplen, self.be);
        if let Some(r) = tsresol {
            put16(&mut b, 9, self.be);
            put16(&mut b, 1, self.be);
            b.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = tsoffset {
            put16(&mut b, 14, self.be);
            put16(&mut b, 8, self.be);
            b.extend_from_slice(&if self.be {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            });
        }
        if tsresol.is_some() || tsoffset.is_some() {
            put32(&mut b, 0, self.be);
        }
        self.block(1, &b);
    }

    fn epb(&mut self, iface: u32, ts: u64, data: &[u8], orig: u32) {
        let mut b = Vec::new();
        put32(&mut b, iface, self.be);
        put32(&mut b, (ts >> 32) as u32, self.be);
        put32(&mut b, ts as u32, self.be);
        put32(&mut b, data.len() as u32, self.be);
        put32(&mut b, orig, self.be);
        b.extend_from_slice(data);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        self.block(6, &b);
    }

    fn spb(&mut self, data: &[u8], orig: u32) {
        let mut b = Vec::new();
        put32(&mut b, orig, self.be);
        b.extend_from_slice(data);
        self.block(3, &b);
    }
}

/// A UDP packet starting at its IP header.
fn ip_udp(from: &str, to: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::output::pcap::pcap_record(
        &mut out,
        SystemTime::UNIX_EPOCH,
        from.parse().unwrap(),
        to.parse().unwrap(),
        payload,
    );
    out.split_off(16)
}

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

fn at(secs: u64, nanos: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

fn read_all(bytes: &[u8]) -> (Vec<Datagram>, Counts) {
    let mut r = Reader::new(bytes).unwrap();
    let mut out = Vec::new();
    while let Some(d) = r.next_datagram().unwrap() {
        out.push(d);
    }
    (out, r.counts())
}

fn read_err(bytes: &[u8]) -> (Vec<Datagram>, String) {
    let mut r = match Reader::new(bytes) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), e.to_string()),
    };
    let mut out = Vec::new();
    loop {
        match r.next_datagram() {
            Ok(Some(d)) => out.push(d),
            Ok(None) => panic!("no error; read {out:?}"),
            Err(e) => {
                // Nothing after an error.
                assert!(r.next_datagram().unwrap().is_none());
                return (out, e.to_string());
            }
        }
    }
}

/// Hands out its bytes one at a time, with an EINTR now and then: a slow pipe.
struct Trickle<'a>(&'a [u8], u32);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.1 += 1;
        if self.1 % 7 == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        if self.0.is_empty() || buf.is_empty() {
            return Ok(0);
        }
        buf[0] = self.0[0];
        self.0 = &self.0[1..];
        Ok(1)
    }
}

// ---- containers --------------------------------------------------------------------------

#[test]
fn pcap_microseconds_and_nanoseconds_in_both_byte_orders() {
    let p = ip_udp("192.0.2.1:5000", "127.0.0.1:9000", b"hi");
    for be in [false, true] {
        for nanos in [false, true] {
            let file = pcap(
                101,
                nanos,
                be,
                &[(1_700_000_000, 123_456, &p, p.len() as u32)],
            );
            let (got, counts) = read_all(&file);
            let want_time = if nanos {
                at(1_700_000_000, 123_456)
            } else {
                at(1_700_000_000, 123_456_000)
            };
            assert_eq!(
                got,
                vec![Datagram {
                    index: 1,
                    time: want_time,
                    src: addr("192.0.2.1:5000"),
                    dst: addr("127.0.0.1:9000"),
                    payload: b"hi".to_vec(),
                }],
                "nanos {nanos} be {be}"
            );
            assert_eq!(counts.packets, 1);
            assert_eq!(counts.datagrams, 1);
            let r = Reader::new(&file[..]).unwrap();
            assert_eq!(
                r.format(),
                Format::Pcap {
                    nanos,
                    big_endian: be
                }
            );
        }
    }
}

#[test]
fn pcapng_interfaces_have_their_own_link_types_and_resolutions() {
    for be in [false, true] {
        let mut ng = Ng::new(be);
        // 0: Ethernet, microseconds; 1: RAW, nanoseconds; 2: SLL2, 2^-10 s with an offset;
        // 3: a link type udpcat does not read.
        ng.idb(1, 0, None, None);
        ng.idb(101, 0, Some(9), None);
        ng.idb(276, 0, Some(0x80 | 10), Some(100));
        ng.idb(147, 0, None, None);
        let v4 = ip_udp("192.0.2.1:5000", "127.0.0.1:9000", b"one");
        let mut eth = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([192, 0, 2, 1], [127, 0, 0, 1], 64)
            .udp(5000, 9000)
            .write_to_vec(&mut eth, b"zero")
            .unwrap();
        ng.epb(0, 1_700_000_000_000_001, &eth, eth.len() as u32);
        ng.epb(1, 1_700_000_000_000_000_002, &v4, v4.len() as u32);
        let v6 = ip_udp("[2001:db8::1]:53", "[2001:db8::2]:5353", b"two");
        let mut sll2 = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        sll2.extend_from_slice(&v6);
        ng.epb(2, 1024 * 3 + 512, &sll2, sll2.len() as u32);
        ng.epb(3, 5, b"whatever", 8);
        // An unknown block type and an interface statistics block are passed over.
        ng.block(0x0bad, b"abcd");
        ng.block(5, &[0; 12]);
        let (got, counts) = read_all(&ng.out);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].payload, b"zero");
        assert_eq!(got[0].time, at(1_700_000_000, 1_000));
        assert_eq!(got[1].payload, b"one");
        assert_eq!(got[1].time, at(1_700_000_000, 2));
        assert_eq!(got[2].payload, b"two");
        assert_eq!(got[2].src, addr("[2001:db8::1]:53"));
        assert_eq!(got[2].dst, addr("[2001:db8::2]:5353"));
        assert_eq!(got[2].time, at(103, 500_000_000));
        assert_eq!([got[0].index, got[1].index, got[2].index], [1, 2, 3]);
        assert_eq!(counts.packets, 4);
        assert_eq!(counts.other_link, 1);
        assert_eq!(Reader::new(&ng.out[..]).unwrap().format(), Format::PcapNg);
    }
}

#[test]
fn pcapng_simple_packets_take_interface_zero_and_the_previous_time() {
    let mut ng = Ng::new(false);
    ng.idb(101, 0, Some(9), None);
    let p = ip_udp("10.0.0.1:1", "10.0.0.2:2", b"timed");
    ng.epb(0, 5_000_000_001, &p, p.len() as u32);
    let q = ip_udp("10.0.0.1:1", "10.0.0.2:2", b"simple");
    ng.spb(&q, q.len() as u32);
    let (got, _) = read_all(&ng.out);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].payload, b"simple");
    assert_eq!(got[1].time, at(5, 1));

    // With a snaplen below the packet's length, the simple packet is cut short: skipped.
    let mut ng = Ng::new(false);
    ng.idb(101, 20, None, None);
    ng.spb(&q[..20], q.len() as u32);
    let (got, counts) = read_all(&ng.out);
    assert!(got.is_empty());
    assert_eq!(counts.truncated, 1);
}

#[test]
fn a_new_section_forgets_the_interfaces_of_the_last() {
    let mut ng = Ng::new(false);
    ng.idb(101, 0, None, None);
    let p = ip_udp("10.0.0.1:1", "10.0.0.2:2", b"a");
    ng.epb(0, 1, &p, p.len() as u32);
    ng.shb();
    ng.epb(0, 2, &p, p.len() as u32);
    let (got, e) = read_err(&ng.out);
    assert_eq!(got.len(), 1);
    assert_eq!(e, "packet 2: interface 0 was never described");
}

#[test]
fn every_link_type() {
    let v4 = ip_udp("192.0.2.1:5000", "127.0.0.1:9000", b"v4");
    let v6 = ip_udp("[::1]:5000", "[::1]:9000", b"v6");
    // RAW, IPV4, IPV6.
    let mut cases: Vec<(u32, Vec<u8>, &[u8])> = vec![
        (101, v4.clone(), b"v4"),
        (101, v6.clone(), b"v6"),
        (228, v4.clone(), b"v4"),
        (229, v6.clone(), b"v6"),
    ];
    // Ethernet, plain, 802.1Q and 802.1ad (QinQ).
    let mut eth = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv6([0; 16], [0; 16], 1)
        .udp(5000, 9000)
        .write_to_vec(&mut eth, b"eth")
        .unwrap();
    cases.push((1, eth, b"eth"));
    let mut q = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .single_vlan(VlanId::try_new(42).unwrap())
        .ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1)
        .udp(5000, 9000)
        .write_to_vec(&mut q, b"vlan")
        .unwrap();
    cases.push((1, q, b"vlan"));
    let mut qinq = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .double_vlan(VlanId::try_new(1).unwrap(), VlanId::try_new(2).unwrap())
        .ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1)
        .udp(5000, 9000)
        .write_to_vec(&mut qinq, b"qinq")
        .unwrap();
    cases.push((1, qinq, b"qinq"));
    // Linux SLL.
    let mut sll = Vec::new();
    PacketBuilder::linux_sll(LinuxSllPacketType::HOST, 6, [0; 8])
        .ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1)
        .udp(5000, 9000)
        .write_to_vec(&mut sll, b"sll")
        .unwrap();
    cases.push((113, sll, b"sll"));
    // SLL of a loopback (ARPHRD_LOOPBACK) and a tun device (ARPHRD_NONE), as tshark -i any
    // writes them.
    for arphrd in [772u16, 0xfffe] {
        let mut sll = vec![0, 0];
        sll.extend_from_slice(&arphrd.to_be_bytes());
        sll.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd]);
        sll.extend_from_slice(&v6);
        cases.push((113, sll, b"v6"));
    }
    // SLL2: protocol type, reserved, ifindex, ARPHRD, packet type, address length, address.
    let mut sll2 = vec![8, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
    sll2.extend_from_slice(&v4);
    cases.push((276, sll2, b"v4"));
    // NULL in either byte order, with the AF_INET6 values of Linux, FreeBSD and macOS; LOOP.
    for (link, af) in [
        (0, 2u32.to_le_bytes()),
        (0, 2u32.to_be_bytes()),
        (108, 2u32.to_be_bytes()),
    ] {
        let mut p = af.to_vec();
        p.extend_from_slice(&v4);
        cases.push((link, p, b"v4"));
    }
    for af in [10u32, 24, 28, 30] {
        let mut p = af.to_le_bytes().to_vec();
        p.extend_from_slice(&v6);
        cases.push((0, p, b"v6"));
    }
    for (link, packet, want) in cases {
        let file = pcap(link, false, false, &[(1, 0, &packet, packet.len() as u32)]);
        let (got, counts) = read_all(&file);
        assert_eq!(got.len(), 1, "link {link}: {counts:?}");
        assert_eq!(got[0].payload, want, "link {link}");
        assert_eq!(got[0].src.map(|a| a.port()), Some(5000), "link {link}");
        assert_eq!(got[0].dst.map(|a| a.port()), Some(9000), "link {link}");
    }
}

#[test]
fn other_protocols_truncated_and_malformed_packets_are_counted() {
    let udp = ip_udp("10.0.0.1:1", "10.0.0.2:2", b"kept");
    let mut tcp = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1, 2, 0, 100)
        .write_to_vec(&mut tcp, b"tcp")
        .unwrap();
    let mut arp = vec![0u8; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    let mut bad = udp.clone();
    bad[3] = 0xff; // total length beyond the packet
    let null_other = [7u8, 0, 0, 0, 1, 2, 3];
    let file = pcap(
        101,
        false,
        false,
        &[
            (1, 0, &tcp, tcp.len() as u32),
            (2, 0, &udp[..20], udp.len() as u32),
            (3, 0, &bad, bad.len() as u32),
            (4, 0, &udp, udp.len() as u32),
            (5, 0, b"", 0),
        ],
    );
    let (got, counts) = read_all(&file);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].index, 4);
    assert_eq!(
        counts,
        Counts {
            packets: 5,
            datagrams: 1,
            not_udp: 1,
            other_link: 0,
            truncated: 1,
            malformed: 2,
            incomplete: 0,
        }
    );
    assert_eq!(counts.skipped(), 4);
    let file = pcap(1, false, false, &[(1, 0, &arp, arp.len() as u32)]);
    assert_eq!(read_all(&file).1.not_udp, 1);
    let file = pcap(0, false, false, &[(1, 0, &null_other, 7)]);
    assert_eq!(read_all(&file).1.not_udp, 1);
}

#[test]
fn damaged_files_name_the_packet() {
    let p = ip_udp("10.0.0.1:1", "10.0.0.2:2", b"x");
    let good = pcap(101, false, false, &[(1, 0, &p[..], p.len() as u32); 3]);
    // Cut inside the third packet: the first two are read, then the error names packet 3.
    let cut = &good[..good.len() - 5];
    let (got, e) = read_err(cut);
    assert_eq!(got.len(), 2);
    assert_eq!(e, "packet 3: the file ends inside it");
    // A record claiming 4 GiB.
    let mut huge = good.clone();
    let third = 24 + 2 * (16 + p.len());
    huge[third + 8..third + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let (got, e) = read_err(&huge);
    assert_eq!(got.len(), 2);
    assert_eq!(
        e,
        "packet 3: a record larger than 16 MiB: the file is damaged"
    );
    // pcapng: a block whose two lengths disagree.
    let mut ng = Ng::new(false);
    ng.idb(101, 0, None, None);
    ng.epb(0, 1, &p, p.len() as u32);
    let at = ng.out.len();
    ng.epb(0, 2, &p, p.len() as u32);
    let end = ng.out.len();
    ng.out[end - 4] ^= 0x40;
    let _ = at;
    let (got, e) = read_err(&ng.out);
    assert_eq!(got.len(), 1);
    assert!(e.starts_with("packet 2: "), "{e}");
    // pcapng: a block shorter than its own type and lengths (pcap-parser would subtract past
    // zero on a process information block), and one whose length is not a multiple of 4.
    for (kind, len) in [(0x8000_0001u32, 8u32), (6, 35)] {
        let mut ng = Ng::new(false);
        ng.idb(101, 0, None, None);
        ng.epb(0, 1, &p, p.len() as u32);
        ng.out.extend_from_slice(&kind.to_le_bytes());
        ng.out.extend_from_slice(&len.to_le_bytes());
        ng.out.extend_from_slice(&[0; 40]);
        let (got, e) = read_err(&ng.out);
        assert_eq!(got.len(), 1);
        assert_eq!(
            e,
            format!("packet 2: a block's length ({len} bytes) is not possible")
        );
    }
    // Headers.
    assert_eq!(
        read_err(&good[..10]).1,
        "file header: the file ends inside the file header"
    );
    assert_eq!(
        read_err(&pcap(105, false, false, &[])).1,
        "file header: link type 105 is not one udpcat reads (Ethernet, RAW, Linux SLL and SLL2, NULL, LOOP, IPV4, IPV6)"
    );
    assert!(read_err(b"GIF89a").1.starts_with("not a capture"));
    // pcapng: an if_tsresol no clock has.
    let mut ng = Ng::new(false);
    ng.idb(101, 0, Some(40), None);
    assert_eq!(
        read_err(&ng.out).1,
        "packet 1: an interface's timestamp resolution (if_tsresol 40) is not possible"
    );
}

#[test]
fn a_record_larger_than_the_buffer_is_read() {
    // Grows past the starting buffer: an Ethernet jumbo of garbage, then a real datagram.
    let mut junk = vec![0u8; 600 * 1024];
    junk[0] = 0x45;
    let p = ip_udp("10.0.0.1:1", "10.0.0.2:2", b"after");
    let mut ng = Ng::new(false);
    ng.idb(101, 0, None, None);
    ng.epb(0, 1, &junk, junk.len() as u32);
    ng.epb(0, 2, &p, p.len() as u32);
    let (got, counts) = read_all(&ng.out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"after");
    assert_eq!(counts.malformed, 1);
}

#[test]
fn a_slow_pipe_gives_the_same_datagrams() {
    let p = ip_udp("10.0.0.1:1", "10.0.0.2:2", b"slow");
    let file = pcap(101, true, true, &[(1, 2, &p[..], p.len() as u32); 3]);
    let mut ng = Ng::new(true);
    ng.idb(101, 0, None, None);
    ng.epb(0, 7, &p, p.len() as u32);
    ng.spb(&p, p.len() as u32);
    let json = b"\n{\"ts\":\"2023-11-14T22:13:20.123456Z\",\"from\":\"192.0.2.1:5000\",\"to\":\"127.0.0.1:9000\",\"len\":2,\"text\":\"hi\"}\n";
    for bytes in [&file[..], &ng.out, json] {
        let fast = read_all(bytes);
        let mut r = Reader::new(Trickle(bytes, 0)).unwrap();
        let mut slow = Vec::new();
        while let Some(d) = r.next_datagram().unwrap() {
            slow.push(d);
        }
        assert_eq!(slow, fast.0);
        assert_eq!(r.counts(), fast.1);
    }
}

#[test]
fn read_errors_are_reported_as_such() {
    /// Hands out `file`, then fails.
    struct Failing(Vec<u8>);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }
    let p = ip_udp("10.0.0.1:1", "10.0.0.2:2", b"x");
    let mut r = Reader::new(Failing(pcap(
        101,
        false,
        false,
        &[(1, 0, &p, p.len() as u32)],
    )))
    .unwrap();
    assert!(r.next_datagram().unwrap().is_some());
    let e = r.next_datagram().unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Io(_)));
    assert_eq!(e.to_string(), "packet 2: read failed: disk on fire");
    let e = Reader::new(Failing(Vec::new())).err().unwrap();
    assert_eq!(e.to_string(), "file header: read failed: disk on fire");
    let json = b"{\"ts\":\"2023-11-14T22:13:20Z\",\"text\":\"a\"}\n".to_vec();
    let mut r = Reader::new(Failing(json)).unwrap();
    assert!(r.next_datagram().unwrap().is_some());
    assert_eq!(
        r.next_datagram().unwrap_err().to_string(),
        "line 2: read failed: disk on fire"
    );
}

#[test]
fn empty_input_has_no_datagrams() {
    let (got, counts) = read_all(b"");
    assert!(got.is_empty());
    assert_eq!(counts, Counts::default());
    assert_eq!(Reader::new(&b""[..]).unwrap().format(), Format::Empty);
    assert!(read_all(b"\n\n \n").0.is_empty());
}

// ---- reassembly --------------------------------------------------------------------------

/// IPv4 fragments of a UDP datagram, `size` bytes of IP payload each (a multiple of 8).
fn v4_fragments(id: u16, payload: &[u8], size: usize) -> Vec<Vec<u8>> {
    let whole = ip_udp("192.0.2.1:4000", "192.0.2.2:53", payload);
    let udp = &whole[20..];
    udp.chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut h = Ipv4Header::new(
                chunk.len() as u16,
                64,
                IpNumber::UDP,
                [192, 0, 2, 1],
                [192, 0, 2, 2],
            )
            .unwrap();
            h.identification = id;
            h.more_fragments = (i + 1) * size < udp.len();
            h.fragment_offset = IpFragOffset::try_new((i * size / 8) as u16).unwrap();
            h.header_checksum = h.calc_header_checksum();
            let mut p = h.to_bytes().to_vec();
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

fn v6_fragments(id: u32, payload: &[u8], size: usize) -> Vec<Vec<u8>> {
    let whole = ip_udp("[2001:db8::1]:4000", "[2001:db8::2]:53", payload);
    let udp = &whole[40..];
    let src: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let dst: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
    udp.chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let h = Ipv6Header {
                traffic_class: 0,
                flow_label: Ipv6FlowLabel::ZERO,
                payload_length: (8 + chunk.len()) as u16,
                next_header: IpNumber::IPV6_FRAGMENTATION_HEADER,
                hop_limit: 64,
                source: src.octets(),
                destination: dst.octets(),
            };
            let f = Ipv6FragmentHeader::new(
                IpNumber::UDP,
                IpFragOffset::try_new((i * size / 8) as u16).unwrap(),
                (i + 1) * size < udp.len(),
                id,
            );
            let mut p = h.to_bytes().to_vec();
            p.extend_from_slice(&f.to_bytes());
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

fn raw_capture(packets: &[Vec<u8>]) -> Vec<u8> {
    let records: Vec<(u32, u32, &[u8], u32)> = packets
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u32, 0, &p[..], p.len() as u32))
        .collect();
    pcap(101, false, false, &records)
}

/// A fixed shuffle, so the test is the same every run.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

#[test]
fn fragments_in_any_order_are_reassembled() {
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    for seed in 0..8 {
        let mut frags = v4_fragments(77, &payload, 1480);
        frags.extend(v6_fragments(99, &payload, 1232));
        shuffle(&mut frags, seed);
        let (got, counts) = read_all(&raw_capture(&frags));
        assert_eq!(got.len(), 2, "seed {seed}: {counts:?}");
        for d in &got {
            assert_eq!(d.payload, payload);
            assert_eq!(d.dst.map(|a| a.port()), Some(53));
        }
        let mut srcs: Vec<_> = got.iter().map(|d| d.src.unwrap().to_string()).collect();
        srcs.sort();
        assert_eq!(srcs, ["192.0.2.1:4000", "[2001:db8::1]:4000"]);
        assert_eq!(counts.incomplete, 0);
        assert_eq!(counts.packets, frags.len() as u64);
    }
}

#[test]
fn interleaved_and_duplicated_fragments() {
    let a: Vec<u8> = vec![b'a'; 3000];
    let b: Vec<u8> = vec![b'b'; 3000];
    let fa = v4_fragments(1, &a, 1000);
    let fb = v4_fragments(2, &b, 1000);
    assert_eq!((fa.len(), fb.len()), (4, 4));
    // Two datagrams interleaved, a fragment captured twice, another out of order; then a
    // fragment of `b` seen again after `b` was complete: the start of a new datagram that
    // never completes.
    let order = [
        &fa[0], &fb[0], &fa[0], &fb[1], &fa[2], &fb[2], &fa[1], &fb[3], &fa[3], &fb[2],
    ];
    let all: Vec<Vec<u8>> = order.iter().map(|p| p.to_vec()).collect();
    let (got, counts) = read_all(&raw_capture(&all));
    let payloads: Vec<&[u8]> = got.iter().map(|d| &d.payload[..]).collect();
    assert_eq!(payloads, [&b[..], &a[..]]);
    assert_eq!([got[0].index, got[1].index], [8, 9]);
    assert_eq!(counts.incomplete, 1);
}

#[test]
fn incomplete_datagrams_are_counted_and_memory_is_bounded() {
    // A datagram missing its last fragment: counted at the end.
    let payload = vec![1u8; 3000];
    let mut frags = v4_fragments(5, &payload, 1000);
    frags.pop();
    let (got, counts) = read_all(&raw_capture(&frags));
    assert!(got.is_empty());
    assert_eq!(counts.incomplete, 1);

    // Many first fragments that never complete: at most MAX_REASSEMBLIES are kept; every
    // other one is pushed out (counted), and a datagram completed in between still comes out.
    let mut packets = Vec::new();
    for id in 0..1000u16 {
        packets.push(v4_fragments(id, &payload, 1000)[0].clone());
    }
    packets.extend(v4_fragments(60_000, &payload, 1000));
    let mut d = Decoder::default();
    let mut counts = Counts::default();
    let mut done = Vec::new();
    for p in &packets {
        done.extend(d.decode(packet::Link::Raw, 0, p, &mut counts));
        assert!(d.in_progress() <= MAX_REASSEMBLIES);
    }
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].payload, payload);
    // The completed datagram's first fragment pushed out one more; it then left its place.
    assert_eq!(counts.incomplete, 1000 - MAX_REASSEMBLIES as u64 + 1);
    assert_eq!(d.finish(), MAX_REASSEMBLIES as u64 - 1);

    // Fragments that disagree (two different ends): given up, counted once.
    let mut frags = v4_fragments(9, &payload, 1000);
    let mut short = v4_fragments(9, &payload[..1500], 1000);
    frags.insert(1, short.pop().unwrap());
    let (got, counts) = read_all(&raw_capture(&frags));
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(counts.incomplete, 1);
}

use packet::Decoder;

// ---- json lines --------------------------------------------------------------------------

#[test]
fn json_lines_as_listen_writes_them() {
    use crate::addr::{Addr, UnixAddr};
    use crate::output::{Datagram as Out, Dir, Format as OutFormat, Options, Printer};
    let mut printer = Printer::new(Options {
        format: OutFormat::Json,
        ..Options::default()
    });
    let mut out = Vec::new();
    let payloads: [&[u8]; 5] = [
        b"hi",
        b"",
        b"\xff\x00bin",
        "quote\" \\ \n\t\u{1b}\u{202e}é😀".as_bytes(),
        &[0u8; 300],
    ];
    let from = Addr::Ip("192.0.2.1:5000".parse().unwrap());
    let to = Addr::Ip("[::1]:9000".parse().unwrap());
    for (i, p) in payloads.iter().enumerate() {
        printer
            .write(
                &mut out,
                &Out {
                    payload: p,
                    from: &from,
                    to: &to,
                    at: at(1_700_000_000 + i as u64, 123_456_000),
                    dir: [None, Some(Dir::Forward), Some(Dir::Reply)][i % 3],
                },
            )
            .unwrap();
    }
    // A Unix socket's records: a named sender and a nameless one (`null`).
    let socket = Addr::Unix(UnixAddr::Path("/run/app.sock".into()));
    for sender in [
        Addr::Unix(UnixAddr::Path("/tmp/c".into())),
        Addr::Unix(UnixAddr::Unnamed),
    ] {
        printer
            .write(
                &mut out,
                &Out {
                    payload: b"unix",
                    from: &sender,
                    to: &socket,
                    at: at(1, 0),
                    dir: None,
                },
            )
            .unwrap();
    }
    let (got, counts) = read_all(&out);
    assert_eq!(got.len(), payloads.len() + 2);
    for (i, (d, p)) in got.iter().zip(payloads).enumerate() {
        assert_eq!(d.payload, p);
        assert_eq!(d.index, i as u64 + 1);
        assert_eq!(d.time, at(1_700_000_000 + i as u64, 123_456_000));
        assert_eq!(d.src, addr("192.0.2.1:5000"));
        assert_eq!(d.dst, addr("[::1]:9000"));
    }
    for d in &got[payloads.len()..] {
        assert_eq!((d.src, d.dst, &d.payload[..]), (None, None, &b"unix"[..]));
    }
    assert_eq!(counts.packets, payloads.len() as u64 + 2);
    assert_eq!(Reader::new(&out[..]).unwrap().format(), Format::JsonLines);
}

#[test]
fn json_lines_in_any_shape_and_their_errors() {
    let ok = |line: &str| json::parse_record(line.as_bytes());
    let r = ok(r#" { "len" : 3 , "base64":"AAEC", "dir":"reply", "extra":[1,{"a":null},true,-2.5e3], "to":"unix:/run/x.sock", "from":null, "ts":"2023-11-14T22:13:20Z" } "#).unwrap();
    assert_eq!(r.payload, [0, 1, 2]);
    assert_eq!((r.from, r.to), (None, None));
    assert_eq!(r.time, at(1_700_000_000, 0));
    let r = ok(r#"{"ts":"2023-11-14T22:13:20.5Z","from":"[fe80::1%3]:1","to":"1.2.3.4:5","text":"\ud83d\ude00\u00e9\/"}"#).unwrap();
    assert_eq!(r.payload, "😀é/".as_bytes());
    assert_eq!(r.from, addr("[fe80::1%3]:1"));

    for (line, want) in [
        ("{", "column 2: expected a string"),
        (r#"{"ts":"2023-11-14T22:13:20Z"}"#, "no `text` or `base64`"),
        (r#"{"text":"x"}"#, "no `ts`"),
        (
            r#"{"ts":"yesterday","text":"x"}"#,
            "column 7: `ts` is not an RFC 3339 time like 2023-11-14T22:13:20.123456Z",
        ),
        (
            r#"{"ts":"2023-11-14T22:13:20Z","text":"x","len":2}"#,
            "`len` is 2 but the payload has 1 bytes",
        ),
        (
            r#"{"ts":"2023-11-14T22:13:20Z","text":"x","base64":"eA=="}"#,
            "both `text` and `base64`",
        ),
        (
            r#"{"ts":"2023-11-14T22:13:20Z","base64":"!!"}"#,
            "column 39: `base64` is not base64",
        ),
        (
            r#"{"ts":"2023-11-14T22:13:20Z","to":"nowhere","text":""}"#,
            "column 35: `to` is neither an IP address with a port nor a Unix socket",
        ),
        (
            r#"{"ts":"2023-11-14T22:13:20Z","text":"\ud83d"}"#,
            "column 38: half a surrogate pair",
        ),
        (
            r#"{"ts":"2023-11-14T22:13:20Z","text":"\q"}"#,
            "column 38: not a json escape",
        ),
        (
            "{\"ts\":\"2023-11-14T22:13:20Z\",\"text\":\"\x1b\"}",
            "column 38: a control character inside a string (json escapes them)",
        ),
        (
            r#"{"ts":"2023-11-14T22:13:20Z","text":"x"} {}"#,
            "column 42: more after the object (one json object per line)",
        ),
        (
            r#"{"ts":"2023-11-14T22:13:20Z","text":"x""#,
            "column 40: the line ends inside the object",
        ),
    ] {
        assert_eq!(ok(line).unwrap_err(), want, "{line}");
    }
    assert_eq!(
        json::parse_record(b"{\"text\":\"\xff\"}").unwrap_err(),
        "not UTF-8, so not json"
    );

    // In a file, the error names the line; every record before it was read.
    let file =
        b"{\"ts\":\"2023-11-14T22:13:20Z\",\"text\":\"a\"}\n\n{\"ts\":\"2023-11-14T22:13:20Z\"}\n";
    let (got, e) = read_err(file);
    assert_eq!(got.len(), 1);
    assert_eq!(e, "line 3: no `text` or `base64`");
}

// ---- the pcap writer, read back ----------------------------------------------------------

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

/// What the writer promises to keep of an address: IPv4-mapped addresses become IPv4, and a
/// pair of mixed families is written as IPv6 (the IPv4 one mapped).
fn as_written(a: SocketAddr, other: SocketAddr) -> SocketAddr {
    use std::net::IpAddr;
    let unmap = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (ip, o) = (unmap(a.ip()), unmap(other.ip()));
    let ip = match (ip, o) {
        (IpAddr::V4(v4), IpAddr::V6(_)) => IpAddr::V6(v4.to_ipv6_mapped()),
        _ => ip,
    };
    SocketAddr::new(ip, a.port())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pcap_writer_then_reader_gives_back_every_datagram(
        list in proptest::collection::vec(
            (socket_addr(), socket_addr(), 0u64..(u32::MAX as u64), 0u32..1_000_000_000,
             proptest::collection::vec(any::<u8>(), 0..1500)),
            0..20),
    ) {
        let mut file = crate::output::pcap::pcap_header().to_vec();
        for (from, to, secs, nanos, payload) in &list {
            crate::output::pcap::pcap_record(&mut file, at(*secs, *nanos), *from, *to, payload);
        }
        let (got, counts) = read_all(&file);
        prop_assert_eq!(got.len(), list.len());
        prop_assert_eq!(counts.skipped(), 0);
        for (i, (d, (from, to, secs, nanos, payload))) in got.iter().zip(&list).enumerate() {
            prop_assert_eq!(d.index, i as u64 + 1);
            prop_assert_eq!(&d.payload, payload);
            prop_assert_eq!(d.time, at(*secs, *nanos));
            prop_assert_eq!(d.src, Some(as_written(*from, *to)));
            prop_assert_eq!(d.dst, Some(as_written(*to, *from)));
        }
    }

    #[test]
    fn json_parser_agrees_with_serde_json(
        text in ".{0,40}",
        bytes in proptest::collection::vec(any::<u8>(), 0..40),
        use_text: bool,
        spaces in 0usize..3,
    ) {
        // Keys in a shuffled order, whitespace between tokens, escapes as serde_json writes
        // them: the hand parser reads what a general json writer writes.
        let payload_key = if use_text { "text" } else { "base64" };
        let payload = if use_text { text.clone() } else { data_encoding::BASE64.encode(&bytes) };
        let value = serde_json::json!({
            "len": if use_text { text.len() } else { bytes.len() },
            "to": "127.0.0.1:9000",
            payload_key: payload,
            "from": null,
            "ts": "2023-11-14T22:13:20.123456Z",
        });
        let line = if spaces > 0 {
            serde_json::to_string_pretty(&value).unwrap().replace('\n', " ")
        } else {
            serde_json::to_string(&value).unwrap()
        };
        let r = json::parse_record(line.as_bytes()).unwrap();
        prop_assert_eq!(r.payload, if use_text { text.into_bytes() } else { bytes });
        prop_assert_eq!(r.to, addr("127.0.0.1:9000"));
        prop_assert_eq!(r.time, at(1_700_000_000, 123_456_000));
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for prefix in [&[][..], &[0xd4, 0xc3, 0xb2, 0xa1], &[0x0a, 0x0d, 0x0d, 0x0a], b"{"] {
            let mut input = prefix.to_vec();
            input.extend_from_slice(&bytes);
            if let Ok(r) = Reader::new(&input[..]) {
                for d in r.take(1000) {
                    if d.is_err() {
                        break;
                    }
                }
            }
        }
    }
}
