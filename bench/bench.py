#!/usr/bin/env python3
"""Driver of the udpcat benchmark (issue 3). Run it through bench/run, which builds udpcat,
compiles the floor programs and installs the other contestants first.

Every scenario runs its contestants side by side, alternating them, REPS times each, and
reports medians. Only loopback (127.0.0.1) and ports the kernel picks are used. Every process
is started in its own session and killed (whole process group) on the way out.

How a receiver run is timed. The clock starts just before the sender starts. A receiver that
stops by itself (udpcat and floor --count) stops the clock when it exits. One that does not
(socat, nc, ncat, or any receiver that lost datagrams and so never reaches its count) is
watched through /proc: once the sender has exited, the receiver's socket queue
(/proc/net/udp rx_queue) is empty and its output (/proc/PID/io wchar) has not grown for a
settle period, it is "drained": the clock is stopped at its last write, and it is sent SIGINT.
No idle timeout is ever added to a time. Peak RSS is VmHWM from /proc/PID/status, sampled
while the receiver runs (last sample just before it is stopped, or <= SAMPLE ms before it
exits by itself). Kernel drops are the socket's `drops` column of /proc/net/udp.
"""

import argparse
import atexit
import datetime
import hashlib
import json
import mmap
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# --------------------------------------------------------------------------------------------
# configuration


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (< 30 s)")
    ap.add_argument("--udpcat", required=True, help="udpcat binary")
    ap.add_argument("--udpcat-musl", default="", help="the static musl release binary (start-up row); empty: none")
    ap.add_argument("--floor-dir", required=True, help="directory of the compiled floor programs")
    ap.add_argument("--results", default=os.environ.get("BENCH_RESULTS", os.path.join(HERE, "results.md")))
    ap.add_argument("--command", default="bench/run", help="command line shown in the report")
    ap.add_argument("--unavailable", default="", help="comma-separated tools that could not be installed")
    a = ap.parse_args()
    q = a.quick
    a.reps = env_int("BENCH_REPS", 1 if q else 3)
    a.lines = env_int("BENCH_LINES", 20000 if q else 1_000_000)
    a.bulk_bytes = env_int("BENCH_BULK_MIB", 8 if q else 1024) * 1024 * 1024
    # Below 8 KiB per datagram, socat and nc need ~6 s per GiB on 2 cores; the full GiB is
    # kept by default all the same: at 256 MiB udpcat's segmented run took ~0.1 s, so process
    # start and the end of the run weighed on its ratio to the C pairs.
    a.bulk_small_bytes = env_int("BENCH_BULK_SMALL_MIB", 8 if q else 1024) * 1024 * 1024
    a.rtt = env_int("BENCH_RTT", 1000 if q else 20000)
    # round trips swing with where the scheduler puts the two processes: more runs, they are short
    a.rtt_reps = env_int("BENCH_RTT_REPS", 1 if q else max(9, a.reps))
    a.startup_runs = env_int("BENCH_STARTUP_RUNS", 10 if q else 60)
    a.startup_warmup = env_int("BENCH_STARTUP_WARMUP", 3 if q else 10)
    a.diag = env_int("BENCH_DIAG", 0 if q else 1)
    a.rates = [float(x) for x in os.environ.get("BENCH_RATES", "1,10,100,1000,10000,100000").split(",") if x.strip()]
    a.rate_seconds = float(os.environ.get("BENCH_RATE_SECONDS") or (0.5 if q else 2))
    a.rate_reps = env_int("BENCH_RATE_REPS", 1)
    sc = os.environ.get("BENCH_SCENARIOS", "lines,bulk,rtt,startup,rate,forward,replay")
    a.scenarios = [s.strip() for s in sc.split(",") if s.strip()]
    sizes = os.environ.get("BENCH_BULK_SIZES", "1472,65507")
    a.bulk_sizes = [int(s) for s in sizes.split(",") if s.strip()]
    a.unavailable = {t for t in a.unavailable.split(",") if t}
    a.forward_lines = env_int("BENCH_FORWARD_LINES", 20000 if q else 1_000_000)
    a.forward_rate = float(os.environ.get("BENCH_FORWARD_RATE") or 100000)
    a.forward_paced_lines = env_int("BENCH_FORWARD_PACED_LINES", 5000 if q else 200_000)
    a.forward_reps = env_int("BENCH_FORWARD_REPS", a.reps)
    a.replay_datagrams = env_int("BENCH_REPLAY_DATAGRAMS", 10000 if q else 200_000)
    a.replay_sizes = [int(s) for s in os.environ.get("BENCH_REPLAY_SIZES", "64,1400").split(",") if s.strip()]
    if not a.replay_sizes or min(a.replay_sizes) < 4 or max(a.replay_sizes) > 65507:
        ap.error("BENCH_REPLAY_SIZES: sizes from 4 (the sequence number) to 65507 bytes")
    a.replay_reps = env_int("BENCH_REPLAY_REPS", a.reps)
    a.replay_localnet = env_int("BENCH_REPLAY_LOCALNET", 1)
    return a


ARGS = None
RAW = {}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# processes

CHILDREN = []


def spawn(argv, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    CHILDREN.append(p)
    return p


def stop(p, sig=signal.SIGINT, grace=5.0):
    """Signal p's process group, wait, escalate to SIGKILL."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    return p.returncode


def kill_all():
    for p in CHILDREN:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(2)
            except Exception:
                pass


def on_signal(sig, _frame):
    kill_all()
    raise SystemExit(128 + sig)


class Waiter:
    """Reaps a process in a thread (blocked in wait4, it costs no CPU), recording the moment it
    exited and the CPU time it used (user + system, its children included). Once a Waiter
    owns a process, nothing else may wait for it: use Waiter.stop, not stop()."""

    def __init__(self, p):
        self.p = p
        self.t = None
        self.cpu = None
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        try:
            _, status, ru = os.wait4(self.p.pid, 0)
            self.cpu = ru.ru_utime + ru.ru_stime
            self.p.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            self.p.returncode = self.p.returncode if self.p.returncode is not None else -1
        self.t = time.perf_counter()

    @property
    def done(self):
        return self.t is not None

    def join(self, timeout=None):
        self.th.join(timeout)
        return self.done

    def stop(self, sig=signal.SIGINT, grace=5.0):
        if not self.done:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
            if not self.join(grace):
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.join()
        return self.p.returncode


def drain_stderr(p, sink):
    def run():
        for line in p.stderr:
            sink.append(line.decode(errors="replace"))
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def wait_ready_stderr(p, what, timeout=15.0):
    """Read p's stderr until 'listening on HOST:PORT'; returns (port, lines read)."""
    import select
    lines = []
    deadline = time.monotonic() + timeout
    buf = b""
    fd = p.stderr.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.decode(errors="replace")
                lines.append(line)
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m:
                    if buf:
                        lines.append(buf.decode(errors="replace"))
                    return int(m.group(1)), lines
        elif p.poll() is not None:
            break
    raise RuntimeError(f"{what}: did not become ready: {' | '.join(lines)} {buf!r}")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def udp_socket_row(port):
    """(rx_queue bytes, drops) of the socket bound to 127.0.0.1:port or 0.0.0.0:port, or None."""
    want = (f"0100007F:{port:04X}", f"00000000:{port:04X}")
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] in want:
                    rx = int(parts[4].split(":")[1], 16)
                    return rx, int(parts[12])
    except (OSError, IndexError, ValueError):
        pass
    return None


