//! stdin and MESSAGE words -> records: lines, NUL-terminated, whole, fixed-size chunks; the
//! UTF-8 check, hex decoding and the size limit. Pure: no I/O beyond a `Read`.
//!
//! Records are framed in place in one reusable buffer: `fill` reads once, then `next_record`
//! hands out every complete record as a range of `buf()`, so a caller sends what it has
//! before it blocks on more input.

use std::fmt;
use std::io::{self, Read};
use std::ops::Range;

/// The largest UDP payload over IPv4: 65,535 - 20 (IP header) - 8 (UDP header).
pub const MAX_PAYLOAD_V4: usize = 65_507;
/// The largest UDP payload over IPv6 without jumbograms: 65,535 - 8 (UDP header).
pub const MAX_PAYLOAD_V6: usize = 65_527;

/// How stdin is cut into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// One record per line; `\n` and a `\r` before it are removed.
    Lines,
    /// NUL-terminated records.
    Null,
    /// All of the input is one record.
    Whole,
    /// Fixed-size records, the last one shorter.
    Chunk(usize),
}

/// What a record's bytes must be, and how they become a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Valid UTF-8, sent as is.
    Utf8,
    /// Any bytes, sent as is.
    Binary,
    /// Hex digits (whitespace and ':' between bytes allowed), sent decoded.
    Hex,
}

