//! `udpcat listen`: address forms, readiness, options, flushing and the end of stdout.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use crate::util::*;

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

#[track_caller]
fn assert_bound(addrs: &[SocketAddr], ips: &[IpAddr]) {
    let got: Vec<IpAddr> = addrs.iter().map(|a| a.ip()).collect();
    assert_eq!(
        got, ips,
        "readiness lines name the wrong addresses: {addrs:?}"
    );
    for a in addrs {
        assert_ne!(
            a.port(),
            0,
            "readiness line shows port 0, not the real port"
        );
    }
}

/// Lines of `out`, sorted, for outputs of several sockets whose relative order is not fixed.
fn sorted_lines(out: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(out)
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

fn sorted_lines_are(want: Vec<String>) -> Expect {
    let mut want = want;
    want.sort();
    with(move |out| {
        let got = sorted_lines(out);
        if got == want {
            Ok(())
        } else {
            Err(format!("lines (sorted) should be {want:?}, got {got:?}"))
        }
    })
}

#[test]
fn ipv4_port_0_prints_the_real_port_and_receives() {
    let l = spawn_listen(&["-c", "1", "127.0.0.1:0"], 1);
    assert_bound(&l.addrs, &[V4]);
    let s = udp4();
    send_to(&s, b"hello", l.addr());
    let addrs = l.addrs.clone();
    l.finish()
        .check(0, bytes("hello\n"), ready_then(&addrs, vec![]));
}

#[test]
fn ipv6_port_0_prints_the_real_port_and_receives() {
    let l = spawn_listen(&["-c", "1", "[::1]:0"], 1);
    assert_bound(&l.addrs, &[V6]);
    let s = udp6();
    send_to(&s, b"hello six", l.addr());
    let addrs = l.addrs.clone();
    l.finish()
        .check(0, bytes("hello six\n"), ready_then(&addrs, vec![]));
}

/// `0`, `:0` and `localhost:0` bind 127.0.0.1 and ::1 on one port and hear both families.
#[test]
fn bare_port_and_localhost_bind_both_loopbacks_on_one_port() {
    for form in ["0", ":0", "localhost:0"] {
        let l = spawn_listen(&["-s", "-c", "2", form], 2);
        assert_bound(&l.addrs, &[V4, V6]);
        assert_eq!(
            l.addrs[0].port(),
            l.addrs[1].port(),
            "`listen {form}`: both sockets must share the port: {:?}",
            l.addrs
        );
        let (s4, s6) = (udp4(), udp6());
        send_to(&s4, b"from four", l.addrs[0]);
        send_to(&s6, b"from six", l.addrs[1]);
        l.finish_check(
            0,
            sorted_lines_are(vec![
                format!("{}\tfrom four", local(&s4)),
                format!("{}\tfrom six", local(&s6)),
            ]),
        );
    }
}

/// A sender that resolves `localhost` to either family is heard on the one port.
#[test]
fn localhost_listener_hears_sender_on_either_family() {
    let l = spawn_listen(&["-c", "2", "localhost:0"], 2);
    let port = l.addrs[0].port();
    let (s4, s6) = (udp4(), udp6());
    send_to(&s6, b"six", SocketAddr::new(V6, port));
    send_to(&s4, b"four", SocketAddr::new(V4, port));
    l.finish_check(0, sorted_lines_are(vec!["four".into(), "six".into()]));
}

#[test]
fn dual_stack_wildcard_shows_ipv4_senders_as_plain_ipv4() {
    let l = spawn_listen(&["-s", "-c", "2", "[::]:0"], 1);
    assert_eq!(
        l.addr().ip(),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        "{:?}",
        l.addrs
    );
    let port = l.addr().port();
    let (s4, s6) = (udp4(), udp6());
    send_to(&s4, b"v4 sender", SocketAddr::new(V4, port));
    send_to(&s6, b"v6 sender", SocketAddr::new(V6, port));
    l.finish_check(
        0,
        bytes(format!(
            "{}\tv4 sender\n{}\tv6 sender\n",
            local(&s4),
            local(&s6)
        )),
    );
}

#[test]
fn dash_4_keeps_only_ipv4() {
    let l = spawn_listen(&["-4", "-c", "1", "localhost:0"], 1);
    assert_bound(&l.addrs, &[V4]);
    send_to(&udp4(), b"four only", l.addr());
    let addrs = l.addrs.clone();
    // Exactly one readiness line: no ::1 socket.
    l.finish()
        .check(0, bytes("four only\n"), ready_then(&addrs, vec![]));
}

#[test]
fn dash_6_keeps_only_ipv6() {
    let l = spawn_listen(&["-6", "-c", "1", "localhost:0"], 1);
    assert_bound(&l.addrs, &[V6]);
    send_to(&udp6(), b"six only", l.addr());
    let addrs = l.addrs.clone();
    l.finish()
        .check(0, bytes("six only\n"), ready_then(&addrs, vec![]));
}

#[test]
fn several_addr_arguments_feed_one_stream() {
    let l = spawn_listen(&["-c", "2", "127.0.0.1:0", "[::1]:0"], 2);
    assert_bound(&l.addrs, &[V4, V6]);
    send_to(&udp4(), b"first socket", l.addrs[0]);
    send_to(&udp6(), b"second socket", l.addrs[1]);
    l.finish_check(
        0,
        sorted_lines_are(vec!["first socket".into(), "second socket".into()]),
    );
}

#[test]
fn ready_file_holds_the_addresses_when_the_line_is_printed() {
    let dir = scratch_dir("ready");
    let path = dir.join("ready");
    let l = spawn_listen(
        &[
            "--ready-file",
            path.to_str().unwrap(),
            "-c",
            "1",
            "localhost:0",
        ],
        2,
    );
    let content = std::fs::read_to_string(&path);
    let want: Vec<String> = l.addrs.iter().map(|a| a.to_string()).collect();
    // No stray temporary file left beside it (written then renamed).
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    send_to(&udp4(), b"go", l.addrs[0]);
    let addrs = l.addrs.clone();
    l.finish()
        .check(0, bytes("go\n"), ready_then(&addrs, vec![]));
    let content = content.unwrap_or_else(|e| {
        panic!("ready file {path:?} missing when the readiness lines were printed: {e}")
    });
    let got: Vec<&str> = content.lines().collect();
    assert_eq!(got, want, "ready file content {content:?}");
    assert_eq!(names, ["ready"], "files in the ready file's directory");
    let _ = std::fs::remove_dir_all(&dir);
}

/// How a `-q` listener on a chosen port came up.
enum QuietStart {
    /// Bound: the probe came back as an echo.
    Up(Proc),
    /// udpcat said something on stderr (with `-q`, only an error such as the port being
    /// taken since it was free) and is finished.
    Said(Run),
}

/// Start `udpcat listen -q --echo ARGS ADDR` and learn that it is bound from the echo of a
/// probe: a probe sent before the bind is refused (ICMP port unreachable) and sent again.
/// `poll` waits on the probe socket and udpcat's stderr together, so an early exit is seen.
fn start_quiet(args: &[&str], addr: &str) -> QuietStart {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut full = vec!["listen", "-q", "--echo"];
    full.extend_from_slice(args);
    full.push(addr);
    let p = Proc::spawn(udpcat(&full));
    let s = udp4();
    s.connect(addr).unwrap();
    let deadline = Instant::now() + RECV_SAFETY;
    let mut buf = [0u8; 64];
    loop {
        assert!(
            Instant::now() < deadline,
            "`{}` never answered a probe",
            p.cmd
        );
        match s.send(b"probe") {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
            Err(e) => panic!("probe: {e}"),
        }
        let (sock_ready, err_ready) = {
            let mut fds = [
                PollFd::new(s.as_fd(), PollFlags::POLLIN),
                PollFd::new(p.stderr_fd(), PollFlags::POLLIN),
            ];
            let safety = PollTimeout::try_from(RECV_SAFETY).unwrap();
            poll(&mut fds, safety).expect("poll");
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if err_ready {
            return QuietStart::Said(p.finish());
        }
        if !sock_ready {
            continue;
        }
        match s.recv(&mut buf) {
            Ok(n) => {
                assert_eq!(&buf[..n], b"probe", "echo of the probe");
                return QuietStart::Up(p);
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
            Err(e) => panic!("waiting for the echo of a probe: {e}"),
        }
    }
}

/// `-q` hides the readiness line, not the file. Without the line, the test learns that the
/// socket is bound from the echo of a probe.
#[test]
fn quiet_hides_the_line_but_not_the_ready_file() {
    let dir = scratch_dir("quiet");
    let path = dir.join("ready");
    let path_s = path.to_str().unwrap().to_owned();
    let (start, addr) = with_free_port4(|port| {
        let addr = format!("127.0.0.1:{port}");
        let start = start_quiet(&["-c", "2", "--ready-file", &path_s], &addr);
        let clash = matches!(&start, QuietStart::Said(r) if r.code() == 1);
        ((start, addr), clash)
    });
    let p = match start {
        QuietStart::Up(p) => p,
        QuietStart::Said(r) => {
            r.check(0, Expect::Empty, Expect::Empty);
            unreachable!("udpcat ended before it was up")
        }
    };
    let content = std::fs::read_to_string(&path);
    send_to(&udp4(), b"done", addr.parse().unwrap());
    p.finish().check(0, bytes("probe\ndone\n"), Expect::Empty);
    let content = content.unwrap_or_else(|e| panic!("ready file {path:?} missing with -q: {e}"));
    assert_eq!(content.lines().collect::<Vec<_>>(), [addr.as_str()]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn count_ends_the_listener_after_n_datagrams() {
    let l = spawn_listen(&["-c", "3", "127.0.0.1:0"], 1);
    let s = udp4();
    for m in ["one", "two", "three"] {
        send_to(&s, m.as_bytes(), l.addr());
    }
    let addrs = l.addrs.clone();
    l.finish()
        .check(0, bytes("one\ntwo\nthree\n"), ready_then(&addrs, vec![]));
}

#[test]
fn two_senders_are_both_heard_never_latched() {
    let l = spawn_listen(&["-s", "-c", "3", "127.0.0.1:0"], 1);
    let (a, b) = (udp4(), udp4());
    send_to(&a, b"a1", l.addr());
    send_to(&b, b"b1", l.addr());
    send_to(&a, b"a2", l.addr());
    let addrs = l.addrs.clone();
    let (la, lb) = (local(&a), local(&b));
    l.finish().check(
        0,
        bytes(format!("{la}\ta1\n{lb}\tb1\n{la}\ta2\n")),
        ready_then(&addrs, vec![]),
    );
}

#[test]
fn timeout_without_any_datagram_exits_3() {
    let l = spawn_listen(&["-t", "200ms", "127.0.0.1:0"], 1);
    let addrs = l.addrs.clone();
    l.finish().check(
        3,
        Expect::Empty,
        ready_then(
            &addrs,
            vec![line(&[
                "udpcat: error:",
                "timed out after 200ms without a datagram",
            ])],
        ),
    );
}

#[test]
fn timeout_before_count_exits_3_with_what_arrived() {
    let l = spawn_listen(&["-c", "3", "-t", "2s", "127.0.0.1:0"], 1);
    send_to(&udp4(), b"only one", l.addr());
    let addrs = l.addrs.clone();
    l.finish().check(
        3,
        bytes("only one\n"),
        ready_then(
            &addrs,
            vec![line(&[
                "udpcat: error:",
                "timed out after 2s",
                "1 of 3 datagrams",
            ])],
        ),
    );
}

#[test]
fn timeout_after_some_datagrams_without_count_exits_0() {
    let l = spawn_listen(&["-t", "2s", "127.0.0.1:0"], 1);
    let s = udp4();
    send_to(&s, b"a", l.addr());
    send_to(&s, b"b", l.addr());
    let addrs = l.addrs.clone();
    l.finish()
        .check(0, bytes("a\nb\n"), ready_then(&addrs, vec![]));
}

#[test]
fn echo_returns_each_datagram_unchanged_to_its_sender() {
    let l = spawn_listen(&["--echo", "-f", "hex", "-c", "3", "127.0.0.1:0"], 1);
    let s = udp4();
    let mut echoed = Vec::new();
    for m in [&b"ping"[..], b"\x00\xff\r\n", b""] {
        send_to(&s, m, l.addr());
        let (got, from) = recv(&s);
        assert_eq!(from, l.addr(), "echo must come from the listening address");
        echoed.push(got);
    }
    l.finish_check(0, bytes("70696e67\n00ff0d0a\n\n"));
    assert_eq!(echoed, payloads([b"ping", b"\x00\xff\r\n", b""]));
}

#[test]
fn stats_summarise_on_stderr_at_exit() {
    let l = spawn_listen(&["--stats", "-c", "2", "127.0.0.1:0"], 1);
    let s = udp4();
    send_to(&s, b"ab", l.addr());
    send_to(&s, b"cde", l.addr());
    let addrs = l.addrs.clone();
    l.finish().check(
        0,
        bytes("ab\ncde\n"),
        ready_then(
            &addrs,
            vec![line(&[
                "udpcat: received 2 datagrams, 5 bytes in ",
                "datagrams/s)",
                "0 refused by --allow",
                "dropped by the kernel",
            ])],
        ),
    );
}

#[test]
fn allow_drops_and_counts_senders_outside_the_network() {
    let l = spawn_listen(
        &[
            "--allow",
            "127.0.0.2",
            "--stats",
            "-s",
            "-c",
            "1",
            "127.0.0.1:0",
        ],
        1,
    );
    let stranger = udp4();
    let friend = sock("127.0.0.2:0");
    send_to(&stranger, b"stranger", l.addr());
    send_to(&friend, b"friend", l.addr());
    let addrs = l.addrs.clone();
    l.finish().check(
        0,
        bytes(format!("{}\tfriend\n", local(&friend))),
        ready_then(
            &addrs,
            vec![line(&[
                "udpcat: received 1 datagram",
                "1 refused by --allow",
            ])],
        ),
    );
}

/// A reader of the pipe sees each datagram while udpcat keeps running (flush before blocking).
#[test]
fn each_record_reaches_the_pipe_before_the_listener_blocks() {
    let mut l = spawn_listen(&["-c", "3", "127.0.0.1:0"], 1);
    let s = udp4();
    send_to(&s, b"one", l.addr());
    assert_eq!(l.p.read_stdout_line(), b"one\n");
    send_to(&s, b"two", l.addr());
    assert_eq!(l.p.read_stdout_line(), b"two\n");
    send_to(&s, b"three", l.addr());
    let addrs = l.addrs.clone();
    l.finish()
        .check(0, bytes("one\ntwo\nthree\n"), ready_then(&addrs, vec![]));
}

#[test]
fn raw_records_reach_the_pipe_before_the_listener_blocks() {
    let mut l = spawn_listen(&["-f", "raw", "-c", "2", "127.0.0.1:0"], 1);
    let s = udp4();
    send_to(&s, b"\x00raw\xff", l.addr());
    assert_eq!(l.p.read_stdout_exact(5), b"\x00raw\xff");
    send_to(&s, b"end", l.addr());
    let addrs = l.addrs.clone();
    l.finish()
        .check(0, bytes(b"\x00raw\xffend"), ready_then(&addrs, vec![]));
}

#[test]
fn json_records_reach_the_pipe_before_the_listener_blocks() {
    let mut l = spawn_listen(&["-f", "json", "-c", "2", "127.0.0.1:0"], 1);
    let s = udp4();
    send_to(&s, b"first", l.addr());
    let first = l.p.read_stdout_line();
    let v: serde_json::Value = serde_json::from_slice(&first).expect("a json line");
    assert_eq!(v["text"], "first");
    send_to(&s, b"second", l.addr());
    let addrs = l.addrs.clone();
    l.finish().check(
        0,
        with(|out| {
            let n = String::from_utf8_lossy(out).lines().count();
            (n == 2)
                .then_some(())
                .ok_or(format!("2 json lines, got {n}"))
        }),
        ready_then(&addrs, vec![]),
    );
}

/// `udpcat listen | head -1`: the reader goes away after one record, the next write fails,
/// udpcat exits 0 without a word.
#[test]
fn stdout_closed_by_reader_exits_0_quietly() {
    let mut l = spawn_listen(&["127.0.0.1:0"], 1);
    let s = udp4();
    send_to(&s, b"first", l.addr());
    assert_eq!(l.p.read_stdout_line(), b"first\n");
    l.p.drop_stdout();
    send_to(&s, b"second", l.addr());
    send_to(&s, b"third", l.addr());
    let addrs = l.addrs.clone();
    l.finish()
        .check(0, bytes("first\n"), ready_then(&addrs, vec![]));
}

/// DESIGN: listen notices the reader going away even when no further datagram comes.
#[test]
fn stdout_closed_by_reader_exits_0_even_without_more_datagrams() {
    let mut l = spawn_listen(&["127.0.0.1:0"], 1);
    let s = udp4();
    send_to(&s, b"only", l.addr());
    assert_eq!(l.p.read_stdout_line(), b"only\n");
    l.p.drop_stdout();
    let addrs = l.addrs.clone();
    l.finish()
        .check(0, bytes("only\n"), ready_then(&addrs, vec![]));
}

#[test]
fn port_already_in_use_is_an_error_naming_the_address() {
    let taken = udp4();
    let addr = local(&taken);
    let r = run(&["listen", &addr], b"");
    r.check(
        1,
        Expect::Empty,
        lines(vec![line(&["udpcat: error:", &addr])]),
    );
    drop(taken);
}

/// `--reuse-port` lets a second listener share the port; without it the second fails
/// (see `port_already_in_use_is_an_error_naming_the_address`).
#[test]
fn reuse_port_lets_two_listeners_share_a_port() {
    let first = spawn_listen(&["--reuse-port", "127.0.0.1:0"], 1);
    let addr = first.addr().to_string();
    // The first is still running (nothing ends it but a signal) while the second binds.
    let second = spawn_listen(&["--reuse-port", &addr], 1);
    assert_eq!(second.addr(), first.addr());
    for l in [first, second] {
        l.p.signal(nix::sys::signal::Signal::SIGTERM);
        let addrs = l.addrs.clone();
        l.finish()
            .check(143, Expect::Empty, ready_then(&addrs, vec![]));
    }
}

/// A wildcard listener answers from the address the peer sent to (IP_PKTINFO), so a client
/// that sent to 127.0.0.2 (and, being connected, takes replies only from there) gets it.
#[test]
fn echo_on_a_wildcard_socket_answers_from_the_address_it_was_sent_to() {
    for wildcard in ["0.0.0.0:0", "[::]:0"] {
        let l = spawn_listen(&["--echo", "-c", "1", wildcard], 1);
        let dest = format!("127.0.0.2:{}", l.addr().port());
        let ping = run(&["send", "--reply", "--timeout", "5s", &dest, "hello"], b"");
        ping.check(0, bytes("hello\n"), bytes(""));
        let addrs = l.addrs.clone();
        l.finish()
            .check(0, bytes("hello\n"), ready_then(&addrs, vec![]));
    }
}

/// --stats accounts for every datagram: what the kernel dropped for lack of buffer (a tiny
/// --recv-buffer makes it drop) plus what was printed is what was sent.
#[test]
fn stats_count_kernel_drops_so_received_plus_dropped_is_sent() {
    const SENT: usize = 20_000;
    let l = spawn_listen(
        &[
            "--recv-buffer",
            "4K",
            "--stats",
            "-t",
            "500ms",
            "127.0.0.1:0",
        ],
        1,
    );
    let s = udp4();
    for i in 0..SENT {
        send_to(&s, format!("{i}").as_bytes(), l.addr());
    }
    let run = l.finish();
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    let number_before = |word: &str| -> usize {
        let at = err
            .find(word)
            .unwrap_or_else(|| panic!("no '{word}' in stderr: {err}"));
        let digits: String = err[..at]
            .trim_end()
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .chars()
            .rev()
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("no count before '{word}': {err}"))
    };
    let received = number_before(" datagrams,");
    let dropped = number_before(" dropped by the kernel");
    let printed = run.stdout.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(run.status.code(), Some(0), "{err}");
    assert_eq!(
        printed, received,
        "every received datagram is on stdout: {err}"
    );
    assert_eq!(received + dropped, SENT, "received + dropped = sent: {err}");
    assert!(dropped > 0, "a 4K buffer should have overflowed: {err}");
}

/// Datagrams refused by --allow are not datagrams for --timeout: a refused sender that keeps
/// sending must not keep the listener alive.
#[test]
fn refused_senders_do_not_restart_the_timeout() {
    let l = spawn_listen(
        &[
            "--allow",
            "10.0.0.0/8",
            "--timeout",
            "300ms",
            "--stats",
            "127.0.0.1:0",
        ],
        1,
    );
    let s = udp4();
    let addrs = l.addrs.clone();
    let mut p = l.p;
    // Keep refused datagrams coming until udpcat gives up (or the safety net trips).
    let deadline = std::time::Instant::now() + RECV_SAFETY;
    let mut sent = 0u32;
    while p.try_exited().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "refused datagrams kept the listener alive"
        );
        let _ = s.send_to(b"refused", addrs[0]);
        sent += 1;
    }
    p.finish().check(
        3,
        Expect::Empty,
        ready_then(
            &addrs,
            vec![
                line(&["udpcat: received 0 datagrams", "refused by --allow"]),
                line(&["udpcat: error:", "timed out after 300ms without a datagram"]),
            ],
        ),
    );
    assert!(sent > 0);
}

/// Joining a group on a socket bound to one unicast address receives nothing from the group;
/// udpcat says so, and what to bind instead.
#[test]
fn join_on_a_unicast_address_warns() {
    let r = run(
        &[
            "listen",
            "--join",
            "239.1.1.1",
            "-t",
            "100ms",
            "127.0.0.1:0",
        ],
        b"",
    );
    r.check(
        3,
        Expect::Empty,
        Expect::Has(line(&[
            "udpcat: warning: 127.0.0.1:0 receives only datagrams addressed to it",
            "listen on 0.0.0.0:0 or on the group address instead",
        ])),
    );
}

/// --interface says where to join groups; without a group there is nothing for it to do,
/// and udpcat says so instead of ignoring it.
#[test]
fn interface_without_a_group_is_an_error() {
    run(&["listen", "--interface", "lo", "127.0.0.1:0"], b"").check(
        1,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error: --interface",
            "--join GROUP or a group ADDR",
        ])]),
    );
}
