//! Helpers for driving the real `udpcat` binary: spawning with a kill-on-drop guard and a
//! watchdog, waiting for `listen`'s readiness lines, loopback sockets, and one assertion that
//! states exit status, stdout and stderr together and prints all of them when it fails.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A child still running after this long is killed, so a bug can never hang the suite.
/// A safety net only: no test waits for it.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// Upper bound on a blocking receive in a test socket; again a safety net, never a delay.
pub const RECV_SAFETY: Duration = Duration::from_secs(10);

/// Path of the binary under test.
pub fn udpcat_path() -> &'static str {
    env!("CARGO_BIN_EXE_udpcat")
}

/// `udpcat ARGS...` as a `Command`.
pub fn udpcat(args: &[&str]) -> Command {
    let mut cmd = Command::new(udpcat_path());
    cmd.args(args);
    // Keep the environment from changing what the binary prints.
    cmd.env_remove("RUST_LOG");
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

/// A fresh directory for files a test needs (ready files).
pub fn scratch_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cli-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(char::is_whitespace) || a.contains('\'') {
            s.push_str(&format!(" {a:?}"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

#[derive(Default)]
struct WatchState {
    done: bool,
    fired: bool,
}

type Watch = Arc<(Mutex<WatchState>, Condvar)>;

fn start_watchdog(pid: u32) -> Watch {
    let watch: Watch = Arc::new((Mutex::new(WatchState::default()), Condvar::new()));
    let w = Arc::clone(&watch);
    thread::spawn(move || {
        let (lock, cv) = &*w;
        let deadline = Instant::now() + WATCHDOG;
        let mut st = lock.lock().unwrap();
        while !st.done {
            let now = Instant::now();
            if now >= deadline {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                st.fired = true;
                break;
            }
            st = cv.wait_timeout(st, deadline - now).unwrap().0;
        }
    });
    watch
}

/// A running child process. Killed (and reaped) on drop unless [`Proc::finish`] ran; a
/// watchdog kills it after [`WATCHDOG`] whatever happens.
pub struct Proc {
    child: Child,
    pub cmd: String,
    watch: Watch,
    finished: bool,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    stderr: Option<BufReader<ChildStderr>>,
    stdout_seen: Vec<u8>,
    stderr_seen: Vec<u8>,
    stdout_dropped: bool,
}

impl Proc {
    /// Spawn `cmd` with stdin, stdout and stderr all piped.
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let desc = describe(&cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
        let watch = start_watchdog(child.id());
        Proc {
            stdin: child.stdin.take(),
            stdout: child.stdout.take().map(BufReader::new),
            stderr: child.stderr.take().map(BufReader::new),
            child,
            cmd: desc,
            watch,
            finished: false,
            stdout_seen: Vec::new(),
            stderr_seen: Vec::new(),
            stdout_dropped: false,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The exit status if the child has ended, without waiting for it.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The child's stderr pipe, for `poll`.
    pub fn stderr_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.stderr
            .as_ref()
            .expect("stderr not piped")
            .get_ref()
            .as_fd()
    }

    /// Send a signal to the child.
    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap_or_else(|e| panic!("kill {sig} {}: {e}", self.cmd));
    }

    /// Write to the child's stdin (and flush).
    pub fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(data).expect("write to child's stdin");
        stdin.flush().expect("flush child's stdin");
    }

    /// Write to the child's stdin; a failure (the child has stopped reading) is returned,
    /// for tests where that is a possible outcome rather than a broken test.
    pub fn try_write_stdin(&mut self, data: &[u8]) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(data)?;
        stdin.flush()
    }

    /// Close the child's stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Bytes the child has read so far, from any file (`rchar` in /proc/PID/io); `None`
    /// once it has gone.
    pub fn bytes_read(&self) -> Option<u64> {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.child.id())).ok()?;
        io.lines()
            .find_map(|l| l.strip_prefix("rchar:"))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Waits until the child has read `n` bytes in all (see [`Proc::bytes_read`]) or has
    /// exited, so that a test knows where the child's reads of its input were cut. A
    /// condition, not a delay: it polls /proc, yielding the processor in between.
    pub fn wait_bytes_read(&mut self, n: u64) {
        let deadline = Instant::now() + RECV_SAFETY;
        while self.try_exited().is_none() && self.bytes_read().is_some_and(|r| r < n) {
            if Instant::now() > deadline {
                self.fail(&format!(
                    "the child did not read {n} bytes within {RECV_SAFETY:?}"
                ));
            }
            thread::yield_now();
        }
    }

    /// Peak resident memory of the running child (VmHWM), in KiB.
    pub fn peak_memory_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status of the child");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM line in /proc/PID/status:\n{status}"))
    }

    /// Close our read end of the child's stdout, as `head -1` does when it exits.
    pub fn drop_stdout(&mut self) {
        self.stdout = None;
        self.stdout_dropped = true;
    }

    fn fail(&mut self, what: &str) -> ! {
        // Collect whatever the child said, for the report.
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        self.mark_done();
        self.finished = true;
        let mut rest_err = Vec::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_end(&mut rest_err);
        }
        let mut err = self.stderr_seen.clone();
        err.extend_from_slice(&rest_err);
        panic!(
            "{what}\n  command: {}\n  status:  {status:?}\n  stdout so far: {}\n  stderr:  {}",
            self.cmd,
            show(&self.stdout_seen),
            show(&err)
        );
    }

    /// Read exactly `n` bytes of the child's stdout while it keeps running.
    pub fn read_stdout_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        let res = self
            .stdout
            .as_mut()
            .expect("stdout not piped")
            .read_exact(&mut buf);
        match res {
            Ok(()) => {
                self.stdout_seen.extend_from_slice(&buf);
                buf
            }
            Err(e) => self.fail(&format!(
                "reading {n} bytes of stdout from the running child: {e}"
            )),
        }
    }

    /// Read one line (through `\n`) of the child's stdout while it keeps running.
    pub fn read_stdout_line(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        let res = self
            .stdout
            .as_mut()
            .expect("stdout not piped")
            .read_until(b'\n', &mut buf);
        self.stdout_seen.extend_from_slice(&buf);
        match res {
            Ok(_) if buf.ends_with(b"\n") => buf,
            Ok(_) => self.fail("stdout ended before a whole line arrived"),
            Err(e) => self.fail(&format!("reading a line of stdout: {e}")),
        }
    }

    /// Read one line of stderr; `None` at end of file.
    pub fn read_stderr_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = self
            .stderr
            .as_mut()
            .expect("stderr not piped")
            .read_until(b'\n', &mut buf)
            .unwrap_or(0);
        self.stderr_seen.extend_from_slice(&buf);
        (n > 0).then(|| String::from_utf8_lossy(&buf).into_owned())
    }

    /// The readiness wait: read stderr until `n` lines `listening on ADDR` have arrived and
    /// return the addresses, in order. Fails (with the child's output) if stderr ends first.
    pub fn wait_ready(&mut self, n: usize) -> Vec<SocketAddr> {
        let mut addrs = Vec::new();
        while addrs.len() < n {
            let Some(line) = self.read_stderr_line() else {
                self.fail(&format!(
                    "stderr ended after {} of {n} `listening on ADDR` lines",
                    addrs.len()
                ));
            };
            if let Some(pos) = line.find("listening on ") {
                let text = line[pos + "listening on ".len()..].trim();
                match text.parse::<SocketAddr>() {
                    Ok(a) => addrs.push(a),
                    Err(e) => self.fail(&format!("readiness line {line:?}: bad address: {e}")),
                }
            }
        }
        addrs
    }

    fn mark_done(&self) {
        let (lock, cv) = &*self.watch;
        lock.lock().unwrap().done = true;
        cv.notify_all();
    }

    /// Wait for the child to exit on its own with its stdin still open, as on a live input
    /// that has not ended; then read stdout and stderr to the end. (A child that waits for
    /// the end of its input is killed by the watchdog, and the check reports it.)
    pub fn finish_with_stdin_open(mut self) -> Run {
        let stdin = self.stdin.take();
        let r = self.finish();
        drop(stdin);
        r
    }

    /// Close stdin, read stdout and stderr to the end, wait for the exit.
    pub fn finish(mut self) -> Run {
        self.stdin = None;
        let out: Option<JoinHandle<Vec<u8>>> = self.stdout.take().map(|mut r| {
            thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        });
        let err: Option<JoinHandle<Vec<u8>>> = self.stderr.take().map(|mut r| {
            thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        });
        let status = self.child.wait().expect("wait for child");
        self.mark_done();
        self.finished = true;
        let mut stdout = std::mem::take(&mut self.stdout_seen);
        if let Some(h) = out {
            stdout.extend(h.join().unwrap());
        }
        let mut stderr = std::mem::take(&mut self.stderr_seen);
        if let Some(h) = err {
            stderr.extend(h.join().unwrap());
        }
        let watchdog_fired = self.watch.0.lock().unwrap().fired;
        Run {
            cmd: self.cmd.clone(),
            status,
            stdout,
            stderr,
            watchdog_fired,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.mark_done();
        }
    }
}

