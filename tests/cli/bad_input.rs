//! Every bad invocation or input has one clear answer: the documented exit status, exactly
//! one `udpcat: error:` line on stderr that names the culprit (the address, value, flag,
//! file or record), nothing on stdout, and no panic or backtrace. Table-driven: each row is
//! a command line, its stdin, the status and what the error line must name.
//!
//! `{sink}` in a row stands for a UDP socket of the test (so records sent before a bad
//! one go somewhere real), `{busy}` for an address another socket already has.

use std::fs::File;
use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;

use crate::raw_proc::RawProc;
use crate::util::*;

/// What the child reads as stdin.
#[derive(Clone)]
enum Input {
    /// /dev/null.
    Nothing,
    /// These bytes, through a pipe.
    Bytes(Vec<u8>),
    /// A directory: the first read fails with EISDIR.
    Directory,
}

struct Row {
    args: Vec<String>,
    input: Input,
    code: i32,
    /// Every one of these must be in the `udpcat: error:` line.
    names: Vec<String>,
    /// Datagrams that must reach `{sink}` (the records before the bad one), when checked.
    sent: Option<usize>,
}

fn row(args: &[&str], code: i32, names: &[&str]) -> Row {
    Row {
        args: args.iter().map(|s| s.to_string()).collect(),
        input: Input::Nothing,
        code,
        names: names.iter().map(|s| s.to_string()).collect(),
        sent: None,
    }
}

impl Row {
    fn stdin(mut self, input: Input) -> Row {
        self.input = input;
        self
    }

    fn sent(mut self, n: usize) -> Row {
        self.sent = Some(n);
        self
    }
}

/// Runs `program pre... args...` with `input` on stdin, RUST_BACKTRACE=1 so that a panic or
/// an error printed with `{:?}` would show its backtrace.
fn run_row(program: &str, pre: &[&str], args: &[String], input: &Input) -> Run {
    let mut cmd = Command::new(program);
    cmd.args(pre)
        .args(args)
        .env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let bytes = match input {
        Input::Nothing => {
            cmd.stdin(Stdio::null());
            None
        }
        Input::Directory => {
            cmd.stdin(File::open("/").expect("open / as a file"));
            None
        }
        Input::Bytes(b) => {
            cmd.stdin(Stdio::piped());
            Some(b.clone())
        }
    };
    let mut p = RawProc::spawn(cmd);
    // A separate writer, so a child that stops reading cannot deadlock the test.
    let writer = bytes.map(|b| {
        let mut pipe = p.child.stdin.take().unwrap();
        thread::spawn(move || {
            let _ = pipe.write_all(&b);
        })
    });
    let r = p.finish();
    if let Some(w) = writer {
        w.join().unwrap();
    }
    r
}

/// What is wrong with `r` as the answer to a bad input (`None`: nothing).
fn problems(r: &Run, code: i32, names: &[String], may_listen: bool) -> Vec<String> {
    let mut p = Vec::new();
    if r.watchdog_fired {
        p.push(format!("still running after {WATCHDOG:?}; killed"));
    }
    if r.code() != code {
        p.push(format!("exit status {} (want {code})", r.code()));
    }
    if !r.stdout.is_empty() {
        p.push("stdout should be empty".into());
    }
    let err = String::from_utf8_lossy(&r.stderr);
    for bad in [
        "panicked",
        "stack backtrace",
        "RUST_BACKTRACE",
        "Stack backtrace",
    ] {
        if err.contains(bad) {
            p.push(format!("stderr contains {bad:?}"));
        }
    }
    if let Some(c) = err.chars().find(|&c| c.is_control() && c != '\n') {
        p.push(format!("stderr carries a raw control character {c:?}"));
    }
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("udpcat: error:"))
        .collect();
    match errors.as_slice() {
        [one] => {
            for n in names {
                if !one.contains(n.as_str()) {
                    p.push(format!("the error line should name {n:?}"));
                }
            }
        }
        _ => p.push(format!(
            "stderr should have exactly one `udpcat: error:` line, has {}",
            errors.len()
        )),
    }
    for l in err.lines() {
        // Usage errors (2) too: clap's usage and tips are folded into the one line.
        let expected =
            l.starts_with("udpcat: error:") || (may_listen && l.starts_with("listening on "));
        if !expected {
            p.push(format!("unexpected stderr line {l:?}"));
        }
    }
    p
}

