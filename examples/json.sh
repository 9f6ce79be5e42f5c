#!/usr/bin/env bash
# Process datagrams as JSON lines without jq: `listen -f json` writes one object per datagram
# (ts, from, to, len, and text or base64), which any JSON library reads; here python3.
#
#   UDPCAT=path/to/udpcat bash examples/json.sh
set -euo pipefail
udpcat=${UDPCAT:-udpcat}

dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

"$udpcat" listen -q -f json --count 3 --timeout 10s --ready-file "$dir/ready" 127.0.0.1:0 \
    >"$dir/records.json" &
pid=$!
for _ in $(seq 200); do
    [ -s "$dir/ready" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
[ -s "$dir/ready" ] || { echo "listener did not start" >&2; exit 1; }
addr=$(head -n 1 "$dir/ready")

"$udpcat" send "$addr" 'temperature=21.5'
printf '\377\000' | "$udpcat" send --binary --whole "$addr" # not UTF-8: arrives as base64
printf '' | "$udpcat" send --whole "$addr"                  # an empty datagram is a record too

status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || { echo "listener exited with status $status" >&2; exit 1; }

# Each line is one datagram; decode the payload whichever key holds it.
python3 -c '
import base64, json, sys
for line in sys.stdin:
    r = json.loads(line)
    payload = r["text"].encode() if "text" in r else base64.b64decode(r["base64"])
    assert len(payload) == r["len"], r
    assert r["to"] == sys.argv[1], r
    kind = "text" if "text" in r else "base64"
    print("%d bytes as %s: %r" % (r["len"], kind, payload))
' "$addr" <"$dir/records.json"