/// Run `udpcat ARGS` to completion with `stdin` as its input.
pub fn run(args: &[&str], stdin: &[u8]) -> Run {
    let mut p = Proc::spawn(udpcat(args));
    let mut pipe = p.stdin.take().unwrap();
    let data = stdin.to_vec();
    // A separate writer so a child that does not read stdin cannot deadlock the test.
    let writer = thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let r = p.finish();
    writer.join().unwrap();
    r
}

/// A running `udpcat listen` whose readiness lines have been read.
pub struct Listener {
    pub p: Proc,
    /// The addresses from the readiness lines, in order.
    pub addrs: Vec<SocketAddr>,
}

impl Listener {
    /// The first (or only) listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn finish(self) -> Run {
        self.p.finish()
    }

    /// Wait for the end and check exit status and stdout, with stderr holding nothing but
    /// the readiness lines.
    pub fn finish_check(self, code: i32, stdout: Expect) {
        let addrs = self.addrs.clone();
        self.finish()
            .check(code, stdout, ready_then(&addrs, vec![]));
    }

    /// What the readiness lines must say: one pattern per socket.
    pub fn ready_lines(&self) -> Vec<Vec<String>> {
        self.addrs
            .iter()
            .map(|a| vec![format!("listening on {a}")])
            .collect()
    }
}

