//! `--progress`: under a pseudo-terminal the live line appears, is rewritten in place as the
//! counts change, and is gone at exit; into a pipe nothing of it is written.
//!
//! The terminal is a python3 pty that streams what reaches it, chunk by chunk, so a test
//! can wait for what the screen shows (a condition, never a clock) before its next step.
//! The helper lives here, not in util.rs: only these tests stream a terminal.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use crate::util::*;

/// Runs argv[3:] with stdout and stderr on a pseudo-terminal 200 columns wide (argv[1] is
/// `both`) or stderr only, stdout to /dev/null (`err`), stdin from the file argv[2] (`-`:
/// /dev/null). Each chunk that reaches the terminal is printed as a line of hex as it
/// comes; the last line is `exit STATUS`.
const PTY_STREAM: &str = r#"
import fcntl, os, pty, struct, subprocess, sys, termios
mode, stdin_path = sys.argv[1], sys.argv[2]
master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
stdin = subprocess.DEVNULL if stdin_path == "-" else open(stdin_path, "rb")
out = slave if mode == "both" else subprocess.DEVNULL
p = subprocess.Popen(sys.argv[3:], stdin=stdin, stdout=out, stderr=slave)
os.close(slave)
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    sys.stdout.write(chunk.hex() + "\n")
    sys.stdout.flush()
rc = p.wait()
sys.stdout.write("exit %d\n" % (rc if rc >= 0 else 128 - rc))
sys.stdout.flush()
"#;

/// What a terminal shows: rows of characters, with carriage returns, newlines and
/// backspaces applied. Enough of a terminal for udpcat's output, which sends nothing else.
#[derive(Default)]
struct Screen {
    rows: Vec<Vec<char>>,
    row: usize,
    col: usize,
    /// Every byte that reached the terminal.
    raw: Vec<u8>,
}

impl Screen {
    fn feed(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
        for c in String::from_utf8_lossy(bytes).chars() {
            if self.rows.is_empty() {
                self.rows.push(Vec::new());
            }
            match c {
                '\r' => self.col = 0,
                '\n' => {
                    self.row += 1;
                    if self.row == self.rows.len() {
                        self.rows.push(Vec::new());
                    }
                }
                '\u{8}' => self.col = self.col.saturating_sub(1),
                c => {
                    let line = &mut self.rows[self.row];
                    if line.len() <= self.col {
                        line.resize(self.col + 1, ' ');
                    }
                    line[self.col] = c;
                    self.col += 1;
                }
            }
        }
    }

    /// The rows as text, trailing blanks removed.
    fn lines(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|r| r.iter().collect::<String>().trim_end().to_string())
            .collect()
    }

    fn show(&self) -> String {
        let mut s = String::new();
        for (i, l) in self.lines().iter().enumerate() {
            s += &format!("\n    {i:>2}| {l}");
        }
        s + &format!("\n  raw: {}", show(&self.raw))
    }
}

/// udpcat running on the streaming pseudo-terminal.
struct Terminal {
    child: Child,
    cmd: String,
    chunks: mpsc::Receiver<String>,
    screen: Screen,
    status: Option<i32>,
}

impl Terminal {
    fn start(mode: &str, stdin: &str, args: &[&str]) -> Terminal {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", PTY_STREAM, mode, stdin, udpcat_path()])
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("run python3 (the pseudo-terminal helper)");
        let stdout: ChildStdout = child.stdout.take().expect("piped");
        let (tx, chunks) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Terminal {
            child,
            cmd: format!("udpcat {} (on a pseudo-terminal)", args.join(" ")),
            chunks,
            screen: Screen::default(),
            status: None,
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "{what}\n  command: {}\n  screen:{}",
            self.cmd,
            self.screen.show()
        );
    }

