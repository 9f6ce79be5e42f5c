//! Capture formats against real tools nobody here wrote: captures made by tcpdump and tshark
//! (dumpcap) read back by `udpcat::replay` byte for byte; `udpcat::pcap`'s records read by
//! tcpdump and tshark with their checksums checked; `udpcat::dump` against `hexdump -C`.
//!
//! Each capture happens in a network namespace of its own (`unshare --net`), whose loopback
//! carries only the test's datagrams: counts are exact, ports fixed, and the loopback's MTU
//! can be lowered so the kernel itself fragments. The sender is a python3 script run inside
//! with `nsenter`. Needs root, tcpdump, tshark (with editcap), hexdump (bsdextrautils),
//! unshare and nsenter (util-linux), iproute2 and python3; a missing tool fails the test,
//! naming its package.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use udpcat::replay::{Counts, Datagram, Format, Reader};

use crate::util::*;

/// Fails the test when `tool` is not installed, naming the Debian package that has it.
#[track_caller]
fn need(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is not installed; these tests need it: apt-get install {package}"
    );
}

/// Runs `cmd` with `input` on stdin to the end; panics with its output when it fails.
#[track_caller]
fn must(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A capture tool running in a fresh network namespace, ready (it said `ready`).
struct Sniffer {
    proc: Proc,
}

impl Sniffer {
    /// `unshare --net`, loopback up with `mtu`, then `cmd` in its place; waits for the line
    /// with `ready` on stderr.
    fn start(mtu: u32, cmd: &str, ready: &str) -> Sniffer {
        need("unshare", "util-linux");
        need("ip", "iproute2");
        let mut c = Command::new("unshare");
        c.args([
            "--net",
            "sh",
            "-c",
            &format!("ip link set lo up mtu {mtu} && exec {cmd}"),
        ]);
        let mut proc = Proc::spawn(c);
        loop {
            match proc.read_stderr_line() {
                Some(line) if line.contains(ready) => break,
                Some(_) => {}
                None => panic!(
                    "{cmd} ended before saying {ready:?}: {}",
                    show(&proc.finish().stderr)
                ),
            }
        }
        Sniffer { proc }
    }

    /// Sends `datagrams` inside the namespace (see [`send_in`]).
    fn send(&self, datagrams: &[(u8, Vec<u8>)]) -> (SystemTime, SystemTime) {
        send_in(self.proc.pid().as_raw() as u32, datagrams)
    }

    /// Waits for the tool to stop by itself (its `-c` count reached).
    fn finish(self) {
        let run = self.proc.finish();
        assert!(
            run.status.success() && !run.watchdog_fired,
            "{} failed with {:?}: {}",
            run.cmd,
            run.status,
            show(&run.stderr)
        );
    }
}

/// Sends each `(family, payload)` in the network namespace of process `pid`: from
/// 127.0.0.1:5000 or [::1]:5000 to port 9000 of the same address, each received before the
/// next is sent. Returns the times just before the first send and just after the last.
fn send_in(pid: u32, datagrams: &[(u8, Vec<u8>)]) -> (SystemTime, SystemTime) {
    need("python3", "python3");
    need("nsenter", "util-linux");
    let mut input = String::new();
    for (family, payload) in datagrams {
        input.push_str(&format!("{family} {}\n", hex(payload)));
    }
    let before = SystemTime::now();
    must(
        Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "python3", "-c"])
            .arg(SENDER),
        input.as_bytes(),
    );
    (before, SystemTime::now())
}

const SENDER: &str = r#"
import socket, sys
def pair(family, host):
    r = socket.socket(family, socket.SOCK_DGRAM); r.bind((host, 9000))
    s = socket.socket(family, socket.SOCK_DGRAM); s.bind((host, 5000))
    return host, s, r
pairs = {"4": pair(socket.AF_INET, "127.0.0.1"), "6": pair(socket.AF_INET6, "::1")}
for line in sys.stdin:
    family, data = line.split(" ")
    data = bytes.fromhex(data.strip())
    host, s, r = pairs[family]
    s.sendto(data, (host, 9000))
    assert r.recv(70000) == data
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The datagrams every capture test sends: empty, text, every byte value, a typical MTU's
/// worth, and the largest UDP payload of each family. On a loopback (MTU 65536) the largest
/// IPv6 one (65,575 bytes of IP) is sent in two fragments: see [`PACKETS`].
const PACKETS: usize = 9;

fn datagrams() -> Vec<(u8, Vec<u8>)> {
    vec![
        (4, Vec::new()),
        (4, b"hello".to_vec()),
        (4, (0..=255).collect()),
        (6, b"six".to_vec()),
        (4, pattern(1472)),
        (6, pattern(1452)),
        (4, pattern(65_507)),
        (6, pattern(65_527)),
    ]
}