/// Which record went wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// "stdin line 3", "stdin record 3", "stdin", "message".
    pub place: String,
    pub kind: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `len` bytes (or, when `at_least`, more than `len`) over the limit `max`.
    TooLarge {
        len: usize,
        at_least: bool,
        max: usize,
    },
    NotUtf8 {
        offset: usize,
    },
    BadHex(String),
    /// More than `chars` characters of hex text without an end: no datagram holds that.
    HexTooLong {
        chars: usize,
        max: usize,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.place)?;
        match &self.kind {
            Problem::TooLarge { len, at_least, max } => {
                let over = if *max == MAX_PAYLOAD_V4 {
                    " over IPv4"
                } else if *max == MAX_PAYLOAD_V6 {
                    " over IPv6"
                } else {
                    ""
                };
                let size = if *at_least {
                    format!("more than {len} bytes")
                } else {
                    format!("{len} bytes")
                };
                write!(
                    f,
                    "{size}, more than one UDP datagram can carry{over} ({max})"
                )
            }
            Problem::NotUtf8 { offset } => write!(
                f,
                "not valid UTF-8 (byte {}; use --binary to send bytes unchanged, or --hex)",
                offset + 1
            ),
            Problem::BadHex(why) => write!(f, "bad hex: {why}"),
            Problem::HexTooLong { chars, max } => write!(
                f,
                "more than {chars} characters of hex text, more than one UDP datagram ({max} bytes) can carry"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// Checks a raw record and turns it into its payload in place; returns the payload length.
pub fn finish_record(raw: &mut [u8], encoding: Encoding, max: usize) -> Result<usize, Problem> {
    let len = match encoding {
        Encoding::Hex => decode_hex_in_place(raw).map_err(Problem::BadHex)?,
        Encoding::Utf8 | Encoding::Binary => raw.len(),
    };
    if len > max {
        return Err(Problem::TooLarge {
            len,
            at_least: false,
            max,
        });
    }
    if encoding == Encoding::Utf8 {
        if let Err(e) = std::str::from_utf8(raw) {
            return Err(Problem::NotUtf8 {
                offset: e.valid_up_to(),
            });
        }
    }
    Ok(len)
}

/// Decodes hex text in place (each byte needs two digits; ASCII whitespace and ':' may sit
/// between bytes). Output is never longer than input, so it fits in the front of `buf`.
pub fn decode_hex_in_place(buf: &mut [u8]) -> Result<usize, String> {
    let (mut read, mut write) = (0, 0);
    while read < buf.len() {
        let c = buf[read];
        if is_hex_separator(c) {
            read += 1;
            continue;
        }
        let hi = hex_value(c).ok_or_else(|| not_hex(c, read))?;
        let Some(&c2) = buf.get(read + 1) else {
            return Err("odd number of hex digits (each byte needs two)".into());
        };
        let lo = hex_value(c2).ok_or_else(|| {
            if is_hex_separator(c2) {
                format!(
                    "lone hex digit at column {} (each byte needs two)",
                    read + 1
                )
            } else {
                not_hex(c2, read + 1)
            }
        })?;
        buf[write] = hi << 4 | lo;
        write += 1;
        read += 2;
    }
    Ok(write)
}

fn is_hex_separator(c: u8) -> bool {
    c.is_ascii_whitespace() || c == b':'
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn not_hex(c: u8, at: usize) -> String {
    format!(
        "'{}' at column {} is not a hex digit",
        (c as char).escape_default(),
        at + 1
    )
}

/// Reads up to this much per `read` call. 64 KiB, not more: a block sent right after it
/// was read is still in cache when the kernel copies it out (bulk sending was 12% faster
/// than with 256 KiB; lines no different).
const BLOCK: usize = 64 * 1024;

/// Cuts a byte stream into records in one reused buffer.
#[derive(Debug)]
pub struct Framer {
    split: Split,
    encoding: Encoding,
    max: usize,
    /// The most raw (undecoded) bytes a record may occupy before it is known to be too large.
    raw_limit: usize,
    buf: Vec<u8>,
    /// Unconsumed input is `buf[start..end]`.
    start: usize,
    end: usize,
    /// Where to resume looking for a delimiter (everything in `start..scan` has none).
    scan: usize,
    eof: bool,
    whole_sent: bool,
    /// 1-based number of the next record.
    number: u64,
    failed: bool,
}

impl Framer {
    pub fn new(split: Split, encoding: Encoding, max: usize) -> Self {
        let raw_limit = match (split, encoding) {
            (Split::Chunk(n), _) => n,
            // A hex byte can take any number of separators; 4 chars a byte is generous.
            (_, Encoding::Hex) => max * 4 + 2,
            // A line may carry a "\r" that is not payload.
            _ => max + 1,
        };
        Framer {
            split,
            encoding,
            max,
            raw_limit,
            buf: vec![0; raw_limit + BLOCK],
            start: 0,
            end: 0,
            scan: 0,
            eof: false,
            whole_sent: false,
            number: 1,
            failed: false,
        }
    }

    /// The buffer the ranges from `next_record` point into. Ranges are valid until `fill`.
    pub fn buf(&self) -> &[u8] {
        &self.buf
    }

    /// True once the input has ended and every record has been handed out.
    pub fn is_finished(&self) -> bool {
        self.failed
            || (self.eof
                && self.start == self.end
                && (self.split != Split::Whole || self.whole_sent))
    }

    /// Reads once from `input` (moving unconsumed bytes to the front first). Returns the
    /// number of bytes read; 0 means end of input.
    pub fn fill<R: Read + ?Sized>(&mut self, input: &mut R) -> io::Result<usize> {
        // Move the unconsumed tail to the front only when room runs short, not on every read:
        // fewer copies, and a record up to raw_limit always fits after a move.
        if self.start > 0 && self.buf.len() - self.end < BLOCK / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.scan = self.scan.max(self.start) - self.start;
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Only possible in Whole mode past the limit; next_record reports it.
            return Ok(usize::MAX);
        }
        loop {
            match input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next complete record as a range of `buf()`, `Ok(None)` when more input is needed
    /// (or none is left). After an error, nothing more is handed out.
    pub fn next_record(&mut self) -> Result<Option<Range<usize>>, RecordError> {
        if self.failed {
            return Ok(None);
        }
        let raw = match self.split {
            Split::Lines | Split::Null => {
                let delim = if self.split == Split::Lines { b'\n' } else { 0 };
                match memchr::memchr(delim, &self.buf[self.scan..self.end]) {
                    Some(i) => {
                        let at = self.scan + i;
                        let mut raw = self.start..at;
                        if self.split == Split::Lines
                            && at > self.start
                            && self.buf[at - 1] == b'\r'
                        {
                            raw.end -= 1;
                        }
                        self.start = at + 1;
                        self.scan = self.start;
                        raw
                    }
                    None if self.eof && self.start < self.end => {
                        let raw = self.start..self.end;
                        self.start = self.end;
                        self.scan = self.end;
                        raw
                    }
                    None => {
                        self.scan = self.end;
                        return self.check_pending().map(|()| None);
                    }
                }
            }
            Split::Whole => {
                if self.whole_sent || !self.eof {
                    return self.check_pending().map(|()| None);
                }
                self.whole_sent = true;
                let raw = self.start..self.end;
                self.start = self.end;
                raw
            }
            Split::Chunk(n) => {
                let pending = self.end - self.start;
                if pending >= n || (self.eof && pending > 0) {
                    let raw = self.start..self.start + pending.min(n);
                    self.start = raw.end;
                    raw
                } else {
                    return Ok(None);
                }
            }
        };
        let place = self.place();
        self.number += 1;
        match finish_record(&mut self.buf[raw.clone()], self.encoding, self.max) {
            Ok(len) => Ok(Some(raw.start..raw.start + len)),
            Err(kind) => {
                self.failed = true;
                Err(RecordError { place, kind })
            }
        }
    }

    /// A record still waiting for its end that is already too large fails now, instead of
    /// buffering without bound.
    fn check_pending(&mut self) -> Result<(), RecordError> {
        let pending = self.end - self.start;
        if pending > self.raw_limit {
            self.failed = true;
            let kind = if self.encoding == Encoding::Hex {
                Problem::HexTooLong {
                    chars: self.raw_limit,
                    max: self.max,
                }
            } else {
                // The record has at least `pending` bytes, less a last "\r" that a "\n"
                // may still make a line end.
                let known = pending - usize::from(self.buf[self.end - 1] == b'\r');
                Problem::TooLarge {
                    len: known - 1,
                    at_least: true,
                    max: self.max,
                }
            };
            return Err(RecordError {
                place: self.place(),
                kind,
            });
        }
        Ok(())
    }

    fn place(&self) -> String {
        match self.split {
            Split::Lines => format!("stdin line {}", self.number),
            Split::Null | Split::Chunk(_) => format!("stdin record {}", self.number),
            Split::Whole => "stdin".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Frames `input` fed in pieces of the given sizes (cycled); returns records and the error.
    fn frame(
        input: &[u8],
        pieces: &[usize],
        split: Split,
        enc: Encoding,
        max: usize,
    ) -> (Vec<Vec<u8>>, Option<RecordError>) {
        struct Pieces<'a> {
            data: &'a [u8],
            sizes: &'a [usize],
            i: usize,
        }
        impl Read for Pieces<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let want = self.sizes[self.i % self.sizes.len()].max(1);
                self.i += 1;
                let n = want.min(out.len()).min(self.data.len());
                out[..n].copy_from_slice(&self.data[..n]);
                self.data = &self.data[n..];
                Ok(n)
            }
        }
        let mut reader = Pieces {
            data: input,
            sizes: pieces,
            i: 0,
        };
        let mut framer = Framer::new(split, enc, max);
        let mut out = Vec::new();
        loop {
            loop {
                match framer.next_record() {
                    Ok(Some(r)) => out.push(framer.buf()[r].to_vec()),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
            if framer.is_finished() {
                return (out, None);
            }
            framer.fill(&mut reader).unwrap();
        }
    }

    fn lines(input: &str) -> Vec<String> {
        let (recs, err) = frame(
            input.as_bytes(),
            &[3],
            Split::Lines,
            Encoding::Utf8,
            MAX_PAYLOAD_V4,
        );
        assert_eq!(err, None);
        recs.into_iter()
            .map(|r| String::from_utf8(r).unwrap())
            .collect()
    }

    #[test]
    fn lines_strip_newline_and_cr_keep_empty_and_last() {
        assert_eq!(lines("a\r\nb\n\nc"), ["a", "b", "", "c"]);
        assert_eq!(lines("one\n"), ["one"]);
        assert_eq!(lines(""), Vec::<String>::new());
        assert_eq!(lines("\n"), [""]);
        assert_eq!(lines("x\r\r\n"), ["x\r"]);
    }

    #[test]
    fn null_whole_and_chunk() {
        let (r, e) = frame(b"a\0b\nc\0d", &[2], Split::Null, Encoding::Utf8, 100);
        assert_eq!(
            (r, e),
            (vec![b"a".to_vec(), b"b\nc".to_vec(), b"d".to_vec()], None)
        );
        let (r, e) = frame(b"a\nb\n", &[1], Split::Whole, Encoding::Utf8, 100);
        assert_eq!((r, e), (vec![b"a\nb\n".to_vec()], None));
        let (r, _) = frame(b"", &[1], Split::Whole, Encoding::Utf8, 100);
        assert_eq!(
            r,
            vec![Vec::<u8>::new()],
            "empty stdin is one empty datagram"
        );
        let (r, e) = frame(b"abcdefg", &[5], Split::Chunk(3), Encoding::Binary, 100);
        assert_eq!(
            (r, e),
            (vec![b"abc".to_vec(), b"def".to_vec(), b"g".to_vec()], None)
        );
    }

    #[test]
    fn hex_allows_separators_and_rejects_bad_digits() {
        let (r, e) = frame(
            b"de ad:BE\tef\n00\n\n",
            &[4],
            Split::Lines,
            Encoding::Hex,
            100,
        );
        assert_eq!(
            (r, e),
            (vec![vec![0xde, 0xad, 0xbe, 0xef], vec![0], vec![]], None)
        );
        for (bad, says) in [
            ("abc", "odd number"),
            ("zz", "'z' at column 1"),
            ("a b", "lone hex digit"),
        ] {
            let (_, e) = frame(
                format!("00\n{bad}\n").as_bytes(),
                &[64],
                Split::Lines,
                Encoding::Hex,
                100,
            );
            let msg = e.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                msg.starts_with("stdin line 2: bad hex") && msg.contains(says),
                "{msg}"
            );
        }
    }

    #[test]
    fn bad_record_stops_after_the_good_ones() {
        let (r, e) = frame(
            b"ok\n\xff\nnever\n",
            &[64],
            Split::Lines,
            Encoding::Utf8,
            100,
        );
        assert_eq!(r, vec![b"ok".to_vec()]);
        let msg = e.unwrap().to_string();
        assert!(
            msg.starts_with("stdin line 2: not valid UTF-8") && msg.contains("--binary"),
            "{msg}"
        );
        let (r, e) = frame(b"ok\n\xff\n", &[64], Split::Lines, Encoding::Binary, 100);
        assert_eq!((r.len(), e), (2, None));
    }

    #[test]
    fn oversize_is_reported_with_its_line_even_without_a_newline() {
        let mut input = b"short\n".to_vec();
        input.extend(vec![b'a'; MAX_PAYLOAD_V4 + 1]);
        input.extend(b"\nnever\n");
        let (r, e) = frame(
            &input,
            &[4096],
            Split::Lines,
            Encoding::Utf8,
            MAX_PAYLOAD_V4,
        );
        assert_eq!(r, vec![b"short".to_vec()]);
        let msg = e.unwrap().to_string();
        assert!(
            msg.contains("stdin line 2: 65508 bytes") && msg.contains("IPv4 (65507)"),
            "{msg}"
        );
        // An endless line fails once it passes the limit instead of buffering forever.
        let endless = vec![b'a'; 3 * MAX_PAYLOAD_V4];
        let (_, e) = frame(
            &endless,
            &[8192],
            Split::Lines,
            Encoding::Binary,
            MAX_PAYLOAD_V4,
        );
        assert!(e.unwrap().to_string().contains("stdin line 1: more than"));
        // Exactly the limit is fine, with or without CRLF.
        let mut max = vec![b'a'; MAX_PAYLOAD_V4];
        max.extend(b"\r\n");
        let (r, e) = frame(&max, &[7000], Split::Lines, Encoding::Utf8, MAX_PAYLOAD_V4);
        assert_eq!((r[0].len(), e), (MAX_PAYLOAD_V4, None));
    }

    proptest! {
        #[test]
        fn lines_never_lose_or_invent_bytes(
            recs in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n' && *b != b'\r'), 0..50), 0..20),
            pieces in proptest::collection::vec(1usize..70, 1..8),
            last_newline in any::<bool>(),
        ) {
            let mut input = recs.join(&b'\n');
            if last_newline && !recs.is_empty() { input.push(b'\n'); }
            let (out, err) = frame(&input, &pieces, Split::Lines, Encoding::Binary, 1000);
            prop_assert_eq!(err, None);
            let mut expect = recs.clone();
            if !last_newline && expect.last().is_some_and(|r| r.is_empty()) { expect.pop(); }
            prop_assert_eq!(out, expect);
        }

        #[test]
        fn chunks_concatenate_back_to_the_input(data in proptest::collection::vec(any::<u8>(), 0..500), n in 1usize..64, pieces in proptest::collection::vec(1usize..100, 1..5)) {
            let (out, err) = frame(&data, &pieces, Split::Chunk(n), Encoding::Binary, 1000);
            prop_assert_eq!(err, None);
            prop_assert!(out.iter().all(|c| !c.is_empty() && c.len() <= n));
            prop_assert_eq!(out.concat(), data);
        }

        #[test]
        fn hex_decodes_what_lowercase_hex_encodes(data in proptest::collection::vec(any::<u8>(), 0..200), colons in any::<bool>()) {
            let sep = if colons { ":" } else { "" };
            let mut text: Vec<u8> = data.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(sep).into_bytes();
            let n = decode_hex_in_place(&mut text).unwrap();
            prop_assert_eq!(&text[..n], &data[..]);
        }
    }
}
