#!/usr/bin/env bash
# Check a UDP service with the exit status of `udpcat send --reply`:
#   0 the reply came, 3 nothing answered within --timeout, 4 nothing listens on the port.
#
#   UDPCAT=path/to/udpcat bash examples/reply-check.sh
set -euo pipefail
udpcat=${UDPCAT:-udpcat}

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

# Start `udpcat listen ARGS... 127.0.0.1:0` in the background; set $addr to its address.
# --timeout: a safety net, so a listener left behind ends by itself after a minute idle.
# (Not called as $(start ...): a subshell would lose the pid.)
start() {
    local ready=$dir/ready.${#pids[@]}
    "$udpcat" listen -q --timeout 60s --ready-file "$ready" "$@" 127.0.0.1:0 >/dev/null &
    pids+=($!)
    for _ in $(seq 200); do
        [ -s "$ready" ] && break
        kill -0 "$!" 2>/dev/null || break
        sleep 0.05
    done
    [ -s "$ready" ] || { echo "listener did not start" >&2; exit 1; }
    addr=$(head -n 1 "$ready")
}

# What a monitoring script does with the status.
check() {
    local status=0
    "$udpcat" send -q --reply --timeout 500ms "$1" ping >/dev/null || status=$?
    case $status in
        0) echo "up" ;;
        3) echo "no answer" ;;
        4) echo "nothing listens" ;;
        *) echo "error (status $status)" ;;
    esac
}

# An echo service answers: status 0, and the reply is the datagram we sent.
start --echo
echo_addr=$addr
reply=$("$udpcat" send --reply "$echo_addr" ping)
[ "$reply" = ping ] || { echo "unexpected reply: $reply" >&2; exit 1; }
echo "echo service: $(check "$echo_addr")"

# A listener that never answers: the reply times out, status 3.
start
silent_addr=$addr
echo "silent service: $(check "$silent_addr")"

# A port nobody listens on: loopback answers "port unreachable", status 4. A listener that
# exits after one datagram leaves behind a port that was free a moment ago.
start --count 1
gone_addr=$addr
"$udpcat" send "$gone_addr" bye
wait "${pids[-1]}"
echo "closed port: $(check "$gone_addr")"