fn read_file(path: &Path) -> (Vec<Datagram>, Counts, Format) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path:?}: {e}"));
    let mut reader =
        Reader::new(std::io::BufReader::new(file)).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut out = Vec::new();
    while let Some(d) = reader
        .next_datagram()
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
    {
        out.push(d);
    }
    (out, reader.counts(), reader.format())
}

/// The datagrams read are exactly those sent, in order, with their addresses, and stamped
/// within the time they were sent.
#[track_caller]
fn check_same(got: &[Datagram], sent: &[(u8, Vec<u8>)], window: (SystemTime, SystemTime)) {
    assert_eq!(got.len(), sent.len(), "datagrams read");
    let slack = Duration::from_millis(5);
    for (i, (d, (family, payload))) in got.iter().zip(sent).enumerate() {
        assert!(
            d.payload == *payload,
            "datagram {i}: {} bytes read, {} sent",
            d.payload.len(),
            payload.len()
        );
        let host = if *family == 4 { "127.0.0.1" } else { "[::1]" };
        assert_eq!(
            d.src,
            Some(format!("{host}:5000").parse().unwrap()),
            "datagram {i}"
        );
        assert_eq!(
            d.dst,
            Some(format!("{host}:9000").parse().unwrap()),
            "datagram {i}"
        );
        assert!(
            d.time + slack >= window.0 && d.time <= window.1 + slack,
            "datagram {i}: captured at {:?}, sent between {:?} and {:?}",
            d.time,
            window.0,
            window.1
        );
    }
}

fn link_type(path: &Path) -> u32 {
    let bytes = std::fs::read(path).unwrap();
    u32::from_le_bytes(bytes[20..24].try_into().unwrap())
}

/// `tcpdump -w` on loopback (Ethernet framing) and on `any` (Linux cooked v2), and the same
/// file converted to nanosecond pcap by editcap: read back byte-exact, with the addresses and
/// times of the datagrams sent.
#[test]
fn tcpdump_captures_read_back_byte_exact() {
    need("tcpdump", "tcpdump");
    need("editcap", "wireshark-common (comes with tshark)");
    let dir = scratch_dir("tcpdump");
    let sent = datagrams();
    for (iface, link) in [("lo", 1), ("any", 276)] {
        let file = dir.join(format!("{iface}.pcap"));
        let sniffer = Sniffer::start(
            65536,
            &format!(
                "tcpdump -i {iface} -n -U -c {PACKETS} -w {}",
                file.display()
            ),
            "listening on",
        );
        let window = sniffer.send(&sent);
        sniffer.finish();
        assert_eq!(link_type(&file), link, "{iface}: link type");
        let (got, counts, format) = read_file(&file);
        check_same(&got, &sent, window);
        assert_eq!(
            counts.skipped() + counts.incomplete,
            0,
            "{iface}: {counts:?}"
        );
        assert_eq!(
            format,
            Format::Pcap {
                nanos: false,
                big_endian: false
            }
        );

        let nanos = dir.join(format!("{iface}-ns.pcap"));
        must(
            Command::new("editcap")
                .args(["-F", "nsecpcap"])
                .arg(&file)
                .arg(&nanos),
            b"",
        );
        let (again, _, format) = read_file(&nanos);
        assert_eq!(again, got, "{iface}: nanosecond pcap");
        assert!(matches!(format, Format::Pcap { nanos: true, .. }));
    }
}

/// tshark (dumpcap) on two interfaces at once: a pcapng file with two interface descriptions
/// (Ethernet and Linux cooked v1), nanosecond resolution, statistics blocks; each datagram is
/// in it twice, once per interface.
#[test]
fn tshark_pcapng_with_two_interfaces() {
    need("tshark", "tshark");
    let dir = scratch_dir("tshark");
    let file = dir.join("two.pcapng");
    let sent = datagrams();
    let sniffer = Sniffer::start(
        65536,
        &format!(
            "tshark -i lo -i any -n -c {} -w {}",
            2 * PACKETS,
            file.display()
        ),
        "Capture started",
    );
    let window = sniffer.send(&sent);
    sniffer.finish();
    let (got, counts, format) = read_file(&file);
    assert_eq!(format, Format::PcapNg);
    assert_eq!(counts.skipped() + counts.incomplete, 0, "{counts:?}");
    // Each datagram twice; the two copies of one need not be next to each other.
    let mut once: Vec<Datagram> = Vec::new();
    for d in got.iter() {
        if !once
            .iter()
            .any(|o| o.payload == d.payload && o.src == d.src)
        {
            once.push(d.clone());
        }
    }
    assert_eq!(got.len(), 2 * sent.len());
    check_same(&once, &sent, window);
    for d in &once {
        let copies = got
            .iter()
            .filter(|g| g.payload == d.payload && g.src == d.src)
            .count();
        assert_eq!(copies, 2);
    }
}

