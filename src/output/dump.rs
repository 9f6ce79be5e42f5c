//! `listen -f dump`: for people. A header line per datagram (arrival time, sender, receiving
//! address, length), then the payload exactly as `hexdump -C` prints it (identical lines
//! folded into `*` as hexdump does), without hexdump's final offset-only line, then a blank
//! line. Only printable ASCII is ever written, so it is safe on any terminal.

use std::io::Write;
use std::time::SystemTime;

/// Appends one datagram's record to `out`:
///
/// ```text
/// 2023-11-14T22:13:20.123456Z 192.0.2.1:5000 > 127.0.0.1:9000 len 2
/// 00000000  68 69                                             |hi|
///
/// ```
///
/// `from` and `to` are shown as given (`Addr`'s display, say), with every byte outside
/// printable ASCII (a Unix socket's path can hold anything) written as `\xNN`. An empty payload has no hexdump lines.
pub fn dump_record(
    out: &mut Vec<u8>,
    at: SystemTime,
    from: impl AsRef<[u8]>,
    to: impl AsRef<[u8]>,
    payload: &[u8],
) {
    // humantime panics on times before 1970; a clock set that far back shows as the epoch.
    let at = at.max(SystemTime::UNIX_EPOCH);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{} ", humantime::format_rfc3339_micros(at));
    printable(out, from.as_ref());
    out.extend_from_slice(b" > ");
    printable(out, to.as_ref());
    let _ = writeln!(out, " len {}", payload.len());
    hexdump_c(out, payload);
    out.push(b'\n');
}

/// `hexdump -C` of `data`, without the final line that holds only the total length.
pub fn hexdump_c(out: &mut Vec<u8>, data: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut previous: Option<&[u8]> = None;
    let mut folding = false;
    for (n, line) in data.chunks(16).enumerate() {
        // A full line equal to the one before is folded, like hexdump without -v: one `*`
        // for the whole run.
        if line.len() == 16 && previous == Some(line) {
            if !folding {
                out.extend_from_slice(b"*\n");
                folding = true;
            }
            continue;
        }
        folding = false;
        previous = Some(line);
        let offset = n * 16;
        for shift in (0..8).rev() {
            out.push(HEX[(offset >> (shift * 4)) & 0xf]);
        }
        out.extend_from_slice(b"  ");
        for i in 0..16 {
            match line.get(i) {
                Some(&b) => {
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                    out.push(b' ');
                }
                None => out.extend_from_slice(b"   "),
            }
            if i == 7 {
                out.push(b' ');
            }
        }
        out.extend_from_slice(b" |");
        out.extend(
            line.iter()
                .map(|&b| if (0x20..0x7f).contains(&b) { b } else { b'.' }),
        );
        out.extend_from_slice(b"|\n");
    }
}

/// `text` with every byte outside printable ASCII as `\xNN`. (Addresses arrive already
/// escaped the way udpcat shows them everywhere, so a backslash is left as it is.)
fn printable(out: &mut Vec<u8>, text: &[u8]) {
    for &b in text {
        match b {
            0x20..0x7f => out.push(b),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn dump(payload: &[u8]) -> String {
        let mut out = Vec::new();
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        dump_record(&mut out, at, "192.0.2.1:5000", "127.0.0.1:9000", payload);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn header_line_then_hexdump_then_a_blank_line() {
        assert_eq!(
            dump(b"hi"),
            "2023-11-14T22:13:20.123456Z 192.0.2.1:5000 > 127.0.0.1:9000 len 2\n\
             00000000  68 69                                             |hi|\n\n"
        );
        assert_eq!(
            dump(b""),
            "2023-11-14T22:13:20.123456Z 192.0.2.1:5000 > 127.0.0.1:9000 len 0\n\n"
        );
    }

    #[test]
    fn repeated_lines_fold_into_one_star() {
        let mut p = vec![0u8; 64];
        p.extend_from_slice(b"abc");
        let mut out = Vec::new();
        hexdump_c(&mut out, &p);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n\
             *\n\
             00000040  61 62 63                                          |abc|\n"
        );
    }

    #[test]
    fn hostile_addresses_and_payloads_stay_printable() {
        let mut out = Vec::new();
        dump_record(
            &mut out,
            SystemTime::UNIX_EPOCH,
            "unix:/tmp/\x1b]52;c;aGk=\x07",
            "unix:/tmp/\u{202e}x",
            b"\x1b[2J\x9b\xff",
        );
        assert!(out.iter().all(|&b| b == b'\n' || (0x20..0x7f).contains(&b)));
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("unix:/tmp/\\x1b]52;c;aGk=\\x07 > unix:/tmp/\\xe2\\x80\\xaex len 6"));
    }

    proptest! {
        #[test]
        fn only_printable_ascii(payload in proptest::collection::vec(any::<u8>(), 0..200), from in ".*") {
            let mut out = Vec::new();
            dump_record(&mut out, SystemTime::UNIX_EPOCH, &from, "x", &payload);
            prop_assert!(out.iter().all(|&b| b == b'\n' || (0x20..0x7f).contains(&b)));
        }
    }
}
