//! Segmentation offload: runs of equal-size datagrams leave `send` as one UDP_SEGMENT
//! message and reach `listen` as one coalesced UDP_GRO buffer, and every part of udpcat
//! still sees datagrams, one by one, with their own sizes and bytes. What a user notices:
//! records and counts are per datagram, peers without GRO get separate datagrams, and a
//! path that refuses segmented sends still gets everything.
//!
//! Coalesced buffers are made two ways: by `udpcat send` itself, and by a python3 sender
//! that sets UDP_SEGMENT on its own socket (so the receive side is tested against a sender
//! udpcat does not control).

use std::net::SocketAddr;
use std::process::Command;

use crate::util::*;

/// python3: sends one UDP_SEGMENT message of `sizes` (segment size: the first) from a
/// fresh socket to argv[1]:argv[2], segment i filled with byte `a` + i % 26, then receives
/// argv[4] replies and prints each as hex on a line.
const PY_GSO_SEND: &str = r#"
import socket, sys
host, port, sizes, replies = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
sizes = [int(n) for n in sizes.split(",")]
data = b"".join(bytes([97 + i % 26]) * n for i, n in enumerate(sizes))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, sizes[0])  # UDP_SEGMENT
s.settimeout(30)
s.sendto(data, (host, port))
for _ in range(replies):
    print(s.recv(65536).hex(), flush=True)
"#;

/// Segment i of [`PY_GSO_SEND`]'s message.
fn segment(i: usize, size: usize) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; size]
}