/// A loopback with a 1280-byte MTU: the kernel fragments the large datagrams of both
/// families; tcpdump captures the fragments; the reader puts them back together.
#[test]
fn kernel_fragments_are_reassembled() {
    need("tcpdump", "tcpdump");
    let dir = scratch_dir("fragments");
    let file = dir.join("frag.pcap");
    let sent = vec![
        (4, pattern(4096)),
        (6, pattern(4096)),
        (4, b"small".to_vec()),
        (4, pattern(65_507)),
    ];
    // IPv4: 1256 payload bytes per fragment (1280 - 20, rounded down to 8); IPv6: 1232.
    let packets = 4 + 4 + 1 + 53;
    let sniffer = Sniffer::start(
        1280,
        &format!("tcpdump -i lo -n -U -c {packets} -w {}", file.display()),
        "listening on",
    );
    let window = sniffer.send(&sent);
    sniffer.finish();
    let (got, counts, _) = read_file(&file);
    check_same(&got, &sent, window);
    assert_eq!(counts.packets, packets);
    assert_eq!(counts.skipped() + counts.incomplete, 0, "{counts:?}");
    // A reassembled datagram carries the number of the fragment that completed it.
    assert_eq!(got[0].index, 4);
    assert_eq!(got[2].index, 9);
}

/// Read as tcpdump writes it to a pipe (`tcpdump -U -w -`): each datagram comes out of the
/// reader as soon as tcpdump has written it, before the capture ends.
#[test]
fn a_live_capture_on_a_pipe_is_read_as_it_arrives() {
    need("tcpdump", "tcpdump");
    let mut c = Command::new("unshare");
    c.args([
        "--net",
        "sh",
        "-c",
        "ip link set lo up && exec tcpdump -i lo -n -U -c 3 -w -",
    ]);
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = c.spawn().expect("start tcpdump");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let child = Kill(child);
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert!(n > 0, "tcpdump ended before it was ready");
    }
    let pid = child.0.id();
    // A reader stuck on the pipe is freed by ending tcpdump (the test then fails).
    let (done, stop) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(WATCHDOG) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    let send = |payload: &[u8]| send_in(pid, &[(4, payload.to_vec())]);
    send(b"first");
    // tcpdump writes the file header with the first packet; the reader waits for it.
    let mut reader = Reader::new(stdout).unwrap();
    assert_eq!(reader.next_datagram().unwrap().unwrap().payload, b"first");
    send(b"second");
    assert_eq!(reader.next_datagram().unwrap().unwrap().payload, b"second");
    send(b"third");
    assert_eq!(reader.next_datagram().unwrap().unwrap().payload, b"third");
    // tcpdump stops after 3 packets: the end of the pipe is the end of the capture.
    assert!(reader.next_datagram().unwrap().is_none());
    let _ = done.send(());
    drop(child);
}

