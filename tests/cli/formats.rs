//! `listen` output formats: text, `-0`, raw, hex, json, `-s`, whole large datagrams, the
//! non-UTF-8 warning in a pipe and escaping on a terminal.

use crate::util::*;

/// Start `udpcat listen ARGS 127.0.0.1:0`, send `msgs` from one socket, finish.
fn listen_and_send(args: &[&str], msgs: &[&[u8]]) -> (Run, Vec<std::net::SocketAddr>, String) {
    let mut full = args.to_vec();
    let count = msgs.len().to_string();
    full.extend(["-c", &count, "127.0.0.1:0"]);
    let l = spawn_listen(&full, 1);
    let s = udp4();
    for m in msgs {
        send_to(&s, m, l.addr());
    }
    let addrs = l.addrs.clone();
    (l.finish(), addrs, local(&s))
}

#[test]
fn text_adds_a_newline_unless_the_payload_ends_in_one() {
    let (r, addrs, _) = listen_and_send(
        &[],
        &[b"plain", b"lf\n", b"crlf\r\n", b"two lf\n\n", b"cr only\r"],
    );
    r.check(
        0,
        bytes("plain\nlf\ncrlf\r\ntwo lf\n\ncr only\r\n"),
        ready_then(&addrs, vec![]),
    );
}

#[test]
fn empty_datagram_is_a_record() {
    let (r, addrs, _) = listen_and_send(&[], &[b"before", b"", b"after"]);
    r.check(0, bytes("before\n\nafter\n"), ready_then(&addrs, vec![]));
}

#[test]
fn null_ends_each_record_with_nul_and_no_newline_rule() {
    let (r, addrs, _) = listen_and_send(&["-0"], &[b"a\n", b"b", b""]);
    r.check(0, bytes("a\n\0b\0\0"), ready_then(&addrs, vec![]));
}

#[test]
fn raw_writes_the_payload_bytes_exactly() {
    let (r, addrs, _) = listen_and_send(
        &["-f", "raw"],
        &[b"line\n", b"\x00\xff\x1b", b"", b"no newline"],
    );
    // Raw is for bytes: no non-UTF-8 warning, nothing added.
    r.check(
        0,
        bytes(b"line\n\x00\xff\x1bno newline"),
        ready_then(&addrs, vec![]),
    );
}

#[test]
fn hex_is_lowercase_one_line_per_datagram() {
    let (r, addrs, _) =
        listen_and_send(&["--format", "hex"], &[b"\x00\xffAB", b"\xab\xcd\xef", b""]);
    r.check(0, bytes("00ff4142\nabcdef\n\n"), ready_then(&addrs, vec![]));
}

#[test]
fn source_prefixes_text_and_hex_records_with_sender_and_tab() {
    let (r, addrs, from) = listen_and_send(&["-s"], &[b"hi", b"there\n"]);
    r.check(
        0,
        bytes(format!("{from}\thi\n{from}\tthere\n")),
        ready_then(&addrs, vec![]),
    );
    let (r, addrs, from) = listen_and_send(&["--source", "-f", "hex"], &[b"\x01\x02"]);
    r.check(
        0,
        bytes(format!("{from}\t0102\n")),
        ready_then(&addrs, vec![]),
    );
}

