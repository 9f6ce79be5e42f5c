//! The json lines `udpcat listen -f json` writes -> datagrams. One object per line:
//! `{"ts":"2023-11-14T22:13:20.123456Z","from":"192.0.2.1:5000","to":"127.0.0.1:9000",
//! "len":2,"text":"hi"}`, or `"base64":"..."` instead of `text`; `from` is `null` for a
//! nameless Unix sender, `dir` is there with `--forward`. Keys in any order, whitespace between
//! tokens, unknown keys passed over; blank lines are skipped.
//!
//! Parsed by hand rather than with serde_json: the shape is small and fixed, and the binary
//! stays smaller (see the commit that added this file for the figures).

use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::net::SocketAddr;
use std::time::SystemTime;

use data_encoding::BASE64;

use super::{Counts, Datagram, Error, ErrorKind, Input, Position};

/// The longest line read: a payload of the largest Unix datagram Linux allows by default
/// (about 200 KiB), every byte escaped as `\u00XX`, with room to spare.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// Nesting of unknown values passed over (udpcat writes none).
const MAX_DEPTH: usize = 32;

/// Whether input starting with `head` (no capture magic) is json lines: its first byte that is
/// not whitespace is `{`, or it is all whitespace so far.
pub(super) fn looks_like_json(head: &[u8]) -> bool {
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b) => *b == b'{',
        None => true,
    }
}

pub(super) struct Lines<R: Read> {
    input: BufReader<io::Chain<Cursor<Vec<u8>>, Input<R>>>,
    line: Vec<u8>,
    /// Lines read so far.
    lineno: u64,
}

impl<R: Read> Lines<R> {
    pub(super) fn new(input: Input<R>, head: &[u8]) -> Self {
        Lines {
            input: BufReader::with_capacity(64 * 1024, Cursor::new(head.to_vec()).chain(input)),
            line: Vec::new(),
            lineno: 0,
        }
    }