/// `udpcat::pcap` records as Wireshark and tcpdump see them: the right addresses, ports,
/// lengths and times, and every IPv4 header and UDP checksum verified as correct.
#[test]
fn pcap_writer_output_is_read_by_tshark_and_tcpdump() {
    need("tshark", "tshark");
    need("tcpdump", "tcpdump");
    let at = |n: u32| SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000 + u64::from(n), n);
    // From, to, payload, and the IP addresses Wireshark should show: IPv4-mapped addresses
    // are written as IPv4; a mixed pair as IPv6, the IPv4 end mapped.
    let records: Vec<(&str, &str, Vec<u8>, &str, &str)> = vec![
        (
            "192.0.2.1:5000",
            "127.0.0.1:9000",
            b"hi".to_vec(),
            "192.0.2.1",
            "127.0.0.1",
        ),
        (
            "[2001:db8::1]:40053",
            "[2001:db8::2]:40054",
            b"six".to_vec(),
            "2001:db8::1",
            "2001:db8::2",
        ),
        (
            "[::ffff:198.51.100.7]:40003",
            "198.51.100.8:65535",
            Vec::new(),
            "198.51.100.7",
            "198.51.100.8",
        ),
        (
            "10.0.0.1:40000",
            "10.0.0.2:40001",
            pattern(65_507),
            "10.0.0.1",
            "10.0.0.2",
        ),
        ("[::1]:40001", "[::1]:40002", pattern(65_527), "::1", "::1"),
        (
            "[fe80::1]:40009",
            "127.0.0.1:40010",
            pattern(1),
            "fe80::1",
            "::ffff:127.0.0.1",
        ),
        (
            "192.0.2.1:40007",
            "192.0.2.2:40008",
            pattern(1473),
            "192.0.2.1",
            "192.0.2.2",
        ),
    ];
    let mut file = udpcat::output::pcap::pcap_header().to_vec();
    for (i, (from, to, payload, _, _)) in records.iter().enumerate() {
        udpcat::output::pcap::pcap_record(
            &mut file,
            at(i as u32),
            from.parse().unwrap(),
            to.parse().unwrap(),
            payload,
        );
    }
    let dir = scratch_dir("pcap-writer");
    let path = dir.join("udpcat.pcap");
    std::fs::write(&path, &file).unwrap();

    let out = must(
        Command::new("tshark").arg("-r").arg(&path).args([
            "-n",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "frame.time_epoch",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "udp.length",
            "-e",
            "ip.checksum.status",
            "-e",
            "udp.checksum.status",
            "-e",
            "_ws.expert.severity",
        ]),
        b"",
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), records.len(), "tshark:\n{text}");
    for (i, (row, (from, to, payload, src, dst))) in rows.iter().zip(&records).enumerate() {
        let from: SocketAddr = from.parse().unwrap();
        let to: SocketAddr = to.parse().unwrap();
        let v4 = !row[1].is_empty();
        assert_eq!(v4, !src.contains(':'), "row {i}: {row:?}");
        let shown = if v4 {
            (row[1], row[3])
        } else {
            (row[2], row[4])
        };
        assert_eq!(shown, (*src, *dst), "row {i}: {row:?}");
        assert_eq!(row[5], from.port().to_string(), "row {i}");
        assert_eq!(row[6], to.port().to_string(), "row {i}");
        assert_eq!(row[7], (8 + payload.len()).to_string(), "row {i}");
        assert_eq!(
            row[0],
            format!("{}.{:09}", 1_700_000_000 + i, i),
            "row {i}: time"
        );
        // 1: Good (2 would be unverified, 0 bad); no IPv4 header in an IPv6 packet.
        assert_eq!(
            row[8],
            if v4 { "1" } else { "" },
            "row {i}: ip checksum {row:?}"
        );
        assert_eq!(row[9], "1", "row {i}: udp checksum {row:?}");
        // No expert info (malformed, bad checksum, ...) on any packet.
        assert_eq!(row[10], "", "row {i}: expert info {row:?}");
    }

    // tcpdump -vv checks the IPv4 header and UDP checksums and says when they are wrong.
    let out = must(
        Command::new("tcpdump").arg("-r").arg(&path).args([
            "-n",
            "-vv",
            "-tt",
            "--time-stamp-precision=nano",
        ]),
        b"",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("bad") && !text.contains("truncated") && !text.contains("malformed"),
        "tcpdump:\n{text}"
    );
    assert_eq!(
        text.matches("[udp sum ok]").count(),
        records.len(),
        "tcpdump:\n{text}"
    );
    assert!(
        text.contains("1700000000.000000000 IP (")
            && text.contains("192.0.2.1.5000 > 127.0.0.1.9000: [udp sum ok] UDP, length 2"),
        "tcpdump:\n{text}"
    );
    assert!(
        text.contains("2001:db8::1.40053 > 2001:db8::2.40054: [udp sum ok] UDP, length 3"),
        "tcpdump:\n{text}"
    );
}

