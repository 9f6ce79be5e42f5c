#!/usr/bin/env python3
"""Linux-side UDP peer for tests/wine/smoke.sh, on 127.0.0.1 only.

Every mode that binds prints its own port on the first line of stdout (flushed) before it
sends or receives anything, so the caller can wait for that line instead of sleeping.
Datagrams received are printed one per line as Python bytes literals (b'hi', b'\\x00\\xff'),
which shows every byte unambiguously. PAYLOAD arguments are text, or hex:HEX for bytes
(hex: alone is the empty datagram).

    peer.py recv N          receive N datagrams, print each
    peer.py echo N          receive N datagrams, print each and send it back to its sender
    peer.py send PORT PAYLOAD...   send each PAYLOAD to 127.0.0.1:PORT from one socket
    peer.py ask PORT PAYLOAD       send PAYLOAD, print the one reply
    peer.py free-port       print a port that nothing listens on (bound, then closed)

Exit status: 0 done, 3 timed out (--timeout seconds, default 20, for the whole run).
"""

import argparse
import socket
import sys
import time

HOST = "127.0.0.1"


def payload(arg):
    return bytes.fromhex(arg[4:]) if arg.startswith("hex:") else arg.encode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("mode", choices=["recv", "echo", "send", "ask", "free-port"])
    p.add_argument("args", nargs="*")
    a = p.parse_args()
    deadline = time.monotonic() + a.timeout

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    print(s.getsockname()[1], flush=True)
    if a.mode == "free-port":
        s.close()
        return 0

    def receive(what):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        s.settimeout(left)
        try:
            return s.recvfrom(65535)
        except socket.timeout:
            raise TimeoutError from None
        except ConnectionRefusedError:
            print(f"peer: {what}: port unreachable", file=sys.stderr)
            sys.exit(4)

    if a.mode in ("recv", "echo"):
        want = int(a.args[0])
        for got in range(want):
            try:
                data, sender = receive("recv")
            except TimeoutError:
                print(f"peer: timed out after {a.timeout}s: {got} of {want} datagrams", file=sys.stderr)
                return 3
            print(repr(data), flush=True)
            if a.mode == "echo":
                s.sendto(data, sender)
        return 0

    port = int(a.args[0])
    if a.mode == "send":
        for arg in a.args[1:]:
            s.sendto(payload(arg), (HOST, port))
        return 0

    # ask
    s.connect((HOST, port))
    s.send(payload(a.args[1]))
    try:
        data, _ = receive("ask")
    except TimeoutError:
        print(f"peer: timed out after {a.timeout}s without a reply", file=sys.stderr)
        return 3
    print(repr(data), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
