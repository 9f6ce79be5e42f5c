//! SIGINT and SIGTERM: stop, flush what was received, print `--stats`, exit 130 / 143.

use nix::sys::signal::Signal;

use crate::util::*;

fn stopped_by(sig: Signal, code: i32) {
    let mut l = spawn_listen(&["--stats", "127.0.0.1:0"], 1);
    let s = udp4();
    send_to(&s, b"one", l.addr());
    send_to(&s, b"two", l.addr());
    // Both records were read by udpcat before the signal: it printed them.
    assert_eq!(l.p.read_stdout_line(), b"one\n");
    assert_eq!(l.p.read_stdout_line(), b"two\n");
    l.p.signal(sig);
    let addrs = l.addrs.clone();
    l.finish().check(
        code,
        bytes("one\ntwo\n"),
        ready_then(
            &addrs,
            vec![line(&["udpcat: received 2 datagrams, 6 bytes in "])],
        ),
    );
}

#[test]
fn sigint_exits_130_after_flushing_and_stats() {
    stopped_by(Signal::SIGINT, 130);
}

#[test]
fn sigterm_exits_143_after_flushing_and_stats() {
    stopped_by(Signal::SIGTERM, 143);
}

/// A signal before any datagram: nothing on stdout, the status still tells which signal.
#[test]
fn sigint_while_idle_exits_130_without_output() {
    let l = spawn_listen(&["127.0.0.1:0"], 1);
    l.p.signal(Signal::SIGINT);
    let addrs = l.addrs.clone();
    l.finish()
        .check(130, Expect::Empty, ready_then(&addrs, vec![]));
}

/// `send --wait` is stopped the same way.
#[test]
fn sigterm_stops_send_waiting_for_replies_with_143() {
    let peer = udp4();
    let to = local(&peer);
    let p = Proc::spawn(udpcat(&["send", "--wait", "1m", &to, "hello"]));
    // The datagram arrived, so send is now in its wait.
    assert_eq!(recv(&peer).0, b"hello");
    p.signal(Signal::SIGTERM);
    p.finish().check(143, Expect::Empty, Expect::Empty);
}

fn proc_file(pid: nix::unistd::Pid, name: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{name}")).unwrap_or_default()
}

fn sigint_pending(pid: nix::unistd::Pid) -> bool {
    proc_file(pid, "status").lines().any(|l| {
        let Some((key, mask)) = l.split_once(':') else {
            return false;
        };
        matches!(key, "SigPnd" | "ShdPnd")
            && u64::from_str_radix(mask.trim(), 16)
                .is_ok_and(|m| m & (1 << (Signal::SIGINT as u64 - 1)) != 0)
    })
}

/// The first SIGINT asks udpcat to stop and flush; when the flush cannot finish (stdout is a
/// full pipe nobody reads), a second SIGINT ends it at once with 130.
#[test]
fn a_second_sigint_exits_at_once_while_the_first_is_stuck_flushing() {
    let l = spawn_listen(&["127.0.0.1:0"], 1);
    let s = udp4();
    // More than the pipe (64 KiB) and udpcat's output buffer (256 KiB) hold together.
    let payload = vec![b'x'; 1400];
    for _ in 0..600 {
        send_to(&s, &payload, l.addr());
    }
    let pid = l.p.pid();
    wait_until("udpcat blocks writing to the full pipe", || {
        proc_file(pid, "wchan").contains("pipe_write")
    });
    l.p.signal(Signal::SIGINT);
    wait_until("the first SIGINT is delivered", || !sigint_pending(pid));
    wait_until(
        "after one SIGINT, udpcat is back flushing into the full pipe",
        || proc_file(pid, "wchan").contains("pipe_write"),
    );
    l.p.signal(Signal::SIGINT);
    // Nobody has read the pipe, so only the second signal can have ended it.
    wait_until(
        "the second SIGINT ends udpcat while its stdout is still full",
        || {
            proc_file(pid, "stat")
                .split(") ")
                .nth(1)
                .is_some_and(|rest| rest.starts_with('Z'))
        },
    );
    let run = l.finish();
    assert_eq!(
        run.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// `send --reply` blocks in one receive with a timeout; SIGINT must end that wait at once
/// (130), not after the minute-long --timeout.
#[test]
fn sigint_ends_a_reply_wait_at_once() {
    let peer = udp4();
    let to = local(&peer);
    let p = Proc::spawn(udpcat(&["send", "--reply", "--timeout", "1m", &to, "ping"]));
    assert_eq!(recv(&peer).0, b"ping");
    let pid = p.pid();
    wait_until("udpcat blocks waiting for the reply", || {
        let wchan = proc_file(pid, "wchan");
        wchan.contains("wait_for_more_packets") || wchan.contains("poll")
    });
    p.signal(Signal::SIGINT);
    let run = p.finish();
    assert!(!run.watchdog_fired, "SIGINT did not end the reply wait");
    run.check(130, Expect::Empty, Expect::Empty);
}