/// Start `udpcat listen ARGS` and wait for `sockets` readiness lines.
pub fn spawn_listen(args: &[&str], sockets: usize) -> Listener {
    let mut full = vec!["listen"];
    full.extend_from_slice(args);
    spawn_listen_cmd(udpcat(&full), sockets)
}

/// Like [`spawn_listen`] for any command whose stderr carries udpcat's readiness lines
/// (e.g. udpcat started under a pseudo-terminal by python3).
pub fn spawn_listen_cmd(cmd: Command, sockets: usize) -> Listener {
    let mut p = Proc::spawn(cmd);
    let addrs = p.wait_ready(sockets);
    Listener { p, addrs }
}

/// A finished process: what a user would see.
pub struct Run {
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub watchdog_fired: bool,
}

/// A custom check of a stream; `Err` says what is wrong.
pub type Checker = Box<dyn Fn(&[u8]) -> Result<(), String>>;

/// What a stream must contain.
pub enum Expect {
    /// Nothing at all.
    Empty,
    /// Exactly these bytes.
    Bytes(Vec<u8>),
    /// Exactly this many lines, line i containing every substring of entry i.
    Lines(Vec<Vec<String>>),
    /// Some line contains all of these substrings (the rest is not checked).
    Has(Vec<String>),
    /// A custom check; `Err` says what is wrong.
    With(Checker),
}

/// Exactly these bytes.
pub fn bytes(b: impl AsRef<[u8]>) -> Expect {
    Expect::Bytes(b.as_ref().to_vec())
}

/// One pattern per expected line: every substring must appear in that line.
pub fn lines(pats: Vec<Vec<String>>) -> Expect {
    Expect::Lines(pats)
}

/// A line pattern from substrings.
pub fn line(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// A custom check.
pub fn with(f: impl Fn(&[u8]) -> Result<(), String> + 'static) -> Expect {
    Expect::With(Box::new(f))
}

/// The readiness lines of `l` followed by the lines in `more`.
pub fn ready_then(l: &[SocketAddr], more: Vec<Vec<String>>) -> Expect {
    let mut v: Vec<Vec<String>> = l
        .iter()
        .map(|a| vec![format!("listening on {a}")])
        .collect();
    v.extend(more);
    Expect::Lines(v)
}

/// Bytes shown for a failure report: text where printable, escapes elsewhere.
pub fn show(b: &[u8]) -> String {
    if b.is_empty() {
        return "(empty)".into();
    }
    let mut s = String::from("\n    | ");
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => s.push_str("\\n\n    | "),
                '\t' => s.push_str("\\t"),
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => {
                    let _ = write!(s, "\\u{{{:x}}}", c as u32);
                }
                c => s.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(s, "\\x{byte:02x}");
        }
    }
    if s.len() > 4000 {
        let mut cut = 4000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        let _ = write!(s, "... ({} bytes in all)", b.len());
    }
    s
}