/// Runs every row; one report with every failing row, each with its full output.
fn run_table(rows: Vec<Row>, may_listen: bool) {
    let sink = udp4();
    let busy = udp4();
    let mut report = Vec::new();
    for row in &rows {
        let subst = |s: &String| {
            s.replace("{sink}", &local(&sink))
                .replace("{busy}", &local(&busy))
        };
        let args: Vec<String> = row.args.iter().map(subst).collect();
        let names: Vec<String> = row.names.iter().map(subst).collect();
        let r = run_row(udpcat_path(), &[], &args, &row.input);
        let mut p = problems(&r, row.code, &names, may_listen);
        let arrived = drain(&sink).len();
        if let Some(n) = row.sent {
            if arrived != n {
                p.push(format!(
                    "{arrived} datagrams reached the destination, want {n}"
                ));
            }
        }
        if !p.is_empty() {
            report.push(format!(
                "udpcat {}\n  {}\n  status: {:?}\n  stdout: {}\n  stderr: {}",
                args.iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                p.join("\n  "),
                r.status,
                show(&r.stdout),
                show(&r.stderr)
            ));
        }
    }
    assert!(
        report.is_empty(),
        "{} of {} bad inputs got the wrong answer:\n\n{}",
        report.len(),
        rows.len(),
        report.join("\n\n")
    );
}

#[test]
fn bad_addresses_name_the_address() {
    let mut rows = Vec::new();
    for cmd in ["listen", "send"] {
        let msg: &[&str] = if cmd == "send" { &["x"] } else { &[] };
        for (addr, why) in [
            ("::1:9000", "brackets"),
            ("[::1]", ":PORT"),
            ("host", ":PORT"),
            ("1.2.3.4:70000", "70000"),
            ("[nope]:1", "nope"),
            ("127.0.0.1:", "port"),
            ("", "empty"),
            ("[::1]:http", "http"),
        ] {
            let mut args = vec![cmd, addr];
            args.extend_from_slice(msg);
            let shown = if addr.is_empty() { "''" } else { addr };
            rows.push(row(&args, 1, &[shown, why]));
        }
    }
    // A hostile argument is quoted escaped, not raw: an ESC in the port part is shown as
    // an escape, so the error line cannot clear the screen.
    rows.push(row(
        &["send", "1.2.3.4:\x1b[2J", "x"],
        1,
        &["1.2.3.4:", "port"],
    ));
    rows.push(row(
        &["send", "\x1b]52;c;aGk=\x07:1", "x"],
        1,
        &["host name"],
    ));
    // A newline in an argument must not split the error line (or forge a second one).
    rows.push(row(
        &["send", "a\nudpcat: error: forged:1", "x"],
        1,
        &["host name"],
    ));
    rows.push(row(
        &["send", "--bind", "1.2.3", "{sink}", "x"],
        1,
        &["--bind", "1.2.3", "not an IPv4 address"],
    ));
    run_table(rows, false);
}

/// `.invalid` never resolves (RFC 6761); whatever the resolver says, it is one error line.
#[test]
fn a_name_that_does_not_resolve_is_named() {
    run_table(
        vec![
            row(
                &["send", "nonexistent.invalid:9", "x"],
                1,
                &["nonexistent.invalid"],
            ),
            row(
                &["listen", "nonexistent.invalid:9"],
                1,
                &["nonexistent.invalid"],
            ),
        ],
        false,
    );
}

