//! `listen --forward DEST` (issue 13): a relay with one upstream socket per peer and DEST,
//! replies routed back to their own peer, a tee to several DESTs that a dead one cannot
//! hold up, idle expiry and eviction, both directions printed, --count with a grace period.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::util::*;

/// A destination that answers each datagram with `SOURCE|payload`, SOURCE being the address
/// it saw the datagram come from. Stops when dropped.
struct Dest {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<SocketAddr>>>,
}

impl Dest {
    fn start() -> Dest {
        let s = udp4();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = s.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65536];
            while !st.load(Ordering::SeqCst) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    seen.push(from);
                    let mut reply = format!("{from}|").into_bytes();
                    reply.extend_from_slice(&buf[..n]);
                    let _ = s.send_to(&reply, from);
                }
            }
            seen
        });
        Dest {
            addr,
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the destination; returns every source address it saw, in order.
    fn sources(mut self) -> Vec<SocketAddr> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }
}

impl Drop for Dest {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Splits a `SOURCE|payload` reply.
fn split(reply: &[u8]) -> (SocketAddr, Vec<u8>) {
    let bar = reply
        .iter()
        .position(|&b| b == b'|')
        .expect("SOURCE|payload");
    let src = std::str::from_utf8(&reply[..bar]).unwrap().parse().unwrap();
    (src, reply[bar + 1..].to_vec())
}

/// `-s` shows who sent each record: the peer for what it sent, DEST for a reply.
#[test]
fn source_shows_the_peer_and_dest_for_a_reply() {
    let dest = Dest::start();
    let l = spawn_listen(
        &[
            "-s",
            "-c",
            "1",
            "--forward",
            &dest.addr.to_string(),
            "127.0.0.1:0",
        ],
        1,
    );
    let s = client(l.addr());
    let reply = ask(&s, b"q");
    let (relay, _) = split(&reply);
    let run = l.finish();
    assert_eq!(run.code(), 0, "{}", show(&run.stderr));
    let peer = s.local_addr().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        format!("{peer}\tq\n{}\t{relay}|q\n", dest.addr)
    );
}

#[test]
fn each_peer_has_its_own_steady_upstream_and_gets_only_its_replies() {
    let dest = Dest::start();
    let to = dest.addr.to_string();
    let l = spawn_listen(&["-c", "6", "--forward", &to, "127.0.0.1:0"], 1);
    let (a, b) = (client(l.addr()), client(l.addr()));
    let mut upstream_of_a = Vec::new();
    let mut upstream_of_b = Vec::new();
    for i in 0..3 {
        let (src, payload) = split(&ask(&a, format!("a{i}").as_bytes()));
        assert_eq!(
            payload,
            format!("a{i}").as_bytes(),
            "a got someone else's reply"
        );
        upstream_of_a.push(src);
        let (src, payload) = split(&ask(&b, format!("b{i}").as_bytes()));
        assert_eq!(
            payload,
            format!("b{i}").as_bytes(),
            "b got someone else's reply"
        );
        upstream_of_b.push(src);
    }
    assert!(
        upstream_of_a.iter().all(|s| *s == upstream_of_a[0]),
        "a's upstream moved"
    );
    assert!(
        upstream_of_b.iter().all(|s| *s == upstream_of_b[0]),
        "b's upstream moved"
    );
    assert_ne!(
        upstream_of_a[0], upstream_of_b[0],
        "two peers share one upstream socket"
    );
    let run = l.finish();
    assert_eq!(run.code(), 0, "{}", show(&run.stderr));
}

