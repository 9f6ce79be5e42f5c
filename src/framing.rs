//! stdin and MESSAGE words -> records: lines, NUL-terminated, whole, fixed-size chunks; the
//! UTF-8 check, hex decoding and the size limit. Pure: no I/O beyond a `Read`.
//!
//! Records are framed in place in one reusable buffer: `fill` reads once, then `next_record`
//! hands out every complete record as a range of `buf()`, so a caller sends what it has
//! before it blocks on more input. A record that outgrows the buffer before its end arrives
//! is read on to its end without being kept (see `Long`), so the error names its real size
//! while memory stays flat, however long it is.

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
    /// A payload of `len` bytes (decoded bytes, for hex), over the limit `max`. A `u64`: a
    /// record is counted to its end however long it is.
    TooLarge {
        len: u64,
        max: usize,
    },
    NotUtf8 {
        offset: usize,
    },
    BadHex(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.place)?;
        match &self.kind {
            Problem::TooLarge { len, max } => {
                let over = if *max == MAX_PAYLOAD_V4 {
                    " over IPv4"
                } else if *max == MAX_PAYLOAD_V6 {
                    " over IPv6"
                } else {
                    ""
                };
                write!(
                    f,
                    "{len} bytes, more than one UDP datagram can carry{over} ({max})"
                )
            }
            Problem::NotUtf8 { offset } => write!(
                f,
                "not valid UTF-8 (byte {}; use --binary to send bytes unchanged, or --hex)",
                offset + 1
            ),
            Problem::BadHex(why) => write!(f, "bad hex: {why}"),
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
            len: len as u64,
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
    // A whole record is a `Long` one decoded in one go, with room for all of it.
    let mut hex = Long::default();
    let all = 0..buf.len();
    hex.decode_hex(buf, all, 0, buf.len())?;
    if hex.hi.is_some() {
        return Err(ODD_HEX.into());
    }
    Ok(hex.len as usize)
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

/// The complaints about hex text. `at` is 0-based in the record.
const ODD_HEX: &str = "odd number of hex digits (each byte needs two)";

fn not_hex(c: u8, at: u64) -> String {
    format!(
        "'{}' at column {} is not a hex digit",
        (c as char).escape_default(),
        at + 1
    )
}

fn lone_hex(at: u64) -> String {
    format!("lone hex digit at column {} (each byte needs two)", at + 1)
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
    /// The most raw (undecoded) bytes a record may occupy in the buffer; a record still
    /// without its end past this is read on as a `Long` one.
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
    state: State,
    /// Bytes read from the input so far (for `--progress`).
    read: u64,
}

/// Where the framer is. One field, so the fast path asks one question per record.
#[derive(Debug)]
enum State {
    /// Records are framed whole in the buffer.
    Framing,
    /// The record at `start` outgrew the buffer before its end arrived.
    Long(Long),
    /// A record was bad: nothing more is handed out.
    Failed,
}

/// A record that outgrew the buffer before its end arrived. Its bytes are consumed as they
/// come, so memory stays flat however long it is: counted, and for hex also checked and
/// decoded. The decoded bytes are kept at the front of the record, `buf[start..start + len]`,
/// while they still fit a datagram (hex text may be long and its payload small); other
/// records only get here once they are too large, so nothing of them is kept. A line's last
/// "\r" waits, unconsumed, for the next byte to say whether it ends the line.
#[derive(Debug, Default)]
struct Long {
    /// Raw bytes of the record consumed so far (the 0-based column of the next one).
    raw: u64,
    /// Payload bytes so far (decoded bytes, for hex).
    len: u64,
    /// Hex: a high digit waiting for its low one, and its column.
    hi: Option<(u8, u64)>,
}

impl Long {
    /// How many payload bytes are kept at the front of the record.
    fn kept(&self, encoding: Encoding, max: usize) -> usize {
        if encoding == Encoding::Hex && self.len <= max as u64 {
            self.len as usize
        } else {
            0
        }
    }

    /// Decodes the record's next raw bytes `buf[raw]`, writing each payload byte to
    /// `buf[start + len]` while the payload still fits `max`. Writing never overtakes
    /// reading: the kept bytes end where `raw` starts, and each byte written took two read.
    /// Fails naming the first bad character and its column in the record. A digit still
    /// waiting for its pair at the end is left in `hi` (odd only if the record ends there).
    fn decode_hex(
        &mut self,
        buf: &mut [u8],
        raw: Range<usize>,
        start: usize,
        max: usize,
    ) -> Result<(), String> {
        let first = raw.start;
        for i in raw {
            let c = buf[i];
            let col = self.raw + (i - first) as u64;
            match self.hi.take() {
                None if is_hex_separator(c) => {}
                None => self.hi = Some((hex_value(c).ok_or_else(|| not_hex(c, col))?, col)),
                Some((hi, hi_col)) => {
                    let lo = match hex_value(c) {
                        Some(lo) => lo,
                        None if is_hex_separator(c) => return Err(lone_hex(hi_col)),
                        None => return Err(not_hex(c, col)),
                    };
                    if self.len < max as u64 {
                        buf[start + self.len as usize] = hi << 4 | lo;
                    }
                    self.len += 1;
                }
            }
        }
        Ok(())
    }
}

impl Framer {
    pub fn new(split: Split, encoding: Encoding, max: usize) -> Self {
        let raw_limit = match (split, encoding) {
            (Split::Chunk(n), _) => n,
            // A hex byte can take any number of separators; 4 chars a byte is generous
            // (longer hex text is decoded as it comes, see `Long`).
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
            state: State::Framing,
            read: 0,
        }
    }

    /// Where `buf()[pos]` is in the input, as a byte offset, for `--progress` (how much of
    /// the input is sent). Exact except inside hex text that outgrew the buffer, whose
    /// consumed text is not kept (the offset then runs behind by that text).
    pub fn input_offset(&self, pos: usize) -> u64 {
        self.read
            .saturating_sub(self.end.saturating_sub(pos) as u64)
    }

    /// The buffer the ranges from `next_record` point into. Ranges are valid until `fill`.
    pub fn buf(&self) -> &[u8] {
        &self.buf
    }

    /// True once the input has ended and every record has been handed out.
    pub fn is_finished(&self) -> bool {
        match self.state {
            State::Failed => true,
            State::Long(_) => false,
            State::Framing => {
                self.eof
                    && self.start == self.end
                    && (self.split != Split::Whole || self.whole_sent)
            }
        }
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
            // Only when `fill` ran again without `next_record` in between (which makes room).
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
                    self.read += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next complete record as a range of `buf()`, `Ok(None)` when more input is needed
    /// (or none is left). After an error, nothing more is handed out. A record too large for
    /// a datagram fails once its end has arrived (its delimiter, or the end of input), naming
    /// its size; until then this says `Ok(None)` and `fill` reads on.
    pub fn next_record(&mut self) -> Result<Option<Range<usize>>, RecordError> {
        if !matches!(self.state, State::Framing) {
            return self.next_long();
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
                        return self.check_pending();
                    }
                }
            }
            Split::Whole => {
                if self.whole_sent || !self.eof {
                    return self.check_pending();
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
                self.state = State::Failed;
                Err(RecordError { place, kind })
            }
        }
    }

    /// A record still waiting for its end that no longer fits the buffer is read on as a
    /// `Long` one, instead of buffering without bound.
    fn check_pending(&mut self) -> Result<Option<Range<usize>>, RecordError> {
        if self.end - self.start > self.raw_limit {
            self.state = State::Long(Long::default());
            return self.next_long();
        }
        Ok(None)
    }

    /// `next_record` off the fast path. For a `Long` record: consumes what has arrived of
    /// it; at its end, fails naming its size (or, hex that fits once decoded, hands it out
    /// like any record). After a failure: nothing.
    #[cold]
    #[inline(never)]
    fn next_long(&mut self) -> Result<Option<Range<usize>>, RecordError> {
        let State::Long(long) = &mut self.state else {
            return Ok(None);
        };
        let from = self.start + long.kept(self.encoding, self.max);
        let (stop, delimited) = match self.split {
            Split::Lines | Split::Null => {
                let delim = if self.split == Split::Lines { b'\n' } else { 0 };
                match memchr::memchr(delim, &self.buf[from..self.end]) {
                    Some(i) => (from + i, true),
                    None => (self.end, false),
                }
            }
            Split::Whole | Split::Chunk(_) => (self.end, false),
        };
        // A "\r" before "\n" is not payload; one at the end of what has arrived waits for
        // the next byte. At the end of input it is payload, as in a short last line.
        let held = self.split == Split::Lines
            && stop > from
            && self.buf[stop - 1] == b'\r'
            && (delimited || !self.eof);
        let body = from..stop - usize::from(held);
        let consumed = if self.encoding == Encoding::Hex {
            long.decode_hex(&mut self.buf, body.clone(), self.start, self.max)
        } else {
            long.len += body.len() as u64;
            Ok(())
        };
        long.raw += body.len() as u64;
        if let Err(why) = consumed {
            return Err(self.fail(Problem::BadHex(why)));
        }
        if !(delimited || self.eof) {
            // Drop what was consumed; a held "\r" moves to just after the kept bytes.
            let kept_end = self.start + long.kept(self.encoding, self.max);
            if held {
                self.buf[kept_end] = b'\r';
            }
            self.end = kept_end + usize::from(held);
            self.scan = self.end;
            return Ok(None);
        }
        // The record's end.
        if long.hi.is_some() {
            return Err(self.fail(Problem::BadHex(ODD_HEX.into())));
        }
        let len = long.len;
        if self.encoding != Encoding::Hex || len > self.max as u64 {
            return Err(self.fail(Problem::TooLarge { len, max: self.max }));
        }
        // Hex text too long for the buffer, its payload not too large for a datagram.
        let record = self.start..self.start + len as usize;
        self.state = State::Framing;
        self.start = if delimited { stop + 1 } else { self.end };
        self.scan = self.start;
        self.whole_sent = self.split == Split::Whole;
        self.number += 1;
        Ok(Some(record))
    }

    /// Stops the framer at the current record with `kind`.
    fn fail(&mut self, kind: Problem) -> RecordError {
        self.state = State::Failed;
        RecordError {
            place: self.place(),
            kind,
        }
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

    fn err_text(e: Option<RecordError>) -> String {
        e.map(|e| e.to_string()).unwrap_or_default()
    }

    fn a(n: usize) -> Vec<u8> {
        vec![b'a'; n]
    }

    fn too_large(place: &str, len: usize, max: usize) -> String {
        let fam = if max == MAX_PAYLOAD_V4 {
            "IPv4"
        } else {
            "IPv6"
        };
        format!("{place}: {len} bytes, more than one UDP datagram can carry over {fam} ({max})")
    }

    /// The contract the simple way, with all of the input in memory: the raw records, each
    /// checked by `finish_record`; the records before the first bad one, and its error.
    fn reference(
        input: &[u8],
        split: Split,
        enc: Encoding,
        max: usize,
    ) -> (Vec<Vec<u8>>, Option<RecordError>) {
        let raws: Vec<&[u8]> = match split {
            Split::Whole => vec![input],
            Split::Chunk(n) => input.chunks(n).collect(),
            Split::Lines | Split::Null => {
                let delim = if split == Split::Lines { b'\n' } else { 0 };
                let mut v: Vec<&[u8]> = input.split(|&b| b == delim).collect();
                // The last piece has no delimiter after it: a record only if not empty, and
                // its "\r" is payload.
                let last = v.pop().unwrap_or_default();
                if split == Split::Lines {
                    for r in &mut v {
                        *r = r.strip_suffix(b"\r").unwrap_or(r);
                    }
                }
                if !last.is_empty() {
                    v.push(last);
                }
                v
            }
        };
        let mut out = Vec::new();
        for (i, raw) in raws.into_iter().enumerate() {
            let mut rec = raw.to_vec();
            match finish_record(&mut rec, enc, max) {
                Ok(n) => out.push(rec[..n].to_vec()),
                Err(kind) => {
                    let place = match split {
                        Split::Lines => format!("stdin line {}", i + 1),
                        Split::Null | Split::Chunk(_) => format!("stdin record {}", i + 1),
                        Split::Whole => "stdin".to_string(),
                    };
                    return (out, Some(RecordError { place, kind }));
                }
            }
        }
        (out, None)
    }

    #[test]
    fn oversize_record_is_read_to_its_end_and_named_with_its_size() {
        let v4 = MAX_PAYLOAD_V4;
        // Line 3 of 70,000 bytes, however the reads cut it (the last in one read).
        let input = [&b"1\n2\n"[..], &a(70_000), b"\nnever\n"].concat();
        for pieces in [&[4096][..], &[65_536], &[1000, 7, 65_535], &[100_000]] {
            let (r, e) = frame(&input, pieces, Split::Lines, Encoding::Utf8, v4);
            assert_eq!(r, [b"1".to_vec(), b"2".to_vec()], "pieces {pieces:?}");
            assert_eq!(err_text(e), too_large("stdin line 3", 70_000, v4));
        }
        // The size is what is wrong with it, before its bytes: UTF-8 or not.
        let bad = [&a(69_999)[..], b"\xff\nnever\n"].concat();
        let (_, e) = frame(&bad, &[4096], Split::Lines, Encoding::Utf8, v4);
        assert_eq!(err_text(e), too_large("stdin line 1", 70_000, v4));
        // With no end but the end of input.
        let (_, e) = frame(&a(200_000), &[8192], Split::Lines, Encoding::Binary, v4);
        assert_eq!(err_text(e), too_large("stdin line 1", 200_000, v4));
        // NUL-terminated records.
        let input = [&b"a\0b\0"[..], &a(70_000), b"\0never\0"].concat();
        let (r, e) = frame(&input, &[4096], Split::Null, Encoding::Binary, v4);
        assert_eq!(r.len(), 2);
        assert_eq!(err_text(e), too_large("stdin record 3", 70_000, v4));
        // --whole: all of the input; IPv6's limit for an IPv6 destination.
        let v6 = MAX_PAYLOAD_V6;
        let (r, e) = frame(&a(70_000), &[4096], Split::Whole, Encoding::Utf8, v6);
        assert_eq!(r.len(), 0);
        assert_eq!(err_text(e), too_large("stdin", 70_000, v6));
        let (r, e) = frame(&a(v6), &[4096], Split::Whole, Encoding::Utf8, v6);
        assert_eq!((r, e), (vec![a(v6)], None));
    }

    #[test]
    fn a_crlf_line_end_is_not_payload_wherever_the_reads_cut_it() {
        let max = MAX_PAYLOAD_V4;
        // First reads that end before, on and after the "\r", then byte by byte.
        for first in [max - 1, max, max + 1, max + 2, max + 3] {
            let cut = |input: &[u8]| frame(input, &[first, 1], Split::Lines, Encoding::Utf8, max);
            // 65,508 bytes and CRLF: 65,508 bytes.
            let (r, e) = cut(&[&a(max + 1)[..], b"\r\nnever\n"].concat());
            assert_eq!(r.len(), 0);
            assert_eq!(err_text(e), too_large("stdin line 1", max + 1, max));
            // The limit exactly and CRLF: sent, without the "\r".
            let (r, e) = cut(&[&a(max)[..], b"\r\nnext\n"].concat());
            assert_eq!((r, e), (vec![a(max), b"next".to_vec()], None));
            // A "\r" not right before "\n" is payload: in the middle, or last of the input.
            let (_, e) = cut(&[&a(max)[..], b"\r\r\n"].concat());
            assert_eq!(err_text(e), too_large("stdin line 1", max + 1, max));
            let (_, e) = cut(&[&a(max)[..], b"\r"].concat());
            assert_eq!(err_text(e), too_large("stdin line 1", max + 1, max));
            let (_, e) = cut(&[&a(max + 1)[..], b"\r"].concat());
            assert_eq!(err_text(e), too_large("stdin line 1", max + 2, max));
        }
    }

    #[test]
    fn hex_text_longer_than_the_buffer_is_decoded_as_it_comes() {
        let max = MAX_PAYLOAD_V4;
        // Five characters a byte: more text than the buffer holds for a datagram's worth.
        let spaced = |n: usize| -> Vec<u8> {
            (0..n)
                .flat_map(|i| format!("{:02x} : ", i as u8).into_bytes())
                .collect()
        };
        let hex = |input: &[u8]| frame(input, &[4096], Split::Lines, Encoding::Hex, max);
        // Too large: named by the decoded size.
        let (r, e) = hex(&[&b"00\n"[..], &spaced(70_000), b"\n01\n"].concat());
        assert_eq!(r, [vec![0]]);
        assert_eq!(err_text(e), too_large("stdin line 2", 70_000, max));
        // The limit exactly, in long text: sent.
        let (r, e) = hex(&[&spaced(max)[..], b"\r\n01\n"].concat());
        let want: Vec<u8> = (0..max).map(|i| i as u8).collect();
        assert_eq!((r, e), (vec![want, vec![1]], None));
        // Long text, small payload: sent.
        let (r, e) = hex(&[&b"00"[..], &vec![b' '; 300_000], b"ff\n01\n"].concat());
        assert_eq!((r, e), (vec![vec![0, 0xff], vec![1]], None));
        // Bad hex far into a long record: the words and column a short record gets, also
        // where the payload is already too large.
        for (tail, says) in [
            (&b"zz"[..], "'z' at column"),
            (b"a b", "lone hex digit"),
            (b"abc", "odd number"),
            (b"a\r", "lone hex digit"),
            (b"a\r\r", "lone hex digit"),
            (b"a", "odd number"),
        ] {
            for n in [1000, 70_000] {
                let mut record = [&vec![b' '; 300_000][..], &spaced(n), tail].concat();
                let input = [&record[..], b"\r\nnever\n"].concat();
                let want = decode_hex_in_place(&mut record).unwrap_err();
                assert!(want.contains(says), "{want}");
                let (r, e) = hex(&input);
                assert_eq!(r.len(), 0);
                assert_eq!(err_text(e), format!("stdin line 1: bad hex: {want}"));
            }
        }
        // --whole: all of the input is one record.
        let (r, e) = frame(&spaced(70_000), &[4096], Split::Whole, Encoding::Hex, max);
        assert_eq!(r.len(), 0);
        assert_eq!(err_text(e), too_large("stdin", 70_000, max));
    }

    /// A line far larger than memory would allow to keep: counted as it passes, in the one
    /// buffer the framer started with.
    #[test]
    fn a_huge_line_is_counted_not_kept() {
        const SIZE: u64 = 1 << 30;
        let mut input = io::repeat(b'a').take(SIZE).chain(&b"\nnever\n"[..]);
        let mut framer = Framer::new(Split::Lines, Encoding::Binary, MAX_PAYLOAD_V4);
        let room = framer.buf().len();
        let e = loop {
            match framer.next_record() {
                Ok(Some(r)) => panic!("a record {r:?} out of a huge line"),
                Ok(None) => {
                    assert!(!framer.is_finished());
                    framer.fill(&mut input).unwrap();
                }
                Err(e) => break e,
            }
            assert_eq!(framer.buf().len(), room);
        };
        assert_eq!(
            e.to_string(),
            too_large("stdin line 1", SIZE as usize, MAX_PAYLOAD_V4)
        );
        assert!(framer.is_finished());
        assert_eq!(framer.next_record(), Ok(None));
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Any input, cut by any reads, in every mode, with limits small enough that records
        /// outgrow the buffer all the time: exactly what the whole-input reference says. Runs
        /// of spaces make hex text long for its payload; short reads end anywhere, also
        /// between a "\r" and its "\n".
        #[test]
        fn framing_agrees_with_the_whole_input_reference(
            tokens in proptest::collection::vec(prop_oneof![
                8 => Just(b"a0".to_vec()),
                4 => (1usize..12).prop_map(|n| vec![b' '; n]),
                1 => Just(b":".to_vec()),
                2 => Just(b"\r".to_vec()),
                2 => Just(b"\n".to_vec()),
                2 => Just(b"\r\n".to_vec()),
                1 => Just(b"\0".to_vec()),
                1 => Just(b"f".to_vec()),
                1 => Just(b"z\xff".to_vec()),
            ], 0..120),
            pieces in prop_oneof![
                proptest::collection::vec(1usize..6, 1..4),
                proptest::collection::vec(1usize..90, 1..6),
            ],
            max in 1usize..16,
            split in 0..3u8,
            enc in 0..3u8,
        ) {
            let input = tokens.concat();
            let split = [Split::Lines, Split::Null, Split::Whole][usize::from(split)];
            let enc = [Encoding::Utf8, Encoding::Binary, Encoding::Hex][usize::from(enc)];
            prop_assert_eq!(
                frame(&input, &pieces, split, enc, max),
                reference(&input, split, enc, max)
            );
        }
    }
}