fn check_stream(name: &str, got: &[u8], want: &Expect) -> Option<String> {
    match want {
        Expect::Empty if got.is_empty() => None,
        Expect::Empty => Some(format!("{name} should be empty")),
        Expect::Bytes(b) if got == b.as_slice() => None,
        Expect::Bytes(b) => Some(format!("{name} should be exactly: {}", show(b))),
        Expect::Lines(pats) => {
            let text = String::from_utf8_lossy(got);
            let got_lines: Vec<&str> = text.lines().collect();
            if got_lines.len() != pats.len() {
                return Some(format!(
                    "{name} should have {} lines (got {}), matching in order: {pats:?}",
                    pats.len(),
                    got_lines.len()
                ));
            }
            for (i, (l, p)) in got_lines.iter().zip(pats).enumerate() {
                if let Some(miss) = p.iter().find(|s| !l.contains(s.as_str())) {
                    return Some(format!(
                        "{name} line {} should contain {miss:?} (all of {p:?}), got {l:?}",
                        i + 1
                    ));
                }
            }
            None
        }
        Expect::Has(parts) => {
            let text = String::from_utf8_lossy(got);
            if text
                .lines()
                .any(|l| parts.iter().all(|p| l.contains(p.as_str())))
            {
                None
            } else {
                Some(format!(
                    "{name} should have a line containing all of {parts:?}"
                ))
            }
        }
        Expect::With(f) => f(got).err().map(|e| format!("{name}: {e}")),
    }
}

impl Run {
    /// The exit code, or a negative signal number when the child died of a signal.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status
            .code()
            .unwrap_or_else(|| -self.status.signal().unwrap_or(0))
    }

    /// Assert the exit status, stdout and stderr together; on failure print all of them.
    #[track_caller]
    pub fn check(&self, code: i32, stdout: Expect, stderr: Expect) {
        let mut problems = Vec::new();
        if self.watchdog_fired {
            problems.push(format!(
                "the child was still running after {WATCHDOG:?} and was killed"
            ));
        }
        if String::from_utf8_lossy(&self.stderr).contains("panicked at") {
            problems.push("udpcat panicked (errors must be one `udpcat: error:` line)".into());
        }
        if self.code() != code {
            problems.push(format!("exit status should be {code}"));
        }
        problems.extend(check_stream("stdout", &self.stdout, &stdout));
        problems.extend(check_stream("stderr", &self.stderr, &stderr));
        if !problems.is_empty() {
            panic!(
                "{}\n  command: {}\n  status:  {:?}\n  stdout:  {}\n  stderr:  {}",
                problems.join("\n"),
                self.cmd,
                self.status,
                show(&self.stdout),
                show(&self.stderr)
            );
        }
    }
}

/// A UDP socket on 127.0.0.1, ephemeral port, with a safety read timeout.
pub fn udp4() -> UdpSocket {
    sock("127.0.0.1:0")
}

/// A UDP socket on ::1, ephemeral port, with a safety read timeout.
pub fn udp6() -> UdpSocket {
    sock("[::1]:0")
}

pub fn sock(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    s.set_read_timeout(Some(RECV_SAFETY)).unwrap();
    s
}

/// A loopback port nobody listens on (bound, then released).
pub fn free_port4() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `attempt` with a port from [`free_port4`]. Between releasing the port and using it,
/// another process may take it (tests run in parallel); `attempt` then returns
/// `(result, true)` and runs again with a new port, up to 5 times. The last result is
/// returned whatever it says, so a real bug still fails the test.
pub fn with_free_port4<T>(mut attempt: impl FnMut(u16) -> (T, bool)) -> T {
    let mut tries = 1;
    loop {
        let (result, clash) = attempt(free_port4());
        if !clash || tries == 5 {
            return result;
        }
        tries += 1;
    }
}

/// Receive one datagram (whole, up to 65536 bytes).
#[track_caller]
pub fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0; 65536];
    loop {
        match s.recv_from(&mut buf) {
            Ok((n, from)) => {
                buf.truncate(n);
                return (buf, from);
            }
            // A receive with a timeout (SO_RCVTIMEO) fails with EINTR when the test process
            // is stopped and continued, even with no signal handler (signal(7)).
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!(
                "no datagram reached {:?} within {RECV_SAFETY:?}: {e}",
                s.local_addr()
            ),
        }
    }
}