/// Datagrams of every size, the empty one included, cross byte-exact both ways, and the
/// reply comes from the address the peer sent to.
#[test]
fn every_size_crosses_byte_exact_from_the_arrival_address() {
    let dest = Dest::start();
    let to = dest.addr.to_string();
    let mut l = spawn_listen(&["-f", "raw", "-c", "4", "--forward", &to, "0.0.0.0:0"], 1);
    let s = UdpSocket::bind("127.0.0.3:0").unwrap();
    s.set_read_timeout(Some(RECV_SAFETY)).unwrap();
    s.connect(format!("127.0.0.3:{}", l.addr().port())).unwrap();
    // The reply carries "SOURCE|" in front: the largest payload leaves room for it.
    for size in [0usize, 1, 1472, 65_000] {
        let payload = pattern(size);
        let reply = ask(&s, &payload);
        let (_, back) = split(&reply);
        assert_eq!(back, payload, "a {size}-byte datagram came back changed");
        // Both records, byte-exact, read as they come (a pipe holds only 64 KiB).
        let printed = l.p.read_stdout_exact(payload.len() + reply.len());
        assert_eq!(
            printed,
            [payload, reply].concat(),
            "the records of a {size}-byte datagram"
        );
    }
    let run = l.finish();
    assert_eq!(run.code(), 0, "{}", show(&run.stderr));
}

/// A tee: every DEST gets a copy; one that refuses holds up nothing and is counted.
#[test]
fn a_refusing_dest_neither_delays_nor_loses_what_goes_to_the_others() {
    let (one, two) = (Dest::start(), Dest::start());
    let dead = format!("127.0.0.1:{}", free_port4());
    let (d1, d2) = (one.addr.to_string(), two.addr.to_string());
    let l = spawn_listen(
        &[
            "-c",
            "20",
            "--stats",
            "--forward",
            &dead,
            "--forward",
            &d1,
            "--forward",
            &d2,
            "127.0.0.1:0",
        ],
        1,
    );
    let s = client(l.addr());
    for i in 0..20 {
        s.send(format!("m{i}").as_bytes()).unwrap();
    }
    // Two replies per datagram (one and two); none from the dead one.
    let replies = recv_n(&s, 40);
    let run = l.finish();
    assert_eq!(run.code(), 0, "{}", show(&run.stderr));
    let from_one = one.sources().len();
    let from_two = two.sources().len();
    assert_eq!(
        (from_one, from_two),
        (20, 20),
        "each live DEST gets every copy"
    );
    assert_eq!(replies.len(), 40);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        err.matches("refused what").count(),
        1,
        "one warning per peer for the refusing DEST: {err}"
    );
    assert!(
        err.contains(&format!("send errors: {dead} ")) && !err.contains(&format!("{dead} 0")),
        "--stats counts the dead DEST's errors: {err}"
    );
    assert!(
        err.contains(" forwarded, 40 replies relayed back; 1 peer (0 expired, 0 evicted);"),
        "--stats counts the replies relayed back and the one peer: {err}"
    );
}

/// --forward-idle closes a quiet peer's sockets (said at -v, counted); its next datagram
/// comes from a new upstream socket.
#[test]
fn an_idle_peer_is_closed_and_counted() {
    let dest = Dest::start();
    let to = dest.addr.to_string();
    let mut l = spawn_listen(
        &[
            "-v",
            "--stats",
            "--forward-idle",
            "100ms",
            "--forward",
            &to,
            "127.0.0.1:0",
        ],
        1,
    );
    let s = client(l.addr());
    let (first, _) = split(&ask(&s, b"one"));
    // Wait for the relay to say it closed the peer (the event itself, not a clock).
    loop {
        let line =
            l.p.read_stderr_line()
                .expect("stderr ended before the expiry line");
        if line.contains("--forward-idle") {
            assert!(line.contains("relay closed after 100ms"), "{line}");
            break;
        }
    }
    let (second, _) = split(&ask(&s, b"two"));
    assert_ne!(
        first, second,
        "after expiry the peer gets a new upstream socket"
    );
    l.p.signal(nix::sys::signal::Signal::SIGTERM);
    let run = l.finish();
    assert_eq!(run.code(), 143);
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("1 peer (1 expired, 0 evicted)")
            || String::from_utf8_lossy(&run.stderr).contains("2 peers (1 expired, 0 evicted)"),
        "{}",
        show(&run.stderr)
    );
}

