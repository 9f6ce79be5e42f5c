//! Micro-benchmarks of the hot paths: stdin framing (send), record formatting (listen), and
//! the capture formats (`-f dump`, `-f pcap`, and reading a capture for `--replay`).
//! `cargo bench` runs them; the end-to-end comparison with other tools is `bench/run`.

use std::hint::black_box;
use std::io::Read;
use std::time::SystemTime;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use udpcat::framing::{Encoding, Framer, MAX_PAYLOAD_V4, Split};
use udpcat::output::{Datagram, Format, Options, Printer};

/// `seq 1 100000`, the shape of the lines benchmark.
fn seq_lines() -> Vec<u8> {
    (1..=100_000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect()
}

fn frame_all(input: &[u8], split: Split, encoding: Encoding) -> usize {
    let mut reader = input;
    let mut framer = Framer::new(split, encoding, MAX_PAYLOAD_V4);
    let mut bytes = 0;
    loop {
        while let Ok(Some(r)) = framer.next_record() {
            bytes += r.len();
        }
        if framer.is_finished() {
            return bytes;
        }
        if framer.fill(&mut reader as &mut dyn Read).is_err() {
            return bytes;
        }
    }
}

fn framing(c: &mut Criterion) {
    let lines = seq_lines();
    let mut g = c.benchmark_group("framing");
    g.throughput(Throughput::Bytes(lines.len() as u64));
    g.bench_function("lines utf8 (seq 1..100000)", |b| {
        b.iter(|| frame_all(black_box(&lines), Split::Lines, Encoding::Utf8))
    });
    let hex: Vec<u8> = lines
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect();
    let hex_lines: Vec<u8> = hex
        .chunks(64)
        .flat_map(|c| c.iter().copied().chain([b'\n']))
        .collect();
    g.bench_function("lines hex", |b| {
        b.iter(|| frame_all(black_box(&hex_lines), Split::Lines, Encoding::Hex))
    });
    let bulk = vec![0x5au8; 4 << 20];
    g.throughput(Throughput::Bytes(bulk.len() as u64));
    g.bench_function("chunk 1472 (4 MiB)", |b| {
        b.iter(|| frame_all(black_box(&bulk), Split::Chunk(1472), Encoding::Binary))
    });
    g.finish();
}

fn formats(c: &mut Criterion) {
    let payloads: Vec<Vec<u8>> = (1..=10_000)
        .map(|i: u32| i.to_string().into_bytes())
        .collect();
    let from = udpcat::addr::Addr::Ip("127.0.0.1:40000".parse().unwrap_or_else(|_| unreachable!()));
    let to = udpcat::addr::Addr::Ip("127.0.0.1:9000".parse().unwrap_or_else(|_| unreachable!()));
    let at = SystemTime::now();
    let mut g = c.benchmark_group("format 10k short datagrams");
    g.throughput(Throughput::Elements(payloads.len() as u64));
    for (name, opts) in [
        ("text", Options::default()),
        (
            "text -s",
            Options {
                source: true,
                ..Options::default()
            },
        ),
        (
            "text on a terminal",
            Options {
                escape: true,
                ..Options::default()
            },
        ),
        (
            "raw",
            Options {
                format: Format::Raw,
                ..Options::default()
            },
        ),
        (
            "hex",
            Options {
                format: Format::Hex,
                ..Options::default()
            },
        ),
        (
            "json",
            Options {
                format: Format::Json,
                ..Options::default()
            },
        ),
    ] {
        let mut printer = Printer::new(opts);
        let mut out = Vec::with_capacity(1 << 20);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for p in &payloads {
                    let d = Datagram {
                        payload: p,
                        from: &from,
                        to: &to,
                        at,
                        dir: None,
                    };
                    let _ = printer.write(&mut out, &d);
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn capture(c: &mut Criterion) {
    let payloads: Vec<Vec<u8>> = (1..=10_000)
        .map(|i: u32| i.to_string().into_bytes())
        .collect();
    let from = "127.0.0.1:40000".parse().unwrap_or_else(|_| unreachable!());
    let to = "127.0.0.1:9000".parse().unwrap_or_else(|_| unreachable!());
    let at = SystemTime::now();
    let mut g = c.benchmark_group("capture 10k short datagrams");
    g.throughput(Throughput::Elements(payloads.len() as u64));
    let mut out = Vec::with_capacity(1 << 20);
    g.bench_function("write dump", |b| {
        b.iter(|| {
            out.clear();
            for p in &payloads {
                udpcat::output::dump::dump_record(
                    &mut out,
                    at,
                    "127.0.0.1:40000",
                    "127.0.0.1:9000",
                    p,
                );
            }
            black_box(out.len())
        })
    });
    g.bench_function("write pcap", |b| {
        b.iter(|| {
            out.clear();
            for p in &payloads {
                udpcat::output::pcap::pcap_record(&mut out, at, from, to, p);
            }
            black_box(out.len())
        })
    });
    let mut pcap = udpcat::output::pcap::pcap_header().to_vec();
    let mut json = Vec::new();
    let mut printer = Printer::new(Options {
        format: Format::Json,
        ..Options::default()
    });
    let (from_addr, to_addr) = (udpcat::addr::Addr::Ip(from), udpcat::addr::Addr::Ip(to));
    for p in &payloads {
        udpcat::output::pcap::pcap_record(&mut pcap, at, from, to, p);
        let d = Datagram {
            payload: p,
            from: &from_addr,
            to: &to_addr,
            at,
            dir: None,
        };
        let _ = printer.write(&mut json, &d);
    }
    for (name, file) in [("read pcap", &pcap), ("read json lines", &json)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                if let Ok(reader) = udpcat::replay::Reader::new(&file[..]) {
                    for d in reader.flatten() {
                        n += d.payload.len();
                    }
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, framing, formats, capture);
criterion_main!(benches);
