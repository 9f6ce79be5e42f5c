//! Unix datagram sockets (issue 11): listen and send on `unix:PATH`, `unix:@NAME` and any
//! address with a `/`, with peers nobody here wrote (Python's AF_UNIX, util-linux logger,
//! socat); the socket file's life; datagrams over 64 KiB; answers to named and nameless
//! senders; IP-only options refused.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::util::*;

fn dir(name: &str) -> PathBuf {
    scratch_dir(&format!("unix-{name}"))
}

fn unix(path: &Path) -> String {
    format!("unix:{}", path.display())
}

/// A receiving Unix socket bound in `dir`, with a safety timeout.
fn sink(dir: &Path, name: &str) -> (UnixDatagram, PathBuf) {
    let path = dir.join(name);
    let s = UnixDatagram::bind(&path).expect("bind a Unix socket");
    s.set_read_timeout(Some(RECV_SAFETY)).unwrap();
    (s, path)
}

fn recv_unix(s: &UnixDatagram) -> (Vec<u8>, Option<PathBuf>) {
    let mut buf = vec![0u8; 1 << 20];
    let (n, from) = s
        .recv_from(&mut buf)
        .expect("a datagram on the Unix socket");
    (buf[..n].to_vec(), from.as_pathname().map(Path::to_path_buf))
}

#[test]
fn listen_shows_named_and_nameless_senders_and_removes_its_socket() {
    let d = dir("listen");
    let path = d.join("l.sock");
    let addr = unix(&path);
    let mut p = Proc::spawn(udpcat(&["listen", "-s", "-c", "2", &addr]));
    let ready = p.read_stderr_line().expect("readiness line");
    assert_eq!(ready.trim_end(), format!("listening on {addr}"));
    assert!(path.exists(), "the socket file exists once listen is ready");
    let named = d.join("named.sock");
    let a = UnixDatagram::bind(&named).unwrap();
    a.send_to(b"from a name", &path).unwrap();
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"from nobody", &path)
        .unwrap();
    let run = p.finish();
    run.check(
        0,
        bytes(format!(
            "unix:{}\tfrom a name\nunix:\tfrom nobody\n",
            named.display()
        )),
        lines(vec![line(&["listening on unix:"])]),
    );
    assert!(!path.exists(), "listen removes its socket file at exit");
}

/// A relative path (`./s.sock`) is a Unix socket too: --ready-file names it `unix:PATH`,
/// --stats counts its datagrams, and its file goes at exit.
#[test]
fn a_relative_path_with_ready_file_and_stats() {
    let d = dir("relative");
    let mut cmd = udpcat(&[
        "listen",
        "--ready-file",
        "ready",
        "--stats",
        "-c",
        "1",
        "./rel.sock",
    ]);
    cmd.current_dir(&d);
    let mut p = Proc::spawn(cmd);
    p.read_stderr_line().expect("readiness line");
    assert_eq!(
        std::fs::read_to_string(d.join("ready")).unwrap(),
        "unix:./rel.sock\n"
    );
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"hi", d.join("rel.sock"))
        .unwrap();
    let run = p.finish();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.code(), 0, "{err}");
    assert_eq!(run.stdout, b"hi\n");
    assert!(
        err.contains("udpcat: received 1 datagram, 2 bytes in "),
        "{err}"
    );
    assert!(!d.join("rel.sock").exists(), "the socket file goes at exit");
}

/// --timeout on a Unix socket: exit 3 when nothing came, saying so, and the file is gone.
#[test]
fn timeout_on_a_unix_socket_exits_3_and_removes_it() {
    let d = dir("timeout");
    let path = d.join("t.sock");
    let addr = unix(&path);
    run(&["listen", "-t", "200ms", &addr], b"").check(
        3,
        Expect::Empty,
        lines(vec![
            line(&[&format!("listening on {addr}")]),
            line(&["udpcat: error: timed out after 200ms without a datagram"]),
        ]),
    );
    assert!(!path.exists(), "the socket file goes at exit");
}