    pub(super) fn next_datagram(&mut self, counts: &mut Counts) -> Result<Option<Datagram>, Error> {
        loop {
            self.line.clear();
            let position = Position::Line(self.lineno + 1);
            let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
            let n = (&mut self.input)
                .take(limit)
                .read_until(b'\n', &mut self.line)
                .map_err(|e| Error {
                    position,
                    kind: ErrorKind::Io(e),
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.lineno += 1;
            if self.line.len() > MAX_LINE {
                return Err(Error::damaged(
                    position,
                    format!(
                        "longer than {} MiB: not a record of udpcat's json lines",
                        MAX_LINE / (1024 * 1024)
                    ),
                ));
            }
            let text = self.line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            counts.packets += 1;
            let record = parse_record(text).map_err(|what| Error::damaged(position, what))?;
            return Ok(Some(Datagram {
                index: self.lineno,
                time: record.time,
                src: record.from,
                dst: record.to,
                payload: record.payload,
            }));
        }
    }
}

/// One line's datagram.
#[derive(Debug, PartialEq)]
pub(super) struct Record {
    pub time: SystemTime,
    pub from: Option<SocketAddr>,
    pub to: Option<SocketAddr>,
    pub payload: Vec<u8>,
}

/// Parses one line (without its line end). Errors say what is wrong and where (a column),
/// never quoting the line.
pub(super) fn parse_record(line: &[u8]) -> Result<Record, String> {
    if std::str::from_utf8(line).is_err() {
        return Err("not UTF-8, so not json".into());
    }
    let mut p = Parser { s: line, i: 0 };
    let mut time = None;
    let mut from = None;
    let mut to = None;
    let mut len = None;
    let mut text = None;
    let mut base64 = None;
    p.ws();
    p.expect(b'{')?;
    p.ws();
    if !p.eat(b'}') {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            let at = p.column();
            match key.as_slice() {
                b"ts" => {
                    let s = p.string()?;
                    let s = std::str::from_utf8(&s)
                        .map_err(|_| format!("column {at}: `ts` is not UTF-8"))?;
                    time = Some(humantime::parse_rfc3339_weak(s).map_err(|_| {
                        format!("column {at}: `ts` is not an RFC 3339 time like 2023-11-14T22:13:20.123456Z")
                    })?);
                }
                b"from" => from = Some(p.address("from")?),
                b"to" => to = Some(p.address("to")?),
                b"len" => len = Some(p.integer()?),
                b"text" => text = Some(p.string()?),
                b"base64" => {
                    let s = p.string()?;
                    base64 = Some(
                        BASE64
                            .decode(&s)
                            .map_err(|_| format!("column {at}: `base64` is not base64"))?,
                    );
                }
                _ => p.skip_value(0)?,
            }
            p.ws();
            if p.eat(b'}') {
                break;
            }
            p.expect(b',')?;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(format!(
            "column {}: more after the object (one json object per line)",
            p.column()
        ));
    }
    let time = time.ok_or("no `ts`")?;
    let payload = match (text, base64) {
        (Some(t), None) => t,
        (None, Some(b)) => b,
        (None, None) => return Err("no `text` or `base64`".into()),
        (Some(_), Some(_)) => return Err("both `text` and `base64`".into()),
    };
    if let Some(len) = len {
        if u64::try_from(payload.len()).ok() != Some(len) {
            return Err(format!(
                "`len` is {len} but the payload has {} bytes",
                payload.len()
            ));
        }
    }
    Ok(Record {
        time,
        from: from.flatten(),
        to: to.flatten(),
        payload,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    /// 1-based column (in bytes) of the next byte.
    fn column(&self) -> usize {
        self.i + 1
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else if self.peek().is_none() {
            Err(format!(
                "column {}: the line ends inside the object",
                self.column()
            ))
        } else {
            Err(format!(
                "column {}: expected `{}`",
                self.column(),
                b as char
            ))
        }
    }

    /// A JSON string, unescaped, as bytes (always UTF-8: the line was checked).
    fn string(&mut self) -> Result<Vec<u8>, String> {
        let start = self.column();
        if !self.eat(b'"') {
            return Err(format!("column {start}: expected a string"));
        }
        let mut out = Vec::new();
        loop {
            let run = self.s[self.i..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .ok_or_else(|| format!("column {start}: the string never ends"))?;
            out.extend_from_slice(&self.s[self.i..self.i + run]);
            self.i += run;
            match self.s[self.i] {
                b'"' => {
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.i += 1;
                    let c = self.escape()?;
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
                _ => {
                    return Err(format!(
                        "column {}: a control character inside a string (json escapes them)",
                        self.column()
                    ));
                }
            }
        }
    }

    /// The character of an escape, after its backslash.
    fn escape(&mut self) -> Result<char, String> {
        let at = self.column() - 1;
        let bad = || format!("column {at}: not a json escape");
        let c = self.peek().ok_or_else(bad)?;
        self.i += 1;
        Ok(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\x08',
            b'f' => '\x0c',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4().ok_or_else(bad)?;
                let code = if (0xd800..0xdc00).contains(&hi) {
                    // A surrogate pair: the low half must follow as its own escape.
                    if !(self.eat(b'\\') && self.eat(b'u')) {
                        return Err(format!("column {at}: half a surrogate pair"));
                    }
                    let lo = self.hex4().ok_or_else(bad)?;
                    if !(0xdc00..0xe000).contains(&lo) {
                        return Err(format!("column {at}: half a surrogate pair"));
                    }
                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                } else {
                    hi
                };
                char::from_u32(code).ok_or_else(|| format!("column {at}: half a surrogate pair"))?
            }
            _ => return Err(bad()),
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i..self.i + 4)?;
        let mut v = 0;
        for &d in digits {
            v = v * 16 + char::from(d).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// A non-negative integer (`len`).
    fn integer(&mut self) -> Result<u64, String> {
        let at = self.column();
        let digits = self.s[self.i..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.s[self.i..self.i + digits];
        self.i += digits;
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("column {at}: `len` is not a byte count"))
    }

    /// `from` or `to`: an IP socket address, or `null` / a Unix socket's name (`None`).
    fn address(&mut self, key: &str) -> Result<Option<SocketAddr>, String> {
        let at = self.column();
        if self.s[self.i..].starts_with(b"null") {
            self.i += 4;
            return Ok(None);
        }
        let s = self.string()?;
        let s = String::from_utf8_lossy(&s);
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Some(a));
        }
        if s.starts_with("unix:") || s.contains('/') {
            return Ok(None);
        }
        Err(format!(
            "column {at}: `{key}` is neither an IP address with a port nor a Unix socket"
        ))
    }

    /// Passes over any JSON value.
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        let at = self.column();
        if depth > MAX_DEPTH {
            return Err(format!("column {at}: nested too deep"));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(open @ (b'{' | b'[')) => {
                self.i += 1;
                let close = if open == b'{' { b'}' } else { b']' };
                self.ws();
                if self.eat(close) {
                    return Ok(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.expect(b':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    if self.eat(close) {
                        return Ok(());
                    }
                    self.expect(b',')?;
                }
            }
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(())
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(())
            }
            Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => {
                let n = self.s[self.i..]
                    .iter()
                    .take_while(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .count();
                self.i += n;
                Ok(())
            }
            _ => Err(format!("column {at}: expected a json value")),
        }
    }
}
