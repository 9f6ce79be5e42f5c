//! The output formats, for any payload and every option: escaped text (what a terminal gets)
//! never carries a character that could drive the terminal; unescaped text and raw are the
//! payload byte for byte (plus the record end); hex decodes back to the payload (what
//! `send --hex` reads); json is one line that parses, has its keys in order, and whose
//! `text` or `base64` decodes back to the payload.
//!
//! Input layout: `[mode, addr, t0..t7, payload...]`
//! - mode bits 0-1: format; bit 2: `-0`; bit 3: `--source`; bit 4: terminal escaping
//! - addr: which sender/receiver addresses (IPv4, IPv6, scoped IPv6)
//! - t0..t7: the arrival time (microseconds, kept between 1970 and 9999)

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use data_encoding::BASE64;
use libfuzzer_sys::fuzz_target;
use udpcat::framing::decode_hex_in_place;
use udpcat::output::{Datagram, Format, Options, Printer, is_dangerous, write_escaped};

/// The contract's list, written out independently of `output::is_dangerous`: C0 controls but
/// TAB and LF, DEL, C1 controls, bidi overrides and isolates.
fn dangerous(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

const ADDRS: [&str; 4] = [
    "192.0.2.1:5000",
    "[2001:db8::1]:65535",
    "[fe80::1%2]:1",
    "0.0.0.0:0",
];

/// Checks escaped text: valid UTF-8, nothing dangerous.
fn assert_inert(out: &[u8], payload: &[u8]) {
    let text = std::str::from_utf8(out)
        .unwrap_or_else(|e| panic!("escaped output is not UTF-8 ({e}) for {payload:?}"));
    if let Some(c) = text.chars().find(|&c| dangerous(c)) {
        panic!("escaped output carries {c:?} for payload {payload:?}: {text:?}");
    }
}

fuzz_target!(|input: &[u8]| {
    let [mode, addr, t0, t1, t2, t3, t4, t5, t6, t7, payload @ ..] = input else {
        return;
    };
    let format = [Format::Text, Format::Raw, Format::Hex, Format::Json][usize::from(mode & 3)];
    let opts = Options {
        format,
        null: mode & 4 != 0,
        source: mode & 8 != 0,
        timestamp: false,
        escape: mode & 16 != 0,
    };
    let from_ip: SocketAddr = ADDRS[usize::from(addr & 3)].parse().unwrap();
    let to_ip: SocketAddr = ADDRS[usize::from((addr >> 2) & 3)].parse().unwrap();
    let (from, to) = (udpcat::addr::Addr::Ip(from_ip), udpcat::addr::Addr::Ip(to_ip));
    let micros = u64::from_le_bytes([*t0, *t1, *t2, *t3, *t4, *t5, *t6, *t7]);
    // Up to the end of year 9999, the last time RFC 3339 can show.
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(micros % 253_402_300_799_000_000);

    // The escaper alone, and its agreement with the contract's list.
    let mut esc = Vec::new();
    write_escaped(&mut esc, payload, false).unwrap();
    assert_inert(&esc, payload);
    // With newlines escaped too (-s on a terminal), the record is one line.
    let mut one_line = Vec::new();
    write_escaped(&mut one_line, payload, true).unwrap();
    assert!(!one_line.contains(&b'\n'), "a newline escaped with -s reached the terminal");
    if let Ok(s) = std::str::from_utf8(payload) {
        for c in s.chars() {
            assert_eq!(is_dangerous(c), dangerous(c), "is_dangerous({c:?})");
        }
        if !s.chars().any(dangerous) {
            assert_eq!(esc, payload, "safe text must pass unchanged");
        }
    }

    let mut out = Vec::new();
    Printer::new(opts)
        .write(
            &mut out,
            &Datagram {
                payload,
                from: &from,
                to: &to,
                at,
                dir: None,
            },
        )
        .unwrap();
    let end: &[u8] = if opts.null { b"\0" } else { b"\n" };
    let prefix = format!("{from}\t");
    let body = |out: &[u8]| -> Vec<u8> {
        match out.strip_prefix(prefix.as_bytes()) {
            Some(rest) if opts.source => rest.to_vec(),
            None if opts.source => panic!("--source record without the sender: {out:?}"),
            _ => out.to_vec(),
        }
    };

    match format {
        Format::Raw => assert_eq!(out, payload),
        // Not chosen above: dump and pcap have fuzz coverage of their own writers.
        Format::Dump | Format::Pcap => {}
        Format::Text if opts.escape => {
            let b = body(&out);
            // One record end at most, and everything before it inert.
            let inner = b
                .strip_suffix(end)
                .unwrap_or_else(|| panic!("text record without its end: {b:?}"));
            assert_inert(inner, payload);
            if opts.null {
                assert!(!inner.contains(&0));
            }
        }
        Format::Text => {
            let b = body(&out);
            let mut want = payload.to_vec();
            if opts.null || payload.last() != Some(&b'\n') {
                want.extend_from_slice(end);
            }
            assert_eq!(
                b, want,
                "text into a pipe must be the payload byte for byte"
            );
        }
        Format::Hex => {
            let b = body(&out);
            let mut hex = b.strip_suffix(end).expect("hex record end").to_vec();
            assert!(
                hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{hex:?}"
            );
            let n = decode_hex_in_place(&mut hex).expect("hex output must decode");
            assert_eq!(&hex[..n], payload);
        }
        Format::Json => {
            let line = out.strip_suffix(b"\n").expect("json ends with a newline");
            assert!(!line.contains(&b'\n'), "json record spans lines");
            assert_inert(line, payload);
            let text = std::str::from_utf8(line).expect("json is UTF-8");
            let v: serde_json::Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("json does not parse ({e}): {text}"));
            let obj = v.as_object().expect("json record is an object");
            // Keys in the documented order.
            let keys: Vec<usize> = ["\"ts\":", "\"from\":", "\"to\":", "\"len\":"]
                .iter()
                .map(|k| {
                    text.find(k)
                        .unwrap_or_else(|| panic!("{k} missing: {text}"))
                })
                .collect();
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "keys out of order: {text}"
            );
            assert_eq!(obj["from"], from.to_string());
            assert_eq!(obj["to"], to.to_string());
            assert_eq!(obj["len"], payload.len());
            assert_eq!(obj.len(), 5, "{text}");
            let ts = obj["ts"].as_str().expect("ts is a string");
            assert!(ts.ends_with('Z') && ts.len() == 27, "ts {ts}");
            match (obj.get("text"), obj.get("base64")) {
                (Some(t), None) => assert_eq!(t.as_str().unwrap().as_bytes(), payload),
                (None, Some(b)) => {
                    assert!(
                        std::str::from_utf8(payload).is_err(),
                        "UTF-8 sent as base64"
                    );
                    let decoded = BASE64.decode(b.as_str().unwrap().as_bytes()).unwrap();
                    assert_eq!(decoded, payload);
                }
                _ => panic!("json needs exactly one of text, base64: {text}"),
            }
        }
    }
});
