//! Record -> bytes on any `W: Write`: the text, raw, hex and json formats, `--source`,
//! `-0`, and terminal escaping. Used by listen and by send's replies. The loops decide when
//! to flush (whenever no datagram is waiting); this module never flushes.

use std::io::{self, Write};
use std::time::SystemTime;

use data_encoding::{BASE64, HEXLOWER};

pub mod dump;
pub mod pcap;

pub use crate::cli::Format;

use crate::addr::{Addr, UnixAddr};

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    pub format: Format,
    /// Text and hex records end with NUL instead of a newline.
    pub null: bool,
    /// Text and hex records start with the sender's address and a TAB.
    pub source: bool,
    /// Text and hex records start with the arrival time and a TAB.
    pub timestamp: bool,
    /// stdout is a terminal: escape what could drive it (text format).
    pub escape: bool,
}

impl Options {
    /// Whether records need each datagram's arrival time (json, dump, pcap, `-T`).
    pub fn needs_time(&self) -> bool {
        matches!(self.format, Format::Json | Format::Dump | Format::Pcap) || self.timestamp
    }

    /// pcap is binary: a terminal would show noise, and could be driven by it.
    pub fn check_stdout(&self, is_terminal: bool) -> Result<(), String> {
        if self.format == Format::Pcap && is_terminal {
            return Err(
                "--format pcap writes a binary capture, not for a terminal: pipe it \
                        (| wireshark -k -i -, | tshark -r -) or redirect it to a file"
                    .into(),
            );
        }
        Ok(())
    }

    /// The flags that mean nothing with this format, as a usage error naming both: `-s`
    /// and `-0` shape text and hex records; raw adds nothing, json always has `from`.
    pub fn check(&self) -> Result<(), String> {
        let name = match self.format {
            Format::Raw => "raw",
            Format::Json => "json",
            Format::Dump => "dump",
            Format::Pcap => "pcap",
            Format::Text | Format::Hex => return Ok(()),
        };
        let why = match self.format {
            Format::Raw => "raw writes the payload bytes and nothing else",
            Format::Json => "json records always carry `from` and `ts` and are one per line",
            Format::Dump => "dump's header line already has the time and the sender",
            _ => "a capture holds the addresses and times itself",
        };
        for (given, flag) in [
            (self.source, "-s/--source"),
            (self.null, "-0/--null"),
            (self.timestamp, "-T/--timestamp"),
        ] {
            if given {
                return Err(format!("{flag} has no effect with --format {name} ({why})"));
            }
        }
        Ok(())
    }
}

/// One received datagram, as the printer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub payload: &'a [u8],
    /// The sender, IPv4-mapped addresses already shown as IPv4.
    pub from: &'a Addr,
    /// The local address it arrived on.
    pub to: &'a Addr,
    /// When it was received (json only).
    pub at: SystemTime,
    /// With --forward: which way it went (json `dir`: `forward` from a peer, `reply` from a
    /// destination).
    pub dir: Option<Dir>,
}

/// The direction of a relayed datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Forward,
    Reply,
}

/// Writes records; keeps a scratch buffer so the hot paths do not allocate per datagram.
#[derive(Debug)]
pub struct Printer {
    opts: Options,
    scratch: Vec<u8>,
    warned_not_utf8: bool,
    /// Formatting an address or a timestamp costs more than writing a short payload, and
    /// consecutive datagrams usually share them: keep the last of each, rendered.
    from: Rendered<Addr>,
    to: Rendered<Addr>,
    /// The addresses addresses as json strings (escaped; `null` for a nameless sender).
    from_json: Rendered<Addr>,
    to_json: Rendered<Addr>,
    ts: Rendered<SystemTime>,
}

/// A value and its text, re-rendered only when the value changes.
#[derive(Debug)]
struct Rendered<T> {
    value: Option<T>,
    text: Vec<u8>,
}

impl<T: PartialEq + Clone> Rendered<T> {
    fn new() -> Self {
        Rendered {
            value: None,
            text: Vec::with_capacity(64),
        }
    }