/// Bad flag values are clap's usage errors (status 2), still one `udpcat: error:` line
/// naming the flag and the value, before any socket exists.
#[test]
fn bad_values_and_flags_are_usage_errors_with_one_error_line() {
    run_table(
        vec![
            row(
                &["listen", "-t", "soon", "127.0.0.1:0"],
                2,
                &["--timeout", "soon"],
            ),
            row(
                &["send", "-w", "soon", "{sink}", "x"],
                2,
                &["--wait", "soon"],
            ),
            row(
                &["listen", "--allow", "10.0.0.0/33", "127.0.0.1:0"],
                2,
                &["--allow", "10.0.0.0/33"],
            ),
            row(&["send", "--chunk", "0", "{sink}"], 2, &["--chunk", "0"]),
            row(&["listen", "-c", "0", "127.0.0.1:0"], 2, &["--count", "0"]),
            row(&["send", "--rate", "0", "{sink}", "x"], 2, &["--rate", "0"]),
            row(
                &["listen", "--recv-buffer", "lots", "127.0.0.1:0"],
                2,
                &["--recv-buffer", "lots"],
            ),
            row(
                &["send", "--no-such-flag", "{sink}", "x"],
                2,
                &["--no-such-flag"],
            ),
            row(
                &["listen", "--no-such-flag", "127.0.0.1:0"],
                2,
                &["--no-such-flag"],
            ),
        ],
        false,
    );
}

/// A bad stdin record stops `send` with status 1 and an error naming the record; every
/// record before it was sent, nothing after it.
#[test]
fn bad_records_name_the_record_and_what_is_wrong() {
    let a = |n: usize| vec![b'a'; n];
    let cat = |parts: &[&[u8]]| Input::Bytes(parts.concat());
    // 200,000 bytes as hex text: more text than udpcat keeps for one record.
    let hex: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("{:02x}", i as u8).into_bytes())
        .collect();
    let over = "more than one UDP datagram can carry over IPv4 (65507)";
    let rows = vec![
        // An oversize record is read to its end and named with its real size.
        row(
            &["send", "{sink}"],
            1,
            &[format!("stdin line 2: 70000 bytes, {over}; 1 datagram sent before it").as_str()],
        )
        .stdin(cat(&[b"ok\n", &a(70_000), b"\nnever\n"]))
        .sent(1),
        row(
            &["send", "{sink}"],
            1,
            &[format!("stdin line 2: 200000 bytes, {over}").as_str()],
        )
        .stdin(cat(&[b"ok\n", &a(200_000), b"\nnever\n"]))
        .sent(1),
        // The "\r" of a CRLF line end is not payload.
        row(
            &["send", "{sink}"],
            1,
            &[format!("stdin line 1: 70000 bytes, {over}").as_str()],
        )
        .stdin(cat(&[&a(70_000), b"\r\nnever\r\n"]))
        .sent(0),
        row(
            &["send", "-0", "{sink}"],
            1,
            &[format!("stdin record 3: 70000 bytes, {over}").as_str()],
        )
        .stdin(cat(&[b"a\0b\0", &a(70_000), b"\0never\0"]))
        .sent(2),
        row(
            &["send", "--whole", "{sink}"],
            1,
            &[format!("stdin: 70000 bytes, {over}").as_str()],
        )
        .stdin(cat(&[&a(70_000)]))
        .sent(0),
        // Hex: the size decoded; bad hex far into a long record, its column.
        row(
            &["send", "-x", "{sink}"],
            1,
            &[format!("stdin line 2: 200000 bytes, {over}").as_str()],
        )
        .stdin(cat(&[b"00\n", &hex, b"\n00\n"]))
        .sent(1),
        row(
            &["send", "-x", "{sink}"],
            1,
            &["stdin line 1: bad hex: 'z' at column 300001 is not a hex digit"],
        )
        .stdin(cat(&[&[b' '; 300_000], b"zz\n00\n"]))
        .sent(0),
        row(
            &["send", "{sink}"],
            1,
            &["stdin line 2", "UTF-8", "--binary"],
        )
        .stdin(Input::Bytes(b"ok\n\xff\xfe\nnever\n".to_vec()))
        .sent(1),
        row(&["send", "-0", "{sink}"], 1, &["stdin record 3", "UTF-8"])
            .stdin(Input::Bytes(b"a\0b\0\xc3\0never\0".to_vec()))
            .sent(2),
        row(
            &["send", "-x", "{sink}"],
            1,
            &["stdin line 2", "bad hex", "odd"],
        )
        .stdin(Input::Bytes(b"00ff\nabc\n00\n".to_vec()))
        .sent(1),
        row(
            &["send", "-x", "{sink}"],
            1,
            &["stdin line 1", "bad hex", "'z'"],
        )
        .stdin(Input::Bytes(b"zz\n00\n".to_vec()))
        .sent(0),
        // A hostile byte in bad hex is quoted escaped.
        row(
            &["send", "-x", "{sink}"],
            1,
            &["stdin line 1", "bad hex", "\\u{1b}"],
        )
        .stdin(Input::Bytes(b"\x1b[2J\n".to_vec()))
        .sent(0),
    ];
    run_table(rows, false);
}

