//! `listen --exec CMD` (issue 12): a command per datagram, its output the reply; warnings and
//! no reply for every way a command can fail; --jobs, --count, signals, --allow; hostile
//! payloads stay data; a flood loses nothing and leaves no child behind.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::util::*;

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn each_datagram_runs_the_command_and_its_output_is_the_reply() {
    let cmd = "printf '%s|%s|%s|%s|%s|%s|%s|' \"$UDPCAT_PEER\" \"$UDPCAT_PEER_ADDR\" \
               \"$UDPCAT_PEER_PORT\" \"$UDPCAT_LOCAL\" \"$UDPCAT_LOCAL_ADDR\" \
               \"$UDPCAT_LOCAL_PORT\" \"$UDPCAT_INDEX\"; tr a-z A-Z";
    let l = spawn_listen(&["-c", "2", "--exec", cmd, "127.0.0.1:0"], 1);
    let s = client(l.addr());
    let me = s.local_addr().unwrap();
    let at = l.addr();
    for (i, word) in ["hello", "again"].iter().enumerate() {
        let reply = ask(&s, word.as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&reply),
            format!(
                "{me}|{}|{}|{at}|{}|{}|{}|{}",
                me.ip(),
                me.port(),
                at.ip(),
                at.port(),
                i + 1,
                word.to_uppercase()
            )
        );
    }
    l.finish_check(0, bytes("hello\nagain\n"));
}

/// Neither the payload nor anything derived from it is on a command line or in the
/// environment of the command.
#[test]
fn the_payload_is_never_on_a_command_line_or_in_the_environment() {
    let cmd = "env; tr '\\0' ' ' < /proc/$$/cmdline";
    let l = spawn_listen(&["-c", "1", "--exec", cmd, "127.0.0.1:0"], 1);
    let s = client(l.addr());
    let reply = ask(&s, b"PAYLOAD-MARKER-81731");
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.contains("UDPCAT_INDEX=1"),
        "env should be in the reply: {text}"
    );
    assert!(
        !text.contains("PAYLOAD-MARKER"),
        "the payload leaked into the environment or the command line: {text}"
    );
    l.finish_check(0, bytes("PAYLOAD-MARKER-81731\n"));
}

/// A wildcard listener answers from the address the datagram was sent to, so a client with
/// a connected socket accepts the reply.
#[test]
fn the_reply_comes_from_the_address_the_datagram_arrived_on() {
    let l = spawn_listen(&["-c", "1", "--exec", "cat", "0.0.0.0:0"], 1);
    let to: SocketAddr = format!("127.0.0.2:{}", l.addr().port()).parse().unwrap();
    let s = client(to);
    assert_eq!(ask(&s, b"where from"), b"where from");
    l.finish_check(0, bytes("where from\n"));
}

/// What the command writes on stderr reaches udpcat's stderr as it is (SPEC: "CMD's stderr
/// goes to udpcat's"), and only its stdout is the reply.
#[test]
fn the_command_s_stderr_goes_to_udpcat_s_stderr_not_into_the_reply() {
    let cmd = "echo diagnostic-from-cmd >&2; tr a-z A-Z";
    let l = spawn_listen(&["-c", "1", "--exec", cmd, "127.0.0.1:0"], 1);
    let s = client(l.addr());
    assert_eq!(ask(&s, b"hi"), b"HI");
    let addr = l.addr();
    l.finish().check(
        0,
        bytes("hi\n"),
        ready_then(&[addr], vec![line(&["diagnostic-from-cmd"])]),
    );
}

/// Every way a command can fail: a warning naming the datagram and why, and no reply.
#[test]
fn a_failed_command_sends_nothing_and_says_why() {
    let dir = scratch_dir("exec-fail");
    let child_pid = dir.join("child.pid");
    // The command, extra options, the warning's reason, and how --stats counts it.
    let cases: Vec<(String, Vec<&str>, &str, &str)> = vec![
        (
            "true".into(),
            vec![],
            "printed nothing",
            "1 command run, 0 failed, 0 timed out",
        ),
        (
            "echo partial; exit 3".into(),
            vec![],
            "exited with status 3",
            "1 command run, 1 failed, 0 timed out",
        ),
        (
            "echo partial; kill -9 $$".into(),
            vec![],
            "killed by signal 9",
            "1 command run, 1 failed, 0 timed out",
        ),
        (
            "head -c 70000 /dev/zero".into(),
            vec![],
            "printed 70000 bytes, more than one datagram",
            "1 command run, 1 failed, 0 timed out",
        ),
        (
            // The command and what it started in the background are both stopped.
            format!("sleep 30 & echo $! > {}; wait", child_pid.display()),
            vec!["--exec-timeout", "300ms"],
            "still running after 300ms (--exec-timeout), stopped",
            "1 command run, 0 failed, 1 timed out",
        ),
    ];
    for (cmd, extra, why, counted) in cases {
        let mut args = vec!["-c", "1", "--stats", "--exec", &cmd];
        args.extend(extra);
        args.push("127.0.0.1:0");
        let l = spawn_listen(&args, 1);
        let s = client(l.addr());
        s.send(b"x").unwrap();
        let run = l.finish();
        run.check(
            0,
            bytes("x\n"),
            with({
                let why = why.to_string();
                move |err| {
                    let text = String::from_utf8_lossy(err);
                    let warned = text.lines().any(|l| {
                        l.starts_with("udpcat: warning: datagram 1 from 127.0.0.1:")
                            && l.contains(&why)
                            && l.ends_with("; no reply")
                    });
                    if !warned {
                        return Err(format!("should warn that datagram 1's command {why}"));
                    }
                    if !text.contains(counted) {
                        return Err(format!("--stats should say `{counted}`"));
                    }
                    Ok(())
                }
            }),
        );
        assert!(
            drain(&s).is_empty(),
            "{cmd}: a failed command must not be answered"
        );
    }
    let pid = read_pid(&child_pid).expect("the background sleep wrote its pid");
    wait_until("the timed-out command's own child is gone", || !alive(pid));
}