    fn get(&mut self, value: &T, render: impl FnOnce(&T, &mut Vec<u8>)) -> &[u8] {
        if self.value.as_ref() != Some(value) {
            self.text.clear();
            render(value, &mut self.text);
            self.value = Some(value.clone());
        }
        &self.text
    }
}

fn render_addr(addr: &Addr, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{addr}");
}

/// A json value for an address: a string, or `null` for a nameless Unix sender.
fn render_json_addr(addr: &Addr, out: &mut Vec<u8>) {
    match addr {
        Addr::Unix(UnixAddr::Unnamed) => out.extend_from_slice(b"null"),
        Addr::Ip(a) => {
            let _ = write!(out, "\"{a}\"");
        }
        Addr::Unix(u) => {
            out.push(b'"');
            json_escape_into(out, &u.to_string());
            out.push(b'"');
        }
    }
}

fn render_ts(at: &SystemTime, out: &mut Vec<u8>) {
    let at = *at;
    // humantime panics on times before 1970; a clock set that far back shows as the epoch.
    let at = at.max(SystemTime::UNIX_EPOCH);
    let _ = write!(out, "{}", humantime::format_rfc3339_micros(at));
}

impl Printer {
    pub fn new(opts: Options) -> Self {
        Printer {
            opts,
            // Grows to the largest record on first use (hex, json); text and raw never need it.
            scratch: Vec::new(),
            warned_not_utf8: false,
            from: Rendered::new(),
            to: Rendered::new(),
            from_json: Rendered::new(),
            to_json: Rendered::new(),
            ts: Rendered::new(),
        }
    }

    pub fn write<W: Write>(&mut self, out: &mut W, d: &Datagram<'_>) -> io::Result<()> {
        let end: &[u8] = if self.opts.null { b"\0" } else { b"\n" };
        match self.opts.format {
            Format::Raw => out.write_all(d.payload),
            Format::Text => {
                self.write_prefix(out, d)?;
                if self.opts.escape {
                    let (body, had_newline) = split_line_end(d.payload, self.opts.null);
                    // With -s, a newline inside the payload would start a line that looks
                    // like another sender's record.
                    write_escaped(out, body, self.opts.source)?;
                    if had_newline {
                        return out.write_all(b"\n");
                    }
                } else {
                    out.write_all(d.payload)?;
                    if !self.warned_not_utf8 && std::str::from_utf8(d.payload).is_err() {
                        self.warned_not_utf8 = true;
                        tracing::warn!(
                            "datagram from {} is not UTF-8; written unchanged (use --format hex|json to see it safely)",
                            d.from
                        );
                    }
                    if !self.opts.null && d.payload.last() == Some(&b'\n') {
                        return Ok(());
                    }
                }
                out.write_all(end)
            }
            Format::Hex => {
                self.write_prefix(out, d)?;
                self.scratch.resize(HEXLOWER.encode_len(d.payload.len()), 0);
                HEXLOWER.encode_mut(d.payload, &mut self.scratch);
                self.scratch.extend_from_slice(end);
                out.write_all(&self.scratch)
            }
            Format::Json => self.write_json(out, d),
            Format::Dump => {
                // The addresses as the other formats render them, kept while they repeat.
                let from = self.from.get(d.from, render_addr);
                let to = self.to.get(d.to, render_addr);
                self.scratch.clear();
                dump::dump_record(&mut self.scratch, d.at, from, to, d.payload);
                out.write_all(&self.scratch)
            }
            Format::Pcap => {
                let (Some(from), Some(to)) = (d.from.ip(), d.to.ip()) else {
                    // listen refuses pcap with a Unix socket; nothing to write for one.
                    return Ok(());
                };
                self.scratch.clear();
                pcap::pcap_record(&mut self.scratch, d.at, from, to, d.payload);
                out.write_all(&self.scratch)
            }
        }
    }