    /// Takes one chunk of output; false once the helper has said how udpcat exited.
    fn next_chunk(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.chunks.recv_timeout(left) {
            Ok(line) => {
                if let Some(code) = line.strip_prefix("exit ") {
                    self.status = code.trim().parse().ok();
                    return false;
                }
                let bytes: Vec<u8> = (0..line.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex from the helper"))
                    .collect();
                self.screen.feed(&bytes);
                true
            }
            Err(_) => false,
        }
    }

    /// Reads what reaches the terminal until the screen satisfies `ready`.
    /// Waits for listen's readiness line on the screen; the address it names.
    fn listening_addr(&mut self) -> SocketAddr {
        self.wait_for("the readiness line", |s| {
            s.lines().iter().any(|l| l.starts_with("listening on "))
        });
        self.screen
            .lines()
            .iter()
            .find_map(|l| l.strip_prefix("listening on ")?.parse().ok())
            .expect("a readiness line with an address")
    }

    fn wait_for(&mut self, what: &str, ready: impl Fn(&Screen) -> bool) {
        let deadline = Instant::now() + RECV_SAFETY;
        while !ready(&self.screen) {
            if self.status.is_some() || !self.next_chunk(deadline) {
                self.fail(&format!("the terminal never showed {what}"));
            }
        }
    }

    /// Reads to the end and returns udpcat's exit status.
    fn finish(&mut self) -> i32 {
        let deadline = Instant::now() + WATCHDOG;
        while self.status.is_none() {
            if !self.next_chunk(deadline) && self.status.is_none() {
                self.fail("udpcat did not exit");
            }
        }
        let _ = self.child.wait();
        self.status.unwrap_or(-1)
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rows that hold a status line starting with `prefix`.
fn status_rows(screen: &Screen, prefix: &str) -> Vec<String> {
    screen
        .lines()
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect()
}

/// How many times a status line starting with `prefix` was drawn, each with a carriage
/// return before it.
fn draws(screen: &Screen, prefix: &str) -> usize {
    let needle = format!("\r{prefix}");
    String::from_utf8_lossy(&screen.raw)
        .matches(&needle)
        .count()
}

/// The screen shows exactly one row starting with `prefix`, and it contains `has`.
fn shows(prefix: &'static str, has: &'static str) -> impl Fn(&Screen) -> bool {
    shows_all(prefix, vec![has])
}

/// The screen shows exactly one row starting with `prefix`, and it contains all of `has`.
fn shows_all(prefix: &'static str, has: Vec<&'static str>) -> impl Fn(&Screen) -> bool {
    move |s| {
        let rows = status_rows(s, prefix);
        rows.len() == 1 && has.iter().all(|h| rows[0].contains(h))
    }
}

#[test]
fn listen_progress_is_one_live_line_rewritten_in_place_and_erased_at_exit() {
    let mut t = Terminal::start(
        "both",
        "-",
        &["listen", "--progress", "--stats", "-c", "3", "127.0.0.1:0"],
    );
    let addr = t.listening_addr();
    let peer = udp4();
    send_to(&peer, b"one", addr);
    t.wait_for(
        "the line with 1 datagram",
        shows("received ", "received 1 datagram, 3 B ("),
    );
    let line = status_rows(&t.screen, "received ").remove(0);
    assert!(
        line.ends_with("0 dropped by the kernel"),
        "the status line should end with the kernel's drop count: {line:?}{}",
        t.screen.show()
    );
    // The rate falls as the datagram recedes into the past, so the line is drawn again,
    // with nothing in between: in place, on the same row.
    t.wait_for("the line drawn a second time", |s| {
        draws(s, "received ") >= 2
    });
    assert_eq!(
        status_rows(&t.screen, "received ").len(),
        1,
        "the line should be rewritten in place, not below the first{}",
        t.screen.show()
    );
    send_to(&peer, b"two", addr);
    // Below the new record, the old figures gone from the screen.
    t.wait_for(
        "the line rewritten with 2 datagrams",
        shows("received ", "received 2 datagrams, 6 B ("),
    );
    send_to(&peer, b"three", addr);
    let status = t.finish();
    let lines = t.screen.lines();
    let problems: Vec<&str> = [
        (status != 0).then_some("exit status should be 0"),
        (!status_rows(&t.screen, "received ").is_empty())
            .then_some("the status line should be erased at exit"),
        (lines
            .iter()
            .filter(|l| ["one", "two", "three"].contains(&l.as_str()))
            .count()
            != 3)
            .then_some("each record should be on a row of its own, unmixed with the status line"),
        (!lines.iter().any(|l| {
            l.starts_with("udpcat: received 3 datagrams, 11 bytes in ")
                && l.ends_with("0 dropped by the kernel")
        }))
        .then_some("the --stats line should be whole, on a row of its own"),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        problems.is_empty(),
        "{}\n  command: {}\n  status: {status}\n  screen:{}",
        problems.join("\n"),
        t.cmd,
        t.screen.show()
    );
}

#[test]
fn send_progress_shows_percent_and_time_left_of_a_file() {
    let dir = scratch_dir("progress");
    let input = dir.join("three-lines");
    std::fs::write(&input, "a\nb\nc\n").unwrap();
    let peer = udp4();
    let to = local(&peer);
    let mut t = Terminal::start(
        "both",
        input.to_str().unwrap(),
        &["send", "--progress", "--reply", "--stats", "-t", "10s", &to],
    );
    // Each reply waits until the line shows the datagram it answers: the line appears
    // while udpcat waits, and is rewritten as the counts change. The percent is of the
    // file's 6 bytes sent, up to the end of each record; the time left follows from it.
    for (i, want) in [
        vec!["sent 1 datagram, 1 B (", "/s), 16%, ", "s left"],
        vec!["sent 2 datagrams, 2 B (", "/s), 50%, ", "s left"],
        vec!["sent 3 datagrams, 3 B (", "/s), 83%, ", "s left"],
    ]
    .into_iter()
    .enumerate()
    {
        let (got, from) = recv(&peer);
        assert_eq!(got, [b'a' + i as u8]);
        t.wait_for(&want.join(" ... "), shows_all("sent ", want));
        peer.send_to(format!("reply {i}").as_bytes(), from).unwrap();
    }
    let lines = t.screen.lines();
    let status = t.finish();
    let problems: Vec<&str> = [
        (status != 0).then_some("exit status should be 0"),
        (!status_rows(&t.screen, "sent ").is_empty())
            .then_some("the status line should be erased at exit"),
        (!t.screen.lines().iter().any(|l| {
            l.starts_with("udpcat: sent 3 datagrams, 3 bytes in ")
                && l.contains("3 replies, 0% loss")
        }))
        .then_some("the --stats line should be whole, on a row of its own"),
        (t.screen
            .lines()
            .iter()
            .filter(|l| l.starts_with("reply "))
            .count()
            != 3)
            .then_some("each reply should be on a row of its own"),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        problems.is_empty(),
        "{}\n  command: {}\n  status: {status}\n  screen before the end: {lines:?}\n  screen:{}",
        problems.join("\n"),
        t.cmd,
        t.screen.show()
    );
}

/// Into a pipe, --progress writes nothing, however long udpcat runs: these runs last
/// several of the line's intervals (the --timeout and the --rate schedule are the
/// workload), so a line drawn regardless of the terminal would show.
#[test]
fn progress_into_a_pipe_writes_nothing() {
    let r = run(
        &["listen", "--progress", "--timeout", "500ms", "127.0.0.1:0"],
        b"",
    );
    r.check(
        3,
        Expect::Empty,
        with(|err| {
            let text = String::from_utf8_lossy(err);
            let lines: Vec<&str> = text.lines().collect();
            match lines.as_slice() {
                [ready, error]
                    if ready.starts_with("listening on 127.0.0.1:")
                        && *error == "udpcat: error: timed out after 500ms without a datagram"
                        && !text.contains('\r') =>
                {
                    Ok(())
                }
                _ => Err("should be the readiness line and the timeout error only".into()),
            }
        }),
    );
    let peer = udp4();
    let to = local(&peer);
    let r = run(
        &["send", "--progress", "--rate", "20", &to],
        b"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
    );
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer).len(), 10);
}

/// With only stderr on the terminal (stdout into a file or pipe), the line is drawn and
/// erased the same way, and the data is untouched by it.
#[test]
fn send_progress_with_stdout_elsewhere() {
    let peer = udp4();
    let to = local(&peer);
    let mut t = Terminal::start(
        "err",
        "-",
        &["send", "--progress", "--reply", "-t", "10s", &to, "ping"],
    );
    let (got, from) = recv(&peer);
    assert_eq!(got, b"ping");
    t.wait_for(
        "the line with 1 datagram",
        shows("sent ", "sent 1 datagram, 4 B ("),
    );
    let line = status_rows(&t.screen, "sent ").remove(0);
    assert!(
        !line.contains('%'),
        "MESSAGE words have no size to show a percent of: {line:?}"
    );
    peer.send_to(b"pong", from).unwrap();
    let status = t.finish();
    assert!(
        status == 0 && t.screen.lines().iter().all(|l| l.is_empty()),
        "exit status should be 0 and the terminal empty at the end\n  status: {status}\n  screen:{}",
        t.screen.show()
    );
}

/// A message line while the line shows (here the warning about a payload that is not
/// UTF-8, with stdout elsewhere) takes the line's place whole, and the line comes back
/// below it; at exit it is erased, leaving only the messages.
#[test]
fn listen_progress_gives_way_to_a_warning_and_is_erased_at_exit() {
    let mut t = Terminal::start(
        "err",
        "-",
        &["listen", "--progress", "-c", "3", "127.0.0.1:0"],
    );
    let addr = t.listening_addr();
    let peer = udp4();
    send_to(&peer, b"one", addr);
    t.wait_for(
        "the line with 1 datagram",
        shows("received ", "received 1 datagram, 3 B ("),
    );
    send_to(&peer, b"\xff", addr);
    t.wait_for(
        "the line with 2 datagrams below the warning",
        shows("received ", "received 2 datagrams, 4 B ("),
    );
    send_to(&peer, b"three", addr);
    let status = t.finish();
    let lines: Vec<String> = t
        .screen
        .lines()
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect();
    let warning = format!(
        "udpcat: warning: datagram from {} is not UTF-8; written unchanged (use --format hex|json to see it safely)",
        local(&peer)
    );
    assert!(
        status == 0 && lines == [format!("listening on {addr}"), warning],
        "exit status should be 0 and the terminal should show the readiness line and the \
         warning, whole, and no status line\n  status: {status}\n  screen:{}",
        t.screen.show()
    );
}

/// `send --replay FILE --progress`: the percent is of the capture's bytes read, rising with
/// each datagram to 100% at the last, with the time left beside it until then.
#[test]
fn send_progress_shows_percent_of_a_capture() {
    use std::time::{Duration, SystemTime};
    let dir = scratch_dir("progress-replay");
    let file = dir.join("ten.pcap");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (from, to) = (
        "192.0.2.1:5000".parse().unwrap(),
        "192.0.2.2:9000".parse().unwrap(),
    );
    let mut pcap = udpcat::output::pcap::pcap_header().to_vec();
    for i in 0..10u8 {
        udpcat::output::pcap::pcap_record(&mut pcap, t0, from, to, &[i; 60_000]);
    }
    std::fs::write(&file, &pcap).unwrap();
    let peer = udp4();
    let dest = local(&peer);
    let mut t = Terminal::start(
        "both",
        "-",
        &[
            "send",
            "--replay",
            file.to_str().unwrap(),
            "--progress",
            "--reply",
            "-t",
            "10s",
            &dest,
        ],
    );
    // "sent 3 datagrams, 175.8 KiB (…/s), 43%, 1s left": the percent, and what follows.
    let percent = |row: &str| -> Option<(u32, String)> {
        let after = row.split("/s), ").nth(1)?;
        let (n, rest) = after.split_once('%')?;
        Some((n.parse().ok()?, rest.to_string()))
    };
    let mut seen = Vec::new();
    for i in 0..10u8 {
        let (got, reply_to) = recv(&peer);
        assert_eq!(got, [i; 60_000], "datagram {i}");
        let head = format!("sent {} datagram{}, ", i + 1, if i == 0 { "" } else { "s" });
        t.wait_for(&format!("a line starting `{head}` with a percent"), |s| {
            let rows = status_rows(s, "sent ");
            rows.len() == 1 && rows[0].starts_with(&head) && percent(&rows[0]).is_some()
        });
        let row = status_rows(&t.screen, "sent ").remove(0);
        seen.push(percent(&row).unwrap());
        peer.send_to(format!("reply {i}").as_bytes(), reply_to)
            .unwrap();
    }
    let status = t.finish();
    assert_eq!(status, 0, "{}", t.screen.show());
    let (first, first_rest) = &seen[0];
    assert!(
        (1..100).contains(first) && first_rest.contains("s left"),
        "after the first datagram of ten, a share below 100% and the time left: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0) && seen[9].0 == 100,
        "the percent should rise to 100% at the last datagram: {seen:?}"
    );
}
