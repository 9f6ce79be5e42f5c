#!/usr/bin/env python3
"""Re-check the README's "udpcat vs nc -u vs ncat vs socat" table on this machine.

    UDPCAT=target/release/udpcat python3 examples/compare/compare.py

Needs nc (netcat-openbsd), ncat and socat on PATH (Debian: apt-get install netcat-openbsd
ncat socat). Loopback only. Every case prints the exact shell command it ran and what
happened; the README table is a summary of that output (see README.md next to this file).

A listener counts as bound once its port shows up in /proc/net/udp{,6}: the other tools
have no ready signal of their own, which is one of the things compared.
"""

import os
import pty
import shlex
import socket
import subprocess
import sys
import time

UDPCAT = os.environ.get("UDPCAT", "udpcat")
TOOLS = ["nc", "ncat", "socat", "udpcat"]


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def bound(port):
    """The local addresses bound to UDP `port`, from /proc/net/udp and udp6."""
    found = []
    for path, v6 in (("/proc/net/udp", False), ("/proc/net/udp6", True)):
        try:
            rows = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local = row.split()[1]
            addr, p = local.split(":")
            if int(p, 16) == port:
                found.append("v6:" + addr if v6 else "v4:" + addr)
    return found


def wait_bound(port, proc, n=1):
    for _ in range(100):
        if len(bound(port)) >= n or proc.poll() is not None:
            return
        time.sleep(0.02)


def shell(cmd):
    """The command to run: UDPCAT becomes the binary under test."""
    return cmd.replace("UDPCAT", shlex.quote(UDPCAT))


def shown(cmd):
    """The command as printed."""
    return cmd.replace("UDPCAT", "udpcat")


