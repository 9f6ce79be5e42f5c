//! The replay reader, for any bytes: never panics, never hangs, and reads the same however
//! the input is cut into reads (a file in one read, a pipe a few bytes at a time, with EINTR).
//! After an error nothing more comes out; error messages carry nothing that could drive a
//! terminal; packet numbers only increase; no payload is larger than an IP packet can carry
//! (json lines aside, which have no such limit); the counts add up.
//!
//! Input layout: `[mode, link, r0, r1, data...]`
//! - mode bits 0-2: what `data` follows: nothing (raw bytes), a pcap header (microseconds or
//!   nanoseconds, little- or big-endian), a pcapng section header and interface description,
//!   or `{` (json lines); the prefixes get the fuzzer past the magic numbers at once
//! - link: the link type of that header, from the ones udpcat reads (and one it does not)
//! - r0, r1: the read sizes of the slow reader, alternating (0 = an interrupted read)

#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use udpcat::replay::{Counts, Datagram, Position, Reader};

const LINKS: [u32; 9] = [1, 101, 113, 276, 0, 108, 228, 229, 147];

/// Hands out `data` in reads of the given sizes, 0 being an interrupted read.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: [u8; 2],
    i: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = self.sizes[self.i % 2];
        self.i += 1;
        if want == 0 && self.i % 4 == 1 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = usize::from(want).max(1).min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Everything a reader gives: the datagrams, then the error's text (if any), and the counts.
fn read_all<R: Read>(input: R) -> (Vec<Datagram>, Option<String>, Option<Counts>) {
    let mut reader = match Reader::new(input) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e.to_string()), None),
    };
    let mut out = Vec::new();
    let mut error = None;
    // Inputs are small; this only bounds a reader that would never end.
    for _ in 0..100_000 {
        match reader.next_datagram() {
            Ok(Some(d)) => out.push(d),
            Ok(None) => break,
            Err(e) => {
                assert!(
                    !matches!(e.position, Position::Header) || out.is_empty(),
                    "a header error after datagrams: {e}"
                );
                error = Some(e.to_string());
                break;
            }
        }
    }
    // Once it stopped, it stays stopped.
    assert!(matches!(reader.next_datagram(), Ok(None)));
    (out, error, Some(reader.counts()))
}

fn prefix(mode: u8, link: u32) -> Vec<u8> {
    let mut p = Vec::new();
    match mode & 7 {
        1..=4 => {
            let be = mode & 7 >= 3;
            let magic: u32 = if mode & 1 == 1 { 0xa1b2_c3d4 } else { 0xa1b2_3c4d };
            let put = |p: &mut Vec<u8>, v: u32| {
                p.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() })
            };
            put(&mut p, magic);
            put(&mut p, 0x0004_0002u32.rotate_left(if be { 16 } else { 0 }));
            put(&mut p, 0);
            put(&mut p, 0);
            put(&mut p, 262_144);
            put(&mut p, link);
        }
        5 | 6 => {
            // Section header (28 bytes), then an interface description (20 bytes), LE.
            p.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
            p.extend_from_slice(&28u32.to_le_bytes());
            p.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
            p.extend_from_slice(&[1, 0, 0, 0]);
            p.extend_from_slice(&[0xff; 8]);
            p.extend_from_slice(&28u32.to_le_bytes());
            p.extend_from_slice(&1u32.to_le_bytes());
            p.extend_from_slice(&20u32.to_le_bytes());
            p.extend_from_slice(&(link as u16).to_le_bytes());
            p.extend_from_slice(&[0, 0]);
            p.extend_from_slice(&0u32.to_le_bytes());
            p.extend_from_slice(&20u32.to_le_bytes());
        }
        7 => p.push(b'{'),
        _ => {}
    }
    p
}

fuzz_target!(|input: &[u8]| {
    let [mode, link, r0, r1, data @ ..] = input else {
        return;
    };
    let link = LINKS[usize::from(*link) % LINKS.len()];
    let mut bytes = prefix(*mode, link);
    bytes.extend_from_slice(data);

    let (datagrams, error, counts) = read_all(&bytes[..]);
    let slow = read_all(Pieces {
        data: &bytes,
        sizes: [*r0, *r1],
        i: 0,
    });
    assert_eq!(slow.0, datagrams, "a slow reader read other datagrams");
    assert_eq!(slow.1, error, "a slow reader stopped otherwise");
    assert_eq!(slow.2, counts, "a slow reader counted otherwise");

    if let Some(e) = &error {
        assert!(
            e.chars().all(|c| !c.is_control()),
            "an error message carries a control character: {e:?}"
        );
    }
    let json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let mut last = 0;
    for d in &datagrams {
        assert!(d.index > last, "packet numbers go back: {} after {last}", d.index);
        last = d.index;
        if !json {
            assert!(d.payload.len() <= 65_535, "a payload of {} bytes", d.payload.len());
            assert!(d.src.is_some() && d.dst.is_some());
        }
    }
    if let Some(c) = counts {
        assert_eq!(c.datagrams, datagrams.len() as u64);
        if !json {
            // Every packet is a datagram, skipped, or a fragment (the datagrams reassembled
            // are fewer than their fragments).
            assert!(c.packets >= c.skipped());
        }
    }
});
