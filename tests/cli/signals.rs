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
