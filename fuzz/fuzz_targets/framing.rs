//! stdin framing: any input, cut by any pattern of read sizes, in every split mode and
//! encoding, gives exactly the records a simple reference splitter gives, or stops at the
//! first bad record with the right error. Nothing is lost, nothing invented, no hang.
//!
//! Input layout: `[mode, param, r0, r1, r2, r3, data...]`
//! - mode bits 0-1: split (lines, NUL, whole, chunk); bits 2-3: encoding (UTF-8, binary,
//!   hex, binary); bits 4-7: the size limit (small limits reach the oversize paths, where a
//!   record outgrows the buffer and is read on to its end; 14 and 15 are the real IPv6 and
//!   IPv4 limits)
//! - param: the chunk size (1..=limit)
//! - r0..r3: read sizes, cycled (0 = the read is interrupted once, then retried)

#![no_main]

use std::io::{self, Read};

#[path = "common/reference.rs"]
mod reference;
use reference::reference_hex;

use libfuzzer_sys::fuzz_target;
use udpcat::framing::{
    Encoding, Framer, MAX_PAYLOAD_V4, MAX_PAYLOAD_V6, Problem, RecordError, Split,
    decode_hex_in_place,
};

/// A reader that hands out `data` in pieces of the given sizes.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    i: usize,
    interrupted: bool,
}

impl Read for Pieces<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = self.sizes[self.i % self.sizes.len()];
        self.i += 1;
        if want == 0 && !self.interrupted {
            self.interrupted = true;
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.interrupted = false;
        let n = usize::from(want).max(1).min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// What a record should become, by the contract, without the framer's buffering.
#[derive(Debug, PartialEq)]
enum Want {
    Payload(Vec<u8>),
    TooLarge(usize),
    NotUtf8,
    BadHex,
}

/// The raw records of `data`, split the simple way.
fn reference_records(data: &[u8], split: Split) -> Vec<&[u8]> {
    match split {
        Split::Whole => vec![data],
        Split::Chunk(n) => data.chunks(n).collect(),
        Split::Lines | Split::Null => {
            let delim = if split == Split::Lines { b'\n' } else { 0 };
            let mut out = Vec::new();
            let mut rest = data;
            while !rest.is_empty() {
                match rest.iter().position(|&b| b == delim) {
                    Some(i) => {
                        let mut rec = &rest[..i];
                        if split == Split::Lines {
                            rec = rec.strip_suffix(b"\r").unwrap_or(rec);
                        }
                        out.push(rec);
                        rest = &rest[i + 1..];
                    }
                    None => {
                        out.push(rest);
                        rest = &[];
                    }
                }
            }
            out
        }
    }
}

fn reference_finish(raw: &[u8], encoding: Encoding, max: usize) -> Want {
    let payload = match encoding {
        Encoding::Hex => match reference_hex(raw) {
            Some(p) => p,
            None => return Want::BadHex,
        },
        _ => raw.to_vec(),
    };
    if payload.len() > max {
        return Want::TooLarge(payload.len());
    }
    if encoding == Encoding::Utf8 && std::str::from_utf8(&payload).is_err() {
        return Want::NotUtf8;
    }
    Want::Payload(payload)
}

fn place(split: Split, number: usize) -> String {
    match split {
        Split::Lines => format!("stdin line {number}"),
        Split::Null | Split::Chunk(_) => format!("stdin record {number}"),
        Split::Whole => "stdin".to_string(),
    }
}

fuzz_target!(|input: &[u8]| {
    let [mode, param, r0, r1, r2, r3, data @ ..] = input else {
        return;
    };
    let sizes = [*r0, *r1, *r2, *r3];
    let max = match mode >> 4 {
        15 => MAX_PAYLOAD_V4,
        14 => MAX_PAYLOAD_V6,
        s => 1 + usize::from(s) * 5,
    };
    let split = match mode & 3 {
        0 => Split::Lines,
        1 => Split::Null,
        2 => Split::Whole,
        _ => Split::Chunk(1 + usize::from(*param) % max),
    };
    let encoding = match (mode >> 2) & 3 {
        0 => Encoding::Utf8,
        // `--hex` with `--chunk` is a usage error.
        2 if !matches!(split, Split::Chunk(_)) => Encoding::Hex,
        _ => Encoding::Binary,
    };

    let mut reader = Pieces {
        data,
        sizes: &sizes,
        i: 0,
        interrupted: false,
    };
    let mut framer = Framer::new(split, encoding, max);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut error: Option<RecordError> = None;
    let mut stuck = 0;
    'outer: loop {
        loop {
            match framer.next_record() {
                Ok(Some(range)) => {
                    assert!(
                        range.end <= framer.buf().len(),
                        "range {range:?} out of the buffer"
                    );
                    got.push(framer.buf()[range].to_vec());
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'outer;
                }
            }
        }
        if framer.is_finished() {
            break;
        }
        let n = framer
            .fill(&mut reader)
            .expect("the reader only fails with EINTR");
        if n == usize::MAX {
            stuck += 1;
            assert!(
                stuck < 3,
                "framer stuck: buffer full, no record and no error"
            );
        }
    }
    if error.is_some() {
        assert_eq!(framer.next_record(), Ok(None), "a record after the error");
    }

    let wanted: Vec<Want> = reference_records(data, split)
        .into_iter()
        .map(|raw| reference_finish(raw, encoding, max))
        .collect();
    let raw_records = reference_records(data, split);
    let first_bad = wanted.iter().position(|w| !matches!(w, Want::Payload(_)));

    // Every record before the first bad one, byte for byte.
    for (i, rec) in got.iter().enumerate() {
        match wanted.get(i) {
            Some(Want::Payload(p)) => assert_eq!(rec, p, "record {} differs", i + 1),
            other => panic!("record {} invented: got {rec:?}, wanted {other:?}", i + 1),
        }
    }

    match (error, first_bad) {
        (None, None) => assert_eq!(got.len(), wanted.len(), "records lost"),
        (None, Some(i)) => panic!("record {} should fail ({:?}) but did not", i + 1, wanted[i]),
        (Some(e), bad) => {
            let i = got.len();
            assert_eq!(
                e.place,
                place(split, i + 1),
                "error names the wrong record: {e}"
            );
            // The message is printed on stderr: it must not carry what could drive a terminal.
            let msg = e.to_string();
            assert!(
                !msg.chars().any(|c| c.is_control() && c != '\t'),
                "raw control character in {msg:?}"
            );
            // The bad record is read to its end, whatever its length: the error is exact.
            assert_eq!(bad, Some(i), "error {e} for a good record");
            match (&e.kind, &wanted[i]) {
                (Problem::TooLarge { len, max: m }, Want::TooLarge(real)) => {
                    assert!(
                        *len == *real as u64 && *m == max,
                        "{e}, record is {real} bytes"
                    )
                }
                (Problem::NotUtf8 { .. }, Want::NotUtf8) => {}
                // The words and column the whole record decoded at once would get.
                (Problem::BadHex(why), Want::BadHex) => {
                    let mut raw = raw_records[i].to_vec();
                    assert_eq!(decode_hex_in_place(&mut raw).err().as_ref(), Some(why));
                }
                (k, w) => panic!("error {k:?} but the record is {w:?}"),
            }
        }
    }
});