    /// What a format writes before the first record: pcap's file header.
    pub fn begin<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        if self.opts.format == Format::Pcap {
            out.write_all(&pcap::pcap_header())?;
        }
        Ok(())
    }

    /// `-T` and `-s` before a text or hex record.
    fn write_prefix<W: Write>(&mut self, out: &mut W, d: &Datagram<'_>) -> io::Result<()> {
        if self.opts.timestamp {
            out.write_all(self.ts.get(&d.at, render_ts))?;
            out.write_all(b"\t")?;
        }
        if self.opts.source {
            out.write_all(self.from.get(d.from, render_addr))?;
            out.write_all(b"\t")?;
        }
        Ok(())
    }

    fn write_json<W: Write>(&mut self, out: &mut W, d: &Datagram<'_>) -> io::Result<()> {
        let s = &mut self.scratch;
        s.clear();
        s.extend_from_slice(b"{\"ts\":\"");
        s.extend_from_slice(self.ts.get(&d.at, render_ts));
        s.extend_from_slice(b"\",\"from\":");
        s.extend_from_slice(self.from_json.get(d.from, render_json_addr));
        s.extend_from_slice(b",\"to\":");
        s.extend_from_slice(self.to_json.get(d.to, render_json_addr));
        s.extend_from_slice(b",");
        match d.dir {
            Some(Dir::Forward) => s.extend_from_slice(b"\"dir\":\"forward\","),
            Some(Dir::Reply) => s.extend_from_slice(b"\"dir\":\"reply\","),
            None => {}
        }
        write!(s, "\"len\":{},", d.payload.len())?;
        match std::str::from_utf8(d.payload) {
            Ok(text) => {
                s.extend_from_slice(b"\"text\":\"");
                json_escape_into(s, text);
            }
            Err(_) => {
                s.extend_from_slice(b"\"base64\":\"");
                let at = s.len();
                s.resize(at + BASE64.encode_len(d.payload.len()), 0);
                BASE64.encode_mut(d.payload, &mut s[at..]);
            }
        }
        s.extend_from_slice(b"\"}\n");
        out.write_all(s)
    }
}

/// Splits a trailing `\n` or `\r\n` off a text payload (not with `-0`, where records
/// are not lines).
fn split_line_end(payload: &[u8], null: bool) -> (&[u8], bool) {
    if null {
        return (payload, false);
    }
    match payload {
        [body @ .., b'\r', b'\n'] => (body, true),
        [body @ .., b'\n'] => (body, true),
        _ => (payload, false),
    }
}

/// "1 datagram", "2 datagrams", "3 replies": counts in messages.
pub fn plural(n: u64, word: &str) -> String {
    match (n, word) {
        (1, _) => format!("1 {word}"),
        (_, "reply") => format!("{n} replies"),
        _ => format!("{n} {word}s"),
    }
}

/// A duration as people write it and as udpcat's flags take it: `500ms`, `1.5s`, `2s`,
/// `2m`, `90s`, `1h` (never humantime's `1s 500ms`).
pub fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    if nanos == 0 && secs > 0 && secs % 3600 == 0 {
        return format!("{}h", secs / 3600);
    }
    if nanos == 0 && secs > 0 && secs % 60 == 0 {
        return format!("{}m", secs / 60);
    }
    let (value, unit) = if secs == 0 {
        (format!("{:.3}", f64::from(nanos) / 1e6), "ms")
    } else {
        (format!("{:.3}", d.as_secs_f64()), "s")
    };
    let value = value.trim_end_matches('0').trim_end_matches('.');
    format!("{value}{unit}")
}

