#!/usr/bin/env bash
# Capture datagrams as hex and replay them byte for byte: binary payloads (NUL, 0xff, a
# newline inside the payload) survive `listen -f hex` | `send --hex` unchanged.
#
#   UDPCAT=path/to/udpcat bash examples/hex-roundtrip.sh
set -euo pipefail
udpcat=${UDPCAT:-udpcat}

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

# Start `udpcat listen ARGS... 127.0.0.1:0 > OUT` in the background; set $addr to its
# address. (Not called as $(start ...): a subshell would lose the pid.)
start() {
    local out=$1 ready=$dir/ready.${#pids[@]}
    shift
    "$udpcat" listen -q --timeout 10s --ready-file "$ready" "$@" 127.0.0.1:0 >"$out" &
    pids+=($!)
    for _ in $(seq 200); do
        [ -s "$ready" ] && break
        kill -0 "$!" 2>/dev/null || break
        sleep 0.05
    done
    [ -s "$ready" ] || { echo "listener did not start" >&2; exit 1; }
    addr=$(head -n 1 "$ready")
}

# The payload: 6 bytes that are neither text nor a single line.
printf '\000\377a\nb\033' >"$dir/payload.bin"

# 1. Capture one datagram as hex.
start "$dir/capture.hex" -f hex --count 1
capture=$addr
"$udpcat" send --binary --whole "$capture" <"$dir/payload.bin"
wait "${pids[0]}"
echo "captured: $(cat "$dir/capture.hex")"

# 2. Replay the capture to a second listener that writes the raw bytes.
start "$dir/replayed.bin" -f raw --count 1
replay=$addr
"$udpcat" send --hex "$replay" <"$dir/capture.hex"
wait "${pids[1]}"

if cmp -s "$dir/payload.bin" "$dir/replayed.bin"; then
    echo "replayed byte for byte"
else
    echo "replayed bytes differ:" >&2
    od -An -tx1 "$dir/replayed.bin" >&2
    exit 1
fi