/// --jobs bounds how many commands run at once; --jobs 1 answers in order.
#[test]
fn jobs_bound_concurrency_and_one_job_keeps_order() {
    let dir = scratch_dir("exec-jobs");
    let log = dir.join("log");
    let cmd = format!(
        "echo start >> {log}; sleep 0.05; echo end >> {log}; cat",
        log = log.display()
    );
    for jobs in ["1", "3"] {
        let _ = std::fs::remove_file(&log);
        let l = spawn_listen(
            &["-c", "8", "--jobs", jobs, "--exec", &cmd, "127.0.0.1:0"],
            1,
        );
        let s = client(l.addr());
        for i in 0..8 {
            s.send(format!("m{i}").as_bytes()).unwrap();
        }
        let replies = recv_n(&s, 8);
        let run = l.finish();
        assert_eq!(run.code(), 0, "{}", show(&run.stderr));
        let (mut now, mut most) = (0, 0);
        for l in std::fs::read_to_string(&log).unwrap().lines() {
            now += if l == "start" { 1 } else { -1 };
            most = most.max(now);
        }
        let jobs_n: i32 = jobs.parse().unwrap();
        assert!(most <= jobs_n, "--jobs {jobs}: {most} commands ran at once");
        if jobs == "1" {
            let want: Vec<Vec<u8>> = (0..8).map(|i| format!("m{i}").into_bytes()).collect();
            assert_eq!(replies, want, "--jobs 1 answers in order");
        } else {
            assert!(most > 1, "--jobs 3 should run commands side by side");
        }
    }
}

/// SIGINT and SIGTERM stop the running commands (and what they started) and exit 130 / 143.
#[test]
fn signals_stop_running_commands() {
    for (sig, code) in [(Signal::SIGTERM, 143), (Signal::SIGINT, 130)] {
        let dir = scratch_dir("exec-signal");
        let pidfile = dir.join("pid");
        let cmd = format!("echo $$ > {}; sleep 30", pidfile.display());
        let l = spawn_listen(&["--exec", &cmd, "127.0.0.1:0"], 1);
        client(l.addr()).send(b"x").unwrap();
        wait_until("the command started", || read_pid(&pidfile).is_some());
        let pid = read_pid(&pidfile).unwrap();
        wait_until("the command is running", || alive(pid));
        l.p.signal(sig);
        l.finish_check(code, bytes("x\n"));
        assert!(!alive(pid), "the command outlived udpcat ({sig})");
    }
}

#[test]
fn allow_decides_who_runs_the_command() {
    let dir = scratch_dir("exec-allow");
    let marker = dir.join("ran");
    let cmd = format!("echo \"$UDPCAT_PEER_ADDR\" >> {}; cat", marker.display());
    let l = spawn_listen(
        &[
            "-c",
            "1",
            "--allow",
            "127.0.0.2",
            "--exec",
            &cmd,
            "0.0.0.0:0",
        ],
        1,
    );
    let port = l.addr().port();
    let stranger = client(format!("127.0.0.1:{port}").parse().unwrap());
    stranger.send(b"not me").unwrap();
    let friend = UdpSocket::bind("127.0.0.2:0").unwrap();
    friend.set_read_timeout(Some(RECV_SAFETY)).unwrap();
    friend.connect(format!("127.0.0.2:{port}")).unwrap();
    assert_eq!(ask(&friend, b"me"), b"me");
    l.finish_check(0, bytes("me\n"));
    assert!(
        drain(&stranger).is_empty(),
        "a refused sender got an answer"
    );
    // Each command run wrote its sender: the friend's only, the stranger's datagram ran none.
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default(),
        "127.0.0.2\n",
        "the commands run, by sender"
    );
}