/// `udpcat::dump` prints the payload exactly as `hexdump -C` does, byte for byte (but for
/// hexdump's last line, the bare total length), for lengths around every line boundary,
/// every byte value, and runs of identical lines that hexdump folds into `*`.
#[test]
fn dump_matches_hexdump_c_byte_for_byte() {
    need("hexdump", "bsdextrautils");
    let mut cases: Vec<Vec<u8>> = (0..=70).map(pattern).collect();
    cases.push((0..=255).collect());
    cases.push(vec![0; 64]);
    cases.push(vec![b'A'; 16 * 5 + 3]);
    cases.push([vec![0; 32], b"abc".to_vec(), vec![0; 13], vec![0; 16]].concat());
    cases.push([vec![7; 48], vec![1; 16], vec![7; 32]].concat());
    cases.push([vec![9; 16], vec![9; 8]].concat());
    cases.push(b"\x1b]52;c;aGk=\x07\x1b[2J\r\n\xc2\x9b\xe2\x80\xae".to_vec());
    let mut seed = 1u64;
    for n in [100, 1000, 4099] {
        cases.push(
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    // Mostly a few values, so identical lines happen.
                    [0u8, 0, 0, b'x', (seed >> 56) as u8][(seed >> 33) as usize % 5]
                })
                .collect(),
        );
    }
    cases.push(pattern(65_507));
    for payload in &cases {
        let out = must(Command::new("hexdump").arg("-C"), payload);
        let mut want = out.stdout;
        // hexdump's last line is the total length alone (none for empty input).
        if !payload.is_empty() {
            let last = want[..want.len() - 1]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            assert_eq!(&want[last..], format!("{:08x}\n", payload.len()).as_bytes());
            want.truncate(last);
        }
        let mut ours = Vec::new();
        udpcat::output::dump::hexdump_c(&mut ours, payload);
        assert!(
            ours == want,
            "payload of {} bytes:\nhexdump -C:\n{}\nudpcat:\n{}",
            payload.len(),
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&ours)
        );
        // The whole record: header line, the same lines, a blank line.
        let mut record = Vec::new();
        udpcat::output::dump::dump_record(
            &mut record,
            SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            "192.0.2.1:5000",
            "127.0.0.1:9000",
            payload,
        );
        let header = format!(
            "2023-11-14T22:13:20.123456Z 192.0.2.1:5000 > 127.0.0.1:9000 len {}\n",
            payload.len()
        );
        assert_eq!(record, [header.as_bytes(), &want, b"\n"].concat());
    }
}

// ---- through the udpcat binary: listen -f pcap / dump / -T, send --replay ----------------

/// A receiving socket that keeps every datagram and when it arrived (the test's clock).
/// `udpcat send --replay FILE OPTIONS SINK`: it must succeed saying nothing; the first `n`
/// payloads the sink got.
fn replay_quietly(
    sink: &UdpSocket4,
    file: &std::path::Path,
    options: &[&str],
    n: usize,
) -> Vec<Vec<u8>> {
    let addr = sink.addr();
    let mut args = vec!["send", "--replay", file.to_str().unwrap()];
    args.extend_from_slice(options);
    args.push(&addr);
    run(&args, b"").check(0, Expect::Empty, Expect::Empty);
    sink.take(n).into_iter().map(|(p, _)| p).collect()
}

fn sink4() -> UdpSocket4 {
    UdpSocket4(udp4())
}

struct UdpSocket4(std::net::UdpSocket);

impl UdpSocket4 {
    fn addr(&self) -> String {
        local(&self.0)
    }

    fn take(&self, n: usize) -> Vec<(Vec<u8>, std::time::Instant)> {
        (0..n)
            .map(|_| {
                let (p, _) = recv(&self.0);
                (p, std::time::Instant::now())
            })
            .collect()
    }
}

