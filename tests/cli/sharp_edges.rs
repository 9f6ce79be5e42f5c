//! The sharp edges a new user hit (issue 9): whole stderr lines, a broken stderr that changes
//! nothing, arrival times and arrival order, strict addresses, options that do nothing, and
//! the small ones. Each test failed on the code before the fix.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;

use crate::raw_proc::RawProc;
use crate::util::*;

/// Runs `udpcat ARGS` under `strace -e trace=write` and returns the payload of every
/// write(2, ...) call, as strace shows it (C escapes, `\n` for a newline).
fn stderr_writes(args: &[&str], stdin: &[u8]) -> (Run, Vec<String>) {
    let dir = scratch_dir("strace");
    let trace = dir.join("trace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=write", "-s", "4096", "-o"])
        .arg(&trace)
        .arg(udpcat_path())
        .args(args)
        .env_remove("RUST_LOG");
    let run = run_cmd(cmd, stdin);
    let text = std::fs::read_to_string(&trace)
        .unwrap_or_else(|e| panic!("strace wrote no trace ({e}); is strace installed?"));
    let writes = text
        .lines()
        .filter_map(|l| {
            let at = l.find("write(2, \"")?;
            let rest = &l[at + "write(2, \"".len()..];
            let end = rest.rfind("\", ")?;
            Some(rest[..end].to_string())
        })
        .collect();
    (run, writes)
}

/// Spawns `cmd` with piped stdio, feeds `stdin`, and waits.
fn run_cmd(mut cmd: Command, stdin: &[u8]) -> Run {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = RawProc::spawn(cmd);
    if let Some(mut i) = p.child.stdin.take() {
        use std::io::Write;
        let _ = i.write_all(stdin);
    }
    p.finish()
}

#[track_caller]
fn assert_whole_lines(what: &str, writes: &[String], at_least: usize) {
    assert!(
        writes.len() >= at_least,
        "{what}: expected at least {at_least} stderr writes, strace saw {writes:?}"
    );
    for w in writes {
        assert!(
            w.ends_with("\\n") && w.matches("\\n").count() == 1,
            "{what}: a stderr write that is not exactly one whole line: {w:?}\nall writes: {writes:?}"
        );
    }
}

#[test]
fn every_stderr_line_is_one_write() {
    // Readiness for two sockets, a -v info line, --stats and the timeout error.
    let (run, writes) = stderr_writes(
        &["listen", "-v", "--stats", "-t", "200ms", "localhost:0"],
        b"",
    );
    assert_eq!(
        run.code(),
        3,
        "listen -t should time out: {}",
        show(&run.stderr)
    );
    assert_whole_lines("listen", &writes, 4);
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("listening on 127.0.0.1:"))
    );
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("udpcat: received 0 datagrams"))
    );
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("udpcat: error: timed out after 200ms"))
    );

    // send: a warning (no reply), --stats, and the error with its count.
    let sink = udp4();
    let (run, writes) = stderr_writes(
        &[
            "send",
            "--reply",
            "-t",
            "100ms",
            "--stats",
            &local(&sink),
            "ping",
        ],
        b"",
    );
    assert_eq!(run.code(), 3, "{}", show(&run.stderr));
    assert_whole_lines("send", &writes, 3);

    // A usage error and a bad record.
    let (_, writes) = stderr_writes(&["send", "--bogus", "127.0.0.1:9"], b"");
    assert_whole_lines("usage error", &writes, 1);
    let (run, writes) = stderr_writes(&["send", &local(&sink)], b"ok\n\xff\n");
    assert_eq!(run.code(), 1);
    assert_whole_lines("bad record", &writes, 1);
}

/// A pipe whose reader is already gone: every write to it fails with EPIPE.
fn dead_pipe() -> OwnedFd {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    write
}

fn listen_with_stderr(args: &[&str], stderr: Stdio) -> RawProc {
    let mut cmd = udpcat(&[&["listen"], args].concat());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    RawProc::spawn(cmd)
}

