//! Faults lose nothing: a signal in the middle of a flood (every datagram read from the
//! socket is on stdout: the records equal the `--stats` count), the reader of stdout going
//! away mid-flood (exit 0, quiet), a destination that disappears mid-stream (exit 4 with the
//! count sent), and stdin that fails mid-stream (exit 1 with the count sent).
//!
//! No sleeps: the tests wait for records on stdout, datagrams at a socket, or the error
//! line on stderr (poll); the watchdog is only a safety net.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use crate::raw_proc::RawProc;
use crate::util::*;

/// A thread sending numbered datagrams (`0`, `1`, ...) to `to` as fast as it can.
struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Flood {
    fn start(to: SocketAddr) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (st, se) = (Arc::clone(&stop), Arc::clone(&sent));
        let s = udp4();
        let handle = thread::spawn(move || {
            let mut i: u64 = 0;
            while !st.load(Ordering::Relaxed) {
                // A full socket buffer (ENOBUFS) or a listener that is gone: keep going.
                if s.send_to(i.to_string().as_bytes(), to).is_ok() {
                    i += 1;
                    se.store(i, Ordering::Relaxed);
                }
            }
        });
        Flood {
            stop,
            sent,
            handle: Some(handle),
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops the flood; returns how many datagrams it sent.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        self.sent()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `N` from `udpcat: received N datagrams, ...`.
fn received_count(stderr: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("udpcat: received "))?;
    line.split(' ').next()?.parse().ok()
}

fn signal_mid_flood(sig: Signal, code: i32) {
    let mut l = spawn_listen(&["--stats", "127.0.0.1:0"], 1);
    let flood = Flood::start(l.addr());
    // The flood is arriving and being printed.
    for _ in 0..1000 {
        l.p.read_stdout_line();
    }
    let sent_at_signal = flood.sent();
    l.p.signal(sig);
    let addrs = l.addrs.clone();
    let r = l.finish();
    let sent = flood.stop();
    assert!(
        sent > sent_at_signal,
        "the flood should still have been running when the signal came"
    );
    r.check(
        code,
        with(|out| {
            if out.ends_with(b"\n") {
                Ok(())
            } else {
                Err("the last record is cut short".into())
            }
        }),
        ready_then(&addrs, vec![line(&["udpcat: received ", " datagrams, "])]),
    );
    let n = received_count(&r.stderr).expect("a --stats line with the count");
    let text = String::from_utf8_lossy(&r.stdout);
    let records: Vec<u64> = text
        .lines()
        .map(|l| {
            l.parse()
                .unwrap_or_else(|_| panic!("record {l:?} is not one of the flood's datagrams"))
        })
        .collect();
    assert_eq!(
        records.len() as u64,
        n,
        "--stats says {n} datagrams were received, stdout has {} records ({} sent in all)",
        records.len(),
        sent
    );
    // One sender over loopback: the records come in the order sent, none twice.
    assert!(
        records.windows(2).all(|w| w[0] < w[1]),
        "records out of order or repeated"
    );
    assert!(n <= sent);
    eprintln!("{sig}: {n} datagrams on stdout and in --stats, of {sent} sent");
}

#[test]
fn sigterm_mid_flood_prints_every_datagram_it_counted_and_exits_143() {
    signal_mid_flood(Signal::SIGTERM, 143);
}

#[test]
fn sigint_mid_flood_prints_every_datagram_it_counted_and_exits_130() {
    signal_mid_flood(Signal::SIGINT, 130);
}

/// `udpcat listen | head`: the reader leaves while datagrams keep coming; exit 0, and
/// nothing on stderr but the readiness line.
#[test]
fn reader_leaving_mid_flood_exits_0_quietly() {
    let mut l = spawn_listen(&["127.0.0.1:0"], 1);
    let flood = Flood::start(l.addr());
    for _ in 0..1000 {
        l.p.read_stdout_line();
    }
    l.p.drop_stdout();
    let addrs = l.addrs.clone();
    let r = l.finish();
    flood.stop();
    r.check(0, with(|_| Ok(())), ready_then(&addrs, vec![]));
}

/// Waits until `p` has written something on stderr (its error line), at most `ms`.
fn stderr_ready(p: &RawProc, ms: u16) -> bool {
    let fd = p.child.stderr.as_ref().expect("stderr piped").as_fd();
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(ms)).expect("poll") > 0
}