class Listener:
    """A tool started as `sh -c CMD` with stdout on a pipe (or a pty)."""

    def __init__(self, cmd, port, tty=False, sockets=1):
        self.cmd = shell(cmd)
        print(f"  $ {shown(cmd)}")
        if tty:
            self.master, slave = pty.openpty()
            self.p = subprocess.Popen(["sh", "-c", "exec " + self.cmd], stdin=subprocess.DEVNULL,
                                      stdout=slave, stderr=subprocess.PIPE)
            os.close(slave)
            self.fd = self.master
        else:
            self.p = subprocess.Popen(["sh", "-c", "exec " + self.cmd], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.fd = self.p.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.out = b""
        wait_bound(port, self.p, sockets)

    def read_for(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            try:
                chunk = os.read(self.fd, 1 << 20)
                if not chunk:
                    break
                self.out += chunk
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break
        return self.out

    def read_until(self, data, seconds=2.0):
        end = time.time() + seconds
        while data not in self.out and time.time() < end:
            self.read_for(0.05)
        return data in self.out

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
        try:
            _, err = self.p.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            self.p.kill()
            _, err = self.p.communicate()
        return err.decode(errors="replace")


def run(cmd, stdin=b"", timeout=5):
    cmd = shell(cmd)
    try:
        r = subprocess.run(["sh", "-c", cmd], input=stdin, capture_output=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr.decode(errors="replace").strip()
    except subprocess.TimeoutExpired as e:
        return "still running after %ss (killed)" % timeout, e.stdout or b"", ""


def udp(family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0) if family == socket.AF_INET else ("::1", 0))
    s.settimeout(1.0)
    return s


def drain(s, seconds=0.5):
    got = []
    s.settimeout(seconds)
    while True:
        try:
            got.append(s.recv(70000))
        except (socket.timeout, ConnectionRefusedError):
            return got


# ---------------------------------------------------------------------------------------------

LISTEN = {
    "nc": "nc -u -l 127.0.0.1 {port}",
    "ncat": "ncat -u -l 127.0.0.1 {port}",
    "socat": "socat -u UDP-RECV:{port},bind=127.0.0.1 STDOUT",
    "socat UDP-LISTEN": "socat -u UDP-LISTEN:{port},bind=127.0.0.1 STDOUT",
    "udpcat": "UDPCAT listen -f raw 127.0.0.1:{port}",
}


def latching():
    print("\n## 1. Latching: A sends, then B, then A again. Which arrive?")
    cmds = dict(LISTEN)
    cmds["nc -k"] = "nc -u -l -k 127.0.0.1 {port}"
    cmds["ncat -k"] = "ncat -u -l -k 127.0.0.1 {port}"
    for tool, cmd in cmds.items():
        port = free_port()
        l = Listener(cmd.format(port=port), port)
        a, b = udp(), udp()
        a.sendto(b"from-A\n", ("127.0.0.1", port))
        first = l.read_until(b"from-A")
        b.sendto(b"from-B\n", ("127.0.0.1", port))
        a.sendto(b"A-again\n", ("127.0.0.1", port))
        l.read_for(0.5)
        err = l.stop()
        got = [m for m in ("from-A", "from-B", "A-again") if m.encode() in l.out]
        latched = first and "from-B" not in got
        verdict = ("printed nothing" if not first else
                   "LATCHED onto A" if latched else "heard both")
        print(f"  {tool}: printed {got}; {verdict}"
              + (f"; stderr {err.strip()!r}" if err.strip() else ""))


def truncation():
    print("\n## 2. Truncation: one 60000-byte datagram. How many bytes are printed?")
    for tool, cmd in LISTEN.items():
        if tool == "socat UDP-LISTEN":
            continue
        port = free_port()
        l = Listener(cmd.format(port=port), port)
        udp().sendto(b"x" * 60000, ("127.0.0.1", port))
        l.read_for(1.0)
        l.stop()
        n = l.out.count(b"x")
        print(f"  {tool}: {n} of 60000 bytes" + ("" if n == 60000 else "  TRUNCATED"))


SEND = {
    "nc": "nc -u -w 1 127.0.0.1 {port}",
    "ncat": "ncat -u --send-only 127.0.0.1 {port}",
    "socat": "socat -u STDIN UDP-SENDTO:127.0.0.1:{port}",
    "udpcat": "UDPCAT send 127.0.0.1:{port}",
}


def boundaries():
    print("\n## 3. Datagram boundaries: stdin 'one\\ntwo\\nthree\\n' (a file). Datagrams sent?")
    for tool, cmd in SEND.items():
        r = udp()
        port = r.getsockname()[1]
        path = "/tmp/compare-lines.txt"
        with open(path, "wb") as f:
            f.write(b"one\ntwo\nthree\n")
        c = cmd.format(port=port) + " < " + path
        print(f"  $ {shown(c)}")
        status, _, err = run(c)
        got = drain(r)
        print(f"  {tool}: status {status}; {len(got)} datagram(s): {got}")


def closed_port():
    s = udp()
    port = s.getsockname()[1]
    s.close()
    return port


def exit_statuses():
    print("\n## 4a. Exit status when nothing listens on the port (port unreachable)")
    cmds = {
        "nc": "echo hi | nc -u -w 1 127.0.0.1 {port}",
        "ncat": "echo hi | ncat -u 127.0.0.1 {port}",
        "socat": "echo hi | socat - UDP:127.0.0.1:{port}",
        "udpcat": "UDPCAT send 127.0.0.1:{port} hi",
    }
    for tool, cmd in cmds.items():
        c = cmd.format(port=closed_port())
        print(f"  $ {shown(c)}")
        status, out, err = run(c)
        print(f"  {tool}: status {status}; stderr {err!r}")

    print("\n## 4b. Waiting for a reply: exit status when the peer answers, and when it is silent")
    cmds = {
        "nc": "echo hi | nc -u -w 1 127.0.0.1 {port}",
        "ncat": "echo hi | ncat -u -i 1 127.0.0.1 {port}",
        "socat": "echo hi | socat -T 1 - UDP:127.0.0.1:{port}",
        "udpcat": "UDPCAT send --reply --timeout 1s 127.0.0.1:{port} hi",
    }
    for tool, cmd in cmds.items():
        for mode in ("echo", "silent"):
            peer = udp()
            port = peer.getsockname()[1]
            c = cmd.format(port=port)
            p = subprocess.Popen(["sh", "-c", shell(c)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            try:
                data, addr = peer.recvfrom(70000)
                if mode == "echo":
                    peer.sendto(data, addr)
            except socket.timeout:
                pass
            try:
                out, err = p.communicate(timeout=5)
                status = p.returncode
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                status = "still running after 5s (killed)"
            print(f"  $ {shown(c)}    # peer {mode}")
            print(f"  {tool} ({mode} peer): status {status}; stdout {out!r}; "
                  f"stderr {err.decode(errors='replace').strip()!r}")


def terminal_safety():
    print("\n## 5. Terminal safety: a peer sends ESC ] 0 ; owned BEL ESC [ 2 J (set the window"
          " title, clear the screen). Does ESC reach the terminal?")
    payload = b"\x1b]0;owned\x07\x1b[2Jhello\n"
    cmds = dict(LISTEN)
    del cmds["socat UDP-LISTEN"]
    cmds["udpcat"] = "UDPCAT listen 127.0.0.1:{port}"
    for tool, cmd in cmds.items():
        port = free_port()
        l = Listener(cmd.format(port=port), port, tty=True)
        udp().sendto(payload, ("127.0.0.1", port))
        l.read_until(b"hello")
        l.stop()
        os.close(l.master)
        raw = b"\x1b" in l.out
        print(f"  {tool}: terminal got {l.out!r}; "
              + ("ESC passed RAW" if raw else "escaped, no ESC byte"))


def ready_signal():
    print("\n## 6. Ready signal: listening on port 0 with the tool's verbose flag, what does"
          " it say once bound (stderr, first second)?")
    cmds = {
        "nc": "nc -v -u -l 127.0.0.1 0",
        "ncat": "ncat -v -u -l 127.0.0.1 0",
        "socat": "socat -d -d -u UDP-RECV:0,bind=127.0.0.1 STDOUT",
        "udpcat": "UDPCAT listen --ready-file /tmp/compare-ready 127.0.0.1:0",
    }
    for tool, cmd in cmds.items():
        print(f"  $ {shown(cmd)}")
        p = subprocess.Popen(["sh", "-c", "exec " + shell(cmd)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)  # a fixed wait is fine here: this only records what the tools print
        p.terminate()
        _, err = p.communicate()
        lines = [l for l in err.decode(errors="replace").splitlines() if l.strip()]
        print(f"  {tool}: stderr {lines}")
        if tool == "udpcat":
            print(f"  udpcat: ready file {open('/tmp/compare-ready').read()!r}")
            os.unlink("/tmp/compare-ready")


HOSTS_V6 = "/tmp/compare-hosts"


def localhost():
    print("\n## 7. localhost: listen on `localhost`, send once to 127.0.0.1 and once to ::1"
          " (a fresh listener for each, so latching does not matter)")
    cmds = {
        "nc": "nc -u -l localhost {port}",
        "ncat": "ncat -u -l localhost {port}",
        "socat": "socat -u UDP-RECV:{port},bind=localhost STDOUT",
        "udpcat": "UDPCAT listen localhost:{port}",
    }
    print(f"  7a. this machine's /etc/hosts; getaddrinfo('localhost') gives "
          f"{[a[4][0] for a in socket.getaddrinfo('localhost', 9, type=socket.SOCK_DGRAM)]}")
    localhost_with(cmds, "{cmd}")
    # The usual Debian/Ubuntu hosts file names ::1 localhost too. Give the tools that file in a
    # private mount namespace (needs root and unshare; skipped otherwise).
    with open(HOSTS_V6, "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
    wrap = ("unshare -m sh -c 'mount --bind " + HOSTS_V6 + " /etc/hosts && exec {cmd}'")
    status, out, err = run(wrap.format(cmd="getent ahosts localhost"))
    if status != 0:
        print(f"  7b. skipped: cannot bind-mount a hosts file ({err})")
        return
    order = [l.split()[0] for l in out.decode().splitlines() if "DGRAM" in l]
    print(f"  7b. hosts file with '::1 localhost' too; getaddrinfo('localhost') gives {order}")
    localhost_with(cmds, wrap)


def localhost_with(cmds, wrap):
    for tool, cmd in cmds.items():
        heard = []
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            port = free_port()
            l = Listener(wrap.format(cmd=cmd.format(port=port)), port)
            where = bound(port)
            udp(family).sendto(b"to-" + host.encode() + b"\n", (host, port))
            if l.read_until(b"to-", 1.0):
                heard.append(host)
            l.stop()
        print(f"  {tool}: bound {where}; heard datagrams sent to {heard}")


def versions():
    print("## Versions")
    for cmd in ("dpkg-query -W netcat-openbsd ncat socat", "ncat --version",
                "socat -V | sed -n 2p", "UDPCAT --version", "uname -sr"):
        _, out, err = run(cmd)
        print(f"  $ {shown(cmd)}\n    " + (out.decode() + err).strip().replace("\n", "\n    "))


if __name__ == "__main__":
    versions()
    latching()
    truncation()
    boundaries()
    exit_statuses()
    terminal_safety()
    ready_signal()
    localhost()