#[test]
fn a_broken_stderr_changes_no_exit_status() {
    for (what, stderr) in [
        ("a pipe with no reader", Stdio::from(dead_pipe())),
        (
            "/dev/full",
            Stdio::from(File::create("/dev/full").expect("/dev/full")),
        ),
    ] {
        // Nothing arrives: --timeout with --count is exit 3, whatever stderr does.
        let run = listen_with_stderr(&["-c", "1", "-t", "300ms", "127.0.0.1:0"], stderr).finish();
        assert_eq!(
            run.code(),
            3,
            "stderr {what}: listen -c 1 -t 300ms with no datagram must exit 3 (timed out)"
        );
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn a_broken_stderr_changes_nothing_on_the_data_path() {
    for full in [false, true] {
        let (run, got) = with_free_port4(|port| {
            let stderr = if full {
                Stdio::from(File::create("/dev/full").expect("/dev/full"))
            } else {
                Stdio::from(dead_pipe())
            };
            let addr = format!("127.0.0.1:{port}");
            let p = listen_with_stderr(&["-c", "2", "--echo", &addr], stderr);
            // No readiness line to wait for: probe with a connected socket. On loopback, a
            // port nobody has bound yet answers at once with "port unreachable".
            let s = udp4();
            s.connect(&addr).unwrap();
            let mut echoed = None;
            for _ in 0..10_000 {
                s.send(b"probe").unwrap();
                if s.take_error().unwrap().is_some() {
                    continue;
                }
                let mut buf = [0u8; 64];
                match s.recv(&mut buf) {
                    Ok(n) => {
                        echoed = Some(buf[..n].to_vec());
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => panic!("probe: {e}"),
                }
            }
            if echoed.is_none() {
                return ((p.finish(), None), true);
            }
            s.send(b"data").unwrap();
            let second = recv(&s).0;
            ((p.finish(), Some((echoed, second))), false)
        });
        let (first, second) = got.unwrap_or_else(|| panic!("listener never bound: {}", run.cmd));
        assert_eq!(first.as_deref(), Some(&b"probe"[..]));
        assert_eq!(second, b"data");
        assert_eq!(run.code(), 0, "stderr full={full}: {}", run.cmd);
        assert_eq!(run.stdout, b"probe\ndata\n");
    }
}

/// A socket with SO_TIMESTAMPNS, returned once the kernel stamps datagrams when they arrive
/// (not when they are read): while it lives, the system keeps doing so.
fn stamping_on() -> std::net::UdpSocket {
    use nix::sys::socket::{
        ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
    };
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;
    let s = udp4();
    setsockopt(&s, sockopt::ReceiveTimestampns, &true).expect("SO_TIMESTAMPNS");
    let addr = s.local_addr().unwrap();
    for _ in 0..100_000 {
        s.send_to(b"t", addr).unwrap();
        while rx_queue(addr) == 0 {
            std::thread::yield_now();
        }
        let read_at = SystemTime::now();
        let mut buf = [0u8; 8];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let msg =
            recvmsg::<SockaddrStorage>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
                .expect("recvmsg");
        let stamped = msg
            .cmsgs()
            .ok()
            .into_iter()
            .flatten()
            .find_map(|c| match c {
                ControlMessageOwned::ScmTimestampns(ts) => Some(
                    SystemTime::UNIX_EPOCH + Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32),
                ),
                _ => None,
            });
        if stamped.is_some_and(|t| t < read_at) {
            return s;
        }
    }
    panic!("the kernel never stamped a datagram on arrival");
}

/// Bytes queued on the socket bound to `addr` (the rx_queue column of /proc/net/udp{,6}).
fn rx_queue(addr: std::net::SocketAddr) -> u64 {
    let table = if addr.is_ipv4() {
        "/proc/net/udp"
    } else {
        "/proc/net/udp6"
    };
    let text = std::fs::read_to_string(table).unwrap_or_default();
    let port = format!(":{:04X}", addr.port());
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1)?.ends_with(&port)).then(|| {
                let rx = f.get(4)?.split(':').nth(1)?;
                u64::from_str_radix(rx, 16).ok()
            })?
        })
        .sum()
}

/// Waits until the process is in `state` (`/proc/PID/stat`: S sleeping, T stopped).
fn wait_for_state(p: &Proc, state: char) {
    let path = format!("/proc/{}/stat", p.pid());
    for _ in 0..1_000_000 {
        let stat = std::fs::read_to_string(&path).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        if stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            == Some(state)
        {
            return;
        }
        std::thread::yield_now();
    }
    panic!("{} never reached state {state}", p.cmd);
}