/// One peer more than --max-peers closes the least recently active one.
#[test]
fn max_peers_evicts_the_least_recently_active() {
    let dest = Dest::start();
    let to = dest.addr.to_string();
    let l = spawn_listen(
        &[
            "-c",
            "4",
            "-v",
            "--stats",
            "--max-peers",
            "2",
            "--forward",
            &to,
            "127.0.0.1:0",
        ],
        1,
    );
    let (a, b, c) = (client(l.addr()), client(l.addr()), client(l.addr()));
    let (a_first, _) = split(&ask(&a, b"a"));
    split(&ask(&b, b"b"));
    split(&ask(&c, b"c"));
    // a was the least recently active: it was closed for c, so it comes back on a new socket.
    let (a_again, _) = split(&ask(&a, b"a"));
    assert_ne!(
        a_first, a_again,
        "the evicted peer kept its upstream socket"
    );
    let run = l.finish();
    assert_eq!(run.code(), 0);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("to make room for"),
        "-v says who was evicted: {err}"
    );
    assert!(err.contains("4 peers (0 expired, 2 evicted)"), "{err}");
}

/// Both directions are records: json says which way, -s who sent each.
#[test]
fn both_directions_are_printed_with_their_direction() {
    let dest = Dest::start();
    let to = dest.addr.to_string();
    let l = spawn_listen(
        &["-f", "json", "-c", "1", "--forward", &to, "127.0.0.1:0"],
        1,
    );
    let s = client(l.addr());
    let me = s.local_addr().unwrap();
    let (upstream, _) = split(&ask(&s, b"hi"));
    let relay = l.addr();
    let run = l.finish();
    assert_eq!(run.code(), 0, "{}", show(&run.stderr));
    let records = json_lines(&run.stdout);
    assert_eq!(records.len(), 2, "{}", show(&run.stdout));
    assert_eq!(records[0]["dir"], "forward");
    assert_eq!(records[0]["from"], me.to_string());
    assert_eq!(records[0]["to"], relay.to_string());
    assert_eq!(records[0]["text"], "hi");
    assert_eq!(records[1]["dir"], "reply");
    assert_eq!(records[1]["from"], to);
    assert_eq!(records[1]["to"], upstream.to_string());
    assert_eq!(records[1]["text"], format!("{upstream}|hi"));
}

#[test]
fn allow_decides_who_may_relay_and_a_wildcard_without_it_warns() {
    let dest = Dest::start();
    let to = dest.addr.to_string();
    let l = spawn_listen(
        &[
            "-c",
            "1",
            "--allow",
            "127.0.0.2",
            "--forward",
            &to,
            "0.0.0.0:0",
        ],
        1,
    );
    let port = l.addr().port();
    client(format!("127.0.0.1:{port}").parse().unwrap())
        .send(b"stranger")
        .unwrap();
    let friend = UdpSocket::bind("127.0.0.2:0").unwrap();
    friend.set_read_timeout(Some(RECV_SAFETY)).unwrap();
    friend.connect(format!("127.0.0.2:{port}")).unwrap();
    split(&ask(&friend, b"friend"));
    let run = l.finish();
    assert_eq!(run.code(), 0);
    assert_eq!(
        dest.sources().len(),
        1,
        "only the allowed sender was relayed"
    );

    // A wildcard relay without --allow says it is open.
    let l = spawn_listen(&["-c", "1", "--forward", &to, "0.0.0.0:0"], 1);
    let port = l.addr().port();
    client(format!("127.0.0.1:{port}").parse().unwrap())
        .send(b"x")
        .unwrap();
    let run = l.finish();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("udpcat: warning: 0.0.0.0:") && err.contains("anyone who can reach"),
        "{err}"
    );
}

