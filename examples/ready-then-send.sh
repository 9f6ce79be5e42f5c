#!/usr/bin/env bash
# Start a listener on a free port, wait until it is bound, learn its address, then send to it.
# The pattern for testing anything that sends UDP: point it at "$addr" instead of udpcat send.
#
#   UDPCAT=path/to/udpcat bash examples/ready-then-send.sh
set -euo pipefail
udpcat=${UDPCAT:-udpcat}

dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

# Port 0: the system picks a free port. --timeout is a safety net so a broken sender cannot
# hang the script; --count 2 ends the listener once both datagrams are in.
"$udpcat" listen -q --count 2 --timeout 10s --ready-file "$dir/ready" 127.0.0.1:0 >"$dir/got" &
pid=$!

# The ready file is written atomically (written, then renamed): once it has content, it is
# complete and every socket is bound. Poll for it, bounded, and give up if the listener died.
for _ in $(seq 200); do
    [ -s "$dir/ready" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
[ -s "$dir/ready" ] || { echo "listener did not start" >&2; exit 1; }
addr=$(head -n 1 "$dir/ready") # e.g. 127.0.0.1:43817

"$udpcat" send "$addr" hello world # words make one datagram
printf 'second\n' | "$udpcat" send "$addr"

status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || { echo "listener exited with status $status" >&2; exit 1; }

expected=$'hello world\nsecond'
if [ "$(cat "$dir/got")" != "$expected" ]; then
    echo "unexpected output:" >&2
    cat "$dir/got" >&2
    exit 1
fi
echo "received 2 datagrams"