/// --echo cannot answer a sender whose socket has no name: one warning however many there
/// are, counted in --stats; a named sender still gets its echo.
#[test]
fn echo_to_nameless_senders_warns_once_and_counts_them() {
    let d = dir("echo-nameless");
    let path = d.join("e.sock");
    let mut p = Proc::spawn(udpcat(&[
        "listen",
        "--echo",
        "--stats",
        "-c",
        "3",
        &unix(&path),
    ]));
    p.read_stderr_line().expect("readiness line");
    for m in [&b"one"[..], b"two"] {
        UnixDatagram::unbound().unwrap().send_to(m, &path).unwrap();
    }
    let named = d.join("named.sock");
    let c = UnixDatagram::bind(&named).unwrap();
    c.set_read_timeout(Some(RECV_SAFETY)).unwrap();
    c.send_to(b"three", &path).unwrap();
    assert_eq!(recv_unix(&c).0, b"three");
    let run = p.finish();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.code(), 0, "{err}");
    assert_eq!(run.stdout, b"one\ntwo\nthree\n");
    assert_eq!(err.matches("it cannot be echoed").count(), 1, "{err}");
    assert!(
        err.contains("; 2 datagrams from nameless senders not echoed"),
        "{err}"
    );
}

#[test]
fn json_from_is_null_for_a_nameless_sender_and_to_is_the_socket() {
    let d = dir("json");
    let path = d.join("j.sock");
    let addr = unix(&path);
    let mut p = Proc::spawn(udpcat(&["listen", "-f", "json", "-c", "1", &addr]));
    p.read_stderr_line().expect("readiness line");
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"hi", &path)
        .unwrap();
    let run = p.finish();
    assert_eq!(run.code(), 0);
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).expect("one json line");
    assert!(v["from"].is_null(), "{v}");
    assert_eq!(v["to"], addr);
    assert_eq!(v["text"], "hi");
}

#[test]
fn signals_remove_the_socket_file_too() {
    for (sig, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let d = dir("signal");
        let path = d.join("s.sock");
        let mut p = Proc::spawn(udpcat(&["listen", &unix(&path)]));
        p.read_stderr_line().expect("readiness line");
        assert!(path.exists());
        p.signal(sig);
        assert_eq!(p.finish().code(), code);
        assert!(!path.exists(), "{sig}: the socket file was left behind");
    }
}

/// A socket file nobody listens on is replaced; a live one, or a file that is not a socket,
/// is an error naming the path, and the file is left alone.
#[test]
fn stale_live_and_regular_files_at_the_path() {
    let d = dir("stale");
    let path = d.join("x.sock");
    drop(UnixDatagram::bind(&path).unwrap()); // a stale socket file: its socket is gone
    let mut p = Proc::spawn(udpcat(&["listen", "-c", "1", &unix(&path)]));
    p.read_stderr_line()
        .expect("a stale socket file is replaced");
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"ok", &path)
        .unwrap();
    p.finish()
        .check(0, bytes("ok\n"), lines(vec![line(&["listening on unix:"])]));

    // A live socket: the other listener keeps it.
    let live = UnixDatagram::bind(&path).unwrap();
    run(&["listen", &unix(&path)], b"").check(
        1,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error:",
            &unix(&path),
            "another process listens",
        ])]),
    );
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"still mine", &path)
        .expect("the live socket is untouched");
    assert_eq!(recv_unix(&live).0, b"still mine");
    drop(live);
    std::fs::remove_file(&path).unwrap();

    // A regular file.
    std::fs::write(&path, "precious").unwrap();
    run(&["listen", &unix(&path)], b"").check(
        1,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error:",
            &unix(&path),
            "not a socket",
        ])]),
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn send_message_stdin_and_hex_to_a_unix_socket() {
    let d = dir("send");
    let (s, path) = sink(&d, "r.sock");
    // Any ADDR with a `/` is a Unix socket.
    run(&["send", path.to_str().unwrap(), "hello", "there"], b"").check(
        0,
        Expect::Empty,
        Expect::Empty,
    );
    assert_eq!(recv_unix(&s), (b"hello there".to_vec(), None));
    run(&["send", &unix(&path)], b"one\ntwo\n").check(0, Expect::Empty, Expect::Empty);
    assert_eq!(recv_unix(&s).0, b"one");
    assert_eq!(recv_unix(&s).0, b"two");
    run(&["send", "--hex", &unix(&path)], b"00ff\n").check(0, Expect::Empty, Expect::Empty);
    assert_eq!(recv_unix(&s).0, b"\x00\xff");
}