/// Failures of the system around udpcat: files, stdin, ports.
#[test]
fn system_failures_name_the_file_stdin_or_port() {
    let rows = vec![
        row(
            &[
                "listen",
                "--ready-file",
                "/nonexistent-dir/x",
                "127.0.0.1:0",
            ],
            1,
            &["--ready-file", "/nonexistent-dir/x"],
        ),
        // A file name is quoted escaped: the OSC 52 clipboard write stays inert.
        row(
            &[
                "listen",
                "--ready-file",
                "/nonexistent-dir/\x1b]52;c;aGk=\x07",
                "127.0.0.1:0",
            ],
            1,
            &["--ready-file", "/nonexistent-dir/\\x1b]52;c;aGk=\\x07"],
        ),
        // ... and a newline in it does not split the error line.
        row(
            &[
                "listen",
                "--ready-file",
                "/nonexistent-dir/a\nb",
                "127.0.0.1:0",
            ],
            1,
            &["--ready-file", "/nonexistent-dir/a"],
        ),
        row(&["send", "{sink}"], 1, &["stdin"]).stdin(Input::Directory),
        row(&["send", "--whole", "{sink}"], 1, &["stdin"]).stdin(Input::Directory),
        row(&["listen", "{busy}"], 1, &["{busy}", "in use"]),
        row(
            &["send", "--chunk", "65508", "{sink}"],
            2,
            &["--chunk 65508", "65507"],
        ),
        row(
            &["send", "--chunk", "64K", "{sink}"],
            2,
            &["--chunk 65536", "65507"],
        ),
    ];
    run_table(rows, false);
}

/// The lowest port that needs privilege, if there is one (`None` where
/// net.ipv4.ip_unprivileged_port_start is 0).
fn privileged_port() -> Option<u16> {
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    start.checked_sub(1).filter(|&p| p > 0)
}

/// This process's effective user id, from /proc (the second `Uid:` field).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

/// Binding a privileged port as an ordinary user: status 1, the address and the fix. As
/// root the test drops to `nobody` with setpriv; without setpriv it says why it skipped.
#[test]
fn privileged_port_as_non_root_names_the_port_and_the_fix() {
    let Some(port) = privileged_port() else {
        eprintln!("skipped: net.ipv4.ip_unprivileged_port_start is 0, no port needs privilege");
        return;
    };
    let addr = format!("127.0.0.1:{port}");
    let args = vec!["listen".to_string(), addr.clone()];
    let root = effective_uid() == Some(0);
    let r = if root {
        let setpriv_works = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
            .status()
            .is_ok_and(|s| s.success());
        if !setpriv_works {
            eprintln!("skipped: running as root and setpriv cannot drop to nobody");
            return;
        }
        run_row(
            "setpriv",
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                udpcat_path(),
            ],
            &args,
            &Input::Nothing,
        )
    } else {
        run_row(udpcat_path(), &[], &args, &Input::Nothing)
    };
    let p = problems(&r, 1, &[addr, "root or CAP_NET_BIND_SERVICE".into()], false);
    assert!(
        p.is_empty(),
        "{}\n  command: {}\n  stderr: {}",
        p.join("\n"),
        r.cmd,
        show(&r.stderr)
    );
}