fn is_rfc3339_utc_micros(ts: &str) -> bool {
    // 2026-11-23T22:49:11.123456Z
    let b = ts.as_bytes();
    b.len() == 27
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn json_has_ts_from_to_len_and_text_or_base64() {
    let msgs: [&[u8]; 4] = [
        b"hello",
        b"\x00\xff\xfeA",
        b"",
        b"\x1b[2J\"q\\\t\xc2\x9b\xe2\x80\xae",
    ];
    let (r, addrs, from) = listen_and_send(&["-f", "json"], &msgs);
    let to = addrs[0].to_string();
    r.check(
        0,
        with(move |out| {
            let text =
                std::str::from_utf8(out).map_err(|e| format!("json output not UTF-8: {e}"))?;
            let got: Vec<&str> = text.lines().collect();
            if got.len() != msgs.len() || !text.ends_with('\n') {
                return Err(format!("{} newline-terminated lines", msgs.len()));
            }
            for (l, m) in got.iter().zip(msgs) {
                if l.bytes().any(|c| c < 0x20 || c == 0x7f) {
                    return Err(format!("raw control byte in json line {l:?}"));
                }
                if l.contains('\u{9b}') || l.contains('\u{202e}') {
                    return Err(format!("unescaped C1/bidi character in {l:?}"));
                }
                let v: serde_json::Value =
                    serde_json::from_str(l).map_err(|e| format!("{l:?}: {e}"))?;
                let ts = v["ts"].as_str().unwrap_or_default();
                if !is_rfc3339_utc_micros(ts) {
                    return Err(format!("ts {ts:?} is not RFC 3339 UTC with microseconds"));
                }
                if v["from"] != from.as_str() || v["to"] != to.as_str() {
                    return Err(format!("from/to should be {from}/{to} in {l}"));
                }
                if v["len"] != m.len() {
                    return Err(format!("len should be {} in {l}", m.len()));
                }
                let pos: Vec<Option<usize>> = ["\"ts\"", "\"from\"", "\"to\"", "\"len\""]
                    .iter()
                    .map(|k| l.find(k))
                    .collect();
                if pos.iter().any(Option::is_none) || !pos.is_sorted() {
                    return Err(format!("keys should come in order ts, from, to, len: {l}"));
                }
                match std::str::from_utf8(m) {
                    Ok(t) if v["text"] == t && v.get("base64").is_none() => {}
                    Ok(t) => return Err(format!("text should be {t:?} (and no base64): {l}")),
                    Err(_) if v["base64"] == "AP/+QQ==" && v.get("text").is_none() => {}
                    Err(_) => return Err(format!("base64 should be \"AP/+QQ==\" (no text): {l}")),
                }
            }
            Ok(())
        }),
        ready_then(&addrs, vec![]),
    );
}

#[test]
fn largest_ipv4_datagram_arrives_whole() {
    let big = pattern(65507);
    let l = spawn_listen(&["-f", "raw", "-c", "1", "127.0.0.1:0"], 1);
    send_to(&udp4(), &big, l.addr());
    l.finish_check(0, bytes(&big));
}

#[test]
fn largest_ipv6_datagram_arrives_whole() {
    let big = pattern(65527);
    let l = spawn_listen(&["-f", "raw", "-c", "1", "[::1]:0"], 1);
    send_to(&udp6(), &big, l.addr());
    l.finish_check(0, bytes(&big));
}

#[test]
fn non_utf8_into_a_pipe_passes_unchanged_with_one_warning() {
    let (r, addrs, from) = listen_and_send(&[], &[b"ok", b"a\xffb", b"\xfe\n", b"fine"]);
    r.check(
        0,
        bytes(b"ok\na\xffb\n\xfe\nfine\n"),
        ready_then(
            &addrs,
            vec![line(&[
                "udpcat: warning:",
                &from,
                "not UTF-8",
                "--format hex|json",
            ])],
        ),
    );
}

#[test]
fn terminal_output_escapes_what_could_drive_the_terminal() {
    let msgs: [&[u8]; 10] = [
        b"plain text\twith a tab and back\\slash",
        b"\x1b[31mred\x1b[0m",
        b"\x1b]52;c;aGVsbG8=\x07",
        "abc\u{202e}fed \u{2066}iso\u{2069}".as_bytes(),
        b"a\xffb",
        b"del\x7f c1\xc2\x9b bell\x07 nul\x00",
        b"crlf line\r\n",
        b"lf line\n",
        b"over\rwrite\x08\x08",
        "unicode caf\u{e9} \u{1f600}".as_bytes(),
    ];
    let want: Vec<u8> = [
        "plain text\twith a tab and back\\slash\n",
        "\\x1b[31mred\\x1b[0m\n",
        "\\x1b]52;c;aGVsbG8=\\x07\n",
        "abc\\u{202e}fed \\u{2066}iso\\u{2069}\n",
        "a\\xffb\n",
        "del\\x7f c1\\u{9b} bell\\x07 nul\\x00\n",
        "crlf line\n",
        "lf line\n",
        "over\\x0dwrite\\x08\\x08\n",
        "unicode caf\u{e9} \u{1f600}\n",
    ]
    .concat()
    .into_bytes();
    let count = msgs.len().to_string();
    let l = spawn_listen_cmd(under_pty(&["listen", "-c", &count, "127.0.0.1:0"]), 1);
    let s = udp4();
    for m in msgs {
        send_to(&s, m, l.addr());
    }
    let addrs = l.addrs.clone();
    l.finish().check(
        0,
        with(move |out| {
            let got = pty_bytes(out)?;
            // A trailing CR LF is a line end: shown as CR LF or as LF, never as `\x0d`.
            let crlf_kept = String::from_utf8_lossy(&want)
                .replace("crlf line\n", "crlf line\r\n")
                .into_bytes();
            if got == want || got == crlf_kept {
                Ok(())
            } else {
                Err(format!(
                    "the terminal should show:{}\n  but got:{}",
                    show(&want),
                    show(&got)
                ))
            }
        }),
        ready_then(&addrs, vec![]),
    );
}
