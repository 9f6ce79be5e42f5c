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
    let (run, writes) = stderr_writes(&["listen", "-v", "--stats", "-t", "200ms", "localhost:0"], b"");
    assert_eq!(run.code(), 3, "listen -t should time out: {}", show(&run.stderr));
    assert_whole_lines("listen", &writes, 4);
    assert!(writes.iter().any(|w| w.starts_with("listening on 127.0.0.1:")));
    assert!(writes.iter().any(|w| w.starts_with("udpcat: received 0 datagrams")));
    assert!(writes.iter().any(|w| w.starts_with("udpcat: error: timed out after 200ms")));

    // send: a warning (no reply), --stats, and the error with its count.
    let sink = udp4();
    let (run, writes) = stderr_writes(
        &["send", "--reply", "-t", "100ms", "--stats", &local(&sink), "ping"],
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
        ("/dev/full", Stdio::from(File::create("/dev/full").expect("/dev/full"))),
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
                match s.take_error().unwrap() {
                    Some(_) => continue,
                    None => {}
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

/// The json records of a listener that was stopped (SIGSTOP) while datagrams arrived on
/// both of its sockets: read late, in one drain.
#[test]
fn records_carry_arrival_time_and_come_in_arrival_order() {
    let l = spawn_listen(&["-f", "json", "-c", "10", "localhost:0"], 2);
    let (v4, v6) = (udp4(), udp6());
    l.p.signal(Signal::SIGSTOP);
    let mut windows = Vec::new();
    for i in 0..10 {
        let (s, to) = if i % 2 == 0 { (&v4, l.addrs[0]) } else { (&v6, l.addrs[1]) };
        let before = SystemTime::now();
        send_to(s, i.to_string().as_bytes(), to);
        windows.push((before, SystemTime::now()));
    }
    let resumed = SystemTime::now();
    l.p.signal(Signal::SIGCONT);
    let run = l.finish();
    assert_eq!(run.code(), 0, "{}", show(&run.stderr));
    let records: Vec<serde_json::Value> = run
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("json line"))
        .collect();
    let texts: Vec<&str> = records.iter().map(|r| r["text"].as_str().unwrap_or("?")).collect();
    assert_eq!(
        texts,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "records of the two sockets must be written in arrival order"
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