/// Characters that can drive a terminal: C0 controls but TAB and newline, DEL, C1 controls,
/// and the bidi overrides and isolates that reorder what is shown.
pub fn is_dangerous(c: char) -> bool {
    matches!(c, '\0'..='\x08' | '\x0b'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Writes `bytes` with dangerous characters as `\x1b` / `\u{202e}` and bytes that are not
/// UTF-8 as `\xff`; with `newlines`, a newline too (as `\n`). Plain text passes in one write.
pub fn write_escaped<W: Write>(out: &mut W, bytes: &[u8], newlines: bool) -> io::Result<()> {
    if bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || b == b'\t' || (b == b'\n' && !newlines))
    {
        return out.write_all(bytes);
    }
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let mut run = 0;
        for (i, c) in valid.char_indices() {
            if c == '\n' && newlines {
                out.write_all(&valid.as_bytes()[run..i])?;
                out.write_all(b"\\n")?;
                run = i + 1;
            } else if is_dangerous(c) {
                out.write_all(&valid.as_bytes()[run..i])?;
                if (c as u32) < 0x80 {
                    write!(out, "\\x{:02x}", c as u32)?;
                } else {
                    write!(out, "\\u{{{:x}}}", c as u32)?;
                }
                run = i + c.len_utf8();
            }
        }
        out.write_all(&valid.as_bytes()[run..])?;
        for b in chunk.invalid() {
            write!(out, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

/// A message line for stderr: what `write_escaped` escapes, and newlines and TABs too, so an
/// argument or file name quoted in it can neither drive the terminal nor forge a second
/// `udpcat: error:` line.
pub fn escape_message(text: impl AsRef<[u8]>) -> String {
    let mut out = String::new();
    for chunk in text.as_ref().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x80 && c.is_control() => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if is_dangerous(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// JSON string body: `"`, `\` and every dangerous character as escapes, so the line is
/// safe on a terminal and still decodes to the payload.
fn json_escape_into(out: &mut Vec<u8>, text: &str) {
    let mut run = 0;
    for (i, c) in text.char_indices() {
        let esc: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\t' => Some(b"\\t"),
            '\r' => Some(b"\\r"),
            _ => None,
        };
        if esc.is_none() && !is_dangerous(c) {
            continue;
        }
        out.extend_from_slice(&text.as_bytes()[run..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            // All dangerous characters are in the Basic Multilingual Plane.
            None => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        run = i + c.len_utf8();
    }
    out.extend_from_slice(&text.as_bytes()[run..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn render(opts: Options, payload: &[u8]) -> Vec<u8> {
        let from = Addr::Ip("192.0.2.1:5000".parse().unwrap());
        let to = Addr::Ip("127.0.0.1:9000".parse().unwrap());
        let d = Datagram {
            payload,
            from: &from,
            to: &to,
            at: SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456),
            dir: None,
        };
        let mut out = Vec::new();
        Printer::new(opts).write(&mut out, &d).unwrap();
        out
    }

    fn text() -> Options {
        Options::default()
    }

    #[test]
    fn text_adds_one_newline_unless_there_is_one() {
        assert_eq!(render(text(), b"hi"), b"hi\n");
        assert_eq!(render(text(), b"hi\n"), b"hi\n");
        assert_eq!(render(text(), b"hi\r\n"), b"hi\r\n");
        assert_eq!(render(text(), b""), b"\n");
        assert_eq!(
            render(
                Options {
                    null: true,
                    ..text()
                },
                b"a\nb\n"
            ),
            b"a\nb\n\0"
        );
        assert_eq!(
            render(
                Options {
                    source: true,
                    ..text()
                },
                b"x"
            ),
            b"192.0.2.1:5000\tx\n"
        );
    }

    #[test]
    fn raw_and_hex() {
        let raw = Options {
            format: Format::Raw,
            ..text()
        };
        assert_eq!(render(raw, b"\x00\xff\n"), b"\x00\xff\n");
        assert_eq!(render(raw, b""), b"");
        let hex = Options {
            format: Format::Hex,
            ..text()
        };
        assert_eq!(render(hex, b"\xde\xad\n"), b"dead0a\n");
        assert_eq!(
            render(
                Options {
                    source: true,
                    ..hex
                },
                b""
            ),
            b"192.0.2.1:5000\t\n"
        );
    }

    #[test]
    fn json_has_every_field_and_decodes_back() {
        let json = Options {
            format: Format::Json,
            ..text()
        };
        let line = render(json, "é\"\\\u{1b}[2J\u{202e}".as_bytes());
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["from"], "192.0.2.1:5000");
        assert_eq!(v["to"], "127.0.0.1:9000");
        assert_eq!(v["len"], 11);
        assert_eq!(v["text"], "é\"\\\u{1b}[2J\u{202e}");
        assert!(!line.contains(&0x1b), "ESC must be escaped even in json");
        assert!(line.windows(3).all(|w| w != "\u{202e}".as_bytes()));
        let bin: serde_json::Value = serde_json::from_slice(&render(json, b"\xff\x00")).unwrap();
        assert_eq!(bin["base64"], "/wA=");
        assert!(bin.get("text").is_none());
    }

    #[test]
    fn terminal_escaping_neutralises_attacks() {
        let tty = Options {
            escape: true,
            ..text()
        };
        let cases: [(&[u8], &str); 8] = [
            (b"plain text\twith tab", "plain text\twith tab\n"),
            (b"\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07\n"),
            (b"\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H\n"),
            ("a\u{202e}b\u{2066}".as_bytes(), "a\\u{202e}b\\u{2066}\n"),
            ("\u{9b}31m".as_bytes(), "\\u{9b}31m\n"),
            (b"bad \xff byte\x7f", "bad \\xff byte\\x7f\n"),
            (b"line\r\n", "line\n"),
            (b"over\rwrite", "over\\x0dwrite\n"),
        ];
        for (payload, shown) in cases {
            assert_eq!(
                String::from_utf8(render(tty, payload)).unwrap(),
                shown,
                "{payload:?}"
            );
        }
        assert_eq!(
            escape_message(b"caf\xc3\xa9 \x1b \xff"),
            "caf\u{e9} \\x1b \\xff"
        );
        assert_eq!(
            escape_message("port 'a\nudpcat: error: x'"),
            "port 'a\\nudpcat: error: x'"
        );
        assert_eq!(
            escape_message("\u{1b}[2J\t\u{202e}é"),
            "\\x1b[2J\\t\\u{202e}é"
        );
        assert_eq!(escape_message("plain"), "plain");
    }

    #[test]
    fn durations_read_as_typed() {
        use std::time::Duration;
        for (d, shown) in [
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_millis(2001), "2.001s"),
        ] {
            assert_eq!(duration(d), shown);
        }
    }

    #[test]
    fn with_source_on_a_terminal_a_record_is_one_line() {
        let tty_source = Options {
            escape: true,
            source: true,
            ..text()
        };
        assert_eq!(
            String::from_utf8(render(tty_source, b"a\nfake 1.2.3.4:5\tX\n")).unwrap(),
            "192.0.2.1:5000\ta\\nfake 1.2.3.4:5\tX\n"
        );
        // Without -s nobody is impersonated: lines stay lines.
        let tty = Options {
            escape: true,
            ..text()
        };
        assert_eq!(render(tty, b"a\nb\n"), b"a\nb\n");
    }

    proptest! {
        #[test]
        fn escaped_output_has_no_dangerous_character(payload in proptest::collection::vec(any::<u8>(), 0..100)) {
            let out = render(Options { escape: true, ..text() }, &payload);
            let s = String::from_utf8(out).expect("escaped output is UTF-8");
            prop_assert!(!s.chars().any(is_dangerous));
        }

        #[test]
        fn json_decodes_to_the_payload(payload in proptest::collection::vec(any::<u8>(), 0..100)) {
            let line = render(Options { format: Format::Json, ..text() }, &payload);
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            let back = match (v["text"].as_str(), v["base64"].as_str()) {
                (Some(t), None) => t.as_bytes().to_vec(),
                (None, Some(b)) => BASE64.decode(b.as_bytes()).unwrap(),
                _ => panic!("exactly one of text/base64: {v}"),
            };
            prop_assert_eq!(back, payload.clone());
            prop_assert_eq!(v["len"].as_u64(), Some(payload.len() as u64));
        }
    }
}
