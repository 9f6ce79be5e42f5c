//! udpcat against a peer written as a plain Python socket script.

use std::io::BufRead;
use std::process::Command;

use crate::util::*;

/// Binds 127.0.0.1:0, prints the port, receives one datagram and prints it as hex with
/// its length, the way a throw-away test server would.
const PY_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
data, addr = s.recvfrom(65535)
print(len(data), data.hex())
"#;

const PY_CLIENT: &str = r#"
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.sendto("héllo from python".encode(), (sys.argv[1], int(sys.argv[2])))
print(s.getsockname()[1])
"#;

#[test]
fn python_receiver_gets_what_udpcat_sends() {
    let mut py = Command::new("python3");
    py.args(["-c", PY_SERVER]);
    let mut server = Proc::spawn(py);
    let port_line = server.read_stdout_line();
    let port = String::from_utf8_lossy(&port_line).trim().to_string();
    let to = format!("127.0.0.1:{port}");
    run(&["send", &to, "hello", "python", "é"], b"").check(0, Expect::Empty, Expect::Empty);
    let want = "hello python é";
    server.finish().check(
        0,
        bytes(format!(
            "{port}\n{} {}\n",
            want.len(),
            want.bytes().map(|b| format!("{b:02x}")).collect::<String>()
        )),
        Expect::Empty,
    );
}

#[test]
fn udpcat_listen_prints_what_python_sends() {
    for (listen_on, host) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
        let l = spawn_listen(&["-s", "-c", "1", listen_on], 1);
        let port = l.addr().port().to_string();
        let out = Command::new("python3")
            .args(["-c", PY_CLIENT, host, &port])
            .output()
            .expect("run python3");
        assert!(out.status.success(), "python3 client failed: {out:?}");
        let src_port = out.stdout.lines().next().unwrap().unwrap();
        let from = if host.contains(':') {
            format!("[{host}]:{src_port}")
        } else {
            format!("{host}:{src_port}")
        };
        l.finish_check(0, bytes(format!("{from}\th\u{e9}llo from python\n")));
    }
}