#[test]
fn forward_with_other_roles_or_its_options_alone_are_usage_errors() {
    for (args, names) in [
        (
            vec![
                "listen",
                "--echo",
                "--forward",
                "127.0.0.1:9",
                "127.0.0.1:0",
            ],
            ["--echo", "--forward"],
        ),
        (
            vec![
                "listen",
                "--exec",
                "cat",
                "--forward",
                "127.0.0.1:9",
                "127.0.0.1:0",
            ],
            ["--exec", "--forward"],
        ),
        (
            vec!["listen", "--forward-idle", "1s", "127.0.0.1:0"],
            ["--forward-idle", "--forward"],
        ),
        (
            vec!["listen", "--max-peers", "5", "127.0.0.1:0"],
            ["--max-peers", "--forward"],
        ),
        (
            vec!["listen", "--forward", "127.0.0.1:0", "127.0.0.1:0"],
            ["--forward", "port"],
        ),
    ] {
        run(&args, b"").check(
            2,
            Expect::Empty,
            lines(vec![line(&["udpcat: error:", names[0], names[1]])]),
        );
    }
}

/// 5,000 distinct peers (ports), more than --max-peers: every one gets its own reply, and
/// the relay's memory stays small.
#[test]
fn five_thousand_peers_each_get_their_own_replies_in_bounded_memory() {
    let dest = Dest::start();
    let to = dest.addr.to_string();
    // stdout into /dev/null: 10,000 records would fill a pipe nobody reads.
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "exec \"$0\" \"$@\" >/dev/null", udpcat_path()])
        .args([
            "listen",
            "-f",
            "raw",
            "--stats",
            "--forward",
            &to,
            "127.0.0.1:0",
        ])
        .env_remove("RUST_LOG");
    let l = spawn_listen_cmd(cmd, 1);
    let out = l.p.pid();
    // Kept open, so every peer has a port of its own (a closed one's port is reused).
    let mut peers = Vec::with_capacity(5_000);
    for i in 0..5_000 {
        let s = client(l.addr());
        let me = s.local_addr().unwrap();
        let payload = format!("peer {i} at {me}");
        let (_, back) = split(&ask(&s, payload.as_bytes()));
        assert_eq!(
            back,
            payload.as_bytes(),
            "peer {i} got another peer's reply"
        );
        peers.push(s);
    }
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{out}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(u64::MAX);
    l.p.signal(nix::sys::signal::Signal::SIGTERM);
    let run = l.finish();
    assert_eq!(run.code(), 143);
    assert!(
        rss_kib < 32 * 1024,
        "peak RSS {rss_kib} KiB for 5,000 peers"
    );
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("5000 peers (0 expired, 3976 evicted)"),
        "{err}"
    );
}

/// A relay needs a socket per peer: udpcat raises its own soft limit of open files (often
/// 1024, here 200) as far as the hard limit allows, so 300 peers all get their replies.
#[test]
fn a_low_open_file_limit_is_raised_for_the_relay() {
    let dest = Dest::start();
    let to = dest.addr.to_string();
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -Sn 200 && exec \"$0\" \"$@\" >/dev/null",
        udpcat_path(),
    ])
    .args(["listen", "--forward", &to, "127.0.0.1:0"])
    .env_remove("RUST_LOG");
    let l = spawn_listen_cmd(cmd, 1);
    let mut peers = Vec::new();
    for i in 0..300 {
        let s = client(l.addr());
        let (_, back) = split(&ask(&s, format!("p{i}").as_bytes()));
        assert_eq!(back, format!("p{i}").as_bytes());
        peers.push(s);
    }
    l.p.signal(nix::sys::signal::Signal::SIGTERM);
    let run = l.finish();
    assert_eq!(run.code(), 143, "{}", show(&run.stderr));
    assert!(!String::from_utf8_lossy(&run.stderr).contains("cannot open a relay"));
}