/// A capture written by tcpdump on `-i any` (Linux cooked v2), replayed by udpcat to a
/// sink: every datagram of either family, byte for byte, in order.
#[test]
fn a_tcpdump_capture_is_replayed_byte_exact() {
    need("tcpdump", "tcpdump");
    let dir = scratch_dir("replay-tcpdump");
    let sent = datagrams();
    let file = dir.join("any.pcap");
    let sniffer = Sniffer::start(
        65536,
        &format!("tcpdump -i any -n -U -c {PACKETS} -w {}", file.display()),
        "listening on",
    );
    sniffer.send(&sent);
    sniffer.finish();
    // Every payload goes to the (IPv4) sink in order, until the first that an IPv4
    // datagram cannot carry: that one stops the run, named by its packet number.
    let fits: Vec<Vec<u8>> = sent
        .iter()
        .map(|(_, p)| p.clone())
        .take_while(|p| p.len() <= 65_507)
        .collect();
    let sink = sink4();
    let out = udpcat(&[
        "send",
        "--replay",
        file.to_str().unwrap(),
        "--replay-port",
        "9000",
        "--speed",
        "max",
        &sink.addr(),
    ])
    .output()
    .expect("run udpcat");
    let got: Vec<Vec<u8>> = sink.take(fits.len()).into_iter().map(|(p, _)| p).collect();
    let lens = |v: &[Vec<u8>]| v.iter().map(Vec::len).collect::<Vec<_>>();
    assert!(
        got == fits,
        "payload sizes {:?}, want {:?}",
        lens(&got),
        lens(&fits)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    if fits.len() < sent.len() {
        assert_eq!(out.status.code(), Some(1));
        assert!(
            err.contains("more than one datagram to") && err.contains("packet "),
            "{err}"
        );
    } else {
        assert!(out.status.success(), "{err}");
    }
}

/// `listen -f pcap`: the file header comes out before any datagram (so Wireshark starts at
/// once), and tshark reads the records with good checksums and the real ports.
#[test]
fn listen_pcap_is_read_by_tshark_with_good_checksums() {
    need("tshark", "tshark");
    let mut l = spawn_listen(&["-f", "pcap", "-c", "3", "127.0.0.1:0"], 1);
    let header = l.p.read_stdout_exact(24);
    assert_eq!(
        &header[..4],
        &0xa1b2_3c4du32.to_le_bytes(),
        "nanosecond pcap magic"
    );
    assert_eq!(
        u32::from_le_bytes([header[20], header[21], header[22], header[23]]),
        101
    );
    let s = udp4();
    let from_port = s.local_addr().unwrap().port();
    for p in [&b"one"[..], b"", b"three"] {
        send_to(&s, p, l.addr());
    }
    let port = l.addr().port();
    let run = l.finish();
    assert_eq!(run.code(), 0);
    let dir = scratch_dir("listen-pcap");
    let file = dir.join("l.pcap");
    // stdout as a whole (what the test read of it included).
    assert!(run.stdout.starts_with(&header));
    std::fs::write(&file, &run.stdout).unwrap();
    let out = must(
        Command::new("tshark")
            .args([
                "-r",
                file.to_str().unwrap(),
                "-o",
                "udp.check_checksum:TRUE",
            ])
            .args([
                "-o",
                "ip.check_checksum:TRUE",
                "-T",
                "fields",
                "-E",
                "separator=,",
            ])
            .args(["-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.length"])
            .args(["-e", "udp.checksum.status", "-e", "ip.checksum.status"]),
        b"",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows,
        [
            format!("{from_port},{port},11,1,1"),
            format!("{from_port},{port},8,1,1"),
            format!("{from_port},{port},13,1,1"),
        ],
        "tshark's view (checksum status 1 = good)"
    );
}

/// pcap refuses a terminal (exit 1, saying why) rather than spraying binary on it.
#[test]
fn pcap_refuses_a_terminal() {
    let out = under_pty(&["listen", "-f", "pcap", "127.0.0.1:0"])
        .output()
        .expect("python3");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not for a terminal"));
}

#[test]
fn dump_and_timestamped_records() {
    let l = spawn_listen(&["-f", "dump", "-c", "1", "127.0.0.1:0"], 1);
    let s = udp4();
    send_to(&s, b"dump me\x00\xff", l.addr());
    let (me, at) = (local(&s), l.addr());
    let run = l.finish();
    let text = String::from_utf8_lossy(&run.stdout).into_owned();
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    assert!(head.ends_with(&format!(" {me} > {at} len 9")), "{text}");
    assert_eq!(
        lines.next(),
        Some("00000000  64 75 6d 70 20 6d 65 00  ff                       |dump me..|")
    );
    assert_eq!(lines.next(), Some(""));

    let l = spawn_listen(&["-T", "-s", "-c", "1", "127.0.0.1:0"], 1);
    let before = SystemTime::now() - Duration::from_micros(1);
    send_to(&s, b"stamped", l.addr());
    let after = SystemTime::now();
    let run = l.finish();
    let text = String::from_utf8_lossy(&run.stdout).into_owned();
    let fields: Vec<&str> = text.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 3, "{text}");
    let ts = humantime::parse_rfc3339(fields[0]).expect("an RFC 3339 time first");
    assert!(ts >= before && ts <= after, "{text}");
    assert_eq!(fields[1], me);
    assert_eq!(fields[2], "stamped");

    // -f hex records start with the time too.
    let l = spawn_listen(&["-T", "-f", "hex", "-c", "1", "127.0.0.1:0"], 1);
    let before = SystemTime::now() - Duration::from_micros(1);
    send_to(&s, b"ab", l.addr());
    let after = SystemTime::now();
    let text = String::from_utf8_lossy(&l.finish().stdout).into_owned();
    let (time, hex) = text
        .trim_end()
        .split_once('\t')
        .unwrap_or_else(|| panic!("a time, a tab and the hex: {text:?}"));
    let ts = humantime::parse_rfc3339(time).expect("an RFC 3339 time first");
    assert!(ts >= before && ts <= after, "{text}");
    assert_eq!(hex, "6162");
}