#[test]
fn bind_names_the_sending_socket() {
    let d = dir("bind");
    let (s, path) = sink(&d, "r.sock");
    let me = d.join("me.sock");
    run(&["send", "--bind", &unix(&me), &unix(&path), "x"], b"").check(
        0,
        Expect::Empty,
        Expect::Empty,
    );
    assert_eq!(recv_unix(&s), (b"x".to_vec(), Some(me.clone())));
    assert!(!me.exists(), "send removes the socket file it bound");
}

/// --reply and --wait: the sending socket gets a name (Linux autobind) so the listener can
/// answer; the listener's --echo answers it.
#[test]
fn reply_and_wait_against_a_unix_echo() {
    let d = dir("reply");
    let path = d.join("echo.sock");
    let mut l = Proc::spawn(udpcat(&["listen", "--echo", &unix(&path)]));
    l.read_stderr_line().expect("readiness line");
    run(&["send", "--reply", &unix(&path), "ping"], b"").check(0, bytes("ping\n"), Expect::Empty);
    run(&["send", "--wait", "300ms", &unix(&path), "anyone"], b"").check(
        0,
        bytes("anyone\n"),
        Expect::Empty,
    );
    l.signal(Signal::SIGTERM);
    assert_eq!(l.finish().code(), 143);
}

#[test]
fn abstract_names_listen_and_send() {
    let name = format!("udpcat-test-{}", std::process::id());
    let addr = format!("unix:@{name}");
    let mut p = Proc::spawn(udpcat(&["listen", "-s", "-c", "1", &addr]));
    assert_eq!(
        p.read_stderr_line().expect("readiness").trim_end(),
        format!("listening on {addr}")
    );
    run(&["send", &addr, "abstract"], b"").check(0, Expect::Empty, Expect::Empty);
    p.finish().check(
        0,
        bytes("unix:\tabstract\n"),
        lines(vec![line(&["listening on unix:@"])]),
    );
}

/// 100 KiB datagrams both ways, whole; a record the socket refuses is named with its size.
#[test]
fn datagrams_over_64_kib_cross_whole_and_too_large_is_named() {
    let d = dir("big");
    let big = pattern(100 * 1024);
    // listen receives it whole.
    let path = d.join("l.sock");
    let mut p = Proc::spawn(udpcat(&["listen", "-f", "raw", "-c", "1", &unix(&path)]));
    p.read_stderr_line().expect("readiness");
    UnixDatagram::unbound()
        .unwrap()
        .send_to(&big, &path)
        .unwrap();
    let run_l = p.finish();
    assert_eq!(run_l.code(), 0);
    assert_eq!(run_l.stdout, big, "a 100 KiB datagram must not be cut");
    // send sends it whole.
    let (s, to) = sink(&d, "r.sock");
    run(&["send", "--binary", "--whole", &unix(&to)], &big).check(0, Expect::Empty, Expect::Empty);
    assert_eq!(recv_unix(&s).0, big);
    // 3 MiB is more than a Unix socket takes by default.
    let huge = pattern(3 << 20);
    run(&["send", "--binary", "--whole", &unix(&to)], &huge).check(
        1,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error: datagram 1 (3145728 bytes) is larger than",
            &unix(&to),
        ])]),
    );
}

#[test]
fn a_socket_file_nobody_listens_on_is_refused() {
    let d = dir("refused");
    let path = d.join("gone.sock");
    drop(UnixDatagram::bind(&path).unwrap());
    run(&["send", &unix(&path), "x"], b"").check(
        4,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error:",
            &unix(&path),
            "nothing listens",
        ])]),
    );
}

#[test]
fn ip_only_options_with_a_unix_address_are_usage_errors() {
    let d = dir("iponly");
    let p = unix(&d.join("x.sock"));
    for (args, flag) in [
        (vec!["listen", "--join", "239.1.1.1", &p], "--join"),
        (vec!["listen", "--allow", "127.0.0.1", &p], "--allow"),
        (vec!["listen", "--reuse-port", &p], "--reuse-port"),
        (vec!["-4", "listen", &p], "-4"),
        (vec!["send", "--broadcast", &p, "x"], "--broadcast"),
        (vec!["send", "--ttl", "3", &p, "x"], "--ttl"),
        (vec!["-6", "send", &p, "x"], "-6"),
        (vec!["send", "-b", "127.0.0.1", &p, "x"], "--bind"),
    ] {
        // --bind has its own words (use --bind unix:PATH); the rest say why.
        let why: &[&str] = if flag == "--bind" {
            &["is not a Unix socket", "use --bind unix:PATH"]
        } else {
            &["is for IP sockets, and", "is a Unix socket"]
        };
        let mut want = vec!["udpcat: error:", flag];
        want.extend_from_slice(why);
        run(&args, b"").check(2, Expect::Empty, lines(vec![line(&want)]));
    }
}