def wait_port_bound(p, port, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if udp_socket_row(port) is not None:
            return
        if p.poll() is not None:
            break
        time.sleep(0.002)
    raise RuntimeError(f"{what}: port {port} never bound (exit {p.poll()})")


def proc_sample(pid):
    """(wchar, VmHWM KiB) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/io") as f:
            io = f.read()
        with open(f"/proc/{pid}/status") as f:
            st = f.read()
        wchar = int(re.search(r"^wchar:\s+(\d+)", io, re.M).group(1))
        hwm = int(re.search(r"^VmHWM:\s+(\d+)", st, re.M).group(1))
        return wchar, hwm
    except (OSError, AttributeError):
        return None


def udp_port_sockets(port):
    """{inode: (rx_queue bytes, drops)} of every socket whose local port is port (a forking
    relay such as socat keeps several there: its listening socket and one connected socket per
    peer). By inode, because /proc/net/udp is read in pieces and may show a socket twice while
    sockets come and go."""
    socks = {}
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1].endswith(f":{port:04X}"):
                    socks[parts[9]] = (int(parts[4].split(":")[1], 16), int(parts[12]))
    except (OSError, IndexError, ValueError):
        pass
    return socks


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_sample(pgid):
    """CPU seconds (user + system of every live process in process group pgid, plus the
    children the leader has reaped), the largest VmHWM (KiB) among them, and how many there are.
    One scan of /proc: taken once, just before the group is stopped (VmHWM is a peak and CPU
    time cumulative, so a late sample loses nothing but processes that already exited)."""
    ticks = 0
    hwm = 0
    procs = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            # fields[0] is field 3 (state): pgrp is field 5, utime..cstime fields 14..17
            if int(fields[2]) != pgid:
                continue
            ticks += int(fields[11]) + int(fields[12])
            if int(d) == pgid:
                ticks += int(fields[13]) + int(fields[14])
            with open(f"/proc/{d}/status") as f:
                m = re.search(r"^VmHWM:\s+(\d+)", f.read(), re.M)
            hwm = max(hwm, int(m.group(1)) if m else 0)
            procs += 1
        except (OSError, ValueError, IndexError):
            continue
    return ticks / CLK_TCK, hwm, procs


# --------------------------------------------------------------------------------------------
# one sender -> receiver transfer


class Trial(dict):
    pass


def transfer(recv_argv, send_argv, *, ready, out_path, stdin_path=None, seq_n=None,
             port=None, settle=0.10, deadline=600.0, stop_sig=signal.SIGINT, relay=None,
             send_stdout=subprocess.DEVNULL, sender_grace=0.0):
    """Runs one transfer. ready: 'stderr' (receiver prints 'listening on 127.0.0.1:PORT'; '{port}'
    in send_argv is replaced) or 'port' (receiver_argv already has the port, found free by us).
    Returns a Trial with time, end ('exit' or 'drained' or 'deadline'), wchar bytes, hwm_kib,
    drops, receiver status and stderr. send_stdout: where the sender's stdout goes (a file
    for a sender that reports there, as tcpreplay does). sender_grace: seconds a sender still
    running when the receiver is done gets to exit by itself (and print its report) before it is
    killed; the time is not affected.

    relay: None, or (argv, ready) of a process between sender and receiver: '{sink}' in argv is
    replaced by the receiver's port; ready 'stderr' as above, or 'port' ('{port}' in argv is
    replaced by a port found free here). The sender then sends to the relay's port; the run is
    drained only once the relay's socket queue is empty too; just before the relay is stopped
    (SIGINT) its CPU time and peak RSS are read from /proc (its whole process group). The Trial
    adds relay_drops (/proc/net/udp, summed over every socket on the relay's port),
    relay_sockets, relay_cpu, relay_hwm_kib, relay_procs, relay_status and relay_stderr."""
    tr = Trial()
    out = open(out_path, "wb") if out_path else subprocess.DEVNULL
    errs = []
    if ready == "stderr":
        rp = spawn(recv_argv, stdout=out, stderr=subprocess.PIPE)
        port, lines = wait_ready_stderr(rp, recv_argv[0])
        errs.extend(lines)
        drain_stderr(rp, errs)
    else:
        errf = tempfile.TemporaryFile()
        rp = spawn(recv_argv, stdout=out, stderr=errf)
        wait_port_bound(rp, port, recv_argv[0])
    if out_path:
        out.close()
    sink_port = port
    relay_port = None
    if relay is not None:
        relay_argv, relay_ready = relay
        relay_argv = [a.replace("{sink}", str(sink_port)) for a in relay_argv]
        relay_errs = []
        if relay_ready == "stderr":
            lp = spawn(relay_argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            relay_port, lines = wait_ready_stderr(lp, relay_argv[0])
            relay_errs.extend(lines)
            relay_errth = drain_stderr(lp, relay_errs)
        else:
            relay_port = free_port()
            relay_argv = [a.replace("{port}", str(relay_port)) for a in relay_argv]
            relay_errf = tempfile.TemporaryFile()
            lp = spawn(relay_argv, stdout=subprocess.DEVNULL, stderr=relay_errf)
            wait_port_bound(lp, relay_port, relay_argv[0])
        lwait = Waiter(lp)
        relay_drops = {}  # inode -> drops (a socket's counter only grows)
        port = relay_port  # the sender's destination
    rwait = Waiter(rp)
    base = proc_sample(rp.pid)
    wchar0 = base[0] if base else 0
    hwm = base[1] if base else 0
    last_wchar = wchar0
    drops = 0
    send_argv = [a.replace("{port}", str(port)) for a in send_argv]
    serr = tempfile.TemporaryFile()

    t0 = time.perf_counter()
    if seq_n is not None:
        seq = spawn(["seq", "1", str(seq_n)], stdout=subprocess.PIPE)
        sp = spawn(send_argv, stdin=seq.stdout, stdout=send_stdout, stderr=serr)
        seq.stdout.close()
    else:
        with open(stdin_path, "rb") as fin:
            sp = spawn(send_argv, stdin=fin, stdout=send_stdout, stderr=serr)
    swait = Waiter(sp)

    t_last_change = t0
    quiet_since = None
    end_kind = None
    while True:
        now = time.perf_counter()
        if rwait.done:
            end_kind = "exit"
            break
        s = proc_sample(rp.pid)
        row = udp_socket_row(sink_port)
        relay_empty = True
        if relay_port is not None:
            socks = udp_port_sockets(relay_port)
            for ino, (_, d) in socks.items():
                relay_drops[ino] = max(relay_drops.get(ino, 0), d)
            relay_empty = all(rx == 0 for rx, _ in socks.values())
        if s:
            if s[0] != last_wchar:
                last_wchar = s[0]
                t_last_change = now
            hwm = max(hwm, s[1])
        if row:
            drops = max(drops, row[1])
        if now - t0 > deadline:
            end_kind = "deadline"
            break
        if swait.done:
            if row and row[0] == 0 and relay_empty and now - t_last_change >= settle:
                if quiet_since is None:
                    quiet_since = now
                if now - quiet_since >= 0.02:
                    end_kind = "drained"
                    break
            else:
                quiet_since = None
            time.sleep(0.002)
        else:
            time.sleep(0.02)

    if end_kind == "exit":
        t_end = rwait.t
        final_bytes = None
    else:
        s = proc_sample(rp.pid)
        if s:
            hwm = max(hwm, s[1])
            if s[0] != last_wchar:
                last_wchar = s[0]
                t_last_change = time.perf_counter()
        final_bytes = last_wchar - wchar0
        t_end = max(t_last_change, swait.t or t_last_change)
        rwait.stop(stop_sig)
    if not swait.done and not swait.join(sender_grace):
        swait.stop(signal.SIGKILL)
    swait.join()
    rwait.join()
    if relay_port is not None:
        for ino, (_, d) in udp_port_sockets(relay_port).items():
            relay_drops[ino] = max(relay_drops.get(ino, 0), d)
        lcpu, lhwm, lprocs = group_sample(lp.pid)
        lwait.stop(signal.SIGINT)
        try:  # a forking relay's children, should any outlive their parent
            os.killpg(lp.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if relay_ready == "stderr":
            relay_errth.join(2)
            relay_stderr = "".join(e if e.endswith("\n") else e + "\n" for e in relay_errs)
        else:
            relay_errf.seek(0)
            relay_stderr = relay_errf.read().decode(errors="replace")
        tr.update(relay_drops=sum(relay_drops.values()), relay_sockets=len(relay_drops), relay_cpu=lcpu, relay_hwm_kib=lhwm, relay_procs=lprocs,
                  relay_status=lp.returncode, relay_stderr=relay_stderr)
    if seq_n is not None:
        seq.wait()
    if ready != "stderr":
        errf.seek(0)
        errs.append(errf.read().decode(errors="replace"))
    else:
        time.sleep(0.01)
    serr.seek(0)
    tr.update(
        time=t_end - t0,
        end=end_kind,
        bytes_written=final_bytes,
        hwm_kib=hwm,
        drops=drops,
        recv_status=rp.returncode,
        send_status=sp.returncode,
        recv_cpu=rwait.cpu,
        send_cpu=swait.cpu,
        send_time=(swait.t - t0) if swait.t else None,
        recv_stderr="".join(e if e.endswith("\n") else e + "\n" for e in errs),
        send_stderr=serr.read().decode(errors="replace"),
    )
    return tr


def kernel_drops_from_stats(stderr):
    m = re.search(r"(\d+) dropped by the kernel", stderr)
    return int(m.group(1)) if m else None


def bytes_from_stats(stderr):
    m = re.search(r"(\d+) datagrams, (\d+) bytes", stderr)
    return (int(m.group(1)), int(m.group(2))) if m else None


# --------------------------------------------------------------------------------------------
# helpers for results


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_num(x, digits=3):
    if x is None:
        return "—"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if abs(x) < 100 else f"{x:.0f}"


def fmt_mib(kib):
    return "—" if not kib else f"{kib / 1024:.1f} MiB"


def fmt_ratio(x):
    return "—" if x is None else f"{x:.2f}×"


def cpu(ts):
    """Median CPU seconds (user + system) of sender and receiver."""
    snd = median([x.get("send_cpu") for x in ts])
    rcv = median([x.get("recv_cpu") for x in ts])
    f = lambda v: "—" if v is None else f"{v:.2f}"
    return f"{f(snd)} / {f(rcv)}"


def rotate(items, r):
    if not items:
        return items
    r %= len(items)
    return items[r:] + items[:r]


def have(tool):
    return tool not in ARGS.unavailable and shutil.which(tool) is not None


# --------------------------------------------------------------------------------------------
# scenario 1: lines


def scenario_lines(work):
    N = ARGS.lines
    U = ARGS.udpcat
    F = ARGS.floor_dir
    expected = b"".join(b"%d\n" % i for i in range(1, N + 1))
    out = os.path.join(work, "lines.out")

    def udpcat_recv(fmt="text"):
        a = [U, "listen", "--stats", "--count", str(N), "--timeout", "120s"]
        if fmt != "text":
            a += ["--format", fmt]
        return a + ["127.0.0.1:0"]

    floor_recv = [f"{F}/floor_recv", "--count", str(N), "--idle-ms", "120000", "127.0.0.1", "0"]
    udpcat_send = [U, "send", "127.0.0.1:{port}"]
    floor_send = [f"{F}/floor_send", "127.0.0.1", "{port}"]
    floor_send_nl = [f"{F}/floor_send", "--keep-newline", "127.0.0.1", "{port}"]
    py = sys.executable

    C = []  # (name, kind, recv builder, send argv, ready, check)
    C.append(("udpcat → udpcat", "udpcat", lambda: (udpcat_recv(), None), udpcat_send, "stderr", "text"))
    C.append(("udpcat → udpcat `--format json`", "udpcat-json", lambda: (udpcat_recv("json"), None), udpcat_send, "stderr", "json"))
    C.append(("C floor → C floor", "floor", lambda: (floor_recv, None), floor_send, "stderr", "text"))
    C.append(("Python → Python (seed-style)", "python", lambda: ([py, f"{HERE}/py_recv.py", "127.0.0.1", "0", str(N)], None),
              [py, f"{HERE}/py_send.py", "127.0.0.1", "{port}"], "stderr", "text"))

    def portrecv(argv_fn):
        def b():
            p = free_port()
            return argv_fn(p), p
        return b

    if have("socat"):
        C.append(("C floor → socat UDP-RECV", "socat", portrecv(lambda p: ["socat", "-u", "-b", "65536", f"UDP4-RECV:{p},bind=127.0.0.1", "STDOUT"]),
                  floor_send_nl, "port", "text"))
    if have("nc"):
        C.append(("C floor → nc -u -l", "nc", portrecv(lambda p: ["nc", "-d", "-u", "-l", "127.0.0.1", str(p)]),
                  floor_send_nl, "port", "text"))
    if have("ncat"):
        C.append(("C floor → ncat -u -l", "ncat", portrecv(lambda p: ["ncat", "-u", "-l", "--recv-only", "127.0.0.1", str(p)]),
                  floor_send_nl, "port", "text"))
    if ARGS.diag:
        C.append(("C floor → udpcat (receiver only)", "diag-recv", lambda: (udpcat_recv(), None), floor_send, "stderr", "text"))
        C.append(("udpcat → C floor (sender only)", "diag-send", lambda: (floor_recv, None), udpcat_send, "stderr", "text"))

    results = {c[0]: [] for c in C}
    for r in range(ARGS.reps):
        for name, kind, build, send, ready, check in rotate(C, r):
            recv, port = build()
            tr = transfer(recv, send, ready=ready, port=port, out_path=out, seq_n=N,
                          settle=0.25 if kind == "python" else 0.10)
            with open(out, "rb") as f:
                data = f.read()
            lines = data.count(b"\n")
            tr["received"] = lines
            tr["lost"] = N - lines
            if check == "json":
                texts = re.findall(rb'"text":"([^"]*)"', data)
                tr["exact"] = (len(texts) == N and b"\n".join(texts) + b"\n" == expected)
            else:
                tr["exact"] = data == expected
            tr["kdrops"] = kernel_drops_from_stats(tr["recv_stderr"])
            results[name].append(tr)
            os.unlink(out)
            log(f"  lines  {name:40s} {tr['time']:7.3f} s  lost {tr['lost']:>7}  exact {tr['exact']}  "
                f"rss {tr['hwm_kib']} KiB  end {tr['end']}  drops {tr['drops']}  rc {tr['recv_status']}/{tr['send_status']}")
    return C, results


def report_lines(C, results, md, targets):
    N = ARGS.lines
    ref = median([t["time"] for t in results["C floor → C floor"]])
    md.append(f"### 1. lines: `seq 1 {N}`, one datagram per line, receiver output to a file\n")
    md.append("| contestant | median time | unit | datagrams/s | lost (median, max) | kernel drops | byte-exact | peak RSS | CPU s send / recv | time ratio to C floor |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, kind, *_ in C:
        ts = results[name]
        t = median([x["time"] for x in ts])
        lost = [x["lost"] for x in ts]
        rate = median([x["received"] / x["time"] for x in ts])
        exact = all(x["exact"] for x in ts)
        n_exact = sum(x["exact"] for x in ts)
        hwm = max(x["hwm_kib"] for x in ts)
        md.append(f"| {name} | {t:.3f} | s | {fmt_num(rate)} | {fmt_num(median(lost))}, {max(lost):,} | "
                  f"{fmt_num(median([x['drops'] for x in ts]))} | {'yes' if exact else f'no ({n_exact}/{len(ts)} runs)'} | "
                  f"{fmt_mib(hwm)} | {cpu(ts)} | {fmt_ratio(t / ref if ref else None)} |")
    md.append("")
    md.append("socat, nc and ncat cannot send one datagram per line (they send whatever one read() "
              "returned), so they are measured as receivers only, fed by the C floor sender, which for "
              "them keeps each line's `\\n` in the datagram (they add nothing, so their output is "
              "comparable to `seq`). `kernel drops` is the socket's drop counter in /proc/net/udp. "
              "CPU is user + system time of each process (the sender's includes nothing of `seq`). "
              "Diagnostic rows (if any) mix udpcat with the floor to show which side costs what.\n")
    u = results["udpcat → udpcat"]
    j = results["udpcat → udpcat `--format json`"]
    ut, jt = median([x["time"] for x in u]), median([x["time"] for x in j])
    maxlost = max(x["lost"] for x in u)
    targets.append(("lines: 0 lost of %s" % f"{N:,}", maxlost == 0, f"max lost over {len(u)} runs: {maxlost:,}"))
    targets.append(("lines: byte-exact output", all(x["exact"] for x in u), f"{sum(x['exact'] for x in u)}/{len(u)} runs exact"))
    targets.append(("lines: time ≤ 0.75 × C floor", ut <= 0.75 * ref, f"{ut:.3f} s vs {ref:.3f} s = {ut / ref:.2f}×"))
    targets.append(("lines: with per-datagram timestamps (json) ≤ 0.75 × C floor, 0 lost, byte-exact",
                    jt <= 0.75 * ref and max(x["lost"] for x in j) == 0 and all(x["exact"] for x in j),
                    f"{jt:.3f} s vs {ref:.3f} s = {jt / ref:.2f}×, max lost {max(x['lost'] for x in j):,}, "
                    f"{sum(x['exact'] for x in j)}/{len(j)} runs exact"))
    rss = max(x["hwm_kib"] for x in u + j)
    targets.append(("memory: listen peak RSS ≤ 4 MiB on lines", rss <= 4096, f"max {fmt_mib(rss)} (text and json)"))


# --------------------------------------------------------------------------------------------
# scenario 2: bulk


def bulk_volume(S):
    return ARGS.bulk_small_bytes if S < 8192 else ARGS.bulk_bytes


def scenario_bulk(work):
    U = ARGS.udpcat
    F = ARGS.floor_dir
    data = os.path.join(work, "bulk.bin")
    all_results = {}
    for S in ARGS.bulk_sizes:
        B = bulk_volume(S)
        if not os.path.exists(data) or os.path.getsize(data) != B:
            block = os.urandom(1 << 20)
            with open(data, "wb") as f:
                left = B
                while left > 0:
                    f.write(block[:min(left, len(block))])
                    left -= len(block)
        K = -(-B // S)
        C = []
        C.append(("udpcat → udpcat", "udpcat",
                  lambda: ([U, "listen", "--stats", "--format", "raw", "--count", str(K), "127.0.0.1:0"], None),
                  [U, "send", "--chunk", str(S), "127.0.0.1:{port}"], "stderr"))
        C.append(("C floor → C floor", "floor",
                  lambda: ([f"{F}/floor_recv", "--raw", "--count", str(K), "127.0.0.1", "0"], None),
                  [f"{F}/floor_send", "--chunk", str(S), "127.0.0.1", "{port}"], "stderr"))
        C.append(("C sendmmsg → C recvmmsg (batches of 32)", "floor-mmsg",
                  lambda: ([f"{F}/floor_recv", "--raw", "--mmsg", "--count", str(K), "127.0.0.1", "0"], None),
                  [f"{F}/floor_send", "--chunk", str(S), "--mmsg", "127.0.0.1", "{port}"], "stderr"))

        def portrecv(argv_fn):
            def b():
                p = free_port()
                return argv_fn(p), p
            return b

        if have("socat"):
            sock_send = ["socat", "-u", "-b", str(S), "STDIN", "UDP4-SENDTO:127.0.0.1:{port}"]
            C.append(("socat → socat", "socat",
                      portrecv(lambda p: ["socat", "-u", "-b", "65536", f"UDP4-RECV:{p},bind=127.0.0.1", "STDOUT"]),
                      sock_send, "port"))
            C.append(("socat → socat `rcvbuf=8M`", "socat-best",
                      portrecv(lambda p: ["socat", "-u", "-b", "65536", f"UDP4-RECV:{p},bind=127.0.0.1,rcvbuf=8388608", "STDOUT"]),
                      sock_send, "port"))
        if have("nc"):
            C.append(("C floor → nc -u -l", "nc",
                      portrecv(lambda p: ["nc", "-d", "-u", "-l", "127.0.0.1", str(p)]),
                      [f"{F}/floor_send", "--chunk", str(S), "127.0.0.1", "{port}"], "port"))
        if have("nc") and S == ARGS.bulk_sizes[-1]:  # nc sends 16 KiB whatever S is: run it once
            C.append(("nc → nc (16 KiB datagrams)", "nc-nc",
                      portrecv(lambda p: ["nc", "-d", "-u", "-l", "127.0.0.1", str(p)]),
                      ["nc", "-u", "-q0", "127.0.0.1", "{port}"], "port"))
        if ARGS.diag:
            C.append(("C floor → udpcat (receiver only)", "diag-recv",
                      lambda: ([U, "listen", "--stats", "--format", "raw", "--count", str(K), "127.0.0.1:0"], None),
                      [f"{F}/floor_send", "--chunk", str(S), "127.0.0.1", "{port}"], "stderr"))
            C.append(("udpcat → C floor (sender only)", "diag-send",
                      lambda: ([f"{F}/floor_recv", "--raw", "--count", str(K), "127.0.0.1", "0"], None),
                      [U, "send", "--chunk", str(S), "127.0.0.1:{port}"], "stderr"))
        results = {c[0]: [] for c in C}
        for r in range(ARGS.reps):
            for name, kind, build, send, ready in rotate(C, r):
                recv, port = build()
                tr = transfer(recv, send, ready=ready, port=port, out_path=None, stdin_path=data)
                if tr["end"] == "exit" and tr["recv_status"] == 0:
                    st = bytes_from_stats(tr["recv_stderr"])
                    got = st[1] if st else B
                else:
                    got = tr["bytes_written"] or 0
                tr["received"] = got
                tr["lost_bytes"] = B - got
                tr["gbps"] = got / tr["time"] / 1e9
                tr["kdrops"] = kernel_drops_from_stats(tr["recv_stderr"])
                results[name].append(tr)
                log(f"  bulk {S:5d} {name:36s} {tr['time']:7.3f} s  {tr['gbps']:6.2f} GB/s  lost {tr['lost_bytes']:>11,} B  "
                    f"drops {tr['drops']}  rss {tr['hwm_kib']} KiB  end {tr['end']}  rc {tr['recv_status']}/{tr['send_status']}")
        # One more udpcat → udpcat run, untimed, with the output kept: byte for byte the input?
        # Of the first 64 MiB only: a file that takes gigabytes at loopback speed stalls its
        # writer on the disk (dirty-page throttling), and what UDP then loses says nothing of
        # udpcat; 64 MiB fits the page cache and the socket buffer.
        part = os.path.join(work, "bulk.part")
        with open(data, "rb") as fi, open(part, "wb") as fo:
            fo.write(fi.read(min(B, 64 << 20)))
        out = os.path.join(work, "bulk.out")
        tr = transfer([U, "listen", "--stats", "--format", "raw", "--count", str(-(-os.path.getsize(part) // S)),
                       "127.0.0.1:0"],
                      [U, "send", "--chunk", str(S), "127.0.0.1:{port}"], ready="stderr", out_path=out,
                      stdin_path=part)
        exact = same_file(out, part)
        os.unlink(out)
        os.unlink(part)
        log(f"  bulk {S:5d} udpcat → udpcat output kept: byte-exact {exact}")
        all_results[S] = (C, results, K, B, exact)
    os.unlink(data)
    return all_results


def same_file(a, b):
    """Whether files a and b hold the same bytes (read in 1 MiB blocks)."""
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def recv_cpu_per_datagram(ts, S):
    """Median receiver CPU µs per datagram received."""
    per = [x["recv_cpu"] / (x["received"] / S) * 1e6 for x in ts
           if x.get("recv_cpu") is not None and x["received"] > 0]
    return median(per) if per else None


def report_bulk(all_results, md, targets):
    worst_rss = 0
    for S, (C, results, K, B, exact) in all_results.items():
        ref = median([x["gbps"] for x in results["C floor → C floor"]])
        md.append(f"### 2. bulk: {B / 2**20:,.0f} MiB of stdin in {S}-byte datagrams ({K:,}), receiver output to /dev/null\n")
        md.append("| contestant | median throughput | unit | median time (s) | lost bytes (median, max) | kernel drops | peak RSS | CPU s send / recv | throughput ratio to C floor |")
        md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, *_ in C:
            ts = results[name]
            g = median([x["gbps"] for x in ts])
            lost = [x["lost_bytes"] for x in ts]
            lost_pct = median(lost) / B * 100
            md.append(f"| {name} | {g:.2f} | GB/s | {median([x['time'] for x in ts]):.3f} | "
                      f"{fmt_num(median(lost))} ({lost_pct:.2g} %), {max(lost):,} | {fmt_num(median([x['drops'] for x in ts]))} | "
                      f"{fmt_mib(max(x['hwm_kib'] for x in ts))} | {cpu(ts)} | {fmt_ratio(g / ref if ref else None)} |")
        md.append("")
        u = results["udpcat → udpcat"]
        ug = median([x["gbps"] for x in u])
        maxlost = max(x["lost_bytes"] for x in u)
        targets.append((f"bulk {S}: 0 lost", maxlost == 0, f"max lost over {len(u)} runs: {maxlost:,} bytes"))
        socat = [median([x["gbps"] for x in results[n]]) for n in ("socat → socat", "socat → socat `rcvbuf=8M`") if n in results]
        if socat:
            best = max(socat)
            targets.append((f"bulk {S}: ≥ socat's best", ug >= best, f"{ug:.2f} vs {best:.2f} GB/s = {ug / best:.2f}×"))
        else:
            targets.append((f"bulk {S}: ≥ socat's best", None, "socat unavailable"))
        targets.append((f"bulk {S}: ≥ 0.9 × C floor", ug >= 0.9 * ref, f"{ug:.2f} vs {ref:.2f} GB/s = {ug / ref:.2f}×"))
        targets.append((f"bulk {S}: udpcat → udpcat byte-exact", exact, "the first 64 MiB again, untimed, output kept in a file"))
        mm = median([x["gbps"] for x in results["C sendmmsg → C recvmmsg (batches of 32)"]])
        if S <= 1472:
            mm_lost = max(x["lost_bytes"] for x in u)
            targets.append((f"bulk {S}: ≥ 8 × the C sendmmsg/recvmmsg pair (GSO/GRO), 0 lost",
                            ug >= 8 * mm and mm_lost == 0, f"{ug:.2f} vs {mm:.2f} GB/s = {ug / mm:.2f}×, max lost {mm_lost:,} bytes"))
        d = results.get("C floor → udpcat (receiver only)")
        if S >= 65507 and d:
            dl = max(x["lost_bytes"] for x in d)
            targets.append((f"bulk {S}: C floor → udpcat 0 lost", dl == 0, f"max lost over {len(d)} runs: {dl:,} bytes"))
            uc = recv_cpu_per_datagram(d, S)
            cc_ = recv_cpu_per_datagram(results["C floor → C floor"], S)
            if uc is not None and cc_:
                targets.append((f"bulk {S}: receive CPU per datagram ≤ 1.1 × the C recvfrom receiver (same C sender)",
                                uc <= 1.1 * cc_, f"{uc:.2f} vs {cc_:.2f} µs = {uc / cc_:.2f}×"))
        worst_rss = max(worst_rss, max(x["hwm_kib"] for x in u))
    md.append("socat sends one datagram per read() of `-b` bytes, so it matches the datagram size; "
              "nc always reads (and sends) 16 KiB and receives into a 16 KiB buffer, so larger datagrams "
              "are cut (counted as lost bytes). Bytes received are counted from the receiver's writes "
              "(/proc/PID/io wchar), or its own summary when it stopped at its count.\n")
    targets.append(("memory: listen peak RSS ≤ 8 MiB on bulk", worst_rss <= 8192, f"max {fmt_mib(worst_rss)}"))


# --------------------------------------------------------------------------------------------
# scenario 3: round trips


def scenario_rtt(work):
    N = ARGS.rtt
    U = ARGS.udpcat
    F = ARGS.floor_dir
    py = sys.executable
    lines = os.path.join(work, "rtt.in")
    with open(lines, "wb") as f:
        f.write(b"".join(b"%d\n" % i for i in range(1, N + 1)))
    out = os.path.join(work, "rtt.out")
    u_echo = [U, "listen", "--echo", "127.0.0.1:0"]
    c_echo = [f"{F}/floor_echo", "127.0.0.1", "0"]
    p_echo = [py, f"{HERE}/py_echo.py", "127.0.0.1", "0"]
    u_ping = [U, "send", "--reply", "127.0.0.1:{port}"]
    c_ping = [f"{F}/floor_ping", "127.0.0.1", "{port}"]
    p_ping = [py, f"{HERE}/py_ping.py", "127.0.0.1", "{port}"]
    C = [("udpcat send --reply → udpcat listen --echo", u_echo, u_ping),
         ("C floor ping → C floor echo", c_echo, c_ping),
         ("Python → Python (seed-style)", p_echo, p_ping)]
    if ARGS.diag:
        C += [("udpcat send --reply → C floor echo", c_echo, u_ping),
              ("C floor ping → udpcat listen --echo", u_echo, c_ping)]
    results = {c[0]: [] for c in C}
    for r in range(ARGS.rtt_reps):
        for name, echo, ping in rotate(C, r):
            ep = spawn(echo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            port, _ = wait_ready_stderr(ep, echo[0])
            errs = []
            drain_stderr(ep, errs)
            argv = [a.replace("{port}", str(port)) for a in ping]
            with open(lines, "rb") as fin, open(out, "wb") as fout:
                t0 = time.perf_counter()
                pp = spawn(argv, stdin=fin, stdout=fout, stderr=subprocess.PIPE)
                _, perr = pp.communicate(timeout=600)
                t = time.perf_counter() - t0
            stop(ep)
            with open(out, "rb") as f:
                got = f.read()
            tr = Trial(time=t, replies=got.count(b"\n"), exact=got == open(lines, "rb").read(),
                       status=pp.returncode, stderr=perr.decode(errors="replace"))
            tr["rate"] = N / t
            results[name].append(tr)
            log(f"  rtt    {name:45s} {t:7.3f} s  {tr['rate']:9.0f}/s  replies {tr['replies']}  rc {pp.returncode}")
    os.unlink(lines)
    os.unlink(out)
    return C, results


def report_rtt(C, results, md, targets):
    N = ARGS.rtt
    ref = median([x["rate"] for x in results["C floor ping → C floor echo"]])
    md.append(f"### 3. round trips: {N:,} stdin lines, one request in flight, {ARGS.rtt_reps} runs each\n")
    md.append("| contestant | median rate | unit | median time (s) | replies missing (max) | replies exact | rate ratio to C floor |")
    md.append("| --- | --- | --- | --- | --- | --- | --- |")
    for name, *_ in C:
        ts = results[name]
        rate = median([x["rate"] for x in ts])
        md.append(f"| {name} | {fmt_num(rate)} | round trips/s | {median([x['time'] for x in ts]):.3f} | "
                  f"{max(N - x['replies'] for x in ts)} | {'yes' if all(x['exact'] for x in ts) else 'no'} | "
                  f"{fmt_ratio(rate / ref if ref else None)} |")
    md.append("")
    u = results["udpcat send --reply → udpcat listen --echo"]
    ur = median([x["rate"] for x in u])
    targets.append(("round trips: ≥ 0.9 × C floor", ur >= 0.9 * ref and all(x["exact"] for x in u),
                    f"{ur:,.0f} vs {ref:,.0f} /s = {ur / ref:.2f}×"))


# --------------------------------------------------------------------------------------------
# scenario 4: start-up


def scenario_startup(work):
    if not have("hyperfine"):
        log("  start-up: hyperfine unavailable, skipped")
        return None
    U = ARGS.udpcat
    F = ARGS.floor_dir
    hi = os.path.join(work, "hi.txt")
    with open(hi, "w") as f:
        f.write("hi")  # no newline: every contestant sends the 2-byte datagram "hi"
    sink_out = os.path.join(work, "sink.out")
    with open(sink_out, "wb") as so:
        sink = spawn([f"{F}/floor_recv", "--idle-ms", "3600000", "127.0.0.1", "0"], stdout=so, stderr=subprocess.PIPE)
    port, _ = wait_ready_stderr(sink, "floor_recv sink")
    drain_stderr(sink, [])
    q = shlex.quote
    # Every command runs under `hyperfine -N` (no shell) through stdin_from, which gives it "hi"
    # on stdin and execs it: each contestant pays the same one extra exec, none pays for a shell.
    # The baseline row is stdin_from exec'ing /bin/true.
    W = [f"{F}/stdin_from", hi]
    C = [("udpcat send ADDR hi", W + [U, "send", f"127.0.0.1:{port}", "hi"]),
         ("C floor sendto", W + [f"{F}/floor_send", "127.0.0.1", str(port)])]
    if ARGS.udpcat_musl:
        C.insert(1, ("udpcat send ADDR hi (release binary: static musl)",
                     W + [ARGS.udpcat_musl, "send", f"127.0.0.1:{port}", "hi"]))
    if have("nc"):
        C.append(("nc -u -w0", W + ["nc", "-u", "-w0", "127.0.0.1", str(port)]))
    if have("socat"):
        C.append(("socat", W + ["socat", "-u", "STDIN", f"UDP4-SENDTO:127.0.0.1:{port}"]))
    if have("ncat"):
        C.append(("ncat -u --send-only", W + ["ncat", "-u", "--send-only", "127.0.0.1", str(port)]))
    C.append(("python3 one-liner", W + [sys.executable, "-c",
              f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hi', ('127.0.0.1', {port}))"]))
    C.append(("baseline: stdin_from + /bin/true", W + ["/bin/true"]))
    C = [(name, " ".join(q(a) for a in argv)) for name, argv in C]
    results = {c[0]: {"times": [], "sent": 0, "arrived": 0} for c in C}

    def arrived():
        time.sleep(0.03)  # the sink flushes within 5 ms of the stream pausing
        with open(sink_out, "rb") as f:
            return f.read().count(b"\n")

    for r in range(ARGS.reps):
        for name, cmd in rotate(C, r):
            js = os.path.join(work, "hf.json")
            before = arrived()
            argv = ["hyperfine", "-N", "--style", "none", "--warmup", str(ARGS.startup_warmup),
                    "--runs", str(ARGS.startup_runs), "--export-json", js, cmd]
            hp = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            hout, _ = hp.communicate(timeout=600)
            if hp.returncode != 0:
                log(f"  start-up {name}: hyperfine failed: {hout.decode(errors='replace')[-500:]}")
                continue
            with open(js) as f:
                res = json.load(f)["results"][0]
            results[name]["times"].extend(res["times"])
            if not name.startswith("baseline"):
                results[name]["sent"] += ARGS.startup_runs + ARGS.startup_warmup
            results[name]["arrived"] += arrived() - before
            log(f"  start-up {name:25s} median {res['median'] * 1000:7.2f} ms")
    stop(sink)
    os.unlink(sink_out)
    return C, results


def report_startup(res, md, targets):
    if res is None:
        md.append("### 4. start-up\n\nhyperfine unavailable: not measured.\n")
        targets.append(("start-up: release binary ≤ 0.8 × nc median", None, "not measured"))
        return
    C, results = res
    md.append(f"### 4. start-up: one datagram `hi` to a listening sink (hyperfine, --warmup {ARGS.startup_warmup}, "
              f"{ARGS.startup_runs} runs × {ARGS.reps}, `-N`: no shell; every command is exec'd by `stdin_from hi`, whose own cost is the baseline row)\n")
    nc = median(results["nc -u -w0"]["times"]) if "nc -u -w0" in results else None
    md.append("| contestant | median | unit | datagrams arrived | ratio to nc |")
    md.append("| --- | --- | --- | --- | --- |")
    for name, _ in C:
        m = median(results[name]["times"])
        md.append(f"| {name} | {m * 1000:.2f} | ms | {results[name]['arrived']}/{results[name]['sent']} | "
                  f"{fmt_ratio(m / nc if nc and m else None)} |")
    md.append("")
    u = median(results["udpcat send ADDR hi"]["times"])
    m = results.get("udpcat send ADDR hi (release binary: static musl)")
    m = median(m["times"]) if m and m["times"] else None
    if nc and m:
        targets.append(("start-up: release binary ≤ 0.8 × nc median", m <= 0.8 * nc,
                        f"{m * 1000:.2f} ms vs {nc * 1000:.2f} ms = {m / nc:.2f}× (cargo build --release: {u / nc:.2f}×)"))
    elif nc:
        targets.append(("start-up: release binary ≤ 0.8 × nc median", None,
                        f"no musl build; cargo build --release: {u / nc:.2f}×"))
    else:
        targets.append(("start-up: release binary ≤ 0.8 × nc median", None, "nc unavailable"))


# --------------------------------------------------------------------------------------------
# scenario 5: --rate accuracy

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
# SPEC "Performance": within 1 % from 1 to 10,000 per second, within 4 % at 100,000.
RATE_TOLERANCE = [(10_000, 1.0), (100_000, 4.0)]


def rate_tolerance(n):
    for upto, pct in RATE_TOLERANCE:
        if n <= upto:
            return pct
    return None


def rate_datagrams(n):
    """Enough datagrams for about BENCH_RATE_SECONDS at n/s, and at least 3 (two gaps)."""
    return max(3, int(round(n * ARGS.rate_seconds)) + 1)


def rate_trial(work, n):
    """`udpcat send --rate n` of K stdin lines to a socket here. Arrival times are the kernel's
    (SO_TIMESTAMPNS), so they do not depend on how promptly this script reads; the 32 MiB
    buffer (SO_RCVBUFFORCE as root) lets it fall behind at 100,000/s without drops."""
    k = rate_datagrams(n)
    lines = os.path.join(work, "rate.in")
    with open(lines, "wb") as f:
        f.write(b"".join(b"%d\n" % i for i in range(1, k + 1)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    argv = [ARGS.udpcat, "send", "--rate", f"{n:g}", f"127.0.0.1:{port}"]
    with open(lines, "rb") as fin:
        sp = spawn(argv, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sw = Waiter(sp)
    errs = []
    drain_stderr(sp, errs)
    stamps = []
    anc = socket.CMSG_SPACE(16)
    sock.settimeout(0.25)
    # Each rate gets twice its expected time and 10 s more before it is given up.
    deadline = time.monotonic() + 2 * k / n + 10
    while len(stamps) < k and time.monotonic() < deadline:
        try:
            _, ancdata, _, _ = sock.recvmsg(64, anc)
        except socket.timeout:
            if sw.done:
                break  # the sender is gone and nothing came for 0.25 s: nothing more will
            continue
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", data[:16])
                stamps.append(sec * 1_000_000_000 + nsec)
    sw.join(10)  # the last datagram is here: the sender exits by itself now
    sw.stop()
    sock.close()
    os.unlink(lines)
    tr = Trial(rate=n, sent=k, received=len(stamps), status=sp.returncode, send_cpu=sw.cpu,
               stderr="".join(errs))
    if len(stamps) >= 2:
        span = (stamps[-1] - stamps[0]) / 1e9
        tr["span"] = span
        # k datagrams are k - 1 gaps: the rate is (k - 1) / span, so the first datagram,
        # which goes out at once, does not count as a free one.
        tr["achieved"] = (len(stamps) - 1) / span if span > 0 else None
        gaps = [(b - a) / 1e9 for a, b in zip(stamps, stamps[1:])]
        tr["min_gap"] = min(gaps) * n
        tr["max_gap"] = max(gaps) * n
    else:
        tr["achieved"] = None
    tr["error_pct"] = (tr["achieved"] - n) / n * 100 if tr["achieved"] else None
    return tr


def fmt_rate(x):
    return "—" if x is None else format(x, ",.6g")


def scenario_rate(work):
    results = {n: [] for n in ARGS.rates}
    for r in range(ARGS.rate_reps):
        for n in ARGS.rates:
            tr = rate_trial(work, n)
            results[n].append(tr)
            err = "—" if tr["error_pct"] is None else f"{tr['error_pct']:+.3f} %"
            log(f"  rate   {n:>9g}/s  {tr['received']}/{tr['sent']} datagrams  achieved "
                f"{fmt_rate(tr['achieved'])}/s  error {err}  rc {tr['status']}")
    return results


def report_rate(results, md, targets):
    md.append(f"### 5. rate: `udpcat send --rate N` of stdin lines for about {ARGS.rate_seconds:g} s "
              f"(at least 3 datagrams), {ARGS.rate_reps} run(s) each, arrival times from the kernel (SO_TIMESTAMPNS)\n")
    md.append("| asked (/s) | datagrams | received | achieved (/s) | error | target | met | min / max gap (× 1/N) | sender CPU s |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    worst = []
    ok = True
    for n, ts in results.items():
        errs = [t["error_pct"] for t in ts]
        med = median(errs)
        # Every run must be within the target, every datagram must arrive, udpcat must exit 0.
        tol = rate_tolerance(n)
        met = (tol is not None and all(e is not None and abs(e) <= tol for e in errs)
               and all(t["received"] == t["sent"] and t["status"] == 0 for t in ts))
        if tol is not None:
            ok = ok and met
            worst.append(f"{n:,g}/s {max(abs(e) for e in errs if e is not None):.2f} %" if any(e is not None for e in errs) else f"{n:,g}/s —")
        gaps = "—"
        if n <= 1000 and all("min_gap" in t for t in ts):
            gaps = f"{min(t['min_gap'] for t in ts):.2f} / {max(t['max_gap'] for t in ts):.2f}"
        md.append(f"| {n:,g} | {ts[0]['sent']:,} | {min(t['received'] for t in ts):,} | "
                  f"{fmt_rate(median([t['achieved'] for t in ts]))} | "
                  f"{'—' if med is None else f'{med:+.3f} %'} | {'—' if tol is None else f'≤ {tol:g} %'} | "
                  f"{'—' if tol is None else ('yes' if met else '**no**')} | {gaps} | "
                  f"{fmt_num(median([t.get('send_cpu') for t in ts]))} |")
    md.append("")
    md.append("achieved = (datagrams received − 1) / (last arrival − first arrival): k datagrams are "
              "k − 1 gaps. error is the median over runs; met needs every run within the target and "
              "no datagram lost. Gaps are shown up to 1,000/s only: faster, datagrams leave in "
              "sendmmsg batches of those due, so single gaps say nothing.\n")
    targets.append(("rate: within 1 % from 1 to 10,000/s, 4 % at 100,000/s", ok if worst else None,
                    "; ".join(worst) if worst else "not measured"))


# --------------------------------------------------------------------------------------------
# scenario 6: forward (issue 13)


def scenario_forward(work):
    """`seq 1 N | udpcat send` through a relay into the C floor receiver, against the same send
    straight into it. Full speed, then (if BENCH_FORWARD_RATE) the same three paced."""
    U = ARGS.udpcat
    F = ARGS.floor_dir
    out = os.path.join(work, "forward.out")
    # The sink is the lines scenario's C floor receiver (8 MiB buffer, stops at its count).
    sink = lambda n: [f"{F}/floor_recv", "--count", str(n), "--idle-ms", "120000", "127.0.0.1", "0"]
    # --stats costs nothing in the hot path (udpcat reads the drop counter, SO_RXQ_OVFL, on every
    # datagram either way); it adds udpcat's own count of drops and forwarding errors at exit.
    u_relay = ([U, "listen", "--stats", "--forward", "127.0.0.1:{sink}", "-f", "raw", "127.0.0.1:0"], "stderr")
    # The recipe people copy (UDP-LISTEN with fork: a child per peer), bound to loopback only.
    s_relay = (["socat", "UDP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr", "UDP:127.0.0.1:{sink}"], "port")
    send = [U, "send", "127.0.0.1:{port}"]
    C = [("direct: udpcat send → sink", "direct", None, send, ARGS.forward_lines),
         ("udpcat relay `listen --stats --forward SINK -f raw`", "udpcat", u_relay, send, ARGS.forward_lines)]
    if have("socat"):
        C.append(("socat relay `UDP-LISTEN:P,fork,reuseaddr`", "socat", s_relay, send, ARGS.forward_lines))
    R = ARGS.forward_rate
    if R:
        paced = [U, "send", "--rate", f"{R:g}", "127.0.0.1:{port}"]
        C += [(f"{name}, `--rate {R:,g}`", kind + "-paced", relay, paced, ARGS.forward_paced_lines)
              for name, kind, relay, _, _ in list(C)]
    # The udpcat relay fed at the rate the direct send reached (median of the direct runs so far):
    # a sender at full speed can offer a relay more than that, since datagrams the kernel drops at
    # a full socket cost it less than ones a reader takes (or less: one more busy process). Last in each repetition (it needs a
    # direct run first).
    at_direct = None
    if R:
        at_direct = (AT_DIRECT, "udpcat-atdirect", u_relay, None, ARGS.forward_paced_lines)
    expected = {n: b"".join(b"%d\n" % i for i in range(1, n + 1))
                for n in {c[4] for c in C} | {ARGS.forward_paced_lines}}
    results = {c[0]: [] for c in C}
    if at_direct:
        results[at_direct[0]] = []
    for r in range(ARGS.forward_reps):
        for name, kind, relay, snd, n in rotate(C, r) + ([at_direct] if at_direct else []):
            if kind == "udpcat-atdirect":
                d = median([x["rate"] for x in results[C[0][0]]])
                snd = [U, "send", "--rate", f"{d:.0f}", "127.0.0.1:{port}"]
            tr = transfer(sink(n), snd, ready="stderr", out_path=out, seq_n=n, relay=relay, settle=0.25)
            if kind == "udpcat-atdirect":
                tr["asked"] = round(d)
            with open(out, "rb") as f:
                data = f.read()
            os.unlink(out)
            tr["sent"] = n
            tr["received"] = data.count(b"\n")
            tr["exact"] = data == expected[n]
            # lost counts distinct lines missing, so a datagram delivered twice hides no loss
            tr["duplicates"] = 0 if tr["exact"] else tr["received"] - len(set(data.split(b"\n")[:-1]))
            tr["lost"] = n - tr["received"] + tr["duplicates"]
            # every line there, but in another order (a forking relay with several children)?
            tr["reordered"] = (not tr["exact"] and tr["lost"] == 0
                               and sorted(data.split(b"\n")) == sorted(expected[n].split(b"\n")))
            tr["rate"] = tr["received"] / tr["time"]
            tr["offered"] = n / tr["send_time"] if tr.get("send_time") else None
            if relay is not None and relay[0][0] == U:
                st = tr["relay_stderr"]
                tr["relay_kdrops"] = kernel_drops_from_stats(st)
                m = re.search(r"(\d+) forwarded", st)
                tr["forwarded"] = int(m.group(1)) if m else None
                m = re.search(r"send errors: (.*)", st)
                tr["send_errors"] = m.group(1).strip() if m else None
            results[name].append(tr)
            rl = ""
            if relay is not None:
                rl = (f"  relay drops {tr['relay_drops']} cpu {tr['relay_cpu']:.2f} s rss {tr['relay_hwm_kib']} KiB "
                      f"procs {tr['relay_procs']} rc {tr['relay_status']}")
            log(f"  forward {name:62s} {tr['time']:7.3f} s  {tr['rate']:9.0f}/s  lost {tr['lost']:>7}  "
                f"dup {tr['duplicates']}  sink drops {tr['drops']}  end {tr['end']}  rc {tr['recv_status']}/{tr['send_status']}{rl}")
    if at_direct:
        C = C + [at_direct]
    return C, results


AT_DIRECT = "udpcat relay `listen --stats --forward SINK -f raw`, `--rate` = direct's rate"


def asked_list(ts):
    return ", ".join(format(x["asked"], ",") for x in ts)


def report_forward(C, results, md, targets):
    N, NP, R = ARGS.forward_lines, ARGS.forward_paced_lines, ARGS.forward_rate
    md.append(f"### 6. forward (issue 13): `seq 1 {N:,}` by `udpcat send` through a relay into the C floor receiver "
              f"(the lines scenario's sink), {ARGS.forward_reps} run(s) each"
              + (f"; paced rows: `seq 1 {NP:,}` by `udpcat send --rate {R:,g}`" if R else "") + "\n")
    md.append("| contestant | sender rate (offered) | datagrams/s at sink | unit | lost (median, max) | kernel drops relay / sink | "
              "CPU s sender / relay / sink | relay CPU per datagram at sink | relay peak RSS | complete and in order | ratio to direct |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ref = {}
    for name, kind, *_ in C:
        if kind.startswith("direct"):
            ref[kind.endswith("-paced")] = median([x["rate"] for x in results[name]])
    for name, kind, relay, _, n in C:
        ts = results[name]
        rate = median([x["rate"] for x in ts])
        lost = [x["lost"] for x in ts]
        base = ref.get(kind.endswith("-paced") and kind != "udpcat-atdirect")
        if relay is None:
            drops = f"— / {fmt_num(median([x['drops'] for x in ts]))}"
            per, rss = "—", "—"
        else:
            drops = f"{fmt_num(median([x['relay_drops'] for x in ts]))} / {fmt_num(median([x['drops'] for x in ts]))}"
            per = median([x["relay_cpu"] / x["received"] * 1e6 if x["received"] else None for x in ts])
            per = "—" if per is None else f"{per:.1f} µs"
            procs = max(x["relay_procs"] for x in ts)
            rss = fmt_mib(max(x["relay_hwm_kib"] for x in ts)) + (f" (largest of {procs} processes)" if procs > 1 else "")
        f2 = lambda v: "—" if v is None else f"{v:.2f}"
        rcpu = " / ".join(f2(median([x.get(k) for x in ts])) for k in ("send_cpu", "relay_cpu", "recv_cpu"))
        n_exact = sum(x["exact"] for x in ts)
        n_reord = sum(x["reordered"] for x in ts)
        if n_exact == len(ts):
            order = "yes"
        elif n_reord:
            order = f"complete, reordered in {n_reord}/{len(ts)} runs" + (f", in order in {n_exact}" if n_exact else "")
        else:
            order = f"no (yes in {n_exact}/{len(ts)} runs)"
        if kind == "udpcat-atdirect":
            name = name.replace("direct's rate", f"direct's rate ({asked_list(ts)})")
        md.append(f"| {name} | {fmt_num(median([x['offered'] for x in ts]))} | {fmt_num(rate)} | datagrams/s | "
                  f"{fmt_num(median(lost))}, {max(lost):,} | {drops} | {rcpu} | {per} | {rss} | "
                  f"{order} | {fmt_ratio(rate / base if base else None)} |")
    md.append("")
    notes = []
    u = results.get("udpcat relay `listen --stats --forward SINK -f raw`", [])
    if u:
        notes.append("udpcat's own `--stats` at the relay, per run: kernel drops "
                     + ", ".join(fmt_num(x.get("relay_kdrops")) for x in u)
                     + " (/proc/net/udp: " + ", ".join(fmt_num(x["relay_drops"]) for x in u) + "); forwarded "
                     + ", ".join(fmt_num(x.get("forwarded")) for x in u)
                     + "; send errors " + ", ".join(str(x.get("send_errors")) for x in u) + ".")
    dups = [f"{name}: {', '.join(str(x['duplicates']) for x in results[name])}"
            for name, *_ in C if any(x["duplicates"] for x in results[name])]
    notes.append("Datagrams delivered twice at the sink (not counted as received): "
                 + ("; ".join(dups) if dups else "none") + ".")
    so = results.get("socat relay `UDP-LISTEN:P,fork,reuseaddr`", [])
    if so:
        notes.append("socat forks a child per peer, but a datagram that reaches the parent's new socket before "
                     "the child has connected its own makes another child for the same peer: processes at the "
                     "end of each full-speed run (parent included): "
                     + ", ".join(str(x["relay_procs"]) for x in so) + "; sockets on its port: "
                     + ", ".join(str(x["relay_sockets"]) for x in so) + ".")
    md.append("One sender, one relay, one sink: three busy processes (and `seq`) on the machine's cores. "
              "The clock runs from the sender's start to the sink's last datagram; datagrams/s at sink = "
              "received / that time; sender rate = lines / the sender's own run time (the offered load); "
              "lost = sent − distinct lines received at the sink; kernel drops are the drop counters in /proc/net/udp of "
              "every socket on the relay's port and of the sink's socket. Relay CPU (user + system) and "
              "peak RSS (VmHWM) are read from /proc for the relay's whole process group just before it "
              "is stopped (sender and sink CPU: their own user + system time); CPU per datagram is that CPU time / datagrams received at the sink (a datagram "
              "the kernel dropped at the relay's socket cost the relay nothing)."
              " Ratios are to the direct row at the same pacing (the row at direct's rate: to direct at full "
              "speed). The row at direct's rate "
              f"({ARGS.forward_paced_lines:,} lines; the rate of each run in brackets, the median of the direct "
              "full-speed runs before it) runs last in each repetition: a sender at full speed can offer a relay "
              "more than direct's rate (a datagram the kernel drops at a full socket costs the sender less than "
              "one a reader takes), or less (it shares the cores with one more busy process). " + " ".join(notes) + "\n")
    # targets
    d = results["direct: udpcat send → sink"]
    dmax = max(x["lost"] for x in d)
    off = median([x["offered"] for x in u]) if u else None
    note = (f"; direct itself lost up to {dmax:,}: compared at the same offered load" if dmax else "; direct lost 0")
    if u:
        umax = max(x["lost"] for x in u)
        full = f"at full speed ({fmt_num(off)}/s offered) max lost {umax:,} of {N:,} over {len(u)} runs{note}"
        ad = results.get(AT_DIRECT)
        if ad:
            amax = max(x["lost"] for x in ad)
            targets.append(("forward: 0 lost at the rate a direct send reaches", amax == 0,
                            f"at --rate {asked_list(ad)}: max lost {amax:,} of {ARGS.forward_paced_lines:,} "
                            f"over {len(ad)} runs; {full}"))
        else:
            targets.append(("forward: 0 lost at the rate a direct send reaches", umax == 0, full))
        ur = median([x["rate"] for x in u])
        targets.append(("forward: ≥ 0.8 × direct throughput", ur >= 0.8 * ref[False],
                        f"{ur:,.0f} vs {ref[False]:,.0f} datagrams/s = {ur / ref[False]:.2f}×"))
    up = results.get(f"udpcat relay `listen --stats --forward SINK -f raw`, `--rate {R:,g}`") if R else None
    if up:
        pmax = max(x["lost"] for x in up)
        dp = max(x["lost"] for x in results[f"direct: udpcat send → sink, `--rate {R:,g}`"])
        targets.append((f"forward: 0 lost at --rate {R:,g}", pmax == 0,
                        f"max lost {pmax:,} of {NP:,} over {len(up)} runs (direct at that rate: {dp:,})"))


# --------------------------------------------------------------------------------------------
# scenario 7: replay (issue 14)

# The capture: N UDP datagrams 192.0.2.1:40000 -> 127.0.0.1:9 in Ethernet frames, classic pcap.
# udpcat sends each payload to the address it is given (the capture's port does not matter);
# tcpreplay writes the frames as they are, so its copy gets the sink's port (tcprewrite).
# For frames written to `lo` by a raw socket to reach a socket bound to 127.0.0.1:
# - dst MAC 00:00:00:00:00:00, lo's own (any other: PACKET_OTHERHOST, dropped by IP);
# - a source that is not a local address (from 127.0.0.1 the route lookup such a frame needs
#   drops it as a local source, unless accept_local); hence 192.0.2.1 (TEST-NET-1);
# - net.ipv4.conf.lo.route_localnet = 1 (without it a frame to 127.0.0.0/8 that arrives
#   without a route attached, as injected ones do, is dropped as martian). The scenario sets it
#   for each tcpreplay run only, and puts the old value back (BENCH_REPLAY_LOCALNET=0: never).
# Frames sent by a socket (udpcat's) carry their route and need none of this.
REPLAY_SRC, REPLAY_SPORT, REPLAY_DPORT = "192.0.2.1", 40000, 9
ROUTE_LOCALNET = "/proc/sys/net/ipv4/conf/lo/route_localnet"
REPLAY_UDPCAT = "udpcat `send --replay FILE --speed max`"
REPLAY_TCPREPLAY = "tcpreplay `-i lo -t FILE`"
REPLAY_HOLD_BUF = 512 << 20  # SO_RCVBUFFORCE of the correctness sink (the kernel doubles it)


def inet_csum(b):
    """Internet checksum: the one's complement sum of 16-bit words is the number mod 0xffff
    (0 only for all-zero data, else 1..0xffff)."""
    if len(b) % 2:
        b += b"\0"
    v = int.from_bytes(b, "big")
    s = v % 0xFFFF
    if s == 0 and v:
        s = 0xFFFF
    return ~s & 0xFFFF


class ReplayPayloads:
    """Payload i: its 4-byte big-endian index, then bytes of a seeded random pool; its size
    cycles through BENCH_REPLAY_SIZES. Regenerated at will to check what a sink received."""

    def __init__(self, n, sizes):
        self.n, self.sizes = n, sizes
        self.pool = random.Random(14).randbytes(1 << 17)

    def size(self, i):
        return self.sizes[i % len(self.sizes)]

    def get(self, i):
        size = self.size(i)
        off = (i * 7919) % (len(self.pool) - size)
        return i.to_bytes(4, "big") + self.pool[off + 4:off + size]


def write_replay_pcap(path, P):
    """Classic pcap (microseconds, link type 1 = Ethernet), one frame per payload, 10 µs apart;
    correct IPv4 and UDP checksums. Returns (SHA-256 of the payloads in order, payload bytes)."""
    src, dst = socket.inet_aton(REPLAY_SRC), socket.inet_aton("127.0.0.1")
    eth = bytes(6) + bytes(6) + b"\x08\x00"
    h = hashlib.sha256()
    total = 0
    out = []
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i in range(P.n):
            payload = P.get(i)
            h.update(payload)
            total += len(payload)
            ulen = 8 + len(payload)
            udp = struct.pack("!HHHH", REPLAY_SPORT, REPLAY_DPORT, ulen, 0)
            c = inet_csum(src + dst + struct.pack("!BBH", 0, 17, ulen) + udp + payload)
            udp = udp[:6] + struct.pack("!H", c or 0xFFFF)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, i & 0xFFFF, 0x4000, 64, 17, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", inet_csum(ip)) + ip[12:]
            frame = eth + ip + udp + payload
            us = i * 10
            out.append(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(frame), len(frame)) + frame)
            if len(out) == 4096:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    return h.hexdigest(), total


def check_replay_stream(path, P):
    """Walks a sink's --raw output (payloads back to back): each must be payload i for a
    rising i (so none corrupt, duplicated or out of order). Returns (payloads read, ok, why)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0, True, ""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        p, last, got = 0, -1, 0
        while p < size:
            if p + 4 > size:
                return got, False, f"{size - p} stray bytes at the end"
            i = int.from_bytes(m[p:p + 4], "big")
            if i >= P.n or i <= last:
                return got, False, f"payload {got + 1}: index {i} after {last} (duplicate, reordered or corrupt)"
            n = P.size(i)
            if m[p:p + n] != P.get(i):
                return got, False, f"payload {got + 1} (index {i}) differs"
            p += n
            last = i
            got += 1
    return got, True, ""


def softnet_drops():
    """Packets dropped at the per-CPU input backlog (netdev_max_backlog), all CPUs, system-wide:
    /proc/net/softnet_stat column 2. Both contestants' frames pass there on loopback."""
    try:
        with open("/proc/net/softnet_stat") as f:
            return sum(int(line.split()[1], 16) for line in f if line.strip())
    except (OSError, ValueError, IndexError):
        return None


LOCALNET = {"old": None, "notes": set()}


def localnet_restore():
    if LOCALNET["old"] is not None:
        try:
            with open(ROUTE_LOCALNET, "w") as f:
                f.write(LOCALNET["old"])
            LOCALNET["old"] = None
        except OSError as e:
            log(f"  replay: could not put {ROUTE_LOCALNET} back to {LOCALNET['old']}: {e}")


def localnet_on():
    """route_localnet = 1 on lo for one tcpreplay run (localnet_restore puts the old value back)."""
    try:
        with open(ROUTE_LOCALNET) as f:
            old = f.read().strip()
    except OSError as e:
        LOCALNET["notes"].add(f"{ROUTE_LOCALNET} unreadable ({e})")
        return
    if old == "1":
        LOCALNET["notes"].add("net.ipv4.conf.lo.route_localnet was already 1")
        return
    if not ARGS.replay_localnet:
        LOCALNET["notes"].add(f"net.ipv4.conf.lo.route_localnet left at {old} (BENCH_REPLAY_LOCALNET=0)")
        return
    try:
        with open(ROUTE_LOCALNET, "w") as f:
            f.write("1")
        LOCALNET["old"] = old
        LOCALNET["notes"].add(f"net.ipv4.conf.lo.route_localnet was {old}: set to 1 for each tcpreplay run only, "
                              f"then back to {old}")
    except OSError as e:
        LOCALNET["notes"].add(f"net.ipv4.conf.lo.route_localnet is {old} and could not be set ({e})")


def replay_sender(kind, pcap, rewritten, port):
    """argv of one contestant sending the capture to 127.0.0.1:port (tcpreplay: its copy of
    the capture is rewritten to that port first, untimed)."""
    if kind == "udpcat":
        return [ARGS.udpcat, "send", "--stats", "--replay", pcap, "--speed", "max", f"127.0.0.1:{port}"]
    r = subprocess.run(["tcprewrite", f"--portmap={REPLAY_DPORT}:{port}", "--fixcsum", "-i", pcap, "-o", rewritten],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tcprewrite failed: {r.stderr.strip()}")
    return ["tcpreplay", "-i", "lo", "-t", rewritten]


def replay_own_figures(tr, kind):
    """The sender's own account: udpcat --stats (N datagrams in T s), tcpreplay's summary."""
    if kind == "udpcat":
        m = re.search(r"sent (\d+) datagrams, (\d+) bytes in ([\d.]+)s", tr["send_stderr"])
        if m:
            tr["own_sent"] = int(m.group(1))
            tr["own_rate"] = int(m.group(1)) / float(m.group(3)) if float(m.group(3)) else None
    else:
        out = tr.get("send_stdout", "")
        m = re.search(r"Rated: .*?([\d.]+) pps", out)
        tr["own_rate"] = float(m.group(1)) if m else None
        m = re.search(r"Successful packets:\s+(\d+)", out)
        tr["own_sent"] = int(m.group(1)) if m else None
        m = re.search(r"Failed packets:\s+(\d+)", out)
        tr["own_failed"] = int(m.group(1)) if m else None


def replay_trial(work, P, kind, pcap, rewritten, out):
    """The capture, by udpcat or tcpreplay, into the C floor receiver (--raw, stops at N)."""
    N = P.n
    port = free_port()
    sink = [f"{ARGS.floor_dir}/floor_recv", "--raw", "--count", str(N), "--idle-ms", "120000", "127.0.0.1", str(port)]
    argv = replay_sender(kind, pcap, rewritten, port)
    so = tempfile.TemporaryFile()
    sn0 = softnet_drops()
    try:
        if kind == "tcpreplay":
            localnet_on()
        tr = transfer(sink, argv, ready="port", port=port, out_path=out, stdin_path=os.devnull,
                      send_stdout=so, settle=0.10, sender_grace=10.0)
    finally:
        localnet_restore()
    sn1 = softnet_drops()
    so.seek(0)
    tr["send_stdout"] = so.read().decode(errors="replace")
    so.close()
    tr["backlog_drops"] = sn1 - sn0 if sn0 is not None and sn1 is not None else None
    m = re.search(r"floor_recv: (\d+) datagrams, (\d+) bytes", tr["recv_stderr"])
    tr["received"] = int(m.group(1)) if m else None
    got, ok, why = check_replay_stream(out, P)
    os.unlink(out)
    if tr["received"] is None:
        tr["received"] = got
    tr["walked"], tr["in_order_exact"], tr["why"] = got, ok and got == tr["received"], why
    tr["lost"] = N - tr["received"]
    tr["exact"] = tr["in_order_exact"] and tr["lost"] == 0
    tr["rate"] = tr["received"] / tr["time"] if tr["time"] > 0 else None
    tr["offered"] = N / tr["send_time"] if tr.get("send_time") else None
    replay_own_figures(tr, kind)
    return tr


def replay_hold_trial(work, P, digest, kind, pcap, rewritten):
    """Correctness: the capture at full speed into a socket here whose buffer holds all of it
    (SO_RCVBUFFORCE), read only after the sender has exited, so the sink can neither fall
    behind nor take the sender's CPU: every datagram is checked against its payload."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, REPLAY_HOLD_BUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, REPLAY_HOLD_BUF)
    rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        argv = replay_sender(kind, pcap, rewritten, port)
        so = tempfile.TemporaryFile()
        try:
            if kind == "tcpreplay":
                localnet_on()
            t0 = time.perf_counter()
            sp = spawn(argv, stdout=so, stderr=subprocess.PIPE)
            sw = Waiter(sp)
            errs = []
            drain_stderr(sp, errs)
            sw.join(600)
            sw.stop(signal.SIGKILL)
        finally:
            localnet_restore()
        send_time = sw.t - t0
        h = hashlib.sha256()
        got = exact = in_order = 0
        seen = set()
        last = -1
        sock.settimeout(0.2)
        while True:
            try:
                d = sock.recv(65536)
            except socket.timeout:
                break
            got += 1
            h.update(d)
            i = int.from_bytes(d[:4], "big") if len(d) >= 4 else -1
            if 0 <= i < P.n and d == P.get(i):
                exact += 1
                seen.add(i)
                in_order += i > last
                last = max(last, i)
        row = udp_socket_row(port)
    finally:
        sock.close()
    so.seek(0)
    tr = Trial(kind=kind, sent=P.n, received=got, exact_payloads=exact, distinct=len(seen), in_order=in_order,
               lost=P.n - len(seen), sha256_match=h.hexdigest() == digest, rcvbuf=rcvbuf,
               sink_drops=row[1] if row else None, send_time=send_time,
               sender_rate=P.n / send_time if send_time > 0 else None, send_cpu=sw.cpu,
               send_status=sp.returncode, send_stderr="".join(errs), send_stdout=so.read().decode(errors="replace"))
    so.close()
    tr["all_exact"] = tr["sha256_match"] and got == P.n
    replay_own_figures(tr, kind)
    return tr


def scenario_replay(work):
    N = ARGS.replay_datagrams
    P = ReplayPayloads(N, ARGS.replay_sizes)
    pcap = os.path.join(work, "replay.pcap")
    rewritten = os.path.join(work, "replay-port.pcap")
    out = os.path.join(work, "replay.out")
    t = time.monotonic()
    digest, payload_bytes = write_replay_pcap(pcap, P)
    res = {"datagrams": N, "payload_bytes": payload_bytes, "pcap_bytes": os.path.getsize(pcap),
           "generate_s": time.monotonic() - t, "runs": {}, "hold": {}, "tcpreplay": have("tcpreplay") and have("tcprewrite")}
    log(f"  replay: wrote {N} datagrams ({payload_bytes} payload bytes, pcap {res['pcap_bytes']} bytes) "
        f"in {res['generate_s']:.1f} s")
    atexit.register(localnet_restore)
    C = [(REPLAY_UDPCAT, "udpcat")]
    if res["tcpreplay"]:
        C.append((REPLAY_TCPREPLAY, "tcpreplay"))
    else:
        log("  replay: tcpreplay/tcprewrite unavailable, udpcat only")
    res["runs"] = {name: [] for name, _ in C}
    for r in range(ARGS.replay_reps):
        for name, kind in rotate(C, r):
            tr = replay_trial(work, P, kind, pcap, rewritten, out)
            res["runs"][name].append(tr)
            log(f"  replay {name:40s} {tr['time']:7.3f} s  {fmt_num(tr['rate']):>9}/s at sink  offered "
                f"{fmt_num(tr['offered'])}/s  lost {tr['lost']:>7}  sink drops {tr['drops']}  backlog drops "
                f"{tr['backlog_drops']}  in order+exact {tr['in_order_exact']} {tr['why']}  end {tr['end']}  "
                f"rc {tr['recv_status']}/{tr['send_status']}")
    for name, kind in C:
        tr = replay_hold_trial(work, P, digest, kind, pcap, rewritten)
        res["hold"][name] = tr
        log(f"  replay correctness {name:40s} received {tr['received']}/{N}  exact {tr['exact_payloads']}  "
            f"in order {tr['in_order']}  sha256 {'match' if tr['sha256_match'] else 'differs'}  sender alone "
            f"{fmt_num(tr['sender_rate'])}/s  sink drops {tr['sink_drops']}  rcvbuf {tr['rcvbuf']}  rc {tr['send_status']}")
    for f in (pcap, rewritten):
        if os.path.exists(f):
            os.unlink(f)
    res["localnet"] = sorted(LOCALNET["notes"])
    return res


def report_replay(res, md, targets):
    N = res["datagrams"]
    sizes = "/".join(str(s) for s in ARGS.replay_sizes)
    runs = res["runs"]
    md.append(f"### 7. replay (issue 14): a pcap of {N:,} UDP datagrams ({sizes}-byte payloads in turn, "
              f"{res['payload_bytes'] / 1e6:.1f} MB of payload, {res['pcap_bytes'] / 1e6:.1f} MB of pcap) "
              f"as fast as each can, into the C floor receiver, {ARGS.replay_reps} run(s) each\n")
    md.append("| contestant | sender rate (offered) | datagrams/s at sink | unit | lost (median, max) | kernel drops at sink | "
              "backlog drops | received payloads byte-exact, in order | CPU s sender / sink | sender's own rate | "
              "ratio to tcpreplay |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ref = median([x["rate"] for x in runs.get(REPLAY_TCPREPLAY, [])]) if REPLAY_TCPREPLAY in runs else None
    for name, ts in runs.items():
        rate = median([x["rate"] for x in ts])
        lost = [x["lost"] for x in ts]
        ok = sum(x["in_order_exact"] for x in ts)
        order = "yes" if ok == len(ts) else f"**no** ({ok}/{len(ts)} runs: {'; '.join(x['why'] for x in ts if x['why'])})"
        if not any(x["received"] for x in ts):
            order = "— (none received)"
        own = median([x.get("own_rate") for x in ts])
        src = "`--stats`" if name == REPLAY_UDPCAT else "its `Rated:` line"
        md.append(f"| {name} | {fmt_num(median([x['offered'] for x in ts]))} | {fmt_num(rate)} | datagrams/s | "
                  f"{fmt_num(median(lost))}, {max(lost):,} | {fmt_num(median([x['drops'] for x in ts]))} | "
                  f"{fmt_num(median([x['backlog_drops'] for x in ts]))} | {order} | {cpu(ts)} | "
                  f"{fmt_num(own)} ({src}) | {fmt_ratio(rate / ref if ref and rate else None)} |")
    md.append("")
    hold = res["hold"]
    if hold:
        md.append(f"Correctness, a separate run of each: the same capture at full speed into a socket in bench.py "
                  f"whose buffer holds all of it (SO_RCVBUFFORCE {REPLAY_HOLD_BUF >> 20} MiB; the kernel granted "
                  f"{hold[next(iter(hold))]['rcvbuf'] >> 20} MiB), read only after the sender has exited, so the sink "
                  "can neither fall behind nor take the sender's CPU; each datagram is compared with its payload, "
                  "and the SHA-256 of all of them, in order, with the capture's:\n")
        md.append("| contestant | received | byte-exact | in order | SHA-256 of payloads | kernel drops | sender alone | unit |")
        md.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, h in hold.items():
            md.append(f"| {name} | {h['received']:,}/{N:,} | {h['exact_payloads']:,} | {h['in_order']:,} | "
                      f"{'matches' if h['sha256_match'] else '**differs**'} | {fmt_num(h['sink_drops'])} | "
                      f"{fmt_num(h['sender_rate'])} | datagrams/s |")
        md.append("")
    tc = runs.get(REPLAY_TCPREPLAY, [])
    notes = []
    if tc:
        fails = [x.get("own_failed") for x in tc]
        notes.append(f"tcpreplay's own count, per run: {', '.join(fmt_num(x.get('own_sent')) for x in tc)} "
                     f"successful, {', '.join(fmt_num(f) for f in fails)} failed.")
        if not any(x["received"] for x in tc):
            notes.append("**None of tcpreplay's frames reached the sink**, though it counted them sent: the kernel "
                         "dropped them on the way in (see route_localnet below).")
    elif not res["tcpreplay"]:
        notes.append("tcpreplay unavailable: udpcat only.")
    notes.append("Sender exit statuses: " + "; ".join(
        f"{name.split(' ')[0]} {', '.join(str(x['send_status']) for x in ts)}" for name, ts in runs.items()) + ".")
    if res.get("localnet"):
        notes.append("; ".join(res["localnet"]) + ".")
    md.append("The capture is written once per run by bench.py: classic pcap, Ethernet link type, frames "
              f"{REPLAY_SRC}:{REPLAY_SPORT} → 127.0.0.1:{REPLAY_DPORT}, payload i = its 4-byte index and seeded random "
              "bytes. udpcat sends each payload to the sink's address through a connected UDP socket "
              "(the capture's port does not matter to it). tcpreplay writes the frames themselves to `lo` "
              "through a raw (packet) socket, bypassing the socket path, so its copy of the capture is first "
              "rewritten to the sink's port (`tcprewrite --portmap --fixcsum`, untimed), and to reach a socket bound "
              "to 127.0.0.1 the frames need lo's own destination MAC (00:00:00:00:00:00), a source that is not a local "
              "address (hence 192.0.2.1) and `net.ipv4.conf.lo.route_localnet=1` (injected frames have no route "
              "attached: without it the kernel drops them, `IP_LOCALNET`). The sink is the lines scenario's C floor "
              "receiver (`floor_recv --raw --count N`, 8 MiB buffer, payloads to a file), checked afterwards payload by "
              "payload. The clock runs from the sender's start to the sink's last datagram; datagrams/s at sink = "
              "received / that time; sender rate = datagrams / the sender's own run time; lost = sent − received, "
              "the sink's kernel drops (/proc/net/udp) being where they go when it falls behind; backlog drops = "
              "/proc/net/softnet_stat's dropped column over the run (system-wide: the per-CPU input queue that "
              "every frame on `lo` passes). On loopback the receiving half of the kernel's work runs in the sender's "
              "context, so the sender's CPU includes it, for both. Ratio: datagrams/s at sink, to tcpreplay's. "
              + " ".join(notes) + "\n")
    u = hold.get(REPLAY_UDPCAT)
    ut = runs.get(REPLAY_UDPCAT, [])
    detail = []
    if u:
        detail.append(f"{u['exact_payloads']:,}/{N:,} payloads byte-exact, {u['in_order']:,} in order, SHA-256 "
                      f"{'matches' if u['sha256_match'] else 'differs'} (sink holding all)")
    if ut:
        detail.append(f"into the C floor receiver: received payloads exact and in order in "
                      f"{sum(x['in_order_exact'] for x in ut)}/{len(ut)} runs, max lost {max(x['lost'] for x in ut):,} "
                      f"(sink kernel drops {', '.join(fmt_num(x['drops']) for x in ut)})")
    targets.append(("replay: `--speed max` delivers every payload byte-exact",
                    bool(u and u["all_exact"] and u["in_order"] == N and all(x["in_order_exact"] for x in ut)),
                    "; ".join(detail)))


# --------------------------------------------------------------------------------------------


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except Exception:
        return ""


def main():
    global ARGS
    ARGS = parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    atexit.register(kill_all)

    base = "/dev/shm" if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 3 * ARGS.bulk_bytes else None
    work = tempfile.mkdtemp(prefix="udpcat-bench-", dir=base)
    atexit.register(shutil.rmtree, work, True)

    started = datetime.datetime.now(datetime.timezone.utc)
    load0 = os.getloadavg()
    md, targets = [], []
    wall0 = time.monotonic()
    log(f"bench: reps={ARGS.reps} lines={ARGS.lines} bulk={ARGS.bulk_bytes} rtt={ARGS.rtt} scenarios={ARGS.scenarios} work={work}")
    sections = []
    if "lines" in ARGS.scenarios:
        log("scenario 1: lines")
        C, res = scenario_lines(work)
        RAW["lines"] = res
        sections.append(lambda: report_lines(C, res, md, targets))
    if "bulk" in ARGS.scenarios:
        log("scenario 2: bulk")
        bres = scenario_bulk(work)
        RAW["bulk"] = {str(k): v[1] for k, v in bres.items()}
        sections.append(lambda: report_bulk(bres, md, targets))
    if "rtt" in ARGS.scenarios:
        log("scenario 3: round trips")
        rC, rres = scenario_rtt(work)
        RAW["rtt"] = rres
        sections.append(lambda: report_rtt(rC, rres, md, targets))
    if "startup" in ARGS.scenarios:
        log("scenario 4: start-up")
        sres = scenario_startup(work)
        RAW["startup"] = sres[1] if sres else None
        sections.append(lambda: report_startup(sres, md, targets))
    if "rate" in ARGS.scenarios:
        log("scenario 5: rate")
        rateres = scenario_rate(work)
        RAW["rate"] = {f"{n:g}": v for n, v in rateres.items()}
        sections.append(lambda: report_rate(rateres, md, targets))
    if "forward" in ARGS.scenarios:
        log("scenario 6: forward")
        fC, fres = scenario_forward(work)
        RAW["forward"] = fres
        sections.append(lambda: report_forward(fC, fres, md, targets))
    if "replay" in ARGS.scenarios:
        log("scenario 7: replay")
        rpres = scenario_replay(work)
        RAW["replay"] = rpres
        sections.append(lambda: report_replay(rpres, md, targets))
    for s in sections:
        s()
    load1 = os.getloadavg()
    wall = time.monotonic() - wall0

    head = []
    head.append("## udpcat benchmark results\n")
    commit = sh("git rev-parse --short HEAD") or "?"
    dirty = " (with uncommitted changes)" if sh("git status --porcelain -- src Cargo.toml Cargo.lock") else ""
    head.append(f"- command: `{ARGS.command}`")
    head.append(f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}; took {wall:.0f} s")
    head.append(f"- machine: nproc {os.cpu_count()}, {platform.system()} {platform.release()}, "
                f"load average {load0[0]:.2f} at start, {load1[0]:.2f} at end")
    head.append(f"- udpcat: commit {commit}{dirty}, `{sh(shlex.quote(ARGS.udpcat) + ' --version')}`; floor programs: `cc -O2`; {sh('socat -V 2>/dev/null | sed -n 2p')}")
    if "replay" in ARGS.scenarios and have("tcpreplay"):
        head.append(f"- {sh('tcpreplay -V 2>&1 | head -1')}")
    head.append(f"- {ARGS.reps} runs of each contestant, alternating; medians shown. Loopback only (127.0.0.1, ports chosen by the kernel).")
    if ARGS.unavailable:
        head.append(f"- unavailable (could not be installed): {', '.join(sorted(ARGS.unavailable))}")
    head.append("")
    tgt = ["### Targets (issues 3 and 15" + ("; forward: issue 13" if "forward" in ARGS.scenarios else "")
           + ("; replay: issue 14" if "replay" in ARGS.scenarios else "") + ")\n", "| target | result | measured |", "| --- | --- | --- |"]
    for what, ok, detail in targets:
        tgt.append(f"| {what} | {'met' if ok else ('not measured' if ok is None else '**not met**')} | {detail} |")
    tgt.append("")
    text = "\n".join(head + md + tgt) + "\n"
    print(text)
    with open(ARGS.results, "w") as f:
        f.write(text)
    raw = os.path.join(ARGS.floor_dir, "last-run.json")
    with open(raw, "w") as f:
        json.dump(RAW, f, indent=1)
    log(f"bench: wrote {ARGS.results} (every run's figures: {raw})")


if __name__ == "__main__":
    main()