/// A capture with known gaps: replayed at the captured times, twice as fast, and at once.
#[test]
fn replay_keeps_the_captured_timing() {
    let dir = scratch_dir("replay-timing");
    let file = dir.join("gaps.pcap");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let from: SocketAddr = "192.0.2.1:5000".parse().unwrap();
    let to: SocketAddr = "192.0.2.2:9000".parse().unwrap();
    let mut pcap = udpcat::output::pcap::pcap_header().to_vec();
    for (i, ms) in [0u64, 200, 400].iter().enumerate() {
        udpcat::output::pcap::pcap_record(
            &mut pcap,
            t0 + Duration::from_millis(*ms),
            from,
            to,
            format!("d{i}").as_bytes(),
        );
    }
    std::fs::write(&file, &pcap).unwrap();
    for (speed, gap_ms) in [("1", 200.0), ("2", 100.0)] {
        let sink = sink4();
        let a = sink.addr();
        // Received as they arrive, while udpcat sends.
        let taker = std::thread::spawn(move || sink.take(3));
        let args = vec![
            "send",
            "--replay",
            file.to_str().unwrap(),
            "--speed",
            speed,
            &a,
        ];
        run(&args, b"").check(0, Expect::Empty, Expect::Empty);
        let got = taker.join().unwrap();
        let payloads: Vec<&[u8]> = got.iter().map(|(p, _)| p.as_slice()).collect();
        assert_eq!(payloads, [&b"d0"[..], b"d1", b"d2"]);
        for w in got.windows(2) {
            let gap = w[1].1.duration_since(w[0].1).as_secs_f64() * 1e3;
            // Never early; a loaded machine may be late, not by a whole gap.
            assert!(
                gap >= gap_ms * 0.9 && gap <= gap_ms * 1.9,
                "--speed {speed}: a gap of {gap:.1} ms, want about {gap_ms} ms"
            );
        }
    }
}

/// `--replay -` from a pipe (a live `tcpdump -w -`): each datagram goes out as soon as it
/// is read, not held back to be sent with the ones after it.
#[test]
fn replay_from_a_pipe_sends_each_datagram_as_it_is_read() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let from: SocketAddr = "192.0.2.1:5000".parse().unwrap();
    let to: SocketAddr = "192.0.2.2:9000".parse().unwrap();
    let sink = sink4();
    let mut p = Proc::spawn(udpcat(&[
        "send",
        "--replay",
        "-",
        "--speed",
        "max",
        &sink.addr(),
    ]));
    p.write_stdin(&udpcat::output::pcap::pcap_header());
    for i in 0..3 {
        let payload = format!("live {i}");
        let mut record = Vec::new();
        udpcat::output::pcap::pcap_record(&mut record, t0, from, to, payload.as_bytes());
        p.write_stdin(&record);
        // Received while the pipe is still open and udpcat waits for the next packet.
        assert_eq!(recv(&sink.0).0, payload.as_bytes());
    }
    p.finish().check(0, Expect::Empty, Expect::Empty);
}

/// --replay-port keeps one port, --loop repeats, json lines replay byte for byte, and a
/// damaged capture stops naming the packet after sending every datagram before it.
#[test]
fn replay_ports_loops_json_and_damage() {
    let dir = scratch_dir("replay-misc");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let a: SocketAddr = "192.0.2.1:5000".parse().unwrap();
    let mut pcap = udpcat::output::pcap::pcap_header().to_vec();
    for (i, port) in [9000u16, 53, 9000].iter().enumerate() {
        let to = SocketAddr::new(a.ip(), *port);
        udpcat::output::pcap::pcap_record(&mut pcap, t0, a, to, format!("p{i}").as_bytes());
    }
    let file = dir.join("ports.pcap");
    std::fs::write(&file, &pcap).unwrap();
    let sink = sink4();
    let got = replay_quietly(&sink, &file, &["--replay-port", "9000", "--loop", "2"], 4);
    assert_eq!(
        got,
        [
            b"p0".to_vec(),
            b"p2".to_vec(),
            b"p0".to_vec(),
            b"p2".to_vec()
        ]
    );
    assert!(drain(&sink.0).is_empty(), "port 53 was not kept out");

    // -v says what was skipped, --stats counts what went, and --rate replaces the captured
    // timing (the packets share one time: only the rate spaces them).
    let sink = sink4();
    let to = sink.addr();
    // Received as they arrive, while udpcat sends.
    let taker = std::thread::spawn(move || sink.take(2));
    run(
        &[
            "send",
            "--replay",
            file.to_str().unwrap(),
            "--replay-port",
            "9000",
            "--rate",
            "100",
            "--stats",
            "-v",
            &to,
        ],
        b"",
    )
    .check(
        0,
        Expect::Empty,
        with(|err| {
            let err = String::from_utf8_lossy(err);
            if !err.contains("2 of 3 packets were UDP datagrams sent") {
                return Err("-v should say 2 of 3 packets were sent".into());
            }
            if !err.contains("1 to other ports") {
                return Err("-v should say 1 packet went to another port".into());
            }
            if !err.contains("udpcat: sent 2 datagrams, 4 bytes in ") {
                return Err("--stats should count 2 datagrams, 4 bytes".into());
            }
            Ok(())
        }),
    );
    let got = taker.join().unwrap();
    let gap = got[1].1.duration_since(got[0].1);
    assert!(
        gap >= Duration::from_millis(9),
        "--rate 100 spaces the datagrams 10 ms apart; they came {gap:?} apart"
    );

    // Nothing listens at the destination: exit 4, saying so and what was sent.
    run(
        &[
            "send",
            "--replay",
            file.to_str().unwrap(),
            "--speed",
            "max",
            &format!("127.0.0.1:{}", free_port4()),
        ],
        b"",
    )
    .check(
        4,
        Expect::Empty,
        lines(vec![line(&["udpcat: error: ", " refused: ", " sent"])]),
    );

    // The json lines of listen -f json, binary payloads included.
    let l = spawn_listen(&["-f", "json", "-c", "2", "127.0.0.1:0"], 1);
    let s = udp4();
    send_to(&s, b"text", l.addr());
    send_to(&s, b"\x00\xffbin", l.addr());
    let json = l.finish().stdout;
    // Named like a pcap: the format is told by the content.
    let jfile = dir.join("listen-json.pcap");
    std::fs::write(&jfile, &json).unwrap();
    let got = replay_quietly(&sink4(), &jfile, &["--speed", "max"], 2);
    assert_eq!(got, [b"text".to_vec(), b"\x00\xffbin".to_vec()]);

    // Cut the last record short: two datagrams go, then an error naming packet 3.
    let damaged = dir.join("damaged.pcap");
    std::fs::write(&damaged, &pcap[..pcap.len() - 3]).unwrap();
    let sink = sink4();
    run(
        &[
            "send",
            "--replay",
            damaged.to_str().unwrap(),
            "--speed",
            "max",
            &sink.addr(),
        ],
        b"",
    )
    .check(
        1,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error: --replay",
            "packet 3",
            "2 datagrams sent",
        ])]),
    );
    assert_eq!(sink.take(2).len(), 2);
}

