//! Round trips at the system-call floor. `listen` with one socket, nothing else to watch and
//! stdout not a pipe waits by receiving (a blocking receive with a 100 ms tick) instead of
//! an event-loop wait followed by a receive: an echo answers with one receive and one send,
//! as the C floor does. These tests run listen with stdout in a file (most tests pipe it,
//! which keeps the event loop), so that path's signals, timeouts and counts are covered.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use crate::util::*;

/// `udpcat listen ARGS > out` (stdout a file), optionally under `strace -o trace -e CALLS`;
/// readiness lines come on stderr as usual.
fn listen_to_file(args: &[&str], out: &Path, strace: Option<(&Path, &str)>) -> Listener {
    let mut script = String::from("exec ");
    if let Some((trace, calls)) = strace {
        script += &format!("strace -qq -o '{}' -e trace={calls} ", trace.display());
    }
    script += &format!("'{}' listen", udpcat_path());
    for a in args {
        script += &format!(" '{a}'");
    }
    script += &format!(" > '{}'", out.display());
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    cmd.env_remove("RUST_LOG");
    spawn_listen_cmd(cmd, 1)
}

fn scratch(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(name);
    (dir.join("out"), dir.join("trace"))
}

/// Each round trip costs the echo one receive and one send: no event-loop wait at all.
#[test]
fn an_echo_answers_with_one_receive_and_one_send() {
    let (out, trace) = scratch("direct-echo");
    let l = listen_to_file(
        &["--echo", "-c", "5", "127.0.0.1:0"],
        &out,
        Some((&trace, "epoll_wait,recvmmsg,sendto,sendmsg")),
    );
    let c = client(l.addr());
    for i in 0..5 {
        let msg = format!("ping {i}");
        assert_eq!(ask(&c, msg.as_bytes()), msg.as_bytes());
    }
    let r = l.finish();
    assert_eq!(r.status.code(), Some(0), "{}", show(&r.stderr));
    let printed = std::fs::read_to_string(&out).unwrap();
    assert_eq!(printed, "ping 0\nping 1\nping 2\nping 3\nping 4\n");
    let text = std::fs::read_to_string(&trace).expect("strace wrote its trace");
    let waits = text
        .lines()
        .filter(|l| l.starts_with("epoll_wait("))
        .count();
    assert_eq!(waits, 0, "no event-loop wait:\n{text}");
    // (signal-hook's own zero-byte sendto calls at start-up are not answers)
    let answers = text
        .lines()
        .filter(|l| l.starts_with("sendto(") && l.contains("\"ping "))
        .count();
    assert_eq!(answers, 5, "one send per datagram:\n{text}");
    let received = text
        .lines()
        .filter(|l| l.starts_with("recvmmsg(") && l.ends_with(") = 1"))
        .count();
    assert_eq!(received, 5, "one receive per datagram:\n{text}");
    // Idle ticks cost one receive each: only the very first look (before any wait) is a
    // non-blocking one.
    let looks = text
        .lines()
        .filter(|l| l.starts_with("recvmmsg(") && l.contains("MSG_DONTWAIT"))
        .count();
    assert!(
        looks <= 1,
        "non-blocking receives besides the first:\n{text}"
    );
    // A blocking receive of 32 slots returns with the first datagram (otherwise it waits
    // for 32, or for its 100 ms timeout: every answer would be that late).
    let blocking = text
        .lines()
        .filter(|l| l.starts_with("recvmmsg(") && !l.contains("MSG_DONTWAIT"));
    for l in blocking {
        assert!(
            l.contains("MSG_WAITFORONE"),
            "a receive waiting for 32: {l}"
        );
    }
}

/// SIGINT and SIGTERM stop an idle listen waiting by receiving, with 130 and 143, and what
/// was received is in the file.
#[test]
fn signals_stop_a_listen_waiting_by_receiving() {
    for (sig, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let (out, _) = scratch("direct-signal");
        let l = listen_to_file(&["--echo", "127.0.0.1:0"], &out, None);
        let c = client(l.addr());
        assert_eq!(ask(&c, b"before"), b"before");
        l.p.signal(sig);
        let r = l.finish();
        assert_eq!(r.status.code(), Some(code), "{sig}: {}", show(&r.stderr));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "before\n");
    }
}