#[test]
fn exec_with_echo_or_its_options_without_exec_are_usage_errors() {
    for (args, names) in [
        (
            vec!["listen", "--echo", "--exec", "cat", "127.0.0.1:0"],
            ["--echo", "--exec"],
        ),
        (
            vec!["listen", "--jobs", "2", "127.0.0.1:0"],
            ["--jobs", "--exec"],
        ),
        (
            vec!["listen", "--exec-timeout", "1s", "127.0.0.1:0"],
            ["--exec-timeout", "--exec"],
        ),
        (
            vec!["listen", "--jobs", "0", "--exec", "cat", "127.0.0.1:0"],
            ["--jobs", "0"],
        ),
    ] {
        run(&args, b"").check(
            2,
            Expect::Empty,
            lines(vec![line(&["udpcat: error:", names[0], names[1]])]),
        );
    }
}

/// Shell metacharacters, command substitution, backticks, NUL bytes and 60 KB of random
/// bytes come back byte-exact through `cat`, and nothing else runs.
#[test]
fn hostile_payloads_are_data_not_commands() {
    let dir = scratch_dir("exec-hostile");
    let pwned = dir.join("pwned");
    let p = pwned.display().to_string();
    let mut payloads: Vec<Vec<u8>> = vec![
        format!("; touch {p}").into_bytes(),
        format!("$(touch {p})").into_bytes(),
        format!("`touch {p}`").into_bytes(),
        format!("' \" | touch {p} && touch {p} \n touch {p}").into_bytes(),
        b"a\0b\0\0c".to_vec(),
    ];
    // 60 KB of bytes from a fixed-seed generator (xorshift), every byte value likely.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    payloads.push(
        (0..60_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect(),
    );
    let n = payloads.len().to_string();
    // raw: the records (about 60 KB) fit the stdout pipe the test reads only at the end.
    let l = spawn_listen(&["-f", "raw", "-c", &n, "--exec", "cat", "127.0.0.1:0"], 1);
    let s = client(l.addr());
    for payload in &payloads {
        assert_eq!(
            &ask(&s, payload),
            payload,
            "cat must give the payload back exactly"
        );
    }
    let run = l.finish();
    assert_eq!(run.code(), 0, "{}", show(&run.stderr));
    assert_eq!(
        run.stdout,
        payloads.concat(),
        "listen printed the payloads as they came"
    );
    assert!(!pwned.exists(), "a payload ran a command");
}

/// A flood at --jobs 4: every datagram is answered or counted as dropped by the kernel,
/// nothing is lost inside udpcat, memory stays flat, and no child is left.
#[test]
fn a_flood_is_answered_or_counted_and_leaves_no_child() {
    const N: usize = 10_000;
    let l = spawn_listen(
        &["--jobs", "4", "--stats", "--exec", "cat", "127.0.0.1:0"],
        1,
    );
    let s = client(l.addr());
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let sender = s.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        // A full buffer is the kernel saying no: that datagram is simply not sent.
        (0..N)
            .filter(|i| sender.send(format!("{i}").as_bytes()).is_ok())
            .count()
    });
    let mut answered = 0usize;
    let mut buf = [0u8; 64];
    let sent = flood.join().unwrap();
    // Replies keep coming while commands run; the read timeout ends the count only when
    // nothing has come for a long while (a safety net: normally the last reply ends it).
    let rss = |pid: nix::unistd::Pid| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let mut rss_early = 0;
    // The commands running mid-flood (read again below, after udpcat has gone).
    let mut children = String::new();
    let mut other_errors = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    while answered < N {
        match s.recv(&mut buf) {
            Ok(_) => answered += 1,
            // Nothing for 2 s: every command that was going to answer has.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) => other_errors.push(e.to_string()),
        }
        if answered == 500 {
            rss_early = rss(l.p.pid());
            let pid = l.p.pid();
            children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
        }
    }
    let rss_late = rss(l.p.pid());
    assert!(
        rss_late <= rss_early + 2048,
        "listener RSS grew from {rss_early} KiB to {rss_late} KiB over the flood"
    );
    l.p.signal(Signal::SIGTERM);
    let run = l.finish();
    assert_eq!(run.code(), 143);
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    let stats = err
        .lines()
        .find(|l| l.starts_with("udpcat: received "))
        .unwrap_or_else(|| panic!("no --stats line: {err}"));
    let number_before = |word: &str| -> usize {
        let at = stats
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {stats}"));
        stats[..at]
            .split(|c: char| !c.is_ascii_digit())
            .rev()
            .find(|w| !w.is_empty())
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("a number before {word} in {stats}"))
    };
    let received = number_before(" datagram");
    let dropped = number_before(" dropped by the kernel");
    let commands = number_before(" commands run");
    assert_eq!(
        answered, commands,
        "every command that finished was answered: {stats} (receive errors: {other_errors:?})"
    );
    assert!(
        received - commands <= 4,
        "every datagram udpcat read ran a command (at most --jobs 4 were still running at \
         SIGTERM): {stats}"
    );
    // Loopback's backlog can drop before the socket, where no counter of udpcat's sees.
    assert!(
        received + dropped <= sent && received > 0,
        "received + dropped should be at most the {sent} datagrams sent: {stats}"
    );
    for pid in children
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
    {
        assert!(!alive(pid), "command {pid} outlived udpcat");
    }
}
