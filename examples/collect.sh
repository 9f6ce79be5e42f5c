#!/usr/bin/env bash
# Collect exactly N datagrams into a file: `listen --count N` exits 0 once they are in,
# or 3 if --timeout passes without a datagram first.
#
#   UDPCAT=path/to/udpcat bash examples/collect.sh
set -euo pipefail
udpcat=${UDPCAT:-udpcat}

dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

n=5
# -s: each record starts with the sender's address and a TAB.
"$udpcat" listen -q -s --count "$n" --timeout 10s --ready-file "$dir/ready" 127.0.0.1:0 \
    >"$dir/collected.txt" &
pid=$!
for _ in $(seq 200); do
    [ -s "$dir/ready" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
[ -s "$dir/ready" ] || { echo "listener did not start" >&2; exit 1; }
addr=$(head -n 1 "$dir/ready")

# One datagram per line of stdin, all from the same local port.
seq "$n" | sed 's/^/reading /' | "$udpcat" send "$addr"

status=0
wait "$pid" || status=$?
pid=
case $status in
    0) ;;
    3) echo "timed out before $n datagrams arrived" >&2; exit 1 ;;
    *) echo "listener failed with status $status" >&2; exit 1 ;;
esac

lines=$(wc -l <"$dir/collected.txt")
[ "$lines" -eq "$n" ] || { echo "expected $n records, got $lines" >&2; exit 1; }
senders=$(cut -f 1 "$dir/collected.txt" | sort -u | wc -l)
[ "$senders" -eq 1 ] || { echo "expected 1 sender, got $senders" >&2; exit 1; }
cut -f 2 "$dir/collected.txt"