/// --replay into a Unix socket, and a relay's pcap holding both directions.
#[test]
fn replay_into_a_unix_socket_and_forward_in_pcap() {
    let dir = scratch_dir("replay-unix");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let a: SocketAddr = "192.0.2.1:5000".parse().unwrap();
    let mut pcap = udpcat::output::pcap::pcap_header().to_vec();
    udpcat::output::pcap::pcap_record(&mut pcap, t0, a, a, b"to unix");
    let file = dir.join("u.pcap");
    std::fs::write(&file, &pcap).unwrap();
    let path = dir.join("sink.sock");
    let u = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    u.set_read_timeout(Some(RECV_SAFETY)).unwrap();
    run(
        &[
            "send",
            "--replay",
            file.to_str().unwrap(),
            &format!("unix:{}", path.display()),
        ],
        b"",
    )
    .check(0, Expect::Empty, Expect::Empty);
    let mut buf = [0u8; 64];
    let n = u.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"to unix");

    // A relay to an echo: its pcap has the peer's datagram and the reply.
    need("tshark", "tshark");
    let echo = spawn_listen(&["--echo", "-c", "1", "127.0.0.1:0"], 1);
    let dest = echo.addr().to_string();
    let l = spawn_listen(
        &["-f", "pcap", "-c", "1", "--forward", &dest, "127.0.0.1:0"],
        1,
    );
    let (l_port, echo_port) = (l.addr().port(), echo.addr().port());
    let s = udp4();
    s.connect(l.addr()).unwrap();
    s.send(b"ask").unwrap();
    assert_eq!(recv(&s).0, b"ask");
    let run_l = l.finish();
    let _ = echo.finish();
    let pfile = dir.join("relay.pcap");
    std::fs::write(&pfile, &run_l.stdout).unwrap();
    let out = must(
        Command::new("tshark")
            .args([
                "-r",
                pfile.to_str().unwrap(),
                "-T",
                "fields",
                "-E",
                "separator=,",
            ])
            .args(["-e", "udp.srcport", "-e", "udp.dstport"]),
        b"",
    );
    // The peer's datagram to the relay, then DEST's reply to the relay's upstream socket,
    // each with its real ports.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows: Vec<&str> = text.lines().collect();
    let (peer, relay, dest_port) = (s.local_addr().unwrap().port(), l_port, echo_port);
    assert!(
        rows.len() == 2
            && rows[0] == format!("{peer},{relay}")
            && rows[1].starts_with(&format!("{dest_port},"))
            && rows[1] != format!("{dest_port},{relay}"),
        "want {peer}->{relay} then {dest_port}->the upstream socket: {rows:?}"
    );
}