/// Receive `n` datagrams, payloads only.
#[track_caller]
pub fn recv_n(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| recv(s).0).collect()
}

/// Every datagram already waiting on `s`, without blocking.
pub fn drain(s: &UdpSocket) -> Vec<Vec<u8>> {
    s.set_nonblocking(true).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0; 65536];
    loop {
        match s.recv_from(&mut buf) {
            Ok((n, _)) => out.push(buf[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("recv on {:?}: {e}", s.local_addr()),
        }
    }
    s.set_nonblocking(false).unwrap();
    out
}

/// `Vec<Vec<u8>>` from string-ish payloads, for comparisons.
pub fn payloads<const N: usize>(p: [&[u8]; N]) -> Vec<Vec<u8>> {
    p.iter().map(|b| b.to_vec()).collect()
}

/// Every datagram `s` received, after the sender has exited: the ones in `first`
/// (already received by the test) plus whatever is still queued.
pub fn all_received(first: Vec<Vec<u8>>, s: &UdpSocket) -> Vec<Vec<u8>> {
    let mut v = first;
    v.extend(drain(s));
    v
}

/// Send one datagram from `s` to `to`.
pub fn send_to(s: &UdpSocket, payload: &[u8], to: SocketAddr) {
    let n = s
        .send_to(payload, to)
        .unwrap_or_else(|e| panic!("send {} bytes to {to}: {e}", payload.len()));
    assert_eq!(n, payload.len());
}

/// The socket's local address as udpcat prints it (`127.0.0.1:PORT`, `[::1]:PORT`).
pub fn local(s: &UdpSocket) -> String {
    s.local_addr().unwrap().to_string()
}

/// A deterministic byte pattern of length `n` covering all byte values.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A python3 script that runs argv[2:] with stdout on a pseudo-terminal and prints what reached
/// the terminal as hex, exiting with the child's status. argv[1] says how: `raw` puts the
/// terminal in raw mode (bytes exactly as written) and leaves stderr alone; `both` also puts
/// stderr on the terminal.
pub const PTY_SCRIPT: &str = r#"
import os, pty, subprocess, sys, tty
mode = sys.argv[1]
master, slave = pty.openpty()
if mode == "raw":
    tty.setraw(slave)
err = slave if mode == "both" else None
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=slave, stderr=err)
os.close(slave)
out = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
rc = p.wait()
sys.stdout.write(out.hex())
sys.exit(rc if rc >= 0 else 128 - rc)
"#;

/// A socket connected to the listener, as a client of the mocked service would have.
pub fn client(to: std::net::SocketAddr) -> std::net::UdpSocket {
    let s = if to.is_ipv4() { udp4() } else { udp6() };
    s.connect(to).unwrap();
    s
}

pub fn ask(s: &std::net::UdpSocket, payload: &[u8]) -> Vec<u8> {
    s.send(payload).unwrap();
    let mut buf = vec![0u8; 65536];
    match s.recv(&mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(e) => panic!("no reply to a datagram of {} bytes: {e}", payload.len()),
    }
}

/// Whether a process with this pid still exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty()
        && stat
            .rsplit_once(") ")
            .is_some_and(|(_, r)| !r.starts_with('Z'))
}

/// Waits (polling /proc, not a clock) until `cond` holds.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + RECV_SAFETY;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting until {what}"
        );
        std::thread::yield_now();
    }
}

/// `udpcat ARGS` with stdout on a raw pseudo-terminal ([`PTY_SCRIPT`]): its stdout comes
/// back as hex (decode it with [`pty_bytes`]), its stderr as usual.
pub fn under_pty(args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", PTY_SCRIPT, "raw", udpcat_path()])
        .args(args);
    cmd.env_remove("RUST_LOG");
    cmd
}

/// What reached the pseudo-terminal, from [`PTY_SCRIPT`]'s hex.
pub fn pty_bytes(hex: &[u8]) -> Result<Vec<u8>, String> {
    let s = std::str::from_utf8(hex).map_err(|e| e.to_string())?.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad hex from the pty helper: {s:?}"))
        })
        .collect()
}

/// The json records of `listen -f json` output, one per line.
#[track_caller]
pub fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("not a json line ({e}): {}", show(l)))
        })
        .collect()
}