/// Runs [`PY_GSO_SEND`] to `to` and returns the replies it printed.
fn py_gso_send(to: SocketAddr, sizes: &[usize], replies: usize) -> Vec<Vec<u8>> {
    let sizes: Vec<String> = sizes.iter().map(|n| n.to_string()).collect();
    let out = Command::new("python3")
        .args([
            "-c",
            PY_GSO_SEND,
            &to.ip().to_string(),
            &to.port().to_string(),
            &sizes.join(","),
            &replies.to_string(),
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the python3 UDP_SEGMENT sender failed: {}",
        show(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| data_encoding::HEXLOWER.decode(l.as_bytes()).expect("hex"))
        .collect()
}

/// The (len, payload) of each json record.
fn records(out: &[u8]) -> Vec<(u64, Vec<u8>)> {
    json_lines(out)
        .iter()
        .map(|r| {
            let text = r["text"]
                .as_str()
                .expect("a text field")
                .as_bytes()
                .to_vec();
            (r["len"].as_u64().expect("a len field"), text)
        })
        .collect()
}

/// One coalesced buffer of 10 segments of 1000 bytes and a shorter last one: listen prints
/// 11 records with their own sizes and bytes, in order (not one 10,300-byte record).
#[test]
fn a_coalesced_buffer_is_printed_as_its_datagrams() {
    let mut sizes = vec![1000; 10];
    sizes.push(300);
    let l = spawn_listen(&["-f", "json", "-c", "11", "127.0.0.1:0"], 1);
    py_gso_send(l.addr(), &sizes, 0);
    let r = l.finish();
    let got = records(&r.stdout);
    let want: Vec<(u64, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (n as u64, segment(i, n)))
        .collect();
    assert_eq!(got.len(), want.len(), "{}", show(&r.stdout));
    assert!(got == want, "records differ from the segments sent");
    assert_eq!(r.status.code(), Some(0), "{}", show(&r.stderr));
}

/// `--count 4` stops after the fourth datagram of a 12-segment buffer, and `--stats` counts
/// datagrams and their bytes, not the buffer.
#[test]
fn count_and_stats_count_the_datagrams_of_a_coalesced_buffer() {
    let l = spawn_listen(&["--stats", "-c", "4", "127.0.0.1:0"], 1);
    py_gso_send(l.addr(), &[5; 12], 0);
    let addr = l.addr();
    l.finish().check(
        0,
        bytes("aaaaa\nbbbbb\nccccc\nddddd\n"),
        ready_then(
            &[addr],
            vec![line(&["udpcat: received 4 datagrams, 20 bytes in "])],
        ),
    );
}

/// `--exec` runs one command per datagram of a coalesced buffer, and each answer goes back;
/// with `--jobs 2` the rest of the buffer waits in udpcat for a free job, none lost.
#[test]
fn exec_answers_each_datagram_of_a_coalesced_buffer() {
    let l = spawn_listen(
        &[
            "--exec",
            "tr a-z A-Z",
            "-c",
            "5",
            "--jobs",
            "2",
            "127.0.0.1:0",
        ],
        1,
    );
    let mut replies = py_gso_send(l.addr(), &[3, 3, 3, 3, 2], 5);
    replies.sort();
    assert_eq!(
        replies,
        payloads([b"AAA", b"BBB", b"CCC", b"DDD", b"EE"]),
        "one answer per datagram"
    );
    let r = l.finish();
    assert_eq!(r.status.code(), Some(0), "{}", show(&r.stderr));
}

/// `--forward` relays each datagram of a coalesced buffer as its own datagram, whole and in
/// order, to a receiver without GRO.
#[test]
fn forward_relays_the_datagrams_of_a_coalesced_buffer() {
    let sink = udp4();
    let dest = sink.local_addr().unwrap().to_string();
    let l = spawn_listen(&["--forward", &dest, "-c", "20", "127.0.0.1:0"], 1);
    let mut sizes = vec![700; 19];
    sizes.push(1);
    py_gso_send(l.addr(), &sizes, 0);
    let got = recv_n(&sink, 20);
    let want: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| segment(i, n))
        .collect();
    assert!(got == want, "the sink got other datagrams than were sent");
    let r = l.finish();
    assert_eq!(r.status.code(), Some(0), "{}", show(&r.stderr));
}

/// `send --chunk` to a plain socket (no GRO): each chunk arrives as its own datagram, the
/// last one shorter. (41 datagrams fit a default receive buffer; the test reads after the
/// send ends.)
#[test]
fn chunks_reach_a_receiver_without_gro_as_separate_datagrams() {
    let sink = udp4();
    let to = sink.local_addr().unwrap().to_string();
    let input = pattern(40 * 1472 + 99);
    run(&["send", "--chunk", "1472", &to], &input).check(0, Expect::Empty, Expect::Empty);
    let got = recv_n(&sink, 41);
    let want: Vec<Vec<u8>> = input.chunks(1472).map(<[u8]>::to_vec).collect();
    assert!(got == want, "chunks differ from the input");
}

/// Lines of one length, then others: every line arrives as its own datagram at listen, in
/// order, byte for byte (runs of equal size travel as one segmented send).
#[test]
fn runs_of_equal_lines_arrive_as_the_lines_sent() {
    let l = spawn_listen(&["-c", "3000", "127.0.0.1:0"], 1);
    let input: String = (1..=3000).map(|i| format!("{}\n", i * 7)).collect();
    let to = l.addr().to_string();
    run(&["send", &to], input.as_bytes()).check(0, Expect::Empty, Expect::Empty);
    l.finish_check(0, bytes(input));
}

/// The sendmmsg and recvmmsg calls of `send --chunk 1000` of 64,000 bytes into `listen`, as
/// strace shows them: the 64 datagrams leave in at most 2 messages (runs of 32) and arrive
/// in at most 2 (one per run), where one datagram per message would take 64 each.
#[test]
fn equal_chunks_travel_as_a_few_segmented_messages() {
    let dir = scratch_dir("gso-strace");
    let (send_trace, listen_trace) = (dir.join("send"), dir.join("listen"));
    let mut cmd = Command::new("strace");
    cmd.args(["-qq", "-e", "trace=recvmmsg", "-o"])
        .arg(&listen_trace)
        .args([udpcat_path(), "listen", "-f", "raw", "-c", "64"])
        // Ends on its own if datagrams go missing (a killed strace leaves its tracee).
        .args(["--timeout", "20s", "127.0.0.1:0"]);
    cmd.env_remove("RUST_LOG");
    let l = spawn_listen_cmd(cmd, 1);
    let input = pattern(64_000);
    let out = Command::new("strace")
        .args(["-qq", "-e", "trace=sendmmsg", "-o"])
        .arg(&send_trace)
        .args([
            udpcat_path(),
            "send",
            "--chunk",
            "1000",
            &l.addr().to_string(),
        ])
        .stdin(std::fs::File::open(write_file(&dir, "in", &input)).unwrap())
        .output()
        .expect("run strace (apt-get install strace; .ci/run does)");
    assert!(out.status.success(), "{}", show(&out.stderr));
    let r = l.finish();
    assert_eq!(r.stdout, input, "listen printed other bytes than were sent");
    let messages = |trace: &std::path::Path| -> u64 {
        let text = std::fs::read_to_string(trace).expect("strace wrote its trace");
        text.lines()
            .filter_map(|l| l.rsplit_once(") = ")?.1.trim().parse::<u64>().ok())
            .sum()
    };
    let sent = messages(&send_trace);
    let received = messages(&listen_trace);
    assert!(
        (1..=2).contains(&sent),
        "64 datagrams should leave in 1-2 messages, took {sent}"
    );
    assert!(
        (1..=2).contains(&received),
        "64 datagrams should arrive in 1-2 messages, took {received}"
    );
}

/// Writes `data` to `dir/name` and returns the path.
fn write_file(dir: &std::path::Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write a scratch file");
    path
}