/// Peers nobody here wrote: util-linux logger (syslog to a local socket) and socat.
#[test]
fn logger_and_socat_talk_to_udpcat() {
    let d = dir("peers");
    let path = d.join("log.sock");
    let mut p = Proc::spawn(udpcat(&["listen", "-c", "2", &unix(&path)]));
    p.read_stderr_line().expect("readiness");
    let status = Command::new("logger")
        .args([
            "-u",
            path.to_str().unwrap(),
            "-t",
            "udpcat-test",
            "hello syslog",
        ])
        .status()
        .expect("logger (util-linux) runs");
    assert!(status.success());
    let status = Command::new("socat")
        .args(["-u", "-", &format!("UNIX-SENDTO:{}", path.display())])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().map(|mut i| i.write_all(b"from socat"));
            c.wait()
        })
        .expect("socat runs");
    assert!(status.success());
    let run = p.finish();
    assert_eq!(run.code(), 0, "{}", show(&run.stderr));
    let out = String::from_utf8_lossy(&run.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("udpcat-test") && lines[0].ends_with("hello syslog"),
        "{out}"
    );
    assert_eq!(lines[1], "from socat");

    // socat receives what udpcat sends.
    let rpath = d.join("socat.sock");
    let socat = Command::new("socat")
        .args(["-u", &format!("UNIX-RECV:{}", rpath.display()), "-"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("socat runs");
    let deadline = std::time::Instant::now() + RECV_SAFETY;
    while !rpath.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "socat never made its socket"
        );
        std::thread::yield_now();
    }
    run_ok_send(&rpath);
    // What socat received, read as it writes it (then it is stopped: it would wait forever).
    let mut socat = socat;
    let mut got = vec![0u8; b"to socat".len()];
    {
        use std::io::Read;
        let out = socat.stdout.as_mut().expect("socat's stdout");
        out.read_exact(&mut got)
            .expect("socat wrote what it received");
    }
    let _ = socat.kill();
    let _ = socat.wait();
    assert_eq!(got, b"to socat");
}

fn run_ok_send(path: &Path) {
    run(&["send", &unix(path), "to socat"], b"").check(0, Expect::Empty, Expect::Empty);
}

/// --forward from UDP into a local Unix socket (syslog over UDP into a /dev/log-style
/// socket), whose answer comes back to the peer; and --exec on a Unix socket with the path
/// in the environment.
#[test]
fn forward_into_a_unix_socket_and_exec_on_one() {
    let d = dir("roles");
    let (s, path) = sink(&d, "devlog.sock");
    let l = spawn_listen(&["-c", "1", "--forward", &unix(&path), "127.0.0.1:0"], 1);
    let peer = udp4();
    peer.connect(l.addr()).unwrap();
    peer.send(b"<13>relayed").unwrap();
    let mut buf = [0u8; 64];
    let (n, relay) = s.recv_from(&mut buf).expect("the relayed datagram");
    assert_eq!(&buf[..n], b"<13>relayed");
    // The relay's socket has a name, so DEST can answer it, and the answer reaches the peer.
    s.send_to_addr(b"ack", &relay)
        .expect("DEST answers the relay's socket");
    assert_eq!(recv(&peer).0, b"ack");
    assert_eq!(l.finish().code(), 0);

    let epath = d.join("exec.sock");
    let mut p = Proc::spawn(udpcat(&[
        "listen",
        "-c",
        "1",
        "--exec",
        "printf '%s|%s|%s' \"$UDPCAT_PEER_ADDR\" \"${UDPCAT_PEER_PORT-none}\" \"$(cat)\"",
        &unix(&epath),
    ]));
    p.read_stderr_line().expect("readiness");
    let me = d.join("client.sock");
    let c = UnixDatagram::bind(&me).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.send_to(b"q", &epath).unwrap();
    let (reply, _) = recv_unix(&c);
    assert_eq!(reply, format!("{}|none|q", me.display()).into_bytes());
    assert_eq!(p.finish().code(), 0);
}