/// --timeout still ends it (exit 3, saying so), and --count still counts.
#[test]
fn timeout_and_count_hold_when_waiting_by_receiving() {
    let (out, _) = scratch("direct-timeout");
    let l = listen_to_file(&["--timeout", "250ms", "127.0.0.1:0"], &out, None);
    let addr = l.addr();
    l.finish().check(
        3,
        Expect::Empty,
        ready_then(
            &[addr],
            vec![line(&[
                "udpcat: error: timed out after 250ms without a datagram",
            ])],
        ),
    );
    let l = listen_to_file(&["-c", "2", "--timeout", "20s", "127.0.0.1:0"], &out, None);
    let s = udp4();
    for p in [b"one", b"two", b"333"] {
        send_to(&s, p, l.addr());
    }
    let r = l.finish();
    assert_eq!(r.status.code(), Some(0), "{}", show(&r.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "one\ntwo\n");
}

/// `send --reply` into a file: each round trip is one send and one receive (no look for a
/// queued reply right after one came, no write per reply), and the file has every reply.
#[test]
fn ping_sends_and_receives_once_per_round_trip() {
    let (out, trace) = scratch("direct-ping");
    let echo = spawn_listen(&["--echo", "127.0.0.1:0"], 1);
    let input: String = (1..=20).map(|i| format!("{i}\n")).collect();
    let in_file = out.with_file_name("in");
    std::fs::write(&in_file, &input).unwrap();
    let status = Command::new("sh")
        .args([
            "-c",
            &format!(
                "exec strace -qq -o '{}' -e trace=recvfrom,recvmmsg,sendto,write '{}' send --reply {} < '{}' > '{}'",
                trace.display(),
                udpcat_path(),
                echo.addr(),
                in_file.display(),
                out.display()
            ),
        ])
        .status()
        .expect("run strace");
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), input);
    let text = std::fs::read_to_string(&trace).expect("strace wrote its trace");
    let count = |f: &dyn Fn(&str) -> bool| text.lines().filter(|l| f(l)).count();
    assert_eq!(
        count(&|l| l.starts_with("sendto(") && !l.contains("\"\", 0")),
        20
    );
    assert_eq!(
        count(&|l| l.starts_with("recvmmsg(") && l.ends_with(") = 1")),
        20
    );
    // Only the first datagram looks for an earlier reply first.
    assert_eq!(count(&|l| l.contains("MSG_PEEK")), 1, "{text}");
    // The replies go into the file in one write (at the end: they all came fast); stderr
    // has nothing to say.
    assert_eq!(count(&|l| l.starts_with("write(")), 1, "{text}");
}

/// Idle, listen wakes once per tick with one receive (the receive is the wait), not a
/// receive and then another look: over a 350 ms --timeout, only the first look before any
/// wait is non-blocking.
#[test]
fn an_idle_listen_makes_one_receive_per_tick() {
    let (out, trace) = scratch("direct-idle");
    let l = listen_to_file(
        &["--timeout", "350ms", "127.0.0.1:0"],
        &out,
        Some((&trace, "recvmmsg,epoll_wait")),
    );
    let r = l.finish();
    assert_eq!(r.status.code(), Some(3), "{}", show(&r.stderr));
    let text = std::fs::read_to_string(&trace).expect("strace wrote its trace");
    let blocking = text
        .lines()
        .filter(|l| l.starts_with("recvmmsg(") && l.contains("MSG_WAITFORONE"))
        .count();
    let looks = text
        .lines()
        .filter(|l| l.starts_with("recvmmsg(") && l.contains("MSG_DONTWAIT"))
        .count();
    assert!(blocking >= 3, "a blocking receive per 100 ms tick:\n{text}");
    assert!(
        looks <= 1,
        "non-blocking receives besides the first:\n{text}"
    );
    assert!(!text.contains("epoll_wait("), "no event-loop wait:\n{text}");
}

/// SPEC: output is flushed before listen blocks, so nothing sits in a buffer while it waits.
/// On the waiting-by-receiving path too: each record is in the file while listen still runs
/// and waits for the next datagram.
#[test]
fn records_reach_the_file_before_listen_waits_again() {
    let (out, _) = scratch("direct-flush");
    let l = listen_to_file(&["-c", "3", "127.0.0.1:0"], &out, None);
    let s = udp4();
    let mut want = String::new();
    for p in ["first", "second"] {
        send_to(&s, p.as_bytes(), l.addr());
        want += &format!("{p}\n");
        wait_until(&format!("the file holds {want:?}"), || {
            std::fs::read_to_string(&out).is_ok_and(|t| t == want)
        });
    }
    send_to(&s, b"third", l.addr());
    let r = l.finish();
    assert_eq!(r.status.code(), Some(0), "{}", show(&r.stderr));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "first\nsecond\nthird\n"
    );
}