/// The json records of a listener that was stopped (SIGSTOP) while datagrams arrived on
/// both of its sockets: read late, in one drain.
#[test]
fn records_carry_arrival_time_and_come_in_arrival_order() {
    // Linux turns receive timestamping on for the whole system a moment after the first
    // socket asks (deferred work); until then datagrams are stamped when read. Hold it on.
    let _stamping = stamping_on();
    let l = spawn_listen(&["-f", "json", "-c", "10", "localhost:0"], 2);
    let (v4, v6) = (udp4(), udp6());
    // Stopped while it waits for datagrams (not in the middle of reading its sockets), so
    // every datagram below is read later, in one drain.
    wait_for_state(&l.p, 'S');
    l.p.signal(Signal::SIGSTOP);
    wait_for_state(&l.p, 'T');
    let mut windows = Vec::new();
    for i in 0..10 {
        let (s, to) = if i % 2 == 0 {
            (&v4, l.addrs[0])
        } else {
            (&v6, l.addrs[1])
        };
        let queued = rx_queue(to);
        let before = SystemTime::now();
        send_to(s, i.to_string().as_bytes(), to);
        windows.push((before, SystemTime::now()));
        // Loopback may hand the datagram to the socket a little later (softirq); wait until
        // it is queued, so one drain after SIGCONT finds all ten.
        let mut spins = 0u64;
        while rx_queue(to) <= queued {
            spins += 1;
            assert!(spins < 50_000_000, "datagram {i} never reached {to}");
            std::thread::yield_now();
        }
    }
    let resumed = SystemTime::now();
    l.p.signal(Signal::SIGCONT);
    let run = l.finish();
    assert_eq!(run.code(), 0, "{}", show(&run.stderr));
    let records = json_lines(&run.stdout);
    let texts: Vec<&str> = records
        .iter()
        .map(|r| r["text"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        texts,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "records of the two sockets must be written in arrival order: {}",
        show(&run.stdout)
    );
    for (r, (before, after)) in records.iter().zip(&windows) {
        let ts = r["ts"].as_str().unwrap_or_default();
        let at = humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("ts {ts:?}: {e}"));
        // ts has microseconds; the window is widened by one at its start.
        let earliest = *before - Duration::from_micros(1);
        assert!(
            at >= earliest && at <= *after,
            "ts {ts} of datagram {} is not when it arrived (sent between {} and {}; read after {})",
            r["text"],
            humantime::format_rfc3339_micros(*before),
            humantime::format_rfc3339_micros(*after),
            humantime::format_rfc3339_micros(resumed),
        );
    }
}

#[test]
fn broadcast_flag_still_reports_port_unreachable_for_a_unicast_destination() {
    let closed = format!("127.0.0.1:{}", free_port4());
    run(&["send", "--broadcast", &closed, "x"], b"").check(
        4,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error:",
            &closed,
            "refused: port unreachable",
        ])]),
    );
}

#[test]
fn a_stale_ready_file_is_removed_before_binding() {
    let dir = scratch_dir("stale-ready");
    let ready = dir.join("ready");
    std::fs::write(&ready, "127.0.0.1:1\n").unwrap();
    // The port is taken, so this run fails to bind: the old address must not survive it.
    let busy = udp4();
    let r = ready.to_str().unwrap();
    run(&["listen", "--ready-file", r, &local(&busy)], b"").check(
        1,
        Expect::Empty,
        Expect::Has(line(&["udpcat: error:", "cannot listen on"])),
    );
    assert!(
        !ready.exists(),
        "the ready file of an earlier run survived a run that failed to bind: {:?}",
        std::fs::read_to_string(&ready)
    );
}

/// Options that would do nothing in the given combination are usage errors naming both.
#[test]
fn options_that_do_nothing_are_usage_errors_naming_both() {
    let sink = udp4();
    let to = local(&sink);
    for (args, names) in [
        (vec!["send", "-t", "1s", &to, "x"], ["--timeout", "--reply"]),
        (
            vec!["send", "--timeout", "1s", "--wait", "1s", &to, "x"],
            ["--timeout", "--reply"],
        ),
        (
            vec!["send", "-s", "-f", "raw", "--reply", &to, "x"],
            ["--source", "raw"],
        ),
        (
            vec!["send", "-s", "-f", "json", "--wait", "1s", &to, "x"],
            ["--source", "json"],
        ),
        (
            vec!["listen", "-s", "-f", "raw", "127.0.0.1:0"],
            ["--source", "raw"],
        ),
        (
            vec!["listen", "-s", "-f", "json", "127.0.0.1:0"],
            ["--source", "json"],
        ),
        (
            vec!["listen", "-0", "-f", "raw", "127.0.0.1:0"],
            ["--null", "raw"],
        ),
        (
            vec!["listen", "-0", "-f", "json", "127.0.0.1:0"],
            ["--null", "json"],
        ),
        (
            vec!["listen", "-s", "-f", "pcap", "127.0.0.1:0"],
            ["--source", "pcap"],
        ),
        (
            vec!["listen", "-0", "-f", "pcap", "127.0.0.1:0"],
            ["--null", "pcap"],
        ),
        // -T, and -s with dump, whose header line already has the time and the sender.
        (
            vec!["listen", "-T", "-f", "raw", "127.0.0.1:0"],
            ["--timestamp", "raw"],
        ),
        (
            vec!["listen", "-T", "-f", "json", "127.0.0.1:0"],
            ["--timestamp", "json"],
        ),
        (
            vec!["listen", "-T", "-f", "pcap", "127.0.0.1:0"],
            ["--timestamp", "pcap"],
        ),
        (
            vec!["listen", "-T", "-f", "dump", "127.0.0.1:0"],
            ["--timestamp", "dump"],
        ),
        (
            vec!["listen", "-s", "-f", "dump", "127.0.0.1:0"],
            ["--source", "dump"],
        ),
    ] {
        run(&args, b"").check(
            2,
            Expect::Empty,
            lines(vec![line(&["udpcat: error:", names[0], names[1]])]),
        );
    }
    assert!(drain(&sink).is_empty(), "a usage error must send nothing");
}