/// `N` from `...; N datagrams sent` (or `1 datagram sent`) in the error line.
fn sent_in_error(err: &str) -> Option<u64> {
    let line = err.lines().find(|l| l.starts_with("udpcat: error:"))?;
    let before = line
        .rsplit_once(" datagrams sent")
        .or_else(|| line.rsplit_once(" datagram sent"))?
        .0;
    before.rsplit(' ').next()?.parse().ok()
}

/// A destination that goes away while udpcat is still reading lines from an open stdin:
/// the refusal stops it with status 4, and the error says how many datagrams were sent.
#[test]
fn destination_gone_mid_stream_is_refused_with_4_and_the_count_sent() {
    let dest = udp4();
    let to = local(&dest);
    let mut cmd = udpcat(&["send", "--stats", &to]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = RawProc::spawn(cmd);
    let mut stdin = p.child.stdin.take().unwrap();
    for line in ["one", "two"] {
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        assert_eq!(recv(&dest).0, line.as_bytes());
    }
    drop(dest);
    // More lines, one at a time, until udpcat reports the refusal (stdin stays open).
    let mut written = 2;
    for _ in 0..50 {
        match stdin.write_all(b"more\n") {
            Ok(()) => written += 1,
            Err(e) if e.kind() == ErrorKind::BrokenPipe => break,
            Err(e) => panic!("writing to udpcat's stdin: {e}"),
        }
        if stderr_ready(&p, 500) {
            break;
        }
    }
    let r = p.finish();
    drop(stdin);
    r.check(
        4,
        Expect::Empty,
        lines(vec![
            line(&["udpcat: sent ", " datagrams, "]),
            line(&[
                "udpcat: error: ",
                &to,
                "refused",
                "port unreachable",
                " sent",
            ]),
        ]),
    );
    let err = String::from_utf8_lossy(&r.stderr);
    let n = sent_in_error(&err).unwrap_or_else(|| panic!("no count in the error: {err}"));
    assert!(
        (3..=written).contains(&n),
        "{n} sent: two arrived, then at least the one that was refused (of {written} lines)\n{err}"
    );
    eprintln!("refused after {n} datagrams sent ({written} lines written)");
    assert!(
        err.contains(&format!("udpcat: sent {n} datagrams, ")),
        "--stats and the error disagree on the count:\n{err}"
    );
}

/// stdin that fails mid-stream (a TCP connection reset by its peer): status 1, an error
/// that names stdin and says how many datagrams were sent before it.
#[test]
fn stdin_failing_mid_stream_exits_1_with_the_count_sent() {
    let dest = udp4();
    let to = local(&dest);
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    let (mut server, _) = tcp.accept().unwrap();
    let mut cmd = udpcat(&["send", &to]);
    cmd.stdin(Stdio::from(OwnedFd::from(client)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // `spawn` drops the command, and with it our copy of the client end.
    let p = RawProc::spawn(cmd);
    server.write_all(b"one\ntwo\n").unwrap();
    assert_eq!(recv(&dest).0, b"one");
    assert_eq!(recv(&dest).0, b"two");
    // Both lines are read and sent; now the connection is reset (RST, not EOF).
    socket2::SockRef::from(&server)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(server);
    let r = p.finish();
    r.check(
        1,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error: ",
            "stdin",
            "reset",
            "2 datagrams sent",
        ])]),
    );
    assert!(drain(&dest).is_empty());
}
