//! Hex decoding (`send --hex`): any bytes decode without a panic to what a simple reference
//! decoder gives, or fail with a message that is safe to print; and any payload written the
//! way `listen -f hex` writes it (with any separators between bytes) decodes back exactly.
//!
//! Input layout: `[mode, data...]`. mode 0..=127: decode `data` as it is; otherwise encode
//! `data` as lowercase/uppercase hex with separators chosen by mode, then decode.

#![no_main]

use libfuzzer_sys::fuzz_target;
use udpcat::framing::{Encoding, Problem, decode_hex_in_place, finish_record};

#[path = "common/reference.rs"]
mod reference;
use reference::reference_hex as reference;

fuzz_target!(|input: &[u8]| {
    let [mode, data @ ..] = input else {
        return;
    };
    if *mode < 128 {
        let mut buf = data.to_vec();
        match (decode_hex_in_place(&mut buf), reference(data)) {
            (Ok(n), Some(want)) => assert_eq!(&buf[..n], &want[..]),
            (Err(msg), None) => {
                // Quoted on stderr after "bad hex: ": printable, one line.
                assert!(
                    !msg.chars().any(|c| c.is_control()),
                    "raw control character in {msg:?}"
                );
                assert!(!msg.is_empty());
            }
            (got, want) => panic!("decoder said {got:?}, reference {want:?} for {data:?}"),
        }
        // The record path: hex text, then the size limit.
        let mut rec = data.to_vec();
        match finish_record(&mut rec, Encoding::Hex, 16) {
            Ok(n) => assert!(n <= 16 && reference(data).is_some_and(|w| w == rec[..n])),
            Err(Problem::TooLarge { len, .. }) => {
                assert!(reference(data).is_some_and(|w| w.len() as u64 == len && len > 16))
            }
            Err(Problem::BadHex(_)) => assert!(reference(data).is_none()),
            Err(p) => panic!("hex record failed with {p:?}"),
        }
        return;
    }
    // Round trip: what `listen -f hex` writes (optionally with separators, as people paste
    // it) decodes back byte for byte.
    let seps: [&[u8]; 4] = [b"", b" ", b":", b"\t \r\n"];
    let sep = seps[usize::from(mode & 3)];
    let upper = mode & 4 != 0;
    let mut text = Vec::new();
    for (i, b) in data.iter().enumerate() {
        if i > 0 {
            text.extend_from_slice(sep);
        }
        let h = if upper {
            format!("{b:02X}")
        } else {
            format!("{b:02x}")
        };
        text.extend_from_slice(h.as_bytes());
    }
    if mode & 8 != 0 {
        // Leading and trailing separators are allowed too.
        text.splice(0..0, b" :".iter().copied());
        text.extend_from_slice(b": ");
    }
    let n = decode_hex_in_place(&mut text).expect("well-formed hex must decode");
    assert_eq!(&text[..n], data);
});