/// With -s on a terminal, a payload cannot print a line that looks like another record.
#[test]
fn with_source_on_a_terminal_a_payload_cannot_forge_a_record() {
    let l = spawn_listen_cmd(under_pty(&["listen", "-s", "-c", "1", "127.0.0.1:0"]), 1);
    let s = udp4();
    send_to(&s, b"a\nfake 1.2.3.4:5\tX\n", l.addr());
    let from = local(&s);
    let run = l.finish();
    assert_eq!(run.code(), 0, "{}", show(&run.stderr));
    let hex = String::from_utf8_lossy(&run.stdout).into_owned();
    let shown = pty_bytes(hex.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let shown = String::from_utf8_lossy(&shown).replace("\r\n", "\n");
    assert_eq!(shown, format!("{from}\ta\\nfake 1.2.3.4:5\tX\n"));
}

#[test]
fn bind_without_a_port_and_localhost_bind_follow_the_destination() {
    // --bind 127.0.0.2 (no port): any free port on that address.
    let peer = udp4();
    run(&["send", "--bind", "127.0.0.2", &local(&peer), "x"], b"").check(
        0,
        Expect::Empty,
        Expect::Empty,
    );
    let (m, from) = recv(&peer);
    assert_eq!(m, b"x");
    assert_eq!(from.ip().to_string(), "127.0.0.2");
    assert_ne!(from.port(), 0);
    // -b localhost:0 to an IPv6 destination sends from ::1.
    let peer6 = udp6();
    run(&["send", "-b", "localhost:0", &local(&peer6), "y"], b"").check(
        0,
        Expect::Empty,
        Expect::Empty,
    );
    let (m, from) = recv(&peer6);
    assert_eq!(m, b"y");
    assert_eq!(from.ip().to_string(), "::1");
}

#[test]
fn small_things_say_what_is_meant() {
    // Destination port 0.
    run(&["send", ":0", "x"], b"").check(
        1,
        Expect::Empty,
        lines(vec![line(&["udpcat: error:", "port 0", "when binding"])]),
    );
    // Receive buffers too small to be one, or larger than a socket can have.
    for (value, says) in [
        ("0", "at least 4K"),
        ("1", "at least 4K"),
        ("8G", "at most 1G"),
    ] {
        run(&["listen", "--recv-buffer", value, "127.0.0.1:0"], b"").check(
            2,
            Expect::Empty,
            lines(vec![line(&["udpcat: error:", "--recv-buffer", says])]),
        );
    }
    // The same address twice.
    let port = free_port4().to_string();
    let twice = format!("127.0.0.1:{port}");
    run(&["listen", &twice, &twice], b"").check(
        2,
        Expect::Empty,
        lines(vec![line(&["udpcat: error:", &twice, "twice"])]),
    );
    let both = format!("localhost:{port}");
    run(&["listen", &both, &twice], b"").check(
        2,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error:",
            &twice,
            "'localhost:",
            "given by both",
        ])]),
    );
}

#[test]
fn counts_and_durations_read_as_written() {
    let l = spawn_listen(&["-c", "1", "--stats", "127.0.0.1:0"], 1);
    send_to(&udp4(), b"x", l.addr());
    let ready = l.ready_lines();
    let mut want = ready;
    want.push(line(&["udpcat: received 1 datagram, 1 byte in"]));
    l.finish().check(0, bytes("x\n"), lines(want));

    run(&["listen", "-c", "1", "-t", "1.5s", "127.0.0.1:0"], b"").check(
        3,
        Expect::Empty,
        Expect::Has(line(&[
            "udpcat: error: timed out after 1.5s: 0 of 1 datagrams",
        ])),
    );
}
